"""Evaluation: greedy pass@1 under the paper's protocol or lrkit's, answer extraction
and grading, intervals, comparisons.

- ``parse``: what an output answers by lrkit's rules (``extract_answer``, ``extract_choice``);
- ``grade``: whether it equals the gold answer by lrkit's rules (``check_answer``, ``answers_match``);
- ``toolkit``: the Qwen2.5-Math toolkit's rules, which made the paper's Table 1;
- ``protocol``: the two protocols' prompts, answer limits, stop ids and scoring;
- ``stats``: Wilson intervals, the exact McNemar test, ``compare``;
- ``results``: ``EvalResult`` and its folder (``results.jsonl``, ``summary.json``);
- ``loop``: ``evaluate`` and ``evaluate_contrastive``.
"""
from __future__ import annotations

from lrkit.data.answers import gold_answer, last_boxed
from lrkit.evaluation.grade import ANSWER_KINDS, Verdict, answers_match, check_answer
from lrkit.evaluation.loop import evaluate, evaluate_contrastive
from lrkit.evaluation.parse import extract_answer, extract_choice, parse_number
from lrkit.evaluation.results import EVAL_FILES, RESULTS_FILE, SUMMARY_FILE, EvalResult, check_eval_out_dir
from lrkit.evaluation.stats import Comparison, accuracy_interval, compare, mcnemar_p_value

__all__ = ["extract_answer", "extract_choice", "last_boxed", "parse_number", "answers_match", "check_answer",
           "Verdict", "ANSWER_KINDS", "gold_answer", "accuracy_interval", "mcnemar_p_value", "compare",
           "Comparison", "evaluate", "evaluate_contrastive", "EvalResult",
           "check_eval_out_dir", "RESULTS_FILE", "SUMMARY_FILE", "EVAL_FILES"]
