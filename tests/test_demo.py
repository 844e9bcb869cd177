"""`lrkit demo` (the README's main command) on a small budget of the bundled
pair: every number in summary.json and on stdout is checked against the files
the stages wrote, recomputed here independently. The demo runs once; a test
that runs it again does so in its own copy of the folder (``own_copy``), so the
tests read the same files in any order."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from lrkit.cli import main
from lrkit.models.loading import torch_threads
from lrkit.evaluation import accuracy_interval
from lrkit.models.pairs import TOY_DIR

pytestmark = pytest.mark.skipif(not (TOY_DIR / "expert").is_dir(), reason="no bundled pair")


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import contextlib
    import io

    out = tmp_path_factory.mktemp("demo") / "run"
    stdout = io.StringIO()
    with torch_threads(1), contextlib.redirect_stdout(stdout):
        assert main(["demo", "--out", str(out), *FLAGS, "--ablations"]) == 0
    return out, stdout.getvalue()


FLAGS = ["--train-problems", "12", "--test-problems", "24", "--max-steps", "3", "--seeds", "2",
         "--check-problems", "8"]


@pytest.fixture
def own_copy(run, tmp_path):
    """The demo's folder copied for one test that runs the demo in it again: (folder, its files before)."""
    out = shutil.copytree(run[0], tmp_path / "run")
    return out, {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def ex(run):
    """The demo's experiment, for its folder names (the same flags as the run)."""
    from lrkit.cli import build_parser, demo_config_from_args
    from lrkit.experiment import Experiment

    config = demo_config_from_args(build_parser().parse_args(["demo", *FLAGS]))
    return Experiment(run[0], config, device="cpu", progress=False)


def test_summary_matches_the_stage_files(run, ex):
    out, _ = run
    summary = json.loads((out / "summary.json").read_text())
    steps = lines(ex.sampling_dir() / "steps.jsonl")
    records = lines(ex.sampling_dir() / "records.jsonl")
    assert summary["steps"] == summary["rollout_tokens"] == len(steps) > 0
    assert summary["records"] == len(records) == sum(bool(s["kept"]) for s in steps)
    assert summary["share_kept"] == pytest.approx(len(records) / len(steps))
    agree = [s["kl"] for s in steps if s["top1_agree"]]
    disagree = [s["kl"] for s in steps if not s["top1_agree"]]
    assert summary["mean_kl_top1_agree"] == pytest.approx(sum(agree) / len(agree))
    assert summary["mean_kl_top1_disagree"] == pytest.approx(sum(disagree) / len(disagree))
    # 3 optimizer steps of batch 16 over at most 16 examples: each example's one position once per step
    assert 0 < summary["tuned_tokens"] <= 3 * 16

    base = {r["id"]: r["correct"] for r in lines(ex.eval_dir("base") / "results.jsonl")}
    tuned = {r["id"]: r["correct"] for r in lines(ex.eval_dir("lightreasoner", 0) / "results.jsonl")}
    assert len(base) == len(tuned) == summary["test_problems"] == 24
    assert summary["base_accuracy"] == pytest.approx(sum(base.values()) / 24)
    assert summary["tuned_accuracy"] == pytest.approx(sum(tuned.values()) / 24)
    assert summary["base_interval"] == pytest.approx(list(accuracy_interval(sum(base.values()), 24)))
    assert summary["fixed"] == sum(tuned[i] and not base[i] for i in base)
    assert summary["broken"] == sum(base[i] and not tuned[i] for i in base)
    decoded = lines(ex.eval_dir("decoding") / "results.jsonl")
    assert [r["id"] for r in decoded] == list(base)
    n_decoded = sum(r["correct"] for r in decoded)
    assert summary["contrastive_decoding_accuracy"] == pytest.approx(n_decoded / 24)
    assert summary["contrastive_decoding_interval"] == pytest.approx(list(accuracy_interval(n_decoded, 24)))
    assert set(summary["seconds"]) >= {"gold-path check", "sampling", "training (seed 0)", "training (seed 1)",
                                       "evaluating base expert", "evaluating tuned expert (seed 0)",
                                       "evaluating tuned expert (seed 1)", "decoding by the soft labels"}


def test_every_seed_is_trained_and_scored_against_the_base(run, ex):
    out, stdout = run
    summary = json.loads((out / "summary.json").read_text())
    base = {r["id"]: r["correct"] for r in lines(ex.eval_dir("base") / "results.jsonl")}
    assert [row["seed"] for row in summary["seeds"]] == [0, 1]
    gains = []
    for row, folder in zip(summary["seeds"], (ex.eval_dir("lightreasoner", 0), ex.eval_dir("lightreasoner", 1))):
        tuned = {r["id"]: r["correct"] for r in lines(folder / "results.jsonl")}
        assert row["accuracy"] == pytest.approx(sum(tuned.values()) / 24)
        assert row["fixed"] == sum(tuned[i] and not base[i] for i in base)
        assert row["broken"] == sum(base[i] and not tuned[i] for i in base)
        gains.append(row["accuracy"] - summary["base_accuracy"])
        assert row["gain"] == pytest.approx(gains[-1])
    assert summary["mean_gain"] == pytest.approx(sum(gains) / 2)
    assert summary["seeds"][0]["accuracy"] == summary["tuned_accuracy"]
    assert (ex.model_dir(seed=1) / "adapter").is_dir() and (ex.model_dir(seed=1) / "merged").is_dir()
    assert "LightReasoner over all seeds: mean change" in stdout


def test_gold_path_check_of_both_bundled_pairs(run):
    from lrkit.evaluation.diagnostics import contrast_check
    from lrkit.models.loading import load_pair
    from lrkit.toy import toy_problems

    out, stdout = run
    summary = json.loads((out / "summary.json").read_text())
    checks = summary["gold_path_check"]
    assert list(checks) == ["toy", "toy-shared"]  # the demo's pair first
    for name, check in checks.items():
        again = contrast_check(load_pair(name, device="cpu"), toy_problems(name, 8, "validation", seed=2026),
                               beta=0.4, alpha=0.2).summary()
        for key in ("steps", "kept", "fixes", "breaks", "disagreements", "passes"):
            assert check[key] == again[key], (name, key)
        assert check["label_gold_mass"] == pytest.approx(again["label_gold_mass"])
        assert f"gold-path check, {name}:" in stdout
    html = (out / "report.html").read_text()
    assert "Before training: does the pair" in html and "toy-shared" in html


def test_ablation_table_has_every_variant_on_the_same_test_set(run, ex):
    out, _ = run
    summary = json.loads((out / "summary.json").read_text())
    table = {row["variant"]: row for row in summary["ablations"]}
    assert list(table) == ["base expert", "full method", "no selection", "no contrast", "neither",
                           "SFT baseline", "contrastive decoding"]
    every = lines(ex.sampling_dir(0.0) / "records.jsonl")
    # every step but each rollout's first, which sampling never keeps (skip_first_step)
    assert table["no selection"]["examples"] == table["neither"]["examples"] == len(every)
    assert len(every) == summary["steps"] - summary["train_problems"]
    assert table["full method"]["examples"] == table["no contrast"]["examples"] == summary["records"]
    assert table["base expert"]["accuracy"] == summary["base_accuracy"]
    assert table["full method"]["accuracy"] == summary["tuned_accuracy"]
    for variant, folder in (("no selection", "no_selection"), ("no contrast", "no_contrast"),
                            ("neither", "neither"), ("SFT baseline", "sft"), ("contrastive decoding", "decoding")):
        results = lines(ex.eval_dir(folder) / "results.jsonl")
        assert len(results) == 24
        assert table[variant]["accuracy"] == pytest.approx(sum(r["correct"] for r in results) / 24)
        assert table[variant]["delta_vs_base"] == pytest.approx(table[variant]["accuracy"] - summary["base_accuracy"])
    assert table["full method"]["paper"] == 54.0 and table["contrastive decoding"]["paper"] is None


def test_report_is_one_offline_page_and_stdout_has_the_summary(run):
    out, stdout = run
    summary = json.loads((out / "summary.json").read_text())
    html = (out / "report.html").read_text()
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=\"http", html), "the report must open offline"
    for text in ("Where the expert and the amateur diverge", "The most critical moments", "Fine-tuning",
                 "Accuracy on held-out problems", "Efficiency", "Ablations"):
        assert text in html
    assert f"{100 * summary['base_accuracy']:.1f}%" in html
    # the fixed / broken tables name their answer columns after the models
    assert "prediction_a" not in html and "prediction_b" not in html
    if summary["fixed"] or summary["broken"]:
        assert "<th>base expert</th>" in html and "<th>tuned expert</th>" in html
    for row in summary["ablations"]:  # the ablation table shows each interval as a percentage
        assert f"{100 * row['accuracy']:.1f}% [{100 * row['low']:.1f}, {100 * row['high']:.1f}]" in html
    assert f"accuracy on 24 held-out problems: base {100 * summary['base_accuracy']:.1f}%" in stdout
    assert f"fixed {summary['fixed']}, broken {summary['broken']}" in stdout
    assert "contrastive decoding" in stdout
    assert f"decoding by the soft labels' argmax, no training: {100 * summary['contrastive_decoding_accuracy']:.1f}%" in stdout
    assert "decoding by the soft labels&#x27; argmax (no training)" in html or \
        "decoding by the soft labels' argmax (no training)" in html


def test_running_the_demo_again_in_its_folder_gives_the_same_numbers(own_copy, capsys):
    out, _ = own_copy
    before = json.loads((out / "summary.json").read_text())
    capsys.readouterr()
    with torch_threads(1):
        assert main(["demo", "--out", str(out), "--train-problems", "12", "--test-problems", "24",
                     "--max-steps", "3", "--seeds", "2", "--check-problems", "8", "--quiet"]) == 0
    after = json.loads((out / "summary.json").read_text())
    for key in ("steps", "records", "tuned_tokens", "base_accuracy", "tuned_accuracy", "fixed", "broken"):
        assert after[key] == before[key], key
    # --quiet: the summary and nothing else (no stage lines, no bars, no log dicts)
    printed = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert printed[0] == f"LightReasoner on the bundled pair 'toy' ({after['dtype']} on {after['device']})"
    assert (after["dtype"], after["device"]) == ("fp32", "cpu")
    assert all(line.startswith("  ") for line in printed[1:]), printed


def test_the_demos_stdout_holds_no_log_dicts(run):
    """stdout is a StringIO here, not a terminal, and the demo ran with its progress bars."""
    _, stdout = run
    assert "[lrkit] training (seed 0)..." in stdout  # the run this checks was not --quiet
    assert not [line for line in stdout.splitlines() if line.lstrip().startswith("{")]


def test_the_demo_leaves_curves_cards_and_a_dataset(run, ex):
    from datasets import load_dataset
    from huggingface_hub import DatasetCard, ModelCard

    out, stdout = run
    summary = json.loads((out / "summary.json").read_text())
    models = [ex.model_dir(), ex.model_dir(seed=1), ex.model_dir("no_selection"), ex.model_dir("no_contrast"),
              ex.model_dir("neither"), ex.model_dir("sft")]
    for model in models:
        assert list((model / "adapter" / "tensorboard").glob("events.out.tfevents.*")), model.name
    merged = sorted(p.parent.name for p in out.glob("*/merged"))
    assert merged == sorted(m.name for m in models)
    for model in models:
        card = ModelCard.load(model / "merged" / "README.md")
        assert card.data.base_model == "toy:expert" and "lightreasoner" in card.data.tags, model.name
        assert str(out) not in card.content and str(TOY_DIR) not in card.content
        results = lines(model / "eval" / "results.jsonl")
        [entry] = card.data.eval_results
        assert entry.metric_value == pytest.approx(round(sum(r["correct"] for r in results) / len(results), 4))
    export = Path(summary["records_dataset"])
    dataset = load_dataset("parquet", data_files=str(export / "data" / "*.parquet"), split="train")
    assert len(dataset) == summary["records"]
    assert f"| records | {summary['records']} |" in DatasetCard.load(export / "README.md").text
    assert f"records as a dataset (parquet + card): {export}" in stdout


def test_a_folder_from_another_build_of_the_pair_is_refused(tmp_path, capsys):
    from lrkit.config import ExperimentConfig
    from lrkit.experiment import EXPERIMENT_FILE, pair_build

    other = tmp_path / "other"
    other.mkdir()
    claim = {**ExperimentConfig().problem_settings(), "pair_build": {"expert": "0" * 64, "amateur": "1" * 64}}
    (other / EXPERIMENT_FILE).write_text(json.dumps(claim))
    assert pair_build("toy") != claim["pair_build"]
    capsys.readouterr()
    assert main(["demo", "--out", str(other), "--quiet"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "pair_build" in err[0] and "--fresh" in err[0], err
    assert sorted(p.name for p in other.iterdir()) == [EXPERIMENT_FILE], "nothing was written"


def _demo_again(out, *flags, capsys) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main(["demo", "--out", str(out), "--train-problems", "12", "--test-problems", "24", "--seeds", "2",
                 "--check-problems", "8", "--quiet", *flags])
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_settings_and_provenance_are_tables_in_the_report(run, ex):
    out, _ = run
    html = (out / "report.html").read_text()
    settings = html[html.index(">Settings<"):]
    assert "<table" in settings and '{"alpha"' not in html, "settings are a table, not raw JSON"
    for text in ("kl_inclusive", "learning_rate", "max_new_tokens", "train_problems", "transformers", "git commit",
                 "started", "lrkit demo --out"):
        assert text in settings, text
    import lrkit
    from lrkit.provenance import read_provenance

    for folder in (out, ex.sampling_dir(), ex.model_dir() / "adapter", ex.model_dir() / "merged",
                   ex.eval_dir("base"), ex.eval_dir("lightreasoner"), ex.model_dir("sft") / "adapter"):
        runs = read_provenance(folder)
        assert runs and runs[-1]["lrkit"] == lrkit.__version__ and runs[-1]["ended"], folder


def test_a_rerun_with_another_problem_set_says_fresh(own_copy, capsys):
    out, before = own_copy
    code, err = _demo_again(out, "--max-steps", "3", "--train-problems", "13", capsys=capsys)
    assert code == 2 and len(err) == 1, err
    assert "--fresh" in err[0] and "train_problems" in err[0]
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before, "a refused call writes nothing (no provenance entry either)"


def test_the_demo_reports_the_odd_token_audit_and_the_error_anatomy(run, ex):
    from lrkit.evaluation.audit import odd_token_audit
    from lrkit.data.records import read_records

    out, stdout = run
    summary = json.loads((out / "summary.json").read_text())
    # the audit recomputed from the records file agrees with the summary
    audit = odd_token_audit(read_records(ex.sampling_dir() / "records.jsonl"))
    assert summary["odd_token_audit"]["odd"] == audit.n_odd
    assert summary["odd_token_audit"]["kept_steps"] == summary["records"]
    anatomy = summary["error_anatomy"]
    assert anatomy["models"] == ["base", "seed 0", "seed 1"]
    wrong = round((1 - summary["base_accuracy"]) * summary["test_problems"])
    assert sum(anatomy["counts"]["base"].values()) == wrong
    seed0 = summary["seeds"][0]
    moves = anatomy["transitions"]["seed 0"]
    assert sum(c["fixed"] for c in moves.values()) == seed0["fixed"]
    assert sum(c["introduced"] for c in moves.values()) == seed0["broken"]
    assert "odd-token audit" in stdout and "error anatomy (seed 0)" in stdout
    html = (out / "report.html").read_text()
    assert "Error anatomy" in html and "Odd-token audit" in html


def test_a_rerun_with_fewer_steps_trains_beside_the_first_run(own_copy, ex, capsys):
    """Other training settings are another model, in a folder of its own: the first stays as it was."""
    out, before = own_copy
    first = ex.model_dir().relative_to(ex.folder)
    code, err = _demo_again(out, "--max-steps", "2", "--seeds", "1", "--test-problems", "24", capsys=capsys)
    assert code == 0, err
    for name, content in before.items():
        if name.parts[0] == first.name:
            assert (out / name).read_bytes() == content, name
    assert (out / first.name.replace("-steps3-", "-steps2-") / "merged" / "config.json").exists()
    assert json.loads((out / "summary.json").read_text())["config"]["train"]["max_steps"] == 2
    assert json.loads(before[Path("summary.json")])["config"]["train"]["max_steps"] == 3
