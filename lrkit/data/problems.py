"""Problem sets: JSONL files with ``question`` (+ optional ``answer`` and ``id``),
or a benchmark by name (``gsm8k``, ``math500``, ``svamp``, ... see
``lrkit.data.benchmarks``) from the Hub through ``datasets`` or from a local copy.

A benchmark name means its evaluation split (``gsm8k``: test); ``NAME:SPLIT``
(``gsm8k:train``) names another (:func:`benchmark_source`)."""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Optional, Sequence, Union

from lrkit.data.answers import Problem, ProblemError
from lrkit.data.benchmarks import BENCHMARKS, load_benchmark
from lrkit.data.records import parse_json_line, read_lines

GSM8K_HUB_NAMES = ("gsm8k", "openai/gsm8k")


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


def benchmark_source(source) -> Optional[tuple[str, Optional[str]]]:
    """``(benchmark name, split or None)`` when ``source`` names a benchmark, else None.

    The rule, the same everywhere a problem source is read:

    - ``NAME`` (``gsm8k``, ``math500``, ...; ``openai/gsm8k`` is ``gsm8k``) means
      the benchmark's **evaluation** split (``BENCHMARKS[NAME].split``; GSM8K: test);
    - ``NAME:SPLIT`` (``gsm8k:train``) means that Hub split;
    - a path that exists is a file, whatever its name.

    Sampling and SFT need ``NAME:SPLIT`` (:func:`training_problems`); only the
    command line ``lrkit sample --problems gsm8k`` keeps its documented meaning,
    ``gsm8k:train``, and says so.
    """
    if isinstance(source, (list, tuple)) or Path(str(source)).exists():
        return None
    name, sep, split = str(source).partition(":")
    name = "gsm8k" if name in GSM8K_HUB_NAMES else name
    if name not in BENCHMARKS:
        return None
    if sep and not re.fullmatch(r"[A-Za-z0-9_.+-]+", split):
        raise ProblemError(f"{source!r}: expected NAME:SPLIT, e.g. gsm8k:train")
    return name, (split if sep else None)


def load_problems(source: Union[str, Path, Sequence], max_problems: Optional[int] = None,
                  split: Optional[str] = None, require_answers: bool = False) -> list[Problem]:
    """Problems from a JSONL path, a benchmark name, or a list of dicts/Problems.

    A benchmark name means its evaluation split (GSM8K: test), ``NAME:SPLIT``
    or ``split`` another Hub split (:func:`benchmark_source`), so that no caller
    samples or trains on a test split by accident.

    Args:
        source: a JSONL file (one object a line: ``question``, optional ``answer``,
            ``id`` (default: the line's index among the problems) and ``answer_kind``),
            a benchmark name (``"gsm8k"``, ``"math500"``, ``"gsm8k:train"``; loaded from
            the Hub through ``datasets``), or a list of such dicts or of ``Problem``.
        max_problems (int, optional): keep the first N problems; None keeps all.
        split (str, optional): the Hub split of a benchmark name given without one;
            ignored for a file or a list.
        require_answers (bool): a JSONL line without an ``answer`` is an error naming
            its line (a list or a benchmark is not checked).

    Returns:
        list[Problem]: in the source's order, ids unique.

    Raises:
        lrkit.data.answers.ProblemError: a missing file, an unknown benchmark name, a bad
            line or field (the message names the line), repeated ids, an empty file, or
            ``NAME:SPLIT`` and ``split`` naming different splits (a ValueError).
        ValueError: ``max_problems`` below 1.

    >>> load_problems([{"question": "What is 2 + 3?", "answer": "5"}])
    [Problem(id='0', question='What is 2 + 3?', answer='5', answer_kind='math')]
    """
    named = benchmark_source(source)
    if isinstance(source, (list, tuple)):
        problems = [p if isinstance(p, Problem) else problem_from_dict(p, f"problem {i}", str(i))
                    for i, p in enumerate(source)]
        if len({p.id for p in problems}) != len(problems):
            raise ProblemError("problem ids are not unique")
    elif named is not None:
        name, named_split = named
        if named_split is not None and split is not None and named_split != split:
            raise ProblemError(f"{source!r} names split {named_split!r} but split={split!r} was given")
        problems = load_benchmark(name, split=named_split or split)
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


def training_problems(source, max_problems: Optional[int] = None, caller: str = "sampling") -> list[Problem]:
    """Problems to learn from (sampling, SFT): as :func:`load_problems`, but a
    bare benchmark name is refused, since it means the evaluation split; name
    the split (``gsm8k:train``, the paper's sampling set)."""
    named = benchmark_source(source)
    if named is not None and named[1] is None:
        raise ProblemError(f"problems {str(source)!r}: a bare benchmark name means its evaluation split; "
                           f"{caller} names its split, e.g. '{named[0]}:train'")
    return load_problems(source, max_problems=max_problems)


def _looks_like_a_name(source) -> bool:
    """A bare word (no folder, no file extension) that is not a file: a mistyped benchmark."""
    path = Path(str(source))
    return not path.exists() and path.suffix == "" and len(path.parts) == 1
