"""Run folders: the layer every stage (sample, train, merge, evaluate, SFT, suite)
writes its output folder through.

* the lock a stage holds while it writes (:func:`locked`, ``@writes_folder``);
* one digest of settings and problems (:func:`digest`, :func:`problems_digest`);
* one atomic writer (:func:`write_text`, :func:`write_json`: a temporary file,
  fsync, ``os.replace``), so a file is either its old or its new self;
* one refusal (:class:`FolderError`, one line naming the folder, the stage, the
  settings that differ and the way out) and the resume-or-refuse check
  (:func:`check_settings`): a folder that holds a stage's finished result for the
  same settings gives that result back without recomputing; one holding other
  settings, or foreign files, is refused.

The lock:

A stage (sample, train, merge, evaluate, SFT, suite) takes ``folder/.lrkit.lock``
before it touches its output folder and gives it back when it returns or
raises. A second process that asks for the same folder while the lock is held
gets :class:`FolderBusyError` at once (no waiting): one line naming the folder,
which the command line turns into exit status 2, and nothing of the two runs is
mixed. The lock is ``filelock.FileLock`` (``flock`` on Unix, ``LockFileEx`` on
Windows), so a process that dies releases it with its file handles. Where the
filesystem has no ``flock`` (some network and FUSE mounts; Google Drive as
Colab mounts it may be one), the lock falls back to ``filelock.SoftFileLock``, the
lock file's existence, and says so once in one line: a process that dies then
leaves its lock file behind, and :class:`FolderBusyError` names the file to delete
once no process writes the folder (e.g. after a Colab runtime was lost).

The lock file exists only while the lock is held: it is removed on release, and
a folder that the call created and left empty is removed too, so a stage that
refused its input leaves no trace. Under a launcher (``torchrun``, ``accelerate
launch``) the ranks of one run write one folder together: rank 0 alone takes
the lock, and every rank learns whether it got it (:mod:`lrkit.distributed`).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import os
import sys
import threading
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence, Union
from lrkit import distributed

LOCK_FILE = ".lrkit.lock"
RUN_FILE = "lrkit_train.json"
"""A training run's settings, record digest and result (train and SFT folders)."""
LOSS_FILE = "loss.jsonl"
"""A training run's logged losses, one JSON line per logged step."""

_held: dict[str, int] = {}
"""Folders this process holds, with how deep: a stage called inside another that
holds the same folder goes on under the outer lock."""
_held_guard = threading.Lock()
_flockless: dict[int, bool] = {}
"""Filesystems (by st_dev) probed for ``flock``: True where it failed and folders there
take a soft lock instead."""


# --------------------------------------------------------------------------- digests

def digest(value: Any) -> str:
    """sha256 of ``value`` as canonical JSON (sorted keys, non-ASCII kept as is)."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_of_file(path: Union[str, Path], into=None) -> str:
    """sha256 (hex) of a file's bytes, read in 4 MiB blocks. With ``into`` (a running
    ``hashlib.sha256()``) the bytes are added to it instead, and its digest so far is
    returned: a digest of several files (:func:`lrkit.stages.training.adapter_digest`)."""
    digest = hashlib.sha256() if into is None else into
    with Path(path).open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def problems_digest(problems: Iterable, fields: Sequence[str] = ("id", "question")) -> str:
    """The digest of a problem set: each problem's ``fields`` in order (attributes of
    :class:`lrkit.data.answers.Problem`, or keys of dicts). Sampling and SFT's run
    files use id and question; evaluation and the suite add the gold answer
    (``("id", "question", "answer")``), since it decides the scores."""
    def value(problem, name):
        return problem[name] if isinstance(problem, Mapping) else getattr(problem, name)

    return digest([[value(p, name) for name in fields] for p in problems])


# --------------------------------------------------------------------------- atomic writes

def write_text(path: Union[str, Path], text: str) -> Path:
    """Write ``text`` to ``path`` atomically: a temporary file beside it, flushed to
    disk, then renamed over it. An interrupted write leaves the old file (or none)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def write_json(path: Union[str, Path], data: Any, *, sort_keys: bool = False) -> Path:
    """``data`` as indented JSON (one trailing newline), written atomically."""
    return write_text(path, json.dumps(data, indent=2, sort_keys=sort_keys) + "\n")


def read_json(path: Union[str, Path]) -> Optional[Any]:
    """The JSON in ``path``; None when the file is absent or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------- refusals

class FolderError(ValueError):
    """A stage's output folder holds something else: another run's settings, or files
    that are not this stage's. One line: the folder, what it holds, the way out."""

    def __init__(self, folder: Union[str, Path], stage: str, differs: Sequence[str] = (), *,
                 holds: Optional[str] = None, way_out: Optional[str] = None):
        self.folder, self.stage, self.differs = Path(folder), stage, list(differs)
        if holds is None:
            article = "an" if stage[:1].lower() in "aeiou" else "a"
            holds = f"{article} {stage} made with other settings (differs in: {', '.join(self.differs)})"
        way_out = way_out or f"delete {folder} to run the {stage} there afresh"
        message = f"{folder} holds {holds}; choose another output folder (--out), or {way_out}"
        super().__init__(" ".join(message.split()))  # one line whatever the names hold


class FolderBusyError(ValueError):
    """Another lrkit process is writing the folder (it holds its lock). Not a
    :class:`FolderError`: the folder may well hold the right run; waiting helps."""

    def __init__(self, folder: Union[str, Path], stage: str, soft: bool = False):
        stale = (f"; its lock is a file (this filesystem has no flock): if no lrkit process is writing there "
                 f"(e.g. the Colab runtime that held it is gone), delete {Path(folder) / LOCK_FILE}") if soft else ""
        super().__init__(f"{folder}: another lrkit process is writing this folder; wait until it ends, "
                         f"or choose another output folder for this {stage}{stale}")
        self.folder, self.stage = Path(folder), stage


def differing(stored: Mapping, current: Mapping, ignore: Iterable[str] = ()) -> list[str]:
    """The settings whose values differ, dotted for nested ones (``config.beta``);
    a ``*_sha256`` digest is named by what it digests (``problems``)."""
    ignore, names = set(ignore), []

    def walk(a, b, prefix):
        for key in sorted(set(a) | set(b), key=str):
            name = f"{prefix}{key}"
            if name in ignore or key in ignore:
                continue
            x, y = a.get(key), b.get(key)
            if isinstance(x, Mapping) and isinstance(y, Mapping):
                walk(x, y, name + ".")
            elif x != y:
                name = name[:-len("_sha256")] if name.endswith("_sha256") else name
                if name not in names:
                    names.append(name)

    walk(stored if isinstance(stored, Mapping) else {}, current, "")
    return names


def check_settings(folder: Union[str, Path], stage: str, stored: Optional[Mapping], current: Mapping, *,
                   ignore: Iterable[str] = (), way_out: Optional[str] = None) -> None:
    """Resume or refuse: nothing when the folder's stored settings equal the current
    ones (``ignore`` aside), else :class:`FolderError` naming every difference."""
    differs = differing(stored or {}, current, ignore)
    if differs:
        raise FolderError(folder, stage, differs, way_out=way_out)


# --------------------------------------------------------------------------- the stage-folder protocol

@dataclass(frozen=True)
class Opened:
    """What a stage finds in its folder (:meth:`StageFolder.open`)."""

    state: str
    """"new" (absent or empty: the stage starts), "resume" (this run, unfinished: the stage
    goes on from what is there) or "stored" (this run, finished: ``result`` is it)."""
    stored: Optional[dict] = None
    """The settings file's content, as stored (None for a new folder)."""
    result: Any = None
    """The stage's stored result (``state == "stored"``), loaded by the stage's ``load``."""


def _as_stored(stored: dict, current: Mapping) -> dict:
    return stored


@dataclass(frozen=True)
class StageFolder:
    """One stage's folder protocol: the one place where a stage's output folder is claimed,
    resumed, refused or read back, so that every stage does it the same way.

    A stage declares the file that holds its settings, how a stored file reads in today's
    terms (renamed or added fields), when its run is finished, and how its result loads;
    :meth:`open` does the rest. Settings are the inputs that change the result, nothing
    else: display names, progress flags and the caller's paths stay out of them.
    """

    stage: str
    """The stage's name in messages ("sampling run", "evaluation", ...)."""
    settings_file: str
    """The file in the folder that holds the stage's settings (and marks the folder as its)."""
    finished: Callable[[Path, dict], bool]
    """Whether the folder holds its run finished, given the folder and its stored file."""
    load: Callable[[Path], Any]
    """The stage's ``Result.load(folder)``."""
    as_stored: Callable[[dict, Mapping], dict] = _as_stored
    """The stored settings in today's terms, given the stored file and the current settings
    (fields renamed or added since the folder was written)."""
    own_files: Optional[Sequence[str]] = None
    """When given, the only names the folder may hold besides the settings file (others are
    foreign, and refused even beside the settings file)."""
    way_out: Optional[str] = None
    """The refusal's way out; default: delete the folder."""
    shared: bool = False
    """The settings file sits in a folder other stages share (the experiment's scout.json):
    other files there are not foreign, and a folder without the file is "new"."""

    def open(self, folder: Union[str, Path], current: Mapping, *, ignore: Iterable[str] = ()) -> Opened:
        """Claim ``folder`` for a run with ``current`` settings, or give back its stored result.

        Returns :class:`Opened`: "new" when the folder is absent or empty, "stored" (with
        the loaded result) when it holds this run finished, "resume" when it holds this run
        unfinished. Raises :class:`FolderError`, in one line, when it holds another run
        (naming every differing setting; ``ignore`` lists the settings a resumed run may
        change) or files that are not this stage's.
        """
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise FolderError(folder, self.stage, holds="a file, not a folder", way_out="delete it")
        names = sorted(p.name for p in entries(folder) if not p.name.endswith(".tmp")) if folder.is_dir() else []
        if not names:
            return Opened("new")
        if self.own_files is not None:
            foreign = [n for n in names if n not in (self.settings_file, *self.own_files)]
            if foreign:
                shown = ", ".join(foreign[:4]) + (", ..." if len(foreign) > 4 else "")
                raise FolderError(folder, self.stage, holds=f"{shown}, not an lrkit {self.stage}",
                                  way_out="move those files elsewhere")
        stored = read_json(folder / self.settings_file)
        if not isinstance(stored, dict):
            if self.own_files is not None or self.shared:  # its files before its settings, or another's
                return Opened("new")
            refuse_foreign(folder, self.stage, names, self.settings_file, way_out=self.way_out)
        check_settings(folder, self.stage, self.as_stored(stored, current), current, ignore=ignore,
                       way_out=self.way_out)
        if self.finished(folder, stored):
            return Opened("stored", stored, self.load(folder))
        return Opened("resume", stored)


def refuse_foreign(folder: Union[str, Path], stage: str, names: Iterable[str], marker: str,
                   way_out: Optional[str] = None) -> None:
    """:class:`FolderError` for a folder that holds ``names`` but not the stage's
    ``marker`` file: another stage's or a user's files, never mixed with a run."""
    names = sorted(names)
    if names:
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise FolderError(folder, stage, holds=f"{shown} but no {stage} ({marker})", way_out=way_out)


RERUN_FILE = "lrkit.yaml"
"""The settings file the command line writes into a folder it made (``lrkit CMD --config``)."""


def entries(folder: Union[str, Path]) -> list[Path]:
    """What ``folder`` holds, without the lock file (which only says a stage is writing it)
    and the command line's settings file (which only says how to rerun it), and the scratch
    file of a ``flock`` probe (:func:`has_flock`)."""
    return [p for p in Path(folder).iterdir()
            if p.name not in (LOCK_FILE, RERUN_FILE) and not p.name.startswith(LOCK_FILE + ".probe-")]


def _key(folder: Path) -> str:
    return os.path.normcase(os.path.realpath(folder))


def has_flock(folder: Path) -> bool:
    """Whether ``flock`` works on the filesystem of ``folder`` (an existing folder),
    probed once per filesystem on a scratch file. Where it fails, the first call
    prints one line saying that folders there are locked by a lock file
    (``filelock.SoftFileLock``) instead."""
    try:
        import fcntl
    except ImportError:  # Windows: filelock locks with LockFileEx
        return True
    device = folder.stat().st_dev
    if device not in _flockless:
        probe = folder / f"{LOCK_FILE}.probe-{os.getpid()}-{threading.get_ident()}"  # hidden by entries()
        reason = None
        try:
            fd = os.open(probe, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return True  # the folder cannot take a file: the stage says why when it writes
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError as err:  # ENOSYS, EOPNOTSUPP, EINVAL ...: no flock on this filesystem
            reason = err.strerror or type(err).__name__
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                probe.unlink()
        _flockless[device] = reason is not None
        if reason is not None:
            print(f"[lrkit] {folder}: no flock on this filesystem ({reason}); its run folders are locked by a "
                  f"lock file instead (filelock.SoftFileLock)", file=sys.stderr, flush=True)
    return not _flockless[device]


@contextlib.contextmanager
def _take(folder: Path, stage: str) -> Iterator[None]:
    """This process takes the lock of ``folder`` (creating the folder), or raises."""
    from filelock import FileLock, SoftFileLock, Timeout

    key = _key(folder)
    with _held_guard:
        if key in _held:  # re-entered by the process that holds it
            _held[key] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield
        finally:
            with _held_guard:
                _held[key] -= 1
        return
    if folder.exists() and not folder.is_dir():
        yield  # not a folder: nothing to lock, the stage says what is wrong
        return
    created, missing = [], folder  # the folders this call makes, deepest first
    while not missing.exists() and missing != missing.parent:
        created.append(missing)
        missing = missing.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        yield  # a folder that cannot be made cannot be written either: the stage says why
        return
    path = folder / LOCK_FILE
    soft = not has_flock(folder)
    lock = (SoftFileLock if soft else FileLock)(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise FolderBusyError(folder, stage, soft=soft) from None
    with _held_guard:
        _held[key] = 1
    try:
        yield
    finally:
        with _held_guard:
            del _held[key]
        try:
            if not soft:  # a soft lock's release removes its own file; removing it first could race a new holder
                with contextlib.suppress(OSError):  # an open file on Windows: filelock removes it there
                    path.unlink(missing_ok=True)  # while still held: a later writer makes a fresh file
        finally:
            lock.release()
        for made in created:  # what the call made and left empty goes (rmdir fails on anything else)
            try:
                made.rmdir()
            except OSError:
                break


@contextlib.contextmanager
def locked(folder: Union[str, Path, None], stage: str) -> Iterator[None]:
    """Hold ``folder``'s lock for the body (``stage`` names the writer in the error).

    Raises :class:`FolderBusyError` when another process holds it. ``folder``
    None (a stage that writes nothing) locks nothing. Under a launcher every
    rank calls this at the same point; rank 0 takes the lock for all of them.
    """
    if folder is None:
        yield
        return

    folder, ranks = Path(folder), distributed.current()
    if not ranks.sharded:
        with _take(folder, stage):
            yield
        return
    with contextlib.ExitStack() as stack:
        busy = False
        if ranks.is_main:
            try:
                stack.enter_context(_take(folder, stage))
            except FolderBusyError:
                busy = True
        if distributed.broadcast(busy):  # every rank stops; rank 0 says why
            raise distributed.on_every_rank(FolderBusyError(folder, stage))
        yield


def writes_folder(stage: str, argument: str = "out_dir"):
    """Decorate a stage whose ``argument`` is the folder it writes: the call runs
    inside :func:`locked` on that folder."""
    def wrap(function):
        signature = inspect.signature(function)

        @functools.wraps(function)
        def call(*args, **kwargs):
            folder = signature.bind(*args, **kwargs).arguments.get(argument)
            with locked(folder, stage):
                return function(*args, **kwargs)
        return call
    return wrap
