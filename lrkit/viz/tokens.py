"""The token view: a rollout as text, each token coloured by a score.

Plain HTML and CSS, no JavaScript: colours are inline styles, tooltips open on
CSS `:hover`. Hovering a token shows both models' top-5 with probabilities and,
for kept steps, the contrastive soft label recomputed from the stored top-k.
A notebook displays the object; a terminal prints a readable text version.

Compute (`score_values`, `rollout_cells`), then data (`TokenCell`, `Panel`,
`ColourScale`), then render (`TokenView.html`, `str(view)`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from lrkit.maths.selection import select_steps, soft_labels_from_arrays, topk_arrays
from lrkit.viz.markup import document, esc, in_notebook, is_special, visible, write

__all__ = ["TokenView", "token_view", "side_by_side", "ColourScale", "TokenCell", "Panel",
           "SCORES", "score_values", "rollout_cells"]

SCORES = {
    "kl": "KL(\u03c0E \u2016 \u03c0A), nats",
    "expert_entropy": "expert entropy, nats",
    "amateur_entropy": "amateur entropy, nats",
    "logprob_gap": "log \u03c0E(token) \u2212 log \u03c0A(token)",
    "kept": "kept (KL \u2265 \u03b2)",
}

_WHITE = (255, 255, 255)
_SEQUENTIAL = [_WHITE, (253, 174, 97), (215, 25, 28)]      # every channel falls
_NEGATIVE = (44, 123, 182)
# A KL scale with a known beta has two hue families that share no colour: unkept
# steps run white -> pale blue up to beta, kept steps orange -> dark red from beta.
_UNKEPT = [_WHITE, (171, 205, 228)]
_KEPT = [(253, 174, 97), (215, 25, 28), (128, 0, 38)]     # every channel falls


# ---------------------------------------------------------------- compute

def score_values(steps: pd.DataFrame, score: str, kept: Optional[np.ndarray] = None) -> np.ndarray:
    """The per-step value a token view colours by."""
    if score == "logprob_gap":
        return (steps["expert_logprob"].to_numpy(dtype=float)
                - steps["amateur_logprob"].to_numpy(dtype=float))
    if score == "kept":
        return (steps["kept"].to_numpy(dtype=bool) if kept is None else kept).astype(float)
    if score not in steps.columns:
        raise ValueError(f"unknown score {score!r}: use one of {', '.join(SCORES)} "
                         "or a numeric column of the step statistics")
    return steps[score].to_numpy(dtype=float)


@dataclass
class ColourScale:
    """Maps a score to a background colour; sequential (white to red), diverging
    (blue, white at 0, red), boolean, or split: KL with a known beta, where unkept
    steps take one hue family (white to pale blue, vmin to beta) and kept steps
    another (orange to dark red, beta to vmax), so the two never share a colour."""

    score: str
    label: str
    vmin: float
    vmax: float
    kind: str = "sequential"  # "sequential" | "diverging" | "boolean" | "split"
    beta: Optional[float] = None

    @classmethod
    def for_values(cls, score: str, values: np.ndarray, vmin=None, vmax=None,
                   beta: Optional[float] = None) -> "ColourScale":
        label = SCORES.get(score, score)
        finite = values[np.isfinite(values)]
        if score == "kept":
            return cls(score, label, 0.0, 1.0, "boolean")
        if score == "logprob_gap":
            bound = vmax if vmax is not None else (float(np.abs(finite).max()) if len(finite) else 1.0)
            bound = bound or 1.0
            return cls(score, label, -bound, bound, "diverging")
        low = vmin if vmin is not None else (min(0.0, float(finite.min())) if len(finite) else 0.0)
        if vmax is None:
            # KL is heavy-tailed: clip at the 95th percentile so moderate steps show.
            vmax = (float(np.quantile(finite, 0.95)) if score == "kl" else float(finite.max())) \
                if len(finite) else 1.0
        if score == "kl" and beta is not None:
            beta = max(float(beta), float(low))
            if not vmax > beta:  # the scale must reach past beta, or kept steps would all be its top
                vmax = 2 * beta if beta > 0 else low + 1.0
            return cls(score, label, float(low), float(vmax), "split", beta)
        if not vmax > low:
            vmax = low + 1.0
        return cls(score, label, float(low), float(vmax), "sequential")

    def fraction(self, value: float) -> float:
        """Position of `value` on the scale, in [0, 1] ([-1, 1] when diverging)."""
        if not np.isfinite(value):
            return 0.0
        if self.kind == "diverging":
            return float(np.clip(value / self.vmax, -1.0, 1.0))
        return float(np.clip((value - self.vmin) / (self.vmax - self.vmin), 0.0, 1.0))

    def rgb(self, value: float, kept: Optional[bool] = None) -> tuple:
        """The colour of `value`; on a split scale `kept` picks the family
        (default: whether `value` reaches beta)."""
        if self.kind == "split":
            return self._split_rgb(value, (value >= self.beta) if kept is None else kept)
        t = self.fraction(value)
        if self.kind == "diverging" and t < 0:
            return _mix(_WHITE, _NEGATIVE, -t)
        if self.kind == "diverging":
            return _mix(_WHITE, _SEQUENTIAL[-1], t)
        if self.kind == "boolean":
            return _SEQUENTIAL[-1] if t >= 0.5 else _WHITE
        return _ramp(_SEQUENTIAL, t)

    def _split_rgb(self, value: float, kept: bool) -> tuple:
        value = value if np.isfinite(value) else self.vmin
        if kept:
            return _ramp(_KEPT, float(np.clip((value - self.beta) / (self.vmax - self.beta), 0.0, 1.0)))
        span = self.beta - self.vmin
        return _ramp(_UNKEPT, float(np.clip((value - self.vmin) / span, 0.0, 1.0)) if span > 0 else 1.0)

    def css(self, value: float, kept: Optional[bool] = None) -> str:
        r, g, b = self.rgb(value, kept)
        text = "#fff" if 0.299 * r + 0.587 * g + 0.114 * b < 140 else "#111"
        return f"background:rgb({r},{g},{b});color:{text}"

    def gradient(self) -> str:
        """CSS gradient of the legend bar; a split scale puts beta at its middle, with
        a hard edge between the two families."""
        if self.kind == "split":
            low = [self._split_rgb(self.vmin + (self.beta - self.vmin) * i / 5, False) for i in range(6)]
            high = [self._split_rgb(self.beta + (self.vmax - self.beta) * i / 5, True) for i in range(6)]
            stops = [f"rgb({r},{g},{b}) {10 * i}%" for i, (r, g, b) in enumerate(low)]
            stops += [f"rgb({r},{g},{b}) {50 + 10 * i}%" for i, (r, g, b) in enumerate(high)]
        else:
            stops = ["rgb({},{},{})".format(*self.rgb(self.vmin + (self.vmax - self.vmin) * i / 10))
                     for i in range(11)]
        return f"linear-gradient(to right,{','.join(stops)})"

    def ticks(self) -> list:
        if self.kind == "boolean":
            return ["not kept", "kept"]
        top = f"\u2265 {self.vmax:.3g}" if self.score == "kl" else f"{self.vmax:.3g}"
        if self.kind == "split":
            return [f"{self.vmin:.3g}", f"\u03b2 = {self.beta:.3g}", top]
        mid = 0.0 if self.kind == "diverging" else (self.vmin + self.vmax) / 2
        return [f"{self.vmin:.3g}", f"{mid:.3g}", top]


def _ramp(colours, t: float) -> tuple:
    """Linear interpolation along a list of colours, t in [0, 1]."""
    half = len(colours) - 1
    i = min(int(t * half), half - 1)
    return _mix(colours[i], colours[i + 1], t * half - i)


def _mix(a, b, t):
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))


@dataclass
class TokenCell:
    step: int
    token_id: int
    text: str
    score: float
    kept: bool
    kl: float
    expert_prob: float
    amateur_prob: float
    expert_top: list          # [(id, text, prob)] best first
    amateur_top: list
    soft_label: Optional[list] = None   # [(id, text, weight)] by weight, kept steps only
    soft_label_exact: bool = True


@dataclass
class Panel:
    label: str
    prompt_id: str
    cells: list = field(default_factory=list)
    alpha: Optional[float] = None   # of the soft labels in the cells, for the tooltip
    question: Optional[str] = None  # shown above the rollout, so a reader can judge the answer

    @property
    def kept_steps(self) -> list:
        return [c.step for c in self.cells if c.kept]


def _top_list(ids, logprobs, tokens, n):
    return [(int(i), str(t), float(np.exp(lp))) for i, lp, t in
            zip(list(ids)[:n], list(logprobs)[:n], list(tokens)[:n])]


def rollout_cells(steps: pd.DataFrame, score: str = "kl", kept: Optional[np.ndarray] = None,
                  alpha: float = 0.2, temperature: float = 1.0, top_n: int = 5) -> list:
    """One `TokenCell` per step of one rollout (rows in step order). `kept` defaults
    to the stored `kept` column; kept steps carry their soft label at `alpha`."""
    if kept is None:
        kept = steps["kept"].to_numpy(dtype=bool) if "kept" in steps else np.zeros(len(steps), bool)
    kept = np.asarray(kept, dtype=bool)
    values = score_values(steps, score, kept)
    labels = {}
    rows = np.flatnonzero(kept)
    if len(rows):
        lp_e = topk_arrays(steps["expert_topk_logprobs"].iloc[rows])
        lp_a = topk_arrays(steps["amateur_logprobs_at_expert_topk"].iloc[rows])
        mask, weights, exact = soft_labels_from_arrays(lp_e, lp_a, alpha, temperature)
        for j, r in enumerate(rows):
            ids = steps["expert_topk_ids"].iat[r]
            toks = steps["expert_topk_tokens"].iat[r]
            picked = np.flatnonzero(mask[j])
            picked = picked[np.argsort(-weights[j, picked], kind="stable")]
            labels[r] = ([(int(ids[i]), str(toks[i]), float(weights[j, i])) for i in picked],
                         bool(exact[j]))
    col = {name: steps[name].tolist() for name in (
        "step", "token_id", "token", "kl", "expert_logprob", "amateur_logprob",
        "expert_topk_ids", "expert_topk_logprobs", "expert_topk_tokens",
        "amateur_topk_ids", "amateur_topk_logprobs", "amateur_topk_tokens")}
    cells = []
    for r in range(len(steps)):
        label, exact = labels.get(r, (None, True))
        cells.append(TokenCell(
            step=int(col["step"][r]), token_id=int(col["token_id"][r]), text=str(col["token"][r]),
            score=float(values[r]), kept=bool(kept[r]), kl=float(col["kl"][r]),
            expert_prob=float(np.exp(col["expert_logprob"][r])),
            amateur_prob=float(np.exp(col["amateur_logprob"][r])),
            expert_top=_top_list(col["expert_topk_ids"][r], col["expert_topk_logprobs"][r],
                                 col["expert_topk_tokens"][r], top_n),
            amateur_top=_top_list(col["amateur_topk_ids"][r], col["amateur_topk_logprobs"][r],
                                  col["amateur_topk_tokens"][r], top_n),
            soft_label=label, soft_label_exact=exact))
    return cells


# ---------------------------------------------------------------- render

_CSS = """
.lrk-view{font-family:system-ui,-apple-system,Segoe UI,sans-serif;font-size:13px;color:#111;line-height:1.9}
.lrk-view .lrk-title{font-weight:600;font-size:15px;margin:4px 0}
.lrk-view .lrk-legend{display:flex;gap:14px;align-items:center;flex-wrap:wrap;margin:4px 0 8px}
.lrk-view .lrk-bar{display:inline-block;width:160px;height:12px;border:1px solid #999;vertical-align:middle}
.lrk-view .lrk-ticks{display:inline-flex;justify-content:space-between;width:160px;font-size:11px;color:#444}
.lrk-view .lrk-panels{display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start}
.lrk-view .lrk-panel{flex:1 1 360px;min-width:300px;border:1px solid #ddd;border-radius:4px;padding:6px 8px}
.lrk-view .lrk-head{font-weight:600;border-bottom:1px solid #eee;margin-bottom:4px}
.lrk-view .lrk-question{white-space:pre-wrap;color:#333;margin-bottom:4px}
.lrk-view .lrk-text{white-space:pre-wrap;word-break:break-word;font-family:ui-monospace,Menlo,Consolas,monospace}
.lrk-view .lrk-tok{position:relative;border-radius:2px;padding:1px 0;cursor:default}
.lrk-view .lrk-tok.lrk-kept{box-shadow:inset 0 -3px 0 #111}
.lrk-view .lrk-special{font-style:italic;opacity:.85}
.lrk-view .lrk-empty{color:#888}
.lrk-view .lrk-tip{display:none;position:absolute;left:0;top:100%;z-index:1000;background:#fff;color:#111;
 border:1px solid #888;border-radius:4px;padding:6px 8px;box-shadow:0 2px 8px rgba(0,0,0,.25);
 white-space:normal;font-family:system-ui,sans-serif;font-size:12px;line-height:1.35;min-width:330px}
.lrk-view .lrk-tok:hover .lrk-tip{display:block}
.lrk-view .lrk-tip table{border-collapse:collapse;margin:3px 0}
.lrk-view .lrk-tip td,.lrk-view .lrk-tip th{padding:0 6px 0 0;text-align:left;vertical-align:top}
.lrk-view .lrk-tip td.lrk-p{text-align:right;font-variant-numeric:tabular-nums}
.lrk-view .lrk-tip code{font-family:ui-monospace,Menlo,Consolas,monospace;background:#f3f3f3;padding:0 2px}
.lrk-view .lrk-note{color:#a33}
"""


def _token_html(text: str) -> str:
    if text == "":
        return '<span class="lrk-empty">\u2205</span>'
    parts = [esc(visible(part)) if part else "" for part in text.split("\n")]
    body = "\u21b5<br>".join(parts)
    return f'<span class="lrk-special">{body}</span>' if is_special(text) else body


def _rows(entries, cls):
    rows = "".join(
        f'<tr data-id="{i}"><td><code>{esc(visible(t, spaces=True))}</code></td>'
        f'<td class="lrk-p">{p:.3f}</td></tr>' for i, t, p in entries)
    return f'<table class="{cls}">{rows}</table>'


def _tip(cell: TokenCell, alpha: Optional[float]) -> str:
    status = "kept" if cell.kept else "not kept"
    head = (f"<div><b>step {cell.step}</b> \u00b7 KL {cell.kl:.3f} \u00b7 {status}</div>"
            f"<div>token <code>{esc(visible(cell.text, spaces=True))}</code>: "
            f"p<sub>E</sub> {cell.expert_prob:.3f}, p<sub>A</sub> {cell.amateur_prob:.3f}</div>")
    tops = ('<table><tr><th>expert top-5</th><th>amateur top-5</th></tr><tr>'
            f'<td>{_rows(cell.expert_top, "lrk-etop")}</td>'
            f'<td>{_rows(cell.amateur_top, "lrk-atop")}</td></tr></table>')
    label = ""
    if cell.soft_label is not None:
        note = "" if cell.soft_label_exact else \
            '<div class="lrk-note">mask may extend past the stored top-k</div>'
        at = "" if alpha is None else f" at \u03b1 = {alpha:g}"
        label = f"<div><b>soft label</b>{at}</div>{_rows(cell.soft_label, 'lrk-soft')}{note}"
    return f'<span class="lrk-tip">{head}{tops}{label}</span>'


def _cell_html(cell: TokenCell, scale: ColourScale, alpha: Optional[float] = None) -> str:
    cls = "lrk-tok lrk-kept" if cell.kept else "lrk-tok"
    return (f'<span class="{cls}" data-step="{cell.step}" data-score="{cell.score:.6g}" '
            f'style="{scale.css(cell.score, cell.kept)}">{_token_html(cell.text)}{_tip(cell, alpha)}</span>')


def _legend_html(scale: ColourScale) -> str:
    if scale.kind == "boolean":
        bar = (f'<span class="lrk-tok" style="{scale.css(0)};border:1px solid #999">not kept</span> '
               f'<span class="lrk-tok" style="{scale.css(1)}">kept</span>')
    else:
        ticks = "".join(f"<span>{esc(t)}</span>" for t in scale.ticks())
        bar = (f'<span><span class="lrk-bar" style="background:{scale.gradient()}">'
               f'</span><br><span class="lrk-ticks">{ticks}</span></span>')
        if scale.kind == "split":
            bar += (f'<span>blue: not kept (KL below \u03b2 = {scale.beta:.3g}); '
                    'orange to red: kept</span>')
    return (f'<div class="lrk-legend"><span>colour: <b>{esc(scale.label)}</b></span>{bar}'
            '<span><span class="lrk-tok lrk-kept">\u2003</span> underlined: kept step'
            ' (hover a token for both top-5s and the soft label)</span></div>')


def _panel_html(panel: Panel, scale: ColourScale) -> str:
    head = (f'<div class="lrk-head">{esc(panel.label)} \u00b7 {len(panel.cells)} steps \u00b7 '
            f'{len(panel.kept_steps)} kept</div>')
    question = ("" if panel.question is None else
                f'<div class="lrk-question"><b>question:</b> {esc(panel.question)}</div>')
    body = "".join(_cell_html(c, scale, panel.alpha) for c in panel.cells)
    return (f'<div class="lrk-panel" data-prompt-id="{esc(panel.prompt_id)}">{head}{question}'
            f'<div class="lrk-text">{body}</div></div>')


def _short(entries, n=3, width=28):
    text = " ".join(f"{visible(t, spaces=True)!s}:{p:.2f}" for _, t, p in entries[:n])
    return text if len(text) <= width else text[:width - 1] + "\u2026"


def _panel_text(panel: Panel) -> str:
    pieces = []
    for c in panel.cells:
        shown = visible(c.text).replace("\u21b5", "\u21b5\n")
        pieces.append(f"\u27e6{shown}\u27e7" if c.kept else shown)
    lines = [f"\u2500\u2500 {panel.label} \u00b7 {len(panel.cells)} steps \u00b7 "
             f"{len(panel.kept_steps)} kept \u2500\u2500"]
    if panel.question is not None:
        lines.append(f"question: {panel.question}")
    lines += ["".join(pieces), ""]
    kept = [c for c in panel.cells if c.kept]
    if kept:
        lines.append(f"{'step':>5}  {'token':<14}{'KL':>8}  {'expert top-3':<28}  "
                     f"{'amateur top-3':<28}  soft label")
        for c in kept:
            token = repr(c.text)[1:-1]
            token = token if len(token) <= 13 else token[:12] + "\u2026"
            label = _short(c.soft_label or [], 3) + ("" if c.soft_label_exact else " (inexact)")
            lines.append(f"{c.step:>5}  {token:<14}{c.kl:>8.3f}  {_short(c.expert_top):<28}  "
                         f"{_short(c.amateur_top):<28}  {label}")
    return "\n".join(lines)


class TokenView:
    """One or more rollouts as coloured text. In a notebook it displays itself;
    `str(view)` / `view.show()` elsewhere print a text version; `.html` is the
    fragment and `.save(path)` writes a self-contained page."""

    def __init__(self, panels: Sequence[Panel], scale: ColourScale, title: Optional[str] = None):
        self.panels = list(panels)
        self.scale = scale
        self.title = title

    @property
    def html(self) -> str:
        title = f'<div class="lrk-title">{esc(self.title)}</div>' if self.title else ""
        panels = "".join(_panel_html(p, self.scale) for p in self.panels)
        return (f'<div class="lrk-view"><style>{_CSS}</style>{title}{_legend_html(self.scale)}'
                f'<div class="lrk-panels">{panels}</div></div>')

    def _repr_html_(self) -> str:
        return self.html

    def __str__(self) -> str:
        top = f"{self.title}\n" if self.title else ""
        ticks = " \u2026 ".join(self.scale.ticks())
        head = f"{top}colour: {self.scale.label} ({ticks}); \u27e6token\u27e7 = kept step"
        return "\n\n".join([head] + [_panel_text(p) for p in self.panels])

    def __repr__(self) -> str:
        kept = sum(len(p.kept_steps) for p in self.panels)
        return f"<TokenView {len(self.panels)} rollout(s), {kept} kept steps, colour={self.scale.score}>"

    def show(self) -> None:
        if in_notebook():
            from IPython.display import HTML, display
            display(HTML(self.html))
        else:
            print(str(self))

    def save(self, path):
        """Write a self-contained HTML page (no scripts) and return its path."""
        return write(path, document(self.title or "lrkit token view", self.html))


# ---------------------------------------------------------------- builders

def _one_rollout(steps: pd.DataFrame, prompt_id) -> pd.DataFrame:
    ids = pd.unique(steps["prompt_id"])
    if prompt_id is None:
        if len(ids) != 1:
            raise ValueError(f"the steps hold {len(ids)} problems; pass prompt_id= "
                             f"(first ones: {', '.join(map(str, ids[:5]))})")
        prompt_id = ids[0]
    one = steps[steps["prompt_id"] == prompt_id]
    if one.empty:
        raise ValueError(f"no steps for prompt_id {prompt_id!r}")
    return one.sort_values("step", kind="stable")


def _panel(steps, prompt_id, label, score, beta, alpha, temperature, kl_inclusive,
           skip_first_step, top_n, question=None) -> Panel:
    one = _one_rollout(steps, prompt_id)
    kept = None if beta is None else select_steps(one, beta, kl_inclusive, skip_first_step).to_numpy()
    pid = str(one["prompt_id"].iat[0])
    cells = rollout_cells(one, score, kept, alpha, temperature, top_n)
    if question is None:  # lrkit.read_steps keeps each problem's question in the frame's attrs
        question = steps.attrs.get("questions", {}).get(pid)
    return Panel(label if label is not None else pid, pid, cells, alpha, question)


def token_view(steps: pd.DataFrame, prompt_id=None, *, score: str = "kl",
               beta: Optional[float] = None, alpha: float = 0.2, temperature: float = 1.0,
               kl_inclusive: bool = True, skip_first_step: bool = True,
               vmin: Optional[float] = None, vmax: Optional[float] = None, top_n: int = 5,
               title: Optional[str] = None, label: Optional[str] = None,
               question: Optional[str] = None) -> TokenView:
    """The token view of one rollout (one `prompt_id` of the step statistics).

    score: "kl" (default), "expert_entropy", "amateur_entropy", "logprob_gap"
    (expert_logprob - amateur_logprob of the chosen token), "kept", or any numeric column.
    Kept steps are the stored `kept` column, or recomputed when `beta` is given; their
    soft labels are rebuilt at `alpha` / `temperature` from the stored top-k.
    The colour scale runs from vmin to vmax (defaults: 0 to the 95th percentile for KL,
    the data's range otherwise; symmetric about 0 for the log-prob gap). For KL with
    a known beta (given, or the run's, which `lrkit.read_steps` keeps) the legend
    marks beta and kept and unkept steps take different hue families.
    The question above the rollout is `question`, else the one `read_steps` keeps.

    Args:
        steps (pandas.DataFrame): step statistics (``lrkit.read_steps``), of one problem or
            of many.
        prompt_id: the problem to show; None when ``steps`` holds one problem only.
        score (str): what colours each token: "kl", "expert_entropy", "amateur_entropy",
            "logprob_gap", "kept", or another numeric column.
        beta (float, optional): recompute the kept steps at this threshold; None keeps the
            stored ``kept`` column.
        alpha (float): the mask of the soft labels shown for kept steps.
        temperature (float): their temperature.
        kl_inclusive (bool): with ``beta``, keep KL >= beta (False: > beta).
        skip_first_step (bool): with ``beta``, never keep step 0.
        vmin (float, optional): the scale's low end; default 0, or the data's minimum when
            that is below 0 (unused for "logprob_gap" and "kept").
        vmax (float, optional): the scale's high end; default the 95th percentile for KL,
            the data's maximum otherwise, the largest absolute gap for "logprob_gap"
            (unused for "kept").
        top_n (int): how many of each model's top tokens a token's tooltip lists.
        title (str, optional): a heading above the view.
        label (str, optional): the rollout's label (default: its prompt_id).
        question (str, optional): the question shown above the rollout.

    Returns:
        TokenView: ``html`` (plain HTML, no script), ``show()`` (rendered in a notebook,
        printed elsewhere), ``save(path)``; ``str()`` is a text rendering.

    Raises:
        ValueError: ``steps`` holds several problems and ``prompt_id`` is None, no steps
            have ``prompt_id``, or ``score`` is neither known nor a column.
    """
    return side_by_side({label: steps} if label is not None else [(None, steps)], prompt_id,
                        score=score, beta=beta, alpha=alpha, temperature=temperature,
                        kl_inclusive=kl_inclusive, skip_first_step=skip_first_step,
                        vmin=vmin, vmax=vmax, top_n=top_n, title=title,
                        questions=None if question is None else [question])


def side_by_side(rollouts, prompt_id=None, *, score: str = "kl", beta: Optional[float] = None,
                 alpha: float = 0.2, temperature: float = 1.0, kl_inclusive: bool = True,
                 skip_first_step: bool = True, vmin: Optional[float] = None,
                 vmax: Optional[float] = None, top_n: int = 5,
                 title: Optional[str] = None, questions: Optional[Sequence[str]] = None) -> TokenView:
    """Several rollouts in one view on one colour scale, e.g. the same problem under two
    pairs, or before and after tuning: `side_by_side({"base": steps_a, "tuned": steps_b},
    prompt_id="p12")`. `rollouts` is a mapping label -> step statistics or a sequence of
    (label, steps) pairs; `prompt_id` is one id for all, or a list with one per rollout."""
    items = list(rollouts.items()) if isinstance(rollouts, Mapping) else list(rollouts)
    if not items:
        raise ValueError("no rollouts to show")
    ids = prompt_id if isinstance(prompt_id, (list, tuple)) else [prompt_id] * len(items)
    if len(ids) != len(items):
        raise ValueError(f"{len(ids)} prompt ids for {len(items)} rollouts")
    questions = list(questions) if questions is not None else [None] * len(items)
    panels = [_panel(steps, pid, label, score, beta, alpha, temperature, kl_inclusive,
                     skip_first_step, top_n, question)
              for (label, steps), pid, question in zip(items, ids, questions)]
    values = np.array([c.score for p in panels for c in p.cells], dtype=float)
    # the threshold the kept marks follow: the one given, else the runs' own (when they share one)
    run_betas = {steps.attrs.get("beta") for _, steps in items}
    scale_beta = beta if beta is not None else (run_betas.pop() if len(run_betas) == 1 else None)
    return TokenView(panels, ColourScale.for_values(score, values, vmin, vmax, beta=scale_beta), title)
