"""One pipeline: check -> sample -> select -> train -> merge -> evaluate -> ablations.

:class:`Experiment` runs LightReasoner on one pair and one problem set, one
stage per method, each a plain lrkit call (``lrkit.sample``, ``train``,
``merge``, ``evaluate``, ``evaluate_contrastive``, ``run_sft``,
``contrast_check``) into a folder named after the settings that shape it. A
stage called again with the same settings returns the result its folder holds
(the run-folder layer, :mod:`lrkit.runs`), so a method called twice, or a
notebook reading what another one made, neither recomputes nor clashes.
``lrkit demo`` is :meth:`Experiment.run` on a bundled pair; the notebooks make
the same stage calls in their own cells, into the same folders.

The experiment's folder::

    experiment.json                      the pair, its build, the problem sets
    sampling-beta0.4-alpha0.2/           lrkit.sample (beta 0: every step, the ablation)
    base/eval/                           the base expert on the test problems
    decoding-alpha0.2/eval/              decoding by v_C's argmax, no training
    lightreasoner-beta0.4-alpha0.2-steps60-lr0.002-seed0/{adapter,merged,eval}/
    no_contrast-.../  no_selection-.../  neither-.../  sft-lr0.002-seed0/
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence, Union

from lrkit.config import EvalConfig, ExperimentConfig, TrainConfig, paper_differences, to_dict, with_added_fields
from lrkit.data.problems import load_problems
from lrkit.evaluation import compare, evaluate, evaluate_contrastive
from lrkit.evaluation.anatomy import GSM8K_TYPES, classify_gsm8k, error_anatomy
from lrkit.evaluation.audit import odd_token_audit
from lrkit.evaluation.diagnostics import contrast_check
from lrkit.evaluation.loop import stored_contrastive
from lrkit.evaluation.prediction import scout_row, verdict
from lrkit.maths.selection import no_contrast
from lrkit.models.loading import PRECISION_NAMES, choose_device, choose_dtype, load_pair
from lrkit.models.pairs import PAIRS, resolve_pair
from lrkit.provenance import Provenance, api_call, now
from lrkit.results import ExperimentSummary
from lrkit.runs import StageFolder, digest, read_json, sha256_of_file, write_json
from lrkit.stages.cards import add_evaluation
from lrkit.stages.export import export
from lrkit.stages.sampling import sample
from lrkit.stages.sft import run_sft
from lrkit.stages.training import merge, train
from lrkit.toy import TOY_PAIRS, toy_problems
from lrkit.viz.experiment_report import experiment_report
from lrkit.viz.tables import ablation_row

EXPERIMENT_FILE = "experiment.json"
SCOUT_FILE = "scout.json"
EXPERIMENT = StageFolder("experiment", EXPERIMENT_FILE, finished=lambda folder, stored: False, load=Path,
                         way_out="delete it to start afresh (lrkit demo --fresh does)")
"""The experiment folder's claim: its problem sets, pair build and dtype in experiment.json
(never "finished": each stage inside keeps its own folder)."""


def _scout_settings(stored: dict, current) -> dict:
    """A prediction's settings; one from before EvalConfig.protocol followed lrkit's rules."""
    before = stored.get("settings")
    if isinstance(before, dict):
        before = {**before, "eval": with_added_fields(before.get("eval"), EvalConfig)}
    return before or {}


SCOUTING = StageFolder("scout", SCOUT_FILE, finished=lambda folder, stored: True,
                       load=lambda folder: read_json(folder / SCOUT_FILE), as_stored=_scout_settings,
                       shared=True, way_out="delete its scout.json to predict again")
"""The scout's prediction in the experiment folder: written once, read back after."""
CHECKS_DIR = "checks"
OTHER_PAIRS = "other-pairs"
"""Where the other bundled pair's evaluations go (:meth:`Experiment.contrast`)."""
"""The gold-path checks' summaries, one file per pair, with the settings that made them."""
"""The scout's prediction, written before any training and never rewritten."""
VARIANTS = ("lightreasoner", "no_selection", "no_contrast", "neither")
"""The paper's Table 6: the full method, every step (beta 0), the expert's own
distribution as target, and both."""
ABLATION_LABELS = {"lightreasoner": "full method", "no_selection": "no selection",
                   "no_contrast": "no contrast", "neither": "neither"}


T4_SECONDS_PER_STEP = 0.87
"""One optimizer step of the paper's training (16 records of Qwen2.5-Math-1.5B, LoRA) on a
Colab T4, as projected, not measured: perf/colab_flops.py counts 1.98e16 FLOP for notebook 3's
1000 steps (perf/results/colab_flops.json), at 35% of the T4's 65 TFLOP/s fp16 peak."""
CHECKPOINT_MINUTES = 10
"""The notebooks' training loses at most about this much work to a disconnect (at that speed)."""


def checkpoint_steps(max_steps: int, minutes: float = CHECKPOINT_MINUTES,
                     seconds_per_step: float = T4_SECONDS_PER_STEP) -> int:
    """Optimizer steps between two checkpoints so that at most ``minutes`` of training are
    lost when a run is cut off, at ``seconds_per_step``; never more than ``max_steps``.

    >>> checkpoint_steps(1000)   # the paper's 1000 steps on a T4: a checkpoint at 689 and at 1000
    689
    """
    return max(1, min(max_steps, int(minutes * 60 // seconds_per_step)))


def experiment_config(pair: str, train_problems: int, test_problems: int, beta: float = 0.4,
                      alpha: float = 0.2, max_steps: int = 30, learning_rate: Optional[float] = None,
                      seed: int = 2026, precision: str = "auto", seeds: int = 1,
                      save_steps: Optional[int] = None) -> ExperimentConfig:
    """The notebooks' settings: :meth:`ExperimentConfig.for_pair` (the pair's defaults: a
    bundled toy pair the demo's batches, learning rate and 160-token answers graded by
    lrkit's protocol, any other pair the paper's settings and evaluation protocol, a pair of
    PAIR_BUDGETS its problems file, dtype and batches) with the values of the notebooks'
    parameters cell in place of its own.

    Args:
        pair: a pair name (``lrkit.models.pairs``).
        train_problems, test_problems: problems sampled, problems every model is evaluated on;
            a non-toy pair checks on at most ``train_problems`` validation problems.
        beta, alpha: the selection threshold and the plausibility mask (SampleConfig).
        max_steps: LoRA optimizer steps, about ten loss lines.
        learning_rate: None keeps the pair's (the demo's for a toy pair, the paper's 5e-5 else).
        seed: the problems' seed (``problem_seed``); seeds: LightReasoner runs, one per seed.
        precision: TrainConfig.precision.
        save_steps: checkpoint every this many steps (None: :func:`checkpoint_steps`, about ten
            minutes of the projected T4 speed), so a disconnected notebook resumes from there.
    Returns:
        the ExperimentConfig, validated.
    """
    base = ExperimentConfig.for_pair(pair)
    train = replace(base.train, max_steps=max_steps, learning_rate=learning_rate or base.train.learning_rate,
                    logging_steps=max(1, min(base.train.logging_steps, max_steps // 10)),
                    save_steps=min(save_steps or checkpoint_steps(max_steps), max_steps), precision=precision)
    check_problems = base.check_problems if is_toy(pair) else min(base.check_problems, train_problems)
    return replace(base, train_problems=train_problems, test_problems=test_problems, problem_seed=seed,
                   seeds=seeds, check_problems=check_problems, sample=replace(base.sample, beta=beta, alpha=alpha),
                   train=train).validate()


def is_toy(pair: str) -> bool:
    return pair in TOY_PAIRS


def problems_for(pair: str, n: int, split: str, seed: int = 0) -> list[dict]:
    """``n`` problems for ``pair``: a bundled toy pair's own family (seeded; splits disjoint
    by construction), else the first ``n`` of GSM8K's ``split`` from the Hub.
    ``split`` has no default: sampling and evaluation each name theirs."""
    if is_toy(pair):
        return toy_problems(pair, n, split, seed=seed)

    return [p.to_dict() for p in load_problems(f"gsm8k:{split}", max_problems=n)]


REPOSITORY = Path(__file__).resolve().parents[1]


def problems_file(path: str) -> Path:
    """``ExperimentConfig.problems`` as a file: a relative path is read from the working
    folder, else from the repository's folder (so ``../shared/...`` works from either)."""
    for candidate in (Path(path), REPOSITORY / path):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"ExperimentConfig.problems (--problems): {path}: no such file "
                            f"(looked in {Path.cwd()} and {REPOSITORY})")


def shuffled(items: list, seed: int) -> list:
    """``items`` in an order fixed by ``seed`` (Python's Mersenne Twister)."""
    import random

    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    return [items[i] for i in order]


def problem_sets(config: ExperimentConfig) -> dict[str, list[dict]]:
    """The experiment's three problem sets, disjoint: ``train`` (sampled), ``validation``
    (the scout and the gold-path check; settings are chosen here) and ``test`` (the
    reported accuracies).

    * a toy pair: its own family's train, validation and test splits (seeded);
    * ``config.problems`` (a GSM8K-style file): shuffled with ``problem_seed``, then cut
      in order into test, validation and train, so a longer train set keeps the same test
      and validation sets;
    * otherwise GSM8K from the Hub: its train split shuffled with ``problem_seed`` gives
      validation then train; test is the first ``test_problems`` of its test split.
    """
    c = config
    if is_toy(c.pair) and c.problems is None:
        return {"train": toy_problems(c.pair, c.train_problems, "train", seed=c.problem_seed),
                "validation": toy_problems(c.pair, c.check_problems, "validation", seed=c.problem_seed),
                "test": toy_problems(c.pair, c.test_problems, "test", seed=c.problem_seed)}
    if c.problems is not None:
        path = problems_file(c.problems)
        pool = shuffled([p.to_dict() for p in load_problems(str(path), require_answers=True)], c.problem_seed)
        need = c.test_problems + c.check_problems + c.train_problems
        if len(pool) < need:
            raise ValueError(f"{path}: {len(pool)} problems, fewer than the {need} the experiment cuts from it "
                             f"(test {c.test_problems} + validation {c.check_problems} + train {c.train_problems})")
        test, rest = pool[:c.test_problems], pool[c.test_problems:]
        return {"test": test, "validation": rest[:c.check_problems],
                "train": rest[c.check_problems:c.check_problems + c.train_problems]}
    pool = shuffled([p.to_dict() for p in load_problems("gsm8k:train")], c.problem_seed)
    return {"validation": pool[:c.check_problems], "train": pool[c.check_problems:c.check_problems + c.train_problems],
            "test": [p.to_dict() for p in load_problems("gsm8k", max_problems=c.test_problems)]}


def _tag(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def pair_members(config: ExperimentConfig) -> tuple[str, str]:
    """(expert, amateur) of an experiment: a registered pair's members (``config.amateur``
    replacing its amateur), or ``config.pair`` as the expert's name or folder with
    ``config.amateur`` beside it."""
    if config.pair in PAIRS:
        expert, amateur = (str(p) for p in resolve_pair(config.pair))
        return expert, config.amateur or amateur
    if not config.amateur:
        raise ValueError(f"pair {config.pair!r} is not a registered pair (lrkit pair list); name its amateur "
                         f"too (--amateur, ExperimentConfig.amateur) to use it as the expert")
    return config.pair, config.amateur


def pair_build(pair: str, amateur: Optional[str] = None) -> dict:
    """What the experiment's models are: a bundled pair's weights by sha256 (a rebuilt toy
    pair is another pair), any other pair by its members' names or folders."""
    if is_toy(pair) and amateur is None:
        expert, amateur_path = (str(p) for p in resolve_pair(pair))
        return {role: sha256_of_file(Path(path) / "model.safetensors")
                for role, path in (("expert", expert), ("amateur", amateur_path))}
    if pair in PAIRS and amateur is None:
        return {"expert": PAIRS[pair].expert, "amateur": PAIRS[pair].amateur}
    expert, amateur = pair_members(ExperimentConfig(pair=pair, amateur=amateur))
    return {"expert": expert, "amateur": amateur}


class Experiment:
    """LightReasoner on one pair and problem set, into ``folder``.

    ``Experiment("runs/demo", ExperimentConfig())`` then ``check()``, ``sample()``,
    ``train()``, ``merge()``, ``evaluate()``, ``decode()``, ``ablations()``,
    ``sft()``, each returning its stage's result, or ``run()`` for all of them,
    the summary and the report (``lrkit demo``). ``device`` / ``dtype``: where
    the models run ("auto": the GPU when there is one).

    Constructing one claims the folder: it creates it and writes ``experiment.json``
    (the problem settings, the dtype and the pair's build), or checks that the one there
    says the same. Models load on first use (:attr:`pair`), problem sets on first use.

    Args:
        folder: the experiment's folder; every stage writes a sub-folder named after its
            settings (the module docstring shows the layout).
        config (ExperimentConfig, optional): default ``ExperimentConfig()``, the demo's;
            validated here.
        device: ``"auto"`` (CUDA when available, else the CPU), ``"cpu"``, ``"cuda:1"``...
        dtype: ``"auto"`` or None (``config.dtype``), ``"bf16"``, ``"fp16"``, ``"fp32"`` or a
            ``torch.dtype``: the models' dtype for sampling and evaluation, and training's
            when ``config.train.precision`` is "auto".
        progress (bool): progress bars, and :meth:`run` prints each stage's name.

    Raises:
        lrkit.runs.FolderError: ``folder`` holds an experiment of other problems, pair
            build or dtype.
        ValueError: a config value out of range, an unknown device or dtype, or a pair that
            is not registered without ``config.amateur``.
        FileNotFoundError: ``config.problems`` names no file, or a bundled pair's files are
            missing.
    """

    def __init__(self, folder: Union[str, Path], config: Optional[ExperimentConfig] = None, device="auto",
                 dtype="auto", progress: bool = True):
        self.folder, self.config, self.progress = Path(folder), (config or ExperimentConfig()).validate(), progress
        self.device = choose_device(device)
        self.dtype = choose_dtype(self.device, self.config.dtype if dtype in (None, "auto") else dtype)
        self._pair, self._sets, self._checks = None, None, {}
        self._claim()

    def _claim(self) -> None:
        """The folder holds this experiment's problems, pair build and dtype, or nothing yet."""
        c = self.config
        current = {**c.problem_settings(), "dtype": PRECISION_NAMES[self.dtype],
                   "pair_build": pair_build(c.pair, c.amateur)}
        if c.problems is not None:
            current["problems_sha256"] = sha256_of_file(problems_file(c.problems))
        if EXPERIMENT.open(self.folder, current).state == "new":
            self.folder.mkdir(parents=True, exist_ok=True)
            write_json(self.folder / EXPERIMENT_FILE, current)

    # ------------------------------------------------------------------ problems, pair, folders
    @property
    def expert_path(self) -> str:
        return pair_members(self.config)[0]

    @property
    def amateur_path(self) -> str:
        return pair_members(self.config)[1]

    @property
    def pair(self):
        """The pair (the expert and the amateur), loaded once on the experiment's device."""
        if self._pair is None:
            self._pair = (load_pair(self.expert_path, self.config.amateur, device=self.device, dtype=self.dtype)
                          if self.config.amateur else load_pair(self.config.pair, device=self.device, dtype=self.dtype))
        return self._pair

    def problem_sets(self) -> dict[str, list[dict]]:
        """train, validation and test (:func:`problem_sets`), built once."""
        if self._sets is None:
            self._sets = problem_sets(self.config)
        return self._sets

    def train_set(self) -> list[dict]:
        return self.problem_sets()["train"]

    def validation_set(self) -> list[dict]:
        return self.problem_sets()["validation"]

    def test_set(self) -> list[dict]:
        return self.problem_sets()["test"]

    def train_config(self, seed: Optional[int] = None) -> TrainConfig:
        """The experiment's TrainConfig; precision "auto" follows the experiment's dtype
        when that is not what "auto" gives on this device (bf16 models on a CPU train in bf16)."""
        t = self.config.train if seed is None else replace(self.config.train, seed=seed)
        auto = PRECISION_NAMES[choose_dtype(self.device)]
        if t.precision == "auto" and PRECISION_NAMES[self.dtype] != auto:
            t = replace(t, precision=PRECISION_NAMES[self.dtype])
        return t

    def sampling_dir(self, beta: Optional[float] = None) -> Path:
        s = self.config.sample
        return self.folder / f"sampling-beta{_tag(float(s.beta if beta is None else beta))}-alpha{_tag(float(s.alpha))}"

    def model_dir(self, variant: str = "lightreasoner", seed: Optional[int] = None) -> Path:
        """The folder of one tuned model: ``adapter/``, ``merged/``, ``eval/``."""
        s, t = self.config.sample, self.config.train
        seed = t.seed if seed is None else seed
        if variant == "sft":
            return self.folder / f"sft-lr{_tag(float(t.learning_rate))}-seed{seed}"
        beta = 0.0 if variant in ("no_selection", "neither") else s.beta
        return self.folder / (f"{variant}-beta{_tag(float(beta))}-alpha{_tag(float(s.alpha))}"
                              f"-steps{t.max_steps}-lr{_tag(float(t.learning_rate))}-seed{seed}")

    def eval_dir(self, model: str = "base", seed: Optional[int] = None) -> Path:
        if model == "base":
            return self.folder / "base" / "eval"
        if model == "decoding":
            return self.folder / f"decoding-alpha{_tag(float(self.config.sample.alpha))}" / "eval"
        return self.model_dir(model, seed) / "eval"

    def seeds(self) -> list[int]:
        return [self.config.train.seed + i for i in range(self.config.seeds)]

    # ------------------------------------------------------------------ stages
    def check(self, pairs: Optional[Sequence[str]] = None) -> dict:
        """The gold-path check (``lrkit.contrast_check``) at the experiment's beta and
        alpha, on validation gold solutions; ``pairs``: default this pair and, for a
        bundled pair, the other bundled one. Each pair's summary is kept in
        ``checks/NAME.json`` with the settings it was made with; called again with the
        same settings, it is read back without loading a model."""
        c = self.config
        names = pairs or (sorted(TOY_PAIRS, key=lambda n: n != c.pair) if is_toy(c.pair) else [c.pair])
        checks = {}
        for name in names:
            path, settings = self.folder / CHECKS_DIR / f"{name.replace('/', '_')}.json", self._check_settings(name)
            stored = read_json(path)
            if name not in self._checks and isinstance(stored, dict) and stored.get("settings") == settings:
                checks[name] = stored["summary"]
                continue
            checks[name] = self.check_result(name).summary()
            path.parent.mkdir(exist_ok=True)
            write_json(path, {"settings": settings, "summary": checks[name]})
        return checks

    def _gold(self, name: str) -> list[dict]:
        c = self.config
        return self.validation_set() if name == c.pair else problems_for(name, c.check_problems, "validation",
                                                                          c.problem_seed)

    def _check_settings(self, name: str) -> dict:
        c = self.config
        return {"problems_sha256": digest([[p["id"], p["question"], p.get("answer")] for p in self._gold(name)]),
                "beta": c.sample.beta, "alpha": c.sample.alpha, "system_prompt": c.sample.system_prompt,
                "pair_build": pair_build(name) if name != c.pair else pair_build(c.pair, c.amateur)}

    def check_result(self, name: Optional[str] = None):
        """The gold-path check of ``name`` (default this pair) as a
        :class:`~lrkit.evaluation.diagnostics.ContrastCheck` (its steps, for the odd-token
        audit); computed once per experiment object."""
        c = self.config
        name = name or c.pair
        if name not in self._checks:
            pair = self.pair if name == c.pair else load_pair(name, device=self.device, dtype=self.dtype)
            self._checks[name] = contrast_check(pair, self._gold(name), beta=c.sample.beta, alpha=c.sample.alpha,
                                                system_prompt=c.sample.system_prompt)
        return self._checks[name]

    def scout(self) -> dict:
        """The scout's prediction, made before any training (``scout.json``): the expert's
        greedy accuracy and decoding by v_C's argmax on the validation problems (each an
        evaluation folder under ``validation/``, resumed by batch), the gold-path check and
        the odd-token audit of its kept steps. Written once: a later call returns the
        stored prediction, with the time it was first recorded."""
        c = self.config
        settings = {"validation_sha256": digest([[p["id"], p["question"]] for p in self.validation_set()]),
                    "beta": c.sample.beta, "alpha": c.sample.alpha, "eval": to_dict(c.eval)}
        opened = SCOUTING.open(self.folder, settings)
        if opened.state == "stored":
            return opened.result
        greedy = evaluate(self.pair.expert, self.validation_set(), c.eval, tokenizer=self.pair.tokenizer,
                          out_dir=self.folder / "validation" / "greedy", progress=self.progress,
                          name="base expert (validation)")
        decoded = evaluate_contrastive(self.pair, self.validation_set(), c.eval, alpha=c.sample.alpha,
                                       out_dir=self.folder / "validation" / f"decoding-alpha{_tag(float(c.sample.alpha))}",
                                       progress=self.progress, name="decoding by v_C's argmax (validation)")
        check = self.check_result()
        audit = odd_token_audit(check)
        row = scout_row(greedy, decoded, check, audit, self.amateur_path, c.sample.beta, c.sample.alpha)
        prediction = {**row, "recorded_at": now(), "settings": settings,
                      "odd_examples": audit.examples.to_dict("records")}
        write_json(self.folder / SCOUT_FILE, prediction)
        return prediction

    def sample(self, beta: Optional[float] = None):
        """``lrkit.sample`` on the train problems at the experiment's
        settings (``beta`` 0: every step, the no-selection ablation)."""
        config = self.config.sample if beta is None else replace(self.config.sample, beta=beta)
        # the gold answers are only stored beside the rollouts, for reading; sampling never uses them
        if self._pair is None:  # by name: a finished run is read back without loading the models
            return sample(self.expert_path, self.amateur_path, self.train_set(), self.sampling_dir(beta), config,
                          device=self.device, dtype=self.dtype, progress=self.progress)
        return sample(self.pair, None, self.train_set(), self.sampling_dir(beta), config, progress=self.progress)

    def records(self, variant: str = "lightreasoner") -> list[dict]:
        """The records a variant trains on."""
        every = variant in ("no_selection", "neither")
        records = self.sample(0.0 if every else None).records()
        return no_contrast(records) if variant in ("no_contrast", "neither") else records

    def train(self, variant: str = "lightreasoner", seed: Optional[int] = None):
        """``lrkit.train`` on the variant's records (resumed from its last checkpoint)."""
        config = self.train_config(seed)
        return train(self.expert_path, self.records(variant), self.model_dir(variant, seed) / "adapter", config,
                     resume=True, progress=self.progress)

    def sft(self):
        """The paper's SFT baseline (``lrkit.stages.sft.run_sft``) on the same train problems,
        with the same LoRA and learning rate."""
        return run_sft(self.expert_path, self.train_set(), self.model_dir("sft") / "adapter", config=self.train_config(),
                       max_new_tokens=self.config.eval.answer_limit,
                       generation_batch_size=self.config.eval.batch_size, resume=True, progress=self.progress)

    def merge(self, variant: str = "lightreasoner", seed: Optional[int] = None) -> Path:
        """``lrkit.merge`` of the variant's adapter (trained first when missing)."""
        adapter = self.sft().adapter_dir if variant == "sft" else self.train(variant, seed).adapter_dir
        return merge(self.expert_path, adapter, self.model_dir(variant, seed) / "merged")

    def evaluate(self, model: str = "base", seed: Optional[int] = None):
        """``lrkit.evaluate`` on the test problems: "base", or a tuned variant (merged first)."""
        label = model_label(model, self.config.train.seed if seed is None else seed)
        if model == "base":
            if self._pair is None:  # by name: a stored evaluation is read back without loading the model
                return evaluate(self.expert_path, self.test_set(), self.config.eval, out_dir=self.eval_dir("base"),
                                progress=self.progress, name=label, device=self.device, dtype=self.dtype)
            return evaluate(self.pair.expert, self.test_set(), self.config.eval, tokenizer=self.pair.tokenizer,
                            out_dir=self.eval_dir("base"), progress=self.progress, name=label)
        merged = self.merge(model, seed)
        result = evaluate(str(merged), self.test_set(), self.config.eval, out_dir=self.eval_dir(model, seed),
                          progress=self.progress, name=label, device=self.device, dtype=self.dtype)

        add_evaluation(merged, result, f"{self.config.pair} test problems (problem seed {self.config.problem_seed})")
        return result

    def decode(self):
        """``lrkit.evaluate_contrastive``: the expert decodes by v_C's argmax, no training;
        where tuning towards the labels leads."""
        name, alpha = model_label("decoding", self.config.train.seed), self.config.sample.alpha
        if self._pair is None:  # a stored decoding is read back without loading the pair
            stored = stored_contrastive(self.expert_path, self.amateur_path, PRECISION_NAMES[self.dtype],
                                        self.test_set(), self.config.eval, alpha, self.eval_dir("decoding"), name)
            if stored is not None:
                return stored
        return evaluate_contrastive(self.pair, self.test_set(), self.config.eval, alpha=alpha,
                                    out_dir=self.eval_dir("decoding"), progress=self.progress, name=name)

    def contrast(self, name: Optional[str] = None):
        """Greedy decoding and decoding by v_C's argmax, no training, of pair ``name``
        (default this pair) on its test problems: (greedy, decoded) EvalResults. For this
        pair they are :meth:`evaluate` ("base") and :meth:`decode`; another bundled pair
        (the control) is evaluated on its own family's test problems into
        ``other-pairs/NAME/{greedy,decoding}``. Each is resumed or read back as its folder says."""
        c = self.config
        name = name or c.pair
        if name == c.pair:
            return self.evaluate("base"), self.decode()
        pair = load_pair(name, device=self.device, dtype=self.dtype)
        tests, folder = problems_for(name, c.test_problems, "test", c.problem_seed), self.folder / OTHER_PAIRS / name
        greedy = evaluate(pair.expert, tests, c.eval, tokenizer=pair.tokenizer, out_dir=folder / "greedy",
                          name=model_label("base", c.train.seed), progress=self.progress)
        decoded = evaluate_contrastive(pair, tests, c.eval, alpha=c.sample.alpha, out_dir=folder / "decoding",
                                       name=model_label("decoding", c.train.seed), progress=self.progress)
        return greedy, decoded

    def ablation(self, variant: str):
        """One row of the paper's Table 6: ``variant`` (VARIANTS) trained on its records for
        the experiment's steps, merged and evaluated: (TrainResult, EvalResult)."""
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        return self.train(variant), self.evaluate(variant)

    def ablations(self, sft: bool = True) -> list[dict]:
        """The paper's Table 6 in miniature: every variant with the same optimizer steps
        (and, with ``sft``, the SFT baseline for one epoch), on the same test problems."""
        base = self.evaluate("base")
        rows = []
        for variant in VARIANTS:
            trained, result = self.ablation(variant)
            rows.append(ablation_row(ABLATION_LABELS[variant], trained.examples, trained.tuned_tokens, result, base))
        if sft:
            baseline, result = self.sft(), self.evaluate("sft")
            rows.append({**ablation_row("SFT baseline", baseline.problems_used, baseline.tuned_tokens, result, base),
                         "seconds": baseline.summary()["seconds"]})
        # Not in the paper's table: the soft labels' own argmax as a decoder, no training. Below the
        # base expert, this pair's contrast points away from better answers and tuning cannot help.
        rows.append(ablation_row("contrastive decoding", 0, 0, self.decode(), base))
        return [ablation_row("base expert", 0, 0, base, base)] + rows

    # ------------------------------------------------------------------ everything
    def run(self, ablations: bool = False, report: bool = True) -> ExperimentSummary:
        """Every stage, the summary (``summary.json``) and the HTML report: ``lrkit demo``
        and ``lrkit experiment``. Each stage resumes what an interrupted run left."""
        c = self.config
        timings: dict[str, float] = {}
        started = time.perf_counter()
        provenance = Provenance(self.folder, api_call("Experiment.run", str(self.folder), ablations=ablations),
                                self.device, self.dtype).start(write=False)
        differences = paper_differences(c)
        if self.progress and differences and not is_toy(c.pair):
            print("[lrkit] settings that differ from the paper's: " + "; ".join(differences), flush=True)
        with _Stage("gold-path check", timings, self.progress):
            checks = self.check()
        prediction = None
        if c.scout:
            with _Stage("scout (prediction on the validation problems, before training)", timings, self.progress):
                prediction = self.scout()
        with _Stage("sampling", timings, self.progress):
            sampled = self.sample()
        records, steps = sampled.records(), sampled.steps()
        with _Stage("exporting the records (parquet + dataset card)", timings, self.progress):
            export(sampled.out_dir, self.folder / "records_dataset", overwrite=True)
        with _Stage("evaluating base expert", timings, self.progress):
            base = self.evaluate("base")
        runs = []
        for seed in self.seeds():
            with _Stage(f"training (seed {seed})", timings, self.progress):
                trained = self.train(seed=seed)
                self.merge(seed=seed)
            with _Stage(f"evaluating tuned expert (seed {seed})", timings, self.progress):
                tuned = self.evaluate("lightreasoner", seed)
            runs.append((seed, trained, tuned, compare(base, tuned)))
        _, trained, tuned, comparison = runs[0]
        decoded = None
        if c.decode:
            with _Stage("decoding by the soft labels", timings, self.progress):
                decoded = self.decode()
        rows = None
        if ablations:
            with _Stage("ablations", timings, self.progress):
                rows = self.ablations()
        summary = ExperimentSummary(
            pair=c.pair, expert=self.expert_path, amateur=self.amateur_path,
            device=str(self.device), dtype=PRECISION_NAMES[self.dtype],
            train_problems=c.train_problems, test_problems=len(self.test_set()),
            validation_problems=len(self.validation_set()),
            steps=int(len(steps)), records=len(records),
            share_kept=sampled.summary.get("share_kept"),
            share_kl_below_01=sampled.summary.get("share_kl_below_0.1"),
            mean_kl_top1_agree=sampled.summary.get("mean_kl_top1_agree"),
            mean_kl_top1_disagree=sampled.summary.get("mean_kl_top1_disagree"),
            share_agree_with_kl_above_04=sampled.summary.get("share_agree_with_kl_above_0.4"),
            tuned_tokens=trained.tuned_tokens, rollout_tokens=int(len(steps)),
            base_accuracy=base.accuracy, base_interval=list(base.interval),
            tuned_accuracy=tuned.accuracy, tuned_interval=list(tuned.interval),
            **_comparison_summary(comparison),
            hit_token_limit={"base": base.n_hit_limit, "tuned": tuned.n_hit_limit},
            seeds=[{"seed": seed, "accuracy": result.accuracy, "interval": list(result.interval),
                    "gain": result.accuracy - base.accuracy, "tuned_tokens": t.tuned_tokens,
                    **_comparison_summary(cmp)} for seed, t, result, cmp in runs],
            mean_gain=sum(result.accuracy - base.accuracy for _, _, result, _ in runs) / len(runs),
            gold_path_check=checks, paper_differences=differences,
            records_dataset=str(self.folder / "records_dataset"), tensorboard=str(self.folder),
            seconds=timings, stage_seconds=self.stage_seconds(),
            total_seconds=round(time.perf_counter() - started, 1),
            config={"experiment": self.config.problem_settings() | {"seeds": c.seeds, "scout": c.scout,
                                                                    "decode": c.decode},
                    "sample": to_dict(c.sample), "train": to_dict(self.train_config()), "eval": to_dict(c.eval)},
        )
        if decoded is not None:
            summary.contrastive_decoding_accuracy = decoded.accuracy
            summary.contrastive_decoding_interval = list(decoded.interval)
            summary.contrastive_decoding_vs_base = _comparison_summary(compare(base, decoded))
            summary.hit_token_limit["contrastive_decoding"] = decoded.n_hit_limit
        if prediction is not None:
            summary.scout = {k: v for k, v in prediction.items() if k not in ("settings", "odd_examples")}
            summary.scout_verdict = verdict(prediction, 100 * (tuned.accuracy - base.accuracy), comparison.p_value)
        summary.ablations = rows
        summary.odd_token_audit = odd_token_audit(records).summary() if records else None
        named = {"base": base, **{f"seed {seed}": result for seed, _, result, _ in runs}}
        if c.pair == "toy":  # the toy classifier reads the habit family's worked lines
            summary.error_anatomy = error_anatomy(named, problems=self.test_set()).summary()
        elif not is_toy(c.pair):  # GSM8K-style answers: cut, no answer, arithmetic slip, reasoning
            summary.error_anatomy = error_anatomy(named, classify=classify_gsm8k, problems=self.test_set(),
                                                  types=GSM8K_TYPES).summary()
        if report:
            summary.report = str(self.folder / "report.html")
        write_json(self.folder / "summary.json", summary.to_dict())
        provenance.finish()
        if report:
            experiment_report(self.folder, steps, records, trained.loss_history, base, tuned, comparison, summary,
                              decoded, alpha=c.sample.alpha)
        return summary

    def stage_seconds(self) -> dict:
        """Seconds each stored stage spent, summed over the runs that resumed it (from the
        stages' own files; a stage not run yet is absent)."""
        out = {}
        sampled = read_json(self.sampling_dir() / "summary.json") or {}
        for key in ("rollout_s", "scoring_s"):
            if key in sampled:
                out[f"sampling {key[:-2]}"] = sampled[key]
        for label, folder in (("base evaluation", self.eval_dir("base")),
                              ("tuned evaluation", self.eval_dir("lightreasoner")),
                              ("decoding by v_C", self.eval_dir("decoding")),
                              ("scout greedy", self.folder / "validation" / "greedy"),
                              ("scout decoding", self.folder / "validation" /
                               f"decoding-alpha{_tag(float(self.config.sample.alpha))}")):
            stored = read_json(folder / "summary.json") or {}
            if "seconds" in stored:
                out[label] = stored["seconds"]
        run = read_json(self.model_dir() / "adapter" / "lrkit_train.json") or {}
        if "result" in run:
            out["training (last run)"] = run["result"].get("seconds")
        return out


def model_label(model: str, seed: int) -> str:
    """The name an evaluation stores for a model of the experiment."""
    if model == "lightreasoner":
        return f"LightReasoner (seed {seed})"
    return {"base": "base expert", "sft": "SFT", "decoding": "decoding by v_C's argmax"}.get(
        model, ABLATION_LABELS.get(model, model))


def _comparison_summary(comparison) -> dict:
    return {"fixed": int(len(comparison.fixed)), "broken": int(len(comparison.broken)),
            "mcnemar_p": comparison.p_value}


class _Stage:
    """Prints the stage's name (with ``progress``) and records its wall time."""

    def __init__(self, name: str, timings: dict, progress: bool):
        self.name, self.timings, self.progress = name, timings, progress

    def __enter__(self):
        if self.progress:
            print(f"[lrkit] {self.name}...", flush=True)
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.timings[self.name] = round(time.perf_counter() - self.start, 2)
