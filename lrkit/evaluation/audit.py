"""The odd-token audit: does the contrast reward tokens the expert itself finds unlikely?

The soft label v_C = softmax(log pi_E - log pi_A) over the alpha mask favours
what the expert prefers *more than the amateur does*. The worry: it may reward
a token the expert barely considers, only because the amateur finds it even less
likely. The audit counts, over kept steps, how often
v_C's argmax is a token the expert ranks low:

    **odd** = v_C's argmax is not the expert's own top token (expert rank >= 2)
    *and* the expert gives it less than ``ratio`` (default 0.5) of the
    probability of its top token.

Inside the alpha mask every candidate has at least ``alpha`` x the expert's top
probability, so with the paper's alpha 0.2 an odd token lies between 0.2 and
0.5 of the top one; a smaller alpha lets odder tokens in.

    audit = lrkit.odd_token_audit("runs/demo/sampling/records.jsonl")   # kept records of any pair
    audit = lrkit.odd_token_audit(lrkit.contrast_check(pair, problems))  # kept steps on gold paths
    print(audit); audit.top_tokens; audit.examples
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Optional
from lrkit.evaluation.diagnostics import ContrastCheck

ODD_RATIO = 0.5
"""An odd token has less than this share of the expert's top probability (and is not its top token)."""


@dataclass
class OddTokenAudit:
    """What the audit found over ``n`` kept steps."""

    n: int
    n_odd: int
    n_not_top: int
    """Steps where v_C's argmax is not the expert's own top token (odd or not)."""
    ratio: float
    top_tokens: list
    """[(token, count)] of the odd tokens, most frequent first."""
    examples: "object"
    """pandas DataFrame: a few odd steps (prefix, the expert's token and v_C's, their probabilities)."""
    n_odd_gold: Optional[int] = None
    """On gold paths: odd tokens that are the gold token (the contrast was right to pick them)."""
    source: str = "records"
    settings: dict = field(default_factory=dict)

    @property
    def share(self) -> float:
        return self.n_odd / self.n if self.n else float("nan")

    def summary(self) -> dict:
        return {"source": self.source, "kept_steps": self.n, "odd": self.n_odd, "share_odd": self.share,
                "not_expert_top": self.n_not_top, "ratio": self.ratio,
                "top_tokens": [[t, c] for t, c in self.top_tokens],
                **({"odd_that_are_gold": self.n_odd_gold} if self.n_odd_gold is not None else {}),
                **self.settings}

    def __str__(self) -> str:
        tokens = ", ".join(f"{t!r} x{c}" for t, c in self.top_tokens[:8]) or "none"
        gold = (f"; {self.n_odd_gold} of them are the gold token" if self.n_odd_gold is not None else "")
        share = f"{self.share:.1%}" if self.n else "n/a"
        return (f"odd-token audit ({self.source}): of {self.n:,} kept steps, v_C's argmax is not the expert's "
                f"top token at {self.n_not_top:,}, and is a token the expert ranks low (rank >= 2, < "
                f"{self.ratio:g} x its top probability) at {self.n_odd:,} ({share}){gold}; most frequent: {tokens}")

    __repr__ = __str__


def _tail(text: Optional[str], width: int = 60) -> str:
    text = (text or "").replace("\n", " / ")
    return text if len(text) <= width else "..." + text[-width:]


def odd_token_audit(source, ratio: float = ODD_RATIO, top: int = 10, n_examples: int = 5) -> OddTokenAudit:
    """Audit kept records (a records.jsonl path, a sampling folder, a list of
    record dicts) or the kept steps of a :class:`lrkit.evaluation.diagnostics.ContrastCheck`.

    A step is **odd** when v_C's argmax is not the expert's top token and the expert gives
    it less than ``ratio`` of its top token's probability. On records the expert's ranks
    come from ``expert_logprobs`` over the mask; on gold paths also how many odd tokens
    are the gold token.

    Args:
        source: a records.jsonl path, a sampling run's folder (its records.jsonl), a list of
            record dicts (with ``expert_logprobs``, as ``lrkit.sample`` writes them), or a
            :class:`ContrastCheck`.
        ratio (float): the share of the expert's top probability below which a token is
            odd, in (0, 1].
        top (int): how many of the most frequent odd tokens to list.
        n_examples (int): how many odd steps to show in ``examples``.

    Returns:
        OddTokenAudit: the kept steps ``n``, the odd ones ``n_odd`` (``share``), the steps
        where v_C's argmax is not the expert's top ``n_not_top``, ``top_tokens``
        ([(token, count)]), ``examples`` (a DataFrame), ``n_odd_gold`` on gold paths (else
        None), and the source's beta and alpha in ``settings``.

    Raises:
        ValueError: ``ratio`` outside (0, 1], or records without ``expert_logprobs`` (the
            authors' files).
        lrkit.data.records.RecordError: a bad or empty records file.
    """
    import pandas as pd

    if not 0 < ratio <= 1:
        raise ValueError(f"ratio must be in (0, 1], got {ratio!r}")
    rows = []
    if isinstance(source, ContrastCheck):
        kept = source.kept
        for r in kept.itertuples():
            rank, share = int(r.label_expert_rank), float(r.label_expert_ratio)
            rows.append({"prefix": _tail(r.prefix), "expert token": None, "v_C token": r.label,
                         "expert rank of v_C's token": rank, "its share of the expert's top": share,
                         "gold": r.gold, "odd": rank >= 2 and share < ratio,
                         "is_gold": int(r.label_argmax) == int(r.gold_id),
                         "not_top": int(r.label_argmax) != int(r.expert_argmax)})
        kind, settings = "gold paths", {"beta": source.beta, "alpha": source.alpha}
    else:
        from pathlib import Path

        from lrkit.data.records import read_records

        if isinstance(source, (str, Path)) and Path(source).is_dir():
            source = Path(source) / "records.jsonl"
        records = read_records(source) if isinstance(source, (str, Path)) else list(source)
        for r in records:
            weights, logps = r["weights"], r.get("expert_logprobs")
            if not logps:
                raise ValueError("odd_token_audit() needs records with expert_logprobs (lrkit sample writes them)")
            i = max(range(len(weights)), key=weights.__getitem__)
            top_lp = max(logps)
            rank = 1 + sum(lp > logps[i] for lp in logps)
            share = math.exp(logps[i] - top_lp)
            expert_i = max(range(len(logps)), key=logps.__getitem__)
            rows.append({"prefix": _tail(r.get("prefix")), "expert token": r["tokens"][expert_i],
                         "v_C token": r["tokens"][i], "expert rank of v_C's token": rank,
                         "its share of the expert's top": share, "gold": None,
                         "odd": rank >= 2 and share < ratio, "is_gold": None, "not_top": rank >= 2})
        kind = "kept records"
        settings = {key: records[0][key] for key in ("beta", "alpha") if records and key in records[0]}
    frame = pd.DataFrame(rows, columns=["prefix", "expert token", "v_C token", "expert rank of v_C's token",
                                        "its share of the expert's top", "gold", "odd", "is_gold", "not_top"])
    odd = frame[frame["odd"].astype(bool)] if len(frame) else frame
    counts = Counter(odd["v_C token"]).most_common(top)
    shown = [c for c in ("prefix", "expert token", "v_C token", "expert rank of v_C's token",
                         "its share of the expert's top", "gold")
             if not frame[c].isna().all()] if len(frame) else []
    return OddTokenAudit(
        n=len(frame), n_odd=len(odd), n_not_top=int(frame["not_top"].astype(bool).sum()) if len(frame) else 0,
        ratio=ratio, top_tokens=counts, examples=odd[shown].head(n_examples).reset_index(drop=True),
        n_odd_gold=int(odd["is_gold"].astype(bool).sum()) if kind == "gold paths" else None,
        source=kind, settings=settings)
