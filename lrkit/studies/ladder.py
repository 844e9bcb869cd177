"""``lrkit study ladder``: when does the method work? The paper's amateur and beta
analyses in miniature, on ``toy``'s expert and the amateur ladder (:mod:`lrkit.toy.ladder`).

    lrkit study ladder --out runs/ladder      # builds / finds the ladder, then everything below

For every amateur of the ladder:

* its greedy accuracy (test problems), and the expertise gap (expert minus amateur);
* the scout's predictions on **validation** problems (:mod:`lrkit.studies.scout`): decoding
  by v_C's argmax against greedy, the gold-path check, the odd-token audit;
* decoding by v_C's argmax on the test problems;
* LightReasoner with the demo's settings (200 train problems sampled, 60 LoRA
  steps) over three seeds, each evaluated on the same 500 **test** problems:
  accuracy with 95% Wilson intervals, fixed / broken and an exact McNemar test
  against the base expert;
* the error anatomy (:mod:`lrkit.evaluation.anatomy`) of the base and every tuned expert.

Then a beta sweep and an alpha sweep on the default pair (``toy``: the g-small
rung): gain, kept share of steps, tuned tokens. The Spearman rank correlation
between the scout's score and the measured gain closes the study.

No setting is chosen here: beta 0.4, alpha 0.2, the learning rate and the steps
are the demo's, chosen earlier on validation problems (docs/TOY_PAIRS.md); the
scout reads validation problems only, and test problems give the measured
numbers.

Every piece runs on the one pipeline, :class:`lrkit.experiment.Experiment`
(toy's expert against a rung, ``ExperimentConfig.amateur``), so the run-folder
layer (:mod:`lrkit.runs`) resumes or refuses each stage. The output folder::

    config.json  study.json  report.html
    expert/                   toy's own experiment: the one base (base/eval), greedy on validation (validation/eval)
    amateurs/NAME/            the experiment against rung NAME: sampling-*, lightreasoner-*-seedS/{adapter,merged,eval},
                              decoding-*, amateur/{eval,validation-eval}; result.json (its row of study.json);
                              the sweep amateur's folder also holds the sweep points' sampling and models
    sweeps/betaB-alphaA.json  a sweep point's row

``result.json`` and the sweep points' files keep the computed rows (with their
timings and the scout's numbers, which no stage stores) beside the settings that
made them; other settings are refused (:class:`lrkit.runs.FolderError`). Merged
models stay (11 MB each on toy; the full study trains at most 24: about 270 MB).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional

from lrkit.config import EvalConfig, ExperimentConfig, SampleConfig, TrainConfig, current_names, to_dict
from lrkit.runs import check_settings, read_json, write_json
from lrkit.studies.scout import score_pair, spearman
from lrkit.models.pairs import get_rung

STUDY_FILE = "study.json"


@dataclass
class StudyConfig:
    """The study's budget: the demo's sizes."""

    amateurs: tuple = ("g-small", "g-large", "gf-05", "gf-20", "gf-50", "expert-50", "expert")
    """Rungs of the ladder to study (lrkit.toy.ladder.RUNGS)."""
    seeds: int = 3
    """LightReasoner trainings per amateur (TrainConfig.seed, +1, ...)."""
    train_problems: int = 200
    test_problems: int = 500
    validation_problems: int = 200
    problem_seed: int = 2026
    betas: tuple = (0.1, 0.2, 0.4, 0.8, 1.6)
    """The beta sweep (alpha fixed at the sample config's)."""
    alphas: tuple = (0.05, 0.2, 0.5)
    """The alpha sweep (beta fixed at the sample config's)."""
    sweep_amateur: str = "g-small"
    """The sweeps' amateur: g-small is toy:amateur, so the sweeps run on the default pair."""
    sweep_seeds: int = 1
    """Trainings per sweep point (the default pair's seeds differ by under a point: README)."""
    sample: SampleConfig = field(default_factory=lambda: ExperimentConfig().sample)
    """The demo's settings, so the ladder's default rung reproduces the demo."""
    train: TrainConfig = field(default_factory=lambda: ExperimentConfig().train)
    eval: EvalConfig = field(default_factory=lambda: ExperimentConfig().eval)

    def to_dict(self) -> dict:
        plain = {k: v for k, v in asdict(self).items() if k not in ("sample", "train", "eval")}
        return {**plain, "sample": to_dict(self.sample), "train": to_dict(self.train), "eval": to_dict(self.eval)}


def quick_config() -> StudyConfig:
    """A small study for CI and the notebook's fallback: two amateurs, one seed, small sets, short sweeps."""
    return StudyConfig(amateurs=("g-small", "expert"), seeds=1, train_problems=24, test_problems=40,
                       validation_problems=24, betas=(0.4, 1.6), alphas=(0.2,),
                       train=replace(StudyConfig().train, max_steps=8, save_steps=8))


def _points(x: float) -> float:
    return round(100 * x, 2)


def _plain(value):
    """``value`` as plain JSON (what study.json holds: anything else as its text)."""
    return json.loads(json.dumps(value, default=str))


def _experiment(out_dir: Path, name: str, config: StudyConfig, progress: bool,
                sample: Optional[SampleConfig] = None, seeds: Optional[int] = None, amateur: bool = True):
    """The one pipeline (:class:`lrkit.experiment.Experiment`) for toy's expert against the
    rung ``name`` in ``out_dir/amateurs/NAME``: the study's problems and budget (``sample``
    and ``seeds``: a sweep point's). ``amateur=False``: toy's own pair in ``out_dir/NAME``."""
    from lrkit.experiment import Experiment

    experiment_config = ExperimentConfig(
        pair="toy", amateur=f"ladder:{name}" if amateur else None, train_problems=config.train_problems,
        test_problems=config.test_problems, problem_seed=config.problem_seed,
        seeds=config.seeds if seeds is None else seeds, check_problems=config.validation_problems,
        sample=sample or config.sample, train=config.train, eval=config.eval)
    folder = out_dir / "amateurs" / name if amateur else out_dir / name
    return Experiment(folder, experiment_config, device="cpu", progress=progress)


def _settings(ex, config: StudyConfig) -> dict:
    """What shapes a piece of the study (an amateur or a sweep point): its experiment's settings."""
    c = ex.config
    return _plain({"experiment": {**c.problem_settings(), "seeds": c.seeds},
                   "validation_problems": config.validation_problems,
                   "sample": to_dict(c.sample), "train": to_dict(c.train), "eval": to_dict(c.eval)})


def _current_names(stored: Optional[dict]) -> Optional[dict]:
    """Stored study settings with their sampling settings under today's field names
    (:func:`lrkit.config.current_names`), so a study from before a rename resumes."""
    if isinstance(stored, dict) and isinstance(stored.get("sample"), dict):
        return {**stored, "sample": current_names(SampleConfig, stored["sample"])}
    return stored


def _stored(path: Path, settings: dict) -> Optional[dict]:
    """The piece's summary kept in ``path`` for these settings; None when there is none
    yet; kept for other settings: :class:`lrkit.runs.FolderError`."""
    stored = read_json(path)
    if stored is None:
        return None
    check_settings(path.parent, "study piece", _current_names(stored.get("settings")), settings)
    return stored["result"]


def _store(path: Path, settings: dict, result: dict) -> dict:
    result = _plain(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"settings": settings, "result": result})
    return result


def _seed_row(seed: int, result, comparison, tuned_tokens: int, records: int) -> dict:
    return {"seed": seed, "accuracy": result.accuracy, "interval": list(result.interval),
            "gain_points": _points(result.accuracy - comparison.accuracy_a), "fixed": len(comparison.fixed),
            "broken": len(comparison.broken), "mcnemar_p": comparison.p_value, "tuned_tokens": tuned_tokens,
            "records": records}


def _lightreasoner(ex, base, log) -> tuple:
    """The experiment's sampling, then its training / evaluation once per seed;
    returns (sampling summary, records, [(seed row, result)])."""
    from lrkit.evaluation import compare

    sampled = ex.sample()
    records = sampled.records()
    runs = []
    for seed in ex.seeds():
        if not records:  # nothing kept: nothing to train on, the expert stays as it is
            runs.append((_seed_row(seed, base, compare(base, base), 0, 0), base))
            continue
        trained = ex.train(seed=seed)
        result = ex.evaluate("lightreasoner", seed)
        runs.append((_seed_row(seed, result, compare(base, result), trained.tuned_tokens, len(records)), result))
        log(f"  seed {seed}: {result.accuracy:.1%} ({runs[-1][0]['gain_points']:+.1f} points)")
    return sampled.summary, records, runs


def _study_rung(name: str, problems: dict, base, greedy_validation, out_dir: Path,
                config: StudyConfig, progress: bool, log) -> dict:
    from lrkit.evaluation.anatomy import error_anatomy
    from lrkit.evaluation.audit import odd_token_audit
    from lrkit.evaluation import compare, evaluate

    ex = _experiment(out_dir, name, config, progress)
    path, settings = ex.folder / "result.json", _settings(ex, config)
    stored = _stored(path, settings)
    if stored is not None:
        return stored
    started, cpu = time.perf_counter(), time.process_time()
    rung = get_rung(name)
    pair, test, validation = ex.pair, ex.test_set(), problems["validation"]
    amateur = evaluate(pair.amateur, test, config.eval, tokenizer=pair.tokenizer,
                       out_dir=ex.folder / "amateur" / "eval", progress=progress, name=f"amateur {name}")
    amateur_validation = evaluate(pair.amateur, validation, config.eval, tokenizer=pair.tokenizer,
                                  out_dir=ex.folder / "amateur" / "validation-eval", progress=progress,
                                  name=f"amateur {name}")
    scout = score_pair(pair, validation, (config.sample.beta,), (config.sample.alpha,), config.eval,
                       greedy_validation, name=name, progress=progress)[0]
    gold_path_audit = scout.pop("_audit")
    decoded = ex.decode()
    log(f"{name}: amateur {amateur.accuracy:.1%}; scout score {scout['score']:+.1f}; "
        f"decoding by v_C on test {decoded.accuracy:.1%}")
    summary, records, runs = _lightreasoner(ex, base, log)
    anatomy = error_anatomy({"base": base, **{f"seed {row['seed']}": result for row, result in runs}},
                            problems=test)
    seeds = [row for row, _ in runs]
    versus_cd = compare(base, decoded)
    result = {
        "name": name, "description": rung.description, "family_share": rung.family_share,
        "amateur_accuracy": amateur.accuracy, "amateur_interval": list(amateur.interval),
        "amateur_validation_accuracy": amateur_validation.accuracy,
        "gap": base.accuracy - amateur.accuracy,
        "scout": scout,
        "gold_path_audit": gold_path_audit.summary(),
        "cd_accuracy_test": decoded.accuracy, "cd_interval_test": list(decoded.interval),
        "cd_gain_test_points": _points(decoded.accuracy - base.accuracy),
        "cd_fixed_test": len(versus_cd.fixed), "cd_broken_test": len(versus_cd.broken),
        "cd_p_test": versus_cd.p_value,
        "steps": summary.get("steps"), "records": len(records), "share_kept": summary.get("share_kept"),
        "seeds": seeds, "mean_gain_points": round(sum(r["gain_points"] for r in seeds) / len(seeds), 2),
        "records_audit": None,
        "anatomy": anatomy.summary(),
        "seconds": round(time.perf_counter() - started, 1), "cpu_seconds": round(time.process_time() - cpu, 1),
    }
    if records:
        audit = odd_token_audit(records)
        result["records_audit"] = audit.summary()
        result["records_audit_examples"] = audit.examples.to_dict("records")
    return _store(path, settings, result)


def _sweep_point(setting: str, value: float, base, out_dir: Path, config: StudyConfig, progress: bool, log,
                 ladder: list = ()) -> dict:
    sample_config = replace(config.sample, **{setting: value})
    beta, alpha = sample_config.beta, sample_config.alpha
    studied = next((row for row in ladder if row["name"] == config.sweep_amateur), None)
    if studied is not None and (beta, alpha) == (config.sample.beta, config.sample.alpha):
        # The study's own setting: the sweep amateur's first seeds, already trained and measured.
        seeds = studied["seeds"][:config.sweep_seeds]
        return {"setting": setting, "beta": beta, "alpha": alpha, "amateur": config.sweep_amateur,
                "steps": studied["steps"], "records": studied["records"], "share_kept": studied["share_kept"] or 0.0,
                "tuned_tokens": max((r["tuned_tokens"] for r in seeds), default=0), "seeds": seeds,
                "mean_gain_points": round(sum(r["gain_points"] for r in seeds) / len(seeds), 2),
                "seconds": 0.0, "cpu_seconds": 0.0, "from": f"amateurs/{config.sweep_amateur}"}
    # The sweep amateur's own experiment: its sampling and model folders carry beta and alpha.
    ex = _experiment(out_dir, config.sweep_amateur, config, progress, sample=sample_config, seeds=config.sweep_seeds)
    path, settings = out_dir / "sweeps" / f"beta{beta:g}-alpha{alpha:g}.json", _settings(ex, config)
    stored = _stored(path, settings)
    if stored is not None:
        return {**stored, "setting": setting}
    started, cpu = time.perf_counter(), time.process_time()
    summary, records, runs = _lightreasoner(ex, base, log)
    seeds = [row for row, _ in runs]
    result = {"setting": setting, "beta": sample_config.beta, "alpha": sample_config.alpha,
              "amateur": config.sweep_amateur, "steps": summary.get("steps"), "records": len(records),
              "share_kept": summary.get("share_kept") or 0.0,
              "tuned_tokens": max((r["tuned_tokens"] for r in seeds), default=0), "seeds": seeds,
              "mean_gain_points": round(sum(r["gain_points"] for r in seeds) / len(seeds), 2),
              "seconds": round(time.perf_counter() - started, 1), "cpu_seconds": round(time.process_time() - cpu, 1)}
    log(f"sweep {setting} {value:g}: kept {result['share_kept']:.1%}, gain {result['mean_gain_points']:+.1f} points")
    return _store(path, settings, result)


PREDICTORS = {
    "cd_gain": "decoding by v_C's argmax minus greedy (validation, points): the scout's score",
    "check_net_fixes": "gold-path fixes minus breaks (validation)",
    "mass_gain": "gold-path mass on gold, v_C minus the expert's masked distribution (validation)",
}
"""The scout's numbers whose rank correlation with the measured gain the study
reports; ``cd_gain`` is the score chosen before the study ran, the others are shown beside it."""


def correlations(ladder: list) -> dict:
    """Spearman between each predictor (validation) and the mean measured gain (test) across the ladder."""
    gains = [row["mean_gain_points"] for row in ladder]
    out = {}
    for key in PREDICTORS:
        if key == "check_net_fixes":
            values = [row["scout"]["check_fixes"] - row["scout"]["check_breaks"] for row in ladder]
        else:
            values = [row["scout"][key] for row in ladder]
        pairs = [(v, g) for v, g in zip(values, gains) if v is not None]
        out[key] = spearman([v for v, _ in pairs], [g for _, g in pairs]) if len(pairs) >= 3 else None
    return out


def run_study(out_dir="runs/ladder", config: Optional[StudyConfig] = None, progress: bool = False,
              threads: Optional[int] = 1, log=print) -> dict:
    """Run (or resume) the study; returns study.json's content. Trained rungs
    come from the ladder cache (built there when missing, :mod:`lrkit.toy.ladder`).
    ``threads``: torch's threads while it runs (the caller's number is given back after).

    Everything runs on the CPU, one :class:`lrkit.experiment.Experiment` per amateur and
    sweep point, so an interrupted study resumes stage by stage; ``study.json`` is
    rewritten after every amateur and sweep point, and ``report.html`` is written at the end.

    Args:
        out_dir: the study's folder (the module docstring gives its layout).
        config (StudyConfig, optional): the rungs, seeds, problem counts and sweeps;
            default ``StudyConfig()``, the demo's sizes (:func:`quick_config` is a small one).
        progress (bool): the stages' progress bars.
        threads (int, optional): torch's intra-op threads meanwhile; None or 0 leaves them.
        log: called with one line of text per finished piece; None logs nothing.

    Returns:
        dict: study.json's content: ``complete``, ``config``, ``base``, ``ladder`` (one row
        per amateur), ``sweeps`` (``beta`` and ``alpha`` rows), ``spearman`` (each scout
        prediction against the measured gain), ``predictors``, ``rungs`` and timings.

    Raises:
        ValueError: an unknown rung, or fewer than one seed.
        lrkit.runs.FolderError: ``out_dir`` holds a study (or an experiment, or a sweep
            point) made with other settings.
    """
    from lrkit.models.loading import torch_threads

    with torch_threads(threads):
        return _run_study(out_dir, config, progress, log)


def _run_study(out_dir, config: Optional[StudyConfig], progress: bool, log) -> dict:
    import torch

    from lrkit.evaluation import evaluate
    from lrkit.experiment import problems_for
    from lrkit.toy.ladder import build_ladder

    log = log or (lambda message: None)
    config = config or StudyConfig()
    for name in (*config.amateurs, config.sweep_amateur):
        get_rung(name)
    if config.seeds < 1 or config.sweep_seeds < 1:
        raise ValueError("--seeds must be >= 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = out_dir / "config.json"
    if settings.exists():
        check_settings(out_dir, "study", _current_names(read_json(settings)), _plain(config.to_dict()))
    write_json(settings, _plain(config.to_dict()))
    started, cpu = time.perf_counter(), time.process_time()
    wanted = list(dict.fromkeys([*config.amateurs, config.sweep_amateur]))
    built = build_ladder(wanted, log=log)
    # One base for every amateur: the expert's own experiment (toy's pair) evaluates it on the test
    # problems, and greedy on the validation problems the scout reads.
    expert = _experiment(out_dir, "expert", config, progress, amateur=False)
    problems = {"validation": problems_for("toy", config.validation_problems, "validation", config.problem_seed)}
    base = expert.evaluate("base")
    greedy_validation = evaluate(expert.pair.expert, problems["validation"], config.eval,
                                 tokenizer=expert.pair.tokenizer, out_dir=expert.folder / "validation" / "eval",
                                 progress=progress, name="expert (greedy)")
    log(f"base expert: {base.accuracy:.1%} on {base.n} test problems, {greedy_validation.accuracy:.1%} on "
        f"{greedy_validation.n} validation problems")
    ladder, sweeps = [], {"beta": [], "alpha": []}

    def write(complete: bool) -> dict:
        """study.json as it stands: rewritten after every amateur and sweep point, so a long run
        that is stopped still leaves every finished number."""
        study = {
            "complete": complete,
            "config": config.to_dict(),
            "base": {"accuracy": base.accuracy, "interval": list(base.interval), "n": base.n,
                     "validation_accuracy": greedy_validation.accuracy},
            "ladder": ladder,
            "sweeps": sweeps,
            "spearman": correlations(ladder),
            "predictors": PREDICTORS,
            "rungs": {record["name"]: {k: v for k, v in record.items() if k != "path"} for record in built},
            "seconds": round(time.perf_counter() - started, 1),
            "cpu_seconds_this_call": round(time.process_time() - cpu, 1),
            "cpu_seconds_study": round(sum(r["cpu_seconds"] for r in ladder)
                                       + sum(p["cpu_seconds"] for s in sweeps.values() for p in s), 1),
            "threads": torch.get_num_threads(),
        }
        write_json(out_dir / STUDY_FILE, _plain(study))
        return study

    for name in config.amateurs:
        ladder.append(_study_rung(name, problems, base, greedy_validation, out_dir, config, progress, log))
        write(False)
    for setting, values in (("beta", config.betas), ("alpha", config.alphas)):
        for value in values:
            sweeps[setting].append(_sweep_point(setting, value, base, out_dir, config,
                                                progress, log, ladder))
            write(False)
    study = write(True)
    study_report(study).save(out_dir / "report.html")
    return study


def study_report(study: dict):
    """One HTML page of the study: the ladder's figure, its table, the sweeps, the anatomy."""
    from lrkit.viz import Report
    from lrkit.viz.ladder import ladder_figure, sweep_figure

    report = Report("When does LightReasoner work? The amateur ladder on toy's expert",
                    subtitle=f"base expert {100 * study['base']['accuracy']:.1f}% on {study['base']['n']} test "
                             f"problems; scout on validation problems, gains on test problems")
    report.add_figure(ladder_figure(study["ladder"]), heading="Gain against the amateur")
    report.add_figure(ladder_figure(study["ladder"], x="gap"))
    report.add_table(ladder_frame(study["ladder"]), heading="Every amateur", max_rows=50)
    rho = study["spearman"]
    report.add_summary({PREDICTORS[k]: ("n/a" if v is None else f"{v:.2f}") for k, v in rho.items()},
                       heading="Spearman: the scout's predictions against the measured gain")
    for setting in ("beta", "alpha"):
        if study["sweeps"].get(setting):
            report.add_figure(sweep_figure(study["sweeps"][setting], setting), heading=f"{setting} sweep")
            report.add_table(sweep_frame(study["sweeps"][setting]))
    report.add_table(audit_frame(study["ladder"]), heading="Odd-token audit",
                     caption="Kept steps where v_C's argmax is a token the expert ranks low (not its top token, "
                             "< 0.5 x its top probability): over the records sampled with each amateur, and over "
                             "the scout's kept gold-path steps, where 'odd that are gold' counts the right ones.")
    from lrkit.viz.tables import anatomy_frame

    report.add_table(anatomy_frame(study["ladder"]), heading="Error anatomy: fixed and introduced per type",
                     max_rows=200)
    return report


def audit_frame(ladder: list):
    """The odd-token audit per amateur: over its kept records and over its kept gold-path steps."""
    import pandas as pd

    rows = []
    for row in ladder:
        for source, audit in (("records", row.get("records_audit")), ("gold paths", row.get("gold_path_audit"))):
            if audit and audit.get("kept_steps"):
                rows.append({"amateur": row["name"], "kept steps of": source, "kept": audit["kept_steps"],
                             "v_C not the expert's top": audit["not_expert_top"], "odd": audit["odd"],
                             "share odd": f"{100 * audit['share_odd']:.2f}%",
                             "odd that are gold": audit.get("odd_that_are_gold", ""),
                             "most frequent odd tokens": ", ".join(f"`{t!r}` x{c}" for t, c in audit["top_tokens"][:5])})
    return pd.DataFrame(rows)


def ladder_frame(ladder: list):
    import pandas as pd

    rows = []
    for row in ladder:
        s = row["scout"]
        rows.append({
            "amateur": row["name"], "amateur accuracy": f"{100 * row['amateur_accuracy']:.1f}%",
            "gap (points)": f"{100 * row['gap']:.1f}",
            "scout score* (CD - greedy, val.)": f"{s['score']:+.1f}",
            "gold path fixes / breaks*": f"{s['check_fixes']} / {s['check_breaks']}",
            "mass gain*": "n/a" if s["mass_gain"] is None else f"{s['mass_gain']:+.3f}",
            "CD on test": f"{100 * row['cd_accuracy_test']:.1f}% ({row['cd_gain_test_points']:+.1f})",
            "kept": f"{row['records']} ({100 * (row['share_kept'] or 0):.1f}%)",
            "gain per seed (points)": ", ".join(f"{r['gain_points']:+.1f}" for r in row["seeds"]),
            "mean gain": f"{row['mean_gain_points']:+.1f}",
            "McNemar p per seed": ", ".join(f"{r['mcnemar_p']:.2g}" for r in row["seeds"]),
        })
    return pd.DataFrame(rows)


def sweep_frame(points: list):
    import pandas as pd

    return pd.DataFrame([{
        "beta": p["beta"], "alpha": p["alpha"], "records": p["records"], "kept": f"{100 * p['share_kept']:.1f}%",
        "tuned tokens": p["tuned_tokens"],
        "accuracy per seed": ", ".join(f"{100 * r['accuracy']:.1f}%" for r in p["seeds"]),
        "gain (points)": f"{p['mean_gain_points']:+.1f}",
        "McNemar p": ", ".join(f"{r['mcnemar_p']:.2g}" for r in p["seeds"])} for p in points])


def study_markdown(study: dict) -> str:
    """The study's numbers as markdown tables (docs/LADDER.md quotes them)."""
    def md(frame) -> str:
        cols = list(frame.columns)
        lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
        lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
        return "\n".join(lines)

    import pandas as pd

    from lrkit.viz.tables import anatomy_frame

    base = study["base"]
    parts = [f"Base expert: {100 * base['accuracy']:.1f}% [{100 * base['interval'][0]:.1f}, "
             f"{100 * base['interval'][1]:.1f}] on {base['n']} test problems; "
             f"{100 * base['validation_accuracy']:.1f}% on the validation problems the scout reads.", ""]
    parts += ["### Every amateur", "", md(ladder_frame(study["ladder"])), ""]
    seeds = []
    for row in study["ladder"]:
        for r in row["seeds"]:
            seeds.append({"amateur": row["name"], "seed": r["seed"],
                          "accuracy [95% Wilson]": f"{100 * r['accuracy']:.1f}% [{100 * r['interval'][0]:.1f}, "
                                                   f"{100 * r['interval'][1]:.1f}]",
                          "gain (points)": f"{r['gain_points']:+.1f}", "fixed / broken": f"{r['fixed']} / {r['broken']}",
                          "McNemar p": f"{r['mcnemar_p']:.3g}", "records": r["records"],
                          "tuned tokens": r["tuned_tokens"]})
    parts += ["### Per seed", "", md(pd.DataFrame(seeds)), ""]
    parts += ["### Spearman: the scout's numbers (validation) against the mean gain (test)", "",
              md(pd.DataFrame([{"scout's number": PREDICTORS[k], "Spearman": "n/a" if v is None else f"{v:.2f}"}
                               for k, v in study["spearman"].items()])), ""]
    for setting in ("beta", "alpha"):
        if study["sweeps"].get(setting):
            parts += [f"### {setting} sweep (g-small = toy:amateur)", "",
                      md(sweep_frame(sorted(study["sweeps"][setting], key=lambda p: p[setting]))), ""]
    parts += ["### Odd-token audit", "", md(audit_frame(study["ladder"])), ""]
    parts += ["### Error anatomy (base errors; per seed: errors after, fixed, introduced)", "",
              md(anatomy_frame(study["ladder"])), ""]
    return "\n".join(parts)
