"""Configuration as plain dataclasses.

Every default is the LightReasoner paper's (or, where the paper is silent, the
authors' code's); each field is documented once, here. The CLI, the notebooks
and the Python API all take these objects.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

AUTHORS_SYSTEM_PROMPT = "Please reason step by step."
"""The system message of the authors' sampling and training scripts."""
PAPER_EVAL_SYSTEM_PROMPT = (
    "Please reason step by step, and put your final answer within \\boxed{}."
)


@dataclass
class SampleConfig:
    """Sampling stage: expert rollouts, divergence, selection, soft labels.

    Each field is documented once, by the docstring under it (``lrkit sample --help``
    shows the same text). The constructor checks nothing; :meth:`validate` raises
    ValueError naming the first field out of range, and every stage calls it.
    """

    alpha: float = 0.2
    """Plausibility mask: keep tokens with pi_E(a) >= alpha * max pi_E."""
    beta: float = 0.4
    """KL(pi_E || pi_A) threshold that marks a step as critical."""
    kl_inclusive: bool = True
    """Keep a step when KL >= beta (the authors' code); False keeps KL > beta."""
    skip_first_step: bool = True
    """Never keep step 0 (empty prefix), as the authors' code does."""
    max_new_tokens: int = 128
    """Length of each greedy expert rollout; generation stops earlier at EOS."""
    system_prompt: Optional[str] = AUTHORS_SYSTEM_PROMPT
    """System message of the chat prompt. The code uses "Please reason step by
    step."; the paper's evaluation cue adds ", and put your final answer within
    \\boxed{}." (lrkit.config.PAPER_EVAL_SYSTEM_PROMPT). None sends no system turn."""
    temperature: float = 1.0
    """Temperature of the contrastive soft label (1.0 = the paper's plain softmax)."""
    top_k: int = 20
    """How many top tokens of each model the step statistics store (for views and
    for recomputing masks without a model)."""
    batch_size: int = 8
    """Problems per batch, for rollouts and for the teacher-forced passes."""
    chunk_size: int = 256
    """Positions scored at once when turning hidden states into full-vocabulary
    distributions; bounds memory at chunk_size x vocab floats per model."""
    write_steps: bool = True
    """Also write every step's statistics (steps.jsonl), not only kept records."""
    rollouts: Optional[str] = None
    """How the expert's rollouts are drawn: "greedy" (the paper: do_sample=False, stated
    explicitly), "model-default" (the checkpoint's generation_config, as the authors' code
    calls generate(): DeepSeek-R1-Distill samples at temperature 0.6, top-p 0.95; seeded by
    rollout_seed), None: the pair's own way (model-default for the DeepSeek pair, greedy for
    every other; lrkit.models.pairs.PairSpec.rollouts). KL and soft labels always come from
    the raw logits of the teacher-forced passes, never from the sampling distribution."""
    rollout_seed: int = 0
    """Seed of model-default rollouts (each batch draws from seed + batch index, so a resumed
    run draws what an uninterrupted one would); greedy rollouts ignore it."""

    def validate(self) -> "SampleConfig":
        _check_range("alpha", self.alpha, 0.0, 1.0, low_open=True)
        _check_range("beta", self.beta, 0.0, float("inf"))
        _check_positive_int("max_new_tokens", self.max_new_tokens)
        _check_positive_int("top_k", self.top_k)
        _check_positive_int("batch_size", self.batch_size)
        _check_positive_int("chunk_size", self.chunk_size)
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}")
        if self.rollouts is not None and self.rollouts not in ROLLOUTS:
            raise ValueError(f"rollouts must be one of {', '.join(ROLLOUTS)}, got {self.rollouts!r}")
        if not isinstance(self.rollout_seed, int) or isinstance(self.rollout_seed, bool):
            raise ValueError(f"rollout_seed must be an integer, got {self.rollout_seed!r}")
        return self


@dataclass
class TrainConfig:
    """Fine-tuning stage: LoRA on the expert with the contrastive soft labels.

    Each field is documented once, by the docstring under it (``lrkit train --help``
    shows the same text). The constructor checks nothing; :meth:`validate` raises
    ValueError naming the first field out of range (or packing together with
    ``parity_right_padding``), and every stage calls it.
    """

    lora_r: int = 8
    """LoRA rank."""
    lora_alpha: int = 16
    """LoRA scaling numerator (scale = lora_alpha / lora_r)."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA branch."""
    target_modules: tuple = ("q_proj", "v_proj")
    """Modules that receive LoRA adapters."""
    learning_rate: float = 5e-5
    """AdamW learning rate, decayed linearly to zero."""
    per_device_batch_size: int = 8
    """Records per device per micro-batch."""
    gradient_accumulation_steps: int = 2
    """Micro-batches per optimizer step."""
    max_steps: int = 1000
    """Optimizer steps."""
    max_length: int = 512
    """Longest input; longer inputs lose tokens on the LEFT so the supervised
    position survives."""
    precision: str = "auto"
    """"auto" (bf16 where supported, else fp16 on GPU, fp32 on CPU), "bf16",
    "fp16" or "fp32"."""
    seed: int = 0
    """Seed for LoRA initialisation, dropout and data order."""
    logging_steps: int = 10
    """Log the loss every this many optimizer steps."""
    save_steps: int = 25
    """Checkpoint every this many optimizer steps; an interrupted run resumes from the last
    one, so a cut loses at most this many steps (25: about 7 minutes at the 17 s a step
    measured for the 1.5B Coder expert in fp32 on a 2-core CPU, seconds on a GPU). A LoRA
    checkpoint is a few MB; the last two are kept."""
    packing: bool = True
    """Pack the records of one rollout into one sequence and take the loss at
    every kept position of it in one forward pass (lrkit.stages.packing). The loss, the
    records per step and the tuned tokens mean what they mean without packing;
    off trains one sequence per record, as the paper's recipe does."""
    chunk_size: int = 64
    """Supervised positions turned into full-vocabulary logits at once in packed
    training (each chunk recomputed in the backward pass); bounds logits memory
    at chunk_size x vocab floats."""
    parity_right_padding: bool = False
    """Reproduce the authors' defect: pad on the right and read logits[:, -1].
    Only for comparisons, and only without packing; shorter sequences are then
    supervised at a pad."""
    report_to: Optional[str] = "tensorboard"
    """Where the Trainer also sends its logs (transformers' report_to): "tensorboard"
    writes event files into the run folder's tensorboard/ (offline), "none" (or None)
    sends nowhere; trackio, wandb, mlflow ... or several, comma-separated. loss.jsonl
    is written in every case."""

    def validate(self) -> "TrainConfig":
        for name in ("lora_r", "lora_alpha", "per_device_batch_size",
                     "gradient_accumulation_steps", "max_steps", "max_length",
                     "logging_steps", "save_steps", "chunk_size"):
            _check_positive_int(name, getattr(self, name))
        _check_range("lora_dropout", self.lora_dropout, 0.0, 1.0)
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if self.precision not in ("auto", "bf16", "fp16", "fp32"):
            raise ValueError(f"precision must be auto, bf16, fp16 or fp32, got {self.precision!r}")
        if self.packing and self.parity_right_padding:
            raise ValueError("parity_right_padding is the authors' per-record layout: "
                             "turn packing off with it (--packing off)")
        unknown = [name for name in report_targets(self.report_to) if name not in REPORT_TARGETS]
        if unknown:
            raise ValueError(f"report_to: unknown {', '.join(map(repr, unknown))}; use none, all or "
                             f"names among {', '.join(REPORT_TARGETS)} (comma-separated)")
        return self


REPORT_TARGETS = ("tensorboard", "trackio", "wandb", "mlflow", "comet_ml", "clearml", "dvclive", "neptune",
                  "azure_ml", "codecarbon", "dagshub", "flyte", "swanlab", "kubeflow", "all")
"""The names transformers' ``report_to`` takes (its integrations, and "all")."""


def report_targets(report_to: Optional[str]) -> list[str]:
    """``TrainConfig.report_to`` as the list the Trainer takes ([] for none)."""
    names = [name.strip() for name in (report_to or "none").split(",") if name.strip()]
    return [] if names in ([], ["none"]) else names


PROTOCOLS = ("paper", "lrkit")
"""Evaluation protocols (lrkit.evaluation.protocol; docs/BENCHMARKS.md)."""
ANSWER_LIMITS = {"paper": 2048, "lrkit": 512}
"""New tokens per answer when EvalConfig.max_new_tokens is None, before the model's context caps
it: the toolkit's --max_tokens_per_call (math_eval.py), and lrkit's own."""
ROLLOUTS = ("greedy", "model-default")
"""How the expert's sampling rollouts are drawn (SampleConfig.rollouts)."""


@dataclass
class EvalConfig:
    """Evaluation: greedy pass@1, by the paper's protocol or lrkit's.

    Each field is documented once, by the docstring under it (``lrkit eval --help``
    shows the same text). The constructor checks nothing; :meth:`validate` raises
    ValueError naming the first field out of range, and every stage calls it.
    """

    max_new_tokens: Optional[int] = None
    """Longest answer generated per problem; None: the protocol's (paper 2048, the toolkit's
    limit; lrkit 512), capped to what the model's context leaves after the longest prompt
    (a one-line note says so). A number is taken as given: a prompt it does not fit is an error."""
    system_prompt: Optional[str] = PAPER_EVAL_SYSTEM_PROMPT
    """System message; the paper's evaluation cue asks for a \\boxed{} answer."""
    batch_size: int = 16
    """Problems generated at once."""
    protocol: str = "paper"
    """"paper": the Qwen2.5-Math toolkit's prompt, answer limit, stop tokens, answer extraction
    and grading (math_equal: 1e-4 tolerance, percentages, sympy), MMLU-STEM 5-shot, as the
    paper's Table 1 was made; "lrkit": lrkit's stricter rules (chat template, exact fractions,
    then math-verify; every benchmark zero-shot). docs/BENCHMARKS.md gives both per benchmark."""

    @property
    def answer_limit(self) -> int:
        """max_new_tokens, or the protocol's default (before a model's context caps it)."""
        return self.max_new_tokens if self.max_new_tokens is not None else ANSWER_LIMITS[self.protocol]

    def validate(self) -> "EvalConfig":
        if self.max_new_tokens is not None:
            _check_positive_int("max_new_tokens", self.max_new_tokens)
        _check_positive_int("batch_size", self.batch_size)
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        return self


RENAMED_FIELDS: dict[str, dict[str, str]] = {"SampleConfig": {"save_steps": "write_steps"}}
"""Fields renamed since lrkit wrote them into run folders, per config class: old name -> new."""


def current_names(cls, stored: dict) -> dict:
    """A run folder's stored settings of ``cls`` under today's field names, values unchanged:
    a folder written before a rename (``save_steps``, now ``write_steps``) compares equal
    to the same settings today, and one that differs is still refused by that name."""
    renamed = RENAMED_FIELDS.get(cls.__name__, {})
    return {renamed.get(name, name): value for name, value in stored.items()}


ADDED_FIELDS = {"SampleConfig": {"rollouts": "greedy", "rollout_seed": 0}, "EvalConfig": {"protocol": "lrkit"}}
"""Fields added after run folders were written, with the value those folders were made
with: a sampling run from before ``rollouts`` was greedy, an evaluation from before
``protocol`` followed lrkit's rules. :func:`with_added_fields` reads stored settings so."""


def with_added_fields(stored, cls) -> dict:
    """Stored settings (a dict, or anything else as it is) with the fields added since
    filled in as :data:`ADDED_FIELDS` says, so a folder written before them is recognised."""
    if not isinstance(stored, dict):
        return stored
    return {**ADDED_FIELDS.get(cls.__name__, {}), **stored}


def _check_positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_range(name, value, low, high, low_open=False):
    ok = (low < value if low_open else low <= value) and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must be in {bracket}{low}, {high}], got {value!r}")


def to_dict(config) -> dict:
    data = dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def from_dict(cls, data: dict, source: str = "config"):
    """Build a config from a dict, naming unknown fields instead of ignoring them."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{source}: unknown {cls.__name__} field(s): {', '.join(unknown)}")
    values = dict(data)
    if "target_modules" in values:
        values["target_modules"] = tuple(values["target_modules"])
    return cls(**values).validate()


def field_docs(cls) -> dict[str, str]:
    """The docstring written under each field, read from the source (one place
    for the docs of the API, the CLI's --help and the README)."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, after in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


@dataclass
class ExperimentConfig:
    """An experiment's problems and budget; the defaults are ``lrkit demo``'s.

    The toy models are tiny, so the optimizer settings differ from the paper's
    1.5B ones (a larger learning rate, fewer steps); :meth:`for_pair` gives a pair's defaults (the
    paper's settings for a Hub pair), :func:`lrkit.experiment.experiment_config` those with the
    notebooks' parameters.

    Each field is documented by the docstring under it; ``sample``, ``train`` and
    ``eval`` are the three stage configs. :meth:`validate` checks this config and
    the three (ValueError naming the field).
    """

    pair: str = "toy"
    """A pair name: the bundled "toy" (the method works on it) or "toy-shared" (the
    control: it fails), or a Hub pair such as "qwen2.5-math-1.5b"."""
    amateur: Optional[str] = None
    """Another amateur against the pair's expert (a model name or path, e.g. "ladder:g-small");
    None: the pair's own."""
    train_problems: int = 200
    """Unlabeled train-split problems the expert samples on."""
    test_problems: int = 500
    """Held-out test-split problems every model is evaluated on."""
    problem_seed: int = 2026
    """Seed of a toy pair's problems (GSM8K is taken in order)."""
    seeds: int = 3
    """LightReasoner is trained once per seed (TrainConfig.seed, +1, ...) on the same records;
    the first seed's model is the one the report looks at in detail."""
    check_problems: int = 200
    """Validation problems (disjoint from the train and test problems): the gold-path check
    reads their gold solutions and the scout decodes them; settings are chosen on them,
    never on the test problems."""
    problems: Optional[str] = None
    """A GSM8K-style JSONL file (question, answer ending in ``#### N``) that every problem set
    is cut from after a shuffle seeded by problem_seed: the first test_problems are the test
    set, the next check_problems the validation set, the next train_problems are sampled, so
    the three never overlap (lrkit.experiment.problem_sets). None: a toy pair's own family, or
    GSM8K from the Hub (validation and sampling from its train split, tests from its test split)."""
    scout: bool = True
    """Before training, record the scout's prediction (decoding by v_C's argmax against greedy
    decoding on the validation problems, and the gold-path check) in scout.json."""
    decode: bool = True
    """Also evaluate decoding by v_C's argmax (no training) on the test problems."""
    dtype: str = "auto"
    """The models' dtype for sampling, evaluation and (through TrainConfig.precision "auto")
    training: "auto" (bf16 on a GPU that has it, fp16 on other GPUs, fp32 on a CPU), "bf16",
    "fp16" or "fp32". KL, soft labels and the loss are float32 whatever it is."""
    sample: SampleConfig = field(default_factory=lambda: SampleConfig(batch_size=100))
    """Sampling settings (the paper's, in batches of 100 problems)."""
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        learning_rate=2e-3, max_steps=60, per_device_batch_size=16, gradient_accumulation_steps=1,
        logging_steps=5, save_steps=30, lora_r=8, lora_alpha=16))
    """LoRA settings: the toy models' (learning rate 2e-3, 60 steps of 16 records); :meth:`for_pair`
    gives a Hub pair the paper's."""
    eval: EvalConfig = field(default_factory=lambda: EvalConfig(max_new_tokens=160, batch_size=100, protocol="lrkit"))
    """Evaluation settings: lrkit's protocol, 160-token answers (the toy pairs' solutions are short)."""

    def problem_settings(self) -> dict:
        """The settings that decide an experiment's models and problem sets (its folder's claim)."""
        return {"pair": self.pair, "amateur": self.amateur, "train_problems": self.train_problems,
                "test_problems": self.test_problems, "problem_seed": self.problem_seed,
                "check_problems": self.check_problems, "problems": self.problems, "dtype": self.dtype}

    def validate(self) -> "ExperimentConfig":
        for name in ("train_problems", "test_problems", "seeds", "check_problems"):
            _check_positive_int(name, getattr(self, name))
        if self.dtype not in ("auto", "bf16", "fp16", "fp32"):
            raise ValueError(f"dtype must be auto, bf16, fp16 or fp32, got {self.dtype!r}")
        self.sample.validate(), self.train.validate(), self.eval.validate()
        return self

    @classmethod
    def for_pair(cls, pair: str, **changes) -> "ExperimentConfig":
        """The experiment's defaults for ``pair``: a bundled toy pair takes ``lrkit demo``'s
        (tiny models: a larger learning rate, 60 steps, 160-token answers); any other pair the
        paper's settings (SampleConfig, TrainConfig and EvalConfig defaults) and sizes, or, for
        a pair listed in PAIR_BUDGETS, the sizes that fit the machine it runs on. ``changes``
        replace top-level fields (e.g. train_problems=64)."""
        if pair in TOY_PAIR_NAMES:
            return dataclasses.replace(cls(pair=pair), **changes).validate()
        sizes = {**PAPER_SIZES, **PAIR_BUDGETS.get(pair, {})}
        sample = SampleConfig(**sizes.pop("sample", {}))
        train = TrainConfig(**sizes.pop("train", {}))
        evaluation = EvalConfig(**sizes.pop("eval", {}))
        return cls(pair=pair, sample=sample, train=train, eval=evaluation, **{**sizes, **changes}).validate()


TOY_PAIR_NAMES = ("toy", "toy-shared")
"""The bundled pairs (lrkit.toy.TOY_PAIRS; named here so configs need no models)."""

PAPER_SIZES = {"train_problems": 1000, "test_problems": 1319, "check_problems": 200, "seeds": 1}
"""The paper's experiment: 1000 GSM8K train problems sampled, the 1,319 GSM8K test problems
evaluated (validation: 200 more train problems, for the scout and the gold-path check)."""

PAIR_BUDGETS: dict[str, dict] = {
    # The one real pair this project's 2-core CPU machines hold: sizes and dtype that
    # finish `lrkit experiment --pair qwen2.5-coder-offline` in under 4 hours there
    # (docs/REAL_PAIR.md). bf16 is the weights' own dtype and runs about 5x faster than
    # fp32 on a CPU with AVX512-BF16. GSM8K's test split is on the Hub only, so the
    # test set is held out from ../shared's GSM8K train file.
    "qwen2.5-coder-offline": {
        "train_problems": 256, "test_problems": 200, "check_problems": 32,
        "problems": "../shared/data/gsm8k/train.jsonl",
        "dtype": "bf16", "train": {"max_steps": 200, "save_steps": 25},
        "sample": {"batch_size": 16},
        # lrkit's protocol and 512-token answers: no paper row to compare this pair with, and
        # the toolkit's 2,048-token limit would not fit the CPU budget.
        "eval": {"batch_size": 32, "max_new_tokens": 512, "protocol": "lrkit"},
    },
}
"""Per-pair sizes for pairs that cannot run at the paper's sizes where they live."""


def paper_differences(config: "ExperimentConfig") -> list[str]:
    """The settings of ``config`` that differ from the paper's, one line each
    ("train.max_steps: 200 (paper 1000)"); a toy pair is compared like any other."""
    paper = ExperimentConfig(pair=config.pair, sample=SampleConfig(), train=TrainConfig(), eval=EvalConfig(),
                             **PAPER_SIZES)
    lines = []
    for name in ("train_problems", "test_problems"):
        if getattr(config, name) != getattr(paper, name):
            lines.append(f"{name}: {getattr(config, name)} (paper {getattr(paper, name)})")
    ignore = {"save_steps", "write_steps", "logging_steps", "report_to", "batch_size", "chunk_size", "top_k",
              "precision", "per_device_batch_size", "gradient_accumulation_steps"}
    for section in ("sample", "train", "eval"):
        ours, theirs = to_dict(getattr(config, section)), to_dict(getattr(paper, section))
        if section == "eval":  # None means the protocol's limit: compare the lengths answers get
            ours["max_new_tokens"], theirs["max_new_tokens"] = config.eval.answer_limit, paper.eval.answer_limit
        for key, value in ours.items():
            if key not in ignore and value != theirs.get(key):
                lines.append(f"{section}.{key}: {value!r} (paper {theirs.get(key)!r})")
    t = config.train
    if t.per_device_batch_size * t.gradient_accumulation_steps != 16:
        lines.append(f"train batch: {t.per_device_batch_size} x {t.gradient_accumulation_steps} "
                     f"(paper 8 x 2 = 16 records a step)")
    return lines
