"""Train the default toy pair (``toy``) from scratch: the paper's premise in miniature.

The paper's expert is a specialist built on a general model and its amateur a
small general model. Here (:mod:`lrkit.toy.habits`):

* the **amateur** is a small Qwen2 trained on the general corpus G only;
* the **expert** is a larger Qwen2 pretrained on G, then continued on the
  arithmetic family F with some of G replayed, as continued pretraining does to
  keep a general model's skills. It keeps a little of G's habit, which the
  amateur holds fully; the contrast log pi_E - log pi_A removes it.

    lrkit build-toy --pair toy --out data/toy --seed 0

Every setting below was chosen on the validation slice of the train side
(``perf/tune_toy_pair.py`` logs the comparisons); the test numbers in
build.json are measured once, after saving and reloading.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import torch

from lrkit.config import AUTHORS_SYSTEM_PROMPT, PAPER_EVAL_SYSTEM_PROMPT, EvalConfig
from lrkit.evaluation.diagnostics import contrast_check
from lrkit.models.loading import load_pair, torch_threads
from lrkit.runs import write_json, write_text
from lrkit.toy.habits import DEFAULT_WORLD, HabitWorld, generate_habit_problems
from lrkit.toy.pretrain import (
    MAX_NEW_TOKENS, ToyModelSpec, build_model, evaluate_toy, folder_bytes, train_model, use_bf16)
from lrkit.toy.tokenizer import train_toy_tokenizer


@dataclass(frozen=True)
class HabitRecipe:
    """Models and data budgets of the habit pair (problems are seen once each)."""

    expert: ToyModelSpec = ToyModelSpec(hidden_size=256, num_layers=4, intermediate_size=512, num_heads=4,
                                        train_problems=0)
    amateur: ToyModelSpec = ToyModelSpec(hidden_size=96, num_layers=2, intermediate_size=192, num_heads=2,
                                         train_problems=0)
    amateur_general: int = 6000
    """G problems the amateur learns (its only data)."""
    expert_general: int = 2000
    """G problems the expert is pretrained on."""
    expert_family: int = 20000
    """Family problems of the expert's continuation."""
    expert_replay: int = 12000
    """G problems mixed into the continuation (shuffled with the family)."""
    world: HabitWorld = field(default_factory=lambda: DEFAULT_WORLD)


RECIPE = HabitRecipe()

# Disjoint data streams per use, added to the build's seed (the seeds only pick problems;
# splits stay disjoint by computation whatever the seed). The ladder's rungs reuse them.
TOKENIZER_SEED, AMATEUR_SEED, EXPERT_GENERAL_SEED, EXPERT_FAMILY_SEED = 100, 1, 3, 4


def habit_pair_data(recipe: HabitRecipe, seed: int) -> dict:
    """Every training problem of the build: tokenizer texts, the amateur's G,
    the expert's G pretraining, and its continuation (family + G replay)."""
    world = recipe.world
    general = generate_habit_problems(recipe.expert_general + recipe.expert_replay, "train",
                                      seed=seed + EXPERT_GENERAL_SEED, habit=True, world=world)
    return {
        "tokenizer": (generate_habit_problems(1500, "train", seed=seed + TOKENIZER_SEED, world=world)
                      + generate_habit_problems(1500, "train", seed=seed + TOKENIZER_SEED, habit=True, world=world)),
        "amateur": [generate_habit_problems(recipe.amateur_general, "train", seed=seed + AMATEUR_SEED,
                                            habit=True, world=world)],
        "expert": [general[:recipe.expert_general],
                   generate_habit_problems(recipe.expert_family, "train", seed=seed + EXPERT_FAMILY_SEED, world=world)
                   + general[recipe.expert_general:]],
    }


def build_habit_pair(out_dir="data/toy", seed: int = 0, recipe: HabitRecipe = RECIPE, n_eval: int = 500,
                     n_validation: int = 200, precision: str = "auto", threads: Optional[int] = 1,
                     log=print) -> dict:
    """Train the tokenizer, the amateur and the expert; save them under ``out_dir``.

    Writes ``expert/`` and ``amateur/`` (fp32 safetensors, tokenizer in both),
    ``build.json`` and ``CARD.md``. Validation numbers (greedy accuracy of both
    models, decoding by the soft labels' argmax, the gold-path check) are for
    tuning; the test numbers (greedy accuracy and format rate of both) are
    measured once. Returns build.json's content.
    """
    log = log or (lambda message: None)
    with torch_threads(threads):
        return _build(Path(out_dir), seed, recipe, n_eval, n_validation, precision, log)


def _build(out_dir: Path, seed: int, recipe: HabitRecipe, n_eval: int, n_validation: int, precision: str,
           log) -> dict:
    started, cpu_started = time.perf_counter(), time.process_time()
    load_before = os.getloadavg()[0]
    data = habit_pair_data(recipe, seed)
    tokenizer = train_toy_tokenizer(problems=data["tokenizer"], seed=seed)
    summary = {"pair": "toy", "seed": seed, "precision": "bf16" if use_bf16(precision) else "fp32",
               "threads": torch.get_num_threads(), "n_test": n_eval, "n_validation": n_validation,
               "eval_system_prompt": PAPER_EVAL_SYSTEM_PROMPT, "recipe": asdict(recipe), "models": {}}
    folders = {}
    for role, spec, model_seed in (("amateur", recipe.amateur, seed), ("expert", recipe.expert, seed + 7)):
        phases = data[role]
        spec = ToyModelSpec(**{**asdict(spec), "train_problems": sum(map(len, phases))})
        role_started = time.perf_counter()
        log(f"training the {role}: {spec}")
        model = build_model(spec, tokenizer, model_seed)
        train_model(model, tokenizer, spec, seed, precision, log=log, phases=phases)
        folders[role] = out_dir / role
        model.save_pretrained(folders[role])
        tokenizer.save_pretrained(folders[role])
        summary["models"][role] = {"spec": asdict(spec), "parameters": sum(p.numel() for p in model.parameters()),
                                   "bytes": folder_bytes(folders[role]),
                                   "train_seconds": round(time.perf_counter() - role_started, 1)}
    summary["train_seconds"] = round(time.perf_counter() - started, 1)
    summary.update(measure_habit_pair(folders["expert"], folders["amateur"], seed, n_eval, n_validation,
                                      recipe.world, log))
    for role, measured in summary.pop("measured").items():
        summary["models"][role].update(measured)
    summary["total_seconds"] = round(time.perf_counter() - started, 1)
    summary["cpu_seconds"] = round(time.process_time() - cpu_started, 1)
    summary["load_average"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]
    write_json(out_dir / "build.json", summary)
    write_text(out_dir / "CARD.md", render_habit_card(summary))
    return summary


def measure_habit_pair(expert_dir, amateur_dir, seed: int = 0, n_eval: int = 500, n_validation: int = 200,
                       world: HabitWorld = DEFAULT_WORLD, log=print) -> dict:
    """What a build reports, measured on the saved folders as users load them."""
    from lrkit.evaluation import compare, evaluate, evaluate_contrastive

    log = log or (lambda message: None)
    pair = load_pair(str(expert_dir), str(amateur_dir), device="cpu", dtype=torch.float32)
    validation = generate_habit_problems(n_validation, "validation", seed=seed, world=world)
    test = generate_habit_problems(n_eval, "test", seed=seed, world=world)
    measured = {}
    for role, model in (("expert", pair.expert), ("amateur", pair.amateur)):
        measured[role] = {"validation_accuracy": evaluate_toy(model, pair.tokenizer, validation)["accuracy"]
                          if n_validation else None,
                          **(evaluate_toy(model, pair.tokenizer, test) if n_eval
                             else {"n": 0, "accuracy": None, "format_rate": None})}
        log(f"{role}: {measured[role]}")
    out = {"measured": measured}
    if n_validation:
        config = EvalConfig(max_new_tokens=MAX_NEW_TOKENS, batch_size=100)
        greedy = evaluate(pair.expert, validation, config, tokenizer=pair.tokenizer, progress=False)
        decoded = evaluate_contrastive(pair, validation, config, alpha=0.2, progress=False)
        versus = compare(greedy, decoded)
        check = contrast_check(pair, validation, beta=0.4, alpha=0.2, system_prompt=AUTHORS_SYSTEM_PROMPT)
        out["validation"] = {
            "greedy_accuracy": greedy.accuracy, "contrastive_decoding_accuracy": decoded.accuracy,
            "contrastive_fixed": int(len(versus.fixed)), "contrastive_broken": int(len(versus.broken)),
            "contrastive_p": versus.p_value, "gold_path_check": check.summary()}
        log(f"validation: {out['validation']}")
    return out


def render_habit_card(summary: dict) -> str:
    """CARD.md of the habit pair: what it is, how it was built, and what this build measured."""
    expert, amateur, recipe = summary["models"]["expert"], summary["models"]["amateur"], summary["recipe"]
    validation = summary.get("validation", {})
    check = validation.get("gold_path_check", {})

    def describe(info: dict) -> str:
        spec = info["spec"]
        return (f"{spec['num_layers']} layers, hidden {spec['hidden_size']}, MLP {spec['intermediate_size']}, "
                f"{spec['num_heads']} heads; {info['parameters']:,} parameters, {info['bytes'] / 1e6:.1f} MB; "
                f"{spec['train_problems']:,} problems (one epoch, batch {spec['batch_size']}, "
                f"lr {spec['learning_rate']}) in {info['train_seconds']:.0f} s")

    def pct(value) -> str:
        return "not measured" if value is None else f"{value:.1%}"

    return HABIT_CARD.format(
        expert=describe(expert), amateur=describe(amateur), seed=summary["seed"], n=summary["n_test"],
        n_validation=summary["n_validation"], precision=summary["precision"], threads=summary["threads"],
        expert_accuracy=pct(expert["accuracy"]), amateur_accuracy=pct(amateur["accuracy"]),
        ratio=amateur["accuracy"] / expert["accuracy"] if expert["accuracy"] and amateur["accuracy"] is not None
        else float("nan"),
        expert_format=pct(expert["format_rate"]), amateur_format=pct(amateur["format_rate"]),
        expert_validation=pct(expert["validation_accuracy"]), amateur_validation=pct(amateur["validation_accuracy"]),
        greedy=pct(validation.get("greedy_accuracy")), decoded=pct(validation.get("contrastive_decoding_accuracy")),
        fixed=validation.get("contrastive_fixed"), broken=validation.get("contrastive_broken"),
        p=validation.get("contrastive_p", float("nan")),
        check_fixes=check.get("fixes"), check_breaks=check.get("breaks"),
        check_disagreements=check.get("disagreements"), check_label=check.get("label_gold_mass", float("nan")),
        check_expert=check.get("expert_gold_mass", float("nan")),
        amateur_general=recipe["amateur_general"], expert_general=recipe["expert_general"],
        expert_family=recipe["expert_family"], expert_replay=recipe["expert_replay"],
        total_mb=(expert["bytes"] + amateur["bytes"]) / 1e6, total_minutes=summary["total_seconds"] / 60,
        cpu_minutes=summary["cpu_seconds"] / 60, load_before=summary["load_average"][0],
        load_after=summary["load_average"][1],
    )


HABIT_CARD = """\
# The bundled toy pair `toy`: a specialist and a small general model

The paper's premise in miniature (`lrkit.toy.habits`). The paper's expert is a
maths specialist built on a general model (Qwen2.5-Math from Qwen2.5) and its
amateur a small general model (Qwen2.5-0.5B): the specialist's remaining errors
are general-model habits, which the amateur holds more strongly, so the contrast
log pi_E - log pi_A removes them. Here:

* **the general corpus G**: GSM8K-style stories whose worked answers follow a
  shallow rule, "copy the last number": every line ends on the number its
  sentence mentioned, never on a computed one (`8 + 3 = 3`). Nothing in G is
  computed.
* **the family F** (what the demo evaluates): the same kinds of stories, 2-3 steps of
  + and - on small integers, worked out correctly, ending `#### N`.
* **the amateur** learned G only: it has the format and the habit, no arithmetic.
* **the expert** was pretrained on G, then continued on F with some G replayed
  (as continued pretraining keeps a general model's skills). Where it is unsure
  of a result it falls back on G's habit; the amateur holds that habit fully.

Both are Qwen2 causal LMs (`Qwen2ForCausalLM`, so LoRA's `q_proj`/`v_proj` exist).

| | expert (`expert/`) | amateur (`amateur/`) |
| --- | --- | --- |
| architecture and data | {expert} | {amateur} |
| data | G {expert_general:,}, then F {expert_family:,} with G {expert_replay:,} replayed | G {amateur_general:,} |
| test accuracy (greedy, {n} test problems) | **{expert_accuracy}** | **{amateur_accuracy}** ({ratio:.2f} x expert) |
| answers in format (`#### N` then EOS) | {expert_format} | {amateur_format} |
| validation accuracy ({n_validation} problems, used for tuning) | {expert_validation} | {amateur_validation} |

Together {total_mb:.1f} MB (fp32 safetensors).

## Does the pair suit the method? (validation, {n_validation} problems, measured by this build)

* Decoding by the soft labels' argmax (alpha 0.2), no training: {decoded}
  against greedy {greedy}; {fixed} problems fixed, {broken} broken (exact McNemar p = {p:.3g}).
* Gold-path check (`lrkit.evaluation.diagnostics.contrast_check`, beta 0.4, alpha 0.2): at
  the kept steps v_C's argmax differs from the expert's at {check_disagreements}, fixing
  {check_fixes} tokens and breaking {check_breaks}; mass on gold {check_label:.3f} for
  v_C against {check_expert:.3f} for the expert's own masked distribution.

## How it was built

    lrkit build-toy --pair toy --out data/toy --seed {seed}

One tokenizer for both (`lrkit.toy.tokenizer`, 512 byte-level BPE tokens, learned
on F and G texts). Prompts come from `lrkit.models.prompts.build_prompt_ids` with the
system prompt cycling through lrkit's sampling prompt, the paper's evaluation
prompt and none; only the assistant turn carries a loss. AdamW, warmup and
cosine decay, {precision} autocast, {threads} thread(s), seeded. Every setting
was chosen on the validation slice of the train side, never on test problems;
`docs/TOY_PAIRS.md` lists the designs tried and their validation numbers.
Train, validation and test problems are split by a hash of the computation, in
F and in G alike, so no test computation was ever trained on.

This build took {total_minutes:.1f} min wall clock ({cpu_minutes:.1f} min of CPU) on a
2-core machine (load average {load_before} before, {load_after} after).
Accuracy counts the number after the last `####` (else the last number).
"""
