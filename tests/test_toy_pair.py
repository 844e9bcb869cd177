"""The bundled toy pairs (data/toy, data/toy-shared): load with plain transformers,
fit the size budget, answer in format, and (slow) keep the calibration the demo
relies on, on a 200-problem sample of each pair's own test problems."""
import re

import pytest
import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

from lrkit.config import AUTHORS_SYSTEM_PROMPT, PAPER_EVAL_SYSTEM_PROMPT
from lrkit.models.generation import greedy_generate
from lrkit.models.prompts import build_prompt_ids
from lrkit.toy import TOY_PAIRS, toy_pair_paths, toy_problems

MAX_BYTES = 25_000_000
"""All bundled weights together (both pairs)."""
CALIBRATION = {  # expert accuracy bounds, minimum format rate of both models
    "toy": ((0.35, 0.60), 0.95),
    "toy-shared": ((0.30, 0.80), 0.90),
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Models this small generate several times faster on one thread than on two
    # threads that wait on each other on a busy machine.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def load(folder):
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    return model.eval(), AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module", params=TOY_PAIRS)
def pair(request):
    return request.param


@pytest.fixture(scope="module")
def expert(pair):
    return load(toy_pair_paths(pair)[0])


@pytest.fixture(scope="module")
def amateur(pair):
    return load(toy_pair_paths(pair)[1])


def gold(answer: str) -> int:
    return int(re.search(r"#### (\d+)$", answer).group(1))


def predicted(text: str):
    """Number after the last '####', else the last number (the calibration's rule)."""
    if "####" in text:
        found = re.findall(r"\d+", text.rsplit("####", 1)[1])
        if found:
            return int(found[0])
    found = re.findall(r"\d+", text)
    return int(found[-1]) if found else None


def answer_problems(model, tokenizer, problems, system_prompt):
    prompts = [build_prompt_ids(tokenizer, p["question"], system_prompt) for p in problems]
    generations = greedy_generate(model, tokenizer, prompts, max_new_tokens=160, batch_size=64)
    return [(tokenizer.decode(g.token_ids, skip_special_tokens=True), g.finished) for g in generations]


def in_format(text: str, finished: bool) -> bool:
    return finished and re.search(r"\n#### \d+$", text) is not None


def test_bundled_folders_fit_the_size_budget():
    total = 0
    for name in TOY_PAIRS:
        for folder in toy_pair_paths(name):
            files = list(folder.iterdir())
            assert {f.name for f in files} >= {"config.json", "model.safetensors", "tokenizer.json"}
            total += sum(f.stat().st_size for f in files if f.name.endswith(".safetensors"))
    assert total <= MAX_BYTES


def test_pair_loads_with_plain_transformers_and_shares_one_tokenizer(expert, amateur):
    (expert_model, expert_tokenizer), (amateur_model, amateur_tokenizer) = expert, amateur
    for model in (expert_model, amateur_model):
        assert model.config.model_type == "qwen2"
        names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        assert {"q_proj", "v_proj"} <= names
        assert model.get_output_embeddings().weight.shape[0] == len(expert_tokenizer)
    assert expert_tokenizer.get_vocab() == amateur_tokenizer.get_vocab()
    assert expert_tokenizer.chat_template == amateur_tokenizer.chat_template
    n_expert = sum(p.numel() for p in expert_model.parameters())
    n_amateur = sum(p.numel() for p in amateur_model.parameters())
    assert n_expert > 4 * n_amateur


def test_loaded_tokenizer_splits_text_as_its_tokenizer_json_says(pair, expert):
    # transformers may swap in a model-specific tokenizer class on load; the ids
    # the models were trained on are the ones tokenizer.json itself produces.
    _, tokenizer = expert
    raw = Tokenizer.from_file(str(toy_pair_paths(pair)[0] / "tokenizer.json"))
    texts = [p["question"] + "\n" + p["answer"] for p in toy_problems(pair, 50, "test", seed=3)]
    texts += ["It's 12's, they'LL pay $3.50!\n\n  x \t y\r\nZoë 漢字", "cafe\u0301 Zoe\u0308"]
    for text in texts:
        assert tokenizer.encode(text, add_special_tokens=False) == raw.encode(text).ids


def test_chat_template_renders_the_training_prompt(expert):
    _, tokenizer = expert
    question = "Mia has 7 apples. She picks 5 more apples. How many apples does Mia have now?"
    rendered = tokenizer.apply_chat_template(
        [{"role": "system", "content": AUTHORS_SYSTEM_PROMPT}, {"role": "user", "content": question}],
        tokenize=False, add_generation_prompt=True)
    assert rendered == (f"<|im_start|>system\n{AUTHORS_SYSTEM_PROMPT}<|im_end|>\n"
                        f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n")
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.decode(build_prompt_ids(tokenizer, question, None)) == (
        f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n")


def test_expert_answers_in_format_under_every_trained_prompt(pair, expert):
    model, tokenizer = expert
    problems = toy_problems(pair, 2, "test", seed=7)
    prompts = [build_prompt_ids(tokenizer, p["question"], system_prompt)
               for system_prompt in (AUTHORS_SYSTEM_PROMPT, PAPER_EVAL_SYSTEM_PROMPT, None)
               for p in problems]
    for generation in greedy_generate(model, tokenizer, prompts, max_new_tokens=160):
        text = tokenizer.decode(generation.token_ids, skip_special_tokens=True)
        assert in_format(text, generation.finished), text


@pytest.mark.slow
@pytest.mark.calibration
def test_calibration_on_held_out_test_problems(pair, expert, amateur):
    """Expert within the pair's bounds, amateur at most half of it, both answering in format."""
    (low, high), min_format = CALIBRATION[pair]
    problems = toy_problems(pair, 200, "test", seed=1)
    accuracy, format_rate = {}, {}
    for role, (model, tokenizer) in (("expert", expert), ("amateur", amateur)):
        answers = answer_problems(model, tokenizer, problems, PAPER_EVAL_SYSTEM_PROMPT)
        accuracy[role] = sum(predicted(text) == gold(p["answer"])
                             for p, (text, _) in zip(problems, answers)) / len(problems)
        format_rate[role] = sum(in_format(*a) for a in answers) / len(problems)
    assert low <= accuracy["expert"] <= high, accuracy
    assert accuracy["amateur"] <= accuracy["expert"] / 2, accuracy
    assert format_rate["expert"] >= min_format and format_rate["amateur"] >= min_format, format_rate
