"""perf/gpu_check.py --dry-run: the GPU check's own code, on the CPU with
tiny configs, so the script cannot rot before a GPU runs it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_writes_its_report(tmp_path):
    run = subprocess.run([sys.executable, str(REPO / "perf" / "gpu_check.py"), "--dry-run",
                          "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)})
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["dry_run"] and report["device"] == "cpu"
    sampling, training, demo = report["sampling"], report["training"], report["demo"]
    # Random weights never emit EOS: every rollout is full length, the worst case.
    assert sampling["all_full_length"]
    assert sampling["rollout_tokens"] == sampling["problems"] * sampling["new_tokens"]
    # fp32 on the CPU: lrkit's batched sampling keeps the steps the authors' batch-1 algorithm keeps
    assert sampling["kept_steps_lrkit"] > 0 and sampling["same_kept_steps"]
    assert training["lrkit"]["finite"] and training["authors"]["finite"]
    assert training["lrkit"]["steps"] == report["scale"]["train_steps"]
    assert demo["same_kept_steps_as_cpu"] and demo["kept_steps"] > 0
    projected = report["projection"]
    assert abs(projected["lrkit_total_minutes"] - sum(projected["lrkit_minutes"].values())) < 1e-9
    table = (tmp_path / "gpu_check.md").read_text()
    assert "DRY RUN" in table
    packed, per_record = training["packed"], training["per_record"]
    assert packed["finite"] and per_record["finite"] and packed["steps"] == report["scale"]["packed_steps"]
    # the same records per step, read in fewer tokens
    assert packed["padded_token_forwards_per_step"] < per_record["padded_token_forwards_per_step"]
    assert "training 1,000 steps (packed)" in projected["lrkit_minutes"]
    assert table.count("\n| ") == 11  # header + 10 measurements
