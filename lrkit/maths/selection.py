"""Selection and soft labels recomputed from stored step statistics.

The method's two rules are written here once, for torch tensors (the sampler),
numpy arrays (the views) and step-statistics frames alike: `select_steps` (a step
is kept when KL(pi_E || pi_A) >= beta, > beta when not inclusive, and step 0, the
empty prefix, is never kept when skipping it) and `plausibility_mask` (the tokens
with pi_E(a) >= alpha * max pi_E). Everything else is pure DataFrame / numpy
code: no model, no files, no plots. The step-statistics columns are those of
docs/ARCHITECTURE.md (`lrkit.read_steps`).

The expert's stored top-k log-probs, with the amateur's log-probs at the same
ids, are enough to rebuild the plausibility mask and the contrastive soft label
for any alpha whose mask fits inside the top-k; `mask_is_exact` says when it might not.
"""
from __future__ import annotations

import math

from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "SoftLabel",
    "select_steps",
    "plausibility_mask",
    "mask_is_exact",
    "soft_label_from_stats",
    "soft_labels_from_arrays",
    "topk_arrays",
    "selection_summary",
    "kept_share_curve",
]


def _is_tensor(value) -> bool:
    return type(value).__module__.split(".")[0] == "torch"


def select_steps(steps, beta: float, kl_inclusive: bool = True, skip_first_step: bool = True):
    """Which steps the method keeps at ``beta``: KL(pi_E || pi_A) >= beta (> beta when not
    ``kl_inclusive``), and never step 0 (the empty prefix) when ``skip_first_step``.

    Args:
        steps: a step-statistics DataFrame (``lrkit.read_steps``), or a mapping whose ``kl``
            and ``step`` are [N] torch tensors or array-likes (``step`` is read only when
            ``skip_first_step``).
        beta (float): the KL threshold.
        kl_inclusive (bool): keep KL >= beta (the authors' code); False keeps KL > beta.
        skip_first_step (bool): never keep step 0, the empty prefix (the authors' code).

    Returns:
        [N] bool: a Series aligned with the frame's index (named ``kept``), a tensor for
        tensors, else a numpy array.

    >>> select_steps({"kl": [0.9, 0.1, 0.5], "step": [0, 1, 2]}, 0.4).tolist()
    [False, False, True]
    """
    if isinstance(steps, pd.DataFrame):
        columns = {"kl": steps["kl"].to_numpy(dtype=np.float64), "step": steps["step"].to_numpy()}
        return pd.Series(select_steps(columns, beta, kl_inclusive, skip_first_step), index=steps.index,
                         name="kept")
    kl = steps["kl"] if _is_tensor(steps["kl"]) else np.asarray(steps["kl"], dtype=np.float64)
    keep = kl >= beta if kl_inclusive else kl > beta
    if skip_first_step:
        step = steps["step"] if _is_tensor(steps["step"]) else np.asarray(steps["step"])
        keep = keep & (step != 0)
    return keep


def plausibility_mask(expert_logprobs, alpha: float):
    """The plausibility mask A = {a : pi_E(a) >= alpha * max_a pi_E(a)} over the last axis;
    never empty (the argmax is in it).

    Args:
        expert_logprobs: [..., V] the expert's log-probs: a torch tensor (the whole
            vocabulary) or an array-like, e.g. the stored top-k padded with -inf.
        alpha: in (0, 1].
    Returns:
        [..., V] bool, a tensor for a tensor, else a numpy array (float64 maths).
    """
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
    if _is_tensor(expert_logprobs):
        probs = expert_logprobs.exp()
        top = probs.amax(dim=-1, keepdim=True)
    else:
        probs = np.exp(np.asarray(expert_logprobs, dtype=np.float64))
        top = probs.max(axis=-1, keepdims=True)
    return probs >= alpha * top


def mask_is_exact(expert_topk_logprobs, alpha: float) -> np.ndarray:
    """Whether each step's plausibility mask is known exactly from its stored top-k.

    Args:
        expert_topk_logprobs: (n, k) the expert's log-probs of its top-k ids (pad with -inf).
    Returns:
        (n,) bool. A row is inexact when every stored token passed the alpha test and the
        probability mass outside the top-k could hold one more token that passes it.
    """
    lp_e = np.atleast_2d(np.asarray(expert_topk_logprobs, dtype=np.float64))
    mask = plausibility_mask(lp_e, alpha)
    p_e = np.exp(lp_e)
    valid = np.isfinite(lp_e)
    all_stored_in_mask = (mask | ~valid).all(axis=1)
    mass_outside = 1.0 - np.where(valid, p_e, 0.0).sum(axis=1)
    return ~all_stored_in_mask | (mass_outside < alpha * p_e.max(axis=1))


@dataclass
class SoftLabel:
    """The contrastive soft label v_C of one step, over its plausibility mask.

    Entries are sorted by weight, descending (the order of the records' `token_ids`).
    `exact` is False when the mask might extend past the stored top-k: every stored
    expert token passed the alpha test and the probability mass outside the top-k
    could hold another token that passes it too.
    """

    token_ids: np.ndarray
    weights: np.ndarray
    expert_probs: np.ndarray
    amateur_probs: np.ndarray
    tokens: Optional[list]
    alpha: float
    temperature: float
    exact: bool

    @property
    def mask_size(self) -> int:
        return int(len(self.token_ids))

    def to_dict(self) -> dict:
        return {
            "token_ids": [int(i) for i in self.token_ids],
            "tokens": None if self.tokens is None else list(self.tokens),
            "weights": [float(w) for w in self.weights],
            "expert_probs": [float(p) for p in self.expert_probs],
            "amateur_probs": [float(p) for p in self.amateur_probs],
            "mask_size": self.mask_size,
            "alpha": self.alpha,
            "temperature": self.temperature,
            "exact": self.exact,
        }


def soft_labels_from_arrays(expert_logprobs, amateur_logprobs, alpha: float,
                            temperature: float = 1.0):
    """Masks and soft labels for many steps at once.

    expert_logprobs: (n, k) expert log-probs of its top-k ids (pad with -inf);
    amateur_logprobs: (n, k) amateur log-probs at the same ids.
    Returns (mask (n, k) bool, weights (n, k) float64, zero outside the mask,
    exact (n,) bool, see `mask_is_exact`).
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    lp_e = np.atleast_2d(np.asarray(expert_logprobs, dtype=np.float64))
    lp_a = np.atleast_2d(np.asarray(amateur_logprobs, dtype=np.float64))
    if lp_e.shape != lp_a.shape:
        raise ValueError(f"expert and amateur log-probs differ in shape: {lp_e.shape} vs {lp_a.shape}")
    mask, exact = plausibility_mask(lp_e, alpha), mask_is_exact(lp_e, alpha)
    with np.errstate(over="ignore", invalid="ignore"):
        scores = np.where(mask, (lp_e - lp_a) / temperature, -np.inf)
        top = scores.max(axis=1, keepdims=True)
        # An amateur log-prob of -inf gives an infinite score: the limit puts all
        # mass, evenly, on those tokens.
        infinite = np.isposinf(top)
        shifted = np.where(infinite, np.where(np.isposinf(scores), 0.0, -np.inf), scores - top)
        unnormalised = np.exp(shifted)
        weights = unnormalised / unnormalised.sum(axis=1, keepdims=True)
    return mask, np.nan_to_num(weights, nan=0.0), exact


def _as_list(value):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return list(value)


def soft_label_from_stats(row: Mapping, alpha: float, temperature: float = 1.0) -> SoftLabel:
    """Rebuild one step's mask {a: pi_E(a) >= alpha max pi_E} and its soft label
    v_C = softmax over the mask of (log pi_E - log pi_A) / temperature, from the
    stored expert top-k (`expert_topk_ids`, `expert_topk_logprobs`) and the
    amateur's log-probs at those ids (`amateur_logprobs_at_expert_topk`).

    This is how views and notebooks try another alpha or temperature without a model;
    the label is exact when the mask fits inside the stored top-k (``SoftLabel.exact``).

    Args:
        row: a step-statistics DataFrame row (``lrkit.read_steps``) or a dict with the
            three fields above, each a list of one length k >= 1; ``expert_topk_tokens``,
            when present, gives the entries' text.
        alpha (float): the plausibility threshold, in (0, 1].
        temperature (float): divides the log-prob gap before the softmax; > 0.

    Returns:
        SoftLabel: the mask's ids sorted by weight, descending, their v_C weights
        (summing to 1), the expert's and amateur's probabilities, the tokens (None
        without ``expert_topk_tokens``) and ``exact``.

    Raises:
        ValueError: the three lists are empty or of different lengths, alpha is outside
            (0, 1], or temperature is not > 0.

    >>> import math
    >>> row = {"expert_topk_ids": [5, 7, 9],
    ...        "expert_topk_logprobs": [math.log(0.6), math.log(0.3), math.log(0.1)],
    ...        "amateur_logprobs_at_expert_topk": [math.log(0.8), math.log(0.1), math.log(0.1)]}
    >>> label = soft_label_from_stats(row, alpha=0.2)
    >>> label.token_ids.tolist(), label.weights.round(3).tolist(), label.exact
    ([7, 5], [0.8, 0.2], True)
    """
    ids = np.asarray(row["expert_topk_ids"], dtype=np.int64)
    lp_e = np.asarray(row["expert_topk_logprobs"], dtype=np.float64)
    lp_a = np.asarray(row["amateur_logprobs_at_expert_topk"], dtype=np.float64)
    if not (len(ids) == len(lp_e) == len(lp_a)) or len(ids) == 0:
        raise ValueError("expert_topk_ids, expert_topk_logprobs and "
                         "amateur_logprobs_at_expert_topk must be non-empty and of one length")
    order = np.argsort(-lp_e, kind="stable")  # stored descending; be sure
    ids, lp_e, lp_a = ids[order], lp_e[order], lp_a[order]
    mask, weights, exact = soft_labels_from_arrays(lp_e[None], lp_a[None], alpha, temperature)
    mask, weights = mask[0], weights[0]
    picked = np.flatnonzero(mask)
    by_weight = picked[np.argsort(-weights[picked], kind="stable")]
    tokens = _as_list(row.get("expert_topk_tokens") if hasattr(row, "get") else None)
    if tokens is not None:
        tokens = [tokens[order[i]] for i in by_weight]
    return SoftLabel(
        token_ids=ids[by_weight],
        weights=weights[by_weight],
        expert_probs=np.exp(lp_e[by_weight]),
        amateur_probs=np.exp(lp_a[by_weight]),
        tokens=tokens,
        alpha=float(alpha),
        temperature=float(temperature),
        exact=bool(exact[0]),
    )


def topk_arrays(column: Iterable[Sequence[float]], pad: float = -np.inf) -> np.ndarray:
    """Stack a list-valued column (e.g. `expert_topk_logprobs`) into an (n, k) array,
    padding shorter rows with `pad`."""
    rows = [np.asarray(r, dtype=np.float64) for r in column]
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), pad, dtype=np.float64)
    lengths = {len(r) for r in rows}
    if len(lengths) == 1 and rows:
        out[:] = np.stack(rows)
        return out
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def selection_summary(steps_df: pd.DataFrame, beta: float, kl_inclusive: bool = True,
                      skip_first_step: bool = True, alpha: Optional[float] = None) -> dict:
    """What selecting at `beta` yields, and the paper's preliminary statistics.

    records = tuned tokens: a record supervises one position (its last real token).
    share_kept is over all steps. share_agree_above_beta is the share of agreeing
    top-1 steps whose KL still passes beta (the paper's: lrkit.paper.PAPER_PRELIMINARY). With
    `alpha`, also the number of soft-label entries (mask sizes summed over kept
    steps) and how many kept steps' masks might reach past the stored top-k.

    Args:
        steps_df (pandas.DataFrame): step statistics (``lrkit.read_steps``); reads
            ``prompt_id``, ``step``, ``kl``, ``top1_agree``, and with ``alpha``
            ``expert_topk_logprobs``.
        beta (float): the KL threshold (:func:`select_steps`).
        kl_inclusive (bool): keep KL >= beta; False keeps KL > beta.
        skip_first_step (bool): never keep step 0 (share_agree_above_beta counts
            every agreeing step, step 0 included).
        alpha (float, optional): the plausibility threshold of the mask-size counts;
            None leaves them out.

    Returns:
        dict: ``beta``, ``steps``, ``problems``, ``records``, ``tuned_tokens``,
        ``share_kept``, ``problems_with_records``, ``mean_kl``, ``mean_kl_agree``,
        ``mean_kl_disagree``, ``share_agree``, ``share_agree_above_beta`` (NaN where a
        share or mean is over no steps); with ``alpha`` also ``alpha``,
        ``label_entries`` and ``inexact_masks``.

    >>> import pandas as pd
    >>> steps = pd.DataFrame({"prompt_id": ["a", "a", "a", "b", "b"], "step": [0, 1, 2, 0, 1],
    ...                       "kl": [0.9, 0.1, 0.5, 0.2, 0.7],
    ...                       "top1_agree": [False, True, True, True, False]})
    >>> summary = selection_summary(steps, beta=0.4)
    >>> summary["records"], summary["share_kept"], summary["problems_with_records"]
    (2, 0.4, 2)
    """
    kl = steps_df["kl"].to_numpy(dtype=np.float64)
    kept = select_steps({"kl": kl, "step": steps_df["step"].to_numpy()}, beta, kl_inclusive, skip_first_step)
    agree = steps_df["top1_agree"].to_numpy(dtype=bool)
    ids = steps_df["prompt_id"].to_numpy()
    n = len(kl)
    records = int(kept.sum())

    def mean(values):
        return float(values.mean()) if len(values) else float("nan")

    summary = {
        "beta": float(beta),
        "steps": int(n),
        "problems": int(len(pd.unique(ids))),
        "records": records,
        "tuned_tokens": records,
        "share_kept": records / n if n else float("nan"),
        "problems_with_records": int(len(pd.unique(ids[kept]))),
        "mean_kl": mean(kl),
        "mean_kl_agree": mean(kl[agree]),
        "mean_kl_disagree": mean(kl[~agree]),
        "share_agree": mean(agree.astype(float)),
        "share_agree_above_beta": mean(select_steps({"kl": kl[agree]}, beta, kl_inclusive,
                                                    skip_first_step=False).astype(float)),
    }
    if alpha is not None:
        stored = topk_arrays(steps_df["expert_topk_logprobs"][kept])
        mask, exact = ((plausibility_mask(stored, alpha), mask_is_exact(stored, alpha))
                       if records else (np.zeros((0, 1), bool), np.zeros(0, bool)))
        summary["alpha"] = float(alpha)
        summary["label_entries"] = int(mask.sum())
        summary["inexact_masks"] = int((~exact).sum())
    return summary


def kept_share_curve(steps_df: pd.DataFrame, betas: Optional[Sequence[float]] = None,
                     kl_inclusive: bool = True, skip_first_step: bool = True) -> pd.DataFrame:
    """Records and share of steps kept for each beta (columns beta, records, share_kept)."""
    kl = steps_df["kl"].to_numpy(dtype=np.float64)
    eligible = kl[steps_df["step"].to_numpy() != 0] if skip_first_step else kl
    if betas is None:
        top = float(np.quantile(kl, 0.99)) if len(kl) else 1.0
        betas = np.linspace(0.0, max(top, 1.0), 101)
    betas = np.asarray(betas, dtype=np.float64)
    ordered = np.sort(eligible)
    side = "left" if kl_inclusive else "right"
    records = len(ordered) - np.searchsorted(ordered, betas, side=side)
    share = records / len(kl) if len(kl) else np.full(len(betas), np.nan)
    return pd.DataFrame({"beta": betas, "records": records.astype(int), "share_kept": share})


def no_contrast(records: Sequence[dict]) -> list[dict]:
    """The ablation's target: the expert's own distribution renormalised over the
    plausibility mask, in place of v_C (the paper's "no contrast").

    Same records, same kept steps, same mask: only the target changes, so a model
    trained on them shows what the contrast with the amateur adds.

    Args:
        records: record dicts as ``lrkit.sample`` writes them (``token_ids``, ``tokens``,
            and ``expert_logprobs`` over ``token_ids``; the authors' files lack the last).

    Returns:
        list[dict]: new dicts, one per record: ``token_ids``, ``tokens`` and ``weights``
        replaced by the mask's tokens under pi_E renormalised over the mask, sorted by
        weight, descending; ``expert_logprobs`` and ``amateur_logprobs`` reordered with
        them (they keep lining up with ``token_ids``); every other field copied as it was.

    Raises:
        ValueError: a record without ``expert_logprobs`` (the authors' files), named by its
            prompt id and step.

    >>> import math
    >>> record = {"token_ids": [7, 5], "tokens": ["b", "a"], "weights": [0.8, 0.2],
    ...           "expert_logprobs": [math.log(0.3), math.log(0.6)]}
    >>> target = no_contrast([record])[0]
    >>> target["token_ids"], [round(w, 3) for w in target["weights"]]
    ([5, 7], [0.667, 0.333])
    """
    out = []
    for r in records:
        if not r.get("expert_logprobs"):
            raise ValueError(f"record {r.get('prompt_id')!r} step {r.get('step')!r}: no expert_logprobs, which "
                             f"the no-contrast target is made from (lrkit sample writes them; the authors' files "
                             f"lack them)")
        probs = [math.exp(lp) for lp in r["expert_logprobs"]]
        total = sum(probs)
        order = sorted(range(len(probs)), key=lambda i: -probs[i])
        moved = {key: [r[key][i] for i in order] for key in ("token_ids", "tokens", "expert_logprobs",
                                                               "amateur_logprobs") if r.get(key) is not None}
        out.append({**r, **moved, "weights": [probs[i] / total for i in order]})
    return out
