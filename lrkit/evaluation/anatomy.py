"""Error anatomy: what the contrast fixes, and what it breaks.

Sort every wrong answer of a base model and of its tuned versions into types,
then count per type how many the tuning fixes (wrong in the base, right after)
and how many it introduces (right in the base, wrong after, of that type):

    anatomy = lrkit.error_anatomy({"base": base, "tuned": tuned}, problems=test)
    anatomy.table()          # one row per type: errors per model, fixed, introduced

``classify(row)`` decides a wrong answer's type; ``row`` is a dict with the
evaluation's columns (question, gold, output, prediction, correct) and, when
``problems`` are given, ``solution``: the problem's worked gold answer. The
default, :func:`classify_toy`, knows the toy family's worked lines
(``5 + 3 = 8``); plug in your own for your own problems.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence, Union
from lrkit.evaluation import EvalResult

HABIT, ARITHMETIC, READING, OTHER = "habit (copy line)", "arithmetic slip", "reading", "other"
TOY_TYPES = (HABIT, ARITHMETIC, READING, OTHER)
"""The toy classifier's types, in the order the tables show them."""

_EQUATION = re.compile(r"(-?\d+)\s*([+\-*x×])\s*(-?\d+)\s*=\s*(-?\d+)")
_START = re.compile(r"starts with (\d+)")
_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
        "x": lambda a, b: a * b, "×": lambda a, b: a * b}


def equations(text: Optional[str]) -> list[tuple[int, str, int, int]]:
    """The worked lines ``a op b = c`` of a text, in order, as (a, op, b, c) (x and × read as *)."""
    out = []
    for a, op, b, c in _EQUATION.findall(text or ""):
        out.append((int(a), "*" if op in "x×" else op, int(b), int(c)))
    return out


def classify_toy(row: Mapping) -> str:
    """The type of one wrong toy answer, from its worked lines (first match wins):

    * **habit (copy line)**: a line ends on its own second operand although the
      sum is something else (``5 + 3 = 3``): G's "copy the last number";
    * **arithmetic slip**: another line whose result is wrong (``5 + 3 = 9``);
    * **reading**: every line is right arithmetic, but on other operands or
      operations than the gold solution's (a misread or skipped number, + for
      -, a step added or left out); needs ``row["solution"]``;
    * **other**: none of these (no worked line, a final ``####`` that does not
      follow from right lines, a cut-off answer).

    Args:
        row: one wrong answer as :func:`error_anatomy` passes it: a mapping with
            ``output`` (the model's text) and, for **reading**, ``solution`` (the worked
            gold answer); other keys are ignored. Worked lines are ``a op b = c`` with
            integers and + - * x.

    Returns:
        str: one of :data:`TOY_TYPES`.

    >>> classify_toy({"output": "5 + 3 = 3\\n#### 3"})
    'habit (copy line)'
    >>> classify_toy({"output": "5 + 3 = 9\\n#### 9"})
    'arithmetic slip'
    >>> classify_toy({"output": "5 - 3 = 2\\n#### 2", "solution": "5 + 3 = 8\\n#### 8"})
    'reading'
    >>> classify_toy({"output": "#### 4"})
    'other'
    """
    lines = equations(row.get("output"))
    if any(c == b and c != _OPS[op](a, b) for a, op, b, c in lines):
        return HABIT
    if any(c != _OPS[op](a, b) for a, op, b, c in lines):
        return ARITHMETIC
    solution = row.get("solution")
    if lines and solution:
        gold = equations(solution)
        start_out, start_gold = _START.search(row.get("output") or ""), _START.search(solution)
        misread_start = bool(start_out and start_gold and start_out.group(1) != start_gold.group(1))
        if misread_start or [(a, op, b) for a, op, b, _ in lines] != [(a, op, b) for a, op, b, _ in gold]:
            return READING
    return OTHER


CUT, NO_ANSWER, SLIP, REASONING = "cut at the token limit", "no final answer", "arithmetic slip", "reasoning"
GSM8K_TYPES = (CUT, NO_ANSWER, SLIP, REASONING)
"""The GSM8K classifier's types, in the order the tables show them."""

_NUMBER = r"(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
_GSM8K_EQUATION = re.compile(_NUMBER + r"\s*(\+|-|\*|/|×|x|\\times|\\cdot|\\div|÷)\s*" + _NUMBER
                             + r"\s*=\s*\$?\s*" + _NUMBER)
_GSM8K_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "×": lambda a, b: a * b,
              "x": lambda a, b: a * b, "\\times": lambda a, b: a * b, "\\cdot": lambda a, b: a * b,
              "/": lambda a, b: a / b if b else None, "\\div": lambda a, b: a / b if b else None,
              "÷": lambda a, b: a / b if b else None}


def slipped_lines(text: Optional[str]) -> list[str]:
    """The worked lines ``a op b = c`` of free text (digits with thousands commas and
    decimals; + - * / x × \\times \\cdot \\div) whose result is wrong by more than
    rounding to the digits shown. A chain such as ``2 + 3 + 4 = 9`` is read from its
    last operator only, so it is not counted."""
    slips = []
    for match in _GSM8K_EQUATION.finditer(text or ""):
        a, op, b, c = match.groups()
        start = match.start()
        before = (text or "")[max(0, start - 12):start].rstrip(" $")
        if re.search(r"([\d.)]|[-+*/×÷]|\\times|\\cdot|\\div)$", before):
            continue  # part of a longer expression: not a binary line
        try:
            x, y, z = (float(v.replace(",", "")) for v in (a, b, c))
        except ValueError:
            continue
        value = _GSM8K_OPS[op](x, y)
        if value is None:
            continue
        places = len(c.split(".")[1]) if "." in c else 0
        if abs(value - z) > 0.5 * 10 ** -places + 1e-9 * max(1.0, abs(value)):
            slips.append(match.group(0))
    return slips


def classify_gsm8k(row: Mapping) -> str:
    """The type of one wrong answer to a GSM8K-style problem (first match wins):

    * **cut at the token limit**: the generation ran out of tokens (``finished`` False);
    * **no final answer**: it ended, but no answer could be read from it;
    * **arithmetic slip**: a worked line ``a op b = c`` with a wrong result (:func:`slipped_lines`);
    * **reasoning**: everything else: right arithmetic on the wrong quantities or steps, a
      misread question, a wrong final step.
    """
    if not bool(row.get("finished", True)):
        return CUT
    if row.get("prediction") in (None, ""):
        return NO_ANSWER
    if slipped_lines(row.get("output")):
        return SLIP
    return REASONING


def _as_results(results) -> dict:
    if isinstance(results, EvalResult):
        return {results.name: results}
    if isinstance(results, Mapping):
        return dict(results)
    named = {}
    for result in results:
        named[result.name if result.name not in named else f"{result.name} ({len(named)})"] = result
    return named


@dataclass
class ErrorAnatomy:
    """Per-problem error types of several models on the same problems (the first is the base)."""

    types: "object"
    """pandas DataFrame: one row per problem, ``id`` and one column per model
    holding the error type, or None where that model was right."""
    models: list
    order: list

    @property
    def base(self) -> str:
        return self.models[0]

    def counts(self) -> dict:
        """{model: {type: wrong answers of that type}}."""
        return {m: {t: int((self.types[m] == t).sum()) for t in self.order} for m in self.models}

    def transitions(self, model: str) -> dict:
        """{type: {"fixed": base wrong of this type and ``model`` right,
        "introduced": base right and ``model`` wrong of this type,
        "base": base errors of the type, "after": ``model``'s errors of the type}}."""
        base, other = self.types[self.base], self.types[model]
        return {t: {"base": int((base == t).sum()), "after": int((other == t).sum()),
                    "fixed": int(((base == t) & other.isna()).sum()),
                    "introduced": int((base.isna() & (other == t)).sum())} for t in self.order}

    def table(self):
        """One row per (model, type) against the base: errors before and after, fixed, introduced."""
        import pandas as pd

        rows = []
        for model in self.models[1:]:
            for t, c in self.transitions(model).items():
                rows.append({"model": model, "type": t, "base errors": c["base"], "errors after": c["after"],
                             "fixed": c["fixed"], "introduced": c["introduced"]})
        return pd.DataFrame(rows)

    def summary(self) -> dict:
        return {"models": self.models, "types": self.order, "counts": self.counts(),
                "transitions": {m: self.transitions(m) for m in self.models[1:]}}

    def examples(self, model: str, error_type: str, n: int = 3):
        """Up to ``n`` problem ids whose answer by ``model`` has this type."""
        return list(self.types.loc[self.types[model] == error_type, "id"][:n])


def error_anatomy(results, classify: Optional[Callable[[Mapping], str]] = None,
                  problems: Union[Sequence, None] = None, types: Optional[Sequence[str]] = None) -> ErrorAnatomy:
    """Types of every wrong answer of each result, on the problems they share.

    ``results``: a dict {name: EvalResult} (the first is the base the others are
    compared with), a list of EvalResults, or one. ``classify(row) -> str``
    (default :func:`classify_toy`) sees each wrong answer's row; ``problems``
    (dicts with id and a worked ``answer``, or ``Problem``s) add the worked gold
    solution as ``row["solution"]``. ``types`` fixes the order of the tables
    (default: with :func:`classify_toy`, the four toy types, then any others it
    returned; with another classifier, the types it returned, toy types first when
    among them).

    Args:
        results: ``{name: EvalResult}`` (the first is the base), a list of EvalResults
            (named by ``EvalResult.name``, repeated names numbered), or one EvalResult.
        classify: ``classify(row) -> str`` for each wrong answer; ``row`` has the
            evaluation's columns and ``solution``. Default :func:`classify_toy`;
            :func:`classify_gsm8k` suits GSM8K-style answers.
        problems: dicts with ``id`` and a worked ``answer``, or ``Problem``; None gives
            ``solution`` None.
        types: the order of the types in the tables; types the classifier returns
            beyond them follow.

    Returns:
        ErrorAnatomy: ``types``, a DataFrame with one row per problem that every result
        holds (in the first result's order): ``id`` and, per model, the error type or None
        where it was right; ``counts()``, ``transitions(model)`` and ``table()`` (fixed and
        introduced per type, against the base) read it.

    Raises:
        ValueError: no results.
    """
    import pandas as pd

    named = _as_results(results)
    if not named:
        raise ValueError("error_anatomy() got no results")
    classify = classify or classify_toy
    solutions = {}
    for p in problems or ():
        pid, answer = (p.get("id"), p.get("answer")) if isinstance(p, Mapping) else (p.id, p.answer)
        solutions[str(pid)] = answer
    ids = None
    for name, result in named.items():
        these = list(map(str, result.df["id"]))
        ids = these if ids is None else [i for i in ids if i in set(these)]
    frame = pd.DataFrame({"id": ids})
    for name, result in named.items():
        rows = {str(r["id"]): r for r in result.df.to_dict("records")}
        column = []
        for pid in ids:
            row = {**rows[pid], "solution": solutions.get(pid)}
            column.append(None if bool(row["correct"]) else str(classify(row)))
        frame[name] = pd.Series(column, dtype=object)
    found = [t for name in named for t in frame[name].dropna().unique()]
    order = list(types or TOY_TYPES)
    order += [t for t in dict.fromkeys(found) if t not in order]
    if types is None and classify is not classify_toy:
        order = [t for t in order if t in found]
    return ErrorAnatomy(frame, list(named), order)
