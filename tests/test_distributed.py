"""Several processes: `torchrun --nproc-per-node 2 -m lrkit ...` (two gloo processes
on the CPU, one thread each) against one-process runs of the same command.

Sampling and evaluation must leave byte-identical files (timings aside: they are
summed compute seconds of every rank, or rank 0's wall time); training must
reach the one-process adapter with the same global batch, and count the same
tuned tokens. A failing rank, a killed rank and bad launches end with one line,
never a hang.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lrkit.cli import main
from tiny_models import make_model, make_tokenizer, save_pair

REPO = Path(__file__).resolve().parents[1]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
OUTPUTS = ("rollouts.jsonl", "steps.jsonl", "records.jsonl", "config.json")
TIMINGS = ("rollout_s", "scoring_s", "seconds", "tokens_per_second")
# Rank-dependent behaviour for the failure tests, injected from outside lrkit.
WRAPPER = """
import os, sys
import lrkit.stages.sampling
from lrkit.cli import main
rank = os.environ["RANK"]
argv = sys.argv[1:]
if os.environ.get("TEST_OUT_PER_RANK"):
    argv[argv.index("--out") + 1] += "-rank" + rank
if os.environ.get("TEST_FAIL_RANK") == rank:
    def broken(*args, **kwargs):
        raise RuntimeError("generation broke on this rank")
    lrkit.stages.sampling.greedy_generate_batch = broken
if os.environ.get("TEST_FAIL_TRAINING_RANK") == rank:
    import lrkit.stages.training
    def broken_loss(*args, **kwargs):
        raise RuntimeError("the loss broke on this rank")
    lrkit.stages.training.soft_label_kl = broken_loss
    lrkit.stages.training.packed_kl = broken_loss
sys.exit(main(argv))
"""


def _env(**extra) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{REPO}:{REPO / 'tests'}",
            "LRKIT_DIST_TIMEOUT": "120", **extra}


def launch(*args: str, script=None, timeout: float = 240, **env) -> subprocess.CompletedProcess:
    target = [str(script)] if script else ["-m", "lrkit"]
    return subprocess.run([*TORCHRUN, *target, *args], env=_env(**env), cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def lrkit_lines(stderr: str) -> list[str]:
    """lrkit's own error lines (torchrun adds its report of the failed processes)."""
    return [line for line in stderr.splitlines() if line.startswith("lrkit") and ": error: " in line]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    expert, amateur = save_pair(root, expert_rows=3, eos_boost=1.0)
    problems = root / "problems.jsonl"
    problems.write_text("".join(json.dumps({"id": f"q{i}", "answer": str(2 * i + 4),
                                            "question": f"Sam has {i} pens and {i + 4} pencils. How many?"}) + "\n"
                                for i in range(7)))
    return root, expert, amateur, problems


def sample_args(setup, out) -> list[str]:
    _, expert, amateur, problems = setup
    return ["sample", "--expert", str(expert), "--amateur", str(amateur), "--problems", str(problems),
            "--out", str(out), "--max-new-tokens", "12", "--beta", "0.5", "--batch-size", "2", "--device", "cpu"]


def without_timings(path: Path) -> dict:
    return {k: v for k, v in json.loads(path.read_text()).items() if k not in TIMINGS}


@pytest.fixture(scope="module", autouse=True)
def one_thread_like_the_ranks():
    """torchrun gives each rank one thread; the one-process references here must
    use one too, or float sums are ordered differently and the last digits differ."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def one_process_sample(setup):
    out = setup[0] / "one"
    assert main(sample_args(setup, out)) == 0
    return out


def test_sampling_on_two_processes_leaves_the_one_process_folder(setup, one_process_sample, tmp_path):
    out = tmp_path / "two"
    run = launch(*sample_args(setup, out))
    assert run.returncode == 0, run.stderr[-2000:]
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (one_process_sample / name).read_bytes(), name
    # Summary numbers and the resume point agree; timings are each rank's seconds, summed.
    assert without_timings(out / "summary.json") == without_timings(one_process_sample / "summary.json")
    assert without_timings(out / "state.json") == without_timings(one_process_sample / "state.json")
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in one_process_sample.iterdir())
    # rank 0 alone printed the summary
    assert run.stdout.count('"records"') == 1


def test_evaluation_on_two_processes_writes_the_one_process_results(setup, tmp_path):
    _, expert, _, problems = setup
    args = ["eval", "--model", str(expert), "--problems", str(problems), "--max-new-tokens", "12",
            "--batch-size", "2"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    run = launch(*args, "--out", str(tmp_path / "two"))
    assert run.returncode == 0, run.stderr[-2000:]
    one, two = tmp_path / "one", tmp_path / "two"
    assert (two / "results.jsonl").read_bytes() == (one / "results.jsonl").read_bytes()
    assert without_timings(two / "summary.json") == without_timings(one / "summary.json")


@pytest.mark.parametrize("packing", ["on", "off"])
def test_training_on_two_processes_reaches_the_one_process_adapter(setup, one_process_sample, tmp_path, packing):
    records = tmp_path / "records.jsonl"
    # 13 records, global batch 4: the first epoch ends on a batch of one, which
    # accelerate completes with repeated records on the other rank; they must
    # neither train nor count. Step 5 starts the second epoch.
    records.write_text("".join((one_process_sample / "records.jsonl").read_text().splitlines(True)[:13]))
    # Same global batch: 4 x 1 process vs 2 x 2 processes. No dropout: its masks
    # come from each rank's own random stream, so they cannot match.
    args = ["train", "--expert", str(setup[1]), "--records", str(records), "--max-steps", "5",
            "--gradient-accumulation-steps", "1", "--learning-rate", "1e-3", "--save-steps", "100",
            "--logging-steps", "1", "--precision", "fp32", "--lora-dropout", "0", "--packing", packing]
    assert main([*args, "--per-device-batch-size", "4", "--out", str(tmp_path / "one")]) == 0
    run = launch(*args, "--per-device-batch-size", "2", "--out", str(tmp_path / "two"))
    assert run.returncode == 0, run.stderr[-2000:]
    one, two = tmp_path / "one", tmp_path / "two"
    losses = [[json.loads(line)["kl"] for line in (folder / "loss.jsonl").read_text().splitlines()]
              for folder in (one, two)]
    assert len(losses[0]) == len(losses[1]) == 5
    # Tolerance: float32 sums in another order (two half batches, then an all-reduce).
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    weights = [load_file(str(folder / "adapter_model.safetensors")) for folder in (one, two)]
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        torch.testing.assert_close(weights[1][name], weights[0][name], rtol=1e-4, atol=1e-5)
    tuned = [json.loads((folder / "lrkit_train.json").read_text())["result"]["tuned_tokens"] for folder in (one, two)]
    assert tuned[0] == tuned[1] == 4 + 4 + 4 + 1 + 4


def test_a_failing_rank_stops_the_run_with_its_error(setup, tmp_path):
    script = tmp_path / "wrapper.py"
    script.write_text(WRAPPER)
    out = tmp_path / "out"
    started = time.monotonic()
    run = launch(*sample_args(setup, out), script=script, TEST_FAIL_RANK="1")  # a hang: launch's timeout
    print(f"\na failing rank stopped the run in {time.monotonic() - started:.1f} s")
    assert run.returncode != 0
    assert "lrkit sample: error: rank 1: generation broke on this rank" in lrkit_lines(run.stderr)
    assert not (out / "summary.json").exists()
    # rank 0's own batches wait in shards/ for the rerun; nothing was merged half-way
    assert not (out / "records.jsonl").exists()


def test_out_differing_across_ranks_is_one_line(setup, tmp_path):
    script = tmp_path / "wrapper.py"
    script.write_text(WRAPPER)
    run = launch(*sample_args(setup, tmp_path / "out"), script=script, TEST_OUT_PER_RANK="1")
    assert run.returncode != 0
    lines = lrkit_lines(run.stderr)
    assert len(lines) == 1 and "--out differs across processes" in lines[0], run.stderr[-2000:]
    assert not any(tmp_path.glob("out-rank*/*")), "nothing written"


@pytest.mark.slow
def test_more_processes_than_problems_is_one_line(setup, tmp_path):
    root, expert, amateur, _ = setup
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps({"id": "a", "question": "Sam has 2 pens. How many?", "answer": "2"}) + "\n")
    run = launch("sample", "--expert", str(expert), "--amateur", str(amateur), "--problems", str(one),
                 "--out", str(tmp_path / "out"), "--max-new-tokens", "4", "--device", "cpu")
    assert run.returncode != 0
    lines = lrkit_lines(run.stderr)
    assert lines == ["lrkit sample: error: 2 processes for 1 problem(s): launch at most 1 "
                     "(torchrun --nproc-per-node / accelerate --num_processes)"], run.stderr[-2000:]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_cuda_launch_without_cuda_is_one_line(setup, tmp_path):
    args = sample_args(setup, tmp_path / "out")
    args[args.index("--device") + 1] = "cuda"
    run = launch(*args)
    assert run.returncode != 0
    lines = lrkit_lines(run.stderr)
    assert len(lines) == 1 and "CUDA is not available on this machine" in lines[0], run.stderr[-2000:]
    # accelerate's multi-GPU launcher (its choice for --num_processes 2 without --cpu) on
    # this machine, device left to lrkit: the same kind of line
    accelerate = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                  "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                  "--main_process_port", "0", "-m", "lrkit", *sample_args(setup, tmp_path / "out2")[:-2]]
    run = subprocess.run(accelerate, env=_env(), cwd=REPO, capture_output=True, text=True, timeout=240)
    assert run.returncode != 0
    lines = lrkit_lines(run.stderr)
    assert len(lines) == 1 and "has no CUDA" in lines[0], run.stderr[-2000:]
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()


@pytest.mark.slow
def test_killing_a_rank_then_rerunning_resumes_without_loss_or_duplicates(tmp_path):
    # A larger expert and many one-problem batches, so the kill lands mid-run.
    tokenizer = make_tokenizer()
    for role, seed, layers, hidden in (("expert", 1, 4, 192), ("amateur", 2, 1, 32)):
        model = make_model(tokenizer, seed, hidden=hidden, layers=layers, eos_boost=0.0)
        model.save_pretrained(tmp_path / role)
        tokenizer.save_pretrained(tmp_path / role)
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps({"id": f"k{i}", "question": f"Ann has {i} cats and {i + 1} dogs?"})
                                + "\n" for i in range(40)))
    args = ["sample", "--expert", str(tmp_path / "expert"), "--amateur", str(tmp_path / "amateur"),
            "--problems", str(problems), "--max-new-tokens", "40", "--beta", "0.5", "--batch-size", "1",
            "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0

    killed = tmp_path / "killed"
    proc = subprocess.Popen([*TORCHRUN, "-m", "lrkit", *args, "--out", str(killed)], env=_env(), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline and len(list((killed / "shards").glob("batch-*.json"))) < 4:
        time.sleep(0.01)
    # Every rank at once, mid-run. torchrun may start its ranks in process groups
    # of their own, so they are killed by pid: a rank left running would go on
    # writing the folder (and hold its lock, so the rerun below would be refused).
    ranks = _descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)
    for pid in ranks:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()
    # The folder's lock is free once the last of them has exited.
    from filelock import FileLock, Timeout

    lock, free = FileLock(str(killed / ".lrkit.lock")), time.time() + 60
    while True:
        try:
            lock.acquire(timeout=0)
            lock.release()
            break
        except Timeout:
            assert time.time() < free, "a killed rank still holds the folder after 60 s"
            time.sleep(0.05)
    assert not (killed / "summary.json").exists(), "the kill must land in the middle of the run"
    assert len(list((killed / "shards").glob("batch-*.json"))) >= 4

    rerun = launch(*args, "--out", str(killed))
    assert rerun.returncode == 0, "\n".join(lrkit_lines(rerun.stderr)) + "\n" + rerun.stderr[-1500:]
    for name in OUTPUTS:
        assert (killed / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
    assert not (killed / "shards").exists()


def test_accelerate_launch_runs_the_same_command(setup, one_process_sample, tmp_path):
    # On a machine without GPUs accelerate's --cpu launcher starts one process
    # (several CPU processes are torchrun's, or accelerate's MPI launcher's).
    out = tmp_path / "acc"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "lrkit", *sample_args(setup, out)]
    run = subprocess.run(command, env=_env(), cwd=REPO, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (one_process_sample / name).read_bytes(), name


@pytest.mark.slow
def test_a_rank_failing_inside_ddp_training_ends_the_run(setup, one_process_sample, tmp_path):
    # Mid-step, outside any lrkit section: the rank exits with its traceback and
    # torchrun stops the other one, which would otherwise wait in the all-reduce.
    script = tmp_path / "wrapper.py"
    script.write_text(WRAPPER)
    started = time.monotonic()
    run = launch("train", "--expert", str(setup[1]), "--records", str(one_process_sample / "records.jsonl"),
                 "--out", str(tmp_path / "lora"), "--max-steps", "2", "--per-device-batch-size", "2",
                 script=script, TEST_FAIL_TRAINING_RANK="1")  # a hang: launch's timeout
    print(f"\na rank failing in DDP training stopped the run in {time.monotonic() - started:.1f} s")
    assert run.returncode != 0
    assert "RuntimeError: the loss broke on this rank" in run.stderr
    assert not (tmp_path / "lora" / "adapter_model.safetensors").exists()


@pytest.mark.slow
@pytest.mark.parametrize("packing", ["on", "off"])
def test_resumed_ddp_training_counts_each_record_once(setup, one_process_sample, tmp_path, packing):
    records = tmp_path / "records.jsonl"
    records.write_text("".join((one_process_sample / "records.jsonl").read_text().splitlines(True)[:13]))
    args = ["train", "--expert", str(setup[1]), "--records", str(records), "--gradient-accumulation-steps", "1",
            "--save-steps", "2", "--logging-steps", "1", "--precision", "fp32", "--lora-dropout", "0",
            "--per-device-batch-size", "2", "--packing", packing, "--out", str(tmp_path / "lora")]
    first = launch(*args, "--max-steps", "2")
    assert first.returncode == 0, first.stderr[-2000:]
    # The resumed run skips the batches done; its epoch still ends on one record
    # (13 = 4 + 4 + 4 + 1) that accelerate pads with repeats, which must not count.
    resumed = launch(*args, "--max-steps", "5", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    result = json.loads((tmp_path / "lora" / "lrkit_train.json").read_text())["result"]
    assert result["steps"] == 5
    assert result["tuned_tokens"] == 4 + 4 + 4 + 1 + 4
