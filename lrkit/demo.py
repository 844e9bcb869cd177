"""``lrkit demo``: the whole method on a bundled toy pair, offline, in minutes.

    lrkit demo                          # check, sample, select, train (3 seeds), evaluate, report
    lrkit demo --ablations              # + the paper's Table 6 in miniature and the SFT baseline
    lrkit demo --pair toy-shared --out runs/demo-toy-shared   # the control: where the method fails

Before any training the demo runs the gold-path check (``lrkit.contrast_check``)
on both bundled pairs, the quickest test of whether a pair suits the method.

Every setting was chosen on train problems only (a validation slice of the
train split); the held-out test problems are used for the final numbers alone.
The demo is :meth:`lrkit.Experiment.run`: a rerun in its folder returns what
each stage stored (and resumes what was interrupted); other settings go to
folders of their own beside them.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from lrkit.config import ExperimentConfig
from lrkit.results import ExperimentSummary
from lrkit.toy import TOY_PAIRS


@dataclass
class DemoResult:
    out_dir: Path
    report_path: Path
    summary: ExperimentSummary


def run_demo(out_dir="runs/demo", config: Optional[ExperimentConfig] = None, ablations: bool = False,
             fresh: bool = False, progress: bool = True, device="cpu", dtype="auto") -> DemoResult:
    """The experiment on a bundled pair (``fresh``: delete ``out_dir`` first), on the CPU
    unless ``device`` says otherwise (the GPU check runs it on CUDA)."""
    from lrkit.experiment import Experiment  # torch and the stages: not for `lrkit --help`
    config = config or ExperimentConfig()
    if config.pair not in TOY_PAIRS:
        raise ValueError(f"--pair must be one of {', '.join(TOY_PAIRS)} (the bundled pairs), got {config.pair!r}")
    if config.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {config.seeds}")
    out_dir = Path(out_dir)
    if fresh and out_dir.exists():
        shutil.rmtree(out_dir)
    summary = Experiment(out_dir, config, device=device, dtype=dtype, progress=progress).run(ablations=ablations)
    return DemoResult(out_dir, Path(summary.report), summary)


def print_summary(summary: ExperimentSummary) -> None:
    from lrkit.viz.tables import check_text, pct_pair, seeds_text  # pandas and plotly: not for `lrkit --help`

    def pct(x):
        return f"{100 * x:.1f}%"

    b, t = summary.base_interval, summary.tuned_interval
    print()
    pair = summary.pair
    print(f"LightReasoner on {'the bundled pair ' if pair in TOY_PAIRS else ''}{pair!r}"
          + (f" ({summary.dtype} on {summary.device})" if summary.dtype else ""))
    for line in summary.paper_differences if pair not in TOY_PAIRS else []:
        print(f"  differs from the paper: {line}")
    if summary.scout:
        scout = summary.scout
        print(f"  scout (recorded {scout['recorded_at']}, before training): decoding by v_C "
              f"{pct(scout['cd_accuracy'])} vs greedy {pct(scout['greedy_accuracy'])} on {scout['problems']} "
              f"validation problems, score {scout['score']:+.1f} -> predicts a {scout['predicted']}")
    for name, check in summary.gold_path_check.items():
        print(f"  gold-path check, {name}: {check_text(check)}")
    print(f"  sampled {summary.train_problems} problems, {summary.steps} steps; kept "
          f"{summary.records} ({pct(summary.share_kept)}) at beta {summary.config['sample']['beta']}")
    print(f"  mean KL: top-1s agree {summary.mean_kl_top1_agree:.3f}, disagree "
          f"{summary.mean_kl_top1_disagree:.3f}")
    print(f"  tuned tokens {summary.tuned_tokens} of {summary.rollout_tokens} rollout tokens")
    print(f"  accuracy on {summary.test_problems} held-out problems: base {pct(summary.base_accuracy)} "
          f"[{pct(b[0])}, {pct(b[1])}] -> tuned {pct(summary.tuned_accuracy)} [{pct(t[0])}, {pct(t[1])}]")
    print(f"  fixed {summary.fixed}, broken {summary.broken} (McNemar p = {summary.mcnemar_p:.3g})")
    if len(summary.seeds) > 1:
        print(f"  LightReasoner over all seeds: {seeds_text(summary.seeds, summary.mean_gain)}")
        for row in summary.seeds:
            print(f"    seed {row['seed']}: {pct_pair(row['accuracy'], row['interval'])}, fixed {row['fixed']}, "
                  f"broken {row['broken']} (McNemar p = {row['mcnemar_p']:.3g})")
    if summary.hit_token_limit:
        limits = summary.hit_token_limit
        print(f"  generations cut at the token limit: base {limits['base']}, tuned {limits['tuned']}"
              + (f", decoding by v_C {limits['contrastive_decoding']}" if "contrastive_decoding" in limits else "")
              + f" (of {summary.test_problems} each)")
    if summary.contrastive_decoding_accuracy is not None:
        c = summary.contrastive_decoding_interval
        cd = (summary.contrastive_decoding_vs_base or {})
        print(f"  decoding by the soft labels' argmax, no training: "
              f"{pct(summary.contrastive_decoding_accuracy)} [{pct(c[0])}, {pct(c[1])}]"
              + (f", fixed {cd['fixed']}, broken {cd['broken']} (McNemar p = {cd['mcnemar_p']:.3g})" if cd else ""))
    if summary.scout_verdict:
        print(f"  {summary.scout_verdict['text']}")
    if summary.odd_token_audit:
        audit = summary.odd_token_audit
        print(f"  odd-token audit: v_C's argmax is a token the expert ranks low at {audit['odd']} of "
              f"{audit['kept_steps']} kept records ({100 * audit['share_odd']:.2f}%)")
    if summary.error_anatomy:
        moves = summary.error_anatomy["transitions"]
        first = next(iter(moves))
        print(f"  error anatomy ({first}): " + "; ".join(
            f"{t} {c['base']} -> {c['after']} (fixed {c['fixed']}, introduced {c['introduced']})"
            for t, c in moves[first].items()))
    if summary.ablations:
        print("  ablations (accuracy, change vs base, paper's figure):")
        for row in summary.ablations:
            paper = "" if row["paper"] is None else f"  paper {row['paper']}"
            print(f"    {row['variant']:<20} {pct(row['accuracy']):>6}  {100 * row['delta_vs_base']:+.1f}{paper}")
    print(f"  time: {summary.total_seconds:.1f} s in all; " + ", ".join(
        f"{stage} {seconds:.1f} s" for stage, seconds in summary.seconds.items()))
    if summary.records_dataset:
        print(f"  records as a dataset (parquet + card): {summary.records_dataset}")
        print(f"  training curves: tensorboard --logdir {summary.tensorboard}")
    print(f"  report: {summary.report}")
