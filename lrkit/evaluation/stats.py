"""Statistics of evaluations: Wilson intervals, the exact McNemar test, and
``compare`` (two results on the same problems: fixed, broken, p-value)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from statistics import NormalDist

import pandas as pd

def accuracy_interval(correct: int, total: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for an accuracy of ``correct`` out of ``total``.

    Wilson, not the normal (Wald) interval, because it stays inside [0, 1] and
    keeps near-nominal coverage at small n and at accuracies near 0 or 1, where
    Wald collapses to a zero-width interval.
    """
    if not isinstance(total, int) or total < 1:
        raise ValueError(f"total must be a positive integer, got {total!r}")
    if not 0 <= correct <= total:
        raise ValueError(f"correct must be between 0 and total={total}, got {correct!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = correct / total
    denominator = 1 + z * z / total
    center = (p + z * z / (2 * total)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    low = 0.0 if correct == 0 else max(0.0, center - half)
    high = 1.0 if correct == total else min(1.0, center + half)
    return low, high


def mcnemar_p_value(fixed: int, broken: int) -> float:
    """Exact two-sided McNemar test: binomial(fixed + broken, 1/2) on the discordant pairs."""
    n = fixed + broken
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(fixed, broken) + 1))
    return min(1.0, float(Fraction(2 * tail, 2 ** n)))


@dataclass
class Comparison:
    """Two models on the same problems: accuracies, the problems fixed and broken, McNemar."""

    name_a: str
    name_b: str
    accuracy_a: float
    accuracy_b: float
    interval_a: tuple
    interval_b: tuple
    fixed: pd.DataFrame
    """Problems wrong in a and right in b."""
    broken: pd.DataFrame
    """Problems right in a and wrong in b."""
    both_right: int
    both_wrong: int
    p_value: float
    """Exact McNemar test on the discordant pairs (len(fixed) vs len(broken))."""

    @property
    def n(self) -> int:
        return len(self.fixed) + len(self.broken) + self.both_right + self.both_wrong

    def summary(self) -> dict:
        return {"a": self.name_a, "b": self.name_b, "n_problems": self.n,
                "accuracy_a": self.accuracy_a, "interval_a": list(self.interval_a),
                "accuracy_b": self.accuracy_b, "interval_b": list(self.interval_b),
                "difference": self.accuracy_b - self.accuracy_a,
                "n_fixed": len(self.fixed), "n_broken": len(self.broken),
                "both_right": self.both_right, "both_wrong": self.both_wrong,
                "mcnemar_p_value": self.p_value}

    def __str__(self) -> str:
        return (f"{self.name_a} {self.accuracy_a:.1%} -> {self.name_b} {self.accuracy_b:.1%} "
                f"on {self.n} problems: {len(self.fixed)} fixed, {len(self.broken)} broken "
                f"(exact McNemar p = {self.p_value:.3g})")

    def __repr__(self) -> str:
        return f"Comparison({self})"

    def show(self) -> None:
        print(self)
        (lo_a, hi_a), (lo_b, hi_b) = self.interval_a, self.interval_b
        print(f"  95% CI {self.name_a}: {lo_a:.1%}-{hi_a:.1%}; {self.name_b}: {lo_b:.1%}-{hi_b:.1%}")


def compare(result_a, result_b) -> Comparison:
    """Compare two ``EvalResult``s on the same problems (matched by id).

    Accuracies alone hide how many problems changed: a tuned model may fix ten and
    break eight. The exact McNemar test reads only those discordant problems.

    Args:
        result_a: the reference (e.g. the base expert), an :class:`EvalResult`.
        result_b: the other (e.g. the tuned expert), on the same problem ids with the
            same gold answers, in any order.

    Returns:
        Comparison: both names, accuracies and 95% Wilson intervals, the problems
        ``fixed`` (wrong in a, right in b) and ``broken`` (right in a, wrong in b) as
        DataFrames (id, question, gold, both predictions and outputs), the counts right
        and wrong in both, and the exact two-sided McNemar p-value.

    Raises:
        ValueError: a result repeats problem ids, the two hold different ids or no
            problems, or they give a problem different gold answers.

    >>> from lrkit.evaluation.results import EvalResult, results_frame
    >>> def result(name, correct):
    ...     rows = [{"id": str(i), "question": "q", "gold": "1", "output": "", "prediction": str(int(c)),
    ...              "correct": c, "n_tokens": 1, "finished": True} for i, c in enumerate(correct)]
    ...     return EvalResult(results_frame(rows), {"name": name})
    >>> comparison = compare(result("base", [True, False, False, True]),
    ...                      result("tuned", [True, True, True, False]))
    >>> print(comparison)
    base 50.0% -> tuned 75.0% on 4 problems: 2 fixed, 1 broken (exact McNemar p = 1)
    >>> comparison.fixed["id"].tolist(), comparison.broken["id"].tolist()
    (['1', '2'], ['3'])
    """
    a, b = result_a.df, result_b.df
    for label, df in (("a", a), ("b", b)):
        if df["id"].duplicated().any():
            raise ValueError(f"result {label} repeats problem ids: {df['id'][df['id'].duplicated()].tolist()[:5]}")
    ids_a, ids_b = set(a["id"]), set(b["id"])
    if ids_a != ids_b:
        only_a, only_b = sorted(map(str, ids_a - ids_b)), sorted(map(str, ids_b - ids_a))
        raise ValueError(f"the two results are not on the same problems: {len(only_a)} only in a "
                         f"(first {only_a[:5]}), {len(only_b)} only in b (first {only_b[:5]})")
    if not ids_a:
        raise ValueError("the results hold no problems")
    merged = a.merge(b, on="id", suffixes=("_a", "_b"), sort=False)
    differ = merged["gold_a"].astype(str) != merged["gold_b"].astype(str)
    if differ.any():
        raise ValueError(f"the two results give different gold answers for {int(differ.sum())} "
                         f"problem(s), first id {merged['id'][differ].iloc[0]!r}")
    right_a, right_b = merged["correct_a"].astype(bool), merged["correct_b"].astype(bool)
    columns = ["id", "question_a", "gold_a", "prediction_a", "prediction_b", "output_a", "output_b"]
    rename = {"question_a": "question", "gold_a": "gold"}

    def pick(mask):
        return merged.loc[mask, columns].rename(columns=rename).reset_index(drop=True)

    fixed, broken = pick(~right_a & right_b), pick(right_a & ~right_b)
    return Comparison(
        name_a=result_a.name, name_b=result_b.name,
        accuracy_a=result_a.accuracy, accuracy_b=result_b.accuracy,
        interval_a=result_a.interval, interval_b=result_b.interval,
        fixed=fixed, broken=broken,
        both_right=int((right_a & right_b).sum()), both_wrong=int((~right_a & ~right_b).sum()),
        p_value=mcnemar_p_value(len(fixed), len(broken)),
    )
