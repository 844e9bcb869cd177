"""Packed soft-label training (lrkit.stages.packing) against the per-record recipe.

The reference is the per-record loss of lrkit.stages.training (one left-padded sequence
per record, logits at position -1), itself checked against plain torch in
test_training.py. Packed and per-record must give the same loss (1e-6 relative)
and the same LoRA gradients (1e-5) on the same records, with dropout 0.
"""
from __future__ import annotations

import json

import pytest
import torch

from lrkit.config import AUTHORS_SYSTEM_PROMPT, SampleConfig, TrainConfig
from lrkit.data.records import read_records
from lrkit.models.loading import load_tokenizer, resolve_member, scored_vocab_size
from lrkit.stages import training
from lrkit.stages.packing import PackedCollator, pack_units, packed_kl, schedule
from lrkit.stages.sampling import sample
from lrkit.stages.training import (
    SoftLabelCollator, add_lora, build_examples, load_expert, packed_items, record_input_ids, soft_label_kl)
from tiny_models import save_pair

QUESTIONS = ["what is 12+7?", "Tom has 3 apples and buys 5 more. How many?", "9-4=?",
             "A shop sells 6 pens at 2 each. Total?", "what is 30/5?"]


# ---------------------------------------------------------------- grouping and schedule, by hand

def test_units_group_prefixes_and_split_diverging_rollouts():
    prompt = [1, 2]
    rollout_a, rollout_b = [5, 6, 7, 8], [5, 6, 9]
    inputs = [prompt + rollout_a[:3], prompt + rollout_b[:2], prompt + rollout_a[:1],
              prompt + rollout_a[:4], prompt + rollout_b[:3], [3, 4]]
    units = pack_units(inputs, max_length=512)
    found = sorted((tuple(u.ids), tuple(u.members)) for u in units)
    # b[:2] = [5, 6] is also a prefix of rollout a: it may ride on either, but only once
    assert sorted(i for u in units for i, _ in u.members) == list(range(6))
    by_ids = {ids: members for ids, members in found}
    assert by_ids[(3, 4)] == ((5, 1),)
    assert (1, 2, 5, 6, 9) in by_ids and (1, 2, 5, 6, 7, 8) in by_ids
    for ids, members in found:
        for index, position in members:
            assert list(ids[:position + 1]) == inputs[index]  # every record is a prefix of its sequence


def test_records_longer_than_max_length_keep_their_own_left_window():
    ids = list(range(10, 30))
    inputs = [ids[:3], ids[:6], ids[:8], ids[:12]]
    units = pack_units(inputs, max_length=6)
    windows = sorted((tuple(u.ids), tuple(u.members)) for u in units)
    assert windows == sorted([(tuple(ids[:6]), ((0, 2), (1, 5))),
                              (tuple(ids[2:8]), ((2, 5),)),
                              (tuple(ids[6:12]), ((3, 5),))])


def test_every_step_holds_the_records_per_step_and_each_epoch_every_record_once():
    generator = torch.Generator().manual_seed(0)
    inputs = []
    for rollout in range(7):
        tokens = torch.randint(0, 50, (30,), generator=generator).tolist()
        steps = sorted(torch.randperm(29, generator=generator)[:3 + rollout].tolist())
        inputs += [[100 + rollout] + tokens[:s + 1] for s in steps]
    units = pack_units(inputs, 512)
    per_step, slots, max_steps = 6, 4, 20
    steps = schedule(units, per_step, slots, max_steps, seed=3)
    assert len(steps) == max_steps and all(len(step) == slots for step in steps)
    epoch_size = -(-len(inputs) // per_step)
    seen = [sorted(r for micro in step for r in micro.records) for step in steps]
    for epoch_start in range(0, max_steps - epoch_size + 1, epoch_size):
        epoch = seen[epoch_start:epoch_start + epoch_size]
        assert sorted(r for step in epoch for r in step) == list(range(len(inputs)))
        assert [len(s) for s in epoch] == [per_step] * (epoch_size - 1) + [len(inputs) - per_step * (epoch_size - 1)]
    for step in steps:
        assert {micro.step_records for micro in step} == {sum(len(m.records) for m in step)}
        for micro in step:
            assert len(micro.records) == sum(len(p) for p in micro.positions)
            flat = [(seq, p) for seq, positions in zip(micro.sequences, micro.positions) for p in positions]
            for record, (seq, position) in zip(micro.records, flat):
                assert seq[:position + 1] == inputs[record]
    # a longer run replays the same first steps (resume with a higher max_steps)
    longer = schedule(units, per_step, slots, max_steps + 7, seed=3)
    assert [[m.records for m in s] for s in longer[:max_steps]] == [[m.records for m in s] for s in steps]
    packed_tokens = sum(len(seq) for step in steps[:epoch_size] for micro in step for seq in micro.sequences)
    assert packed_tokens < sum(len(i) for i in inputs)  # an epoch reads fewer tokens than one pass per record


# ---------------------------------------------------------------- gradient identity

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Records of a real sampling run on a tiny pair (beta 0: many steps kept)."""
    root = tmp_path_factory.mktemp("packing")
    expert, amateur = save_pair(root, expert_rows=3)
    problems = [{"id": f"q{i}", "question": q} for i, q in enumerate(QUESTIONS)]
    out = root / "run"
    sample(str(expert), str(amateur), problems, out, SampleConfig(max_new_tokens=12, beta=0.0, batch_size=5),
           progress=False)
    return str(expert), read_records(out / "records.jsonl")


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("packing-toy") / "run"
    from lrkit.toy import toy_problems

    problems = [{"id": p["id"], "question": p["question"]} for p in toy_problems("toy", 6, "train", seed=5)]
    sample("toy", None, problems, out, SampleConfig(max_new_tokens=48, batch_size=6), progress=False)
    return resolve_member("toy:expert"), read_records(out / "records.jsonl")


def lora_model(expert: str, seed: int = 0):
    torch.manual_seed(seed)
    model = add_lora(load_expert(expert, "fp32"), TrainConfig(lora_dropout=0.0))
    with torch.no_grad():  # a non-zero B, so gradients reach A as well
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    return model.train()


def lora_grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def per_record_reference(model, examples, indices, vocab, pad_id, batch_size):
    """Mean KL over ``indices`` from the per-record recipe, in left-padded batches
    of ``batch_size``; gradients accumulated with each batch weighted by its share."""
    model.zero_grad(set_to_none=True)
    total = 0.0
    for start in range(0, len(indices), batch_size):
        chunk = [examples[i] for i in indices[start:start + batch_size]]
        kl = soft_label_kl(model, SoftLabelCollator(pad_id)(chunk), vocab)
        (kl.sum() / len(indices)).backward()
        total += kl.sum().item()
    return total / len(indices), lora_grads(model)


def packed_step(model, micro_batches, collator, vocab, chunk_size=64):
    model.zero_grad(set_to_none=True)
    total = 0.0
    for micro in micro_batches:
        batch = collator([micro])
        kl = packed_kl(model, batch, vocab, chunk_size)
        (kl.sum() / micro.step_records).backward()
        total += kl.sum().item()
    return total / micro_batches[0].step_records, lora_grads(model)


def assert_same(reference, packed):
    (loss_a, grads_a), (loss_b, grads_b) = reference, packed
    assert abs(loss_a - loss_b) <= 1e-6 * abs(loss_a)
    assert grads_a.keys() == grads_b.keys() and grads_a
    largest = max(g.abs().max().item() for g in grads_a.values())
    assert largest > 1e-4  # the gradients compared are not all zero
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], rtol=1e-4, atol=1e-5, msg=name)


def _setup(expert, records, max_length=512, system_prompt=AUTHORS_SYSTEM_PROMPT):
    tokenizer = load_tokenizer(expert)
    examples = build_examples(records, tokenizer, max_length, system_prompt)
    inputs = [record_input_ids(r, tokenizer, system_prompt) for r in records]
    return tokenizer, examples, inputs


@pytest.mark.parametrize("run", ["tiny_run", "toy_run"])
def test_packed_step_equals_the_per_record_mean(run, request):
    """Several rollouts in one left-padded micro-batch, rollouts cut across two
    micro-batches of one step, and chunks of the output layer smaller than a batch."""
    expert, records = request.getfixturevalue(run)
    tokenizer, examples, inputs = _setup(expert, records)
    vocab, pad = scored_vocab_size(tokenizer), training.pad_id_of(tokenizer)
    units = pack_units(inputs, 512)
    assert len(units) >= 3
    per_step = min(len(records), 40)
    model = lora_model(expert)
    collator = PackedCollator(pad, [(e["target_ids"], e["target_weights"]) for e in examples])
    for slots in (1, 2):
        step = schedule(units, per_step, slots, 1, seed=0)[0]
        in_step = [r for micro in step for r in micro.records]
        assert len(in_step) == per_step
        if slots == 1:
            assert len(step[0].sequences) >= 2, "the micro-batch should hold several rollouts"
        reference = per_record_reference(model, examples, in_step, vocab, pad, batch_size=5)
        assert_same(reference, packed_step(model, step, collator, vocab, chunk_size=3))


def test_a_rollout_split_across_two_steps_gives_each_step_its_own_mean(tiny_run):
    expert, records = tiny_run
    tokenizer, examples, inputs = _setup(expert, records)
    vocab, pad = scored_vocab_size(tokenizer), training.pad_id_of(tokenizer)
    units = pack_units(inputs, 512)
    longest = max(units, key=lambda u: len(u.members))
    assert len(longest.members) >= 4
    steps = schedule(units, 7, 1, 3, seed=1)
    split = [s for s in steps if any(i in [r for m in s for r in m.records] for i, _ in longest.members)]
    model = lora_model(expert)
    collator = PackedCollator(pad, [(e["target_ids"], e["target_weights"]) for e in examples])
    for step in steps:
        in_step = [r for micro in step for r in micro.records]
        reference = per_record_reference(model, examples, in_step, vocab, pad, batch_size=3)
        assert_same(reference, packed_step(model, step, collator, vocab))
    assert split  # the longest rollout was trained on, whichever steps it fell in


def test_authors_records_group_from_their_token_ids(tiny_run):
    """Records in the authors' schema (no prompt or prefix ids) are grouped from
    the ids their text tokenizes to, and still match."""
    expert, records = tiny_run
    old = [{k: r[k] for k in ("prompt_id", "step", "prefix", "tokens", "token_ids", "weights",
                              "kl_divergence", "question")} for r in records]
    tokenizer, examples, inputs = _setup(expert, old)
    vocab, pad = scored_vocab_size(tokenizer), training.pad_id_of(tokenizer)
    units = pack_units(inputs, 512)
    assert len(units) < len(old)  # records were grouped
    step = schedule(units, len(old), 2, 1, seed=0)[0]
    model = lora_model(expert)
    reference = per_record_reference(model, examples, list(range(len(old))), vocab, pad, batch_size=8)
    collator = PackedCollator(pad, [(e["target_ids"], e["target_weights"]) for e in examples])
    assert_same(reference, packed_step(model, step, collator, vocab))


def test_left_truncated_records_match_with_a_short_max_length(tiny_run):
    expert, records = tiny_run
    lengths = sorted(len(i) for i in _setup(expert, records)[2])
    max_length = lengths[len(lengths) // 2]
    tokenizer, examples, inputs = _setup(expert, records, max_length=max_length)
    assert any(len(i) > max_length for i in inputs) and any(len(i) <= max_length for i in inputs)
    vocab, pad = scored_vocab_size(tokenizer), training.pad_id_of(tokenizer)
    step = schedule(pack_units(inputs, max_length), len(records), 2, 1, seed=0)[0]
    model = lora_model(expert)
    reference = per_record_reference(model, examples, list(range(len(records))), vocab, pad, batch_size=8)
    collator = PackedCollator(pad, [(e["target_ids"], e["target_weights"]) for e in examples])
    assert_same(reference, packed_step(model, step, collator, vocab))


# ---------------------------------------------------------------- through lrkit.train

def _adapter(path):
    from safetensors.torch import load_file

    return load_file(str(path / "adapter_model.safetensors"))


def test_one_step_over_every_record_trains_the_same_adapter_both_ways(tiny_run, tmp_path):
    """One optimizer step that sees every record (2 micro-batches): the Trainer's
    loss scaling, the logged first loss and the tuned tokens agree in both modes."""
    expert, records = tiny_run
    records = records[:len(records) // 2 * 2]
    n = len(records)
    runs = {}
    for packing in (True, False):
        config = TrainConfig(packing=packing, lora_dropout=0.0, max_steps=1, logging_steps=1, save_steps=100,
                             per_device_batch_size=-(-n // 2), gradient_accumulation_steps=2,
                             learning_rate=1e-3)
        out = tmp_path / ("packed" if packing else "per-record")
        result = training.train(expert, records, out, config, progress=False)
        first = json.loads((out / "loss.jsonl").read_text().splitlines()[0])
        state = json.loads((out / "trainer_state.json").read_text())
        runs[packing] = (result, first, state, _adapter(out))
    (packed, first_p, state_p, adapter_p), (plain, first_r, state_r, adapter_r) = runs[True], runs[False]
    assert packed.tuned_tokens == plain.tuned_tokens == n
    assert first_p["step"] == first_r["step"] == 1
    assert first_p["kl"] == pytest.approx(first_r["kl"], rel=1e-5)
    for state in (state_p, state_r):  # trainer_state logs the same first loss in both modes
        logged = [e["loss"] for e in state["log_history"] if "loss" in e]
        assert logged[0] == pytest.approx(first_r["kl"], rel=1e-5)
    for name in adapter_r:
        torch.testing.assert_close(adapter_p[name], adapter_r[name], rtol=1e-4, atol=1e-6, msg=name)


def test_packed_items_cover_max_steps_for_each_process(tiny_run):
    expert, records = tiny_run
    tokenizer = load_tokenizer(expert)
    examples = build_examples(records, tokenizer, 512, AUTHORS_SYSTEM_PROMPT)
    config = TrainConfig(max_steps=5, per_device_batch_size=3, gradient_accumulation_steps=2)
    for processes in (1, 2):
        items, _ = packed_items(records, examples, tokenizer, config, AUTHORS_SYSTEM_PROMPT, processes)
        assert len(items) == config.max_steps * 2 * processes
        for s in range(config.max_steps):
            step = items[s * 2 * processes:(s + 1) * 2 * processes]
            assert sum(len(m.records) for m in step) == step[0].step_records <= 3 * 2 * processes
        per_step = 3 * 2 * processes
        epoch = [per_step] * (len(records) // per_step) + ([len(records) % per_step] if len(records) % per_step else [])
        expected = (epoch * config.max_steps)[:config.max_steps]  # whole epochs, the last step of each short
        assert [m.step_records for m in items[::2 * processes]] == expected


def test_right_padding_parity_needs_packing_off():
    with pytest.raises(ValueError, match="--packing off"):
        TrainConfig(parity_right_padding=True).validate()
    assert TrainConfig(parity_right_padding=True, packing=False).validate()


def test_a_model_that_scales_its_logits_is_refused_with_the_way_out(tiny_run):
    """Packing applies the output layer to gathered hidden states itself, which is
    only the model's own logits when they are a plain linear map of them."""
    expert, records = tiny_run
    tokenizer, examples, inputs = _setup(expert, records[:3])
    model = lora_model(expert)
    model.get_base_model().config.logit_scale = 2.0
    step = schedule(pack_units(inputs, 512), 3, 1, 1, seed=0)[0]
    collator = PackedCollator(0, [(e["target_ids"], e["target_weights"]) for e in examples])
    with pytest.raises(ValueError, match="--packing off"):
        packed_kl(model, collator(step), scored_vocab_size(tokenizer))
