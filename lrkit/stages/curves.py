"""Training curves: the progress bar, TensorBoard in the run folder, and reading
the curves back.

- ``LossBar`` replaces the Trainer's progress callback: the bar shows the last
  logged loss as its postfix and prints nothing else (the Trainer's own bar
  writes every log as a raw dict, ``{'loss': '0.07791', ...}``, to stdout).
  The log lines themselves go to the run folder's ``loss.jsonl``.
- ``TrainConfig.report_to="tensorboard"`` (the default) writes event files into
  ``<run folder>/tensorboard/``, offline; ``tensorboard --logdir <run folder>``
  shows them.
- ``read_loss_log`` and ``read_tensorboard`` read both logs back.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Union

from transformers.trainer_callback import ProgressCallback

from lrkit.runs import LOSS_FILE

PathLike = Union[str, os.PathLike]
TENSORBOARD_DIR = "tensorboard"
"""Sub-folder of a training run that holds its TensorBoard event files."""


class LossBar(ProgressCallback):
    """The Trainer's progress bar, with the loss as its postfix instead of a
    printed dict per log (and none for the closing train_runtime summary)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and self.training_bar is not None and logs and "loss" in logs:
            self.training_bar.set_postfix(loss=f"{float(logs['loss']):.4g}", refresh=False)


def use_loss_bar(trainer) -> None:
    """Swap the Trainer's progress callback for ``LossBar`` (no-op without a bar)."""
    handler = trainer.callback_handler
    if any(type(c) is ProgressCallback for c in handler.callbacks):
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(LossBar())


def log_tensorboard_to(trainer, out_dir: PathLike) -> None:
    """Point the Trainer's TensorBoard callback (when report_to has one) at
    ``out_dir/tensorboard`` instead of its dated ``runs/<date>_<host>`` folder.
    The TENSORBOARD_LOGGING_DIR environment variable, when set, still wins."""
    from transformers.integrations import TensorBoardCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback) and callback.logging_dir is None:
            callback.logging_dir = str(Path(out_dir) / TENSORBOARD_DIR)


def read_loss_log(run: PathLike) -> list[dict]:
    """The lines of a training run's ``loss.jsonl`` (``run``: the folder or the file)."""
    path = Path(run)
    path = path / LOSS_FILE if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no loss log (expected the --out folder of lrkit train)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def event_files(run: PathLike) -> list[Path]:
    """TensorBoard event files under a run folder, oldest first."""
    return sorted(Path(run).rglob("events.out.tfevents.*"), key=lambda p: (p.stat().st_mtime, p.name))


def read_tensorboard(run: PathLike) -> dict[str, list[tuple[int, float]]]:
    """Scalars of every event file under ``run``: {tag: [(step, value), ...]},
    read with TensorBoard's own EventAccumulator (tags as the Trainer writes
    them: ``train/loss``, ``train/learning_rate`` ...)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in event_files(run):
        accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend((e.step, e.value) for e in accumulator.Scalars(tag))
    return scalars
