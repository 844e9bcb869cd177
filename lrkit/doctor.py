"""``lrkit doctor``: is this machine ready for the workshop? One line per check.

Each check says ``ok``, ``warn`` (the notebooks run, with a caveat) or ``fail`` (they
will not run until the fix is applied), and every line that is not ok names its fix.
A failing check never stops the others. The exit status is 1 when anything fails.

The checks: Python, lrkit (where it is imported from), torch and its device, the
libraries the notebooks import, free memory, free disk under the run folder, the
bundled pairs' files against their pinned sha256 digests, an ipywidgets widget and a
plotly figure, write access to the run folder (``$LRKIT_RUN_DIR``, else
``runs/notebooks`` in the clone), and with ``hub=True`` whether the Hugging Face Hub
answers. Nothing is downloaded and no model is run: about 10 s on a 2-core CPU.
"""
from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

OK, WARN, FAIL = "ok", "warn", "fail"

INSTALL = "pip install -e '.[notebooks]' in the clone (or pip install 'lrkit[notebooks] @ git+...')"
CPU_TORCH = "pip install torch==2.13.0 (the CPU wheel; docs/WORKSHOP.md: installing from a wheelhouse)"
MIN_MEMORY_GIB, LOW_MEMORY_GIB = 1.0, 2.0
"""Available memory below which the notebooks fail / may swap: one notebook's kernel on the
toy pair peaks near 1 GiB (perf/results/workshop_timings.json)."""
MIN_DISK_GIB, LOW_DISK_GIB = 0.2, 1.0
"""Free disk under the run folder: the five notebooks write about 0.1 GiB on the toy pair."""

BUNDLED_SHA256 = {
    "toy": {
        "expert/chat_template.jinja": "66edfb854931c933d3ac94f507626dd4fa2d5ca0a9b1036b11729d296a7392ac",
        "expert/config.json": "8d21dc7e49b0c26595dcd0c7c43e94364fb80d29aa233a86e29964ae201fbfaa",
        "expert/generation_config.json": "6d7cf139274efbb46c9d3430d21ee0206a0b8f0e8d9149caf8ef47bcdaf7b0ce",
        "expert/model.safetensors": "b9b05f28fc556ece4d9308c87d0a8138c507a55c4799f4f313c586c8c973bdc4",
        "expert/tokenizer.json": "33526f195cd8a282a5457f45c92c0d2f855c85ef1090f843d7d7e33ec73b5a41",
        "expert/tokenizer_config.json": "48b705282cdcc3d9832fa837a172546f52e1d1c409837fb57afaac61e23176fa",
        "amateur/chat_template.jinja": "66edfb854931c933d3ac94f507626dd4fa2d5ca0a9b1036b11729d296a7392ac",
        "amateur/config.json": "79b1082ea6e59a0043cdf2d3b41dc4c33ee90a021198fab56327ee415881fe8b",
        "amateur/generation_config.json": "6d7cf139274efbb46c9d3430d21ee0206a0b8f0e8d9149caf8ef47bcdaf7b0ce",
        "amateur/model.safetensors": "5e4602b170cb6e7c2fab4b7de51afe629435f8f77676f624cfe3071c2b0b5f75",
        "amateur/tokenizer.json": "33526f195cd8a282a5457f45c92c0d2f855c85ef1090f843d7d7e33ec73b5a41",
        "amateur/tokenizer_config.json": "48b705282cdcc3d9832fa837a172546f52e1d1c409837fb57afaac61e23176fa",
    },
    "toy-shared": {
        "expert/chat_template.jinja": "66edfb854931c933d3ac94f507626dd4fa2d5ca0a9b1036b11729d296a7392ac",
        "expert/config.json": "8d21dc7e49b0c26595dcd0c7c43e94364fb80d29aa233a86e29964ae201fbfaa",
        "expert/generation_config.json": "6d7cf139274efbb46c9d3430d21ee0206a0b8f0e8d9149caf8ef47bcdaf7b0ce",
        "expert/model.safetensors": "8f65627bd1e7118f59b244f5bd6c566307e43523f1eeaf4b264a7b2b6c0173f3",
        "expert/tokenizer.json": "a840ae3094c48fecc4fde82ba675e8b0bd869d43773ff8732dadd57e25a2fd65",
        "expert/tokenizer_config.json": "48b705282cdcc3d9832fa837a172546f52e1d1c409837fb57afaac61e23176fa",
        "amateur/chat_template.jinja": "66edfb854931c933d3ac94f507626dd4fa2d5ca0a9b1036b11729d296a7392ac",
        "amateur/config.json": "e5262a356ab77eb746acf31be35d4d8495182b8a4e0ccdd6110cc634c1916c07",
        "amateur/generation_config.json": "6d7cf139274efbb46c9d3430d21ee0206a0b8f0e8d9149caf8ef47bcdaf7b0ce",
        "amateur/model.safetensors": "21a2f21538b7bc2239a2a33d8e1fd99c9589d1301e539ec931fdc25fc14925bd",
        "amateur/tokenizer.json": "a840ae3094c48fecc4fde82ba675e8b0bd869d43773ff8732dadd57e25a2fd65",
        "amateur/tokenizer_config.json": "48b705282cdcc3d9832fa837a172546f52e1d1c409837fb57afaac61e23176fa",
    },
}
"""sha256 of every file of the bundled pairs as committed (``lrkit build-toy`` rebuilds them;
after a rebuild, ``tests/test_doctor.py`` prints the new table to paste here)."""

HUB_PROBE = "Qwen/Qwen2.5-0.5B"
"""The repository ``--hub`` asks the Hub about (the paper's amateur; public)."""


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<5} {self.name:<16} {self.detail}"
        return text + (f"; fix: {self.fix}" if self.fix and self.status != OK else "")


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2 ** 30:.1f} GiB"


# --------------------------------------------------------------------------- the checks

def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info < (3, 10):
        return Check("python", FAIL, f"{version} ({sys.executable})", "install Python 3.10 or newer")
    return Check("python", OK, f"{version} ({sys.executable})")


def check_lrkit() -> Check:
    import lrkit

    where = Path(lrkit.__file__).resolve().parent
    return Check("lrkit", OK, f"{lrkit.__version__} from {where}")


def check_torch() -> Check:
    try:
        import torch
    except ImportError as err:
        return Check("torch", FAIL, f"not importable ({err})", CPU_TORCH)
    try:
        x = torch.arange(16, dtype=torch.float32).reshape(4, 4)
        assert torch.isfinite(x @ x).all()
    except Exception as err:  # a broken build: say so, never crash the report
        return Check("torch", FAIL, f"{torch.__version__} cannot multiply two matrices ({err})", CPU_TORCH)
    if torch.cuda.is_available():
        device = f"cuda: {torch.cuda.get_device_name(0)}"
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device = "mps (Apple GPU); the notebooks run on the CPU unless DEVICE says mps"
    else:
        device = f"cpu, torch threads: {torch.get_num_threads()} (the toy pair needs no GPU)"
    return Check("torch", OK, f"{torch.__version__}, {device}")


NOTEBOOK_LIBRARIES = ("transformers", "peft", "accelerate", "datasets", "pandas", "plotly", "ipywidgets",
                      "ipykernel", "math_verify")


def check_libraries() -> Check:
    missing, found = [], []
    for name in NOTEBOOK_LIBRARIES:
        try:
            module = importlib.import_module(name)
        except Exception as err:  # ImportError, or a library that breaks on import
            missing.append(f"{name} ({type(err).__name__})")
        else:
            found.append(f"{name} {getattr(module, '__version__', '?')}")
    if missing:
        return Check("libraries", FAIL, "missing: " + ", ".join(missing), INSTALL)
    return Check("libraries", OK, ", ".join(found[:3]) + f" and {len(found) - 3} more")


def available_memory() -> Optional[int]:
    """Bytes of memory available to a new process, or None where it cannot be read."""
    try:
        import psutil  # accelerate's dependency

        return int(psutil.virtual_memory().available)
    except Exception:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(available: Optional[int] = None) -> Check:
    available = available_memory() if available is None else available
    if available is None:
        return Check("memory", WARN, "could not read the free memory", "close other programs if a notebook stalls")
    text = f"{_gib(available)} available"
    if available < MIN_MEMORY_GIB * 2 ** 30:
        return Check("memory", FAIL, text + f" (the toy notebooks need about {MIN_MEMORY_GIB:g} GiB)",
                     "close other programs or use Colab")
    if available < LOW_MEMORY_GIB * 2 ** 30:
        return Check("memory", WARN, text, "close other programs; keep one notebook's kernel running at a time")
    return Check("memory", OK, text)


def check_disk(folder: Path) -> Check:
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError as err:
        return Check("disk", WARN, f"could not read the free space under {folder} ({err})", "")
    text = f"{_gib(free)} free under {probe}"
    fix = "free some space, or set LRKIT_RUN_DIR to a folder on a larger disk"
    if free < MIN_DISK_GIB * 2 ** 30:
        return Check("disk", FAIL, text, fix)
    if free < LOW_DISK_GIB * 2 ** 30:
        return Check("disk", WARN, text, fix)
    return Check("disk", OK, text)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_pair(name: str, folder: Optional[Path] = None) -> Check:
    """The bundled pair's files: present and readable (fail otherwise), equal to the
    committed ones (a warning otherwise: the pair runs, its numbers may differ)."""
    from lrkit.models.pairs import PAIRS

    folder = Path(folder) if folder else Path(PAIRS[name].expert).parent
    fix = ("restore it: git checkout -- data/" + name + " in a clone (or reinstall lrkit), "
           "or rebuild it: lrkit build-toy --pair " + name)
    pinned = BUNDLED_SHA256[name]
    missing = [f for f in pinned if not (folder / f).is_file()]
    if missing:
        return Check(f"pair {name}", FAIL, f"{folder}: missing {', '.join(missing)}", fix)
    for role in ("expert", "amateur"):
        weights = folder / role / "model.safetensors"
        try:
            from safetensors import safe_open

            with safe_open(str(weights), framework="np") as f:
                list(f.keys())
        except Exception as err:
            return Check(f"pair {name}", FAIL, f"{weights} does not open ({type(err).__name__}: {err})", fix)
    differ = [f for f, digest in pinned.items() if sha256_of(folder / f) != digest]
    if differ:
        return Check(f"pair {name}", WARN, f"{folder}: {', '.join(differ)} differ from the files lrkit ships "
                                           "(the pair runs; its numbers will differ from the docs')", fix)
    return Check(f"pair {name}", OK, f"{len(pinned)} files, sha256 as committed ({folder})")


def check_widgets() -> Check:
    try:
        import ipywidgets
        import plotly.graph_objects as go

        slider = ipywidgets.FloatSlider(value=0.4, min=0, max=2, description="beta")
        figure = go.Figure(go.Bar(x=["kept", "not kept"], y=[1, 4]))
        page = figure.to_html(include_plotlyjs=False, full_html=False)
        assert slider.value == 0.4 and "plotly" in page.lower()
    except Exception as err:
        return Check("widgets", FAIL, f"an ipywidgets slider or a plotly figure cannot be built "
                                      f"({type(err).__name__}: {err})", INSTALL)
    return Check("widgets", OK, f"ipywidgets {ipywidgets.__version__} slider and a plotly figure built "
                                "(on Colab the notebooks' first cell enables widgets)")


def check_run_folder() -> tuple[Check, Optional[Path]]:
    """Write access to the notebooks' run folder; returns the folder too (for the disk check)."""
    fix = ("set LRKIT_RUN_DIR to a folder you can write, e.g. export LRKIT_RUN_DIR=$HOME/lrkit-runs "
           "(in a notebook: os.environ['LRKIT_RUN_DIR'] = ... before the set-up cell)")
    try:
        from lrkit.workshop import RUN_DIR_ENV, run_dir
    except Exception as err:  # no torch: workshop cannot be imported, the torch line says why
        return Check("run folder", FAIL, f"lrkit.workshop does not import ({type(err).__name__}: {err})",
                     CPU_TORCH), None
    source = f"${RUN_DIR_ENV}" if os.environ.get(RUN_DIR_ENV) else "the default"
    try:
        folder = run_dir()
        probe = folder / f".lrkit-doctor-{uuid.uuid4().hex}"
        with open(probe, "wb") as f:
            f.write(b"ok")
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as err:
        wanted = os.environ.get(RUN_DIR_ENV) or "runs/notebooks"
        return Check("run folder", FAIL, f"{wanted} ({source}) is not writable: {err.strerror or err}", fix), \
            Path(wanted)
    return Check("run folder", OK, f"{folder} ({source}) is writable"), folder


def check_hub(timeout: float = 10.0) -> Check:
    fix = ("the toy pairs need no network; for the paper's pair download the models where the network "
           "works (huggingface-cli download Qwen/Qwen2.5-Math-1.5B and Qwen/Qwen2.5-0.5B) and copy the "
           "cache (HF_HOME), or set HF_ENDPOINT to a mirror")
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return Check("hub", FAIL, "HF_HUB_OFFLINE is set: the Hub is not asked", "unset HF_HUB_OFFLINE, or " + fix)
    try:
        from huggingface_hub import HfApi

        info = HfApi().model_info(HUB_PROBE, timeout=timeout)
    except Exception as err:
        message = " ".join(str(err).split())[:160]
        return Check("hub", FAIL, f"{HUB_PROBE} not reachable ({type(err).__name__}: {message})", fix)
    return Check("hub", OK, f"{HUB_PROBE} reachable (sha {str(info.sha)[:8]})")


# --------------------------------------------------------------------------- the report

def run_checks(hub: bool = False, report: Optional[Callable[[Check], None]] = None) -> list[Check]:
    """Every check, in order; ``report`` is called with each as soon as it is done."""
    results = []

    def add(check: Check) -> None:
        results.append(check)
        if report:
            report(check)

    for single in (check_python, check_lrkit, check_torch, check_libraries, check_memory):
        add(_guarded(single))
    folder_check, folder = _guarded_run_folder()
    add(_guarded(lambda: check_disk(folder or Path.cwd())))
    for name in BUNDLED_SHA256:
        add(_guarded(lambda name=name: check_pair(name)))
    add(_guarded(check_widgets))
    add(folder_check)
    if hub:
        add(_guarded(check_hub))
    return results


def _guarded(check: Callable[[], Check]) -> Check:
    try:
        return check()
    except Exception as err:  # a check that breaks is a failed check, never a crashed report
        name = getattr(check, "__name__", "check").replace("check_", "")
        return Check(name, FAIL, f"the check itself failed ({type(err).__name__}: {err})",
                     "report it with this line; " + INSTALL)


def _guarded_run_folder() -> tuple[Check, Optional[Path]]:
    try:
        return check_run_folder()
    except Exception as err:
        return Check("run folder", FAIL, f"the check itself failed ({type(err).__name__}: {err})", INSTALL), None


def doctor(hub: bool = False, out=None) -> int:
    """Print one line per check and a summary; 1 when any check failed, else 0."""
    out = out or sys.stdout
    start = time.perf_counter()
    checks = run_checks(hub, report=lambda c: print(c.line(), file=out, flush=True))
    counts = {s: sum(c.status == s for c in checks) for s in (OK, WARN, FAIL)}
    verdict = "ready for the workshop" if not counts[FAIL] else "not ready: apply the fixes above"
    print(f"{counts[OK]} ok, {counts[WARN]} warn, {counts[FAIL]} fail in {time.perf_counter() - start:.1f} s: "
          f"{verdict}", file=out)
    return 1 if counts[FAIL] else 0
