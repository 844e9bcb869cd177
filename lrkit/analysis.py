"""Analysis helpers for the notebooks: the paper's preliminary statistics,
KL and entropy tables, and the tables and figures that set a run beside the
paper's numbers. They take step DataFrames, records and results; they load a
model only in ``soft_label_fit``.
"""
from __future__ import annotations

from typing import Sequence

from .config import TrainConfig

PAPER_PRELIMINARY = {  # Qwen2.5-Math-1.5B vs Qwen2.5-0.5B, 100 GSM8K problems, 128 tokens
    "share_kl_below_0.1": 0.59, "share_kl_at_least_0.4": 0.20,
    "mean_kl_top1_agree": 0.166, "mean_kl_top1_disagree": 1.99,
    "share_agree_with_kl_above_0.4": 0.10,
}


def preliminary_table(steps, beta: float = 0.4):
    """The paper's preliminary statistics, this run's beside the paper's."""
    import pandas as pd

    from .sampling import summarize_steps

    ours = summarize_steps(steps)
    labels = {
        "share_kl_below_0.1": "share of steps with KL < 0.1",
        "share_kl_at_least_0.4": "share of steps with KL >= 0.4",
        "mean_kl_top1_agree": "mean KL where the top-1 tokens agree",
        "mean_kl_top1_disagree": "mean KL where the top-1 tokens differ",
        "share_agree_with_kl_above_0.4": "share of agreeing steps with KL > 0.4",
    }
    rows = [{"statistic": text, "this run": ours[key], "paper (Qwen2.5-Math-1.5B vs 0.5B)": PAPER_PRELIMINARY[key]}
            for key, text in labels.items()]
    rows.append({"statistic": f"share of steps kept at beta = {beta:g}", "this run": ours["share_kept"],
                 "paper (Qwen2.5-Math-1.5B vs 0.5B)": None})
    return pd.DataFrame(rows).set_index("statistic")


def kl_thresholds(steps, thresholds: Sequence[float] = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)):
    """Share and number of steps whose KL reaches each threshold."""
    import pandas as pd

    kl = steps["kl"].to_numpy()
    return pd.DataFrame([{"KL >=": t, "steps": int((kl >= t).sum()), "share": float((kl >= t).mean())}
                         for t in thresholds]).set_index("KL >=")


def entropy_quadrants(steps, threshold: float = 0.5):
    """Steps split by whether each model is confident (entropy < ``threshold`` nats):
    how many, their mean KL and how many pass the run's beta."""
    import pandas as pd

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
    import math

    import pandas as pd

    return pd.DataFrame({
        "token": record["tokens"], "token_id": record["token_ids"],
        "expert p": [math.exp(x) for x in record["expert_logprobs"]],
        "amateur p": [math.exp(x) for x in record["amateur_logprobs"]],
        "soft label v_C": record["weights"]})


def soft_label_fit(model_path: str, records: Sequence[dict], setup=None, batch_size: int = 32) -> float:
    """Mean KL(v_C || pi_E) of a model over ``records`` (the training loss, no
    update), on ``setup``'s device and dtype (a ``workshop.Setup``; default: auto)."""
    import torch

    from .models import load_model, scored_vocab_size
    from .training import SoftLabelCollator, build_examples, soft_label_kl
    from .workshop import notebook_setup

    setup = setup or notebook_setup(quiet=True)
    model, tokenizer = load_model(model_path, device=setup.device, dtype=setup.dtype)
    examples = build_examples(records, tokenizer, TrainConfig().max_length)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    collate = SoftLabelCollator(pad)
    total = 0.0
    with torch.inference_mode():
        for start in range(0, len(examples), batch_size):
            batch = {k: v.to(setup.device) for k, v in collate(examples[start:start + batch_size]).items()}
            total += float(soft_label_kl(model, batch, scored_vocab_size(tokenizer)).sum())
    return total / max(len(examples), 1)


def accuracy_row(name: str, result) -> dict:
    low, high = result.interval
    return {"name": name, "accuracy": result.accuracy, "low": low, "high": high}


def beside_paper(ours: Sequence[dict], paper: dict, title: str, ours_title: str = "this run",
                 paper_title: str = "paper"):
    """Two bar charts in one figure: this run's accuracies (with 95% intervals) and
    the paper's (percentages, no intervals published)."""
    from plotly.subplots import make_subplots

    from .viz import accuracy_comparison

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


def ablation_table(rows: Sequence[dict]):
    """Ablation rows (variant, examples, tuned_tokens, result) with the paper's column."""
    import pandas as pd

    from .paper import PAPER_ABLATION

    base = next(r["result"] for r in rows if r["variant"] == "base expert")
    table = []
    for row in rows:
        result = row["result"]
        low, high = result.interval
        table.append({"variant": row["variant"], "examples": row["examples"],
                      "tuned tokens": row["tuned_tokens"], "accuracy": result.accuracy,
                      "low": low, "high": high, "change vs base": result.accuracy - base.accuracy,
                      "paper (avg of 6 benchmarks)": PAPER_ABLATION.get(row["variant"])})
    return pd.DataFrame(table).set_index("variant")


def efficiency_table(sampled, trained, sft=None):
    """Problems, tuned tokens and time (sampling or rollouts, and training) of
    LightReasoner and the SFT baseline (a ``Workshop.sft()`` summary), beside the
    paper's (whose hours cover the whole method)."""
    import pandas as pd

    from .paper import PAPER_EFFICIENCY

    summary = sampled.summary
    sampling_seconds = summary.get("rollout_s", 0.0) + summary.get("scoring_s", 0.0)
    rows = [{"method": "LightReasoner", "problems sampled": summary["problems"],
             "problems trained on": trained.problems, "tuned tokens": trained.tuned_tokens,
             "rollout tokens": summary.get("steps"),
             # folders sampled before lrkit kept timings in state.json have none: unknown then
             "sampling seconds": round(sampling_seconds, 1) if sampling_seconds else None,
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


def pairs_side_by_side(pairs: dict, eval_config, beta: float = 0.4, alpha: float = 0.2):
    """Whether each pair suits the method, before any training.

    ``pairs``: name -> (loaded ModelPair, gold-solution problems, test problems).
    Returns two tables, one row per pair: the gold-path check
    (``lrkit.contrast_check`` on the gold problems) and greedy decoding against
    decoding by v_C's argmax on the test problems, with fixed / broken and McNemar p.
    """
    import pandas as pd

    from .demo import gold_path_frame
    from .diagnostics import contrast_check
    from .evaluation import compare, evaluate, evaluate_contrastive

    checks, decoding = {}, []
    for name, (pair, gold_problems, test_problems) in pairs.items():
        checks[name] = contrast_check(pair, gold_problems, beta=beta, alpha=alpha).summary()
        greedy = evaluate(pair.expert, test_problems, eval_config, tokenizer=pair.tokenizer, progress=False)
        by_label = evaluate_contrastive(pair, test_problems, eval_config, alpha=alpha, progress=False)
        versus = compare(greedy, by_label)
        decoding.append({"pair": name, "greedy expert": f"{greedy.accuracy:.1%}",
                         "decoding by v_C's argmax": f"{by_label.accuracy:.1%}",
                         "fixed / broken": f"{len(versus.fixed)} / {len(versus.broken)}",
                         "McNemar p": f"{versus.p_value:.3g}"})
    return gold_path_frame(checks), pd.DataFrame(decoding)
