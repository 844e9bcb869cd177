"""Table 1 of the paper for any models: an HTML table and a plotly figure.

Both render DataFrames from ``lrkit.evaluation.suite.SuiteResult`` (``scores()``,
``comparisons()``, ``paper()``); nothing is computed here but layout.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import pandas as pd
import plotly.graph_objects as go

from lrkit.viz.markup import esc
from lrkit.viz.figures import TEMPLATE

__all__ = ["table1_html", "table1_figure"]

_COLORS = ("#2c7bb6", "#d7191c", "#fdae61", "#1a9641", "#7b3294", "#636363")
_CSS = """<style>
table.lrk-t1{border-collapse:collapse;font-size:13px;margin:8px 0;font-family:system-ui,sans-serif}
table.lrk-t1 th,table.lrk-t1 td{border:1px solid #ddd;padding:3px 8px;text-align:right}
table.lrk-t1 th{background:#f5f5f5} table.lrk-t1 td.lrk-name{text-align:left}
table.lrk-t1 tr.lrk-paper td{color:#666;font-style:italic;background:#fafafa}
table.lrk-t1 .lrk-ci{color:#777;font-size:11px} .lrk-notes{color:#555;font-size:12px}
</style>"""


def _pct(x) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def _columns(scores: pd.DataFrame) -> list:
    return list(dict.fromkeys(zip(scores["benchmark"], scores["title"])))


def table1_html(scores: pd.DataFrame, comparisons: pd.DataFrame, paper: Optional[pd.DataFrame] = None,
                notes: Sequence[str] = ()) -> str:
    """Rows: each model (accuracy %, 95% interval under it), then the paper's
    published rows in grey; then fixed/broken/McNemar p per benchmark, and the
    unparsed answers per model."""
    columns = _columns(scores)
    head = "".join(f"<th>{esc(title)}</th>" for _, title in columns)
    body = []
    for model, frame in scores.groupby("model", sort=False):
        by_bench = frame.set_index("benchmark")
        cells = []
        for bench, _ in columns:
            row = by_bench.loc[bench]
            ci = "" if math.isnan(row["low"]) else (f"<br><span class='lrk-ci'>[{_pct(row['low'])}, "
                                                     f"{_pct(row['high'])}] n={row['n']}</span>")
            cells.append(f"<td>{_pct(row['accuracy'])}{ci}</td>")
        body.append(f"<tr><td class='lrk-name'>{esc(model)}</td>{''.join(cells)}</tr>")
    if paper is not None and len(paper):
        for name, frame in paper.groupby("row", sort=False):
            values = dict(zip(frame["benchmark"], frame["accuracy"]))
            cells = "".join(f"<td>{_pct(values.get(bench))}</td>" for bench, _ in columns)
            body.append(f"<tr class='lrk-paper'><td class='lrk-name'>{esc(name)}</td>{cells}</tr>")
    parts = [_CSS, "<table class='lrk-t1'><tr><th>model</th>", head, "</tr>", *body, "</table>"]

    if len(comparisons):
        parts.append("<table class='lrk-t1'><tr><th>comparison</th><th>benchmark</th><th>change (points)</th>"
                     "<th>fixed</th><th>broken</th><th>exact McNemar p</th></tr>")
        for row in comparisons.itertuples():
            parts.append(f"<tr><td class='lrk-name'>{esc(row.b)} vs {esc(row.a)}</td>"
                         f"<td class='lrk-name'>{esc(row.title)}</td><td>{100 * row.difference:+.1f}</td>"
                         f"<td>{row.fixed}</td><td>{row.broken}</td><td>{row.mcnemar_p:.3g}</td></tr>")
        parts.append("</table>")
    per_bench = scores[scores["benchmark"] != "average"]
    counts = per_bench.groupby("model", sort=False)[["n_unparsed", "n_no_answer", "n_unfinished"]].sum()
    parts.append("<table class='lrk-t1'><tr><th>model</th><th>unparsed answers (scored wrong)</th>"
                 "<th>no answer found</th><th>hit the token limit</th></tr>")
    for model, row in counts.iterrows():
        parts.append(f"<tr><td class='lrk-name'>{esc(model)}</td><td>{row['n_unparsed']}</td>"
                     f"<td>{row['n_no_answer']}</td><td>{row['n_unfinished']}</td></tr>")
    parts.append("</table>")
    parts.extend(f"<p class='lrk-notes'>{esc(note)}</p>" for note in notes)
    return "\n".join(parts)


def table1_figure(scores: pd.DataFrame, paper: Optional[pd.DataFrame] = None,
                  title: str = "Zero-shot pass@1 per benchmark (95% Wilson intervals)") -> go.Figure:
    """Grouped bars, one group per benchmark (and the average), one bar per
    model with its interval; the paper's published rows as hollow markers."""
    columns = _columns(scores)
    order = {bench: i for i, (bench, _) in enumerate(columns)}
    titles = [esc(title_) for _, title_ in columns]
    fig = go.Figure()
    for i, (model, frame) in enumerate(scores.groupby("model", sort=False)):
        frame = frame.sort_values("benchmark", key=lambda s: s.map(order))
        acc = frame["accuracy"].to_numpy(dtype=float)
        low = frame["low"].fillna(frame["accuracy"]).to_numpy(dtype=float)
        high = frame["high"].fillna(frame["accuracy"]).to_numpy(dtype=float)
        fig.add_trace(go.Bar(
            x=titles, y=acc, name=esc(model), marker_color=_COLORS[i % len(_COLORS)],
            error_y=dict(type="data", symmetric=False, array=high - acc, arrayminus=acc - low),
            text=[f"{100 * a:.1f}" for a in acc], textposition="inside",
            hovertemplate=f"{esc(model)}<br>%{{x}}: %{{y:.1%}}<extra></extra>"))
    if paper is not None and len(paper):
        symbols = ("diamond-open", "circle-open", "square-open", "triangle-up-open")
        for j, (name, frame) in enumerate(paper.groupby("row", sort=False)):
            values = dict(zip(frame["benchmark"], frame["accuracy"]))
            fig.add_trace(go.Scatter(
                x=titles, y=[values.get(bench) for bench, _ in columns], mode="markers", name=esc(name),
                marker=dict(symbol=symbols[j % len(symbols)], size=11, color="#333", line=dict(width=2)),
                hovertemplate=f"{esc(name)}<br>%{{x}}: %{{y:.1%}}<extra></extra>"))
    fig.update_layout(template=TEMPLATE, title=title, barmode="group",
                      yaxis=dict(title="accuracy", tickformat=".0%", range=[0, 1]),
                      legend=dict(orientation="h", y=-0.2))
    return fig
