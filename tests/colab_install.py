"""A Colab-like install, checked; run by hand, it needs PyPI:

    python tests/colab_install.py VENV_DIR TORCH_SPEC [--constraint "transformers==4.56.0" ...]

1. a fresh venv gets TORCH_SPEC first (Colab's torch is preinstalled), e.g. a local
   CPU wheel ``/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl``;
2. the notebooks' own install cell (read from notebooks/01_sampling.ipynb) runs
   with this checkout in place of the GitHub URL, first with ``--dry-run --report``;
3. the script checks that the install keeps that torch, pulls no CUDA wheel
   (nvidia-*, triton, another torch) and leaves ``import lrkit`` and ``lrkit pair list``
   working; it prints one JSON summary and exits 1 when a check fails.

``--constraint`` pins packages for the install (e.g. the declared lower bounds).
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CUDA = re.compile(r"^(nvidia-.*|triton|torch|cuda-.*)$")


def install_cell_spec() -> list[str]:
    """The pip arguments of the notebooks' first code cell."""
    cell = next(c for c in json.loads((REPO / "notebooks" / "01_sampling.ipynb").read_text())["cells"]
                if c["cell_type"] == "code")
    import ast

    for node in ast.walk(ast.parse("".join(cell["source"]))):
        if isinstance(node, ast.List) and any(isinstance(e, ast.Constant) and e.value == "install" for e in node.elts):
            values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
            return values[values.index("install") + 1:]
    raise ValueError("no pip install list in the notebooks' first code cell")


def freeze(python: Path) -> dict:
    out = subprocess.run([str(python), "-m", "pip", "list", "--format", "json"], check=True,
                         capture_output=True, text=True).stdout
    return {re.sub(r"[-_.]+", "-", p["name"]).lower(): p["version"] for p in json.loads(out)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("venv")
    parser.add_argument("torch", help="torch requirement or wheel path installed first")
    parser.add_argument("--constraint", action="append", default=[])
    args = parser.parse_args(argv)
    venv = Path(args.venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", args.torch], check=True)
    before = freeze(python)

    spec = install_cell_spec()
    requirement = [s for s in spec if s.startswith("lrkit")]
    assert len(requirement) == 1 and "git+https://github.com/" in requirement[0], spec
    local = [re.sub(r"git\+https://github\.com/\S+", REPO.as_uri(), s) if s.startswith("lrkit") else s
             for s in spec]
    extra = []
    if args.constraint:
        constraints = Path(tempfile.mkstemp(suffix=".txt")[1])
        constraints.write_text("\n".join(args.constraint) + "\n")
        extra = ["-c", str(constraints)]
    report = venv / "install-report.json"
    subprocess.run([str(python), "-m", "pip", "install", "--dry-run", "--report", str(report), *extra,
                    *[s for s in local if s != "-q"]], check=True, capture_output=True)
    planned = {re.sub(r"[-_.]+", "-", i["metadata"]["name"]).lower(): i["metadata"]["version"]
               for i in json.loads(report.read_text())["install"]}
    subprocess.run([str(python), "-m", "pip", "install", *extra, *local], check=True)
    after = freeze(python)
    probe = subprocess.run([str(python), "-c", "import json, lrkit, torch, transformers, peft, accelerate, datasets; "
                            "print(json.dumps({'lrkit': lrkit.__file__, 'torch': torch.__version__, "
                            "'cuda_build': torch.version.cuda}))"], capture_output=True, text=True, cwd=venv)
    pairs = subprocess.run([str(venv / "bin" / "lrkit"), "pair", "list"], capture_output=True, text=True, cwd=venv)
    summary = {
        "install_cell": spec, "ran": local,
        "torch_before": before.get("torch"), "torch_after": after.get("torch"),
        "planned_cuda_or_torch": sorted(n for n in planned if CUDA.match(n)),
        "installed_cuda": sorted(n for n in after if CUDA.match(n) and n != "torch"),
        "versions": {k: after.get(k) for k in ("transformers", "peft", "accelerate", "datasets", "tokenizers",
                                                "huggingface-hub", "lrkit")},
        "import_lrkit": probe.stdout.strip() or probe.stderr[-500:],
        "lrkit_installed_not_the_checkout": str(venv) in probe.stdout,
        "pair_list_ok": pairs.returncode == 0 and "qwen2.5-math-1.5b" in pairs.stdout,
    }
    ok = (summary["torch_before"] == summary["torch_after"] and not summary["planned_cuda_or_torch"]
          and summary["lrkit_installed_not_the_checkout"]
          and not summary["installed_cuda"] and probe.returncode == 0 and summary["pair_list_ok"])
    summary["ok"] = ok
    print(json.dumps(summary, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
