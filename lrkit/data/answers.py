"""What a problem is and what its answer text says: ``Problem``, ``ProblemError``,
``gold_answer`` (the final answer of a reference solution) and ``last_boxed`` (the
last ``\\boxed{...}``), pure text with no dependency on the rest of lrkit.

The data sets (:mod:`lrkit.data.problems`, :mod:`lrkit.data.benchmarks`) build on them and
evaluation (:mod:`lrkit.evaluation.parse`) reads model answers with the same
``last_boxed``; ``lrkit.evaluation`` hands out ``gold_answer`` and ``last_boxed``
among its public names.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Optional

class ProblemError(ValueError):
    """A problem file or line that cannot be used; the message names where."""


@dataclass(frozen=True)
class Problem:
    id: str
    question: str
    answer: Optional[str] = None
    """The reference solution or answer as given (GSM8K: worked solution + '#### N')."""
    answer_kind: str = "math"
    """How answers are extracted and checked: "math" (boxed / last number, then
    exact numbers or math-verify) or "choice" (a letter, MMLU-STEM)."""

    @property
    def gold(self) -> Optional[str]:
        return gold_answer(self.answer) if self.answer is not None else None

    def to_dict(self) -> dict:
        data = asdict(self)
        if data["answer_kind"] == "math":  # the default: dicts and files stay as they were
            del data["answer_kind"]
        return data


_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


def gold_answer(answer: str) -> str:
    """The final answer: the text after the last '####', or the whole answer if none.

    Thousands separators are dropped from a plain number ("1,234" -> "1234");
    other commas stay, because in "(1, 2)" or "\\{1, 2\\}" they are the answer.
    """
    text = str(answer)
    if "####" in text:
        text = text.rsplit("####", 1)[1]
    text = text.strip()
    return text.replace(",", "") if _THOUSANDS.match(text) else text


_BOXED_START = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BOXED_BARE = re.compile(r"\\boxed +([^\s${}]+)")


def brace_group(text: str, open_at: int) -> Optional[str]:
    """Content of the brace group opening at ``text[open_at] == '{'``; None if never closed."""
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1:i]
    return None


def last_boxed(text: str) -> Optional[str]:
    """Content of the last complete, non-empty ``\\boxed{...}`` (or ``\\fbox``, ``\\boxed 5``).

    Empty boxes are skipped because models often echo the instruction
    "put your final answer within \\boxed{}"; an unclosed box (a cut-off
    generation) is skipped too.
    """
    found: list[tuple[int, str]] = []
    for match in _BOXED_START.finditer(text):
        content = brace_group(text, match.end() - 1)
        if content is not None and content.strip():
            found.append((match.start(), content.strip()))
    for match in _BOXED_BARE.finditer(text):
        found.append((match.start(), match.group(1).rstrip(".,;")))
    return max(found)[1] if found else None


CALCULATOR_NOTE = re.compile(r"<<[^<>\n]*>>")
"""GSM8K's calculator annotations (``48/2 = <<48/2=24>>24``): written for the data set's
calculator tool, never by a model."""
GOLD_FORMS = ("auto", "boxed", "as-written")
"""How a gold solution ends when it is read as the model's own path (:func:`gold_path_text`)."""
_FINAL_LINE = re.compile(r"\n?####[ \t]*([^\n]*)\s*$")


def gold_path_text(answer: str, form: str = "auto", system_prompt: Optional[str] = None) -> str:
    """A worked gold solution in the form a model writes it, for teacher forcing: GSM8K's
    calculator notes removed, and the final ``#### N`` line written as the prompt asks for
    the answer. ``form``: "boxed" (``The final answer is $\\boxed{N}$.``, what the paper's
    evaluation prompt asks for), "as-written" (the ``#### N`` line kept: the toy pairs learned
    it), "auto" (boxed when ``system_prompt`` asks for ``\\boxed``, else as written).

    >>> gold_path_text("She sold 48/2 = <<48/2=24>>24 clips.\\n#### 24", "boxed")
    'She sold 48/2 = 24 clips.\\nThe final answer is $\\\\boxed{24}$.'
    """
    if form not in GOLD_FORMS:
        raise ValueError(f"gold form must be one of {', '.join(GOLD_FORMS)}, got {form!r}")
    text = CALCULATOR_NOTE.sub("", str(answer))
    if form == "auto":
        form = "boxed" if system_prompt and "\\boxed" in system_prompt else "as-written"
    final = _FINAL_LINE.search(text)
    if form == "boxed" and final is not None:
        value = gold_answer(text)
        steps = text[:final.start()].rstrip()
        text = (steps + "\n" if steps else "") + f"The final answer is $\\boxed{{{value}}}$."
    return text

