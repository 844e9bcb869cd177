"""Notebook set-up: where the notebooks run, in which precision, and their run folder.

- ``setting``: a value of the notebooks' parameters cell, taken from the environment
  (``LRKIT_<NAME>``, e.g. ``LRKIT_PAIR``) when it is set there, so one setting
  reaches all five notebooks; papermill's parameters still override it.
- ``notebook_setup``: Colab or not, the device, and bf16 / fp16 (e.g. a T4) / fp32.
- ``run_dir``: the folder where the notebooks hand results to each other
  (``$LRKIT_RUN_DIR``, else ``$LRKIT_HOME/runs``, else ``runs/notebooks`` at the root
  of the lrkit clone the notebook runs in, else under the current folder).
- ``notebook_experiment``: the notebooks' parameters cell as an
  :class:`lrkit.Experiment` in that folder (its configs, problems and folder names).
  The notebooks call every stage themselves (``lrkit.sample``, ``lrkit.train`` ...)
  into the experiment's folders; a stage called again returns what its folder holds.
- ``quiet``: hide progress bars and tables in a block.

Importing this module imports neither torch nor transformers (the parameters cell
imports ``setting`` before anything may read ``HF_HOME``); the set-up functions do.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

if TYPE_CHECKING:  # torch loads with the set-up, not with this module
    import torch

RUN_DIR_ENV = "LRKIT_RUN_DIR"
"""The notebooks' run folder itself (wins over ``LRKIT_HOME``)."""
HOME_ENV = "LRKIT_HOME"
"""A folder for everything the notebooks keep: their runs go to ``$LRKIT_HOME/runs``. On
Colab, a folder on Drive (``/content/drive/MyDrive/lrkit``) outlives the runtime; the
notebooks' first cell mounts Drive when it lies there (and when ``HF_HOME``, the model
cache, does)."""
SETTING_PREFIX = "LRKIT_"

# --------------------------------------------------------------------------- parameters

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def setting(name: str, default, kind: Optional[type] = None):
    """A parameter of the notebooks: ``$LRKIT_<name>`` when the environment sets it, else
    ``default``. The text is read as ``kind`` (default: the type of ``default``; give it
    when the default is None): int, float, bool (1/0, true/false, yes/no, on/off) or str;
    "none" (any case) or an empty value gives None where the default is None. A value
    taken from the environment is printed, so a notebook says where it came from.

    >>> setting("N_PROBLEMS", 48)   # LRKIT_N_PROBLEMS unset
    48
    """
    variable = SETTING_PREFIX + name
    text = os.environ.get(variable)
    if text is None:
        return default
    value = parse_setting(variable, text, kind or type(default), default is None)
    print(f"{name} = {value!r} (from {variable})")
    return value


def parse_setting(variable: str, text: str, kind: type, optional: bool = False):
    """``text`` (the value of ``variable``) as ``kind``; ValueError in one line otherwise."""
    stripped = text.strip()
    if optional and stripped.lower() in ("", "none"):
        return None
    try:
        if kind is bool:
            if stripped.lower() not in _TRUE | _FALSE:
                raise ValueError
            return stripped.lower() in _TRUE
        if kind in (int, float):
            return kind(stripped)
        return text if kind in (str, type(None)) else kind(stripped)
    except ValueError:
        wanted = {bool: "true or false", int: "an integer", float: "a number"}.get(kind, kind.__name__)
        raise ValueError(f"{variable}={text!r}: expected {wanted}" + (" or none" if optional else "")) from None


# --------------------------------------------------------------------------- set-up

def on_colab() -> bool:
    return "google.colab" in sys.modules


@dataclass(frozen=True)
class Setup:
    """Where the notebook runs and in which precision."""

    device: torch.device
    dtype: torch.dtype
    """Dtype the models are loaded in: bf16 where the GPU has it, fp16 on other
    GPUs (a Colab T4), fp32 on the CPU; or what ``DTYPE`` asked for."""
    precision: str
    """The same choice as a ``TrainConfig.precision`` value."""
    colab: bool
    accelerator: str

    def __str__(self) -> str:
        import torch

        where = "Colab" if self.colab else "local"
        return (f"{where}, {self.accelerator}: device {self.device}, "
                f"{self.precision} (torch {torch.__version__})")


def notebook_setup(device: str = "auto", dtype: str = "auto", quiet: bool = False,
                   library_chatter: bool = False) -> Setup:
    """Pick the device ("auto": the GPU when there is one) and the dtype ("auto": bf16
    on a GPU that computes in it, fp16 on other GPUs, fp32 on the CPU; or "bf16",
    "fp16", "fp32").

    Unless ``library_chatter``, also hide what helps no reader of a notebook:
    transformers' per-load "Loading weights" bars and its deprecation warning
    for ``is_gradient_checkpointing`` (raised from inside the Trainer and peft).
    lrkit's own progress bars and the Trainer's loss table stay."""
    import torch

    from lrkit.models.loading import PRECISION_NAMES, choose_device, choose_dtype, hide_library_chatter

    if not library_chatter:
        hide_library_chatter()
    chosen = choose_device(device)
    chosen_dtype = choose_dtype(chosen, dtype)
    if chosen.type == "cpu" and chosen_dtype == torch.float16:
        raise ValueError("DTYPE fp16 needs a GPU (the Trainer's fp16 loss scaling runs on CUDA only); "
                         "use fp32 or bf16 on the CPU")
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


def runs_root() -> Path:
    """Where the notebooks' runs go: ``$LRKIT_RUN_DIR``, else ``$LRKIT_HOME/runs``, else
    ``runs/notebooks`` in the lrkit clone (or the current folder)."""
    if os.environ.get(RUN_DIR_ENV):
        return Path(os.environ[RUN_DIR_ENV]).expanduser()
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser() / "runs"
    return (repo_root() or Path.cwd()) / "runs" / "notebooks"


def run_dir(*parts) -> Path:
    """The notebooks' shared folder (created), or a folder inside it."""
    path = runs_root().joinpath(*(str(p) for p in parts))
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------- the notebooks' experiment

def notebook_experiment(pair: str, n_problems: int, beta: float, alpha: float, max_steps: int,
                        learning_rate: Optional[float], n_eval: int, seed: int, device: str = "auto",
                        dtype: str = "auto", save_steps: Optional[int] = None):
    """The notebooks' parameters cell as an Experiment in ``run_dir(pair, "n<N>-test<M>-seed<S>")``,
    on the device and dtype ``notebook_setup`` picks (``ex.setup`` says which; it is printed).
    Training checkpoints every ``save_steps`` steps (None: about every 10 minutes of a T4,
    :func:`lrkit.experiment.checkpoint_steps`), so a run cut off resumes from there.

    One problem set per folder; the sampling, training and evaluation folders inside
    it are named after their own settings, so a changed parameter makes a new folder
    beside the old ones instead of clashing with them."""
    from lrkit.experiment import Experiment, experiment_config

    setup = notebook_setup(device, dtype)
    config = experiment_config(pair, n_problems, n_eval, beta=beta, alpha=alpha, max_steps=max_steps,
                               learning_rate=learning_rate, seed=seed, precision=setup.precision,
                               save_steps=save_steps)
    ex = Experiment(run_dir(pair, f"n{n_problems}-test{n_eval}-seed{seed}"), config, device=setup.device,
                    dtype=setup.dtype)
    ex.setup = setup
    print("results go to", ex.folder)
    return ex
