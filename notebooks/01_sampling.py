# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 1. Sampling: where does the expert's reasoning differ from the amateur's?
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/lrkit/lrkit/blob/main/notebooks/01_sampling.ipynb)
#
# LightReasoner ([paper](https://arxiv.org/abs/2510.07962)) lets a weak **amateur** model show a strong
# **expert** where the expert's reasoning is distinctive. This notebook runs the first stage, *sampling*:
#
# 1. the expert answers each problem greedily (a *rollout*, at most 128 new tokens);
# 2. both models read the same token ids, prompt + rollout, in one forward pass each, which gives
#    every step's next-token distributions $\pi_E(\cdot\mid s_t)$ and $\pi_A(\cdot\mid s_t)$;
# 3. each step is scored by $\mathrm{KL}(\pi_E \,\|\, \pi_A)$; steps with KL $\ge \beta$ are kept;
# 4. each kept step becomes a *record*: a soft label
#    $v_C = \mathrm{softmax}(\log \pi_E - \log \pi_A)$ over the tokens the expert finds plausible
#    ($\pi_E(a) \ge \alpha \max \pi_E$).
#
# The bundled `toy` pair (two small models trained from scratch: an expert built on a general corpus
# and then arithmetic word problems, an amateur that learned the general corpus only) runs on any CPU
# in seconds. `PAIR = "toy-shared"` is the control pair on which the method fails (notebook 4 sets the
# two side by side). Set `PAIR = "qwen2.5-math-1.5b"` for the paper's Qwen2.5-Math-1.5B expert and
# Qwen2.5-0.5B amateur on GSM8K (a Colab GPU).
#
# The notebooks hand their results to each other through one folder (`runs/notebooks/` in your clone,
# `$LRKIT_HOME/runs`, or `$LRKIT_RUN_DIR`): notebook 2 reads the steps sampled here.

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

# %% [markdown]
# ## Set-up
#
# `notebook_experiment` picks the device and the dtype (bf16 on a GPU that has it, fp16 on other GPUs
# such as a Colab T4, fp32 on the CPU) and turns the parameters into the run's configs
# (`ex.config.sample`, `.train`, `.eval`: the paper's settings; the toy pair takes larger batches and
# learning rate), its problems and its folders. Every stage below is a plain lrkit call.

# %%
import lrkit
from lrkit import workshop

ex = workshop.notebook_experiment(PAIR, N_PROBLEMS, BETA, ALPHA, MAX_STEPS, LEARNING_RATE, N_EVAL, SEED, DEVICE,
                                  dtype=DTYPE, save_steps=SAVE_STEPS)

# %% [markdown]
# ## The pair and the problems
#
# `load_pair` loads both models and checks that they share one tokenizer: every id must map to the
# same string, or the two distributions could not be compared token for token.

# %%
pair = lrkit.load_pair(PAIR, device=ex.device, dtype=ex.dtype)
for role, model in (("expert", pair.expert), ("amateur", pair.amateur)):
    print(f"{role:8} {sum(p.numel() for p in model.parameters()) / 1e6:8.2f}M parameters")
print("shared vocabulary:", pair.vocab_size, "tokens")

problems = ex.train_set()   # toy: the pair's own family, seeded; Hub pairs: GSM8K train, in order
print(len(problems), "problems; the first one:\n")
print(problems[0]["question"])

# %% [markdown]
# ### Exercise 1.1: predict, then run
#
# Every generated token is a *step*. Before sampling: what share of all the steps will beta = 0.4
# keep? Write a share between 0 and 1 (0.3 for 30%), run the cell, and read the check after the
# sampling cell. (Leave it as `None` and the check says "not answered yet".)

# %%
MY_SHARE_KEPT = None   # your prediction: a share between 0 and 1

# %% tags=["solution"] jupyter={"source_hidden": true}
MY_SHARE_KEPT = 0.2   # teacher: most tokens are easy for both models; the paper keeps about 20% on GSM8K

# %% [markdown]
# ## Sample
#
# `lrkit.sample` writes the rollouts, every step's statistics and the kept records as it goes. It
# is resumable: run the cell again (or after an interruption) and it continues where it stopped, or
# returns at once when the folder already holds the finished run.

# %%
config = ex.config.sample     # the paper's SampleConfig at BETA and ALPHA
print(config)
run = lrkit.sample(pair, None, problems, ex.sampling_dir(), config)
print(run.out_dir)

# %%
from lrkit import teaching

teaching.check("1.1", MY_SHARE_KEPT, run.summary["share_kept"])

# %% [markdown]
# `run.summary` holds the statistics the paper reports for its preliminary analysis (notebook 2
# looks at them closely).

# %%
import pandas as pd

pd.Series(run.summary).to_frame("value")

# %% [markdown]
# ## The rollouts
#
# One line per problem: the expert's greedy answer, and whether its final answer is right.

# %%
from lrkit.data.answers import gold_answer

rollouts = run.rollouts()
rollouts["output"] = [pair.tokenizer.decode(ids, skip_special_tokens=True) for ids in rollouts["token_ids"]]
rollouts["prediction"] = rollouts["output"].map(lrkit.extract_answer)
rollouts["gold"] = rollouts["answer"].map(gold_answer)      # the text after ####
rollouts["correct"] = [lrkit.answers_match(p, g) for p, g in zip(rollouts["prediction"], rollouts["gold"])]
print(f"the expert's rollouts are right on {rollouts['correct'].mean():.0%} of these problems")
print(rollouts["output"][0])
rollouts[["prompt_id", "question", "gold", "prediction", "correct", "finished"]].head()

# %% [markdown]
# ## Every step's statistics
#
# `run.steps()` has one row per generated token: the token, the KL between the two models, both
# entropies, both top-1 tokens, both models' top-k, the mask size and whether the step was kept.

# %%
steps = run.steps()
print(len(steps), "steps,", int(steps["kept"].sum()), "kept at beta =", BETA)
steps[["prompt_id", "step", "token", "kl", "expert_entropy", "amateur_entropy",
       "expert_top1", "amateur_top1", "mask_size", "kept"]].head(12)

# %% [markdown]
# ### Exercise 1.2: predict, then run
#
# The next cell re-applies the selection rule at other betas, from the stored KL, with no model. If
# beta is raised from 0.4 to 0.8, what share of all the steps is still kept?

# %%
MY_SHARE_AT_0_8 = None   # your prediction: a share between 0 and 1

# %% tags=["solution"] jupyter={"source_hidden": true}
MY_SHARE_AT_0_8 = 0.15   # teacher: KL has a long tail, so doubling beta keeps about two thirds of the steps kept at 0.4

# %% [markdown]
# ## Selection
#
# `lrkit.select_steps` is the rule the sampler applied: a step is kept when its KL reaches beta (step 0,
# the first generated token, never is). Here it reads the stored KL, so any beta can be tried without a
# model; at the run's beta it gives back the `kept` column.

# %%
for beta in (0.1, BETA, 1.0):
    kept = lrkit.select_steps(steps, beta)
    print(f"beta {beta:g}: {int(kept.sum())} of {len(steps)} steps kept ({kept.mean():.1%})")
assert (lrkit.select_steps(steps, BETA) == steps["kept"]).all()

# %%
at_0_8 = lrkit.select_steps(steps, 0.8).mean()   # the share kept at beta 0.8
teaching.check("1.2", MY_SHARE_AT_0_8, at_0_8, at_beta=steps["kept"].mean(), beta=BETA)

# %% [markdown]
# The token view colours each token of a rollout by its KL; kept steps are underlined. Hover over a
# token for both models' top-5 and, for kept steps, the soft label.

# %%
first = steps["prompt_id"].iloc[0]
lrkit.token_view(steps, first, beta=BETA, alpha=ALPHA, title=f"rollout {first}")

# %%
from lrkit.viz import kl_along_rollout

kl_along_rollout(steps, first, beta=BETA)

# %% [markdown]
# ## The records
#
# One JSON line per kept step, in the authors' format (`prompt_id, step, prefix, tokens, token_ids,
# weights, kl_divergence`) plus lrkit's fields (the exact token ids, entropies, log-probs ...).
# Notebook 3 trains on them.

# %%
records = run.records()
record = max(records, key=lambda r: (len(r["token_ids"]) > 1, r["kl_divergence"]))
print(f"{len(records)} records; the largest-KL one with several plausible tokens (step {record['step']}):")
print(repr(record["prefix"][-120:]))
from lrkit.viz import record_table

record_table(record)

# %% [markdown]
# ## Run it again
#
# Run the sampling cell a second time: on the finished folder `lrkit.sample` returns at once with
# the same files. This is how the later notebooks find these results, and how each of them also
# runs on its own (it samples first when this folder does not exist yet).

# %% [markdown]
# Next: [2. Critical moments](02_critical_moments.ipynb), the paper's analysis of these steps and an
# explorer to choose beta and alpha.
