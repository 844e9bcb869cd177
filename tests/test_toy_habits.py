"""The habit world (lrkit.toy.habits): the family is worked out correctly, the
general corpus follows its shallow rule and computes nothing, and splits stay
disjoint by computation."""
from __future__ import annotations

import re

import pytest

from lrkit.toy import toy_problems
from lrkit.toy.habits import DEFAULT_WORLD, generate_habit_problems
from lrkit.toy.problems import final_answer, split_of_answer

EQUATION = re.compile(r"(\d+) ([-+*]) (\d+) = (\d+)")


def equations(answer: str):
    return [(int(a), op, int(b), int(c)) for a, op, b, c in EQUATION.findall(answer)]


def test_family_answers_are_worked_out_correctly():
    for problem in generate_habit_problems(300, "train", seed=1):
        steps = equations(problem["answer"])
        assert steps, problem["answer"]
        for a, op, b, c in steps:
            assert c == {"+": a + b, "-": a - b, "*": a * b}[op], problem["answer"]
        for (_, _, _, previous), (a, _, _, _) in zip(steps, steps[1:]):
            assert a == previous  # each line carries on from the last result
        assert final_answer(problem["answer"]) == steps[-1][3]
        assert set(op for _, op, _, _ in steps) <= set(DEFAULT_WORLD.operations)
        assert all(2 <= c <= DEFAULT_WORLD.difficulty.max_value for _, _, _, c in steps)
        # G's habit ("copy the last number") is never right by chance in the family
        assert all(c != b for _, _, b, c in steps), problem["answer"]


def test_general_corpus_copies_the_last_number_and_computes_nothing():
    problems = generate_habit_problems(300, "train", seed=1, habit=True)
    for problem in problems:
        steps = equations(problem["answer"])
        for a, op, b, c in steps:
            assert c == b, problem["answer"]  # the line ends on the number its sentence gave
        numbers = [int(n) for n in re.findall(r"\d+", problem["question"])]
        assert final_answer(problem["answer"]) == numbers[-1]
    # and it is not the family: almost every G answer is wrong arithmetic
    wrong = sum(any(c != {"+": a + b, "-": a - b, "*": a * b}[op] for a, op, b, c in equations(p["answer"]))
                for p in problems)
    assert wrong > 0.9 * len(problems)


def test_same_stories_in_both_corpora():
    family = generate_habit_problems(200, "train", seed=3)
    general = generate_habit_problems(200, "train", seed=3, habit=True)
    strip = lambda p: re.sub(r"\d+", "N", p["question"])  # noqa: E731
    assert {strip(p) for p in family} & {strip(p) for p in general}


def test_deterministic_and_distinct():
    a = generate_habit_problems(100, "test", seed=5)
    assert a == generate_habit_problems(100, "test", seed=5)
    assert a != generate_habit_problems(100, "test", seed=6)
    assert len({p["question"] for p in a}) == 100
    assert len({p["id"] for p in a}) == 100


@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_family_splits_by_computation(split):
    for problem in generate_habit_problems(200, split, seed=2):
        assert split_of_answer(problem["answer"]) == split


def test_general_corpus_is_train_only():
    with pytest.raises(ValueError, match="training only"):
        generate_habit_problems(5, "test", habit=True)


def test_toy_problems_follow_the_pair():
    assert toy_problems("toy", 5, "test", seed=0) == generate_habit_problems(5, "test", seed=0)
    from lrkit.toy import generate_problems

    assert toy_problems("toy-shared", 5, "test", seed=0) == generate_problems(5, "test", seed=0)
    with pytest.raises(ValueError, match="toy, toy-shared"):
        toy_problems("qwen", 5)


def test_tiny_habit_build_is_deterministic_and_reports_its_checks(tmp_path):
    import json

    import torch
    from transformers import AutoModelForCausalLM

    from lrkit.toy.habit_pair import RECIPE, build_habit_pair, habit_pair_data
    from lrkit.toy.pretrain import ToyModelSpec

    tiny = ToyModelSpec(hidden_size=32, num_layers=1, intermediate_size=64, num_heads=2, train_problems=0,
                        batch_size=8, warmup_steps=2)
    recipe = RECIPE.__class__(expert=tiny, amateur=tiny, amateur_general=16, expert_general=16,
                              expert_family=16, expert_replay=8, world=RECIPE.world)
    data = habit_pair_data(recipe, seed=0)
    assert [len(phase) for phase in data["amateur"]] == [16]
    assert [len(phase) for phase in data["expert"]] == [16, 24]
    assert all(p["id"].startswith("toy-G-") for p in data["amateur"][0] + data["expert"][0])
    continuation = data["expert"][1]
    assert sum(p["id"].startswith("toy-F-") for p in continuation) == 16  # the family, plus 8 replayed G

    first = build_habit_pair(tmp_path / "a", recipe=recipe, n_eval=4, n_validation=4, log=None)
    build_habit_pair(tmp_path / "b", recipe=recipe, n_eval=4, n_validation=4, log=None)
    for role in ("expert", "amateur"):
        assert (tmp_path / "a" / role / "model.safetensors").read_bytes() == \
            (tmp_path / "b" / role / "model.safetensors").read_bytes()
        assert AutoModelForCausalLM.from_pretrained(tmp_path / "a" / role).dtype == torch.float32
    recorded = json.loads((tmp_path / "a" / "build.json").read_text())
    assert recorded == json.loads(json.dumps(first))
    check = recorded["validation"]["gold_path_check"]
    assert check["problems"] == 4 and check["beta"] == 0.4 and check["alpha"] == 0.2
    assert recorded["models"]["expert"]["spec"]["train_problems"] == 40
    card = (tmp_path / "a" / "CARD.md").read_text()
    assert "lrkit build-toy --pair toy --out data/toy --seed 0" in card
    assert "Gold-path check" in card
