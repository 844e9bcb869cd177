"""lrkit.teaching: the exercises' checks, the exercises as the notebooks pose them, and
``lrkit workshop handout`` (participants' copies carry no solution and still run with
every exercise left blank)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lrkit.cli import main
from lrkit.teaching import (EXERCISES, INVALID, NO_RESULT, NOT_ANSWERED, RIGHT, SOLUTIONS_FILE, WRONG, check,
                            direction, sign, write_handout)

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
NAMES = ("01_sampling", "02_critical_moments", "03_finetuning", "04_evaluation", "05_choosing_a_pair")


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def tags(cell: dict) -> list:
    return cell.get("metadata", {}).get("tags", [])


# --------------------------------------------------------------------------- check

@pytest.mark.parametrize("blank", [None, "", "   "])
def test_a_blank_prediction_is_not_answered_yet_and_names_the_variable(blank):
    for key, exercise in EXERCISES.items():
        verdict = check(key, blank, None)
        assert verdict.status == NOT_ANSWERED
        assert exercise.variable in str(verdict) and "not answered yet" in str(verdict)


def test_a_share_is_right_within_its_tolerance_and_wrong_beyond():
    tolerance = EXERCISES["1.1"].tolerance
    answer = 0.2246
    assert check("1.1", answer + 0.9 * tolerance, answer).status == RIGHT
    assert check("1.1", answer - 0.9 * tolerance, answer).status == RIGHT
    assert check("1.1", answer + 1.5 * tolerance, answer).status == WRONG
    assert check("1.1", f"{100 * answer:.1f}%", answer).status == RIGHT   # "22.5%"
    wrong = check("1.1", 0.6, answer)
    assert "60.0%" in wrong.text and "22.5%" in wrong.text   # what was said, what the run gave


def test_a_count_is_right_within_a_share_of_the_answer():
    exercise = EXERCISES["3.1"]
    assert exercise.kind == "count"
    assert check("3.1", 480 * (1 - 0.5 * exercise.tolerance), 480, records=578).status == RIGHT
    assert check("3.1", 480 * (1 + 2 * exercise.tolerance), 480, records=578).status == WRONG
    assert check("3.1", "1,000", 1000, records=5).status == RIGHT


@pytest.mark.parametrize("prediction", [True, "twenty", 20, -0.1, float("nan"), float("inf"), [0.2]])
def test_a_share_that_is_no_share_says_so_without_raising(prediction):
    verdict = check("1.1", prediction, 0.22)
    assert verdict.status == INVALID and "MY_SHARE_KEPT" in verdict.text
    assert "22" not in verdict.text   # the answer is not given away


def test_a_choice_takes_any_case_and_a_unique_start():
    answer = "confident expert, uncertain amateur"
    assert check("2.1", "Confident Expert", answer, share=0.8).status == RIGHT
    assert check("2.1", "both confident", answer, share=0.8).status == WRONG
    ambiguous = check("2.1", "both", answer, share=0.8)   # both confident / both uncertain
    assert ambiguous.status == INVALID and "both confident" in ambiguous.text
    assert check("3.2", "Lower", "lower", no_contrast=0.005, contrast=0.07).status == RIGHT


def test_no_result_when_the_run_skipped_what_the_answer_needs():
    verdict = check("4.1", "contrast", None)
    assert verdict.status == NO_RESULT and "ABLATIONS = True" in verdict.text


def test_an_unknown_exercise_is_a_clear_error():
    with pytest.raises(ValueError, match="no exercise '9.9'"):
        check("9.9", 1, 1)


def test_the_verdict_renders_as_escaped_html():
    page = check("2.1", "<b>", "both confident", share=0.5)._repr_html_()
    assert "<b>" not in page.replace("<b style", "") and "&lt;b&gt;" in page


def test_direction_and_sign():
    assert [direction(1.0, v, 0.1) for v in (0.5, 0.95, 1.05, 1.5)] == ["lower", "about the same",
                                                                     "about the same", "higher"]
    assert [sign(v, 2.0) for v in (-51.0, 1.5, -1.5, 28.5)] == ["negative", "about zero", "about zero", "positive"]


def test_every_exercise_kind_is_known_and_every_choice_exercise_has_choices():
    for exercise in EXERCISES.values():
        assert exercise.kind in ("share", "count", "choice")
        assert bool(exercise.choices) == (exercise.kind == "choice"), exercise.key


# --------------------------------------------------------------------------- the notebooks pose them

@pytest.mark.parametrize("name", NAMES)
def test_each_notebook_poses_at_least_two_exercises_with_prediction_solution_and_check(name):
    nb = cells(NOTEBOOKS / f"{name}.ipynb")
    keys = [k for k, e in EXERCISES.items() if e.notebook == name]
    assert len(keys) >= 2, name
    markdown = "\n".join(source(c) for c in nb if c["cell_type"] == "markdown")
    plain = [source(c) for c in nb if c["cell_type"] == "code" and "solution" not in tags(c)]
    solutions = [source(c) for c in nb if "solution" in tags(c)]
    for key in keys:
        variable = EXERCISES[key].variable
        assert re.search(rf"(^#+ |\*\*)Exercises? {re.escape(key)}\b", markdown, re.M), f"{name}: no heading {key}"
        blank = [i for i, s in enumerate(plain) if re.search(rf"^{variable} = None\b", s, re.M)]
        checks = [i for i, s in enumerate(plain) if f'teaching.check("{key}", {variable},' in s]
        assert len(blank) == 1 and len(checks) == 1 and blank[0] < checks[0], (name, key)
        assert any(re.search(rf"^{variable} = ", s, re.M) for s in solutions), f"{name}: no solution for {key}"


def test_the_check_logic_lives_in_lrkit_not_in_the_notebooks():
    """A check cell is a few lines: the answer computed by a library call, then teaching.check."""
    for name in NAMES:
        for cell in cells(NOTEBOOKS / f"{name}.ipynb"):
            text = source(cell)
            if "teaching.check(" in text:
                assert len(text.splitlines()) <= 8, (name, text)
                assert "assert" not in text and "print(" not in text


# --------------------------------------------------------------------------- handout

def test_the_participants_copy_has_no_solution_and_no_output(tmp_path):
    handout = write_handout(tmp_path / "room")
    assert [p.name for p in handout.notebooks] == [f"{n}.ipynb" for n in NAMES]
    assert not (tmp_path / "room" / SOLUTIONS_FILE).exists() and handout.solutions is None
    for name in NAMES:
        original = cells(NOTEBOOKS / f"{name}.ipynb")
        solutions = [source(c).strip() for c in original if "solution" in tags(c)]
        assert solutions, name
        nb = json.loads((tmp_path / "room" / "notebooks" / f"{name}.ipynb").read_text())
        copied = nb["cells"]
        assert "jupytext" not in nb["metadata"]
        assert all("solution" not in tags(c) for c in copied)
        assert len(copied) == len(original) - len(solutions)
        everything = "\n".join(source(c) for c in copied)
        for solution in solutions:   # no solution line survives anywhere in the copy
            for line in solution.splitlines():
                if line.strip():
                    assert line.strip() not in everything, (name, line)
        assert all(c["outputs"] == [] and c["execution_count"] is None for c in copied if c["cell_type"] == "code")
        kept = [source(c) for c in original if "solution" not in tags(c)]
        assert [source(c) for c in copied] == kept   # everything else as committed, in order
        assert sum("parameters" in tags(c) for c in copied) == 1


def test_the_sheet_lists_every_exercise_and_the_plan(tmp_path):
    sheet = write_handout(tmp_path / "room").sheet.read_text()
    assert sheet.startswith("# ") and "lrkit doctor" in sheet
    for key, exercise in EXERCISES.items():
        assert f"- {key}: {exercise.question}" in sheet and f"`{exercise.variable}`" in sheet
    minutes = [int(m) for m in re.findall(r"^\| (\d+) \|", sheet, re.M)]
    assert sum(minutes) == 90
    assert len(sheet.splitlines()) < 70   # one page


def test_the_teachers_copy_keeps_the_solutions_and_lists_them(tmp_path):
    teacher = write_handout(tmp_path / "t", with_solutions=True)
    page = teacher.solutions.read_text()
    for name in NAMES:
        original = cells(NOTEBOOKS / f"{name}.ipynb")
        copied = cells(tmp_path / "t" / "notebooks" / f"{name}.ipynb")
        assert [source(c) for c in copied] == [source(c) for c in original]
        shown = [c for c in copied if "solution" in tags(c)]
        assert shown and all(not c["metadata"].get("jupyter", {}).get("source_hidden") for c in shown)
        for cell in shown:
            assert source(cell).strip() in page
    # the participants' copy written over it leaves no solutions page behind
    write_handout(tmp_path / "t")
    assert not (tmp_path / "t" / SOLUTIONS_FILE).exists()


def test_handout_from_the_command_line_and_its_errors(tmp_path, capsys):
    assert main(["workshop", "handout", "--out", str(tmp_path / "room")]) == 0
    assert "participants' copy" in capsys.readouterr().out
    assert len(list((tmp_path / "room" / "notebooks").glob("*.ipynb"))) == len(NAMES)
    assert main(["workshop", "handout", "--out", str(tmp_path / "x"), "--notebooks", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no notebooks" in err and "--notebooks" in err
    (tmp_path / "file").write_text("")
    assert main(["workshop", "handout", "--out", str(tmp_path / "file")]) == 2
    assert "a file, not a folder" in capsys.readouterr().err


def test_handout_imports_no_torch(tmp_path):
    script = ("import sys\nfrom lrkit.cli import main\n"
              f"assert main(['workshop', 'handout', '--out', {str(tmp_path / 'room')!r}]) == 0\n"
              "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}).stdout
    assert out.strip().splitlines()[-1] == "[]"


# --------------------------------------------------------------------------- the room's copies run

@pytest.mark.slow
def test_every_handout_notebook_runs_with_the_exercises_left_blank(tmp_path, monkeypatch):
    """The participants' notebooks, in order, sharing a run folder, at small sizes: no error,
    and every check cell says "not answered yet"."""
    from markers import toy_pair_missing

    if toy_pair_missing():
        pytest.skip("the bundled toy pair is missing")
    papermill = pytest.importorskip("papermill")
    import time

    room = write_handout(tmp_path / "room")
    monkeypatch.setenv("LRKIT_RUN_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    parameters = dict(N_PROBLEMS=8, MAX_STEPS=4, N_EVAL=20, ABLATIONS=False, SFT_BASELINE=False)
    seconds = {}
    for path in room.notebooks:
        executed = tmp_path / f"executed_{path.name}"
        start = time.perf_counter()
        try:
            papermill.execute_notebook(str(path), str(executed), parameters=parameters, kernel_name="python3",
                                       cwd=str(tmp_path), progress_bar=False, execution_timeout=900)
        except papermill.PapermillExecutionError as error:
            pytest.fail(f"{path.name}: cell {error.cell_index} raised {error.ename}: {error.evalue}")
        seconds[path.stem] = round(time.perf_counter() - start, 1)
        said = [("".join(o["data"]["text/plain"]) if isinstance(o["data"]["text/plain"], list)
                 else o["data"]["text/plain"])
                for c in cells(executed) for o in c.get("outputs", [])
                if "text/plain" in o.get("data", {}) and "".join(o["data"]["text/plain"]).startswith("Exercise ")]
        expected = [k for k, e in EXERCISES.items() if e.notebook == path.stem]
        assert [s.split(":")[0] for s in said] == [f"Exercise {k}" for k in expected], (path.name, said)
        assert all(": not answered yet." in s for s in said), said
        errors = [o for c in cells(executed) for o in c.get("outputs", []) if o["output_type"] == "error"]
        assert errors == [], path.name
    print("\nhandout notebooks, seconds:", seconds, "total", round(sum(seconds.values()), 1))
