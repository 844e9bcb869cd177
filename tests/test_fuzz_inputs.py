"""Seeded fuzzing of the files users hand to lrkit: corrupted problem files
through `lrkit sample` and `lrkit eval`, corrupted record files through
`lrkit train`. Every case must end with exit status 2 and one line on stderr
that names the file (or the flag to change), and nothing may be written to --out.

The generator is plain `random.Random` with a fixed seed: case i always gets
the same corruption, so a failure names a case that can be rerun alone
(`pytest tests/test_fuzz_inputs.py -k "train-017"`). Every corruption is one that
cannot leave a valid file (a cut inside a JSON object, a byte that is never
UTF-8, a structural character replaced, a value of the wrong type, ...).

Cross-cutting: it covers the readers (lrkit.data.problems, lrkit.data.records)
and the command line's one-line errors (lrkit.cli)."""
from __future__ import annotations

import json
import random

import pytest

from lrkit.cli import main
from lrkit.config import SampleConfig
from lrkit.data.records import AUTHORS_FIELDS
from lrkit.stages.sampling import sample


SEED = 1212
CASES_PER_COMMAND = 80
MAX_NEW = 6
PROBLEMS = [{"id": f"q{i}", "question": f"Zoë has {i + 2} apples and buys {i + 5} more. How many now?",
             "answer": f"She has {2 * i + 7}.\n#### {2 * i + 7}"} for i in range(5)]


@pytest.fixture(scope="module")
def record_lines(pair_paths, tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz-records") / "run"
    sample(str(pair_paths[0]), str(pair_paths[1]), PROBLEMS[:3], out,
           SampleConfig(max_new_tokens=MAX_NEW, beta=0.0, batch_size=3), progress=False)
    lines = (out / "records.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) >= 4
    return lines


# ---------------------------------------------------------------- corruptions that hold for any JSONL file

def _structural_positions(line: str) -> list[int]:
    """Indices of { } : , outside strings."""
    positions, in_string, escaped = [], False, False
    for i, ch in enumerate(line):
        if in_string:
            escaped = (ch == "\\") and not escaped
            if ch == '"' and not escaped:
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "{}:,":
            positions.append(i)
    return positions


def truncate_mid_line(rng, lines: list[str]) -> bytes:
    index = rng.randrange(len(lines))
    cut = rng.randint(1, len(lines[index]) - 1)
    return "\n".join(lines[:index] + [lines[index][:cut]]).encode("utf-8")


def invalid_byte(rng, lines: list[str]) -> bytes:
    data = bytearray("\n".join(lines).encode("utf-8") + b"\n")
    ascii_positions = [i for i, b in enumerate(data) if b < 0x80 and b != 0x0A
                       and (i + 1 >= len(data) or data[i + 1] < 0x80)]
    data[rng.choice(ascii_positions)] = rng.choice([0xFF, 0xFE, 0xC0, 0xC1, rng.randint(0x80, 0xBF)])
    return bytes(data)


def structural_flip(rng, lines: list[str]) -> bytes:
    index = rng.randrange(len(lines))
    line = lines[index]
    at = rng.choice(_structural_positions(line))
    replacement = {"{": "([<", "}": ")]>", ":": "=;|", ",": ";|&"}[line[at]]
    lines = list(lines)
    lines[index] = line[:at] + rng.choice(replacement) + line[at + 1:]
    return ("\n".join(lines) + "\n").encode("utf-8")


def utf16_file(rng, lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode(rng.choice(["utf-16", "utf-16-le", "utf-32"]))


def not_an_object(rng, lines: list[str]) -> bytes:
    lines = list(lines)
    lines[rng.randrange(len(lines))] = rng.choice(["[]", "null", "42", '"text"', "[1, 2]", "true", "{}"])
    return ("\n".join(lines) + "\n").encode("utf-8")


def empty_file(rng, lines: list[str]) -> bytes:
    return rng.choice([b"", b"\n", b"\n  \n\t\n"])


def deep_nesting(rng, lines: list[str]) -> bytes:
    depth = rng.randint(50_000, 200_000)
    lines = list(lines)
    lines[rng.randrange(len(lines))] = "[" * depth + "]" * depth
    return ("\n".join(lines) + "\n").encode("utf-8")


def _with_value(rng, lines: list[str], field: str, raw_json: str, drop: bool = False) -> bytes:
    """One line with ``field`` set to the JSON text ``raw_json`` (NaN, 1e999 ... as written)."""
    index = rng.randrange(len(lines))
    item = json.loads(lines[index])
    item.pop(field, None)
    text = json.dumps(item, ensure_ascii=False)
    if not drop:
        text = text[:-1] + (", " if item else "") + f'"{field}": {raw_json}}}'
    lines = list(lines)
    lines[index] = text
    return ("\n".join(lines) + "\n").encode("utf-8")


GENERIC = [truncate_mid_line, invalid_byte, structural_flip, utf16_file, not_an_object, empty_file, deep_nesting]


# ---------------------------------------------------------------- problem files

BAD_PROBLEM_VALUES = {
    "question": ["42", "3.5", "true", "null", "[]", '["q"]', '{"q": 1}', '""', '"   "', "NaN", "Infinity"],
    "id": ["[1]", '{"a": 1}', "true", '""', "NaN", "-Infinity", "1" * 5000],
    "answer": ["[1]", '{"a": 1}', "true", "NaN", "1e999", "-1e400"],
}


def problem_latin1_line(rng, lines):
    index = rng.randrange(len(lines))
    item = json.loads(lines[index])
    item["question"] = rng.choice(["Café crème costs 3 €? no: 3 francs.", "Señor Núñez has 4 niños.",
                                   "Größe: 5 Äpfel."]).replace("€", "E")
    encoded = [line.encode("utf-8") for line in lines]
    encoded[index] = json.dumps(item, ensure_ascii=False).encode(rng.choice(["latin-1", "cp1252"]))
    return b"\n".join(encoded) + b"\n"


def problem_wrong_value(rng, lines):
    field = rng.choice(sorted(BAD_PROBLEM_VALUES))
    return _with_value(rng, lines, field, rng.choice(BAD_PROBLEM_VALUES[field]))


def problem_missing_question(rng, lines):
    return _with_value(rng, lines, "question", "", drop=True)


def problem_duplicate_id(rng, lines):
    lines = list(lines)
    i, j = rng.sample(range(len(lines)), 2)
    first, second = json.loads(lines[i]), json.loads(lines[j])
    second["id"] = first["id"]
    lines[j] = json.dumps(second, ensure_ascii=False)
    return ("\n".join(lines) + "\n").encode("utf-8")


def problem_too_long(rng, lines):
    """A question far longer than the tiny models' 512 positions."""
    return _with_value(rng, lines, "question", json.dumps("seven plus " * rng.randint(200, 600)))


PROBLEM_CORRUPTIONS = GENERIC + [problem_latin1_line, problem_wrong_value, problem_wrong_value,
                                 problem_missing_question, problem_duplicate_id]


def problem_case(command: str, i: int):
    rng = random.Random(f"{SEED}-{command}-{i}")
    lines = [json.dumps(p, ensure_ascii=False) for p in PROBLEMS]
    corruptions = PROBLEM_CORRUPTIONS + ([_eval_missing_answer] if command == "eval" else [])
    # A few cases load the models (the prompt-length check needs their context); most fail earlier.
    corrupt = problem_too_long if i % 20 == 19 else corruptions[i % len(corruptions)]
    return corrupt.__name__, corrupt(rng, lines)


def _eval_missing_answer(rng, lines):
    return _with_value(rng, lines, "answer", "", drop=True)


# ---------------------------------------------------------------- record files

BAD_RECORD_VALUES = {
    "weights": ["1.0", '"1"', "[NaN]", "[Infinity]", "[1e999]", "[1e308, 1e308]", "[-1.0]", '["0.5", "0.5"]',
                "null", "{}"],
    "token_ids": ['"5"', "5", "[]", "[-1]", "[1.5]", "[true]", "[1000000000000]", "[" + "9" * 5000 + "]",
                  "null"],
    "tokens": ["3", '"a"', "[1]", "null"],
    "step": ['"2"', "2.5", "-1", "true", "100000000000000000000", "null", "NaN"],
    "prefix": ["3", "null", "[]", "true"],
    "kl_divergence": ['"high"', "NaN", "Infinity", "1e999", "null", "[]"],
    "prompt_id": ["[]", "{}", "true", '""', "null"],
    "prompt_token_ids": ['"1 2"', "[1, \"x\"]", "[-4]", "[]", "[2.5]", "[1000000000]", "7"],
    "prefix_token_ids": ['"1"', "[1, \"x\"]", "[-2]", "[0.5]", "[1000000000]", "3"],
    "question": ["5", '""', "[]", "null"],
    "tokenizer_fingerprint": ["5", '"0000"', "[]", "true"],
}


def record_wrong_value(rng, lines):
    field = rng.choice(sorted(BAD_RECORD_VALUES))
    return _with_value(rng, lines, field, rng.choice(BAD_RECORD_VALUES[field]))


def record_missing_field(rng, lines):
    return _with_value(rng, lines, rng.choice(AUTHORS_FIELDS), "", drop=True)


def record_lengths_differ(rng, lines):
    index = rng.randrange(len(lines))
    item = json.loads(lines[index])
    field = rng.choice(["tokens", "token_ids", "weights"])
    item[field] = item[field] + item[field][:1] if rng.random() < 0.5 or len(item[field]) < 2 else item[field][:-1]
    lines = list(lines)
    lines[index] = json.dumps(item, ensure_ascii=False)
    return ("\n".join(lines) + "\n").encode("utf-8")


def record_weights_off(rng, lines):
    index = rng.randrange(len(lines))
    item = json.loads(lines[index])
    factor = rng.choice([0.5, 0.9, 1.1, 2.0, 1e6])
    item["weights"] = [w * factor for w in item["weights"]]
    lines = list(lines)
    lines[index] = json.dumps(item, ensure_ascii=False)
    return ("\n".join(lines) + "\n").encode("utf-8")


def record_fingerprint_flip(rng, lines):
    """One hex digit of the tokenizer fingerprint changed: records of another tokenizer."""
    index = rng.randrange(len(lines))
    item = json.loads(lines[index])
    at = rng.randrange(len(item["tokenizer_fingerprint"]))
    digit = item["tokenizer_fingerprint"][at]
    item["tokenizer_fingerprint"] = (item["tokenizer_fingerprint"][:at] + rng.choice(
        [c for c in "0123456789abcdef" if c != digit]) + item["tokenizer_fingerprint"][at + 1:])
    lines = list(lines)
    lines[index] = json.dumps(item, ensure_ascii=False)
    return ("\n".join(lines) + "\n").encode("utf-8")


def record_latin1_line(rng, lines):
    index = rng.randrange(len(lines))
    item = json.loads(lines[index])
    item["question"] = rng.choice(["Café: 3 crèmes", "Zoë und Jürgen", "año único"])
    encoded = [line.encode("utf-8") for line in lines]
    encoded[index] = json.dumps(item, ensure_ascii=False).encode("latin-1")
    return b"\n".join(encoded) + b"\n"


RECORD_CORRUPTIONS = GENERIC + [record_wrong_value, record_wrong_value, record_wrong_value, record_missing_field,
                                record_lengths_differ, record_weights_off, record_fingerprint_flip,
                                record_latin1_line]


def record_case(i: int, lines: list[str]):
    rng = random.Random(f"{SEED}-train-{i}")
    corrupt = RECORD_CORRUPTIONS[i % len(RECORD_CORRUPTIONS)]
    return corrupt.__name__, corrupt(rng, lines)


# ---------------------------------------------------------------- the cases

def _run(argv, capsys) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, [line for line in captured.err.splitlines() if line.strip()]


def _check(code, err, command, path, out, kind):
    assert code == 2, (kind, code, err)
    assert len(err) == 1, (kind, err)
    assert err[0].startswith(f"lrkit {command}: error: "), (kind, err)
    assert "Traceback" not in err[0]
    assert str(path) in err[0] or "--max-new-tokens" in err[0], (kind, err[0])
    assert not out.exists(), (kind, "something was written to --out")


@pytest.mark.parametrize("i", range(CASES_PER_COMMAND), ids=lambda i: f"sample-{i:03d}")
def test_corrupted_problem_file_through_sample(i, pair_paths, tmp_path, capsys):
    kind, data = problem_case("sample", i)
    path = tmp_path / "problems.jsonl"
    path.write_bytes(data)
    out = tmp_path / "out"
    code, err = _run(["sample", "--expert", pair_paths[0], "--amateur", pair_paths[1], "--problems", path,
                      "--out", out, "--max-new-tokens", MAX_NEW, "--device", "cpu"], capsys)
    _check(code, err, "sample", path, out, kind)


@pytest.mark.parametrize("i", range(CASES_PER_COMMAND), ids=lambda i: f"eval-{i:03d}")
def test_corrupted_problem_file_through_eval(i, pair_paths, tmp_path, capsys):
    kind, data = problem_case("eval", i)
    path = tmp_path / "problems.jsonl"
    path.write_bytes(data)
    out = tmp_path / "out"
    code, err = _run(["eval", "--model", pair_paths[0], "--problems", path, "--out", out,
                      "--max-new-tokens", MAX_NEW], capsys)
    _check(code, err, "eval", path, out, kind)


@pytest.mark.parametrize("i", range(CASES_PER_COMMAND), ids=lambda i: f"train-{i:03d}")
def test_corrupted_record_file_through_train(i, pair_paths, record_lines, tmp_path, capsys):
    kind, data = record_case(i, record_lines)
    path = tmp_path / "records.jsonl"
    path.write_bytes(data)
    out = tmp_path / "out"
    code, err = _run(["train", "--expert", pair_paths[0], "--records", path, "--out", out,
                      "--max-steps", 1, "--precision", "fp32"], capsys)
    _check(code, err, "train", path, out, kind)


def test_the_generator_covers_every_corruption_and_is_seeded(record_lines):
    kinds = {problem_case(command, i)[0] for command in ("sample", "eval") for i in range(CASES_PER_COMMAND)}
    assert kinds >= {c.__name__ for c in PROBLEM_CORRUPTIONS} | {"problem_too_long", "_eval_missing_answer"}
    assert {record_case(i, record_lines)[0] for i in range(CASES_PER_COMMAND)} == \
        {c.__name__ for c in RECORD_CORRUPTIONS}
    assert problem_case("sample", 7) == problem_case("sample", 7)
    assert record_case(11, record_lines) == record_case(11, record_lines)
    assert 3 * CASES_PER_COMMAND >= 200
