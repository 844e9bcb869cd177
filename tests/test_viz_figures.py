"""Plotly figures hold the data they should (read back from the figure dicts)."""
import base64
import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

from lrkit.viz import (accuracy_comparison, entropy_scatter, kept_share_by_beta,
                       kl_along_rollout, kl_by_agreement, kl_histogram, loss_curve,
                       step_distributions)
from synthetic_steps import make_steps, stats_frame, vocabulary


@pytest.fixture(scope="module")
def syn():
    return make_steps(8, 40, seed=12)


def arr(values):
    """Numbers from a figure or its dict; plotly sends numpy arrays as typed base64."""
    if isinstance(values, dict) and "bdata" in values:
        data = np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"]))
        return data.reshape(values["shape"]) if "shape" in values else data.astype(float)
    return np.asarray(values, dtype=float)


def test_kl_histogram_data_beta_and_tail(syn):
    steps = syn.steps
    fig = kl_histogram(steps, beta=0.4, bin_width=0.1)
    assert isinstance(fig, go.Figure)
    d = fig.to_dict()
    main, tail = d["data"]
    np.testing.assert_allclose(arr(main["x"]), steps.kl.to_numpy())
    assert main["histnorm"] == "percent" and main["xbins"]["size"] == 0.1
    np.testing.assert_allclose(np.sort(arr(tail["x"])), np.sort(steps.kl[steps.kl >= 0.4]))
    assert tail["xaxis"] == "x2" and tail["yaxis"] == "y2"
    (shape,) = d["layout"]["shapes"]
    assert shape["x0"] == shape["x1"] == 0.4
    share = ((steps.kl >= 0.4) & (steps.step > 0)).mean()  # step 0 is never kept
    assert f"{100 * share:.1f}% of steps kept" in d["layout"]["annotations"][0]["text"]
    below = (steps.kl < 0.1).mean()
    assert f"{100 * below:.1f}% below 0.1" in d["layout"]["title"]["text"]


def test_kl_along_rollout_annotates_largest_spikes(syn):
    steps = syn.steps
    one = steps[steps.prompt_id == "p0003"].sort_values("step")
    fig = kl_along_rollout(steps, "p0003", beta=0.4, top_n=4)
    trace = fig.data[0]
    np.testing.assert_allclose(arr(trace.x), one.step)
    np.testing.assert_allclose(arr(trace.y), one.kl)
    top = one.nlargest(4, "kl")
    notes = [(a.x, a.y, a.text) for a in fig.layout.annotations if a.showarrow]
    assert [n[0] for n in notes] == top.step.tolist()
    assert [n[2] for n in notes] == [html.escape(t.replace(" ", "\u2423")) for t in top.token]
    kept = (one.kl >= 0.4) & (one.step > 0)
    colours = list(trace.marker.color)
    assert [c == colours[int(np.flatnonzero(kept)[0])] for c in colours] == kept.tolist()
    with pytest.raises(ValueError, match="prompt_id"):
        kl_along_rollout(steps)


def test_rollout_annotations_escape_tokens():
    vocab = vocabulary(30)
    ids = [vocab.index("<script>alert(1)</script>")] * 3
    expert, amateur = torch.randn(3, 30), torch.randn(3, 30) * 4
    steps = stats_frame(["x"] * 3, [0, 1, 2], expert, amateur, vocab, token_ids=ids)
    fig = kl_along_rollout(steps, top_n=1)
    assert fig.layout.annotations[-1].text == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert "<script>alert" not in fig.to_json()


def test_entropy_scatter_coloured_by_kl(syn):
    steps = syn.steps
    trace = entropy_scatter(steps).data[0]
    np.testing.assert_allclose(arr(trace.x), steps.expert_entropy)
    np.testing.assert_allclose(arr(trace.y), steps.amateur_entropy)
    np.testing.assert_allclose(arr(trace.marker.color), steps.kl)
    small = entropy_scatter(steps, max_points=50)
    assert len(small.data[0].x) == 50 and "random 50" in small.layout.title.text


def test_kl_by_agreement_groups_and_means(syn):
    steps = syn.steps
    fig = kl_by_agreement(steps, beta=0.4)
    agree, differ = fig.data
    np.testing.assert_allclose(np.sort(arr(agree.y)), np.sort(steps.kl[steps.top1_agree]))
    np.testing.assert_allclose(np.sort(arr(differ.y)), np.sort(steps.kl[~steps.top1_agree]))
    means = steps.groupby("top1_agree").kl.mean()
    texts = [a.text for a in fig.layout.annotations if a.x in ("top-1s agree", "top-1s differ")]
    assert f"mean {means[True]:.3g}" in texts[0] and f"mean {means[False]:.3g}" in texts[1]


def test_kept_share_by_beta_matches_selection(syn):
    steps = syn.steps
    betas = [0.0, 0.2, 0.4, 1.0, 3.0]
    fig = kept_share_by_beta(steps, beta=0.4, betas=betas)
    trace = fig.data[0]
    expected = [((steps.kl >= b) & (steps.step > 0)).mean() * 100 for b in betas]
    np.testing.assert_allclose(arr(trace.y), expected)
    np.testing.assert_allclose(arr(trace.x), betas)
    records = int(((steps.kl >= 0.4) & (steps.step > 0)).sum())
    assert f"{records} records" in fig.layout.annotations[0].text


def test_report_summary_and_figures_give_one_kept_share():
    """The demo report's "records kept (x% of steps)" (the run summary, from the
    frame's kept column) and the KL figures' share at beta are one number, also
    when step 0 has KL >= beta (selection never keeps step 0)."""
    from lrkit.stages.sampling import summarize_steps

    steps = make_steps(6, 30, seed=3).steps
    step0 = steps.step == 0
    steps.loc[step0, "kl"] = np.linspace(0.5, 2.0, int(step0.sum()))  # every step 0 above beta
    steps["kept"] = (steps.kl >= 0.4) & (steps.step > 0)  # what the sampler writes, by hand
    steps.attrs["beta"] = 0.4
    summary = summarize_steps(steps)
    kept_by_hand = int(steps.kept.sum())
    above = int((steps.kl >= 0.4).sum())
    assert above == kept_by_hand + int(step0.sum()), "step 0 must count if the figure recomputed KL >= beta"
    reported = f"{100 * summary['share_kept']:.1f}% of steps"
    assert reported == f"{100 * kept_by_hand / len(steps):.1f}% of steps"
    assert reported != f"{100 * above / len(steps):.1f}% of steps", "the two shares must differ in print"
    histogram = kl_histogram(steps, beta=0.4).layout.annotations[0].text
    assert f"{reported} kept" in histogram
    share_curve = kept_share_by_beta(steps, beta=0.4, betas=[0.4]).layout.annotations[0].text
    assert f"{100 * summary['share_kept']:.1f}%, {summary['kept']} records" in share_curve
    # A frame without the run's beta (another beta asked for) falls back on select_steps:
    del steps.attrs["beta"]
    assert f"{reported} kept" in kl_histogram(steps, beta=0.4).layout.annotations[0].text


def test_step_distributions_equal_full_distribution_values(syn):
    r = int(np.flatnonzero(syn.steps.kept)[0])
    row = syn.steps.iloc[r]
    fig = step_distributions(row, alpha=0.2)
    lp_e = torch.log_softmax(syn.expert_logits[r], -1)
    lp_a = torch.log_softmax(syn.amateur_logits[r], -1)
    p_e = lp_e.exp()
    mask = p_e >= 0.2 * p_e.max()
    ids = torch.nonzero(mask).flatten()
    weights = torch.softmax((lp_e - lp_a)[mask], -1)
    order = torch.argsort(weights, descending=True)
    expert, amateur, soft = fig.data
    np.testing.assert_allclose(arr(expert.y), p_e[ids[order]].numpy(), atol=1e-6)
    np.testing.assert_allclose(arr(amateur.y), lp_a.exp()[ids[order]].numpy(), atol=1e-6)
    np.testing.assert_allclose(arr(soft.y), weights[order].numpy(), atol=1e-6)
    assert list(expert.customdata) == ids[order].tolist()
    assert len(set(expert.x)) == len(expert.x)
    assert f"KL {row.kl:.3f}" in fig.layout.title.text


def test_loss_curve_from_records_and_frame():
    history = [{"step": s, "loss": 2.0 / s} for s in range(1, 21)]
    history.append({"step": 20, "eval_loss": 0.5})  # an entry without a loss is skipped
    fig = loss_curve(history, smooth=5)
    np.testing.assert_allclose(arr(fig.data[0].x), range(1, 21))
    np.testing.assert_allclose(arr(fig.data[0].y), [2.0 / s for s in range(1, 21)])
    assert len(fig.data) == 2
    frame = pd.DataFrame(history[:-1])
    np.testing.assert_allclose(arr(loss_curve(frame).data[0].y), frame.loss)
    with pytest.raises(ValueError, match="loss"):
        loss_curve([{"step": 1}])


def test_accuracy_comparison_intervals():
    results = [dict(name="base", accuracy=0.425, low=0.39, high=0.46),
               dict(name="tuned <LR>", accuracy=0.706, low=0.67, high=0.74)]
    fig = accuracy_comparison(results)
    bar = fig.data[0]
    np.testing.assert_allclose(arr(bar.y), [0.425, 0.706])
    np.testing.assert_allclose(arr(bar.error_y.array), [0.035, 0.034], atol=1e-12)
    np.testing.assert_allclose(arr(bar.error_y.arrayminus), [0.035, 0.036], atol=1e-12)
    assert list(bar.x) == ["base", "tuned &lt;LR&gt;"]
    assert fig.layout.yaxis.tickformat == ".0%"
    with pytest.raises(ValueError, match="missing"):
        accuracy_comparison([dict(name="a", accuracy=0.5)])
