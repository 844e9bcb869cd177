"""lrkit.maths.divergence against plain NumPy (float64) and hand-worked numbers.
(The plausibility mask and the selection rule it uses are lrkit.maths.selection's:
tests/test_selection.py.)"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lrkit.maths.divergence import (NonFiniteLogitsError, contrastive_scores, entropy, kl_divergence, log_probs,
                                    sparse_soft_label, step_statistics)
from lrkit.maths.selection import plausibility_mask


def np_log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


MARGIN = 1e-6
"""No float compared at the alpha threshold: a probability this close to alpha * max
may fall either side in float32 and in float64, so it is left out of a comparison
(as beta's boundary cases are)."""


def clear_of_alpha(p: np.ndarray, alpha: float) -> np.ndarray:
    """Per token (last axis), whether its float64 probability lies clear of the mask's
    boundary. The argmax counts as clear: p_max >= alpha * p_max holds exactly for alpha <= 1."""
    clear = np.abs(p - alpha * p.max(-1, keepdims=True)) > MARGIN
    np.put_along_axis(clear, p.argmax(-1)[..., None], True, -1)
    return clear


@pytest.fixture
def logits():
    """Expert and amateur logits of 5 steps over 12 tokens, plus 3 padding rows
    that would dominate the softmax if they were kept."""
    g = torch.Generator().manual_seed(7)
    expert = torch.randn(5, 15, generator=g) * 2.0
    amateur = torch.randn(5, 15, generator=g) * 2.0
    expert[:, 12:] = 40.0
    amateur[:, 12:] = 40.0
    return expert, amateur


def test_log_probs_drop_rows_beyond_the_tokenizer(logits):
    expert, _ = logits
    got = log_probs(expert, vocab_size=12)
    assert got.dtype == torch.float32 and got.shape == (5, 12)
    np.testing.assert_allclose(got.numpy(), np_log_softmax(expert[:, :12].double().numpy()), atol=1e-5)
    np.testing.assert_allclose(got.exp().sum(-1).numpy(), 1.0, atol=1e-5)


def test_log_probs_of_half_precision_logits_are_float32():
    logits = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.bfloat16)
    got = log_probs(logits)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), np_log_softmax(np.array([[1.0, 2.0, 3.0]])), atol=1e-6)


def test_log_probs_refuse_nan_and_too_few_rows():
    with pytest.raises(NonFiniteLogitsError):
        log_probs(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(NonFiniteLogitsError):
        log_probs(torch.tensor([[0.0, float("inf")]]))
    with pytest.raises(ValueError, match="fewer than the tokenizer's 4"):
        log_probs(torch.zeros(1, 3), vocab_size=4)


def test_kl_and_entropy_against_numpy(logits):
    expert, amateur = logits
    e, a = log_probs(expert, 12), log_probs(amateur, 12)
    p = np.exp(np_log_softmax(expert[:, :12].double().numpy()))
    q = np.exp(np_log_softmax(amateur[:, :12].double().numpy()))
    np.testing.assert_allclose(kl_divergence(e, a).numpy(), (p * np.log(p / q)).sum(-1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(entropy(e).numpy(), -(p * np.log(p)).sum(-1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(kl_divergence(e, e).numpy(), 0.0, atol=1e-6)


def test_kl_by_hand_with_a_token_the_expert_never_picks():
    # pi_E = (1/2, 1/2, 0), pi_A = (1/4, 1/4, 1/2): KL = 2 * 1/2 * log 2 = log 2; the
    # zero-probability token adds 0, not NaN.
    e = torch.log(torch.tensor([[0.5, 0.5, 0.0]]))
    a = torch.log(torch.tensor([[0.25, 0.25, 0.5]]))
    assert kl_divergence(e, a).item() == pytest.approx(math.log(2), abs=1e-6)
    assert entropy(e).item() == pytest.approx(math.log(2), abs=1e-6)


def test_soft_label_by_hand():
    # Mask at alpha 0.2 (max 0.5 -> p >= 0.1): tokens 0 and 1. Scores log(pE/pA):
    # token 0: log(0.5/0.9), token 1: log(0.4/0.05). v_C = softmax over the two.
    e = torch.log(torch.tensor([0.5, 0.4, 0.06, 0.04]))
    a = torch.log(torch.tensor([0.9, 0.05, 0.03, 0.02]))
    ids, weights = sparse_soft_label(e, a, alpha=0.2)
    r0, r1 = 0.5 / 0.9, 0.4 / 0.05
    assert ids == [1, 0], "sorted by weight, largest first"
    assert weights == pytest.approx([r1 / (r0 + r1), r0 / (r0 + r1)], abs=1e-6)
    # Temperature 2 divides the scores: weights ~ sqrt of the ratios.
    ids, weights = sparse_soft_label(e, a, alpha=0.2, temperature=2.0)
    s0, s1 = math.sqrt(r0), math.sqrt(r1)
    assert ids == [1, 0] and weights == pytest.approx([s1 / (s0 + s1), s0 / (s0 + s1)], abs=1e-6)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_soft_label_is_softmax_over_the_mask_of_the_log_ratio(logits, temperature):
    expert, amateur = logits
    e, a = log_probs(expert, 12), log_probs(amateur, 12)
    e64 = np_log_softmax(expert[:, :12].double().numpy())
    a64 = np_log_softmax(amateur[:, :12].double().numpy())
    assert clear_of_alpha(np.exp(e64), 0.1).all(), "every row's mask is decided away from the boundary"
    for row in range(5):
        ids, weights = sparse_soft_label(e[row], a[row], alpha=0.1, temperature=temperature)
        p = np.exp(e64[row])
        mask = np.flatnonzero(p >= 0.1 * p.max())
        scores = (e64[row, mask] - a64[row, mask]) / temperature
        expected = np.exp(scores - scores.max())
        expected /= expected.sum()
        assert sorted(ids) == mask.tolist(), "ids are the mask, no padding row among them"
        assert all(i < 12 for i in ids)
        by_id = dict(zip(mask.tolist(), expected))
        np.testing.assert_allclose(weights, [by_id[i] for i in ids], atol=1e-5)
        assert weights == sorted(weights, reverse=True)
        assert sum(weights) == pytest.approx(1.0, abs=1e-5)


def test_contrastive_scores_are_minus_inf_outside_the_mask():
    e = torch.log(torch.tensor([[0.6, 0.3, 0.1]]))
    a = torch.log(torch.tensor([[0.2, 0.6, 0.2]]))
    mask = plausibility_mask(e, 0.4)  # p >= 0.24: tokens 0 and 1
    scores = contrastive_scores(e, a, mask, temperature=2.0)
    assert scores[0, 2].item() == float("-inf")
    assert scores[0, 0].item() == pytest.approx(math.log(0.6 / 0.2) / 2, abs=1e-6)
    assert scores[0, 1].item() == pytest.approx(math.log(0.3 / 0.6) / 2, abs=1e-6)


def test_step_statistics_against_numpy(logits):
    expert, amateur = logits
    amateur = amateur[:, :13]  # the amateur's output layer may be sized differently
    chosen = torch.tensor([0, 3, 5, 11, 2])
    stats, e, a = step_statistics(expert, amateur, chosen, vocab_size=12, alpha=0.2, top_k=4)
    e64 = np_log_softmax(expert[:, :12].double().numpy())
    a64 = np_log_softmax(amateur[:, :12].double().numpy())
    p, q = np.exp(e64), np.exp(a64)
    rows = np.arange(5)
    np.testing.assert_allclose(stats.kl.numpy(), (p * (e64 - a64)).sum(-1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats.expert_entropy.numpy(), -(p * e64).sum(-1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats.amateur_entropy.numpy(), -(q * a64).sum(-1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats.expert_logprob.numpy(), e64[rows, chosen.numpy()], atol=1e-5)
    np.testing.assert_allclose(stats.amateur_logprob.numpy(), a64[rows, chosen.numpy()], atol=1e-5)
    top = np.argsort(-e64, axis=-1, kind="stable")[:, :4]
    np.testing.assert_array_equal(stats.expert_topk_ids.numpy(), top)
    np.testing.assert_allclose(stats.amateur_logprobs_at_expert_topk.numpy(),
                               np.take_along_axis(a64, top, -1), atol=1e-5)
    np.testing.assert_array_equal(stats.amateur_topk_ids.numpy(), np.argsort(-a64, axis=-1, kind="stable")[:, :4])
    assert clear_of_alpha(p, 0.2).all(), "every mask is decided away from the boundary"
    np.testing.assert_array_equal(stats.mask_size.numpy(), (p >= 0.2 * p.max(-1, keepdims=True)).sum(-1))
    assert e.shape == a.shape == (5, 12)
