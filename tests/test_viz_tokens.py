"""The token view: escaping, colours, tooltips, text version, export. Content, not pixels."""
import re
from html.parser import HTMLParser

import numpy as np
import pytest
import torch

from lrkit.maths.selection import select_steps
from lrkit.viz import side_by_side, token_view
from synthetic_steps import EOS, make_steps, stats_frame, vocabulary

VOID = {"br", "meta", "hr", "img", "input", "link"}


class Node:
    def __init__(self, tag, attrs, parent=None):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []

    @property
    def classes(self):
        return set(self.attrs.get("class", "").split())

    def text(self, skip=frozenset()):
        out = []
        for child in self.children:
            if isinstance(child, str):
                out.append(child)
            elif not (child.classes & skip):
                out.append("\n" if child.tag == "br" else child.text(skip))
        return "".join(out)

    def find_all(self, cls):
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if cls in child.classes:
                    found.append(child)
                found += child.find_all(cls)
        return found


class Tree(HTMLParser):
    """A strict little DOM: any mismatched closing tag fails the test."""

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.root = self.node = Node("root", {})
        self.feed(html)
        self.close()
        assert self.node is self.root, "unclosed elements"

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.node)
        self.node.children.append(node)
        if tag not in VOID:
            self.node = node

    def handle_endtag(self, tag):
        assert self.node.tag == tag, f"</{tag}> closes <{self.node.tag}>"
        self.node = self.node.parent

    def handle_data(self, data):
        self.node.children.append(data)


def tokens_of(view):
    """The token spans of a view, in order (the legend's sample span has no step)."""
    return [n for n in Tree(view.html).root.find_all("lrk-tok") if "data-step" in n.attrs]


def rgb(node):
    return tuple(int(v) for v in re.search(r"rgb\((\d+),(\d+),(\d+)\)", node.attrs["style"]).groups())


def luminance(c):
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


TRICKY = ["<script>alert(1)</script>", EOS, "&amp;", '"q"', "\n", "\t", " ", "é", "<b>", "'s",
          "\n\n", "<|endoftext|>"]


@pytest.fixture(scope="module")
def tricky():
    """A rollout whose tokens are the awkward ones: HTML, special tokens, whitespace."""
    vocab = vocabulary(40)
    ids = [vocab.index(t) for t in TRICKY]
    g = torch.Generator().manual_seed(11)
    n = len(ids)
    expert = torch.randn(n, 40, generator=g) * 2
    amateur = expert * 0.5 + torch.randn(n, 40, generator=g) * 2
    steps = stats_frame(["x"] * n, list(range(n)), expert, amateur, vocab, top_k=8,
                        token_ids=ids)
    return steps, expert, amateur, vocab


def test_text_and_special_tokens_are_escaped(tricky):
    steps = tricky[0]
    html = token_view(steps).html
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;|im_end|&gt;" in html and "<|im_end|>" not in html
    assert "&amp;amp;" in html
    assert "&lt;b&gt;" in html  # the token "<b>" arrives as text, not as markup
    shown = [n.text(skip={"lrk-tip"}) for n in tokens_of(token_view(steps))]
    assert shown == ["<script>alert(1)</script>", "<|im_end|>", "&amp;", '"q"', "\u21b5\n",
                     "\u21e5", " ", "é", "<b>", "'s", "\u21b5\n\u21b5\n", "<|endoftext|>"]


def test_special_tokens_are_marked(tricky):
    nodes = tokens_of(token_view(tricky[0]))
    specials = [n.text(skip={"lrk-tip"}) for n in nodes
                if any("lrk-special" in c.classes for c in n.children if not isinstance(c, str))]
    assert specials == ["<|im_end|>", "<|endoftext|>"]


@pytest.mark.parametrize("score", ["kl", "expert_entropy", "amateur_entropy"])
def test_colours_rise_with_the_score(score):
    steps = make_steps(1, 60, seed=4).steps
    low, top = float(steps[score].min()), float(steps[score].max())
    nodes = tokens_of(token_view(steps, score=score, vmin=low, vmax=top))
    values = steps.sort_values("step")[score].to_numpy()
    assert [float(n.attrs["data-score"]) for n in nodes] == pytest.approx(values.tolist(), rel=1e-5)
    order = np.argsort(values)
    lum = [luminance(rgb(nodes[i])) for i in order]
    assert all(a >= b for a, b in zip(lum, lum[1:])), "darker must mean a higher score"
    assert lum[0] > 250 and lum[-1] < 120
    middle = int(np.argmin(np.abs(values - (low + top) / 2)))
    assert lum[0] > luminance(rgb(nodes[middle])) > lum[-1]


def test_logprob_gap_is_diverging():
    steps = make_steps(1, 60, seed=4).steps
    gap = (steps.expert_logprob - steps.amateur_logprob).to_numpy()
    nodes = tokens_of(token_view(steps, score="logprob_gap"))
    for n, g in zip(nodes, gap):
        r, _, b = rgb(n)
        if g > 0.05:
            assert r > b
        elif g < -0.05:
            assert b > r
    pos = np.flatnonzero(gap > 0)
    ordered = pos[np.argsort(gap[pos])]
    lum = [luminance(rgb(nodes[i])) for i in ordered]
    assert all(a >= b for a, b in zip(lum, lum[1:]))


def test_kept_colouring_and_markers_follow_selection():
    steps = make_steps(1, 50, seed=6).steps
    kept = select_steps(steps, 0.7)
    nodes = tokens_of(token_view(steps, score="kept", beta=0.7))
    assert [("lrk-kept" in n.classes) for n in nodes] == kept.tolist()
    colours = {rgb(n) for n, k in zip(nodes, kept) if k}
    assert len(colours) == 1 and rgb(nodes[int(np.flatnonzero(~kept)[0])]) == (255, 255, 255)


def _table(tip, cls):
    table = tip.find_all(cls)[0]
    rows = [c for c in table.children if isinstance(c, Node)]
    return [(int(r.attrs["data-id"]), float(r.find_all("lrk-p")[0].text())) for r in rows]


def test_tooltips_carry_the_right_top_k_and_soft_label():
    syn = make_steps(2, 30, seed=8)
    steps = syn.steps[syn.steps.prompt_id == "p0001"]
    rows = np.flatnonzero(syn.steps.prompt_id == "p0001")
    nodes = tokens_of(token_view(steps, "p0001", alpha=0.2))
    assert any("lrk-kept" in n.classes for n in nodes)
    for node, r in zip(nodes, rows):
        tip = node.find_all("lrk-tip")[0]
        for cls, logits in (("lrk-etop", syn.expert_logits[r]), ("lrk-atop", syn.amateur_logits[r])):
            probs = torch.softmax(logits, -1)
            p, ids = probs.topk(5)
            got = _table(tip, cls)
            assert [i for i, _ in got] == ids.tolist()
            np.testing.assert_allclose([q for _, q in got], p.numpy(), atol=6e-4)
        soft = tip.find_all("lrk-soft")
        if "lrk-kept" not in node.classes:
            assert soft == []
            continue
        p_e = torch.softmax(syn.expert_logits[r], -1)
        mask = p_e >= 0.2 * p_e.max()
        weights = torch.softmax((torch.log_softmax(syn.expert_logits[r], -1)
                                 - torch.log_softmax(syn.amateur_logits[r], -1))[mask], -1)
        expected = sorted(zip(torch.nonzero(mask).flatten().tolist(), weights.tolist()),
                          key=lambda t: -t[1])
        got = _table(tip, "lrk-soft")
        if mask.sum() <= 8:
            assert [i for i, _ in got] == [i for i, _ in expected]
            np.testing.assert_allclose([w for _, w in got], [w for _, w in expected], atol=6e-4)


def test_terminal_text_marks_kept_steps(capsys):
    steps = make_steps(1, 30, seed=2).steps
    view = token_view(steps, title="t<1>")
    text = str(view)
    assert "<span" not in text and "t<1>" in text
    kept = steps[steps.kept]
    for token in kept.token:
        assert f"\u27e6{token}\u27e7" in text
    assert text.split("\n", 2)[2].count("\u27e6") == len(kept)
    view.show()  # outside a notebook: prints the text version
    assert capsys.readouterr().out.strip() == text.strip()
    assert view._repr_html_() == view.html


def test_save_writes_a_scriptless_page(tmp_path, tricky):
    path = token_view(tricky[0], title="A & B").save(tmp_path / "sub" / "view.html")
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and 'charset="utf-8"' in page
    assert "<script" not in page
    assert "<title>A &amp; B</title>" in page
    Tree(page)  # well formed


def test_side_by_side_shares_one_scale():
    a = make_steps(2, 20, seed=1).steps
    b = make_steps(2, 20, seed=2).steps
    view = side_by_side({"base <pair>": a, "tuned": b}, "p0001")
    assert [p.label for p in view.panels] == ["base <pair>", "tuned"]
    panels = Tree(view.html).root.find_all("lrk-panel")
    assert len(panels) == 2
    assert "base <pair>" in panels[0].find_all("lrk-head")[0].text()
    both = np.concatenate([a[a.prompt_id == "p0001"].kl, b[b.prompt_id == "p0001"].kl])
    assert view.scale.vmax == pytest.approx(np.quantile(both, 0.95))
    view2 = side_by_side([("x", a), ("y", b)], ["p0000", "p0001"])
    assert [p.prompt_id for p in view2.panels] == ["p0000", "p0001"]


def test_needs_a_prompt_id_when_several_problems():
    steps = make_steps(3, 10).steps
    with pytest.raises(ValueError, match="prompt_id"):
        token_view(steps)
    with pytest.raises(ValueError, match="unknown score"):
        token_view(steps, "p0000", score="nope")


# ---------------------------------------------------------------- the KL scale around beta, the question

def _is_blue(c):
    return c[2] >= c[0]


@pytest.mark.parametrize("rank", [30, 2])
def test_kl_scale_marks_beta_and_never_gives_kept_and_unkept_one_colour(rank):
    steps = make_steps(2, 60, seed=4).steps
    one = steps[steps.prompt_id == steps.prompt_id.iloc[0]].sort_values("step")
    beta = float(np.sort(one["kl"].to_numpy()[1:])[-rank])  # `rank` steps reach it
    if rank == 2:  # beta above the 95th percentile, where the old scale topped out below beta
        assert beta > np.quantile(steps["kl"], 0.95)
    view = token_view(steps, one.prompt_id.iloc[0], beta=beta)
    nodes = tokens_of(view)
    kept = [("lrk-kept" in n.classes) for n in nodes]
    kl = one["kl"].to_numpy()
    assert kept == select_steps(one, beta).tolist() and any(kept) and not all(kept)
    kept_colours = {rgb(n) for n, k in zip(nodes, kept) if k}
    unkept_colours = {rgb(n) for n, k in zip(nodes, kept) if not k}
    assert kept_colours.isdisjoint(unkept_colours)
    assert all(not _is_blue(c) for c in kept_colours) and all(_is_blue(c) for c in unkept_colours)
    # the unkept step closest to beta is still in the blue family, the kept one closest in the red
    below = max((v, i) for i, v in enumerate(kl) if not kept[i])[1]
    assert _is_blue(rgb(nodes[below]))
    assert view.scale.vmax > beta
    legend = Tree(view.html).root.find_all("lrk-ticks")[0].text()
    assert f"\u03b2 = {beta:.3g}" in legend


def test_without_a_known_beta_the_kl_scale_is_one_ramp():
    steps = make_steps(1, 40, seed=4).steps
    view = token_view(steps)
    assert view.scale.kind == "sequential" and "\u03b2" not in Tree(view.html).root.find_all("lrk-ticks")[0].text()


def test_read_steps_gives_the_views_the_question_and_the_runs_beta(tmp_path):
    import json

    from lrkit.stages.sampling import read_steps

    steps = make_steps(2, 20, seed=3).steps
    steps.to_json(tmp_path / "steps.jsonl", orient="records", lines=True)
    ids = list(dict.fromkeys(steps.prompt_id))
    questions = {pid: f"What is {i} <b>plus</b> {i}?" for i, pid in enumerate(ids)}
    (tmp_path / "rollouts.jsonl").write_text("".join(
        json.dumps({"prompt_id": pid, "question": q}) + "\n" for pid, q in questions.items()))
    (tmp_path / "config.json").write_text(json.dumps({"beta": 0.7, "alpha": 0.2}))
    read = read_steps(tmp_path)
    assert read.attrs["beta"] == 0.7 and read.attrs["questions"] == questions
    view = token_view(read, ids[1])
    shown = Tree(view.html).root.find_all("lrk-question")
    assert len(shown) == 1 and questions[ids[1]] in shown[0].text()
    assert "<b>plus</b>" not in view.html  # the question is text, not markup
    assert f"question: {questions[ids[1]]}" in str(view)
    assert view.scale.kind == "split" and view.scale.beta == 0.7
    # side by side: each panel its own question
    both = side_by_side({"a": read, "b": read}, [ids[0], ids[1]])
    assert [q.text() for q in Tree(both.html).root.find_all("lrk-question")] == \
        [f"question: {questions[ids[0]]}", f"question: {questions[ids[1]]}"]
