"""The bundled toy pair: an arithmetic word-problem family, its tokenizer, and the
from-scratch expert and amateur trained on it (see data/toy/CARD.md).

The problem family imports nothing heavy; the tokenizer and training names load
torch and transformers on first use.
"""
from importlib import import_module

from lrkit.toy.problems import Difficulty, final_answer, generate_problems, split_of_answer

_LAZY = {
    "train_toy_tokenizer": "lrkit.toy.tokenizer", "CHAT_TEMPLATE": "lrkit.toy.tokenizer",
    "build_toy_pair": "lrkit.toy.pretrain",
    "toy_pair_paths": "lrkit.toy.pretrain", "evaluate_toy": "lrkit.toy.pretrain",
    "extract_toy_answer": "lrkit.toy.pretrain", "ToyModelSpec": "lrkit.toy.pretrain",
    "EXPERT": "lrkit.toy.pretrain", "AMATEUR": "lrkit.toy.pretrain",
}

__all__ = ["generate_problems", "final_answer", "split_of_answer", "Difficulty", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lrkit.toy' has no attribute {name!r}")
