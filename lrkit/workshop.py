"""What the four notebooks share: set-up and the folders they hand results on in.

- ``notebook_setup``: Colab or not, the device, and bf16 / fp16 (e.g. a T4) / fp32.
- ``run_dir``: the folder where the notebooks hand results to each other
  (``$LRKIT_RUN_DIR``, else ``runs/notebooks`` at the root of the lrkit clone the
  notebook runs in, else under the current folder).
- ``Workshop``: one notebook's parameters turned into configs and folders, with
  stages that find their results when a folder already holds them (``sampled``,
  ``trained``, ``merged``, ``evaluated``). A later notebook thus reads what an
  earlier one wrote, makes it when it runs alone, and a cell run twice never
  fails on a non-empty folder. Folders are named after the settings that shape
  their content (``sampling-n48-seed2026-beta0.4-alpha0.2``), so a changed
  parameter makes a new folder instead of clashing with an old run.
- ``once``: a plain lrkit call (``lrkit.sample``, ``train``, ``merge``,
  ``evaluate``), unless its folder already holds that call's finished result.
  The notebooks show the call with its config; the caching stays behind it.

Every stage is a plain lrkit call; nothing here re-implements them. The tables
that set a run beside the paper's numbers are in ``lrkit.analysis``.
"""
from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import json
import os
import shutil
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional, Sequence, Union

import torch

from .config import EvalConfig, SampleConfig, TrainConfig, to_dict
from .models import PRECISION_NAMES, choose_device, choose_dtype, hide_library_chatter

RUN_DIR_ENV = "LRKIT_RUN_DIR"
TOY = "toy"

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


# --------------------------------------------------------------------------- problems and configs

def problems(pair: str, n: int, split: str, seed: int = 0) -> list[dict]:
    """``n`` problems for ``pair``: a bundled toy pair's own family (seeded), else the
    first ``n`` of GSM8K's ``split`` (the paper samples GSM8K train, tests on test).
    ``split`` has no default: sampling and evaluation each name theirs."""
    from .toy import TOY_PAIRS, toy_problems

    if pair in TOY_PAIRS:
        return toy_problems(pair, n, split, seed=seed)
    from .problems import load_problems

    return [p.to_dict() for p in load_problems(f"gsm8k:{split}", max_problems=n)]


def _is_toy(pair: str) -> bool:
    from .toy import TOY_PAIRS

    return pair in TOY_PAIRS


def _toy_defaults():
    from .demo import DemoConfig

    return DemoConfig()


def sample_config(pair: str, beta: float = 0.4, alpha: float = 0.2) -> SampleConfig:
    """The paper's sampling settings at ``beta`` / ``alpha`` (the toy pair: bigger batches)."""
    base = _toy_defaults().sample if _is_toy(pair) else SampleConfig()
    return replace(base, beta=beta, alpha=alpha).validate()


def train_config(pair: str, max_steps: int, learning_rate: Optional[float] = None,
                 precision: str = "auto") -> TrainConfig:
    """The paper's LoRA settings for ``max_steps`` optimizer steps. The toy models
    are tiny and take the demo's larger learning rate and batch."""
    base = _toy_defaults().train if _is_toy(pair) else TrainConfig()
    return replace(base, max_steps=max_steps, learning_rate=learning_rate or base.learning_rate,
                   logging_steps=max(1, min(base.logging_steps, max_steps // 10)),
                   save_steps=max_steps, precision=precision).validate()


def eval_config(pair: str) -> EvalConfig:
    """Zero-shot greedy pass@1 with the paper's \\boxed{} cue (the toy pair: its
    answers fit in 160 tokens)."""
    return _toy_defaults().eval if _is_toy(pair) else EvalConfig()


def _tag(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------- finished stages

def finished_sampling(out_dir: Path, config: SampleConfig, n_problems: int) -> Optional[dict]:
    """The summary of a finished sampling run in ``out_dir`` made with ``config``
    on ``n_problems`` problems, else None (``summary.json`` is written last)."""
    out_dir = Path(out_dir)
    if not (out_dir / "summary.json").exists() or not (out_dir / "config.json").exists():
        return None
    stored = json.loads((out_dir / "config.json").read_text())
    if stored.get("problems") != n_problems or any(stored.get(k) != v for k, v in to_dict(config).items()):
        return None
    return json.loads((out_dir / "summary.json").read_text())


def load_train_result(out_dir: Path, config: TrainConfig, examples: int):
    """The TrainResult of a finished run in ``out_dir`` with these settings, else None."""
    from .runs import LOSS_FILE, RUN_FILE
    from .training import TrainResult

    out_dir = Path(out_dir)
    if not (out_dir / RUN_FILE).exists():
        return None
    saved = json.loads((out_dir / RUN_FILE).read_text())
    result = saved.get("result")
    if (not result or saved.get("config") != to_dict(config) or saved.get("examples") != examples
            or result.get("steps", 0) < config.max_steps):
        return None
    losses = [json.loads(line) for line in (out_dir / LOSS_FILE).read_text().splitlines() if line.strip()]
    return TrainResult(adapter_dir=out_dir, loss_history=losses, tuned_tokens=result["tuned_tokens"],
                       problems=result["problems"], examples=result["examples"], steps=result["steps"],
                       seconds=result["seconds"], method=result.get("method", "LightReasoner"),
                       resumed_from=result.get("resumed_from"))


def finished_evaluation(out_dir: Path, config: EvalConfig, n_problems: int):
    """The EvalResult stored in ``out_dir`` when it is complete and made with ``config``."""
    from .evaluation import EvalResult

    summary_path = Path(out_dir) / "summary.json"
    if not summary_path.exists():
        return None
    info = json.loads(summary_path.read_text())
    if not info.get("complete") or info.get("n_problems") != n_problems or info.get("config") != to_dict(config):
        return None
    return EvalResult.load(out_dir)


def merge_once(expert: str, adapter_dir: Path, out_dir: Path, dtype="auto") -> Path:
    """``lrkit.merge`` unless ``out_dir`` already holds the merged model; the merge
    is written beside it and renamed, so a half-written folder never looks done."""
    from .training import merge

    out_dir = Path(out_dir)
    if (out_dir / "config.json").exists():
        return out_dir
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    merge(expert, adapter_dir, partial, dtype=dtype)
    os.replace(partial, out_dir)
    return out_dir


def _count(items) -> Optional[int]:
    return len(items) if isinstance(items, (list, tuple)) else None


def _finished_sample(a: dict):
    from .sampling import SampleResult

    n = _count(a["problems"])
    summary = None if n is None else finished_sampling(a["out_dir"], a["config"] or SampleConfig(), n)
    return None if summary is None else SampleResult(Path(a["out_dir"]), summary)


def _finished_train(a: dict):
    from .training import load_records

    return load_train_result(a["out_dir"], a["config"] or TrainConfig(), len(load_records(a["records"])))


def _finished_evaluate(a: dict):
    n = _count(a["problems"])
    if a["out_dir"] is None or n is None:
        return None
    return finished_evaluation(a["out_dir"], a["config"] or EvalConfig(), n)


_FINISHED = {"lrkit.sampling.sample": _finished_sample, "lrkit.training.train": _finished_train,
             "lrkit.evaluation.loop.evaluate": _finished_evaluate,
             "lrkit.training.merge": lambda a: Path(a["out_dir"]) if (Path(a["out_dir"]) / "config.json").exists()
             else None}


def once(call, *args, **kwargs):
    """``call(*args, **kwargs)`` for ``call`` one of ``lrkit.sample``, ``train``,
    ``merge``, ``evaluate``, unless its output folder already holds the finished
    result of the same call (same settings, same number of problems or records):
    then that result, read from the folder.

    A cell run twice, or a notebook reading what an earlier one made, thus
    neither recomputes nor fails on a full folder. ``merge`` writes beside its
    folder and renames it, so an interrupted merge never looks finished.
    """
    key = f"{getattr(call, '__module__', '')}.{getattr(call, '__name__', '')}"
    if key not in _FINISHED:
        raise ValueError(f"once() takes lrkit.sample, lrkit.train, lrkit.merge or lrkit.evaluate, not {key}")
    bound = inspect.signature(call).bind(*args, **kwargs)
    bound.apply_defaults()
    done = _FINISHED[key](bound.arguments)
    if done is not None:
        return done
    if key == "lrkit.training.merge":
        return merge_once(**bound.arguments)
    return call(*args, **kwargs)


# --------------------------------------------------------------------------- one notebook's run

@dataclass
class Workshop:
    """A notebook's parameters, the configs and folders they give, and the stages.

    ``w = Workshop("toy", n_problems=48, beta=0.4, alpha=0.2)``; ``w.sampled()``
    is notebook 01's sampling run (made here if 01 has not run), ``w.trained()``
    and ``w.merged()`` notebook 03's, ``w.evaluated("base")`` notebook 04's.
    """

    pair: str = TOY
    n_problems: int = 48
    beta: float = 0.4
    alpha: float = 0.2
    max_steps: int = 30
    learning_rate: Optional[float] = None
    """None: the pair's default (toy 2e-3, the paper's 5e-5 otherwise)."""
    n_eval: int = 150
    seed: int = 2026
    """Seed of the toy problems (GSM8K is taken in order)."""
    setup: Optional[Setup] = None
    progress: bool = True
    _pair_models: object = field(default=None, repr=False)

    def __post_init__(self):
        if self.setup is None:
            self.setup = notebook_setup(quiet=True)

    # ------------------------------------------------------------ configs and folders
    @property
    def folder(self) -> Path:
        return run_dir(self.pair)

    @property
    def sample_config(self) -> SampleConfig:
        return sample_config(self.pair, self.beta, self.alpha)

    @property
    def train_config(self) -> TrainConfig:
        return train_config(self.pair, self.max_steps, self.learning_rate, self.setup.precision)

    @property
    def eval_config(self) -> EvalConfig:
        return eval_config(self.pair)

    def sampling_dir(self, beta: Optional[float] = None) -> Path:
        beta = self.beta if beta is None else beta
        return self.folder / (f"sampling-n{self.n_problems}-seed{self.seed}-beta{_tag(float(beta))}"
                              f"-alpha{_tag(float(self.alpha))}")

    def model_dir(self, variant: str = "lightreasoner") -> Path:
        """Folder of one tuned variant: ``adapter/``, ``merged/`` and its evaluations."""
        config = self.train_config
        return self.folder / (f"{variant}-n{self.n_problems}-seed{self.seed}-beta{_tag(float(self.beta))}"
                              f"-alpha{_tag(float(self.alpha))}-steps{config.max_steps}"
                              f"-lr{_tag(float(config.learning_rate))}")

    def eval_dir(self, model: str = "base") -> Path:
        name = f"eval-test-n{self.n_eval}-seed{self.seed}"
        return self.folder / f"base-{name}" if model == "base" else self.model_dir(model) / name

    def train_problems(self) -> list[dict]:
        return problems(self.pair, self.n_problems, "train", self.seed)

    def test_problems(self) -> list[dict]:
        return problems(self.pair, self.n_eval, "test", self.seed)

    @property
    def expert_path(self) -> str:
        from .pairs import resolve_pair

        return str(resolve_pair(self.pair)[0])

    @property
    def amateur_path(self) -> str:
        from .pairs import resolve_pair

        return str(resolve_pair(self.pair)[1])

    # ------------------------------------------------------------ stages
    def load_pair(self, expert: Optional[str] = None):
        """The pair on the chosen device (loaded once); ``expert`` swaps in another
        expert (e.g. a merged one) against the same amateur."""
        from .models import load_pair

        if expert is not None:
            return load_pair(str(expert), self.amateur_path, device=self.setup.device, dtype=self.setup.dtype)
        if self._pair_models is None:
            self._pair_models = load_pair(self.pair, device=self.setup.device, dtype=self.setup.dtype)
        return self._pair_models

    def sampled(self, beta: Optional[float] = None):
        """Notebook 01's sampling run: read when finished, else ``lrkit.sample``
        (which resumes a run that was interrupted)."""
        from .sampling import SampleResult, sample

        config = self.sample_config if beta is None else replace(self.sample_config, beta=beta)
        out_dir = self.sampling_dir(beta)
        summary = finished_sampling(out_dir, config, self.n_problems)
        if summary is not None:
            return SampleResult(out_dir, summary)
        return sample(self.load_pair(), None, self.train_problems(), out_dir, config, progress=self.progress)

    def trained(self, records: Optional[Sequence[dict]] = None, variant: str = "lightreasoner"):
        """Notebook 03's LoRA run on ``records`` (default: the sampling run's):
        read when finished, else ``lrkit.train`` (resuming a partial run)."""
        from .training import train

        if records is None:
            records = self.sampled().records()
        return once(train, self.expert_path, records, self.model_dir(variant) / "adapter", self.train_config,
                    resume=True, progress=self.progress)

    def merged(self, variant: str = "lightreasoner") -> Path:
        """The tuned expert as a plain model folder (``lrkit.merge``), made once."""
        from .training import merge

        adapter = self.model_dir(variant) / "adapter"
        if not (adapter / "adapter_config.json").exists() and variant in ("lightreasoner", "sft"):
            self.sft() if variant == "sft" else self.trained()
        return once(merge, self.expert_path, adapter, self.model_dir(variant) / "merged")

    def evaluated(self, model: str = "base", name: Optional[str] = None):
        """Greedy pass@1 on ``n_eval`` held-out problems of ``model`` ("base" or a
        tuned variant such as "lightreasoner"); read when already complete."""
        from .evaluation import evaluate
        from .models import load_model

        out_dir = self.eval_dir(model)
        tests = self.test_problems()
        done = finished_evaluation(out_dir, self.eval_config, len(tests))
        if done is not None:
            return done
        path = self.expert_path if model == "base" else str(self.merged(model))
        loaded, tokenizer = load_model(path, device=self.setup.device, dtype=self.setup.dtype)
        label = name or ("base expert" if model == "base" else model)
        return evaluate(loaded, tests, self.eval_config, tokenizer=tokenizer, out_dir=out_dir,
                        progress=self.progress, name=label)

    def rollout_steps(self, model: str, problems: Sequence[dict]):
        """Step statistics of ``model``'s greedy rollouts ("base" or a tuned variant)
        on ``problems`` against the same amateur, under the evaluation's prompt and
        length, so they are the rollouts that were scored."""
        from .sampling import read_steps, sample

        config = replace(self.sample_config, system_prompt=self.eval_config.system_prompt,
                         max_new_tokens=self.eval_config.max_new_tokens)
        ids = json.dumps([p["id"] for p in problems])
        out_dir = self.folder / "views" / f"{model}-{hashlib.sha256(ids.encode()).hexdigest()[:10]}"
        if finished_sampling(out_dir, config, len(problems)) is None:
            pair = self.load_pair() if model == "base" else self.load_pair(str(self.merged(model)))
            sample(pair, None, list(problems), out_dir, config, progress=False)
        return read_steps(out_dir)

    def sft(self) -> dict:
        """The paper's SFT baseline (``lrkit.sft.run_sft``) on the same train
        problems, with the same LoRA and learning rate; its summary (problems used,
        tuned tokens, seconds), read when the folder holds a finished run."""
        from .sft import run_sft, sft_config
        from .runs import RUN_FILE

        out_dir = self.model_dir("sft") / "adapter"
        config = sft_config(self.train_config)
        if (out_dir / RUN_FILE).exists():
            saved = json.loads((out_dir / RUN_FILE).read_text())
            if saved.get("result") and saved.get("config") == to_dict(config) \
                    and saved.get("problems") == self.n_problems:
                return saved["result"]
        return run_sft(self.expert_path, self.train_problems(), out_dir, config=self.train_config,
                       max_new_tokens=self.eval_config.max_new_tokens,
                       generation_batch_size=self.eval_config.batch_size, resume=True,
                       progress=self.progress).summary()


def run_ablations(w: Workshop, base, tuned, trained) -> list[dict]:
    """The paper's Table 6 in miniature, every variant with ``w``'s training budget:
    no selection (every step, beta = 0), no contrast (the expert's own distribution
    over the mask as target), neither."""
    from .demo import _no_contrast

    records = w.sampled().records()
    every = w.sampled(beta=0.0).records()
    rows = [{"variant": "base expert", "examples": 0, "tuned_tokens": 0, "result": base},
            {"variant": "full method", "examples": trained.examples, "tuned_tokens": trained.tuned_tokens,
             "result": tuned}]
    for label, variant, variant_records in (("no selection", "no_selection", every),
                                            ("no contrast", "no_contrast", _no_contrast(records)),
                                            ("neither", "neither", _no_contrast(every))):
        result = w.trained(variant_records, variant)
        rows.append({"variant": label, "examples": result.examples, "tuned_tokens": result.tuned_tokens,
                     "result": w.evaluated(variant, name=label)})
    return rows
