"""Error anatomy: the toy classifier on hand-made answers, and the fixed / introduced counts."""
from __future__ import annotations

import pandas as pd
import pytest

from lrkit.evaluation import EvalResult
from lrkit.evaluation.anatomy import ARITHMETIC, HABIT, OTHER, READING, classify_toy, equations, error_anatomy

SOLUTION = ("Ravi starts with 2 apples.\nAfter picking 3 more, he has 2 + 3 = 5 apples.\n"
            "After giving 1 to Liam, he has 5 - 1 = 4 apples.\n#### 4")


def row(output, solution=SOLUTION):
    return {"output": output, "solution": solution, "correct": False}


def test_equations_are_read_in_order():
    assert equations(SOLUTION) == [(2, "+", 3, 5), (5, "-", 1, 4)]
    assert equations("3 x 4 = 12") == [(3, "*", 4, 12)]
    assert equations(None) == []


@pytest.mark.parametrize("output, expected", [
    # G's habit: the line ends on its own second operand though the sum differs
    ("Ravi starts with 2 apples.\nhe has 2 + 3 = 3 apples.\nhe has 3 - 1 = 2 apples.\n#### 2", HABIT),
    # the habit wins over a slip elsewhere in the same answer
    ("Ravi starts with 2 apples.\nhe has 2 + 3 = 6 apples.\nhe has 6 - 1 = 1 apples.\n#### 1", HABIT),
    # a wrong result that is not a copy
    ("Ravi starts with 2 apples.\nhe has 2 + 3 = 6 apples.\nhe has 6 - 1 = 5 apples.\n#### 5", ARITHMETIC),
    # right arithmetic on a misread operand
    ("Ravi starts with 2 apples.\nhe has 2 + 4 = 6 apples.\nhe has 6 - 1 = 5 apples.\n#### 5", READING),
    # right arithmetic, the wrong operation
    ("Ravi starts with 2 apples.\nhe has 2 + 3 = 5 apples.\nhe has 5 + 1 = 6 apples.\n#### 6", READING),
    # a misread start
    ("Ravi starts with 3 apples.\nhe has 2 + 3 = 5 apples.\nhe has 5 - 1 = 4 apples.\n#### 5", READING),
    # a step left out
    ("Ravi starts with 2 apples.\nhe has 2 + 3 = 5 apples.\n#### 5", READING),
    # right lines, a final answer that does not follow from them
    ("Ravi starts with 2 apples.\nhe has 2 + 3 = 5 apples.\nhe has 5 - 1 = 4 apples.\n#### 7", OTHER),
    ("I do not know", OTHER),
])
def test_classify_toy(output, expected):
    assert classify_toy(row(output)) == expected


def test_a_copy_that_is_right_is_not_the_habit():
    # 6 - 3 = 3 is right arithmetic: on the wrong operands it is a reading error
    solution = "Ana starts with 6 apples.\nhe has 6 - 2 = 4 apples.\n#### 4"
    assert classify_toy(row("Ana starts with 6 apples.\nhe has 6 - 3 = 3 apples.\n#### 3", solution)) == READING


def test_reading_needs_the_gold_solution():
    assert classify_toy(row("he has 2 + 4 = 6 apples.\n#### 6", solution=None)) == OTHER


def result(correct, outputs, name):
    n = len(correct)
    return EvalResult(pd.DataFrame({
        "id": [f"p{i}" for i in range(n)], "question": ["q"] * n, "gold": ["4"] * n, "output": outputs,
        "prediction": ["0"] * n, "correct": correct, "n_tokens": [1] * n, "finished": [True] * n}),
        {"model": name})


def test_fixed_and_introduced_per_type():
    habit = "he has 2 + 3 = 3 apples.\n#### 3"
    slip = "he has 2 + 3 = 6 apples.\n#### 6"
    misread = "Ravi starts with 2 apples.\nhe has 2 + 3 = 5 apples.\nhe has 5 + 1 = 6 apples.\n#### 6"
    right = SOLUTION
    base = result([False, False, False, True, True, False],
                  [habit, habit, slip, right, right, misread], "base")
    tuned = result([True, True, False, False, True, False],
                   [right, right, slip, misread, right, misread], "tuned")
    problems = [{"id": f"p{i}", "question": "q", "answer": SOLUTION} for i in range(6)]
    anatomy = error_anatomy({"base": base, "tuned": tuned}, problems=problems)
    assert anatomy.counts()["base"] == {HABIT: 2, ARITHMETIC: 1, READING: 1, OTHER: 0}
    assert anatomy.counts()["tuned"] == {HABIT: 0, ARITHMETIC: 1, READING: 2, OTHER: 0}
    moves = anatomy.transitions("tuned")
    assert moves[HABIT] == {"base": 2, "after": 0, "fixed": 2, "introduced": 0}
    assert moves[ARITHMETIC] == {"base": 1, "after": 1, "fixed": 0, "introduced": 0}
    assert moves[READING] == {"base": 1, "after": 2, "fixed": 0, "introduced": 1}
    table = anatomy.table()
    assert list(table.loc[table["type"] == READING, "introduced"]) == [1]
    assert anatomy.examples("tuned", READING) == ["p3", "p5"]


def test_a_plugged_in_classifier_defines_the_types():
    base = result([False, False, True], ["a long answer", "short", "ok"], "base")
    tuned = result([False, True, False], ["a long answer", "short", "tiny"], "tuned")
    anatomy = error_anatomy([base, tuned], classify=lambda r: "long" if len(r["output"]) > 5 else "short")
    assert anatomy.order == ["long", "short"]
    assert anatomy.transitions("tuned") == {"long": {"base": 1, "after": 1, "fixed": 0, "introduced": 0},
                                            "short": {"base": 1, "after": 1, "fixed": 1, "introduced": 1}}


def test_no_results_is_an_error():
    with pytest.raises(ValueError, match="no results"):
        error_anatomy({})
