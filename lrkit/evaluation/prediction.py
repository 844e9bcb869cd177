"""The scout's prediction for one pair, and whether a measured gain bore it out.

The scout (``lrkit scout``, :meth:`lrkit.Experiment.scout`) predicts LightReasoner's
gain without training: its **score** is the accuracy of decoding by v_C's argmax
minus the expert's greedy accuracy, in points, on validation problems; the
gold-path check and the odd-token audit come beside it. :func:`scout_row` builds
that row from the evaluations and the check; :func:`verdict` says, once the tuned
expert is measured on the test problems, whether the predicted direction held.
"""
from __future__ import annotations

import math
from typing import Optional

from lrkit.evaluation.stats import compare

NOISE_P = 0.05
"""A measured change with exact McNemar p at or above this is reported as no significant change."""


def _finite(value) -> Optional[float]:
    return None if value is None or (isinstance(value, float) and not math.isfinite(value)) else float(value)


def direction(points: float) -> str:
    """"gain", "loss" or "none" for a change in points."""
    return "gain" if points > 0 else "loss" if points < 0 else "none"


def scout_row(greedy, decoded, check, audit, amateur: str, beta: float, alpha: float) -> dict:
    """One scout row: ``greedy`` and ``decoded`` are the expert's greedy and v_C-argmax
    :class:`~lrkit.evaluation.results.EvalResult` on the same validation problems, ``check``
    the :class:`~lrkit.evaluation.diagnostics.ContrastCheck` and ``audit`` its
    :class:`~lrkit.evaluation.audit.OddTokenAudit`. Every number in it is a prediction."""
    versus = compare(greedy, decoded)
    s = check.summary()
    score = 100 * (decoded.accuracy - greedy.accuracy)
    return {
        "amateur": amateur, "beta": beta, "alpha": alpha,
        "score": score, "predicted": direction(score),
        "greedy_accuracy": greedy.accuracy, "cd_accuracy": decoded.accuracy, "cd_gain": score,
        "cd_fixed": len(versus.fixed), "cd_broken": len(versus.broken), "cd_p": versus.p_value,
        "check_steps": s["steps"], "check_kept": s["kept"], "kept_share": s["kept"] / max(s["steps"], 1),
        "check_disagreements": s["disagreements"], "check_fixes": s["fixes"], "check_breaks": s["breaks"],
        "label_gold_mass": _finite(s["label_gold_mass"]), "expert_gold_mass": _finite(s["expert_gold_mass"]),
        "mass_gain": _finite(s["label_gold_mass"] - s["expert_gold_mass"]),
        # The check's own verdict: "suits" / "does not suit" on >= 50 disagreements, else
        # "leans to suit" / "leans against"; check_favours is its direction alone.
        "check_verdict": s["verdict"], "check_favours": s["favours"],
        "odd_share": _finite(audit.share), "odd_tokens": audit.n_odd,
        "odd_top": [[t, c] for t, c in audit.top_tokens[:5]],
        "problems": len(greedy.df), "prediction": True,
    }


def verdict(prediction: dict, gain_points: float, p_value: float) -> dict:
    """Whether the scout's predicted direction held on the test problems.

    ``measured``: "gain" or "loss" when exact McNemar p < NOISE_P, else "none".
    ``held``: the scout predicted a gain and a significant gain came, or it predicted no
    change or a loss and no significant gain came; a significant change against the
    prediction did not hold. ``exact``: the measured direction is the predicted one (a
    predicted loss with no significant change held, but not exactly: no gain came, and
    no loss either). ``text`` says it in one sentence.

    Args:
        prediction: the scout row (:func:`scout_row`): ``predicted``, ``score``, ``problems``.
        gain_points: tuned minus base accuracy on the test problems, in points.
        p_value: exact McNemar p of that comparison.
    Returns:
        dict: predicted, measured, gain_points, p_value, held, exact, text.

    >>> verdict({"predicted": "loss", "score": -15.6, "problems": 32}, 2.5, 0.49)["text"]
    'the scout predicted a loss (score -15.6 points on 32 validation problems); the test measured +2.5 points (p = 0.49, not significant): no gain, as predicted, but no loss either'
    """
    measured = direction(gain_points) if p_value < NOISE_P else "none"
    predicted = prediction["predicted"]
    if predicted == "gain":
        held = measured == "gain"
    elif predicted == "loss":
        held = measured in ("loss", "none")
    else:
        held = measured == "none"
    exact = held and measured == predicted
    significance = f"p = {p_value:.3g}" + ("" if p_value < NOISE_P else ", not significant")
    outcome = ("the prediction held" if exact else "no gain, as predicted, but no loss either" if held
               else "the prediction did not hold")
    text = (f"the scout predicted a {predicted} (score {prediction['score']:+.1f} points on "
            f"{prediction['problems']} validation problems); the test measured {gain_points:+.1f} points "
            f"({significance}): {outcome}")
    if predicted == "none":
        text = text.replace("predicted a none", "predicted no change")
    return {"predicted": predicted, "measured": measured, "gain_points": gain_points, "p_value": p_value,
            "held": held, "exact": exact, "text": text}
