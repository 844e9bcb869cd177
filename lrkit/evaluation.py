"""Evaluation: zero-shot greedy pass@1, answer extraction, intervals, comparisons.

Extraction (``extract_answer``) tries, in order: the last non-empty
``\\boxed{...}`` / ``\\fbox{...}`` with balanced braces; the last ``#### X``
line (GSM8K style); the last "answer is X"; the last number in the text. The
two middle tiers go beyond the paper's rule (boxed, else last number) so that
trailing text after a stated answer ("The answer is 42. Step 3 ...") does not
win.

Matching (``answers_match``, ``check_answer``) first tries the exact numeric
path: when both answers hold one number, they are compared by exact value after
stripping what does not change the value (commas, ``$``, ``%``, units and words,
LaTeX spacing and ``\\text{}``); fractions and decimals meet as exact
fractions. This is the GSM8K path, fast and verified on every GSM8K gold
solution. Anything else (surds, pi, intervals, tuples, sets, expressions) goes
to Hugging Face's math-verify (``parse`` then ``verify``, gold first), with a
time limit per call; a prediction it cannot parse, or that times out, is scored
wrong and counted as "unparsed". Multiple-choice answers (MMLU-STEM) are
extracted and compared as letters (``extract_choice``).
"""
from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from statistics import NormalDist
from typing import Optional, Union

import pandas as pd

from .config import EvalConfig, to_dict
from .generation import greedy_generate_batch, stop_token_ids
from .problems import gsm8k_gold, load_problems
from .models import check_prompt_lengths
from .runs import entries, writes_folder
from .prompts import build_prompt_ids
from .provenance import PROVENANCE_FILE, Provenance, api_call

__all__ = ["extract_answer", "extract_choice", "answers_match", "check_answer", "Verdict", "parse_number",
           "gsm8k_gold", "accuracy_interval", "mcnemar_p_value", "evaluate", "EvalResult", "compare", "Comparison"]

RESULT_COLUMNS = ("id", "question", "gold", "output", "prediction", "correct", "n_tokens", "finished")
OPTIONAL_COLUMNS = ("unparsed",)
"""Kept when present: results written before math-verify have no "unparsed" column."""
RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.json"

# --------------------------------------------------------------------------- extraction

_NUM = r"(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
# A minus sign counts only where it cannot be a subtraction ("5-3" ends in 3, not -3).
_SIGN = r"(?:(?<![\w)\]}])-)?"
_NUMBER_TOKEN = re.compile(
    _SIGN + r"(?:\\[dt]?frac\s*\{\s*-?" + _NUM + r"\s*\}\s*\{\s*-?" + _NUM + r"\s*\}"
    r"|\\[dt]?frac\d\d"
    r"|" + _NUM + r"/" + _NUM + r"(?![/\d])"
    r"|" + _NUM + r")"
)
_BOXED_START = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BOXED_BARE = re.compile(r"\\boxed +([^\s${}]+)")
_HASHES = re.compile(r"####[ \t]*([^\n]*)")
_ANSWER_IS = re.compile(
    r"answer\s*(?:is|=|:)\s*:?\s*(?:\*\*|\\\$|\$|\\\()*\s*(" + _NUMBER_TOKEN.pattern + r")"
    r"(?!\s*(?:[-+/=^×]|\*(?!\*))|\d|[.,]\d)",
    re.IGNORECASE,
)


def _braced(text: str, open_at: int) -> Optional[str]:
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
        content = _braced(text, match.end() - 1)
        if content is not None and content.strip():
            found.append((match.start(), content.strip()))
    for match in _BOXED_BARE.finditer(text):
        found.append((match.start(), match.group(1).rstrip(".,;")))
    return max(found)[1] if found else None


def extract_answer(text: Optional[str]) -> Optional[str]:
    """The model's final answer as text, or None when the text holds no answer at all."""
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


def _strip_outer_braces(text: str) -> str:
    while text.startswith("{") and _braced(text, 0) == text[1:-1]:
        text = text[1:-1].strip()
    return text


def _clean(text: str) -> str:
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
    text = _clean(text)
    if "=" in text:
        text = text.rsplit("=", 1)[1]
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


def _normalized_text(text: str) -> str:
    return re.sub(r"\s+", "", _clean(text)).lower()


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
    """True when the prediction equals the gold answer (see ``check_answer``)."""
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
        normalized = _normalized_text(pred)
        return Verdict(bool(normalized) and normalized == _normalized_text(gold), "text")
    if not _has_expression(pred_parsed):
        return Verdict(False, "unparsed")
    try:
        return Verdict(bool(verify(gold_parsed, pred_parsed, timeout_seconds=seconds, raise_on_error=True)),
                       "math-verify")
    except TimeoutException:
        return Verdict(False, "timeout")
    except Exception:  # sympy failing on one comparison: fall back to the texts
        return Verdict(_normalized_text(pred) == _normalized_text(gold), "math-verify")


# --------------------------------------------------------------------------- multiple choice

_CHOICE_TRIGGERS = ("choice is", "answer is")
_LETTER = re.compile(r"\b([A-E])\b")


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
    letters = _LETTER.findall(parts[-1].upper())
    if not letters:
        return None
    return letters[0] if after_trigger else letters[-1]


def _choice_letter(answer: str) -> Optional[str]:
    letters = _LETTER.findall(_clean(answer).upper())
    return letters[-1] if len(letters) == 1 else None


# --------------------------------------------------------------------------- statistics

def accuracy_interval(correct: int, total: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for an accuracy of ``correct`` out of ``total``.

    Wilson, not the normal (Wald) interval, because it stays inside [0, 1] and
    keeps near-nominal coverage at small n and at accuracies near 0 or 1, where
    Wald collapses to a zero-width interval.
    """
    if not isinstance(total, int) or total < 1:
        raise ValueError(f"total must be a positive integer, got {total!r}")
    if not 0 <= correct <= total:
        raise ValueError(f"correct must be between 0 and total={total}, got {correct!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = correct / total
    denominator = 1 + z * z / total
    center = (p + z * z / (2 * total)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    low = 0.0 if correct == 0 else max(0.0, center - half)
    high = 1.0 if correct == total else min(1.0, center + half)
    return low, high


def mcnemar_p_value(fixed: int, broken: int) -> float:
    """Exact two-sided McNemar test: binomial(fixed + broken, 1/2) on the discordant pairs."""
    n = fixed + broken
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(fixed, broken) + 1))
    return min(1.0, float(Fraction(2 * tail, 2 ** n)))


# --------------------------------------------------------------------------- results

@dataclass
class EvalResult:
    """Per-problem results (``df``, one row per problem) and what produced them (``info``)."""

    df: pd.DataFrame
    info: dict = field(default_factory=dict)
    """Model name, config, timing, token counts; ``summary()`` adds the accuracy."""

    def __post_init__(self):
        missing = [c for c in RESULT_COLUMNS if c not in self.df.columns]
        if missing:
            raise ValueError(f"an EvalResult needs the columns {', '.join(missing)}")
        self.df = _text_columns_as_objects(self.df)

    @property
    def n(self) -> int:
        return len(self.df)

    @property
    def n_correct(self) -> int:
        return int(self.df["correct"].sum())

    @property
    def accuracy(self) -> float:
        return self.n_correct / self.n if self.n else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return accuracy_interval(self.n_correct, self.n) if self.n else (float("nan"), float("nan"))

    @property
    def name(self) -> str:
        return str(self.info.get("model", "model"))

    def summary(self) -> dict:
        low, high = self.interval
        return {**self.info, "n_problems": self.n, "n_correct": self.n_correct,
                "accuracy": self.accuracy, "interval": [low, high], "level": 0.95,
                "n_unfinished": self.n_hit_limit, "n_hit_limit": self.n_hit_limit,
                "n_no_answer": int(self.df["prediction"].isna().sum()),
                "n_unparsed": int(self.df["unparsed"].astype(bool).sum()) if "unparsed" in self.df else 0}

    @property
    def n_hit_limit(self) -> int:
        """Generations cut at max_new_tokens without a stop token: their answers
        are extracted by the same rule (the last number of a cut-off text may be
        an intermediate one), so this count says how far to trust the accuracy."""
        return int((~self.df["finished"].astype(bool)).sum())

    def __str__(self) -> str:
        low, high = self.interval
        return (f"{self.name}: accuracy {self.accuracy:.1%} (95% CI {low:.1%}-{high:.1%}), "
                f"{self.n_correct}/{self.n} correct, {self.n_hit_limit} hit the token limit")

    def __repr__(self) -> str:
        return f"EvalResult({self})"

    def show(self) -> None:
        s = self.summary()
        print(self)
        print(f"  hit max_new_tokens without a stop token: {s['n_hit_limit']}, "
              f"no answer found: {s['n_no_answer']}, unparsed answers (scored wrong): {s['n_unparsed']}")
        if "seconds" in s:
            print(f"  {s.get('generated_tokens', 0)} tokens in {s['seconds']:.1f} s")

    def save(self, out_dir: Union[str, Path]) -> Path:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_atomic(out_dir / RESULTS_FILE, "".join(_row_line(r) for r in self.df.to_dict("records")))
        _write_atomic(out_dir / SUMMARY_FILE, json.dumps(self.summary(), indent=2) + "\n")
        return out_dir

    @classmethod
    def load(cls, out_dir: Union[str, Path]) -> "EvalResult":
        out_dir = Path(out_dir)
        path = out_dir / RESULTS_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path}: no results file (is {out_dir} an evaluation folder?)")
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        info = {}
        if (out_dir / SUMMARY_FILE).exists():
            info = json.loads((out_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
            for key in ("n_problems", "n_correct", "accuracy", "interval", "level",
                        "n_unfinished", "n_hit_limit", "n_no_answer", "n_unparsed"):
                info.pop(key, None)
        return cls(_results_frame(rows), info)


def _results_frame(rows: list[dict]) -> pd.DataFrame:
    data = {}
    optional = [c for c in OPTIONAL_COLUMNS if rows and all(c in row for row in rows)]
    for column in (*RESULT_COLUMNS, *optional):
        values = [row.get(column) for row in rows]
        dtype = {"correct": bool, "finished": bool, "unparsed": bool, "n_tokens": "int64"}.get(column, object)
        data[column] = pd.Series(values, dtype=dtype)
    return pd.DataFrame(data)


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _text_columns_as_objects(df: pd.DataFrame) -> pd.DataFrame:
    """Plain Python objects with None for a missing prediction, whatever pandas inferred."""
    df = df.copy()
    for column in ("id", "question", "gold", "output", "prediction"):
        df[column] = pd.Series([None if _is_missing(v) else v for v in df[column]],
                               dtype=object, index=df.index)
    return df


def _row_line(row: dict) -> str:
    clean = {}
    for key, value in row.items():
        value = value.item() if hasattr(value, "item") else value
        clean[key] = None if _is_missing(value) else value
    return json.dumps(clean, ensure_ascii=False, allow_nan=False) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- evaluate

def _resolve_model(model_or_path, tokenizer):
    if isinstance(model_or_path, (str, Path)):
        from .distributed import local_device
        from .models import load_model

        model, loaded_tokenizer = load_model(str(model_or_path), device=local_device(None))
        return model, tokenizer or loaded_tokenizer, str(model_or_path)
    if tokenizer is None:
        raise ValueError("evaluate() got a model object without its tokenizer; pass tokenizer=")
    name = getattr(getattr(model_or_path, "config", None), "_name_or_path", "") or type(model_or_path).__name__
    return model_or_path, tokenizer, str(name)


def evaluate(model_or_path, problems, config: Optional[EvalConfig] = None, tokenizer=None,
             out_dir: Union[str, Path, None] = None, progress: bool = True,
             name: Optional[str] = None) -> EvalResult:
    """Greedy pass@1 of one model on a problem set.

    ``model_or_path``: a loaded model (with ``tokenizer``) or a name/path for
    ``lrkit.models.load_model``. ``problems``: a list of dicts with id, question
    and answer (GSM8K solutions are reduced to the text after ``####``), a list
    of ``Problem`` or a JSONL path. With ``out_dir``, ``results.jsonl`` and
    ``summary.json`` are rewritten after every batch, so a long run can be
    watched and a crash keeps finished batches; the final files are in problem
    order.
    """
    config = (config or EvalConfig()).validate()
    problems = _scorable_problems(problems, "evaluate()")
    if out_dir is not None and (name or isinstance(model_or_path, (str, Path))):
        # Before the model loads: a folder in use is refused at once.
        check_eval_out_dir(Path(out_dir), {"model": name or str(model_or_path), "config": to_dict(config),
                                           "problems_sha256": _problems_sha256(problems)})
    model, tokenizer, model_name = _resolve_model(model_or_path, tokenizer)
    info = {"model": name or model_name, "config": to_dict(config)}
    stop_ids = stop_token_ids(model, tokenizer)
    return _run_evaluation(
        lambda prompts: greedy_generate_batch(model, tokenizer, prompts, config.max_new_tokens, stop_ids),
        [model], tokenizer, problems, config, info, out_dir, progress)


def evaluate_contrastive(pair, problems, config: Optional[EvalConfig] = None, alpha: float = 0.2,
                         out_dir: Union[str, Path, None] = None, progress: bool = True,
                         name: Optional[str] = None) -> EvalResult:
    """Pass@1 of a pair decoding by the method's own target: at each step the
    argmax of the soft label v_C (log pi_E - log pi_A inside the alpha mask),
    with no training at all (:func:`lrkit.generation.contrastive_generate_batch`).

    If this scores below greedy decoding of the expert alone, the pair's
    contrast points away from better answers and tuning towards it cannot be
    expected to help; the demo's ablations report it for that reason.
    """
    from .generation import contrastive_generate_batch

    config = (config or EvalConfig()).validate()
    problems = _scorable_problems(problems, "evaluate_contrastive()")
    info = {"model": name or f"contrastive decoding ({pair.expert_name} vs {pair.amateur_name}, "
                             f"alpha {alpha})", "config": {**to_dict(config), "alpha": alpha}}
    return _run_evaluation(
        lambda prompts: contrastive_generate_batch(pair, prompts, config.max_new_tokens, alpha),
        [pair.expert, pair.amateur], pair.tokenizer, problems, config, info, out_dir, progress)


def _scorable_problems(problems, caller: str) -> list:
    problems = load_problems(problems, require_answers=True)
    if not problems:
        raise ValueError(f"{caller} got no problems")
    missing = [p.id for p in problems if p.answer is None]
    if missing:
        raise ValueError(f"{len(missing)} problem(s) have no answer to score against, "
                         f"first: {', '.join(missing[:5])}")
    return problems


@writes_folder("evaluation")
def _run_evaluation(generate_batch, models, tokenizer, problems, config: EvalConfig, info: dict,
                    out_dir, progress: bool) -> EvalResult:
    """Generate in length-sorted batches, score each answer, save after every
    batch; ``models`` are in eval mode meanwhile and get their mode back."""
    from . import distributed

    ranks = distributed.current()
    with distributed.together():  # every rank checks the input; rank 0 alone touches the folder
        prompts = [build_prompt_ids(tokenizer, p.question, config.system_prompt) for p in problems]
        check_prompt_lengths(prompts, problems, models, config.max_new_tokens)
        if ranks.world > len(problems):
            raise ValueError(f"{ranks.world} processes for {len(problems)} problem(s): launch at most "
                             f"{len(problems)} (torchrun --nproc-per-node / accelerate --num_processes)")
        info = {**info, "problems_sha256": _problems_sha256(problems)}
        provenance = None
        if out_dir is not None and ranks.is_main:
            check_eval_out_dir(Path(out_dir), info)
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            first = next(models[0].parameters())
            provenance = Provenance(out_dir, api_call("evaluate", info.get("model"), out_dir=str(out_dir)),
                                    first.device, first.dtype).start()
    # Similar lengths share a batch so little compute goes to padding. Under a
    # launcher rank r takes batches r, r + N...: each problem is generated in
    # the batch it would have in one process, so the results are the same.
    order = sorted(range(len(problems)), key=lambda i: len(prompts[i]))
    batches = [order[i:i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    batches = [batch for index, batch in enumerate(batches) if ranks.mine(index)]
    rows: list[Optional[dict]] = [None] * len(problems)
    bar = None
    if progress and ranks.is_main:
        from tqdm.auto import tqdm
        bar = tqdm(total=sum(map(len, batches)), desc="evaluating", unit="problem")
    modes = [model.training for model in models]
    for model in models:
        model.eval()
    start = time.perf_counter()
    try:
        with distributed.together():
            for batch in batches:
                generations = generate_batch([prompts[i] for i in batch])
                for i, generation in zip(batch, generations):
                    rows[i] = _result_row(problems[i], generation, tokenizer)
                if bar is not None:
                    bar.update(len(batch))
                    done = [r for r in rows if r is not None]
                    bar.set_postfix(accuracy=f"{sum(r['correct'] for r in done) / len(done):.1%}")
                if out_dir is not None and ranks.is_main:
                    _finish(rows, {**info, "complete": False, "n_planned": len(problems)}, start).save(out_dir)
    finally:
        for model, mode in zip(models, modes):
            model.train(mode)
        if bar is not None:
            bar.close()
    if ranks.sharded:  # every rank's rows, back in problem order
        for shard in distributed.gather(rows):
            rows = [mine if mine is not None else theirs for mine, theirs in zip(rows, shard)]
    result = _finish(rows, {**info, "complete": True}, start)
    if out_dir is not None and ranks.is_main:
        result.save(out_dir)
        provenance.finish(**({"processes": ranks.world} if ranks.sharded else {}))
    return result


class EvalFolderError(ValueError):
    """An --out folder that holds something other than this same evaluation."""


EVAL_FILES = (RESULTS_FILE, SUMMARY_FILE, PROVENANCE_FILE)


def check_eval_out_dir(out_dir: Path, info: dict) -> None:
    """Refuse to write over another evaluation or another run's files.

    An absent or empty folder is fine, and so is one holding this very
    evaluation (same model name, config and problems), which a rerun replaces.
    """
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise EvalFolderError(f"{out_dir}: not a folder")
    names = sorted(p.name for p in entries(out_dir) if not p.name.endswith(".tmp"))
    if not names:
        return
    foreign = [n for n in names if n not in EVAL_FILES]
    if foreign:
        raise EvalFolderError(f"{out_dir} holds {', '.join(foreign[:4])}, not an lrkit "
                              f"evaluation; choose another --out")
    if SUMMARY_FILE not in names:  # an evaluation that died before its first batch was saved
        return
    try:
        saved = json.loads((out_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        saved = {}
    saved = saved if isinstance(saved, dict) else {}
    keys = ("model", "config", "problems_sha256")
    differs = [k for k in keys if saved.get(k) != info.get(k)]
    if differs:
        raise EvalFolderError(f"{out_dir} holds the evaluation of {saved.get('model', 'another model')!r} "
                              f"(differs in: {', '.join('problems' if k == 'problems_sha256' else k for k in differs)}); "
                              f"choose another --out, or delete {out_dir} to evaluate there afresh")


def _problems_sha256(problems) -> str:
    import hashlib

    text = json.dumps([[p.id, p.question, p.answer] for p in problems], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _result_row(problem, generation, tokenizer) -> dict:
    output = tokenizer.decode(generation.token_ids, skip_special_tokens=True)
    kind = getattr(problem, "answer_kind", "math")
    prediction = extract_choice(output) if kind == "choice" else extract_answer(output)
    gold = gsm8k_gold(problem.answer)
    verdict = check_answer(prediction, gold, kind)
    return {"id": problem.id, "question": problem.question, "gold": gold, "output": output,
            "prediction": prediction, "correct": verdict.correct,
            "n_tokens": len(generation.token_ids), "finished": generation.finished,
            "unparsed": verdict.unparsed}


def _finish(rows: list, info: dict, start: float) -> EvalResult:
    done = [r for r in rows if r is not None]
    seconds = time.perf_counter() - start
    tokens = sum(r["n_tokens"] for r in done)
    timing = {"seconds": seconds, "generated_tokens": tokens,
              "tokens_per_second": tokens / seconds if seconds > 0 else float("nan")}
    return EvalResult(_results_frame(done), {**info, **timing})


# --------------------------------------------------------------------------- compare

@dataclass
class Comparison:
    """Two models on the same problems: accuracies, the problems fixed and broken, McNemar."""

    name_a: str
    name_b: str
    accuracy_a: float
    accuracy_b: float
    interval_a: tuple
    interval_b: tuple
    fixed: pd.DataFrame
    """Problems wrong in a and right in b."""
    broken: pd.DataFrame
    """Problems right in a and wrong in b."""
    both_right: int
    both_wrong: int
    p_value: float
    """Exact McNemar test on the discordant pairs (len(fixed) vs len(broken))."""

    @property
    def n(self) -> int:
        return len(self.fixed) + len(self.broken) + self.both_right + self.both_wrong

    def summary(self) -> dict:
        return {"a": self.name_a, "b": self.name_b, "n_problems": self.n,
                "accuracy_a": self.accuracy_a, "interval_a": list(self.interval_a),
                "accuracy_b": self.accuracy_b, "interval_b": list(self.interval_b),
                "difference": self.accuracy_b - self.accuracy_a,
                "n_fixed": len(self.fixed), "n_broken": len(self.broken),
                "both_right": self.both_right, "both_wrong": self.both_wrong,
                "mcnemar_p_value": self.p_value}

    def __str__(self) -> str:
        return (f"{self.name_a} {self.accuracy_a:.1%} -> {self.name_b} {self.accuracy_b:.1%} "
                f"on {self.n} problems: {len(self.fixed)} fixed, {len(self.broken)} broken "
                f"(exact McNemar p = {self.p_value:.3g})")

    def __repr__(self) -> str:
        return f"Comparison({self})"

    def show(self) -> None:
        print(self)
        (lo_a, hi_a), (lo_b, hi_b) = self.interval_a, self.interval_b
        print(f"  95% CI {self.name_a}: {lo_a:.1%}-{hi_a:.1%}; {self.name_b}: {lo_b:.1%}-{hi_b:.1%}")


def compare(result_a: EvalResult, result_b: EvalResult) -> Comparison:
    """Compare two results on the same problems (matched by id)."""
    a, b = result_a.df, result_b.df
    for label, df in (("a", a), ("b", b)):
        if df["id"].duplicated().any():
            raise ValueError(f"result {label} repeats problem ids: {df['id'][df['id'].duplicated()].tolist()[:5]}")
    ids_a, ids_b = set(a["id"]), set(b["id"])
    if ids_a != ids_b:
        only_a, only_b = sorted(map(str, ids_a - ids_b)), sorted(map(str, ids_b - ids_a))
        raise ValueError(f"the two results are not on the same problems: {len(only_a)} only in a "
                         f"(first {only_a[:5]}), {len(only_b)} only in b (first {only_b[:5]})")
    if not ids_a:
        raise ValueError("the results hold no problems")
    merged = a.merge(b, on="id", suffixes=("_a", "_b"), sort=False)
    differ = merged["gold_a"].astype(str) != merged["gold_b"].astype(str)
    if differ.any():
        raise ValueError(f"the two results give different gold answers for {int(differ.sum())} "
                         f"problem(s), first id {merged['id'][differ].iloc[0]!r}")
    right_a, right_b = merged["correct_a"].astype(bool), merged["correct_b"].astype(bool)
    columns = ["id", "question_a", "gold_a", "prediction_a", "prediction_b", "output_a", "output_b"]
    rename = {"question_a": "question", "gold_a": "gold"}

    def pick(mask):
        return merged.loc[mask, columns].rename(columns=rename).reset_index(drop=True)

    fixed, broken = pick(~right_a & right_b), pick(right_a & ~right_b)
    return Comparison(
        name_a=result_a.name, name_b=result_b.name,
        accuracy_a=result_a.accuracy, accuracy_b=result_b.accuracy,
        interval_a=result_a.interval, interval_b=result_b.interval,
        fixed=fixed, broken=broken,
        both_right=int((right_a & right_b).sum()), both_wrong=int((~right_a & ~right_b).sum()),
        p_value=mcnemar_p_value(len(fixed), len(broken)),
    )
