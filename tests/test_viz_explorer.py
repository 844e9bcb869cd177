"""The explorer, driven through its widgets, reports what the selection functions compute."""
import re

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from lrkit.maths.selection import select_steps, soft_label_from_stats  # noqa: E402
from lrkit.viz import Explorer  # noqa: E402
from synthetic_steps import make_steps  # noqa: E402


@pytest.fixture(scope="module")
def steps():
    # Shuffled rows: the explorer must not rely on the input order.
    return make_steps(15, 40, seed=21).steps.sample(frac=1.0, random_state=1)


def kept_in_html(explorer):
    return [int(s) for s in re.findall(r'class="lrk-tok lrk-kept" data-step="(\d+)"',
                                       explorer.tokens.value)]


SETTINGS = [("p0003", 0.4, 0.2), ("p0003", 0.9, 0.2), ("p0011", 0.9, 0.5),
            ("p0000", 0.05, 0.05), ("p0007", 2.5, 1.0), ("p0014", 0.0, 0.3)]


@pytest.mark.parametrize("inclusive,skip", [(True, True), (False, False)])
def test_explorer_reports_what_select_steps_keeps(steps, inclusive, skip):
    ex = Explorer(steps, kl_inclusive=inclusive, skip_first_step=skip)
    for prompt_id, beta, alpha in SETTINGS:
        ex.problem.value = prompt_id
        ex.beta.value = beta
        ex.alpha.value = alpha
        s = ex.state
        assert (s.prompt_id, s.beta, s.alpha) == (prompt_id, beta, alpha)
        kept_all = select_steps(steps, beta, kl_inclusive=inclusive, skip_first_step=skip)
        one = steps[steps.prompt_id == prompt_id]
        expected = sorted(one.step[kept_all[one.index]].tolist())
        assert list(s.kept_steps) == expected
        assert kept_in_html(ex) == expected
        assert s.records == s.tuned_tokens == int(kept_all.sum())
        assert s.problems_with_records == steps[kept_all].prompt_id.nunique()
        assert s.share_kept == pytest.approx(kept_all.mean())
        labels = [soft_label_from_stats(r, alpha) for _, r in steps[kept_all].iterrows()]
        assert s.label_entries == sum(label.mask_size for label in labels)
        assert s.inexact_masks == sum(not label.exact for label in labels)
        assert f"{s.records:,} records" in ex.counts.value


def test_choosing_a_step_shows_its_soft_label(steps):
    ex = Explorer(steps, prompt_id="p0005", alpha=0.3)
    one = steps[steps.prompt_id == "p0005"].set_index("step")
    for step in (0, 7, 19, int(one.index.max())):
        ex.step.value = step
        s = ex.state
        expected = soft_label_from_stats(one.loc[step], 0.3)
        assert s.step == step
        assert s.soft_label.token_ids.tolist() == expected.token_ids.tolist()
        np.testing.assert_allclose(s.soft_label.weights, expected.weights)
        assert s.step_kept == bool(one.loc[step, "kl"] >= 0.4 and step > 0)
        ids = [int(i) for i in re.findall(r"data-id='(\d+)'", ex.detail.value)]
        assert ids == expected.token_ids.tolist()
        assert f"<b>step {step}</b>" in ex.detail.value


def test_problem_change_focuses_the_strongest_kept_step(steps):
    ex = Explorer(steps)
    ex.problem.value = "p0009"
    one = steps[(steps.prompt_id == "p0009")]
    kept = one[select_steps(one, 0.4)]
    assert ex.state.step == int(kept.loc[kept.kl.idxmax(), "step"])
    assert ex.step.max == len(one) - 1


def test_colour_choice_and_display(steps):
    ex = Explorer(steps, prompt_id="p0002")
    ex.score.value = "kept"
    assert "colour: <b>kept" in ex.tokens.value
    assert ex.state.kept_steps == tuple(kept_in_html(ex))
    bundle = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "p0002" in repr(ex)
    with pytest.raises(ValueError, match="prompt_id"):
        Explorer(steps, prompt_id="missing")


def test_explorer_kl_legend_follows_the_beta_slider_and_splits_kept_from_unkept(steps):
    ex = Explorer(steps)
    ex.problem.value = "p0003"
    for beta in (0.4, 0.9):
        ex.beta.value = beta
        html = ex.tokens.value
        assert f"\u03b2 = {beta:.3g}" in html
        colours = {}
        for cls, style in re.findall(r'class="(lrk-tok(?: lrk-kept)?)" data-step="\d+" data-score="[^"]+" '
                                     r'style="background:rgb\((\d+,\d+,\d+)\)', html):
            colours.setdefault("lrk-kept" in cls, set()).add(style)
        assert colours[True] and colours[False] and colours[True].isdisjoint(colours[False])
