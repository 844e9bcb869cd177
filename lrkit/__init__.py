"""lrkit: LightReasoner, notebook-first.

A weaker amateur model shows a stronger expert where its reasoning is
distinctive: steps where their next-token distributions diverge (KL >= beta)
become contrastive soft labels, and the expert is LoRA-tuned on those few labels.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "SampleConfig": "lrkit.config",
    "TrainConfig": "lrkit.config",
    "EvalConfig": "lrkit.config",
    "load_pair": "lrkit.models",
    "load_problems": "lrkit.problems",
    "sample": "lrkit.sampling",
    "read_steps": "lrkit.sampling",
    "read_records": "lrkit.records",
    "records_dataset": "lrkit.export",
    "select_steps": "lrkit.selection",
    "soft_label_from_stats": "lrkit.selection",
    "selection_summary": "lrkit.selection",
    "no_contrast": "lrkit.experiment",
    "soft_label_fit": "lrkit.experiment",
    "Experiment": "lrkit.experiment",
    "ExperimentConfig": "lrkit.experiment",
    "run_sft": "lrkit.sft",
    "train": "lrkit.training",
    "merge": "lrkit.training",
    "evaluate": "lrkit.evaluation",
    "evaluate_contrastive": "lrkit.evaluation",
    "contrast_check": "lrkit.diagnostics",
    "scout": "lrkit.scouting",
    "spearman": "lrkit.scouting",
    "odd_token_audit": "lrkit.audit",
    "error_anatomy": "lrkit.anatomy",
    "classify_toy": "lrkit.anatomy",
    "run_study": "lrkit.study",
    "compare": "lrkit.evaluation",
    "evaluate_suite": "lrkit.suite",
    "extract_answer": "lrkit.evaluation",
    "answers_match": "lrkit.evaluation",
    "token_view": "lrkit.viz",
    "Explorer": "lrkit.viz",
    "Report": "lrkit.viz",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    # Lazy, so `import lrkit` stays light and a missing optional extra only
    # matters to the name that needs it.
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'lrkit' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
