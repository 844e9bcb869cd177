"""Grading: does an extracted answer equal the gold one?

The exact numeric path first: when both answers hold one number, they are
compared by exact value after stripping what does not change the value (commas,
``$``, ``%``, units and words, LaTeX spacing and ``\\text{}``); fractions and
decimals meet as exact fractions. This is the GSM8K path, fast and verified on
every GSM8K gold solution. Anything else (surds, pi, intervals, tuples, sets,
expressions) goes to Hugging Face's math-verify (``parse`` then ``verify``, gold
first), with a time limit per call; a prediction it cannot parse, or that times
out, is scored wrong and counted as "unparsed". Multiple-choice answers
(MMLU-STEM) are compared as letters.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Optional

from lrkit.evaluation.parse import CHOICE_LETTER, clean_answer, normalized_text, parse_number

MATH_VERIFY_TIMEOUT_S = 2
"""Seconds math-verify may spend parsing one answer or comparing one pair."""
MAX_ANSWER_CHARS = 400
"""Longer predictions are not handed to math-verify at all (scored unparsed):
a final answer is short, and a runaway generation can make sympy crawl."""
ANSWER_KINDS = ("math", "choice")


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one answer."""

    correct: bool
    method: str
    """"numeric" (exact values), "math-verify", "text" (normalised text, when the
    gold is not mathematics), "choice" (letters), "no answer", "unparsed"
    (math-verify found no expression in the prediction) or "timeout"."""

    @property
    def unparsed(self) -> bool:
        return self.method in ("unparsed", "timeout")


def answers_match(pred: Optional[str], gold: Optional[str]) -> bool:
    """True when the prediction equals the gold answer (see ``check_answer``).

    lrkit's grading of mathematical answers (``kind="math"``): exact values when both
    hold one number (commas, ``$``, ``%``, units and LaTeX spacing ignored; fractions
    and decimals compared exactly), else Hugging Face's math-verify with a time limit.
    Multiple-choice answers need :func:`check_answer` with ``kind="choice"``.

    Args:
        pred (str, optional): the extracted prediction (:func:`lrkit.evaluation.extract_answer`).
        gold (str, optional): the gold answer (a number or expression, not a worked solution:
            ``lrkit.data.answers.gold_answer`` reduces one).

    Returns:
        bool: False when either is None or the prediction is blank, or when math-verify
        cannot parse it or times out.

    >>> answers_match("$1,250", "1250")
    True
    >>> answers_match("\\\\frac{1}{2}", "0.5")
    True
    >>> answers_match("7", "8"), answers_match(None, "8")
    (False, False)
    """
    return check_answer(pred, gold).correct


def check_answer(pred: Optional[str], gold: Optional[str], kind: str = "math") -> Verdict:
    """Check an extracted prediction against the gold answer.

    ``kind="math"``: exact numbers when both hold one number, else math-verify.
    ``kind="choice"``: both must be the same letter.
    """
    if kind not in ANSWER_KINDS:
        raise ValueError(f"answer kind must be one of {', '.join(ANSWER_KINDS)}, got {kind!r}")
    if pred is None or gold is None or not str(pred).strip():
        return Verdict(False, "no answer")
    pred, gold = str(pred), str(gold)
    if kind == "choice":
        letter = _choice_letter(pred)
        return Verdict(letter is not None and letter == _choice_letter(gold), "choice")
    pred_value, gold_value = parse_number(pred), parse_number(gold)
    if pred_value is not None and gold_value is not None:
        return Verdict(pred_value == gold_value, "numeric")
    return _math_verify(pred, gold)


def _for_math_verify(answer: str) -> str:
    """An extracted answer as math-verify reads one: inside \\boxed{}, no bare $."""
    answer = re.sub(r"(?<!\\)\$", "", answer.replace("\u2212", "-")).strip()
    return answer if "\\boxed" in answer else "\\boxed{" + answer + "}"


def _has_expression(parsed: list) -> bool:
    return any(not isinstance(item, str) for item in parsed)


def _math_verify(pred: str, gold: str) -> Verdict:
    # Lazy: math-verify pulls in sympy and an ANTLR parser, which `import lrkit` must not.
    from math_verify import parse, verify
    from math_verify.errors import TimeoutException

    # Its time limits use SIGALRM, which works only in the main thread; elsewhere
    # (a worker thread) the limits are off and MAX_ANSWER_CHARS is the only guard.
    seconds = MATH_VERIFY_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None
    if len(pred) > MAX_ANSWER_CHARS:
        return Verdict(False, "unparsed")
    try:
        gold_parsed = parse(_for_math_verify(gold), parsing_timeout=seconds, raise_on_error=True)
    except (TimeoutException, Exception):  # an unreadable gold is compared as text below
        gold_parsed = []
    try:
        pred_parsed = parse(_for_math_verify(pred), parsing_timeout=seconds, raise_on_error=True)
    except TimeoutException:
        return Verdict(False, "timeout")
    except Exception:  # math-verify's parser failing on odd input: the answer is unreadable
        return Verdict(False, "unparsed")
    if not _has_expression(gold_parsed):  # a gold that is not mathematics: compare as text
        normalized = normalized_text(pred)
        return Verdict(bool(normalized) and normalized == normalized_text(gold), "text")
    if not _has_expression(pred_parsed):
        return Verdict(False, "unparsed")
    try:
        return Verdict(bool(verify(gold_parsed, pred_parsed, timeout_seconds=seconds, raise_on_error=True)),
                       "math-verify")
    except TimeoutException:
        return Verdict(False, "timeout")
    except Exception:  # sympy failing on one comparison: fall back to the texts
        return Verdict(normalized_text(pred) == normalized_text(gold), "math-verify")


def _choice_letter(answer: str) -> Optional[str]:
    letters = CHOICE_LETTER.findall(clean_answer(answer).upper())
    return letters[-1] if len(letters) == 1 else None
