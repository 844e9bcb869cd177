"""lrkit.experiment: the pipeline's configs, folders and problem sets (the stages
themselves are tested in their own files; the whole pipeline in test_demo.py)."""
from __future__ import annotations

import json

import pytest

from lrkit.config import EvalConfig, ExperimentConfig, SampleConfig, TrainConfig
from lrkit.experiment import Experiment, experiment_config
from markers import needs_toy
from lrkit.runs import FolderError






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
