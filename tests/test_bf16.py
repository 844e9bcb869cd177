"""bf16 on the CPU, the dtype a GPU run uses: sampling, training and evaluation on
tiny models give finite values, and the numbers the method rests on (KL, soft
labels, the training loss) are computed in float32 from a bf16 model.
Cross-cutting: it covers lrkit.stages.sampling, lrkit.stages.training and
lrkit.stages.packing (the loss), lrkit.evaluation and lrkit.maths.divergence."""
from __future__ import annotations

import json
import math

import pytest
import torch

from lrkit.config import EvalConfig, SampleConfig, TrainConfig
from lrkit.evaluation import evaluate
from lrkit.maths import divergence
from lrkit.models.loading import load_model
from lrkit.stages import packing, training
from lrkit.stages.sampling import sample

PROBLEMS = [{"id": f"b{i}", "question": f"Kim has {i + 1} pens and {2 * i} more. How many?", "answer": str(3 * i + 1)}
            for i in range(4)]


def spy(monkeypatch, module, name, seen: list):
    original = getattr(module, name)

    def wrapped(*args, **kwargs):
        result = original(*args, **kwargs)
        seen.append((args, result))
        return result

    monkeypatch.setattr(module, name, wrapped)


def test_bf16_sampling_scores_in_float32(pair_paths, tmp_path, monkeypatch):
    seen = []
    spy(monkeypatch, divergence, "step_statistics", seen)
    result = sample(str(pair_paths[0]), str(pair_paths[1]), PROBLEMS, tmp_path / "run",
                    SampleConfig(max_new_tokens=10, beta=0.5, batch_size=2), device="cpu", dtype="bf16",
                    progress=False)
    assert seen
    for (expert_logits, amateur_logits, *_), (stats, e_logp, a_logp) in seen:
        assert expert_logits.dtype == amateur_logits.dtype == torch.bfloat16
        assert e_logp.dtype == a_logp.dtype == stats.kl.dtype == torch.float32
    steps = result.steps()
    assert len(steps) and all(math.isfinite(v) for column in ("kl", "expert_entropy", "amateur_entropy",
                                                              "expert_logprob", "amateur_logprob")
                              for v in steps[column])
    records = result.records()
    assert records
    for record in records:
        assert all(math.isfinite(w) and w > 0 for w in record["weights"])
        # float32 softmax: sums to 1 far closer than bf16's 3 significant digits would
        assert abs(sum(record["weights"]) - 1.0) < 1e-5


@pytest.mark.parametrize("packed", [True, False])
def test_bf16_training_loss_in_float32(pair_paths, tmp_path, monkeypatch, packed):
    run = tmp_path / "run"
    sample(str(pair_paths[0]), str(pair_paths[1]), PROBLEMS, run, SampleConfig(max_new_tokens=10, beta=0.5),
           device="cpu", progress=False)
    seen = []
    spy(monkeypatch, packing if packed else training, "sparse_kl", seen)  # where each layout calls the loss
    result = training.train(str(pair_paths[0]), run / "records.jsonl", tmp_path / "adapter",
                            TrainConfig(precision="bf16", max_steps=3, per_device_batch_size=2,
                                        gradient_accumulation_steps=1, save_steps=100, logging_steps=1,
                                        packing=packed),
                            progress=False)
    assert seen
    for (logits, *_), kl in seen:
        # bf16 weights; the model may hand back its logits upcast
        assert logits.dtype in (torch.bfloat16, torch.float32)
        assert kl.dtype == torch.float32
    losses = [entry["kl"] for entry in result.loss_history]
    assert len(losses) == 3 and all(math.isfinite(v) and v >= 0 for v in losses)
    saved = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert saved["r"] == TrainConfig().lora_r


def test_bf16_evaluation_is_finite(pair_paths, tmp_path):
    model, tokenizer = load_model(str(pair_paths[0]), device="cpu", dtype="bf16")
    assert next(model.parameters()).dtype == torch.bfloat16
    result = evaluate(model, PROBLEMS, EvalConfig(max_new_tokens=10, batch_size=2), tokenizer=tokenizer,
                      out_dir=tmp_path / "eval", progress=False)
    assert result.n == len(PROBLEMS)
    assert (result.df["n_tokens"] > 0).all()
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    low, high = summary["interval"]
    assert 0.0 <= low <= summary["accuracy"] <= high <= 1.0
