"""The command line: one module, built from the config dataclasses, light to start."""
from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lrkit.cli import COMMANDS, build_parser, config_from_args, demo_config_from_args
from lrkit.config import EvalConfig, SampleConfig, TrainConfig

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "peft", "accelerate", "datasets", "pandas", "plotly")


def _imported_modules(source: str, package: str) -> set[str]:
    """Absolute names of every module `source` (a module of `package`) imports."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[:len(base) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_no_stage_module_imports_the_command_line():
    stage_modules = [p for p in (REPO / "lrkit").rglob("*.py") if p.name not in ("cli.py", "__main__.py")]
    assert len(stage_modules) > 10
    offenders = [str(p.relative_to(REPO)) for p in stage_modules
                 if "lrkit.cli" in _imported_modules(p.read_text(), ".".join(p.relative_to(REPO).parts[:-1]))]
    assert offenders == []


@pytest.mark.parametrize("source, package", [
    ("from .cli import main", "lrkit"), ("from . import cli", "lrkit"), ("import lrkit.cli", "lrkit.viz"),
    ("from lrkit.cli import x", "lrkit.toy"), ("def f():\n    from ..cli import main", "lrkit.viz"),
])
def test_the_import_check_sees_every_spelling(source, package):
    assert "lrkit.cli" in _imported_modules(source, package)
    assert "lrkit.cli" not in _imported_modules(source.replace("cli", "config"), package)


def test_every_help_answers_without_heavy_imports():
    script = f"""
import json, sys
from lrkit.cli import COMMANDS, main
out = {{}}
for name in COMMANDS:
    try:
        main([name, "--help"])
        code = None
    except SystemExit as exit:
        code = exit.code
    out[name] = code
print(json.dumps({{"codes": out, "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result["codes"]) == {"sample", "train", "merge", "eval", "export", "push", "demo", "pair", "build-toy",
                                   "scout", "study"}
    assert all(code == 0 for code in result["codes"].values()), result["codes"]
    for name in COMMANDS:
        assert f"usage: lrkit {name}" in proc.stdout
    assert result["heavy"] == []


def test_python_dash_m_lrkit():
    proc = subprocess.run([sys.executable, "-m", "lrkit", "--help"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0
    assert all(name in proc.stdout for name in COMMANDS)


@pytest.mark.parametrize("command, cls, required", [
    ("sample", SampleConfig, ["--expert", "e", "--problems", "p", "--out", "o"]),
    ("train", TrainConfig, ["--expert", "e", "--records", "r", "--out", "o"]),
    ("eval", EvalConfig, ["--model", "m", "--problems", "p", "--out", "o"]),
])
def test_every_config_field_is_a_flag_with_the_dataclass_default(command, cls, required):
    args = build_parser().parse_args([command, *required])
    assert config_from_args(cls, args) == cls()
    parser = argparse.ArgumentParser()
    COMMANDS[command].add_arguments(parser)
    flags = {option for action in parser._actions for option in action.option_strings}
    assert {"--" + f.name.replace("_", "-") for f in dataclasses.fields(cls)} <= flags


def test_flags_reach_the_config():
    args = build_parser().parse_args(["sample", "--expert", "e", "--problems", "p", "--out", "o",
                                      "--beta", "0.25", "--no-kl-inclusive", "--system-prompt", "none",
                                      "--top-k", "5"])
    assert config_from_args(SampleConfig, args) == SampleConfig(beta=0.25, kl_inclusive=False,
                                                                system_prompt=None, top_k=5)
    args = build_parser().parse_args(["train", "--expert", "e", "--records", "r", "--out", "o",
                                      "--target-modules", "q_proj", "o_proj", "--precision", "fp32"])
    config = config_from_args(TrainConfig, args)
    assert config.target_modules == ("q_proj", "o_proj") and config.precision == "fp32"
    args = build_parser().parse_args(["eval", "--model", "m", "--problems", "p", "--out", "o",
                                      "--system-prompt", ""])
    assert config_from_args(EvalConfig, args).system_prompt is None
    train = ["train", "--expert", "e", "--records", "r", "--out", "o"]
    packing = {flags: config_from_args(TrainConfig, build_parser().parse_args(train + list(flags))).packing
               for flags in [(), ("--packing", "off"), ("--packing", "on"), ("--no-packing",), ("--packing",)]}
    assert packing == {(): True, ("--packing", "off"): False, ("--packing", "on"): True, ("--no-packing",): False,
                       ("--packing",): True}


def test_demo_flags_build_its_config():
    from lrkit.config import ExperimentConfig

    defaults = ExperimentConfig()
    assert demo_config_from_args(build_parser().parse_args(["demo"])) == defaults
    args = build_parser().parse_args(["demo", "--train-problems", "7", "--beta", "0.3", "--max-steps", "4"])
    parsed = demo_config_from_args(args)
    assert parsed.train_problems == 7 and parsed.test_problems == defaults.test_problems
    assert parsed.sample == dataclasses.replace(defaults.sample, beta=0.3)
    assert parsed.train == dataclasses.replace(defaults.train, max_steps=4)
    assert parsed.eval == defaults.eval
    assert defaults.train.packing
    off = demo_config_from_args(build_parser().parse_args(["demo", "--packing", "off"]))
    assert off.train == dataclasses.replace(defaults.train, packing=False)


def test_a_bad_flag_value_is_an_argparse_error(capsys):
    from lrkit.cli import main

    with pytest.raises(SystemExit) as exit:
        main(["train", "--expert", "e", "--records", "r", "--out", "o", "--max-steps", "many"])
    assert exit.value.code == 2
    assert "--max-steps" in capsys.readouterr().err


def test_the_readme_example_problems_run(tmp_path, capsys):
    """README: `lrkit sample --expert toy --problems data/examples/problems.jsonl --out ...`."""
    from lrkit.cli import main
    from lrkit.models.pairs import PairNotPreparedError, resolve_pair
    from lrkit.data.problems import gold_answer, load_problems

    path = REPO / "data" / "examples" / "problems.jsonl"
    problems = load_problems(str(path))
    assert len(problems) == 20 and len({p.id for p in problems}) == 20
    assert all(gold_answer(p.answer).isdigit() for p in problems)
    assert str(path.relative_to(REPO)) in (REPO / "README.md").read_text()
    try:
        resolve_pair("toy")
    except PairNotPreparedError:
        pytest.skip("the bundled toy pair is missing")
    out = tmp_path / "s1"
    assert main(["sample", "--expert", "toy", "--problems", str(path), "--out", str(out),
                 "--max-problems", "2", "--max-new-tokens", "8"]) == 0
    assert json.loads((out / "summary.json").read_text())["problems"] == 2
    assert f"records: {out / 'records.jsonl'}" in capsys.readouterr().out
