"""lrkit.paper holds the paper's published numbers once: no other module of lrkit writes
them again (a copy would drift from the transcription the tests and docs check)."""
from __future__ import annotations

import re
from pathlib import Path

from lrkit.paper import PAPER_ABLATION, PAPER_EFFICIENCY, PAPER_GSM8K, PAPER_PRELIMINARY

REPO = Path(__file__).resolve().parents[1]


def distinctive_numbers() -> set[str]:
    """The paper's numbers as they would be written in code or prose: its accuracies, its
    mean KLs and the SFT budget (round numbers such as 1000 or 0.5 also name settings)."""
    accuracies = [f"{v:.1f}" for v in (*PAPER_ABLATION.values(), *PAPER_GSM8K.values())]  # 54.0, 42.5 ...
    kl_means = [repr(PAPER_PRELIMINARY[k]) for k in ("mean_kl_top1_agree", "mean_kl_top1_disagree")]
    sft = PAPER_EFFICIENCY["SFT"]
    return {*accuracies, *kl_means, str(sft["problems"]), f"{sft['tuned_tokens'] / 1e6:.2f}"}


def test_the_paper_numbers_are_written_in_lrkit_paper_only():
    numbers = distinctive_numbers()
    assert {"0.166", "1.99", "42.5", "70.6", "3952", "1.77"} <= numbers
    pattern = re.compile(r"(?<![\d.])(" + "|".join(re.escape(n) for n in sorted(numbers)) + r")(?![\d])")
    found = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
             for path in sorted((REPO / "lrkit").rglob("*.py")) if path.name != "paper.py"
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if pattern.search(line)]
    assert found == []
