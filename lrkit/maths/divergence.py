"""Divergence maths on logits: pure tensor functions, no I/O.

All of it runs in float32 on raw logits (never on generate()'s processed
scores). Rows are independent steps, so callers may pass any number of steps
from any number of trajectories at once; memory is rows x vocab floats. The
plausibility mask and the selection rule are :mod:`lrkit.maths.selection`'s:
one rule for tensors, arrays and frames.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lrkit.maths.selection import plausibility_mask


class NonFiniteLogitsError(ValueError):
    """Logits with NaN or +inf: the model's numbers cannot be trusted."""


@dataclass
class StepStats:
    """Per-step statistics of a batch of rows (all tensors have rows first)."""

    kl: torch.Tensor                    # [N] KL(pi_E || pi_A)
    expert_entropy: torch.Tensor        # [N]
    amateur_entropy: torch.Tensor       # [N]
    expert_logprob: torch.Tensor        # [N] log pi_E(chosen)
    amateur_logprob: torch.Tensor       # [N] log pi_A(chosen)
    expert_topk_ids: torch.Tensor       # [N, k]
    expert_topk_logprobs: torch.Tensor  # [N, k]
    amateur_logprobs_at_expert_topk: torch.Tensor  # [N, k]
    amateur_topk_ids: torch.Tensor      # [N, k]
    amateur_topk_logprobs: torch.Tensor  # [N, k]
    mask_size: torch.Tensor             # [N] size of the plausibility mask


def log_probs(logits: torch.Tensor, vocab_size: int | None = None) -> torch.Tensor:
    """float32 log-softmax over the first ``vocab_size`` rows of the vocabulary.

    Rows beyond the tokenizer (padding rows of an output layer, e.g. 152064 vs
    151936) belong to no token and are dropped before normalising.
    """
    if vocab_size is not None:
        if logits.shape[-1] < vocab_size:
            raise ValueError(f"logits have {logits.shape[-1]} rows, fewer than the "
                             f"tokenizer's {vocab_size}")
        logits = logits[..., :vocab_size]
    logits = logits.float()
    if torch.isnan(logits).any() or torch.isposinf(logits).any():
        raise NonFiniteLogitsError("logits hold NaN or +inf")
    return F.log_softmax(logits, dim=-1)


def _plogp_difference(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """p * (log p - log q), with 0 where p == 0 (so -inf log-probs give no NaN)."""
    p = logp.exp()
    return torch.where(p > 0, p * (logp - logq), torch.zeros_like(p))


def kl_divergence(expert_logp: torch.Tensor, amateur_logp: torch.Tensor) -> torch.Tensor:
    """KL(pi_E || pi_A) = sum_a pi_E(a) (log pi_E(a) - log pi_A(a)), last dim."""
    return _plogp_difference(expert_logp, amateur_logp).sum(-1)


def entropy(logp: torch.Tensor) -> torch.Tensor:
    p = logp.exp()
    return -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(-1)


def contrastive_scores(expert_logp: torch.Tensor, amateur_logp: torch.Tensor,
                       mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """(log pi_E - log pi_A) / temperature inside the mask, -inf outside."""
    scores = (expert_logp - amateur_logp) / temperature
    return scores.masked_fill(~mask, float("-inf"))


def sparse_soft_label(expert_logp: torch.Tensor, amateur_logp: torch.Tensor, alpha: float,
                      temperature: float = 1.0) -> tuple[list[int], list[float]]:
    """v_C of ONE step as (ids, weights), ids sorted by weight, largest first."""
    mask = plausibility_mask(expert_logp, alpha)
    ids = mask.nonzero(as_tuple=True)[0]
    scores = (expert_logp[ids] - amateur_logp[ids]) / temperature
    weights = torch.softmax(scores, dim=-1)
    order = torch.argsort(weights, descending=True, stable=True)
    return ids[order].tolist(), weights[order].tolist()


def step_statistics(expert_logits: torch.Tensor, amateur_logits: torch.Tensor,
                    chosen_ids: torch.Tensor, vocab_size: int, alpha: float,
                    top_k: int = 20) -> tuple[StepStats, torch.Tensor, torch.Tensor]:
    """Statistics of N steps from both models' raw logits ([N, V_e], [N, V_a]).

    Returns the stats and both float32 log-prob tensors [N, vocab_size], which
    the caller needs for the soft labels of the kept rows.
    """
    expert_logp = log_probs(expert_logits, vocab_size)
    amateur_logp = log_probs(amateur_logits, vocab_size)
    k = min(top_k, vocab_size)
    e_top = expert_logp.topk(k, dim=-1)
    a_top = amateur_logp.topk(k, dim=-1)
    chosen = chosen_ids.long().unsqueeze(-1)
    stats = StepStats(
        kl=kl_divergence(expert_logp, amateur_logp),
        expert_entropy=entropy(expert_logp),
        amateur_entropy=entropy(amateur_logp),
        expert_logprob=expert_logp.gather(-1, chosen).squeeze(-1),
        amateur_logprob=amateur_logp.gather(-1, chosen).squeeze(-1),
        expert_topk_ids=e_top.indices,
        expert_topk_logprobs=e_top.values,
        amateur_logprobs_at_expert_topk=amateur_logp.gather(-1, e_top.indices),
        amateur_topk_ids=a_top.indices,
        amateur_topk_logprobs=a_top.values,
        mask_size=plausibility_mask(expert_logp, alpha).sum(-1),
    )
    return stats, expert_logp, amateur_logp
