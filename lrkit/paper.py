"""The LightReasoner paper's published numbers, in one place: what lrkit's runs
are set beside (the demo's report, the notebooks, the suite's Table 1). Nothing
here is measured by lrkit."""
from __future__ import annotations

PAPER_ABLATION = {  # Qwen2.5-Math-1.5B, average of 6 benchmarks (paper, Table 6)
    "full method": 54.0, "no selection": 53.8, "no contrast": 44.8, "neither": 42.6, "base expert": 41.2,
}
PAPER_GSM8K = {"base expert": 42.5, "SFT": 69.2, "LightReasoner": 70.6}
PAPER_EFFICIENCY = {"SFT": {"problems": 3952, "tuned_tokens": 1.77e6, "hours": 4.0},
                    "LightReasoner": {"problems": 1000, "tuned_tokens": 0.02e6, "hours": 0.5}}

# The LightReasoner paper's Table 1 (zero-shot pass@1, %), column order as
# PAPER_BENCHMARKS plus the average, transcribed from the authors' repository
# README "Main Results" table (HKUDS/LightReasoner, commit fbd55c7), which
# restates Table 1; the paper text itself was not readable here. Its MATH column
# is the full MATH test set, not MATH-500.
PAPER_TABLE1: dict[str, dict[str, tuple]] = {
    "Qwen2.5-Math-1.5B": {
        "Baseline": (42.5, 34.2, 68.8, 68.1, 9.9, 23.7, 49.8, 42.4),
        "+ SFT": (69.2, 57.1, 64.1, 70.2, 15.1, 27.6, 47.7, 50.1),
        "+ LightR": (70.6, 59.3, 76.0, 79.8, 11.4, 27.1, 54.9, 54.2),
    },
    "Qwen2.5-Math-1.5B-Instruct": {
        "Baseline": (84.8, 75.8, 94.2, 94.7, 29.4, 37.5, 57.4, 67.7),
        "+ SFT": (85.4, 75.8, 93.5, 94.7, 31.6, 37.5, 56.2, 67.8),
        "+ LightR": (86.7, 75.5, 93.0, 94.1, 32.0, 37.8, 55.2, 67.8),
    },
    "DeepSeek-R1-Distill-Qwen-1.5B": {
        "Baseline": (75.2, 54.2, 79.9, 84.9, 16.2, 19.1, 22.3, 50.3),
        "+ SFT": (78.2, 60.3, 81.5, 87.4, 18.4, 21.2, 26.2, 53.3),
        "+ LightR": (79.5, 60.2, 83.5, 87.5, 18.0, 36.5, 26.2, 55.9),
    },
    "Qwen2.5-Math-7B": {
        "Baseline": (57.5, 51.8, 67.9, 72.7, 14.0, 16.0, 69.8, 50.0),
        "+ SFT": (64.4, 63.3, 76.2, 76.6, 12.1, 20.5, 68.5, 54.5),
        "+ LightR": (67.9, 57.8, 77.2, 80.6, 12.1, 16.9, 70.5, 54.7),
    },
    "Qwen2.5-Math-7B-Instruct": {
        "Baseline": (95.2, 83.2, 93.9, 95.3, 33.8, 41.5, 69.3, 73.2),
        "+ SFT": (95.4, 83.1, 94.1, 95.2, 38.2, 40.7, 68.2, 73.6),
        "+ LightR": (95.8, 83.6, 93.1, 95.2, 34.2, 39.0, 67.8, 72.7),
    },
}


PAPER_PRELIMINARY = {  # Qwen2.5-Math-1.5B vs Qwen2.5-0.5B, 100 GSM8K problems, 128 tokens
    "share_kl_below_0.1": 0.59, "share_kl_at_least_0.4": 0.20,
    "mean_kl_top1_agree": 0.166, "mean_kl_top1_disagree": 1.99,
    "share_agree_with_kl_above_0.4": 0.10,
}
"""The paper's preliminary analysis of where the two models diverge."""
