"""Time the workshop: run the five notebooks in order with papermill, as a room runs them.

    nice -n 19 env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python perf/time_workshop.py

Each notebook runs with its own parameters cell (the workshop's sizes: the bundled `toy`
pair, 48 problems, 30 LoRA steps, 150 test problems, ablations and SFT on), in its own
papermill process, all sharing one run folder (``$LRKIT_RUN_DIR``, a temporary folder
unless ``--run-dir``), so later notebooks read what earlier ones wrote, as in a room.
Writes ``perf/results/workshop_timings.json``: per notebook the wall time, the kernel's
peak RSS, the slowest cells (papermill's per-cell durations) and whether any cell
failed; the run folder's size; the machine, its load and the thread count; and a
projection, from ``perf/results/colab_flops.json``, of the paper's pair at the
workshop's sizes on a Colab T4 (a projection under that file's assumptions, not a
measurement).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = ("01_sampling", "02_critical_moments", "03_finetuning", "04_evaluation", "05_choosing_a_pair")
RESULTS = REPO / "perf" / "results" / "workshop_timings.json"

CHILD = r"""
import json, resource, sys, time
import papermill
source, target, cwd, parameters = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
start = time.perf_counter()
error = None
try:
    papermill.execute_notebook(source, target, parameters=parameters, kernel_name="python3", cwd=cwd,
                               progress_bar=False, execution_timeout=1800)
except papermill.PapermillExecutionError as err:
    error = f"cell {err.cell_index}: {err.ename}: {err.evalue}"
seconds = time.perf_counter() - start
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss   # the kernel, once it has exited
print(json.dumps({"seconds": seconds, "kernel_peak_rss_mib": round(peak_kib / 1024), "error": error}))
"""


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def slowest_cells(executed: Path, n: int = 4) -> list:
    nb = json.loads(executed.read_text())
    cells = []
    for index, cell in enumerate(nb["cells"]):
        duration = cell.get("metadata", {}).get("papermill", {}).get("duration")
        if cell["cell_type"] == "code" and duration is not None:
            source = "".join(cell["source"]).strip().splitlines()
            first = next((line for line in source if line and not line.startswith("#")), source[0] if source else "")
            cells.append({"cell": index, "seconds": round(duration, 1), "code": first[:90]})
    return sorted(cells, key=lambda c: -c["seconds"])[:n]


def check_statuses(executed: Path) -> list:
    """What each exercise's check cell said (its text/plain output; the committed notebooks run
    their solution cells, so this is whether the teacher's predictions held)."""
    nb = json.loads(executed.read_text())
    said = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            text = "".join(out.get("data", {}).get("text/plain", []))
            if text.startswith("Exercise "):
                said.append(text)
    return said


def t4_projection(flops_file: Path, gpu: str = "T4", n_problems: int = 48, max_steps: int = 30,
                  n_eval: int = 150) -> dict:
    """Hours of GPU work for the paper's pair at the workshop's sizes, with colab_flops.json's
    measured FLOPs and assumptions (35% of peak for passes; decoding bound by reading the
    weights at 50% of bandwidth; every generation to its cap). Downloads and start-up excluded."""
    data = json.loads(flops_file.read_text())
    flops, params, a = data["measured_flops"], data["parameters"], data["assumptions"]
    spec = a["gpus"][gpu]
    prompt, sample_new, eval_new = a["prompt_tokens"], a["sample_new_tokens"], a["eval_new_tokens"]
    per_token = {r: flops[f"{r}_forward_256"] / 256 for r in ("expert", "amateur")}
    pair_token = per_token["expert"] + per_token["amateur"]
    lora_record = flops["expert_lora_step_256"] * 230 / 256
    sampling = n_problems * (prompt + sample_new) * pair_token
    table1 = 2 * 7 * n_eval   # two models on the seven benchmarks, each cut at N_EVAL
    work = {
        "01_sampling": {"flops": sampling, "decode": n_problems * sample_new / 8, "contrastive": 0},
        "02_critical_moments": {"flops": 0, "decode": 0, "contrastive": 0},
        "03_finetuning": {"flops": max_steps * 16 * lora_record, "decode": 0, "contrastive": 0},
        # three ablations trained, a beta-0 sampling, SFT (one epoch on ~60% right rollouts of ~300
        # tokens, forward and backward ~3 forwards), the gold-path check on 200 gold solutions of ~300
        # tokens; six evaluations of N_EVAL, the SFT rollouts, Table 1; decoding by v_C on N_EVAL.
        "04_evaluation": {"flops": 3 * max_steps * 16 * lora_record + sampling
                          + 0.6 * n_problems * 3 * flops["expert_forward_640"] * 300 / 640 + 200 * 300 * pair_token,
                          "decode": (6 * n_eval + n_problems + table1) * eval_new / 16 + n_problems * sample_new / 8,
                          "contrastive": n_eval * eval_new / 16},
    }
    weights = 2  # bytes per parameter in fp16
    step = params["expert"] * weights / (spec["bandwidth"] * a["decode_efficiency"])
    pair_step = (params["expert"] + params["amateur"]) * weights / (spec["bandwidth"] * a["decode_efficiency"])
    minutes = {name: round((w["flops"] / (spec["peak"] * a["utilization"]) + w["decode"] * step
                            + w["contrastive"] * pair_step) / 60, 1) for name, w in work.items()}
    return {"gpu": gpu, "pair": "qwen2.5-math-1.5b", "sizes": {"N_PROBLEMS": n_problems, "MAX_STEPS": max_steps,
                                                              "N_EVAL": n_eval},
            "minutes": minutes, "source": str(flops_file.relative_to(REPO)),
            "excluded": "downloads (about 4 GB of weights), model loading, the Hub's benchmarks, Python start-up"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--run-dir", default=None, help="shared run folder (default: a new temporary one)")
    parser.add_argument("--notebooks", nargs="+", default=list(NOTEBOOKS))
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="a papermill parameter for every notebook (VALUE read as JSON)")
    args = parser.parse_args(argv)
    parameters = {name: json.loads(value) for name, value in args.parameter}
    run_dir = Path(args.run_dir or tempfile.mkdtemp(prefix="lrkit-workshop-"))
    work = Path(tempfile.mkdtemp(prefix="lrkit-workshop-executed-"))
    env = {**os.environ, "LRKIT_RUN_DIR": str(run_dir),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    load_before = os.getloadavg()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    rows = {}
    for name in args.notebooks:
        executed = work / f"{name}.ipynb"
        proc = subprocess.run([sys.executable, "-c", CHILD, str(REPO / "notebooks" / f"{name}.ipynb"), str(executed),
                               str(work), json.dumps(parameters)], env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            return 1
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row["seconds"] = round(row["seconds"], 1)
        row["slowest_cells"] = slowest_cells(executed) if executed.exists() else []
        row["checks"] = check_statuses(executed) if executed.exists() else []
        rows[name] = row
        print(f"{name}: {row['seconds']:.1f} s, kernel peak {row['kernel_peak_rss_mib']} MiB"
              + (f", ERROR {row['error']}" if row["error"] else ""), flush=True)
    import torch

    result = {
        "command": "nice -n 19 env OMP_NUM_THREADS={} MKL_NUM_THREADS={} python perf/time_workshop.py{}".format(
            os.environ.get("OMP_NUM_THREADS", "unset"), os.environ.get("MKL_NUM_THREADS", "unset"),
            "".join(f" -p {k} {json.dumps(v)}" for k, v in parameters.items())),
        "started": started, "parameters": parameters or "each notebook's own parameters cell",
        "notebooks": rows, "total_seconds": round(sum(r["seconds"] for r in rows.values()), 1),
        "run_folder_mib": round(folder_bytes(run_dir) / 2 ** 20, 1),
        "machine": {"cpus": os.cpu_count(), "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()], "niceness": os.nice(0),
                    "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "platform": platform.platform(),
                    "python": platform.python_version(), "torch": torch.__version__},
        "projection_paper_pair_t4": t4_projection(REPO / "perf" / "results" / "colab_flops.json"),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"total {result['total_seconds']:.0f} s; run folder {result['run_folder_mib']} MiB; written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
