"""``lrkit demo``: the whole method on a bundled toy pair, offline, in minutes.

    lrkit demo                          # check, sample, select, train (3 seeds), evaluate, report
    lrkit demo --ablations              # + the paper's Table 6 in miniature and the SFT baseline
    lrkit demo --pair toy-shared --out runs/demo-toy-shared   # the control: where the method fails

Before any training the demo runs the gold-path check (``lrkit.diagnostics``)
on both bundled pairs, the quickest test of whether a pair suits the method.

Every setting was chosen on train problems only (a validation slice of the
train split); the held-out test problems are used for the final numbers alone.
Rerunning after an interruption resumes sampling where it stopped.
"""
from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from .config import EvalConfig, SampleConfig, TrainConfig, to_dict
from .paper import PAPER_ABLATION, PAPER_GSM8K
from .provenance import Provenance, api_call, read_provenance



@dataclass
class DemoConfig:
    """The demo's budget. The toy models are tiny, so the optimizer settings
    differ from the paper's 1.5B ones (a larger learning rate, fewer steps)."""

    train_problems: int = 200
    """Unlabeled train-split problems the expert samples on."""
    test_problems: int = 500
    """Held-out test-split problems both experts are evaluated on."""
    problem_seed: int = 2026
    """Seed of the demo's problems (not the seed the toy pair was trained on)."""
    pair: str = "toy"
    """The bundled pair: "toy" (the method works on it) or "toy-shared" (the control: it fails)."""
    seeds: int = 3
    """LightReasoner is trained once per seed (TrainConfig.seed, +1, ...) on the same records;
    the first seed's model is the one the report looks at in detail."""
    check_problems: int = 200
    """Validation problems whose gold solutions the gold-path check reads."""
    sample: SampleConfig = field(default_factory=lambda: SampleConfig(batch_size=100))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        learning_rate=2e-3, max_steps=60, per_device_batch_size=16, gradient_accumulation_steps=1,
        logging_steps=5, save_steps=30, lora_r=8, lora_alpha=16))
    eval: EvalConfig = field(default_factory=lambda: EvalConfig(max_new_tokens=160, batch_size=100))


@dataclass
class DemoResult:
    out_dir: Path
    report_path: Path
    summary: dict


def _stage(name: str, timings: dict, progress: bool):
    class _Timer:
        def __enter__(self):
            if progress:
                print(f"[lrkit demo] {name}...", flush=True)
            self.start = time.perf_counter()

        def __exit__(self, *exc):
            timings[name] = round(time.perf_counter() - self.start, 2)

    return _Timer()


def _no_contrast(records: list[dict]) -> list[dict]:
    """The ablation target: the expert's own distribution renormalised over the mask."""
    out = []
    for r in records:
        probs = [math.exp(lp) for lp in r["expert_logprobs"]]
        total = sum(probs)
        pairs = sorted(zip(r["token_ids"], r["tokens"], (p / total for p in probs)), key=lambda x: -x[2])
        out.append({**r, "token_ids": [p[0] for p in pairs], "tokens": [p[1] for p in pairs],
                    "weights": [p[2] for p in pairs]})
    return out


EXPORT_DIR = "records_dataset"
"""Where the demo exports its records (``lrkit export``): parquet and a dataset card."""
PAIR_FILE = "pair.json"
"""The sha256 of both toy models' weights, so a rerun never mixes two builds."""


def _check_pair_build(out_dir: Path, expert_path: str, amateur_path: str) -> None:
    """Refuse to resume in a folder made with another build of the toy pair (a
    pull that rebuilt data/toy): its records and adapters belong to that build."""
    from .pairs import _sha256_of

    current = {role: _sha256_of(Path(path) / "model.safetensors")
               for role, path in (("expert", expert_path), ("amateur", amateur_path))}
    path = out_dir / PAIR_FILE
    if path.exists():
        if json.loads(path.read_text()) != current:
            raise ValueError(f"{out_dir} holds a demo run made with another bundled pair or another build of the toy pair; "
                             f"rerun with --fresh to replace it, or choose another --out")
        return
    if any(out_dir.iterdir()):
        raise ValueError(f"{out_dir} holds files but no {PAIR_FILE} (a run of an older lrkit, or not a "
                         f"demo run); rerun with --fresh to replace it, or choose another --out")
    path.write_text(json.dumps(current, indent=2) + "\n")


class DemoFolderError(ValueError):
    """An --out folder holding a demo run made with other settings."""


@contextlib.contextmanager
def _same_settings(stage: str, out_dir: Path):
    """A stage that finds its folder made with other settings names the demo's
    own way out (--fresh), not the stage's (--overwrite, --resume ...)."""
    from .runs import FolderError

    try:
        yield
    except FolderError as err:
        differs = getattr(err, "differs", None)
        detail = f"differs in: {', '.join(differs)}" if differs else str(err).split(";")[0]
        raise DemoFolderError(f"{out_dir} holds a demo run made with other settings ({stage}: {detail}); "
                              f"rerun with --fresh to replace it, or choose another --out") from None


def _merge(expert_path, adapter_dir, out: Path) -> Path:
    """Merge into ``out``, replacing what an earlier run of the demo left there:
    the demo's merged folders are derived from its adapters and rebuilt each run."""
    from .training import merge

    if out.exists():
        shutil.rmtree(out)
    return merge(expert_path, adapter_dir, out)


def _train_and_evaluate(name, records, expert_path, tokenizer, test, config: DemoConfig, out_dir: Path,
                        progress: bool):
    from .evaluation import evaluate
    from .training import train

    trained = train(expert_path, records, out_dir / f"adapter_{name}", config.train, resume=True,
                    progress=progress)
    merged = _merge(expert_path, trained.adapter_dir, out_dir / f"merged_{name}")
    result = evaluate(str(merged), test, config.eval, out_dir=out_dir / f"eval_{name}", progress=progress)
    _card_evaluation(merged, result, config)
    return trained, result


def _card_evaluation(merged: Path, result, config: DemoConfig) -> None:
    """The evaluation goes on the merged model's card."""
    from .cards import add_evaluation

    add_evaluation(merged, result, f"{config.pair} test problems (problem seed {config.problem_seed})")


def run_demo(out_dir="runs/demo", config: Optional[DemoConfig] = None, ablations: bool = False,
             fresh: bool = False, progress: bool = True) -> DemoResult:
    from .evaluation import compare, evaluate, evaluate_contrastive
    from .models import load_pair
    from .pairs import resolve_pair
    from .records import read_records
    from .sampling import read_steps, sample
    from .toy import TOY_PAIRS, toy_problems

    config = config or DemoConfig()
    if config.pair not in TOY_PAIRS:
        raise ValueError(f"--pair must be one of {', '.join(TOY_PAIRS)} (the bundled pairs), got {config.pair!r}")
    if config.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {config.seeds}")
    out_dir = Path(out_dir)
    if fresh and out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    started = time.perf_counter()

    expert_path, amateur_path = (str(p) for p in resolve_pair(config.pair))
    _check_pair_build(out_dir, expert_path, amateur_path)
    pair = load_pair(expert_path, amateur_path, device="cpu")
    provenance = Provenance(out_dir, api_call("run_demo", str(out_dir), ablations=ablations, fresh=fresh),
                            "cpu", next(pair.expert.parameters()).dtype).start(write=False)
    train_set = toy_problems(config.pair, config.train_problems, "train", seed=config.problem_seed)
    unlabeled = [{"id": p["id"], "question": p["question"]} for p in train_set]
    test = toy_problems(config.pair, config.test_problems, "test", seed=config.problem_seed)

    # Before any training: does each bundled pair's contrast point towards gold?
    with _stage("gold-path check", timings, progress):
        checks = _gold_path_checks(pair, config)

    with _stage("sampling", timings, progress):
        with _same_settings("sampling", out_dir):
            sampled = sample(pair, None, unlabeled, out_dir / "sampling", config.sample, progress=progress)
    records = read_records(sampled.records_path)
    steps = read_steps(out_dir / "sampling")
    with _stage("exporting the records (parquet + dataset card)", timings, progress):
        from .export import export

        export(out_dir / "sampling", out_dir / EXPORT_DIR, overwrite=True)

    from .training import train
    with _stage("evaluating base expert", timings, progress):
        with _same_settings("evaluation", out_dir):
            base = evaluate(pair.expert, test, config.eval, tokenizer=pair.tokenizer,
                            out_dir=out_dir / "eval_base", progress=progress, name="base expert")
    runs = []
    for index in range(config.seeds):
        seed = config.train.seed + index
        suffix = "" if index == 0 else f"_seed{seed}"
        seed_config = replace(config.train, seed=seed)
        with _stage(f"training (seed {seed})", timings, progress):
            with _same_settings("training", out_dir):
                trained_seed = train(expert_path, records, out_dir / f"adapter{suffix}", seed_config, resume=True,
                                     progress=progress)
            merged = _merge(expert_path, trained_seed.adapter_dir, out_dir / f"merged{suffix}")
        with _stage(f"evaluating tuned expert (seed {seed})", timings, progress):
            with _same_settings("evaluation", out_dir):
                tuned_seed = evaluate(str(merged), test, config.eval, out_dir=out_dir / f"eval_tuned{suffix}",
                                      progress=progress, name=f"LightReasoner (seed {seed})")
            _card_evaluation(merged, tuned_seed, config)
        runs.append((seed, trained_seed, tuned_seed, compare(base, tuned_seed)))
    _, trained, tuned, comparison = runs[0]
    # Where tuning leads: the expert decoding by the soft labels' own argmax, no training.
    with _stage("decoding by the soft labels", timings, progress):
        with _same_settings("evaluation", out_dir):
            decoded = evaluate_contrastive(pair, test, config.eval, alpha=config.sample.alpha,
                                           out_dir=out_dir / "eval_contrastive_decoding", progress=progress,
                                           name="decoding by v_C's argmax")

    ablation_rows = None
    if ablations:
        with _same_settings("ablations", out_dir):
            ablation_rows = _ablations(pair, expert_path, unlabeled, train_set, test, records, trained, base,
                                       tuned, decoded, config, out_dir, timings, progress)

    rollout_tokens = int(len(steps))
    summary = {
        "pair": config.pair, "train_problems": len(unlabeled), "test_problems": len(test),
        "steps": rollout_tokens, "records": len(records),
        "share_kept": sampled.summary.get("share_kept"),
        "mean_kl_top1_agree": sampled.summary.get("mean_kl_top1_agree"),
        "mean_kl_top1_disagree": sampled.summary.get("mean_kl_top1_disagree"),
        "tuned_tokens": trained.tuned_tokens, "rollout_tokens": rollout_tokens,
        "base_accuracy": base.accuracy, "base_interval": list(base.interval),
        "tuned_accuracy": tuned.accuracy, "tuned_interval": list(tuned.interval),
        "fixed": int(len(comparison.fixed)), "broken": int(len(comparison.broken)),
        "mcnemar_p": comparison.p_value,
        "contrastive_decoding_accuracy": decoded.accuracy,
        "contrastive_decoding_interval": list(decoded.interval),
        "hit_token_limit": {"base": base.n_hit_limit, "tuned": tuned.n_hit_limit,
                            "contrastive_decoding": decoded.n_hit_limit},
        "contrastive_decoding_vs_base": _comparison_summary(compare(base, decoded)),
        "seeds": [{"seed": seed, "accuracy": result.accuracy, "interval": list(result.interval),
                   "gain": result.accuracy - base.accuracy, "tuned_tokens": t.tuned_tokens,
                   **_comparison_summary(c)} for seed, t, result, c in runs],
        "mean_gain": sum(result.accuracy - base.accuracy for _, _, result, _ in runs) / len(runs),
        "gold_path_check": checks,
        "records_dataset": str(out_dir / EXPORT_DIR),
        "tensorboard": str(out_dir),
        "seconds": timings,
        "total_seconds": round(time.perf_counter() - started, 1),
        "config": {"demo": {"pair": config.pair, "train_problems": config.train_problems,
                            "test_problems": config.test_problems, "problem_seed": config.problem_seed,
                            "seeds": config.seeds, "check_problems": config.check_problems},
                   "sample": to_dict(config.sample), "train": to_dict(config.train),
                   "eval": to_dict(config.eval)},
    }
    if ablation_rows is not None:
        summary["ablations"] = ablation_rows
    # Issue 19: does v_C reward tokens the expert ranks low, and what does tuning fix and break?
    from .audit import odd_token_audit

    summary["odd_token_audit"] = odd_token_audit(records).summary() if records else None
    if config.pair == "toy":  # the toy classifier reads the habit family's worked lines
        from .anatomy import error_anatomy

        summary["error_anatomy"] = error_anatomy(
            {"base": base, **{f"seed {seed}": result for seed, _, result, _ in runs}}, problems=test).summary()
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    provenance.finish()

    report_path = build_demo_report(out_dir, steps, records, trained, base, tuned, comparison,
                                    summary, config, decoded)
    summary["report"] = str(report_path)
    return DemoResult(out_dir, report_path, summary)


def _comparison_summary(comparison) -> dict:
    return {"fixed": int(len(comparison.fixed)), "broken": int(len(comparison.broken)),
            "mcnemar_p": comparison.p_value}


def _gold_path_checks(pair, config: DemoConfig) -> dict:
    """The gold-path check of the demo's pair and of the other bundled pair,
    each on its own family's validation problems, at the demo's beta and alpha."""
    from .diagnostics import contrast_check
    from .models import load_pair
    from .pairs import resolve_pair
    from .toy import TOY_PAIRS, toy_problems

    results = {}
    for name in sorted(TOY_PAIRS, key=lambda n: n != config.pair):
        checked = pair if name == config.pair else load_pair(*resolve_pair(name), device="cpu")
        problems = toy_problems(name, config.check_problems, "validation", seed=config.problem_seed)
        check = contrast_check(checked, problems, beta=config.sample.beta, alpha=config.sample.alpha,
                               system_prompt=config.sample.system_prompt)
        results[name] = check.summary()
    return results


def _ablations(pair, expert_path, unlabeled, train_set, test, records, trained, base, tuned, decoded,
               config: DemoConfig, out_dir: Path, timings: dict, progress: bool) -> list[dict]:
    """Table 6 in miniature: the four LightReasoner variants get the same
    optimizer steps; SFT trains one epoch on its correct rollouts."""
    from dataclasses import replace

    from .records import read_records
    from .sampling import sample
    from .sft import run_sft

    every_step = replace(config.sample, beta=0.0)
    with _stage("ablations: sampling every step", timings, progress):
        all_sampled = sample(pair, None, unlabeled, out_dir / "sampling_every_step", every_step,
                             progress=progress)
    every = read_records(all_sampled.records_path)
    rows = [{"variant": "base expert", "examples": 0, "tuned_tokens": 0, "result": base},
            {"variant": "full method", "examples": len(records), "tuned_tokens": trained.tuned_tokens,
             "result": tuned}]
    variants = [("no selection", "no_selection", every), ("no contrast", "no_contrast", _no_contrast(records)),
                ("neither", "neither", _no_contrast(every))]
    for label, name, variant_records in variants:
        with _stage(f"ablations: {label}", timings, progress):
            t, r = _train_and_evaluate(name, variant_records, expert_path, pair.tokenizer, test, config,
                                       out_dir, progress)
        rows.append({"variant": label, "examples": len(variant_records), "tuned_tokens": t.tuned_tokens,
                     "result": r})
    with _stage("ablations: SFT baseline", timings, progress):
        baseline = run_sft(expert_path, train_set, out_dir / "sft", config=config.train,
                       max_new_tokens=config.eval.max_new_tokens, generation_batch_size=config.eval.batch_size,
                       resume=True, progress=progress)
        merged = _merge(expert_path, baseline.adapter_dir, out_dir / "merged_sft")
        from .evaluation import evaluate
        sft_result = evaluate(str(merged), test, config.eval, out_dir=out_dir / "eval_sft",
                              progress=progress, name="SFT")
        _card_evaluation(merged, sft_result, config)
    rows.append({"variant": "SFT baseline", "examples": baseline.problems_used,
                 "tuned_tokens": baseline.tuned_tokens, "result": sft_result,
                 "seconds": baseline.summary()["seconds"]})
    # Not in the paper's table: the soft labels' own argmax used as a decoder,
    # with no training. Below the base expert, the contrast points away from
    # better answers on this pair, and no amount of tuning towards it can help.
    rows.append({"variant": "contrastive decoding", "examples": 0, "tuned_tokens": 0, "result": decoded})
    table = []
    for row in rows:
        result = row.pop("result")
        table.append({**row, "accuracy": result.accuracy, "low": result.interval[0],
                      "high": result.interval[1],
                      "delta_vs_base": result.accuracy - base.accuracy,
                      "paper": PAPER_ABLATION.get(row["variant"],
                                                  PAPER_GSM8K.get("SFT") if row["variant"] == "SFT baseline" else None)})
    return table


def build_demo_report(out_dir: Path, steps, records, trained, base, tuned, comparison, summary: dict,
                      config: DemoConfig, decoded=None) -> Path:
    """One self-contained HTML page (plotly inlined, token views in plain HTML)."""
    import pandas as pd

    from .viz import (Report, accuracy_comparison, kept_share_by_beta, kl_along_rollout, kl_by_agreement,
                      kl_histogram, loss_curve, token_view)

    beta = config.sample.beta
    report = Report(f"LightReasoner on the bundled pair {summary['pair']!r}",
                    subtitle=f"{summary['train_problems']} train problems sampled, "
                             f"{summary['test_problems']} held-out problems evaluated; every number "
                             f"on this page comes from this run")
    report.add_summary({
        "steps scored": summary["steps"],
        "records kept (KL >= beta)": f"{summary['records']} ({100 * summary['share_kept']:.1f}% of steps)",
        "mean KL, top-1s agree": f"{summary['mean_kl_top1_agree']:.3f} (paper 0.166)",
        "mean KL, top-1s disagree": f"{summary['mean_kl_top1_disagree']:.3f} (paper 1.99)",
        "base expert accuracy": _pct_interval(base),
        "tuned expert accuracy": _pct_interval(tuned),
        "fixed / broken": f"{summary['fixed']} / {summary['broken']} (exact McNemar p = {summary['mcnemar_p']:.3g})",
        **({"decoding by the soft labels' argmax (no training)": _pct_interval(decoded)} if decoded else {}),
        **({"LightReasoner over all seeds": _seeds_text(summary["seeds"], summary["mean_gain"])}
           if len(summary.get("seeds", [])) > 1 else {}),
        **({"gold-path check (before training)": _check_text(summary["gold_path_check"][summary["pair"]])}
           if "gold_path_check" in summary else {}),
        "generations cut at the token limit (base / tuned)": f"{base.n_hit_limit} / {tuned.n_hit_limit}",
    }, heading="Summary")
    if "gold_path_check" in summary:
        report.add_table(gold_path_frame(summary["gold_path_check"]),
                         heading="Before training: does the pair's contrast point towards gold?",
                         caption=GOLD_PATH_CAPTION)
    if len(summary.get("seeds", [])) > 1:
        report.add_table(seeds_frame(summary["seeds"], base.accuracy), heading="LightReasoner, one run per seed",
                         caption="The same records, trained with each seed; accuracy on the same held-out "
                                 "problems. Fixed / broken and the exact McNemar p are against the base expert. "
                                 "The rest of this page looks at the first seed.")
    report.add_figure(kl_histogram(steps, beta=beta), heading="Where the expert and the amateur diverge",
                      caption="Share of steps per KL bin (the paper's Figure 2); steps right of beta become records.")
    report.add_figure(kl_by_agreement(steps, beta=beta),
                      caption="KL where the two models' top-1 tokens agree and where they differ.")
    report.add_figure(kept_share_by_beta(steps, beta=beta), caption="Share of steps kept as beta varies.")
    peaks = steps.groupby("prompt_id")["kl"].max().sort_values(ascending=False)
    top = list(peaks.index[:3])
    if top:
        report.add_figure(kl_along_rollout(steps, top[0], beta=beta),
                          heading="The most critical moments",
                          caption="KL along the rollout with the highest peak (the paper's Figure 3).")
        for pid in top:
            report.add_token_view(token_view(steps, pid, beta=beta, alpha=config.sample.alpha,
                                             title=f"problem {pid}"),
                                  caption="Colour = KL; hover a token for both models' top-5 and, "
                                          "for kept steps, the soft label.")
    from .curves import read_loss_log

    report.add_figure(loss_curve(read_loss_log(trained.adapter_dir), y="kl"), heading="Fine-tuning",
                      caption="KL(v_C || pi_E) at the supervised position, per logged optimizer step "
                              "(the adapter folder's loss.jsonl; its tensorboard/ holds the same curve).")
    bars = [(base, "base expert"), (tuned, "LightReasoner")] + ([(decoded, "decoding by v_C")] if decoded else [])
    report.add_figure(accuracy_comparison([
        {"name": name, "accuracy": r.accuracy, "low": r.interval[0], "high": r.interval[1]} for r, name in bars
    ]), heading="Accuracy on held-out problems",
        caption="95% Wilson intervals. 'decoding by v_C': the base expert and the amateur decode together, "
                "taking at each step the argmax of the soft label (log pi_E - log pi_A inside the alpha "
                "mask), with no training: where tuning towards the labels leads. Above the base expert, the "
                "pair's contrast points towards better answers; below it, away from them.")
    for label, frame in (("Problems fixed by tuning", comparison.fixed),
                         ("Problems broken by tuning", comparison.broken)):
        cols = [c for c in ("id", "question", "gold", "prediction_a", "prediction_b") if c in frame.columns]
        named = {"prediction_a": "base expert", "prediction_b": "tuned expert"}  # their answers
        report.add_table(frame[cols].rename(columns=named), heading=label, max_rows=15)
    if summary.get("error_anatomy"):
        from .study import anatomy_frame

        report.add_table(anatomy_frame([{"name": summary["pair"], "anatomy": summary["error_anatomy"]}]),
                         heading="Error anatomy: what the contrast fixes and what it breaks",
                         caption="Every wrong answer's type (lrkit.error_anatomy, toy classifier): a copy line "
                                 "(G's habit, 5 + 3 = 3), another arithmetic slip, a reading error (right "
                                 "arithmetic on other operands or operations than the gold solution's), other. "
                                 "Per seed: errors after tuning, fixed (wrong of that type before, right after), "
                                 "introduced (right before, wrong of that type after). docs/LADDER.md has it for "
                                 "every amateur of the ladder.")
    if summary.get("odd_token_audit"):
        audit = summary["odd_token_audit"]
        report.add_summary({
            "kept records": audit["kept_steps"], "v_C's argmax is not the expert's top token": audit["not_expert_top"],
            "odd (the expert ranks it low: rank >= 2 and < 0.5 x its top probability)":
                f"{audit['odd']} ({100 * audit['share_odd']:.2f}%)",
            "most frequent odd tokens": ", ".join(f"{t!r} x{c}" for t, c in audit["top_tokens"][:8]) or "none",
        }, heading="Odd-token audit of the kept records (lrkit.odd_token_audit)")
    eff = pd.DataFrame([
        {"stage": name, "seconds": secs} for name, secs in summary["seconds"].items()])
    report.add_summary({
        "problems used": summary["train_problems"],
        "tuned tokens (supervised positions)": summary["tuned_tokens"],
        "all rollout tokens": summary["rollout_tokens"],
        "tuned share of rollout tokens": f"{100 * summary['tuned_tokens'] / max(summary['rollout_tokens'], 1):.1f}%",
        "paper (1.5B): LightReasoner vs SFT": "1000 vs 3952 problems, 0.02M vs 1.77M tuned tokens, 0.5 h vs 4.0 h",
    }, heading="Efficiency")
    report.add_table(eff, caption="Wall time per stage on this machine.")
    if "ablations" in summary:
        report.add_table(_ablation_frame(summary["ablations"]), heading="Ablations (the paper's Table 6 in miniature)",
                         caption="The four LightReasoner variants train for the same optimizer steps; SFT for one "
                                 "epoch on the expert's correct rollouts. Paper column: Qwen2.5-Math-1.5B, "
                                 "average of 6 benchmarks (SFT row: GSM8K). 'contrastive decoding' is not "
                                 "in the paper: the expert decodes by the soft label's argmax "
                                 "(log pi_E - log pi_A inside the alpha mask) with no training, which "
                                 "shows whether this pair's contrast points towards better answers.")
    report.add_table(settings_frame(summary["config"]), heading="Settings", max_rows=500,
                     caption="Every setting of this run, per stage (summary.json holds them too).")
    runs = read_provenance(out_dir)
    if runs:
        report.add_table(provenance_frame(runs[-1]), max_rows=100,
                         caption="Provenance of this run (provenance.json): the code, the libraries, "
                                 "the device and the command that produced this page.")
    return report.save(out_dir / "report.html")


GOLD_PATH_CAPTION = (
    "Both models read 200 validation gold solutions token by token. At the steps the method keeps "
    "(KL >= beta), where the soft label's argmax differs from the expert's own, it either fixes a token "
    "(the expert's choice is wrong, v_C's is gold) or breaks one. 'mass on gold' compares v_C with the "
    "expert's own distribution inside the same mask (the 'no contrast' target). A pair suits the method "
    "when v_C fixes at least twice as many tokens as it breaks (over >= 50 disagreements) and moves at "
    "least 0.03 of mass towards gold. toy: the expert learned a general corpus first and keeps some of its "
    "habits, which the amateur (general corpus only) holds more strongly, so the contrast removes them. "
    "toy-shared: both models learned the same data, so the contrast penalises what the amateur also knows.")


def gold_path_frame(checks: dict):
    """The gold-path checks of several pairs side by side, one row per pair."""
    import pandas as pd

    return pd.DataFrame([{
        "pair": name, "steps kept": f"{c['kept']:,} of {c['steps']:,}",
        "v_C differs from the expert": c["disagreements"], "fixes": c["fixes"], "breaks": c["breaks"],
        "mass on gold, v_C": f"{c['label_gold_mass']:.3f}", "mass on gold, expert (masked)": f"{c['expert_gold_mass']:.3f}",
        "suits the method": "yes" if c["passes"] else "no",
    } for name, c in checks.items()])


def seeds_frame(seeds: list[dict], base_accuracy: float):
    import pandas as pd

    return pd.DataFrame([{
        "seed": row["seed"], "accuracy [95% interval]": _pct_pair(row["accuracy"], row["interval"]),
        "change vs base (points)": f"{100 * row['gain']:+.1f}", "fixed / broken": f"{row['fixed']} / {row['broken']}",
        "McNemar p": f"{row['mcnemar_p']:.3g}", "tuned tokens": f"{row['tuned_tokens']:,}",
    } for row in seeds])


def _pct_pair(accuracy: float, interval) -> str:
    return f"{100 * accuracy:.1f}% [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"


def _seeds_text(seeds: list[dict], mean_gain: float) -> str:
    gains = ", ".join(f"{100 * row['gain']:+.1f}" for row in seeds)
    return f"mean change {100 * mean_gain:+.1f} points over {len(seeds)} seeds ({gains})"


def _check_text(check: dict) -> str:
    return (f"v_C fixes {check['fixes']} and breaks {check['breaks']} of the expert's tokens; mass on gold "
            f"{check['label_gold_mass']:.3f} vs {check['expert_gold_mass']:.3f} -> "
            f"{'suits the method' if check['passes'] else 'does not suit the method'}")


def _setting_text(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return "none" if value is None else str(value)


def settings_frame(config: dict):
    """One row per setting: stage, setting, value."""
    import pandas as pd

    return pd.DataFrame([{"stage": stage, "setting": name, "value": _setting_text(value)}
                         for stage, values in config.items() for name, value in values.items()])


def provenance_frame(entry: dict):
    """One provenance entry as rows of item / value."""
    import pandas as pd

    return pd.DataFrame([{"item": key.replace("_", " "), "value": _setting_text(value)}
                         for key, value in entry.items()])


def _ablation_frame(rows: list[dict]):
    """The ablation table as people read it: percentages, intervals, points."""
    import pandas as pd

    return pd.DataFrame([{
        "variant": row["variant"],
        "examples": f"{row['examples']:,}" if row["examples"] else "",
        "tuned tokens": f"{row['tuned_tokens']:,}" if row["tuned_tokens"] else "",
        "accuracy [95% interval]": f"{100 * row['accuracy']:.1f}% [{100 * row['low']:.1f}, {100 * row['high']:.1f}]",
        "change vs base (points)": f"{100 * row['delta_vs_base']:+.1f}" if row["variant"] != "base expert" else "",
        "paper": "" if row["paper"] is None else f"{row['paper']:.1f}",
    } for row in rows])


def _pct_interval(result) -> str:
    low, high = result.interval
    return f"{100 * result.accuracy:.1f}% [{100 * low:.1f}, {100 * high:.1f}] of {result.n}"


def print_summary(summary: dict) -> None:
    def pct(x):
        return f"{100 * x:.1f}%"

    b, t = summary["base_interval"], summary["tuned_interval"]
    print()
    print(f"LightReasoner on the bundled pair {summary.get('pair', 'toy')!r}")
    for name, check in summary.get("gold_path_check", {}).items():
        print(f"  gold-path check, {name}: {_check_text(check)}")
    print(f"  sampled {summary['train_problems']} problems, {summary['steps']} steps; kept "
          f"{summary['records']} ({pct(summary['share_kept'])}) at beta {summary['config']['sample']['beta']}")
    print(f"  mean KL: top-1s agree {summary['mean_kl_top1_agree']:.3f}, disagree "
          f"{summary['mean_kl_top1_disagree']:.3f}")
    print(f"  tuned tokens {summary['tuned_tokens']} of {summary['rollout_tokens']} rollout tokens")
    print(f"  accuracy on {summary['test_problems']} held-out problems: base {pct(summary['base_accuracy'])} "
          f"[{pct(b[0])}, {pct(b[1])}] -> tuned {pct(summary['tuned_accuracy'])} [{pct(t[0])}, {pct(t[1])}]")
    print(f"  fixed {summary['fixed']}, broken {summary['broken']} (McNemar p = {summary['mcnemar_p']:.3g})")
    if len(summary.get("seeds", [])) > 1:
        print(f"  LightReasoner over all seeds: {_seeds_text(summary['seeds'], summary['mean_gain'])}")
        for row in summary["seeds"]:
            print(f"    seed {row['seed']}: {_pct_pair(row['accuracy'], row['interval'])}, fixed {row['fixed']}, "
                  f"broken {row['broken']} (McNemar p = {row['mcnemar_p']:.3g})")
    if "hit_token_limit" in summary:
        limits = summary["hit_token_limit"]
        print(f"  generations cut at the token limit: base {limits['base']}, tuned {limits['tuned']}, "
              f"decoding by v_C {limits['contrastive_decoding']} (of {summary['test_problems']} each)")
    if "contrastive_decoding_accuracy" in summary:
        c = summary["contrastive_decoding_interval"]
        cd = summary.get("contrastive_decoding_vs_base", {})
        print(f"  decoding by the soft labels' argmax, no training: "
              f"{pct(summary['contrastive_decoding_accuracy'])} [{pct(c[0])}, {pct(c[1])}]"
              + (f", fixed {cd['fixed']}, broken {cd['broken']} (McNemar p = {cd['mcnemar_p']:.3g})" if cd else ""))
    if summary.get("odd_token_audit"):
        audit = summary["odd_token_audit"]
        print(f"  odd-token audit: v_C's argmax is a token the expert ranks low at {audit['odd']} of "
              f"{audit['kept_steps']} kept records ({100 * audit['share_odd']:.2f}%)")
    if summary.get("error_anatomy"):
        moves = summary["error_anatomy"]["transitions"]
        first = next(iter(moves))
        print(f"  error anatomy ({first}): " + "; ".join(
            f"{t} {c['base']} -> {c['after']} (fixed {c['fixed']}, introduced {c['introduced']})"
            for t, c in moves[first].items()))
    if "ablations" in summary:
        print("  ablations (accuracy, change vs base, paper's figure):")
        for row in summary["ablations"]:
            paper = "" if row["paper"] is None else f"  paper {row['paper']}"
            print(f"    {row['variant']:<20} {pct(row['accuracy']):>6}  {100 * row['delta_vs_base']:+.1f}{paper}")
    print(f"  time: {summary['seconds']} (total {summary['total_seconds']} s)")
    if "records_dataset" in summary:
        print(f"  records as a dataset (parquet + card): {summary['records_dataset']}")
        print(f"  training curves: tensorboard --logdir {summary['tensorboard']}")
    print(f"  report: {summary.get('report')}")
