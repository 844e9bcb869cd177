"""lrkit.data.problems: problem files (JSONL) and gold answers (the text after '####').
Benchmarks by name are tests/test_benchmarks.py's."""
from __future__ import annotations

import json

import pytest

from lrkit.data.problems import Problem, ProblemError, gold_answer, load_problems


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
