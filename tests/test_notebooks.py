"""The four notebooks, executed with papermill on the bundled pair: in order, as a
workshop runs them (later notebooks read what earlier ones wrote), and alone (each
makes what it needs, with small values papermill injects after the cell tagged
``parameters``). Any error output fails the test.

The notebooks write to ``$LRKIT_RUN_DIR`` (a temporary folder here), never to the
repository. Each ``.ipynb`` is paired with a jupytext percent-format ``.py``
(either can be edited; ``jupytext --sync notebooks/*.ipynb`` brings the other up
to date); the committed notebooks carry no outputs and match their ``.py``.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
jupytext = pytest.importorskip("jupytext")
papermill = pytest.importorskip("papermill")

from markers import needs_toy, toy_pair_missing  # noqa: E402

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
ORDER = ("01_sampling", "02_critical_moments", "03_finetuning", "04_evaluation")
ALL = ORDER + ("05_choosing_a_pair",)
EXPERIMENT = "n48-test150-seed2026"
"""The folder the parameters cell's problem set gives (lrkit.workshop.notebook_experiment)."""
"""Every notebook; 05 reads the committed ladder study and runs on its own, not in the workshop order."""
CELL_TIMEOUT = 900
KERNEL_THREADS = "1"
"""torch threads per kernel unless OMP_NUM_THREADS says otherwise: on a busy 2-core
machine two threads spin against each other (a toy training step took 7.7 s with
two threads and 1.3 s with one)."""






def read(name: str):
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def execute(name: str, run_dir: Path, cwd: Path, monkeypatch, **parameters):
    """Run a notebook top to bottom with papermill; returns (executed notebook, seconds)."""
    monkeypatch.setenv("LRKIT_RUN_DIR", str(run_dir))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", KERNEL_THREADS))
    cwd.mkdir(parents=True, exist_ok=True)
    executed = run_dir.parent / f"executed_{name}.ipynb"  # to read when a test fails
    start = time.perf_counter()
    try:
        papermill.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(executed), parameters=parameters,
                                   kernel_name="python3", cwd=str(cwd), execution_timeout=CELL_TIMEOUT,
                                   progress_bar=False)
    except papermill.PapermillExecutionError as error:
        pytest.fail(f"{name}: cell {error.cell_index} raised {error.ename}: {error.evalue}")
    seconds = time.perf_counter() - start
    nb = nbformat.read(executed, as_version=4)
    errors = [(i, o.get("ename"), o.get("evalue")) for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.get("outputs", []) if o.output_type == "error"]
    tracebacks = [(i, o["text"][-500:]) for i, c in enumerate(nb.cells) if c.cell_type == "code"
                  for o in c.get("outputs", []) if o.output_type == "stream" and "Traceback" in o["text"]]
    assert errors == [] and tracebacks == [], f"{name}: errors in cells {errors or tracebacks}"
    if parameters:
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1 and all(f"{k} = {v!r}" in injected[0].source for k, v in parameters.items())
    return nb, seconds


def outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                parts.append(out["text"])
            elif "data" in out:
                parts.append(str(out["data"].get("text/plain", "")))
                parts.append(str(out["data"].get("text/html", "")))
    return "\n".join(parts)


def mime_types(nb) -> set:
    return {m for c in nb.cells for o in c.get("outputs", []) for m in o.get("data", {})}


# --------------------------------------------------------------------------- committed files

@pytest.mark.parametrize("name", ALL)
def test_committed_notebook_is_clean_and_has_one_parameters_cell(name):
    nb = read(name)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code), "commit notebooks without outputs"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert 'if "google.colab" in sys.modules:' in code[0].source and "pip" in code[0].source
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is code[1]
    for name_ in ("PAIR", "N_PROBLEMS", "BETA", "ALPHA", "DEVICE", "DTYPE", "SAVE_STEPS"):
        assert f'\n{name_} = setting("{name_}", ' in "\n" + tagged[0].source, name_
    assert '\nPAIR = setting("PAIR", "toy")' in "\n" + tagged[0].source


@pytest.mark.parametrize("name", ALL)
def test_committed_notebook_matches_its_paired_py(name):
    ipynb, py = read(name), jupytext.read(NOTEBOOKS / f"{name}.py")
    assert ipynb.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent"

    def cells(nb):
        return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", []))) for c in nb.cells]

    assert cells(ipynb) == cells(py), f"{name}.ipynb and {name}.py differ; run jupytext --sync on the edited one"


@pytest.mark.parametrize("name, calls", [
    ("01_sampling", ["lrkit.sample(", "config = ex.config.sample", "lrkit.select_steps("]),
    ("02_critical_moments", ["lrkit.soft_label_from_stats(", "lrkit.Explorer("]),
    ("03_finetuning", ["lrkit.train(", "lrkit.merge(", "config = ex.config.train", "lrkit.soft_label_fit("]),
    ("04_evaluation", ["lrkit.evaluate(", "config = ex.config.eval", "lrkit.compare(", "lrkit.contrast_check(",
                       "lrkit.evaluate_contrastive(", "lrkit.no_contrast(", "lrkit.run_sft("]),
    ("05_choosing_a_pair", ["lrkit.scout(", "REBUILD = False", "ladder_study.run_study("]),
])
def test_each_notebook_makes_the_call_it_teaches(name, calls):
    code = "\n".join(c.source for c in read(name).cells if c.cell_type == "code")
    for call in calls:
        assert call in code, f"{name} does not show {call}"
    if not any(call.startswith("config = ") for call in calls):
        return
    stage = calls[0].rstrip("(,")  # the stage's call takes the config the cell shows
    assert re.search(re.escape(stage) + r"\b[(,][^\n]*\bconfig\b", code), f"{name}: {stage} without its config"


STAGES = ("sample", "select_steps", "selection_summary", "soft_label_from_stats", "no_contrast", "contrast_check",
          "train", "merge", "run_sft", "soft_label_fit", "evaluate", "evaluate_contrastive", "evaluate_suite",
          "compare", "scout")


EXPERIMENT_STEPS = ("sample", "train", "merge", "evaluate", "decode", "check", "contrast", "ablation", "ablations",
                    "sft", "run", "scout", "records")
"""The Experiment's methods that run a stage (its other methods name folders and problem sets)."""


def test_the_notebooks_call_the_stages_and_loop_through_the_experiment():
    """Counting in the sources: a notebook teaches a stage by calling ``lrkit.<stage>(`` itself;
    where it repeats a stage over variants or pairs it calls the Experiment's step (one
    orchestration, issue: notebook 04 no longer rebuilds Experiment.ablations or its checks),
    so direct stage calls far outnumber Experiment steps, and no helper module hides a stage."""
    code = "\n".join(c.source for name in ALL for c in read(name).cells if c.cell_type == "code")
    direct = re.findall(r"\blrkit\.(%s)\(" % "|".join(STAGES), code)
    steps = re.findall(r"\bex\.(%s)\(" % "|".join(EXPERIMENT_STEPS), code)
    helpers = re.findall(r"\b(?:ex|w|workshop|analysis)\.\w+\(", code)
    print(f"\ndirect stage calls {len(direct)}, Experiment steps {len(steps)}, helper calls {len(helpers)}")
    assert len(direct) > 4 * len(steps), (len(direct), steps)
    assert "analysis." not in code and "workshop.once" not in code
    nb04 = "\n".join(c.source for c in read("04_evaluation").cells if c.cell_type == "code")
    assert "ex.ablation(" in nb04 and "ex.check()" in nb04 and "ex.contrast(" in nb04
    assert not re.search(r"for .* in .*:\n(\s+.*\n)*?\s+.*lrkit\.train\(", nb04), "a second training loop"


def _shared_cells(name: str) -> tuple[str, str]:
    """The Colab install cell and the parameters cell of a notebook."""
    nb = read(name)
    code = [c for c in nb.cells if c.cell_type == "code"]
    parameters = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    return code[0].source, parameters.source


def test_colab_and_parameters_cells_are_the_same_in_all_five():
    first = _shared_cells(ORDER[0])
    for name in ALL[1:]:
        colab, parameters = _shared_cells(name)
        assert colab == first[0], f"{name}: the Colab cell differs from {ORDER[0]}'s"
        assert parameters == first[1], f"{name}: the parameters cell differs from {ORDER[0]}'s"


# --------------------------------------------------------------------------- in order

@pytest.fixture(scope="module")
def workshop_run(tmp_path_factory):
    """All four notebooks in order, sharing one run folder."""
    if toy_pair_missing():
        pytest.skip("the bundled toy pair (data/toy) is missing")
    monkeypatch = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("in_order")
    run_dir, cwd = root / "runs", root / "cwd"
    cwd.mkdir()
    executed, seconds, snapshots = {}, {}, {}
    try:
        for name in ORDER:
            executed[name], seconds[name] = execute(name, run_dir, cwd, monkeypatch)
            snapshots[name] = {str(p.relative_to(run_dir)): p.stat().st_mtime_ns
                               for p in run_dir.rglob("*") if p.is_file()}
    finally:
        monkeypatch.undo()
    print("\nnotebook seconds, in order:", {k: round(v, 1) for k, v in seconds.items()})
    return {"nb": executed, "seconds": seconds, "run_dir": run_dir, "cwd": cwd, "files": snapshots}


@needs_toy
def test_notebooks_run_in_order_and_write_only_to_the_run_folder(workshop_run):
    assert list(workshop_run["cwd"].iterdir()) == []
    assert [p.name for p in (workshop_run["run_dir"] / "toy").iterdir()] == [EXPERIMENT]
    folders = sorted(p.name for p in (workshop_run["run_dir"] / "toy" / EXPERIMENT).iterdir())
    assert "sampling-beta0.4-alpha0.2" in folders, folders
    assert any(f.startswith("lightreasoner-beta0.4-alpha0.2-steps30-") for f in folders), folders


@needs_toy
def test_01_samples_and_shows_steps_and_records(workshop_run):
    nb = workshop_run["nb"]["01_sampling"]
    text = outputs_text(nb)
    assert "records" in text and "lrk-view" in text, "the token view did not render"
    assert "application/vnd.plotly.v1+json" in mime_types(nb)
    sampling = workshop_run["run_dir"] / "toy" / EXPERIMENT / "sampling-beta0.4-alpha0.2"
    summary = json.loads((sampling / "summary.json").read_text())
    assert summary["problems"] == 48 and summary["records"] > 0


@needs_toy
def test_02_reads_01_and_shows_the_analysis_and_the_explorer(workshop_run):
    nb = workshop_run["nb"]["02_critical_moments"]
    before, after = workshop_run["files"]["01_sampling"], workshop_run["files"]["02_critical_moments"]
    sampled = {k: v for k, v in before.items() if k.startswith(f"toy/{EXPERIMENT}/sampling-")}
    assert sampled and all(after[k] == v for k, v in sampled.items()), "02 resampled instead of reading 01"
    text = outputs_text(nb)
    for expected in ("mean KL where the top-1 tokens differ", "confident expert, uncertain amateur",
                     "lrk-view"):
        assert expected in text
    assert "application/vnd.jupyter.widget-view+json" in mime_types(nb), "the explorer did not display"
    plots = sum("application/vnd.plotly.v1+json" in o.get("data", {})
                for c in nb.cells for o in c.get("outputs", []))
    assert plots >= 6


@needs_toy
def test_03_trains_and_merges_and_the_labels_fit_better(workshop_run):
    nb = workshop_run["nb"]["03_finetuning"]
    text = outputs_text(nb)
    model_dir = next((workshop_run["run_dir"] / "toy" / EXPERIMENT).glob("lightreasoner-*"))
    assert (model_dir / "adapter" / "adapter_config.json").exists()
    assert (model_dir / "merged" / "config.json").exists()
    line = next(l for l in text.splitlines() if l.startswith("mean KL(v_C || pi_E)"))
    before, after = (float(x) for x in line.split(": base expert ")[1].split(" -> tuned "))
    assert after < before, line


@needs_toy
def test_04_reads_03_and_compares_ablates_and_measures_efficiency(workshop_run):
    nb = workshop_run["nb"]["04_evaluation"]
    before, after = workshop_run["files"]["03_finetuning"], workshop_run["files"]["04_evaluation"]
    trained = [k for k in before if "/adapter/" in k or "/merged/" in k]
    assert trained and all(after[k] == before[k] for k in trained), "04 retrained instead of reading 03"
    text = outputs_text(nb)
    for expected in ("fixed", "broken", "no selection", "no contrast", "neither", "SFT", "paper"):
        assert expected in text, expected
    folders = {p.name.split("-")[0] for p in (workshop_run["run_dir"] / "toy" / EXPERIMENT).iterdir()}
    assert {"no_selection", "no_contrast", "neither", "sft", "base"} <= folders, folders


# --------------------------------------------------------------------------- alone

@needs_toy
def test_03_alone_samples_what_it_needs(tmp_path, monkeypatch):
    nb, seconds = execute("03_finetuning", tmp_path / "runs", tmp_path / "cwd", monkeypatch,
                          N_PROBLEMS=8, MAX_STEPS=4)
    print(f"\n03 alone (8 problems, 4 steps): {seconds:.1f} s")
    folder = tmp_path / "runs" / "toy" / "n8-test150-seed2026"
    assert (folder / "sampling-beta0.4-alpha0.2" / "summary.json").exists()
    assert (next(folder.glob("lightreasoner-*-steps4-*")) / "merged" / "config.json").exists()


@needs_toy
def test_04_alone_samples_trains_and_evaluates(tmp_path, monkeypatch):
    nb, seconds = execute("04_evaluation", tmp_path / "runs", tmp_path / "cwd", monkeypatch,
                          N_PROBLEMS=16, MAX_STEPS=8, N_EVAL=40, ABLATIONS=False)
    print(f"\n04 alone (16 problems, 8 steps, 40 test problems, no ablations): {seconds:.1f} s")
    folders = {p.name.split("-")[0] for p in (tmp_path / "runs" / "toy" / "n16-test40-seed2026").iterdir()}
    assert {"sampling", "lightreasoner", "base", "sft"} <= folders, folders


@needs_toy
def test_05_alone_reads_the_study_and_scouts_two_amateurs(tmp_path, monkeypatch):
    nb, seconds = execute("05_choosing_a_pair", tmp_path / "runs", tmp_path / "cwd", monkeypatch, N_PROBLEMS=16)
    print(f"\n05 alone (16 validation problems for the scout): {seconds:.1f} s")
    text = outputs_text(nb)
    for expected in ("toy:amateur", "ladder:expert", "predictions, made without any training",
                     "odd-token audit (gold paths)", "habit (copy line)", "reading", "Spearman"):
        assert expected in text, expected
    plots = sum("application/vnd.plotly.v1+json" in o.get("data", {})
                for c in nb.cells for o in c.get("outputs", []))
    assert plots >= 4  # the ladder twice, a sweep, the scout
    ranking = json.loads((tmp_path / "runs" / "scout" / "ranking.json").read_text())
    assert [r["amateur"] for r in ranking][0] == "toy:amateur"


@needs_toy
def test_the_teachers_solutions_hold_on_the_workshops_run(workshop_run):
    """The committed notebooks are the teacher's copy: with the cells tagged ``solution``
    run, every exercise's check (lrkit.teaching) says "right" at the workshop's sizes."""
    from lrkit.teaching import EXERCISES

    for name in ORDER:
        said = [line for line in outputs_text(workshop_run["nb"][name]).splitlines() if line.startswith("Exercise ")]
        expected = [f"Exercise {k}: right." for k, e in EXERCISES.items() if e.notebook == name]
        assert [s[:len(expected[0])] for s in said] == expected, (name, said)


# --------------------------------------------------------------------------- cut off, then run again

def _papermill(name: str, out: Path, run_dir: Path, cwd: Path, env: dict = (), **parameters) -> subprocess.Popen:
    """papermill in a process of its own (its kernel in another), as a user's session runs a notebook."""
    cwd.mkdir(parents=True, exist_ok=True)
    variables = {k: v for k, v in os.environ.items() if not k.startswith("LRKIT_")}
    variables.update({"LRKIT_RUN_DIR": str(run_dir), "TQDM_DISABLE": "1", "PYTHONPATH": str(NOTEBOOKS.parent),
                      "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", KERNEL_THREADS), **dict(env)})
    command = [sys.executable, "-m", "papermill", str(NOTEBOOKS / f"{name}.ipynb"), str(out), "--cwd", str(cwd),
               "--kernel", "python3", "--no-progress-bar", "--execution-timeout", str(CELL_TIMEOUT)]
    for key, value in parameters.items():
        command += ["-p", key, str(value)]
    return subprocess.Popen(command, env=variables, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, what: str) -> str:
    out, err = proc.communicate(timeout=CELL_TIMEOUT)
    assert proc.returncode == 0, f"{what}: {err[-3000:]}"
    return out


def _kl_line(executed: Path) -> tuple[float, float]:
    text = outputs_text(nbformat.read(executed, as_version=4))
    line = next(l for l in text.splitlines() if l.startswith("mean KL(v_C || pi_E)"))
    before, after = (float(x) for x in line.split(": base expert ")[1].split(" -> tuned "))
    return before, after


@needs_toy
@pytest.mark.slow
def test_03_killed_mid_training_then_run_again_ends_as_an_uninterrupted_run(tmp_path):
    """Notebook 3 (8 problems, 8 steps, a checkpoint every 2) is run once straight through;
    a second run is SIGKILLed, kernel and papermill together (a disconnect), once its training
    has written checkpoint 4 and before it ends; run again, it resumes from the last checkpoint
    and ends with the adapter, loss curve, counts and printed numbers of the straight run."""
    import psutil
    from safetensors.torch import load_file

    sizes = {"N_PROBLEMS": 8, "MAX_STEPS": 8, "SAVE_STEPS": 2}
    model_dir = "toy/n8-test150-seed2026/lightreasoner-beta0.4-alpha0.2-steps8-lr0.002-seed0"
    straight, cut = tmp_path / "straight", tmp_path / "cut"
    start = time.perf_counter()
    _finish(_papermill("03_finetuning", straight / "run.ipynb", straight / "runs", straight / "cwd", **sizes),
            "straight run")
    straight_seconds = time.perf_counter() - start

    proc = _papermill("03_finetuning", cut / "killed.ipynb", cut / "runs", cut / "cwd", **sizes)
    adapter = cut / "runs" / model_dir / "adapter"
    deadline = time.monotonic() + CELL_TIMEOUT
    while not (adapter / "checkpoint-4" / "trainer_state.json").exists():
        assert proc.poll() is None, f"the run ended before its training checkpointed: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "no checkpoint-4 in time"
        time.sleep(0.01)
    family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    for member in reversed(family):  # the kernel first, then papermill: nothing survives to clean up
        member.kill()
    proc.communicate()
    assert not (adapter / "adapter_model.safetensors").exists(), "the kill must land before training ends"
    done = max(int(p.name.split("-")[1]) for p in adapter.glob("checkpoint-*"))
    assert 4 <= done < 8

    start = time.perf_counter()
    _finish(_papermill("03_finetuning", cut / "again.ipynb", cut / "runs", cut / "cwd", **sizes), "run again")
    print(f"\n03 straight {straight_seconds:.1f} s, run again after the kill {time.perf_counter() - start:.1f} s "
          f"(resumed from checkpoint {done} of 8)")
    ran = json.loads((adapter / "lrkit_train.json").read_text())["result"]
    expected = json.loads((straight / "runs" / model_dir / "adapter" / "lrkit_train.json").read_text())["result"]
    assert ran["resumed_from"].endswith(f"checkpoint-{done}") and expected["resumed_from"] is None
    assert (ran["steps"], ran["tuned_tokens"], ran["examples"]) == \
        (expected["steps"], expected["tuned_tokens"], expected["examples"]) and ran["steps"] == 8
    losses = [json.loads(line) for line in (adapter / "loss.jsonl").read_text().splitlines()]
    wanted = [json.loads(line) for line in (straight / "runs" / model_dir / "adapter" / "loss.jsonl")
              .read_text().splitlines()]
    assert [e["step"] for e in losses] == [e["step"] for e in wanted] == list(range(1, 9))
    assert [e["kl"] for e in losses] == pytest.approx([e["kl"] for e in wanted], rel=1e-5)
    a, b = (load_file(folder / model_dir / "adapter" / "adapter_model.safetensors")
            for folder in (straight / "runs", cut / "runs"))
    assert a.keys() == b.keys() and all(torch_allclose(a[k], b[k]) for k in a)
    assert _kl_line(cut / "again.ipynb") == pytest.approx(_kl_line(straight / "run.ipynb"), rel=1e-5)


def torch_allclose(x, y) -> bool:
    import torch

    return bool(torch.allclose(x, y, atol=1e-6, rtol=0))


@needs_toy
def test_lrkit_pair_in_the_environment_runs_a_notebook_on_the_control_pair(tmp_path):
    """LRKIT_PAIR=toy-shared (and LRKIT_N_PROBLEMS) reach the parameters cell, which says
    where each came from; a papermill parameter still wins over the environment."""
    run_dir = tmp_path / "runs"
    _finish(_papermill("01_sampling", tmp_path / "01.ipynb", run_dir, tmp_path / "cwd",
                             env={"LRKIT_PAIR": "toy-shared", "LRKIT_N_PROBLEMS": "12"}, N_PROBLEMS=6),
                  "01 with LRKIT_PAIR")
    nb = nbformat.read(tmp_path / "01.ipynb", as_version=4)
    printed = outputs_text(nb)
    assert "PAIR = 'toy-shared' (from LRKIT_PAIR)" in printed and "N_PROBLEMS = 12 (from LRKIT_N_PROBLEMS)" in printed
    assert [p.name for p in run_dir.iterdir()] == ["toy-shared"]
    folder = run_dir / "toy-shared" / "n6-test150-seed2026"  # papermill's N_PROBLEMS=6 won over the 12
    claimed = json.loads((folder / "experiment.json").read_text())
    from lrkit.experiment import pair_build

    assert claimed["pair"] == "toy-shared" and claimed["pair_build"] == pair_build("toy-shared")
    assert claimed["pair_build"] != pair_build("toy")
    summary = json.loads((folder / "sampling-beta0.4-alpha0.2" / "summary.json").read_text())
    assert summary["problems"] == 6
    rollouts = [json.loads(line) for line in (folder / "sampling-beta0.4-alpha0.2" / "rollouts.jsonl").open()]
    from lrkit.toy import toy_problems

    assert sorted(r["prompt_id"] for r in rollouts) == sorted(p["id"] for p in toy_problems("toy-shared", 6, "train",
                                                                                            seed=2026))
