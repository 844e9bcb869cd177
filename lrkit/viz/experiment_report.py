"""The HTML report of an experiment (``lrkit demo``): every number on the page comes
from the run's summary and its stage folders; nothing here runs a model."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from lrkit.paper import PAPER_EFFICIENCY, PAPER_PRELIMINARY
from lrkit.provenance import read_provenance
from lrkit.viz.figures import (
    accuracy_comparison, kept_share_by_beta, kl_along_rollout, kl_by_agreement, kl_histogram, loss_curve)
from lrkit.viz.report import Report
from lrkit.viz.tables import (
    GOLD_PATH_CAPTION, check_text, pct_interval, seeds_text, ablation_frame, anatomy_frame, gold_path_frame,
    provenance_frame, seeds_frame, settings_frame)
from lrkit.viz.tokens import token_view


def _paper_efficiency() -> str:
    """The paper's LightReasoner-vs-SFT budget in one line (lrkit.paper.PAPER_EFFICIENCY)."""
    lr, sft = PAPER_EFFICIENCY["LightReasoner"], PAPER_EFFICIENCY["SFT"]
    return (f"{lr['problems']} vs {sft['problems']} problems, {lr['tuned_tokens'] / 1e6:.2f}M vs "
            f"{sft['tuned_tokens'] / 1e6:.2f}M tuned tokens, {lr['hours']} h vs {sft['hours']} h")


def experiment_report(out_dir: Path, steps, records, loss_history, base, tuned, comparison, summary,
                      decoded=None, alpha: float = 0.2) -> Path:
    """One self-contained HTML page (plotly inlined, token views in plain HTML) of an
    experiment's summary, its first seed's training curve and results; ``out_dir/report.html``."""
    beta = summary.config["sample"]["beta"]
    bundled = summary.pair in ("toy", "toy-shared")
    report = Report(f"LightReasoner on {'the bundled pair ' if bundled else ''}{summary.pair!r}",
                    subtitle=f"{summary.train_problems} train problems sampled, "
                             f"{summary.test_problems} held-out problems evaluated; every number "
                             f"on this page comes from this run")
    report.add_summary({
        "steps scored": summary.steps,
        "records kept (KL >= beta)": f"{summary.records} ({100 * summary.share_kept:.1f}% of steps)",
        "mean KL, top-1s agree": f"{summary.mean_kl_top1_agree:.3f} (paper {PAPER_PRELIMINARY['mean_kl_top1_agree']})",
        "mean KL, top-1s disagree": f"{summary.mean_kl_top1_disagree:.3f} "
                                    f"(paper {PAPER_PRELIMINARY['mean_kl_top1_disagree']})",
        "base expert accuracy": pct_interval(base),
        "tuned expert accuracy": pct_interval(tuned),
        "fixed / broken": f"{summary.fixed} / {summary.broken} (exact McNemar p = {summary.mcnemar_p:.3g})",
        **({"decoding by the soft labels' argmax (no training)": pct_interval(decoded)} if decoded else {}),
        **({"LightReasoner over all seeds": seeds_text(summary.seeds, summary.mean_gain)}
           if len(summary.seeds) > 1 else {}),
        **({"gold-path check (before training)": check_text(summary.gold_path_check[summary.pair])}
           if summary.gold_path_check else {}),
        "generations cut at the token limit (base / tuned)": f"{base.n_hit_limit} / {tuned.n_hit_limit}",
    }, heading="Summary")
    if summary.scout:
        scout, held = summary.scout, (summary.scout_verdict or {})
        report.add_summary({
            "recorded": f"{scout['recorded_at']} (before sampling and training)",
            "score (decoding by v_C minus greedy, validation)":
                f"{scout['score']:+.1f} points ({100 * scout['cd_accuracy']:.1f}% vs {100 * scout['greedy_accuracy']:.1f}% "
                f"on {scout['problems']} problems; fixed {scout['cd_fixed']}, broken {scout['cd_broken']})",
            "gold-path check": f"v_C fixes {scout['check_fixes']} expert tokens, breaks {scout['check_breaks']}; "
                               f"mass gain {scout['mass_gain'] if scout['mass_gain'] is None else round(scout['mass_gain'], 3)}",
            "odd tokens among kept gold-path steps": "n/a" if scout["odd_share"] is None
            else f"{100 * scout['odd_share']:.1f}%",
            "prediction": scout["predicted"],
            "on the test problems": held.get("text", "not measured yet"),
        }, heading="The scout's prediction, and whether it held")
    if summary.paper_differences:
        report.add_summary({line.split(":", 1)[0]: line.split(":", 1)[1].strip()
                            for line in summary.paper_differences},
                           heading="Settings that differ from the paper's")
    if summary.gold_path_check:
        report.add_table(gold_path_frame(summary.gold_path_check),
                         heading="Before training: does the pair's contrast point towards gold?",
                         caption=GOLD_PATH_CAPTION)
    if len(summary.seeds) > 1:
        report.add_table(seeds_frame(summary.seeds, base.accuracy), heading="LightReasoner, one run per seed",
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
            report.add_token_view(token_view(steps, pid, beta=beta, alpha=alpha,
                                             title=f"problem {pid}"),
                                  caption="Colour = KL; hover a token for both models' top-5 and, "
                                          "for kept steps, the soft label.")
    report.add_figure(loss_curve(pd.DataFrame(loss_history), y="kl"), heading="Fine-tuning",
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
    if summary.error_anatomy:
        caption = ("Every wrong answer's type (lrkit.error_anatomy, GSM8K classifier): cut at the token limit, "
                   "no final answer, an arithmetic slip (a worked line a op b = c with a wrong result), reasoning "
                   "(everything else). Per seed: errors after tuning, fixed (wrong of that type before, right "
                   "after), introduced (right before, wrong of that type after)." if not bundled else None)
        report.add_table(anatomy_frame([{"name": summary.pair, "anatomy": summary.error_anatomy}]),
                         heading="Error anatomy: what the contrast fixes and what it breaks",
                         caption=caption or "Every wrong answer's type (lrkit.error_anatomy, toy classifier): a copy line "
                                 "(G's habit, 5 + 3 = 3), another arithmetic slip, a reading error (right "
                                 "arithmetic on other operands or operations than the gold solution's), other. "
                                 "Per seed: errors after tuning, fixed (wrong of that type before, right after), "
                                 "introduced (right before, wrong of that type after). docs/LADDER.md has it for "
                                 "every amateur of the ladder.")
    if summary.odd_token_audit:
        audit = summary.odd_token_audit
        report.add_summary({
            "kept records": audit["kept_steps"], "v_C's argmax is not the expert's top token": audit["not_expert_top"],
            "odd (the expert ranks it low: rank >= 2 and < 0.5 x its top probability)":
                f"{audit['odd']} ({100 * audit['share_odd']:.2f}%)",
            "most frequent odd tokens": ", ".join(f"{t!r} x{c}" for t, c in audit["top_tokens"][:8]) or "none",
        }, heading="Odd-token audit of the kept records (lrkit.odd_token_audit)")
    eff = pd.DataFrame([
        {"stage": name, "seconds": secs} for name, secs in summary.seconds.items()])
    report.add_summary({
        "problems used": summary.train_problems,
        "tuned tokens (supervised positions)": summary.tuned_tokens,
        "all rollout tokens": summary.rollout_tokens,
        "tuned share of rollout tokens": f"{100 * summary.tuned_tokens / max(summary.rollout_tokens, 1):.1f}%",
        "paper (1.5B): LightReasoner vs SFT": _paper_efficiency(),
    }, heading="Efficiency")
    report.add_table(eff, caption="Wall time per stage on this machine.")
    if summary.ablations:
        report.add_table(ablation_frame(summary.ablations), heading="Ablations (the paper's Table 6 in miniature)",
                         caption="The four LightReasoner variants train for the same optimizer steps; SFT for one "
                                 "epoch on the expert's correct rollouts. Paper column: Qwen2.5-Math-1.5B, "
                                 "average of 6 benchmarks (SFT row: GSM8K). 'contrastive decoding' is not "
                                 "in the paper: the expert decodes by the soft label's argmax "
                                 "(log pi_E - log pi_A inside the alpha mask) with no training, which "
                                 "shows whether this pair's contrast points towards better answers.")
    report.add_table(settings_frame(summary.config), heading="Settings", max_rows=500,
                     caption="Every setting of this run, per stage (summary.json holds them too).")
    runs = read_provenance(out_dir)
    if runs:
        report.add_table(provenance_frame(runs[-1]), max_rows=100,
                         caption="Provenance of this run (provenance.json): the code, the libraries, "
                                 "the device and the command that produced this page.")
    return report.save(out_dir / "report.html")
