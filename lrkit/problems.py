"""Problem sets: JSONL files with ``question`` (+ optional ``answer`` and ``id``),
or a benchmark by name (``gsm8k``, ``math500``, ``svamp``, ... see
``lrkit.benchmarks``) from the Hub through ``datasets`` or from a local copy."""
from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

GSM8K_HUB_NAMES = ("gsm8k", "openai/gsm8k")


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
        return gsm8k_gold(self.answer) if self.answer is not None else None

    def to_dict(self) -> dict:
        data = asdict(self)
        if data["answer_kind"] == "math":  # the default: dicts and files stay as they were
            del data["answer_kind"]
        return data


_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


def gsm8k_gold(answer: str) -> str:
    """The final answer: the text after the last '####', or the whole answer if none.

    Thousands separators are dropped from a plain number ("1,234" -> "1234");
    other commas stay, because in "(1, 2)" or "\\{1, 2\\}" they are the answer.
    """
    text = str(answer)
    if "####" in text:
        text = text.rsplit("####", 1)[1]
    text = text.strip()
    return text.replace(",", "") if _THOUSANDS.match(text) else text


def problem_from_dict(item, where: str, default_id: str) -> Problem:
    if not isinstance(item, dict):
        raise ProblemError(f"{where}: expected a JSON object, got {type(item).__name__}")
    if "question" not in item:
        raise ProblemError(f"{where}: missing field 'question'")
    question = item["question"]
    if not isinstance(question, str) or not question.strip():
        raise ProblemError(f"{where}: field 'question' must be a non-empty string")
    answer = item.get("answer")
    if answer is not None and (not isinstance(answer, (str, int, float)) or isinstance(answer, bool)
                               or (isinstance(answer, float) and not math.isfinite(answer))):
        raise ProblemError(f"{where}: field 'answer' must be a string or a finite number")
    raw_id = item.get("id", default_id)
    if not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool) or str(raw_id) == "":
        raise ProblemError(f"{where}: field 'id' must be a non-empty string or an integer")
    kind = item.get("answer_kind", "math")
    if kind not in ("math", "choice"):
        raise ProblemError(f"{where}: field 'answer_kind' must be 'math' or 'choice', got {kind!r}")
    return Problem(str(raw_id), question, None if answer is None else str(answer), kind)


def read_jsonl_problems(path: Union[str, Path], require_answers: bool = False) -> list[Problem]:
    from .records import parse_json_line, read_lines

    path = Path(path)
    if not path.is_file():
        raise ProblemError(f"{path}: no such problem file")
    problems: list[Problem] = []
    first_line_of: dict[str, int] = {}
    for number, line in read_lines(path, ProblemError):
        where = f"{path}, line {number}"
        item = parse_json_line(line, where, ProblemError)
        problem = problem_from_dict(item, where, default_id=str(len(problems)))
        if require_answers and problem.answer is None:
            raise ProblemError(f"{where}: missing field 'answer' (evaluation scores against it)")
        if problem.id in first_line_of:
            raise ProblemError(f"{where}: id {problem.id!r} already used on line "
                               f"{first_line_of[problem.id]}")
        first_line_of[problem.id] = number
        problems.append(problem)
    if not problems:
        raise ProblemError(f"{path}: the problem file holds no problems")
    return problems


def load_gsm8k(split: str = "train") -> list[Problem]:
    """GSM8K from the Hub (works on Colab; needs the network)."""
    from .benchmarks import load_benchmark

    return load_benchmark("gsm8k", split=split)


def load_problems(source: Union[str, Path, Sequence], max_problems: Optional[int] = None,
                  split: Optional[str] = None, require_answers: bool = False) -> list[Problem]:
    """Problems from a JSONL path, a benchmark name, or a list of dicts/Problems.

    ``gsm8k`` keeps its old meaning here, the Hub's ``split`` (default
    "train", what sampling uses); every other benchmark name
    (``lrkit.benchmarks.BENCHMARKS``) loads that benchmark's evaluation split
    unless ``split`` is given. ``require_answers``: a JSONL line without an
    answer is an error naming its line.
    """
    from .benchmarks import BENCHMARKS, load_benchmark

    if isinstance(source, (list, tuple)):
        problems = [p if isinstance(p, Problem) else problem_from_dict(p, f"problem {i}", str(i))
                    for i, p in enumerate(source)]
        if len({p.id for p in problems}) != len(problems):
            raise ProblemError("problem ids are not unique")
    elif str(source) in GSM8K_HUB_NAMES and not Path(str(source)).exists():
        problems = load_gsm8k(split or "train")
    elif str(source) in BENCHMARKS and not Path(str(source)).exists():
        problems = load_benchmark(str(source), split=split)
    elif _looks_like_a_name(source):
        raise ProblemError(f"unknown benchmark {str(source)!r} and no such file; known benchmarks: "
                           f"{', '.join(BENCHMARKS)}")
    else:
        problems = read_jsonl_problems(source, require_answers)
    if max_problems is not None:
        if max_problems < 1:
            raise ValueError(f"max_problems must be >= 1, got {max_problems}")
        problems = problems[:max_problems]
    return problems


def _looks_like_a_name(source) -> bool:
    """A bare word (no folder, no file extension) that is not a file: a mistyped benchmark."""
    path = Path(str(source))
    return not path.exists() and path.suffix == "" and len(path.parts) == 1
