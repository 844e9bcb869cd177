"""The Makefile's set-up (README): ``make`` keeps the torch of the interpreter it is given
instead of installing torch==2.13.0 beside it, and ``make browser`` installs nothing and
fails nothing where there is no apt-get (or with BROWSER=no): the two browser tests then
skip, saying why."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


@pytest.mark.slow
def test_make_install_keeps_the_torch_of_the_interpreter_it_is_given(tmp_path):
    import torch

    venv = tmp_path / "venv"
    done = subprocess.run([MAKE, "install", f"VENV={venv}", f"PYTHON={sys.executable}"], cwd=REPO,
                          capture_output=True, text=True, timeout=1200)
    if done.returncode != 0 and "No matching distribution" in done.stderr:
        pytest.skip(f"pip needs PyPI for the editable build: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "keeping the torch of" in done.stdout
    probe = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import lrkit, torch; print(torch.__file__); print(lrkit.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path,
                           env={"PATH": os.environ.get("PATH", "")})
    torch_file, lrkit_file = probe.stdout.split()
    assert Path(torch_file) == Path(torch.__file__), "the caller's torch, not a second one"
    assert not list(venv.glob("lib/python*/site-packages/torch-*.dist-info"))
    assert Path(lrkit_file).resolve() == (REPO / "lrkit" / "__init__.py").resolve()


@pytest.mark.parametrize("variables, says", [
    ({"BROWSER": "no"}, "BROWSER=no: no chromium installed; the page and JupyterLab tests skip"),
    ({}, "no chromium and no apt-get here: the page and JupyterLab tests skip"),
])
def test_make_browser_without_apt_get_or_with_browser_no_installs_nothing_and_passes(tmp_path, variables, says):
    """PATH holds only an empty folder: no chromium, no apt-get, no sudo."""
    env = {"PATH": str(tmp_path), **variables}
    done = subprocess.run([MAKE, "-s", "browser"], cwd=REPO, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(says)
