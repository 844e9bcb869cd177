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
    "load_pair": "lrkit.models.loading",
    "load_problems": "lrkit.data.problems",
    "sample": "lrkit.stages.sampling",
    "read_steps": "lrkit.stages.sampling",
    "read_records": "lrkit.data.records",
    "records_dataset": "lrkit.stages.export",
    "select_steps": "lrkit.maths.selection",
    "soft_label_from_stats": "lrkit.maths.selection",
    "selection_summary": "lrkit.maths.selection",
    "no_contrast": "lrkit.maths.selection",
    "soft_label_fit": "lrkit.stages.training",
    "Experiment": "lrkit.experiment",
    "ExperimentConfig": "lrkit.config",
    "experiment_config": "lrkit.experiment",
    "run_sft": "lrkit.stages.sft",
    "train": "lrkit.stages.training",
    "merge": "lrkit.stages.training",
    "evaluate": "lrkit.evaluation",
    "evaluate_contrastive": "lrkit.evaluation",
    "contrast_check": "lrkit.evaluation.diagnostics",
    "scout": "lrkit.studies.scout",
    "spearman": "lrkit.studies.scout",
    "odd_token_audit": "lrkit.evaluation.audit",
    "error_anatomy": "lrkit.evaluation.anatomy",
    "classify_toy": "lrkit.evaluation.anatomy",
    "run_study": "lrkit.studies.ladder",
    "compare": "lrkit.evaluation",
    "evaluate_suite": "lrkit.evaluation.suite",
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
