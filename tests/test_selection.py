"""lrkit.maths.selection: the selection rule and the plausibility mask (on tensors,
arrays and frames alike), and soft labels from stored statistics, checked against
full distributions and hand-worked cases."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from lrkit.maths.selection import (kept_share_curve, mask_is_exact, no_contrast, plausibility_mask, select_steps,
                                   selection_summary, soft_label_from_stats)
from synthetic_steps import make_steps, one_row, vocabulary


MARGIN = 1e-6
"""No float compared at the alpha threshold (as for beta): a token whose probability
lies this close to alpha * max may fall either side in float32 and float64."""


def near_alpha_boundary(expert_logits, alpha) -> bool:
    """Whether a token other than the argmax (p_max >= alpha * p_max holds exactly) has a
    float64 probability within MARGIN of the mask's boundary."""
    p = torch.softmax(expert_logits.double(), -1)
    near = (p - alpha * p.max()).abs() <= MARGIN
    near[p.argmax()] = False
    return bool(near.any())


def direct_soft_label(expert_logits, amateur_logits, alpha, temperature=1.0):
    """The method's definition on the full vocabulary, in float32 torch."""
    lp_e = torch.log_softmax(expert_logits.float(), -1)
    lp_a = torch.log_softmax(amateur_logits.float(), -1)
    p_e = lp_e.exp()
    mask = p_e >= alpha * p_e.max()
    scores = ((lp_e - lp_a) / temperature)[mask]
    weights = torch.softmax(scores, -1)
    ids = torch.nonzero(mask).flatten()
    order = torch.argsort(weights, descending=True, stable=True)
    return ids[order].numpy(), weights[order].double().numpy()


def frame(kl, steps, prompt_ids=None):
    n = len(kl)
    return pd.DataFrame({"prompt_id": prompt_ids or ["a"] * n, "step": steps, "kl": kl,
                         "top1_agree": [True] * n})


def test_select_steps_boundary_and_step_zero():
    df = frame([0.4, 0.39, 0.41, 0.4, 5.0], [0, 1, 2, 3, 4])
    assert select_steps(df, 0.4).tolist() == [False, False, True, True, True]
    assert select_steps(df, 0.4, kl_inclusive=False).tolist() == [False, False, True, False, True]
    assert select_steps(df, 0.4, skip_first_step=False).tolist() == [True, False, True, True, True]


@pytest.mark.parametrize("kind", ["tensor", "array", "list", "frame"])
def test_select_steps_is_one_rule_for_tensors_arrays_and_frames(kind):
    kl, steps = [0.9, 0.1, 0.5, 0.7, 0.3], [0, 1, 2, 3, 4]
    if kind == "tensor":
        given = {"kl": torch.tensor(kl), "step": torch.tensor(steps)}
    elif kind == "array":
        given = {"kl": np.array(kl), "step": np.array(steps)}
    elif kind == "list":
        given = {"kl": kl, "step": steps}
    else:
        given = frame(kl, steps)

    def kept(**settings):
        got = select_steps(given, **settings)
        assert isinstance(got, {"tensor": torch.Tensor, "frame": pd.Series}.get(kind, np.ndarray))
        return got.tolist()

    assert kept(beta=0.4) == [False, False, True, True, False]
    assert kept(beta=0.4, skip_first_step=False) == [True, False, True, True, False]
    # 0.5 is exact in float32 and float64: inclusive and exclusive differ only there.
    assert kept(beta=0.5) == [False, False, True, True, False]
    assert kept(beta=0.5, kl_inclusive=False) == [False, False, False, True, False]
    if kind != "frame":  # without skipping, the steps are not needed
        assert select_steps({"kl": given["kl"]}, 0.4, skip_first_step=False).tolist() == \
            [True, False, True, True, False]


def np_log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def test_plausibility_mask_on_tensors_and_arrays_against_numpy_and_never_empty():
    logits = torch.randn(5, 12, generator=torch.Generator().manual_seed(7)) * 2.0
    e = torch.log_softmax(logits, -1)
    p = np.exp(np_log_softmax(logits.double().numpy()))
    for alpha in (0.05, 0.2, 0.5, 1.0):
        for given in (e, e.numpy(), e.tolist()):
            mask = plausibility_mask(given, alpha)
            assert isinstance(mask, torch.Tensor) == (given is e)
            mask = np.asarray(mask)
            assert mask.sum(-1).min() >= 1, "the argmax is always in the mask"
            assert mask[np.arange(5), p.argmax(-1)].all()
            # compared away from the boundary only; the argmax is exact (p_max >= alpha * p_max)
            clear = np.abs(p - alpha * p.max(-1, keepdims=True)) > MARGIN
            clear[np.arange(5), p.argmax(-1)] = True
            np.testing.assert_array_equal(mask[clear], (p >= alpha * p.max(-1, keepdims=True))[clear])
    flat = torch.log(torch.full((1, 4), 0.25))  # every token ties at the max: all in, even at alpha 1
    assert plausibility_mask(flat, 1.0).sum().item() == 4
    peaked = [[math.log(0.97), math.log(0.01), math.log(0.01), math.log(0.01)]]
    assert plausibility_mask(peaked, 1.0).tolist() == [[True, False, False, False]]
    padded = [[math.log(0.5), math.log(0.3), -math.inf]]  # a top-k row padded with -inf
    assert plausibility_mask(padded, 0.5).tolist() == [[True, True, False]]


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.5])
def test_plausibility_mask_refuses_alpha_outside_0_1(alpha):
    with pytest.raises(ValueError, match="alpha"):
        plausibility_mask(torch.zeros(1, 3), alpha)
    with pytest.raises(ValueError, match="alpha"):
        plausibility_mask(np.zeros((1, 3)), alpha)


def test_mask_is_exact_by_hand():
    stored = np.log([[0.5, 0.3, 0.1]])  # the top 3; 0.1 of the mass lies outside them
    assert mask_is_exact(stored, 0.3).tolist() == [True]   # 0.1 fails 0.15: the mask ends inside the top-k
    assert mask_is_exact(stored, 0.1).tolist() == [False]  # all three pass 0.05, and the 0.1 outside could too
    both = np.log([[0.6, 0.35]])  # 0.05 outside
    assert mask_is_exact(both, 0.2).tolist() == [True]  # both pass 0.12; nothing outside can
    padded = [[math.log(0.6), math.log(0.35), -math.inf]]  # -inf pads a short top-k: no token
    assert mask_is_exact(padded, 0.2).tolist() == [True]
    assert mask_is_exact(padded, 0.05).tolist() == [False]  # 0.05 outside passes 0.03


def test_select_steps_keeps_index_and_matches_sampler_column():
    syn = make_steps(6, 30, seed=3)
    steps = syn.steps.sample(frac=1.0, random_state=0)  # order and index must not matter
    kept = select_steps(steps, 0.4)
    assert kept.index.equals(steps.index)
    assert kept.dtype == bool
    assert kept.tolist() == steps["kept"].tolist()
    expected = [(k >= 0.4) and s != 0 for k, s in zip(steps["kl"], steps["step"])]
    assert kept.tolist() == expected


@pytest.mark.parametrize("alpha", [0.05, 0.2, 0.5, 1.0])
@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_soft_label_equals_full_distribution_computation(alpha, temperature):
    syn = make_steps(4, 25, vocab_size=40, top_k=12, seed=7)
    exact_rows = 0
    for r in range(len(syn.steps)):
        if near_alpha_boundary(syn.expert_logits[r], alpha):
            continue  # counted out of exact_rows: the bound below still asks for most rows
        row = syn.steps.iloc[r]
        label = soft_label_from_stats(row, alpha, temperature)
        ids, weights = direct_soft_label(syn.expert_logits[r], syn.amateur_logits[r], alpha,
                                         temperature)
        if len(ids) > 12:
            assert not label.exact, "a mask larger than the stored top-k must be flagged"
        if len(ids) < 12:
            assert label.exact, "a mask that leaves out a stored token is known exactly"
        if label.exact:
            exact_rows += 1
            assert label.token_ids.tolist() == ids.tolist()
            np.testing.assert_allclose(label.weights, weights, atol=2e-6)
            assert label.mask_size == len(ids)
    assert exact_rows > 0.5 * len(syn.steps)


def test_soft_label_fields_are_consistent():
    syn = make_steps(2, 20, seed=1)
    row = syn.steps.iloc[7]
    label = soft_label_from_stats(row, 0.1)
    assert np.isclose(label.weights.sum(), 1.0)
    assert np.all(np.diff(label.weights) <= 0)
    vocab = syn.vocab
    assert label.tokens == [vocab[i] for i in label.token_ids]
    lp_e = torch.log_softmax(syn.expert_logits[7], -1).double().exp().numpy()
    np.testing.assert_allclose(label.expert_probs, lp_e[label.token_ids], rtol=1e-5)
    assert label.to_dict()["token_ids"] == label.token_ids.tolist()


def test_flat_expert_mask_is_flagged_inexact():
    vocab = vocabulary(30)
    flat = torch.zeros(30)
    row = one_row(flat, torch.randn(30), vocab, top_k=5)
    label = soft_label_from_stats(row, 0.2)
    assert not label.exact and label.mask_size == 5  # the true mask holds all 30
    peaked = torch.full((30,), -10.0)
    peaked[3] = 5.0
    row = one_row(peaked, torch.randn(30), vocab, top_k=5)
    label = soft_label_from_stats(row, 0.2)
    assert label.exact and label.token_ids.tolist() == [3]


def test_full_top_k_is_always_exact():
    vocab = vocabulary(16)
    row = one_row(torch.zeros(16), torch.randn(16), vocab, top_k=16)
    label = soft_label_from_stats(row, 0.2)
    assert label.exact and label.mask_size == 16


def test_infinite_amateur_gap_takes_all_weight():
    row = {"expert_topk_ids": [4, 2, 9], "expert_topk_logprobs": [-0.5, -0.9, -3.0],
           "amateur_logprobs_at_expert_topk": [-1.0, float("-inf"), -0.1]}
    label = soft_label_from_stats(row, 0.2)
    assert label.token_ids.tolist() == [2, 4]
    assert label.weights.tolist() == [1.0, 0.0]
    assert label.tokens is None


def test_bad_alpha_and_lengths_raise():
    row = {"expert_topk_ids": [1, 2], "expert_topk_logprobs": [-0.1, -2.0],
           "amateur_logprobs_at_expert_topk": [-0.3]}
    with pytest.raises(ValueError, match="one length"):
        soft_label_from_stats(row, 0.2)
    row["amateur_logprobs_at_expert_topk"] = [-0.3, -1.0]
    with pytest.raises(ValueError, match="alpha"):
        soft_label_from_stats(row, 0.0)


def test_selection_summary_against_pandas():
    syn = make_steps(12, 40, vocab_size=32, top_k=32, seed=5)
    steps = syn.steps
    s = selection_summary(steps, 0.4, alpha=0.2)
    kept = steps[(steps.kl >= 0.4) & (steps.step > 0)]
    assert s["records"] == s["tuned_tokens"] == len(kept)
    assert s["share_kept"] == pytest.approx(len(kept) / len(steps))
    assert s["problems"] == steps.prompt_id.nunique()
    assert s["problems_with_records"] == kept.prompt_id.nunique()
    means = steps.groupby("top1_agree").kl.mean()
    assert s["mean_kl_agree"] == pytest.approx(means[True])
    assert s["mean_kl_disagree"] == pytest.approx(means[False])
    agree = steps[steps.top1_agree]
    assert s["share_agree_above_beta"] == pytest.approx((agree.kl >= 0.4).mean())
    # top_k = vocabulary: every mask is exact and equals the sampler's mask_size.
    assert s["inexact_masks"] == 0
    assert s["label_entries"] == kept["mask_size"].sum()


def test_kept_share_curve_matches_select_steps():
    steps = make_steps(5, 30, seed=2).steps
    betas = [0.0, 0.1, 0.4, float(steps.kl.iloc[5]), 2.0, 100.0]
    for inclusive in (True, False):
        curve = kept_share_curve(steps, betas, kl_inclusive=inclusive)
        expected = [int(select_steps(steps, b, kl_inclusive=inclusive).sum()) for b in betas]
        assert curve["records"].tolist() == expected
        np.testing.assert_allclose(curve["share_kept"], np.array(expected) / len(steps))


def test_stats_frame_follows_the_schema():
    from synthetic_steps import STEP_COLUMNS
    steps = make_steps(2, 5).steps
    assert list(steps.columns) == STEP_COLUMNS
    assert (steps.top1_agree == (steps.expert_top1_id == steps.amateur_top1_id)).all()
    assert steps.groupby("prompt_id").step.apply(lambda s: list(s) == list(range(len(s)))).all()


def test_no_contrast_is_the_experts_own_distribution_over_the_mask():
    record = {"token_ids": [5, 9], "tokens": ["a", "b"], "weights": [0.9, 0.1],
              "expert_logprobs": [math.log(0.2), math.log(0.6)], "amateur_logprobs": [-3.0, -0.1]}
    (out,) = no_contrast([record])
    # 0.2 and 0.6 renormalised over the mask: 0.25 and 0.75, sorted by weight
    assert out["token_ids"] == [9, 5] and out["tokens"] == ["b", "a"]
    assert out["weights"] == pytest.approx([0.75, 0.25], abs=1e-12)
    assert record["weights"] == [0.9, 0.1], "the input record is left as it was"


def test_no_contrast_keeps_every_per_token_list_aligned_with_its_ids():
    import math

    from lrkit.maths.selection import no_contrast

    probs = {11: 0.1, 12: 0.5, 13: 0.3}  # the expert's probabilities of the mask's tokens
    amateur = {11: -0.5, 12: -2.0, 13: -1.0}
    record = {"prompt_id": "p", "step": 3, "token_ids": [11, 12, 13], "tokens": ["a", "b", "c"],
              "weights": [0.7, 0.1, 0.2], "expert_logprobs": [math.log(probs[i]) for i in (11, 12, 13)],
              "amateur_logprobs": [amateur[i] for i in (11, 12, 13)]}
    target = no_contrast([record])[0]
    assert target["token_ids"] == [12, 13, 11] and target["tokens"] == ["b", "c", "a"]
    assert target["weights"] == pytest.approx([0.5 / 0.9, 0.3 / 0.9, 0.1 / 0.9])
    assert target["expert_logprobs"] == pytest.approx([math.log(probs[i]) for i in target["token_ids"]])
    assert target["amateur_logprobs"] == [amateur[i] for i in target["token_ids"]]
    assert record["token_ids"] == [11, 12, 13], "the input record is left as it was"
    with pytest.raises(ValueError, match=r"record 'p' step 3: no expert_logprobs"):
        no_contrast([{k: v for k, v in record.items() if k != "expert_logprobs"}])
