"""Seeing the divergence: token views, figures, the explorer and HTML reports.

Everything here renders stored step statistics and records; no model is run.
"""
from lrkit.viz.explorer import Explorer, ExplorerState
from lrkit.viz.figures import (
    accuracy_comparison, entropy_scatter, kept_share_by_beta, kl_along_rollout, kl_by_agreement, kl_histogram,
    loss_curve, step_distributions)
from lrkit.viz.report import Report, export_html
from lrkit.viz.tables import (
    ablation_frame, ablation_row, accuracy_row, anatomy_frame, beside_paper, confident_expert_steps, efficiency_table,
    entropy_quadrants, gold_path_frame, kl_thresholds, peak_problems, preliminary_table, record_table)
from lrkit.viz.tokens import TokenView, side_by_side, token_view

__all__ = [
    "TokenView", "token_view", "side_by_side",
    "kl_histogram", "kl_along_rollout", "entropy_scatter", "kl_by_agreement",
    "kept_share_by_beta", "step_distributions", "loss_curve", "accuracy_comparison",
    "Explorer", "ExplorerState",
    "Report", "export_html",
    "preliminary_table", "kl_thresholds", "entropy_quadrants", "confident_expert_steps", "peak_problems",
    "record_table", "anatomy_frame", "accuracy_row", "beside_paper", "efficiency_table", "ablation_row",
    "ablation_frame", "gold_path_frame",
]
