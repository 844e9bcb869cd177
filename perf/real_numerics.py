"""fp16 and bf16 against fp32 on a real pair: can a T4 (fp16 only) run the method?

    python perf/real_numerics.py --rollouts RUN/sampling-beta0.4-alpha0.2/rollouts.jsonl --n 16 \
        --out perf/results/real_numerics.json

For the first ``--n`` rollouts of a sampling run (the expert's own greedy rollouts,
prompt and generated ids as stored), both models of the pair read prompt + rollout
in one teacher-forced pass per dtype. Per dtype it records:

* the largest |activation| of the residual stream after each decoder layer (fp16
  overflows past 65,504), and of the logits;
* how many logits are NaN or inf;
* against fp32: top-1 agreement of each model, KL(pi_fp32 || pi_dtype) of each model,
  and, for the method itself, KL(E || A) per step (mean absolute difference) and the
  set of steps kept at beta 0.4 (step 0 skipped, KL >= beta): how many, and how many
  of fp32's kept steps each dtype keeps too (and the reverse).

Every pass runs on the CPU (fp16 is emulated there: the numbers are the point, not the
speed). Output: JSON with one entry per dtype and a printed table.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from lrkit.maths.divergence import kl_divergence
from lrkit.models.loading import decoder_and_head, load_pair

FP16_MAX = 65504.0


def read_rollouts(path: Path, n: int) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows[:n]


def residual_maxima(model) -> tuple[list[float], list]:
    """Hooks recording max |output| of each decoder layer; (maxima, handles)."""
    decoder, _ = decoder_and_head(model)
    maxima = [0.0] * len(decoder.layers)
    handles = []
    for index, layer in enumerate(decoder.layers):
        def hook(module, inputs, output, index=index):
            hidden = output[0] if isinstance(output, tuple) else output
            value = float(hidden.detach().float().abs().max())
            maxima[index] = max(maxima[index], value) if value == value else float("nan")
        handles.append(layer.register_forward_hook(hook))
    return maxima, handles


@torch.inference_mode()
def passes(pair, rollouts: list[dict]) -> dict:
    """Per rollout: float32 log-probs of both models at every generated step; layer maxima."""
    maxima = {}
    handles = []
    for role, model in (("expert", pair.expert), ("amateur", pair.amateur)):
        maxima[role], h = residual_maxima(model)
        handles += h
    out = {"expert": [], "amateur": [], "logit_max": {"expert": 0.0, "amateur": 0.0},
           "non_finite": {"expert": 0, "amateur": 0}}
    try:
        for rollout in rollouts:
            prompt, generated = rollout["prompt_token_ids"], rollout["token_ids"]
            ids = torch.tensor([prompt + generated[:-1]], device=pair.device)
            first = len(prompt) - 1
            for role, model in (("expert", pair.expert), ("amateur", pair.amateur)):
                logits = model(input_ids=ids, use_cache=False).logits[0, first:first + len(generated)]
                logits = logits[:, :pair.vocab_size].float()
                finite = torch.isfinite(logits)
                out["non_finite"][role] += int((~finite).sum())
                out["logit_max"][role] = max(out["logit_max"][role], float(logits[finite].abs().max()))
                out[role].append(torch.log_softmax(torch.where(finite, logits, torch.zeros_like(logits)), -1))
    finally:
        for h in handles:
            h.remove()
    out["layer_max"] = maxima
    return out


def compare(reference: dict, other: dict, beta: float) -> dict:
    top1 = {"expert": [0, 0], "amateur": [0, 0]}
    kl_to_ref = {"expert": [], "amateur": []}
    kl_ea_diff, kept_ref, kept_other, both = [], 0, 0, 0
    for r in range(len(reference["expert"])):
        for role in ("expert", "amateur"):
            a, b = reference[role][r], other[role][r]
            top1[role][0] += int((a.argmax(-1) == b.argmax(-1)).sum())
            top1[role][1] += a.shape[0]
            kl_to_ref[role].append(kl_divergence(a, b))
        kl_a = kl_divergence(reference["expert"][r], reference["amateur"][r])
        kl_b = kl_divergence(other["expert"][r], other["amateur"][r])
        kl_ea_diff.append((kl_a - kl_b).abs())
        steps = torch.arange(kl_a.shape[0])
        keep_a, keep_b = (kl_a >= beta) & (steps > 0), (kl_b >= beta) & (steps > 0)
        kept_ref += int(keep_a.sum())
        kept_other += int(keep_b.sum())
        both += int((keep_a & keep_b).sum())
    kl = {role: torch.cat(values) for role, values in kl_to_ref.items()}
    diff = torch.cat(kl_ea_diff)
    return {
        "top1_agreement": {role: n / max(total, 1) for role, (n, total) in top1.items()},
        "mean_kl_from_fp32": {role: float(v.mean()) for role, v in kl.items()},
        "max_kl_from_fp32": {role: float(v.max()) for role, v in kl.items()},
        "kl_expert_amateur_mean_abs_diff": float(diff.mean()),
        "kl_expert_amateur_max_abs_diff": float(diff.max()),
        "kept_fp32": kept_ref, "kept": kept_other, "kept_by_both": both,
        "share_of_fp32_kept_also_kept": both / max(kept_ref, 1),
        "share_of_kept_also_kept_in_fp32": both / max(kept_other, 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pair", default="qwen2.5-coder-offline")
    parser.add_argument("--rollouts", required=True, type=Path, help="a sampling run's rollouts.jsonl")
    parser.add_argument("--n", type=int, default=16, help="rollouts read (default 16)")
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16", "fp16"])
    parser.add_argument("--beta", type=float, default=0.4)
    parser.add_argument("--out", type=Path, default=Path("perf/results/real_numerics.json"))
    args = parser.parse_args(argv)
    rollouts = read_rollouts(args.rollouts, args.n)
    results, reference = {}, None
    for dtype in args.dtypes:
        started = time.perf_counter()
        pair = load_pair(args.pair, device="cpu", dtype=dtype)
        measured = passes(pair, rollouts)
        del pair
        entry = {"seconds": round(time.perf_counter() - started, 1),
                 "layer_max_abs": {role: [round(v, 1) for v in values] for role, values in measured["layer_max"].items()},
                 "largest_activation": {role: max(values) for role, values in measured["layer_max"].items()},
                 "fp16_headroom": {role: FP16_MAX / max(values) for role, values in measured["layer_max"].items()},
                 "logit_max_abs": measured["logit_max"], "non_finite_logits": measured["non_finite"]}
        if reference is None:
            reference = measured
            entry["reference"] = True
        else:
            entry.update(compare(reference, measured, args.beta))
        results[dtype] = entry
        print(json.dumps({dtype: {k: v for k, v in entry.items() if k != "layer_max_abs"}}), flush=True)
    steps = sum(len(r["token_ids"]) for r in rollouts)
    report = {"pair": args.pair, "rollouts": str(args.rollouts), "n_rollouts": len(rollouts), "steps": steps,
              "beta": args.beta, "threads": torch.get_num_threads(), "torch": torch.__version__, "dtypes": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
