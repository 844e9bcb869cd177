"""Write the four notebooks from the cells below (outputs cleared).

    python notebooks/build_notebooks.py

Edit a notebook here, not in the .ipynb, so the four stay consistent: the same
Colab cell, the same parameters, the same set-up.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
REPO = "lrkit/lrkit"

COLAB = '''\
# On Colab only: install lrkit (Colab's torch is kept) and enable ipywidgets.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "lrkit[notebooks] @ git+https://github.com/lrkit/lrkit"], check=True)
    from google.colab import output

    output.enable_custom_widget_manager()'''

PAIR_LINES = '''\
PAIR = "toy"          # the bundled pair (CPU, seconds); "qwen2.5-math-1.5b" = the paper's pair (Colab GPU)
N_PROBLEMS = 48       # train problems the expert samples on (the paper: 1000 GSM8K problems)
BETA = 0.4            # a step is kept when KL(expert || amateur) >= BETA (the paper's 0.4)
ALPHA = 0.2           # plausibility mask: tokens with p_E >= ALPHA * max p_E (the paper's 0.2)'''

TRAIN_LINES = '''\
MAX_STEPS = 30        # LoRA optimizer steps (the paper: 1000)
LEARNING_RATE = None  # None: the pair's default (toy 2e-3; the paper's 5e-5 for Hub pairs)'''

DEVICE_LINES = '''\
DEVICE = "auto"       # "auto": the GPU when there is one (bf16, or fp16 on a T4), else the CPU
SEED = 2026           # seed of the toy problems'''

SETUP = '''\
import lrkit
from lrkit import workshop

setup = workshop.notebook_setup(DEVICE)
w = workshop.Workshop(PAIR, n_problems=N_PROBLEMS, beta=BETA, alpha=ALPHA, seed=SEED,
                      setup=setup{extra})
print("results go to", w.folder)'''


def parameters(*blocks: str):
    cell = new_code_cell("# Parameters: the one cell to change.\n" + "\n".join(blocks))
    cell.metadata["tags"] = ["parameters"]
    return cell


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str):
    return new_code_cell(text.strip("\n"))


def badge(name: str) -> str:
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{REPO}/blob/main/notebooks/{name}.ipynb)")


# --------------------------------------------------------------------------- 01

NB01 = [
    md(f"""
# 1. Sampling: where does the expert's reasoning differ from the amateur's?

{badge("01_sampling")}

LightReasoner ([paper](https://arxiv.org/abs/2510.07962)) lets a weak **amateur** model show a strong
**expert** where the expert's reasoning is distinctive. This notebook runs the first stage, *sampling*:

1. the expert answers each problem greedily (a *rollout*, at most 128 new tokens);
2. both models read the same token ids, prompt + rollout, in one forward pass each, which gives
   every step's next-token distributions $\\pi_E(\\cdot\\mid s_t)$ and $\\pi_A(\\cdot\\mid s_t)$;
3. each step is scored by $\\mathrm{{KL}}(\\pi_E \\,\\|\\, \\pi_A)$; steps with KL $\\ge \\beta$ are kept;
4. each kept step becomes a *record*: a soft label
   $v_C = \\mathrm{{softmax}}(\\log \\pi_E - \\log \\pi_A)$ over the tokens the expert finds plausible
   ($\\pi_E(a) \\ge \\alpha \\max \\pi_E$).

The bundled `toy` pair (two small models trained from scratch on arithmetic word problems) runs on
any CPU in seconds. Set `PAIR = "qwen2.5-math-1.5b"` for the paper's Qwen2.5-Math-1.5B expert and
Qwen2.5-0.5B amateur on GSM8K (a Colab GPU).

The notebooks hand their results to each other through one folder (`runs/notebooks/` in your clone,
or `$LRKIT_RUN_DIR`): notebook 2 reads the steps sampled here.
"""),
    code(COLAB),
    parameters(PAIR_LINES, DEVICE_LINES),
    md("""
## Set-up

`notebook_setup` picks the device and the dtype: bf16 on a GPU that has it, fp16 on other GPUs
(a Colab T4), fp32 on the CPU.
"""),
    code(SETUP.format(extra="")),
    md("""
## The pair and the problems

`load_pair` loads both models and checks that they share one tokenizer: every id must map to the
same string, or the two distributions could not be compared token for token.
"""),
    code('''
pair = lrkit.load_pair(PAIR, device=setup.device, dtype=setup.dtype)
for role, model in (("expert", pair.expert), ("amateur", pair.amateur)):
    print(f"{role:8} {sum(p.numel() for p in model.parameters()) / 1e6:8.2f}M parameters")
print("shared vocabulary:", pair.vocab_size, "tokens")

problems = workshop.problems(PAIR, N_PROBLEMS, "train", seed=SEED)
print(len(problems), "problems; the first one:\\n")
print(problems[0]["question"])
'''),
    md("""
## Sample

`lrkit.sample` writes the rollouts, every step's statistics and the kept records as it goes. It
is resumable: run the cell again (or after an interruption) and it continues where it stopped, or
returns at once when the folder already holds the finished run.
"""),
    code('''
config = w.sample_config      # the paper's SampleConfig at BETA and ALPHA
print(config)
run = lrkit.sample(pair, None, problems, w.sampling_dir(), config)
print(run.out_dir)
'''),
    md("""
`run.summary` holds the statistics the paper reports for its preliminary analysis (notebook 2
looks at them closely).
"""),
    code('''
import pandas as pd

pd.Series(run.summary).to_frame("value")
'''),
    md("""
## The rollouts

One line per problem: the expert's greedy answer, and whether its final answer is right.
"""),
    code('''
from lrkit.problems import gsm8k_gold

rollouts = run.rollouts()
rollouts["output"] = [pair.tokenizer.decode(ids, skip_special_tokens=True) for ids in rollouts["token_ids"]]
rollouts["prediction"] = rollouts["output"].map(lrkit.extract_answer)
rollouts["gold"] = rollouts["answer"].map(gsm8k_gold)      # the text after ####
rollouts["correct"] = [lrkit.answers_match(p, g) for p, g in zip(rollouts["prediction"], rollouts["gold"])]
print(f"the expert's rollouts are right on {rollouts['correct'].mean():.0%} of these problems")
print(rollouts["output"][0])
rollouts[["prompt_id", "question", "gold", "prediction", "correct", "finished"]].head()
'''),
    md("""
## Every step's statistics

`run.steps()` has one row per generated token: the token, the KL between the two models, both
entropies, both top-1 tokens, both models' top-k, the mask size and whether the step was kept.
"""),
    code('''
steps = run.steps()
print(len(steps), "steps,", int(steps["kept"].sum()), "kept at beta =", BETA)
steps[["prompt_id", "step", "token", "kl", "expert_entropy", "amateur_entropy",
       "expert_top1", "amateur_top1", "mask_size", "kept"]].head(12)
'''),
    md("""
The token view colours each token of a rollout by its KL; kept steps are underlined. Hover over a
token for both models' top-5 and, for kept steps, the soft label.
"""),
    code('''
first = steps["prompt_id"].iloc[0]
lrkit.token_view(steps, first, beta=BETA, alpha=ALPHA, title=f"rollout {first}")
'''),
    code('''
from lrkit.viz import kl_along_rollout

kl_along_rollout(steps, first, beta=BETA)
'''),
    md("""
## The records

One JSON line per kept step, in the authors' format (`prompt_id, step, prefix, tokens, token_ids,
weights, kl_divergence`) plus lrkit's fields (the exact token ids, entropies, log-probs ...).
Notebook 3 trains on them.
"""),
    code('''
records = run.records()
record = max(records, key=lambda r: (len(r["token_ids"]) > 1, r["kl_divergence"]))
print(f"{len(records)} records; the largest-KL one with several plausible tokens (step {record['step']}):")
print(repr(record["prefix"][-120:]))
workshop.record_table(record)
'''),
    md("""
## Run it again

Run the sampling cell a second time: on the finished folder `lrkit.sample` returns at once with
the same files. This is how the later notebooks find these results, and how each of them also
runs on its own (it samples first when this folder does not exist yet).
"""),
    md("""
Next: [2. Critical moments](02_critical_moments.ipynb), the paper's analysis of these steps and an
explorer to choose beta and alpha.
"""),
]

# --------------------------------------------------------------------------- 02

NB02 = [
    md(f"""
# 2. Critical moments: the paper's preliminary analysis

{badge("02_critical_moments")}

Most tokens of a reasoning trace are easy: both models agree and the KL between their next-token
distributions is near zero. LightReasoner trains only on the few steps where they diverge. The
paper checks this on Qwen2.5-Math-1.5B against Qwen2.5-0.5B (100 problems, 128 tokens):

* 59% of steps have KL < 0.1, about 20% have KL >= 0.4;
* the mean KL is 1.99 where the two top-1 tokens differ and 0.166 where they agree;
* 10% of top-1 agreements still have KL > 0.4: agreeing on the top token is not agreeing on the
  distribution.

This notebook recomputes those statistics on the steps sampled in notebook 1 (or samples them
now when notebook 1 has not run), then shows where they are in single rollouts, and ends with an
explorer to see how beta and alpha change what is kept. No model runs after the sampling.
"""),
    code(COLAB),
    parameters(PAIR_LINES, DEVICE_LINES),
    code(SETUP.format(extra="") + '''

run = w.sampled()      # notebook 1's run, or sampled now
steps = run.steps()
print(len(steps), "steps of", steps["prompt_id"].nunique(), "rollouts")'''),
    md("""
## 1. How KL is distributed

The paper's Figure 2: the share of steps per KL bin. The inset zooms on the tail beyond beta, the
steps that become records.
"""),
    code('''
from lrkit.viz import (entropy_scatter, kept_share_by_beta, kl_along_rollout, kl_by_agreement,
                       kl_histogram, step_distributions)

kl_histogram(steps, beta=BETA)
'''),
    md("""
## 2. The share of steps above each threshold, and the paper's numbers
"""),
    code('''
workshop.kl_thresholds(steps).style.format({"share": "{:.1%}"}).format_index("{:g}")
'''),
    code('''
workshop.preliminary_table(steps, beta=BETA).style.format("{:.3f}", na_rep="")
'''),
    md("""
## 3. Agreeing and disagreeing top-1 tokens

When the two models' most likely tokens differ, the distributions differ a lot; when they agree
the KL is usually small, but not always.
"""),
    code('''
kl_by_agreement(steps, beta=BETA)
'''),
    md("""
## 4. A confident expert and an uncertain amateur

Steps where the expert is sure (low entropy) and the amateur is not are where the expert knows
something the amateur does not. Each point is a step, coloured by KL.
"""),
    code('''
entropy_scatter(steps)
'''),
    code('''
CONFIDENT = 0.5   # nats: below this entropy a model counts as confident
workshop.entropy_quadrants(steps, CONFIDENT).style.format(
    {"share of steps": "{:.1%}", "mean KL": "{:.3f}", "share kept": "{:.1%}", "share of all kept steps": "{:.1%}"})
'''),
    code('''
workshop.confident_expert_steps(steps, CONFIDENT, n=10)
'''),
    md("""
## 5. How beta sets the number of records

Each kept step is one record and one supervised (tuned) token; the curve shows how many remain as
beta grows.
"""),
    code('''
kept_share_by_beta(steps, beta=BETA)
'''),
    md("""
## 6. Critical moments in one rollout

The rollout with the highest KL peak: KL along the rollout (the paper's Figure 3), then its token
view (hover a token for both models' top-5 and the soft label), then the distributions at its kept
step with the most plausible tokens.
"""),
    code('''
peak = workshop.peak_problems(steps, 1)[0]
kl_along_rollout(steps, peak, beta=BETA)
'''),
    code('''
lrkit.token_view(steps, peak, beta=BETA, alpha=ALPHA, title=f"rollout {peak}")
'''),
    code('''
one = steps[steps["prompt_id"] == peak]
kept = one[one["kept"]] if one["kept"].any() else one
row = kept.sort_values(["mask_size", "kl"]).iloc[-1]   # the kept step with the most plausible tokens
step_distributions(row, alpha=ALPHA)
'''),
    md("""
## 7. The explorer

Choose a problem, move beta and alpha, pick a step: the explorer shows the kept steps of the
rollout, how many records (tuned tokens) the whole set would give, and the chosen step's
distributions and soft label. Everything is recomputed from the stored statistics, so the
sliders answer at once.
"""),
    code('''
explorer = lrkit.Explorer(steps, beta=BETA, alpha=ALPHA, prompt_id=peak)
explorer
'''),
    md("""
Next: [3. Fine-tuning](03_finetuning.ipynb) trains the expert on the records kept at `BETA`.
"""),
]

# --------------------------------------------------------------------------- 03

NB03 = [
    md(f"""
# 3. Fine-tuning: the expert learns from the contrast

{badge("03_finetuning")}

Each record of notebook 1 supervises one position: the input is the prompt plus the rollout's first
`step` tokens, the target is the soft label $v_C$ at the last of them. The loss is
$\\mathrm{{KL}}(v_C \\,\\|\\, \\pi_E)$ at that position only (the same gradient as the
$v_C$-weighted cross-entropy; lrkit logs the KL, which is 0 when the expert matches $v_C$).

Training is LoRA on the expert as in the paper: rank 8, alpha 16, dropout 0.05 on `q_proj` and
`v_proj`, AdamW with linear decay. The paper runs 1000 steps at learning rate 5e-5 on
Qwen2.5-Math-1.5B; the toy models are tiny and take a few dozen steps at 2e-3. At the end the
adapter is merged into the expert, which gives a plain model folder for notebook 4.
"""),
    code(COLAB),
    parameters(PAIR_LINES, TRAIN_LINES, DEVICE_LINES),
    code(SETUP.format(extra=", max_steps=MAX_STEPS, learning_rate=LEARNING_RATE") + '''

run = w.sampled()      # notebook 1's run, or sampled now
records = lrkit.read_records(run.records_path)
print(len(records), "records from", len({r["prompt_id"] for r in records}), "problems")'''),
    md("""
## The soft labels

What selecting at `BETA` gives, and one record: the expert's and the amateur's probabilities over
the plausible tokens, and $v_C$, which moves weight towards the tokens the expert prefers *more
than the amateur does*.
"""),
    code('''
from lrkit.selection import selection_summary

summary = selection_summary(run.steps(), BETA, alpha=ALPHA)
{k: round(v, 3) if isinstance(v, float) else v for k, v in summary.items()}
'''),
    code('''
from lrkit.viz import loss_curve, step_distributions

record = max(records, key=lambda r: (len(r["token_ids"]) > 1, r["kl_divergence"]))  # several tokens
print(f"problem {record['prompt_id']}, step {record['step']}, KL {record['kl_divergence']:.2f}")
print("prefix:", repr(record["prefix"][-100:]))
workshop.record_table(record)
'''),
    code('''
steps = run.steps()
row = steps[(steps["prompt_id"] == record["prompt_id"]) & (steps["step"] == record["step"])].iloc[0]
step_distributions(row, alpha=ALPHA)
'''),
    md("""
## Train

`lrkit.train` runs the HF Trainer with the soft-label loss. `w.trained()` calls it with the
settings below, or reads the finished run when this cell ran before (a partial run resumes from
its last checkpoint).
"""),
    code('''
print(w.train_config)
trained = w.trained(records)
trained.summary()
'''),
    code('''
loss_curve(trained.loss_history, y="kl", title="KL(v_C || pi_E) at the supervised positions")
'''),
    md("""
## Merge

`lrkit.merge` folds the LoRA weights into the expert (PeftModel -> merge_and_unload) and saves a
model folder that loads with plain `AutoModelForCausalLM.from_pretrained`.
"""),
    code('''
merged = w.merged()
print(merged)
sorted(p.name for p in merged.iterdir())
'''),
    md("""
## Did the expert move towards the soft labels?

The training loss on the records, measured without any update, for the expert before and after:
"""),
    code('''
subset = records[:256]
before = workshop.soft_label_fit(w.expert_path, subset, setup)
after = workshop.soft_label_fit(str(merged), subset, setup)
print(f"mean KL(v_C || pi_E) on {len(subset)} records: base expert {before:.3f} -> tuned {after:.3f}")
'''),
    md("""
Only the kept steps were trained on: `trained.tuned_tokens` supervised positions out of all the
rollout tokens sampled.
"""),
    code('''
print(f"{trained.tuned_tokens} supervised positions ({trained.steps} steps of one batch each, drawn from "
      f"{trained.examples} records) out of {len(steps)} rollout tokens; {trained.seconds:.0f} s of training")
'''),
    md("""
Next: [4. Evaluation](04_evaluation.ipynb) compares the tuned expert with the base one.
"""),
]

# --------------------------------------------------------------------------- 04

NB04 = [
    md(f"""
# 4. Evaluation: base against tuned, ablations and efficiency

{badge("04_evaluation")}

Zero-shot greedy pass@1 on held-out problems, with the paper's cue ("put your final answer within
`\\boxed{{}}`"): the answer is the last `\\boxed{{...}}`, else a `#### N` line or "the answer is N",
else the last number, compared by value. The notebook then

* compares the base and the tuned expert with 95% intervals and an exact McNemar test,
* shows the problems tuning fixed and broke, with both rollouts' token views side by side,
* runs the paper's ablations (Table 6) with the same small budget,
* compares the cost with the paper's SFT baseline,

each beside the paper's numbers (Qwen2.5-Math-1.5B). The toy numbers are a miniature: few
problems, wide intervals; what carries over is the method, not the size of the gain.

It reads notebook 3's tuned expert, or trains it now when notebook 3 has not run.
"""),
    code(COLAB),
    parameters(PAIR_LINES, TRAIN_LINES, '''\
N_EVAL = 150          # held-out test problems (the paper: all 1319 of GSM8K test)
ABLATIONS = True      # train and evaluate the paper's three ablation variants
SFT_BASELINE = True   # train and evaluate the SFT baseline''', DEVICE_LINES),
    code(SETUP.format(extra=", max_steps=MAX_STEPS, learning_rate=LEARNING_RATE, n_eval=N_EVAL") + '''

run = w.sampled()         # notebook 1
trained = w.trained()     # notebook 3
merged = w.merged()'''),
    md("""
## Base against tuned
"""),
    code('''
base = w.evaluated("base", name="base expert")
tuned = w.evaluated("lightreasoner", name="LightReasoner")
comparison = lrkit.compare(base, tuned)
comparison.show()
'''),
    code('''
from lrkit.demo import PAPER_ABLATION, PAPER_GSM8K

workshop.beside_paper(
    [workshop.accuracy_row("base expert", base), workshop.accuracy_row("LightReasoner", tuned)],
    {"base expert": PAPER_GSM8K["base expert"], "LightReasoner": PAPER_GSM8K["LightReasoner"]},
    "Accuracy, base vs tuned expert", ours_title=f"this run ({PAIR}, {base.n} problems, 95% CI)",
    paper_title="paper (Qwen2.5-Math-1.5B, GSM8K)")
'''),
    md("""
## Problems fixed and broken

Fixed: wrong before tuning, right after; broken: the reverse. For a few of each, both experts'
rollouts are scored against the same amateur (sampling with the tuned expert in place of the
base one) and shown side by side, coloured by KL on one scale.
"""),
    code('''
columns = {"id": "id", "question": "question", "gold": "gold", "prediction_a": "base", "prediction_b": "tuned"}
print(f"{len(comparison.fixed)} fixed, {len(comparison.broken)} broken")
comparison.fixed[list(columns)].rename(columns=columns).head(5)
'''),
    code('''
comparison.broken[list(columns)].rename(columns=columns).head(5)
'''),
    code('''
from IPython.display import display
from lrkit.viz import side_by_side

shown = list(comparison.fixed["id"][:2]) + list(comparison.broken["id"][:2])
chosen = [p for p in w.test_problems() if p["id"] in shown]
views = {"base expert": w.rollout_steps("base", chosen),
         "tuned expert": w.rollout_steps("lightreasoner", chosen)}
for pid in shown:
    kind = "fixed" if pid in set(comparison.fixed["id"]) else "broken"
    display(side_by_side(views, pid, beta=BETA, alpha=ALPHA, title=f"{kind}: {pid}"))
if not shown:
    print("tuning changed no answer on these problems")
'''),
    md("""
## Ablations (the paper's Table 6 in miniature)

Every variant gets the same training budget as the full method:

* **no selection**: every step is a record (beta = 0);
* **no contrast**: the target is the expert's own distribution over the mask, not $v_C$;
* **neither**: both.

The paper (average of six benchmarks) finds that the contrast matters most: without it the gain
almost vanishes, while dropping the selection costs little accuracy but many more tuned tokens.
"""),
    code('''
if ABLATIONS:
    with workshop.quiet():   # three more models to train, merge and evaluate: no progress bars
        rows = workshop.run_ablations(w, base, tuned, trained)
    ablations = workshop.ablation_table(rows)
    display(ablations.style.format({"accuracy": "{:.1%}", "low": "{:.1%}", "high": "{:.1%}",
                                    "change vs base": "{:+.1%}", "paper (avg of 6 benchmarks)": "{:.1f}"}))
    display(workshop.beside_paper(
        [workshop.accuracy_row(r["variant"], r["result"]) for r in rows], PAPER_ABLATION,
        "Ablations", ours_title=f"this run ({PAIR}, 95% CI)",
        paper_title="paper (Qwen2.5-Math-1.5B, avg of 6 benchmarks)"))
'''),
    md("""
Read the intervals before a ranking: on the toy pair the variants differ by a few problems out of
`N_EVAL`. The miniature shows how each variant is built and what it costs in tuned tokens; the
paper's effect sizes need its models and benchmarks.
"""),
    md("""
## Does the contrast point towards better answers?

Tuning moves the expert towards the soft labels $v_C$. Decoding by their argmax directly
(log pi_E - log pi_A inside the alpha mask, both models reading the same prefix, no training)
shows where that road leads. If this scores below the base expert, the pair's contrast points away
from better answers and no amount of tuning towards it can help. On the bundled toy pair it did in
our runs (the README gives the figures): its two models learned from the same data, and we think
the amateur is most sure exactly where the answer is easy, so the contrast pushes away from it.
"""),
    code('''
contrastive = lrkit.evaluate_contrastive(w.load_pair(), w.test_problems(), w.eval_config, alpha=ALPHA,
                                         progress=False)
print(f"greedy expert {base.accuracy:.1%} {tuple(round(x, 3) for x in base.interval)}; "
      f"decoding by v_C's argmax (alpha {ALPHA}) {contrastive.accuracy:.1%} "
      f"{tuple(round(x, 3) for x in contrastive.interval)} on {contrastive.n} problems")
lrkit.compare(base, contrastive).show()
'''),
    md("""
## Efficiency: LightReasoner against SFT

The paper's SFT baseline samples one rollout per problem, keeps the right ones and trains on all
their tokens. LightReasoner trains on the kept steps only. The paper (one H200): SFT 4.0 h on 3952
problems and 1.77M tuned tokens for 69.2% on GSM8K; LightReasoner 0.5 h on 1000 problems and
0.02M tuned tokens for 70.6%. On the toy pair every stage takes seconds, so the times mostly
measure fixed costs (loading models, starting the Trainer); the tuned tokens are the count that
carries over.
"""),
    code('''
sft = sft_result = None
if SFT_BASELINE:
    with workshop.quiet():
        sft = w.sft()
        sft_result = w.evaluated("sft", name="SFT")
    print(f"SFT: {sft['problems']} of {sft['problems_rolled_out']} rollouts right, "
          f"{sft['tuned_tokens']} tuned tokens; {sft_result}")
efficiency = workshop.efficiency_table(run, trained, sft)
efficiency
'''),
    code('''
if sft_result is not None:
    display(workshop.beside_paper(
        [workshop.accuracy_row("base expert", base), workshop.accuracy_row("SFT", sft_result),
         workshop.accuracy_row("LightReasoner", tuned)], PAPER_GSM8K, "SFT against LightReasoner",
        ours_title=f"this run ({PAIR}, 95% CI)", paper_title="paper (Qwen2.5-Math-1.5B, GSM8K)"))
'''),
    md("""
That is the whole method: sample (1), select (2), train (3), evaluate (4). `lrkit demo --ablations`
runs the same pipeline with larger budgets and writes it all to one HTML report.
"""),
]

NOTEBOOKS = {"01_sampling": NB01, "02_critical_moments": NB02, "03_finetuning": NB03, "04_evaluation": NB04}


def build(out_dir: Path = HERE) -> list[Path]:
    written = []
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook(cells=cells, metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
            "colab": {"provenance": []},
        })
        for i, cell in enumerate(nb.cells):  # stable ids: a rebuild changes only what was edited
            cell.id = f"{name[:2]}-{i:02d}"
        nbformat.validate(nb)
        path = out_dir / f"{name}.ipynb"
        nbformat.write(nb, path)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in build():
        print(path)
