"""Problem sets: JSONL files with ``question`` (+ optional ``answer`` and ``id``),
or GSM8K by its Hub name through ``datasets``."""
from __future__ import annotations

import math
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

    @property
    def gold(self) -> Optional[str]:
        return gsm8k_gold(self.answer) if self.answer is not None else None

    def to_dict(self) -> dict:
        return asdict(self)


def gsm8k_gold(answer: str) -> str:
    """The final answer: the text after the last '####', or the whole answer if none."""
    text = str(answer)
    if "####" in text:
        text = text.rsplit("####", 1)[1]
    return text.strip().replace(",", "")


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
    return Problem(str(raw_id), question, None if answer is None else str(answer))


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
    from datasets import load_dataset

    rows = load_dataset("openai/gsm8k", "main", split=split)
    return [Problem(f"gsm8k-{split}-{i}", row["question"], row["answer"]) for i, row in enumerate(rows)]


def load_problems(source: Union[str, Path, Sequence], max_problems: Optional[int] = None,
                  split: str = "train", require_answers: bool = False) -> list[Problem]:
    """Problems from a JSONL path, a GSM8K Hub name, or a list of dicts/Problems.
    ``require_answers``: a JSONL line without an answer is an error naming its line."""
    if isinstance(source, (list, tuple)):
        problems = [p if isinstance(p, Problem) else problem_from_dict(p, f"problem {i}", str(i))
                    for i, p in enumerate(source)]
        if len({p.id for p in problems}) != len(problems):
            raise ProblemError("problem ids are not unique")
    elif str(source) in GSM8K_HUB_NAMES and not Path(str(source)).exists():
        problems = load_gsm8k(split)
    else:
        problems = read_jsonl_problems(source, require_answers)
    if max_problems is not None:
        if max_problems < 1:
            raise ValueError(f"max_problems must be >= 1, got {max_problems}")
        problems = problems[:max_problems]
    return problems
