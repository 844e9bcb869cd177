"""The prompts, answer limits, stop tokens and answer rules of an evaluation protocol.

Two protocols, chosen by ``EvalConfig.protocol``:

* ``"paper"``: as the paper's Table 1 was made, with the Qwen2.5-Math evaluation toolkit
  (QwenLM/Qwen2.5-Math ``evaluation/``, prompt type ``qwen25-math-cot``, run by its
  ``sh/eval.sh`` as the authors' evaluation README says): the prompt is the toolkit's
  ChatML text, tokenized as vLLM does (the tokenizer's own BOS added); answers run to
  2,048 new tokens (``math_eval.py``: ``--max_tokens_per_call``); generation stops at
  the tokenizer's and the generation config's EOS and, for a model whose name contains
  "qwen2", also at ``<|im_end|>`` / ``<|endoftext|>`` (ids 151645, 151643); answers are
  read and compared by :mod:`lrkit.evaluation.toolkit`; MMLU-STEM is 5-shot with the
  toolkit's shots (``sh/eval.sh`` passes ``--num_shots 5`` for its multiple-choice sets).
* ``"lrkit"``: lrkit's own stricter rules: the model's chat template, 512 new tokens,
  stop at EOS and the template's end of turn, :func:`lrkit.evaluation.extract_answer` /
  :func:`~lrkit.evaluation.extract_choice` and :func:`~lrkit.evaluation.check_answer`
  (exact fractions, then math-verify), every benchmark zero-shot.

docs/BENCHMARKS.md sets both out per benchmark.
"""
from __future__ import annotations

from typing import Optional

from lrkit.config import ANSWER_LIMITS
from lrkit.data.answers import gold_answer
from lrkit.evaluation import toolkit
from lrkit.evaluation.grade import check_answer
from lrkit.evaluation.parse import extract_answer, extract_choice
from lrkit.models.generation import stop_token_ids
from lrkit.models.prompts import build_prompt_ids

TOOLKIT_DATA = {"math500": "math"}
"""lrkit benchmark -> the toolkit's data name, where they differ (MATH-500 is read as MATH)."""
SHOTS = {"mmlu_stem": 5}
"""Few-shot examples per benchmark under the paper's protocol (``sh/eval.sh``: ``--num_shots 5``
for aqua, sat_math and mmlu_stem; every other benchmark zero-shot)."""
QWEN_STOP_IDS = (151645, 151643)
"""``math_eval.py: main``: ``stop_token_ids=[151645, 151643] if "qwen2" in model_name_or_path.lower()``."""

CHATML = "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n"
"""``utils.py: PROMPT_TEMPLATES["qwen25-math-cot"]``, its system turn taken from the config."""
CHATML_NO_SYSTEM = "<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n"

# examples.py: get_examples()["mmlu_stem"] (from MAmmoTH), as the toolkit sends them: the
# Python source writes "\frac" and "\right" with single backslashes, so the model reads a
# form feed and a carriage return there. Copied as the bytes they are.
MMLU_STEM_SHOTS = (
    ('Simplify and write the result with a rational denominator: $$\\sqrt{\\sqrt[3]{\\sqrt{\x0crac{1}{729}}}}$$\nAnswer Choices: (A) \\frac{3\\sqrt{3}}{3} (B) \\frac{1}{3} (C) \\sqrt{3} (D) \\frac{\\sqrt{3}}{3}',
     'Factoring $729=3^6$ and combining the roots $\\frac{1}{2}\\frac{1}{3}\\frac{1}{2}=\\frac{1}{12}$, we get that $\\sqrt{\\sqrt[3]{\\sqrt{\x0crac{1}{729}}}}=\\left(\x0crac{1}{3^6}\right)^{\x0crac{1}{12}}=\x0crac{1}{3^{\x0crac{1}{2}}}=\x0crac{3}{\\sqrt{3}}$. The answer is (D).'),
    ('In animal cells, which of the following represents the most likely pathway that a secretory protein takes as it is synthesized in a cell?\nAnswer Choices: (A) Plasma membrane–Golgi apparatus–ribosome–secretory vesicle–rough ER (B) Ribosome–Golgi apparatus–rough ER–secretory vesicle–plasma membrane (C) Plasma membrane–Golgi apparatus–ribosome–secretory vesicle–rough ER (D) Ribosome–rough ER–Golgi apparatus–secretory vesicle–plasma membrane',
     'Protein synthesis starts at the ribosome, so we can eliminate (A) and (C). The ribosome is often in the endoplasmic reticulum and moves from there to the Golgi apparatus, where it is modified and packaged into a vesicle. The vesicle then floats to the plasma membrane and is secreted. The answer is (D).'),
    ('A microwave oven is connected to an outlet, 120 V, and draws a current of 2 amps. At what rate is energy being used by the microwave oven?\nAnswer Choices: (A) 10 W (B) 30 W (C) 60 W (D) 240 W',
     'Rate of energy usage is known as power; in an dissipative electrical circuit, power is given by voltage times current. So in our case, the power is 120 V times 2 amps, or 240 W. The answer is (D).'),
    ('Which of the following is considered an acid anhydride?\nAnswer Choices: (A) HCl (B) H2SO3 (C) SO2 (D) Al(NO3)3',
     'An acid anhydride is a compound that is derived by removing water from an acid. The chemical formula for water is H2O, which means that we need to determine which of these options, when combined with H2O, forms an acid. SO2, or Sulfur dioxide, when combined with H2O, makes H2SO4, or sulfuric acid. The answer is (C).'),
    ('What is the output of "abc"[::-1] in Python 3? \nAnswer Choices: (A) Error (B) abc (C) cba (D) c',
     'We know that the slicing operator [::-1] takes all of the elements in the string in reverse order, so we reverse the order of the string "abc", resulting in "cba". The answer is (C).'),
)


def data_name(benchmark: Optional[str], answer_kind: str = "math") -> str:
    """The toolkit's data name for an lrkit benchmark; a problem file is read as GSM8K
    (gold after ``####``), or as MMLU-STEM when its answers are letters."""
    if benchmark:
        return TOOLKIT_DATA.get(benchmark, benchmark)
    return "mmlu_stem" if answer_kind == "choice" else "gsm8k"


def default_answer_limit(protocol: str) -> int:
    return ANSWER_LIMITS[protocol]


def paper_prompt_text(question: str, system_prompt: Optional[str], benchmark: Optional[str] = None) -> str:
    """``utils.py: construct_prompt`` for ``qwen25-math-cot``: the few-shot examples, if the
    benchmark has any, go into the one user turn before the question (the toolkit's
    "hotfix"), each as question + newline + answer, separated by blank lines."""
    shots = MMLU_STEM_SHOTS[:SHOTS.get(benchmark or "", 0)]
    content = "\n\n".join([q + "\n" + a for q, a in shots] + [question]) if shots else question
    template = CHATML if system_prompt else CHATML_NO_SYSTEM
    return template.format(system=system_prompt, input=content).strip(" ")


def prompt_ids(tokenizer, question: str, system_prompt: Optional[str], protocol: str,
               benchmark: Optional[str] = None) -> list:
    """The prompt's token ids under ``protocol``: the toolkit's text tokenized as vLLM
    tokenizes a text prompt (special tokens added: a BOS where the tokenizer adds one),
    or lrkit's prompt (:func:`lrkit.models.prompts.build_prompt_ids`)."""
    if protocol == "lrkit":
        return build_prompt_ids(tokenizer, question, system_prompt)
    ids = tokenizer(paper_prompt_text(question, system_prompt, benchmark), add_special_tokens=True)["input_ids"]
    return list(ids)


def stop_ids(model, tokenizer, protocol: str, model_name: str) -> list:
    """Where generation stops: lrkit's :func:`~lrkit.models.generation.stop_token_ids`
    (EOS and the chat template's end of turn), or vLLM's as the toolkit runs it (the
    tokenizer's EOS, the generation config's EOS ids, and 151645 / 151643 for a model
    whose name or path contains "qwen2")."""
    if protocol == "lrkit":
        return stop_token_ids(model, tokenizer)
    ids: list = []
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for source in (tokenizer.eos_token_id, configured):
        for i in source if isinstance(source, (list, tuple)) else [source]:
            if i is not None and int(i) not in ids:
                ids.append(int(i))
    if "qwen2" in str(model_name).lower():
        rows = _output_rows(model)  # ids past the model's vocabulary can never be generated
        ids += [i for i in QWEN_STOP_IDS if i not in ids and (rows is None or i < rows)]
    if not ids:
        raise ValueError("neither the tokenizer nor the model defines an EOS token; greedy answers would never stop")
    return ids


def _output_rows(model) -> Optional[int]:
    try:
        return int(model.get_output_embeddings().weight.shape[0])
    except (AttributeError, TypeError):
        return None


def score(output: str, problem, protocol: str, benchmark: Optional[str] = None) -> dict:
    """What one decoded output answers and whether it is right, under ``protocol``:
    ``prediction``, ``gold`` (as compared), ``correct`` and ``unparsed`` (lrkit: math-verify
    could not read it or ran out of time; paper: the comparison ran past the toolkit's 3 s)."""
    kind = getattr(problem, "answer_kind", "math")
    if protocol == "lrkit":
        prediction = extract_choice(output) if kind == "choice" else extract_answer(output)
        gold = gold_answer(problem.answer)
        verdict = check_answer(prediction, gold, kind)
        return {"prediction": prediction, "gold": gold, "correct": verdict.correct, "unparsed": verdict.unparsed}
    data = data_name(benchmark, kind)
    gold = toolkit.gold_of(problem.answer, data)
    prediction = toolkit.prediction_of(output, gold, data)
    correct, timed_out = toolkit.grade(prediction, gold) if prediction is not None else (False, False)
    return {"prediction": prediction, "gold": gold, "correct": correct, "unparsed": timed_out}
