"""Supervision records: the authors' JSONL schema plus lrkit's fields.

Reading validates every line and names file and line number on the first
problem, so a bad record never reaches training silently.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterator, Optional, Union

AUTHORS_FIELDS = ("prompt_id", "step", "prefix", "tokens", "token_ids", "weights", "kl_divergence")
WEIGHT_SUM_TOLERANCE = 1e-3


class RecordError(ValueError):
    """A record file or line that cannot be used; the message names where."""


def validate_record(record: dict, where: str) -> dict:
    if not isinstance(record, dict):
        raise RecordError(f"{where}: a record must be a JSON object, got {type(record).__name__}")
    missing = [f for f in AUTHORS_FIELDS if f not in record]
    if missing:
        raise RecordError(f"{where}: missing field(s) {', '.join(missing)}")
    ids, weights, tokens = record["token_ids"], record["weights"], record["tokens"]
    if not isinstance(ids, list) or not ids:
        raise RecordError(f"{where}: field token_ids must be a non-empty list")
    if not (len(ids) == len(weights) == len(tokens)):
        raise RecordError(f"{where}: token_ids, weights and tokens differ in length "
                          f"({len(ids)}, {len(weights)}, {len(tokens)})")
    if any(not isinstance(i, int) or isinstance(i, bool) or i < 0 for i in ids):
        raise RecordError(f"{where}: field token_ids holds something other than non-negative integers")
    if len(set(ids)) != len(ids):
        raise RecordError(f"{where}: field token_ids repeats an id")
    if any(not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0 for w in weights):
        raise RecordError(f"{where}: field weights must hold finite non-negative numbers")
    total = float(sum(weights))
    if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
        raise RecordError(f"{where}: field weights sums to {total:.6f}, not 1")
    if not isinstance(record["step"], int) or record["step"] < 0:
        raise RecordError(f"{where}: field step must be a non-negative integer")
    if "prefix_token_ids" in record and len(record["prefix_token_ids"]) != record["step"]:
        raise RecordError(f"{where}: prefix_token_ids has {len(record['prefix_token_ids'])} ids "
                          f"but step is {record['step']}")
    return record


def iter_records(path: Union[str, Path]) -> Iterator[dict]:
    path = Path(path)
    if not path.exists():
        raise RecordError(f"{path}: no such record file")
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise RecordError(f"{path}, line {number}: not valid JSON ({err.msg})") from None
            yield validate_record(record, f"{path}, line {number}")


def read_records(path: Union[str, Path], allow_empty: bool = False) -> list[dict]:
    """All records of a file; the authors' own files load too.

    Authors' files hold the question text in ``prompt_id``; it becomes
    ``question`` when no ``question`` field is present.
    """
    records = list(iter_records(path))
    if not records and not allow_empty:
        raise RecordError(f"{path}: the record file holds no records")
    for record in records:
        record.setdefault("question", str(record["prompt_id"]))
    return records


def dumps(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def write_records(records, path: Union[str, Path]) -> None:
    with Path(path).open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(dumps(record))


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of the id -> token string table; records made with another
    tokenizer are refused at training time."""
    import hashlib

    vocab = tokenizer.get_vocab()
    table = sorted((i, t) for t, i in vocab.items())
    return hashlib.sha256(json.dumps(table, ensure_ascii=False).encode("utf-8")).hexdigest()


def check_records_tokenizer(records: list[dict], tokenizer, source: str = "records",
                            vocab_size: Optional[int] = None) -> None:
    """Refuse records whose ids lie outside the vocabulary or whose fingerprint
    names another tokenizer."""
    limit = vocab_size if vocab_size is not None else len(tokenizer)
    fingerprint = None
    for index, record in enumerate(records):
        stored = record.get("tokenizer_fingerprint")
        if stored is not None:
            fingerprint = fingerprint or tokenizer_fingerprint(tokenizer)
            if stored != fingerprint:
                raise RecordError(f"{source}, record {index + 1}: made with another tokenizer "
                                  f"(fingerprint {stored[:12]}..., this one {fingerprint[:12]}...)")
        for field in ("token_ids", "prefix_token_ids", "prompt_token_ids"):
            bad = [i for i in record.get(field) or [] if i >= limit]
            if bad:
                raise RecordError(f"{source}, record {index + 1}: field {field} holds id {bad[0]}, "
                                  f"outside the vocabulary of {limit}")
