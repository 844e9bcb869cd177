"""The paper's Table 1 for any models: each model on each benchmark, accuracy
with Wilson intervals, the average, and what the later models fixed and broke
against the first (exact McNemar p per benchmark).

Output folder::

    OUT/suite.json                    the settings every part was made with
    OUT/<model>/<benchmark>/          one evaluation (results.jsonl, summary.json, provenance.json)
    OUT/table1.html, OUT/figure.html  the rendered table and figure
    OUT/scores.csv, OUT/comparisons.csv

Resumable per benchmark and within one: a rerun loads every finished (model,
benchmark), keeps the batches an unfinished one saved (``lrkit.evaluate`` with its
folder) and evaluates only the rest. It refuses to mix settings: a different generation
config, limit, model behind a label, or problem set for a benchmark is an
error naming what differs (:class:`lrkit.runs.FolderError`). New models or
benchmarks may be added to a folder. A call whose every evaluation is already
there, with the same models and benchmarks in the same order, returns the
stored suite (:meth:`SuiteResult.load`) and writes nothing.
"""
from __future__ import annotations

import dataclasses
import gc
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import pandas as pd

from lrkit.config import ANSWER_LIMITS, EvalConfig, to_dict, with_added_fields
from lrkit.data.benchmarks import BENCHMARKS, PAPER_BENCHMARKS, get_benchmark, load_benchmark
from lrkit.data.answers import Problem
from lrkit.data.problems import load_problems
from lrkit.evaluation import EvalResult, compare, evaluate
from lrkit.evaluation.protocol import SHOTS
from lrkit.evaluation.results import EVALUATION
from lrkit.models.loading import load_model
from lrkit.paper import PAPER_TABLE1
from lrkit.runs import FolderError, entries, problems_digest, refuse_foreign, write_json, write_text, writes_folder
from lrkit.viz.markup import document, write
from lrkit.viz.report import export_html
from lrkit.viz.table1 import table1_figure, table1_html

__all__ = ["evaluate_suite", "SuiteResult", "SUITE_FILE"]

SUITE_FILE = "suite.json"
SUMMARY_FILE = "summary.json"


@dataclass
class SuiteResult:
    """Every model on every benchmark; ``scores()``, ``comparisons()``, ``paper()``
    are the data, ``html()`` / ``figure()`` render them, ``save()`` writes all."""

    results: dict
    """model label -> benchmark name -> EvalResult."""
    models: list
    benchmarks: list
    info: dict = field(default_factory=dict)
    paper_model: Optional[str] = None
    """Which of the paper's models to show beside the measured rows (None: none)."""

    def scores(self) -> pd.DataFrame:
        """One row per model and benchmark (plus "average"): accuracy and its 95%
        Wilson interval, counts, unparsed and unanswered predictions."""
        rows = []
        for model in self.models:
            accuracies = []
            for bench in self.benchmarks:
                result = self.results[model][bench]
                s = result.summary()
                low, high = result.interval
                accuracies.append(result.accuracy)
                rows.append({"model": model, "benchmark": bench, "title": _title(bench),
                             "n": result.n, "n_correct": result.n_correct, "accuracy": result.accuracy,
                             "low": low, "high": high, "n_unparsed": s["n_unparsed"],
                             "n_no_answer": s["n_no_answer"], "n_unfinished": s["n_unfinished"]})
            # The paper's average: the plain mean of the per-benchmark accuracies.
            rows.append({"model": model, "benchmark": "average", "title": "Avg.",
                         "n": sum(self.results[model][b].n for b in self.benchmarks),
                         "n_correct": sum(self.results[model][b].n_correct for b in self.benchmarks),
                         "accuracy": sum(accuracies) / len(accuracies), "low": float("nan"),
                         "high": float("nan"),
                         "n_unparsed": sum(r["n_unparsed"] for r in rows[-len(accuracies):]),
                         "n_no_answer": sum(r["n_no_answer"] for r in rows[-len(accuracies):]),
                         "n_unfinished": sum(r["n_unfinished"] for r in rows[-len(accuracies):])})
        return pd.DataFrame(rows)

    def comparisons(self) -> pd.DataFrame:
        """Each later model against the first, per benchmark: problems fixed and
        broken, and the exact McNemar p-value on those discordant pairs."""
        rows = []
        base = self.models[0]
        for model in self.models[1:]:
            for bench in self.benchmarks:
                c = compare(self.results[base][bench], self.results[model][bench])
                rows.append({"a": base, "b": model, "benchmark": bench, "title": _title(bench), "n": c.n,
                             "accuracy_a": c.accuracy_a, "accuracy_b": c.accuracy_b,
                             "difference": c.accuracy_b - c.accuracy_a, "fixed": len(c.fixed),
                             "broken": len(c.broken), "mcnemar_p": c.p_value})
        return pd.DataFrame(rows, columns=["a", "b", "benchmark", "title", "n", "accuracy_a", "accuracy_b",
                                           "difference", "fixed", "broken", "mcnemar_p"])

    def paper(self) -> pd.DataFrame:
        """The paper's published accuracies (fractions) for ``paper_model`` on the
        benchmarks of this suite; its average only when all seven are here."""
        if not self.paper_model:
            return pd.DataFrame(columns=["row", "benchmark", "title", "accuracy"])
        rows = []
        # The paper's MATH column is the full test set; it is shown against "math" and "math500" alike.
        columns = [("math", "math500") if b == "math500" else (b,) for b in PAPER_BENCHMARKS]
        everything = all(any(b in self.benchmarks for b in names) for names in columns)
        for label, values in PAPER_TABLE1[self.paper_model].items():
            name = f"{self.paper_model} {label} (paper)"
            for names, value in zip(columns, values):
                for bench in names:
                    if bench in self.benchmarks:
                        rows.append({"row": name, "benchmark": bench, "title": _title(bench),
                                     "accuracy": value / 100})
            if everything:
                rows.append({"row": name, "benchmark": "average", "title": "Avg.", "accuracy": values[-1] / 100})
        return pd.DataFrame(rows)

    def html(self) -> str:
        return table1_html(self.scores(), self.comparisons(), self.paper(), notes=self.notes())

    def figure(self):
        return table1_figure(self.scores(), self.paper())

    def notes(self) -> list:
        config = with_added_fields(self.info.get("config", {}), EvalConfig)
        protocol = config.get("protocol", "lrkit")
        limit = config.get("max_new_tokens") or f"{ANSWER_LIMITS[protocol]} (the protocol's)"
        shots = [b for b in self.benchmarks if protocol == "paper" and SHOTS.get(b)]
        notes = [f"Protocol: {protocol} ("
                 + ("the Qwen2.5-Math toolkit's prompt, stop tokens, answer extraction and math_equal grading, "
                    "as the paper's Table 1 was made" if protocol == "paper" else
                    "lrkit's stricter rules: chat template, last closed box, exact fractions, then math-verify")
                 + f"); greedy pass@1, answers up to {limit} new tokens; "
                 + (f"{', '.join(_title(b) for b in shots)} {SHOTS[shots[0]]}-shot, the rest zero-shot; " if shots
                    else "zero-shot; ")
                 + "95% Wilson intervals; Avg. is the plain mean over the benchmarks shown."]
        if self.paper_model and protocol != "paper":
            notes.append("These rows were graded by lrkit's rules, the paper's by the toolkit's: the difference "
                         "is partly the grader's (docs/BENCHMARKS.md); --protocol paper compares like with like.")
        if self.info.get("limit"):
            notes.append(f"Only the first {self.info['limit']} problems of each benchmark (--limit).")
        if self.paper_model and "math500" in self.benchmarks:
            notes.append("The paper's MATH column is the full 5,000-problem MATH test set; lrkit's is MATH-500.")
        if self.paper_model:
            notes.append("Paper rows: the authors' published numbers (HKUDS/LightReasoner README, "
                         "'Main Results', which restates the paper's Table 1).")
        return notes

    def show(self) -> None:
        scores = self.scores()
        frame = scores.pivot(index="model", columns="title", values="accuracy")
        columns = list(dict.fromkeys(scores["title"]))  # benchmarks in order, then the average
        print((100 * frame.loc[self.models, columns]).round(1).to_string())
        for row in self.comparisons().itertuples():
            print(f"{row.b} vs {row.a} on {row.title}: {row.fixed} fixed, {row.broken} broken "
                  f"(exact McNemar p = {row.mcnemar_p:.3g})")

    def _repr_html_(self) -> str:
        return self.html()

    def save(self, out_dir: Union[str, Path]) -> Path:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)

        write(out_dir / "table1.html", document("lrkit: Table 1", self.html()))
        export_html(self.figure(), out_dir / "figure.html", title="lrkit: Table 1")
        write_text(out_dir / "scores.csv", self.scores().to_csv(index=False))
        write_text(out_dir / "comparisons.csv", self.comparisons().to_csv(index=False))
        return out_dir

    @classmethod
    def load(cls, out_dir: Union[str, Path]) -> "SuiteResult":
        out_dir = Path(out_dir)
        info = _read_settings(out_dir)
        if info is None:
            raise FileNotFoundError(f"{out_dir / SUITE_FILE}: no suite settings (is {out_dir} a suite folder?)")
        models, benchmarks = list(info["models"]), list(info["benchmarks"])
        results = {m: {b: EvalResult.load(out_dir / info["models"][m]["folder"] / b) for b in benchmarks}
                   for m in models}
        return cls(results, models, benchmarks, info, paper_model=info.get("paper_model"))


def _title(bench: str) -> str:
    return BENCHMARKS[bench].title if bench in BENCHMARKS else bench


@writes_folder("suite")
def evaluate_suite(models: Sequence, benchmarks: Union[Sequence[str], Mapping], out_dir: Union[str, Path],
                   config: Optional[EvalConfig] = None, limit: Optional[int] = None,
                   data_files: Optional[Mapping[str, Union[str, Path]]] = None,
                   names: Optional[Sequence[str]] = None, paper_model: Union[str, bool, None] = None,
                   device=None, dtype=None, progress: bool = True) -> SuiteResult:
    """Evaluate every model on every benchmark and write Table 1 to ``out_dir``.

    ``models``: names or paths for ``lrkit.models.loading.load_model`` (``toy:expert``,
    ``Qwen/Qwen2.5-Math-1.5B``, a folder) or ``(model, tokenizer)`` pairs; the
    first is the reference that the others' fixed/broken counts are against.
    ``benchmarks``: registry names (``lrkit.data.benchmarks.BENCHMARKS``), or a
    mapping name -> problems (a JSONL path or a list) for problem sets of your
    own. ``data_files``: name -> local JSONL/parquet in the Hub's schema, used
    instead of the Hub. ``limit``: the first N problems of each benchmark.
    ``paper_model``: one of the paper's models (``PAPER_TABLE1``) whose published
    rows to show; by default found from the model names; False shows none.

    Resumable per benchmark; a call whose every evaluation is already in ``out_dir``,
    with the same settings, models and benchmarks in the same order, returns the stored
    suite and writes nothing (the module docstring gives the folder's layout).

    Args:
        models: names or paths, or ``(model, tokenizer)`` pairs; the first is the reference.
        benchmarks: registry names (one name as a str works too), or a mapping
            name -> problems (a JSONL path, a benchmark name or a list).
        out_dir: the suite's folder: ``suite.json``, ``<model>/<benchmark>/`` evaluations,
            ``table1.html``, ``figure.html``, ``scores.csv``, ``comparisons.csv``.
        config (EvalConfig, optional): default ``EvalConfig()``, the paper's protocol.
        limit (int, optional): the first N problems of each benchmark.
        data_files: benchmark name -> local JSONL or parquet in the Hub's schema.
        names: a label per model for the tables (default: each model's name or path);
            labels must differ.
        paper_model: a key of ``PAPER_TABLE1``, None (found from the model names) or False.
        device: where models given by name load (default: CUDA when available).
        dtype: their dtype (default: auto).
        progress (bool): progress bars and a line per (model, benchmark).

    Returns:
        SuiteResult: ``results[label][benchmark]`` (EvalResults), ``scores()`` (accuracy,
        Wilson interval and counts per model and benchmark, plus the average),
        ``comparisons()`` (fixed, broken and McNemar p against the first model), ``paper()``,
        ``html()``, ``figure()``, ``show()``.

    Raises:
        ValueError: no model or benchmark, an unknown benchmark name, a benchmark listed
            twice, ``data_files`` for a benchmark not in the suite, labels that repeat or
            do not match ``models`` in number, a bad ``limit`` or ``paper_model``.
        lrkit.runs.FolderError: ``out_dir`` holds a suite of another config or limit, a
            label now naming another model, a benchmark on other problems, or other files.
        lrkit.runs.FolderBusyError: another process is writing ``out_dir``.
    """
    config = (config or EvalConfig()).validate()
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    if not models:
        raise ValueError("evaluate_suite() needs at least one model")
    labels = _labels(models, names)
    specs = {label: _model_spec(m) for label, m in zip(labels, models)}
    problem_sets = _problem_sets(benchmarks, data_files or {}, limit)
    out_dir = Path(out_dir)
    settings = _settings(config, limit, labels, specs, problem_sets, data_files or {})
    settings["paper_model"] = _paper_model(paper_model, specs)
    previous = _read_settings(out_dir)
    if previous is not None:
        settings = _merge_settings(previous, settings, out_dir)
        if _all_finished(out_dir, previous, settings, labels, list(problem_sets), config):
            if progress:
                for label in labels:
                    for bench in problem_sets:
                        print(f"{label} on {bench}: already evaluated, loaded")
            return SuiteResult.load(out_dir)
    elif out_dir.is_dir():
        refuse_foreign(out_dir, "suite", [p.name for p in entries(out_dir)], SUITE_FILE)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / SUITE_FILE, settings)

    results: dict = {}
    for label, model in zip(labels, models):
        folder = out_dir / settings["models"][label]["folder"]
        results[label] = {}
        todo = []
        for bench in problem_sets:
            done = _finished(folder / bench, config)
            if done is not None:
                results[label][bench] = done
                if progress:
                    print(f"{label} on {bench}: already evaluated, loaded")
            else:
                todo.append(bench)
        if not todo:
            continue
        loaded, tokenizer = _load(model, device, dtype)
        try:
            for bench in todo:
                if progress:
                    print(f"{label} on {bench}: {len(problem_sets[bench])} problems")
                # saved after every batch: a suite cut off resumes within the benchmark it was on
                result = evaluate(loaded, problem_sets[bench], config, tokenizer=tokenizer,
                                  out_dir=folder / bench, progress=progress, name=label,
                                  benchmark=bench if bench in BENCHMARKS else None)
                results[label][bench] = result
        finally:
            if not isinstance(model, (tuple, list)):
                del loaded
                gc.collect()
    suite = SuiteResult(results, labels, list(problem_sets), settings, paper_model=settings["paper_model"])
    suite.save(out_dir)
    return suite


# --------------------------------------------------------------------------- helpers

def _model_spec(model) -> str:
    if isinstance(model, (str, Path)):
        return str(model)
    if isinstance(model, (tuple, list)) and len(model) == 2:
        config = getattr(model[0], "config", None)
        return str(getattr(config, "_name_or_path", "") or type(model[0]).__name__)
    raise ValueError(f"a model must be a name, a path or a (model, tokenizer) pair, got {type(model).__name__}")


def _labels(models: Sequence, names: Optional[Sequence[str]]) -> list:
    if names is not None:
        if len(names) != len(models):
            raise ValueError(f"got {len(names)} names for {len(models)} models")
        labels = [str(n) for n in names]
    else:
        labels = [_model_spec(m) for m in models]
    if len(set(labels)) != len(labels):
        raise ValueError(f"model labels must differ, got {labels} (pass names=)")
    return labels


def _problem_sets(benchmarks, data_files: Mapping, limit: Optional[int]) -> dict:
    if isinstance(benchmarks, str):
        benchmarks = [benchmarks]
    if not benchmarks:
        raise ValueError("evaluate_suite() needs at least one benchmark")
    unknown_files = sorted(set(data_files) - set(benchmarks if not isinstance(benchmarks, Mapping)
                                                 else benchmarks.keys()))
    if unknown_files:
        raise ValueError(f"data_files names benchmark(s) not in the suite: {', '.join(unknown_files)}")
    sets: dict = {}
    items = benchmarks.items() if isinstance(benchmarks, Mapping) else [(b, None) for b in benchmarks]
    for name, source in items:  # every name checked before anything loads
        if source is None:
            get_benchmark(name)
        elif not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", str(name)):
            raise ValueError(f"benchmark name {name!r} must be letters, digits, '.', '_' or '-' "
                             "(it names a folder)")
    for name, source in items:
        if name in sets:
            raise ValueError(f"benchmark {name!r} is listed twice")
        if source is None:
            problems = load_benchmark(get_benchmark(name).name, path=data_files.get(name))
        else:
            problems = load_problems(source)
        sets[name] = problems[:limit] if limit is not None else problems
    return sets


def _problems_digest(problems: Sequence[Problem]) -> str:
    return problems_digest(problems, ("id", "question", "answer", "answer_kind"))


SUITE_OUTPUTS = ("table1.html", "figure.html", "scores.csv", "comparisons.csv")


def _all_finished(out_dir: Path, previous: dict, settings: dict, labels: list, benchmarks: list,
                  config: EvalConfig) -> bool:
    """Whether the folder already holds this very suite: the same settings, models and
    benchmarks in this order, every evaluation complete, the rendered files there."""
    if settings != previous or list(previous["models"]) != labels or list(previous["benchmarks"]) != benchmarks:
        return False
    if not all((out_dir / name).exists() for name in SUITE_OUTPUTS):
        return False
    return all(_finished(out_dir / previous["models"][label]["folder"] / bench, config) is not None
               for label in labels for bench in benchmarks)


def _settings(config: EvalConfig, limit, labels, specs, problem_sets, data_files) -> dict:
    folders, taken = {}, set()
    for label in labels:
        folder = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._") or "model"
        while folder in taken:
            folder += "_"
        taken.add(folder)
        folders[label] = folder
    return {
        "config": to_dict(config), "limit": limit,
        "models": {label: {"spec": specs[label], "folder": folders[label]} for label in labels},
        "benchmarks": {name: {"source": str(data_files[name]) if name in data_files
                              else (BENCHMARKS[name].hub_id if name in BENCHMARKS else "problems given"),
                              "n_problems": len(problems), "problems_sha256": _problems_digest(problems)}
                       for name, problems in problem_sets.items()},
    }


def _merge_settings(previous: dict, current: dict, out_dir: Path) -> dict:
    """The folder's settings extended by the current run's, or ValueError naming a mismatch."""
    previous = {**previous, "config": with_added_fields(previous.get("config") or {}, EvalConfig)}
    if previous.get("config") != current["config"]:
        changed = sorted(k for k in set(previous.get("config", {})) | set(current["config"])
                         if previous.get("config", {}).get(k) != current["config"].get(k))
        raise FolderError(out_dir, "suite", [f"config.{k}" for k in changed])
    if previous.get("limit") != current["limit"]:
        raise FolderError(out_dir, "suite", ["limit"], holds=f"a suite made with limit {previous.get('limit')}, "
                                                              f"not {current['limit']} (differs in: limit)")
    merged = json.loads(json.dumps(previous))
    used_folders = {m["folder"] for m in merged["models"].values()}
    for label, model in current["models"].items():
        if label in merged["models"]:
            if merged["models"][label]["spec"] != model["spec"]:
                raise FolderError(out_dir, "suite", [f"models.{label}"],
                                  holds=f"a suite whose model label {label!r} was "
                                        f"{merged['models'][label]['spec']!r}, now {model['spec']!r}",
                                  way_out="name the model otherwise (names=, --name)")
        else:
            folder = model["folder"]
            while folder in used_folders:
                folder += "_"
            used_folders.add(folder)
            merged["models"][label] = {**model, "folder": folder}
    for name, bench in current["benchmarks"].items():
        before = merged["benchmarks"].get(name)
        if before is not None and before["problems_sha256"] != bench["problems_sha256"]:
            raise FolderError(out_dir, "suite", [f"benchmarks.{name}"],
                              holds=f"a suite whose benchmark {name!r} was evaluated on other problems "
                                    f"({before['n_problems']} from {before['source']}, now {bench['n_problems']} "
                                    f"from {bench['source']})")
        merged["benchmarks"][name] = bench
    # This run's order (models, benchmarks) is the table's order.
    merged["models"] = {**{k: merged["models"][k] for k in current["models"]}, **merged["models"]}
    merged["benchmarks"] = {**{k: merged["benchmarks"][k] for k in current["benchmarks"]}, **merged["benchmarks"]}
    merged["paper_model"] = current["paper_model"]
    return merged


def _paper_model(choice, specs: Mapping[str, str]) -> Optional[str]:
    if choice is False or choice == "":
        return None
    if isinstance(choice, str):
        if choice not in PAPER_TABLE1:
            raise ValueError(f"paper_model must be one of {', '.join(PAPER_TABLE1)}, got {choice!r}")
        return choice
    # Longest name first, so "Qwen2.5-Math-1.5B-Instruct" is not taken for "Qwen2.5-Math-1.5B".
    for spec in specs.values():
        base = Path(spec).name.lower()
        for name in sorted(PAPER_TABLE1, key=len, reverse=True):
            if base == name.lower():
                return name
    return None


def _read_settings(out_dir: Path) -> Optional[dict]:
    path = Path(out_dir) / SUITE_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg})") from None


def _finished(folder: Path, config: EvalConfig) -> Optional[EvalResult]:
    """The saved evaluation in ``folder`` when it is complete and made with ``config``, read
    before any model loads (the evaluation's own protocol compares the rest when it runs)."""
    protocol = dataclasses.replace(
        EVALUATION, as_stored=lambda saved, current: {"config": with_added_fields(saved.get("config"), EvalConfig)})
    opened = protocol.open(folder, {"config": to_dict(config)})
    return opened.result if opened.state == "stored" else None


def _load(model, device, dtype):
    if isinstance(model, (tuple, list)):
        return model[0], model[1]

    return load_model(str(model), device=device, dtype=dtype)

