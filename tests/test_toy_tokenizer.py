"""The toy tokenizer: built in memory, saved, reloaded the way lrkit loads any tokenizer."""
import pytest
from transformers import AutoTokenizer

from lrkit.config import AUTHORS_SYSTEM_PROMPT, PAPER_EVAL_SYSTEM_PROMPT
from lrkit.models.prompts import build_prompt_ids
from lrkit.toy.tokenizer import train_toy_tokenizer


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy_tokenizer")
    train_toy_tokenizer(n_problems=500).save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def chatml(*turns: tuple[str, str], generation_prompt: bool) -> str:
    text = "".join(f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in turns)
    return text + ("<|im_start|>assistant\n" if generation_prompt else "")


@pytest.mark.parametrize("system", [AUTHORS_SYSTEM_PROMPT, PAPER_EVAL_SYSTEM_PROMPT, None])
def test_chat_template_renders_chatml_with_optional_system(tokenizer, system):
    question = "Mia has 7 apples. She picks 5 more apples. How many apples does Mia have now?"
    messages = ([{"role": "system", "content": system}] if system else []) + \
        [{"role": "user", "content": question}]
    turns = ([("system", system)] if system else []) + [("user", question)]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == chatml(*turns, generation_prompt=True)
    without_prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    assert without_prompt == chatml(*turns, generation_prompt=False)
    # lrkit's prompt builder reads the same template; the ids decode back to it.
    ids = build_prompt_ids(tokenizer, question, system)
    assert tokenizer.decode(ids) == rendered
    assert ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>")


def test_special_tokens_and_small_vocabulary(tokenizer):
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.pad_token is not None and tokenizer.pad_token_id != tokenizer.eos_token_id
    assert tokenizer.bos_token is None
    assert 256 < len(tokenizer) <= 1024
    for token in ("<|im_start|>", "<|im_end|>"):
        assert tokenizer.encode(token, add_special_tokens=False) == [tokenizer.convert_tokens_to_ids(token)]


def test_digits_are_single_tokens_and_text_round_trips(tokenizer):
    text = "After picking 15 more, she has 27 + 15 = 42 apples.\n#### 42"
    ids = tokenizer.encode(text, add_special_tokens=False)
    pieces = [tokenizer.decode([i]) for i in ids]
    digits = [p for p in pieces if any(c.isdigit() for c in p)]
    assert digits == list("15" "27" "15" "42" "42")
    assert tokenizer.decode(ids) == text
    odd = "Zoë pays €3.50 — naïve 漢字"
    assert tokenizer.decode(tokenizer.encode(odd, add_special_tokens=False)) == odd


def test_training_is_deterministic():
    first, second = train_toy_tokenizer(n_problems=300), train_toy_tokenizer(n_problems=300)
    assert first.backend_tokenizer.to_str() == second.backend_tokenizer.to_str()
