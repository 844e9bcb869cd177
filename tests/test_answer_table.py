"""Answer checking: a table of equivalences and non-equivalences whose verdicts
were worked out by hand (what a careful grader would say), then how
multiple-choice letters are read, unparsed answers, math-verify's time limit,
and every GSM8K gold solution through the exact numeric path."""
import json
import threading
import time
from pathlib import Path

import pytest

from lrkit.data.problems import gold_answer
from lrkit.evaluation import answers_match, check_answer, extract_answer, extract_choice

GSM8K_TRAIN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gsm8k" / "train.jsonl"

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
    assert time.perf_counter() - start < 10
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
