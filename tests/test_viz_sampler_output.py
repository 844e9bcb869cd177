"""The contract between sampling and the visual layers: a real (tiny) sampling run's
steps.jsonl and records.jsonl, read back, give the same selection and soft labels
when recomputed from the stored statistics, and render."""
import numpy as np
import pytest

sampling = pytest.importorskip("lrkit.stages.sampling")

from lrkit.config import SampleConfig  # noqa: E402
from lrkit.data.records import read_records  # noqa: E402
from lrkit.maths.selection import select_steps, selection_summary, soft_label_from_stats  # noqa: E402
from lrkit.viz import Explorer, Report, kl_histogram, token_view  # noqa: E402
from tiny_models import save_pair  # noqa: E402

PROBLEMS = [{"id": f"q{i}", "question": f"Ann has {i + 3} pens and {i} more. How many?"}
            for i in range(4)]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("viz_run")
    expert, amateur = save_pair(root / "pair", expert_rows=3, eos_boost=1.0)
    config = SampleConfig(max_new_tokens=16, beta=0.3, alpha=0.2, top_k=20, batch_size=2)
    sampling.sample(str(expert), str(amateur), PROBLEMS, root / "run", config, progress=False)
    steps = sampling.read_steps(root / "run")
    records = read_records(root / "run" / "records.jsonl")
    return steps, records, config


def test_stored_kept_column_equals_select_steps(run):
    steps, records, config = run
    kept = select_steps(steps, config.beta, config.kl_inclusive, config.skip_first_step)
    assert kept.tolist() == steps["kept"].astype(bool).tolist()
    summary = selection_summary(steps, config.beta, alpha=config.alpha)
    assert summary["records"] == len(records)


def test_soft_labels_from_stats_equal_the_records(run):
    steps, records, config = run
    by_key = {(str(r["prompt_id"]), int(r["step"])): r for r in records}
    checked = 0
    for _, row in steps[steps["kept"].astype(bool)].iterrows():
        record = by_key[(str(row["prompt_id"]), int(row["step"]))]
        label = soft_label_from_stats(row, config.alpha, config.temperature)
        if not label.exact:
            assert len(record["token_ids"]) >= label.mask_size
            continue
        checked += 1
        assert label.token_ids.tolist() == list(record["token_ids"])
        np.testing.assert_allclose(label.weights, record["weights"], atol=1e-5)
    assert checked > 0


def test_views_render_real_steps(run, tmp_path):
    steps, _, config = run
    pid = steps["prompt_id"].iloc[0]
    view = token_view(steps, pid, alpha=config.alpha)
    assert len(view.panels[0].cells) == int((steps["prompt_id"] == pid).sum())
    ex = Explorer(steps, beta=config.beta)
    ex.problem.value = str(pid)
    one = steps[steps["prompt_id"] == pid]
    assert list(ex.state.kept_steps) == one["step"][one["kept"].astype(bool)].tolist()
    path = Report("real run").add_figure(kl_histogram(steps)).add_token_view(view) \
        .save(tmp_path / "r.html")
    assert path.stat().st_size > 100_000
