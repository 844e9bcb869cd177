"""Small HTML helpers shared by the visual layers (no JavaScript anywhere here)."""
from __future__ import annotations

import html
import re
from pathlib import Path

from lrkit.runs import write_text

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SPECIAL = re.compile(r"^(<\|[^<>]*\|>|</?s>|<(unk|pad|bos|eos|mask)>|\[[A-Z]+\])$")


def esc(text) -> str:
    """HTML-escape any value, quotes included (safe in text and in attributes)."""
    return html.escape(str(text), quote=True)


def visible(text: str, spaces: bool = False) -> str:
    """Make whitespace and control characters visible: newline as a return arrow,
    tab as a tab arrow, other controls as \\xNN, optionally spaces as an open box."""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text.replace("\t", "\u21e5"))
    text = text.replace("\n", "\u21b5")
    if spaces:
        text = text.replace(" ", "\u2423")
    return text if text else "\u2205"


def is_special(text: str) -> bool:
    return bool(_SPECIAL.match(text))


def in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, VS Code, Colab), not in a terminal IPython."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def document(title: str, body: str, head: str = "") -> str:
    """A complete, self-contained HTML page."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{esc(title)}</title>\n{head}</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def write(path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text(path, text)
