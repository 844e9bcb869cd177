"""A benchmark name means that benchmark's evaluation split everywhere
(``load_problems``, ``evaluate``, ``lrkit eval``); sampling and SFT name their
split (``gsm8k:train``); ``lrkit sample --problems gsm8k`` samples train, and says so.

``datasets.load_dataset`` is replaced by a fake serving GSM8K's train rows from
../shared/data/gsm8k/train.jsonl and its test rows from the test fixture, so
which split a call read shows in the questions it got.
"""
import json
from pathlib import Path

import pytest

from lrkit.data.problems import ProblemError, load_problems

REPO = Path(__file__).resolve().parents[1]
GSM8K_TRAIN = REPO.parent / "shared" / "data" / "gsm8k" / "train.jsonl"
GSM8K_TEST = Path(__file__).parent / "fixtures" / "benchmarks" / "gsm8k.jsonl"


def _rows(path, n=None):
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows[:n] if n else rows


@pytest.fixture
def fake_hub(monkeypatch):
    """GSM8K on a fake Hub: train = the first 4 real train rows, test = the 3 fixture rows."""
    import datasets

    if not GSM8K_TRAIN.is_file():
        pytest.skip(f"{GSM8K_TRAIN} is missing")
    calls = []
    splits = {"train": _rows(GSM8K_TRAIN, 4), "test": _rows(GSM8K_TEST)}

    def load_dataset(hub_id, config=None, split=None):
        calls.append((hub_id, config, split))
        assert (hub_id, config) == ("openai/gsm8k", "main")
        return list(splits[split])

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls, {name: [r["question"] for r in rows] for name, rows in splits.items()}


def test_the_rule_parses_names_and_splits(tmp_path, monkeypatch):
    from lrkit.data.problems import benchmark_source

    assert benchmark_source("gsm8k") == ("gsm8k", None)
    assert benchmark_source("openai/gsm8k") == ("gsm8k", None)
    assert benchmark_source("gsm8k:train") == ("gsm8k", "train")
    assert benchmark_source("svamp:train+test") == ("svamp", "train+test")
    assert benchmark_source("problems.jsonl") is None
    assert benchmark_source("gsm8kk:train") is None
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gsm8k").write_text('{"question": "q?", "answer": "1"}\n')  # a file wins over the name
    assert benchmark_source("gsm8k") is None
    assert [p.question for p in load_problems("gsm8k")] == ["q?"]
    with pytest.raises(ProblemError, match="expected NAME:SPLIT"):
        benchmark_source("math500:te st")


def test_load_problems_reads_each_benchmarks_evaluation_split(fake_hub):
    calls, questions = fake_hub
    test = load_problems("gsm8k")
    assert calls == [("openai/gsm8k", "main", "test")]
    assert [p.question for p in test] == questions["test"]
    assert [p.id for p in test] == ["gsm8k-test-0", "gsm8k-test-1", "gsm8k-test-2"]
    assert load_problems("openai/gsm8k") == test
    train = load_problems("gsm8k:train")
    assert [p.question for p in train] == questions["train"] and train[0].id == "gsm8k-train-0"
    assert load_problems("gsm8k", split="train") == train
    with pytest.raises(ProblemError, match="names split 'train' but split='test'"):
        load_problems("gsm8k:train", split="test")


def test_evaluate_of_gsm8k_scores_the_test_split(fake_hub):
    """The trap of issue 20: ``lrkit.evaluate(model, "gsm8k")`` scored GSM8K train."""
    import lrkit
    from lrkit.config import EvalConfig
    from tiny_models import make_model, make_tokenizer

    calls, questions = fake_hub
    tokenizer = make_tokenizer()
    model = make_model(tokenizer, seed=0)
    result = lrkit.evaluate(model, "gsm8k", EvalConfig(max_new_tokens=2, batch_size=4),
                            tokenizer=tokenizer, progress=False)
    assert [c[2] for c in calls] == ["test"]
    assert result.df["question"].tolist() == questions["test"]
    assert result.df["gold"].tolist() == ["42", "3000", "7"]


def test_sampling_and_sft_refuse_a_bare_benchmark_name(fake_hub):
    from lrkit.data.problems import training_problems

    calls, questions = fake_hub
    with pytest.raises(ProblemError, match="sampling names its split, e.g. 'gsm8k:train'"):
        training_problems("gsm8k")
    assert calls == []  # refused before anything loads
    assert [p.question for p in training_problems("gsm8k:train", max_problems=2)] == questions["train"][:2]
    calls.clear()
    import lrkit
    from lrkit.stages.sft import run_sft

    with pytest.raises(ProblemError, match="a bare benchmark name means its evaluation split"):
        lrkit.sample("toy", None, "gsm8k", "unused-out")
    with pytest.raises(ProblemError, match="SFT names its split"):
        run_sft("toy:expert", "openai/gsm8k", "unused-out")
    assert calls == []


def _need_toy_pair():
    from lrkit.models.pairs import PairNotPreparedError, resolve_pair

    try:
        resolve_pair("toy")
    except PairNotPreparedError:
        pytest.skip("the bundled toy pair is missing")


def test_lrkit_sample_problems_gsm8k_samples_train(fake_hub, tmp_path, capsys):
    from lrkit.cli import main
    _need_toy_pair()
    calls, questions = fake_hub
    out = tmp_path / "s"
    assert main(["sample", "--expert", "toy", "--problems", "gsm8k", "--out", str(out),
                 "--max-problems", "2", "--max-new-tokens", "4"]) == 0
    assert "problems: gsm8k:train (a bare benchmark name samples its train split)" in capsys.readouterr().err
    assert [c[2] for c in calls] == ["train"]
    rollouts = _rows(out / "rollouts.jsonl")
    assert [r["question"] for r in rollouts] == questions["train"][:2]


def test_lrkit_eval_problems_gsm8k_scores_test(fake_hub, tmp_path):
    from lrkit.cli import main
    _need_toy_pair()
    calls, questions = fake_hub
    out = tmp_path / "e"
    assert main(["eval", "--model", "toy:expert", "--problems", "gsm8k", "--out", str(out),
                 "--limit", "2", "--max-new-tokens", "2"]) == 0
    assert [c[2] for c in calls] == ["test"]
    assert [r["question"] for r in _rows(out / "results.jsonl")] == questions["test"][:2]
    calls.clear()
    assert main(["eval", "--model", "toy:expert", "--problems", "gsm8k:train", "--out", str(tmp_path / "t"),
                 "--limit", "2", "--max-new-tokens", "2"]) == 0
    assert [c[2] for c in calls] == ["train"]


def test_the_notebooks_problems_name_their_split(fake_hub):
    from lrkit.experiment import problems_for

    calls, questions = fake_hub
    assert [p["question"] for p in problems_for("qwen2.5-math-1.5b", 2, "train")] == questions["train"][:2]
    assert [p["question"] for p in problems_for("qwen2.5-math-1.5b", 3, "test")] == questions["test"]
    assert [c[2] for c in calls] == ["train", "test"]
    with pytest.raises(TypeError):
        problems_for("qwen2.5-math-1.5b", 2)  # no default split
