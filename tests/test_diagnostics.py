"""The gold-path check (lrkit.evaluation.diagnostics): hand-made distributions worked out
by hand, and the whole check on tiny models against a plain batch-1 reference."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from lrkit.evaluation.diagnostics import ContrastCheck, contrast_check, gold_path_statistics
from lrkit.models.loading import load_pair, load_tokenizer
from lrkit.models.prompts import build_prompt_ids


def logp(*probs):
    return torch.tensor([math.log(p) for p in probs])


def test_statistics_on_hand_made_distributions():
    # Step 0: the expert hesitates between tokens 0 and 1 and picks 0; the
    # amateur is sure of 0. Mask (alpha 0.2, max 0.5 -> p >= 0.1): {0, 1}.
    # log pE - log pA: token 0: log(.5/.9), token 1: log(.4/.05) -> v_C picks 1.
    # Step 1: the expert is sure of 2 (mask {2}), so v_C is one-hot on 2.
    expert = torch.stack([logp(0.5, 0.4, 0.06, 0.04), logp(0.02, 0.03, 0.9, 0.05)])
    amateur = torch.stack([logp(0.9, 0.05, 0.03, 0.02), logp(0.25, 0.25, 0.25, 0.25)])
    gold = torch.tensor([1, 2])
    stats = gold_path_statistics(expert, amateur, gold, alpha=0.2)
    assert stats["expert_argmax"].tolist() == [0, 2]
    assert stats["label_argmax"].tolist() == [1, 2]
    r0, r1 = 0.5 / 0.9, 0.4 / 0.05  # exp of the two scores inside the mask
    assert stats["label_gold_mass"][0].item() == pytest.approx(r1 / (r0 + r1), abs=1e-6)
    assert stats["expert_gold_mass"][0].item() == pytest.approx(0.4 / 0.9, abs=1e-6)
    assert stats["label_gold_mass"][1].item() == pytest.approx(1.0, abs=1e-6)
    assert stats["expert_gold_mass"][1].item() == pytest.approx(1.0, abs=1e-6)
    kl0 = sum(p * math.log(p / q) for p, q in zip((0.5, 0.4, 0.06, 0.04), (0.9, 0.05, 0.03, 0.02)))
    assert stats["kl"][0].item() == pytest.approx(kl0, abs=1e-5)


def test_gold_outside_the_mask_gets_no_mass():
    expert = logp(0.85, 0.1, 0.05)[None]  # mask (p >= 0.17): {0}
    amateur = logp(0.98, 0.01, 0.01)[None]
    stats = gold_path_statistics(expert, amateur, torch.tensor([1]), alpha=0.2)
    assert stats["label_gold_mass"].item() == 0.0
    assert stats["expert_gold_mass"].item() == 0.0
    assert stats["label_argmax"].item() == 0  # v_C cannot leave the expert's mask


def frame(rows):
    return pd.DataFrame([{"prompt_id": "p", "step": i, "gold": "", **row} for i, row in enumerate(rows)])


def test_counts_and_gate():
    fix = dict(gold_id=1, expert_argmax=0, label_argmax=1, kept=True, label_gold_mass=0.9, expert_gold_mass=0.4)
    brk = dict(gold_id=1, expert_argmax=1, label_argmax=0, kept=True, label_gold_mass=0.2, expert_gold_mass=0.7)
    other = dict(gold_id=2, expert_argmax=0, label_argmax=1, kept=True, label_gold_mass=0.0, expert_gold_mass=0.0)
    unkept = dict(fix, kept=False)
    check = ContrastCheck(frame([fix] * 40 + [brk] * 20 + [other] * 5 + [unkept] * 30), beta=0.4, alpha=0.2)
    assert (check.fixes, check.breaks, check.disagreements) == (40, 20, 65)
    # mean over the 65 kept steps
    assert check.label_gold_mass == pytest.approx((40 * 0.9 + 20 * 0.2) / 65)
    assert check.expert_gold_mass == pytest.approx((40 * 0.4 + 20 * 0.7) / 65)
    assert check.passes  # 40 >= 2 x 20, 65 >= 50, mass gain 0.15
    assert not ContrastCheck(frame([fix] * 40 + [brk] * 21), 0.4, 0.2).passes  # ratio below 2
    assert not ContrastCheck(frame([fix] * 30 + [brk] * 10), 0.4, 0.2).passes  # only 40 disagreements
    flat = dict(fix, label_gold_mass=0.41)  # fixes, but moves almost no mass
    assert not ContrastCheck(frame([flat] * 60), 0.4, 0.2).passes


def reference_steps(expert_path, amateur_path, question, answer, alpha):
    """Batch 1, full forward pass per problem, plain torch."""
    tok = load_tokenizer(str(expert_path))
    expert = AutoModelForCausalLM.from_pretrained(expert_path, dtype=torch.float32).eval()
    amateur = AutoModelForCausalLM.from_pretrained(amateur_path, dtype=torch.float32).eval()
    prompt = build_prompt_ids(tok, question, "Please reason step by step.")
    gold = tok(answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    ids = torch.tensor([prompt + gold[:-1]])
    vocab = len(tok)
    with torch.no_grad():
        e = F.log_softmax(expert(ids).logits[0, len(prompt) - 1:, :vocab].float(), -1)
        a = F.log_softmax(amateur(ids).logits[0, len(prompt) - 1:, :vocab].float(), -1)
    rows = []
    for t, g in enumerate(gold):
        p = e[t].exp()
        allowed = p >= alpha * p.max()
        score = torch.where(allowed, e[t] - a[t], torch.full_like(p, -float("inf")))
        label = torch.softmax(score, -1)
        own = torch.where(allowed, p, torch.zeros_like(p))
        rows.append({"kl": float((p * (e[t] - a[t])).sum()), "expert_argmax": int(e[t].argmax()),
                     "label_argmax": int(score.argmax()), "label_gold_mass": float(label[g]),
                     "expert_gold_mass": float(own[g] / own.sum()), "gold_id": g})
    return rows


def test_contrast_check_matches_plain_reference(pair_paths_no_eos_boost):
    problems = [{"id": f"p{i}", "question": f"Ann has {i + 3} pens. How many?" + " Think." * i,
                 "answer": f"She has {i + 3} pens.\n#### {i + 3}" + " ok" * (2 - i)} for i in range(3)]
    pair = load_pair(str(pair_paths_no_eos_boost[0]), str(pair_paths_no_eos_boost[1]), device="cpu")
    kls = []
    for p in problems:
        kls += [r["kl"] for r in reference_steps(*pair_paths_no_eos_boost, p["question"], p["answer"], 0.2)[1:]]
    kls.sort()
    # beta between two reference KLs that are well apart, so rounding cannot decide
    gaps = [(kls[i + 1] - kls[i], i) for i in range(len(kls) // 4, 3 * len(kls) // 4)]
    gap, i = max(gaps)
    assert gap > 1e-4
    beta = (kls[i] + kls[i + 1]) / 2
    check = contrast_check(pair, problems, beta=beta, alpha=0.2, batch_size=2)
    for p in problems:
        got = check.steps[check.steps.prompt_id == p["id"]].reset_index(drop=True)
        expected = reference_steps(*pair_paths_no_eos_boost, p["question"], p["answer"], 0.2)
        assert len(got) == len(expected)
        for t, row in enumerate(expected):
            assert got.gold_id[t] == row["gold_id"]
            assert got.expert_argmax[t] == row["expert_argmax"]
            assert got.label_argmax[t] == row["label_argmax"]
            assert got.kl[t] == pytest.approx(row["kl"], abs=1e-5)
            assert got.label_gold_mass[t] == pytest.approx(row["label_gold_mass"], abs=1e-5)
            assert got.expert_gold_mass[t] == pytest.approx(row["expert_gold_mass"], abs=1e-5)
            assert bool(got.kept[t]) == (t > 0 and row["kl"] >= beta)
    assert 0 < len(check.kept) < len(check.steps)


def test_verdict_says_how_much_evidence_the_direction_rests_on():
    fix = dict(gold_id=1, expert_argmax=0, label_argmax=1, kept=True, label_gold_mass=0.9, expert_gold_mass=0.4)
    brk = dict(gold_id=1, expert_argmax=1, label_argmax=0, kept=True, label_gold_mass=0.2, expert_gold_mass=0.7)
    # 29 fixes, 1 break: the direction is clear, but on 30 disagreements (< 50) the gate cannot pass
    few = ContrastCheck(frame([fix] * 29 + [brk]), 0.4, 0.2)
    assert few.favours and not few.passes and few.verdict == "leans to suit"
    assert "leans towards suiting" in str(few) and "does not" not in str(few)
    assert ContrastCheck(frame([fix] * 40 + [brk] * 20), 0.4, 0.2).verdict == "suits"
    assert ContrastCheck(frame([fix] * 40 + [brk] * 21), 0.4, 0.2).verdict == "does not suit"
    assert ContrastCheck(frame([fix] * 5 + [brk] * 5), 0.4, 0.2).verdict == "leans against"
    summary = few.summary()
    assert (summary["verdict"], summary["favours"], summary["passes"]) == ("leans to suit", True, False)


GSM8K_SOLUTION = ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
                  "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72")


def test_gold_paths_in_the_form_a_model_writes():
    from lrkit.config import AUTHORS_SYSTEM_PROMPT, PAPER_EVAL_SYSTEM_PROMPT
    from lrkit.data.answers import gold_path_text

    stripped = ("Natalia sold 48/2 = 24 clips in May.\n"
                "Natalia sold 48+24 = 72 clips altogether in April and May.")
    assert gold_path_text(GSM8K_SOLUTION, "as-written") == stripped + "\n#### 72"
    assert gold_path_text(GSM8K_SOLUTION, "boxed") == stripped + "\nThe final answer is $\\boxed{72}$."
    # auto: the form the system prompt asks for (the paper's asks for a box; the authors' for nothing)
    assert gold_path_text(GSM8K_SOLUTION, "auto", PAPER_EVAL_SYSTEM_PROMPT).endswith("$\\boxed{72}$.")
    assert gold_path_text(GSM8K_SOLUTION, "auto", AUTHORS_SYSTEM_PROMPT).endswith("\n#### 72")
    assert gold_path_text("#### 1,234", "boxed") == "The final answer is $\\boxed{1234}$."
    with pytest.raises(ValueError, match="gold form must be one of"):
        gold_path_text(GSM8K_SOLUTION, "latex")


def test_contrast_check_reads_the_gold_path_without_calculator_notes(pair_paths_no_eos_boost):
    pair = load_pair(str(pair_paths_no_eos_boost[0]), str(pair_paths_no_eos_boost[1]), device="cpu")
    tok = pair.tokenizer
    problem = [{"id": "n", "question": "Natalia sold clips. How many?", "answer": GSM8K_SOLUTION}]
    for form, text in (("as-written", GSM8K_SOLUTION.replace("<<48/2=24>>", "").replace("<<48+24=72>>", "")),
                       ("boxed", GSM8K_SOLUTION.replace("<<48/2=24>>", "").replace("<<48+24=72>>", "")
                        .replace("#### 72", "The final answer is $\\boxed{72}$."))):
        check = contrast_check(pair, problem, alpha=0.2, gold_form=form)
        expected = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        assert check.steps.gold_id.tolist() == expected
        assert check.settings["gold_form"] == form
