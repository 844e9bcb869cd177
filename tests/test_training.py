"""Soft-label training: examples, the loss at the last real position, LoRA through
the HF Trainer, resume, merge. Tiny models are built here and saved to disk, so
the real loading code runs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, TrainerCallback

from lrkit.config import AUTHORS_SYSTEM_PROMPT, TrainConfig
from lrkit.data.records import RecordError, tokenizer_fingerprint, write_records
from lrkit.models.loading import load_tokenizer
from lrkit.models.prompts import build_prompt_ids
from lrkit.runs import FolderError
from lrkit.stages import training
from lrkit.stages.training import (
    PROGRESS_FILE, SoftLabelCollator, build_examples, last_complete_checkpoint, merge, resolve_precision,
    soft_label_kl, sparse_kl, train)
from tiny_models import make_model, make_tokenizer

REPO = Path(__file__).resolve().parents[1]

EXTRA_ROWS = 12
"""Output rows beyond the tokenizer, as Qwen models have."""
PREFIX_LENGTHS = (1, 4, 9, 16)
FAST = dict(per_device_batch_size=4, gradient_accumulation_steps=1, max_steps=12,
            learning_rate=5e-2, logging_steps=1, save_steps=1000)
"""One batch holds every record; a tiny model needs a large learning rate."""


@pytest.fixture(scope="module")
def expert(tmp_path_factory):
    path = tmp_path_factory.mktemp("expert")
    tokenizer = make_tokenizer()
    make_model(tokenizer, seed=3, hidden=64, extra_rows=EXTRA_ROWS).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tokenizer(expert):
    return load_tokenizer(expert)


def load_base(expert):
    return AutoModelForCausalLM.from_pretrained(expert).eval()


def next_token_probs(model, tokenizer, ids) -> torch.Tensor:
    """The next-token distribution after ``ids``, one unpadded sequence."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1, :len(tokenizer)]
    return logits.float().softmax(-1)


def make_record(tokenizer, prompt, prefix, ids, weights, **extra) -> dict:
    return {"prompt_id": "p0", "step": len(prefix), "prefix": tokenizer.decode(prefix),
            "tokens": [tokenizer.decode([i]) for i in ids], "token_ids": list(ids),
            "weights": list(weights), "kl_divergence": 1.0, "question": "what is 12+7?",
            "prompt_token_ids": list(prompt), "prefix_token_ids": list(prefix),
            "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer), **extra}


@pytest.fixture(scope="module")
def one_hot_records(expert, tokenizer):
    """Prefixes of different lengths, each with a one-hot target (not a special
    token) that the expert finds unlikely."""
    base = load_base(expert)
    prompt = build_prompt_ids(tokenizer, "what is 12+7?", AUTHORS_SYSTEM_PROMPT)
    generator = torch.Generator().manual_seed(0)
    records = []
    for length in PREFIX_LENGTHS:
        prefix = torch.randint(5, len(tokenizer), (length,), generator=generator).tolist()
        probs = next_token_probs(base, tokenizer, prompt + prefix)
        target = 5 + int(probs[5:].argsort()[len(tokenizer) // 3])
        records.append(make_record(tokenizer, prompt, prefix, [target], [1.0]))
    return records


class Snapshot(TrainerCallback):
    """Keeps the LoRA weights at the start and the trained model at the end."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.initial_lora = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.model = model


@pytest.fixture(scope="module")
def runs(expert, one_hot_records, tmp_path_factory):
    """The same training with left padding (lrkit) and with the authors' right padding."""
    out = {}
    for parity in (False, True):
        snapshot = Snapshot()
        folder = tmp_path_factory.mktemp(f"parity_{parity}") / "run"
        result = train(expert, one_hot_records, folder,
                       TrainConfig(**FAST, parity_right_padding=parity, packing=not parity),
                       callbacks=[snapshot])
        out[parity] = (result, snapshot)
    return out


def targets_not_reached(expert, tokenizer, adapter_dir, records) -> list[str]:
    """Records whose own next-token prediction did not move to their target."""
    base = load_base(expert)
    tuned = PeftModel.from_pretrained(load_base(expert), adapter_dir).eval()
    missed = []
    for record in records:
        ids, target = record["prompt_token_ids"] + record["prefix_token_ids"], record["token_ids"][0]
        before, after = next_token_probs(base, tokenizer, ids), next_token_probs(tuned, tokenizer, ids)
        if not (after[target] > before[target] and int(after.argmax()) == target):
            missed.append(f"prefix of {record['step']}: p(target) {before[target]:.3f} -> "
                          f"{after[target]:.3f}, argmax {int(after.argmax())} vs target {target}")
    return missed


# ---------------------------------------------------------------- the loss

def test_sparse_kl_equals_kl_div_on_dense_vectors():
    torch.manual_seed(0)
    vocab, rows = 16, 20  # 4 output rows beyond the vocabulary
    logits = torch.randn(3, rows) * 3
    targets = [([3, 7, 1], [0.5, 0.3, 0.2]), ([9], [1.0]), ([0, 15], [0.25, 0.75])]
    k = max(len(ids) for ids, _ in targets)
    ids = torch.zeros(3, k, dtype=torch.long)
    weights = torch.zeros(3, k)
    dense = torch.zeros(3, vocab)
    for row, (i, w) in enumerate(targets):
        ids[row, :len(i)], weights[row, :len(w)] = torch.tensor(i), torch.tensor(w)
        dense[row, i] = torch.tensor(w)
    expected = F.kl_div(F.log_softmax(logits[:, :vocab], -1), dense, reduction="none").sum(-1)
    assert torch.allclose(sparse_kl(logits, ids, weights, vocab), expected, atol=1e-6)
    batchmean = F.kl_div(F.log_softmax(logits[:, :vocab], -1), dense, reduction="batchmean")
    assert torch.allclose(sparse_kl(logits, ids, weights, vocab).mean(), batchmean, atol=1e-6)


def test_sparse_kl_gradient_is_the_weighted_cross_entropy_gradient():
    torch.manual_seed(1)
    logits = (torch.randn(2, 10) * 2).requires_grad_()
    ids, weights = torch.tensor([[2, 5, 0], [7, 0, 0]]), torch.tensor([[0.6, 0.4, 0.0], [1.0, 0.0, 0.0]])
    sparse_kl(logits, ids, weights).sum().backward()
    kl_grad = logits.grad.clone()
    logits.grad = None
    dense = torch.zeros(2, 10).scatter(1, ids, weights)
    (-(dense * F.log_softmax(logits, -1)).sum()).backward()
    assert torch.allclose(kl_grad, logits.grad, atol=1e-6)


def test_zero_weight_padding_at_a_minus_inf_logit_gives_no_nan():
    logits = torch.tensor([[0.0, float("-inf"), 1.0]])
    kl = sparse_kl(logits, torch.tensor([[2, 1]]), torch.tensor([[1.0, 0.0]]))
    assert torch.isfinite(kl).all()
    assert kl.item() == pytest.approx(-F.log_softmax(logits, -1)[0, 2].item())


# ---------------------------------------------------------------- examples and batches

def test_examples_use_stored_ids_and_truncate_on_the_left(tokenizer, one_hot_records):
    record = one_hot_records[-1]
    full = record["prompt_token_ids"] + record["prefix_token_ids"]
    [example] = build_examples([record], tokenizer, max_length=10_000)
    assert example["input_ids"] == full
    assert example["target_ids"] == record["token_ids"] and example["target_weights"] == [1.0]
    [short] = build_examples([record], tokenizer, max_length=8)
    assert short["input_ids"] == full[-8:]
    assert short["input_ids"][-1] == record["prefix_token_ids"][-1]  # the supervised position survives


def test_records_without_ids_are_tokenized_like_the_authors_files(tokenizer):
    # the authors' schema: the question in prompt_id, the prefix as text, no ids
    record = {"prompt_id": "Tom has 3 apples. How many?", "step": 5, "prefix": "He has",
              "tokens": ["3"], "token_ids": [tokenizer.convert_tokens_to_ids("3")], "weights": [1.0],
              "kl_divergence": 0.9}
    [example] = build_examples(training.load_records([record]), tokenizer, max_length=512)
    messages = [{"role": "system", "content": AUTHORS_SYSTEM_PROMPT},
                {"role": "user", "content": "Tom has 3 apples. How many?"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + "He has"
    assert example["input_ids"] == tokenizer(text, add_special_tokens=False)["input_ids"]


def test_collator_left_pads_so_position_minus_one_is_every_rows_last_token():
    features = [{"input_ids": [5, 6, 7], "target_ids": [1, 2], "target_weights": [0.7, 0.3]},
                {"input_ids": [8], "target_ids": [3], "target_weights": [1.0]},
                {"input_ids": [9, 10, 11, 12, 13], "target_ids": [4], "target_weights": [1.0]}]
    batch = SoftLabelCollator(pad_token_id=0)(features)
    assert batch["input_ids"][:, -1].tolist() == [7, 8, 13]
    assert batch["attention_mask"].sum(-1).tolist() == [3, 1, 5]
    assert batch["position_ids"][0, -3:].tolist() == [0, 1, 2]  # real tokens count from 0
    assert batch["target_ids"].tolist() == [[1, 2], [3, 0], [4, 0]]
    assert torch.equal(batch["target_weights"], torch.tensor([[0.7, 0.3], [1.0, 0.0], [1.0, 0.0]]))
    parity = SoftLabelCollator(pad_token_id=0, right_padding=True)(features)
    assert parity["input_ids"][:, -1].tolist() == [0, 0, 13]  # the authors' defect: pads at -1


def test_batched_kl_is_each_records_kl_at_its_own_last_token(expert, tokenizer, one_hot_records):
    """Independent reference: each record alone, unpadded, dense KL over the tokenizer's ids."""
    base = load_base(expert)
    examples = build_examples(one_hot_records, tokenizer, max_length=512)
    expected = []
    for example in examples:
        logits = base(input_ids=torch.tensor([example["input_ids"]])).logits[0, -1, :len(tokenizer)]
        dense = torch.zeros(len(tokenizer))
        dense[example["target_ids"]] = torch.tensor(example["target_weights"])
        expected.append(F.kl_div(F.log_softmax(logits, -1), dense, reduction="sum"))
    expected = torch.stack(expected)
    with torch.no_grad():
        left = soft_label_kl(base, SoftLabelCollator(0)(examples), len(tokenizer))
        right = soft_label_kl(base, SoftLabelCollator(0, right_padding=True)(examples), len(tokenizer))
    assert torch.allclose(left, expected, atol=1e-4)
    # right padding reads a pad for every row but the longest
    assert torch.allclose(right[-1], expected[-1], atol=1e-4)
    assert ((right[:-1] - expected[:-1]).abs() > 1e-2).all()


# ---------------------------------------------------------------- training (the judged test)

def test_soft_label_fit_is_the_mean_kl_from_each_soft_label_to_the_experts_next_token(expert, tokenizer):
    """soft_label_fit against plain torch: each record alone, unpadded, in float64,
    KL(v_C || pi_E) = sum_i w_i (log w_i - log pi_E(id_i | prompt + prefix)), then the mean."""
    from lrkit.stages.training import soft_label_fit

    base = load_base(expert)
    prompt = build_prompt_ids(tokenizer, "what is 12+7?", AUTHORS_SYSTEM_PROMPT)
    generator = torch.Generator().manual_seed(1)
    records, kls = [], []
    for length, k in zip((1, 3, 7, 12, 5), (1, 3, 5, 2, 4)):  # padding and several batches below
        prefix = torch.randint(5, len(tokenizer), (length,), generator=generator).tolist()
        ids = (5 + torch.randperm(len(tokenizer) - 5, generator=generator)[:k]).tolist()
        raw = torch.rand(k, generator=generator, dtype=torch.float64) + 0.1
        weights = (raw / raw.sum()).tolist()
        records.append(make_record(tokenizer, prompt, prefix, ids, weights))
        with torch.no_grad():
            logits = base(input_ids=torch.tensor([prompt + prefix])).logits[0, -1, :len(tokenizer)]
        log_pi = torch.log_softmax(logits.double(), -1)[ids]
        w = torch.tensor(weights, dtype=torch.float64)
        kls.append(float((w * (w.log() - log_pi)).sum()))
    expected = sum(kls) / len(kls)
    assert expected > 0.1, "the expert is far from these labels: a fit of 0 would be wrong"
    for batch_size in (2, 32):
        got = soft_label_fit(str(expert), records, device="cpu", dtype="fp32", batch_size=batch_size)
        assert got == pytest.approx(expected, rel=1e-5), batch_size


def test_every_prefix_moves_to_its_own_target(expert, tokenizer, one_hot_records, runs):
    result, _ = runs[False]
    assert targets_not_reached(expert, tokenizer, result.adapter_dir, one_hot_records) == []


def test_the_same_check_fails_when_the_loss_reads_a_pad_position(expert, tokenizer, one_hot_records, runs):
    result, _ = runs[True]
    assert targets_not_reached(expert, tokenizer, result.adapter_dir, one_hot_records) != []


def test_logged_kl_is_the_kl_at_each_records_last_real_token(expert, tokenizer, one_hot_records, runs):
    base = load_base(expert)
    expected = sum(-torch.log(next_token_probs(base, tokenizer, r["prompt_token_ids"] + r["prefix_token_ids"])
                              [r["token_ids"][0]]).item() for r in one_hot_records) / len(one_hot_records)
    # step 1 runs the untouched base (LoRA B starts at zero)
    assert runs[False][0].loss_history[0]["kl"] == pytest.approx(expected, rel=1e-4)
    assert abs(runs[True][0].loss_history[0]["kl"] - expected) > 1e-2


def test_lora_weights_change_and_base_weights_do_not(expert, runs):
    _, snapshot = runs[False]
    original = load_base(expert).state_dict()
    trainable = {n for n, p in snapshot.model.named_parameters() if p.requires_grad}
    assert trainable == set(snapshot.initial_lora) and trainable
    assert {n.split(".lora_")[0].rsplit(".", 1)[1] for n in trainable} == {"q_proj", "v_proj"}
    for name, param in snapshot.model.named_parameters():
        if "lora_" in name:
            assert not torch.equal(param.detach(), snapshot.initial_lora[name]), name
        else:
            key = name.removeprefix("base_model.model.").replace(".base_layer", "")
            assert torch.equal(param.detach(), original[key]), name


def test_run_outputs(runs, one_hot_records):
    result, _ = runs[False]
    folder = result.adapter_dir
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json",
                 "trainer_state.json", "loss.jsonl", "lrkit_train.json"):
        assert (folder / name).exists(), name
    lines = [json.loads(line) for line in (folder / "loss.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == list(range(1, FAST["max_steps"] + 1))
    assert [line["kl"] for line in lines] == [e["kl"] for e in result.loss_history]
    assert lines[-1]["kl"] < lines[0]["kl"] / 2
    assert result.tuned_tokens == FAST["max_steps"] * len(one_hot_records)  # one position per record per step
    assert result.problems == 1 and result.examples == len(one_hot_records)
    assert result.steps == FAST["max_steps"]


def test_merged_model_gives_the_adapters_logits(expert, tokenizer, one_hot_records, runs, tmp_path):
    adapter_dir = runs[False][0].adapter_dir
    merged_dir = merge(expert, adapter_dir, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()  # plain transformers
    with_adapter = PeftModel.from_pretrained(load_base(expert), adapter_dir).eval()
    batch = SoftLabelCollator(0)(build_examples(one_hot_records, tokenizer, max_length=512))
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids")}
    with torch.no_grad():
        expected, got = with_adapter(**inputs).logits, merged(**inputs).logits
        untuned = load_base(expert)(**inputs).logits
    mask = batch["attention_mask"].bool()
    # float32 rounding only: merged W + BA vs W x + B(A x), through logits as large as ~12
    scale = expected[mask].abs().max()
    assert (got[mask] - expected[mask]).abs().max() <= 1e-5 * scale
    assert (untuned[mask] - expected[mask]).abs().max() > 1e-2  # the adapter does change the model
    assert load_tokenizer(merged_dir).get_vocab() == tokenizer.get_vocab()


# ---------------------------------------------------------------- bad inputs

def _bad_records(tokenizer, records):
    good = records[0]
    other = make_tokenizer(chars="abcdefghijklmnopqrstuvwxyz0123456789 .,")
    return {
        "weights that do not sum to 1": ([{**good, "token_ids": [7, 8], "weights": [0.5, 0.4],
                                           "tokens": ["a", "b"]}], "sums to 0.9"),
        "an id outside the vocabulary": ([{**good, "token_ids": [len(tokenizer)]}],  # an extra output row
                                         "outside the vocabulary"),
        "an empty record file": ([], "holds no records"),
        "another expert's tokenizer": ([{**good, "tokenizer_fingerprint": tokenizer_fingerprint(other)}],
                                       "another tokenizer"),
    }


@pytest.mark.parametrize("case", ["weights that do not sum to 1", "an id outside the vocabulary",
                                  "an empty record file", "another expert's tokenizer"])
def test_bad_records_are_refused_before_any_model_or_file(case, expert, tokenizer, one_hot_records,
                                                          tmp_path, monkeypatch):
    records, message = _bad_records(tokenizer, one_hot_records)[case]
    path = tmp_path / "records.jsonl"
    write_records(records, path)

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the records were checked")

    monkeypatch.setattr(training, "load_expert", no_model)
    with pytest.raises(RecordError, match=message):
        train(expert, path, tmp_path / "out", TrainConfig(**FAST))
    assert not (tmp_path / "out").exists()


def test_a_folder_with_other_files_is_refused(expert, one_hot_records, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(FolderError, match="notes.txt but no training run"):
        train(expert, one_hot_records, tmp_path / "out", TrainConfig(**FAST))
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["notes.txt"]


# ---------------------------------------------------------------- resume

class Crash(TrainerCallback):
    def __init__(self, at_step):
        self.at_step = at_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.global_step == self.at_step:
            raise KeyboardInterrupt


@pytest.mark.parametrize("packing", [True, False])
def test_an_interrupted_run_resumes_to_the_uninterrupted_result(expert, one_hot_records, tmp_path, packing):
    config = TrainConfig(**{**FAST, "per_device_batch_size": 2, "max_steps": 4, "save_steps": 2, "packing": packing})
    straight = train(expert, one_hot_records, tmp_path / "straight", config)

    with pytest.raises(KeyboardInterrupt):  # after the checkpoint at step 2 and the log of step 3
        train(expert, one_hot_records, tmp_path / "resumed", config, callbacks=[Crash(at_step=3)])
    assert (tmp_path / "resumed" / "checkpoint-2").is_dir()
    assert not (tmp_path / "resumed" / "adapter_model.safetensors").exists()
    resumed = train(expert, one_hot_records, tmp_path / "resumed", config, resume=True)

    assert resumed.resumed_from.endswith("checkpoint-2")
    assert [e["step"] for e in resumed.loss_history] == [1, 2, 3, 4]
    assert [e["kl"] for e in resumed.loss_history] == pytest.approx([e["kl"] for e in straight.loss_history],
                                                                    rel=1e-5)
    lines = [json.loads(line) for line in (tmp_path / "resumed" / "loss.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3, 4]
    assert resumed.tuned_tokens == straight.tuned_tokens == 4 * 2
    a = load_file(tmp_path / "straight" / "adapter_model.safetensors")
    b = load_file(tmp_path / "resumed" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key


def test_resuming_a_finished_run_changes_nothing(expert, one_hot_records, tmp_path):
    """The Trainer, resumed at its last step, would start another epoch and take
    one more step; a finished run must come back as it was."""
    config = TrainConfig(**{**FAST, "per_device_batch_size": 3, "max_steps": 3, "save_steps": 50})
    run = tmp_path / "run"
    first = train(expert, one_hot_records, run, config)
    assert (run / "checkpoint-3").is_dir()
    adapter = (run / "adapter_model.safetensors").read_bytes()
    again = train(expert, one_hot_records, run, config, resume=True)  # the stored run, as it was
    assert again == first
    assert again.steps == first.steps == 3
    # 4 records, batch 3: an epoch is a batch of 3 and one of 1; step 3 starts epoch 2
    assert again.tuned_tokens == first.tuned_tokens == 3 + 1 + 3
    assert again.loss_history == first.loss_history
    assert [json.loads(line)["step"] for line in (run / "loss.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert json.loads((run / "trainer_state.json").read_text())["global_step"] == 3
    assert (run / "adapter_model.safetensors").read_bytes() == adapter
    # Killed after the final checkpoint but before the adapter was saved: restored from it.
    (run / "adapter_model.safetensors").unlink()
    restored = train(expert, one_hot_records, run, config, resume=True)
    assert restored.steps == 3 and restored.tuned_tokens == 7
    reloaded = load_file(run / "adapter_model.safetensors")
    with open(tmp_path / "first.safetensors", "wb") as handle:
        handle.write(adapter)
    original = load_file(tmp_path / "first.safetensors")
    assert original.keys() == reloaded.keys()
    for key in original:
        assert torch.equal(original[key], reloaded[key]), key


@pytest.mark.parametrize("packing", [True, False])
def test_a_finished_run_resumed_with_more_steps_goes_on(expert, one_hot_records, tmp_path, packing):
    short = TrainConfig(**{**FAST, "per_device_batch_size": 2, "max_steps": 2, "save_steps": 50, "packing": packing})
    longer = TrainConfig(**{**FAST, "per_device_batch_size": 2, "max_steps": 4, "save_steps": 50, "packing": packing})
    straight = train(expert, one_hot_records, tmp_path / "straight", longer)
    train(expert, one_hot_records, tmp_path / "run", short)
    extended = train(expert, one_hot_records, tmp_path / "run", longer, resume=True)
    assert extended.steps == straight.steps == 4
    assert extended.tuned_tokens == straight.tuned_tokens == 4 * 2
    assert [e["step"] for e in extended.loss_history] == [1, 2, 3, 4]


def test_resume_refuses_other_records(expert, one_hot_records, tmp_path):
    config = TrainConfig(**{**FAST, "max_steps": 1})
    train(expert, one_hot_records, tmp_path / "run", config)
    with pytest.raises(FolderError, match="examples"):
        train(expert, one_hot_records[:2], tmp_path / "run", config, resume=True)


# ---------------------------------------------------------------- precision

def test_auto_precision(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_precision("auto") == "fp32"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # torch says so on a T4 too
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (8, 0))
    assert resolve_precision("auto") == "bf16"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (7, 5))
    assert resolve_precision("auto") == "fp16"  # e.g. a Colab T4 (tests/test_precision_branches.py)
    assert resolve_precision("fp32") == "fp32"


# ---------------------------------------------------------------- command line

def test_lrkit_train_and_merge_commands(expert, tokenizer, one_hot_records, tmp_path, capsys):
    from lrkit.cli import main

    records = tmp_path / "records.jsonl"
    write_records(one_hot_records, records)
    assert main(["train", "--expert", str(expert), "--records", str(records), "--out", str(tmp_path / "run"),
                 "--max-steps", "2", "--per-device-batch-size", "4", "--learning-rate", "0.01",
                 "--save-steps", "100", "--target-modules", "q_proj", "v_proj", "o_proj"]) == 0
    saved = json.loads((tmp_path / "run" / "lrkit_train.json").read_text())
    assert saved["config"]["max_steps"] == 2 and saved["config"]["learning_rate"] == 0.01
    assert saved["config"]["target_modules"] == ["q_proj", "v_proj", "o_proj"]
    assert saved["result"]["steps"] == 2
    assert main(["merge", "--expert", str(expert), "--adapter", str(tmp_path / "run"),
                 "--out", str(tmp_path / "merged")]) == 0
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "merged").config.vocab_size == len(tokenizer) + EXTRA_ROWS
    # the same merge again finds it done; another one is one clear line, not a traceback
    assert main(["merge", "--expert", str(expert), "--adapter", str(tmp_path / "run"),
                 "--out", str(tmp_path / "merged")]) == 0
    capsys.readouterr()
    assert main(["merge", "--expert", str(expert), "--adapter", str(tmp_path / "run"),
                 "--out", str(tmp_path / "merged"), "--dtype", "bf16"]) == 2
    err = capsys.readouterr().err.strip()
    assert "differs in: dtype" in err and "\n" not in err


# ---------------------------------------------------------------- killed, then resumed; non-finite logits

def _train_cli(expert, records, out, *extra):
    return [sys.executable, "-m", "lrkit", "train", "--expert", str(expert), "--records", str(records),
            "--out", str(out), "--max-steps", "8", "--per-device-batch-size", "2", "--learning-rate", "0.02",
            "--save-steps", "2", "--logging-steps", "1", "--report-to", "none", *extra]


def _kill_mid_training(expert, records, killed, env, marker: str = "trainer_state.json"):
    """Start a run and SIGKILL it once ``checkpoint-4/<marker>`` exists."""
    proc = subprocess.Popen(_train_cli(expert, records, killed), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (killed / "checkpoint-4" / marker).exists():
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "adapter_model.safetensors").exists(), "the kill must land before the end"


def _complete_checkpoints(folder: Path) -> list[int]:
    """Checkpoints whose saving finished: lrkit's progress file is written after the Trainer's files."""
    return sorted(int(p.parent.name.split("-")[1]) for p in folder.glob(f"checkpoint-*/{PROGRESS_FILE}"))


def _assert_same_as_straight(killed: Path, straight: Path, resumed_from: int):
    run = json.loads((killed / "lrkit_train.json").read_text())
    expected_run = json.loads((straight / "lrkit_train.json").read_text())
    assert run["result"]["resumed_from"].endswith(f"checkpoint-{resumed_from}")
    assert run["result"]["steps"] == expected_run["result"]["steps"] == 8
    # one-hot records: one supervised position a row; 8 steps of 2 rows x 2 accumulation steps
    assert run["result"]["tuned_tokens"] == expected_run["result"]["tuned_tokens"] == 8 * 2 * 2
    losses = [json.loads(line) for line in (killed / "loss.jsonl").read_text().splitlines()]
    expected = [json.loads(line) for line in (straight / "loss.jsonl").read_text().splitlines()]
    assert [e["step"] for e in losses] == [e["step"] for e in expected] == list(range(1, 9))
    assert [e["kl"] for e in losses] == pytest.approx([e["kl"] for e in expected], rel=1e-5)
    a = load_file(straight / "adapter_model.safetensors")
    b = load_file(killed / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    moved = 0.0
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6, rtol=0), key
        moved = max(moved, float(a[key].abs().max()))
    assert moved > 1e-3, "the adapter must have trained for the comparison to mean anything"


@pytest.fixture(scope="module")
def straight_run(expert, one_hot_records, tmp_path_factory):
    """An uninterrupted 8-step run (one thread, in a subprocess) and its records."""
    folder = tmp_path_factory.mktemp("straight")
    records = folder / "records.jsonl"
    write_records(one_hot_records, records)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    subprocess.run(_train_cli(expert, records, folder / "run"), check=True, env=env, capture_output=True)
    return records, folder / "run", env


def test_sigkill_mid_training_then_resume_gives_the_uninterrupted_adapter(expert, straight_run, tmp_path):
    """A process killed outright (no exception handler runs) between checkpoints: the rerun
    with --resume starts from the last complete checkpoint and ends with the adapter, loss
    curve and counts of a run that was never interrupted (both runs in subprocesses with one
    thread, so the float sums are the same)."""
    records, straight, env = straight_run
    killed = tmp_path / "killed"
    _kill_mid_training(expert, records, killed, env)
    done = _complete_checkpoints(killed)
    assert done and 2 <= done[-1] < 8
    resumed = subprocess.run(_train_cli(expert, records, killed, "--resume"), env=env, capture_output=True,
                             text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _assert_same_as_straight(killed, straight, done[-1])


def test_last_complete_checkpoint_skips_folders_without_the_progress_file(tmp_path):
    """Independent of any training: checkpoint folders built by hand."""
    assert last_complete_checkpoint(tmp_path) is None
    for step, files in ((2, ("trainer_state.json", PROGRESS_FILE)), (10, ("trainer_state.json", PROGRESS_FILE)),
                        (12, ("trainer_state.json",)), (14, ())):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        for name in files:
            (folder / name).write_text("{}")
    (tmp_path / "checkpoint-x").mkdir()
    (tmp_path / "checkpoint-99").write_text("a file, not a folder")
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-10"  # 10 > 2 numerically


def test_a_checkpoint_cut_while_saving_is_skipped_on_resume(expert, straight_run, tmp_path):
    """The kill lands after the Trainer wrote checkpoint-N's trainer_state.json but before
    lrkit's progress file (the count of tuned tokens): made certain here by removing that
    file. The resume must start from the checkpoint before, not from the cut one with a
    count of zero (CI once saw 16 tuned tokens reported as 8 from such a folder)."""
    records, straight, env = straight_run
    killed = tmp_path / "killed"
    _kill_mid_training(expert, records, killed, env, marker=PROGRESS_FILE)
    done = _complete_checkpoints(killed)
    assert len(done) >= 2 and done[-1] < 8, done
    cut = killed / f"checkpoint-{done[-1]}"
    (cut / PROGRESS_FILE).unlink()
    assert (cut / "trainer_state.json").exists()
    resumed = subprocess.run(_train_cli(expert, records, killed, "--resume"), env=env, capture_output=True,
                             text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _assert_same_as_straight(killed, straight, done[-2])


def _nan_model(path: Path, tokenizer, layer_weight: str = "model.layers.0.self_attn.q_proj.weight") -> Path:
    model = make_model(tokenizer, seed=3, hidden=64, extra_rows=EXTRA_ROWS)
    with torch.no_grad():
        dict(model.named_parameters())[layer_weight][0, 0] = float("nan")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_a_model_whose_weights_give_nan_stops_training_with_one_line(tokenizer, one_hot_records, tmp_path):
    from lrkit.maths.divergence import NonFiniteLogitsError

    broken = _nan_model(tmp_path / "broken", tokenizer)
    config = TrainConfig(**{**FAST, "max_steps": 2})
    with pytest.raises(NonFiniteLogitsError) as error:
        train(broken, one_hot_records, tmp_path / "run", config)
    message = str(error.value)
    assert message.startswith(f"training: {broken} (fp32) gave non-finite logits")
    assert "fp32" in message and "bf16" in message and "\n" not in message
    assert not (tmp_path / "run" / "adapter_model.safetensors").exists()
    assert not list((tmp_path / "run").glob("checkpoint-*")), "no step was taken on a NaN loss"

    records = tmp_path / "records.jsonl"
    write_records(one_hot_records, records)
    code = subprocess.run(_train_cli(broken, records, tmp_path / "cli"), capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert code.returncode == 2
    lines = [line for line in code.stderr.replace("\r", "\n").splitlines() if "lrkit train: error:" in line]
    assert len(lines) == 1 and "non-finite logits" in lines[0] and "Traceback" not in code.stderr
