"""Evaluation results on disk and in memory: ``EvalResult`` (one row per
problem, ``results.jsonl`` + ``summary.json``) and the guard that keeps an
evaluation folder to one evaluation."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import pandas as pd

from lrkit.config import EvalConfig, with_added_fields
from lrkit.evaluation.stats import accuracy_interval
from lrkit.provenance import PROVENANCE_FILE
from lrkit.runs import StageFolder, read_json, write_text

RESULT_COLUMNS = ("id", "question", "gold", "output", "prediction", "correct", "n_tokens", "finished")
OPTIONAL_COLUMNS = ("unparsed",)
"""Kept when present: results written before math-verify have no "unparsed" column."""
RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.json"

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
        """The display name (``name=`` of the evaluation), else the model's identity."""
        return str(self.info.get("name") or self.info.get("model", "model"))

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
        write_text(out_dir / RESULTS_FILE, "".join(_row_line(r) for r in self.df.to_dict("records")))
        write_text(out_dir / SUMMARY_FILE, json.dumps(self.summary(), indent=2) + "\n")
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
        return cls(results_frame(rows), info)


def results_frame(rows: list[dict]) -> pd.DataFrame:
    """An evaluation's result rows as the DataFrame of :class:`EvalResult` (its columns in order)."""
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


EVAL_FILES = (RESULTS_FILE, SUMMARY_FILE, PROVENANCE_FILE)
SETTINGS = ("model", "dtype", "config", "benchmark", "problems_sha256")
"""What makes two evaluations the same one: the model (the name or folder it was loaded from,
never its display name), its dtype, the config (its protocol among it), the benchmark the
problems are read as, the problems (with gold answers)."""


def stored_settings(saved: dict) -> dict:
    """A stored summary's settings as this version names them: an evaluation written before
    ``EvalConfig.protocol`` followed lrkit's rules (``lrkit.config.with_added_fields``), one
    written before the benchmark was recorded was made without one."""
    return {**{k: saved.get(k) for k in SETTINGS}, "config": with_added_fields(saved.get("config"), EvalConfig)}


def _legacy_label(saved: dict) -> bool:
    """A summary written when the display name stood in for the model (no "name" key)."""
    return "name" not in saved


def _stored_for(info: dict):
    """How a stored summary reads as settings today: :func:`stored_settings`, and, for a
    summary from when the display name stood in for the model (no "name" key), that label
    read as the model when it is today's display name."""
    def as_stored(saved: dict, current) -> dict:
        settings = stored_settings(saved)
        if _legacy_label(saved) and saved.get("model") == info.get("name"):
            settings["model"] = current.get("model")
        return settings
    return as_stored


EVALUATION = StageFolder("evaluation", SUMMARY_FILE, finished=lambda folder, saved: bool(saved.get("complete")),
                         load=EvalResult.load, own_files=(RESULTS_FILE, PROVENANCE_FILE))
"""The evaluation's folder protocol (lrkit.runs.StageFolder): settings in summary.json,
finished when it says complete, results.jsonl and provenance.json beside it and nothing else."""


def check_eval_out_dir(out_dir: Path, info: dict) -> Optional[EvalResult]:
    """Resume or refuse an evaluation folder (:data:`EVALUATION`'s protocol).

    Returns the stored result when ``out_dir`` holds this very evaluation finished
    (same model, dtype, config, benchmark and problems; the display name ``info["name"]``
    is not compared, and the result comes back under it); None when it is absent, empty or
    holds this evaluation unfinished (a rerun keeps its finished batches: :func:`unfinished_rows`).
    Raises :class:`lrkit.runs.FolderError` for another evaluation or other files.
    """
    protocol = dataclasses.replace(EVALUATION, as_stored=_stored_for(info))
    opened = protocol.open(out_dir, {k: info.get(k) for k in SETTINGS})
    if opened.state != "stored":
        return None
    if info.get("name"):  # the caller's display name; the files keep the first one
        opened.result.info["name"] = info["name"]
    return opened.result


def unfinished_rows(out_dir: Path) -> tuple[dict[str, dict], float]:
    """The rows an interrupted evaluation saved in ``out_dir``, by problem id, and
    the seconds it had spent; ({}, 0.0) when there is none. Call it after
    :func:`check_eval_out_dir` has accepted the folder for these settings."""
    saved = read_json(out_dir / SUMMARY_FILE)
    if not isinstance(saved, dict) or saved.get("complete") is not False or not (out_dir / RESULTS_FILE).exists():
        return {}, 0.0
    rows = {}
    for line in (out_dir / RESULTS_FILE).read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            rows[str(row["id"])] = row
    return rows, float(saved.get("seconds") or 0.0)
