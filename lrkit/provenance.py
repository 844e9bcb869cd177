"""``provenance.json``: what made a run folder, so a result can be traced to its
code and settings.

Every run folder (sample, train, merge, eval, demo) gets one. It holds a list
``runs``, one entry per call that wrote to the folder (a resumed run adds one):
lrkit's version and git commit (when lrkit runs from a checkout), the versions
of Python, torch, transformers, peft and accelerate, the device and dtype, the
start and end times (UTC, ISO 8601; ``ended`` stays null when the call died),
and the command line (``lrkit ...``) or the Python call that made it.
The settings themselves live in each folder's own config file.
"""
from __future__ import annotations

import json
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Optional
from lrkit.runs import write_json

PROVENANCE_FILE = "provenance.json"
PACKAGES = ("torch", "transformers", "peft", "accelerate")

_command_line: Optional[str] = None
"""Set by the CLI: the command that is running, recorded instead of the API call."""


def set_command_line(argv) -> None:
    import shlex

    global _command_line
    _command_line = None if argv is None else "lrkit " + shlex.join(str(a) for a in argv)


def invocation(api_call: str) -> str:
    """The command line when the CLI runs, else the Python call."""
    return _command_line or api_call


def api_call(function: str, *args, **kwargs) -> str:
    """``lrkit.sample('toy', None, ...)`` with long values shortened."""
    def show(value) -> str:
        if isinstance(value, (list, tuple)) and len(value) > 3:
            return f"<{type(value).__name__} of {len(value)}>"
        text = repr(value)
        return text if len(text) <= 120 else text[:117] + "..."

    parts = [show(a) for a in args] + [f"{k}={show(v)}" for k, v in kwargs.items()]
    return f"lrkit.{function}({', '.join(parts)})"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _version(package: str) -> Optional[str]:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def git_commit() -> Optional[str]:
    """The commit of the checkout lrkit runs from (with "+dirty" when files differ),
    or None for an installed wheel or a machine without git."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "") if commit else None


def environment() -> dict:
    from lrkit import __version__

    return {"lrkit": __version__, "git_commit": git_commit(), "python": platform.python_version(),
            **{package: _version(package) for package in PACKAGES},
            "platform": platform.platform()}


def _name(value) -> Optional[str]:
    return None if value is None else str(value).replace("torch.", "")


class Provenance:
    """One call's entry in ``out_dir/provenance.json``: ``start()`` once the
    folder is in use (after every check on the input passed), ``finish()`` when
    the call's files are complete."""

    def __init__(self, out_dir, call: str, device=None, dtype=None):
        self.path = Path(out_dir) / PROVENANCE_FILE
        self.entry = {**environment(), "device": _name(device), "dtype": _name(dtype),
                      "started": None, "ended": None, "command": invocation(call)}
        self.index: Optional[int] = None

    def start(self, write: bool = True) -> "Provenance":
        """Note the start time; ``write`` records the entry now (a call that then
        dies leaves ``ended`` null), else only ``finish()`` writes it."""
        self.entry["started"] = now()
        if not write:
            return self
        runs = read_provenance(self.path.parent) if self.path.exists() else []
        self.index = len(runs)
        self._write(runs + [self.entry])
        return self

    def finish(self, **extra) -> None:
        self.entry.update(extra, ended=now())
        runs = read_provenance(self.path.parent) if self.path.exists() else []
        if self.index is not None and self.index < len(runs):
            runs[self.index] = self.entry
        else:
            runs.append(self.entry)
        self._write(runs)

    def _write(self, runs: list) -> None:
        write_json(self.path, {"runs": runs})


def read_provenance(out_dir) -> list[dict]:
    """The entries of ``out_dir/provenance.json`` (oldest first); [] when there is none
    or it cannot be read."""
    path = Path(out_dir) / PROVENANCE_FILE
    try:
        runs = json.loads(path.read_text(encoding="utf-8")).get("runs", [])
    except (OSError, ValueError, AttributeError):
        return []
    return runs if isinstance(runs, list) else []


def record(out_dir, call: str, device=None, dtype=None) -> Provenance:
    """Start an entry now (for calls that check, then write, then finish)."""
    return Provenance(out_dir, call, device, dtype).start()
