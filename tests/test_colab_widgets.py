"""The explorer and every figure in Colab's display stack, run in a Jupyter kernel.

Colab's GPU runtime ships ipywidgets 7.7.1 (with IPython 7.34.0, ipykernel 6.17.1,
traitlets 5.7.1), plotly 5.24.1, pandas 2.2.3 and numpy 2.1.3 (Google's published
freeze, tests/fixtures/colab/pip-freeze.gpu.txt, which pins every package here). This
test builds a venv with exactly those (no torch: lrkit.viz needs none), executes a
notebook in its kernel with nbclient and checks that the explorer displays as a widget,
answers its sliders, and that each figure comes out as a plotly bundle, with no error.
The venv is cached (``$LRKIT_COLAB_VENV``, else ``~/.cache/lrkit/colab-widgets-py3X-<pins>``;
``$LRKIT_COLAB_PYTHON`` picks its interpreter, e.g. python3.13 as on Colab); building it
needs PyPI, and the test skips, saying so, where it cannot be built. ipywidgets 8 is
covered by tests/test_viz_explorer.py and, in JupyterLab 4, by tests/test_jupyterlab.py.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from colab_install import REPO, colab_pins, venv_python, write_constraints
from synthetic_steps import make_steps

nbformat = pytest.importorskip("nbformat")

STACK = ("ipywidgets", "ipykernel", "ipython", "nbclient", "nbformat", "plotly", "pandas", "numpy", "filelock")
"""What the venv installs; pip constraints hold each, and their dependencies, at Colab's versions."""
EXPECTED = {"ipywidgets": "7.7.1", "IPython": "7.34.0", "plotly": "5.24.1", "pandas": "2.2.3", "numpy": "2.1.3"}
WIDGET = "application/vnd.jupyter.widget-view+json"
PLOTLY = "application/vnd.plotly.v1+json"
RUNNER = """
import json, sys
import nbformat
from nbclient import NotebookClient
nb = nbformat.v4.new_notebook()
nb.cells = [nbformat.v4.new_code_cell(source) for source in json.load(open(sys.argv[1]))]
NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True).execute()
nbformat.write(nb, sys.argv[2])
"""
FIGURES = ("kl_histogram(steps, beta=0.4)", "kl_along_rollout(steps, 'p0001', beta=0.4)", "entropy_scatter(steps)",
           "kl_by_agreement(steps, beta=0.4)", "kept_share_by_beta(steps, beta=0.4)",
           "step_distributions(steps.iloc[5], alpha=0.2)",
           "loss_curve([{'step': s, 'loss': 1 / s} for s in range(1, 20)])",
           "accuracy_comparison([dict(name='base', accuracy=0.4, low=0.35, high=0.45), "
           "dict(name='tuned', accuracy=0.6, low=0.55, high=0.65)])")


def _venv() -> Path:
    python = os.environ.get("LRKIT_COLAB_PYTHON", sys.executable)
    version = subprocess.run([python, "-c", "import sys; print(f'{sys.version_info[0]}{sys.version_info[1]}')"],
                             capture_output=True, text=True, check=True).stdout.strip()
    pins = colab_pins()
    key = hashlib.sha256(json.dumps([STACK, pins], sort_keys=True).encode()).hexdigest()[:10]
    cache = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "lrkit"
    folder = Path(os.environ.get("LRKIT_COLAB_VENV") or cache / f"colab-widgets-py{version}-{key}")
    ready = folder / ".lrkit-ready"
    if ready.exists():
        return venv_python(folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([python, "-m", "venv", str(folder)], check=True, capture_output=True)
    constraints = write_constraints(pins, folder)
    done = subprocess.run([str(venv_python(folder)), "-m", "pip", "install", "-c", str(constraints), *STACK],
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        lines = [line.strip() for line in (done.stdout + done.stderr).splitlines()
                 if line.strip() and "WARNING" not in line]
        cause = next((after for line, after in zip(lines, lines[1:]) if "conflict is caused by" in line),
                     lines[-1] if lines else "")
        pytest.skip(f"cannot build the Colab-pinned venv on Python {version[0]}.{version[1:]} (pip needs PyPI, "
                    f"and Colab's pins are for its Python 3.13): {cause}")
    ready.write_text(json.dumps(pins, sort_keys=True))
    return venv_python(folder)


@pytest.fixture(scope="module")
def colab_python():
    return _venv()


def _execute(python: Path, cells: list[str], tmp_path: Path):
    (tmp_path / "cells.json").write_text(json.dumps(cells))
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PYTHONPATH": str(REPO),
           "JUPYTER_DATA_DIR": str(tmp_path / "jupyter"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTER_PLATFORM_DIRS": "1", "OMP_NUM_THREADS": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    subprocess.run([str(python), "-c", RUNNER, str(tmp_path / "cells.json"), str(tmp_path / "out.ipynb")],
                   check=True, env=env, cwd=tmp_path, timeout=900)
    return nbformat.read(tmp_path / "out.ipynb", as_version=4)


def test_the_explorer_and_the_figures_display_with_colabs_ipywidgets_7(colab_python, tmp_path):
    steps = make_steps(n_problems=6, n_steps=24, seed=3).steps
    steps.to_json(tmp_path / "steps.jsonl", orient="records", lines=True)
    cells = [
        "import sys, IPython, ipywidgets, numpy, pandas, plotly\n"
        "print(sys.executable)\n"
        "print({m.__name__: m.__version__ for m in (ipywidgets, IPython, plotly, pandas, numpy)})",
        f"import pandas as pd\nsteps = pd.read_json({str(tmp_path / 'steps.jsonl')!r}, lines=True)\n"
        "from lrkit.viz import Explorer\nexplorer = Explorer(steps, beta=0.4, alpha=0.2, prompt_id='p0002')\nexplorer",
        "explorer.beta.value = 0.9\nexplorer.alpha.value = 0.5\nprint(explorer.state.records, explorer.state.prompt_id)",
        "explorer.show()",
        "from lrkit.viz import token_view\ntoken_view(steps, 'p0002', beta=0.4, alpha=0.2)",
        "from lrkit.viz import (accuracy_comparison, entropy_scatter, kept_share_by_beta, kl_along_rollout,\n"
        "                       kl_by_agreement, kl_histogram, loss_curve, step_distributions)",
        *FIGURES,
    ]
    nb = _execute(colab_python, cells, tmp_path)
    outputs = [cell.get("outputs", []) for cell in nb["cells"]]
    errors = [(i, o.get("ename"), o.get("evalue")) for i, out in enumerate(outputs) for o in out
              if o["output_type"] == "error" or (o["output_type"] == "stream" and o["name"] == "stderr"
                                                 and "Traceback" in o["text"])]
    assert errors == [], errors

    printed = "".join(o.get("text", "") for o in outputs[0] if o["output_type"] == "stream").splitlines()
    assert Path(printed[0]).parent == colab_python.parent, "the kernel ran in the Colab-pinned venv"
    assert json.loads(printed[1].replace("'", '"')) == EXPECTED

    def bundles(index):
        return [o["data"] for o in outputs[index] if o["output_type"] in ("execute_result", "display_data")]

    shown = bundles(1)
    assert len(shown) == 1 and WIDGET in shown[0], shown
    model_id = shown[0][WIDGET]["model_id"]
    state = nb["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert state[model_id]["model_name"] == "VBoxModel", "the bundle points at the explorer's box"
    sliders = [m for m in state.values() if m["model_name"] == "FloatSliderModel"]
    assert sorted(m["state"]["description"] for m in sliders) == ["\u03b1 (mask)", "\u03b2 (KL)"]
    # the sliders drive the counts: the selection rule by hand (KL >= beta, never step 0)
    expected = int(((steps["kl"] >= 0.9) & (steps["step"] > 0)).sum())
    assert printed_lines(outputs[2]) == [f"{expected} p0002"]
    assert [b[WIDGET]["model_id"] for b in bundles(3)] == [model_id], "show() displays the same widget"
    assert "lrk-view" in bundles(4)[0]["text/html"]
    # each figure a plotly bundle with its traces (the first one also loads plotly.js, as text/html)
    figures = [[b[PLOTLY] for b in bundles(i) if PLOTLY in b] for i in range(len(cells) - len(FIGURES), len(cells))]
    assert [len(f) for f in figures] == [1] * len(FIGURES) and all(f[0]["data"] for f in figures)


def printed_lines(outputs: list[dict]) -> list[str]:
    return "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream").splitlines()


NO_FLOCK = """
import errno, fcntl, sys
def no_flock(fd, operation):
    raise OSError(errno.ENOSYS, "Function not implemented")
fcntl.flock = no_flock
import filelock
from lrkit.runs import FolderBusyError, locked
"""
HOLD = NO_FLOCK + """
with locked(sys.argv[1], "test"):
    print("held", filelock.__version__, flush=True)
    sys.stdin.readline()
"""
TRY = NO_FLOCK + """
try:
    with locked(sys.argv[1], "evaluation"):
        print("entered")
except FolderBusyError as error:
    print("busy:", error)
"""


def test_the_soft_lock_fallback_with_colabs_filelock(colab_python, tmp_path):
    """filelock 3.32.3 (Colab's): where flock fails, lrkit.runs locks a folder by a lock file,
    refuses a second writer while it is held (naming the file to delete if its holder is
    gone) and lets it in once the holder released it."""
    folder = tmp_path / "run"
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([str(colab_python), "-c", HOLD, str(folder)], env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert holder.stdout.readline().split() == ["held", "3.32.3"]
        second = subprocess.run([str(colab_python), "-c", TRY, str(folder)], env=env, capture_output=True,
                                text=True, timeout=120)
    finally:
        _, holder_err = holder.communicate("\n", timeout=120)
    assert second.stdout.startswith("busy:") and f"delete {folder / '.lrkit.lock'}" in second.stdout
    assert holder_err.count("no flock on this filesystem") == 1 and "SoftFileLock" in holder_err
    assert not (folder / ".lrkit.lock").exists(), "released: the lock file is gone"
    third = subprocess.run([str(colab_python), "-c", TRY, str(folder)], env=env, capture_output=True, text=True,
                           timeout=120)
    assert third.stdout.strip() == "entered", third.stderr[-1000:]
