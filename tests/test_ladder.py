"""The amateur ladder: its rungs' data come from the toy build's own streams, names
resolve to the bundled or cached folders, and the command line refuses bad input."""
from __future__ import annotations

import json

import pytest

from lrkit.cli import main
from lrkit.models.loading import resolve_member
from lrkit.models.pairs import LADDER, RUNG_FILE, RUNGS, TOY_DIR, get_rung, is_built, rung_path
from lrkit.toy.habit_pair import RECIPE, habit_pair_data
from lrkit.toy.ladder import rung_phases


@pytest.fixture(scope="module")
def expert_data():
    return habit_pair_data(RECIPE, 0)


def test_the_ladder_spans_the_gap():
    assert len(LADDER) >= 5
    assert [r.name for r in LADDER][0] == "g-small" and LADDER[-1].name == "expert"
    shares = [RUNGS[n].family_share for n in ("g-small", "g-large", "gf-05", "gf-20", "gf-50", "expert")]
    assert shares == sorted(shares) and shares[0] == 0 and shares[-1] == 1


def test_gf_rungs_see_a_prefix_of_the_experts_own_data(expert_data):
    pretraining, continuation = expert_data["expert"]
    family = [p for p in continuation if "-F-" in p["id"]]
    replay = [p for p in continuation if "-G-" in p["id"]]
    for name, n_family in (("gf-05", 1000), ("gf-20", 4000)):
        phases = rung_phases(get_rung(name))
        assert [p["id"] for p in phases[0]] == [p["id"] for p in pretraining]
        assert [p["id"] for p in phases[1]] == [p["id"] for p in family[:n_family]] + \
            [p["id"] for p in replay[:get_rung(name).replay]]
        assert get_rung(name).replay == int(0.6 * n_family)  # the expert's replay ratio, 12,000 : 20,000


def test_the_checkpoint_rung_replays_the_experts_build(expert_data):
    phases = rung_phases(get_rung("expert-50"))
    assert [[p["id"] for p in phase] for phase in phases] == \
        [[p["id"] for p in phase] for phase in expert_data["expert"]]


def test_g_only_rungs_share_the_bundled_amateurs_problems(expert_data):
    (g,) = rung_phases(get_rung("g-large"))
    assert [p["id"] for p in g] == [p["id"] for p in expert_data["amateur"][0]]
    assert all("-G-" in p["id"] for p in g)


def test_names_resolve_to_bundled_or_cached_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("LRKIT_CACHE", str(tmp_path))
    assert rung_path("ladder:g-small") == TOY_DIR / "amateur"
    assert resolve_member("ladder:expert") == str(TOY_DIR / "expert")
    assert rung_path("gf-20") == tmp_path / "ladder" / "gf-20"
    assert not is_built("gf-20")
    with pytest.raises(ValueError, match="build-toy --ladder --amateur gf-20"):
        resolve_member("ladder:gf-20")
    folder = tmp_path / "ladder" / "gf-20"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"")
    assert not is_built("gf-20")  # no rung.json: an interrupted build
    (folder / RUNG_FILE).write_text(json.dumps({"name": "gf-20"}))
    assert resolve_member("ladder:gf-20") == str(folder)
    with pytest.raises(ValueError, match="unknown ladder amateur 'nope'"):
        resolve_member("ladder:nope")


def test_command_line_errors(capsys):
    assert main(["build-toy", "--ladder", "--amateur", "nope"]) == 2
    assert "unknown ladder amateur 'nope'" in capsys.readouterr().err
    assert main(["build-toy", "--amateur", "gf-20"]) == 2
    assert "--ladder only" in capsys.readouterr().err


def test_bundled_rungs_are_never_trained(tmp_path, capsys):
    assert main(["build-toy", "--ladder", "--amateur", "g-small", "--amateur", "expert", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "g-small" in out and "bundled" in out and list(tmp_path.iterdir()) == []


def test_stop_after_gives_the_full_runs_weights_at_that_step(one_thread):
    """The checkpoint rung's mechanism: a run stopped after k steps equals the full
    run (same schedule) at step k, and differs from a run whose schedule is k steps long."""
    import torch

    from lrkit.toy.pretrain import ToyModelSpec, build_model, train_model
    from lrkit.toy.problems import generate_problems
    from lrkit.toy.tokenizer import train_toy_tokenizer

    tokenizer = train_toy_tokenizer(n_problems=200)
    spec = ToyModelSpec(hidden_size=32, num_layers=1, intermediate_size=64, num_heads=2, train_problems=96,
                        batch_size=16, warmup_steps=2)
    phases = [generate_problems(96, "train", seed=1)]  # 6 steps
    snapshot = {}

    def keep(step, model):
        if step == 3:
            snapshot.update({k: v.detach().clone() for k, v in model.state_dict().items()})

    full = build_model(spec, tokenizer, 5)
    train_model(full, tokenizer, spec, 0, "fp32", log=None, phases=phases, after_step=keep)
    stopped = build_model(spec, tokenizer, 5)
    losses = train_model(stopped, tokenizer, spec, 0, "fp32", log=None, phases=phases, stop_after=3)
    assert len(losses) == 3
    assert all(torch.equal(v, snapshot[k]) for k, v in stopped.state_dict().items())
    short = build_model(spec, tokenizer, 5)
    train_model(short, tokenizer, spec, 0, "fp32", log=None, phases=[phases[0][:48]])
    assert not all(torch.equal(v, snapshot[k]) for k, v in short.state_dict().items())
