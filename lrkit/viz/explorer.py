"""The critical-moment explorer (ipywidgets).

Choose a problem, move beta and alpha, pick a step: the explorer shows which
steps are kept (as a token view), how many records and tuned tokens the whole
set would give, and the chosen step's distributions and soft label. Everything
is recomputed from the stored step statistics, never by a model: the per-step
arrays are built once, and a slider change is a few vectorised numpy passes
plus rendering one rollout.

`Explorer.state` is what it currently reports (tests and scripts read it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd

from lrkit.maths.selection import (SoftLabel, mask_is_exact, plausibility_mask, select_steps,
                                   soft_label_from_stats, topk_arrays)
from lrkit.viz.markup import esc, visible
from lrkit.viz.figures import AMATEUR, EXPERT, SOFT
from lrkit.viz.tokens import SCORES, ColourScale, Panel, TokenView, rollout_cells, score_values

__all__ = ["Explorer", "ExplorerState"]


@dataclass(frozen=True)
class ExplorerState:
    """What the explorer shows now."""

    prompt_id: str
    beta: float
    alpha: float
    temperature: float
    kept_steps: tuple          # kept steps of the chosen problem
    problem_steps: int
    records: int               # over all problems; one record per kept step
    tuned_tokens: int          # = records: each record supervises one position
    share_kept: float
    problems_with_records: int
    label_entries: int         # soft-label entries (mask sizes) summed over records
    inexact_masks: int         # kept steps whose mask may reach past the stored top-k
    step: int
    step_kept: bool
    soft_label: SoftLabel


def _widgets():
    try:
        import ipywidgets
    except ImportError as err:  # an optional dependency: the notebooks extra
        raise ImportError("the explorer needs ipywidgets: pip install 'lrkit[notebooks]'") from err
    return ipywidgets


class Explorer:
    """Interactive view of selection over stored step statistics.

    Controls (ipywidgets, also driven from code): `problem`, `beta`, `alpha`,
    `step`, `score`. Display the explorer as a notebook cell's last expression
    or with `explorer.show()`.

    No model runs: every count, mask and soft label is recomputed from the stored
    step statistics; :attr:`state` (an :class:`ExplorerState`) is what it shows now.

    Args:
        steps (pandas.DataFrame): step statistics (``lrkit.read_steps``) of one or more
            problems.
        beta (float): the KL slider's first value.
        alpha (float): the mask slider's first value (the slider runs from 0.01 to 1).
        temperature (float): the soft labels' temperature (fixed; no control).
        kl_inclusive (bool): keep KL >= beta (False: > beta).
        skip_first_step (bool): never keep step 0.
        prompt_id: the problem shown first; None: the first in the frame.
        score (str): what colours the tokens first: "kl", "expert_entropy",
            "amateur_entropy", "logprob_gap" or "kept".
        beta_max (float, optional): the KL slider's top; default the larger of 1, the 99th
            percentile of KL (rounded) and ``beta``.

    Raises:
        ValueError: ``steps`` is empty, or holds no step of ``prompt_id``.
        ImportError: ipywidgets is not installed (``pip install 'lrkit[notebooks]'``).
    """

    def __init__(self, steps: pd.DataFrame, *, beta: float = 0.4, alpha: float = 0.2,
                 temperature: float = 1.0, kl_inclusive: bool = True,
                 skip_first_step: bool = True, prompt_id=None, score: str = "kl",
                 beta_max: Optional[float] = None):
        if steps.empty:
            raise ValueError("no step statistics to explore")
        w = _widgets()
        self.temperature = temperature
        self.kl_inclusive = kl_inclusive
        self.skip_first_step = skip_first_step
        self._steps = steps.sort_values(["prompt_id", "step"], kind="stable").reset_index(drop=True)
        codes, self._ids = pd.factorize(self._steps["prompt_id"], sort=False)
        self._codes = codes
        bounds = np.flatnonzero(np.diff(codes)) + 1
        self._starts = np.concatenate([[0], bounds])
        self._ends = np.concatenate([bounds, [len(codes)]])
        self._index = {str(p): i for i, p in enumerate(self._ids)}
        self._kl = self._steps["kl"].to_numpy(dtype=np.float64)
        self._step = self._steps["step"].to_numpy()
        self._expert_lp = topk_arrays(self._steps["expert_topk_logprobs"])
        self._scales: dict = {}
        self._kept = np.zeros(len(self._kl), bool)
        self._totals_key = None
        self._totals_cache = (0, 0, 0, 0)
        self._state: Optional[ExplorerState] = None
        self._quiet = False

        top = beta_max or max(1.0, round(float(np.quantile(self._kl, 0.99)), 1), beta)
        first = str(self._ids[0]) if prompt_id is None else str(prompt_id)
        if first not in self._index:
            raise ValueError(f"no steps for prompt_id {prompt_id!r}")
        self.problem = w.Dropdown(options=[str(i) for i in self._ids], value=first,
                                  description="problem")
        self.beta = w.FloatSlider(value=beta, min=0.0, max=top, step=0.01, readout_format=".2f",
                                  description="\u03b2 (KL)", continuous_update=False)
        self.alpha = w.FloatSlider(value=alpha, min=0.01, max=1.0, step=0.01, readout_format=".2f",
                                   description="\u03b1 (mask)", continuous_update=False)
        self.step = w.IntSlider(value=0, min=0, max=0, description="step",
                                continuous_update=False)
        self.score = w.Dropdown(options=[(v, k) for k, v in SCORES.items()], value=score,
                                description="colour")
        self.counts = w.HTML()
        self.tokens = w.HTML()
        self.detail = w.HTML()
        layout = w.Layout(width="100%")
        self.widget = w.VBox([
            w.HBox([self.problem, self.score]),
            w.HBox([self.beta, self.alpha]),
            self.counts, self.tokens, self.step, self.detail], layout=layout)

        self.problem.observe(lambda _: self._on_problem(), names="value")
        self.beta.observe(lambda _: self._refresh(), names="value")
        self.alpha.observe(lambda _: self._refresh(), names="value")
        self.score.observe(lambda _: self._refresh(), names="value")
        self.step.observe(lambda _: self._refresh(tokens=False), names="value")
        self._on_problem()

    # ------------------------------------------------------------ compute
    def _rows(self) -> slice:
        i = self._index[self.problem.value]
        return slice(int(self._starts[i]), int(self._ends[i]))

    def _scale(self, score: str, beta: float) -> ColourScale:
        if score not in self._scales:
            values = score_values(self._steps, score, self._kept) if score != "kept" else np.array([0.0, 1.0])
            self._scales[score] = ColourScale.for_values(score, values)
        scale = self._scales[score]
        if score != "kl":
            return scale
        # the KL legend marks the slider's beta; the range stays the data's (no recomputation per move)
        return ColourScale.for_values(score, np.array([scale.vmin, scale.vmax]), scale.vmin, scale.vmax, beta=beta)

    def _on_problem(self) -> None:
        rows = self._rows()
        kl = self._kl[rows]
        kept = select_steps({"kl": kl, "step": self._step[rows]}, self.beta.value, self.kl_inclusive,
                            self.skip_first_step)
        focus = int(np.argmax(np.where(kept, kl, -np.inf))) if kept.any() else int(np.argmax(kl))
        self._quiet = True
        try:
            self.step.max = max(int(rows.stop - rows.start) - 1, 0)
            self.step.value = int(self._step[rows][focus])
        finally:
            self._quiet = False
        self._refresh()

    def _totals(self, beta: float, alpha: float) -> tuple:
        """Counts over all problems; a step or problem change reuses them."""
        if self._totals_key != (beta, alpha):
            self._kept = select_steps({"kl": self._kl, "step": self._step}, beta, self.kl_inclusive,
                                      self.skip_first_step)
            with_records = np.count_nonzero(np.bincount(self._codes[self._kept],
                                                        minlength=len(self._ids)))
            stored = self._expert_lp[self._kept]
            mask, exact = (plausibility_mask(stored, alpha), mask_is_exact(stored, alpha)) \
                if self._kept.any() else (np.zeros((0, 1), bool), np.zeros(0, bool))
            self._totals_cache = (int(self._kept.sum()), int(with_records), int(mask.sum()),
                                  int((~exact).sum()))
            self._totals_key = (beta, alpha)
        return self._totals_cache

    def _refresh(self, tokens: bool = True) -> None:
        if self._quiet:
            return
        beta, alpha = float(self.beta.value), float(self.alpha.value)
        records, with_records, entries, inexact = self._totals(beta, alpha)
        rows = self._rows()
        problem = self._steps.iloc[rows]
        kept_here = self._kept[rows]
        steps_here = self._step[rows]
        position = int(np.searchsorted(steps_here, self.step.value))
        position = min(position, len(steps_here) - 1)
        label = soft_label_from_stats(problem.iloc[position], alpha, self.temperature)
        self._state = ExplorerState(
            prompt_id=self.problem.value, beta=beta, alpha=alpha, temperature=self.temperature,
            kept_steps=tuple(int(s) for s in steps_here[kept_here]),
            problem_steps=len(steps_here), records=records, tuned_tokens=records,
            share_kept=records / len(self._kl), problems_with_records=with_records,
            label_entries=entries, inexact_masks=inexact,
            step=int(steps_here[position]), step_kept=bool(kept_here[position]),
            soft_label=label)
        # ------------------------------------------------------------ render
        self.counts.value = self._counts_html(self._state)
        if tokens:
            cells = rollout_cells(problem, self.score.value, kept_here, alpha, self.temperature)
            question = self._steps.attrs.get("questions", {}).get(str(self.problem.value))
            view = TokenView([Panel(str(self.problem.value), str(self.problem.value), cells, alpha, question)],
                             self._scale(self.score.value, beta))
            self.tokens.value = view.html
        self.detail.value = self._detail_html(self._state, problem.iloc[position])

    @property
    def state(self) -> ExplorerState:
        """What the explorer reports for the current control values."""
        return self._state

    # ------------------------------------------------------------ render
    @staticmethod
    def _counts_html(s: ExplorerState) -> str:
        kept = ", ".join(map(str, s.kept_steps[:40])) + (" \u2026" if len(s.kept_steps) > 40 else "")
        inexact = (f", {s.inexact_masks:,} may reach past the stored top-k"
                   if s.inexact_masks else "")
        return (
            f"<div style='line-height:1.6;font-family:system-ui,sans-serif;font-size:13px'>"
            f"<b>{esc(s.prompt_id)}</b>: {len(s.kept_steps)} of "
            f"{s.problem_steps} steps kept (steps {esc(kept) or 'none'})<br>"
            f"All problems at \u03b2 = {s.beta:.2f}: <b>{s.records:,} records</b> = "
            f"<b>{s.tuned_tokens:,} tuned tokens</b> ({100 * s.share_kept:.1f}% of steps), "
            f"{s.problems_with_records:,} problems with a record; soft-label entries at "
            f"\u03b1 = {s.alpha:.2f}: {s.label_entries:,}{inexact}</div>")

    @staticmethod
    def _detail_html(s: ExplorerState, row) -> str:
        label = s.soft_label
        names = label.tokens if label.tokens is not None else [str(i) for i in label.token_ids]

        def bar(value, colour):
            return (f"<td style='width:150px'><div style='background:{colour};height:10px;"
                    f"width:{100 * value:.1f}%'></div></td><td style='text-align:right'>"
                    f"{value:.3f}</td>")

        rows = "".join(
            f"<tr data-id='{int(i)}'><td><code>{esc(visible(t, spaces=True))}</code></td>"
            f"{bar(pe, EXPERT)}{bar(pa, AMATEUR)}{bar(wc, SOFT)}</tr>"
            for i, t, pe, pa, wc in zip(label.token_ids, names, label.expert_probs,
                                        label.amateur_probs, label.weights))
        status = "kept" if s.step_kept else "not kept"
        note = "" if label.exact else \
            " <span style='color:#a33'>(the mask may extend past the stored top-k)</span>"
        return (
            "<div style='font-family:system-ui,sans-serif;font-size:13px'>"
            f"<div><b>step {s.step}</b> <code>{esc(visible(str(row['token']), spaces=True))}</code>"
            f" \u00b7 KL {float(row['kl']):.3f} \u00b7 {status} \u00b7 {label.mask_size} plausible "
            f"tokens at \u03b1 = {s.alpha:.2f}{note}</div>"
            "<table style='border-collapse:collapse'><tr><th>token</th>"
            "<th colspan=2>expert \u03c0E</th><th colspan=2>amateur \u03c0A</th>"
            f"<th colspan=2>soft label v_C</th></tr>{rows}</table></div>")

    def _repr_mimebundle_(self, **kwargs):
        own = getattr(self.widget, "_repr_mimebundle_", None)
        if own is not None:  # ipywidgets 8
            return own(**kwargs)
        # ipywidgets 7 (Colab's 7.7) displays a widget through _ipython_display_ only; this is
        # the bundle it sends, so the explorer shows as a cell's last expression in both.
        return {"text/plain": repr(self.widget),
                "application/vnd.jupyter.widget-view+json": {
                    "version_major": 2, "version_minor": 0, "model_id": self.widget.model_id}}

    def show(self) -> None:
        from IPython.display import display
        display(self.widget)

    def __repr__(self) -> str:
        s = self._state
        return (f"<Explorer {len(self._ids)} problems; {s.prompt_id}: kept steps {list(s.kept_steps)};"
                f" {s.records} records at beta={s.beta:.2f}>")
