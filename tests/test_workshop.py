"""workshop.once: a notebook's lrkit call, unless its folder holds that call's finished result."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import lrkit
from lrkit import training, workshop
from lrkit.evaluation import loop as evaluation
from lrkit.config import EvalConfig
from tiny_models import make_model, make_tokenizer

PROBLEMS = [{"id": f"p{i}", "question": f"what is {i} plus {i}?", "answer": f"#### {2 * i}"} for i in range(3)]


@pytest.fixture(scope="module")
def model_and_tokenizer():
    tokenizer = make_tokenizer()
    return make_model(tokenizer, seed=0), tokenizer


def test_evaluate_runs_once_then_reads_its_folder(model_and_tokenizer, tmp_path, monkeypatch):
    model, tokenizer = model_and_tokenizer
    config = EvalConfig(max_new_tokens=4, batch_size=2)
    out = tmp_path / "eval"
    first = workshop.once(lrkit.evaluate, model, PROBLEMS, config, tokenizer=tokenizer, out_dir=out,
                          progress=False, name="base")
    assert json.loads((out / "summary.json").read_text())["complete"] is True

    def no_second_run(*args, **kwargs):
        raise AssertionError("evaluated again")

    monkeypatch.setattr(evaluation, "_run_evaluation", no_second_run)
    again = workshop.once(lrkit.evaluate, model, PROBLEMS, config, tokenizer=tokenizer, out_dir=out,
                          progress=False, name="base")
    assert again.df["output"].tolist() == first.df["output"].tolist()
    assert again.accuracy == first.accuracy
    # other settings or other problems are another evaluation, never the stored one
    for changed in ({"config": EvalConfig(max_new_tokens=5, batch_size=2)}, {"problems": PROBLEMS[:2]}):
        arguments = {"problems": PROBLEMS, "config": config, **changed}
        with pytest.raises(AssertionError, match="evaluated again"):
            workshop.once(lrkit.evaluate, model, arguments["problems"], arguments["config"], tokenizer=tokenizer,
                          out_dir=out, progress=False)


def test_merge_runs_once_and_an_interrupted_merge_never_looks_finished(tmp_path, monkeypatch):
    real_merge = lrkit.merge  # the key once() recognises; the fake runs behind it
    calls = []

    def fake_merge(expert, adapter_dir, out_dir, dtype="auto"):
        calls.append(Path(out_dir))
        Path(out_dir).mkdir(parents=True)
        if len(calls) == 1:
            raise KeyboardInterrupt  # stopped half-way
        (Path(out_dir) / "config.json").write_text("{}")
        return Path(out_dir)

    monkeypatch.setattr(training, "merge", fake_merge)
    out = tmp_path / "merged"
    with pytest.raises(KeyboardInterrupt):
        workshop.once(real_merge, "expert", tmp_path / "adapter", out)
    assert not out.exists() and calls[0].name == "merged.partial"
    assert workshop.once(real_merge, "expert", tmp_path / "adapter", out) == out
    assert (out / "config.json").exists() and not calls[1].exists()
    assert workshop.once(real_merge, "expert", tmp_path / "adapter", out) == out
    assert len(calls) == 2


def test_once_takes_only_the_four_stage_calls():
    with pytest.raises(ValueError, match="lrkit.sample, lrkit.train"):
        workshop.once(print, "x")
