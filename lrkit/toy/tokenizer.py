"""The toy pair's tokenizer: a small byte-level BPE with a ChatML chat template.

It splits text exactly as Qwen2's tokenizer does (NFC, then Qwen2's
pre-tokenization regex): transformers 5 loads any tokenizer of a qwen2 model
as ``Qwen2Tokenizer``, which imposes that splitting whatever tokenizer.json
says, so any other choice would tokenize differently once reloaded. Digits are
single tokens, so the models learn arithmetic on digits rather than memorising
number tokens. The 256 byte symbols are all in the vocabulary, so any text
encodes and decodes back exactly. The merges are learned from rendered toy
conversations, which makes the family's words single tokens and keeps
sequences short.
"""
from __future__ import annotations

from typing import Iterable, Optional

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from lrkit.config import AUTHORS_SYSTEM_PROMPT, PAPER_EVAL_SYSTEM_PROMPT
from lrkit.toy.problems import generate_problems

END_OF_TEXT = "<|endoftext|>"
TURN_START = "<|im_start|>"
TURN_END = "<|im_end|>"
SPECIAL_TOKENS = (END_OF_TEXT, TURN_START, TURN_END)

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""ChatML, as Qwen2 models use it, without a default system message: a
conversation with no system turn renders none. The assistant turn ends with
<|im_end|>, the EOS token."""

SYSTEM_PROMPTS: tuple[Optional[str], ...] = (AUTHORS_SYSTEM_PROMPT, PAPER_EVAL_SYSTEM_PROMPT, None)
"""The system prompts the toy models see in training: lrkit's sampling prompt,
the paper's evaluation prompt, and none."""

DEFAULT_VOCAB_SIZE = 512

QWEN2_SPLIT_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


def render_conversation(question: str, answer: Optional[str], system_prompt: Optional[str]) -> str:
    """The ChatML text of one problem, the same string the chat template renders."""
    text = f"{TURN_START}system\n{system_prompt}{TURN_END}\n" if system_prompt else ""
    text += f"{TURN_START}user\n{question}{TURN_END}\n{TURN_START}assistant\n"
    if answer is not None:
        text += f"{answer}{TURN_END}\n"
    return text


def _training_texts(problems: Iterable[dict]) -> Iterable[str]:
    for i, problem in enumerate(problems):
        yield render_conversation(problem["question"], problem["answer"],
                                  SYSTEM_PROMPTS[i % len(SYSTEM_PROMPTS)])


def train_toy_tokenizer(vocab_size: int = DEFAULT_VOCAB_SIZE, n_problems: int = 3000,
                        seed: int = 0, problems: Optional[Iterable[dict]] = None) -> PreTrainedTokenizerFast:
    """Learn the BPE merges on rendered train problems and wrap the result for transformers.

    ``problems`` defaults to ``n_problems`` train problems of the toy family."""
    if problems is None:
        problems = generate_problems(n_problems, "train", seed=seed)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_training_texts(problems), trainer=trainer)
    return wrap_tokenizer(tokenizer)


def wrap_tokenizer(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=TURN_END,
        pad_token=END_OF_TEXT,
        chat_template=CHAT_TEMPLATE,
        model_max_length=512,
        clean_up_tokenization_spaces=False,
    )
