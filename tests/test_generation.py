"""Stop ids of greedy rollouts: EOS from the tokenizer and the generation config,
and the end-of-turn token of the chat template the prompts are built with."""
from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest

from hub_fixture import QWEN, tokenizer_json
from lrkit.models.generation import end_of_turn_id, stop_token_ids
from lrkit.models.loading import load_tokenizer
from tiny_models import CHAT_TEMPLATE, make_tokenizer


@pytest.mark.parametrize("name", ["Qwen2.5-Math-1.5B", "Qwen2.5-0.5B"])
def test_qwen_rollouts_stop_at_im_end_as_well_as_endoftext(name, tmp_path):
    """Qwen2.5's base models name <|endoftext|> as EOS, yet prompted through their
    chat template they close the answer with <|im_end|>."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "tokenizer.json").write_bytes(tokenizer_json())
    shutil.copy(QWEN / f"{name}.tokenizer_config.json", folder / "tokenizer_config.json")
    tokenizer = load_tokenizer(str(folder))
    im_end, endoftext = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    assert (im_end, endoftext) == (151645, 151643)
    assert end_of_turn_id(tokenizer) == im_end
    model = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=endoftext))
    assert stop_token_ids(model, tokenizer) == [endoftext, im_end]


def test_a_template_whose_turns_end_in_plain_text_adds_no_stop_id():
    tokenizer = make_tokenizer()  # turns end with "\n", not a special token
    assert tokenizer.chat_template == CHAT_TEMPLATE
    assert end_of_turn_id(tokenizer) is None
    assert end_of_turn_id(make_tokenizer(chat_template=False)) is None
    model = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=None))
    assert stop_token_ids(model, tokenizer) == [tokenizer.eos_token_id]


def test_a_special_end_of_turn_token_is_found_by_rendering_a_turn():
    tokenizer = make_tokenizer()
    tokenizer.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|system|>"
                               "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")
    marker = tokenizer.convert_tokens_to_ids("<|system|>")
    assert end_of_turn_id(tokenizer) == marker
    model = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=[tokenizer.eos_token_id, marker]))
    assert stop_token_ids(model, tokenizer) == [tokenizer.eos_token_id, marker]  # each id once
