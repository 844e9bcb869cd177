"""The notebooks' Colab install cell, run the way Colab runs it: helpers for the tests and a
script to run by hand (it needs PyPI):

    python tests/colab_install.py VENV [--python PY] [--torch SPEC] [--colab-pins]
                                       [--constraint PKG==VER ...] [--source PATH_ZIP_OR_URL]

1. a fresh venv (Python PY, default this one) gets SPEC first (default ``torch==2.13.0``;
   Colab's torch is preinstalled; a CPU wheel where pip finds one) and, with ``--colab-pins``,
   the packages of lrkit's dependencies and the notebooks' display stack (ipywidgets, ipykernel)
   that Colab's GPU runtime ships, at Colab's versions (``tests/fixtures/colab/pip-freeze.gpu.txt``,
   Google's published freeze: ipywidgets 7.7.1, plotly 5.24.1, transformers 5.15.0 ...), and
   every other package lrkit's install would pull that Colab has, at Colab's version;
2. the notebooks' first code cell (read from ``notebooks/01_sampling.ipynb``) runs in it with
   ``google.colab`` faked (its calls logged) and ``LRKIT_SOURCE`` = SOURCE (default: this
   checkout, as a folder);
3. the script checks that every package the venv had keeps its version, that nothing CUDA
   and no jupyterlab was added, that ``import lrkit`` is the installed copy and that
   ``lrkit pair list`` works; it prints one JSON summary and exits 1 when a check fails.

``--constraint`` pins more packages for the install (e.g. the declared lower bounds).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
COLAB_FREEZE = REPO / "tests" / "fixtures" / "colab" / "pip-freeze.gpu.txt"
CUDA = re.compile(r"^(nvidia-.*|triton|cuda-.*)$")

FAKE_COLAB = {
    "__init__.py": "",
    "output.py": (
        "import os\n"
        "def enable_custom_widget_manager():\n"
        "    open(os.environ['FAKE_COLAB_LOG'], 'a').write('output.enable_custom_widget_manager\\n')\n"),
    "drive.py": (
        "import os\n"
        "def mount(path, **kwargs):\n"
        "    open(os.environ['FAKE_COLAB_LOG'], 'a').write(f'drive.mount {path}\\n')\n"),
}
"""``google.colab`` as the install cell uses it (a namespace package ``google`` stays protobuf's too)."""


def install_cell() -> str:
    """The source of the notebooks' first code cell."""
    nb = json.loads((REPO / "notebooks" / "01_sampling.ipynb").read_text())
    return "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def colab_pins(path: Path = COLAB_FREEZE) -> dict[str, str]:
    """Colab's ``name==version`` pins (direct URLs and local ``+cu128`` builds left out)."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "==" in line and "@" not in line:
            name, version = line.split("==", 1)
            if "+" not in version:
                pins[normal(name)] = version
    return pins


def write_constraints(pins: dict[str, str], folder: Path) -> Path:
    path = folder / "colab-constraints.txt"
    path.write_text("".join(f"{name}=={version}\n" for name, version in sorted(pins.items())))
    return path


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / "python"


def site_packages(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         check=True, capture_output=True, text=True).stdout.strip()
    return Path(out)


def make_venv(venv: Path, python: str = sys.executable, layer_on: Sequence[str] = ()) -> Path:
    """A fresh venv with pip; ``layer_on``: folders whose packages it sees as installed
    (a .pth file), so an install there adds only what those lack (pip, setuptools included:
    the venv gets none of its own to shadow theirs)."""
    subprocess.run([python, "-m", "venv", *(["--without-pip"] if layer_on else []), str(venv)], check=True,
                   capture_output=True)
    python = venv_python(venv)
    if layer_on:
        (site_packages(python) / "_layer_on.pth").write_text("".join(f"{p}\n" for p in layer_on))
    return python


def own_site_packages() -> list[str]:
    """The site-packages folders of the interpreter running this (to layer a venv on)."""
    return sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})


def freeze(python: Path) -> dict[str, str]:
    out = subprocess.run([str(python), "-m", "pip", "list", "--format", "json"], check=True,
                         capture_output=True, text=True).stdout
    return {normal(p["name"]): p["version"] for p in json.loads(out)}


def installed_here(python: Path) -> list[str]:
    """Distributions installed into the venv itself (not those it sees through a layer)."""
    folder = site_packages(python)
    return sorted(normal(p.name.split("-")[0]) for p in folder.glob("*.dist-info"))


def fake_colab(folder: Path) -> Path:
    """A folder to put on PYTHONPATH that holds ``google/colab`` (no ``google/__init__.py``)."""
    package = folder / "google" / "colab"
    package.mkdir(parents=True, exist_ok=True)
    for name, text in FAKE_COLAB.items():
        (package / name).write_text(text)
    return folder


def zip_checkout(path: Path, top: str = "lrkit-main") -> Path:
    """This checkout's files (tracked and new, none ignored) as GitHub's "Download ZIP" packs them:
    one top folder."""
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           capture_output=True).stdout.decode().split("\0")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            if name and (REPO / name).is_file():
                archive.write(REPO / name, f"{top}/{name}")
    return path


def run_install_cell(python: Path, source: Optional[str], workdir: Path, **env) -> tuple[subprocess.CompletedProcess,
                                                                                          list[str]]:
    """The install cell in ``python``'s venv as on Colab (``google.colab`` imported first),
    with ``LRKIT_SOURCE=source`` (None: the cell's default) and ``env``; the result and the
    ``google.colab`` calls it made."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "colab-calls.log"
    log.write_text("")
    variables = {k: v for k, v in os.environ.items() if not k.startswith(("LRKIT_", "PYTHON", "VIRTUAL_ENV"))}
    variables.update({"PYTHONPATH": str(fake_colab(workdir / "fake")), "FAKE_COLAB_LOG": str(log), **env})
    if source is not None:
        variables["LRKIT_SOURCE"] = source
    done = subprocess.run([str(python), "-c", "import google.colab\n" + install_cell()], cwd=workdir,
                          env=variables, capture_output=True, text=True)
    return done, log.read_text().splitlines()


def probe(python: Path, workdir: Path) -> dict:
    """Where the venv imports lrkit from, and whether ``lrkit pair list`` works there."""
    code = ("import json, lrkit, torch; print(json.dumps({'lrkit': lrkit.__file__, 'torch': torch.__version__, "
            "'cuda_build': torch.version.cuda}))")
    imported = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd=workdir,
                              env={"PATH": os.environ.get("PATH", "")})
    pairs = subprocess.run([str(python), "-m", "lrkit", "pair", "list"], capture_output=True, text=True,
                           cwd=workdir, env={"PATH": os.environ.get("PATH", "")})
    return {"import_lrkit": json.loads(imported.stdout) if imported.returncode == 0 else imported.stderr[-500:],
            "pair_list_ok": pairs.returncode == 0 and "qwen2.5-math-1.5b" in pairs.stdout}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("venv")
    parser.add_argument("--python", default=sys.executable, help="interpreter of the venv (Colab: 3.13)")
    parser.add_argument("--torch", default="torch==2.13.0", help="torch requirement or wheel installed first")
    parser.add_argument("--colab-pins", action="store_true",
                        help="preinstall lrkit's dependencies and ipywidgets/ipykernel at Colab's versions")
    parser.add_argument("--constraint", action="append", default=[])
    parser.add_argument("--source", default=str(REPO), help="LRKIT_SOURCE: a folder, a .zip or a git URL")
    args = parser.parse_args(argv)
    venv = Path(args.venv)
    work = Path(tempfile.mkdtemp(prefix="lrkit-colab-install-"))
    python = make_venv(venv, args.python)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", args.torch], check=True)
    if args.colab_pins:
        try:
            import tomllib
        except ImportError:  # Python 3.10
            import tomli as tomllib

        # Colab's versions of everything but torch's own stack (this torch stands in for Colab's)
        with_torch = freeze(python)
        pins = {k: v for k, v in colab_pins().items() if k not in with_torch}
        wanted = [re.split(r"[<>=!~ \[;]", d)[0] for d in
                  tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]]
        constraints = write_constraints(pins, work)
        colab_has = [d for d in wanted + ["ipywidgets", "ipykernel"] if normal(d) in pins]
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-c", str(constraints), *colab_has], check=True)
        # and whatever else lrkit's install would pull that Colab has, at Colab's version
        report = work / "plan.json"
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--dry-run", "--report", str(report),
                        str(REPO)], check=True, capture_output=True)
        planned = {normal(i["metadata"]["name"]) for i in json.loads(report.read_text())["install"]}
        more = sorted(name for name in planned if name in pins)
        if more:
            subprocess.run([str(python), "-m", "pip", "install", "-q", "-c", str(constraints), *more], check=True)
    before = freeze(python)
    extra = {}
    if args.constraint:
        more = work / "more-constraints.txt"
        more.write_text("\n".join(args.constraint) + "\n")
        extra["PIP_CONSTRAINT"] = str(more)
    done, calls = run_install_cell(python, args.source, work, **extra)
    after = freeze(python)
    summary = {
        "python": subprocess.run([str(python), "-c", "import sys; print(sys.version.split()[0])"],
                                 capture_output=True, text=True).stdout.strip(),
        "source": args.source, "install_ok": done.returncode == 0, "install_stderr": done.stderr[-1500:],
        "colab_calls": calls,
        "changed": {k: [before[k], after.get(k)] for k in before if after.get(k) != before[k]},
        "added": {k: v for k, v in after.items() if k not in before},
        "cuda_added": sorted(k for k in after if CUDA.match(k) and k not in before),
        "versions": {k: after.get(k) for k in ("torch", "ipywidgets", "plotly", "transformers", "peft",
                                                "accelerate", "datasets", "huggingface-hub", "lrkit")},
        **probe(python, work),
    }
    lrkit_file = summary["import_lrkit"].get("lrkit", "") if isinstance(summary["import_lrkit"], dict) else ""
    summary["lrkit_installed_not_the_checkout"] = str(venv.resolve()) in str(Path(lrkit_file).resolve())
    summary["ok"] = (summary["install_ok"] and not summary["changed"] and not summary["cuda_added"]
                     and "jupyterlab" not in summary["added"] and summary["lrkit_installed_not_the_checkout"]
                     and summary["pair_list_ok"])
    print(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
