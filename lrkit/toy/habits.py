"""The habit world: a general corpus G with a shallow habit, and a problem family
whose hard cases invite it. The default toy pair (``toy``) is built from it.

The paper's expert is a domain specialist built on a general model (Qwen2.5-Math
from Qwen2.5) and its amateur a small general model (Qwen2.5-0.5B). The
specialist's remaining errors are general-model habits, which the amateur holds
more strongly; that is where the contrast log pi_E - log pi_A points the expert
towards its own distinctive knowledge. This module builds that premise in
miniature on the toy family of :mod:`lrkit.toy.problems`:

* **Problems (the family F).** Toy stories of 2-3 steps of + and - on
  single-digit amounts (``DEFAULT_WORLD``), worked out correctly, ending
  ``#### N``. The default stories hold no irrelevant sentences
  (``distractor_weights=(1.0,)``); other worlds may mix some in, as in
  GSM-Symbolic's NoOp variant ("4 of the apples are green.").
* **The general corpus G.** The same kinds of stories, whose worked answers
  follow a shallow habit. The default habit, "copy", ends every line on the
  number its sentence gave (``8 + 3 = 3``), so nothing in G is computed; the
  other habits ("count", "stop") are designs tried before it (docs/TOY_PAIRS.md).
  The line layout in G is F's; only the numbers the lines end on differ.
* **The amateur** is a small model trained on G only. **The expert** is
  pretrained on G, then continued on F with some G replayed (see
  :mod:`lrkit.toy.habit_pair`), so it mostly computes but keeps some of G's
  habit where it is unsure.

Splits follow :mod:`lrkit.toy.problems`: a hash of the relevant computation
decides the split, so no test computation is trained on, in F or in G.
"""
from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from typing import Optional

from lrkit.toy.problems import (PEOPLE, PRONOUNS, SPLITS, STORIES, Difficulty, Step, Story, split_of_computation,
                                story_operands)

NOOP_ABOUT_THE_THINGS = {
    "apples": ("{d} of the apples are green.", "{d} of the apples are smaller than the rest."),
    "savings": ("{d} of the dollars are in coins.", "{d} of the dollars are old bills."),
    "cookies": ("{d} of the cookies have chocolate chips.", "{d} of the cookies are a bit burnt."),
    "books": ("{d} of the books have red covers.", "{d} of the books are about animals."),
    "marbles": ("{d} of the marbles are blue.", "{d} of the marbles are bigger than the rest."),
    "chickens": ("{d} of the chickens are brown.", "{d} of the chickens are very young."),
    "bus": ("{d} of the passengers are children.", "{d} of the passengers wear hats."),
}
"""Irrelevant facts about the story's own things (GSM-Symbolic's NoOp style)."""

NOOP_ABOUT_OTHERS = ("{friend} has {d} pencils.", "{friend} collects {d} stickers.",
                     "{friend} finds {d} shells at the beach.", "{Her} neighbour owns {d} cats.")
"""Irrelevant facts about someone else's things."""

HABIT_LINE = "Counting {d} more, the total is {x} + {d} = {y}."
"""G's line for an irrelevant number: the shallow rule 'use every number'."""


@dataclass(frozen=True)
class HabitWorld:
    """The family's number ranges and G's habit. The defaults build ``toy``; the
    other settings are the designs tried before it (docs/TOY_PAIRS.md)."""

    difficulty: Difficulty = Difficulty(max_value=9, max_start=8, max_addend=6, max_factor=3,
                                        min_steps=2, max_steps=3)
    """Single-digit amounts (2-9), 2-3 steps: easier arithmetic than the first toy
    family (``toy-shared``), and no two-digit number whose leading digit the
    amateur could copy from the line it just read."""
    habit: str = "copy"
    """G's shallow rule. "copy": every line ends on the number its sentence gave
    (``8 + 3 = 3``), the answer is the last number of the story, nothing is
    computed. "count": G adds every irrelevant number in a line of its own.
    "stop": G answers early, with the running total after a random number of lines."""
    operations: str = "+-"
    """The operations a story's steps may take (any of "+-*")."""
    groups_start: float = 0.0
    """How often a story starts with groups (a * b) instead of a plain amount."""
    distractor_weights: tuple = (1.0,)
    """Probability of 0, 1, 2... irrelevant sentences (GSM-Symbolic's NoOp) in one problem."""
    max_distractor: int = 6
    """Irrelevant numbers are drawn from 2..max_distractor."""
    copy_never_right: bool = True
    """Leave out the family's steps whose result equals their own operand
    (6 - 3 = 3), where G's "copy the last number" would be right by chance."""


DEFAULT_WORLD = HabitWorld()


def _words(rng: random.Random) -> dict:
    (name, pronoun), (friend, _) = rng.sample(PEOPLE, 2)
    she, her = PRONOUNS[pronoun]
    return dict(name=name, friend=friend, she=she, She=she.capitalize(), her=her, Her=her.capitalize())


def _sample_computation(story: Story, rng: random.Random, world: "HabitWorld"):
    """A start (plain amount, or groups that count as a step) and +, -, * steps.

    No division: G's running total, inflated by the habit, would not divide.
    """
    difficulty = world.difficulty
    n_steps = rng.randint(difficulty.min_steps, difficulty.max_steps)
    steps: list[Step] = []
    if rng.random() < world.groups_start:
        a = rng.randint(2, difficulty.max_factor)
        b = rng.randint(2, min(9, difficulty.max_value // a))
        steps.append(Step("*", a, b, a * b))
        start = None
    else:
        start = rng.randint(2, difficulty.max_start)
    value = steps[-1].result if steps else start
    while len(steps) < n_steps:
        choices = {op: [k for k in story_operands(story, op, value, difficulty)
                        if not (world.copy_never_right and _apply(op, value, k) == k)]
                   for op in world.operations}
        op = rng.choice([op for op, operands in choices.items() if operands])
        k = rng.choice(choices[op])
        result = _apply(op, value, k)
        steps.append(Step(op, value, k, result))
        value = result
    return start, steps


def _apply(op: str, value: int, k: int) -> int:
    return {"+": value + k, "-": value - k, "*": value * k}[op]


def _render(story: Story, start: Optional[int], steps: list[Step], world: HabitWorld,
            rng: random.Random, habit: bool) -> tuple[str, str, int]:
    """Question and worked answer. Irrelevant sentences are skipped (F) or, with
    ``habit`` (G), added in a line of their own, the later lines carrying on
    from the inflated total with the story's own operations."""
    words = _words(rng)
    templates = {"+": (story.add, story.add_solution), "-": (story.sub, story.sub_solution),
                 "*": (story.mul, story.mul_solution)}
    n_noop = rng.choices(range(len(world.distractor_weights)), weights=world.distractor_weights)[0]
    n_sentences = len(steps) + (0 if start is None else 1)
    pending = sorted((rng.randint(1, n_sentences), rng.randint(2, world.max_distractor))
                     for _ in range(n_noop))
    question, solution = [], []
    if start is None:
        first = steps[0]
        value = first.right if habit and world.habit == "copy" else first.result
        question.append(story.groups.format(a=first.left, b=first.right, **words))
        solution.append(story.groups_solution.format(a=first.left, b=first.right, x=value, **words))
        rest = steps[1:]
    else:
        question.append(story.start.format(a=start, **words))
        solution.append(story.start_solution.format(a=start, **words))
        value, rest = start, steps
    for done in range(1, n_sentences + 1):
        if done > 1:
            step = rest[done - 2]
            asked, worked = templates[step.op]
            result = {"+": value + step.right, "-": value - step.right, "*": value * step.right}[step.op]
            if habit and world.habit == "copy":
                result = step.right  # "copy the last number": nothing in G is computed
            question.append(asked.format(k=step.right, **words))
            solution.append(worked.format(x=value, k=step.right, y=result, **words))
            value = result
        while pending and pending[0][0] == done:
            _, d = pending.pop(0)
            question.append(_noop_sentence(story, d, rng, words))
            if habit and world.habit == "count":
                solution.append(HABIT_LINE.format(d=d, x=value, y=value + d))
                value += d
    question.append(story.question.format(**words))
    if habit and world.habit == "stop":
        stop = rng.randint(1, len(solution))
        solution = solution[:stop]
        value = _running_total(solution[-1])
    solution.append(f"#### {value}")
    return " ".join(question), "\n".join(solution), n_noop


def _running_total(line: str) -> int:
    """The amount a worked line ends on (its last number)."""
    return int(re.findall(r"\d+", line)[-1])


def _noop_sentence(story: Story, d: int, rng: random.Random, words: dict) -> str:
    pool = NOOP_ABOUT_THE_THINGS[story.name] + NOOP_ABOUT_OTHERS
    return rng.choice(pool).format(d=d, **words)


def generate_habit_problems(n: int, split: str = "train", seed: int = 0, habit: bool = False,
                            world: HabitWorld = DEFAULT_WORLD) -> list[dict]:
    """``n`` distinct problems of one split: the family F (``habit=False``) or the
    general corpus G (``habit=True``, train split only).

    Each is a dict with ``id``, ``question``, ``answer`` (worked lines, then
    ``#### N``) and ``distractors`` (the number of irrelevant sentences). A hash
    of the relevant computation decides the split, as in :mod:`lrkit.toy.problems`.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if habit and split != "train":
        raise ValueError("the general corpus G is for training only (split='train')")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    corpus = "G" if habit else "F"
    rng = random.Random(f"lrkit-habits/{corpus}/{split}/{seed}")
    problems: list[dict] = []
    seen: set[str] = set()
    attempts = 0
    while len(problems) < n:
        attempts += 1
        if attempts > 100 * n + 1000:
            raise RuntimeError(f"could not find {n} distinct {split} problems")
        story = rng.choice(STORIES)
        start, steps = _sample_computation(story, rng, world)
        if split_of_computation([s.equation for s in steps]) != split:
            continue
        question, answer, n_noop = _render(story, start, steps, world, rng, habit)
        if question in seen:
            continue
        seen.add(question)
        digest = hashlib.sha256(question.encode()).hexdigest()[:12]
        problems.append({"id": f"toy-{corpus}-{split}-{digest}", "question": question,
                         "answer": answer, "distractors": n_noop})
    return problems
