"""Self-contained HTML export, and a real browser opening the exported page."""
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from plotly.offline import get_plotlyjs

from lrkit.viz import (Report, export_html, kl_along_rollout, kl_histogram, side_by_side,
                       token_view)
from synthetic_steps import make_steps

PLOTLY_HEAD = get_plotlyjs()[:200]


@pytest.fixture(scope="module")
def steps():
    return make_steps(4, 40, seed=31).steps


def build_report(steps):
    return (Report("lrkit report <test>", subtitle="synthetic & small")
            .add_text("First paragraph.\n\nSecond <paragraph>.", heading="About")
            .add_figure(kl_histogram(steps), heading="KL histogram", caption="beta = 0.4")
            .add_figure(kl_along_rollout(steps, "p0001"), heading="One rollout")
            .add_token_view(token_view(steps, "p0001"), heading="Token view")
            .add_table(pd.DataFrame({"name": ["a<b>", "c"], "kl": [0.123456, 2.0]}),
                       heading="Table")
            .add_summary({"records": 12, "share kept": 0.2345, "note": "x < y"},
                         heading="Summary"))


def external_references(page: str):
    """Links the page itself would follow (plotly.js's own strings do not count)."""
    markup = re.sub(r"(<script[^>]*>).*?(</script>)", r"\1\2", page, flags=re.S)
    return re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//[^"' >]*""", markup)


def test_report_is_self_contained_and_escaped(tmp_path, steps):
    path = build_report(steps).save(tmp_path / "report.html")
    page = path.read_text(encoding="utf-8")
    assert page.count(PLOTLY_HEAD) == 1, "plotly.js inlined exactly once"
    assert page.count('class="plotly-graph-div"') == 2
    assert external_references(page) == []
    assert "<title>lrkit report &lt;test&gt;</title>" in page
    assert "<p>Second &lt;paragraph&gt;.</p>" in page
    assert "a&lt;b&gt;" in page and "0.1235" in page
    assert "<th>share kept</th><td>0.2345</td>" in page and "x &lt; y" in page
    assert 'class="lrk-view"' in page
    assert '<a href="#kl-histogram">KL histogram</a>' in page


def test_page_without_figures_has_no_script(tmp_path, steps):
    page = Report("text only").add_text("hello").add_summary({"a": 1}).html
    assert "<script" not in page


def test_export_html_each_kind(tmp_path, steps):
    fig_page = export_html(kl_histogram(steps), tmp_path / "fig.html", title="KL").read_text()
    assert fig_page.count(PLOTLY_HEAD) == 1 and "<title>KL</title>" in fig_page
    assert external_references(fig_page) == []
    view = side_by_side({"a": steps, "b": steps}, "p0002")
    view_page = export_html(view, tmp_path / "view.html", title="two").read_text()
    assert "<script" not in view_page and "<title>two</title>" in view_page
    report_page = export_html(Report("r"), tmp_path / "r.html").read_text()
    assert "<h1>r</h1>" in report_page
    with pytest.raises(TypeError, match="cannot export"):
        export_html(object(), tmp_path / "x.html")


def _chromium():
    path = os.environ.get("LRKIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    return path if Path(path).exists() else None


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@pytest.mark.skipif(_chromium() is None, reason="Debian's chromium is not installed "
                    "(apt-get install chromium, or set LRKIT_CHROMIUM)")
def test_exported_report_renders_in_headless_chromium(tmp_path, steps):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    path = build_report(steps).save(tmp_path / "report.html")
    errors, outside = [], []
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=_chromium(), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1200, "height": 900})
        try:
            page = context.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))

            def offline(route):  # the page must not need the network
                if not route.request.url.startswith(("file:", "data:", "blob:")):
                    outside.append(route.request.url)
                    return route.abort()
                return route.continue_()

            page.route("**/*", offline)
            page.goto(path.resolve().as_uri())
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=20000)
            plots = page.locator(".js-plotly-plot").count()
            bars = page.locator(".js-plotly-plot .bars path").count()
            body = page.inner_text("body")
            token = page.locator(".lrk-tok.lrk-kept[data-step]").first
            tip = token.locator(".lrk-tip")
            assert not tip.is_visible()
            token.hover()
            tip_visible = tip.is_visible()
            tip_text = tip.inner_text()
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            context.close()
    assert errors == [], f"script errors in the page: {errors}"
    assert outside == [], f"the page reached for the network: {outside}"
    assert plots == 2 and bars > 0, "plots did not render"
    assert "lrkit report <test>" in body and "Second <paragraph>." in body
    assert tip_visible and "expert top-5" in tip_text and "soft label" in tip_text
    assert shot.stat().st_size > 10_000
