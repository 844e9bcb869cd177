"""evaluate_suite: two tiny models whose outputs are known in advance, on the
GSM8K and MMLU-STEM fixtures; scores, fixed/broken, resuming, refusing to mix
settings, the paper's rows, and the written table and figure.

The models are successor tables (as in test_evaluation.py): greedy output
depends only on the prompt's last character; they answer lrkit's prompt, so the suite
runs lrkit's protocol (the paper's is tested in test_protocol.py). Expected outcomes, by hand:

gsm8k fixture (gold 42, 3000, 7), questions end "?", "?", "!":
  base  writes \\boxed{42}, \\boxed{42}, 7  -> right, wrong, right  (2/3)
  tuned writes \\boxed{42}, \\boxed{42}, 8  -> right, wrong, wrong  (1/3)
mmlu_stem fixture (gold B, C, B, D; the non-STEM row is dropped), questions
end "22", "photon", "2", "AND":
  base  writes "}", "C", "}", ""            -> only the second right   (1/4)
  tuned writes "}", "B", "}", " D D D ..."  -> only the fourth right    (1/4)
"""
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from lrkit.config import EvalConfig
from lrkit.evaluation import accuracy_interval, mcnemar_p_value
from lrkit.evaluation.suite import SuiteResult, evaluate_suite

FIXTURES = Path(__file__).parent / "fixtures" / "benchmarks"
DATA = {"gsm8k": FIXTURES / "gsm8k.jsonl", "mmlu_stem": FIXTURES / "mmlu_stem.jsonl"}
CHARS = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:?!#{}()\\-+$/=^*\n")
CONFIG = EvalConfig(max_new_tokens=12, batch_size=2, protocol="lrkit")  # the models answer lrkit's prompt
BASE = {"?": "\\boxed{42}", "!": "7", "n": "C", "2": "}"}
TUNED = {"?": "\\boxed{42}", "!": "8", "n": "B", "2": "}", "D": " D"}


def _tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<unk>"] + CHARS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>",
                                        unk_token="<unk>")
    tokenizer.chat_template = "{{ messages[-1]['content'] }}"
    return tokenizer


def _successor_model(tokenizer, chains: dict):
    """After character c the model writes chains[c] (then EOS); a chain that
    ends where it started (" D" after "D") repeats until the token limit."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    vocab, eos = len(tokenizer), tokenizer.eos_token_id
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=vocab, hidden_size=128, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=256, tie_word_embeddings=False, eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=None))
    successor = {i: eos for i in range(vocab)}
    for start, text in chains.items():
        ids = tokenizer.convert_tokens_to_ids([start, *text])
        for current, following in zip(ids, ids[1:]):
            successor[current] = following
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.embed_tokens.weight.zero_()
        model.model.embed_tokens.weight[torch.arange(vocab), torch.arange(vocab)] = 1.0
        model.lm_head.weight.zero_()
        for current, following in successor.items():
            model.lm_head.weight[following, current] = 1.0
    return model


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("suite_models")
    tokenizer = _tokenizer()
    paths = []
    for name, chains in (("base", BASE), ("tuned", TUNED)):
        _successor_model(tokenizer, chains).save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
        paths.append(str(root / name))
    return paths


def _run(model_dirs, out, **kwargs):
    options = dict(config=CONFIG, data_files=DATA, names=["base", "tuned"], progress=False)
    options.update(kwargs)
    return evaluate_suite(model_dirs, ["gsm8k", "mmlu_stem"], out, **options)


def test_suite_scores_comparisons_and_files(model_dirs, tmp_path):
    suite = _run(model_dirs, tmp_path)
    scores = suite.scores().set_index(["model", "benchmark"])
    expected = {("base", "gsm8k"): (2, 3), ("tuned", "gsm8k"): (1, 3),
                ("base", "mmlu_stem"): (1, 4), ("tuned", "mmlu_stem"): (1, 4)}
    for key, (right, n) in expected.items():
        row = scores.loc[key]
        assert (row["n_correct"], row["n"]) == (right, n), key
        assert (row["low"], row["high"]) == pytest.approx(accuracy_interval(right, n))
    assert scores.loc[("base", "average"), "accuracy"] == pytest.approx((2 / 3 + 1 / 4) / 2)
    assert scores.loc[("tuned", "average"), "accuracy"] == pytest.approx((1 / 3 + 1 / 4) / 2)
    assert scores.loc[("base", "mmlu_stem"), "n_no_answer"] == 3      # "}", "}" and "" hold no letter
    assert scores.loc[("tuned", "mmlu_stem"), "n_unfinished"] == 1    # " D D D ..." hit the limit

    comparisons = suite.comparisons().set_index("benchmark")
    assert comparisons.loc["gsm8k", ["fixed", "broken"]].tolist() == [0, 1]
    assert comparisons.loc["mmlu_stem", ["fixed", "broken"]].tolist() == [1, 1]
    assert comparisons.loc["gsm8k", "mcnemar_p"] == pytest.approx(mcnemar_p_value(0, 1))

    tuned_mmlu = suite.results["tuned"]["mmlu_stem"].df.set_index("id")
    assert tuned_mmlu.loc["mmlu_stem-4", "prediction"] == "D" and tuned_mmlu.loc["mmlu_stem-1", "prediction"] == "B"

    for name in ("suite.json", "table1.html", "figure.html", "scores.csv", "comparisons.csv",
                 "base/gsm8k/results.jsonl", "tuned/mmlu_stem/summary.json"):
        assert (tmp_path / name).exists(), name
    page = (tmp_path / "table1.html").read_text()
    assert "GSM8K" in page and "MMLU STEM" in page and "66.7" in page and "no answer found" in page
    assert suite.paper().empty  # no paper model among these names

    loaded = SuiteResult.load(tmp_path)
    pd.testing.assert_frame_equal(loaded.scores(), suite.scores())


def test_suite_resumes_and_adds_without_evaluating_again(model_dirs, tmp_path, monkeypatch):
    import lrkit.evaluation.suite as suite_module

    _run(model_dirs, tmp_path, limit=2)
    before = (tmp_path / "base" / "gsm8k" / "results.jsonl").read_text()

    def refuse(*args, **kwargs):
        raise AssertionError("a finished benchmark was evaluated again")

    monkeypatch.setattr(suite_module, "evaluate", refuse)
    monkeypatch.setattr(suite_module, "_load", refuse)
    again = _run(model_dirs, tmp_path, limit=2)
    assert (tmp_path / "base" / "gsm8k" / "results.jsonl").read_text() == before
    assert again.scores().query("benchmark == 'gsm8k'")["n"].tolist() == [2, 2]

    monkeypatch.undo()
    # A third model joins the folder: only it is evaluated.
    calls = []
    real = suite_module.evaluate
    monkeypatch.setattr(suite_module, "evaluate", lambda *a, **k: calls.append(k["name"]) or real(*a, **k))
    third = evaluate_suite(model_dirs + [model_dirs[0]], ["gsm8k"], tmp_path, config=CONFIG, limit=2,
                           data_files={"gsm8k": DATA["gsm8k"]}, names=["base", "tuned", "base again"],
                           progress=False)
    assert calls == ["base again"]
    assert third.comparisons()["fixed"].tolist() == [0, 0]
    settings = json.loads((tmp_path / "suite.json").read_text())
    assert list(settings["models"]) == ["base", "tuned", "base again"]


def test_a_suite_cut_off_inside_a_benchmark_keeps_its_finished_batches(model_dirs, tmp_path, monkeypatch):
    """Batches of 2: base then tuned, gsm8k (3 problems: 2 batches) then mmlu_stem (4: 2 batches).
    Cut off at the sixth batch (tuned's second gsm8k batch), the rerun generates the three
    batches left and ends with the files of an uninterrupted suite."""
    import lrkit.evaluation.loop as loop

    straight = _run(model_dirs, tmp_path / "straight")
    real, calls, cut = loop.greedy_generate_batch, [], [6]

    class Disconnected(Exception):
        pass

    def cut_off_at_six(*args, **kwargs):
        calls.append(1)
        if len(calls) in cut:
            cut.clear()
            raise Disconnected
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "greedy_generate_batch", cut_off_at_six)
    with pytest.raises(Disconnected):
        _run(model_dirs, tmp_path / "cut")
    partial = json.loads((tmp_path / "cut" / "tuned" / "gsm8k" / "summary.json").read_text())
    assert partial["complete"] is False and partial["n_problems"] == 2, "the first tuned batch was saved"
    calls.clear()
    resumed = _run(model_dirs, tmp_path / "cut")
    assert len(calls) == 3, "only the batches left were generated"
    pd.testing.assert_frame_equal(resumed.scores(), straight.scores())
    for model in ("base", "tuned"):
        for bench in ("gsm8k", "mmlu_stem"):
            name = f"{model}/{bench}/results.jsonl"
            assert (tmp_path / "cut" / name).read_text() == (tmp_path / "straight" / name).read_text(), name


def test_suite_refuses_to_mix_settings(model_dirs, tmp_path):
    _run(model_dirs, tmp_path, limit=2)
    with pytest.raises(ValueError, match="max_new_tokens"):
        _run(model_dirs, tmp_path, limit=2, config=EvalConfig(max_new_tokens=13, batch_size=2, protocol="lrkit"))
    with pytest.raises(ValueError, match="limit 2, not 3"):
        _run(model_dirs, tmp_path, limit=3)
    with pytest.raises(ValueError, match="model label 'base'"):
        _run(list(reversed(model_dirs)), tmp_path, limit=2)
    other = tmp_path / "gsm8k_other.jsonl"
    rows = DATA["gsm8k"].read_text().splitlines()
    other.write_text("\n".join([rows[1], rows[0], rows[2]]) + "\n")
    with pytest.raises(ValueError, match="'gsm8k' was evaluated on other problems"):
        _run(model_dirs, tmp_path, limit=2, data_files={**DATA, "gsm8k": other})


def test_paper_rows_beside_the_measured_ones(model_dirs, tmp_path):
    suite = _run(model_dirs, tmp_path, limit=1, paper_model="Qwen2.5-Math-1.5B")
    paper = suite.paper()
    baseline = paper[paper["row"] == "Qwen2.5-Math-1.5B Baseline (paper)"].set_index("benchmark")["accuracy"]
    assert baseline.to_dict() == pytest.approx({"gsm8k": 0.425, "mmlu_stem": 0.498})
    assert "average" not in set(paper["benchmark"])  # the paper's average covers all seven benchmarks
    page = suite.html()
    assert "70.6" in page and "lrk-paper" in page and "first 1 problems" in page
    figure = suite.figure()
    assert {trace.name for trace in figure.data} >= {"base", "tuned", "Qwen2.5-Math-1.5B + LightR (paper)"}
    with pytest.raises(ValueError, match="paper_model must be one of"):
        _run(model_dirs, tmp_path / "x", limit=1, paper_model="GPT-5")


def test_suite_input_errors(model_dirs, tmp_path):
    with pytest.raises(ValueError, match="known benchmarks"):
        evaluate_suite(model_dirs, ["gsm8k", "svamp2"], tmp_path, progress=False)
    with pytest.raises(ValueError, match="labels must differ"):
        evaluate_suite([model_dirs[0], model_dirs[0]], ["gsm8k"], tmp_path, data_files=DATA, progress=False)
    with pytest.raises(ValueError, match="data_files names benchmark"):
        evaluate_suite(model_dirs, ["gsm8k"], tmp_path, data_files=DATA, progress=False)


def test_cli_table1_for_two_models_then_resumed(model_dirs, tmp_path, capsys):
    from lrkit.cli import main

    out = tmp_path / "t1"
    argv = ["eval", "--model", model_dirs[0], "--model", model_dirs[1], "--name", "base", "--name", "tuned",
            "--problems", "gsm8k", "mmlu_stem", "--data-file", f"gsm8k={DATA['gsm8k']}",
            "--data-file", f"mmlu_stem={DATA['mmlu_stem']}", "--out", str(out), "--protocol", "lrkit", "--limit", "3",
            "--max-new-tokens", "12", "--batch-size", "2"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "tuned vs base on GSM8K: 0 fixed, 1 broken" in printed and "table1.html" in printed
    scores = pd.read_csv(out / "scores.csv").set_index(["model", "benchmark"])
    assert scores.loc[("base", "mmlu_stem"), "n"] == 3 and scores.loc[("tuned", "gsm8k"), "n_correct"] == 1
    assert main(argv) == 0 and "already evaluated" in capsys.readouterr().out
    assert main(argv[:-4] + ["--max-new-tokens", "11", "--batch-size", "2"]) == 2
    assert "max_new_tokens" in capsys.readouterr().err


def test_cli_bad_eval_flags_give_one_line(model_dirs, tmp_path, capsys):
    from lrkit.cli import main

    for extra in (["--data-file", "gsm8k"], ["--data-file", "svamp=x.jsonl"]):
        code = main(["eval", "--model", model_dirs[0], "--problems", "gsm8k", "--out", str(tmp_path), *extra])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and "--data-file" in err, err


def test_a_problem_set_of_your_own_needs_a_folder_safe_name(model_dirs, tmp_path):
    with pytest.raises(ValueError, match="names a folder"):
        evaluate_suite(model_dirs, {"my set/1": DATA["gsm8k"]}, tmp_path, progress=False)


def _fake_result(name, right):
    from lrkit.evaluation import EvalResult

    rows = [{"id": str(i), "question": "q", "gold": "1", "output": "", "prediction": "1", "correct": r,
             "n_tokens": 1, "finished": True} for i, r in enumerate(right)]
    return EvalResult(pd.DataFrame(rows), {"model": name})


def test_paper_average_only_with_all_seven_and_math_against_either_math_set():
    from lrkit.data.benchmarks import PAPER_BENCHMARKS

    seven = ["math" if b == "math500" else b for b in PAPER_BENCHMARKS]  # the full MATH test set this time
    results = {"m": {b: _fake_result("m", [True, False]) for b in seven}}
    suite = SuiteResult(results, ["m"], seven, {"config": {}}, paper_model="Qwen2.5-Math-7B")
    paper = suite.paper()
    lightr = paper[paper["row"] == "Qwen2.5-Math-7B + LightR (paper)"].set_index("benchmark")["accuracy"]
    assert lightr["math"] == pytest.approx(0.578) and lightr["average"] == pytest.approx(0.547)
    assert suite.scores().set_index("benchmark").loc["average", "accuracy"] == pytest.approx(0.5)
    assert "MATH-500" not in " ".join(suite.notes())
    fewer = SuiteResult({"m": {b: results["m"][b] for b in seven[:3]}}, ["m"], seven[:3], {"config": {}},
                        paper_model="Qwen2.5-Math-7B")
    assert "average" not in set(fewer.paper()["benchmark"])
