"""Notebook set-up: where the notebooks run, in which precision, and their run folder.

- ``notebook_setup``: Colab or not, the device, and bf16 / fp16 (e.g. a T4) / fp32.
- ``run_dir``: the folder where the notebooks hand results to each other
  (``$LRKIT_RUN_DIR``, else ``runs/notebooks`` at the root of the lrkit clone the
  notebook runs in, else under the current folder).
- ``notebook_experiment``: the notebooks' parameters cell as an
  :class:`lrkit.Experiment` in that folder (its configs, problems and folder names).
  The notebooks call every stage themselves (``lrkit.sample``, ``lrkit.train`` ...)
  into the experiment's folders; a stage called again returns what its folder holds.
- ``quiet``: hide progress bars and tables in a block.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch

from lrkit.experiment import Experiment, experiment_config
from lrkit.models.loading import PRECISION_NAMES, choose_device, choose_dtype, hide_library_chatter

RUN_DIR_ENV = "LRKIT_RUN_DIR"

# --------------------------------------------------------------------------- set-up

def on_colab() -> bool:
    return "google.colab" in sys.modules


@dataclass(frozen=True)
class Setup:
    """Where the notebook runs and in which precision."""

    device: torch.device
    dtype: torch.dtype
    """Dtype the models are loaded in: bf16 where the GPU has it, fp16 on other
    GPUs (a Colab T4), fp32 on the CPU."""
    precision: str
    """The same choice as a ``TrainConfig.precision`` value."""
    colab: bool
    accelerator: str

    def __str__(self) -> str:
        where = "Colab" if self.colab else "local"
        return (f"{where}, {self.accelerator}: device {self.device}, "
                f"{self.precision} (torch {torch.__version__})")


def notebook_setup(device: str = "auto", dtype: str = "auto", quiet: bool = False,
                   library_chatter: bool = False) -> Setup:
    """Pick the device ("auto": the GPU when there is one) and the dtype.

    Unless ``library_chatter``, also hide what helps no reader of a notebook:
    transformers' per-load "Loading weights" bars and its deprecation warning
    for ``is_gradient_checkpointing`` (raised from inside the Trainer and peft).
    lrkit's own progress bars and the Trainer's loss table stay."""
    if not library_chatter:
        hide_library_chatter()
    chosen = choose_device(device)
    chosen_dtype = choose_dtype(chosen, dtype)
    accelerator = torch.cuda.get_device_name(chosen) if chosen.type == "cuda" else "CPU"
    setup = Setup(chosen, chosen_dtype, PRECISION_NAMES[chosen_dtype], on_colab(), accelerator)
    if not quiet:
        print(setup)
    return setup


@contextlib.contextmanager
def quiet():
    """Inside the block, hide what is printed and displayed (progress bars, trainer
    tables, logs): for cells that train and evaluate several models in a row."""
    try:
        from IPython.utils.capture import capture_output
    except ImportError:  # outside IPython: stdout and stderr only
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
        return
    with capture_output():
        yield


def repo_root(start: Union[str, Path, None] = None) -> Optional[Path]:
    """The lrkit clone holding ``start`` (default: the current folder), if any."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "lrkit" / "__init__.py").is_file():
            return folder
    return None


def run_dir(*parts) -> Path:
    """The notebooks' shared folder (created), or a folder inside it."""
    base = os.environ.get(RUN_DIR_ENV)
    root = Path(base) if base else (repo_root() or Path.cwd()) / "runs" / "notebooks"
    path = root.joinpath(*(str(p) for p in parts))
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------- the notebooks' experiment

def notebook_experiment(pair: str, n_problems: int, beta: float, alpha: float, max_steps: int,
                        learning_rate: Optional[float], n_eval: int, seed: int, device: str = "auto"):
    """The notebooks' parameters cell as an Experiment in ``run_dir(pair, "n<N>-test<M>-seed<S>")``,
    on the device and dtype ``notebook_setup`` picks (``ex.setup`` says which; it is printed).

    One problem set per folder; the sampling, training and evaluation folders inside
    it are named after their own settings, so a changed parameter makes a new folder
    beside the old ones instead of clashing with them."""
    setup = notebook_setup(device)
    config = experiment_config(pair, n_problems, n_eval, beta=beta, alpha=alpha, max_steps=max_steps,
                                       learning_rate=learning_rate, seed=seed, precision=setup.precision)
    ex = Experiment(run_dir(pair, f"n{n_problems}-test{n_eval}-seed{seed}"), config, device=setup.device,
                    dtype=setup.dtype)
    ex.setup = setup
    print("results go to", ex.folder)
    return ex
