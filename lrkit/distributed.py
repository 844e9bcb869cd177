"""Several processes under a launcher: `torchrun` or `accelerate launch`.

The launcher starts the processes and sets RANK / WORLD_SIZE / LOCAL_RANK;
accelerate's PartialState joins them into one process group (gloo on CPUs,
nccl on GPUs). lrkit writes no process management of its own: stages ask
:func:`current` which share of the work is theirs and meet in
:func:`together` sections, where every process says whether its part
succeeded. A process whose part raised makes every process raise at that
point, with the failing rank's message, so no process waits for one that is
gone. A rank that dies outright is the launcher's to handle (torchrun stops
the others); collectives also time out after ``LRKIT_DIST_TIMEOUT`` seconds
(default 1800) as a last resort.

Without a launcher (WORLD_SIZE unset or 1) everything here is a no-op:
``current()`` is rank 0 of 1 and sections only run their body.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Optional

USER_ERRORS = (ValueError, OSError)


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        return self.world > 1

    def mine(self, index: int) -> bool:
        """Whether work item ``index`` (a batch) is this rank's: rank r takes r, r+N, r+2N..."""
        return index % self.world == self.rank


_current = Ranks()


def current() -> Ranks:
    return _current


def launched() -> bool:
    """True when a launcher started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


class RankFailedError(RuntimeError):
    """Another process of the run failed; carries its rank and one-line message."""

    def __init__(self, rank: int, message: str, user_error: bool):
        super().__init__(f"rank {rank}: {message}")
        self.rank, self.user_error = rank, user_error


def start(device: Optional[str] = None) -> Ranks:
    """Join the launcher's process group (once per process).

    ``device``: the --device flag. CUDA runs use nccl and one GPU per local
    rank; anything else runs on CPUs with gloo. A CUDA run on a machine without
    CUDA is a user error (one line), raised before any process group forms.
    """
    global _current
    import torch
    from accelerate import PartialState

    if _current.sharded:
        return _current
    if str(device or "").startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device} under a launcher of {os.environ.get('WORLD_SIZE')} processes: "
                         "CUDA is not available on this machine; pass --device cpu")
    # accelerate's multi-GPU launcher (the one `accelerate launch --num_processes N`
    # uses for N > 1 without --cpu) sets its ACCELERATE_* variables but not
    # ACCELERATE_USE_CPU; on a machine without CUDA its processes would silently
    # share the CPUs instead of the GPUs asked for.
    accelerate_gpu = "ACCELERATE_DYNAMO_BACKEND" in os.environ and "ACCELERATE_USE_CPU" not in os.environ
    if accelerate_gpu and not torch.cuda.is_available() and str(device or "auto") != "cpu":
        raise ValueError(f"accelerate launched {os.environ.get('WORLD_SIZE')} GPU processes but this machine "
                         "has no CUDA; on CPUs use torchrun --nproc-per-node N -m lrkit ... (or pass "
                         "--device cpu)")
    on_cpu = not torch.cuda.is_available() or str(device or "auto") == "cpu"
    if not on_cpu and int(os.environ.get("LOCAL_RANK", 0)) >= torch.cuda.device_count():
        raise ValueError(f"{os.environ.get('LOCAL_WORLD_SIZE', '?')} processes per machine but only "
                         f"{torch.cuda.device_count()} CUDA device(s): launch at most one process per GPU")
    timeout = timedelta(seconds=float(os.environ.get("LRKIT_DIST_TIMEOUT", 1800)))
    state = PartialState(cpu=on_cpu, timeout=timeout)
    _current = Ranks(state.process_index, state.num_processes, state.local_process_index)
    return _current


def stop(finished: bool = True) -> None:
    """Leave the process group. ``finished``: every rank got to its end, so they
    first wait for each other: a rank that tore its group down while another
    still used it could end that one with an abort at exit."""
    global _current
    if _current.sharded:  # torch only when there is a group: commands that never load it stay torch-free
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            if finished:
                dist.barrier()
            dist.destroy_process_group()
    _current = Ranks()


def local_device(device: Optional[str]) -> Optional[str]:
    """The device this rank uses: each rank its own GPU (cuda:LOCAL_RANK)."""
    import torch

    if not _current.sharded or str(device or "auto") == "cpu":
        return device
    if torch.cuda.is_available() and (device in (None, "auto") or str(device) == "cuda"):
        return f"cuda:{_current.local_rank}"
    if device in (None, "auto"):
        return "cpu"
    return device


def gather(value: Any) -> list:
    """Every rank's ``value`` (picklable), in rank order, on every rank."""
    if not _current.sharded:
        return [value]
    import torch.distributed as dist

    values: list = [None] * _current.world
    dist.all_gather_object(values, value)
    return values


def broadcast(value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    return gather(value)[0]


def on_every_rank(error: BaseException) -> BaseException:
    """Mark an error that every rank raises alike (same flags, same checks), so
    rank 0 alone reports it."""
    error._lrkit_shared = True
    return error


def _describe(error: BaseException) -> str:
    text = " ".join(part.strip() for part in str(error).splitlines() if part.strip())
    return text or type(error).__name__


@contextlib.contextmanager
def together():
    """A section every rank enters and leaves at the same point of the run.

    On leaving, ranks exchange whether their body raised. The rank that raised
    re-raises its own error; the others raise :class:`RankFailedError` with the
    first failing rank's message. Errors that already went through a section
    pass on without another exchange.
    """
    if not _current.sharded:
        yield
        return
    try:
        yield
    except BaseException as error:
        if getattr(error, "_lrkit_shared", False):
            raise
        outcomes = gather((_describe(error), isinstance(error, USER_ERRORS)))
        error._lrkit_shared = True
        raise
    outcomes = gather(None)
    for rank, outcome in enumerate(outcomes):
        if outcome is not None:
            failed = RankFailedError(rank, *outcome)
            failed._lrkit_shared = True
            raise failed
