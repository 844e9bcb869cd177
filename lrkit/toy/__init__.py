"""The bundled toy pairs, their problem families and tokenizer, and the code
that trains them from scratch (see data/toy/CARD.md and data/toy-shared/CARD.md).

* ``toy`` (default): the habit world (:mod:`lrkit.toy.habits`). A general corpus
  G answers by shallow rules; the amateur learned G only, the expert G and then
  the arithmetic family. The method works on it.
* ``toy-shared`` (the control): both models learned the same arithmetic family
  (:mod:`lrkit.toy.problems`). The method fails on it.

The problem families import nothing heavy; the tokenizer and training names
load torch and transformers on first use.
"""
from importlib import import_module

from lrkit.toy.problems import Difficulty, final_answer, generate_problems, split_of_answer

TOY_PAIRS = ("toy", "toy-shared")
"""The bundled pairs, default first."""

_LAZY = {
    "train_toy_tokenizer": "lrkit.toy.tokenizer", "CHAT_TEMPLATE": "lrkit.toy.tokenizer",
    "build_toy_pair": "lrkit.toy.pretrain",
    "toy_pair_paths": "lrkit.toy.pretrain", "evaluate_toy": "lrkit.toy.pretrain",
    "extract_toy_answer": "lrkit.toy.pretrain", "ToyModelSpec": "lrkit.toy.pretrain",
    "EXPERT": "lrkit.toy.pretrain", "AMATEUR": "lrkit.toy.pretrain",
    "generate_habit_problems": "lrkit.toy.habits", "HabitWorld": "lrkit.toy.habits",
}

__all__ = ["generate_problems", "final_answer", "split_of_answer", "Difficulty", "TOY_PAIRS",
           "toy_problems", *_LAZY]


def toy_problems(pair: str, n: int, split: str = "train", seed: int = 0) -> list[dict]:
    """``n`` problems of the family a bundled pair was built for (seeded; splits
    disjoint by computation): the habit family for ``toy``, the arithmetic
    family for ``toy-shared``."""
    if pair == "toy":
        from lrkit.toy.habits import generate_habit_problems

        return generate_habit_problems(n, split, seed=seed)
    if pair == "toy-shared":
        return generate_problems(n, split, seed=seed)
    raise ValueError(f"{pair!r} is not a bundled toy pair; those are {', '.join(TOY_PAIRS)}")


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lrkit.toy' has no attribute {name!r}")
