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
"""owner/name of the repository the README's badges and the notebooks install from. No install
from it has been tried (this project's machines reach no GitHub); where it fails, set
``LRKIT_SOURCE`` (README, "On Colab")."""
BRANCH = "main"
"""The branch the Colab badges open."""

INSTALL_SOURCE = f"git+https://github.com/{GITHUB_REPO}"
"""Where the notebooks' Colab cell installs lrkit from unless ``LRKIT_SOURCE`` names another
source (a git URL, a folder, or a .zip uploaded to the runtime). The cell installs lrkit alone,
no extra: Colab's torch, ipywidgets and plotly stay as they are."""
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"


def colab_url(notebook: str) -> str:
    """The Colab address of ``notebooks/<notebook>.ipynb`` on ``BRANCH``."""
    return f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/{BRANCH}/notebooks/{notebook}.ipynb"


def colab_badge(notebook: str) -> str:
    """The Markdown "Open In Colab" badge of a notebook."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(notebook)})"
