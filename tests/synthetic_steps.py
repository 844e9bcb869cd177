"""Synthetic step statistics that follow docs/ARCHITECTURE.md's schema exactly.

Expert and amateur logits are drawn here, and every column is computed from them
with torch (float32 log_softmax, full vocabulary), the way sampling does; tests
keep the logits to check what lrkit recomputes from the stored columns.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

STEP_COLUMNS = [
    "prompt_id", "step", "token_id", "token", "kl",
    "expert_entropy", "amateur_entropy", "expert_logprob", "amateur_logprob",
    "expert_top1_id", "amateur_top1_id", "expert_top1", "amateur_top1", "top1_agree",
    "expert_topk_ids", "expert_topk_logprobs", "amateur_logprobs_at_expert_topk",
    "amateur_topk_ids", "amateur_topk_logprobs", "expert_topk_tokens", "amateur_topk_tokens",
    "mask_size", "kept",
]

EOS = "<|im_end|>"
SPECIAL_VOCAB = [
    EOS, "<|endoftext|>", "<b>", "&amp;", '"q"', "\n", "\n\n", " ", "\t", " the",
    " 12", "+", "=", "é", "<script>alert(1)</script>", "'s",
]


def vocabulary(size: int = 48) -> list[str]:
    words = [f" w{i}" for i in range(size - len(SPECIAL_VOCAB))]
    return (SPECIAL_VOCAB + words)[:size]


@dataclass
class Synthetic:
    steps: pd.DataFrame
    expert_logits: torch.Tensor  # (N, V), rows in the order of `steps`
    amateur_logits: torch.Tensor
    vocab: list


def stats_frame(prompt_ids, steps, expert_logits, amateur_logits, vocab, top_k=8,
                alpha=0.2, beta=0.4, kl_inclusive=True, skip_first_step=True,
                token_ids=None) -> pd.DataFrame:
    """One row per (prompt_id, step), computed from full logits with torch."""
    lp_e = torch.log_softmax(expert_logits.float(), dim=-1)
    lp_a = torch.log_softmax(amateur_logits.float(), dim=-1)
    p_e, p_a = lp_e.exp(), lp_a.exp()
    kl = (p_e * (lp_e - lp_a)).sum(-1)
    if token_ids is None:
        token_ids = lp_e.argmax(-1)
    token_ids = torch.as_tensor(token_ids)
    rows = torch.arange(len(token_ids))
    e_top1, a_top1 = lp_e.argmax(-1), lp_a.argmax(-1)
    e_top_lp, e_top_ids = lp_e.topk(top_k, dim=-1)
    a_top_lp, a_top_ids = lp_a.topk(top_k, dim=-1)
    a_at_e = lp_a.gather(1, e_top_ids)
    mask_size = (p_e >= alpha * p_e.max(-1, keepdim=True).values).sum(-1)
    steps = np.asarray(steps)
    kl_np = kl.numpy().astype(np.float64)
    kept = kl_np >= beta if kl_inclusive else kl_np > beta
    if skip_first_step:
        kept &= steps != 0

    def text(ids):
        return [vocab[i] for i in ids]

    frame = pd.DataFrame({
        "prompt_id": list(prompt_ids),
        "step": steps.astype(int),
        "token_id": token_ids.numpy().astype(int),
        "token": text(token_ids.tolist()),
        "kl": kl_np,
        "expert_entropy": (-(p_e * lp_e).sum(-1)).numpy().astype(np.float64),
        "amateur_entropy": (-(p_a * lp_a).sum(-1)).numpy().astype(np.float64),
        "expert_logprob": lp_e[rows, token_ids].numpy().astype(np.float64),
        "amateur_logprob": lp_a[rows, token_ids].numpy().astype(np.float64),
        "expert_top1_id": e_top1.numpy().astype(int),
        "amateur_top1_id": a_top1.numpy().astype(int),
        "expert_top1": text(e_top1.tolist()),
        "amateur_top1": text(a_top1.tolist()),
        "top1_agree": (e_top1 == a_top1).numpy(),
        "expert_topk_ids": e_top_ids.tolist(),
        "expert_topk_logprobs": e_top_lp.tolist(),
        "amateur_logprobs_at_expert_topk": a_at_e.tolist(),
        "amateur_topk_ids": a_top_ids.tolist(),
        "amateur_topk_logprobs": a_top_lp.tolist(),
        "expert_topk_tokens": [text(r) for r in e_top_ids.tolist()],
        "amateur_topk_tokens": [text(r) for r in a_top_ids.tolist()],
        "mask_size": mask_size.numpy().astype(int),
        "kept": kept,
    })
    return frame[STEP_COLUMNS]


def make_steps(n_problems: int = 3, n_steps: int = 24, vocab_size: int = 48, top_k: int = 8,
               seed: int = 0, alpha: float = 0.2, beta: float = 0.4, eos_every: int = 2,
               **rule) -> Synthetic:
    """Rollouts of `n_steps` steps (every `eos_every`-th problem ends with EOS, one
    step shorter) whose expert-amateur divergence is heavy-tailed, like the paper's."""
    g = torch.Generator().manual_seed(seed)
    vocab = vocabulary(vocab_size)
    lengths = [n_steps - 1 if eos_every and i % eos_every == 0 else n_steps
               for i in range(n_problems)]
    n = sum(lengths)
    expert = torch.randn(n, vocab_size, generator=g) * 2.5
    # Mostly the amateur nearly agrees; now and then it parts ways sharply.
    spread = (-torch.log(torch.rand(n, 1, generator=g))) ** 2
    noise = torch.randn(n, vocab_size, generator=g)
    amateur = expert * 0.9 + noise * spread * 0.5
    prompt_ids, steps = [], []
    ends = np.cumsum(lengths) - 1
    for i, length in enumerate(lengths):
        prompt_ids += [f"p{i:04d}"] * length
        steps += list(range(length))
        if eos_every and i % eos_every == 0:
            expert[ends[i], 0] = expert[ends[i]].max() + 3.0  # EOS is id 0
    frame = stats_frame(prompt_ids, steps, expert, amateur, vocab, top_k=top_k,
                        alpha=alpha, beta=beta, **rule)
    return Synthetic(frame, expert, amateur, vocab)


def one_row(expert_logits, amateur_logits, vocab, top_k, **kw) -> pd.Series:
    """A single step's statistics from one pair of logit vectors."""
    frame = stats_frame(["x"], [1], expert_logits[None], amateur_logits[None], vocab,
                        top_k=top_k, **kw)
    return frame.iloc[0]
