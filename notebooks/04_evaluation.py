# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. Evaluation: base against tuned, ablations and efficiency
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/lrkit/lrkit/blob/main/notebooks/04_evaluation.ipynb)
#
# Zero-shot greedy pass@1 on held-out problems, with the paper's cue ("put your final answer within
# `\boxed{}`"): the answer is the last `\boxed{...}`, else a `#### N` line or "the answer is N",
# else the last number, compared by value. The notebook then
#
# * compares the base and the tuned expert with 95% intervals and an exact McNemar test,
# * shows the problems tuning fixed and broke, with both rollouts' token views side by side,
# * runs the paper's ablations (Table 6) with the same small budget,
# * compares the cost with the paper's SFT baseline,
#
# each beside the paper's numbers (Qwen2.5-Math-1.5B). The toy numbers are a miniature: few
# problems, wide intervals; what carries over is the method, not the size of the gain.
#
# It reads notebook 3's tuned expert, or trains it now when notebook 3 has not run.

# %%
# On Colab only: install lrkit, keeping Colab's own torch, ipywidgets and plotly (pip adds what lrkit
# lacks and upgrades none of the three). Each Colab notebook is a runtime of its own; set here if needed:
#   LRKIT_SOURCE  where lrkit comes from: a git URL (the default below), a folder, or a .zip you uploaded
#   LRKIT_HOME    the folder of every run; on Drive (uncomment its line below) runs survive a disconnect
#   HF_HOME       the cache of downloaded models; on Drive (its line below) they are downloaded once
#   LRKIT_PAIR, LRKIT_DTYPE, ...  any parameter of the next cell, as LRKIT_<NAME>
import os
import sys

if "google.colab" in sys.modules:
    import subprocess
    from importlib.metadata import version

    # os.environ["LRKIT_HOME"] = "/content/drive/MyDrive/lrkit"
    # os.environ["HF_HOME"] = "/content/drive/MyDrive/lrkit/huggingface"
    if any(os.environ.get(name, "").startswith("/content/drive")
           for name in ("LRKIT_HOME", "LRKIT_RUN_DIR", "HF_HOME", "LRKIT_SOURCE")):
        from google.colab import drive

        drive.mount("/content/drive")
    with open("/tmp/lrkit-keeps.txt", "w") as keeps:  # pip constraints: Colab's versions of these stay
        keeps.writelines(f"{name}=={version(name)}\n" for name in ("torch", "ipywidgets", "plotly"))
    source = os.environ.get("LRKIT_SOURCE", "git+https://github.com/lrkit/lrkit")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-c", "/tmp/lrkit-keeps.txt", source],
                   check=True)
    from google.colab import output

    output.enable_custom_widget_manager()

# %% tags=["parameters"]
# Parameters: the same cell in all five notebooks (papermill injects values after it). Each one can also
# come from the environment as LRKIT_<NAME>, which wins over the default written here: LRKIT_PAIR=
# qwen2.5-math-1.5b sets the pair of all five notebooks at once (a value taken from there is printed).
from lrkit.workshop import setting

PAIR = setting("PAIR", "toy")                  # bundled: "toy" (CPU, seconds) or the control "toy-shared"; "qwen2.5-math-1.5b": the pair of the paper (Colab GPU)
N_PROBLEMS = setting("N_PROBLEMS", 48)         # train problems the expert samples on (the paper: 1000 GSM8K problems)
BETA = setting("BETA", 0.4)                    # a step is kept when KL(expert || amateur) is at least BETA (the paper: 0.4)
ALPHA = setting("ALPHA", 0.2)                  # plausibility mask: tokens with p_E at least ALPHA * max p_E (the paper: 0.2)
MAX_STEPS = setting("MAX_STEPS", 30)           # notebooks 3-4: LoRA optimizer steps (the paper: 1000)
LEARNING_RATE = setting("LEARNING_RATE", None, float)  # notebooks 3-4: None: the pair's default (toy 2e-3; Hub pairs 5e-5 as in the paper)
N_EVAL = setting("N_EVAL", 150)                # notebook 4: held-out test problems (the paper: all 1319 of GSM8K test)
ABLATIONS = setting("ABLATIONS", True)         # notebook 4: train and evaluate the three ablation variants of the paper
SFT_BASELINE = setting("SFT_BASELINE", True)   # notebook 4: train and evaluate the SFT baseline
DEVICE = setting("DEVICE", "auto")             # "auto": the GPU when there is one, else the CPU
DTYPE = setting("DTYPE", "auto")               # "auto": bf16 on a GPU that computes in it (A100, L4, H100), fp16 on others (a T4), fp32 on the CPU; or "bf16", "fp16", "fp32"
SAVE_STEPS = setting("SAVE_STEPS", None, int)  # notebooks 3-4: a training checkpoint every SAVE_STEPS steps; None: about every 10 minutes of a T4
SEED = setting("SEED", 2026)                   # seed of the toy problems

# %%
import lrkit
from lrkit import workshop

ex = workshop.notebook_experiment(PAIR, N_PROBLEMS, BETA, ALPHA, MAX_STEPS, LEARNING_RATE, N_EVAL, SEED, DEVICE,
                                  dtype=DTYPE, save_steps=SAVE_STEPS)

# notebooks 1 and 3: each call returns what its folder holds, or runs now when that notebook has not
problems = ex.train_set()
run = lrkit.sample(PAIR, None, problems, ex.sampling_dir(), ex.config.sample, device=ex.device, dtype=ex.dtype)
tuned_dir = ex.model_dir()      # the folder of the tuned expert: adapter/, merged/, eval/
trained = lrkit.train(ex.expert_path, run.records(), tuned_dir / "adapter", ex.config.train, resume=True)
merged = lrkit.merge(ex.expert_path, trained.adapter_dir, tuned_dir / "merged")

# %% [markdown]
# ## Base against tuned

# %% [markdown]
# `lrkit.evaluate` generates greedily and scores each answer, with the `EvalConfig` below (the paper's
# `\boxed{}` cue; for the toy pair, answers fit in 160 new tokens). Run again, it returns the
# evaluation its folder holds.

# %%
config = ex.config.eval
print(config)
tests = ex.test_set()
base = lrkit.evaluate(ex.expert_path, tests, config, out_dir=ex.eval_dir("base"), name="base expert",
                      device=ex.device, dtype=ex.dtype)
tuned = lrkit.evaluate(str(merged), tests, config, out_dir=tuned_dir / "eval", name="LightReasoner",
                       device=ex.device, dtype=ex.dtype)

# %%
comparison = lrkit.compare(base, tuned)
comparison.show()

# %%
from lrkit.experiment import ABLATION_LABELS
from lrkit.paper import PAPER_ABLATION, PAPER_GSM8K
from lrkit.viz import ablation_frame, ablation_row, accuracy_row, beside_paper, efficiency_table, gold_path_frame

beside_paper(
    [accuracy_row("base expert", base), accuracy_row("LightReasoner", tuned)],
    {"base expert": PAPER_GSM8K["base expert"], "LightReasoner": PAPER_GSM8K["LightReasoner"]},
    "Accuracy, base vs tuned expert", ours_title=f"this run ({PAIR}, {base.n} problems, 95% CI)",
    paper_title="paper (Qwen2.5-Math-1.5B, GSM8K)")

# %% [markdown]
# ## Problems fixed and broken
#
# Fixed: wrong before tuning, right after; broken: the reverse. For a few of each, both experts'
# rollouts are scored against the same amateur by `lrkit.sample`, with the tuned expert in place of
# the base one and the evaluation's prompt and length, and shown side by side, coloured by KL on one
# scale.

# %%
columns = {"id": "id", "question": "question", "gold": "gold", "prediction_a": "base", "prediction_b": "tuned"}
print(f"{len(comparison.fixed)} fixed, {len(comparison.broken)} broken")
comparison.fixed[list(columns)].rename(columns=columns).head(5)

# %%
comparison.broken[list(columns)].rename(columns=columns).head(5)

# %%
from dataclasses import replace

from IPython.display import display
from lrkit.viz import side_by_side

shown = list(comparison.fixed["id"][:2]) + list(comparison.broken["id"][:2])
if shown:
    chosen = [p for p in tests if p["id"] in shown]
    as_evaluated = replace(ex.config.sample, system_prompt=config.system_prompt, max_new_tokens=config.answer_limit)
    views = {}
    for label, expert in (("base expert", ex.expert_path), ("tuned expert", str(merged))):
        pair = lrkit.load_pair(expert, ex.amateur_path, device=ex.device, dtype=ex.dtype)
        folder = ex.folder / "views" / f"{label.split()[0]}-{'-'.join(shown)}"
        views[label] = lrkit.sample(pair, None, chosen, folder, as_evaluated, progress=False).steps()
    for pid in shown:
        kind = "fixed" if pid in set(comparison.fixed["id"]) else "broken"
        display(side_by_side(views, pid, beta=BETA, alpha=ALPHA, title=f"{kind}: {pid}"))
else:
    print("tuning changed no answer on these problems")

# %% [markdown]
# ### Exercise 4.1: predict, then run
#
# Read the ablations below first (not their results). Which removal will cost more accuracy on this
# pair: dropping the **selection** (every step a record) or dropping the **contrast** (the expert's own
# distribution as the target)? The check follows the ablation tables (it needs `ABLATIONS = True`).

# %%
MY_COSTLIER_REMOVAL = None   # your prediction: "selection" or "contrast"

# %% tags=["solution"] jupyter={"source_hidden": true}
MY_COSTLIER_REMOVAL = "contrast"   # teacher: without v_C the target is what the expert already predicts (exercise 3.2)

# %% [markdown]
# ## Ablations (the paper's Table 6 in miniature)
#
# Every variant gets the same training budget as the full method:
#
# * **no selection**: every step is a record (beta = 0);
# * **no contrast**: the target is the expert's own distribution over the mask, not $v_C$;
# * **neither**: both.
#
# The paper (average of six benchmarks) finds that the contrast matters most: without it the gain
# almost vanishes, while dropping the selection costs little accuracy but many more tuned tokens.

# %%
results = {"base expert": base, "full method": tuned}
rows = [ablation_row("base expert", 0, 0, base, base),
        ablation_row("full method", trained.examples, trained.tuned_tokens, tuned, base)]
if ABLATIONS:
    # what "no contrast" trains on: the same kept steps, the expert's own masked distribution as target
    print("v_C:        ", run.records()[0]["tokens"], [round(w, 3) for w in run.records()[0]["weights"]])
    print("no contrast:", lrkit.no_contrast(run.records())[0]["tokens"],
          [round(w, 3) for w in lrkit.no_contrast(run.records())[0]["weights"]])
    # each variant is the Experiment's step: its records (ex.records), lrkit.train, lrkit.merge and
    # lrkit.evaluate into its own folder, as lrkit demo --ablations runs them
    with workshop.quiet():   # three more models to train, merge and evaluate: no progress bars
        for variant in ("no_selection", "no_contrast", "neither"):
            label = ABLATION_LABELS[variant]
            variant_run, results[label] = ex.ablation(variant)
            rows.append(ablation_row(label, variant_run.examples, variant_run.tuned_tokens, results[label], base))
    display(ablation_frame(rows))
    display(beside_paper(
        [accuracy_row(name, result) for name, result in results.items()], PAPER_ABLATION,
        "Ablations", ours_title=f"this run ({PAIR}, 95% CI)",
        paper_title="paper (Qwen2.5-Math-1.5B, avg of 6 benchmarks)"))

# %%
from lrkit import teaching

gain = {label: 100 * (result.accuracy - base.accuracy) for label, result in results.items()}  # points over base
costlier = None
if ABLATIONS:
    costlier = "contrast" if gain["no contrast"] < gain["no selection"] else "selection"
teaching.check("4.1", MY_COSTLIER_REMOVAL, costlier, full=gain["full method"],
               no_selection=gain.get("no selection"), no_contrast=gain.get("no contrast"))

# %% [markdown]
# Read the intervals before a ranking: on the toy pair the variants differ by a few problems out of
# `N_EVAL`. The miniature shows how each variant is built and what it costs in tuned tokens; the
# paper's effect sizes need its models and benchmarks.

# %% [markdown]
# ### Exercise 4.2: predict, then run
#
# Predict before you read on: on the control pair `toy-shared` (both models learned the same
# arithmetic), will decoding by $v_C$'s argmax, with no training, beat the expert's greedy decoding?

# %%
MY_CONTROL_DECODING_BEATS_GREEDY = None   # your prediction: "yes" or "no"

# %% tags=["solution"] jupyter={"source_hidden": true}
MY_CONTROL_DECODING_BEATS_GREEDY = "no"   # teacher: the amateur is surest where the expert is right

# %% [markdown]
# ## When the method works, when it fails, and how to tell before training
#
# Tuning moves the expert towards the soft labels $v_C$, so a pair suits the method only if $v_C$
# points towards better answers. Two checks say so before any training:
#
# * **the gold-path check** (`lrkit.contrast_check`): both models read gold solutions token by token;
#   at the steps the method keeps, does $v_C$'s argmax fix the expert's wrong tokens more often than it
#   breaks right ones, and does it put more mass on gold than the expert's own (masked) distribution?
# * **decoding by $v_C$'s argmax** (`lrkit.evaluate_contrastive`): the expert and the amateur decode
#   together, taking the soft label's argmax at every step, with no training.
#
# lrkit bundles two pairs to show both sides. `toy`: the expert learned a general corpus whose
# answers copy the last number, then arithmetic; the amateur learned the general corpus only. The
# expert keeps a little of the habit and the amateur holds it fully, so the contrast removes it, as in
# the paper (a maths specialist built on a general model, against a small general model).
# `toy-shared`: both models learned the same arithmetic, so the contrast penalises what the amateur
# also knows, and tuning towards it cannot help.

# %%
import pandas as pd
from lrkit.toy import TOY_PAIRS

# This pair, by hand: the gold-path check on the validation gold solutions, and decoding by v_C's
# argmax on the test problems (into the folder the Experiment's own step uses)
check = lrkit.contrast_check(ex.pair, ex.validation_set(), beta=BETA, alpha=ALPHA)
print(check)
by_label = lrkit.evaluate_contrastive(ex.pair, tests, config, alpha=ALPHA, out_dir=ex.eval_dir("decoding"),
                                      name="decoding by v_C's argmax", progress=False)

# Both bundled pairs (a Hub pair alone) through the Experiment's steps: ex.check() runs the same
# lrkit.contrast_check for each pair (kept in checks/), ex.contrast(name) the same two evaluations
# (the control on its own family's test problems, in other-pairs/)
checks, decoding, versus_by_pair = ex.check(), [], {}
for name in checks:
    greedy, by_label = ex.contrast(name)
    versus = versus_by_pair[name] = lrkit.compare(greedy, by_label)
    decoding.append({"pair": name, "greedy expert": f"{greedy.accuracy:.1%}",
                     "decoding by v_C's argmax": f"{by_label.accuracy:.1%}",
                     "fixed / broken": f"{len(versus.fixed)} / {len(versus.broken)}",
                     "McNemar p": f"{versus.p_value:.3g}"})
display(gold_path_frame(checks))

# %%
pd.DataFrame(decoding)

# %%
control = versus_by_pair.get("toy-shared")   # greedy (a) against decoding by v_C (b) on the control pair
beats = None if control is None else ("yes" if control.accuracy_b > control.accuracy_a else "no")
teaching.check("4.2", MY_CONTROL_DECODING_BEATS_GREEDY, beats,
               greedy=control and control.accuracy_a, contrastive=control and control.accuracy_b)

# %% [markdown]
# Read the two tables together: on `toy` the soft labels fix far more tokens than they break and
# decoding by them beats greedy decoding, so tuning towards them helps (the accuracy above); on
# `toy-shared` they break more than they fix and decoding by them is worse than greedy. Run the
# gold-path check on any new pair before spending GPU time on it.

# %% [markdown]
# ### Exercise 4.3: predict, then run
#
# The paper's SFT baseline trains on every token of the expert's right rollouts, for one epoch.
# Will it tune more or fewer tokens than LightReasoner did here? (It needs `SFT_BASELINE = True`.)

# %%
MY_SFT_TOKENS = None   # your prediction: "more" or "fewer"

# %% tags=["solution"] jupyter={"source_hidden": true}
MY_SFT_TOKENS = "more"   # teacher: a right rollout is dozens of tokens; LightReasoner tunes one position per record

# %% [markdown]
# ## Efficiency: LightReasoner against SFT
#
# The paper's SFT baseline samples one rollout per problem, keeps the right ones and trains on all
# their tokens. LightReasoner trains on the kept steps only. The paper (one H200): SFT 4.0 h on 3952
# problems and 1.77M tuned tokens for 69.2% on GSM8K; LightReasoner 0.5 h on 1000 problems and
# 0.02M tuned tokens for 70.6%. On the toy pair every stage takes seconds, so the times mostly
# measure fixed costs (loading models, starting the Trainer); the tuned tokens are the count that
# carries over.

# %%
sft = sft_result = None
if SFT_BASELINE:
    folder = ex.model_dir("sft")
    with workshop.quiet():
        sft = lrkit.run_sft(ex.expert_path, problems, folder / "adapter", config=ex.config.train,
                            max_new_tokens=config.answer_limit, generation_batch_size=config.batch_size, resume=True)
        sft_model = lrkit.merge(ex.expert_path, sft.adapter_dir, folder / "merged")
        sft_result = lrkit.evaluate(str(sft_model), tests, config, out_dir=folder / "eval", name="SFT",
                                    device=ex.device, dtype=ex.dtype)
    print(f"SFT: {sft.problems_used} of {sft.summary()['problems_rolled_out']} rollouts right, "
          f"{sft.tuned_tokens} tuned tokens; {sft_result}")
efficiency_table(run, trained, sft)

# %%
more = None if sft is None else ("more" if sft.tuned_tokens > trained.tuned_tokens else "fewer")
teaching.check("4.3", MY_SFT_TOKENS, more, sft=sft and sft.tuned_tokens, lightreasoner=trained.tuned_tokens)

# %%
if sft_result is not None:
    display(beside_paper(
        [accuracy_row("base expert", base), accuracy_row("SFT", sft_result),
         accuracy_row("LightReasoner", tuned)], PAPER_GSM8K, "SFT against LightReasoner",
        ours_title=f"this run ({PAIR}, 95% CI)", paper_title="paper (Qwen2.5-Math-1.5B, GSM8K)"))

# %% [markdown]
# ## The paper's Table 1 for these two models
#
# `lrkit.evaluate_suite` evaluates several models on several benchmarks and writes the paper's Table 1
# (accuracy with 95% intervals, the average, fixed / broken with McNemar p per benchmark, an HTML table
# and a plotly figure). On Colab with the paper's models it takes the benchmarks by name (`gsm8k`,
# `math500`, `svamp`, `asdiv`, `minerva_math`, `olympiadbench`, `mmlu_stem`, from the Hub) and shows
# the paper's published rows beside yours; offline, the toy pair's test problems stand in.

# %%
benchmarks = ({"toy_test": tests} if PAIR in TOY_PAIRS else
              ["gsm8k", "math500", "svamp", "asdiv", "minerva_math", "olympiadbench", "mmlu_stem"])
suite = lrkit.evaluate_suite([ex.expert_path, str(merged)], benchmarks, ex.folder / "table1", config,
                             limit=None if PAIR in TOY_PAIRS else N_EVAL, names=["base expert", "LightReasoner"],
                             device=ex.device, dtype=ex.dtype, progress=False)
suite

# %% [markdown]
# That is the whole method: sample (1), select (2), train (3), evaluate (4). `lrkit demo --ablations`
# runs the same pipeline with larger budgets and writes it all to one HTML report.
