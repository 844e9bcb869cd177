"""Loading models and expert-amateur pairs: Hub names, local folders, GGUF files.

Device and dtype are chosen automatically (bf16 where the GPU supports it, fp16
on other GPUs such as a Colab T4, fp32 on CPU) and can be overridden.
``trust_remote_code`` stays off unless asked for.
"""
from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

import torch

DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
          "float16": torch.float16, "fp32": torch.float32, "float32": torch.float32}
PRECISION_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}


def decoder_and_head(model):
    """The decoder (its output: the last hidden states, final norm applied) and the
    output layer of a causal LM, through DDP and peft wrappers, when its logits are a
    plain linear map of the last hidden state; None for models that scale or cap
    their logits (their full forward must be used)."""
    while hasattr(model, "module"):  # DDP
        model = model.module
    if hasattr(model, "get_base_model"):  # peft
        model = model.get_base_model()
    config = model.config
    if any(getattr(config, name, None) not in (None, 1.0, 0.0)
           for name in ("final_logit_softcapping", "logit_scale", "logits_scaling")):
        return None
    try:
        decoder, head = model.get_decoder(), model.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    if decoder is None or head is None or decoder is model:
        return None
    return decoder, head


class PairError(ValueError):
    """An expert and an amateur that cannot be compared token for token."""


@contextlib.contextmanager
def torch_threads(threads: Optional[int]) -> Iterator[int]:
    """Run the block with torch using ``threads`` intra-op threads (None or 0: as it is),
    and give the previous number back afterwards, error or not. Yields the number in use.
    On a shared 2-core machine two threads that wait on each other run several times
    slower than one, so the toy builds and the study take one by default."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)


def choose_device(device: Union[str, torch.device, None] = None) -> torch.device:
    if device is not None and str(device) != "auto":
        try:
            chosen = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(f"--device {device!r}: not a device name (use auto, cpu, cuda, cuda:1, mps...)") from None
        if chosen.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {device}: CUDA is not available on this machine; "
                             f"use --device cpu (or auto)")
        if chosen.type == "cuda" and chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        if chosen.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"--device {device}: MPS is not available on this machine; use --device cpu")
        return chosen
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
        return torch.bfloat16 if native_bf16(device) else torch.float16
    return torch.float32


def native_bf16(device: torch.device) -> bool:
    """Whether the CUDA ``device`` computes in bf16 natively (compute capability 8.0 on:
    A100, H100, L4; or ROCm). ``torch.cuda.is_bf16_supported()`` alone also says yes on a
    T4 (7.5), where bf16 is emulated and slow: there fp16 is the half precision to use."""
    if torch.version.hip:
        return True
    index = device.index if device.index is not None else torch.cuda.current_device()
    return torch.cuda.get_device_capability(index)[0] >= 8


def _gguf_location(name_or_path: str) -> tuple[str, Optional[str]]:
    path = Path(name_or_path)
    if path.suffix == ".gguf":
        return str(path.parent), path.name
    return name_or_path, None


GENERIC_TOKENIZER_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast")
_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


class ModelNotFoundError(FileNotFoundError):
    """A model name that is neither a local folder or file nor a Hub name that loads."""


def check_local_or_hub(name_or_path: str) -> None:
    """Refuse a local path that does not exist before anything asks the Hub.

    Hub names have the form ``name`` or ``owner/name``. A missing path that
    cannot be a Hub name (absolute, ``./``, ``~``, more than one ``/``, a
    ``.gguf`` file), or whose first part is a folder here (``runs/merged``
    where ``runs/`` exists), is a mistyped local path: waiting for the Hub
    would only end in a message about the network.
    """
    path = Path(name_or_path).expanduser()
    if path.exists():
        return
    first = Path(name_or_path).parts[0] if Path(name_or_path).parts else ""
    looks_local = (not _HUB_NAME.fullmatch(name_or_path) or path.suffix == ".gguf"
                   or ("/" in name_or_path and Path(first).is_dir()))
    if looks_local:
        raise ModelNotFoundError(f"{name_or_path}: no such model folder or file")


def _from_hub_or_local(load, name_or_path: str, *args, **kwargs):
    """``load(name_or_path, ...)`` with the Hub's failure said in one line."""
    check_local_or_hub(name_or_path)
    try:
        return load(*args, **kwargs)
    except OSError as err:
        if Path(name_or_path).exists():
            raise
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelNotFoundError(f"{name_or_path}: not a local folder, and loading it as a Hub model "
                                 f"failed: {reason}") from None


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False):
    """The tokenizer of a model folder, Hub name or GGUF file.

    A folder whose tokenizer_config.json names the generic fast class is loaded
    with that class: AutoTokenizer would otherwise pick the model family's own
    class (e.g. Qwen2Tokenizer), which rebuilds a different pre-tokenizer.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    folder, gguf_file = _gguf_location(str(name_or_path))
    if gguf_file:
        return _from_hub_or_local(AutoTokenizer.from_pretrained, str(name_or_path), folder,
                                  gguf_file=gguf_file, trust_remote_code=trust_remote_code)
    config_path = Path(folder) / "tokenizer_config.json"
    if config_path.is_file():
        declared = json.loads(config_path.read_text(encoding="utf-8")).get("tokenizer_class")
        if declared in GENERIC_TOKENIZER_CLASSES:
            return PreTrainedTokenizerFast.from_pretrained(folder)
    return _from_hub_or_local(AutoTokenizer.from_pretrained, folder, folder,
                              trust_remote_code=trust_remote_code)


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
    model = _from_hub_or_local(AutoModelForCausalLM.from_pretrained, name_or_path, folder, dtype=dtype,
                               trust_remote_code=trust_remote_code, **kwargs)
    model.to(device).eval()
    tokenizer = load_tokenizer(name_or_path, trust_remote_code) if with_tokenizer else None
    return model, tokenizer


def resolve_member(name: str) -> str:
    """``PAIR:expert`` / ``PAIR:amateur`` name a member of a registered pair;
    ``ladder:NAME`` an amateur of the toy ladder (built by :mod:`lrkit.toy.ladder`;
    an unbuilt rung raises ValueError naming ``lrkit build-toy --ladder``)."""
    if name.startswith("ladder:") and not Path(name).exists():
        from lrkit.models.pairs import resolve_ladder_name

        return resolve_ladder_name(name)
    if ":" in name and not Path(name).exists():
        pair_name, member = name.rsplit(":", 1)
        if member in ("expert", "amateur"):
            from lrkit.models.pairs import resolve_pair

            expert, amateur = resolve_pair(pair_name)
            return str(expert if member == "expert" else amateur)
    return name


PLACEHOLDER_TOKEN = re.compile(r"\[PAD\d+\]")
"""Tokens that stand for no text: converters (e.g. GGUF -> transformers) name the
output layer's padding rows ``[PAD151665]`` ... so that every row has a token."""


def scored_vocab_size(tokenizer) -> int:
    """The ids lrkit scores: the tokenizer's length without a trailing run of
    placeholder tokens (``[PAD151665]`` ... ``[PAD151935]``).

    Placeholders are output padding, like rows beyond the tokenizer: they are
    never chosen, never in a mask, never in a KL, so a model loaded with and
    without them gives identical statistics.
    """
    n = len(tokenizer)
    while n > 0:
        token = tokenizer.convert_ids_to_tokens(n - 1)
        if not (isinstance(token, str) and PLACEHOLDER_TOKEN.fullmatch(token)):
            break
        n -= 1
    return n


def context_length(model) -> Optional[int]:
    """Positions the model was built for (``max_position_embeddings``), or None."""
    config = model.config
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    value = getattr(config, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else None


class PromptTooLongError(ValueError):
    """A prompt that, with the tokens to generate, does not fit the model's context."""


def check_prompt_lengths(prompts, problems, models, max_new_tokens: int, source: str = "") -> None:
    """Refuse any prompt that with ``max_new_tokens`` more tokens exceeds the
    context of one of ``models``: past it the model reads positions it never
    learned and writes junk (which sampling would turn into records)."""
    limits = [n for n in (context_length(m) for m in models) if n is not None]
    if not limits:
        return
    limit = min(limits)
    for prompt, problem in zip(prompts, problems):
        if len(prompt) + max_new_tokens > limit:
            where = f"{source}: " if source else ""
            raise PromptTooLongError(
                f"{where}problem {problem.id!r}: its prompt is {len(prompt)} tokens; with "
                f"--max-new-tokens {max_new_tokens} that exceeds the model's context of {limit} "
                f"positions; shorten the question or lower --max-new-tokens")


def fit_answer_limit(prompts, problems, models, requested: Optional[int], default: int, source: str = "",
                     flag: str = "--max-new-tokens") -> int:
    """The number of new tokens to generate: ``requested`` as given (a prompt it does not
    fit is refused, :func:`check_prompt_lengths`), or, when None, ``default`` capped to what
    the models' context leaves after the longest prompt, with a one-line note on stderr
    when it caps. A prompt that fills the context by itself is refused either way."""
    if requested is not None:
        check_prompt_lengths(prompts, problems, models, requested, source)
        return requested
    limits = [n for n in (context_length(m) for m in models) if n is not None]
    if not limits or not prompts:
        return default
    limit = min(limits)
    longest = max(range(len(prompts)), key=lambda i: len(prompts[i]))
    room = limit - len(prompts[longest])
    if room < 1:
        where = f"{source}: " if source else ""
        raise PromptTooLongError(
            f"{where}problem {problems[longest].id!r}: its prompt is {len(prompts[longest])} tokens, which "
            f"leaves no room for an answer in the model's context of {limit} positions; shorten the question")
    if room < default:
        note = (f"note: answers capped at {room} new tokens instead of {default}: the model's context is {limit} "
                f"positions and the longest prompt {len(prompts[longest])} tokens (set {flag} to choose)")
        if note not in _NOTES_SHOWN:  # once per process: a scout caps every evaluation alike
            import sys

            _NOTES_SHOWN.add(note)
            print(note, file=sys.stderr)
        return room
    return default


_NOTES_SHOWN: set = set()


def output_rows(model) -> int:
    return int(model.get_output_embeddings().weight.shape[0])


def check_pair(expert_tokenizer, amateur_tokenizer, expert_model=None, amateur_model=None) -> int:
    """Check that both models can be read on the same token ids.

    Returns the number of ids to score (the tokenizer's length without trailing
    placeholders, see :func:`scored_vocab_size`). The two tokenizers must map
    every scored id to the same string; output layers may be larger than that
    (their extra rows are ignored) but never smaller.
    """
    n_expert, n_amateur = scored_vocab_size(expert_tokenizer), scored_vocab_size(amateur_tokenizer)
    expert_vocab = expert_tokenizer.convert_ids_to_tokens(list(range(n_expert)))
    amateur_vocab = amateur_tokenizer.convert_ids_to_tokens(list(range(n_amateur)))
    mismatched = [i for i, (a, b) in enumerate(zip(expert_vocab, amateur_vocab)) if a != b]
    # Added (control) tokens may carry other names in a fine-tuned family member
    # (DeepSeek-R1-Distill-Qwen renames Qwen2.5's <|endoftext|> ... <|file_sep|>): both
    # models read the same ids, so they are compared as they are, and the note says so.
    added = _added_ids(expert_tokenizer) & _added_ids(amateur_tokenizer)
    renamed = [i for i in mismatched if i in added]
    mismatched = [i for i in mismatched if i not in added]
    if mismatched:
        shown = ", ".join(f"id {i}: expert {expert_vocab[i]!r} vs amateur {amateur_vocab[i]!r}"
                          for i in mismatched[:3])
        raise PairError(f"the expert's and the amateur's tokenizers disagree on {len(mismatched)} "
                        f"shared ids, first {shown}; lrkit needs one shared tokenizer")
    if renamed and expert_model is None:  # said once, on the first (tokenizer-only) check
        import sys

        shown = ", ".join(f"{i}: {expert_vocab[i]!r} vs {amateur_vocab[i]!r}" for i in renamed[:2])
        print(f"note: the expert's and the amateur's tokenizers name {len(renamed)} added tokens differently "
              f"(id {shown}, ...); both models read the same ids, compared as they are", file=sys.stderr)
    if n_expert != n_amateur:
        longer, first = ("expert", n_amateur) if n_expert > n_amateur else ("amateur", n_expert)
        raise PairError(f"the tokenizers differ in size (expert {n_expert}, amateur {n_amateur}): "
                        f"ids from {first} on exist only for the {longer}")
    for role, model in (("expert", expert_model), ("amateur", amateur_model)):
        if model is not None and output_rows(model) < n_expert:
            raise PairError(f"the {role}'s output layer has {output_rows(model)} rows, fewer than "
                            f"the tokenizer's {n_expert} ids")
    return n_expert


def _added_ids(tokenizer) -> set:
    return {int(i) for i in getattr(tokenizer, "added_tokens_decoder", {}) or {}}


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
    """Load an expert and an amateur and check that they read the same token ids.

    Both tokenizers are compared before any weights load (a mismatch costs no
    download of the models), then again with the output layers, which may be
    larger than the tokenizer but never smaller. ``load_pair("toy")`` takes a
    registered pair by name.

    Args:
        expert (str): a registered pair's name (``"toy"``, ``"qwen2.5-math-1.5b"``; then
            ``amateur`` is None), or the expert's Hub name, folder, ``.gguf`` file or pair
            member (``toy:expert``).
        amateur (str, optional): the amateur, named as the expert is; None reads ``expert``
            as a pair name.
        device: ``"cuda"``, ``"cpu"``, a ``torch.device``...; None or ``"auto"``: CUDA when
            available, else the CPU.
        dtype: ``"bf16"``, ``"fp16"``, ``"fp32"`` or a ``torch.dtype``; None or ``"auto"``:
            bf16 on a GPU that computes it natively, fp16 on other GPUs, fp32 on the CPU.
        trust_remote_code (bool): passed to ``from_pretrained``.

    Returns:
        ModelPair: both models in eval mode on ``device``, the expert's tokenizer, the
        number of scored ids (``vocab_size``, :func:`scored_vocab_size`) and the two names:
        as given, or a pair name's members (their Hub names or folders).

    Raises:
        PairError: the tokenizers disagree on a shared id or differ in size, or an output
            layer has fewer rows than the tokenizer has ids (a ValueError).
        lrkit.models.pairs.UnknownPairError: ``expert`` is no registered pair (``amateur`` None).
        lrkit.models.pairs.PairNotPreparedError: an offline pair not prepared yet, or a
            bundled pair's folders missing.
        ModelNotFoundError: a local path that does not exist, or a Hub name that does not load.
        ValueError: an unknown device or dtype, CUDA / MPS asked for where there is none,
            or a ``ladder:NAME`` rung not built yet.
    """
    if amateur is None:
        from lrkit.models.pairs import resolve_pair

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
