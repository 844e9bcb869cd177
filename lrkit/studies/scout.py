"""``lrkit scout``: rank candidate amateurs for an expert before any sampling or training.

    lrkit scout --expert toy:expert --amateur toy:amateur --amateur ladder:gf-50 \\
                --problems validation.jsonl --out runs/scout

For each amateur (and each (beta, alpha) setting asked for) it runs the two
cheap checks on problems with worked gold solutions (use validation problems,
never the test problems you will report on):

* **decoding by v_C's argmax** (:func:`lrkit.evaluate_contrastive`): the expert
  and the amateur decode together by the soft label's argmax, no training.
  Its accuracy minus the expert's greedy accuracy, in points, is the scout's
  **score**: the predicted direction and rough size of LightReasoner's gain.
* **the gold-path check** (:func:`lrkit.contrast_check`): on gold solutions, at
  the steps kept at beta, how many expert tokens v_C's argmax fixes and breaks,
  and how much mass it moves towards gold; ties in the score are broken by the
  mass gain.

and the odd-token audit (:mod:`lrkit.evaluation.audit`) of the kept gold-path steps.
Every number it prints is a **prediction** made without training; how well the
score predicted the measured gain on the toy amateur ladder is in
docs/LADDER.md (``lrkit study ladder``). It writes ``ranking.json`` (rows, best
first) and ``ranking.html`` (a plotly figure).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional, Sequence
from lrkit.config import EvalConfig
from lrkit.data.problems import load_problems
from lrkit.runs import write_text

SCORE = "cd_gain"
"""The scout's score: accuracy of decoding by v_C's argmax minus greedy accuracy (points)."""
RANKING_FILE, FIGURE_FILE = "ranking.json", "ranking.html"
LADDER_RESULTS = Path(__file__).resolve().parents[2] / "docs" / "ladder" / "study.json"
"""The committed results of ``lrkit study ladder`` (how well the score predicted there)."""


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation, ties given their average rank (Pearson on the ranks).

    The study reads it to say how well the scout's score orders the amateurs by their
    measured gain; pure Python, no SciPy.

    Args:
        x: the first values (e.g. the scout's scores), one per item.
        y: the second values (e.g. the measured gains), one per item, in the same order.

    Returns:
        float: in [-1, 1]; NaN for fewer than two items or when either side is constant.

    Raises:
        ValueError: ``x`` and ``y`` differ in length.

    >>> spearman([1, 2, 3, 4], [10, 20, 30, 40]), spearman([1, 2, 3, 4], [4, 3, 2, 1])
    (1.0, -1.0)
    >>> round(spearman([1, 2, 2, 3], [1, 3, 2, 4]), 3)
    0.949
    >>> spearman([1, 1], [2, 3])
    nan
    """
    if len(x) != len(y):
        raise ValueError(f"spearman() needs two sequences of one length, got {len(x)} and {len(y)}")
    if len(x) < 2:
        return float("nan")

    def ranks(values):
        order = sorted(range(len(values)), key=lambda i: values[i])
        out = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2 + 1
            i = j + 1
        return out

    rx, ry = ranks(list(x)), ranks(list(y))
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    vx, vy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    return cov / math.sqrt(vx * vy) if vx and vy else float("nan")


def score_pair(pair, problems, betas=(0.4,), alphas=(0.2,), eval_config=None, greedy=None,
               name: Optional[str] = None, progress: bool = False) -> list[dict]:
    """The scout's rows for one loaded pair: one per (beta, alpha)."""
    from lrkit.evaluation.audit import odd_token_audit
    from lrkit.evaluation.diagnostics import contrast_check
    from lrkit.evaluation import evaluate, evaluate_contrastive
    from lrkit.evaluation.prediction import scout_row

    eval_config = eval_config or EvalConfig()
    if greedy is None:
        greedy = evaluate(pair.expert, problems, eval_config, tokenizer=pair.tokenizer, progress=progress,
                          name="expert (greedy)")
    rows = []
    for alpha in alphas:
        decoded = evaluate_contrastive(pair, problems, eval_config, alpha=alpha, progress=progress)
        for beta in betas:
            check = contrast_check(pair, problems, beta=beta, alpha=alpha)
            audit = odd_token_audit(check)
            rows.append({**scout_row(greedy, decoded, check, audit, name or pair.amateur_name, beta, alpha),
                         "_audit": audit})
    return rows


class ScoutResult:
    """The ranking (rows best first) and each row's odd-token audit."""

    def __init__(self, rows: list[dict], out_dir: Optional[Path] = None):
        self.audits = {(r["amateur"], r["beta"], r["alpha"]): r.pop("_audit") for r in rows if "_audit" in r}
        rank = sorted(rows, key=lambda r: (-r["score"], -(r["mass_gain"] if r["mass_gain"] is not None
                                                         else -math.inf)))
        for i, row in enumerate(rank, 1):
            row["rank"] = i
        self.rows = rank
        self.out_dir = out_dir

    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows)

    def table(self) -> str:
        """The ranking as plain text."""
        lines = [f"{'rank':>4}  {'amateur':<28} {'beta':>5} {'alpha':>5} {'score*':>7} {'CD*':>6} "
                 f"{'greedy':>6} {'fix/brk (CD)*':>13} {'gold path fix/brk*':>18} {'mass gain*':>10} "
                 f"{'kept':>6} {'odd':>6}"]
        for r in self.rows:
            mass = "n/a" if r["mass_gain"] is None else f"{r['mass_gain']:+.3f}"
            odd = "n/a" if r["odd_share"] is None else f"{100 * r['odd_share']:.1f}%"
            lines.append(f"{r['rank']:>4}  {str(r['amateur'])[-28:]:<28} {r['beta']:>5g} {r['alpha']:>5g} "
                         f"{r['score']:>+7.1f} {100 * r['cd_accuracy']:>5.1f}% {100 * r['greedy_accuracy']:>5.1f}% "
                         f"{r['cd_fixed']:>6}/{r['cd_broken']:<6} {r['check_fixes']:>9}/{r['check_breaks']:<8} "
                         f"{mass:>10} {100 * r['kept_share']:>5.1f}% {odd:>6}")
        lines.append("* predictions, made without any training: score = accuracy of decoding by v_C's argmax "
                     "minus the expert's greedy accuracy (points); kept = share of gold-path steps with "
                     "KL >= beta; odd = kept gold-path steps where v_C's argmax is a token the expert ranks low "
                     "(rank >= 2 and < 0.5 x its top probability).")
        lines.append(ladder_note())
        return "\n".join(lines)

    def figure(self):
        from lrkit.viz.ladder import scout_figure

        return scout_figure(self.rows)

    def save(self, out_dir) -> Path:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text(out_dir / RANKING_FILE, json.dumps(self.rows, indent=2, default=str) + "\n")
        self.figure().write_html(out_dir / FIGURE_FILE, include_plotlyjs=True, full_html=True)
        self.out_dir = out_dir
        return out_dir

    def __str__(self) -> str:
        return self.table()

    __repr__ = __str__


def ladder_note(path: Path = LADDER_RESULTS) -> str:
    """One line: how well the score predicted the measured gain on the toy ladder."""
    try:
        study = json.loads(Path(path).read_text())
        rho = study["spearman"][SCORE]
        return (f"How well the score predicted on the toy amateur ladder ({len(study['ladder'])} amateurs, "
                f"gain over {study['config']['seeds']} seeds on test problems): Spearman {rho:.2f} "
                f"(target >= 0.8; docs/LADDER.md).")
    except (OSError, KeyError, ValueError, TypeError):
        return "How well the score predicts the gain: see docs/LADDER.md (lrkit study ladder)."


def scout(expert: str, amateurs: Sequence[str], problems, out_dir=None, betas: Sequence[float] = (0.4,),
          alphas: Sequence[float] = (0.2,), max_problems: Optional[int] = None, eval_config=None,
          device=None, dtype=None, progress: bool = False) -> ScoutResult:
    """Rank ``amateurs`` for ``expert`` (model names as elsewhere in lrkit:
    folders, Hub names, ``toy:amateur``, ``ladder:gf-20``) on ``problems`` with
    worked gold answers (a JSONL path or dicts). Nothing is trained or sampled.
    With ``out_dir``, writes ranking.json and ranking.html there.

    Per amateur (the expert is loaded again with each) and per (beta, alpha): decoding by
    v_C's argmax against the expert's greedy decoding (the score, in points), the
    gold-path check (under the authors' system prompt, whatever ``eval_config`` says) and
    the odd-token audit of its kept steps.

    Args:
        expert (str): the expert's name or folder.
        amateurs: the candidate amateurs' names or folders, at least one.
        problems: a JSONL path, a benchmark name or a list of dicts with worked
            ``answer``s; problems without one are dropped. Use validation problems.
        out_dir: a folder for ranking.json and ranking.html, or None to write nothing.
        betas: the selection thresholds to try (>= 0), for the gold-path check.
        alphas: the plausibility thresholds to try, in (0, 1].
        max_problems (int, optional): the first N problems only.
        eval_config (EvalConfig, optional): the decoding evaluations' settings (default
            ``EvalConfig()``).
        device: where the models load (default: CUDA when available).
        dtype: their dtype (default: auto).
        progress (bool): progress bars.

    Returns:
        ScoutResult: ``rows``, one dict per (amateur, beta, alpha), best first (by score,
        ties by gold-mass gain) with its ``rank``; ``audits``; ``table()``, ``frame()``,
        ``figure()``, ``save(out_dir)``.

    Raises:
        ValueError: no amateur, beta or alpha, a beta below 0 or an alpha outside (0, 1],
            or no problem with a gold answer.
        lrkit.models.loading.PairError: an amateur that does not share the expert's
            tokenizer.
    """
    from lrkit.config import EvalConfig
    from lrkit.evaluation import evaluate
    from lrkit.models.loading import load_pair

    if not amateurs:
        raise ValueError("scout() needs at least one --amateur")
    for name, values in (("beta", betas), ("alpha", alphas)):
        if not values:
            raise ValueError(f"scout() needs at least one --{name}")
    for alpha in alphas:
        if not 0 < alpha <= 1:
            raise ValueError(f"--alpha must be in (0, 1], got {alpha!r}")
    for beta in betas:
        if beta < 0:
            raise ValueError(f"--beta must be >= 0, got {beta!r}")
    loaded = load_problems(problems, max_problems=max_problems, require_answers=True)
    loaded = [p for p in loaded if p.answer]
    if not loaded:
        raise ValueError(f"{problems if isinstance(problems, (str, Path)) else 'problems'}: no problems with "
                         f"gold answers (field answer)")
    eval_config = (eval_config or EvalConfig()).validate()
    rows, greedy = [], None
    for amateur in amateurs:
        pair = load_pair(expert, amateur, device=device, dtype=dtype)
        if greedy is None:
            greedy = evaluate(pair.expert, loaded, eval_config, tokenizer=pair.tokenizer, progress=progress,
                              name="expert (greedy)")
        rows += score_pair(pair, loaded, betas, alphas, eval_config, greedy, name=amateur, progress=progress)
    result = ScoutResult(rows)
    if out_dir is not None:
        result.save(out_dir)
    return result
