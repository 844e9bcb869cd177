"""The answer rules of the Qwen2.5-Math evaluation toolkit, which made the paper's Table 1.

The authors ran QwenLM/Qwen2.5-Math's ``evaluation/`` (their evaluation README; prompt
type ``qwen25-math-cot``). This module re-implements, in lrkit's words, what that
code does to one output and one gold answer, rule by rule, citing the toolkit's file
and function for each (read at QwenLM/Qwen2.5-Math, commit a45202b):

* :func:`normalize` is ``parser.py: strip_string`` (units, ``\\text``, ``$``, ``%``,
  number words, ``a/b`` -> ``\\frac``...), with :func:`word_to_number` standing in for
  the ``word2number`` package it calls;
* :func:`extract` is ``parser.py: extract_answer`` (the last ``boxed``, even empty or
  unclosed; "he answer is"; "final answer is"; the last number), :func:`choice_of`
  its ``choice_answer_clean``;
* :func:`prediction_of` is what ``math_eval.py: main`` and ``parser.py: run_execute``
  make of a generation (stop words cut, extraction, a second ``strip_string``, the
  multiple-choice repair);
* :func:`gold_of` is ``parser.py: parse_ground_truth`` as ``evaluate.py: evaluate``
  applies it (twice);
* :func:`math_equal` is ``grader.py: math_equal`` (strings, letters, numbers within a
  relative 1e-4 of the gold, of gold / 100 or of gold x 100, brackets, lists,
  matrices, equations, then sympy), under the 3 s limit of ``evaluate.py``.

Two deliberate differences, both in the symbolic tier only: the toolkit's bundled
``latex2sympy`` (its third parser) is stood in for by ``latex2sympy2_extended``
(math-verify's fork of the same parser), and sympy's ``parse_expr`` (which evaluates its
input as Python) is only given plain arithmetic text. The parity corpus in ``tests/test_protocol.py`` holds the cases
these rules were checked on, each against the toolkit's own code.
"""
from __future__ import annotations

import re
import threading
from math import isclose
from typing import Optional

CHOICE_DATA = ("mmlu_stem", "sat_math", "aqua", "gaokao2023")
"""Data sets whose answers are letters (``parser.py: extract_answer``)."""
KEEP_UNITS = ("carp_en", "minerva_math")
"""``parser.py: STRIP_EXCEPTIONS``: units are kept in the answer and the gold is not normalised."""
STOP_WORDS = ("</s>", "<|im_end|>", "<|endoftext|>")
"""``math_eval.py: main``'s stop strings for the CoT prompt types; the text after the first is dropped."""
TIMEOUT_S = 3
"""``evaluate.py: evaluate`` gives each comparison 3 seconds (pebble), then scores it wrong."""
LETTERS = ("A", "B", "C", "D", "E")

# ``parser.py: unit_texts`` ("units mainly from MathQA"), used there as regular
# expressions without escaping ("q ." matches "q" and any character), each also with
# an "s" added. Kept verbatim: the order and the unescaped dots decide what is removed.
_UNIT_WORDS = (
    "east", "degree", "mph", "kmph", "ft", "m sqaure", " m east", "sq m", "deg", "mile", "q .", "monkey",
    "prime", "ratio", "profit of rs", "rd", "o", "gm", "p . m", "lb", "tile", "per", "dm", "lt", "gain", "ab",
    "way", "west", "a .", "b .", "c .", "d .", "e .", "f .", "g .", "h .", "t", "a", "h", "no change", "men",
    "soldier", "pie", "bc", "excess", "st", "inches", "noon", "percent", "by", "gal", "kmh", "c", "acre",
    "rise", "a . m", "th", "π r 2", "sq", "mark", "l", "toy", "coin", "sq . m", "gallon", "° f", "profit",
    "minw", "yr", "women", "feet", "am", "pm", "hr", "cu cm", "square", "v â € ™", "are", "rupee", "rounds",
    "cubic", "cc", "mtr", "s", "ohm", "number", "kmph", "day", "hour", "minute", "min", "second", "man",
    "woman", "sec", "cube", "mt", "sq inch", "mp", "∏ cm ³", "hectare", "more", "sec", "unit", "cu . m",
    "cm 2", "rs .", "rs", "kg", "g", "month", "km", "m", "cm", "mm", "apple", "liter", "loss", "yard", "pure",
    "year", "increase", "decrease", "d", "less", "Surface", "litre", "pi sq m", "s .", "metre", "meter", "inch",
)
UNIT_PATTERNS = tuple(re.compile(r"(^|\W)" + unit + r"($|\W)") for unit in _UNIT_WORDS + tuple(
    unit + "s" for unit in _UNIT_WORDS))


# --------------------------------------------------------------------------- number words

_NUMBER_WORDS = {word: value for value, word in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())}
_NUMBER_WORDS.update({"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
                      "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000, "million": 10 ** 6,
                      "billion": 10 ** 9})
_SCALES = ("billion", "million", "thousand")


def _group_value(words: list) -> int:
    # word2number's number_formation: four words read as a x b + c + d, three as
    # a x b + c, two as a x b (with "hundred") or a + b; any other count as its first word.
    values = [_NUMBER_WORDS[w] for w in words]
    if len(values) == 4:
        return values[0] * values[1] + values[2] + values[3]
    if len(values) == 3:
        return values[0] * values[1] + values[2]
    if len(values) == 2:
        return values[0] * values[1] if 100 in values else values[0] + values[1]
    return values[0]


def word_to_number(text: str) -> Optional[str]:
    """What ``word2number.w2n.word_to_num`` (1.1) makes of ``text``, as a string, or None
    where it raises (``parser.py: convert_word_number`` then keeps the text as it was).

    Every word that is not a number word is ignored ("ten apples" -> "10"); a text of
    digits alone is read as an integer ("007" -> "7").
    """
    text = text.replace("-", " ").lower()
    if text.isdigit():
        try:
            return str(int(text))
        except ValueError:  # digits Python reads but int() refuses ("²")
            return None
    words = [w for w in text.strip().split() if w in _NUMBER_WORDS or w == "point"]
    if not words or any(words.count(w) > 1 for w in (*_SCALES, "point")):
        return None
    decimals: list = []
    if "point" in words:
        at = words.index("point")
        words, decimals = words[:at], words[at + 1:]
    b, m, k = (words.index(scale) if scale in words else -1 for scale in _SCALES)
    if (k > -1 and (k < m or k < b)) or (m > -1 and m < b):
        return None
    last = len(words) - 1
    try:
        total: float = 0
        if len(words) == 1:
            total = _NUMBER_WORDS[words[0]]
        elif words:
            if b > -1:
                total += _group_value(words[:b]) * 10 ** 9
            if m > -1:
                total += _group_value(words[b + 1:m] if b > -1 else words[:m]) * 10 ** 6
            if k > -1:
                start = m + 1 if m > -1 else (b + 1 if b > -1 else 0)
                total += _group_value(words[start:k]) * 1000
            # The words after the last scale word, in word2number's order of tests.
            if k > -1 and k != last:
                total += _group_value(words[k + 1:])
            elif m > -1 and m != last:
                total += _group_value(words[m + 1:])
            elif b > -1 and b != last:
                total += _group_value(words[b + 1:])
            elif k == m == b == -1:
                total += _group_value(words)
    except IndexError:  # an empty group before a scale word: word2number fails on it
        return None
    if decimals:  # get_decimal_sum: digit words only, else nothing is added
        if all(w in _NUMBER_WORDS and _NUMBER_WORDS[w] < 10 for w in decimals):
            total += float("0." + "".join(str(_NUMBER_WORDS[w]) for w in decimals))
    return str(total)


# --------------------------------------------------------------------------- normalisation

def _fix_fracs(text: str) -> str:
    # parser.py: _fix_fracs: \frac12 -> \frac{1}{2}, \frac1{72} -> \frac{1}{72}.
    parts = text.split("\\frac")
    out = parts[0]
    for part in parts[1:]:
        out += "\\frac"
        if part.startswith("{"):
            out += part
            continue
        if len(part) < 2:
            return text
        a, b, rest = part[0], part[1], part[2:]
        out += "{" + a + "}" + b + rest if b == "{" else "{" + a + "}{" + b + "}" + rest
    return out


def _fix_a_slash_b(text: str) -> str:
    # parser.py: _fix_a_slash_b: "3/4" (two integers, nothing else) -> \frac{3}{4}.
    parts = text.split("/")
    if len(parts) != 2:
        return text
    try:
        a = parts[0] if "sqrt" in parts[0] else int(parts[0])
        b = parts[1] if "sqrt" in parts[1] else int(parts[1])
    except ValueError:
        return text
    return "\\frac{" + str(a) + "}{" + str(b) + "}" if text == f"{a}/{b}" else text


_REPLACEMENTS_BEFORE_UNITS = (("bmatrix", "pmatrix"), ("tfrac", "frac"), ("dfrac", "frac"),
                              ("\\neq", "\\ne"), ("\\leq", "\\le"), ("\\geq", "\\ge"), ("\\left", ""),
                              ("\\right", ""), ("\\{", "{"), ("\\}", "}"))
_VARIABLE_PREFIXES = ("x=", "y=", "z=", "x\\in", "y\\in", "z\\in", "x\\to", "y\\to", "z\\to")


def normalize(text, skip_unit: bool = False) -> str:
    """``parser.py: strip_string``: the toolkit's canonical form of an answer, step by step."""
    s = str(text).strip().replace("\n", "").rstrip(".")
    s = s.replace("\\!", "")
    s = re.sub(r"\\begin\{array\}\{.*?\}", r"\\begin{pmatrix}", s)
    s = re.sub(r"\\end\{array\}", r"\\end{pmatrix}", s)
    for old, new in _REPLACEMENTS_BEFORE_UNITS:
        s = s.replace(old, new)
    # A trailing \text{...} is a unit, unless it is the whole answer.
    without = re.sub(r"\\text{.*?}$", "", s).strip()
    if without and without != s:
        s = without
    if not skip_unit:
        for _ in range(2):
            for pattern in UNIT_PATTERNS:
                removed = pattern.sub(r"\1\2", s)
                if removed:
                    s = removed
    for old in ("^{\\circ}", "^\\circ", "\\$", "$", "\\(", "\\)"):
        s = s.replace(old, "")
    words = word_to_number(s)
    s = s if words is None else words
    s = re.sub(r"\\text\{(.*?)\}", r"\1", s)
    for prefix in _VARIABLE_PREFIXES:
        s = s.replace(prefix, "")
    s = s.replace("\\emptyset", "{}").replace("(-\\infty,\\infty)", "\\mathbb{R}")
    s = s.replace("\\%", "").replace("%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    # (strip_string's brace/bracket unwrapping asks isalnum() of a string holding the
    # brackets, which is never true: it changes nothing, so it is left out.)
    s = s.replace("infinity", "\\infty")
    if "\\infty" not in s:
        s = s.replace("inf", "\\infty")
    s = s.replace("+\\inity", "\\infty")
    s = s.replace("and", "").replace("\\mathbf", "")
    s = re.sub(r"\\mbox{.*?}", "", s)
    if "j" in s and "i" not in s:
        s = s.replace("j", "i")
    s = re.sub(r"(\d+)\.0*([^\d])", r"\1\2", s)
    s = re.sub(r"(\d+)\.0*$", r"\1", s)
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    sides = s.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:
        s = sides[1]
    s = re.sub(r"\\sqrt(\w+)", r"\\sqrt{\1}", s)
    s = s.replace(" ", "")
    return _fix_a_slash_b(_fix_fracs(s))


# --------------------------------------------------------------------------- extraction

def choice_of(text: str) -> str:
    """``parser.py: choice_answer_clean``: after the last "answer is" / "choice is" the first
    letter A-E, else the last letter of the output; several such phrases mean a few-shot
    continuation, so only the text before the first blank line is read."""
    text = text.strip("\n")
    if any(text.count(trigger) > 1 for trigger in ("choice is", "answer is")):
        text = text.split("\n\n")[0]
    parts = re.split("choice is|answer is", text)
    after_phrase = len(parts) > 1
    text = parts[-1].strip("\n").rstrip(".").rstrip("/").strip(" ").lstrip(":")
    found = re.findall(r"\b(A|B|C|D|E)\b", text.upper()) or [text.strip().strip(".")]
    return (found[0] if after_phrase else found[-1]).rstrip(".").rstrip("/")


def _after_last_boxed(text: str) -> str:
    # parser.py: extract_answer's boxed branch: what follows the last "boxed", up to its
    # closing brace (to the end when it never closes), or up to a "$" without a brace.
    rest = text.split("boxed")[-1]
    if not rest.startswith("{"):
        return rest.split("$")[0].strip()
    depth, out = 1, []
    for ch in rest[1:]:
        depth += (ch == "{") - (ch == "}")
        if depth == 0:
            break
        out.append(ch)
    return "".join(out)


def extract(output: str, data_name: str = "gsm8k") -> str:
    """``parser.py: extract_answer`` (use_last_number=True) for one output."""
    text = output.replace("\u043a\u0438", "")
    if data_name in CHOICE_DATA:
        return choice_of(text)
    if "final answer is $" in text and "$. I hope" in text:  # Minerva's few-shot format
        answer = text.split("final answer is $", 1)[1].split("$. I hope", 1)[0].strip()
    elif "boxed" in text:
        if not text.split("boxed")[-1]:
            return ""
        answer = _after_last_boxed(text)
    elif "he answer is" in text:
        answer = text.split("he answer is")[-1].strip()
    elif "final answer is" in text:
        answer = text.split("final answer is")[-1].strip()
    elif "答案是" in text:
        answer = text.split("答案是")[1].strip().split("\n\n")[0].strip()
    else:
        numbers = re.findall(r"-?\d*\.?\d+", text.replace(",", ""))
        answer = numbers[-1] if numbers else ""
    if data_name in ("sat_math", "aqua") or "mmlu" in data_name:
        letters = re.findall(r"\b(A|B|C|D|E)\b", answer.upper())
        answer = letters[-1] if letters else answer.strip().strip(".")
    answer = re.sub(r"\n\s*", "", answer)
    if answer.startswith(":"):
        answer = answer[1:]
    if answer.endswith("."):
        answer = answer[:-1]
    if answer.endswith("/"):
        answer = answer[:-1]
    return normalize(answer, skip_unit=data_name in KEEP_UNITS)


def cut_at_stop_words(output: str) -> str:
    """``math_eval.py: main``: the generation stripped, and cut before each stop word in turn."""
    text = output.rstrip().strip()
    for word in STOP_WORDS:
        if word in text:
            text = text.split(word)[0].strip()
    return text


def _is_choice_answer(text: str) -> bool:
    # math_eval.py: is_multi_choice: every character a letter A-E (so "" counts too).
    return all(ch in LETTERS for ch in text)


def prediction_of(output: str, gold: str, data_name: str = "gsm8k") -> Optional[str]:
    """The toolkit's prediction for a decoded generation: stop words cut
    (``math_eval.py: main``), :func:`extract`, normalised again (``parser.py:
    run_execute``), and for a letter gold the multiple-choice repair of ``main``.
    None for an empty generation (``run_execute`` returns None; it is scored wrong)."""
    code = cut_at_stop_words(output)
    prediction = (None if not code or code == "error"
                  else normalize(extract(code, data_name), skip_unit=data_name in KEEP_UNITS))
    if gold in LETTERS and prediction not in LETTERS:
        prediction = choice_of(code)
    elif prediction is not None and _is_choice_answer(gold) and not _is_choice_answer(prediction):
        prediction = "".join(ch for ch in prediction if ch in LETTERS)
    return prediction


def gold_of(answer: str, data_name: str = "gsm8k") -> str:
    """The gold answer as ``evaluate.py: evaluate`` compares it: ``parse_ground_truth``
    on the data set's field, then once more on the parsed gold (for MATH the solution's
    last box is extracted again instead; Minerva's gold keeps its units).

    ``answer`` is the benchmark's answer field as lrkit loads it: GSM8K's solution
    (split at ``####``), a MATH / Minerva box content, a letter, a number.
    """
    text = str(answer)
    if data_name == "gsm8k" and "####" in text:
        text = text.split("####")[-1]
    if data_name in ("math", "minerva_math"):
        # parse_ground_truth extracts the solution's last box; lrkit keeps that box's content.
        text = extract("\\boxed{" + text + "}", data_name)
        if data_name == "minerva_math":
            return text.replace("\\neq", "\\ne").replace("\\leq", "\\le").replace("\\geq", "\\ge")
        return text
    if data_name in KEEP_UNITS:
        return text.replace("\\neq", "\\ne").replace("\\leq", "\\le").replace("\\geq", "\\ge")
    return normalize(normalize(text))


# --------------------------------------------------------------------------- comparison

def _number(text) -> Optional[float]:
    # grader.py: parse_digits: commas dropped; a trailing "%" (or "\%") divides by 100.
    text = str(text).replace(",", "")
    try:
        return float(text)
    except ValueError:
        if text.endswith("%"):
            text = text[:-1].rstrip("\\") if text[:-1].endswith("\\") else text[:-1]
            try:
                return float(text) / 100
            except ValueError:
                return None
    return None


def numbers_equal(prediction: str, reference: str) -> bool:
    """``grader.py: is_numerical_equal`` with percentages and closeness on: the prediction
    within a relative 1e-4 of the gold, of gold / 100 or of gold x 100."""
    pred, gold = _number(prediction), _number(reference)
    if pred is None or gold is None:
        return False
    return any(isclose(target, pred, rel_tol=1e-4) for target in (gold / 100, gold, gold * 100))


def _grader_choice(prediction: str) -> str:
    # grader.py: choice_answer_clean (the grader's own copy: the last letter, no phrases).
    text = prediction.strip("\n").rstrip(".").rstrip("/").strip(" ").lstrip(":")
    found = re.findall(r"\b(A|B|C|D|E)\b", text.upper()) or [text.strip().strip(".")]
    return found[-1].rstrip(".").rstrip("/")


def _wrapped(text: str, start: str, end: str) -> bool:
    return text.startswith(start) and text.endswith(end)


def _is_list(text: str) -> bool:
    return re.match(r"(\(|\[).+(\)|\])", text) is not None


def _is_matrix(text: str) -> bool:
    return (text.startswith(("\\begin{pmatrix}", "\\begin{bmatrix}"))
            and text.endswith(("\\end{pmatrix}", "\\end{bmatrix}")))


def _as_pmatrix(text: str) -> str:
    # grader.py: str_to_pmatrix: "{1,2}" groups become pmatrix rows.
    return ", ".join("\\begin{pmatrix}" + group.strip("{}").replace(",", "\\") + "\\end{pmatrix}"
                     for group in re.findall(r"\{.*,.*\}", text.strip()))


def _matrix_rows(text: str) -> list:
    body = text[len("\\begin{pmatrix}"):-len("\\end{pmatrix}")]
    return [row.strip() for row in body.split("\\\\") if row.strip()]


def math_equal(prediction, reference) -> bool:
    """``grader.py: math_equal`` (include_percentage=True, is_close=True), in its order."""
    if prediction is None or reference is None:
        return False
    if str(prediction).strip().lower() == str(reference).strip().lower():
        return True
    if reference in LETTERS and _grader_choice(prediction) == reference:
        return True
    if numbers_equal(prediction, reference):
        return True
    if not prediction:
        return False
    reference, prediction = str(reference).strip(), str(prediction).strip()
    if "pmatrix" in prediction and "pmatrix" not in reference:
        reference = _as_pmatrix(reference)
    pred, ref = prediction, reference
    if ((_wrapped(pred, "[", "]") and not _wrapped(ref, "(", ")"))
            or (_wrapped(pred, "(", ")") and not _wrapped(ref, "[", "]"))):
        pred, ref = pred.strip("[]()"), ref.strip("[]()")
    for bracket in "{}()":
        pred, ref = pred.replace(bracket, ""), ref.replace(bracket, "")
    if pred.lower() == ref.lower():
        return True
    if _is_list(prediction) and _is_list(reference):
        parts_p, parts_r = prediction[1:-1].split(","), reference[1:-1].split(",")
        return len(parts_p) == len(parts_r) and all(math_equal(p, r) for p, r in zip(parts_p, parts_r))
    if _is_matrix(prediction) and _is_matrix(reference):
        rows_p, rows_r = _matrix_rows(prediction), _matrix_rows(reference)
        if len(rows_p) != len(rows_r):
            return False
        for row_p, row_r in zip(rows_p, rows_r):
            cells_p, cells_r = row_p.split("&"), row_r.split("&")
            if len(cells_p) != len(cells_r) or not all(math_equal(p, r) for p, r in zip(cells_p, cells_r)):
                return False
        return True
    if prediction.count("=") == 1 and reference.count("=") == 1:
        left_p, right_p = prediction.split("=")
        left_r, right_r = reference.split("=")
        moved_p, moved_r = f"{left_p.strip()} - ({right_p.strip()})", f"{left_r.strip()} - ({right_r.strip()})"
        return symbolic_equal(moved_p, moved_r) or symbolic_equal(f"-({moved_p})", moved_r)
    if prediction.count("=") == 1 and len(prediction.split("=")[0].strip()) <= 2 and "=" not in reference:
        return math_equal(prediction.split("=")[1], reference)
    if reference.count("=") == 1 and len(reference.split("=")[0].strip()) <= 2 and "=" not in prediction:
        return math_equal(prediction, reference.split("=")[1])
    return symbolic_equal(prediction, reference)


_PLAIN_ARITHMETIC = re.compile(r"[A-Za-z0-9\s.+\-*/^()=,]*")


def _sympy_latex_parser():
    """sympy's own ANTLR ``parse_latex``, the toolkit's first parser, or None where it cannot run.

    The toolkit pins sympy 1.12 with antlr4-python3-runtime 4.11; math-verify brings the
    4.13 runtime, for which ``sympy.parsing.latex.parse_latex`` refuses to start (a
    version check only: sympy's generated 4.11 parser reads the same with the 4.13
    runtime). So the parse is run here from sympy's parts, as ``parse_latex`` runs it,
    with the runtime's version warning silenced.
    """
    global _SYMPY_LATEX
    if _SYMPY_LATEX is not None:
        return _SYMPY_LATEX or None
    try:
        import contextlib
        import io

        import antlr4
        from sympy.parsing.latex import _parse_latex_antlr as parts

        if None in (parts.LaTeXLexer, parts.LaTeXParser, parts.MathErrorListener):
            raise ImportError("sympy's LaTeX parser is not generated")

        def parse_latex(text: str):
            text = text.strip()
            listener = parts.MathErrorListener(text)
            with contextlib.redirect_stdout(io.StringIO()):  # "runtime and generated code versions disagree"
                lexer = parts.LaTeXLexer(antlr4.InputStream(text))
                lexer.removeErrorListeners()
                lexer.addErrorListener(listener)
                parser = parts.LaTeXParser(antlr4.CommonTokenStream(lexer))
            parser.removeErrorListeners()
            parser.addErrorListener(listener)
            return parts.convert_relation(parser.math().relation())

        parse_latex("1")
        _SYMPY_LATEX = parse_latex
    except Exception:  # noqa: BLE001 - any failure to load means it is not there
        _SYMPY_LATEX = False
    return _SYMPY_LATEX or None


_SYMPY_LATEX = None


def _parse(text: str):
    """grader.py: symbolic_equal's _parse: the first of sympy's ``parse_latex``, sympy's
    ``parse_expr`` and ``latex2sympy`` that reads the text (with doubled backslashes
    halved, then as it is), else the text itself.

    The toolkit's bundled ``latex2sympy`` is stood in for by ``latex2sympy2_extended``
    (math-verify's fork of the same parser). Where sympy's parser cannot run (see
    :func:`_sympy_latex_parser`) the stand-in takes its place, told to read ``\\pi`` as a
    plain symbol as sympy's parser does (so ``2\\pi`` is not 6.2832 there either).
    """
    from latex2sympy2_extended import latex2sympy
    from sympy.parsing.sympy_parser import parse_expr

    def plain(s):  # parse_expr evaluates Python: only plain arithmetic text goes to it
        if not _PLAIN_ARITHMETIC.fullmatch(s):
            raise ValueError("not plain arithmetic")
        return parse_expr(s)

    def pi_as_symbol(s):
        return latex2sympy(re.sub(r"\\pi(?![a-zA-Z])", r"\\varpi", s))

    first = _sympy_latex_parser() or pi_as_symbol
    for parser in (first, plain, latex2sympy):
        for candidate in (text.replace("\\\\", "\\"), text):
            try:
                return parser(candidate)
            except Exception:  # noqa: BLE001 - the toolkit tries the next parser on any failure
                continue
    return text


def symbolic_equal(a: str, b: str) -> bool:
    """``grader.py: symbolic_equal``: equal strings or values, a zero difference, equal
    equations, numerically within 1e-4, or matrices equal to 3 decimals."""
    from sympy import N, simplify

    a, b = _parse(a), _parse(b)
    checks = (
        lambda: str(a) == str(b) or a == b,
        lambda: a.equals(b) or simplify(a - b) == 0,
        lambda: abs(a.lhs - a.rhs).equals(abs(b.lhs - b.rhs)),
        lambda: isclose(float(N(b)), float(N(a)), rel_tol=1e-4),
        lambda: a.shape == b.shape and a.applyfunc(lambda x: round(x, 3)).equals(
            b.applyfunc(lambda x: round(x, 3))),
    )
    for check in checks:
        try:
            if check():
                return True
        except Exception:  # noqa: BLE001 - as in the toolkit, a check that cannot run says no
            continue
    return False


def grade(prediction: str, gold: str) -> tuple[bool, bool]:
    """(correct, timed out): :func:`math_equal` under the toolkit's 3 s limit (``evaluate.py``:
    a comparison that runs over is scored wrong). The limit is a SIGALRM and so only holds
    in the main thread, as lrkit's math-verify limit does."""
    if threading.current_thread() is not threading.main_thread():
        return bool(math_equal(prediction, gold)), False
    from math_verify.errors import TimeoutException
    from math_verify.utils import timeout

    try:
        return bool(timeout(TIMEOUT_S)(math_equal)(prediction, gold)), False
    except TimeoutException:
        return False, True
