"""JupyterLab itself, started here, opens notebook 02 in headless Chromium, runs
every cell from the Run menu and must show the explorer's widgets, with no error
output. A screenshot is saved to the test's folder and to
runs/screenshots/jupyterlab_02.png.

The server listens on 127.0.0.1 only, with a random token, serves a copy of the
notebooks, keeps its settings and workspaces in the test's folder, and is always
stopped.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from markers import needs_toy

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = "02_critical_moments.ipynb"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
RUN_TIMEOUT_MS = 600_000
ERROR_OUTPUTS = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
SLIDER_OR_ERROR = """() => document.querySelector('.jp-OutputArea .widget-slider') !== null
  || [...document.querySelectorAll("%s")].some(e => /Traceback|Error/.test(e.innerText))""" % ERROR_OUTPUTS
KERNEL_IDLE = """() => {
  const bar = document.querySelector('#jp-main-statusbar');
  return bar !== null && /Python 3 \\(ipykernel\\) \\| Idle/.test(bar.innerText);
}"""


def _chromium():
    path = os.environ.get("LRKIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    return path if Path(path).exists() else None




def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_settings(settings_dir: Path) -> None:
    """No news prompt in the screenshot; everything else is JupyterLab's default."""
    folder = settings_dir / "@jupyterlab" / "apputils-extension"
    folder.mkdir(parents=True)
    (folder / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer within {timeout}s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.mark.skipif(_chromium() is None, reason="Debian's chromium is not installed "
                    "(apt-get install chromium, or set LRKIT_CHROMIUM)")
@needs_toy
def test_jupyterlab_runs_notebook_02_and_renders_the_explorer(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed")
    root = tmp_path / "notebooks"
    root.mkdir()
    shutil.copy(REPO / "notebooks" / NOTEBOOK, root / NOTEBOOK)
    _write_settings(tmp_path / "lab-settings")
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "LRKIT_RUN_DIR": str(tmp_path / "runs"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
           "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"),
           "TQDM_DISABLE": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    log = tmp_path / "jupyterlab.log"
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}", "--allow-root",
               "--ServerApp.open_browser=False", "--LabApp.news_url=None",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    shots = [tmp_path / "jupyterlab_02.png", REPO / "runs" / "screenshots" / "jupyterlab_02.png"]
    with log.open("w") as handle:
        proc = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=root)
    errors = []
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for_server(f"{base}/api/status?token={token}", proc, log)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1100})
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}")
                page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
                # Run All before the kernel is up would run nothing
                page.wait_for_function(KERNEL_IDLE, timeout=120_000)
                page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
                page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
                page.wait_for_function(SLIDER_OR_ERROR, timeout=RUN_TIMEOUT_MS)
                page.wait_for_function(KERNEL_IDLE, timeout=RUN_TIMEOUT_MS)
                explorer = page.locator(".jp-OutputArea .widget-vbox").last
                explorer.evaluate("e => e.closest('.jp-Cell').scrollIntoView({block: 'start'})")
                page.wait_for_timeout(1500)
                explorer.wait_for(state="visible", timeout=30_000)
                sliders = page.locator(".jp-OutputArea .widget-slider").count()
                dropdowns = page.locator(".jp-OutputArea .widget-dropdown").count()
                explorer_text = explorer.inner_text()
                stderr = page.locator(ERROR_OUTPUTS)
                failures = [t for t in stderr.all_inner_texts() if "Traceback" in t or "Error" in t]
                unrun = page.locator(".jp-InputPrompt", has_text="[ ]").count()
                plots = page.locator(".jp-OutputArea .js-plotly-plot").count()
                for shot in shots:
                    shot.parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(shot))
            finally:
                browser.close()
    finally:
        _stop(proc)
    assert failures == [], f"error output in the notebook: {failures[:2]}"
    assert sliders >= 3 and dropdowns >= 2, f"explorer controls missing: {sliders} sliders, {dropdowns} dropdowns"
    assert "records" in explorer_text and "tuned tokens" in explorer_text, explorer_text[:500]
    assert unrun == 0, f"{unrun} cells did not run"
    assert plots >= 1, "no plotly figure rendered"
    assert shots[0].stat().st_size > 20_000
