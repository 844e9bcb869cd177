"""Device and precision branches with the CUDA capability mocked: a T4 (7.5) takes
fp16 models and a Trainer with fp16=True, bf16=False; an A100 (8.0) or H100 (9.0)
takes bf16; the CPU fp32. On every branch the KL, the soft labels and the loss
are float32. Cross-cutting: it covers lrkit.models.loading (device and dtype
choice), lrkit.stages.training (the Trainer's precision flags and loss),
lrkit.maths.divergence and lrkit.stages.sampling (float32 scoring).

The mock is what torch reports on each card: ``is_bf16_supported()`` answers True
on a T4 too (bf16 emulated there), which is why lrkit reads the capability.
Models cannot move to a mocked GPU, so ``Module.to(cuda)`` is recorded and the
tensors stay on the CPU, in the dtype the branch chose.
"""
from __future__ import annotations

import math
import os
import types

import pytest
import torch

from lrkit.config import SampleConfig, TrainConfig
from lrkit.maths import divergence
from lrkit.models import loading as models
from lrkit.stages import training
from tiny_models import save_pair

CARDS = {  # name: (capability, precision, dtype)
    "Tesla T4": ((7, 5), "fp16", torch.float16),
    "NVIDIA A100-SXM4-40GB": ((8, 0), "bf16", torch.bfloat16),
    "NVIDIA H100 80GB HBM3": ((9, 0), "bf16", torch.bfloat16),
}
PROBLEMS = [{"id": f"p{i}", "question": f"Kim has {i + 1} pens and {2 * i} more. How many?",
             "answer": str(3 * i + 1)} for i in range(3)]


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """TrainingArguments under a mocked GPU sets accelerate's process-wide state
    (device, mixed precision; transformers 4.x also $ACCELERATE_MIXED_PRECISION);
    later tests in the process must not inherit it."""
    before = {k: v for k, v in os.environ.items() if k.startswith("ACCELERATE_")}
    yield
    for key in [k for k in os.environ if k.startswith("ACCELERATE_")]:
        if key not in before:
            del os.environ[key]
    os.environ.update(before)
    from accelerate.state import AcceleratorState, PartialState

    AcceleratorState._reset_state(reset_partial_state=True)
    PartialState._reset_state()


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return save_pair(tmp_path_factory.mktemp("branches"), expert_rows=3, eos_boost=1.0)


def fake_gpu(monkeypatch, name: str, capability: tuple) -> list:
    """CUDA reported present with one card of ``capability``; returns the list
    of modules asked to move to it."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)  # TrainingArguments selects cuda:0
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda device=None: types.SimpleNamespace(name=name, major=capability[0],
                                                                  minor=capability[1], total_memory=16 << 30))
    # torch's own answer on each card: bf16 "supported" everywhere, emulated below 8.0
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: including_emulation or capability[0] >= 8)
    moved = []
    original_to = torch.nn.Module.to

    def to(self, *args, **kwargs):
        target = args[0] if args else kwargs.get("device")
        if isinstance(target, (str, torch.device)) and torch.device(target).type == "cuda":
            moved.append(self)
            return self
        return original_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", to)
    return moved


def fake_cpu_only(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.mark.parametrize("card", list(CARDS))
def test_each_card_gets_its_precision(card, monkeypatch, tmp_path):
    capability, precision, dtype = CARDS[card]
    fake_gpu(monkeypatch, card, capability)
    device = models.choose_device()
    assert device.type == "cuda"
    assert models.choose_dtype(device) == dtype
    assert models.choose_dtype(torch.device("cuda:0")) == dtype
    assert training.resolve_precision("auto") == precision
    args = training.training_arguments(TrainConfig(), tmp_path, training.resolve_precision("auto"))
    assert (args.fp16, args.bf16) == (precision == "fp16", precision == "bf16")


def test_the_cpu_gets_fp32(monkeypatch, tmp_path):
    fake_cpu_only(monkeypatch)
    device = models.choose_device()
    assert device == torch.device("cpu")
    assert models.choose_dtype(device) == torch.float32
    assert training.resolve_precision("auto") == "fp32"
    args = training.training_arguments(TrainConfig(), tmp_path, "fp32")
    assert (args.fp16, args.bf16) == (False, False)


def test_a_t4_is_not_given_emulated_bf16(monkeypatch):
    """What 21e9db8 did: ``is_bf16_supported()`` is True on a T4, so "auto" chose bf16."""
    fake_gpu(monkeypatch, "Tesla T4", (7, 5))
    assert torch.cuda.is_bf16_supported()  # the mock answers as torch does on a T4
    assert models.choose_dtype(torch.device("cuda")) == torch.float16


@pytest.mark.parametrize("card", [*CARDS, "cpu"])
def test_models_load_in_the_branch_dtype_and_score_in_float32(card, pair, monkeypatch, tmp_path):
    from lrkit.stages.sampling import sample

    if card == "cpu":
        fake_cpu_only(monkeypatch)
        moved, dtype = [], torch.float32
    else:
        capability, _, dtype = CARDS[card]
        moved = fake_gpu(monkeypatch, card, capability)
    loaded = models.load_pair(str(pair[0]), str(pair[1]))  # device and dtype "auto"
    assert next(loaded.expert.parameters()).dtype == next(loaded.amateur.parameters()).dtype == dtype
    assert [m is loaded.expert or m is loaded.amateur for m in moved] == [True] * len(moved)
    assert len(moved) == (0 if card == "cpu" else 2)

    seen = []
    original = divergence.step_statistics

    def spy(*args, **kwargs):
        result = original(*args, **kwargs)
        seen.append((args, result))
        return result

    monkeypatch.setattr(divergence, "step_statistics", spy)
    result = sample(loaded, None, PROBLEMS, tmp_path / "run",
                    SampleConfig(max_new_tokens=8, beta=0.0, batch_size=3), progress=False)
    assert seen
    for (expert_logits, amateur_logits, *_), (stats, e_logp, a_logp) in seen:
        assert expert_logits.dtype == amateur_logits.dtype == dtype
        assert e_logp.dtype == a_logp.dtype == stats.kl.dtype == torch.float32
        # the KL as float64 maths gives it from the same logits, upcast first
        vocab = e_logp.shape[-1]
        p = torch.log_softmax(expert_logits[..., :vocab].double(), -1)
        q = torch.log_softmax(amateur_logits[..., :vocab].double(), -1)
        reference = (p.exp() * (p - q)).sum(-1)
        assert torch.allclose(stats.kl.double(), reference.reshape(stats.kl.shape), atol=1e-4, rtol=1e-4)
    records = result.records()
    assert records
    for record in records:
        assert all(math.isfinite(w) and w > 0 for w in record["weights"])
        assert abs(sum(record["weights"]) - 1.0) < 1e-5  # float32 normalisation, not half's 1e-3

    # The training loss on this branch's model: float32, as float64 maths gives it.
    model = loaded.expert
    ids = torch.tensor([records[0]["prompt_token_ids"] + records[0]["prefix_token_ids"]])
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
             "target_ids": torch.tensor([records[0]["token_ids"]]),
             "target_weights": torch.tensor([records[0]["weights"]], dtype=torch.float32)}
    with torch.no_grad():
        kl = training.soft_label_kl(model, batch, loaded.vocab_size)
        logits = model(input_ids=ids).logits[0, -1, :loaded.vocab_size]
    assert kl.dtype == torch.float32
    logp = torch.log_softmax(logits.double(), -1)[batch["target_ids"][0]]
    w = batch["target_weights"][0].double()
    assert kl.item() == pytest.approx((w * (w.log() - logp)).sum().item(), rel=1e-4, abs=1e-5)
