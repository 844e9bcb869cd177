"""How fast the explorer answers a control change on 1,000 problems x 128 steps.

    python perf/bench_explorer.py [--problems 1000] [--steps 128] [--repeats 15]

Builds synthetic step statistics with the docs/ARCHITECTURE.md schema (the test
suite's helper), then times setting each control from Python: the observer runs
synchronously, so the time covers every recomputation (selection over all steps,
record and soft-label counts, the chosen step's soft label) and re-rendering the
token view's HTML. Browser drawing is not included. Target: < 200 ms.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synthetic_steps import make_steps  # noqa: E402

from lrkit.viz import Explorer  # noqa: E402


def timed(widget, values):
    times = []
    for value in values:
        start = time.perf_counter()
        widget.value = value
        times.append(1000 * (time.perf_counter() - start))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    start = time.perf_counter()
    steps = make_steps(args.problems, args.steps, top_k=20, eos_every=0, seed=0).steps
    built = time.perf_counter() - start
    start = time.perf_counter()
    explorer = Explorer(steps)
    setup = time.perf_counter() - start
    print(f"{len(steps):,} steps ({args.problems} problems x {args.steps}), top-k 20; "
          f"synthetic data {built:.1f} s, explorer set-up {setup:.2f} s")

    n = args.repeats
    betas = [0.2 + 0.1 * (i % 12) for i in range(n)]
    alphas = [0.05 + 0.07 * (i % 13) for i in range(n)]
    ids = list(explorer.problem.options)
    problems = [ids[(i * 137) % len(ids)] for i in range(n)]
    chosen = [(i * 17) % args.steps for i in range(n)]
    results = {
        "beta": timed(explorer.beta, betas),
        "alpha": timed(explorer.alpha, alphas),
        "problem": timed(explorer.problem, problems),
        "step": timed(explorer.step, chosen),
    }
    worst = 0.0
    for name, times in results.items():
        median = statistics.median(times)
        worst = max(worst, median)
        print(f"{name:>8} slider change: median {median:6.1f} ms, max {max(times):6.1f} ms "
              f"({len(times)} changes)")
    verdict = "meets" if worst < 200 else "misses"
    print(f"slowest median {worst:.1f} ms: {verdict} the 200 ms target")


if __name__ == "__main__":
    main()
