"""Evaluation throughput: ``lrkit.evaluate`` against plain ``generate`` on the same batches.

    python perf/bench_eval.py                 # the toy expert, 500 toy test problems
    python perf/bench_eval.py --problems 20   # a quick smoke run

Both sides get the same prompts in the same length-sorted batches of
``--batch-size`` (what ``evaluate`` builds), the same left padding and greedy
decoding. The plain side calls ``model.generate`` and decodes, nothing else;
``evaluate`` also cuts at the stop ids, extracts and checks every answer and
keeps the per-problem table. Their ratio is what lrkit's evaluation costs over
the bare generation loop. Prints problems per second of each and the ratio, and
checks that both decoded the same text.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from transformers import GenerationConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lrkit.config import EvalConfig  # noqa: E402
from lrkit.evaluation import evaluate  # noqa: E402
from lrkit.models.generation import left_pad, pad_token_id, stop_token_ids  # noqa: E402
from lrkit.models.loading import load_model  # noqa: E402
from lrkit.models.prompts import build_prompt_ids  # noqa: E402
from lrkit.toy import toy_problems  # noqa: E402


@torch.inference_mode()
def plain_generate(model, tokenizer, batches, max_new_tokens: int) -> list[str]:
    stop_ids = stop_token_ids(model, tokenizer)
    pad_id = pad_token_id(tokenizer, stop_ids)
    config = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
                              eos_token_id=stop_ids, pad_token_id=pad_id,
                              temperature=None, top_p=None, top_k=None)
    texts = []
    for batch in batches:
        ids, mask = left_pad(batch, pad_id, model.device)
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        texts.extend(tokenizer.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True))
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="toy:expert")
    parser.add_argument("--problems", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=100, help="the demo's evaluation batch size")
    parser.add_argument("--max-new-tokens", type=int, default=160, help="the demo's evaluation length")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    model, tokenizer = load_model(args.model, device=args.device)
    problems = toy_problems("toy", args.problems, "test")
    config = EvalConfig(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    prompts = [build_prompt_ids(tokenizer, p["question"], config.system_prompt) for p in problems]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # as evaluate() batches them
    batches = [[prompts[i] for i in order[k:k + args.batch_size]] for k in range(0, len(order), args.batch_size)]

    plain_generate(model, tokenizer, batches[:1], 4)  # warm-up, outside both timings
    start = time.perf_counter()
    texts = plain_generate(model, tokenizer, batches, args.max_new_tokens)
    plain_s = time.perf_counter() - start
    start = time.perf_counter()
    result = evaluate(model, problems, config, tokenizer=tokenizer, progress=False)
    lrkit_s = time.perf_counter() - start

    by_id = dict(zip(result.df["id"], result.df["output"]))
    same = sum(by_id[problems[i]["id"]] == text for i, text in zip(order, texts))
    n = len(problems)
    print(f"{args.model}, {n} problems, batch {args.batch_size}, {args.max_new_tokens} new tokens, "
          f"device {model.device}, {torch.get_num_threads()} threads")
    print(f"  plain generate:  {plain_s:8.2f} s  {n / plain_s:8.2f} problems/s")
    print(f"  lrkit evaluate:  {lrkit_s:8.2f} s  {n / lrkit_s:8.2f} problems/s  (accuracy {result.accuracy:.1%})")
    print(f"  ratio (lrkit / plain throughput): {plain_s / lrkit_s:.3f}; same text for {same}/{n} problems")


if __name__ == "__main__":
    main()
