"""Throughput of every stage on a real pair on this CPU, beside the HF generate floor.

    python perf/bench_real_pair.py --run RUN_FOLDER --out perf/results/real_throughput.json

Each part runs in a fresh process (so its peak memory, VmHWM, is its own), one after
the other, with the threads of this process (set OMP_NUM_THREADS; run nothing else
beside it):

* ``rollouts``: ``lrkit``'s greedy rollouts (``greedy_generate_batch``, 128 new tokens, one
  batch of ``--batch-size`` train problems) against plain ``model.generate`` on the same
  left-padded batch: the floor; generated tokens per second of each, and their ratio;
* ``scoring``: the teacher-forced passes of both models over those rollouts
  (``lrkit.stages.sampling.score_rollouts``: KL, masks, soft labels), scored tokens per second;
* ``training``: ``--train-steps`` packed LoRA steps on the run's records (batch 8 x 2),
  seconds per optimizer step and records per second;
* ``evaluation``: ``lrkit.evaluate`` of one batch of ``--eval-batch-size`` test problems
  at 512 new tokens against plain ``generate`` on the same batch.

The pair, dtype and problems are the run folder's (experiment.json).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def experiment_of(run: Path):
    from lrkit.config import ExperimentConfig
    from lrkit.experiment import Experiment

    stored = json.loads((run / "experiment.json").read_text())
    config = ExperimentConfig.for_pair(stored["pair"])
    keys = ("train_problems", "test_problems", "problem_seed", "check_problems", "problems", "dtype")
    config = ExperimentConfig(**{**config.__dict__, **{k: stored[k] for k in keys}})
    return Experiment(run, config, device="cpu", progress=False)


def plain_generate(model, tokenizer, prompts, max_new_tokens):
    import torch
    from transformers import GenerationConfig

    from lrkit.models.generation import left_pad, pad_token_id, stop_token_ids

    stop_ids = stop_token_ids(model, tokenizer)
    pad_id = pad_token_id(tokenizer, stop_ids)
    config = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=max_new_tokens, eos_token_id=stop_ids,
                              pad_token_id=pad_id, temperature=None, top_p=None, top_k=None)
    ids, mask = left_pad(prompts, pad_id, model.device)
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
    return out[:, ids.shape[1]:]


def generated_tokens(rows, stop_ids) -> int:
    from lrkit.models.generation import cut_at_stop

    return sum(len(cut_at_stop(row.tolist(), stop_ids).token_ids) for row in rows)


def part_rollouts(args) -> dict:
    from lrkit.models.generation import greedy_generate_batch, stop_token_ids
    from lrkit.models.prompts import build_prompt_ids
    from lrkit.stages.sampling import Rollout, score_rollouts

    ex = experiment_of(args.run)
    pair, config = ex.pair, ex.config.sample
    problems = ex.train_set()[:args.batch_size]
    prompts = [build_prompt_ids(pair.tokenizer, p["question"], config.system_prompt) for p in problems]
    stop_ids = stop_token_ids(pair.expert, pair.tokenizer)
    greedy_generate_batch(pair.expert, pair.tokenizer, prompts[:2], 2, stop_ids)  # warm-up
    start = time.perf_counter()
    rows = plain_generate(pair.expert, pair.tokenizer, prompts, config.max_new_tokens)
    floor_s = time.perf_counter() - start
    start = time.perf_counter()
    gens = greedy_generate_batch(pair.expert, pair.tokenizer, prompts, config.max_new_tokens, stop_ids)
    lrkit_s = time.perf_counter() - start
    tokens = sum(len(g.token_ids) for g in gens)
    assert tokens == generated_tokens(rows, stop_ids), "lrkit and plain generate must decode the same tokens"
    from lrkit.data.answers import Problem

    rollouts = [Rollout(Problem(str(p["id"]), p["question"], p.get("answer")), ids, g.token_ids, g.finished)
                for p, ids, g in zip(problems, prompts, gens)]
    start = time.perf_counter()
    score_rollouts(pair, rollouts, config)
    scoring_s = time.perf_counter() - start
    return {"problems": len(prompts), "generated_tokens": tokens,
            "rollouts_plain_generate_s": floor_s, "rollouts_lrkit_s": lrkit_s, "ratio": lrkit_s / floor_s,
            "rollout_tokens_per_s": tokens / lrkit_s, "floor_tokens_per_s": tokens / floor_s,
            "scoring_s": scoring_s, "scored_tokens_per_s": tokens / scoring_s}


def part_training(args) -> dict:
    import tempfile
    from dataclasses import replace

    from lrkit.stages.training import train

    ex = experiment_of(args.run)
    config = replace(ex.train_config(), max_steps=args.train_steps, save_steps=10_000, report_to="none",
                     logging_steps=1)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        result = train(ex.expert_path, ex.sampling_dir() / "records.jsonl", Path(folder) / "run", config,
                       progress=False)
        seconds = time.perf_counter() - start
    records = args.train_steps * config.per_device_batch_size * config.gradient_accumulation_steps
    return {"steps": result.steps, "seconds_with_loading": seconds, "train_seconds": result.seconds,
            "seconds_per_step": result.seconds / result.steps, "records_per_s": records / result.seconds,
            "precision": config.precision, "tuned_tokens": result.tuned_tokens}


def part_evaluation(args) -> dict:
    from lrkit.evaluation import evaluate
    from lrkit.models.generation import stop_token_ids
    from lrkit.models.prompts import build_prompt_ids

    ex = experiment_of(args.run)
    pair, config = ex.pair, ex.config.eval
    problems = ex.test_set()[:args.eval_batch_size]
    prompts = [build_prompt_ids(pair.tokenizer, p["question"], config.system_prompt) for p in problems]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    from dataclasses import replace

    stop_ids = stop_token_ids(pair.expert, pair.tokenizer)

    made = {}  # what the last timed run of each side produced

    def floor() -> float:
        start = time.perf_counter()
        rows = plain_generate(pair.expert, pair.tokenizer, [prompts[i] for i in order], config.max_new_tokens)
        seconds = time.perf_counter() - start
        made["floor_tokens"] = generated_tokens(rows, stop_ids)
        return seconds

    def lrkit() -> float:
        start = time.perf_counter()
        made["result"] = evaluate(pair.expert, problems, replace(config, batch_size=len(problems)),
                                  tokenizer=pair.tokenizer, progress=False)
        return time.perf_counter() - start

    # ABBA order (floor, lrkit, lrkit, floor, ...): a drift of the machine over the run
    # falls on both sides alike; one repeat is the plain A-B order.
    floor_s, lrkit_s = [], []
    for i in range(args.eval_repeats):
        first, second = ((floor, floor_s), (lrkit, lrkit_s)) if i % 2 == 0 else ((lrkit, lrkit_s), (floor, floor_s))
        for run, times in (first, second):
            times.append(run())
    result = made["result"]
    tokens = int(result.df["n_tokens"].sum())
    assert tokens == made["floor_tokens"], "lrkit and plain generate must decode the same tokens"
    mean_floor, mean_lrkit = sum(floor_s) / len(floor_s), sum(lrkit_s) / len(lrkit_s)
    return {"problems": len(problems), "generated_tokens": tokens, "hit_limit": result.n_hit_limit,
            "plain_generate_s": mean_floor, "lrkit_evaluate_s": mean_lrkit, "ratio": mean_lrkit / mean_floor,
            "plain_generate_runs_s": floor_s, "lrkit_evaluate_runs_s": lrkit_s, "order": "ABBA (floor first)",
            "tokens_per_s": tokens / mean_lrkit, "floor_tokens_per_s": tokens / mean_floor,
            "seconds_per_problem": mean_lrkit / len(problems)}


PARTS = {"rollouts": part_rollouts, "training": part_training, "evaluation": part_evaluation}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="an lrkit experiment folder (sampled)")
    parser.add_argument("--out", type=Path, default=Path("perf/results/real_throughput.json"))
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS))
    parser.add_argument("--batch-size", type=int, default=16, help="rollout batch (default 16)")
    parser.add_argument("--train-steps", type=int, default=4)
    parser.add_argument("--eval-batch-size", type=int, default=32)
    parser.add_argument("--eval-repeats", type=int, default=2,
                        help="timed runs of each side, in ABBA order (default 2)")
    parser.add_argument("--part", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.part:  # a child: one part, its peak memory, one JSON line
        import torch

        result = PARTS[args.part](args)
        print(json.dumps({**result, "peak_rss_mib": peak_rss_mib(), "threads": torch.get_num_threads()}))
        return 0
    results = {}
    for part in args.parts:
        command = [sys.executable, __file__, "--run", str(args.run), "--part", part, "--batch-size",
                   str(args.batch_size), "--train-steps", str(args.train_steps), "--eval-batch-size",
                   str(args.eval_batch_size), "--eval-repeats", str(args.eval_repeats)]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
        if done.returncode != 0:
            raise SystemExit(f"{part} failed:\n{done.stderr[-3000:]}")
        results[part] = {**json.loads(done.stdout.strip().splitlines()[-1]),
                         "wall_s_with_loading": time.perf_counter() - start}
        print(part, json.dumps(results[part]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # --parts names a subset: the other parts already in --out stay
    stored = json.loads(args.out.read_text()).get("parts", {}) if args.out.is_file() else {}
    args.out.write_text(json.dumps({"run": str(args.run), "parts": {**stored, **results}}, indent=2) + "\n")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
