"""Loading models and expert-amateur pairs: Hub names, local folders, GGUF files.

Device and dtype are chosen automatically (bf16 where the GPU supports it, fp16
on other GPUs such as a Colab T4, fp32 on CPU) and can be overridden.
``trust_remote_code`` stays off unless asked for.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch

DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
          "float16": torch.float16, "fp32": torch.float32, "float32": torch.float32}


class PairError(ValueError):
    """An expert and an amateur that cannot be compared token for token."""


def choose_device(device: Union[str, torch.device, None] = None) -> torch.device:
    if device is not None and str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def choose_dtype(device: torch.device, dtype: Union[str, torch.dtype, None] = None) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is not None and dtype != "auto":
        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; use one of auto, {', '.join(sorted(DTYPES))}")
        return DTYPES[dtype]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def _gguf_location(name_or_path: str) -> tuple[str, Optional[str]]:
    path = Path(name_or_path)
    if path.suffix == ".gguf":
        return str(path.parent), path.name
    return name_or_path, None


GENERIC_TOKENIZER_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast")


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False):
    """The tokenizer of a model folder, Hub name or GGUF file.

    A folder whose tokenizer_config.json names the generic fast class is loaded
    with that class: AutoTokenizer would otherwise pick the model family's own
    class (e.g. Qwen2Tokenizer), which rebuilds a different pre-tokenizer.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    folder, gguf_file = _gguf_location(str(name_or_path))
    if gguf_file:
        return AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file,
                                             trust_remote_code=trust_remote_code)
    config_path = Path(folder) / "tokenizer_config.json"
    if config_path.is_file():
        declared = json.loads(config_path.read_text(encoding="utf-8")).get("tokenizer_class")
        if declared in GENERIC_TOKENIZER_CLASSES:
            return PreTrainedTokenizerFast.from_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)


def load_model(name_or_path, device=None, dtype=None, trust_remote_code: bool = False,
               with_tokenizer: bool = True):
    """(model, tokenizer) in eval mode on the chosen device and dtype.

    ``name_or_path`` may be a Hub name, a local folder, a ``.gguf`` file
    (dequantized by transformers) or a registered pair member such as
    ``toy:expert``.
    """
    from transformers import AutoModelForCausalLM

    name_or_path = resolve_member(str(name_or_path))
    device = choose_device(device)
    dtype = choose_dtype(device, dtype)
    folder, gguf_file = _gguf_location(name_or_path)
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype,
                                                 trust_remote_code=trust_remote_code, **kwargs)
    model.to(device).eval()
    tokenizer = load_tokenizer(name_or_path, trust_remote_code) if with_tokenizer else None
    return model, tokenizer


def resolve_member(name: str) -> str:
    """``PAIR:expert`` / ``PAIR:amateur`` name a member of a registered pair."""
    if ":" in name and not Path(name).exists():
        pair_name, member = name.rsplit(":", 1)
        if member in ("expert", "amateur"):
            from .pairs import resolve_pair

            expert, amateur = resolve_pair(pair_name)
            return str(expert if member == "expert" else amateur)
    return name


def output_rows(model) -> int:
    return int(model.get_output_embeddings().weight.shape[0])


def check_pair(expert_tokenizer, amateur_tokenizer, expert_model=None, amateur_model=None) -> int:
    """Check that both models can be read on the same token ids.

    Returns the number of ids to score (the tokenizer's length). The two
    tokenizers must map every id to the same string; output layers may be larger
    than the tokenizer (their extra rows are ignored) but never smaller.
    """
    n_expert, n_amateur = len(expert_tokenizer), len(amateur_tokenizer)
    expert_vocab = expert_tokenizer.convert_ids_to_tokens(list(range(n_expert)))
    amateur_vocab = amateur_tokenizer.convert_ids_to_tokens(list(range(n_amateur)))
    mismatched = [i for i, (a, b) in enumerate(zip(expert_vocab, amateur_vocab)) if a != b]
    if mismatched:
        shown = ", ".join(f"id {i}: expert {expert_vocab[i]!r} vs amateur {amateur_vocab[i]!r}"
                          for i in mismatched[:3])
        raise PairError(f"the expert's and the amateur's tokenizers disagree on {len(mismatched)} "
                        f"shared ids, first {shown}; lrkit needs one shared tokenizer")
    if n_expert != n_amateur:
        longer, first = ("expert", n_amateur) if n_expert > n_amateur else ("amateur", n_expert)
        raise PairError(f"the tokenizers differ in size (expert {n_expert}, amateur {n_amateur}): "
                        f"ids from {first} on exist only for the {longer}")
    for role, model in (("expert", expert_model), ("amateur", amateur_model)):
        if model is not None and output_rows(model) < n_expert:
            raise PairError(f"the {role}'s output layer has {output_rows(model)} rows, fewer than "
                            f"the tokenizer's {n_expert} ids")
    return n_expert


@dataclass
class ModelPair:
    expert: torch.nn.Module
    amateur: torch.nn.Module
    tokenizer: object
    """The expert's tokenizer; check_pair has shown the amateur's is the same."""
    vocab_size: int
    """Ids scored: the tokenizer's length (extra output rows are ignored)."""
    expert_name: str
    amateur_name: str

    @property
    def device(self) -> torch.device:
        return next(self.expert.parameters()).device


def load_pair(expert: str, amateur: Optional[str] = None, device=None, dtype=None,
              trust_remote_code: bool = False) -> ModelPair:
    """Load and check a pair. ``load_pair("toy")`` takes a registered pair by name."""
    if amateur is None:
        from .pairs import resolve_pair

        expert, amateur = resolve_pair(expert)
    expert, amateur = str(expert), str(amateur)
    expert_tokenizer = load_tokenizer(resolve_member(expert), trust_remote_code)
    amateur_tokenizer = load_tokenizer(resolve_member(amateur), trust_remote_code)
    check_pair(expert_tokenizer, amateur_tokenizer)
    expert_model, _ = load_model(expert, device, dtype, trust_remote_code, with_tokenizer=False)
    amateur_model, _ = load_model(amateur, device, dtype, trust_remote_code, with_tokenizer=False)
    vocab_size = check_pair(expert_tokenizer, amateur_tokenizer, expert_model, amateur_model)
    return ModelPair(expert_model, amateur_model, expert_tokenizer, vocab_size, expert, amateur)


def hide_library_chatter() -> None:
    """Hide transformers' per-load "Loading weights" bars and its deprecation
    warning for ``is_gradient_checkpointing`` (raised inside the Trainer and peft)."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated",
                            category=FutureWarning)
