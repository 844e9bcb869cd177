"""Stop ids of greedy rollouts: EOS from the tokenizer and the generation config,
and the end-of-turn token of the chat template the prompts are built with; and
contrastive decoding (following the soft label's argmax) against a plain
batch-1 reference with a full forward pass of each model per token."""
from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from hub_fixture import QWEN, tokenizer_json
from lrkit.models.generation import contrastive_generate, end_of_turn_id, greedy_generate, stop_token_ids
from lrkit.models.loading import load_pair, load_tokenizer
from lrkit.models.prompts import build_prompt_ids
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


# ---------------------------------------------------------------- contrastive decoding

QUESTIONS = [f"Ann has {i + 3} pens and gets {2 * i + 5} more. How many?" + " Think." * (i % 3)
             for i in range(5)]
MAX_NEW = 16


def reference(expert_path, amateur_path, prompt, alpha):
    tok = load_tokenizer(str(expert_path))
    expert = AutoModelForCausalLM.from_pretrained(expert_path, dtype=torch.float32).eval()
    amateur = AutoModelForCausalLM.from_pretrained(amateur_path, dtype=torch.float32).eval()
    vocab, out = len(tok), []
    with torch.no_grad():
        for _ in range(MAX_NEW):
            ids = torch.tensor([prompt + out])
            e = F.log_softmax(expert(ids).logits[0, -1, :vocab].float(), -1)
            a = F.log_softmax(amateur(ids).logits[0, -1, :vocab].float(), -1)
            p = e.exp()
            allowed = p >= alpha * p.max()
            score = torch.where(allowed, e - a, torch.full_like(e, -float("inf")))
            out.append(int(score.argmax()))
            if out[-1] == tok.eos_token_id:
                break
    return out


@pytest.mark.parametrize("alpha", [0.2, 1.0])
def test_contrastive_decoding_matches_plain_reference(pair_paths, alpha):
    pair = load_pair(str(pair_paths[0]), str(pair_paths[1]), device="cpu")
    prompts = [build_prompt_ids(pair.tokenizer, q, None) for q in QUESTIONS]
    assert len({len(p) for p in prompts}) > 1, "the batch must need left padding"
    got = contrastive_generate(pair, prompts, MAX_NEW, alpha=alpha, batch_size=5)
    for prompt, generation in zip(prompts, got):
        expected = reference(pair_paths[0], pair_paths[1], prompt, alpha)
        assert generation.token_ids == expected
        assert generation.finished == (expected[-1] == pair.tokenizer.eos_token_id)
        assert all(t < len(pair.tokenizer) for t in generation.token_ids), "no padding row chosen"
    if alpha == 1.0:  # the mask holds only the expert's argmax: plain greedy decoding
        greedy = greedy_generate(pair.expert, pair.tokenizer, prompts, MAX_NEW, batch_size=5)
        assert [g.token_ids for g in got] == [g.token_ids for g in greedy]


def test_contrast_changes_some_choices_at_small_alpha(pair_paths):
    pair = load_pair(str(pair_paths[0]), str(pair_paths[1]), device="cpu")
    prompts = [build_prompt_ids(pair.tokenizer, q, None) for q in QUESTIONS]
    greedy = greedy_generate(pair.expert, pair.tokenizer, prompts, MAX_NEW, batch_size=5)
    contrast = contrastive_generate(pair, prompts, MAX_NEW, alpha=0.05, batch_size=5)
    assert any(g.token_ids != c.token_ids for g, c in zip(greedy, contrast))


def test_padding_rows_of_the_output_layer_are_never_chosen(pair_paths):
    pair = load_pair(str(pair_paths[0]), str(pair_paths[1]), device="cpu")
    vocab = len(pair.tokenizer)
    assert pair.expert.get_output_embeddings().weight.shape[0] == vocab + 3

    def favour_padding(module, inputs, output):  # the first padding row outscores every token
        output = output.clone()
        output[..., vocab] = output.max() + 50.0
        return output

    hook = pair.expert.get_output_embeddings().register_forward_hook(favour_padding)
    try:
        prompts = [build_prompt_ids(pair.tokenizer, q, None) for q in QUESTIONS]
        got = contrastive_generate(pair, prompts, MAX_NEW, alpha=0.2, batch_size=5)
    finally:
        hook.remove()
    assert all(t < vocab for g in got for t in g.token_ids)
    assert all(len(g.token_ids) > 0 for g in got)


def test_greedy_generation_never_chooses_padding_rows_and_matches_hf_suppress_tokens(pair_paths):
    """Greedy decoding masks the output layer's padding rows itself (FiniteLogits with
    suppress_rest); the reference is transformers' own suppress_tokens on the same batch."""
    import torch

    from lrkit.models.generation import greedy_generate_batch, left_pad, pad_token_id, stop_token_ids

    pair = load_pair(str(pair_paths[0]), str(pair_paths[1]), device="cpu")
    model, tok = pair.expert, pair.tokenizer
    vocab, rows = len(tok), model.get_output_embeddings().weight.shape[0]
    assert rows == vocab + 3

    def favour_padding(module, inputs, output):  # the first padding row outscores every token
        output = output.clone()
        output[..., vocab] = output.max() + 50.0
        return output

    hook = model.get_output_embeddings().register_forward_hook(favour_padding)
    try:
        prompts = [build_prompt_ids(tok, q, None) for q in QUESTIONS]
        got = greedy_generate_batch(model, tok, prompts, MAX_NEW)
        stops = stop_token_ids(model, tok)
        ids, mask = left_pad(prompts, pad_token_id(tok, stops), "cpu")
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=MAX_NEW,
                                 eos_token_id=stops, pad_token_id=pad_token_id(tok, stops),
                                 suppress_tokens=list(range(vocab, rows)))
    finally:
        hook.remove()
    assert all(t < vocab for g in got for t in g.token_ids)
    assert all(len(g.token_ids) > 0 for g in got)
    for g, row in zip(got, out[:, ids.shape[1]:].tolist()):
        cut = next((i + 1 for i, t in enumerate(row) if t in stops), len(row))
        assert g.token_ids == row[:cut]
