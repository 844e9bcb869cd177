"""Copy a finished real-pair experiment's results and adapter into docs/real/.

    python perf/publish_real_pair.py --run ~/lrkit-runs/coder --to docs/real

Writes, from the experiment folder (``lrkit experiment``) and the perf results:

* ``results.json``: the experiment's summary.json, its scout.json (the prediction,
  recorded before training), and, when present, perf/results/real_numerics.json and
  real_throughput.json;
* ``adapter/``: the trained LoRA adapter (weights, config, loss curve, run file and its
  model card, with the test accuracy added), without checkpoints or tokenizer copies:
  a few MB. Load it on the expert it was trained on (see docs/REAL_PAIR.md);
* ``eval/``: the per-problem results (results.jsonl + summary.json) of the base expert,
  the tuned expert, decoding by v_C, and the scout's two validation evaluations.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json", "README.md", "lrkit_card.json",
                 "lrkit_train.json", "loss.jsonl", "provenance.json")


def describe_base(adapter: Path, experiment: dict, summary: dict) -> None:
    """Name the Hub model the adapter belongs to (the run's base was a local folder), say
    which weights it was trained on, and put the base expert's accuracy beside the tuned one."""
    hub_name = (experiment.get("pair_build") or {}).get("expert")
    config_path = adapter / "adapter_config.json"
    config = json.loads(config_path.read_text())
    local = config.get("base_model_name_or_path")
    if hub_name:
        config["base_model_name_or_path"] = hub_name
        config_path.write_text(json.dumps(config, indent=2) + "\n")
    built = json.loads((Path(local) / "lrkit_pair.json").read_text()) if local and (
        Path(local) / "lrkit_pair.json").is_file() else None
    lines = ["", "## Against the base expert", "",
             f"Same {summary['test_problems']} held-out problems, greedy, {summary['dtype']}: base "
             f"{100 * summary['base_accuracy']:.1f}%, tuned {100 * summary['tuned_accuracy']:.1f}%; "
             f"fixed {summary['fixed']}, broken {summary['broken']}, exact McNemar p = {summary['mcnemar_p']:.3g}.",
             "", "The whole experiment, the scout's prediction and what the statistics say: "
             "docs/REAL_PAIR.md in the lrkit repository.", ""]
    if built:
        lines += ["## The weights it was trained on", "",
                  f"Not the Hub checkpoint itself: `lrkit pair prepare {summary['pair']}` rebuilds {hub_name} "
                  f"from the GGUF file `{built['source']}` (sha256 `{built['sha256']}`), dequantized to "
                  f"{built['dtype']}. On the Hub's own weights the adapter applies (same shapes), "
                  "but it was not evaluated there.", ""]
    with (adapter / "README.md").open("a") as handle:
        handle.write("\n".join(lines))


def make_portable(folder: Path, run: Path) -> None:
    """Machine paths out of the published text files: the experiment folder becomes
    ``<run>``, the home folder ``~`` (the pair's weights stay findable as
    ``~/.cache/lrkit/pairs/NAME``, where ``lrkit pair prepare`` puts them)."""
    for path in folder.rglob("*"):
        if path.suffix in (".json", ".jsonl", ".md") and path.is_file():
            text = path.read_text()
            portable = text.replace(str(run.resolve()), "<run>").replace(str(Path.home()), "~")
            if portable != text:
                path.write_text(portable)


def main(argv=None) -> int:
    from lrkit.evaluation import EvalResult
    from lrkit.stages.cards import add_evaluation

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--to", type=Path, default=REPO / "docs" / "real")
    args = parser.parse_args(argv)
    run, to = args.run.expanduser(), args.to
    summary = json.loads((run / "summary.json").read_text())
    model = next(run.glob("lightreasoner-*-seed0"))
    to.mkdir(parents=True, exist_ok=True)
    results = {"summary": summary, "scout": json.loads((run / "scout.json").read_text()),
               "experiment": json.loads((run / "experiment.json").read_text())}
    for name in ("real_numerics", "real_throughput"):
        path = REPO / "perf" / "results" / f"{name}.json"
        if path.is_file():
            results[name] = json.loads(path.read_text())
    (to / "results.json").write_text(json.dumps(results, indent=2) + "\n")

    adapter = to / "adapter"
    if adapter.exists():
        shutil.rmtree(adapter)
    adapter.mkdir()
    for name in ADAPTER_FILES:
        if (model / "adapter" / name).is_file():
            shutil.copy2(model / "adapter" / name, adapter / name)
    tuned = EvalResult.load(model / "eval")
    add_evaluation(adapter, tuned, f"{tuned.n} GSM8K train problems held out (experiment test set)", "openai/gsm8k")
    describe_base(adapter, results["experiment"], summary)

    evals = {"base": run / "base" / "eval", "tuned": model / "eval",
             "decoding": next(run.glob("decoding-alpha*"), run) / "eval",
             "validation-greedy": run / "validation" / "greedy",
             "validation-decoding": next((run / "validation").glob("decoding-alpha*"), run / "validation")}
    for label, folder in evals.items():
        if (folder / "results.jsonl").is_file():
            (to / "eval" / label).mkdir(parents=True, exist_ok=True)
            for name in ("results.jsonl", "summary.json"):
                shutil.copy2(folder / name, to / "eval" / label / name)
    make_portable(to, run)
    size = sum(p.stat().st_size for p in to.rglob("*") if p.is_file())
    print(f"published {to} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
