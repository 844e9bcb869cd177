"""lrkit.provenance: one entry per call that wrote a folder, its end time, the
git commit of the checkout, the command; a resumed run adds an entry."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from lrkit import provenance
from lrkit.provenance import PACKAGES, Provenance, api_call, invocation, read_provenance, set_command_line

REPO = Path(__file__).resolve().parents[1]


def test_an_entry_is_written_at_start_and_completed_at_finish(tmp_path):
    entry = Provenance(tmp_path, "lrkit.sample('x')", device="cuda:0", dtype="torch.bfloat16").start()
    (written,) = read_provenance(tmp_path)
    assert written["command"] == "lrkit.sample('x')"
    assert written["device"] == "cuda:0" and written["dtype"] == "bfloat16"
    assert written["started"] and written["ended"] is None, "a call that dies leaves ended null"
    for key in ("lrkit", "git_commit", "python", "platform", *PACKAGES):
        assert key in written
    entry.finish(processes=2)
    (finished,) = read_provenance(tmp_path)
    assert finished["ended"] >= finished["started"] and finished["processes"] == 2
    assert json.loads((tmp_path / "provenance.json").read_text()) == {"runs": [finished]}
    assert not list(tmp_path.glob("*.tmp")), "written atomically, no temporary file left"


def test_a_second_call_adds_an_entry_and_each_finishes_its_own(tmp_path):
    first = Provenance(tmp_path, "first").start()
    second = Provenance(tmp_path, "second").start()
    first.finish()
    runs = read_provenance(tmp_path)
    assert [r["command"] for r in runs] == ["first", "second"]
    assert runs[0]["ended"] and runs[1]["ended"] is None
    second.finish()
    assert all(r["ended"] for r in read_provenance(tmp_path))


def test_an_entry_started_without_writing_appears_only_at_finish(tmp_path):
    entry = Provenance(tmp_path, "merge").start(write=False)
    assert read_provenance(tmp_path) == []
    entry.finish()
    (written,) = read_provenance(tmp_path)
    assert written["started"] and written["ended"]


@pytest.mark.parametrize("content", [None, "not json", '{"runs": 3}', "[1, 2]"])
def test_read_provenance_of_a_missing_or_broken_file_is_empty(tmp_path, content):
    if content is not None:
        (tmp_path / "provenance.json").write_text(content)
    assert read_provenance(tmp_path) == []


def test_git_commit_of_the_checkout():
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    status = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                            capture_output=True, text=True, check=True).stdout.strip()
    expected = head.stdout.strip() + ("+dirty" if status else "")
    assert provenance.git_commit() == expected
    assert provenance.environment()["git_commit"] == expected


def test_the_command_line_replaces_the_api_call():
    try:
        set_command_line(["sample", "--out", "my runs/a"])
        assert invocation("lrkit.sample()") == "lrkit sample --out 'my runs/a'"
    finally:
        set_command_line(None)
    assert invocation("lrkit.sample()") == "lrkit.sample()"


def test_api_call_shortens_long_values():
    text = api_call("sample", "toy", None, [1, 2, 3, 4], out_dir="x" * 200)
    assert text.startswith("lrkit.sample('toy', None, <list of 4>, out_dir='xxx")
    assert text.endswith("...)") and len(text) < 200


def test_a_resumed_sampling_run_adds_an_entry(pair_paths, tmp_path, monkeypatch):
    import lrkit.stages.sampling
    from lrkit.config import SampleConfig
    from lrkit.stages.sampling import sample

    problems = [{"id": f"p{i}", "question": f"Ann has {i + 2} pens. How many?"} for i in range(2)]
    config = SampleConfig(max_new_tokens=4, batch_size=1)
    generate, calls = lrkit.stages.sampling.greedy_generate_batch, []

    def dies_in_the_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return generate(*args, **kwargs)

    monkeypatch.setattr(lrkit.stages.sampling, "greedy_generate_batch", dies_in_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        sample(str(pair_paths[0]), str(pair_paths[1]), problems, tmp_path / "run", config, progress=False)
    monkeypatch.undo()
    for _ in range(2):  # resumed, then finished: the second call returns it and adds nothing
        sample(str(pair_paths[0]), str(pair_paths[1]), problems, tmp_path / "run", config, progress=False)
    runs = read_provenance(tmp_path / "run")
    assert len(runs) == 2 and runs[0]["ended"] is None and runs[1]["ended"]
    assert runs[0]["command"] == runs[1]["command"]
    assert runs[0]["command"].startswith("lrkit.sample(")
