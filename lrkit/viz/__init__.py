"""Seeing the divergence: token views, figures, the explorer and HTML reports.

Everything here renders stored step statistics and records; no model is run.
"""
from .figures import (accuracy_comparison, entropy_scatter, kept_share_by_beta,
                      kl_along_rollout, kl_by_agreement, kl_histogram, loss_curve,
                      step_distributions)
from .explorer import Explorer, ExplorerState
from .report import Report, export_html
from .tokens import TokenView, side_by_side, token_view

__all__ = [
    "TokenView", "token_view", "side_by_side",
    "kl_histogram", "kl_along_rollout", "entropy_scatter", "kl_by_agreement",
    "kept_share_by_beta", "step_distributions", "loss_curve", "accuracy_comparison",
    "Explorer", "ExplorerState",
    "Report", "export_html",
]
