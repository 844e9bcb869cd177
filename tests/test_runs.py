"""The folder lock (lrkit.runs): one writer per run folder.

Unit tests in one process, a plain second process that holds a lock, and the
real thing: `lrkit sample` and `lrkit train` started twice into one folder. The
first process is held inside its stage (after it took the lock, before it
writes its results) by a wrapper injected from outside lrkit, so the second
one certainly meets the lock; the first then finishes with exactly the files
of an undisturbed run. Both run torch on one thread, said on each side (a
float sum's order, and so the files' last bits, can depend on the count).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lrkit.cli import main
from lrkit.runs import LOCK_FILE, FolderBusyError, entries, locked

REPO = Path(__file__).resolve().parents[1]
OUTPUTS = ("rollouts.jsonl", "steps.jsonl", "records.jsonl", "config.json")
# Holds the first process inside its stage until the test creates the file $TEST_GO.
WRAPPER = """
import os, sys, time
from pathlib import Path
import torch
import lrkit.stages.sampling, lrkit.stages.training
from lrkit.cli import main
torch.set_num_threads(1)  # the undisturbed run's count (its fixture)
go = Path(os.environ["TEST_GO"])
def held(function):
    def call(*args, **kwargs):
        deadline = time.monotonic() + 120
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return function(*args, **kwargs)
    return call
lrkit.stages.sampling.greedy_generate_batch = held(lrkit.stages.sampling.greedy_generate_batch)
lrkit.stages.training.fit = held(lrkit.stages.training.fit)
sys.exit(main(sys.argv[1:]))
"""
HOLDER = """
import sys
from lrkit.runs import locked
with locked(sys.argv[1], "test"):
    print("held", flush=True)
    sys.stdin.readline()
"""


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{REPO}:{REPO / 'tests'}"}


def _lock_held(folder: Path) -> bool:
    """Whether some process holds folder's lock, seen without taking it: the lock
    file exists only while held; on Linux /proc/locks also lists its flock."""
    path = folder / LOCK_FILE
    try:
        inode = path.stat().st_ino
    except FileNotFoundError:
        return False
    if not Path("/proc/locks").exists():
        return True
    return any(line.split()[1] == "FLOCK" and line.split()[5].endswith(f":{inode}")
               for line in Path("/proc/locks").read_text().splitlines() if len(line.split()) > 5)


def _wait_for_lock(folder: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not _lock_held(folder):
        if process.poll() is not None:
            raise AssertionError(f"the first process ended ({process.returncode}) before it held the lock: "
                                 f"{process.stderr.read()}")
        assert time.monotonic() < deadline, "the first process never took the lock"
        time.sleep(0.05)


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- one process

def test_lock_file_exists_only_while_held_and_a_new_empty_folder_goes(tmp_path):
    folder = tmp_path / "new" / "run"
    with locked(folder, "test"):
        assert (folder / LOCK_FILE).exists()
        assert entries(folder) == []
    assert not (tmp_path / "new").exists(), "the folders the call made and left empty are removed"
    with locked(folder, "test"):
        (folder / "result.json").write_text("{}")
    assert sorted(p.name for p in folder.iterdir()) == ["result.json"], "the lock file goes on release"


def test_existing_folder_stays_and_the_lock_goes_after_an_error(tmp_path):
    with pytest.raises(RuntimeError, match="stage broke"):
        with locked(tmp_path, "test"):
            raise RuntimeError("stage broke")
    assert tmp_path.is_dir() and list(tmp_path.iterdir()) == []
    with locked(tmp_path, "test"):  # taken again at once: nothing held it
        pass


def test_a_stage_inside_a_stage_of_the_same_folder_goes_on(tmp_path):
    with locked(tmp_path, "outer"):
        with locked(tmp_path, "inner"):
            assert (tmp_path / LOCK_FILE).exists()
        assert (tmp_path / LOCK_FILE).exists(), "the inner stage leaves the outer lock alone"
    assert not (tmp_path / LOCK_FILE).exists()


def test_no_folder_locks_nothing(tmp_path):
    with locked(None, "test"):
        pass
    path = tmp_path / "a-file"
    path.write_text("x")
    with locked(path, "test"):  # not a folder: the stage itself says what is wrong
        pass
    assert path.read_text() == "x"


def test_another_process_holding_the_lock_gives_one_line_naming_the_folder(tmp_path):
    folder = tmp_path / "busy"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], env=_env(), text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderBusyError) as caught:
            with locked(folder, "sampling run"):
                pytest.fail("the body must not run while another process holds the lock")
        message = str(caught.value)
        assert "\n" not in message and str(folder) in message and "another lrkit process" in message
        assert isinstance(caught.value, ValueError), "the CLI's user errors (exit status 2) are ValueErrors"
        assert (folder / LOCK_FILE).exists(), "the refused call leaves the holder's lock alone"
    finally:
        holder.communicate("\n", timeout=60)
    assert holder.returncode == 0
    assert not (folder / LOCK_FILE).exists() and not folder.exists()
    with locked(folder, "test"):  # free again once the holder ended
        pass


NO_FLOCK = """
import errno, fcntl
def no_flock(fd, operation):
    raise OSError(errno.ENOSYS, "Function not implemented")
fcntl.flock = no_flock
"""
"""Makes ``flock`` fail as on a filesystem without it (ENOSYS, as some FUSE and network mounts answer)."""


def test_where_flock_fails_a_soft_lock_file_stands_in_and_one_line_says_so(tmp_path, monkeypatch, capsys):
    import errno
    import fcntl

    from lrkit import runs

    def no_flock(fd, operation):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    monkeypatch.setattr(runs, "_flockless", {})  # forget what was probed before
    folder = tmp_path / "drive" / "run"
    with locked(folder, "test"):
        assert (folder / LOCK_FILE).exists() and entries(folder) == []
    with locked(folder, "test"):  # taken again: the soft lock removed its file on release
        (folder / "result.json").write_text("{}")
    assert sorted(p.name for p in folder.iterdir()) == ["result.json"]
    note = [line for line in capsys.readouterr().err.splitlines() if "flock" in line]
    assert len(note) == 1, "one line, once per filesystem"
    assert "no flock on this filesystem" in note[0] and "SoftFileLock" in note[0]

    # another process without flock holds the folder: refused, with the file to delete if that process is gone
    holder = subprocess.Popen([sys.executable, "-c", NO_FLOCK + HOLDER, str(folder)], env=_env(), text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderBusyError) as caught:
            with locked(folder, "evaluation"):
                pytest.fail("the body must not run while another process holds the soft lock")
        message = str(caught.value)
        assert "\n" not in message and "another lrkit process" in message
        assert f"delete {folder / LOCK_FILE}" in message
    finally:
        _, holder_err = holder.communicate("\n", timeout=60)
    assert holder.returncode == 0 and "no flock on this filesystem" in holder_err
    assert sorted(p.name for p in folder.iterdir()) == ["result.json"], "the holder's release removed its file"
    with locked(folder, "test"):
        pass


# --------------------------------------------------------------------------- two lrkit processes

PROBLEMS = [{"id": f"q{i}", "question": f"Sam has {i + 2} pens and buys {2 * i + 1} more. How many?"}
            for i in range(6)]


@pytest.fixture(scope="module")
def problems_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("problems") / "problems.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    return path


def sample_argv(pair_paths, problems_file, out) -> list[str]:
    return ["sample", "--expert", str(pair_paths[0]), "--amateur", str(pair_paths[1]),
            "--problems", str(problems_file), "--out", str(out), "--max-new-tokens", "12",
            "--batch-size", "2", "--beta", "0.0"]


def train_argv(pair_paths, records, out) -> list[str]:
    return ["train", "--expert", str(pair_paths[0]), "--records", str(records), "--out", str(out),
            "--max-steps", "2", "--per-device-batch-size", "2", "--gradient-accumulation-steps", "1",
            "--save-steps", "1", "--report-to", "none"]


@pytest.fixture(scope="module")
def undisturbed(pair_paths, problems_file, tmp_path_factory):
    """Both stages run once, alone, in this process, on one thread as the wrapper's."""
    from lrkit.models.loading import torch_threads

    root = tmp_path_factory.mktemp("undisturbed")
    with torch_threads(1):
        assert main(sample_argv(pair_paths, problems_file, root / "sample")) == 0
        assert main(train_argv(pair_paths, root / "sample" / "records.jsonl", root / "train")) == 0
    return root


def two_writers(argv: list[str], out: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess, str]:
    """Start argv held inside its stage, start it again into the same folder once
    the first holds the lock, then let the first finish; the second's result and
    the first's stderr."""
    go = tmp_path / "go"
    env = {**_env(), "TEST_GO": str(go)}
    first = subprocess.Popen([sys.executable, "-c", WRAPPER, *argv], env=env, cwd=tmp_path, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for_lock(out, first)
        second = subprocess.run([sys.executable, "-m", "lrkit", *argv], env=_env(), cwd=tmp_path,
                                capture_output=True, text=True, timeout=180)
        assert first.poll() is None, "the first process still holds the lock while the second runs"
    finally:
        go.touch()
        _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err
    return second, first_err


def assert_refused(second: subprocess.CompletedProcess, out: Path, command: str) -> None:
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert second.returncode == 2, second.stderr
    assert len(lines) == 1, second.stderr
    assert lines[0].startswith(f"lrkit {command}: error: {out}: another lrkit process is writing this folder")


def test_two_sampling_processes_into_one_folder(pair_paths, problems_file, undisturbed, tmp_path):
    out = tmp_path / "run"
    second, _ = two_writers(sample_argv(pair_paths, problems_file, out), out, tmp_path)
    assert_refused(second, out, "sample")
    assert _files(out) == _files(undisturbed / "sample")
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (undisturbed / "sample" / name).read_bytes(), name
    runs = json.loads((out / "provenance.json").read_text())["runs"]
    assert len(runs) == 1 and runs[0]["ended"], "the refused process added no provenance entry"


def test_two_training_processes_into_one_folder(pair_paths, undisturbed, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "adapter"
    records = undisturbed / "sample" / "records.jsonl"
    second, _ = two_writers(train_argv(pair_paths, records, out), out, tmp_path)
    assert_refused(second, out, "train")
    assert _files(out) == _files(undisturbed / "train")
    got = load_file(out / "adapter_model.safetensors")
    expected = load_file(undisturbed / "train" / "adapter_model.safetensors")
    assert got.keys() == expected.keys()
    for name in got:
        assert (got[name] - expected[name]).abs().max().item() <= 1e-6, name
    runs = json.loads((out / "provenance.json").read_text())["runs"]
    assert len(runs) == 1 and runs[0]["ended"]


def test_a_launch_of_two_ranks_into_a_busy_folder_stops_every_rank_with_one_line(pair_paths, problems_file,
                                                                                 tmp_path):
    """Under torchrun rank 0 alone takes the lock; when it cannot, every rank stops
    at once and rank 0 alone prints the line (no hang, nothing written)."""
    out = tmp_path / "busy"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], env=_env(), text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                              "-m", "lrkit", *sample_argv(pair_paths, problems_file, out), "--device", "cpu"],
                             env={**_env(), "LRKIT_DIST_TIMEOUT": "120"}, cwd=tmp_path, capture_output=True,
                             text=True, timeout=300)  # a hang: the timeout
        print(f"\nthe two ranks stopped in {time.monotonic() - started:.1f} s")
        assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE], "nothing written beside the holder's lock"
    finally:
        holder.communicate("\n", timeout=60)
    assert run.returncode != 0
    lines = [line for line in run.stderr.splitlines() if line.startswith("lrkit") and ": error: " in line]
    assert len(lines) == 1, run.stderr[-2000:]
    assert lines[0].startswith(f"lrkit sample: error: {out}: another lrkit process is writing this folder")


# ---------------------------------------------------------------- the run-folder layer: digests, writes, refusals

def test_digest_is_sha256_of_canonical_json_and_problems_digest_of_the_chosen_fields():
    import hashlib

    from lrkit.data.answers import Problem
    from lrkit.runs import digest, problems_digest

    expected = hashlib.sha256('{"a": "é", "b": [1, 2]}'.encode("utf-8")).hexdigest()
    assert digest({"b": [1, 2], "a": "é"}) == digest({"a": "é", "b": [1, 2]}) == expected
    as_dicts = [{"id": "p1", "question": "1+1?", "answer": "2"}, {"id": "p2", "question": "2+2?", "answer": "4"}]
    as_problems = [Problem(d["id"], d["question"], d["answer"]) for d in as_dicts]
    assert problems_digest(as_dicts) == problems_digest(as_problems) == digest([["p1", "1+1?"], ["p2", "2+2?"]])
    with_gold = ("id", "question", "answer")
    assert problems_digest(as_problems, with_gold) == digest([["p1", "1+1?", "2"], ["p2", "2+2?", "4"]])
    other_gold = [Problem("p1", "1+1?", "3"), as_problems[1]]
    assert problems_digest(other_gold) == problems_digest(as_problems)  # sampling's meaning: no answer
    assert problems_digest(other_gold, with_gold) != problems_digest(as_problems, with_gold)


def test_sha256_of_file_is_the_files_digest_and_adds_files_to_a_running_one(tmp_path):
    import hashlib

    from lrkit.runs import sha256_of_file
    from lrkit.stages.training import adapter_digest

    big = bytes(range(256)) * 20_000  # more than one 4 MiB block
    (tmp_path / "adapter_model.safetensors").write_bytes(big)
    (tmp_path / "adapter_config.json").write_text('{"r": 8}')
    assert sha256_of_file(tmp_path / "adapter_model.safetensors") == hashlib.sha256(big).hexdigest()
    # an adapter's digest: each file's name, a zero byte and its bytes, in one running sha256
    expected = hashlib.sha256(b'adapter_config.json\0{"r": 8}adapter_model.safetensors\0' + big).hexdigest()
    assert adapter_digest(tmp_path) == expected


def test_every_json_file_lrkit_writes_goes_through_the_atomic_writer():
    """A settings, state or result file written in place can be left half-written by a
    kill; lrkit.runs.write_json / write_text replace it whole (read by the resume checks)."""
    import re

    direct = re.compile(r"\.write_text\(\s*json\.dumps|json\.dump\(|open\([^)]*[\"']w[\"']|\.to_(csv|json)\([^)]*/")
    found = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
             for path in sorted((REPO / "lrkit").rglob("*.py")) if path.name != "runs.py"
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if direct.search(line)]
    assert found == []


def test_an_interrupted_write_leaves_the_old_file(tmp_path, monkeypatch):
    from lrkit import runs

    path = tmp_path / "state.json"
    runs.write_json(path, {"batches": 1})
    old = path.read_bytes()
    assert json.loads(old) == {"batches": 1} and old.endswith(b"\n")

    def killed(*args, **kwargs):
        raise OSError("killed before the rename")

    monkeypatch.setattr(runs.os, "replace", killed)
    with pytest.raises(OSError, match="killed"):
        runs.write_json(path, {"batches": 2})
    with pytest.raises(OSError, match="killed"):
        runs.write_text(tmp_path / "new.txt", "never")
    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]  # no temporary file left
    monkeypatch.undo()
    runs.write_text(path, "two\n")
    assert path.read_text() == "two\n"


def test_check_settings_names_every_difference_in_one_line(tmp_path):
    from lrkit.runs import FolderError, check_settings

    stored = {"expert": "a", "config": {"beta": 0.4, "alpha": 0.2}, "problems_sha256": "x"}
    check_settings(tmp_path, "sampling run", stored, json.loads(json.dumps(stored)))  # same: nothing
    current = {"expert": "a", "config": {"beta": 0.5, "alpha": 0.2}, "problems_sha256": "y"}
    with pytest.raises(FolderError) as caught:
        check_settings(tmp_path / "odd\nname", "sampling run", stored, current, way_out="pass --overwrite")
    error = caught.value
    assert isinstance(error, ValueError) and error.differs == ["config.beta", "problems"]
    assert error.stage == "sampling run" and error.folder == tmp_path / "odd\nname"
    assert "\n" not in str(error)
    assert "differs in: config.beta, problems" in str(error) and str(error).endswith("pass --overwrite")
    check_settings(tmp_path, "t", stored, current, ignore=["config.beta", "problems_sha256"])


# ---------------------------------------------------------------- every stage: a finished folder comes back as it is

STAGE_PROBLEMS = [{"id": f"q{i}", "question": f"Ann has {i + 2} pens and buys {i + 1} more. How many?",
                   "answer": str(2 * i + 3)} for i in range(4)]


def _contents(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def _forbid(monkeypatch, *targets):
    """Make each (module, name) raise when called: the expensive work of a stage."""
    for module, name in targets:
        def refuse(*args, _name=name, **kwargs):
            raise AssertionError(f"{_name} was called on a finished folder")
        monkeypatch.setattr(module, name, refuse)


def _assert_refused(call, folder: Path, setting: str):
    from lrkit.runs import FolderError

    before = _contents(folder)
    with pytest.raises(FolderError) as caught:
        call()
    message = str(caught.value)
    assert setting in message and str(folder) in message and "\n" not in message
    assert any(setting in name for name in caught.value.differs)
    assert _contents(folder) == before


@pytest.fixture(scope="module")
def sampled(pair_paths, tmp_path_factory):
    from lrkit.config import SampleConfig
    from lrkit.stages.sampling import sample

    out = tmp_path_factory.mktemp("stages") / "sampled"
    config = SampleConfig(max_new_tokens=8, batch_size=2, beta=0.0)
    return sample(str(pair_paths[0]), str(pair_paths[1]), STAGE_PROBLEMS, out, config, progress=False), config


def test_sample_twice_returns_the_stored_run(pair_paths, sampled, monkeypatch):
    import dataclasses

    import lrkit.stages.sampling
    from lrkit.provenance import read_provenance
    from lrkit.stages.sampling import SampleResult, sample

    first, config = sampled
    before = _contents(first.out_dir)
    _forbid(monkeypatch, (lrkit.stages.sampling, "greedy_generate_batch"), (lrkit.stages.sampling, "load_pair"),
            (lrkit.stages.sampling, "score_rollouts"))
    again = sample(str(pair_paths[0]), str(pair_paths[1]), STAGE_PROBLEMS, first.out_dir, config, progress=False)
    assert again.out_dir == first.out_dir
    def same(summary):  # NaN-proof equality
        return json.dumps(summary, sort_keys=True) == json.dumps(first.summary, sort_keys=True)

    assert same(again.summary) and same(SampleResult.load(first.out_dir).summary)
    assert again.records() == first.records() and len(first.records()) > 0
    assert _contents(first.out_dir) == before
    assert len(read_provenance(first.out_dir)) == 1
    _assert_refused(lambda: sample(str(pair_paths[0]), str(pair_paths[1]), STAGE_PROBLEMS, first.out_dir,
                                   dataclasses.replace(config, beta=0.5), progress=False), first.out_dir, "beta")


@pytest.fixture(scope="module")
def trained(pair_paths, sampled, tmp_path_factory):
    from lrkit.config import TrainConfig
    from lrkit.stages.training import train

    config = TrainConfig(max_steps=2, per_device_batch_size=2, save_steps=1000, logging_steps=1,
                         learning_rate=1e-2, report_to="none")
    out = tmp_path_factory.mktemp("stages") / "adapter"
    return train(str(pair_paths[0]), sampled[0].records_path, out, config, progress=False), config


@pytest.mark.parametrize("resume", [False, True])
def test_train_twice_returns_the_stored_run(pair_paths, sampled, trained, monkeypatch, resume):
    import dataclasses

    import lrkit.stages.training
    from lrkit.provenance import read_provenance
    from lrkit.stages.training import TrainResult, train

    first, config = trained
    before = _contents(first.adapter_dir)
    _forbid(monkeypatch, (lrkit.stages.training, "fit"), (lrkit.stages.training, "load_expert"),
            (lrkit.stages.training.Trainer, "train"))
    again = train(str(pair_paths[0]), sampled[0].records_path, first.adapter_dir, config, resume=resume,
                  progress=False)
    assert again == first == TrainResult.load(first.adapter_dir)
    assert first.steps == 2 and [e["step"] for e in again.loss_history] == [1, 2]
    assert _contents(first.adapter_dir) == before
    assert len(read_provenance(first.adapter_dir)) == 1
    _assert_refused(lambda: train(str(pair_paths[0]), sampled[0].records_path, first.adapter_dir,
                                  dataclasses.replace(config, learning_rate=2e-2), resume=resume, progress=False),
                    first.adapter_dir, "learning_rate")


def test_merge_twice_returns_the_folder(pair_paths, trained, tmp_path, monkeypatch):
    import lrkit.stages.training
    from lrkit.provenance import read_provenance
    from lrkit.stages.training import MERGE_FILE, merge

    adapter = trained[0].adapter_dir
    out = tmp_path / "merged"
    assert merge(str(pair_paths[0]), adapter, out) == out
    assert not (tmp_path / "merged.partial").exists()
    assert json.loads((out / MERGE_FILE).read_text())["dtype"] == "float32"
    before = _contents(out)
    import peft

    _forbid(monkeypatch, (lrkit.stages.training, "load_model"), (peft.PeftModel, "from_pretrained"))
    assert merge(str(pair_paths[0]), adapter, out) == out
    assert _contents(out) == before
    assert len(read_provenance(out)) == 1
    _assert_refused(lambda: merge(str(pair_paths[0]), adapter, out, dtype="bf16"), out, "dtype")


def test_a_merge_refuses_a_folder_of_other_contents(pair_paths, trained, tmp_path):
    from lrkit.runs import FolderError
    from lrkit.stages.training import merge

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(FolderError, match="notes.txt"):
        merge(str(pair_paths[0]), trained[0].adapter_dir, tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["notes.txt"]


def _assert_same_evaluation(a, b):
    import pandas as pd

    pd.testing.assert_frame_equal(a.df, b.df)
    assert json.dumps(a.info, sort_keys=True) == json.dumps(b.info, sort_keys=True)


def test_evaluate_twice_returns_the_stored_evaluation(pair_paths, tmp_path, monkeypatch):
    import lrkit.evaluation.loop
    import lrkit.models.loading
    from lrkit.config import EvalConfig
    from lrkit.evaluation import EvalResult, evaluate
    from lrkit.provenance import read_provenance

    config, out = EvalConfig(max_new_tokens=6, batch_size=2), tmp_path / "eval"
    first = evaluate(str(pair_paths[0]), STAGE_PROBLEMS, config, out_dir=out, progress=False)
    before = _contents(out)
    _forbid(monkeypatch, (lrkit.evaluation.loop, "greedy_generate_batch"), (lrkit.models.loading, "load_model"))
    again = evaluate(str(pair_paths[0]), STAGE_PROBLEMS, config, out_dir=out, progress=False)
    _assert_same_evaluation(again, first)
    _assert_same_evaluation(EvalResult.load(out), first)
    assert _contents(out) == before and len(read_provenance(out)) == 1
    _assert_refused(lambda: evaluate(str(pair_paths[0]), STAGE_PROBLEMS, EvalConfig(max_new_tokens=5, batch_size=2),
                                     out_dir=out, progress=False), out, "max_new_tokens")


def test_evaluate_contrastive_twice_returns_the_stored_evaluation(pair_paths, tmp_path, monkeypatch):
    import lrkit.models.generation
    from lrkit.config import EvalConfig
    from lrkit.evaluation import evaluate_contrastive
    from lrkit.models.loading import load_pair
    from lrkit.provenance import read_provenance

    pair = load_pair(str(pair_paths[0]), str(pair_paths[1]), device="cpu")
    config, out = EvalConfig(max_new_tokens=6, batch_size=2), tmp_path / "cd"
    first = evaluate_contrastive(pair, STAGE_PROBLEMS, config, alpha=0.5, out_dir=out, progress=False)
    before = _contents(out)
    _forbid(monkeypatch, (lrkit.models.generation, "contrastive_generate_batch"))
    again = evaluate_contrastive(pair, STAGE_PROBLEMS, config, alpha=0.5, out_dir=out, progress=False)
    _assert_same_evaluation(again, first)
    assert _contents(out) == before and len(read_provenance(out)) == 1
    _assert_refused(lambda: evaluate_contrastive(pair, STAGE_PROBLEMS, config, alpha=0.3, out_dir=out,
                                                 progress=False), out, "alpha")


def test_sft_twice_returns_the_stored_run(pair_paths, tmp_path, monkeypatch):
    import lrkit.stages.sft
    from lrkit.config import TrainConfig
    from lrkit.provenance import read_provenance
    from lrkit.stages.sft import SFTResult, run_sft

    config, out = TrainConfig(learning_rate=1e-2, save_steps=1000, report_to="none"), tmp_path / "sft"

    def right(text, problem):
        return True

    first = run_sft(str(pair_paths[0]), STAGE_PROBLEMS, out, config, max_new_tokens=6, judge=right,
                    require_finished=False, progress=False)
    assert first.problems_used == len(STAGE_PROBLEMS)
    before = _contents(out)
    _forbid(monkeypatch, (lrkit.stages.sft, "rollout"), (lrkit.stages.sft, "fit"), (lrkit.stages.sft, "load_model"))
    again = run_sft(str(pair_paths[0]), STAGE_PROBLEMS, out, config, max_new_tokens=6, judge=right,
                    require_finished=False, progress=False)
    assert again == first == SFTResult.load(out)
    assert _contents(out) == before and len(read_provenance(out)) == 1
    _assert_refused(lambda: run_sft(str(pair_paths[0]), STAGE_PROBLEMS, out, config, max_new_tokens=5, judge=right,
                                    require_finished=False, progress=False), out, "max_new_tokens")


def test_suite_twice_returns_the_stored_suite(pair_paths, tmp_path, monkeypatch):
    import pandas as pd

    import lrkit.models.loading
    import lrkit.evaluation.suite
    from lrkit.config import EvalConfig
    from lrkit.evaluation.suite import SuiteResult, evaluate_suite

    config, out = EvalConfig(max_new_tokens=6, batch_size=2), tmp_path / "suite"
    models, benchmarks = [str(pair_paths[0]), str(pair_paths[1])], {"mine": STAGE_PROBLEMS}
    first = evaluate_suite(models, benchmarks, out, config, names=["expert", "amateur"], progress=False)
    before = _contents(out)
    _forbid(monkeypatch, (lrkit.evaluation.suite, "evaluate"), (lrkit.models.loading, "load_model"))
    again = evaluate_suite(models, benchmarks, out, config, names=["expert", "amateur"], progress=False)
    for result in (again, SuiteResult.load(out)):
        pd.testing.assert_frame_equal(result.scores(), first.scores())
        pd.testing.assert_frame_equal(result.comparisons(), first.comparisons())
        assert result.models == first.models and result.benchmarks == first.benchmarks
    assert _contents(out) == before
    _assert_refused(lambda: evaluate_suite(models, benchmarks, out, EvalConfig(max_new_tokens=5, batch_size=2),
                                           names=["expert", "amateur"], progress=False), out, "max_new_tokens")


def test_a_suite_refuses_a_folder_of_other_contents(pair_paths, tmp_path):
    from lrkit.config import EvalConfig
    from lrkit.runs import FolderError
    from lrkit.evaluation.suite import evaluate_suite

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(FolderError, match="notes.txt"):
        evaluate_suite([str(pair_paths[0])], {"mine": STAGE_PROBLEMS}, tmp_path / "out",
                       EvalConfig(max_new_tokens=4), progress=False)
