"""lrkit scout on the bundled pair, where the answer is known: toy's amateur (G only)
points the expert towards better answers; the expert used as its own amateur
(gap zero) has a flat soft label and nothing to show. And `spearman`, by hand."""
from __future__ import annotations

import json
import math

import pytest

from lrkit.cli import main
from markers import needs_toy
from lrkit.studies.scout import spearman






@pytest.fixture(scope="module")
def validation_file(tmp_path_factory):
    from lrkit.toy import toy_problems

    path = tmp_path_factory.mktemp("scout") / "validation.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in toy_problems("toy", 24, "validation", seed=7)))
    return path


@needs_toy
def test_scout_ranks_the_general_amateur_above_the_expert_itself(validation_file, tmp_path, capsys):
    out = tmp_path / "scout"
    assert main(["scout", "--expert", "toy:expert", "--amateur", "ladder:expert", "--amateur", "toy:amateur",
                 "--problems", str(validation_file), "--out", str(out), "--max-new-tokens", "160",
                 "--batch-size", "24"]) == 0
    rows = json.loads((out / "ranking.json").read_text())
    assert [r["amateur"] for r in rows] == ["toy:amateur", "ladder:expert"]
    best, flat = rows
    assert best["rank"] == 1 and best["prediction"] is True and best["problems"] == 24
    assert best["score"] > 0 and best["check_fixes"] > best["check_breaks"]
    assert best["score"] == pytest.approx(100 * (best["cd_accuracy"] - best["greedy_accuracy"]))
    assert best["check_kept"] > 0 and 0 <= best["odd_share"] <= 1
    # the expert against itself: KL is zero everywhere, so no step is kept
    assert flat["check_kept"] == 0 and flat["mass_gain"] is None and flat["odd_share"] is None
    assert flat["score"] < best["score"]
    assert (out / "ranking.html").read_text().count("plotly") > 0
    printed = capsys.readouterr().out
    assert "predictions, made without any training" in printed
    assert "odd-token audit (gold paths)" in printed and "docs/LADDER.md" in printed


@needs_toy
def test_the_readme_scout_command_runs_as_written(validation_file, tmp_path, capsys):
    """No --max-new-tokens: the default answer length (the paper's 2,048) is capped to what
    toy's 512 positions leave, with one note; toy:amateur ranks first; the row's check
    verdict agrees with its direction (check_favours)."""
    out = tmp_path / "scout"
    assert main(["scout", "--expert", "toy:expert", "--amateur", "toy:amateur", "--amateur", "toy:expert",
                 "--problems", str(validation_file), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("answers capped at") == 1
    rows = json.loads((out / "ranking.json").read_text())
    assert [r["amateur"] for r in rows] == ["toy:amateur", "toy:expert"]
    best, itself = rows
    ratio_holds = best["check_fixes"] >= 2 * best["check_breaks"] and best["mass_gain"] >= 0.03
    assert best["check_favours"] is ratio_holds
    enough = best["check_disagreements"] >= 50
    assert best["check_verdict"] == {(True, True): "suits", (False, True): "does not suit",
                                     (True, False): "leans to suit", (False, False): "leans against"}[
        (ratio_holds, enough)]
    assert itself["check_verdict"] == "leans against" and itself["check_favours"] is False


@needs_toy
def test_scout_settings_each_get_a_row(validation_file, tmp_path):
    from lrkit.config import EvalConfig
    from lrkit.studies.scout import scout

    result = scout("toy:expert", ["toy:amateur"], validation_file, betas=(0.4, 2.0), alphas=(0.2,),
                   max_problems=8, eval_config=EvalConfig(max_new_tokens=160, batch_size=8))
    rows = {(r["beta"], r["alpha"]): r for r in result.rows}
    assert set(rows) == {(0.4, 0.2), (2.0, 0.2)}
    # a higher beta keeps fewer steps; decoding by v_C does not depend on beta
    assert rows[(2.0, 0.2)]["check_kept"] < rows[(0.4, 0.2)]["check_kept"]
    assert rows[(2.0, 0.2)]["cd_accuracy"] == rows[(0.4, 0.2)]["cd_accuracy"]


def test_scout_user_errors(tmp_path, capsys):
    assert main(["scout", "--expert", "toy:expert", "--amateur", "toy:amateur", "--problems",
                 str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")]) == 2
    assert "--problems" in capsys.readouterr().err
    no_answers = tmp_path / "q.jsonl"
    no_answers.write_text(json.dumps({"question": "What is 2 + 2?"}) + "\n")
    assert main(["scout", "--expert", "toy:expert", "--amateur", "toy:amateur", "--problems", str(no_answers),
                 "--out", str(tmp_path / "o")]) == 2
    assert "answer" in capsys.readouterr().err
    good = tmp_path / "p.jsonl"
    good.write_text(json.dumps({"question": "What is 2 + 2?", "answer": "2 + 2 = 4\n#### 4"}) + "\n")
    assert main(["scout", "--expert", "toy:expert", "--amateur", "toy:amateur", "--problems", str(good),
                 "--out", str(tmp_path / "o"), "--alpha", "0"]) == 2
    assert "--alpha" in capsys.readouterr().err


# ---------------------------------------------------------------- spearman

def test_spearman_without_ties():
    # ranks x: 1 2 3 4 5, y: 2 1 4 3 5 -> d^2 = 1+1+1+1+0 = 4; rho = 1 - 6*4/(5*24) = 0.8
    assert spearman([1, 2, 3, 4, 5], [20, 10, 40, 30, 50]) == pytest.approx(0.8)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_spearman_with_ties_uses_average_ranks():
    # x ranks 1, 2.5, 2.5, 4; y ranks 1, 2, 3, 4: Pearson of the ranks, by hand
    rx, ry = [1, 2.5, 2.5, 4], [1, 2, 3, 4]
    mx, my = 2.5, 2.5
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    expected = cov / math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))
    assert spearman([0.1, 0.5, 0.5, 0.9], [1, 2, 3, 4]) == pytest.approx(expected)
    assert expected == pytest.approx(0.9486832980505138)


def test_spearman_edge_cases():
    assert math.isnan(spearman([1], [2]))
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))  # no variation in one variable
    with pytest.raises(ValueError):
        spearman([1, 2], [1])


# ---------------------------------------------------------------- the verdict on the test problems

@pytest.mark.parametrize("predicted, gain, p, measured, held, exact", [
    ("gain", 6.0, 0.01, "gain", True, True),      # a significant gain, as predicted
    ("gain", 6.0, 0.20, "none", False, False),    # a gain in points, but noise: the prediction did not hold
    ("gain", -6.0, 0.01, "loss", False, False),
    ("loss", -6.0, 0.01, "loss", True, True),
    ("loss", 2.5, 0.487, "none", True, False),    # the Coder pair: no gain, but no loss either
    ("loss", 6.0, 0.01, "gain", False, False),
    ("none", 0.0, 1.0, "none", True, True),
    ("none", -6.0, 0.01, "loss", False, False),
])
def test_verdict_reads_the_measured_direction_by_mcnemar(predicted, gain, p, measured, held, exact):
    from lrkit.evaluation.prediction import NOISE_P, verdict

    assert NOISE_P == 0.05
    v = verdict({"predicted": predicted, "score": -15.6 if predicted == "loss" else 4.0, "problems": 32}, gain, p)
    assert (v["measured"], v["held"], v["exact"]) == (measured, held, exact)
    words = {(True, True): "the prediction held", (True, False): "no gain, as predicted, but no loss either",
             (False, False): "the prediction did not hold"}[(held, exact)]
    assert v["text"].endswith(words)
    assert ("not significant" in v["text"]) == (p >= 0.05)
