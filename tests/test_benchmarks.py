"""The benchmark registry: each benchmark's schema mapped to problems, from local
fixture files written in each Hub schema (tests/fixtures/benchmarks), and the
Hub path with ``datasets.load_dataset`` replaced by the same rows."""
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from lrkit.data.benchmarks import BENCHMARKS, MMLU_STEM_SUBJECTS, PAPER_BENCHMARKS, load_benchmark
from lrkit.data.answers import ProblemError
from lrkit.data.problems import load_problems
from lrkit.paper import PAPER_TABLE1

FIXTURES = Path(__file__).parent / "fixtures" / "benchmarks"

# name: [(id, question, gold)] as worked out from the fixture rows by hand.
EXPECTED = {
    "gsm8k": [("gsm8k-test-0", "what is six times seven?", "42"),
              ("gsm8k-test-1", "Tom buys 3 bags of 1,000 beads. How many beads does he have?", "3000"),
              ("gsm8k-test-2", "say seven!", "7")],
    "math500": [("test/algebra/1.json", "what is the sum of the roots of x^2-5x+6?", "5"),
                ("test/precalculus/2.json",
                 "Convert the point $(0,3)$ in rectangular coordinates to polar coordinates.",
                 r"\left( 3, \frac{\pi}{2} \right)"),
                ("test/algebra/3.json", r"Solve $|x-2| \le 5$.", "[-3,7]"),
                ("test/prealgebra/4.json", r"Simplify $\sqrt{50}$.", r"5\sqrt{2}")],
    "math": [("math-0", r"What is $\frac{1}{2}+\frac{1}{4}$?", r"\frac{3}{4}"),
             ("math-1", "Find the set of $x$ with $x^2<1$.", "(-1,1)"),   # the last box of the solution
             ("math-2", r"Compute $\binom{4}{2}$.", "6")],
    "svamp": [("chal-1", "There are 87 oranges and 290 bananas in a box. The bananas are put into 2 equal "
                         "groups. How big is each group of bananas?", "145"),
              ("chal-2", "Jane had 11 stickers. She gave 4 to her brother. How many stickers does Jane have now?",
               "7"),
              ("chal-3", "A pie is cut into 4 equal parts and Sam eats 1 part. What share of the pie did he eat?",
               "0.25")],
    "asdiv": [("asdiv-0", "Seven red pens and two blue pens are in a cup. How many pens are in the cup?", "9"),
              ("asdiv-1", "A rope is 12 m long and is cut into 3 equal pieces. How long is each piece?", "4"),
              ("asdiv-3", "A box holds 6 eggs. How many eggs are in 4 boxes?", "24")],
    "minerva_math": [("minerva_math-0", "A star has parallax 0.1 arcseconds. What is its distance in parsecs?",
                      "10"),
                     ("minerva_math-1", "Give the speed of light in m/s to one significant figure, in the form "
                                        r"a \times 10^b.", r"3 \times 10^{8}"),
                     ("minerva_math-2", r"Compute $\int_0^1 2x\,dx$.", "1")],
    "olympiadbench": [("2001", "Find all real $x$ with $x^2=4$.", "2,-2"),
                      ("2002", "What is the smallest prime greater than 20?", "23"),
                      ("2003", r"A square has side $\sqrt{2}$. What is its diagonal?", "2")],
    "mmlu_stem": [("mmlu_stem-0", "What is 2 + 2?\nAnswer Choices: (A) 3 (B) 4 (C) 5 (D) 22", "B"),
                  ("mmlu_stem-1", "Which particle carries a negative charge?\nAnswer Choices: (A) proton "
                                  "(B) neutron (C) electron (D) photon", "C"),
                  ("mmlu_stem-3", "The derivative of x^2 is\nAnswer Choices: (A) x (B) 2x (C) x^2 (D) 2", "B"),
                  ("mmlu_stem-4", "Which gate outputs 1 only when both inputs are 1?\nAnswer Choices: (A) OR "
                                  "(B) XOR (C) NAND (D) AND", "D")],
}


def _rows(name):
    return [json.loads(line) for line in (FIXTURES / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]


def test_registry_holds_the_papers_seven_benchmarks_with_notes():
    assert PAPER_BENCHMARKS == ("gsm8k", "math500", "svamp", "asdiv", "minerva_math", "olympiadbench", "mmlu_stem")
    assert set(BENCHMARKS) == set(PAPER_BENCHMARKS) | {"math"}  # and the full MATH test set
    for bench in BENCHMARKS.values():
        assert bench.hub_id and bench.split and bench.fields and bench.source and bench.licence
        assert bench.answer_kind == ("choice" if bench.name == "mmlu_stem" else "math")
    assert len(MMLU_STEM_SUBJECTS) == 18


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_rows_map_to_problems(name):
    problems = load_benchmark(name, path=FIXTURES / f"{name}.jsonl")
    assert [(p.id, p.question, p.gold) for p in problems] == EXPECTED[name]
    assert {p.answer_kind for p in problems} == {BENCHMARKS[name].answer_kind}


def test_parquet_in_the_hub_schema_loads_like_jsonl(tmp_path):
    for name in ("mmlu_stem", "olympiadbench", "svamp"):  # lists, integers and floats survive parquet
        path = tmp_path / f"{name}.parquet"
        pd.DataFrame(_rows(name)).to_parquet(path)
        assert load_benchmark(name, path=path) == load_benchmark(name, path=FIXTURES / f"{name}.jsonl")


def test_limit_keeps_the_first_problems():
    assert [p.id for p in load_benchmark("asdiv", path=FIXTURES / "asdiv.jsonl", limit=2)] == ["asdiv-0", "asdiv-1"]


def test_hub_loading_reads_the_registered_location(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(hub_id, config=None, split=None):
        calls.append((hub_id, config, split))
        name = {b.hub_id: b.name for b in BENCHMARKS.values()}[hub_id]
        rows = _rows(name)
        return rows[:2] if split == "train" else rows[2:]  # SVAMP's two parts

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    svamp = load_problems("svamp")
    assert calls == [("ChilleD/SVAMP", None, "train"), ("ChilleD/SVAMP", None, "test")]
    assert [p.id for p in svamp] == ["chal-1", "chal-2", "chal-3"]
    calls.clear()
    mmlu = load_problems("mmlu_stem", max_problems=2)
    assert calls == [("hails/mmlu_no_train", "all", "test")]
    # The fake returns rows[2:] for "test": the world_religions row is dropped.
    assert [p.gold for p in mmlu] == ["B", "D"] and mmlu[0].id == "mmlu_stem-1"
    calls.clear()
    # The registry's GSM8K gives the ids lrkit has always used for GSM8K.
    registry = load_benchmark("gsm8k", split="train")  # the fake's "train" part: the first two rows
    assert [p.id for p in registry] == ["gsm8k-train-0", "gsm8k-train-1"]
    assert load_problems("gsm8k", split="train") == registry
    calls.clear()
    math = load_problems("math")  # seven subject configs, one after the other
    assert [c[1] for c in calls] == ["algebra", "counting_and_probability", "geometry", "intermediate_algebra",
                                     "number_theory", "prealgebra", "precalculus"]
    assert len(math) == 7 and len({p.id for p in math}) == 7
    calls.clear()
    load_problems("olympiadbench")
    assert calls == [("Hothan/OlympiadBench", "OE_TO_maths_en_COMP", "train")]


def test_unknown_benchmark_names_the_known_ones():
    with pytest.raises(ProblemError) as err:
        load_problems("math5000")
    message = str(err.value)
    assert "'math5000'" in message and "\n" not in message
    assert all(name in message for name in BENCHMARKS)
    with pytest.raises(ProblemError, match="known benchmarks: gsm8k, math500"):
        load_benchmark("mmlu")


def test_a_row_missing_a_field_names_file_line_and_field(tmp_path):
    rows = _rows("svamp")
    del rows[1]["Answer"]
    path = tmp_path / "svamp.jsonl"
    path.write_text("\n" + "".join(json.dumps(r) + "\n" for r in rows))  # a blank first line
    with pytest.raises(ProblemError) as err:
        load_benchmark("svamp", path=path)
    assert str(err.value).startswith(f"{path}, line 3: missing field 'Answer'")
    parquet = tmp_path / "mmlu.parquet"
    rows = _rows("mmlu_stem")
    pd.DataFrame(rows).drop(columns=["choices"]).to_parquet(parquet)
    with pytest.raises(ProblemError, match=r"mmlu.parquet, row 1: missing field 'choices'"):
        load_benchmark("mmlu_stem", path=parquet)
    bad = tmp_path / "mmlu_bad.jsonl"
    rows[0]["answer"] = 7
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ProblemError, match=r"line 1: field 'answer' must be 0-3"):
        load_benchmark("mmlu_stem", path=bad)


def test_cli_errors_are_one_line(capsys, tmp_path):
    from lrkit.cli import main

    code = main(["eval", "--model", "toy:expert", "--problems", "gsm9k", "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "known benchmarks" in err


def test_paper_table_averages_agree_with_its_columns():
    # An independent check of the transcription: each published average is the
    # mean of its seven columns, to the table's rounding.
    assert len(PAPER_TABLE1) == 5
    for model, rows in PAPER_TABLE1.items():
        assert set(rows) == {"Baseline", "+ SFT", "+ LightR"}
        for label, values in rows.items():
            assert len(values) == 8
            assert math.isclose(sum(values[:7]) / 7, values[7], abs_tol=0.051), (model, label)
    assert PAPER_TABLE1["Qwen2.5-Math-1.5B"]["Baseline"][0] == 42.5  # the paper's Table 1
    assert PAPER_TABLE1["Qwen2.5-Math-1.5B"]["+ LightR"][0] == 70.6


def test_problems_round_trip_through_dicts_with_their_kind():
    mmlu = load_benchmark("mmlu_stem", path=FIXTURES / "mmlu_stem.jsonl")
    assert load_problems([p.to_dict() for p in mmlu]) == mmlu
    gsm8k = load_benchmark("gsm8k", path=FIXTURES / "gsm8k.jsonl")
    assert "answer_kind" not in gsm8k[0].to_dict()  # the default kind leaves dicts as they were
    with pytest.raises(ProblemError, match="answer_kind"):
        load_problems([{"question": "q", "answer": "1", "answer_kind": "essay"}])
