"""Supervision records: the authors' JSONL schema plus lrkit's fields.

Reading validates every line and names file and line number on the first
problem, so a bad record never reaches training silently.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

from lrkit.runs import digest, write_text

AUTHORS_FIELDS = ("prompt_id", "step", "prefix", "tokens", "token_ids", "weights", "kl_divergence")
WEIGHT_SUM_TOLERANCE = 1e-3


class RecordError(ValueError):
    """A record file or line that cannot be used; the message names where."""


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_id_list(record: dict, name: str, where: str, required: bool) -> None:
    value = record.get(name)
    if value is None and not required:
        return
    if not isinstance(value, list) or (required and not value):
        raise RecordError(f"{where}: field {name} must be a {'non-empty ' if required else ''}list of ids")
    if any(not _is_int(i) or i < 0 for i in value):
        raise RecordError(f"{where}: field {name} holds something other than non-negative integers")


def validate_record(record: dict, where: str) -> dict:
    """Check one record's fields and their types; the message names ``where`` and the field."""
    if not isinstance(record, dict):
        raise RecordError(f"{where}: a record must be a JSON object, got {type(record).__name__}")
    missing = [f for f in AUTHORS_FIELDS if f not in record]
    if missing:
        raise RecordError(f"{where}: missing field(s) {', '.join(missing)}")
    if not (isinstance(record["prompt_id"], str) or _is_int(record["prompt_id"])) or record["prompt_id"] == "":
        raise RecordError(f"{where}: field prompt_id must be a non-empty string or an integer")
    if not isinstance(record["prefix"], str):
        raise RecordError(f"{where}: field prefix must be a string")
    if "question" in record and (not isinstance(record["question"], str) or not record["question"].strip()):
        raise RecordError(f"{where}: field question must be a non-empty string")
    if not _is_number(record["kl_divergence"]):
        raise RecordError(f"{where}: field kl_divergence must be a finite number")
    _check_id_list(record, "token_ids", where, required=True)
    ids, weights, tokens = record["token_ids"], record["weights"], record["tokens"]
    if not isinstance(weights, list):
        raise RecordError(f"{where}: field weights must be a list of numbers")
    if not isinstance(tokens, list) or any(not isinstance(t, str) for t in tokens):
        raise RecordError(f"{where}: field tokens must be a list of strings")
    if not (len(ids) == len(weights) == len(tokens)):
        raise RecordError(f"{where}: token_ids, weights and tokens differ in length "
                          f"({len(ids)}, {len(weights)}, {len(tokens)})")
    if len(set(ids)) != len(ids):
        raise RecordError(f"{where}: field token_ids repeats an id")
    if any(not _is_number(w) or w < 0 for w in weights):
        raise RecordError(f"{where}: field weights must hold finite non-negative numbers")
    total = float(sum(weights))
    if not abs(total - 1.0) <= WEIGHT_SUM_TOLERANCE:
        raise RecordError(f"{where}: field weights sums to {total:.6f}, not 1")
    if not _is_int(record["step"]) or record["step"] < 0:
        raise RecordError(f"{where}: field step must be a non-negative integer")
    for name in ("prefix_token_ids", "prompt_token_ids"):
        _check_id_list(record, name, where, required=False)
    if record.get("prefix_token_ids") is not None and len(record["prefix_token_ids"]) != record["step"]:
        raise RecordError(f"{where}: prefix_token_ids has {len(record['prefix_token_ids'])} ids "
                          f"but step is {record['step']}")
    if not isinstance(record.get("tokenizer_fingerprint", ""), str):
        raise RecordError(f"{where}: field tokenizer_fingerprint must be a string")
    if record.get("prompt_token_ids") == []:
        raise RecordError(f"{where}: field prompt_token_ids is empty")
    return record


def read_lines(path: Path, error) -> Iterator[tuple[int, str]]:
    """(line number, text) of each non-blank line of a UTF-8 file; a line that
    is not UTF-8 (a file saved in another encoding, a flipped byte) raises
    ``error`` naming the line."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark (Notepad)
                raw = raw[3:]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise error(f"{path}, line {number}: not valid UTF-8 (byte {raw[err.start]:#04x} at "
                            f"column {err.start + 1}); save the file as UTF-8") from None
            if line.strip():
                yield number, line


def parse_json_line(line: str, where: str, error):
    try:
        return json.loads(line, parse_constant=_refuse_constant)
    except json.JSONDecodeError as err:
        raise error(f"{where}: not valid JSON ({err.msg})") from None
    except (ValueError, RecursionError) as err:  # NaN/Infinity, numbers too long, nesting too deep
        raise error(f"{where}: not valid JSON ({err})") from None


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parquet_files(folder: Union[str, Path]) -> list[Path]:
    """The parquet files of an export folder (``data/*.parquet``, else ``*.parquet``), in name order."""
    folder = Path(folder)
    return sorted(folder.glob("data/*.parquet")) or sorted(folder.glob("*.parquet"))


def iter_parquet_records(folder: Union[str, Path]) -> Iterator[tuple[int, dict]]:
    """(row number, validated record) of an export folder; a field that is None
    (a column another record filled) counts as absent."""
    import pyarrow.parquet as pq

    files = parquet_files(folder)
    if not files:
        raise RecordError(f"{folder}: a folder of records must hold data/*.parquet (lrkit export) "
                          "or be given as its records.jsonl")
    number = 0
    for path in files:
        for index, row in enumerate(pq.read_table(path).to_pylist(), start=1):
            number += 1
            record = {k: v for k, v in row.items() if v is not None}
            yield number, validate_record(record, f"{path}, row {index}")


def iter_numbered_records(path: Union[str, Path]) -> Iterator[tuple[int, dict]]:
    """(line number, validated record) for each record of a JSONL file; for a
    folder written by ``lrkit export`` (parquet), (row number, record)."""
    path = Path(path)
    if path.is_dir():
        yield from iter_parquet_records(path)
        return
    if not path.is_file():
        raise RecordError(f"{path}: no such record file")
    for number, line in read_lines(path, RecordError):
        where = f"{path}, line {number}"
        yield number, validate_record(parse_json_line(line, where, RecordError), where)


def read_records(path: Union[str, Path], allow_empty: bool = False) -> list[dict]:
    """All records of a file; the authors' own files load too.

    Authors' files hold the question text in ``prompt_id``; it becomes
    ``question`` when no ``question`` field is present.

    Args:
        path: a records.jsonl file (``lrkit sample``'s, or the authors'), or a folder
            written by ``lrkit export`` (its ``data/*.parquet``).
        allow_empty (bool): return [] for a file without records instead of raising.

    Returns:
        list[dict]: one dict per record, in file order, with the fields of
        docs/ARCHITECTURE.md's record table; each was checked by :func:`validate_record`.

    Raises:
        RecordError: no such file, a line that is not UTF-8 or not JSON, a record whose
            fields are missing or wrong (the message names the line), or no records at
            all without ``allow_empty`` (a ValueError).
    """
    records = [record for _, record in iter_numbered_records(path)]
    if not records and not allow_empty:
        raise RecordError(f"{path}: the record file holds no records")
    for record in records:
        record.setdefault("question", str(record["prompt_id"]))
    return records


def dumps(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def write_records(records, path: Union[str, Path]) -> None:
    """``records`` as a records.jsonl file (one JSON object a line), written atomically."""
    write_text(path, "".join(dumps(record) for record in records))


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of the id -> token string table; records made with another
    tokenizer are refused at training time."""
    from lrkit.models.loading import scored_vocab_size

    # Placeholder rows (see models.scored_vocab_size) are left out, so both forms
    # of one tokenizer, with and without them, have one fingerprint.
    limit, length = scored_vocab_size(tokenizer), len(tokenizer)
    table = sorted((i, t) for t, i in tokenizer.get_vocab().items() if not limit <= i < length)
    return digest(table)  # a list of [id, token] pairs: canonical JSON is its plain JSON


def check_records_tokenizer(records: list[dict], tokenizer, source: str = "records",
                            vocab_size: Optional[int] = None,
                            wheres: Optional[Sequence[str]] = None) -> None:
    """Refuse records whose ids lie outside the vocabulary or whose fingerprint
    names another tokenizer. ``wheres`` names each record (file and line);
    without it a record is named by its position in ``records``."""
    from lrkit.models.loading import scored_vocab_size

    limit = vocab_size if vocab_size is not None else scored_vocab_size(tokenizer)
    fingerprint = None
    for index, record in enumerate(records):
        where = wheres[index] if wheres is not None else f"{source}, record {index + 1}"
        stored = record.get("tokenizer_fingerprint")
        if stored is not None:
            fingerprint = fingerprint or tokenizer_fingerprint(tokenizer)
            if stored != fingerprint:
                raise RecordError(f"{where}: made with another tokenizer "
                                  f"(fingerprint {stored[:12]}..., this one {fingerprint[:12]}...)")
        for field in ("token_ids", "prefix_token_ids", "prompt_token_ids"):
            bad = [i for i in record.get(field) or [] if i >= limit]
            if bad:
                raise RecordError(f"{where}: field {field} holds id {bad[0]}, "
                                  f"outside the vocabulary of {limit}")
