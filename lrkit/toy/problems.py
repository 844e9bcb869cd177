"""A grade-school arithmetic word-problem family in GSM8K's format, written for lrkit.

Each problem is a short story about one person and one kind of thing (apples,
dollars, cookies, ...). It takes 2-4 arithmetic steps; every operand is a small
integer and every intermediate result a non-negative integer of at most
``Difficulty.max_value``. The worked answer has one sentence per step, each
holding its equation (``7 + 5 = 12``), and ends with ``#### N`` like GSM8K (no
``<<...>>`` calculator notes, to keep sequences short for small models).

Splits are disjoint by construction. A problem's *computation* is the sequence
of equations in its worked answer; a hash of that sequence alone, never the
story, names, seed or split asked for, decides the split. So one computation
lands in one split whatever story it is told in, and ``split_of_answer`` can
check any problem from its text. ``validation`` is a slice of the train side
held out from pretraining, used to tune the bundled pair.
"""
from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from typing import Optional

SPLITS = ("train", "validation", "test")
_SPLIT_BUCKETS = {"test": range(0, 20), "validation": range(20, 25), "train": range(25, 100)}
"""Out of 100 hash buckets: 20% of computations are test, 5% validation, 75% train."""

EQUATION = re.compile(r"(\d+) ([-+*/]) (\d+) = (\d+)")
FINAL_ANSWER = re.compile(r"#### (\d+)\s*$")


@dataclass(frozen=True)
class Difficulty:
    """Number ranges of the family; the defaults are the ones the bundled pair learned."""

    max_value: int = 30
    """Largest value any quantity may take."""
    max_start: int = 15
    """Largest plain starting amount."""
    max_addend: int = 9
    """Largest amount added or taken away in one step."""
    max_factor: int = 5
    """Largest multiplier or divisor (the smallest is 2)."""
    min_steps: int = 2
    max_steps: int = 4


@dataclass(frozen=True)
class Story:
    """One story template. Sentences use {name}, {friend}, {a}, {b}, {k}, {x}, {y}
    and pronouns ({she}/{She}, {her}/{Her}); ``None`` means the story has no such step."""

    name: str
    start: str
    start_solution: str
    groups: str
    groups_solution: str
    add: str
    add_solution: str
    sub: str
    sub_solution: str
    mul: Optional[str]
    mul_solution: Optional[str]
    div: Optional[str]
    div_solution: Optional[str]
    question: str


STORIES = (
    Story(
        name="apples",
        start="{name} has {a} apples.",
        start_solution="{name} starts with {a} apples.",
        groups="{name} has {a} bags with {b} apples in each bag.",
        groups_solution="{name} starts with {a} * {b} = {x} apples.",
        add="{She} picks {k} more apples.",
        add_solution="After picking {k} more, {she} has {x} + {k} = {y} apples.",
        sub="{She} gives {k} apples to {friend}.",
        sub_solution="After giving {k} to {friend}, {she} has {x} - {k} = {y} apples.",
        mul="Then {her} number of apples becomes {k} times as large.",
        mul_solution="Now {she} has {x} * {k} = {y} apples.",
        div="{She} splits the apples equally into {k} baskets and keeps only one basket.",
        div_solution="One basket holds {x} / {k} = {y} apples.",
        question="How many apples does {name} have now?",
    ),
    Story(
        name="savings",
        start="{name} has {a} dollars in a piggy bank.",
        start_solution="{name} starts with {a} dollars.",
        groups="{name} saves {b} dollars a week for {a} weeks.",
        groups_solution="{name} saves {a} * {b} = {x} dollars.",
        add="{She} earns {k} dollars for washing cars.",
        add_solution="After earning {k} dollars, {she} has {x} + {k} = {y} dollars.",
        sub="{She} spends {k} dollars on a book.",
        sub_solution="After spending {k} dollars, {she} has {x} - {k} = {y} dollars.",
        mul="{Her} grandmother makes {her} savings {k} times as large.",
        mul_solution="With the gift, {she} has {x} * {k} = {y} dollars.",
        div="{She} splits the money equally into {k} envelopes and keeps only one envelope.",
        div_solution="One envelope holds {x} / {k} = {y} dollars.",
        question="How many dollars does {name} have now?",
    ),
    Story(
        name="cookies",
        start="{name} bakes {a} cookies.",
        start_solution="{name} starts with {a} cookies.",
        groups="{name} bakes {a} trays with {b} cookies on each tray.",
        groups_solution="{name} bakes {a} * {b} = {x} cookies.",
        add="{She} bakes {k} more cookies.",
        add_solution="After baking {k} more, {she} has {x} + {k} = {y} cookies.",
        sub="{Her} friend {friend} eats {k} of the cookies.",
        sub_solution="After {friend} eats {k}, {she} has {x} - {k} = {y} cookies.",
        mul="For a party, {she} makes the number of cookies {k} times as large.",
        mul_solution="For the party, {she} has {x} * {k} = {y} cookies.",
        div="{She} packs the cookies equally into {k} boxes and keeps only one box.",
        div_solution="One box holds {x} / {k} = {y} cookies.",
        question="How many cookies does {name} have now?",
    ),
    Story(
        name="books",
        start="{name} has {a} books on a shelf.",
        start_solution="{name} starts with {a} books.",
        groups="{name} has {a} shelves with {b} books on each shelf.",
        groups_solution="{name} has {a} * {b} = {x} books.",
        add="{She} buys {k} new books.",
        add_solution="After buying {k} books, {she} has {x} + {k} = {y} books.",
        sub="{She} lends {k} books to {friend}.",
        sub_solution="After lending {k} to {friend}, {she} has {x} - {k} = {y} books.",
        mul=None,
        mul_solution=None,
        div="{She} sorts the books equally into {k} boxes and keeps only one box.",
        div_solution="One box holds {x} / {k} = {y} books.",
        question="How many books does {name} have now?",
    ),
    Story(
        name="marbles",
        start="{name} has {a} marbles.",
        start_solution="{name} starts with {a} marbles.",
        groups="{name} has {a} jars with {b} marbles in each jar.",
        groups_solution="{name} starts with {a} * {b} = {x} marbles.",
        add="{She} wins {k} marbles from {friend}.",
        add_solution="After winning {k}, {she} has {x} + {k} = {y} marbles.",
        sub="{She} loses {k} marbles in a game.",
        sub_solution="After losing {k}, {she} has {x} - {k} = {y} marbles.",
        mul="{Her} collection then grows to {k} times its size.",
        mul_solution="The collection grows to {x} * {k} = {y} marbles.",
        div=None,
        div_solution=None,
        question="How many marbles does {name} have now?",
    ),
    Story(
        name="chickens",
        start="{name} has {a} chickens on a farm.",
        start_solution="{name} starts with {a} chickens.",
        groups="{name} has {a} coops with {b} chickens in each coop.",
        groups_solution="{name} has {a} * {b} = {x} chickens.",
        add="{She} buys {k} more chickens at the market.",
        add_solution="After buying {k}, {she} has {x} + {k} = {y} chickens.",
        sub="{She} sells {k} chickens to {friend}.",
        sub_solution="After selling {k} to {friend}, {she} has {x} - {k} = {y} chickens.",
        mul="Over the summer the flock grows to {k} times its size.",
        mul_solution="The flock grows to {x} * {k} = {y} chickens.",
        div="{She} divides the chickens equally among {k} farms and keeps only one share.",
        div_solution="One share is {x} / {k} = {y} chickens.",
        question="How many chickens does {name} have now?",
    ),
    Story(
        name="bus",
        start="{name} drives a bus with {a} passengers.",
        start_solution="The bus starts with {a} passengers.",
        groups="{name} drives a bus with {a} rows of {b} passengers.",
        groups_solution="The bus starts with {a} * {b} = {x} passengers.",
        add="At the next stop, {k} people get on.",
        add_solution="After {k} get on, there are {x} + {k} = {y} passengers.",
        sub="At the next stop, {k} people get off.",
        sub_solution="After {k} get off, there are {x} - {k} = {y} passengers.",
        mul=None,
        mul_solution=None,
        div=None,
        div_solution=None,
        question="How many passengers are on {name}'s bus now?",
    ),
)

PEOPLE = (
    ("Mia", "she"), ("Liam", "he"), ("Ava", "she"), ("Noah", "he"), ("Emma", "she"),
    ("Leo", "he"), ("Zoe", "she"), ("Omar", "he"), ("Lena", "she"), ("Ravi", "he"),
    ("Sara", "she"), ("Tom", "he"), ("Ines", "she"), ("Ben", "he"), ("Yuki", "she"),
    ("Kofi", "he"), ("Nora", "she"), ("Sam", "he"), ("Ana", "she"), ("Max", "he"),
)
PRONOUNS = {"she": ("she", "her"), "he": ("he", "his")}


@dataclass(frozen=True)
class Step:
    op: str  # "+", "-", "*", "/"
    left: int
    right: int
    result: int

    @property
    def equation(self) -> str:
        return f"{self.left} {self.op} {self.right} = {self.result}"


def computation_key(equations: list[str]) -> str:
    return "; ".join(equations)


def split_of_computation(equations: list[str]) -> str:
    """The split a sequence of equations belongs to (the only thing that decides it)."""
    digest = hashlib.sha256(computation_key(equations).encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % 100
    return next(split for split, buckets in _SPLIT_BUCKETS.items() if bucket in buckets)


def equations_of_answer(answer: str) -> list[str]:
    return [" ".join(m.groups()[:3]) + f" = {m.group(4)}" for m in EQUATION.finditer(answer)]


def split_of_answer(answer: str) -> str:
    """Recover a problem's split from its worked answer alone."""
    return split_of_computation(equations_of_answer(answer))


def story_operands(story: Story, op: str, value: int, difficulty: Difficulty) -> list[int]:
    """Every operand the story allows for ``op`` from ``value`` under the difficulty's limits.

    Results stay at least 2 so that no story ends with "1 apples" or an empty bus.
    """
    factors = range(2, difficulty.max_factor + 1)
    if op == "+":
        return list(range(1, min(difficulty.max_addend, difficulty.max_value - value) + 1))
    if op == "-":
        return list(range(1, min(difficulty.max_addend, value - 2) + 1))
    if op == "*":
        return [k for k in factors if story.mul and value * k <= difficulty.max_value]
    if op == "/":
        return [k for k in factors if story.div and value % k == 0 and value // k >= 2]
    raise ValueError(op)


def _pick_step(story: Story, value: int, rng: random.Random, difficulty: Difficulty) -> Step:
    # Choose the kind of operation first, then its operand, so that the many
    # possible addends do not crowd out the few multiplications and divisions.
    choices = {op: story_operands(story, op, value, difficulty) for op in "+-*/"}
    op = rng.choice([op for op, operands in choices.items() if operands])
    k = rng.choice(choices[op])
    result = {"+": value + k, "-": value - k, "*": value * k, "/": value // k}[op]
    return Step(op, value, k, result)


def _sample_computation(story: Story, rng: random.Random, difficulty: Difficulty):
    """A start (plain amount, or a product of groups that counts as a step) and the steps."""
    n_steps = rng.randint(difficulty.min_steps, difficulty.max_steps)
    steps: list[Step] = []
    if rng.random() < 0.4:
        a = rng.randint(2, difficulty.max_factor)
        b = rng.randint(2, min(12, difficulty.max_value // a))
        steps.append(Step("*", a, b, a * b))
        start = None
    else:
        start = rng.randint(2, difficulty.max_start)
    value = steps[-1].result if steps else start
    while len(steps) < n_steps:
        step = _pick_step(story, value, rng, difficulty)
        steps.append(step)
        value = step.result
    return start, steps


def _render(story: Story, start: Optional[int], steps: list[Step], rng: random.Random) -> tuple[str, str]:
    (name, pronoun), (friend, _) = rng.sample(PEOPLE, 2)
    she, her = PRONOUNS[pronoun]
    words = dict(name=name, friend=friend, she=she, She=she.capitalize(), her=her, Her=her.capitalize())
    templates = {"+": (story.add, story.add_solution), "-": (story.sub, story.sub_solution),
                 "*": (story.mul, story.mul_solution), "/": (story.div, story.div_solution)}
    if start is None:
        first = steps[0]
        sentences = [story.groups.format(a=first.left, b=first.right, **words)]
        solution = [story.groups_solution.format(a=first.left, b=first.right, x=first.result, **words)]
        rest = steps[1:]
    else:
        sentences = [story.start.format(a=start, **words)]
        solution = [story.start_solution.format(a=start, **words)]
        rest = steps
    for step in rest:
        asked, worked = templates[step.op]
        sentences.append(asked.format(k=step.right, **words))
        solution.append(worked.format(x=step.left, k=step.right, y=step.result, **words))
    sentences.append(story.question.format(**words))
    solution.append(f"#### {steps[-1].result}")
    return " ".join(sentences), "\n".join(solution)


def generate_problems(n: int, split: str = "train", seed: int = 0,
                      difficulty: Difficulty = Difficulty()) -> list[dict]:
    """``n`` distinct problems of one split, the same for the same arguments.

    Each is a dict with ``id``, ``question`` and ``answer`` (worked steps, then
    ``#### N``). Problems are drawn at random and kept only when their
    computation hashes into ``split``; questions never repeat within one call.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(f"lrkit-toy/{split}/{seed}")
    problems: list[dict] = []
    seen: set[str] = set()
    attempts = 0
    while len(problems) < n:
        attempts += 1
        if attempts > 100 * n + 1000:
            raise RuntimeError(f"could not find {n} distinct {split} problems; "
                               f"the difficulty leaves too few")
        story = rng.choice(STORIES)
        start, steps = _sample_computation(story, rng, difficulty)
        if split_of_computation([s.equation for s in steps]) != split:
            continue
        question, answer = _render(story, start, steps, rng)
        if question in seen:
            continue
        seen.add(question)
        digest = hashlib.sha256(question.encode()).hexdigest()[:12]
        problems.append({"id": f"toy-{split}-{digest}", "question": question, "answer": answer})
    return problems


def final_answer(answer: str) -> int:
    """The number after ``####`` in a worked answer of this family."""
    match = FINAL_ANSWER.search(answer)
    if not match:
        raise ValueError(f"no '#### N' at the end of {answer[-40:]!r}")
    return int(match.group(1))
