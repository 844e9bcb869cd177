"""Where lrkit lives on GitHub: the one place the install URL and the Colab links
come from.

A fork changes ``GITHUB_REPO`` (and ``BRANCH`` if it publishes another one),
then runs ``python -m pytest tests/test_links.py``: the test names every README
badge and notebook install cell that still points elsewhere. The notebooks'
Colab cell cannot import lrkit (it installs it), so it holds the URL as text,
checked against this module.
"""
from __future__ import annotations

GITHUB_REPO = "lrkit/lrkit"
"""owner/name of the repository the README's badges and the notebooks install from."""
BRANCH = "main"
"""The branch the Colab badges open."""

INSTALL_SPEC = f"lrkit[notebooks] @ git+https://github.com/{GITHUB_REPO}"
"""What the notebooks' Colab cell passes to pip (Colab's torch is kept)."""
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"


def colab_url(notebook: str) -> str:
    """The Colab address of ``notebooks/<notebook>.ipynb`` on ``BRANCH``."""
    return f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/{BRANCH}/notebooks/{notebook}.ipynb"


def colab_badge(notebook: str) -> str:
    """The Markdown "Open In Colab" badge of a notebook."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(notebook)})"
