"""The paper's seven benchmarks by name: where each lives, how its rows become
problems, and the paper's published Table 1.

One registry, ``BENCHMARKS``: name -> Hub id, config, split, the fields read,
the answer kind, and a source and licence note. Each benchmark loads from the
Hub through ``datasets`` (needs the network) or from a local JSONL or parquet
file **in the Hub's own schema** (``load_benchmark(name, path=...)``), which is
how offline users and the tests load them.

Row -> problem mappings follow the Qwen2.5-Math evaluation toolkit
(QwenLM/Qwen2.5-Math, ``evaluation/parser.py`` and ``data_loader.py``), which is
what the LightReasoner authors evaluated with:

- MATH (full test set): gold = the last ``\\boxed{}`` of the worked solution.
- SVAMP: question = body (a full stop added if missing) + " " + question;
  the toolkit uses train and test together (1,000 problems).
- ASDiv: question = body + " " + question; gold = answer without its
  parenthesised unit ("9 (apples)" -> "9"); rows with several answers (";")
  are dropped.
- OlympiadBench: gold = first final answer without "$".
- MMLU-STEM: the 18 STEM subjects of MMLU's test split; the question is
  ``"{question}\\nAnswer Choices: (A) .. (B) .. (C) .. (D) .."``; gold is the
  letter; see ``lrkit.evaluation.extract_choice`` for the scoring.

Licences are as the dataset cards state them (recorded here, not re-checked
offline); check them before redistributing any data.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

from lrkit.data.answers import Problem, ProblemError, last_boxed

__all__ = ["Benchmark", "BENCHMARKS", "PAPER_BENCHMARKS", "load_benchmark",
           "get_benchmark", "benchmark_names"]

MMLU_STEM_SUBJECTS = (
    "abstract_algebra", "astronomy", "college_biology", "college_chemistry",
    "college_computer_science", "college_mathematics", "college_physics", "computer_security",
    "conceptual_physics", "electrical_engineering", "elementary_mathematics", "high_school_biology",
    "high_school_chemistry", "high_school_computer_science", "high_school_mathematics",
    "high_school_physics", "high_school_statistics", "machine_learning",
)
CHOICE_LETTERS = "ABCD"


def _number_text(value) -> str:
    """145.0 -> "145"; other values as written."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _gsm8k(row: dict) -> tuple[str, str]:
    return row["question"], row["answer"]


def _math500(row: dict) -> tuple[str, str]:
    return row["problem"], str(row["answer"])


def _math_full(row: dict) -> tuple[str, str]:
    gold = last_boxed(str(row["solution"]))
    if gold is None:
        raise ValueError("field 'solution' has no \\boxed{} answer")
    return row["problem"], gold


def _svamp(row: dict) -> tuple[str, str]:
    body = str(row["Body"]).strip()
    if not body.endswith("."):
        body += "."
    return f"{body} {str(row['Question']).strip()}", _number_text(row["Answer"])


def _asdiv(row: dict) -> Optional[tuple[str, str]]:
    answer = str(row["answer"])
    if ";" in answer:  # several answers: the toolkit drops these
        return None
    return (f"{str(row['body']).strip()} {str(row['question']).strip()}",
            re.sub(r"\(.*?\)", "", answer).strip())


def _minerva(row: dict) -> tuple[str, str]:
    return row["question"], str(row["answer"])


def _olympiad(row: dict) -> tuple[str, str]:
    answers = row["final_answer"]
    if isinstance(answers, str):  # a JSON-encoded list in some exports
        answers = json.loads(answers) if answers.startswith("[") else [answers]
    answers = list(answers)
    if not answers:
        raise ValueError("field 'final_answer' is empty")
    return row["question"], str(answers[0]).strip().strip("$")


def _mmlu_stem(row: dict) -> Optional[tuple[str, str]]:
    if row["subject"] not in MMLU_STEM_SUBJECTS:
        return None
    choices = list(row["choices"])
    if len(choices) != 4:
        raise ValueError(f"field 'choices' must hold 4 options, got {len(choices)}")
    answer = row["answer"]
    if isinstance(answer, str) and answer.strip().upper() in CHOICE_LETTERS:
        answer = CHOICE_LETTERS.index(answer.strip().upper())
    if not isinstance(answer, int) or not 0 <= answer < 4:
        raise ValueError(f"field 'answer' must be 0-3, got {answer!r}")
    options = " ".join(f"({letter}) {str(option).strip()}" for letter, option in zip(CHOICE_LETTERS, choices))
    return f"{str(row['question']).strip()}\nAnswer Choices: {options}", CHOICE_LETTERS[answer]


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    """Column title, as in the paper's Table 1."""
    hub_id: str
    config: Union[str, tuple, None]
    """Hub config; several (a tuple) are loaded one after the other."""
    split: str
    """Hub split ("train+test" concatenates, as the toolkit does for SVAMP)."""
    fields: tuple
    """Fields a row must have (the question and gold-answer fields)."""
    answer_kind: str
    """"math" or "choice"."""
    to_question_answer: Callable[[dict], Optional[tuple]] = field(repr=False)
    """Row -> (question, gold answer), or None for a row the benchmark leaves out."""
    id_field: Optional[str] = None
    """A field holding a stable problem id; otherwise "<id_prefix>-<row index>"."""
    id_prefix: str = "{name}"
    """Prefix of row-index ids, formatted with the name and the split used."""
    source: str = ""
    licence: str = ""
    note: str = ""

    def problems(self, rows: Iterable[dict], where: Callable[[int], str],
                 split: Optional[str] = None) -> list[Problem]:
        """Map rows of this benchmark's schema to problems; a bad row raises
        ProblemError naming ``where(index)`` and the field."""
        prefix = self.id_prefix.format(name=self.name, split=split or self.split)
        problems: list[Problem] = []
        first_seen: dict[str, int] = {}
        for index, row in enumerate(rows):
            missing = [f for f in self.fields if f not in row or row[f] is None]
            if missing:
                raise ProblemError(f"{where(index)}: missing field '{missing[0]}' "
                                   f"({self.name} rows need {', '.join(self.fields)})")
            try:
                mapped = self.to_question_answer(row)
            except (ValueError, TypeError, KeyError) as err:
                raise ProblemError(f"{where(index)}: {err}") from None
            if mapped is None:
                continue
            question, answer = mapped
            raw_id = row.get(self.id_field) if self.id_field else None
            problem_id = str(raw_id) if raw_id not in (None, "") else f"{prefix}-{index}"
            if problem_id in first_seen:
                raise ProblemError(f"{where(index)}: id {problem_id!r} already used at "
                                   f"{where(first_seen[problem_id])}")
            first_seen[problem_id] = index
            problems.append(Problem(problem_id, str(question), str(answer), self.answer_kind))
        return problems


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark("gsm8k", "GSM8K", "openai/gsm8k", "main", "test", ("question", "answer"), "math", _gsm8k,
              id_prefix="gsm8k-{split}",  # the ids `load_problems("gsm8k", split=...)` has always given
              source="Cobbe et al. 2021, grade-school word problems; 1,319 test problems",
              licence="MIT"),
    Benchmark("math500", "MATH-500", "HuggingFaceH4/MATH-500", None, "test", ("problem", "answer"), "math",
              _math500, id_field="unique_id",
              source="Hendrycks et al. 2021 MATH; the 500-problem subset of Lightman et al. 2023",
              licence="MIT",
              note="the paper's MATH column is the full 5,000-problem MATH test set "
                   "(Qwen2.5-Math toolkit); MATH-500 is a subset, so compare with care"),
    Benchmark("math", "MATH", "EleutherAI/hendrycks_math",
              ("algebra", "counting_and_probability", "geometry", "intermediate_algebra", "number_theory",
               "prealgebra", "precalculus"), "test", ("problem", "solution"), "math", _math_full,
              source="Hendrycks et al. 2021 MATH, the full 5,000-problem test set (the paper's MATH column); "
                     "gold = the last \\boxed{} of the solution; subject by subject, so --limit takes algebra first",
              licence="MIT"),
    Benchmark("svamp", "SVAMP", "ChilleD/SVAMP", None, "train+test", ("Body", "Question", "Answer"), "math",
              _svamp, id_field="ID",
              source="Patel et al. 2021, varied one-unknown word problems; 1,000 problems (train+test, "
                     "as the Qwen2.5-Math toolkit uses)",
              licence="MIT"),
    Benchmark("asdiv", "ASDiv", "EleutherAI/asdiv", None, "validation", ("body", "question", "answer"),
              "math", _asdiv,
              source="Miao et al. 2020, diverse primary-school word problems; multi-answer rows dropped",
              licence="CC BY-NC 4.0"),
    Benchmark("minerva_math", "Minerva Math", "math-ai/minervamath", None, "test", ("question", "answer"),
              "math", _minerva,
              source="Lewkowycz et al. 2022 (Minerva), 272 MIT OpenCourseWare STEM problems",
              licence="CC BY-NC-SA 4.0 (MIT OpenCourseWare material)"),
    Benchmark("olympiadbench", "OlympiadBench", "Hothan/OlympiadBench", "OE_TO_maths_en_COMP", "train",
              ("question", "final_answer"), "math", _olympiad, id_field="id",
              source="He et al. 2024, open-ended text-only English maths competition problems",
              licence="Apache-2.0"),
    Benchmark("mmlu_stem", "MMLU STEM", "hails/mmlu_no_train", "all", "test",
              ("question", "subject", "choices", "answer"), "choice", _mmlu_stem,
              source="Hendrycks et al. 2021 MMLU, the 18 STEM subjects the Qwen2.5-Math toolkit uses",
              licence="MIT"),
)}

PAPER_BENCHMARKS = ("gsm8k", "math500", "svamp", "asdiv", "minerva_math", "olympiadbench", "mmlu_stem")
"""The paper's seven benchmarks as lrkit runs them by default, in Table 1's
order; MATH-500 stands in for the full MATH test set ("math"), which is ten
times larger. The paper's MATH numbers are shown against either."""



def benchmark_names() -> str:
    return ", ".join(BENCHMARKS)


def get_benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise ProblemError(f"unknown benchmark {name!r}; known benchmarks: {benchmark_names()}")
    return BENCHMARKS[name]


def load_benchmark(name: str, path: Union[str, Path, None] = None, split: Optional[str] = None,
                   limit: Optional[int] = None) -> list[Problem]:
    """The problems of benchmark ``name``: from ``path`` (JSONL or parquet in the
    Hub's schema) when given, else from the Hub (``split`` overrides the
    registry's). ``limit`` keeps the first N problems."""
    benchmark = get_benchmark(name)
    if path is not None:
        problems = benchmark.problems(*_read_local(Path(path)))
    else:
        rows = _hub_rows(benchmark, split or benchmark.split)
        problems = benchmark.problems(rows, lambda i: f"{benchmark.hub_id} row {i}", split)
    if not problems:
        raise ProblemError(f"{path or benchmark.hub_id}: no {name} problems found")
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        problems = problems[:limit]
    return problems


def _read_local(path: Path) -> tuple[list[dict], Callable[[int], str]]:
    if not path.exists():
        raise ProblemError(f"{path}: no such file")
    if path.suffix == ".parquet":
        import pandas as pd

        frame = pd.read_parquet(path)
        rows = [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]
        return rows, lambda i: f"{path}, row {i + 1}"
    rows, lines = [], []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ProblemError(f"{path}, line {number}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise ProblemError(f"{path}, line {number}: expected a JSON object")
            rows.append(row)
            lines.append(number)
    return rows, lambda i: f"{path}, line {lines[i] if i < len(lines) else '?'}"


def _plain(value):
    """numpy scalars and arrays from parquet as plain Python values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def _hub_rows(benchmark: Benchmark, split: str) -> list[dict]:
    from datasets import load_dataset

    configs = benchmark.config if isinstance(benchmark.config, tuple) else (benchmark.config,)
    rows: list[dict] = []
    for config in configs:
        for part in split.split("+"):
            rows.extend(load_dataset(benchmark.hub_id, config, split=part))
    return rows
