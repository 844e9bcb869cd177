"""Tables (pandas) and two-panel figures that set a run's numbers beside the paper's.

They take step DataFrames, records, summaries and results; nothing here runs a model.
"""
from __future__ import annotations

import math
from typing import Sequence

import pandas as pd
from plotly.subplots import make_subplots

from lrkit.paper import PAPER_ABLATION, PAPER_EFFICIENCY, PAPER_GSM8K, PAPER_PRELIMINARY
from lrkit.viz.figures import accuracy_comparison

def preliminary_table(summary: dict, beta: float = 0.4):
    """The paper's preliminary statistics: this run's (a sampling run's ``summary``,
    ``lrkit.sample(...).summary``) beside the paper's."""
    labels = {
        "share_kl_below_0.1": "share of steps with KL < 0.1",
        "share_kl_at_least_0.4": "share of steps with KL >= 0.4",
        "mean_kl_top1_agree": "mean KL where the top-1 tokens agree",
        "mean_kl_top1_disagree": "mean KL where the top-1 tokens differ",
        "share_agree_with_kl_above_0.4": "share of agreeing steps with KL > 0.4",
    }
    rows = [{"statistic": text, "this run": summary[key], "paper (Qwen2.5-Math-1.5B vs 0.5B)": PAPER_PRELIMINARY[key]}
            for key, text in labels.items()]
    rows.append({"statistic": f"share of steps kept at beta = {beta:g}", "this run": summary["share_kept"],
                 "paper (Qwen2.5-Math-1.5B vs 0.5B)": None})
    return pd.DataFrame(rows).set_index("statistic")


def kl_thresholds(steps, thresholds: Sequence[float] = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)):
    """Share and number of steps whose KL reaches each threshold."""
    kl = steps["kl"].to_numpy()
    return pd.DataFrame([{"KL >=": t, "steps": int((kl >= t).sum()), "share": float((kl >= t).mean())}
                         for t in thresholds]).set_index("KL >=")


def entropy_quadrants(steps, threshold: float = 0.5):
    """Steps split by whether each model is confident (entropy < ``threshold`` nats):
    how many, their mean KL and how many pass the run's beta."""
    confident_e = steps["expert_entropy"] < threshold
    confident_a = steps["amateur_entropy"] < threshold
    rows = []
    for name, mask in (("both confident", confident_e & confident_a),
                       ("confident expert, uncertain amateur", confident_e & ~confident_a),
                       ("uncertain expert, confident amateur", ~confident_e & confident_a),
                       ("both uncertain", ~confident_e & ~confident_a)):
        part = steps[mask]
        rows.append({"steps": int(len(part)), "share of steps": float(mask.mean()),
                     "mean KL": float(part["kl"].mean()) if len(part) else float("nan"),
                     "share kept": float(part["kept"].mean()) if len(part) else float("nan"),
                     "share of all kept steps": float(part["kept"].sum() / max(int(steps["kept"].sum()), 1))})
    return pd.DataFrame(rows, index=[r for r in ("both confident", "confident expert, uncertain amateur",
                                                  "uncertain expert, confident amateur", "both uncertain")])


def confident_expert_steps(steps, threshold: float = 0.5, n: int = 10):
    """The ``n`` highest-KL steps where the expert is confident and the amateur is not."""
    cols = ["prompt_id", "step", "token", "expert_top1", "amateur_top1", "expert_entropy",
            "amateur_entropy", "kl", "kept"]
    mask = (steps["expert_entropy"] < threshold) & (steps["amateur_entropy"] >= threshold)
    return steps.loc[mask, cols].sort_values("kl", ascending=False).head(n).reset_index(drop=True)


def peak_problems(steps, n: int = 3) -> list:
    """Ids of the ``n`` rollouts with the highest KL peak."""
    return list(steps.groupby("prompt_id")["kl"].max().sort_values(ascending=False).index[:n])


def record_table(record: dict):
    """One record's soft label: each plausible token with both models' probabilities."""
    return pd.DataFrame({
        "token": record["tokens"], "token_id": record["token_ids"],
        "expert p": [math.exp(x) for x in record["expert_logprobs"]],
        "amateur p": [math.exp(x) for x in record["amateur_logprobs"]],
        "soft label v_C": record["weights"]})


def accuracy_row(name: str, result) -> dict:
    low, high = result.interval
    return {"name": name, "accuracy": result.accuracy, "low": low, "high": high}


def beside_paper(ours: Sequence[dict], paper: dict, title: str, ours_title: str = "this run",
                 paper_title: str = "paper"):
    """Two bar charts in one figure: this run's accuracies (with 95% intervals) and
    the paper's (percentages, no intervals published)."""
    names = [row["name"] for row in ours]
    # the paper's bars in this run's order, so a bar's colour means the same variant in both
    ordered = sorted(paper.items(), key=lambda kv: names.index(kv[0]) if kv[0] in names else len(names))
    left = accuracy_comparison(list(ours))
    right = accuracy_comparison([{"name": k, "accuracy": v / 100, "low": v / 100, "high": v / 100}
                                 for k, v in ordered])
    fig = make_subplots(rows=1, cols=2, subplot_titles=(ours_title, paper_title), horizontal_spacing=0.08)
    for trace in left.data:
        fig.add_trace(trace, row=1, col=1)
    for trace in right.data:
        trace.error_y = None
        fig.add_trace(trace, row=1, col=2)
    fig.update_layout(template="plotly_white", title=title, showlegend=False, height=420)
    fig.update_yaxes(tickformat=".0%", rangemode="tozero", range=[0, 1])
    return fig


def efficiency_table(sampled, trained, sft=None):
    """Problems, tuned tokens and time (sampling or rollouts, and training) of
    LightReasoner and the SFT baseline (a ``Workshop.sft()`` summary), beside the
    paper's (whose hours cover the whole method)."""
    summary = sampled.summary
    sampling_seconds = summary["rollout_s"] + summary["scoring_s"]
    rows = [{"method": "LightReasoner", "problems sampled": summary["problems"],
             "problems trained on": trained.problems, "tuned tokens": trained.tuned_tokens,
             "rollout tokens": summary.get("steps"),
             "sampling seconds": round(sampling_seconds, 1),
             "training seconds": round(trained.seconds, 1)}]
    if sft is not None:
        s = sft.summary() if hasattr(sft, "summary") else dict(sft)
        rows.append({"method": "SFT", "problems sampled": s.get("problems_rolled_out"),
                     "problems trained on": s.get("problems"), "tuned tokens": s.get("tuned_tokens"),
                     "rollout tokens": s.get("rollout_tokens"),
                     "sampling seconds": s.get("rollout_seconds"), "training seconds": s.get("train_seconds")})
    for row in rows:
        paper = PAPER_EFFICIENCY[row["method"]]
        row.update({"paper problems trained on": paper["problems"], "paper tuned tokens": int(paper["tuned_tokens"]),
                    "paper hours": paper["hours"]})
    return pd.DataFrame(rows).set_index("method")


def anatomy_frame(ladder: list):
    """Per amateur and error type: base errors, and per seed errors after / fixed / introduced."""
    rows = []
    for row in ladder:
        anatomy = row["anatomy"]
        for t in anatomy["types"]:
            base = anatomy["counts"]["base"][t]
            cells = [anatomy["transitions"][m][t] for m in anatomy["models"][1:]]
            rows.append({"amateur": row["name"], "type": t, "base errors": base,
                         "errors after (per seed)": ", ".join(str(c["after"]) for c in cells),
                         "fixed": ", ".join(str(c["fixed"]) for c in cells),
                         "introduced": ", ".join(str(c["introduced"]) for c in cells)})
    return pd.DataFrame(rows)


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
    return pd.DataFrame([{
        "pair": name, "steps kept": f"{c['kept']:,} of {c['steps']:,}",
        "v_C differs from the expert": c["disagreements"], "fixes": c["fixes"], "breaks": c["breaks"],
        "mass on gold, v_C": f"{c['label_gold_mass']:.3f}", "mass on gold, expert (masked)": f"{c['expert_gold_mass']:.3f}",
        "suits the method": _verdict_words(c),
    } for name, c in checks.items()])


def seeds_frame(seeds: list[dict], base_accuracy: float):
    return pd.DataFrame([{
        "seed": row["seed"], "accuracy [95% interval]": pct_pair(row["accuracy"], row["interval"]),
        "change vs base (points)": f"{100 * row['gain']:+.1f}", "fixed / broken": f"{row['fixed']} / {row['broken']}",
        "McNemar p": f"{row['mcnemar_p']:.3g}", "tuned tokens": f"{row['tuned_tokens']:,}",
    } for row in seeds])


def pct_pair(accuracy: float, interval) -> str:
    return f"{100 * accuracy:.1f}% [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"


def seeds_text(seeds: list[dict], mean_gain: float) -> str:
    gains = ", ".join(f"{100 * row['gain']:+.1f}" for row in seeds)
    return f"mean change {100 * mean_gain:+.1f} points over {len(seeds)} seeds ({gains})"


def _verdict_words(check: dict) -> str:
    """The gold-path check's verdict (a summary from before verdicts were recorded: its gate)."""
    verdict = check.get("verdict") or ("suits" if check["passes"] else "does not suit")
    return {"suits": "yes", "does not suit": "no", "leans to suit": "leans yes (too few disagreements)",
            "leans against": "leans no (too few disagreements)"}[verdict]


def check_text(check: dict) -> str:
    verdict = check.get("verdict") or ("suits" if check["passes"] else "does not suit")
    words = {"suits": "suits the method", "does not suit": "does not suit the method",
             "leans to suit": "leans towards suiting the method (too few disagreements to pass)",
             "leans against": "leans against the method (too few disagreements to decide)"}[verdict]
    return (f"v_C fixes {check['fixes']} and breaks {check['breaks']} of the expert's tokens; mass on gold "
            f"{check['label_gold_mass']:.3f} vs {check['expert_gold_mass']:.3f} -> {words}")


def _setting_text(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return "none" if value is None else str(value)


def settings_frame(config: dict):
    """One row per setting: stage, setting, value."""
    return pd.DataFrame([{"stage": stage, "setting": name, "value": _setting_text(value)}
                         for stage, values in config.items() for name, value in values.items()])


def provenance_frame(entry: dict):
    """One provenance entry as rows of item / value."""
    return pd.DataFrame([{"item": key.replace("_", " "), "value": _setting_text(value)}
                         for key, value in entry.items()])


def ablation_row(variant: str, examples: int, tuned_tokens: int, result, base) -> dict:
    """One row of the ablation table (the paper's Table 6): a variant's result against the
    base expert's, with the paper's figure where it has one."""
    return {"variant": variant, "examples": examples, "tuned_tokens": tuned_tokens, "accuracy": result.accuracy,
            "low": result.interval[0], "high": result.interval[1], "delta_vs_base": result.accuracy - base.accuracy,
            "paper": PAPER_ABLATION.get(variant, PAPER_GSM8K.get("SFT") if variant == "SFT baseline" else None)}


def ablation_frame(rows: list[dict]):
    """The ablation table as people read it: percentages, intervals, points."""
    return pd.DataFrame([{
        "variant": row["variant"],
        "examples": f"{row['examples']:,}" if row["examples"] else "",
        "tuned tokens": f"{row['tuned_tokens']:,}" if row["tuned_tokens"] else "",
        "accuracy [95% interval]": f"{100 * row['accuracy']:.1f}% [{100 * row['low']:.1f}, {100 * row['high']:.1f}]",
        "change vs base (points)": f"{100 * row['delta_vs_base']:+.1f}" if row["variant"] != "base expert" else "",
        "paper": "" if row["paper"] is None else f"{row['paper']:.1f}",
    } for row in rows])


def pct_interval(result) -> str:
    low, high = result.interval
    return f"{100 * result.accuracy:.1f}% [{100 * low:.1f}, {100 * high:.1f}] of {result.n}"


