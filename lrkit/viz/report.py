"""Self-contained HTML export: one figure, one token view, or a whole report.

Pages open offline: plotly.js is inlined once per page, the token view needs no
script at all, and nothing is fetched from the network.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping, Optional

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from lrkit.viz.markup import document, esc, write
from lrkit.viz.tokens import TokenView

__all__ = ["Report", "export_html"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:24px auto;
 padding:0 16px;color:#111;line-height:1.5}
h1{font-size:24px;margin-bottom:4px} h2{font-size:19px;margin-top:32px;border-bottom:1px solid #ddd}
.lrk-caption{color:#555;font-size:13px;margin:2px 0 10px}
.lrk-toc{font-size:14px;color:#333} .lrk-toc a{color:#2c5d8a}
table.lrk-table{border-collapse:collapse;font-size:13px;margin:8px 0}
table.lrk-table th,table.lrk-table td{border:1px solid #ddd;padding:3px 8px;text-align:left}
table.lrk-table th{background:#f5f5f5}
"""

_FIGURE_CONFIG = {"displaylogo": False, "responsive": True}


def _figure_div(fig: go.Figure) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, config=_FIGURE_CONFIG)


def _slug(text: str, taken: set) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    taken.add(slug)
    return slug


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class Report:
    """A one-page HTML report built from text, figures, token views, tables and
    key-value summaries, in the order added. Each `add_*` returns the report.

    The page opens offline: plotly.js is inlined once when a figure is there, token
    views need no script, and two headings or more make a table of contents. ``html`` is the
    page, ``save(path)`` writes it.

    Args:
        title (str): the page's title and top heading.
        subtitle (str, optional): a line under the title.
    """

    def __init__(self, title: str, subtitle: Optional[str] = None):
        self.title = title
        self.subtitle = subtitle
        self._blocks: list = []   # (kind, heading, payload, caption)

    def _add(self, kind, payload, heading, caption):
        self._blocks.append((kind, heading, payload, caption))
        return self

    def add_text(self, text: str, heading: Optional[str] = None) -> "Report":
        """Plain text (escaped); blank lines separate paragraphs."""
        return self._add("text", text, heading, None)

    def add_html(self, html: str, heading: Optional[str] = None) -> "Report":
        """Trusted HTML, inserted as is."""
        return self._add("html", html, heading, None)

    def add_figure(self, fig: go.Figure, heading: Optional[str] = None,
                   caption: Optional[str] = None) -> "Report":
        return self._add("figure", fig, heading, caption)

    def add_token_view(self, view: TokenView, heading: Optional[str] = None,
                       caption: Optional[str] = None) -> "Report":
        return self._add("tokens", view, heading, caption)

    def add_table(self, frame: pd.DataFrame, heading: Optional[str] = None,
                  caption: Optional[str] = None, max_rows: int = 50,
                  index: bool = False) -> "Report":
        return self._add("table", (frame, max_rows, index), heading, caption)

    def add_summary(self, values: Mapping, heading: Optional[str] = None,
                    caption: Optional[str] = None) -> "Report":
        """A two-column key / value table."""
        return self._add("summary", dict(values), heading, caption)

    def _block_html(self, kind, payload) -> str:
        if kind == "text":
            paragraphs = [p.strip() for p in re.split(r"\n\s*\n", payload) if p.strip()]
            return "".join(f"<p>{esc(p)}</p>" for p in paragraphs)
        if kind == "html":
            return payload
        if kind == "figure":
            return _figure_div(payload)
        if kind == "tokens":
            return payload.html
        if kind == "table":
            frame, max_rows, index = payload
            shown = frame.head(max_rows)
            note = (f'<div class="lrk-caption">first {max_rows} of {len(frame)} rows</div>'
                    if len(frame) > max_rows else "")
            table = shown.to_html(index=index, escape=True, border=0, classes="lrk-table",
                                  formatters={c: _cell for c in shown.columns})
            return table + note
        if kind == "summary":
            rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(_cell(v))}</td></tr>"
                           for k, v in payload.items())
            return f'<table class="lrk-table">{rows}</table>'
        raise ValueError(f"unknown block {kind!r}")

    @property
    def html(self) -> str:
        """The complete page."""
        taken: set = set()
        toc, body = [], []
        for kind, heading, payload, caption in self._blocks:
            if heading:
                slug = _slug(heading, taken)
                toc.append(f'<a href="#{slug}">{esc(heading)}</a>')
                body.append(f'<h2 id="{slug}">{esc(heading)}</h2>')
            body.append(f'<section class="lrk-{kind}">{self._block_html(kind, payload)}</section>')
            if caption:
                body.append(f'<div class="lrk-caption">{esc(caption)}</div>')
        top = f"<h1>{esc(self.title)}</h1>"
        if self.subtitle:
            top += f'<div class="lrk-caption">{esc(self.subtitle)}</div>'
        if len(toc) > 1:
            top += '<div class="lrk-toc">' + " \u00b7 ".join(toc) + "</div>"
        head = f"<style>{_CSS}</style>\n"
        if any(kind == "figure" for kind, *_ in self._blocks):
            head += f'<script type="text/javascript">{get_plotlyjs()}</script>\n'
        return document(self.title, top + "\n".join(body), head)

    def save(self, path) -> Path:
        """Write the self-contained page and return its path."""
        return write(path, self.html)

    def __repr__(self) -> str:
        return f"<Report {self.title!r}: {len(self._blocks)} blocks>"


def export_html(obj, path, title: Optional[str] = None) -> Path:
    """Save a plotly figure, a TokenView or a Report as a self-contained HTML page."""
    if isinstance(obj, Report):
        return obj.save(path)
    if isinstance(obj, TokenView):
        if title is not None:
            obj = TokenView(obj.panels, obj.scale, title)
        return obj.save(path)
    if isinstance(obj, go.Figure):
        page = obj.to_html(full_html=True, include_plotlyjs=True, config=_FIGURE_CONFIG)
        if title is not None:
            page = page.replace("<head>", f"<head><title>{esc(title)}</title>", 1)
        return write(path, page)
    raise TypeError(f"cannot export {type(obj).__name__}: expected a plotly Figure, "
                    "a TokenView or a Report")
