"""Decoding speed of a real model on this CPU by batch size and dtype: what makes evaluation cheapest.

    python perf/bench_decode_batch.py --dtype bf16 --batches 8 16 32 64
    python perf/bench_decode_batch.py --dtype fp32 --batches 1 8 16 32

Loads the expert of ``--pair`` (default qwen2.5-coder-offline, prepared with ``lrkit pair
prepare``), builds the evaluation prompts of the first GSM8K train problems, and times, per
batch size, the prefill (one new token) and ``--steps`` further greedy decoding steps with
lrkit's own ``greedy_generate_batch``. Prints one JSON line per batch size: prefill seconds,
seconds per decoding step, and milliseconds per row and step (the cost of one answer token
when every row is still generating). Run it with nothing else on the machine.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    import torch

    from lrkit.config import PAPER_EVAL_SYSTEM_PROMPT
    from lrkit.data.problems import load_problems
    from lrkit.models.generation import greedy_generate_batch
    from lrkit.models.loading import load_model
    from lrkit.models.pairs import resolve_pair
    from lrkit.models.prompts import build_prompt_ids

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pair", default="qwen2.5-coder-offline")
    parser.add_argument("--dtype", default="bf16")
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--steps", type=int, default=48)
    parser.add_argument("--problems", default=str(REPO.parent / "shared" / "data" / "gsm8k" / "train.jsonl"))
    args = parser.parse_args(argv)
    model, tokenizer = load_model(resolve_pair(args.pair)[0], device="cpu", dtype=args.dtype)
    problems = load_problems(args.problems, max_problems=max(args.batches))
    prompts = [build_prompt_ids(tokenizer, p.question, PAPER_EVAL_SYSTEM_PROMPT) for p in problems]
    greedy_generate_batch(model, tokenizer, prompts[:2], 2)  # warm-up
    for size in args.batches:
        batch = prompts[:size]
        start = time.perf_counter()
        greedy_generate_batch(model, tokenizer, batch, 1)
        prefill = time.perf_counter() - start
        start = time.perf_counter()
        greedy_generate_batch(model, tokenizer, batch, args.steps + 1)
        step = (time.perf_counter() - start - prefill) / args.steps
        print(json.dumps({"dtype": args.dtype, "threads": torch.get_num_threads(), "batch": size,
                          "prefill_s": round(prefill, 2), "per_step_s": round(step, 4),
                          "per_row_step_ms": round(1000 * step / size, 2)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
