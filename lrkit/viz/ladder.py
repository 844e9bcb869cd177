"""Figures of the amateur study (``lrkit study ladder``) and of ``lrkit scout``.

Each takes plain rows (the JSON the study and the scout write) and returns a
``plotly.graph_objects.Figure``.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import plotly.graph_objects as go

from lrkit.viz.figures import EXPERT, SOFT, TEMPLATE


def ladder_figure(ladder: Sequence[Mapping], x: str = "amateur_accuracy") -> go.Figure:
    """LightReasoner's gain (points, mean over seeds, each seed a dot) against each
    amateur's test accuracy (``x="amateur_accuracy"``) or the expertise gap
    (``x="gap"``: expert minus amateur accuracy), as the paper's amateur study."""
    title_x = {"amateur_accuracy": "amateur's accuracy on test problems (%)",
               "gap": "expertise gap: expert's minus amateur's accuracy (points)"}[x]
    fig = go.Figure()
    xs = [100 * row[x] for row in ladder]
    means = [row["mean_gain_points"] for row in ladder]
    seeds_x, seeds_y, seeds_text = [], [], []
    for row, value in zip(ladder, xs):
        for seed in row["seeds"]:
            seeds_x.append(value)
            seeds_y.append(seed["gain_points"])
            seeds_text.append(f"{row['name']}, seed {seed['seed']}: {seed['gain_points']:+.1f} points "
                              f"(fixed {seed['fixed']}, broken {seed['broken']}, McNemar p = {seed['mcnemar_p']:.2g})")
    fig.add_trace(go.Scatter(x=seeds_x, y=seeds_y, mode="markers", name="one seed",
                             marker=dict(color=EXPERT, size=6, opacity=0.5), text=seeds_text,
                             hovertemplate="%{text}<extra></extra>"))
    fig.add_trace(go.Scatter(
        x=xs, y=means, mode="markers+text", name="mean over seeds", text=[row["name"] for row in ladder],
        textposition="top center", marker=dict(color=SOFT, size=11),
        customdata=[[row.get("cd_gain_test_points", float("nan")), row.get("description", "")] for row in ladder],
        hovertemplate="%{text}: mean gain %{y:+.1f} points<br>%{customdata[1]}<br>decoding by v_C: "
                      "%{customdata[0]:+.1f} points<extra></extra>"))
    fig.add_hline(y=0, line=dict(color="gray", dash="dot"))
    fig.update_layout(template=TEMPLATE, title="LightReasoner's gain against the amateur (toy's expert, "
                      f"{len(ladder)} amateurs)", xaxis_title=title_x,
                      yaxis_title="gain over the base expert (points, test problems)", height=450)
    return fig


def sweep_figure(rows: Sequence[Mapping], setting: str) -> go.Figure:
    """Gain (left axis) and kept share of steps (right axis) against beta or alpha."""
    rows = sorted(rows, key=lambda r: r[setting])
    xs = [r[setting] for r in rows]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=xs, y=[r["mean_gain_points"] for r in rows], mode="lines+markers",
                             name="gain (points)", marker=dict(color=SOFT),
                             text=[f"tuned tokens {r['tuned_tokens']:,}, records {r['records']:,}" for r in rows],
                             hovertemplate=f"{setting} %{{x}}: gain %{{y:+.1f}}<br>%{{text}}<extra></extra>"))
    fig.add_trace(go.Scatter(x=xs, y=[100 * r["share_kept"] for r in rows], mode="lines+markers",
                             name="steps kept (%)", marker=dict(color=EXPERT), yaxis="y2"))
    fig.update_layout(template=TEMPLATE, title=f"{setting} sweep on toy (g-small = toy:amateur)",
                      xaxis_title=setting, xaxis_type="log" if setting == "beta" else "linear",
                      yaxis=dict(title="gain over the base expert (points)"),
                      yaxis2=dict(title="steps kept (%)", overlaying="y", side="right"), height=400)
    return fig


def scout_figure(rows: Sequence[Mapping]) -> go.Figure:
    """The scout's ranking: its score (predicted gain) per amateur and setting, gold-path fixes and breaks."""
    labels = [f"{r['amateur']} (beta {r['beta']:g}, alpha {r['alpha']:g})" for r in rows]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=labels, y=[r["score"] for r in rows], name="score: decoding by v_C minus greedy (points)",
                         marker_color=SOFT))
    fig.add_trace(go.Bar(x=labels, y=[r["check_fixes"] for r in rows], name="gold path: tokens fixed",
                         marker_color=EXPERT, yaxis="y2", opacity=0.6))
    fig.add_trace(go.Bar(x=labels, y=[-r["check_breaks"] for r in rows], name="gold path: tokens broken (negative)",
                         marker_color="#777777", yaxis="y2", opacity=0.6))
    fig.update_layout(template=TEMPLATE, barmode="group", height=450,
                      title="lrkit scout: predictions before any training, best first",
                      yaxis=dict(title="predicted gain (points)"),
                      yaxis2=dict(title="gold-path tokens", overlaying="y", side="right"))
    return fig
