"""What a new user hits when something goes wrong, through the command line:
every mistake ends with exit status 2 and one line naming the file, line, field
or flag; nothing a user produced is overwritten or silently mixed; every run
folder says what made it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from lrkit.cli import main
from lrkit.config import EvalConfig, SampleConfig
from lrkit.data.records import tokenizer_fingerprint
from lrkit.evaluation import evaluate
from lrkit.models.loading import ModelNotFoundError, PromptTooLongError, load_model, load_tokenizer
from lrkit.models.prompts import build_prompt_ids
from lrkit.provenance import PACKAGES, read_provenance
from lrkit.stages.sampling import read_steps, sample

from tiny_models import make_model, make_tokenizer

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


# ---------------------------------------------------------------- 1. resuming with other settings

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


# ---------------------------------------------------------------- 2. eval never overwrites

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


# ---------------------------------------------------------------- 3. a missing local path never goes to the Hub

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


# ---------------------------------------------------------------- 4. prompt length against the context

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


# ---------------------------------------------------------------- 6. one line instead of a traceback

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


# ---------------------------------------------------------------- 7. small inconsistencies

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


# ---------------------------------------------------------------- 8. placeholder tokens are output padding

def test_placeholder_tokens_are_scored_like_rows_beyond_the_tokenizer(tmp_path):
    """One model saved with its tokenizer and with the tokenizer a converter pads
    with [PADn] placeholders gives the same steps, records and fingerprint."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from tiny_models import CHAT_TEMPLATE, SPECIALS

    plain = make_tokenizer()
    vocab = dict(plain.backend_tokenizer.get_vocab())
    n = len(plain)
    for i in range(n, n + 7):
        vocab[f"[PAD{i}]"] = i
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    backend.decoder = decoders.Fuse()
    padded = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>",
                                     unk_token="<pad>", additional_special_tokens=SPECIALS[2:])
    padded.chat_template = CHAT_TEMPLATE
    assert len(padded) == n + 7 and padded.convert_ids_to_tokens(n) == f"[PAD{n}]"
    assert padded.convert_ids_to_tokens(list(range(n))) == plain.convert_ids_to_tokens(list(range(n)))

    expert, amateur = make_model(padded, seed=4, extra_rows=3), make_model(padded, seed=5, layers=1)
    with torch.no_grad():  # make the placeholders likely, as a careless model could
        expert.lm_head.weight[n:n + 7] = expert.lm_head.weight[n:n + 7] * 3 + 0.5
        amateur.lm_head.weight[n:n + 7] = amateur.lm_head.weight[n:n + 7] * 3 + 0.5
    runs = {}
    for name, tokenizer in (("plain", plain), ("padded", padded)):
        for role, model in (("expert", expert), ("amateur", amateur)):
            model.save_pretrained(tmp_path / name / role)
            tokenizer.save_pretrained(tmp_path / name / role)
        out = tmp_path / name / "run"
        sample(str(tmp_path / name / "expert"), str(tmp_path / name / "amateur"), PROBLEMS, out,
               SampleConfig(max_new_tokens=MAX_NEW, beta=0.0, alpha=0.05, batch_size=2), progress=False)
        runs[name] = out
    plain_steps, padded_steps = read_steps(runs["plain"]), read_steps(runs["padded"])
    assert len(plain_steps) == len(padded_steps) > 0
    for column in ("token_id", "expert_top1_id", "amateur_top1_id", "mask_size", "expert_topk_ids"):
        assert plain_steps[column].tolist() == padded_steps[column].tolist(), column
    for column in ("kl", "expert_entropy", "amateur_entropy", "expert_logprob"):
        assert padded_steps[column].tolist() == pytest.approx(plain_steps[column].tolist(), abs=1e-6), column
    assert max(max(ids) for ids in padded_steps["expert_topk_ids"]) < n, "no placeholder is ever a candidate"
    records = {name: [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
               for name, out in runs.items()}
    assert [r["token_ids"] for r in records["plain"]] == [r["token_ids"] for r in records["padded"]]
    for a, b in zip(records["plain"], records["padded"]):
        assert b["weights"] == pytest.approx(a["weights"], abs=1e-6)
    assert tokenizer_fingerprint(plain) == tokenizer_fingerprint(padded)


# ---------------------------------------------------------------- 9. generations cut at the token limit

def test_every_evaluation_result_counts_generations_that_hit_the_limit(pair_paths, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(pair_paths[0]).eval()
    tokenizer = load_tokenizer(str(pair_paths[0]))
    config = EvalConfig(max_new_tokens=MAX_NEW, batch_size=3)
    result = evaluate(model, PROBLEMS, config, tokenizer=tokenizer, out_dir=tmp_path / "eval", progress=False)

    expected = 0  # batch-1 greedy decoding by argmax, counting rollouts with no EOS in MAX_NEW tokens
    with torch.no_grad():
        for problem in PROBLEMS:
            ids = build_prompt_ids(tokenizer, problem["question"], config.system_prompt)
            for _ in range(MAX_NEW):
                ids.append(int(model(torch.tensor([ids])).logits[0, -1, :len(tokenizer)].argmax()))
                if ids[-1] == tokenizer.eos_token_id:
                    break
            expected += ids[-1] != tokenizer.eos_token_id
    assert 0 < expected < len(PROBLEMS), "the test needs both kinds of generation"
    assert result.summary()["n_hit_limit"] == expected
    assert json.loads((tmp_path / "eval" / "summary.json").read_text())["n_hit_limit"] == expected
    assert f"{expected} hit the token limit" in str(result)


# ---------------------------------------------------------------- 10. provenance

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
