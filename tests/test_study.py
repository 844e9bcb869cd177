"""The ladder study: its small version end to end (slow), and the committed results' shape."""
from __future__ import annotations

import json

import pytest

from lrkit.studies.ladder import PREDICTORS, correlations
from lrkit.studies.scout import LADDER_RESULTS, spearman


def test_correlations_rank_each_predictor_against_the_gain():
    ladder = [{"mean_gain_points": g, "scout": {"cd_gain": c, "check_fixes": f, "check_breaks": b, "mass_gain": m}}
              for g, c, f, b, m in [(30, 25, 80, 5, 0.05), (10, 5, 40, 10, 0.01), (0, -40, 0, 0, None),
                                    (-2, -5, 10, 30, -0.01)]]
    rho = correlations(ladder)
    assert set(rho) == set(PREDICTORS)
    # ranks of the score 4 3 1 2, of the gain 4 3 2 1: 1 - 6 * (1 + 1) / (4 * 15) = 0.8
    assert rho["cd_gain"] == pytest.approx(0.8)
    assert rho["check_net_fixes"] == pytest.approx(spearman([75, 30, 0, -20], [30, 10, 0, -2]))
    # an amateur without kept steps has no mass gain: left out of that correlation
    assert rho["mass_gain"] == pytest.approx(spearman([0.05, 0.01, -0.01], [30, 10, -2]))


@pytest.mark.skipif(not LADDER_RESULTS.exists(), reason="no committed study results")
def test_committed_study_has_every_number_the_docs_quote():
    study = json.loads(LADDER_RESULTS.read_text())
    assert len(study["ladder"]) >= 5 and study["config"]["seeds"] == 3
    assert len(study["sweeps"]["beta"]) >= 5 and len(study["sweeps"]["alpha"]) >= 3
    for row in study["ladder"]:
        assert len(row["seeds"]) == 3
        for seed in row["seeds"]:
            low, high = seed["interval"]
            assert low <= seed["accuracy"] <= high and 0 <= seed["mcnemar_p"] <= 1
        assert row["scout"]["prediction"] is True
        assert row["anatomy"]["models"][0] == "base"
    assert set(study["spearman"]) == set(PREDICTORS)


@pytest.mark.slow
def test_quick_study_end_to_end(tmp_path, capsys):
    from lrkit.cli import main

    assert main(["study", "ladder", "--quick", "--out", str(tmp_path / "s"), "--quiet"]) == 0
    study = json.loads((tmp_path / "s" / "study.json").read_text())
    names = [row["name"] for row in study["ladder"]]
    assert names == ["g-small", "expert"]
    default, itself = study["ladder"]
    # the expert as its own amateur: nothing kept, nothing trained, gain zero by construction
    assert itself["records"] == 0 and itself["mean_gain_points"] == 0 and itself["seeds"][0]["fixed"] == 0
    assert default["records"] > 0 and default["records_audit"]["kept_steps"] == default["records"]
    base_errors = sum(default["anatomy"]["counts"]["base"].values())
    assert base_errors == round((1 - study["base"]["accuracy"]) * study["base"]["n"])
    assert [p["beta"] for p in study["sweeps"]["beta"]] == [0.4, 1.6]
    assert study["sweeps"]["beta"][1]["share_kept"] < study["sweeps"]["beta"][0]["share_kept"]
    assert (tmp_path / "s" / "report.html").exists()
    # every piece is an Experiment's folder: one base, the rungs, the sweep points in the sweep amateur's
    out = tmp_path / "s"
    assert (out / "expert" / "base" / "eval").is_dir()
    assert (out / "amateurs" / "g-small" / "experiment.json").exists()
    assert (out / "amateurs" / "g-small" / "sampling-beta1.6-alpha0.2").is_dir()
    assert (out / "sweeps" / "beta1.6-alpha0.2.json").exists()
    assert not list(out.rglob("done"))
    assert "Spearman" in capsys.readouterr().out
    # a rerun reads every finished piece back
    assert main(["study", "ladder", "--quick", "--out", str(tmp_path / "s"), "--quiet"]) == 0
    assert json.loads((tmp_path / "s" / "study.json").read_text())["ladder"] == study["ladder"]


def test_kept_rows_are_refused_for_other_settings(tmp_path):
    from lrkit.runs import FolderError
    from lrkit.studies.ladder import _store, _stored

    path = tmp_path / "amateurs" / "g-small" / "result.json"
    assert _stored(path, {"beta": 0.4}) is None
    assert _store(path, {"beta": 0.4}, {"name": "g-small", "interval": (0.1, 0.2)}) == {
        "name": "g-small", "interval": [0.1, 0.2]}
    assert _stored(path, {"beta": 0.4}) == {"name": "g-small", "interval": [0.1, 0.2]}
    with pytest.raises(FolderError, match="beta"):
        _stored(path, {"beta": 0.8})


def test_study_user_errors(tmp_path, capsys):
    from lrkit.cli import main

    assert main(["study", "ladder", "--amateur", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown ladder amateur 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"seeds": 1}))
    assert main(["study", "ladder", "--out", str(other)]) == 2
    assert "other settings" in capsys.readouterr().err


def test_run_study_gives_the_callers_thread_count_back(monkeypatch):
    """The study runs on ``threads`` and leaves torch as it found it, also when it fails."""
    import torch

    from lrkit.models.loading import torch_threads
    from lrkit.studies import ladder

    seen = []

    def broken(*args, **kwargs):
        seen.append(torch.get_num_threads())
        raise RuntimeError("the study broke")

    monkeypatch.setattr(ladder, "_run_study", broken)
    with torch_threads(3):
        with pytest.raises(RuntimeError, match="the study broke"):
            ladder.run_study("unused", threads=1)
        assert torch.get_num_threads() == 3
        with pytest.raises(RuntimeError):
            ladder.run_study("unused", threads=None)
    assert seen == [1, 3]
