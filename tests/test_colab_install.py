"""The notebooks' Colab install cell (tests/colab_install.py runs it as Colab does).

What it must do on Colab: install lrkit from ``LRKIT_SOURCE`` (a git URL by default, a
folder, or an uploaded .zip) with lrkit's runtime needs only (no ``[notebooks]`` extra,
so no jupyterlab and no ipywidgets 8), never upgrade Colab's torch, ipywidgets or plotly
(pip constraints pin them), and mount Drive first when a folder it is told to use
lies there. The slow test runs the cell in a venv that sees this interpreter's packages
as installed, so the install adds lrkit alone (it needs PyPI for the build's setuptools).
"""
from __future__ import annotations

import ast

import pytest

from colab_install import (
    REPO, fake_colab, freeze, install_cell, installed_here, make_venv, own_site_packages, probe, run_install_cell,
    zip_checkout)
from lrkit import links


def _pip_install_calls(source: str) -> list[list]:
    """The argument lists of the cell's ``subprocess.run`` calls that run pip (names as names)."""
    calls = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.List):
            items = [e.value if isinstance(e, ast.Constant) else ast.unparse(e) for e in node.args[0].elts]
            if "pip" in items:
                calls.append(items)
    return calls


def test_the_cell_installs_lrkit_alone_from_lrkit_source_under_constraints():
    cell = install_cell()
    calls = _pip_install_calls(cell)
    assert len(calls) == 1, calls
    args = calls[0][calls[0].index("install") + 1:]
    assert args[-1] == "source" and "-c" in args, args
    assert f'os.environ.get("LRKIT_SOURCE", "{links.INSTALL_SOURCE}")' in cell, "the default is links.INSTALL_SOURCE"
    assert not any(word in cell for word in ("[notebooks]", "jupyterlab", "--upgrade", "-U ")), \
        "no extra, no jupyterlab, no upgrade on Colab"
    assert 'for name in ("torch", "ipywidgets", "plotly")' in cell, "Colab's three keep their versions"
    assert 'drive.mount("/content/drive")' in cell


@pytest.mark.slow
def test_the_cell_installs_from_a_folder_and_a_zip_and_changes_nothing_installed(tmp_path):
    """LRKIT_SOURCE = this checkout as a folder, then as GitHub's "Download ZIP" archive:
    the venv ends with lrkit added and every package it saw before at its version
    (torch, ipywidgets and plotly included), and Drive was mounted for LRKIT_HOME there."""
    zipped = zip_checkout(tmp_path / "lrkit-main.zip")
    for label, source in (("folder", str(REPO)), ("zip", str(zipped))):
        python = make_venv(tmp_path / label / "venv", layer_on=own_site_packages())
        before = freeze(python)
        done, calls = run_install_cell(python, source, tmp_path / label / "work",
                                       LRKIT_HOME="/content/drive/MyDrive/lrkit")
        if done.returncode != 0 and ("No matching distribution" in done.stderr or "connection" in done.stderr.lower()):
            pytest.skip(f"the install needs PyPI (setuptools for the build): {done.stderr.strip().splitlines()[-1]}")
        assert done.returncode == 0, done.stderr[-3000:]
        after = freeze(python)
        assert {k: after.get(k) for k in before if k != "lrkit"} == {k: v for k, v in before.items() if k != "lrkit"}
        assert installed_here(python) == ["lrkit"], "the install added lrkit alone (no jupyterlab, no upgrade)"
        assert calls == ["drive.mount /content/drive", "output.enable_custom_widget_manager"], calls
        keeps = open("/tmp/lrkit-keeps.txt").read().split()
        assert sorted(k.split("==")[0] for k in keeps) == ["ipywidgets", "plotly", "torch"]
        assert all(f"{name}=={before[name]}" in keeps for name in ("torch", "ipywidgets", "plotly"))
        found = probe(python, tmp_path / label / "work")
        assert str((tmp_path / label / "venv").resolve()) in found["import_lrkit"]["lrkit"], found
        assert found["pair_list_ok"], "the installed wheel has the named pairs and the bundled toy pairs"


def test_the_fake_colab_records_calls(tmp_path):
    """The stand-in the slow test relies on: google.colab's two calls are logged, and
    google stays a namespace package (protobuf's google.protobuf still imports)."""
    import subprocess
    import sys

    log = tmp_path / "calls.log"
    code = ("import google.colab\nfrom google.colab import drive, output\n"
            "drive.mount('/content/drive'); output.enable_custom_widget_manager()\n"
            "import google.protobuf\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path,
                   env={"PYTHONPATH": str(fake_colab(tmp_path / "fake")), "FAKE_COLAB_LOG": str(log)})
    assert log.read_text().splitlines() == ["drive.mount /content/drive", "output.enable_custom_widget_manager"]
