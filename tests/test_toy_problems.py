"""The toy arithmetic family: GSM8K format, sound arithmetic, determinism, disjoint splits.

Expectations are recomputed here from the text of each problem (an equation
parser of the test's own), not taken from the generator's internals.
"""
import operator
import re

import pytest

from lrkit.toy.problems import SPLITS, generate_problems, split_of_answer

EQUATION = re.compile(r"^(.*?)(\d+) ([-+*/]) (\d+) = (\d+)(\D*)$")
OPERATIONS = {"+": operator.add, "-": operator.sub, "*": operator.mul}


def worked_steps(answer: str) -> tuple[list[tuple[int, str, int, int]], int]:
    """The (left, op, right, result) of each worked line, and the number after ####."""
    lines = answer.split("\n")
    final = re.fullmatch(r"#### (\d+)", lines[-1])
    assert final, f"last line is not '#### N': {lines[-1]!r}"
    steps = []
    for line in lines[:-1]:
        match = EQUATION.match(line)
        if match:
            _, left, op, right, result, _ = match.groups()
            steps.append((int(left), op, int(right), int(result)))
        else:  # only a plain statement of the starting amount carries no equation
            assert "=" not in line and line.endswith("."), line
    return steps, int(final.group(1))


def recompute(left: int, op: str, right: int) -> int:
    if op == "/":
        assert right > 0 and left % right == 0, f"{left} / {right} is not a whole division"
        return left // right
    return OPERATIONS[op](left, right)


@pytest.fixture(scope="module")
def problems_by_split():
    return {split: generate_problems(600, split, seed=0) for split in SPLITS}


def test_problems_have_gsm8k_fields_and_unique_ids(problems_by_split):
    for split, problems in problems_by_split.items():
        assert len(problems) == 600
        assert all(set(p) == {"id", "question", "answer"} for p in problems)
        assert all(isinstance(p[k], str) and p[k] for p in problems for k in p)
        assert len({p["id"] for p in problems}) == len(problems)
        assert len({p["question"] for p in problems}) == len(problems)


def test_worked_steps_are_sound_and_the_final_answer_is_their_result(problems_by_split):
    step_counts, ops = set(), set()
    for problems in problems_by_split.values():
        for problem in problems:
            steps, final = worked_steps(problem["answer"])
            assert 2 <= len(steps) <= 4, problem["answer"]
            for i, (left, op, right, result) in enumerate(steps):
                assert recompute(left, op, right) == result, problem["answer"]
                assert result >= 0
                if i > 0:  # a chain: each step works on the previous result
                    assert left == steps[i - 1][3], problem["answer"]
            assert final == steps[-1][3]
            step_counts.add(len(steps))
            ops |= {op for _, op, _, _ in steps}
    assert step_counts == {2, 3, 4}
    assert ops == {"+", "-", "*", "/"}


def test_questions_state_every_given_number_and_only_integers(problems_by_split):
    for problem in problems_by_split["test"]:
        question = problem["question"]
        assert not re.search(r"\d[.,]\d", question), question
        stated = {int(n) for n in re.findall(r"\d+", question)}
        steps, _ = worked_steps(problem["answer"])
        given = {right for _, _, right, _ in steps}
        first_line = problem["answer"].split("\n")[0]
        given |= {int(n) for n in re.findall(r"\d+", first_line.split("=")[0])}
        assert given <= stated, (question, problem["answer"])
        assert max(stated) <= 100


def test_several_story_templates_are_used(problems_by_split):
    # The asked quantity ("How many apples does ...") names the story's subject.
    subjects = {re.search(r"How many (\w+)", p["question"]).group(1)
                for p in problems_by_split["train"]}
    assert len(subjects) >= 5, subjects


def test_same_seed_gives_the_same_problems():
    assert generate_problems(200, "test", seed=3) == generate_problems(200, "test", seed=3)
    assert generate_problems(50, "train", seed=3) == generate_problems(200, "train", seed=3)[:50]


def test_different_seeds_give_different_problems():
    first = {p["question"] for p in generate_problems(200, "train", seed=0)}
    second = {p["question"] for p in generate_problems(200, "train", seed=1)}
    assert len(first & second) < 10


def test_splits_never_share_a_computation_or_a_question():
    pools = {split: generate_problems(1500, split, seed=seed)
             for split, seed in (("train", 0), ("validation", 1), ("test", 2))}
    computations = {split: {tuple(worked_steps(p["answer"])[0]) for p in problems}
                    for split, problems in pools.items()}
    questions = {split: {p["question"] for p in problems} for split, problems in pools.items()}
    for a, b in (("train", "test"), ("train", "validation"), ("validation", "test")):
        assert not computations[a] & computations[b], (a, b)
        assert not questions[a] & questions[b], (a, b)
    # Splitting is a function of the computation only, recoverable from any answer.
    for split, problems in pools.items():
        assert {split_of_answer(p["answer"]) for p in problems} == {split}


def test_test_split_is_a_sizeable_share_of_all_computations():
    # Generated without a split filter, about 20% of computations must hash into test.
    from lrkit.toy import problems as family
    import random
    rng = random.Random(0)
    splits = []
    for _ in range(1000):
        story = rng.choice(family.STORIES)
        _, steps = family._sample_computation(story, rng, family.Difficulty())
        splits.append(family.split_of_computation([s.equation for s in steps]))
    assert 0.15 < splits.count("test") / len(splits) < 0.25


def test_rejects_unknown_split():
    with pytest.raises(ValueError, match="split"):
        generate_problems(1, "dev")
