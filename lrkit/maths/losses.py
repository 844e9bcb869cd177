"""Training losses of the method: pure tensor functions, float32, no models."""
from __future__ import annotations

from typing import Optional

import torch

from lrkit.maths.divergence import log_probs


def sparse_kl(logits: torch.Tensor, target_ids: torch.Tensor, target_weights: torch.Tensor,
              vocab_size: Optional[int] = None) -> torch.Tensor:
    """KL(v || pi) per row, pi = float32 softmax over the first ``vocab_size``
    logit rows, v given sparsely.

    ``logits`` (batch, rows); ``target_ids`` / ``target_weights`` (batch, k),
    zero weights are padding. Gradient = that of -sum_i w_i log pi(i).
    """
    picked = log_probs(logits, vocab_size).gather(-1, target_ids)
    weights = target_weights.float()
    # where(): a zero weight at a -inf log-prob must give 0, not nan
    cross = torch.where(weights > 0, weights * picked, torch.zeros_like(picked))
    return (torch.xlogy(weights, weights) - cross).sum(-1)
