"""The Colab path rehearsed offline: the paper's pair and benchmarks by
their Hub names, from a local Hugging Face cache (tests/hub_fixture.py) with
HF_HUB_OFFLINE=1, run as a Colab user runs them: the command line and the four
notebooks, each in its own process, so the libraries read HF_HOME as they start.

The fast tests check the fixture itself against independent facts about Qwen2.5
(token ids, special tokens, the published configs, each model card's template).
The slow test is the rehearsal.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import hub_fixture as hub

TESTS = Path(__file__).parent
REPO = TESTS.parent
NOTEBOOKS = REPO / "notebooks"
MATH_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
QWEN_SYSTEM = "You are a helpful assistant."
"""Qwen2.5's base models' default system prompt (Qwen/Qwen2.5-0.5B's tokenizer_config.json, as
quoted at revision 060db649 by guidance-ai/guidance's guidance/chat.py); the Instruct models'
is "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."."""
INSTRUCT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
PAPER_MODELS = {"Qwen/Qwen2.5-Math-1.5B", "Qwen/Qwen2.5-0.5B"}
PAPER_DATASETS = {"openai/gsm8k", "HuggingFaceH4/MATH-500", "ChilleD/SVAMP", "EleutherAI/asdiv",
                  "math-ai/minervamath", "Hothan/OlympiadBench", "hails/mmlu_no_train"}
NOTEBOOK_PARAMETERS = dict(PAIR="qwen2.5-math-1.5b", N_PROBLEMS=4, MAX_STEPS=2, N_EVAL=3,
                           ABLATIONS=True, SFT_BASELINE=False)
"""Small sizes. SFT_BASELINE is off: random weights get no GSM8K answer right, and
SFT refuses to train on nothing (as it should)."""


def backend():
    from tokenizers import Tokenizer

    return Tokenizer.from_str(hub.tokenizer_json().decode("utf-8"))


def render(template: str, question: str, system: str | None) -> str:
    """The chat template rendered as transformers renders it, by jinja2 directly."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(messages=messages, add_generation_prompt=True, tools=None)


def template_of(repo_id: str) -> str:
    return json.loads((hub.QWEN / f"{repo_id.split('/')[1]}.tokenizer_config.json").read_text())["chat_template"]


# ------------------------------------------------------------------ the fixture's files

def test_the_tokenizer_is_qwen25s():
    tok = backend()
    assert tok.get_vocab_size(with_added_tokens=True) == hub.TOKENS == 151_665
    assert tok.get_vocab_size(with_added_tokens=False) == 151_643
    specials = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645,
                "<|video_pad|>": 151656, "<tool_call>": 151657, "<|fim_prefix|>": 151659, "<|file_sep|>": 151664}
    assert {t: tok.token_to_id(t) for t in specials} == specials
    # Qwen2 byte-level BPE ids, as Qwen's own tokenizer gives them
    assert tok.encode("Hello, world!").ids == [9707, 11, 1879, 0]
    assert tok.encode("<|im_start|>user\n").ids == [151644, 872, 198]
    assert tok.decode(tok.encode(" x² = 3½ 中文").ids) == " x² = 3½ 中文"
    assert (hub.QWEN / "tokenizer.json.xz").stat().st_size < 5_000_000
    assert "Apache License" in (hub.QWEN / "LICENSE").read_text()


def test_each_model_has_its_model_cards_template():
    qwen, math = template_of(hub.AMATEUR), template_of(hub.EXPERT)
    # Qwen2.5's template as the (Instruct) GGUF ships it, with the base model's default system prompt
    assert qwen == (hub.QWEN / "gguf_chat_template.jinja").read_text().replace(INSTRUCT_SYSTEM, QWEN_SYSTEM)
    assert INSTRUCT_SYSTEM not in qwen
    assert render(qwen, "1+1?", None) == (f"<|im_start|>system\n{QWEN_SYSTEM}<|im_end|>\n"
                                          "<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n")
    assert render(math, "1+1?", None) == (f"<|im_start|>system\n{MATH_SYSTEM}<|im_end|>\n"
                                          "<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n")
    assert render(math, "1+1?", "Be brief.") == render(qwen, "1+1?", "Be brief.")


def test_configs_are_the_published_ones_shrunk_in_depth_and_width_only():
    math, small = hub.real_config(hub.EXPERT), hub.real_config(hub.AMATEUR)
    assert (math["hidden_size"], math["num_hidden_layers"], math["tie_word_embeddings"]) == (1536, 28, True)
    assert (small["hidden_size"], small["num_hidden_layers"], small["tie_word_embeddings"]) == (896, 24, True)
    assert math["vocab_size"] == small["vocab_size"] == hub.ROWS == 151_936
    for repo_id, real in ((hub.EXPERT, math), (hub.AMATEUR, small)):
        assert set(hub.SHRINK[repo_id]) <= {"hidden_size", "intermediate_size", "num_hidden_layers",
                                            "max_window_layers"}
        shrunk = {**real, **hub.SHRINK[repo_id]}
        assert shrunk["hidden_size"] % shrunk["num_attention_heads"] == 0


def test_the_7b_expert_has_the_7b_shape():
    """Qwen2.5-Math-7B: Qwen2.5-7B's width (3,584, 28 heads, 4 kv heads), an untied output
    layer of 152,064 rows (the 0.5B amateur has 151,936), 4,096 positions
    (QwenLM/Qwen2.5-Math issue 59), the Math models' template."""
    seven = hub.real_config(hub.EXPERT_7B)
    assert (seven["hidden_size"], seven["num_attention_heads"], seven["num_key_value_heads"]) == (3584, 28, 4)
    assert seven["vocab_size"] == hub.ROWS_7B == 152_064 and seven["tie_word_embeddings"] is False
    assert seven["max_position_embeddings"] == 4096
    assert template_of(hub.EXPERT_7B) == template_of(hub.EXPERT)
    shrunk = {**seven, **hub.SHRINK[hub.EXPERT_7B]}
    assert shrunk["hidden_size"] % shrunk["num_attention_heads"] == 0


DEEPSEEK_TEMPLATE_OUTPUT = "<｜begin▁of▁sentence｜>Be brief.<｜User｜>1+1?<｜Assistant｜><think>\n"


def test_the_deepseek_distill_renames_qwens_added_tokens():
    """DeepSeek-R1-Distill-Qwen-1.5B: Qwen2.5's vocabulary, its 22 added tokens renamed
    (ids and names from its tokenizer_config.json as quoted from the Hub), a BOS added
    to every text, its own chat template (huggingface/open-r1's recipe for this model,
    with the published template's </think> cut), sampling in its generation_config."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(hub.deepseek_tokenizer_json(hub.tokenizer_json()).decode("utf-8"))
    assert tok.get_vocab_size(with_added_tokens=True) == hub.TOKENS
    names = {"<｜end▁of▁sentence｜>": 151643, "<｜User｜>": 151644, "<｜Assistant｜>": 151645,
             "<｜begin▁of▁sentence｜>": 151646, "<think>": 151648, "</think>": 151649, "<|file_sep|>": 151664}
    assert {t: tok.token_to_id(t) for t in names} == names
    assert tok.token_to_id("<|im_end|>") is None and tok.token_to_id("<|endoftext|>") is None
    assert tok.encode("Hello, world!").ids == [151646, 9707, 11, 1879, 0]  # BOS, then Qwen's ids
    config = json.loads((hub.DEEPSEEK_FILES / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["add_bos_token"] is True and config["bos_token"]["content"] == "<｜begin▁of▁sentence｜>"
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    rendered = env.from_string(config["chat_template"]).render(
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "1+1?"}],
        add_generation_prompt=True, bos_token=config["bos_token"]["content"])
    assert rendered == DEEPSEEK_TEMPLATE_OUTPUT
    generation = json.loads((hub.DEEPSEEK_FILES / "generation_config.json").read_text())
    assert (generation["do_sample"], generation["temperature"], generation["top_p"]) == (True, 0.6, 0.95)
    distill = hub.real_config(hub.DEEPSEEK)
    assert (distill["hidden_size"], distill["vocab_size"], distill["tie_word_embeddings"]) == (1536, 151_936, False)


# ------------------------------------------------------------------ the rehearsal

@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    if not hub.GSM8K_TRAIN.is_file():
        pytest.skip(f"{hub.GSM8K_TRAIN} is missing")
    return hub.build_hub_cache(tmp_path_factory.mktemp("hf_home"))


def offline(home: Path, log: Path) -> dict:
    env = {**os.environ, **hub.offline_env(home), "LRKIT_REHEARSAL_LOG": str(log), "TQDM_DISABLE": "1",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(TESTS / "rehearsal_site"), env.get("PYTHONPATH", "")])
    return env


def lrkit(env: dict, cwd: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "lrkit", *args], env=env, cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"lrkit {' '.join(args)} failed:\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def python(env: dict, cwd: Path, code: str):
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def check_sampling_folder(folder: Path, system: str) -> int:
    """Every id inside the tokenizer; prompts exactly the expert's chat template."""
    tok, template = backend(), template_of(hub.EXPERT)
    records = jsonl(folder / "records.jsonl")
    for r in records:
        ids = (r["token_ids"] + r["prompt_token_ids"] + r["prefix_token_ids"]
               + [r["expert_token_id"], r["expert_top1_id"], r["amateur_top1_id"]])
        assert max(ids) < hub.TOKENS, f"record {r['prompt_id']} step {r['step']} beyond the tokenizer"
        assert abs(sum(r["weights"]) - 1) < 1e-4 and min(r["weights"]) > 0
    for s in jsonl(folder / "steps.jsonl"):
        assert max(s["expert_topk_ids"] + s["amateur_topk_ids"] + [s["token_id"]]) < hub.TOKENS
    for rollout in jsonl(folder / "rollouts.jsonl"):
        expected = tok.encode(render(template, rollout["question"], system), add_special_tokens=False).ids
        assert rollout["prompt_token_ids"] == expected
    return len(records)


def kept_steps(folder: Path) -> int:
    """How many steps steps.jsonl marks kept: one record each."""
    return sum(s["kept"] for s in jsonl(folder / "steps.jsonl"))


def execute_notebook(name: str, env: dict, cwd: Path, monkeypatch) -> float:
    import nbformat
    import papermill

    for key, value in env.items():
        if os.environ.get(key) != value:
            monkeypatch.setenv(key, value)
    executed = cwd / f"executed_{name}.ipynb"
    start = time.perf_counter()
    try:
        papermill.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(executed), parameters=NOTEBOOK_PARAMETERS,
                                   kernel_name="python3", cwd=str(cwd), execution_timeout=600, progress_bar=False)
    except papermill.PapermillExecutionError as error:
        pytest.fail(f"{name}: cell {error.cell_index} raised {error.ename}: {error.evalue}")
    nb = nbformat.read(executed, as_version=4)
    errors = [(i, o.get("ename")) for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.get("outputs", []) if o.output_type == "error"
              or (o.output_type == "stream" and "Traceback" in o["text"])]
    assert errors == [], f"{name}: error cells {errors}"
    return time.perf_counter() - start


def test_lrkit_experiment_by_hub_names_offline(cache, tmp_path):
    """`lrkit experiment` on the paper's pair by its Hub name, with the paper's settings
    but a few problems: validation and train from GSM8K train, tests from GSM8K test."""
    env, work = offline(cache, tmp_path / "requested.log"), tmp_path / "work"
    work.mkdir()
    printed = lrkit(env, work, "experiment", "--pair", "qwen2.5-math-1.5b", "--out", "exp", "--train-problems", "3",
                    "--test-problems", "2", "--validation-problems", "2", "--max-steps", "2", "--max-new-tokens", "8",
                    "--eval-max-new-tokens", "8", "--quiet")
    summary = json.loads((work / "exp" / "summary.json").read_text())
    assert (summary["expert"], summary["amateur"], summary["dtype"]) == (hub.EXPERT, hub.AMATEUR, "fp32")
    assert summary["config"]["train"]["learning_rate"] == 5e-5 and summary["config"]["sample"]["beta"] == 0.4
    assert "train_problems: 3 (paper 1000)" in summary["paper_differences"]
    assert "differs from the paper: train.max_steps: 2 (paper 1000)" in printed
    tests = [r["id"] for r in jsonl(work / "exp" / "base" / "eval" / "results.jsonl")]
    validation = [r["id"] for r in jsonl(work / "exp" / "validation" / "greedy" / "results.jsonl")]
    sampled = [r["prompt_id"] for r in jsonl(work / "exp" / "sampling-beta0.4-alpha0.2" / "rollouts.jsonl")]
    assert sorted(tests) == ["gsm8k-test-0", "gsm8k-test-1"]
    assert len(validation) == 2 and len(sampled) == 3 and set(validation).isdisjoint(sampled)
    assert all(i.startswith("gsm8k-train-") for i in validation + sampled)
    folder = work / "exp" / "sampling-beta0.4-alpha0.2"
    assert check_sampling_folder(folder, "Please reason step by step.") == kept_steps(folder)
    assert summary["scout_verdict"]["text"] in printed
    assert set(summary["error_anatomy"]["counts"]["base"]) <= {"cut at the token limit", "no final answer",
                                                                "arithmetic slip", "reasoning"}


HUB_PAIRS = {"qwen2.5-math-7b": (hub.EXPERT_7B, hub.ROWS_7B, False, "greedy"),
             "deepseek-r1-distill-1.5b": (hub.DEEPSEEK, hub.ROWS, False, "model-default")}
"""The registered Hub pairs besides the paper's main one (whose rehearsal is below):
expert, its output rows, tied or not, its rollouts by default."""


@pytest.mark.parametrize("pair", list(HUB_PAIRS))
def test_every_registered_hub_pair_by_name_offline(cache, tmp_path, pair):
    """sample / train / merge / eval of the pair by its registered name and Hub names, offline."""
    from lrkit.models.pairs import PAIRS

    expert, rows, tied, rollouts = HUB_PAIRS[pair]
    assert (PAIRS[pair].expert, PAIRS[pair].amateur) == (expert, hub.AMATEUR)
    log = tmp_path / "requested.log"
    env, work = offline(cache, log), tmp_path / "work"
    work.mkdir()
    out = lrkit(env, work, "sample", "--expert", pair, "--problems", "gsm8k:train", "--max-problems", "3",
                "--max-new-tokens", "12", "--batch-size", "3", "--out", "sample")
    config = json.loads((work / "sample" / "config.json").read_text())
    assert (config["expert"], config["amateur"], config["rollouts"]) == (expert, hub.AMATEUR, rollouts)
    if pair.startswith("deepseek"):  # the pair check says what it compares: the renamed added tokens
        qwen_names = {t["id"]: t["content"] for t in json.loads(hub.tokenizer_json())["added_tokens"]}
        renamed = [t for t in hub.deepseek_added_tokens() if qwen_names[t["id"]] != t["content"]]
        assert len(renamed) == 7  # 151643-151649: <|endoftext|>, <|im_start|> ... <|box_end|> renamed
        assert f"name {len(renamed)} added tokens differently" in out
    records = jsonl(work / "sample" / "records.jsonl")
    rendered = {r["prompt_id"]: r for r in jsonl(work / "sample" / "rollouts.jsonl")}
    assert len(rendered) == 3
    for r in records:
        assert max(r["token_ids"] + r["prompt_token_ids"] + r["prefix_token_ids"]) < hub.TOKENS
    prompt = rendered["gsm8k-train-0"]["prompt_token_ids"]
    if pair.startswith("deepseek"):  # its template: BOS, the system prompt, <｜User｜> ... <｜Assistant｜><think>\n
        assert prompt[0] == 151646 and 151644 in prompt and prompt[-3] == 151645
    else:
        assert prompt[:1] == [151644]  # <|im_start|>: Qwen's template, no BOS
    lrkit(env, work, "train", "--expert", expert, "--records", "sample/records.jsonl", "--out", "lora",
          "--max-steps", "2", "--per-device-batch-size", "2", "--gradient-accumulation-steps", "1",
          "--save-steps", "100", "--logging-steps", "1", "--report-to", "none")
    assert len(jsonl(work / "lora" / "loss.jsonl")) >= 2
    lrkit(env, work, "merge", "--expert", expert, "--adapter", "lora", "--out", "merged")
    merged = json.loads((work / "merged" / "config.json").read_text())
    assert merged["vocab_size"] == rows and merged["tie_word_embeddings"] is tied
    lrkit(env, work, "eval", "--model", expert, "--model", "merged", "--problems", "gsm8k", "mmlu_stem",
          "--limit", "2", "--max-new-tokens", "8", "--out", "table1")
    label = expert.replace("/", "_")
    summary = json.loads((work / "table1" / label / "mmlu_stem" / "summary.json").read_text())
    assert summary["config"]["protocol"] == "paper" and summary["benchmark"] == "mmlu_stem"
    # the toolkit's stop ids: 151645 / 151643 only for a name holding "qwen2" (the merged folder's does not)
    qwen_named = "qwen2" in expert.lower()
    assert (151645 in summary["stop_ids"]) is qwen_named
    merged_summary = json.loads((work / "table1" / "merged" / "gsm8k" / "summary.json").read_text())
    assert 151645 not in merged_summary["stop_ids"] and 151643 in merged_summary["stop_ids"]
    requested = set(log.read_text().splitlines())
    assert {f"model {expert}", f"model {hub.AMATEUR}"} <= requested
    assert not any(line.startswith("model ") for line in requested - {f"model {expert}", f"model {hub.AMATEUR}"})


@pytest.mark.slow
def test_the_colab_path_offline(cache, tmp_path, monkeypatch):
    pytest.importorskip("papermill")
    from datasets.naming import camelcase_to_snakecase

    log = tmp_path / "requested.log"
    env, work = offline(cache, log), tmp_path / "work"
    work.mkdir()
    times = {}

    # The tokenizer and the models, loaded by the pair's name.
    sizes = python(env, work, "import json, lrkit; p = lrkit.load_pair('qwen2.5-math-1.5b'); "
                              "from lrkit.models.loading import output_rows; "
                              "print(json.dumps([len(p.tokenizer), p.vocab_size, output_rows(p.expert), "
                              "output_rows(p.amateur), p.expert.config.tie_word_embeddings, "
                              "p.amateur.config.tie_word_embeddings, p.expert_name, p.amateur_name]))")
    assert sizes == [151_665, 151_665, 151_936, 151_936, True, True, hub.EXPERT, hub.AMATEUR]

    # Each model's own template from its Hub name, with its own default system prompt.
    question = "Tom has 3 apples and buys 4 more. How many apples does he have?"
    prompts = python(env, work, "import json; from lrkit.models.loading import load_tokenizer; "
                                "from lrkit.models.prompts import build_prompt_ids; "
                                f"print(json.dumps([build_prompt_ids(load_tokenizer(m), {question!r}, None) "
                                f"for m in {[hub.EXPERT, hub.AMATEUR]!r}]))")
    tok = backend()
    for ids, repo_id, system in zip(prompts, (hub.EXPERT, hub.AMATEUR), (MATH_SYSTEM, QWEN_SYSTEM)):
        text = render(template_of(repo_id), question, None)
        assert system in text and ids == tok.encode(text, add_special_tokens=False).ids

    # The command line by Hub names: sample (GSM8K train), train, merge, Table 1 (GSM8K test + MATH-500).
    start = time.perf_counter()
    out = lrkit(env, work, "sample", "--expert", hub.EXPERT, "--amateur", hub.AMATEUR, "--problems", "gsm8k",
                "--max-problems", "4", "--max-new-tokens", "24", "--out", "sample")
    assert "problems: gsm8k:train" in out
    assert [r["prompt_id"] for r in jsonl(work / "sample" / "rollouts.jsonl")] == [f"gsm8k-train-{i}" for i in range(4)]
    assert check_sampling_folder(work / "sample", "Please reason step by step.") > 0
    lrkit(env, work, "train", "--expert", hub.EXPERT, "--records", "sample/records.jsonl", "--out", "lora",
          "--max-steps", "2", "--per-device-batch-size", "2", "--gradient-accumulation-steps", "1",
          "--save-steps", "100", "--logging-steps", "1")
    losses = jsonl(work / "lora" / "loss.jsonl")
    assert len(losses) >= 2 and all(0 <= e["kl"] < 100 for e in losses)
    lrkit(env, work, "merge", "--expert", hub.EXPERT, "--adapter", "lora", "--out", "merged")
    merged = json.loads((work / "merged" / "config.json").read_text())
    assert merged["vocab_size"] == hub.ROWS and merged["tie_word_embeddings"] is True
    lrkit(env, work, "eval", "--model", hub.EXPERT, "--model", "merged", "--problems", "gsm8k", "math500",
          "--limit", "2", "--out", "table1")
    for model in ("Qwen_Qwen2.5-Math-1.5B", "merged"):
        assert [r["id"] for r in jsonl(work / "table1" / model / "gsm8k" / "results.jsonl")] == \
            ["gsm8k-test-0", "gsm8k-test-1"]
        assert [r["id"] for r in jsonl(work / "table1" / model / "math500" / "results.jsonl")] == \
            ["test/algebra/1.json", "test/precalculus/2.json"]
    assert (work / "table1" / "table1.html").is_file()
    times["command line"] = time.perf_counter() - start
    print(f"command line: {times['command line']:.0f} s", flush=True)

    # Every notebook, in order, with the paper's pair and small sizes.
    run_dir = tmp_path / "runs"
    env = {**env, "LRKIT_RUN_DIR": str(run_dir)}
    for name in ("01_sampling", "02_critical_moments", "03_finetuning", "04_evaluation"):
        times[name] = execute_notebook(name, env, work, monkeypatch)
        print(f"{name}: {times[name]:.0f} s", flush=True)
    sampled = [f.parent for f in (run_dir / "qwen2.5-math-1.5b").rglob("records.jsonl")]
    assert run_dir / "qwen2.5-math-1.5b" / "n4-test3-seed2026" / "sampling-beta0.4-alpha0.2" in sampled  # notebook 1's
    assert all(check_sampling_folder(folder, "Please reason step by step.") == kept_steps(folder) for folder in sampled)

    # Exactly the paper's repositories were asked for, and nothing else.
    requested = set(log.read_text().splitlines())
    expected = ({f"model {m}" for m in PAPER_MODELS}
                | {f"dataset-cache {d.split('/')[0]}/{camelcase_to_snakecase(d.split('/')[1])}"
                   for d in PAPER_DATASETS})
    assert requested == expected
    print("rehearsal seconds:", {k: round(v, 1) for k, v in times.items()})


@pytest.mark.parametrize("name", ["01_sampling", "02_critical_moments", "03_finetuning", "04_evaluation"])
def test_papermill_reads_every_parameter(name):
    """A second '=' in a parameter's comment made papermill skip it ("Passed unknown
    parameter: PAIR" when the rehearsal injected the pair)."""
    papermill = pytest.importorskip("papermill")
    nbformat = pytest.importorskip("nbformat")

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assigned = re.findall(r"^([A-Z_]+) = ", cell.source, re.M)
    assert len(assigned) == 13 and set(papermill.inspect_notebook(str(NOTEBOOKS / f"{name}.ipynb"))) == set(assigned)
