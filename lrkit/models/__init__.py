"""Models: loading (loading: load_model, load_pair, ModelPair, ...), generation, prompts,
the pair registry (pairs) and the GGUF transport of the offline pair (gguf).

The package hands out the public names of :mod:`lrkit.models.loading`
(``from lrkit.models import load_pair``), importing it (and torch) only on first use.
"""
from __future__ import annotations

import importlib

_LOADING = (
    "check_local_or_hub",
    "check_pair",
    "check_prompt_lengths",
    "choose_device",
    "choose_dtype",
    "context_length",
    "decoder_and_head",
    "fit_answer_limit",
    "DTYPES",
    "GENERIC_TOKENIZER_CLASSES",
    "hide_library_chatter",
    "load_model",
    "load_pair",
    "load_tokenizer",
    "ModelNotFoundError",
    "ModelPair",
    "native_bf16",
    "output_rows",
    "PairError",
    "PLACEHOLDER_TOKEN",
    "PRECISION_NAMES",
    "PromptTooLongError",
    "resolve_member",
    "scored_vocab_size",
)
__all__ = list(_LOADING)


def __getattr__(name: str):
    if name in _LOADING:
        return getattr(importlib.import_module("lrkit.models.loading"), name)
    raise AttributeError(f"module 'lrkit.models' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LOADING))
