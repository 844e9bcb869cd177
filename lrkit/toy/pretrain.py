"""Train the control toy pair (``toy-shared``) from scratch: a competent expert and
a weaker amateur on the same data; and the training code both toy pairs share.

Both are Qwen2 models (so LoRA's q_proj/v_proj exist) of different sizes,
trained with the same recipe on the toy arithmetic family, with loss only on
the assistant turn. Prompts are built by ``lrkit.models.prompts.build_prompt_ids``
with the system prompt cycling through lrkit's sampling prompt, the paper's
evaluation prompt and none, so the models answer under all three.

    python -m lrkit build-toy --pair toy-shared --out data/toy-shared --seed 0
"""
from __future__ import annotations

import math
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from lrkit.config import PAPER_EVAL_SYSTEM_PROMPT
from lrkit.models.generation import greedy_generate
from lrkit.models.loading import torch_threads
from lrkit.models.pairs import TOY_DIR, TOY_SHARED_DIR
from lrkit.models.prompts import build_prompt_ids
from lrkit.runs import write_json, write_text
from lrkit.toy.problems import final_answer, generate_problems
from lrkit.toy.tokenizer import SYSTEM_PROMPTS, train_toy_tokenizer

IGNORE_INDEX = -100
MAX_NEW_TOKENS = 160
"""Enough for the longest worked answer of the family (about 120 tokens)."""


@dataclass(frozen=True)
class ToyModelSpec:
    """Architecture and training budget of one model of the pair."""

    hidden_size: int
    num_layers: int
    intermediate_size: int
    num_heads: int
    train_problems: int
    """Distinct train problems seen once each (one epoch, no repeats)."""
    batch_size: int = 32
    learning_rate: float = 3e-3
    warmup_steps: int = 50
    weight_decay: float = 0.1


# Tuned on the validation slice. The expert's budget sets its accuracy, which
# climbs steeply with it (validation: 16,000 problems 35.5%, 20,480 40.5%,
# 25,600 78%); 20,480 puts it near the paper's base expert (Qwen2.5-Math-1.5B on
# GSM8K, lrkit.paper.PAPER_GSM8K), with room left to gain. The amateur, with two narrow layers
# and fewer problems, learns the format but rarely the arithmetic.
EXPERT = ToyModelSpec(hidden_size=256, num_layers=4, intermediate_size=512, num_heads=4,
                      train_problems=20480, learning_rate=3e-3)
AMATEUR = ToyModelSpec(hidden_size=128, num_layers=2, intermediate_size=256, num_heads=2,
                       train_problems=12000, learning_rate=3e-3)


def toy_pair_paths(pair: str = "toy") -> tuple[Path, Path]:
    """A bundled pair's (expert, amateur) folders: data/<pair>/ of a checkout, or
    the copy an installed wheel holds (lrkit/toy_pair/, lrkit/toy_shared_pair/)."""
    folders = {"toy": TOY_DIR, "toy-shared": TOY_SHARED_DIR}
    if pair not in folders:
        raise ValueError(f"{pair!r} is not a bundled toy pair; those are {', '.join(folders)}")
    return folders[pair] / "expert", folders[pair] / "amateur"


def build_model(spec: ToyModelSpec, tokenizer: PreTrainedTokenizerFast, seed: int) -> Qwen2ForCausalLM:
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    # Greedy, stopping at the end of the assistant turn; lrkit states decoding
    # explicitly anyway, but a plain model.generate() should behave too.
    model.generation_config = GenerationConfig(
        do_sample=False, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        max_new_tokens=MAX_NEW_TOKENS,
    )
    return model


def encode_example(tokenizer, problem: dict, system_prompt: Optional[str]) -> tuple[list[int], list[int]]:
    """(input ids, labels): the prompt lrkit builds, then the worked answer and EOS.

    The answer is tokenized on its own, exactly as the model will generate it
    after the prompt; only its tokens and the EOS carry a loss.
    """
    prompt = build_prompt_ids(tokenizer, problem["question"], system_prompt)
    answer = tokenizer(problem["answer"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return prompt + answer, [IGNORE_INDEX] * len(prompt) + answer


def training_batches(examples: Sequence[tuple[list[int], list[int]]], batch_size: int, pad_id: int,
                     seed: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Shuffled batches of examples of similar length (less padding), in a seeded order."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(examples), generator=generator).tolist()
    pool = batch_size * 32
    groups = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda i: len(examples[i][0]))
        groups += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    groups = [groups[i] for i in torch.randperm(len(groups), generator=generator).tolist()]
    batches = []
    for group in groups:
        width = max(len(examples[i][0]) for i in group)
        ids = torch.full((len(group), width), pad_id, dtype=torch.long)
        labels = torch.full((len(group), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(group), width), dtype=torch.long)
        for row, i in enumerate(group):
            input_ids, target = examples[i]
            ids[row, :len(input_ids)] = torch.tensor(input_ids)
            labels[row, :len(target)] = torch.tensor(target)
            mask[row, :len(input_ids)] = 1
        batches.append((ids, mask, labels))
    return batches


def use_bf16(precision: str) -> bool:
    """bf16 autocast is several times faster on CPUs with AVX512-bf16/AMX, and slow elsewhere."""
    if precision == "auto":
        return bool(torch.cpu._is_avx512_bf16_supported())
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, got {precision!r}")
    return precision == "bf16"


def train_model(model, tokenizer, spec: ToyModelSpec, seed: int, precision: str = "auto",
                log_every: int = 50, log=print, after_step=None,
                phases: Optional[Sequence[Sequence[dict]]] = None, stop_after: Optional[int] = None) -> list[float]:
    """One epoch over fresh train problems; returns the loss per step.

    By default ``spec.train_problems`` problems of the toy family. ``phases``,
    if given, are lists of problems seen one after the other (each shuffled on
    its own) under one learning-rate schedule: a pretraining corpus, then a
    continuation. ``after_step(step, model)``, if given, runs after every
    optimizer step (for validation curves while tuning). ``stop_after``, if
    given, stops after that many optimizer steps of the same schedule (an earlier
    checkpoint of the full run, weights identical to it at that step).
    """
    if phases is None:
        phases = [generate_problems(spec.train_problems, "train", seed=seed)]
    batches = []
    for index, problems in enumerate(phases):
        examples = [encode_example(tokenizer, p, SYSTEM_PROMPTS[i % len(SYSTEM_PROMPTS)])
                    for i, p in enumerate(problems)]
        batches += training_batches(examples, spec.batch_size, tokenizer.pad_token_id, seed + index)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=spec.learning_rate, betas=(0.9, 0.95))
    total = len(batches)

    def lr_factor(step: int) -> float:  # linear warmup, cosine decay to 10%
        if step < spec.warmup_steps:
            return (step + 1) / spec.warmup_steps
        progress = (step - spec.warmup_steps) / max(1, total - spec.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    bf16 = use_bf16(precision)
    # Eager attention trains faster than CPU SDPA at these lengths (its backward
    # dominates a step); the saved model keeps the default.
    saved_attention = model.config._attn_implementation
    model.set_attn_implementation("eager")
    model.train()
    losses = []
    started = time.perf_counter()
    for step, (ids, mask, labels) in enumerate(batches):
        if stop_after is not None and step >= stop_after:
            break
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if log and (step % log_every == 0 or step == total - 1):
            recent = losses[-log_every:]
            log(f"  step {step + 1}/{total} loss {sum(recent) / len(recent):.4f} "
                f"({time.perf_counter() - started:.0f}s)")
        if after_step:
            after_step(step + 1, model)
    model.set_attn_implementation(saved_attention)
    model.eval()
    return losses


NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def extract_toy_answer(text: str) -> Optional[float]:
    """The first number after the last '####', else the last number in the text."""
    after_marker = NUMBER.findall(text.rsplit("####", 1)[1]) if "####" in text else []
    numbers = after_marker[:1] or NUMBER.findall(text)[-1:]
    return float(numbers[0].replace(",", "")) if numbers else None


def evaluate_toy(model, tokenizer, problems: Sequence[dict],
                 system_prompt: Optional[str] = PAPER_EVAL_SYSTEM_PROMPT,
                 batch_size: int = 64) -> dict:
    """Greedy accuracy and format rate ('#### N' then EOS) on ``problems``."""
    prompts = [build_prompt_ids(tokenizer, p["question"], system_prompt) for p in problems]
    generations = greedy_generate(model, tokenizer, prompts, MAX_NEW_TOKENS, batch_size=batch_size)
    correct = formatted = 0
    for problem, generation in zip(problems, generations):
        text = tokenizer.decode(generation.token_ids, skip_special_tokens=True)
        predicted = extract_toy_answer(text)
        correct += predicted is not None and predicted == final_answer(problem["answer"])
        formatted += generation.finished and re.search(r"#### \d+\s*$", text) is not None
    n = len(problems)
    return {"n": n, "accuracy": correct / n, "format_rate": formatted / n}


def build_toy_pair(out_dir="data/toy-shared", seed: int = 0, expert: ToyModelSpec = EXPERT,
                   amateur: ToyModelSpec = AMATEUR, n_eval: int = 500, n_validation: int = 200,
                   precision: str = "auto", threads: Optional[int] = 1, log=print) -> dict:
    """Train the tokenizer, the expert and the amateur; save them under ``out_dir``.

    Writes ``expert/`` and ``amateur/`` (fp32 safetensors, tokenizer in both),
    ``build.json`` (specs, times, greedy accuracies on ``n_validation``
    validation and ``n_eval`` test problems under the paper's evaluation prompt)
    and ``CARD.md``. Returns build.json's content. Tune on the validation
    numbers; the test numbers are the ones to report.
    One thread by default: on a shared 2-core machine two threads that wait on
    each other run several times slower than one.
    """
    log = log or (lambda message: None)
    with torch_threads(threads):
        return _build(Path(out_dir), seed, expert, amateur, n_eval, n_validation, precision, log)


def _build(out_dir: Path, seed: int, expert: ToyModelSpec, amateur: ToyModelSpec, n_eval: int,
           n_validation: int, precision: str, log) -> dict:
    started, cpu_started = time.perf_counter(), time.process_time()
    load_before = os.getloadavg()[0]
    tokenizer = train_toy_tokenizer(seed=seed)
    test_problems = generate_problems(n_eval, "test", seed=seed)
    validation_problems = generate_problems(n_validation, "validation", seed=seed)
    summary = {"seed": seed, "precision": "bf16" if use_bf16(precision) else "fp32",
               "threads": torch.get_num_threads(), "n_test": n_eval, "n_validation": n_validation,
               "eval_system_prompt": PAPER_EVAL_SYSTEM_PROMPT, "models": {}}
    for role, spec in (("expert", expert), ("amateur", amateur)):
        role_started = time.perf_counter()
        log(f"training the {role}: {spec}")
        model = build_model(spec, tokenizer, seed)
        train_model(model, tokenizer, spec, seed, precision, log=log)
        train_seconds = time.perf_counter() - role_started
        folder = out_dir / role
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        # Measure what was saved, loaded the way users load it.
        reloaded = Qwen2ForCausalLM.from_pretrained(folder, dtype=torch.float32)
        validation = evaluate_toy(reloaded, tokenizer, validation_problems) if n_validation else {}
        result = evaluate_toy(reloaded, tokenizer, test_problems)
        summary["models"][role] = {
            "spec": asdict(spec), "parameters": sum(p.numel() for p in model.parameters()),
            "bytes": folder_bytes(folder), "train_seconds": round(train_seconds, 1), **result,
            "validation_accuracy": validation.get("accuracy"),
        }
        log(f"{role}: {summary['models'][role]}")
    summary["total_seconds"] = round(time.perf_counter() - started, 1)
    summary["cpu_seconds"] = round(time.process_time() - cpu_started, 1)
    summary["load_average"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]
    write_json(out_dir / "build.json", summary)
    write_text(out_dir / "CARD.md", render_card(summary))
    return summary


def render_card(summary: dict) -> str:
    """CARD.md: what the pair is, how it was built, and what this build measured."""
    expert, amateur = summary["models"]["expert"], summary["models"]["amateur"]

    def describe(info: dict) -> str:
        spec = info["spec"]
        return (f"{spec['num_layers']} layers, hidden {spec['hidden_size']}, MLP {spec['intermediate_size']}, "
                f"{spec['num_heads']} heads; {info['parameters']:,} parameters, "
                f"{info['bytes'] / 1e6:.1f} MB; trained on {spec['train_problems']:,} problems "
                f"(one epoch, batch {spec['batch_size']}, lr {spec['learning_rate']}) "
                f"in {info['train_seconds']:.0f} s")

    return CARD_TEMPLATE.format(
        expert=describe(expert), amateur=describe(amateur), seed=summary["seed"],
        precision=summary["precision"], threads=summary["threads"],
        total_minutes=summary["total_seconds"] / 60, cpu_minutes=summary["cpu_seconds"] / 60,
        load_before=summary["load_average"][0], load_after=summary["load_average"][1],
        n=summary["n_test"], n_validation=summary["n_validation"],
        expert_validation=_percent(expert["validation_accuracy"]),
        amateur_validation=_percent(amateur["validation_accuracy"]),
        expert_accuracy=expert["accuracy"], amateur_accuracy=amateur["accuracy"],
        expert_format=expert["format_rate"], amateur_format=amateur["format_rate"],
        ratio=amateur["accuracy"] / expert["accuracy"] if expert["accuracy"] else float("nan"),
        total_mb=(expert["bytes"] + amateur["bytes"]) / 1e6,
    )


def _percent(value: Optional[float]) -> str:
    return "not measured" if value is None else f"{value:.1%}"


CARD_TEMPLATE = """\
# The bundled control pair `toy-shared`: both models learned the same data

A real expert-amateur pair that runs offline in seconds, kept as the control on
which LightReasoner fails: its two models learned the same data, so the
contrast penalises what the amateur also knows (`lrkit demo --pair toy-shared`). Both models are Qwen2 causal LMs
(`Qwen2ForCausalLM`, so LoRA's `q_proj`/`v_proj` exist) trained from scratch by
lrkit on its own arithmetic word problems (`lrkit.toy.problems`: GSM8K format,
7 story templates, 2-4 steps, small integers; train and test split by a hash of
the computation, so no test computation is ever trained on).

| | expert (`expert/`) | amateur (`amateur/`) |
| --- | --- | --- |
| architecture | {expert} | {amateur} |
| test accuracy (greedy, {n} test problems) | **{expert_accuracy:.1%}** | **{amateur_accuracy:.1%}** ({ratio:.2f} x expert) |
| answers in format (`#### N` then EOS) | {expert_format:.1%} | {amateur_format:.1%} |
| validation accuracy ({n_validation} problems, used for tuning) | {expert_validation} | {amateur_validation} |

Together {total_mb:.1f} MB (fp32 safetensors). Both folders hold the same
tokenizer (`lrkit.toy.tokenizer`): byte-level BPE with 512 tokens that splits
text as Qwen2's tokenizer does (digits always single tokens), with a ChatML chat
template (optional system turn, `add_generation_prompt`), EOS `<|im_end|>`,
pad `<|endoftext|>`. Load them with `AutoModelForCausalLM.from_pretrained` and
`AutoTokenizer.from_pretrained`; `lrkit.toy.toy_pair_paths()` gives the folders.

## How it was built

    lrkit build-toy --pair toy-shared --out data/toy-shared --seed {seed}
    # or: python -m lrkit build-toy --pair toy-shared --out data/toy-shared --seed {seed}

Prompts come from `lrkit.models.prompts.build_prompt_ids` with the system prompt
cycling through lrkit's sampling prompt ("Please reason step by step."), the
paper's evaluation prompt (asks for `\\boxed{{}}`) and none; the assistant turn is
the worked solution ending `#### N`, then EOS, and carries the only loss. Both
models see fresh problems (one epoch) with AdamW, warmup and cosine decay,
{precision} autocast, {threads} thread(s), seeded (weights, data and order).
Model sizes and budgets were tuned on the validation slice of the train side;
the accuracies above are measured once, on the test split, after saving and
reloading, under the paper's evaluation prompt.

This build took {total_minutes:.1f} min wall clock ({cpu_minutes:.1f} min of CPU) on a
shared 2-core machine (load average {load_before} before, {load_after} after).
The same seed on the same machine and library versions gives the same weights;
other CPUs (bf16 kernels) or versions may differ slightly.
Accuracy counts the number after the last `####` (else the last number).
"""


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in Path(folder).iterdir() if f.is_file())
