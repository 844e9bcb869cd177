"""The amateur ladder: amateurs for ``toy``'s expert that span the expertise gap.

The paper finds that the *expertise gap* between expert and amateur matters more
than their sizes. In the habit world (:mod:`lrkit.toy.habits`) that gap is
what each amateur learned of the family F on top of the general corpus G:

========== ================================================== ======================
rung       what the amateur learned                            model
========== ================================================== ======================
g-small    G 6,000 (the shipped amateur, ``toy:amateur``)      hidden 96, 2 layers
g-large    G 6,000 (the same problems)                          the expert's size
gf-05      G 2,000, then F 1,000 + G 600 (5% of the expert's F) the expert's size
gf-20      G 2,000, then F 4,000 + G 2,400 (20%)                the expert's size
gf-50      G 2,000, then F 10,000 + G 6,000 (50%)               the expert's size
expert-50  the expert's own run stopped at half its steps      the expert
expert     the expert itself (``toy:expert``): gap zero         the expert
========== ================================================== ======================

The G-only rungs differ in size alone; the gf rungs see the first 5/20/50% of
the expert's own continuation (its G pretraining, then its family problems with
G replayed at the same 3:5 ratio) under a full schedule of their own;
``expert-50`` replays the expert's build exactly (same data, order, seed,
schedule) and stops halfway. No rung ships weights: ``g-small`` and ``expert``
are the bundled folders, the others are trained on demand (1-6 minutes of CPU
each on one thread, gf-50 the longest; docs/LADDER.md) and cached:

    lrkit build-toy --ladder                      # every rung, into the cache
    lrkit build-toy --ladder --amateur gf-20      # one rung
    lrkit build-toy --ladder --out runs/ladder/models

The cache is ``$LRKIT_CACHE/ladder`` or ``~/.cache/lrkit/ladder``. Models named
``ladder:NAME`` (e.g. ``lrkit scout --amateur ladder:gf-20``) resolve there.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Optional, Union

from lrkit.models.pairs import RUNG_FILE, RUNGS, Rung, get_rung, is_built, rung_path
from lrkit.runs import write_json
from lrkit.toy.habits import generate_habit_problems


def _spec(rung: Rung, problems: int):
    from lrkit.toy.habit_pair import RECIPE
    from lrkit.toy.pretrain import ToyModelSpec

    base = RECIPE.expert if rung.size == "expert" else RECIPE.amateur
    return ToyModelSpec(**{**asdict(base), "train_problems": problems})


def rung_phases(rung: Rung, seed: int = 0) -> list[list[dict]]:
    """The training problems of a trained rung, phase by phase, drawn from the
    toy build's own data streams (:func:`lrkit.toy.habit_pair.habit_pair_data`)."""
    from lrkit.toy.habit_pair import (AMATEUR_SEED, EXPERT_FAMILY_SEED, EXPERT_GENERAL_SEED, RECIPE,
                                      habit_pair_data)

    world = RECIPE.world
    if rung.expert_fraction is not None:
        return habit_pair_data(RECIPE, seed)["expert"]
    if not rung.family:  # G only: the bundled amateur's own G problems
        return [generate_habit_problems(rung.general, "train", seed=seed + AMATEUR_SEED, habit=True, world=world)]
    general = generate_habit_problems(RECIPE.expert_general + RECIPE.expert_replay, "train",
                                      seed=seed + EXPERT_GENERAL_SEED, habit=True, world=world)
    family = generate_habit_problems(RECIPE.expert_family, "train", seed=seed + EXPERT_FAMILY_SEED, world=world)
    pretraining = general[:rung.general]
    replayed = general[RECIPE.expert_general:RECIPE.expert_general + rung.replay]
    return [pretraining, family[:rung.family] + replayed]


def build_rung(name: str, out_dir: Union[str, Path, None] = None, seed: int = 0, precision: str = "auto",
               threads: Optional[int] = 1, force: bool = False, log=print) -> dict:
    """Train one rung into ``ladder_root(out_dir)/NAME`` (skipped when built and not ``force``).

    Returns the rung's record (``rung.json``): recipe, parameters, seconds. The
    bundled rungs (``g-small``, ``expert``) are never trained: their record
    names the bundled folder.
    """
    import torch

    log = log or (lambda message: None)
    rung = get_rung(name)
    folder = rung_path(rung.name, out_dir)
    if rung.source != "trained":
        return {"name": rung.name, "description": rung.description, "path": str(folder), "bundled": True}
    if is_built(rung.name, out_dir) and not force:
        return json.loads((folder / RUNG_FILE).read_text())
    from lrkit.models.loading import load_tokenizer, torch_threads
    from lrkit.toy.habit_pair import RECIPE
    from lrkit.toy.pretrain import build_model, folder_bytes, train_model, use_bf16

    with torch_threads(threads):
        started, cpu_started = time.perf_counter(), time.process_time()
        tokenizer = load_tokenizer(str(rung_path("expert")))  # the pair's one tokenizer
        phases = rung_phases(rung, seed)
        spec = _spec(rung, sum(map(len, phases)))
        if rung.expert_fraction is not None:
            # The expert's build exactly: its spec, initial weights (seed + 7), data and schedule.
            spec = replace(RECIPE.expert, train_problems=sum(map(len, phases)))
            model = build_model(spec, tokenizer, seed + 7)
            total = sum(-(-len(p) // spec.batch_size) for p in phases)
            stop_after = int(round(rung.expert_fraction * total))
        else:
            model = build_model(spec, tokenizer, seed + 11)
            stop_after = None
        log(f"ladder {rung.name}: {rung.description}; {spec}"
            + (f", stopping after {stop_after} steps" if stop_after else ""))
        train_model(model, tokenizer, spec, seed, precision, log=log, phases=phases, stop_after=stop_after,
                    log_every=100)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / RUNG_FILE).unlink(missing_ok=True)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        record = {"name": rung.name, "description": rung.description, "path": str(folder), "bundled": False,
                  "rung": asdict(rung), "spec": asdict(spec), "seed": seed,
                  "phases": [len(p) for p in phases], "optimizer_steps": stop_after,
                  "precision": "bf16" if use_bf16(precision) else "fp32", "threads": torch.get_num_threads(),
                  "parameters": sum(p.numel() for p in model.parameters()), "bytes": folder_bytes(folder),
                  "train_seconds": round(time.perf_counter() - started, 1),
                  "cpu_seconds": round(time.process_time() - cpu_started, 1)}
        write_json(folder / RUNG_FILE, record)
        log(f"ladder {rung.name}: built in {record['train_seconds']:.0f} s -> {folder}")
        return record


def build_ladder(names=None, out_dir: Union[str, Path, None] = None, seed: int = 0, precision: str = "auto",
                 threads: Optional[int] = 1, force: bool = False, log=print) -> list[dict]:
    """Build (or find cached) every rung named (default: the whole ladder)."""
    return [build_rung(name, out_dir, seed, precision, threads, force, log) for name in (names or RUNGS)]
