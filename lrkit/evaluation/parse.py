"""Answer extraction: what a model's output (or a gold solution) answers.

``extract_answer`` tries, in order: the last non-empty ``\\boxed{...}`` /
``\\fbox{...}`` with balanced braces; the last ``#### X`` line (GSM8K style);
the last "answer is X"; the last number in the text. The two middle tiers go
beyond the paper's rule (boxed, else last number) so that trailing text after a
stated answer ("The answer is 42. Step 3 ...") does not win. ``extract_choice``
reads a multiple-choice letter as the Qwen2.5-Math evaluation does;
``parse_number`` reads one number as an exact fraction.
"""
from __future__ import annotations

import re
from fractions import Fraction
from typing import Optional

from lrkit.data.answers import brace_group, last_boxed

_NUM = r"(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
# A minus sign counts only where it cannot be a subtraction ("5-3" ends in 3, not -3).
_SIGN = r"(?:(?<![\w)\]}])-)?"
_NUMBER_TOKEN = re.compile(
    _SIGN + r"(?:\\[dt]?frac\s*\{\s*-?" + _NUM + r"\s*\}\s*\{\s*-?" + _NUM + r"\s*\}"
    r"|\\[dt]?frac\d\d"
    r"|" + _NUM + r"/" + _NUM + r"(?![/\d])"
    r"|" + _NUM + r")"
)
_HASHES = re.compile(r"####[ \t]*([^\n]*)")
_ANSWER_IS = re.compile(
    r"answer\s*(?:is|=|:)\s*:?\s*(?:\*\*|\\\$|\$|\\\()*\s*(" + _NUMBER_TOKEN.pattern + r")"
    r"(?!\s*(?:[-+/=^×]|\*(?!\*))|\d|[.,]\d)",
    re.IGNORECASE,
)


def extract_answer(text: Optional[str]) -> Optional[str]:
    """The model's final answer as text, or None when the text holds no answer at all.

    lrkit's rule (``protocol="lrkit"``; the paper's protocol extracts with the
    Qwen2.5-Math toolkit's rules, :mod:`lrkit.evaluation.toolkit`), first match wins:
    the last non-empty ``\\boxed{...}`` / ``\\fbox{...}``, the last ``#### X`` line, the
    last "answer is X", the last number. The text is returned as written (units, commas);
    :func:`lrkit.evaluation.answers_match` compares values.

    Args:
        text (str, optional): a model's output or a worked gold solution; anything that is
            not a string gives None.

    Returns:
        str or None: the answer's text, stripped; None when no tier matches.

    >>> extract_answer("3 + 4 = 7, so the total is \\\\boxed{42}.")
    '42'
    >>> extract_answer("She has 3 + 4 = 7 apples.\\n#### 7")
    '7'
    >>> extract_answer("The answer is 12. Step 3: add 5 more")
    '12'
    >>> extract_answer("It costs $1,250 in all")
    '1,250'
    >>> extract_answer("no number here") is None
    True
    """
    if not isinstance(text, str):
        return None
    text = text.replace("\u2212", "-")
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    hashes = [m.group(1).strip() for m in _HASHES.finditer(text) if m.group(1).strip()]
    if hashes:
        return hashes[-1]
    stated = _ANSWER_IS.findall(text)
    if stated:
        return stated[-1].strip()
    numbers = _NUMBER_TOKEN.findall(text)
    return numbers[-1].strip() if numbers else None


# --------------------------------------------------------------------------- matching

_TEXT_COMMANDS = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_THIN_SPACES = re.compile(r"\\[,!;:]|\{,\}")  # LaTeX thin spaces, also used as thousands separators
_SPACING = re.compile(r"\\ |\\q?quad\b|\\left\b|\\right\b|\\displaystyle\b|~")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°")
_WORDS = r"[A-Za-z][A-Za-z\s.'/]*"
_UNITS = _WORDS + r"(?:\^\s*\{?\d\}?)?"
_VALUE = re.compile(
    r"^\s*(?:" + _WORDS + r")?\s*(?P<sign>[-+]?)\s*(?:"
    r"\\frac\s*\{\s*(?P<fn>-?" + _NUM + r")\s*\}\s*\{\s*(?P<fd>-?" + _NUM + r")\s*\}"
    r"|\\frac(?P<sn>\d)(?P<sd>\d)"
    r"|(?P<n>" + _NUM + r")\s*/\s*(?P<d>" + _NUM + r")"
    r"|(?P<x>" + _NUM + r"))"
    r"\s*(?:" + _UNITS + r")?\s*$"
)


_NAME = re.compile(r"\s*(?:[A-Za-z][A-Za-z0-9_]*|[A-Za-z]_\{?\w+\}?|\\[A-Za-z]+)\s*")
"""The left side of ``x = 5`` / ``k_1 = 5`` / ``\\theta = 5``: one name."""


def _strip_outer_braces(text: str) -> str:
    while text.startswith("{") and brace_group(text, 0) == text[1:-1]:
        text = text[1:-1].strip()
    return text


def clean_answer(text: str) -> str:
    """Remove what never changes an answer's value: math delimiters, $, %, spacing, \\text."""
    text = str(text).replace("\u2212", "-").strip()
    if "\\boxed" in text or "\\fbox" in text:
        text = last_boxed(text) or text
    text = re.sub(r"\\[dt]frac", r"\\frac", text)
    previous = None
    while previous != text:
        previous, text = text, _TEXT_COMMANDS.sub(r" \1 ", text)
    text = _THIN_SPACES.sub(lambda m: "," if m.group() == "{,}" else "", text)
    text = _SPACING.sub(" ", text)
    text = _DEGREES.sub("", text)
    text = re.sub(r"\\?\$|\\%|%|\\\(|\\\)|\\\[|\\\]", "", text)
    text = text.strip().rstrip(".").strip()
    return _strip_outer_braces(text)


def _fraction(text: str) -> Fraction:
    return Fraction(text.replace(",", ""))


def parse_number(text: Optional[str]) -> Optional[Fraction]:
    """The exact value of an answer holding one number (words and units around it allowed).

    ``"$18.00"``, ``"18 dollars"``, ``"1,234"``, ``"\\frac{3}{4}"``, ``"3/4"``,
    ``"50\\%"`` and ``"x = 5"`` all parse; ``"2 and 3"`` or ``"\\sqrt{2}"`` do not.
    """
    if text is None:
        return None
    text = clean_answer(text)
    if "=" in text:
        # "x = 5" answers 5; "x + y = 3" is an equation, not a number (math-verify compares those)
        left, text = text.rsplit("=", 1)
        if not _NAME.fullmatch(left):
            return None
    match = _VALUE.match(text)
    if match is None:
        return None
    groups = match.groupdict()
    try:
        if groups["x"] is not None:
            value = _fraction(groups["x"])
        else:
            num, den = next((groups[a], groups[b]) for a, b in (("fn", "fd"), ("sn", "sd"), ("n", "d"))
                            if groups[a] is not None)
            value = _fraction(num) / _fraction(den)
    except ZeroDivisionError:
        return None
    return -value if groups["sign"] == "-" else value


def normalized_text(text: str) -> str:
    """An answer's text for a literal comparison: cleaned, no whitespace, lower case."""
    return re.sub(r"\s+", "", clean_answer(text)).lower()


_CHOICE_TRIGGERS = ("choice is", "answer is")
CHOICE_LETTER = re.compile(r"\b([A-E])\b")
"""A multiple-choice letter standing alone."""


def extract_choice(text: Optional[str]) -> Optional[str]:
    """The chosen letter (A-E) in a model's output, as the Qwen2.5-Math evaluation
    reads multiple-choice answers (its ``choice_answer_clean``), or None.

    After the last "answer is" / "choice is", the first standalone letter;
    without either phrase, the last standalone letter of the whole output
    (upper-cased, so a final ``\\boxed{C}`` wins). When a phrase occurs more
    than once, only the text before the first blank line is read, as in the
    toolkit (it guards against a model that goes on to invent new questions).
    """
    if not isinstance(text, str):
        return None
    text = text.strip("\n")
    if any(text.count(trigger) > 1 for trigger in _CHOICE_TRIGGERS):
        text = text.split("\n\n")[0]
    parts = re.split("|".join(_CHOICE_TRIGGERS), text)
    after_trigger = len(parts) > 1
    letters = CHOICE_LETTER.findall(parts[-1].upper())
    if not letters:
        return None
    return letters[0] if after_trigger else letters[-1]
