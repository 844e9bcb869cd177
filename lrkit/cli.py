"""The lrkit command line: every config field is a flag, documented once in
lrkit/config.py."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from typing import Optional, Sequence

from .config import EvalConfig, SampleConfig, TrainConfig, field_docs


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_arguments(parser: argparse.ArgumentParser, cls, skip: Sequence[str] = ()) -> None:
    group = parser.add_argument_group(f"{cls.__name__} (defaults are the paper's)")
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        hint, default = hints[f.name], f.default
        help_text = f"{docs.get(f.name, '')} (default: {default!r})".replace("%", "%%")
        if hint is bool:
            group.add_argument(_flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction,
                               default=default, help=help_text)
        elif hint in (int, float):
            group.add_argument(_flag(f.name), dest=f.name, type=hint, default=default, help=help_text)
        elif hint is tuple:
            group.add_argument(_flag(f.name), dest=f.name, nargs="+", default=list(default), help=help_text)
        else:  # strings, optional strings: "none" means None
            group.add_argument(_flag(f.name), dest=f.name, type=_optional_str, default=default,
                               help=help_text + ' ("none" for None)')


def _optional_str(value: str) -> Optional[str]:
    return None if value.lower() == "none" else value


def config_from_args(cls, args: argparse.Namespace):
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    if "target_modules" in values:
        values["target_modules"] = tuple(values["target_modules"])
    return cls(**values).validate()


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu... (default: auto)")
    parser.add_argument("--dtype", default=None, help="bf16, fp16 or fp32 (default: auto)")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow model code from the model's folder (off by default)")


def cmd_sample(args) -> int:
    from .sampling import sample

    config = config_from_args(SampleConfig, args)
    result = sample(args.expert, args.amateur, args.problems, args.out, config,
                    max_problems=args.max_problems, device=args.device, dtype=args.dtype,
                    trust_remote_code=args.trust_remote_code, overwrite=args.overwrite)
    print(json.dumps(result.summary, indent=2))
    print(f"records: {result.records_path}")
    return 0


# Commands whose module owns its own argument parser: "name": ("module", "function", "help").
DELEGATED = {
    "train": ("lrkit.training", "main_train", "LoRA-tune the expert on sampled records"),
    "merge": ("lrkit.training", "main_merge", "merge a LoRA adapter into the expert and save it"),
    "eval": ("lrkit.evaluation", "main", "greedy pass@1 of a model on a problem set"),
    "demo": ("lrkit.demo", "main", "the whole method on the bundled pair, with an HTML report"),
    "pair": ("lrkit.pairs", "main", "list named expert-amateur pairs, or prepare one"),
    "build-toy": ("lrkit.toy.pretrain", "main", "rebuild the bundled toy pair from scratch"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lrkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, _, help_text) in DELEGATED.items():
        sub.add_parser(name, help=help_text, add_help=False)

    p = sub.add_parser("sample", help="expert rollouts, divergence, selection, soft-label records")
    p.add_argument("--expert", required=True, help="expert: Hub name, folder, .gguf file, or a pair name such as toy")
    p.add_argument("--amateur", default=None, help="amateur (omit when --expert names a pair)")
    p.add_argument("--problems", required=True, help="JSONL file with question (+answer, id), or gsm8k")
    p.add_argument("--out", required=True, help="output folder; rerun the same command to resume")
    p.add_argument("--max-problems", type=int, default=None, help="use only the first N problems")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    _model_arguments(p)
    add_config_arguments(p, SampleConfig)
    p.set_defaults(func=cmd_sample)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        import importlib

        module, function, _ = DELEGATED[argv[0]]
        try:
            return int(getattr(importlib.import_module(module), function)(argv[1:]) or 0)
        except (ValueError, FileNotFoundError) as err:
            print(f"lrkit {argv[0]}: error: {err}", file=sys.stderr)
            return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:  # user errors: one clear line, no traceback
        print(f"lrkit {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
