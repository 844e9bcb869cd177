"""The command line: one module, built from the config dataclasses, light to start;
and what a user hits when something goes wrong through it: every mistake ends
with exit status 2 and one line naming the file, line, field or flag; nothing a
user produced is overwritten or silently mixed; every run folder says what made it."""
from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from lrkit.cli import COMMANDS, build_parser, config_from_args, demo_config_from_args, main
from lrkit.config import EvalConfig, SampleConfig, TrainConfig
from lrkit.models.loading import ModelNotFoundError, PromptTooLongError, load_model, load_tokenizer
from lrkit.models.prompts import build_prompt_ids
from lrkit.provenance import PACKAGES, read_provenance
from lrkit.stages.sampling import sample

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


def test_no_command_function_shadows_a_library_function():
    """One name, one thing: the function a command runs is not named like the library
    function it calls (``cli.demo_command`` runs ``lrkit.demo.run_demo``)."""
    package = Path(__file__).resolve().parents[1] / "lrkit"

    def top_level(path: Path) -> set[str]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        return {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}

    library = set().union(*(top_level(p) for p in package.rglob("*.py") if p != package / "cli.py"))
    assert {name for name in top_level(package / "cli.py") if not name.startswith("_")} & library == set()
    assert {c.run.__name__ for c in COMMANDS.values()} >= {"demo_command", "study_command"}


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
    assert set(result["codes"]) == {"sample", "train", "merge", "eval", "export", "push", "demo", "experiment", "pair", "build-toy",
                                   "scout", "study", "doctor", "workshop"}
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
    sample = ["sample", "--expert", "e", "--problems", "p", "--out", "o"]
    assert config_from_args(SampleConfig, build_parser().parse_args(sample + ["--write-steps", "off"])).write_steps \
        is False
    with pytest.raises(SystemExit):  # the checkpoint interval's name is training's alone
        build_parser().parse_args(sample + ["--save-steps", "off"])
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
    # the settings the demo's folders are named after, as the README promises
    other = demo_config_from_args(build_parser().parse_args(["demo", "--alpha", "0.3", "--learning-rate", "0.01",
                                                             "--seed", "5"]))
    assert other.sample == dataclasses.replace(defaults.sample, alpha=0.3)
    assert other.train == dataclasses.replace(defaults.train, learning_rate=0.01, seed=5)


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
    from lrkit.data.answers import gold_answer
    from lrkit.data.problems import load_problems

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


# ---------------------------------------------------------------- what a user hits when something goes wrong

MAX_NEW = 8
PROBLEMS = [{"id": f"p{i}", "question": f"Ann has {i + 3} pens and {2 * i + 1} cups. How many?",
             "answer": f"#### {3 * i + 4}"} for i in range(4)]


@pytest.fixture(scope="module")
def problems_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("problems") / "problems.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    return path


@pytest.fixture(scope="module")
def sampled(pair_paths, tmp_path_factory):
    """A small sampling run at beta 0 (every step but the first is a record)."""
    out = tmp_path_factory.mktemp("sampled") / "run"
    sample(str(pair_paths[0]), str(pair_paths[1]), PROBLEMS, out,
           SampleConfig(max_new_tokens=MAX_NEW, beta=0.0, batch_size=2), progress=False)
    return out


def run_cli(argv, capsys) -> tuple[int, list[str]]:
    """Exit status and the non-empty stderr lines of one in-process command."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return code, err


def assert_one_line_error(code, err, *names):
    assert code == 2, err
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    for name in names:
        assert str(name) in err[0], (name, err[0])


def train_argv(expert, records, out, steps):
    return ["train", "--expert", expert, "--records", records, "--out", out, "--max-steps", steps,
            "--per-device-batch-size", 4, "--gradient-accumulation-steps", 1, "--learning-rate", 1e-2,
            "--logging-steps", 1, "--save-steps", 2, "--precision", "fp32"]


# ---------------------------------------------------------------- resuming with other settings

def test_resuming_training_with_fewer_steps_is_refused_and_the_run_kept(pair_paths, sampled, tmp_path, capsys):
    out = tmp_path / "adapter"
    records = sampled / "records.jsonl"
    assert run_cli(train_argv(pair_paths[0], records, out, 4), capsys)[0] == 0
    adapter = (out / "adapter_model.safetensors").read_bytes()
    run_file = (out / "lrkit_train.json").read_text()
    assert json.loads(run_file)["result"]["steps"] == 4

    code, err = run_cli(train_argv(pair_paths[0], records, out, 2) + ["--resume"], capsys)
    assert_one_line_error(code, err, "max_steps", out)
    assert "--max-steps 4" in err[0], "says how to go on"
    assert (out / "adapter_model.safetensors").read_bytes() == adapter
    assert (out / "lrkit_train.json").read_text() == run_file, "the run file still tells the truth"

    # The same settings return the finished run at once; more steps train on.
    assert run_cli(train_argv(pair_paths[0], records, out, 4) + ["--resume"], capsys)[0] == 0
    assert (out / "adapter_model.safetensors").read_bytes() == adapter


# ---------------------------------------------------------------- eval never overwrites

def test_eval_refuses_another_models_folder_and_a_sampling_folder(pair_paths, sampled, problems_file, tmp_path,
                                                                 capsys):
    out = tmp_path / "eval"
    common = ["--problems", problems_file, "--max-new-tokens", MAX_NEW, "--batch-size", 4]
    assert run_cli(["eval", "--model", pair_paths[0], "--out", out, *common], capsys)[0] == 0
    first = {name: (out / name).read_bytes() for name in ("results.jsonl", "summary.json")}

    code, err = run_cli(["eval", "--model", pair_paths[1], "--out", out, *common], capsys)
    assert_one_line_error(code, err, out, "model", "--out")
    assert {name: (out / name).read_bytes() for name in first} == first

    summary = (sampled / "summary.json").read_bytes()
    code, err = run_cli(["eval", "--model", pair_paths[0], "--out", sampled, *common], capsys)
    assert_one_line_error(code, err, sampled, "--out")
    assert (sampled / "summary.json").read_bytes() == summary
    assert not (sampled / "results.jsonl").exists()

    # The same evaluation again may replace itself (a rerun gives the same files).
    assert run_cli(["eval", "--model", pair_paths[0], "--out", out, *common], capsys)[0] == 0
    assert (out / "results.jsonl").read_bytes() == first["results.jsonl"]

    # Nor does sampling write into an evaluation's folder (its summary.json would go).
    first = {name: (out / name).read_bytes() for name in first}
    code, err = run_cli(["sample", "--expert", pair_paths[0], "--amateur", pair_paths[1], "--problems",
                         problems_file, "--out", out, "--max-new-tokens", MAX_NEW], capsys)
    assert_one_line_error(code, err, out, "summary.json", "--overwrite")
    assert {name: (out / name).read_bytes() for name in first} == first
    assert not (out / "records.jsonl").exists()


# ---------------------------------------------------------------- a missing local path never goes to the Hub

def test_a_missing_local_folder_is_named_without_asking_the_hub(tmp_path, monkeypatch, capsys):
    import transformers

    def no_hub(*args, **kwargs):
        raise AssertionError(f"asked transformers to load {args[:1]}")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", no_hub)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_hub)
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    for name in ("runs/merged", str(tmp_path / "runs" / "merged"), "./merged", "a/b/c", "missing.gguf"):
        with pytest.raises(ModelNotFoundError, match="no such model folder or file"):
            load_model(name)
        with pytest.raises(ModelNotFoundError, match="no such"):
            load_tokenizer(name)
    (tmp_path / "problems.jsonl").write_text(json.dumps(PROBLEMS[0]) + "\n")
    code, err = run_cli(["eval", "--model", "runs/merged", "--problems", "problems.jsonl", "--out", "e"], capsys)
    assert_one_line_error(code, err, "runs/merged", "no such model folder")
    assert not (tmp_path / "e").exists()


# ---------------------------------------------------------------- prompt length against the context

def test_a_prompt_longer_than_the_context_is_refused_before_anything_is_written(pair_paths, tmp_path, capsys):
    context = AutoModelForCausalLM.from_pretrained(pair_paths[0]).config.max_position_embeddings
    long = {"id": "long", "question": "one two three " * (context // 10), "answer": "#### 1"}
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps(p) + "\n" for p in [PROBLEMS[0], long]))
    tokenizer = load_tokenizer(str(pair_paths[0]))
    length = len(build_prompt_ids(tokenizer, long["question"], SampleConfig().system_prompt))
    assert length > context, "the test needs a prompt past the context"

    with pytest.raises(PromptTooLongError, match=rf"problem 'long'.* {length} tokens.* context of {context}"):
        sample(str(pair_paths[0]), str(pair_paths[1]), problems, tmp_path / "run",
               SampleConfig(max_new_tokens=MAX_NEW), progress=False)
    assert not (tmp_path / "run").exists()

    code, err = run_cli(["sample", "--expert", pair_paths[0], "--amateur", pair_paths[1], "--problems", problems,
                         "--out", tmp_path / "run", "--max-new-tokens", MAX_NEW], capsys)
    assert_one_line_error(code, err, problems, "'long'", "--max-new-tokens")
    code, err = run_cli(["eval", "--model", pair_paths[0], "--problems", problems, "--out", tmp_path / "eval",
                         "--max-new-tokens", MAX_NEW], capsys)
    assert_one_line_error(code, err, "'long'", "--max-new-tokens")
    assert not (tmp_path / "run").exists() and not (tmp_path / "eval").exists()

    # A prompt that fits, with max_new_tokens that would run past the context, is refused too.
    short_budget = context - len(build_prompt_ids(tokenizer, PROBLEMS[0]["question"], SampleConfig().system_prompt))
    with pytest.raises(PromptTooLongError):
        sample(str(pair_paths[0]), str(pair_paths[1]), PROBLEMS[:1], tmp_path / "run2",
               SampleConfig(max_new_tokens=short_budget + 1), progress=False)
    assert not (tmp_path / "run2").exists()


# ---------------------------------------------------------------- one line instead of a traceback

def test_unknown_pair_name_is_one_line(problems_file, tmp_path, capsys):
    code, err = run_cli(["sample", "--expert", "no-such-pair", "--problems", problems_file,
                         "--out", tmp_path / "o"], capsys)
    assert_one_line_error(code, err, "no-such-pair", "known pairs")
    assert not (tmp_path / "o").exists()


def test_an_out_folder_that_cannot_be_made_is_one_line(pair_paths, problems_file, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("mine")
    code, err = run_cli(["sample", "--expert", pair_paths[0], "--amateur", pair_paths[1], "--problems",
                         problems_file, "--out", blocker / "run", "--max-new-tokens", MAX_NEW], capsys)
    assert_one_line_error(code, err, blocker)
    assert blocker.read_text() == "mine"


def test_a_read_only_out_folder_is_one_line(pair_paths, problems_file, sampled, tmp_path, monkeypatch, capsys):
    """The tests run as root, where chmod cannot make a folder read-only: the
    operating system's refusal is raised where the folder is made."""
    from pathlib import Path as P

    mkdir = P.mkdir

    def read_only(self, *args, **kwargs):
        if tmp_path in self.parents or self == tmp_path:
            raise PermissionError(13, "Permission denied", str(self))
        return mkdir(self, *args, **kwargs)

    monkeypatch.setattr(P, "mkdir", read_only)
    for argv in (["sample", "--expert", pair_paths[0], "--amateur", pair_paths[1], "--problems", problems_file,
                  "--out", tmp_path / "run", "--max-new-tokens", MAX_NEW],
                 train_argv(pair_paths[0], sampled / "records.jsonl", tmp_path / "run", 2),
                 ["eval", "--model", pair_paths[0], "--problems", problems_file, "--out", tmp_path / "run",
                  "--max-new-tokens", MAX_NEW]):
        code, err = run_cli(argv, capsys)
        assert_one_line_error(code, err, "Permission denied", tmp_path / "run")


def test_device_cuda_without_cuda_is_one_line(pair_paths, problems_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, err = run_cli(["sample", "--expert", pair_paths[0], "--amateur", pair_paths[1], "--problems",
                         problems_file, "--out", tmp_path / "o", "--device", "cuda"], capsys)
    assert_one_line_error(code, err, "--device cuda", "CUDA is not available")
    code, err = run_cli(["sample", "--expert", pair_paths[0], "--amateur", pair_paths[1], "--problems",
                         problems_file, "--out", tmp_path / "o", "--device", "gpu"], capsys)
    assert_one_line_error(code, err, "--device 'gpu'")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("field, value, message", [
    ("weights", 1.0, "field weights must be a list"),
    ("token_ids", "5", "field token_ids must be a non-empty list"),
    ("tokens", 3, "field tokens must be a list of strings"),
    ("step", "2", "field step must be a non-negative integer"),
    ("prefix", None, "field prefix must be a string"),
    ("kl_divergence", "high", "field kl_divergence must be a finite number"),
    ("prompt_token_ids", [1, "x"], "field prompt_token_ids holds something other"),
])
def test_records_with_wrong_field_types_are_one_line(pair_paths, sampled, tmp_path, capsys, field, value, message):
    lines = (sampled / "records.jsonl").read_text().splitlines()
    bad = json.loads(lines[1])
    bad[field] = value
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join([lines[0], json.dumps(bad)] + lines[2:]) + "\n")
    code, err = run_cli(train_argv(pair_paths[0], path, tmp_path / "out", 2), capsys)
    assert_one_line_error(code, err, f"{path}, line 2", message)
    assert not (tmp_path / "out").exists()


def test_a_bad_flag_is_one_line_too(capsys):
    for argv in (["train", "--expert", "e", "--records", "r", "--out", "o", "--max-steps", "many"],
                 ["sample", "--problems", "p", "--out", "o"], ["no-such-command"]):
        with pytest.raises(SystemExit) as exit:
            main(argv)
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert exit.value.code == 2 and len(err) == 1, err
        assert "error:" in err[0] and "--help" in err[0]


# ---------------------------------------------------------------- small inconsistencies

def test_eval_system_prompt_none_sends_no_system_turn(pair_paths, problems_file, tmp_path, capsys):
    out = tmp_path / "eval"
    code, _ = run_cli(["eval", "--model", pair_paths[0], "--problems", problems_file, "--out", out,
                       "--max-new-tokens", MAX_NEW, "--system-prompt", "none"], capsys)
    assert code == 0
    assert json.loads((out / "summary.json").read_text())["config"]["system_prompt"] is None


def test_out_of_vocabulary_record_is_named_by_its_line(pair_paths, sampled, tmp_path, capsys):
    lines = (sampled / "records.jsonl").read_text().splitlines()
    bad = json.loads(lines[0])
    bad["token_ids"][0] = 10_000
    path = tmp_path / "records.jsonl"
    path.write_text("\n" + json.dumps(bad) + "\n")  # record 1 sits on line 2
    code, err = run_cli(train_argv(pair_paths[0], path, tmp_path / "out", 2), capsys)
    assert_one_line_error(code, err, f"{path}, line 2", "id 10000", "outside the vocabulary")


# ---------------------------------------------------------------- provenance

def test_every_run_folder_says_what_made_it(pair_paths, sampled, problems_file, tmp_path, capsys):
    argv = train_argv(pair_paths[0], sampled / "records.jsonl", tmp_path / "adapter", 2)
    assert run_cli(argv, capsys)[0] == 0
    assert run_cli(["merge", "--expert", pair_paths[0], "--adapter", tmp_path / "adapter",
                    "--out", tmp_path / "merged"], capsys)[0] == 0
    assert run_cli(["eval", "--model", tmp_path / "merged", "--problems", problems_file, "--out",
                    tmp_path / "eval", "--max-new-tokens", MAX_NEW], capsys)[0] == 0
    import lrkit

    for folder, command in ((sampled, "lrkit.sample("), (tmp_path / "adapter", "lrkit train --expert"),
                            (tmp_path / "merged", "lrkit merge"), (tmp_path / "eval", "lrkit eval --model")):
        (entry,) = read_provenance(folder)
        assert entry["lrkit"] == lrkit.__version__
        assert "git_commit" in entry
        for package in ("python", *PACKAGES):
            assert entry[package], (folder, package)
        assert entry["torch"] == torch.__version__.split("+")[0] or entry["torch"] == torch.__version__
        assert entry["device"] == "cpu" and entry["dtype"] in ("float32", "fp32")
        assert entry["started"] <= entry["ended"]
        assert entry["command"].startswith(command), entry["command"]
    assert str(tmp_path / "adapter") in read_provenance(tmp_path / "adapter")[0]["command"]

    # The finished run asked for again is returned as it is; a resumed run adds its own entry.
    assert run_cli(argv + ["--resume"], capsys)[0] == 0
    assert len(read_provenance(tmp_path / "adapter")) == 1
    longer = train_argv(pair_paths[0], sampled / "records.jsonl", tmp_path / "adapter", 3)
    assert run_cli(longer + ["--resume"], capsys)[0] == 0
    assert len(read_provenance(tmp_path / "adapter")) == 2


# ------------------------------------------------------------------ settings as a file (--config)

def test_a_stage_reruns_from_the_yaml_file_its_folder_holds(tmp_path, capsys):
    from lrkit.cli import main
    from lrkit.runs import RERUN_FILE

    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps({"id": f"p{i}", "question": f"Ann has {i} pens. How many?",
                                            "answer": f"#### {i}"}) + "\n" for i in range(3)))
    out = tmp_path / "eval"
    assert main(["eval", "--model", "toy:expert", "--problems", str(problems), "--out", str(out),
                 "--max-new-tokens", "12", "--batch-size", "2"]) == 0
    settings = (out / RERUN_FILE).read_text()
    assert settings.startswith(f"# rerun: lrkit eval --config {out / RERUN_FILE}\n")
    assert "max_new_tokens: 12" in settings and "batch_size: 2" in settings
    provenance = (out / "provenance.json").read_text()
    results = (out / "results.jsonl").read_bytes()
    capsys.readouterr()
    # the same settings from the file: the stored result comes back, nothing is generated again
    assert main(["eval", "--config", str(out / RERUN_FILE)]) == 0
    assert "accuracy" in capsys.readouterr().out
    assert (out / "provenance.json").read_text() == provenance and (out / "results.jsonl").read_bytes() == results
    # a flag overrides the file: here another answer length, refused in this folder in one line
    assert main(["eval", "--config", str(out / RERUN_FILE), "--max-new-tokens", "13"]) == 2
    err = capsys.readouterr().err.strip()
    assert "config.max_new_tokens" in err and "\n" not in err


@pytest.mark.parametrize("text, message", [
    ("bogus: 1\n", "unknown setting 'bogus' for `lrkit eval`"),
    ("max-new-tokens: lots\n", "max-new-tokens: expected an integer"),
    ("command: train\n", "holds the settings of `lrkit train`, not `lrkit eval`"),
    ("- a list\n", "expected a mapping of settings"),
    ("batch_size: 2\nmax_new_tokens: a: b\n", "line 2: not valid YAML"),
])
def test_a_bad_config_file_is_one_line_naming_the_file(tmp_path, capsys, text, message):
    from lrkit.cli import main

    path = tmp_path / "settings.yaml"
    path.write_text(text)
    assert main(["eval", "--config", str(path), "--model", "toy:expert", "--problems", "x.jsonl",
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"lrkit eval: error: --config {path}") and message in err and "\n" not in err
    assert not (tmp_path / "out").exists()
