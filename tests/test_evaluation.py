"""Evaluation: answer extraction, matching (with a table of equivalences and
non-equivalences whose verdicts were worked out by hand, multiple-choice letters,
unparsed answers, math-verify's time limit, every GSM8K gold solution through the
exact numeric path), Wilson intervals, comparisons, evaluate() end to end.

The end-to-end tests use a tiny Qwen2 wired as a successor table: attention and
MLP outputs are zeroed, embeddings are one-hot and the output layer maps each
token to one chosen next token, so greedy output depends only on the prompt's
last character and is known in advance. They run lrkit's protocol (its prompt and
rules, which the answer tables here are about); the paper's protocol is tested in
tests/test_protocol.py.
"""
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest
import torch

from lrkit.config import EvalConfig
from lrkit.runs import FolderError
from lrkit.evaluation import (
    EvalResult, accuracy_interval, answers_match, check_answer, compare, evaluate, extract_answer, extract_choice,
    gold_answer, mcnemar_p_value, parse_number)
from lrkit.models.generation import greedy_generate
from lrkit.models.prompts import build_prompt_ids

GSM8K_TRAIN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gsm8k" / "train.jsonl"

# --------------------------------------------------------------------------- extraction


@pytest.mark.parametrize("text, expected", [
    (r"6 times 7 is 42, so the answer is $\boxed{42}$.", "42"),
    (r"Half of it: $\boxed{\frac{1}{2}}$", r"\frac{1}{2}"),
    (r"\boxed{\left\{1, 2\right\}}", r"\left\{1, 2\right\}"),
    (r"\boxed{{a}{b}}", "{a}{b}"),
    (r"\boxed {7}", "7"),
    (r"\fbox{8}", "8"),
    (r"\boxed 5.", "5"),
    (r"First try: \boxed{3}. Wait, that is wrong. Final: \boxed{5}", "5"),
    (r"Put the answer within \boxed{}. She has 12 apples.", "12"),
    (r"So \boxed{12} is it. Next, \boxed{4", "12"),
    (r"\boxed{18 \text{ dollars}}", r"18 \text{ dollars}"),
    ("The answer is 42.", "42"),
    ("The answer is 42. Step 3: check that 6 * 7 = 42 holds for 2 cases.", "42"),
    ("The answer is: **$18**", "18"),
    ("The answer is 12 + 3 = 15", "15"),
    ("The temperature fell to -5 degrees.", "-5"),
    ("The temperature fell to \u22125 degrees.", "-5"),
    ("Then 10-3 leaves 7, and 8-3", "3"),
    ("In total there are 1,234 apples.", "1,234"),
    ("She paid $18.00 for it.", "18.00"),
    ("Each gets 3/4 of a pie.", "3/4"),
    (r"Each gets $\frac{3}{4}$ of a pie.", r"\frac{3}{4}"),
    (r"Each gets $\dfrac{3}{4}$ of a pie.", r"\dfrac{3}{4}"),
    ("It grows by 0.25 each day, so in 10 days it grows 2.5.", "2.5"),
    ("48/2 = 24 clips in May\n#### 72\nQuestion: Tom has 5 apples", "72"),
])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize("text", ["", "I do not know.", r"Put it in \boxed{}.", None])
def test_extract_answer_none_when_there_is_no_answer(text):
    assert extract_answer(text) is None


# --------------------------------------------------------------------------- matching


@pytest.mark.parametrize("pred, gold", [
    ("18", "18"), ("18 dollars", "18"), ("$18.00", "18"), (r"\$18", "18"), ("18.0", "18"),
    (r"18 \text{ dollars}", "18"), (r"18\,\text{dollars}", "18"), ("$18$", "18"),
    ("1,234", "1234"), (r"1\,234", "1234"), ("1{,}234", "1,234"), ("50%", "50"), (r"50\%", "50"),
    (r"\frac{1}{2}", "0.5"), ("1/2", "0.5"), (r"\dfrac{1}{2}", "1/2"), (r"\frac12", "0.5"),
    ("-3", "-3"), (r"-\frac{3}{4}", "-0.75"), ("x = 5", "5"), ("12 cm^2", "12"), ("90^\\circ", "90"),
    (r"\boxed{7}", "7"), (r"\text{(B)}", "(b)"), ("Paris", "paris"),
])
def test_answers_match(pred, gold):
    assert answers_match(pred, gold)


@pytest.mark.parametrize("pred, gold", [
    (None, "18"), ("17", "18"), ("-18", "18"), ("0.333", "1/3"), ("2 and 3", "3"), ("1,234", "1.234"),
    ("", ""), ("1/0", "0"), ("Paris", "Rome"),
])
def test_answers_do_not_match(pred, gold):
    assert not answers_match(pred, gold)


def test_parse_number_values():
    assert parse_number("1,234.5") == Fraction(24690, 20)
    assert parse_number(r"\frac{3}{4}") == Fraction(3, 4)
    assert parse_number(r"\sqrt{2}") is None


def _gsm8k_rows(n):
    if not GSM8K_TRAIN.exists():
        pytest.skip(f"GSM8K train file not found next to the repository ({GSM8K_TRAIN.name})")
    with GSM8K_TRAIN.open(encoding="utf-8") as handle:
        return [json.loads(next(handle)) for _ in range(n)]


def test_gold_answer_answers_parse_and_match_model_like_outputs():
    for row in _gsm8k_rows(25):
        gold = gold_answer(row["answer"])
        assert gold == row["answer"].rsplit("####", 1)[1].strip().replace(",", "")
        value = parse_number(gold)
        assert value is not None and value.denominator == 1, gold
        body = row["answer"].rsplit("####", 1)[0]
        assert answers_match(extract_answer(row["answer"]), gold)
        assert answers_match(extract_answer(body + f"\nThe answer is {gold}."), gold)
        assert answers_match(extract_answer(body + f"\nSo the answer is $\\boxed{{{gold}}}$. Hope it helps!"), gold)
        assert answers_match(extract_answer(body + f"\nThe answer is ${int(value):,}.00 in total."), gold)
        assert not answers_match(extract_answer(body + f"\n\\boxed{{{int(value) + 1}}}"), gold)


def test_gsm8k_first_problem_known_answer():
    row = _gsm8k_rows(1)[0]
    assert gold_answer(row["answer"]) == "72"
    body = row["answer"].rsplit("####", 1)[0]
    assert extract_answer(body) == "72"


# --------------------------------------------------------------------------- the answer table

# (prediction, gold, equivalent?) grouped by what they exercise.
TABLE = {
    "fractions": [
        (r"\frac{3}{4}", r"\frac{3}{4}", True),
        (r"\frac{6}{8}", r"\frac{3}{4}", True),     # not reduced, same value
        (r"\frac{3}{4}", r"\frac{4}{3}", False),
        ("3/4", r"\frac{3}{4}", True),
        (r"\frac34", r"\frac{3}{4}", True),
        (r"\frac{-1}{2}", r"-\frac{1}{2}", True),
    ],
    "dfrac": [
        (r"\dfrac{5}{2}", r"\frac{5}{2}", True),
        (r"\tfrac{1}{3}", r"\frac{1}{3}", True),
        (r"\dfrac{\sqrt{3}}{2}", r"\frac{\sqrt{3}}{2}", True),
    ],
    "mixed numbers": [
        (r"2\frac{1}{2}", r"\frac{5}{2}", True),     # a mixed number, not 2 times a half
        (r"1\frac{1}{4}", "1.25", True),
        (r"2\frac{1}{2}", "1", False),
    ],
    "decimals and fractions": [
        ("0.5", r"\frac{1}{2}", True),
        ("0.75", "3/4", True),
        ("1.5", r"\frac{3}{2}", True),
        ("0.33", r"\frac{1}{3}", False),
        ("0.333333", r"\frac{1}{3}", False),          # exact numbers: a truncation is not 1/3
    ],
    "surds": [
        (r"\sqrt{8}", r"2\sqrt{2}", True),
        (r"2\sqrt{2}", r"\sqrt{8}", True),
        (r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}", True),
        (r"\sqrt{12}", r"3\sqrt{2}", False),
        (r"\sqrt{2}", "1.414", False),
    ],
    "pi": [
        (r"2\pi", r"2\pi", True),
        (r"\pi \cdot 2", r"2\pi", True),
        (r"\frac{\pi}{2}", r"\frac{1}{2}\pi", True),
        (r"4\pi", r"2\pi", False),
        ("3.14", r"\pi", False),
    ],
    "intervals": [
        ("[-3,7]", "[-3, 7]", True),
        (r"(-\infty, 2]", r"(-\infty,2]", True),
        ("(-3,7]", "[-3,7]", False),
        (r"[2, \infty)", r"(2, \infty)", False),
    ],
    "tuples": [
        (r"(3, \frac{\pi}{2})", r"\left( 3, \frac{\pi}{2} \right)", True),
        (r"\left( 3, \frac{\pi}{2} \right)", r"\left( 3, \frac{\pi}{2} \right)", True),
        (r"\left( \frac{\pi}{2}, 3 \right)", r"\left( 3, \frac{\pi}{2} \right)", False),  # a point: order counts
        (r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\begin{pmatrix}1\\2\end{pmatrix}", True),
        (r"\begin{pmatrix} 2 \\ 1 \end{pmatrix}", r"\begin{pmatrix}1\\2\end{pmatrix}", False),
    ],
    "sets": [
        (r"\{1, 2\}", r"\{2, 1\}", True),
        (r"\{1, 2, 3\}", r"\{1, 2\}", False),
        ("2, -2", "2,-2", True),                       # "find all x": a list of answers
        ("-2, 2", "2,-2", True),
        ("2", "2,-2", False),                          # one of two answers is not the answer
    ],
    "x = 5 against 5": [
        ("x = 5", "5", True),
        ("x=5", "x = 5", True),
        ("5", "x=5", True),
        ("x = 6", "5", False),
        ("y = 2x + 3", "2x+3", True),
    ],
    "percentages": [
        ("50%", "50", True),
        (r"50\%", "50", True),
        (r"12.5\%", "12.5", True),
        ("50%", "0.5", False),                         # GSM8K golds give percentages without the sign
        ("40%", "50", False),
    ],
    "degrees": [
        (r"90^\circ", "90", True),
        (r"90^{\circ}", "90", True),
        ("45\u00b0", "45", True),
        (r"30^\circ", "60", False),
    ],
    "units": [
        (r"12 \text{ cm}", "12", True),
        (r"18\,\text{dollars}", "18", True),
        (r"5\text{ cm}^2", "5", True),
        (r"\$18.00", "18", True),
        ("12 cm", "13", False),
    ],
    "text answers": [
        (r"\text{(B)}", r"\text{(B)}", True),
        (r"\text{(B)}", "(B)", True),
        (r"\text{(B)}", r"\text{(C)}", False),
        (r"\text{even}", r"\text{even}", True),
        (r"\text{odd}", r"\text{even}", False),
    ],
    "thousands separators": [
        ("1,234", "1234", True),
        (r"1{,}234", "1234", True),
        (r"1\,234", "1234", True),
        ("1,234.5", "1234.5", True),
        ("12,345,678", "12345678", True),
        ("1,234", "1.234", False),
    ],
    "negative numbers": [
        ("-3", "-3", True),
        ("-3", "3", False),
        (r"-\frac{1}{2}", "-0.5", True),
        ("\u22125", "-5", True),                       # a Unicode minus sign
        ("-5", "5", False),
    ],
    "boxed with nested braces": [
        (r"\boxed{\frac{1}{2}}", "0.5", True),
        (r"\boxed{\left\{1, 2\right\}}", r"\{1,2\}", True),
        (r"\boxed{\frac{\sqrt{3}}{2}}", r"\frac{\sqrt{3}}{2}", True),
        (r"\boxed{\frac{1}{3}}", "0.5", False),
    ],
    "expressions and scientific notation": [
        ("x^2+2x+1", "(x+1)^2", True),
        ("x^2+1", "(x+1)^2", False),
        (r"3 \times 10^{8}", r"3 \times 10^8", True),
        ("300000000", r"3 \times 10^{8}", True),
        (r"3 \times 10^{9}", r"3 \times 10^{8}", False),
    ],
    "no answer or nonsense": [
        ("", "5", False),
        (None, "5", False),
        (r"\frac{1}{0}", "0", False),
    ],
}
CASES = [(group, pred, gold, expected) for group, rows in TABLE.items() for pred, gold, expected in rows]


def test_the_table_is_large_and_balanced():
    assert len(CASES) >= 60
    assert sum(expected for *_, expected in CASES) >= 30
    assert sum(not expected for *_, expected in CASES) >= 25


@pytest.mark.parametrize("group, pred, gold, expected", CASES, ids=[f"{c[0]}: {c[1]!r} vs {c[2]!r}" for c in CASES])
def test_equivalence_table(group, pred, gold, expected):
    assert answers_match(pred, gold) is expected


def test_the_numeric_path_decides_plain_numbers_and_math_verify_the_rest():
    assert check_answer("1,234", "1234").method == "numeric"
    assert check_answer(r"\frac{3}{4}", "0.75").method == "numeric"
    assert check_answer(r"\sqrt{8}", r"2\sqrt{2}").method == "math-verify"
    assert check_answer(None, "1").method == "no answer"


@pytest.mark.parametrize("pred", ["}{", r"\sqrt", "x" * 500])
def test_unparsable_predictions_are_wrong_and_flagged(pred):
    verdict = check_answer(pred, r"\frac{\pi}{2}")
    assert verdict.correct is False and verdict.unparsed is True


def test_a_pathological_answer_times_out_instead_of_hanging(monkeypatch):
    import lrkit.evaluation.grade as evaluation

    monkeypatch.setattr(evaluation, "MATH_VERIFY_TIMEOUT_S", 1)
    start = time.perf_counter()
    verdict = check_answer(r"10^{10^{10^{10}}}", r"\sqrt{2}")  # sympy would try to build the number
    print(f"\nthe 1 s timeout answered in {time.perf_counter() - start:.1f} s")
    assert verdict.method == "timeout" and verdict.unparsed and not verdict.correct
    assert answers_match(r"\sqrt{8}", r"2\sqrt{2}")  # the alarm is gone afterwards


def test_checking_works_off_the_main_thread():
    # SIGALRM limits exist only in the main thread; elsewhere checking must still work.
    out = {}
    worker = threading.Thread(target=lambda: out.update(v=check_answer(r"\sqrt{8}", r"2\sqrt{2}")))
    worker.start()
    worker.join(30)
    assert out["v"].correct is True


def test_choice_kind_compares_letters():
    assert check_answer("C", "C", kind="choice").correct
    assert not check_answer("B", "C", kind="choice").correct
    assert check_answer(r"\text{(C)}", "C", kind="choice").correct
    with pytest.raises(ValueError, match="answer kind"):
        check_answer("1", "1", kind="free text")


@pytest.mark.parametrize("text, expected", [
    (r"2 + 2 = 4, which is option (B). So the answer is $\boxed{B}$.", "B"),
    ("The answer is (C).", "C"),
    ("The answer is C because a proton is positive.", "C"),   # first letter after the phrase
    ("Electrons are negative, so I pick (C)", "C"),            # no phrase: the last letter
    (r"Therefore the final answer is \boxed{D}", "D"),
    ("The correct choice is (a)", "A"),                        # letters are read upper-cased
    ("I think it is 4.", None),
    # The phrase twice: only the first paragraph counts (the toolkit's rule).
    ("The answer is B.\n\nQuestion: what is 3+3? The answer is D.", "B"),
    (None, None),
])
def test_extract_choice_reads_letters_as_the_qwen_toolkit_does(text, expected):
    assert extract_choice(text) == expected


def test_every_gsm8k_train_gold_solution_extracts_and_matches_exactly():
    if not GSM8K_TRAIN.exists():
        pytest.skip("GSM8K train file not found next to the repository")
    rows = [json.loads(line) for line in GSM8K_TRAIN.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 7473
    for row in rows:
        gold = gold_answer(row["answer"])
        verdict = check_answer(extract_answer(row["answer"]), gold)
        assert verdict.correct and verdict.method == "numeric", (row["question"], gold)


# --------------------------------------------------------------------------- statistics

Z95 = 1.959963984540054


def _wilson_reference(k, n, z=Z95):
    p = k / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return center - half, center + half


@pytest.mark.parametrize("k, n", [(1, 2), (7, 10), (42, 100), (706, 1000), (1, 1319)])
def test_wilson_interval_matches_formula(k, n):
    low, high = accuracy_interval(k, n)
    ref_low, ref_high = _wilson_reference(k, n)
    assert low == pytest.approx(ref_low, abs=1e-12) and high == pytest.approx(ref_high, abs=1e-12)
    assert low < k / n < high


def test_wilson_interval_known_values_and_edges():
    assert accuracy_interval(7, 10) == pytest.approx((0.396778, 0.892209), abs=1e-6)
    n = 20
    assert accuracy_interval(0, n) == pytest.approx((0.0, Z95 ** 2 / (n + Z95 ** 2)), abs=1e-12)
    assert accuracy_interval(n, n) == pytest.approx((n / (n + Z95 ** 2), 1.0), abs=1e-12)
    assert accuracy_interval(0, n)[0] == 0.0 and accuracy_interval(n, n)[1] == 1.0
    wide, narrow = accuracy_interval(5, 10, level=0.99), accuracy_interval(5, 10, level=0.90)
    assert wide[0] < narrow[0] and wide[1] > narrow[1]
    for bad in ((1, 0), (-1, 5), (6, 5)):
        with pytest.raises(ValueError):
            accuracy_interval(*bad)


def test_mcnemar_exact_p_values():
    assert mcnemar_p_value(0, 0) == 1.0
    assert mcnemar_p_value(3, 3) == 1.0
    assert mcnemar_p_value(0, 5) == pytest.approx(2 / 32)
    assert mcnemar_p_value(9, 1) == pytest.approx(2 * (1 + 10) / 1024)
    assert mcnemar_p_value(1, 9) == mcnemar_p_value(9, 1)


# --------------------------------------------------------------------------- results and compare


def _result(name, correct_by_id):
    rows = [{"id": i, "question": f"q{i}", "gold": "1", "output": "", "prediction": "1" if c else "2",
             "correct": c, "n_tokens": 3, "finished": True} for i, c in correct_by_id.items()]
    return EvalResult(pd.DataFrame(rows), {"model": name})


def test_compare_lists_fixed_and_broken():
    a = _result("base", {"p1": False, "p2": False, "p3": True, "p4": True, "p5": False})
    b = _result("tuned", {"p3": True, "p1": True, "p2": True, "p4": False, "p5": False})
    cmp = compare(a, b)
    assert cmp.fixed["id"].tolist() == ["p1", "p2"]
    assert cmp.broken["id"].tolist() == ["p4"]
    assert (cmp.both_right, cmp.both_wrong, cmp.n) == (1, 1, 5)
    assert cmp.accuracy_a == pytest.approx(0.4) and cmp.accuracy_b == pytest.approx(0.6)
    assert cmp.interval_b == pytest.approx(accuracy_interval(3, 5))
    assert cmp.p_value == pytest.approx(1.0)  # 2 fixed vs 1 broken: 2 * P(X <= 1), X ~ Bin(3, 1/2)
    assert {"question", "gold", "prediction_a", "prediction_b", "output_a", "output_b"} <= set(cmp.fixed)
    assert cmp.summary()["n_fixed"] == 2 and "2 fixed, 1 broken" in str(cmp)


def test_compare_rejects_different_problem_sets():
    a = _result("a", {"p1": True, "p2": False})
    with pytest.raises(ValueError, match="not on the same problems"):
        compare(a, _result("b", {"p1": True, "p3": False}))
    other_gold = _result("b", {"p1": True, "p2": False})
    other_gold.df.loc[1, "gold"] = "9"
    with pytest.raises(ValueError, match="different gold"):
        compare(a, other_gold)


def test_result_save_load_round_trip(tmp_path):
    result = _result("m", {"p1": True, "p2": False, "p3": True})
    result.df.loc[1, "prediction"] = None
    result.save(tmp_path)
    loaded = EvalResult.load(tmp_path)
    pd.testing.assert_frame_equal(loaded.df, result.df, check_dtype=False)
    assert loaded.df["prediction"][1] is None
    assert loaded.summary() == result.summary()


# --------------------------------------------------------------------------- evaluate end to end

CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789 .,:?!#{}\\-$/")
SPECIALS = ["<pad>", "<eos>", "<unk>"]
CHAINS = ["?\\boxed{42}", "!7", "."]   # after the first character the model writes the rest, then EOS
LOOP = "9"                             # "." -> "9" -> "9" -> ... never stops


def _tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS + CHARS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>",
                                        unk_token="<unk>")
    tokenizer.chat_template = "{{ messages[-1]['content'] }}"  # the prompt ends with the question
    return tokenizer


def _successor_model(tokenizer):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    vocab = len(tokenizer)
    eos = tokenizer.eos_token_id
    config = Qwen2Config(vocab_size=vocab, hidden_size=64, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
                         tie_word_embeddings=False, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=None)
    model = Qwen2ForCausalLM(config)
    successor = {i: eos for i in range(vocab)}
    ids = lambda text: tokenizer.convert_tokens_to_ids(list(text))
    for chain in CHAINS:
        chain_ids = ids(chain)
        for current, following in zip(chain_ids, chain_ids[1:]):
            successor[current] = following
    successor[ids(".")[0]] = ids(LOOP)[0]
    successor[ids(LOOP)[0]] = ids(LOOP)[0]
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.embed_tokens.weight.zero_()
        model.model.embed_tokens.weight[torch.arange(vocab), torch.arange(vocab)] = 1.0
        model.lm_head.weight.zero_()
        for current, following in successor.items():
            model.lm_head.weight[following, current] = 1.0
    return model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("successor")
    tokenizer = _tokenizer()
    torch.manual_seed(0)
    _successor_model(tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def model_and_tokenizer(model_dir):
    """Reloaded, so the saved files and not the in-memory objects are what the tests use."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(model_dir).eval(), AutoTokenizer.from_pretrained(model_dir)


PROBLEMS = [
    {"id": "right", "question": "what is six times seven?", "answer": "six times seven\n#### 42"},
    {"id": "wrong", "question": "is it?", "answer": "41"},
    {"id": "short", "question": "say seven!", "answer": "#### 8"},
    {"id": "loop", "question": "write nines.", "answer": "99,999,999,999"},
    {"id": "shouted", "question": "what is six times seven, really?", "answer": "42.0"},
]
EXPECTED = {  # id: (output, prediction, correct, finished)
    "right": ("\\boxed{42}", "42", True, True),
    "wrong": ("\\boxed{42}", "42", False, True),
    "short": ("7", "7", False, True),
    "loop": ("9" * 11, "9" * 11, True, False),   # cut by max_new_tokens=11
    "shouted": ("\\boxed{42}", "42", True, True),
}


def test_evaluate_predicted_outputs(model_and_tokenizer, tmp_path):
    model, tokenizer = model_and_tokenizer
    config = EvalConfig(protocol="lrkit", max_new_tokens=len("\\boxed{42}") + 1, batch_size=2)  # room for EOS
    result = evaluate(model, PROBLEMS, config, tokenizer=tokenizer, out_dir=tmp_path, progress=False)
    df = result.df
    assert df["id"].tolist() == [p["id"] for p in PROBLEMS]
    assert list(df.columns) == ["id", "question", "gold", "output", "prediction", "correct",
                                "n_tokens", "finished", "unparsed"]
    assert not df["unparsed"].any()  # every prediction here is a plain number
    for row in df.itertuples():
        output, prediction, correct, finished = EXPECTED[row.id]
        assert (row.output, row.prediction, row.correct, row.finished) == (output, prediction, correct, finished)
        assert row.n_tokens == len(output) + (1 if finished else 0)  # EOS counts as generated
    assert df.loc[df.id == "right", "gold"].item() == "42"
    assert df.loc[df.id == "loop", "gold"].item() == "99999999999"
    assert result.accuracy == pytest.approx(3 / 5)
    assert result.interval == pytest.approx(accuracy_interval(3, 5))

    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["complete"] is True and saved["n_problems"] == 5 and saved["n_correct"] == 3
    assert saved["n_unfinished"] == 1 and saved["config"]["batch_size"] == 2
    assert saved["generated_tokens"] == int(df["n_tokens"].sum()) and saved["seconds"] > 0
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == df["id"].tolist()
    pd.testing.assert_frame_equal(EvalResult.load(tmp_path).df, df, check_dtype=False)


def test_evaluate_rows_match_direct_greedy_generation(model_dir, tmp_path):
    from transformers import AutoTokenizer, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    torch.manual_seed(1)  # an untrained model: arbitrary text, the same either way
    random_model = Qwen2ForCausalLM(Qwen2ForCausalLM.from_pretrained(model_dir).config).eval()
    config = EvalConfig(protocol="lrkit", max_new_tokens=6, batch_size=3, system_prompt=None)
    result = evaluate(random_model, PROBLEMS, config, tokenizer=tokenizer, progress=False)
    prompts = [build_prompt_ids(tokenizer, p["question"], None) for p in PROBLEMS]
    direct = greedy_generate(random_model, tokenizer, prompts, 6, batch_size=1)
    for row, generation in zip(result.df.itertuples(), direct):
        text = tokenizer.decode(generation.token_ids, skip_special_tokens=True)
        assert row.output == text
        assert row.prediction == extract_answer(text)
        assert row.n_tokens == len(generation.token_ids) and row.finished == generation.finished


def test_evaluate_writes_finished_batches_before_a_crash(model_and_tokenizer, tmp_path, monkeypatch):
    import lrkit.evaluation.loop as evaluation

    model, tokenizer = model_and_tokenizer
    real = evaluation.greedy_generate_batch
    calls = []

    def crash_on_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("out of memory")
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluation, "greedy_generate_batch", crash_on_second_batch)
    with pytest.raises(RuntimeError):
        evaluate(model, PROBLEMS, EvalConfig(protocol="lrkit", max_new_tokens=12, batch_size=2), tokenizer=tokenizer,
                 out_dir=tmp_path, progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["complete"] is False and summary["n_planned"] == 5 and summary["n_problems"] == 2
    # Batches go shortest prompt first: "is it?" and "say seven!".
    assert set(EvalResult.load(tmp_path).df["id"]) == {"wrong", "short"}
    assert model.training is False


def test_evaluate_input_errors(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    with pytest.raises(ValueError, match="tokenizer"):
        evaluate(model, PROBLEMS, progress=False)
    with pytest.raises(ValueError, match="no answer"):
        evaluate(model, [{"id": "x", "question": "q?"}], tokenizer=tokenizer, progress=False)


def test_main_with_a_model_folder_and_a_problem_file(model_dir, tmp_path, capsys):
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    out = tmp_path / "eval"
    from lrkit.cli import main

    code = main(["eval", "--model", str(model_dir), "--problems", str(problems), "--out", str(out),
                 "--max-problems", "3", "--max-new-tokens", "11", "--batch-size", "2",
                 "--system-prompt", "", "--protocol", "lrkit"])
    assert code == 0
    result = EvalResult.load(out)
    assert result.df["id"].tolist() == ["right", "wrong", "short"]
    assert result.df["correct"].tolist() == [True, False, False]
    summary = json.loads((out / "summary.json").read_text())
    # the model by its folder relative to the evaluation's (a tree moved whole still matches); shown as given
    assert summary["model"] == os.path.relpath(model_dir, out) and summary["name"] == str(model_dir)
    assert summary["config"]["system_prompt"] is None
    assert "accuracy 33.3%" in capsys.readouterr().out


# --------------------------------------------------------------------------- generations cut at the token limit

LIMIT_MAX_NEW = 8
LIMIT_PROBLEMS = [{"id": f"p{i}", "question": f"Ann has {i + 3} pens and {2 * i + 1} cups. How many?",
                   "answer": f"#### {3 * i + 4}"} for i in range(4)]


def test_every_evaluation_result_counts_generations_that_hit_the_limit(pair_paths, tmp_path):
    from transformers import AutoModelForCausalLM

    from lrkit.models.loading import load_tokenizer

    model = AutoModelForCausalLM.from_pretrained(pair_paths[0]).eval()
    tokenizer = load_tokenizer(str(pair_paths[0]))
    config = EvalConfig(protocol="lrkit", max_new_tokens=LIMIT_MAX_NEW, batch_size=3)
    result = evaluate(model, LIMIT_PROBLEMS, config, tokenizer=tokenizer, out_dir=tmp_path / "eval", progress=False)

    expected = 0  # batch-1 greedy decoding by argmax, counting rollouts with no EOS in LIMIT_MAX_NEW tokens
    with torch.no_grad():
        for problem in LIMIT_PROBLEMS:
            ids = build_prompt_ids(tokenizer, problem["question"], config.system_prompt)
            for _ in range(LIMIT_MAX_NEW):
                ids.append(int(model(torch.tensor([ids])).logits[0, -1, :len(tokenizer)].argmax()))
                if ids[-1] == tokenizer.eos_token_id:
                    break
            expected += ids[-1] != tokenizer.eos_token_id
    assert 0 < expected < len(LIMIT_PROBLEMS), "the test needs both kinds of generation"
    assert result.summary()["n_hit_limit"] == expected
    assert json.loads((tmp_path / "eval" / "summary.json").read_text())["n_hit_limit"] == expected
    assert f"{expected} hit the token limit" in str(result)


# --------------------------------------------------------------------------- contrastive decoding

CONTRAST_QUESTIONS = [f"Ann has {i + 3} pens and gets {2 * i + 5} more. How many?" + " Think." * (i % 3)
                      for i in range(5)]
CONTRAST_MAX_NEW = 16


def test_evaluate_contrastive_at_alpha_one_is_the_experts_greedy_evaluation(pair_paths, tmp_path):
    from lrkit.evaluation import evaluate_contrastive
    from lrkit.models.loading import load_pair

    pair = load_pair(str(pair_paths[0]), str(pair_paths[1]), device="cpu")
    problems = [{"id": f"q{i}", "question": q, "answer": f"#### {2 * i + 8}"}
                for i, q in enumerate(CONTRAST_QUESTIONS)]
    config = EvalConfig(protocol="lrkit", max_new_tokens=CONTRAST_MAX_NEW, batch_size=2)
    greedy = evaluate(pair.expert, problems, config, tokenizer=pair.tokenizer, progress=False)
    contrast = evaluate_contrastive(pair, problems, config, alpha=1.0, out_dir=tmp_path / "cd", progress=False)
    assert contrast.df["output"].tolist() == greedy.df["output"].tolist()
    assert contrast.df["id"].tolist() == [p["id"] for p in problems]
    assert (tmp_path / "cd" / "results.jsonl").exists()
    assert contrast.info["config"]["alpha"] == 1.0
    with pytest.raises(ValueError, match="no answer to score against"):
        evaluate_contrastive(pair, [{"id": "x", "question": "1+1?"}], config, progress=False)


# --------------------------------------------------------------------------- resumed by batch

RESUME_PROBLEMS = [{"id": f"r{i}", "question": f"Ann has {i + 2} pens and {3 * i + 1} cups" + "!" * (i % 5),
                    "answer": f"#### {4 * i + 3}"} for i in range(40)]


def _eval_cli(model, problems_path, out):
    return [sys.executable, "-m", "lrkit", "eval", "--model", str(model), "--problems", str(problems_path),
            "--out", str(out), "--max-new-tokens", "24", "--batch-size", "2"]


def test_an_interrupted_evaluation_keeps_its_batches_and_ends_as_an_uninterrupted_one(pair_paths, tmp_path,
                                                                                         monkeypatch):
    import lrkit.evaluation.loop as evaluation
    from transformers import AutoModelForCausalLM

    from lrkit.models.loading import load_tokenizer

    model = AutoModelForCausalLM.from_pretrained(pair_paths[0]).eval()
    tokenizer = load_tokenizer(str(pair_paths[0]))
    problems, config = RESUME_PROBLEMS[:9], EvalConfig(protocol="lrkit", max_new_tokens=10, batch_size=2)
    straight = evaluate(model, problems, config, tokenizer=tokenizer, out_dir=tmp_path / "straight", progress=False)

    real, calls = evaluation.greedy_generate_batch, []

    def crash_on_third_batch(model, tokenizer, prompts, *args, **kwargs):
        calls.append(len(prompts))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(model, tokenizer, prompts, *args, **kwargs)

    monkeypatch.setattr(evaluation, "greedy_generate_batch", crash_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        evaluate(model, problems, config, tokenizer=tokenizer, out_dir=tmp_path / "cut", progress=False)
    assert json.loads((tmp_path / "cut" / "summary.json").read_text())["n_problems"] == 4
    calls.clear()
    monkeypatch.setattr(evaluation, "greedy_generate_batch", lambda *a, **k: calls.append(len(a[2])) or real(*a, **k))
    resumed = evaluate(model, problems, config, tokenizer=tokenizer, out_dir=tmp_path / "cut", progress=False)
    assert calls == [2, 2, 1], "only the three batches not saved are generated again"
    assert (tmp_path / "cut" / "results.jsonl").read_bytes() == (tmp_path / "straight" / "results.jsonl").read_bytes()
    assert resumed.df.equals(straight.df)
    assert json.loads((tmp_path / "cut" / "summary.json").read_text())["complete"] is True


def test_sigkill_mid_evaluation_then_rerun_gives_the_uninterrupted_results(pair_paths, tmp_path):
    problems_path = tmp_path / "problems.jsonl"
    problems_path.write_text("".join(json.dumps(p) + "\n" for p in RESUME_PROBLEMS))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1",
           "TQDM_DISABLE": "1"}
    subprocess.run(_eval_cli(pair_paths[0], problems_path, tmp_path / "full"), check=True, env=env,
                   capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_eval_cli(pair_paths[0], problems_path, killed), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline, summary = time.time() + 120, killed / "summary.json"
    while time.time() < deadline and proc.poll() is None:
        try:
            if json.loads(summary.read_text()).get("n_problems", 0) >= 6:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = json.loads(summary.read_text())
    assert saved["complete"] is False and 6 <= saved["n_problems"] < len(RESUME_PROBLEMS), \
        "the kill must land in the middle of the run"

    subprocess.run(_eval_cli(pair_paths[0], problems_path, killed), check=True, env=env, capture_output=True)
    assert (killed / "results.jsonl").read_bytes() == (tmp_path / "full" / "results.jsonl").read_bytes()
    final = json.loads(summary.read_text())
    assert final["complete"] is True and final["n_problems"] == len(RESUME_PROBLEMS)


def test_non_finite_logits_stop_the_evaluation_and_nothing_is_scored(pair_paths, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    from lrkit.cli import main
    from lrkit.maths.divergence import NonFiniteLogitsError
    from lrkit.models.loading import load_tokenizer

    model = AutoModelForCausalLM.from_pretrained(pair_paths[0]).eval()
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight[0, 0] = float("nan")
    tokenizer = load_tokenizer(str(pair_paths[0]))
    with pytest.raises(NonFiniteLogitsError, match=r"^evaluation: broken \(fp32\) gave non-finite logits"):
        evaluate(model, RESUME_PROBLEMS[:4], EvalConfig(protocol="lrkit", max_new_tokens=6, batch_size=2), tokenizer=tokenizer,
                 out_dir=tmp_path / "eval", progress=False, name="broken")
    assert not (tmp_path / "eval" / "results.jsonl").exists(), "no non-finite answer is scored as wrong"

    model.save_pretrained(tmp_path / "broken")
    tokenizer.save_pretrained(tmp_path / "broken")
    problems_path = tmp_path / "problems.jsonl"
    problems_path.write_text("".join(json.dumps(p) + "\n" for p in RESUME_PROBLEMS[:4]))
    capsys.readouterr()
    assert main(["eval", "--model", str(tmp_path / "broken"), "--problems", str(problems_path),
                 "--out", str(tmp_path / "cli"), "--max-new-tokens", "6", "--dtype", "fp16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("lrkit eval: error: evaluation:") and "(fp16)" in err and "fp32" in err


def test_an_equation_is_not_read_as_its_right_side():
    # "x = 5" answers 5, but two different equations with the same right side are not equal
    # (found by the parity corpus, tests/test_protocol.py: lrkit said x + y = 3 equals x - y = 3)
    assert parse_number("x = 5") == 5 and parse_number("k_1 = 5") == 5
    assert parse_number("x + y = 3") is None
    assert not answers_match("x + y = 3", "x - y = 3")
    assert answers_match("x + y = 3", "y + x = 3")
    assert answers_match("x = 5", "5")


def test_a_display_name_is_not_part_of_an_evaluations_identity(model_dir, tmp_path, monkeypatch):
    """The same model on the same problems into the same folder under another label: the
    stored result comes back (nothing is generated); another model is refused."""
    import lrkit.evaluation.loop as evaluation

    config = EvalConfig(max_new_tokens=11, batch_size=2, protocol="lrkit")
    first = evaluate(str(model_dir), PROBLEMS, config, out_dir=tmp_path / "eval", progress=False,
                     name="LightReasoner")
    files = {p.name: p.read_bytes() for p in (tmp_path / "eval").iterdir()}
    monkeypatch.setattr(evaluation, "greedy_generate_batch",
                        lambda *a, **k: pytest.fail("a stored evaluation must not generate again"))
    again = evaluate(str(model_dir), PROBLEMS, config, out_dir=tmp_path / "eval", progress=False,
                     name="LightReasoner (seed 0)")
    assert again.df.equals(first.df) and again.name == "LightReasoner (seed 0)" and first.name == "LightReasoner"
    assert {p.name: p.read_bytes() for p in (tmp_path / "eval").iterdir()} == files
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["model"] == os.path.relpath(model_dir, tmp_path / "eval") and summary["name"] == "LightReasoner"
    with pytest.raises(FolderError, match="differs in: model"):
        evaluate(str(tmp_path / "another"), PROBLEMS, config, out_dir=tmp_path / "eval", progress=False,
                 name="LightReasoner")
    # a folder written when the label stood in for the model ("model": label, no "name") still resumes
    legacy = {**summary, "model": "LightReasoner"}
    del legacy["name"]
    (tmp_path / "eval" / "summary.json").write_text(json.dumps(legacy))
    assert evaluate(str(model_dir), PROBLEMS, config, out_dir=tmp_path / "eval", progress=False,
                    name="LightReasoner").df.equals(first.df)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_finite_logits_processor_finds_one_bad_entry_in_the_scored_columns(bad):
    """One NaN or inf anywhere among the tokenizer's columns stops generation; the same value
    in the output layer's padding columns (which generation sets to -inf itself) does not."""
    import torch

    from lrkit.maths.divergence import NonFiniteLogitsError
    from lrkit.models.guard import FiniteLogits

    guard = FiniteLogits(scored=100)
    scores = torch.randn(4, 112)
    assert guard(None, scores) is scores  # finite: passed on unchanged
    padded = scores.clone()
    padded[2, 105] = bad
    assert guard(None, padded) is padded
    for row, column in ((0, 0), (3, 99), (1, 57)):
        broken = scores.clone()
        broken[row, column] = bad
        with pytest.raises(NonFiniteLogitsError):
            guard(None, broken)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_finite_logits_processor_passes_huge_finite_logits_whose_sum_overflows(dtype):
    """The fast test sums the scores; a sum that overflows from finite values (3e38 each, the
    top of fp32's and bf16's range) is settled entry by entry, so it is not called NaN."""
    import torch

    from lrkit.models.guard import FiniteLogits

    scores = torch.full((2, 64), 3e38, dtype=getattr(torch, dtype))
    assert torch.isfinite(scores).all() and not torch.isfinite(scores.sum(dtype=torch.float32))
    assert FiniteLogits(scored=64)(None, scores) is scores


def test_finite_logits_processor_suppresses_the_rows_of_no_token_when_asked():
    """suppress_rest: the output layer's padding rows become -inf (so the argmax never picks
    them), the tokenizer's columns keep their values; without it nothing changes."""
    import torch

    from lrkit.models.guard import FiniteLogits

    scores = torch.randn(3, 20)
    scores[:, 16:] = 100.0  # padding rows that would win the argmax
    kept = scores[:, :16].clone()
    assert torch.equal(FiniteLogits(16)(None, scores.clone())[:, 16:], scores[:, 16:])
    out = FiniteLogits(16, suppress_rest=True)(None, scores.clone())
    assert torch.equal(out[:, :16], kept)
    assert torch.isneginf(out[:, 16:]).all()
    assert torch.equal(out.argmax(-1), kept.argmax(-1))
