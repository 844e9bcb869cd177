"""lrkit.data.problems: problem files (JSONL) and gold answers (the text after '####'),
and what a benchmark name means: that benchmark's evaluation split everywhere
(``load_problems``, ``evaluate``, ``lrkit eval``); sampling and SFT name their
split (``gsm8k:train``); ``lrkit sample --problems gsm8k`` samples train, and says so.
The benchmarks themselves (Hub ids, fields, local copies) are tests/test_benchmarks.py's.

In those tests ``datasets.load_dataset`` is a fake serving GSM8K's train rows from
../shared/data/gsm8k/train.jsonl and its test rows from the test fixture, so
which split a call read shows in the questions it got.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lrkit.data.answers import Problem, ProblemError, gold_answer
from lrkit.data.problems import load_problems

REPO = Path(__file__).resolve().parents[1]
GSM8K_TRAIN = REPO.parent / "shared" / "data" / "gsm8k" / "train.jsonl"
GSM8K_TEST = Path(__file__).parent / "fixtures" / "benchmarks" / "gsm8k.jsonl"


@pytest.mark.parametrize("answer, gold", [
    ("She has 5 + 2 = 7.\n#### 7", "7"),
    ("#### 3\nchecked again\n#### 4", "4"),           # the last '####'
    ("Total: 1,234 apples\n#### 1,234", "1234"),       # thousands separators go
    ("#### -12,500.25", "-12500.25"),
    ("#### (1, 2)", "(1, 2)"),                         # other commas are the answer
    ("#### \\{1, 2\\}", "\\{1, 2\\}"),
    ("#### 12,34", "12,34"),                           # not a thousands pattern: kept
    ("  42  ", "42"),                                  # no '####': the whole answer
    ("\\frac{1}{2}", "\\frac{1}{2}"),
])
def test_gold_is_the_text_after_the_last_marker(answer, gold):
    assert gold_answer(answer) == gold
    assert Problem("p", "q?", answer).gold == gold


def test_a_problem_without_an_answer_has_no_gold():
    assert Problem("p", "q?").gold is None


def write(path, lines) -> str:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def test_load_problems_from_jsonl(tmp_path):
    path = write(tmp_path / "problems.jsonl", [
        json.dumps({"question": "Two plus two?", "answer": "#### 4"}),
        "",
        json.dumps({"id": "mine", "question": "Three?", "answer": 3}),
        json.dumps({"id": 7, "question": "Pick one.", "answer": "B", "answer_kind": "choice"}),
        json.dumps({"question": "No answer here."}),
    ])
    problems = load_problems(path)
    assert problems == [Problem("0", "Two plus two?", "#### 4"), Problem("mine", "Three?", "3"),
                        Problem("7", "Pick one.", "B", "choice"), Problem("3", "No answer here.", None)]
    assert [p.gold for p in problems] == ["4", "3", "B", None]
    assert load_problems(path, max_problems=2) == problems[:2]
    assert problems[0].to_dict() == {"id": "0", "question": "Two plus two?", "answer": "#### 4"}
    assert problems[2].to_dict()["answer_kind"] == "choice"


@pytest.mark.parametrize("line, says", [
    ('{"answer": "4"}', "missing field 'question'"),
    ('{"question": "   "}', "field 'question' must be a non-empty string"),
    ('{"question": 5}', "field 'question' must be a non-empty string"),
    ('{"question": "q?", "answer": true}', "field 'answer' must be a string or a finite number"),
    ('{"question": "q?", "answer": [4]}', "field 'answer' must be a string or a finite number"),
    ('{"question": "q?", "id": ""}', "field 'id' must be a non-empty string or an integer"),
    ('{"question": "q?", "answer_kind": "essay"}', "field 'answer_kind' must be 'math' or 'choice'"),
    ('["q?"]', "expected a JSON object, got list"),
    ('{"question": "q?"', "not valid JSON"),
    ('{"question": "q?", "answer": NaN}', "not valid JSON"),
])
def test_a_bad_line_is_named(tmp_path, line, says):
    path = write(tmp_path / "problems.jsonl", [json.dumps({"question": "fine?"}), line])
    with pytest.raises(ProblemError) as caught:
        load_problems(path)
    message = str(caught.value)
    assert message.startswith(f"{path}, line 2: ") and says in message and "\n" not in message


def test_a_repeated_id_names_both_lines(tmp_path):
    path = write(tmp_path / "problems.jsonl", [json.dumps({"id": "a", "question": "x?"}),
                                               json.dumps({"id": "b", "question": "y?"}),
                                               json.dumps({"id": "a", "question": "z?"})])
    with pytest.raises(ProblemError, match="line 3: id 'a' already used on line 1"):
        load_problems(path)


def test_answers_required_names_the_line(tmp_path):
    path = write(tmp_path / "problems.jsonl", [json.dumps({"question": "x?", "answer": "1"}),
                                               json.dumps({"question": "y?"})])
    assert len(load_problems(path)) == 2
    with pytest.raises(ProblemError, match="line 2: missing field 'answer'"):
        load_problems(path, require_answers=True)


def test_empty_missing_and_undecodable_files(tmp_path):
    with pytest.raises(ProblemError, match="holds no problems"):
        load_problems(write(tmp_path / "empty.jsonl", ["", "  "]))
    with pytest.raises(ProblemError, match="no such problem file"):
        load_problems(str(tmp_path / "absent.jsonl"))
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes('{"question": "Zoë?"}\n'.encode("latin-1"))
    with pytest.raises(ProblemError, match="line 1: not valid UTF-8"):
        load_problems(str(latin1))


def test_a_list_of_dicts_and_problems(tmp_path):
    problems = load_problems([{"question": "x?"}, Problem("k", "y?", "2")])
    assert problems == [Problem("0", "x?"), Problem("k", "y?", "2")]
    with pytest.raises(ProblemError, match="problem 1: missing field 'question'"):
        load_problems([{"question": "x?"}, {"answer": "1"}])
    with pytest.raises(ProblemError, match="not unique"):
        load_problems([{"id": "a", "question": "x?"}, {"id": "a", "question": "y?"}])


# ---------------------------------------------------------------- a benchmark name and its split

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
    """``lrkit.evaluate(model, "gsm8k")`` scores GSM8K test, never train."""
    import lrkit
    from lrkit.config import EvalConfig
    from tiny_models import make_model, make_tokenizer

    calls, questions = fake_hub
    tokenizer = make_tokenizer()
    model = make_model(tokenizer, seed=0)
    result = lrkit.evaluate(model, "gsm8k", EvalConfig(max_new_tokens=2, batch_size=4, protocol="lrkit"),
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
