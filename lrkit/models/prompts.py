"""Prompt construction: the expert tokenizer's chat template, or a plain fallback."""
from __future__ import annotations

from typing import Optional

PLAIN_FORMAT = "{system}Question: {question}\nAnswer:"
"""Used when a tokenizer has no chat template (base models without one)."""


def build_messages(question: str, system_prompt: Optional[str]) -> list[dict]:
    messages = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": question})
    return messages


def build_prompt_text(tokenizer, question: str, system_prompt: Optional[str]) -> str:
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            build_messages(question, system_prompt), tokenize=False, add_generation_prompt=True
        )
    system = f"{system_prompt}\n\n" if system_prompt else ""
    return PLAIN_FORMAT.format(system=system, question=question)


def build_prompt_ids(tokenizer, question: str, system_prompt: Optional[str]) -> list[int]:
    """Token ids of the prompt that both models read (the expert's tokenizer).

    The rendered template already holds any BOS the model expects, so no special
    tokens are added a second time.
    """
    text = build_prompt_text(tokenizer, question, system_prompt)
    has_template = bool(getattr(tokenizer, "chat_template", None))
    ids = tokenizer(text, add_special_tokens=not has_template)["input_ids"]
    if not ids:
        raise ValueError(f"the prompt for question {question[:60]!r} tokenized to nothing")
    return list(ids)
