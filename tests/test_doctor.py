"""lrkit doctor: one line per check, exit 0 on a ready machine, exit 1 naming the fix when
a check fails (an unwritable run folder, a damaged pair, an unreachable Hub, no torch)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lrkit.doctor import BUNDLED_SHA256, FAIL, OK, WARN, check_memory, check_pair

REPO = Path(__file__).resolve().parents[1]
BUNDLED = {"toy": REPO / "data" / "toy", "toy-shared": REPO / "data" / "toy-shared"}
STATUSES = ("ok", "warn", "fail")


def doctor(*args, env=None, cwd=REPO) -> tuple[subprocess.CompletedProcess, float]:
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env or {})}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lrkit", "doctor", *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=120)
    return proc, time.perf_counter() - start


def lines_by_check(stdout: str) -> dict:
    """{check name: (status, rest of the line)} from the report, the summary line aside."""
    found = {}
    for line in stdout.strip().splitlines()[:-1]:
        status, rest = line[:5].strip(), line[6:]
        name = rest[:16].strip()
        found[name] = (status, rest[16:].strip())
    return found


def test_a_ready_machine_exits_0_with_one_line_per_check(tmp_path):
    proc, seconds = doctor(env={"LRKIT_RUN_DIR": str(tmp_path / "runs")})
    print(f"\nlrkit doctor: {seconds:.1f} s\n{proc.stdout}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = lines_by_check(proc.stdout)
    assert set(checks) == {"python", "lrkit", "torch", "libraries", "memory", "disk", "pair toy",
                           "pair toy-shared", "widgets", "run folder"}
    assert all(status in ("ok", "warn") for status, _ in checks.values()), checks
    assert str(tmp_path / "runs") in checks["run folder"][1]
    assert list((tmp_path / "runs").iterdir()) == []   # the probe file is gone
    assert str(REPO / "lrkit") in checks["lrkit"][1]
    assert proc.stdout.strip().splitlines()[-1].endswith("ready for the workshop")


def test_an_unwritable_run_folder_fails_with_exit_1_and_names_the_fix(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc, _ = doctor(env={"LRKIT_RUN_DIR": str(blocker / "runs")})
    assert proc.returncode == 1, proc.stdout
    status, text = lines_by_check(proc.stdout)["run folder"]
    assert status == "fail" and str(blocker / "runs") in text
    assert "fix: set LRKIT_RUN_DIR to a folder you can write" in text
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "not ready" in proc.stdout.strip().splitlines()[-1]


def test_an_unreachable_hub_fails_only_when_asked(tmp_path):
    # the suite runs with HF_HUB_OFFLINE=1 (conftest); here the doctor must really ask an unreachable Hub
    env = {"LRKIT_RUN_DIR": str(tmp_path), "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_ETAG_TIMEOUT": "2",
           "HF_HUB_OFFLINE": "0"}
    proc, _ = doctor("--hub", env=env)
    assert proc.returncode == 1
    status, text = lines_by_check(proc.stdout)["hub"]
    assert status == "fail" and "not reachable" in text and "fix: the toy pairs need no network" in text
    offline, _ = doctor("--hub", env={**env, "HF_HUB_OFFLINE": "1"})
    assert lines_by_check(offline.stdout)["hub"][0] == "fail" and "HF_HUB_OFFLINE" in offline.stdout


def test_no_torch_is_reported_not_a_crash(tmp_path):
    """A machine without torch: the torch line fails with the install command, the report goes on."""
    fake = tmp_path / "site" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no torch on this machine')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(REPO)]), "LRKIT_RUN_DIR": str(tmp_path / "r")}
    proc, _ = doctor(env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    checks = lines_by_check(proc.stdout)
    assert checks["torch"][0] == "fail" and "pip install torch==2.13.0" in checks["torch"][1]
    assert checks["python"][0] == "ok" and checks["pair toy"][0] == "ok"


def test_the_pinned_digests_are_the_committed_files():
    """After `lrkit build-toy` rebuilds a pair, paste the table printed on failure into lrkit/doctor.py."""
    actual = {name: {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
                     for role in ("expert", "amateur") for p in sorted((folder / role).iterdir()) if p.is_file()}
              for name, folder in BUNDLED.items()}
    assert BUNDLED_SHA256 == actual, json.dumps(actual, indent=4)


def test_a_damaged_pair_fails_and_a_changed_one_warns(tmp_path):
    copy = tmp_path / "toy"
    shutil.copytree(BUNDLED["toy"], copy)
    assert check_pair("toy", copy).status == OK
    config = copy / "amateur" / "config.json"
    config.write_text(config.read_text() + "\n")   # still a valid file, not the shipped one
    changed = check_pair("toy", copy)
    assert changed.status == WARN and "amateur/config.json" in changed.detail
    weights = copy / "expert" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])   # a cut download
    cut = check_pair("toy", copy)
    assert cut.status == FAIL and "model.safetensors does not open" in cut.detail and "git checkout" in cut.fix
    (copy / "expert" / "tokenizer.json").unlink()
    missing = check_pair("toy", copy)
    assert missing.status == FAIL and "missing expert/tokenizer.json" in missing.detail


@pytest.mark.parametrize("gib, status", [(0.5, FAIL), (1.5, WARN), (8.0, OK)])
def test_memory_thresholds(gib, status):
    check = check_memory(int(gib * 2 ** 30))
    assert check.status == status and f"{gib:.1f} GiB available" in check.detail
    assert (check.fix != "") == (status != OK)
