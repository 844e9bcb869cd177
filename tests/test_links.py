"""The GitHub address lives in lrkit/links.py; the README's Colab badges and the
notebooks' install cells must agree with it (a fork changes the constant, and
this test names every place still pointing elsewhere)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lrkit import links

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = ("01_sampling", "02_critical_moments", "03_finetuning", "04_evaluation", "05_choosing_a_pair")
# any Colab-from-GitHub link or pip-from-GitHub spec, whatever repository it names
ADDRESS = re.compile(r"colab\.research\.google\.com/github/[^\s)\"'`]+|git\+https://github\.com/[^\s)\"'`]+")


def _documents() -> dict[str, str]:
    texts = {"README.md": (REPO / "README.md").read_text()}
    for path in sorted((REPO / "docs").glob("*.md")) + [REPO / "CONTRIBUTING.md"]:
        if path.exists():
            texts[str(path.relative_to(REPO))] = path.read_text()
    for name in NOTEBOOKS:
        nb = json.loads((REPO / "notebooks" / f"{name}.ipynb").read_text())
        texts[f"notebooks/{name}.ipynb"] = "\n".join("".join(c["source"]) for c in nb["cells"])
        texts[f"notebooks/{name}.py"] = (REPO / "notebooks" / f"{name}.py").read_text()
    return texts


def test_every_address_is_the_constant():
    allowed = {links.INSTALL_SOURCE} | {links.colab_url(n).split("://")[1] for n in NOTEBOOKS}
    stray = [(where, found) for where, text in _documents().items() for found in ADDRESS.findall(text)
             if found not in allowed]
    assert stray == [], f"addresses that do not follow lrkit/links.py: {stray}"


def test_the_readme_has_each_notebooks_badge():
    readme = (REPO / "README.md").read_text()
    for name in NOTEBOOKS:
        assert links.colab_badge(name) in readme, name


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_each_notebook_opens_with_its_badge_and_installs_from_the_constant(name):
    nb = json.loads((REPO / "notebooks" / f"{name}.ipynb").read_text())
    first_markdown = "".join(next(c for c in nb["cells"] if c["cell_type"] == "markdown")["source"])
    assert links.colab_badge(name) in first_markdown
    colab_cell = "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])
    assert f'"{links.INSTALL_SOURCE}"' in colab_cell


def test_the_check_catches_another_address():
    assert ADDRESS.findall("[x](https://colab.research.google.com/github/someone/fork/blob/main/n.ipynb)") == \
        ["colab.research.google.com/github/someone/fork/blob/main/n.ipynb"]
    assert ADDRESS.findall('"lrkit @ git+https://github.com/someone/fork"') == ["git+https://github.com/someone/fork"]
