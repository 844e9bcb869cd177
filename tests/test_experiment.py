"""lrkit.experiment: the pipeline's configs, folders and problem sets (the stages
themselves are tested in their own files; the whole pipeline in test_demo.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lrkit.config import EvalConfig, ExperimentConfig, SampleConfig, TrainConfig
from lrkit.experiment import Experiment, experiment_config
from markers import needs_toy
from lrkit.runs import FolderError

REPO = Path(__file__).resolve().parents[1]






@pytest.mark.parametrize("pair", ["toy", "qwen2.5-math-1.5b", "qwen2.5-coder-offline"])
def test_the_notebooks_config_is_the_pairs_config_with_the_parameters_cells_values(pair):
    """experiment_config is ExperimentConfig.for_pair with the notebook's values, nothing else."""
    from dataclasses import replace

    base = ExperimentConfig.for_pair(pair)
    got = experiment_config(pair, 24, 10, beta=0.5, alpha=0.1, max_steps=20, seed=3, seeds=2)
    assert (got.train_problems, got.test_problems, got.problem_seed, got.seeds) == (24, 10, 3, 2)
    assert got.check_problems == (200 if pair == "toy" else min(base.check_problems, 24))
    assert got.sample == replace(base.sample, beta=0.5, alpha=0.1)
    assert got.train == replace(base.train, max_steps=20, logging_steps=2, save_steps=20)
    assert replace(got, train_problems=base.train_problems, test_problems=base.test_problems,
                   problem_seed=base.problem_seed, seeds=base.seeds, check_problems=base.check_problems,
                   sample=base.sample, train=base.train) == base


def test_config_for_gives_the_papers_settings_to_hub_pairs_and_the_demos_to_toy():
    hub = experiment_config("qwen2.5-math-1.5b", 1000, 1319, beta=0.4, alpha=0.2, max_steps=1000)
    assert hub.sample == SampleConfig(beta=0.4, alpha=0.2) and hub.eval == EvalConfig()
    assert hub.train.learning_rate == TrainConfig().learning_rate and hub.train.max_steps == 1000
    toy = experiment_config("toy", 48, 150, beta=0.3, max_steps=30, learning_rate=None)
    demo = ExperimentConfig()
    assert toy.sample.batch_size == demo.sample.batch_size and toy.sample.beta == 0.3
    assert toy.train.learning_rate == demo.train.learning_rate and toy.train.max_steps == 30
    assert toy.train.logging_steps == 3 and toy.train.save_steps == 30
    assert experiment_config("toy", 48, 150, learning_rate=1e-4).train.learning_rate == 1e-4


def test_the_notebooks_checkpoint_about_every_ten_minutes_of_the_projected_t4():
    """The step time comes from perf/results/colab_flops.json (notebook 3's projected
    work at 35% of a T4's fp16 peak); at that speed a checkpoint interval stays within
    ten minutes, and one more step would not."""
    from lrkit.experiment import CHECKPOINT_MINUTES, T4_SECONDS_PER_STEP, checkpoint_steps

    projection = json.loads((REPO / "perf" / "results" / "colab_flops.json").read_text())
    t4 = projection["assumptions"]["gpus"]["T4"]
    seconds = (projection["work"]["03_finetuning"]["teacher_forced_flops"] / 1000
               / (projection["assumptions"]["utilization"] * t4["peak"]))
    assert T4_SECONDS_PER_STEP == pytest.approx(seconds, rel=0.01)
    every = checkpoint_steps(1000)
    assert every * seconds <= CHECKPOINT_MINUTES * 60 < (every + 1) * seconds * 1.01
    assert checkpoint_steps(30) == 30 and checkpoint_steps(5000) == every
    paper = experiment_config("qwen2.5-math-1.5b", 1000, 1319, max_steps=1000)
    assert paper.train.save_steps == every
    assert experiment_config("toy", 48, 150, max_steps=8, save_steps=2).train.save_steps == 2
    assert experiment_config("toy", 48, 150, max_steps=8, save_steps=50).train.save_steps == 8


@needs_toy
def test_folders_are_named_after_the_settings_that_shape_them(tmp_path):
    ex = Experiment(tmp_path / "x", ExperimentConfig(train_problems=8, test_problems=4), device="cpu")
    assert ex.sampling_dir().name == "sampling-beta0.4-alpha0.2"
    assert ex.sampling_dir(0.0).name == "sampling-beta0-alpha0.2"
    assert ex.model_dir().name == "lightreasoner-beta0.4-alpha0.2-steps60-lr0.002-seed0"
    assert ex.model_dir("no_selection", seed=3).name == "no_selection-beta0-alpha0.2-steps60-lr0.002-seed3"
    assert ex.model_dir("no_contrast").name.startswith("no_contrast-beta0.4-")
    assert ex.model_dir("sft").name == "sft-lr0.002-seed0"
    assert ex.eval_dir("base") == tmp_path / "x" / "base" / "eval"
    assert ex.eval_dir("lightreasoner", 1) == ex.model_dir(seed=1) / "eval"
    assert len(ex.train_set()) == 8 and len(ex.test_set()) == 4
    assert {p["id"] for p in ex.train_set()}.isdisjoint(p["id"] for p in ex.test_set())


@needs_toy
def test_a_folder_holding_another_problem_set_or_pair_build_is_refused(tmp_path):
    Experiment(tmp_path, ExperimentConfig(train_problems=8), device="cpu")
    stored = json.loads((tmp_path / "experiment.json").read_text())
    assert stored["train_problems"] == 8 and set(stored["pair_build"]) == {"expert", "amateur"}
    Experiment(tmp_path, ExperimentConfig(train_problems=8), device="cpu")  # the same: taken again
    with pytest.raises(FolderError, match="train_problems") as error:
        Experiment(tmp_path, ExperimentConfig(train_problems=9), device="cpu")
    assert "\n" not in str(error.value)
    (tmp_path / "experiment.json").write_text(json.dumps({**stored, "pair_build": {"expert": "0" * 64}}))
    with pytest.raises(FolderError, match="pair_build"):
        Experiment(tmp_path, ExperimentConfig(train_problems=8), device="cpu")


@needs_toy
def test_the_notebooks_experiment_lives_in_the_run_folder(tmp_path, monkeypatch):
    from lrkit import workshop

    monkeypatch.setenv(workshop.RUN_DIR_ENV, str(tmp_path))
    ex = workshop.notebook_experiment("toy", 8, 0.4, 0.2, 4, None, 6, 1, "cpu")
    assert ex.folder == tmp_path / "toy" / "n8-test6-seed1"
    assert ex.config.train.max_steps == 4 and ex.config.train.precision == ex.setup.precision == "fp32"
    assert len(ex.test_set()) == 6


# ------------------------------------------------------------------ any pair: settings, problem sets

def test_for_pair_gives_toy_the_demos_settings_and_other_pairs_the_papers():
    from lrkit.config import PAIR_BUDGETS, paper_differences

    assert ExperimentConfig.for_pair("toy") == ExperimentConfig()
    paper = ExperimentConfig.for_pair("qwen2.5-math-1.5b")
    assert (paper.sample, paper.train, paper.eval) == (SampleConfig(), TrainConfig(), EvalConfig())
    assert (paper.train_problems, paper.test_problems) == (1000, 1319)
    assert paper_differences(paper) == []
    assert paper_differences(ExperimentConfig.for_pair("qwen2.5-math-1.5b", train_problems=64)) == \
        ["train_problems: 64 (paper 1000)"]
    coder = ExperimentConfig.for_pair("qwen2.5-coder-offline")
    budget = PAIR_BUDGETS["qwen2.5-coder-offline"]
    assert coder.train.learning_rate == 5e-5 and coder.train.max_steps == budget["train"]["max_steps"]
    assert coder.sample.max_new_tokens == 128 and coder.sample.alpha == 0.2 and coder.sample.beta == 0.4
    assert (coder.train.lora_r, coder.train.lora_alpha, coder.train.lora_dropout) == (8, 16, 0.05)
    assert coder.dtype == "bf16" and coder.test_problems >= 100 and coder.check_problems >= 16
    assert {line.split(":")[0] for line in paper_differences(coder)} == {
        "train_problems", "test_problems", "train.max_steps", "eval.max_new_tokens", "eval.protocol"}
    assert "eval.max_new_tokens: 512 (paper 2048)" in paper_differences(coder)  # the toolkit's answer limit
    demo = paper_differences(ExperimentConfig())
    assert "train.learning_rate: 0.002 (paper 5e-05)" in demo
    assert "train batch: 16 x 1 (paper 8 x 2 = 16 records a step)" not in demo  # the same 16 records a step
    with pytest.raises(ValueError, match="dtype"):
        ExperimentConfig.for_pair("toy", dtype="int8")


def _gsm8k_file(path, n):
    path.write_text("".join(json.dumps({"question": f"Q{i}: what is {i} + {i}?", "answer": f"{i} + {i} = {2 * i}\n"
                                        f"#### {2 * i}"}) + "\n" for i in range(n)))
    return path


def test_problem_sets_cut_from_one_file_are_disjoint_and_keep_test_and_validation(tmp_path):
    from lrkit.experiment import problem_sets

    path = _gsm8k_file(tmp_path / "train.jsonl", 40)
    config = ExperimentConfig(pair="qwen2.5-math-1.5b", problems=str(path), train_problems=10, test_problems=8,
                              check_problems=5)
    sets = problem_sets(config)
    ids = {name: [p["id"] for p in problems] for name, problems in sets.items()}
    assert [len(ids[n]) for n in ("train", "validation", "test")] == [10, 5, 8]
    every = ids["train"] + ids["validation"] + ids["test"]
    assert len(set(every)) == 23, "no problem in two sets"
    assert ids["test"] != [f"train.jsonl-{i}" for i in range(8)], "shuffled, not the file's first lines"
    longer = problem_sets(ExperimentConfig(**{**config.__dict__, "train_problems": 20}))
    assert [p["id"] for p in longer["test"]] == ids["test"]
    assert [p["id"] for p in longer["validation"]] == ids["validation"]
    assert [p["id"] for p in longer["train"]][:10] == ids["train"]
    other_seed = problem_sets(ExperimentConfig(**{**config.__dict__, "problem_seed": 7}))
    assert [p["id"] for p in other_seed["test"]] != ids["test"]
    with pytest.raises(ValueError, match=r"train.jsonl: 40 problems, fewer than the 43"):
        problem_sets(ExperimentConfig(**{**config.__dict__, "train_problems": 30}))
    with pytest.raises(FileNotFoundError, match="no such file"):
        problem_sets(ExperimentConfig(**{**config.__dict__, "problems": str(tmp_path / "missing.jsonl")}))


def test_a_pair_that_is_not_registered_needs_its_amateur():
    from lrkit.experiment import pair_members

    with pytest.raises(ValueError, match="--amateur"):
        pair_members(ExperimentConfig(pair="some/expert"))
    assert pair_members(ExperimentConfig(pair="some/expert", amateur="some/amateur")) == ("some/expert", "some/amateur")


# ------------------------------------------------------------------ lrkit experiment, end to end

EXPERIMENT_SIZES = ["--train-problems", "12", "--test-problems", "10", "--validation-problems", "6",
                    "--max-steps", "4", "--seeds", "1", "--quiet"]


@needs_toy
def test_lrkit_experiment_on_toy_end_to_end_then_again(tmp_path, capsys):
    from lrkit.cli import main
    from lrkit.evaluation import EvalResult

    out = tmp_path / "exp"
    assert main(["experiment", "--pair", "toy", "--out", str(out), *EXPERIMENT_SIZES]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    scout = json.loads((out / "scout.json").read_text())
    provenance = json.loads((out / "lightreasoner-beta0.4-alpha0.2-steps4-lr0.002-seed0" / "adapter" /
                             "provenance.json").read_text())
    # the scout's prediction is written before sampling and training start, and never rewritten
    assert scout["recorded_at"] <= provenance["runs"][0]["started"]
    assert (out / "scout.json").stat().st_mtime < (out / "sampling-beta0.4-alpha0.2" / "summary.json").stat().st_mtime
    assert summary["scout"]["predicted"] in ("gain", "loss", "none")
    verdict = summary["scout_verdict"]
    assert verdict["gain_points"] == pytest.approx(100 * (summary["tuned_accuracy"] - summary["base_accuracy"]))
    assert verdict["text"] in printed
    # the scout read validation problems, the report test problems: disjoint
    validation = EvalResult.load(out / "validation" / "greedy")
    test = EvalResult.load(out / "base" / "eval")
    assert len(validation.df) == 6 and len(test.df) == 10
    assert set(validation.df["id"]).isdisjoint(test.df["id"])
    assert summary["paper_differences"] and "train.max_steps: 4 (paper 1000)" in summary["paper_differences"]
    assert "LightReasoner on the bundled pair 'toy' (fp32 on cpu)" in printed
    assert "The scout&#x27;s prediction, and whether it held" in (out / "report.html").read_text()
    # again: every stage returns what its folder holds; the prediction keeps its first time
    before = (out / "scout.json").read_bytes()
    assert main(["experiment", "--pair", "toy", "--out", str(out), *EXPERIMENT_SIZES]) == 0
    assert (out / "scout.json").read_bytes() == before
    assert json.loads((out / "summary.json").read_text())["tuned_accuracy"] == summary["tuned_accuracy"]
    # another size into the same folder: one line naming it, exit status 2
    capsys.readouterr()
    assert main(["experiment", "--pair", "toy", "--out", str(out), *EXPERIMENT_SIZES, "--test-problems", "11"]) == 2
    err = capsys.readouterr().err.strip()
    assert "test_problems" in err and "\n" not in err


def test_lrkit_experiment_help_documents_the_command():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "lrkit", "experiment", "--help"], capture_output=True, text=True,
                          check=True)
    for flag in ("--pair", "--out", "--train-problems", "--test-problems", "--max-steps", "--seeds",
                 "--learning-rate", "--max-new-tokens", "--eval-max-new-tokens", "--save-steps", "--dtype"):
        assert flag in done.stdout
    assert "the paper's" in done.stdout and "resume" in done.stdout


@needs_toy
def test_a_finished_experiment_reads_every_stage_back_without_loading_a_model(tmp_path, monkeypatch):
    """Run again (a new Experiment object, as a new process would make), every stage returns
    what its folder holds: no model is loaded, and the summary's numbers are the same."""
    import transformers

    config = ExperimentConfig(train_problems=10, test_problems=8, check_problems=6, seeds=1,
                              train=TrainConfig(**{**ExperimentConfig().train.__dict__, "max_steps": 3}))
    first = Experiment(tmp_path, config, device="cpu", progress=False).run(report=False)
    assert (tmp_path / "checks" / "toy.json").is_file() and (tmp_path / "checks" / "toy-shared.json").is_file()

    def no_loading(*args, **kwargs):
        raise AssertionError("a finished experiment must not load a model")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_loading)
    again = Experiment(tmp_path, config, device="cpu", progress=False).run(report=False)
    for key in ("base_accuracy", "tuned_accuracy", "contrastive_decoding_accuracy", "records", "steps",
                "gold_path_check", "scout", "fixed", "broken"):
        assert getattr(again, key) == getattr(first, key), key
    # the typed summary is what summary.json holds, field for field
    from lrkit.results import ExperimentSummary

    stored = ExperimentSummary.load(tmp_path)
    assert stored == again
    assert json.loads((tmp_path / "summary.json").read_text())["share_kl_below_0.1"] == again.share_kl_below_01
    with pytest.raises(ValueError, match="unknown field"):
        ExperimentSummary.from_dict({**again.to_dict(), "surprise": 1})
