"""The SFT baseline: rollouts, the right ones kept, cross-entropy on rollout tokens."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

import lrkit.stages.sft
from lrkit.config import AUTHORS_SYSTEM_PROMPT, TrainConfig
from lrkit.data.answers import Problem
from lrkit.models.generation import greedy_generate
from lrkit.models.loading import load_tokenizer
from lrkit.models.prompts import build_prompt_ids
from lrkit.stages.sft import CausalLMCollator, answer_is_right, run_sft, sft_config, sft_examples
from tiny_models import make_model, make_tokenizer

PROBLEMS = [{"id": f"p{i}", "question": f"what is {a}+{b}?", "answer": f"{a} plus {b}\n#### {a + b}"}
            for i, (a, b) in enumerate([(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12)])]
JUDGED_RIGHT = {"p0", "p1", "p2", "p3"}
MAX_NEW_TOKENS = 24


@pytest.fixture(scope="module")
def expert(tmp_path_factory):
    """A tiny expert whose rollouts differ in length; some stop at EOS, some run out."""
    path = tmp_path_factory.mktemp("sft_expert")
    tokenizer = make_tokenizer()
    make_model(tokenizer, seed=4, eos_boost=1.0).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def judge(text, problem):
    return problem.id in JUDGED_RIGHT


def test_answer_check_uses_the_gold_after_hashes():
    problem = Problem("p", "what is 12+7?", "12 plus 7 is 19\n#### 19")
    assert answer_is_right("12 + 7 = 19, so the answer is \\boxed{19}.", problem)
    assert not answer_is_right("12 + 7 = 18, so the answer is \\boxed{18}.", problem)
    assert not answer_is_right("I do not know", problem)


def test_examples_mask_the_prompt_and_cut_the_end():
    rollouts = [{"prompt_token_ids": [5, 6, 7], "token_ids": [8, 9, 1]},
                {"prompt_token_ids": [5, 6, 7, 8, 9, 10], "token_ids": [11]}]
    full, cut = sft_examples(rollouts, max_length=100), sft_examples(rollouts, max_length=5)
    assert full[0] == {"input_ids": [5, 6, 7, 8, 9, 1], "labels": [-100, -100, -100, 8, 9, 1]}
    assert cut[0] == {"input_ids": [5, 6, 7, 8, 9], "labels": [-100, -100, -100, 8, 9]}
    assert len(cut) == 1  # the second has no rollout token left within 5: dropped


def test_batched_loss_is_the_mean_cross_entropy_over_rollout_tokens(expert):
    model = AutoModelForCausalLM.from_pretrained(expert).eval()
    rollouts = [{"prompt_token_ids": [5, 6, 7], "token_ids": [8, 9, 1]},
                {"prompt_token_ids": [10, 11, 12, 13, 14, 15], "token_ids": [16, 17]}]
    batch = CausalLMCollator(pad_token_id=0)(sft_examples(rollouts, max_length=100))
    losses = []
    for r in rollouts:  # each alone, unpadded: -log p(rollout token | everything before it)
        ids = torch.tensor([r["prompt_token_ids"] + r["token_ids"]])
        log_probs = F.log_softmax(model(input_ids=ids).logits[0].float(), -1)
        start = len(r["prompt_token_ids"])
        losses += [-log_probs[t - 1, ids[0, t]] for t in range(start, ids.shape[1])]
    with torch.no_grad():
        assert model(**batch).loss.item() == pytest.approx(torch.stack(losses).mean().item(), rel=1e-5)


def test_sft_keeps_right_finished_rollouts_and_tunes_on_their_tokens(expert, tmp_path, monkeypatch):
    tokenizer = load_tokenizer(expert)
    model = AutoModelForCausalLM.from_pretrained(expert).eval()
    prompts = [build_prompt_ids(tokenizer, p["question"], AUTHORS_SYSTEM_PROMPT) for p in PROBLEMS]
    generations = greedy_generate(model, tokenizer, prompts, MAX_NEW_TOKENS)
    kept = [g for p, g in zip(PROBLEMS, generations) if p["id"] in JUDGED_RIGHT and g.finished]
    assert 0 < len(kept) < len(JUDGED_RIGHT)  # the fixture has right-but-cut-off rollouts to drop

    config = TrainConfig(learning_rate=1e-3, logging_steps=1, save_steps=100)
    result = run_sft(expert, PROBLEMS, tmp_path / "sft", config, max_new_tokens=MAX_NEW_TOKENS, judge=judge)

    rows = [json.loads(line) for line in (tmp_path / "sft" / "rollouts.jsonl").read_text().splitlines()]
    assert [r["token_ids"] for r in rows] == [g.token_ids for g in generations]
    assert [r["correct"] for r in rows] == [p["id"] in JUDGED_RIGHT for p in PROBLEMS]
    assert result.problems_rolled_out == len(PROBLEMS)
    assert result.problems_used == len(kept)
    assert result.tuned_tokens == sum(len(g.token_ids) for g in kept)  # one pass over rollout tokens
    assert result.rollout_tokens == sum(len(g.token_ids) for g in generations)
    assert result.train.steps == math.ceil(len(kept) / (4 * 4))
    assert (tmp_path / "sft" / "adapter_model.safetensors").exists()
    assert "ce" in json.loads((tmp_path / "sft" / "loss.jsonl").read_text().splitlines()[0])
    summary = result.summary()
    assert summary["method"] == "SFT" and summary["tuned_tokens"] == result.tuned_tokens
    assert summary["seconds"] == pytest.approx(summary["rollout_seconds"] + summary["train_seconds"], abs=0.02)
    card = (tmp_path / "sft" / "README.md").read_text()  # lrkit's card, not peft's boilerplate
    assert "Model Card for Model ID" not in card and "library_name: peft" in card
    assert f"| training examples (the expert's right rollouts) | {len(kept)} |" in card
    assert str(expert) not in card and "base_model" not in card  # a local expert has no public name

    def no_rollouts(*args, **kwargs):
        raise AssertionError("the stored rollouts were not reused")

    monkeypatch.setattr(lrkit.stages.sft, "rollout", no_rollouts)
    again = run_sft(expert, PROBLEMS, tmp_path / "sft", config, max_new_tokens=MAX_NEW_TOKENS, judge=judge,
                resume=True)
    assert (again.problems_used, again.tuned_tokens) == (result.problems_used, result.tuned_tokens)


def test_sft_rollouts_cut_off_resume_after_their_last_finished_batch(expert, tmp_path, monkeypatch):
    """Six problems in batches of 2: cut off in the second batch, the rerun (resume=True)
    generates the two batches left, and the rollouts equal an uninterrupted run's."""
    config = TrainConfig(learning_rate=1e-3, logging_steps=1, save_steps=100)
    options = dict(max_new_tokens=MAX_NEW_TOKENS, judge=judge, generation_batch_size=2)
    run_sft(expert, PROBLEMS, tmp_path / "straight", config, **options)
    real, calls, cut = lrkit.stages.sft.greedy_generate_batch, [], [2]

    class Disconnected(Exception):
        pass

    def cut_off_at_two(*args, **kwargs):
        calls.append(len(args[2]))
        if len(calls) in cut:
            cut.clear()
            raise Disconnected
        return real(*args, **kwargs)

    monkeypatch.setattr(lrkit.stages.sft, "greedy_generate_batch", cut_off_at_two)
    with pytest.raises(Disconnected):
        run_sft(expert, PROBLEMS, tmp_path / "cut", config, **options)
    partial = tmp_path / "cut" / "rollouts.partial.jsonl"
    assert len(partial.read_text().splitlines()) == 2 and not (tmp_path / "cut" / "rollouts.jsonl").exists()
    calls.clear()
    resumed = run_sft(expert, PROBLEMS, tmp_path / "cut", config, resume=True, **options)
    assert calls == [2, 2], "only the two batches left were generated"
    assert (tmp_path / "cut" / "rollouts.jsonl").read_text() == (tmp_path / "straight" / "rollouts.jsonl").read_text()
    assert not partial.exists()
    assert resumed.problems_used == lrkit.stages.sft.SFTResult.load(tmp_path / "straight").problems_used


def test_sft_defaults_are_the_papers():
    config = sft_config()
    assert (config.per_device_batch_size, config.gradient_accumulation_steps) == (4, 4)
    assert (config.lora_r, config.lora_alpha, config.target_modules) == (8, 16, ("q_proj", "v_proj"))


def test_no_right_rollout_is_a_clear_error_and_keeps_the_rollouts(expert, tmp_path):
    with pytest.raises(ValueError, match="nothing to train on"):
        run_sft(expert, PROBLEMS[:2], tmp_path / "sft", max_new_tokens=4, judge=lambda text, problem: False)
    assert len((tmp_path / "sft" / "rollouts.jsonl").read_text().splitlines()) == 2


def test_problems_without_gold_answers_are_refused(expert, tmp_path):
    with pytest.raises(ValueError, match="gold answers"):
        run_sft(expert, [{"id": "q", "question": "what is 1+1?"}], tmp_path / "sft")
    assert not (tmp_path / "sft").exists()

