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
# # 2. Critical moments: the paper's preliminary analysis
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/lrkit/lrkit/blob/main/notebooks/02_critical_moments.ipynb)
#
# Most tokens of a reasoning trace are easy: both models agree and the KL between their next-token
# distributions is near zero. LightReasoner trains only on the few steps where they diverge. The
# paper checks this on Qwen2.5-Math-1.5B against Qwen2.5-0.5B (100 problems, 128 tokens):
#
# * 59% of steps have KL < 0.1, about 20% have KL >= 0.4;
# * the mean KL is 1.99 where the two top-1 tokens differ and 0.166 where they agree;
# * 10% of top-1 agreements still have KL > 0.4: agreeing on the top token is not agreeing on the
#   distribution.
#
# This notebook recomputes those statistics on the steps sampled in notebook 1 (or samples them
# now when notebook 1 has not run), then shows where they are in single rollouts, and ends with an
# explorer to see how beta and alpha change what is kept. No model runs after the sampling.

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

# notebook 1's run: lrkit.sample returns what its folder holds (it samples now if notebook 1 has not run)
run = lrkit.sample(PAIR, None, ex.train_set(), ex.sampling_dir(), ex.config.sample,
                   device=ex.device, dtype=ex.dtype)
steps = run.steps()
print(len(steps), "steps of", steps["prompt_id"].nunique(), "rollouts")

# %% [markdown]
# ## 1. How KL is distributed
#
# The paper's Figure 2: the share of steps per KL bin. The inset zooms on the tail beyond beta, the
# steps that become records.

# %%
from lrkit.viz import (confident_expert_steps, entropy_quadrants, entropy_scatter, kept_share_by_beta,
                       kl_along_rollout, kl_by_agreement, kl_histogram, kl_thresholds, peak_problems,
                       preliminary_table, step_distributions)

kl_histogram(steps, beta=BETA)

# %% [markdown]
# ## 2. The share of steps above each threshold, and the paper's numbers

# %%
kl_thresholds(steps).style.format({"share": "{:.1%}"}).format_index("{:g}")

# %%
preliminary_table(run.summary, beta=BETA).style.format("{:.3f}", na_rep="")

# %% [markdown]
# ## 3. Agreeing and disagreeing top-1 tokens
#
# When the two models' most likely tokens differ, the distributions differ a lot; when they agree
# the KL is usually small, but not always.

# %%
kl_by_agreement(steps, beta=BETA)

# %% [markdown]
# ### Exercises 2.1 and 2.2: predict, then run
#
# Split the steps by whether each model is *confident* (entropy below 0.5 nats) into four quadrants:
# "both confident", "confident expert, uncertain amateur", "uncertain expert, confident amateur" and
# "both uncertain".
#
# * **Exercise 2.1**: in which quadrant do most *kept* steps lie? (a unique start of the name is enough)
# * **Exercise 2.2**: of the steps where *both* models are confident, what share is kept at `BETA`?
#
# The checks follow the quadrant table below.

# %%
MY_QUADRANT = None                    # your prediction: one of the four quadrant names
MY_SHARE_KEPT_BOTH_CONFIDENT = None   # your prediction: a share between 0 and 1

# %% tags=["solution"] jupyter={"source_hidden": true}
MY_QUADRANT = "confident expert, uncertain amateur"   # teacher: where the expert knows what the amateur does not
MY_SHARE_KEPT_BOTH_CONFIDENT = 0.02   # teacher: two confident models nearly always agree, so their KL is small

# %% [markdown]
# ## 4. A confident expert and an uncertain amateur
#
# Steps where the expert is sure (low entropy) and the amateur is not are where the expert knows
# something the amateur does not. Each point is a step, coloured by KL.

# %%
entropy_scatter(steps)

# %%
CONFIDENT = 0.5   # nats: below this entropy a model counts as confident
quadrants = entropy_quadrants(steps, CONFIDENT)
quadrants.style.format(
    {"share of steps": "{:.1%}", "mean KL": "{:.3f}", "share kept": "{:.1%}", "share of all kept steps": "{:.1%}"})

# %%
from IPython.display import display
from lrkit import teaching

of_kept = quadrants["share of all kept steps"]
display(teaching.check("2.1", MY_QUADRANT, of_kept.idxmax(), share=of_kept.max()))
teaching.check("2.2", MY_SHARE_KEPT_BOTH_CONFIDENT, quadrants.loc["both confident", "share kept"])

# %%
confident_expert_steps(steps, CONFIDENT, n=10)

# %% [markdown]
# ## 5. How beta sets the number of records
#
# Each kept step is one record and one supervised (tuned) token; the curve shows how many remain as
# beta grows.

# %%
kept_share_by_beta(steps, beta=BETA)

# %% [markdown]
# ## 6. Critical moments in one rollout
#
# The rollout with the highest KL peak: KL along the rollout (the paper's Figure 3), then its token
# view (hover a token for both models' top-5 and the soft label), then the distributions at its kept
# step with the most plausible tokens.

# %%
peak = peak_problems(steps, 1)[0]
kl_along_rollout(steps, peak, beta=BETA)

# %%
lrkit.token_view(steps, peak, beta=BETA, alpha=ALPHA, title=f"rollout {peak}")

# %%
one = steps[steps["prompt_id"] == peak]
kept = one[one["kept"]] if one["kept"].any() else one
row = kept.sort_values(["mask_size", "kl"]).iloc[-1]   # the kept step with the most plausible tokens
step_distributions(row, alpha=ALPHA)

# %% [markdown]
# The soft label of that step, rebuilt from its stored statistics by `lrkit.soft_label_from_stats`:
# the mask $\{a : \pi_E(a) \ge \alpha \max \pi_E\}$ and $v_C = \mathrm{softmax}(\log \pi_E - \log \pi_A)$
# over it. It is the record's `weights` when the step was kept.

# %%
import pandas as pd

label = lrkit.soft_label_from_stats(row, alpha=ALPHA)
text = dict(zip(row["expert_topk_ids"], row["expert_topk_tokens"]))
pd.DataFrame({"token": [text[i] for i in label.token_ids], "token_id": label.token_ids,
              "expert p": label.expert_probs, "amateur p": label.amateur_probs, "v_C": label.weights}).round(3)

# %% [markdown]
# ## 7. The explorer
#
# Choose a problem, move beta and alpha, pick a step: the explorer shows the kept steps of the
# rollout, how many records (tuned tokens) the whole set would give, and the chosen step's
# distributions and soft label. Everything is recomputed from the stored statistics, so the
# sliders answer at once.

# %%
explorer = lrkit.Explorer(steps, beta=BETA, alpha=ALPHA, prompt_id=peak)
explorer

# %% [markdown]
# Next: [3. Fine-tuning](03_finetuning.ipynb) trains the expert on the records kept at `BETA`.
