"""The evaluation protocols (lrkit/evaluation/protocol.py, lrkit/evaluation/toolkit.py).

The parity corpus, tests/fixtures/protocol_parity.jsonl, holds (output, gold) cases that
cover every rule of the Qwen2.5-Math toolkit's extraction and grading; each line names the
rule, cites the toolkit's file and function, and gives the gold as the toolkit compares it,
its prediction and its verdict. Those three were computed by running the toolkit's own
code (QwenLM/Qwen2.5-Math evaluation/, commit a45202b: parser.parse_ground_truth twice as
evaluate.py does, math_eval.main's stop-word cut and multiple-choice repair,
parser.run_execute, grader.math_equal under a 3 s alarm) with its pinned sympy 1.12,
antlr4 4.11 and word2number 1.1, outside lrkit. Under the paper's protocol lrkit must
agree on every line.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lrkit.config import PAPER_EVAL_SYSTEM_PROMPT, EvalConfig
from lrkit.evaluation import protocol, toolkit
from markers import needs_toy

CORPUS = [json.loads(line) for line in
          (Path(__file__).parent / "fixtures" / "protocol_parity.jsonl").read_text(encoding="utf-8").splitlines()]


def test_the_corpus_covers_every_rule_with_enough_cases():
    assert len(CORPUS) >= 200
    rules = {row["rule"] for row in CORPUS}
    assert len(rules) >= 10
    outputs = [row["output"] for row in CORPUS]
    # the rules the issue names, each present
    assert any(o.endswith("\\boxed{}") for o in outputs)                      # empty box
    assert any("\\boxed{72" in o and not o.rstrip().endswith("}") for o in outputs)  # unclosed box
    assert any("The answer is" in o and "boxed" not in o for o in outputs)      # "he answer is"
    assert any("final answer is" in o for o in outputs)
    assert any("%" in o for o in outputs)                                       # percentages
    assert any(row["benchmark"] == "mmlu_stem" for row in CORPUS)               # multiple choice
    assert any("\\frac" in o for o in outputs) and any("pmatrix" in o for o in outputs)
    assert {row["benchmark"] for row in CORPUS} >= {"gsm8k", "math500", "math", "minerva_math", "svamp", "asdiv",
                                                   "olympiadbench", "mmlu_stem"}
    assert 0 < sum(row["correct"] for row in CORPUS) < len(CORPUS)
    for row in CORPUS:
        assert row["cite"].split(":")[0].endswith(".py"), row  # each cites the toolkit's file and function


@pytest.mark.parametrize("row", CORPUS, ids=[f"{i}-{row['benchmark']}" for i, row in enumerate(CORPUS)])
def test_paper_protocol_agrees_with_the_toolkit(row):
    data = protocol.data_name(row["benchmark"], "choice" if row["benchmark"] == "mmlu_stem" else "math")
    gold = toolkit.gold_of(row["gold"], data)
    assert gold == row["toolkit_gold"]
    prediction = toolkit.prediction_of(row["output"], gold, data)
    assert prediction == row["prediction"]
    correct = toolkit.grade(prediction, gold)[0] if prediction is not None else False
    assert correct == row["correct"], f"{row['rule']} ({row['cite']})"


def test_score_under_the_paper_protocol_is_the_corpus_verdict():
    from lrkit.data.answers import Problem

    for row in CORPUS[:40] + [r for r in CORPUS if r["benchmark"] == "mmlu_stem"]:
        kind = "choice" if row["benchmark"] == "mmlu_stem" else "math"
        scored = protocol.score(row["output"], Problem("p", "q", row["gold"], kind), "paper", row["benchmark"])
        assert (scored["gold"], scored["prediction"], scored["correct"]) == (
            row["toolkit_gold"], row["prediction"], row["correct"])


# Where lrkit's own rules give another verdict, and why (docs/BENCHMARKS.md lists them all).
LRKIT_DIFFERS = [
    # the toolkit reads the last "boxed" even when it is empty (an echoed instruction); lrkit skips it
    ("We get \\boxed{72}. Please put your final answer within \\boxed{}.", "#### 72", False, True),
    # the toolkit reads an unclosed box to the end; lrkit takes the last closed one
    ("\\boxed{72}\n\nThus \\boxed{73", "#### 72", False, True),
    # math_equal accepts gold / 100 and gold x 100 (percentages) and a relative 1e-4; lrkit is exact
    ("\\boxed{0.72}", "#### 72", True, False),
    ("\\boxed{7200}", "#### 72", True, False),
    ("\\boxed{72.005}", "#### 72", True, False),
    # strip_string turns number words into digits; lrkit does not read words
    ("\\boxed{seventy-two}", "#### 72", True, False),
    # the toolkit cuts the output at <|im_end|> written as text; lrkit reads the whole output
    ("The answer is 72<|im_end|>The answer is 5", "#### 72", True, False),
    # the toolkit keeps "dollars" (not in its unit list); lrkit reads words around a number as units
    ("\\boxed{72 dollars}", "#### 72", False, True),
]


@pytest.mark.parametrize("output,gold,paper,lrkit", LRKIT_DIFFERS)
def test_where_lrkit_grades_otherwise(output, gold, paper, lrkit):
    from lrkit.data.answers import Problem

    problem = Problem("p", "q", gold)
    assert protocol.score(output, problem, "paper", "gsm8k")["correct"] is paper
    assert protocol.score(output, problem, "lrkit", "gsm8k")["correct"] is lrkit


# word2number 1.1 (which strip_string calls) on these inputs, run outside lrkit; None: it raises.
WORD2NUMBER = {
    "five": "5", "twenty one": "21", "two million three thousand": "2004003",  # (sic: its bug)
    "two million three thousand four": "2003004", "point five": "0.5", "point": "0",
    "one two three four five": "1", "hundred": "100", "thousand": "1000", "ten apples": "10", "007": "7",
    "seventy-two": "72", "million million": None, "blah": None, "three hundred and forty two": "342",
    "one point two five": "1.25", "one point x": "1", "thousand million": None,
    "nine hundred ninety nine thousand nine hundred ninety nine": "999999",
}


@pytest.mark.parametrize("text,expected", WORD2NUMBER.items())
def test_number_words_as_word2number_reads_them(text, expected):
    assert toolkit.word_to_number(text) == expected


# utils.py: construct_prompt(example, data_name, args) for prompt_type qwen25-math-cot, run
# outside lrkit: zero-shot GSM8K, and MMLU-STEM with --num_shots 5 (its shots, then the question).
TOOLKIT_GSM8K_PROMPT = ("<|im_start|>system\nPlease reason step by step, and put your final answer within "
                        "\\boxed{}.<|im_end|>\n<|im_start|>user\n Natalia sold 48 clips. <|im_end|>\n"
                        "<|im_start|>assistant\n")
MMLU_QUESTION = "What is 2+2?\nAnswer Choices: (A) 1 (B) 2 (C) 3 (D) 4"


def test_the_paper_prompt_is_the_toolkits():
    assert protocol.paper_prompt_text(" Natalia sold 48 clips. ", PAPER_EVAL_SYSTEM_PROMPT, "gsm8k") == \
        TOOLKIT_GSM8K_PROMPT
    mmlu = protocol.paper_prompt_text(MMLU_QUESTION, PAPER_EVAL_SYSTEM_PROMPT, "mmlu_stem")
    assert mmlu.count("The answer is (") == 5 and mmlu.count("\nAnswer Choices:") == 6
    assert mmlu.startswith("<|im_start|>system\nPlease reason step by step")
    assert mmlu.index("Simplify and write the result") < mmlu.index("acid anhydride") < mmlu.index(MMLU_QUESTION)
    assert mmlu.endswith(MMLU_QUESTION + "<|im_end|>\n<|im_start|>assistant\n")
    assert "\x0crac{1}{729}" in mmlu  # the toolkit's source writes "\frac" with one backslash: a form feed
    # every other benchmark is zero-shot, also MMLU-STEM under lrkit's protocol
    assert "The answer is" not in protocol.paper_prompt_text("Q?", PAPER_EVAL_SYSTEM_PROMPT, "math500")


class _Tokenizer:
    eos_token_id = 7


class _Model:
    class generation_config:
        eos_token_id = [7, 9]

    class _Head:
        class weight:
            shape = (151936, 8)

    def get_output_embeddings(self):
        return self._Head


@pytest.mark.parametrize("name,expected", [
    ("Qwen/Qwen2.5-Math-1.5B", [7, 9, 151645, 151643]),
    ("/runs/qwen2.5-math-1.5b/merged", [7, 9, 151645, 151643]),
    ("runs/merged", [7, 9]),  # a merged model's path without "qwen2": only its EOS ids stop it
    ("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", [7, 9]),
])
def test_paper_stop_ids_follow_the_model_name(name, expected):
    assert protocol.stop_ids(_Model(), _Tokenizer(), "paper", name) == expected


def test_protocol_is_a_validated_config_field():
    assert EvalConfig().protocol == "paper" and EvalConfig().max_new_tokens is None
    with pytest.raises(ValueError, match="protocol must be one of paper, lrkit"):
        EvalConfig(protocol="toolkit").validate()
    assert protocol.default_answer_limit("paper") == 2048 and protocol.default_answer_limit("lrkit") == 512


@needs_toy
def test_paper_protocol_end_to_end_on_the_toy_expert(tmp_path, capsys):
    """The toy's context is 512 positions: the paper's 2,048 are capped to what is left
    after the longest prompt, with a note; the prompt is the toolkit's text; the rows are
    graded by the toolkit's rules; the protocol is part of the folder's identity."""
    from lrkit.evaluation import evaluate
    from lrkit.models.loading import load_tokenizer, resolve_member
    from lrkit.runs import FolderError
    from lrkit.toy import toy_problems

    problems = toy_problems("toy", 6, "validation", seed=3)
    tokenizer = load_tokenizer(resolve_member("toy:expert"))
    longest = max(len(tokenizer(protocol.paper_prompt_text(p["question"], PAPER_EVAL_SYSTEM_PROMPT))["input_ids"])
                  for p in problems)
    result = evaluate("toy:expert", problems, EvalConfig(batch_size=6), out_dir=tmp_path / "paper", progress=False)
    assert result.info["answer_limit"] == 512 - longest
    assert "answers capped at" in capsys.readouterr().err
    assert result.info["config"]["protocol"] == "paper" and result.info["benchmark"] is None
    for row in result.df.itertuples():
        numbers = [n for n in __import__("re").findall(r"-?\d*\.?\d+", row.output.replace(",", ""))]
        assert row.prediction == (numbers[-1] if numbers else "")  # the toy writes "#### N": the last number
        assert row.correct == (row.prediction == str(int(row.gold)))
    with pytest.raises(FolderError, match="config.protocol"):
        evaluate("toy:expert", problems, EvalConfig(batch_size=6, protocol="lrkit"), out_dir=tmp_path / "paper",
                 progress=False)
    # a number asked for is taken as given: one that does not fit is refused, not capped
    from lrkit.models.loading import PromptTooLongError

    with pytest.raises(PromptTooLongError, match="--max-new-tokens 600"):
        evaluate("toy:expert", problems, EvalConfig(batch_size=6, max_new_tokens=600), progress=False)


@needs_toy
def test_a_folder_from_before_protocols_reads_as_lrkit(tmp_path):
    from lrkit.evaluation import evaluate
    from lrkit.runs import FolderError
    from lrkit.toy import toy_problems

    problems = toy_problems("toy", 3, "validation", seed=5)
    config = EvalConfig(max_new_tokens=40, batch_size=3, protocol="lrkit")
    first = evaluate("toy:expert", problems, config, out_dir=tmp_path, progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    del summary["config"]["protocol"], summary["benchmark"]  # as written before this version
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    again = evaluate("toy:expert", problems, config, out_dir=tmp_path, progress=False)
    assert again.df["output"].tolist() == first.df["output"].tolist()
    assert "protocol" not in json.loads((tmp_path / "summary.json").read_text())["config"]  # returned, not rewritten
    with pytest.raises(FolderError, match="config.protocol"):
        evaluate("toy:expert", problems, EvalConfig(max_new_tokens=40, batch_size=3), out_dir=tmp_path,
                 progress=False)
