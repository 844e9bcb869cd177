"""Try a design of the default toy pair on validation problems only.

    python perf/tune_toy_pair.py --out runs/tune/copy30 --expert-replay 5100
    python perf/tune_toy_pair.py --out runs/tune/stop --habit stop --operations "+-*" \\
        --groups-start 0.4 --expert-general 12000 --expert-family 3000 --expert-replay 0

Builds a pair with `lrkit.toy.habit_pair.build_habit_pair` (test problems are
never touched: n_eval 0) and prints what decides whether the pair suits the
method: both models' greedy accuracy, decoding by the soft labels' argmax
against greedy decoding, and the gold-path check, all on validation problems.
docs/TOY_PAIRS.md lists the designs tried this way and their numbers.
"""
import argparse
import json
from dataclasses import replace

from lrkit.toy.habit_pair import RECIPE, build_habit_pair
from lrkit.toy.pretrain import ToyModelSpec


def spec(text: str) -> ToyModelSpec:
    hidden, layers, mlp, heads = map(int, text.split(","))
    return ToyModelSpec(hidden_size=hidden, num_layers=layers, intermediate_size=mlp, num_heads=heads,
                        train_problems=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--habit", default=RECIPE.world.habit, choices=("copy", "count", "stop"))
    parser.add_argument("--operations", default=RECIPE.world.operations)
    parser.add_argument("--groups-start", type=float, default=RECIPE.world.groups_start)
    parser.add_argument("--distractors", default=",".join(map(str, RECIPE.world.distractor_weights)),
                        help="probabilities of 0, 1, 2... irrelevant sentences, comma-separated")
    parser.add_argument("--expert", default="256,4,512,4", help="hidden,layers,mlp,heads")
    parser.add_argument("--amateur", default="96,2,192,2")
    for name in ("amateur_general", "expert_general", "expert_family", "expert_replay"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(RECIPE, name))
    parser.add_argument("--n-validation", type=int, default=200)
    args = parser.parse_args()
    world = replace(RECIPE.world, habit=args.habit, operations=args.operations, groups_start=args.groups_start,
                    distractor_weights=tuple(float(x) for x in args.distractors.split(",")))
    recipe = replace(RECIPE, world=world, expert=spec(args.expert), amateur=spec(args.amateur),
                     amateur_general=args.amateur_general, expert_general=args.expert_general,
                     expert_family=args.expert_family, expert_replay=args.expert_replay)
    summary = build_habit_pair(args.out, seed=args.seed, recipe=recipe, n_eval=0,
                               n_validation=args.n_validation)
    print(json.dumps({"expert_validation": summary["models"]["expert"]["validation_accuracy"],
                      "amateur_validation": summary["models"]["amateur"]["validation_accuracy"],
                      **summary["validation"]}, indent=2))


if __name__ == "__main__":
    main()
