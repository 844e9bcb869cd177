"""The toy pair's build recipe, run end to end on tiny models in a temporary folder."""
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lrkit.models.prompts import build_prompt_ids
from lrkit.toy.pretrain import (
    IGNORE_INDEX, ToyModelSpec, build_toy_pair, encode_example, extract_toy_answer, training_batches)
from lrkit.toy.problems import generate_problems
from lrkit.toy.tokenizer import train_toy_tokenizer

TINY = ToyModelSpec(hidden_size=32, num_layers=1, intermediate_size=64, num_heads=2,
                    train_problems=48, batch_size=16)


@pytest.fixture(scope="module")
def tokenizer():
    return train_toy_tokenizer(n_problems=300)


def test_loss_covers_exactly_the_answer_and_eos(tokenizer):
    problem = generate_problems(1, "train", seed=0)[0]
    input_ids, labels = encode_example(tokenizer, problem, "Please reason step by step.")
    prompt = build_prompt_ids(tokenizer, problem["question"], "Please reason step by step.")
    assert input_ids[:len(prompt)] == prompt
    assert labels[:len(prompt)] == [IGNORE_INDEX] * len(prompt)
    supervised = labels[len(prompt):]
    assert supervised == input_ids[len(prompt):]
    assert supervised[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(supervised[:-1]) == problem["answer"]


def test_batches_hold_every_example_once_in_a_seeded_order(tokenizer):
    problems = generate_problems(40, "train", seed=0)
    examples = [encode_example(tokenizer, p, None) for p in problems]
    batches = training_batches(examples, 8, tokenizer.pad_token_id, seed=0)
    rows = [tuple(ids[mask.bool()].tolist()) for b_ids, b_mask, _ in batches
            for ids, mask in zip(b_ids, b_mask)]
    assert sorted(rows) == sorted(tuple(ids) for ids, _ in examples)
    again = training_batches(examples, 8, tokenizer.pad_token_id, seed=0)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))
    other = training_batches(examples, 8, tokenizer.pad_token_id, seed=1)
    assert any(a[0].shape != b[0].shape or not torch.equal(a[0], b[0]) for a, b in zip(batches, other))


@pytest.mark.parametrize("text, expected", [
    ("He has 3 + 4 = 7 apples.\n#### 7", 7.0),
    ("#### 1,200", 1200.0),
    ("so 12 - 5 = 7 apples", 7.0),
    ("#### 5 and then 9", 5.0),
    ("no number here", None),
])
def test_extract_toy_answer(text, expected):
    assert extract_toy_answer(text) == expected


def test_tiny_build_is_deterministic_and_loadable(tmp_path):
    first = build_toy_pair(tmp_path / "a", seed=0, expert=TINY, amateur=TINY, n_eval=2, log=None)
    second = build_toy_pair(tmp_path / "b", seed=0, expert=TINY, amateur=TINY, n_eval=2, log=None)
    for role in ("expert", "amateur"):
        weights_a = (tmp_path / "a" / role / "model.safetensors").read_bytes()
        weights_b = (tmp_path / "b" / role / "model.safetensors").read_bytes()
        assert weights_a == weights_b
        model = AutoModelForCausalLM.from_pretrained(tmp_path / "a" / role)
        AutoTokenizer.from_pretrained(tmp_path / "a" / role)
        assert model.config.model_type == "qwen2"
        assert model.dtype == torch.float32
    assert first["models"]["expert"]["parameters"] == second["models"]["expert"]["parameters"]
    recorded = json.loads((tmp_path / "a" / "build.json").read_text())
    assert recorded["models"]["amateur"]["n"] == 2
    card = (tmp_path / "a" / "CARD.md").read_text()
    assert "lrkit build-toy --pair toy-shared --out data/toy-shared --seed 0" in card
