"""Run folders: the lock a stage holds while it writes one.

A stage (sample, train, merge, evaluate, SFT, suite) takes ``folder/.lrkit.lock``
before it touches its output folder and gives it back when it returns or
raises. A second process that asks for the same folder while the lock is held
gets :class:`FolderBusyError` at once (no waiting): one line naming the folder,
which the command line turns into exit status 2, and nothing of the two runs is
mixed. The lock is ``filelock.FileLock`` (``flock`` on Unix, ``LockFileEx`` on
Windows), so a process that dies releases it with its file handles.

The lock file exists only while the lock is held: it is removed on release, and
a folder that the call created and left empty is removed too, so a stage that
refused its input leaves no trace. Under a launcher (``torchrun``, ``accelerate
launch``) the ranks of one run write one folder together: rank 0 alone takes
the lock, and every rank learns whether it got it (:mod:`lrkit.distributed`).
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import os
import threading
from pathlib import Path
from typing import Iterator, Union

LOCK_FILE = ".lrkit.lock"
RUN_FILE = "lrkit_train.json"
"""A training run's settings, record digest and result (train and SFT folders)."""
LOSS_FILE = "loss.jsonl"
"""A training run's logged losses, one JSON line per logged step."""

_held: dict[str, int] = {}
"""Folders this process holds, with how deep: a stage called inside another that
holds the same folder goes on under the outer lock."""
_held_guard = threading.Lock()


class FolderBusyError(ValueError):
    """Another lrkit process is writing the folder (it holds its lock)."""

    def __init__(self, folder: Union[str, Path], stage: str):
        super().__init__(f"{folder}: another lrkit process is writing this folder; wait until it ends, "
                         f"or choose another output folder for this {stage}")
        self.folder, self.stage = Path(folder), stage


def entries(folder: Union[str, Path]) -> list[Path]:
    """What ``folder`` holds, without the lock file (which only says a stage is writing it)."""
    return [p for p in Path(folder).iterdir() if p.name != LOCK_FILE]


def _key(folder: Path) -> str:
    return os.path.normcase(os.path.realpath(folder))


@contextlib.contextmanager
def _take(folder: Path, stage: str) -> Iterator[None]:
    """This process takes the lock of ``folder`` (creating the folder), or raises."""
    from filelock import FileLock, Timeout

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
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise FolderBusyError(folder, stage) from None
    with _held_guard:
        _held[key] = 1
    try:
        yield
    finally:
        with _held_guard:
            del _held[key]
        try:
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
    from . import distributed

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
