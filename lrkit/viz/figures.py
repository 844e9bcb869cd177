"""Plotly figures of the step statistics, training and evaluation.

Each function takes data (step-statistics DataFrame, a step row, a loss history,
accuracy results) and returns a `plotly.graph_objects.Figure`; nothing is shown
or written here. Token text is HTML-escaped before plotly sees it.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lrkit.maths.selection import kept_share_curve, select_steps, soft_label_from_stats
from lrkit.viz.markup import esc, visible

__all__ = [
    "kl_histogram", "kl_along_rollout", "entropy_scatter", "kl_by_agreement",
    "kept_share_by_beta", "step_distributions", "loss_curve", "accuracy_comparison",
]

TEMPLATE = "plotly_white"
EXPERT, AMATEUR, SOFT, KEPT = "#2c7bb6", "#fdae61", "#d7191c", "#d7191c"


def _label(text: str) -> str:
    return esc(visible(str(text), spaces=True))


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def kept_steps(steps: pd.DataFrame, beta: float, kl_inclusive: bool = True,
               skip_first_step: bool = True) -> np.ndarray:
    """The steps selection keeps at ``beta``: the frame's own ``kept`` column when
    it was made at this beta (``lrkit.read_steps`` keeps the run's beta in the
    frame's attrs), else :func:`lrkit.maths.selection.select_steps`. Figures take their
    kept share from here, so they say what the run's summary says (step 0 is
    never kept, whatever its KL)."""
    if "kept" in steps.columns and steps.attrs.get("beta") == beta:
        return steps["kept"].to_numpy(dtype=bool)
    return select_steps(steps, beta, kl_inclusive, skip_first_step).to_numpy(dtype=bool)


def kl_histogram(steps: pd.DataFrame, beta: float = 0.4, bin_width: float = 0.1,
                 tail_from: Optional[float] = None, kl_inclusive: bool = True,
                 x_max: Optional[float] = None, skip_first_step: bool = True) -> go.Figure:
    """Share of steps per KL bin (the paper's Figure 2), beta marked with the share
    of steps kept there (:func:`kept_steps`), and an inset zoomed on the tail
    KL >= tail_from (default beta) with its own count axis."""
    kl = steps["kl"].to_numpy(dtype=float)
    tail_from = beta if tail_from is None else tail_from
    kept = kept_steps(steps, beta, kl_inclusive, skip_first_step)
    tail = kl[kl >= tail_from]
    x_max = x_max if x_max is not None else max(float(np.quantile(kl, 0.99)) if len(kl) else 1.0,
                                                beta + bin_width)
    fig = go.Figure()
    fig.add_trace(go.Histogram(
        x=kl, xbins=dict(start=0.0, size=bin_width), histnorm="percent", name="all steps",
        marker_color=EXPERT, hovertemplate="KL %{x}<br>%{y:.1f}% of steps<extra></extra>"))
    fig.add_trace(go.Histogram(
        x=tail, xbins=dict(start=tail_from, size=bin_width), name=f"tail (KL \u2265 {tail_from:g})",
        marker_color=SOFT, xaxis="x2", yaxis="y2",
        hovertemplate="KL %{x}<br>%{y} steps<extra></extra>"))
    fig.add_shape(type="line", x0=beta, x1=beta, xref="x", y0=0, y1=1, yref="y domain",
                  line=dict(color="black", dash="dash"), name="beta")
    fig.add_annotation(x=beta, xref="x", y=1, yref="y domain", yanchor="bottom", showarrow=False,
                       text=f"\u03b2 = {beta:g}: {_pct(kept.mean() if len(kl) else 0)} of steps kept")
    fig.update_layout(
        template=TEMPLATE, bargap=0.05, showlegend=False,
        title=f"KL(\u03c0E \u2016 \u03c0A) per step: {len(kl)} steps, "
              f"{_pct(float((kl < bin_width).mean()) if len(kl) else 0)} below {bin_width:g}",
        xaxis=dict(title="KL (nats)", range=[0, x_max]),
        yaxis=dict(title="share of steps (%)"),
        xaxis2=dict(domain=[0.55, 0.98], anchor="y2", title=dict(text="tail: KL", font_size=11)),
        yaxis2=dict(domain=[0.45, 0.9], anchor="x2", title=dict(text="steps", font_size=11)),
    )
    return fig


def kl_along_rollout(steps: pd.DataFrame, prompt_id=None, beta: float = 0.4, top_n: int = 5,
                     kl_inclusive: bool = True, skip_first_step: bool = True) -> go.Figure:
    """KL at each step of one rollout (the paper's Figure 3), beta marked, kept steps
    highlighted and the `top_n` largest spikes annotated with their token."""
    if prompt_id is None:
        ids = pd.unique(steps["prompt_id"])
        if len(ids) != 1:
            raise ValueError(f"the steps hold {len(ids)} problems; pass prompt_id=")
        prompt_id = ids[0]
    one = steps[steps["prompt_id"] == prompt_id].sort_values("step")
    if one.empty:
        raise ValueError(f"no steps for prompt_id {prompt_id!r}")
    x = one["step"].to_numpy()
    kl = one["kl"].to_numpy(dtype=float)
    tokens = [_label(t) for t in one["token"]]
    kept = select_steps({"kl": kl, "step": x}, beta, kl_inclusive, skip_first_step)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=kl, mode="lines+markers", name="KL", customdata=tokens,
                             line=dict(color="#888"),
                             marker=dict(color=np.where(kept, KEPT, EXPERT), size=6),
                             hovertemplate="step %{x}: %{customdata}<br>KL %{y:.3f}<extra></extra>"))
    fig.add_hline(y=beta, line=dict(color="black", dash="dash"),
                  annotation_text=f"\u03b2 = {beta:g}", annotation_position="top left")
    for i in np.argsort(-kl, kind="stable")[:top_n]:
        fig.add_annotation(x=int(x[i]), y=float(kl[i]), text=tokens[i], showarrow=True,
                           arrowhead=2, ax=0, ay=-28, font=dict(size=11))
    fig.update_layout(template=TEMPLATE, showlegend=False,
                      title=f"KL along rollout {esc(prompt_id)}: {int(kept.sum())} of "
                            f"{len(kl)} steps kept",
                      xaxis_title="step t", yaxis_title="KL (nats)")
    return fig


def entropy_scatter(steps: pd.DataFrame, max_points: int = 20000, seed: int = 0) -> go.Figure:
    """Expert against amateur entropy per step, coloured by KL (at most `max_points`,
    a fixed random subset beyond that)."""
    frame = steps
    note = ""
    if len(frame) > max_points:
        frame = frame.sample(max_points, random_state=seed)
        note = f" (random {max_points} of {len(steps)})"
    kl = frame["kl"].to_numpy(dtype=float)
    top = max(float(np.quantile(kl, 0.95)) if len(kl) else 1.0, 1e-6)
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=frame["expert_entropy"].to_numpy(dtype=float),
        y=frame["amateur_entropy"].to_numpy(dtype=float),
        mode="markers", name="steps", customdata=[_label(t) for t in frame["token"]],
        marker=dict(color=kl, colorscale="YlOrRd", cmin=0, cmax=top, size=5, opacity=0.7,
                    colorbar=dict(title="KL")),
        hovertemplate="%{customdata}<br>H(E) %{x:.2f}, H(A) %{y:.2f}<br>KL %{marker.color:.3f}"
                      "<extra></extra>"))
    both = np.concatenate([frame["expert_entropy"], frame["amateur_entropy"]]).astype(float)
    hi = float(both.max()) if len(both) else 1.0
    fig.add_trace(go.Scatter(x=[0, hi], y=[0, hi], mode="lines", name="equal entropy",
                             line=dict(color="#999", dash="dot"), hoverinfo="skip"))
    fig.update_layout(template=TEMPLATE, showlegend=False,
                      title=f"Expert vs amateur entropy, coloured by KL{note}",
                      xaxis_title="expert entropy (nats)", yaxis_title="amateur entropy (nats)")
    return fig


def kl_by_agreement(steps: pd.DataFrame, beta: float = 0.4, kl_inclusive: bool = True,
                    log_y: bool = False) -> go.Figure:
    """KL where the two top-1 tokens agree against where they differ (the paper's means:
    lrkit.paper.PAPER_PRELIMINARY), with each group's mean and share above beta."""
    kl = steps["kl"].to_numpy(dtype=float)
    agree = steps["top1_agree"].to_numpy(dtype=bool)
    fig = go.Figure()
    for name, sel, colour in (("top-1s agree", agree, EXPERT), ("top-1s differ", ~agree, SOFT)):
        values = kl[sel]
        mean = float(values.mean()) if len(values) else float("nan")
        share = float(select_steps({"kl": values}, beta, kl_inclusive, skip_first_step=False).mean()) \
            if len(values) else 0.0
        fig.add_trace(go.Box(y=values, name=name, boxmean=True, marker_color=colour,
                             boxpoints="outliers"))
        fig.add_annotation(x=name, y=1.0, yref="y domain", yanchor="bottom", showarrow=False,
                           text=f"n={len(values)}, mean {mean:.3g}, {_pct(share)} \u2265 \u03b2")
    fig.add_hline(y=beta, line=dict(color="black", dash="dash"),
                  annotation_text=f"\u03b2 = {beta:g}", annotation_position="top left")
    fig.update_layout(template=TEMPLATE, showlegend=False,
                      title="KL when the top-1 tokens agree vs differ",
                      yaxis=dict(title="KL (nats)", type="log" if log_y else "linear"))
    return fig


def kept_share_by_beta(steps: pd.DataFrame, beta: Optional[float] = 0.4,
                       betas: Optional[Sequence[float]] = None, kl_inclusive: bool = True,
                       skip_first_step: bool = True) -> go.Figure:
    """Share of steps kept (and records) as beta varies; the chosen beta marked."""
    curve = kept_share_curve(steps, betas, kl_inclusive, skip_first_step)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=curve["beta"].to_numpy(), y=100 * curve["share_kept"].to_numpy(),
                             customdata=curve["records"].to_numpy(), mode="lines", name="kept",
                             line=dict(color=SOFT),
                             hovertemplate="\u03b2 %{x:.3g}: %{y:.1f}% kept, %{customdata} records"
                                           "<extra></extra>"))
    if beta is not None:
        kept = kept_steps(steps, beta, kl_inclusive, skip_first_step)
        share = float(kept.mean()) if len(kept) else 0.0
        fig.add_vline(x=beta, line=dict(color="black", dash="dash"))
        fig.add_annotation(x=beta, y=100 * share, showarrow=True, arrowhead=2,
                           text=f"\u03b2 = {beta:g}: {_pct(share)}, {int(kept.sum())} records")
    fig.update_layout(template=TEMPLATE, showlegend=False, title="Share of steps kept as \u03b2 varies",
                      xaxis_title="\u03b2 (KL threshold)", yaxis_title="steps kept (%)")
    return fig


def step_distributions(row: Mapping, alpha: float = 0.2, temperature: float = 1.0) -> go.Figure:
    """One step's expert and amateur probabilities and the soft label v_C over its
    plausible tokens (the mask at `alpha`), sorted by soft-label weight."""
    label = soft_label_from_stats(row, alpha, temperature)
    names = label.tokens if label.tokens is not None else [str(i) for i in label.token_ids]
    shown = [_label(t) for t in names]
    dupes = {s for s in shown if shown.count(s) > 1}
    shown = [f"{s} #{i}" if s in dupes else s for s, i in zip(shown, label.token_ids)]
    fig = go.Figure()
    for name, values, colour in (("expert \u03c0E", label.expert_probs, EXPERT),
                                 ("amateur \u03c0A", label.amateur_probs, AMATEUR),
                                 ("soft label v_C", label.weights, SOFT)):
        fig.add_trace(go.Bar(x=shown, y=values, name=name, marker_color=colour,
                             customdata=label.token_ids,
                             hovertemplate="%{x} (id %{customdata}): %{y:.3f}<extra>" + name
                                           + "</extra>"))
    note = "" if label.exact else " \u2014 mask may extend past the stored top-k"
    step = row.get("step", "?") if hasattr(row, "get") else "?"
    kl = row.get("kl") if hasattr(row, "get") else None
    kl_text = f", KL {float(kl):.3f}" if kl is not None else ""
    fig.update_layout(template=TEMPLATE, barmode="group",
                      title=f"Step {step}{kl_text}: {label.mask_size} plausible tokens "
                            f"(\u03b1 = {alpha:g}){note}",
                      xaxis_title="token", yaxis_title="probability / weight",
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right"))
    return fig


def loss_curve(history, x: str = "step", y: str = "loss", smooth: Optional[int] = None,
               title: str = "Training loss") -> go.Figure:
    """Loss against optimizer step from a DataFrame or list of dicts ({step, loss});
    rows without a loss (e.g. the HF Trainer's eval or summary entries) are skipped.
    `smooth` adds a moving average over that many points."""
    frame = pd.DataFrame(list(history) if not isinstance(history, pd.DataFrame) else history)
    if x not in frame or y not in frame:
        raise ValueError(f"history needs columns {x!r} and {y!r}, has {list(frame.columns)}")
    frame = frame.dropna(subset=[x, y]).sort_values(x)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=frame[x].to_numpy(), y=frame[y].to_numpy(dtype=float),
                             mode="lines+markers" if len(frame) < 60 else "lines",
                             name=y, line=dict(color=EXPERT)))
    if smooth and len(frame) >= smooth:
        avg = frame[y].astype(float).rolling(smooth).mean()
        fig.add_trace(go.Scatter(x=frame[x].to_numpy(), y=avg.to_numpy(), mode="lines",
                                 name=f"mean of {smooth}", line=dict(color=SOFT)))
    fig.update_layout(template=TEMPLATE, title=title, xaxis_title=x, yaxis_title=y)
    return fig


def accuracy_comparison(results: Sequence[Mapping], title: str = "Accuracy (95% interval)") -> go.Figure:
    """Bars of accuracy with their intervals, from dicts name/accuracy/low/high
    (fractions in [0, 1] are shown as percentages)."""
    frame = pd.DataFrame(list(results))
    missing = {"name", "accuracy", "low", "high"} - set(frame.columns)
    if missing:
        raise ValueError(f"each result needs name, accuracy, low, high; missing {sorted(missing)}")
    acc = frame["accuracy"].to_numpy(dtype=float)
    low, high = frame["low"].to_numpy(dtype=float), frame["high"].to_numpy(dtype=float)
    fraction = bool(np.all((acc <= 1) & (high <= 1)))
    text = [f"{100 * a:.1f}%" if fraction else f"{a:.1f}" for a in acc]
    fig = go.Figure(go.Bar(
        x=[esc(n) for n in frame["name"]], y=acc, text=text, textposition="inside",
        insidetextanchor="middle",
        marker_color=[(EXPERT, SOFT, AMATEUR)[i % 3] for i in range(len(acc))],
        error_y=dict(type="data", symmetric=False, array=high - acc, arrayminus=acc - low),
        customdata=np.stack([low, high], axis=1),
        hovertemplate="%{x}: %{y:.3f} [%{customdata[0]:.3f}, %{customdata[1]:.3f}]<extra></extra>"))
    fig.update_layout(template=TEMPLATE, title=title, showlegend=False,
                      yaxis=dict(title="accuracy", tickformat=".0%" if fraction else None,
                                 rangemode="tozero"))
    return fig
