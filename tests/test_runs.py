"""The folder lock (lrkit.runs): one writer per run folder.

Unit tests in one process, a plain second process that holds a lock, and the
real thing: `lrkit sample` and `lrkit train` started twice into one folder. The
first process is held inside its stage (after it took the lock, before it
writes its results) by a wrapper injected from outside lrkit, so the second
one certainly meets the lock; the first then finishes with exactly the files
of an undisturbed run.
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
import lrkit.sampling, lrkit.training
from lrkit.cli import main
go = Path(os.environ["TEST_GO"])
def held(function):
    def call(*args, **kwargs):
        deadline = time.monotonic() + 120
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return function(*args, **kwargs)
    return call
lrkit.sampling.greedy_generate_batch = held(lrkit.sampling.greedy_generate_batch)
lrkit.training.fit = held(lrkit.training.fit)
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
    """Both stages run once, alone, in this process."""
    root = tmp_path_factory.mktemp("undisturbed")
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
                             text=True, timeout=300)
        assert time.monotonic() - started < 200, "no hang"
        assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE], "nothing written beside the holder's lock"
    finally:
        holder.communicate("\n", timeout=60)
    assert run.returncode != 0
    lines = [line for line in run.stderr.splitlines() if line.startswith("lrkit") and ": error: " in line]
    assert len(lines) == 1, run.stderr[-2000:]
    assert lines[0].startswith(f"lrkit sample: error: {out}: another lrkit process is writing this folder")
