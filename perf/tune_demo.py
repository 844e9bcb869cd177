"""Choose the demo's fine-tuning settings on train-side problems only.

Samples the demo's unlabeled train problems once (the demo's problems and
sampling settings, into ``<out>/sampling``), then LoRA-tunes the bundled expert with each learning rate x
step count of a small grid and measures greedy accuracy on the *validation*
slice of the train side (never the test split the demo reports on).

    python perf/tune_demo.py --out runs/tune [--lrs 5e-4 1e-3 2e-3] [--steps 30 60]

Use a new ``--out`` for each ``--train-problems``; a rerun into the same folder
reuses its sampling and retrains every setting.

Writes ``tune.json`` and prints one row per setting: accuracy, change against
the base expert, problems fixed and broken, training seconds. It also scores
contrastive decoding (the soft label's argmax as the decoder, no training) at
a few alphas: whether this pair's contrast points towards better answers.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import torch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/tune")
    parser.add_argument("--lrs", type=float, nargs="*", default=[5e-4, 1e-3, 2e-3])
    parser.add_argument("--steps", type=int, nargs="+", default=[30, 60])
    parser.add_argument("--validation", type=int, default=400, help="validation problems to score on")
    parser.add_argument("--train-problems", type=int, default=None,
                        help="unlabeled train problems to sample (default: the demo's)")
    parser.add_argument("--contrastive-alphas", type=float, nargs="*", default=[0.1, 0.2, 0.5],
                        help="also score contrastive decoding (the soft label's argmax, no training) "
                             "at these alphas")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--pair", default="toy", choices=("toy", "toy-shared"),
                        help="the bundled pair whose problems and models to use (default: toy)")
    parser.add_argument("--pair-dir", default=None,
                        help="a candidate build of that pair (a folder with expert/ and amateur/)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from lrkit.config import ExperimentConfig
    from lrkit.evaluation import compare, evaluate, evaluate_contrastive
    from lrkit.models.loading import load_pair
    from lrkit.models.pairs import resolve_pair
    from lrkit.data.records import read_records
    from lrkit.stages.sampling import sample
    from lrkit.toy import toy_problems
    from lrkit.stages.training import merge, train

    config = ExperimentConfig()
    if args.train_problems:
        config = replace(config, train_problems=args.train_problems)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    expert, amateur = ((f"{args.pair_dir}/expert", f"{args.pair_dir}/amateur") if args.pair_dir
                       else resolve_pair(args.pair))
    pair = load_pair(expert, amateur, device="cpu")
    unlabeled = [{"id": p["id"], "question": p["question"]}
                 for p in toy_problems(args.pair, config.train_problems, "train", seed=config.problem_seed)]
    validation = toy_problems(args.pair, args.validation, "validation", seed=config.problem_seed)

    sampled = sample(pair, None, unlabeled, out / "sampling", config.sample, progress=False)
    records = read_records(sampled.records_path)
    base = evaluate(pair.expert, validation, config.eval, tokenizer=pair.tokenizer, progress=False)
    rows = [{"learning_rate": None, "max_steps": 0, "accuracy": base.accuracy, "delta": 0.0,
             "fixed": 0, "broken": 0, "train_seconds": 0.0}]
    print(f"{len(records)} records from {len(unlabeled)} problems; base expert "
          f"{base.accuracy:.1%} on {len(validation)} validation problems", flush=True)
    contrastive = []
    for alpha in args.contrastive_alphas:
        result = evaluate_contrastive(pair, validation, config.eval, alpha=alpha, progress=False)
        contrastive.append({"alpha": alpha, "accuracy": result.accuracy,
                            "delta": result.accuracy - base.accuracy})
        print(f"contrastive decoding, alpha {alpha:g}: {result.accuracy:.1%} "
              f"({result.accuracy - base.accuracy:+.1%}), no training", flush=True)
    for lr in args.lrs:
        for steps in args.steps:
            name = f"lr{lr:g}_steps{steps}"
            train_config = replace(config.train, learning_rate=lr, max_steps=steps,
                                   save_steps=max(steps, 1))
            started = time.perf_counter()
            for folder in (out / f"adapter_{name}", out / f"merged_{name}"):
                shutil.rmtree(folder, ignore_errors=True)
            trained = train(expert, records, out / f"adapter_{name}", train_config, progress=False)
            seconds = time.perf_counter() - started
            merged = merge(expert, trained.adapter_dir, out / f"merged_{name}")
            result = evaluate(str(merged), validation, config.eval, progress=False)
            diff = compare(base, result)
            rows.append({"learning_rate": lr, "max_steps": steps, "accuracy": result.accuracy,
                         "delta": result.accuracy - base.accuracy, "fixed": int(len(diff.fixed)),
                         "broken": int(len(diff.broken)), "train_seconds": round(seconds, 1)})
            print(f"lr {lr:g} steps {steps}: {result.accuracy:.1%} ({rows[-1]['delta']:+.1%}), "
                  f"fixed {rows[-1]['fixed']} broken {rows[-1]['broken']}, trained in {seconds:.0f}s",
                  flush=True)
    (out / "tune.json").write_text(json.dumps({"validation_problems": len(validation),
                                               "records": len(records), "rows": rows,
                                               "contrastive_decoding": contrastive}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
