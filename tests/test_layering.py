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


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_of(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def private_crossings(root: Path, package: str = "lrkit") -> list[str]:
    """Each place where a module of ``package`` reaches for another module's private name:
    ``from lrkit.X import _name``, ``lrkit.X._name`` / ``alias._name`` on an imported lrkit
    module, or a private module (``lrkit.X._y``) imported from outside its own package."""
    import ast

    modules = {_module_of(p, root) for p in (root / package).rglob("*.py")}
    found = []
    for path in sorted((root / package).rglob("*.py")):
        me = _module_of(path, root)
        home = me if path.name == "__init__.py" else me.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        where = f"{path.relative_to(root)}"
        aliases = {}  # local name -> the lrkit module it is bound to

        def private_module(name: str) -> bool:
            parts = name.split(".")
            for i, part in enumerate(parts):
                if _private(part):
                    owner = ".".join(parts[:i])  # a private module is its package's own
                    return not (home == owner or home.startswith(owner + "."))
            return False

        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == package:
                if private_module(node.module):
                    found.append(f"{where}:{node.lineno}: imports the private module {node.module}")
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    if _private(alias.name) and node.module != me:
                        found.append(f"{where}:{node.lineno}: from {node.module} import {alias.name}")
                    if target in modules:
                        aliases[alias.asname or alias.name] = target
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == package:
                        if private_module(alias.name):
                            found.append(f"{where}:{node.lineno}: imports the private module {alias.name}")
                        aliases[alias.asname or package] = alias.name if alias.asname else package
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                dotted, value = [], node.value
                while isinstance(value, ast.Attribute):
                    dotted.insert(0, value.attr)
                    value = value.value
                if isinstance(value, ast.Name) and value.id in aliases:
                    owner = ".".join([aliases[value.id], *dotted])
                    if owner in modules and owner != me:
                        found.append(f"{where}:{node.lineno}: {owner}.{node.attr}")
    return found


def test_no_module_reaches_for_another_modules_private_names():
    """What crosses modules is public: a private name (``_x``) is its module's own."""
    assert private_crossings(REPO) == []


def test_the_private_name_check_catches_each_form(tmp_path):
    package = tmp_path / "lrkit"
    (package / "maths").mkdir(parents=True)
    (package / "viz").mkdir()
    for init in (package, package / "maths", package / "viz"):
        (init / "__init__.py").write_text("")
    (package / "maths" / "divergence.py").write_text("def _helper():\n    return 1\n\n\ndef own():\n    return _helper()\n")
    (package / "viz" / "_html.py").write_text("def esc(text):\n    return text\n")
    (package / "viz" / "tokens.py").write_text("from lrkit.viz._html import esc\n")  # its own package's: fine
    (package / "stages.py").write_text(
        "import lrkit.maths.divergence\n"
        "import lrkit.maths.divergence as d\n"
        "from lrkit.maths import divergence\n"
        "from lrkit.maths.divergence import _helper, own\n"
        "from lrkit.viz._html import esc\n"
        "a = lrkit.maths.divergence._helper()\n"
        "b = d._helper()\n"
        "c = divergence._helper()\n"
        "e = divergence.own() + d.__name__\n")
    assert private_crossings(tmp_path) == [
        "lrkit/stages.py:4: from lrkit.maths.divergence import _helper",
        "lrkit/stages.py:5: imports the private module lrkit.viz._html",
        "lrkit/stages.py:6: lrkit.maths.divergence._helper",
        "lrkit/stages.py:7: lrkit.maths.divergence._helper",
        "lrkit/stages.py:8: lrkit.maths.divergence._helper",
    ]
