"""lrkit.evaluation.audit: the odd-token audit on hand-made records."""
from __future__ import annotations

import math

import pytest

from lrkit.evaluation.audit import odd_token_audit


def record(tokens, weights, expert_logprobs, prefix="he has 2 + 3 = "):
    return {"prompt_id": "p", "step": 1, "prefix": prefix, "tokens": tokens, "token_ids": list(range(len(tokens))),
            "weights": weights, "kl_divergence": 1.0, "expert_logprobs": expert_logprobs, "alpha": 0.2, "beta": 0.4}


def test_audit_counts_tokens_the_expert_ranks_low():
    log = math.log
    records = [
        # v_C picks the expert's own top token: not odd
        record(["5", "3"], [0.9, 0.1], [log(0.7), log(0.3)]),
        # v_C picks the expert's second token at 0.35/0.6 = 0.58 of the top: not odd
        record(["5", "3"], [0.2, 0.8], [log(0.6), log(0.35)]),
        # v_C picks the expert's second token at 0.2/0.7 of the top: odd
        record(["5", "x"], [0.3, 0.7], [log(0.7), log(0.2)]),
        # third-ranked at 0.15/0.5: odd
        record(["5", "4", "x"], [0.1, 0.2, 0.7], [log(0.5), log(0.3), log(0.15)]),
        # second-ranked at 0.4/0.5: not odd, but not the expert's top either
        record(["5", "4"], [0.4, 0.6], [log(0.5), log(0.4)]),
    ]
    audit = odd_token_audit(records)
    assert (audit.n, audit.n_odd, audit.n_not_top) == (5, 2, 4)
    assert audit.share == pytest.approx(0.4)
    assert audit.top_tokens == [("x", 2)]
    assert list(audit.examples["v_C token"]) == ["x", "x"]
    assert list(audit.examples["expert token"]) == ["5", "5"]
    assert "2 (40.0%)" in str(audit)
    loose = odd_token_audit(records, ratio=0.9)
    assert loose.n_odd == 4  # the 0.58 and 0.8 steps count once the bar is 0.9


def test_audit_of_no_records_and_bad_input():
    empty = odd_token_audit([])
    assert empty.n == 0 and empty.n_odd == 0 and math.isnan(empty.share)
    with pytest.raises(ValueError, match="expert_logprobs"):
        odd_token_audit([{**record(["a"], [1.0], [0.0]), "expert_logprobs": None}])
    with pytest.raises(ValueError, match="ratio"):
        odd_token_audit([], ratio=0)
