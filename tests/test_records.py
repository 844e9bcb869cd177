"""lrkit.data.records: validation that names file, line and field; a write/read round
trip; the tokenizer fingerprint and the checks that use it."""
from __future__ import annotations

import copy
import hashlib
import json

import pytest

from lrkit.data.records import (AUTHORS_FIELDS, RecordError, check_records_tokenizer, read_records,
                           tokenizer_fingerprint, validate_record, write_records)

from tiny_models import make_tokenizer


def good_record(**changes) -> dict:
    record = {"prompt_id": "p0", "step": 2, "prefix": "ab", "tokens": ["c", "d"], "token_ids": [7, 9],
              "weights": [0.75, 0.25], "kl_divergence": 0.8, "question": "What is 2 + 2?",
              "prefix_token_ids": [5, 6], "prompt_token_ids": [1, 2, 3]}
    record.update(changes)
    return record


def write_lines(path, lines) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


@pytest.mark.parametrize("change, field", [
    ({"weights": [0.5, 0.25]}, "weights"),              # sums to 0.75
    ({"weights": [1.25, -0.25]}, "weights"),            # a negative weight
    ({"token_ids": [7, 7]}, "token_ids"),               # an id twice
    ({"token_ids": [7, -1]}, "token_ids"),
    ({"token_ids": []}, "token_ids"),
    ({"tokens": ["c"]}, "differ in length"),
    ({"tokens": ["c", 4]}, "tokens"),
    ({"step": -1}, "step"),
    ({"step": True}, "step"),
    ({"prefix": 3}, "prefix"),
    ({"prompt_id": ""}, "prompt_id"),
    ({"kl_divergence": "high"}, "kl_divergence"),
    ({"question": "  "}, "question"),
    ({"prefix_token_ids": [5]}, "prefix_token_ids"),   # one id but step 2
    ({"prompt_token_ids": []}, "prompt_token_ids"),
    ({"tokenizer_fingerprint": 12}, "tokenizer_fingerprint"),
])
def test_validate_record_names_where_and_the_field(change, field):
    with pytest.raises(RecordError) as caught:
        validate_record(good_record(**change), "records.jsonl, line 4")
    message = str(caught.value)
    assert message.startswith("records.jsonl, line 4: ") and field in message and "\n" not in message


@pytest.mark.parametrize("missing", AUTHORS_FIELDS)
def test_validate_record_names_a_missing_field(missing):
    record = good_record()
    del record[missing]
    with pytest.raises(RecordError, match=f"here: missing field\\(s\\) {missing}"):
        validate_record(record, "here")


def test_validate_record_accepts_a_good_one_unchanged():
    record = good_record()
    assert validate_record(copy.deepcopy(record), "x") == record


def test_read_records_names_the_file_and_line(tmp_path):
    path = tmp_path / "records.jsonl"
    write_lines(path, [json.dumps(good_record()), "", json.dumps(good_record(weights=[0.5, 0.1]))])
    with pytest.raises(RecordError, match=f"^{path}, line 3: field weights sums to 0.600000, not 1$"):
        read_records(path)


@pytest.mark.parametrize("line, says", [
    ('{"prompt_id": "p0", "step": ', "not valid JSON"),
    ('{"prompt_id": "p0", "kl_divergence": NaN}', "NaN is not a JSON number"),
    ("[1, 2]", "a record must be a JSON object"),
])
def test_read_records_names_a_line_that_is_not_a_record(tmp_path, line, says):
    path = tmp_path / "records.jsonl"
    write_lines(path, [json.dumps(good_record()), line])
    with pytest.raises(RecordError) as caught:
        read_records(path)
    assert str(caught.value).startswith(f"{path}, line 2: ") and says in str(caught.value)


def test_read_records_names_a_line_that_is_not_utf8(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_bytes(json.dumps(good_record()).encode() + b"\n" + b'{"prefix": "\xff"}\n')
    with pytest.raises(RecordError, match=r"line 2: not valid UTF-8 \(byte 0xff at column 13\)"):
        read_records(path)


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(RecordError, match="holds no records"):
        read_records(empty)
    assert read_records(empty, allow_empty=True) == []
    with pytest.raises(RecordError, match="no such record file"):
        read_records(tmp_path / "absent.jsonl")


def test_write_then_read_gives_the_records_back(tmp_path):
    records = [good_record(prompt_id=f"p{i}", prefix="Zoë é ∑", tokens=["€", "\n"]) for i in range(3)]
    authors = good_record(prompt_id="How many apples?")  # the authors' files: question in prompt_id
    del authors["question"]
    path = tmp_path / "records.jsonl"
    write_records(records + [authors], path)
    assert len(path.read_text(encoding="utf-8").splitlines()) == 4
    assert "Zoë é ∑" in path.read_text(encoding="utf-8"), "text is written as UTF-8, not escaped"
    back = read_records(path)
    assert back[:3] == records
    assert back[3] == {**authors, "question": "How many apples?"}


def test_a_byte_order_mark_is_read_past(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (json.dumps(good_record()) + "\n").encode())
    assert read_records(path) == [good_record()]


def test_tokenizer_fingerprint_is_the_sha256_of_the_vocabulary_table():
    tok = make_tokenizer()
    table = sorted((i, t) for t, i in tok.get_vocab().items())
    expected = hashlib.sha256(json.dumps(table, ensure_ascii=False).encode("utf-8")).hexdigest()
    assert tokenizer_fingerprint(tok) == expected
    assert tokenizer_fingerprint(make_tokenizer()) == expected, "the same vocabulary, the same fingerprint"
    assert tokenizer_fingerprint(make_tokenizer(chars="abc")) != expected


def test_placeholder_tokens_at_the_end_leave_the_fingerprint_alone():
    tok, padded = make_tokenizer(), make_tokenizer()
    padded.add_tokens([f"[PAD{len(padded) + i}]" for i in range(3)])
    assert len(padded) == len(tok) + 3
    assert tokenizer_fingerprint(padded) == tokenizer_fingerprint(tok)


def test_check_records_tokenizer_names_the_record_and_field():
    tok = make_tokenizer()
    ok = good_record(tokenizer_fingerprint=tokenizer_fingerprint(tok))
    check_records_tokenizer([ok], tok)
    outside = good_record(token_ids=[7, len(tok)])
    with pytest.raises(RecordError, match=f"records.jsonl, line 2: field token_ids holds id {len(tok)}, "
                                          f"outside the vocabulary of {len(tok)}"):
        check_records_tokenizer([ok, outside], tok, wheres=["records.jsonl, line 1", "records.jsonl, line 2"])
    other = good_record(tokenizer_fingerprint="0" * 64)
    with pytest.raises(RecordError, match="records, record 1: made with another tokenizer"):
        check_records_tokenizer([other], tok)
