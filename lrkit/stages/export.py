"""A sampling run's records as a Hugging Face dataset.

- ``records_dataset(run_dir)``: the records as a ``datasets.Dataset``, one row
  per record, the sparse targets (``token_ids``, ``weights``, ``tokens``) as
  lists, every field of docs/ARCHITECTURE.md's record table a column.
- ``export(run_dir, to)`` (``lrkit export RUN --to DIR``): ``DIR/data/train-00000-of-00001.parquet``
  and ``DIR/README.md``, a dataset card (``huggingface_hub.DatasetCard``) with
  the source models, the problems, beta, alpha, the counts and the KL histogram.
  ``datasets.load_dataset("parquet", data_files="DIR/data/*.parquet")`` and
  ``datasets.load_dataset("DIR")`` read it; ``lrkit.train`` / ``lrkit train
  --records DIR`` train on it and build the same examples as from the JSONL.

The ``expert`` and ``amateur`` fields name the models by their public names
(``toy:expert``, a Hub id), never by a path of this machine; training does not
read them.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Optional, Union

from lrkit.data.records import AUTHORS_FIELDS, iter_numbered_records
from lrkit.models.pairs import public_name

PathLike = Union[str, os.PathLike]
DATA_FILE = "data/train-00000-of-00001.parquet"
KL_BINS = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, float("inf"))
"""Edges of the dataset card's KL histogram (nats)."""


class ExportError(ValueError):
    """A run folder that cannot be exported, or an export folder that cannot be written."""


def _records_path(run_dir: PathLike) -> Path:
    path = Path(run_dir)
    path = path / "records.jsonl" if path.is_dir() else path
    if not path.is_file():
        raise ExportError(f"{path}: no records file (expected the --out folder of lrkit sample)")
    return path


def _public_names(rows: list[dict]) -> None:
    names: dict[str, str] = {}
    for row in rows:
        for role in ("expert", "amateur"):
            value = row.get(role)
            if isinstance(value, str):
                if value not in names:
                    names[value] = public_name(value) or Path(value).name
                row[role] = names[value]


def records_dataset(run_dir: PathLike):
    """The records of a sampling run as a ``datasets.Dataset``, ready to save or push.

    One row per record, sparse targets (``token_ids``, ``weights``, ``tokens``) as lists,
    a field a record lacks as None. Every record's fields are checked as training checks
    them (:func:`lrkit.data.records.validate_record`; the tokenizer checks need the model
    and are left to training). ``expert`` and ``amateur`` hold the models' public names
    (``toy:expert``, a Hub id), never a path of this machine; ``prompt_id`` becomes text
    when the records mix text and integer ids (a column holds one type).

    Args:
        run_dir: a sampling run's folder (its ``records.jsonl`` is read) or a records.jsonl
            path (``lrkit sample``'s or the authors').

    Returns:
        datasets.Dataset: the authors' record fields first, then lrkit's in name order.

    Raises:
        ExportError: no records file, or one without records (a ValueError).
        lrkit.data.records.RecordError: a line that is not JSON or a record with missing
            or wrong fields (the message names the line).
    """
    from datasets import Dataset

    path = _records_path(run_dir)
    rows = [record for _, record in iter_numbered_records(path)]
    if not rows:
        raise ExportError(f"{path}: the record file holds no records")
    _public_names(rows)
    columns = list(AUTHORS_FIELDS) + sorted({k for row in rows for k in row} - set(AUTHORS_FIELDS))
    if len({type(row["prompt_id"]) for row in rows}) > 1:  # a column holds one type: ids as text
        for row in rows:
            row["prompt_id"] = str(row["prompt_id"])
    return Dataset.from_dict({c: [row.get(c) for row in rows] for c in columns})


def _kl_histogram(values, beta: Optional[float]) -> list[dict]:
    import numpy as np

    values = np.asarray(values, dtype=float)
    counts, _ = np.histogram(values, bins=np.asarray(KL_BINS))
    rows = []
    for low, high, count in zip(KL_BINS, KL_BINS[1:], counts):
        label = f"[{low:g}, {high:g})" if high != float("inf") else f">= {low:g}"
        rows.append({"bin": label, "count": int(count), "share": float(count / max(len(values), 1))})
    return rows


def _read_jsonl_column(path: Path, column: str) -> list:
    values = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                values.append(json.loads(line)[column])
    return values


def dataset_card(run_dir: PathLike, dataset):
    """The ``huggingface_hub.DatasetCard`` of an export (front matter by DatasetCardData)."""
    from huggingface_hub import DatasetCard, DatasetCardData

    from lrkit.stages.cards import TAG, repo_url, table_cell

    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").is_file() else {}
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").is_file() else {}
    expert = public_name(config["expert"]) if "expert" in config else None
    amateur = public_name(config["amateur"]) if "amateur" in config else None
    n = len(dataset)
    problems = len(set(dataset["prompt_id"]))
    size = "n<1K" if n < 1000 else "1K<n<10K" if n < 10_000 else "10K<n<100K" if n < 100_000 else "100K<n<1M"
    data = DatasetCardData(
        tags=[TAG, "lrkit", "soft-labels", "distillation"], task_categories=["text-generation"],
        size_categories=size, pretty_name=f"LightReasoner records of {expert or 'a local expert'}",
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "data/*.parquet"}]}])
    beta, alpha = config.get("beta"), config.get("alpha")
    lines = [f"# LightReasoner records: {expert or 'a local expert'} against {amateur or 'a local amateur'}", "",
             f"Soft-label records sampled by [lrkit]({repo_url()}): each row is one step of a greedy "
             "expert rollout where the expert and the amateur diverge (KL(pi_E || pi_A) >= beta), with "
             "the contrastive soft label v_C over the expert's plausible tokens as sparse lists "
             "(`token_ids`, `tokens`, `weights`, summing to 1). `lrkit train --records DIR` trains on "
             "this folder; docs/ARCHITECTURE.md describes every column.", "",
             "| item | value |", "| --- | --- |",
             f"| expert | {expert or 'a local model (no public name)'} |",
             f"| amateur | {amateur or 'a local model (no public name)'} |",
             f"| problems sampled | {config.get('problems', summary.get('problems', ''))} |",
             f"| problems with records | {problems} |",
             f"| problems sha256 | `{config.get('problems_sha256', '')}` |",
             f"| steps scored | {summary.get('steps', '')} |",
             f"| records | {n} |",
             f"| share of steps kept | {_share(summary.get('share_kept'))} |",
             f"| beta (KL threshold) | {beta} |",
             f"| alpha (plausibility mask) | {alpha} |"]
    for key in ("kl_inclusive", "skip_first_step", "temperature", "max_new_tokens", "system_prompt",
                "tokenizer_fingerprint"):
        if key in config:
            lines.append(f"| {key} | {table_cell(config[key])} |")
    lines.append("")
    steps_path = run_dir / "steps.jsonl"
    histograms = [("records", dataset["kl_divergence"])]
    if steps_path.is_file():
        histograms.insert(0, ("steps scored", _read_jsonl_column(steps_path, "kl")))
    lines += ["## KL histogram", "",
              "KL(pi_E || pi_A) in nats" + (f"; records are the steps at KL >= {beta}" if beta is not None else "")
              + ".", "",
              "| KL | " + " | ".join(name for name, _ in histograms) + " |",
              "| --- |" + " --- |" * len(histograms)]
    tables = [_kl_histogram(values, beta) for _, values in histograms]
    for i, row in enumerate(tables[0]):
        lines.append(f"| {row['bin']} | " + " | ".join(
            f"{table[i]['count']} ({100 * table[i]['share']:.1f}%)" for table in tables) + " |")
    lines.append("")
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def _share(value) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, (int, float)) else ""


def export(run_dir: PathLike, to: PathLike, overwrite: bool = False) -> Path:
    """Write a sampling run's records as parquet with a dataset card; returns ``to``."""
    run_dir, to = Path(run_dir), Path(to)
    dataset = records_dataset(run_dir)
    if to.exists() and any(to.iterdir()):
        if not overwrite:
            raise ExportError(f"{to} already holds files; choose a new --to folder or pass --overwrite")
        shutil.rmtree(to)
    (to / DATA_FILE).parent.mkdir(parents=True, exist_ok=True)
    import pyarrow.parquet as pq

    pq.write_table(dataset.data.table, to / DATA_FILE)  # as Dataset.to_parquet, without its progress bar
    dataset_card(run_dir if run_dir.is_dir() else run_dir.parent, dataset).save(to / "README.md")
    return to


