"""What an experiment hands on: :class:`ExperimentSummary`, the typed result of
:meth:`lrkit.Experiment.run` (``lrkit demo``, ``lrkit experiment``).

Every field is named once here; the printout (:func:`lrkit.demo.print_summary`) and the
HTML report read attributes, and ``summary.json`` is :meth:`ExperimentSummary.to_dict`
(its keys are the field names, except the two the paper's statistics name by their
threshold: ``share_kl_below_0.1`` and ``share_agree_with_kl_above_0.4``).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

JSON_NAMES = {"share_kl_below_01": "share_kl_below_0.1",
              "share_agree_with_kl_above_04": "share_agree_with_kl_above_0.4"}
"""Fields whose summary.json key is not a Python name."""
SUMMARY_FILE = "summary.json"


@dataclass
class ExperimentSummary:
    """One experiment's numbers: the pair, the paper's statistics of its sampling, base and
    tuned accuracy with 95% Wilson intervals and the exact McNemar test, the scout's
    prediction and whether it held, and what each stage took.

    Accuracies are fractions; ``*_interval`` are [low, high]; ``mcnemar_p`` compares the
    first seed's tuned expert with the base expert on the same test problems.
    """

    pair: str
    """The pair's name (or the expert's, for a pair given by its members)."""
    train_problems: int
    """Problems sampled."""
    test_problems: int
    """Held-out problems every model was evaluated on."""
    steps: int
    """Rollout steps scored (every generated token of every rollout)."""
    records: int
    """Steps kept (KL >= beta): the soft-label records."""
    share_kept: Optional[float]
    mean_kl_top1_agree: Optional[float]
    mean_kl_top1_disagree: Optional[float]
    tuned_tokens: int
    """Supervised positions of the first seed's training (its records, with repeats)."""
    rollout_tokens: int
    base_accuracy: float
    base_interval: list
    tuned_accuracy: float
    tuned_interval: list
    fixed: int
    """Test problems wrong before tuning and right after (first seed)."""
    broken: int
    """Test problems right before tuning and wrong after (first seed)."""
    mcnemar_p: float
    seeds: list
    """One row per training seed: seed, accuracy, interval, gain, tuned_tokens, fixed, broken, mcnemar_p."""
    mean_gain: float
    """Tuned minus base accuracy, averaged over the seeds (a fraction)."""
    gold_path_check: dict
    """The gold-path check's summary per pair (lrkit.contrast_check)."""
    seconds: dict
    """Wall seconds of each stage in this call (a stage read back from its folder takes ~0)."""
    total_seconds: float
    config: dict
    """Every setting, per stage (experiment, sample, train, eval)."""
    hit_token_limit: dict = field(default_factory=dict)
    """Generations cut at the answer limit: base, tuned (and contrastive_decoding)."""
    expert: Optional[str] = None
    amateur: Optional[str] = None
    device: Optional[str] = None
    dtype: Optional[str] = None
    validation_problems: Optional[int] = None
    share_kl_below_01: Optional[float] = None
    """Share of steps with KL < 0.1 (paper 0.59)."""
    share_agree_with_kl_above_04: Optional[float] = None
    """Share of top-1 agreements whose KL exceeds 0.4 (paper 0.10)."""
    paper_differences: list = field(default_factory=list)
    """Settings that differ from the paper's, one line each (lrkit.config.paper_differences)."""
    records_dataset: Optional[str] = None
    tensorboard: Optional[str] = None
    stage_seconds: dict = field(default_factory=dict)
    """Seconds each stage spent over every run that resumed it (from the stages' own files)."""
    contrastive_decoding_accuracy: Optional[float] = None
    contrastive_decoding_interval: Optional[list] = None
    contrastive_decoding_vs_base: Optional[dict] = None
    scout: Optional[dict] = None
    """The scout's prediction (scout.json), made before sampling and training."""
    scout_verdict: Optional[dict] = None
    """Whether the prediction held on the test problems (lrkit.evaluation.prediction.verdict)."""
    ablations: Optional[list] = None
    odd_token_audit: Optional[dict] = None
    error_anatomy: Optional[dict] = None
    report: Optional[str] = None
    """The HTML report's path, once written."""

    def to_dict(self) -> dict:
        """The summary as ``summary.json`` holds it."""
        data = dataclasses.asdict(self)
        return {JSON_NAMES.get(key, key): value for key, value in data.items()}

    @classmethod
    def from_dict(cls, data: dict) -> "ExperimentSummary":
        """The summary from ``summary.json``'s dict (unknown keys are refused by name)."""
        names = {v: k for k, v in JSON_NAMES.items()}
        values = {names.get(key, key): value for key, value in data.items()}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"summary.json: unknown field(s) {', '.join(unknown)}")
        return cls(**values)

    @classmethod
    def load(cls, folder: Union[str, Path]) -> "ExperimentSummary":
        """The summary an experiment's folder holds (``summary.json``)."""
        path = Path(folder) / SUMMARY_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no experiment summary (has the experiment run to its end?)")
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))

    @property
    def gain(self) -> float:
        """The first seed's tuned minus base accuracy (a fraction)."""
        return self.tuned_accuracy - self.base_accuracy
