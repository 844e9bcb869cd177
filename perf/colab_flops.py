"""FLOP counts of the paper's pair at its real sizes, measured with
torch.utils.flop_counter on the meta device (no weights, no memory), and the
Colab cost they project to (README, "On Colab").

    python perf/colab_flops.py [--out perf/results/colab_flops.json]

Measured: FLOPs of one forward pass of each model over a sequence of L tokens,
and of one forward + backward pass of the expert with LoRA (r 8, the paper's
target modules) over the same sequence. Everything after that is arithmetic on
stated assumptions (token counts of the notebooks' paper settings; peak throughput
and utilization of each GPU; decoding bound by reading the weights once per step),
so the times are projections, not measurements.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
CONFIGS = REPO / "tests" / "fixtures" / "qwen2.5"

GPUS = {  # dense half-precision tensor peak (FLOP/s), memory bandwidth (B/s), dtype (lrkit's choice)
    "T4": {"peak": 65e12, "bandwidth": 320e9, "dtype": "fp16"},
    "A100-40GB": {"peak": 312e12, "bandwidth": 1555e9, "dtype": "bf16"},
}
UTILIZATION = 0.35
"""Assumed share of peak reached by teacher-forced passes and training (HF eager attention)."""
DECODE_EFFICIENCY = 0.5
"""Assumed share of memory bandwidth reached while decoding (one read of the weights per step)."""


def model(name: str):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = json.loads((CONFIGS / f"{name}.config.json").read_text())
    config = {k: v for k, v in config.items() if k != "torch_dtype"}
    with torch.device("meta"):
        return Qwen2ForCausalLM(Qwen2Config(**config, attn_implementation="eager"))


def forward_flops(net, length: int) -> int:
    ids = torch.zeros((1, length), dtype=torch.long, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False)
    return counter.get_total_flops()


def lora_step_flops(net, length: int) -> int:
    from peft import LoraConfig, get_peft_model

    from lrkit.config import TrainConfig

    c = TrainConfig()
    tuned = get_peft_model(net, LoraConfig(r=c.lora_r, lora_alpha=c.lora_alpha, target_modules=list(c.target_modules),
                                          lora_dropout=0.0, task_type="CAUSAL_LM"))
    ids = torch.zeros((1, length), dtype=torch.long, device="meta")
    with FlopCounterMode(display=False) as counter:
        logits = tuned(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False, logits_to_keep=1).logits
        logits.float().logsumexp(-1).sum().backward()
    return counter.get_total_flops()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    expert, amateur = model("Qwen2.5-Math-1.5B"), model("Qwen2.5-0.5B")
    params = {"expert": sum(p.numel() for p in expert.parameters()),
              "amateur": sum(p.numel() for p in amateur.parameters())}
    measured = {f"{role}_forward_{n}": forward_flops(net, n)
                for role, net in (("expert", expert), ("amateur", amateur)) for n in (256, 640)}
    measured["expert_lora_step_256"] = lora_step_flops(model("Qwen2.5-Math-1.5B"), 256)

    # Paper settings of each notebook (prompt ~ 100 tokens; rollouts at their caps are an upper bound).
    prompt, sample_new, eval_new = 100, 128, 512
    per_token = {r: measured[f"{r}_forward_256"] / 256 for r in ("expert", "amateur")}
    work = {
        # 1000 GSM8K train problems: expert rollouts, then one teacher-forced pass per model
        "01_sampling": {"teacher_forced_flops": 1000 * (prompt + sample_new) * (per_token["expert"] + per_token["amateur"]),
                        "decode_steps": 1000 * sample_new / 8, "decode_models": ("expert",)},
        "02_critical_moments": {"teacher_forced_flops": 0, "decode_steps": 0, "decode_models": ()},
        # 1000 optimizer steps of 8 x 2 records at ~230 tokens
        "03_finetuning": {"teacher_forced_flops": 1000 * 16 * measured["expert_lora_step_256"] * 230 / 256,
                          "decode_steps": 0, "decode_models": ()},
        # base + tuned + three ablation variants on N_EVAL = 1319 GSM8K test problems (batch 16, up to
        # 512 new tokens), each variant trained for 1000 steps; contrastive decoding (both models a step)
        # on the same 1319; the SFT baseline (rollouts on 1000 train problems, one epoch on ~700 right
        # ones of ~300 tokens, full-sequence loss) and its evaluation; Table 1: two models on the seven
        # benchmarks, each cut at N_EVAL (1319 + 500 + 1000 + 1319 + 272 + 675 + 1319 = 6404 problems).
        "04_evaluation": {"teacher_forced_flops": 3 * 1000 * 16 * measured["expert_lora_step_256"] * 230 / 256
                          + 700 * 3 * measured["expert_forward_640"] * 300 / 640,
                          "decode_steps": ((2 + 3 + 1) * 1319 + 1000 + 2 * 6404) * eval_new / 16,
                          "contrastive_steps": 1319 * eval_new / 16, "decode_models": ("expert",)},
    }
    for w in work.values():
        w.setdefault("contrastive_steps", 0)
    bytes_per_param = 2
    projection = {}
    for gpu, spec in GPUS.items():
        projection[gpu] = {}
        for name, w in work.items():
            compute_s = w["teacher_forced_flops"] / (spec["peak"] * UTILIZATION)
            step_s = sum(params[m] for m in w["decode_models"]) * bytes_per_param / (spec["bandwidth"] * DECODE_EFFICIENCY)
            pair_step_s = (params["expert"] + params["amateur"]) * bytes_per_param / (spec["bandwidth"] * DECODE_EFFICIENCY)
            projection[gpu][name] = round((compute_s + w["decode_steps"] * step_s
                                           + w["contrastive_steps"] * pair_step_s) / 3600, 2)
    result = {"parameters": params, "measured_flops": measured,
              "work": {k: {kk: vv for kk, vv in v.items() if kk != "decode_models"} for k, v in work.items()},
              "assumptions": {"utilization": UTILIZATION, "decode_efficiency": DECODE_EFFICIENCY, "gpus": GPUS,
                              "prompt_tokens": prompt, "sample_new_tokens": sample_new, "eval_new_tokens": eval_new},
              "projected_hours": projection}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
