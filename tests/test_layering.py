"""The architecture as a contract: lrkit's layers (pyproject.toml, [tool.importlinter])
import only downwards, and no two lrkit modules import each other in a cycle,
imports inside functions included (grimp, import-linter's graph, sees them all)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp  # noqa: F401  import-linter's graph; both come with the dev extra, so a missing one fails
import importlinter  # noqa: F401

REPO = Path(__file__).resolve().parents[1]


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("lint-imports")
    command = [str(exe)] if exe.exists() else [shutil.which("lint-imports") or "lint-imports"]
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(command + ["--config", str(root / "pyproject.toml"), "--no-cache"],
                          cwd=root, env=env, capture_output=True, text=True)


def import_cycles(root: Path, package: str = "lrkit") -> list[list[str]]:
    """Strongly connected components of more than one module in the package's import graph."""
    code = ("import json, sys, grimp\n"
            f"g = grimp.build_graph({package!r}, cache_dir=None)\n"
            "print(json.dumps({m: sorted(g.find_modules_directly_imported_by(m)) for m in g.modules}))\n")
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, check=True)
    import json
    graph = json.loads(out.stdout)
    return _sccs({m: [t for t in ts if t in graph] for m, ts in graph.items()})


def _sccs(graph: dict) -> list[list[str]]:
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]
    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_layers_import_only_downwards():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_import_cycles():
    assert import_cycles(REPO) == []


def test_the_checks_catch_an_upward_import(tmp_path):
    shutil.copytree(REPO / "lrkit", tmp_path / "lrkit", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    divergence = tmp_path / "lrkit" / "maths" / "divergence.py"
    divergence.write_text(divergence.read_text() + "\n\ndef _upward():\n    from lrkit.stages.training import train\n\n"
                          "    return train\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "lrkit.maths.divergence -> lrkit.stages.training" in result.stdout
    assert any({"lrkit.maths.divergence", "lrkit.stages.training"} <= set(c) for c in import_cycles(tmp_path))


def test_every_top_level_module_has_a_layer():
    """A module added beside the others without a place in the contract would escape it."""
    import re

    try:
        import tomllib
    except ImportError:  # Python 3.10: import-linter brings tomli, the parser tomllib came from
        import tomli as tomllib

    layers = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]["layers"]
    named = {name for layer in layers for name in re.findall(r"lrkit\.\w+", layer)}
    package = REPO / "lrkit"
    present = {f"lrkit.{p.stem}" for p in package.glob("*.py") if p.stem not in ("__init__", "__main__")}
    present |= {f"lrkit.{p.parent.name}" for p in package.glob("*/__init__.py")}
    assert present - named == set(), "add these to a layer in pyproject.toml's [tool.importlinter]"
    assert named - present == set(), "layers name modules that do not exist"
