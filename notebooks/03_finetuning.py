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
# # 3. Fine-tuning: the expert learns from the contrast
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/lrkit/lrkit/blob/main/notebooks/03_finetuning.ipynb)
#
# Each record of notebook 1 supervises one position: the input is the prompt plus the rollout's first
# `step` tokens, the target is the soft label $v_C$ at the last of them. The loss is
# $\mathrm{KL}(v_C \,\|\, \pi_E)$ at that position only (the same gradient as the
# $v_C$-weighted cross-entropy; lrkit logs the KL, which is 0 when the expert matches $v_C$).
#
# Training is LoRA on the expert as in the paper: rank 8, alpha 16, dropout 0.05 on `q_proj` and
# `v_proj`, AdamW with linear decay. The paper runs 1000 steps at learning rate 5e-5 on
# Qwen2.5-Math-1.5B; the toy models are tiny and take a few dozen steps at 2e-3. At the end the
# adapter is merged into the expert, which gives a plain model folder for notebook 4.

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
records = run.records()
print(len(records), "records from", len({r["prompt_id"] for r in records}), "problems")

# %% [markdown]
# ## The soft labels
#
# What selecting at `BETA` gives, and one record: the expert's and the amateur's probabilities over
# the plausible tokens, and $v_C$, which moves weight towards the tokens the expert prefers *more
# than the amateur does*.

# %%
summary = lrkit.selection_summary(run.steps(), BETA, alpha=ALPHA)
{k: round(v, 3) if isinstance(v, float) else v for k, v in summary.items()}

# %%
from lrkit.viz import loss_curve, record_table, step_distributions

record = max(records, key=lambda r: (len(r["token_ids"]) > 1, r["kl_divergence"]))  # several tokens
print(f"problem {record['prompt_id']}, step {record['step']}, KL {record['kl_divergence']:.2f}")
print("prefix:", repr(record["prefix"][-100:]))
record_table(record)

# %%
steps = run.steps()
row = steps[(steps["prompt_id"] == record["prompt_id"]) & (steps["step"] == record["step"])].iloc[0]
step_distributions(row, alpha=ALPHA)

# %% [markdown]
# ### Exercise 3.1: predict, then run
#
# Each optimizer step takes `per_device_batch_size x gradient_accumulation_steps` records (16 x 1 for
# the toy pair; 8 x 2 for the paper's), and each record supervises one position. How many positions
# (*tuned tokens*) will training supervise in `MAX_STEPS` steps?

# %%
MY_TUNED_TOKENS = None   # your prediction: a number

# %% tags=["solution"] jupyter={"source_hidden": true}
MY_TUNED_TOKENS = MAX_STEPS * ex.config.train.per_device_batch_size * ex.config.train.gradient_accumulation_steps
# teacher: one position per record, batch x accumulation records per step; the records sampled do not matter

# %% [markdown]
# ## Train
#
# `lrkit.train` runs the HF Trainer with the soft-label loss on the records, with the `TrainConfig`
# below: the paper's LoRA (rank 8, alpha 16, dropout 0.05 on `q_proj` and `v_proj`) at `MAX_STEPS`
# steps; for the toy pair the demo's learning rate and batch. Run the cell again and `lrkit.train`
# returns the finished run its folder holds; a run cut off (a disconnect, a restarted kernel) resumes
# from its last checkpoint, written every `config.save_steps` steps (`SAVE_STEPS`).

# %%
config = ex.config.train
print(config)
trained = lrkit.train(ex.expert_path, records, ex.model_dir() / "adapter", config, resume=True)
trained.summary()

# %%
from lrkit import teaching

teaching.check("3.1", MY_TUNED_TOKENS, trained.tuned_tokens, records=len(records))

# %% [markdown]
# The loss curve, drawn from the run folder's `loss.jsonl` (one line per logged step). The same
# curve is in the folder's `tensorboard/` event files (`TrainConfig.report_to`, TensorBoard by
# default): `tensorboard --logdir` on the adapter folder, or `%load_ext tensorboard` and
# `%tensorboard --logdir ...` in a notebook.

# %%
loss_curve(trained.losses(), y="kl", title="KL(v_C || pi_E) at the supervised positions")

# %% [markdown]
# ## Merge
#
# `lrkit.merge` folds the LoRA weights into the expert (PeftModel -> merge_and_unload) and saves a
# model folder that loads with plain `AutoModelForCausalLM.from_pretrained`.

# %%
merged = lrkit.merge(ex.expert_path, trained.adapter_dir, ex.model_dir() / "merged")
print(merged)
sorted(p.name for p in merged.iterdir())

# %% [markdown]
# ### Exercise 3.2: predict, then run
#
# The paper's "no contrast" ablation trains towards the expert's *own* distribution over the plausible
# tokens (`lrkit.no_contrast`) instead of $v_C$. For the base expert, before any training: is its loss
# against that target lower, about the same, or higher than against $v_C$?

# %%
MY_NO_CONTRAST_LOSS = None   # your prediction: "lower", "about the same" or "higher"

# %% tags=["solution"] jupyter={"source_hidden": true}
MY_NO_CONTRAST_LOSS = "lower"   # teacher: the expert's own masked distribution is nearly what it predicts already

# %% [markdown]
# ## Did the expert move towards the soft labels?
#
# The training loss on the records, measured without any update (`lrkit.soft_label_fit`), for the
# expert before and after:

# %%
subset = records[:256]
before = lrkit.soft_label_fit(ex.expert_path, subset, device=ex.device, dtype=ex.dtype)
after = lrkit.soft_label_fit(str(merged), subset, device=ex.device, dtype=ex.dtype)
print(f"mean KL(v_C || pi_E) on {len(subset)} records: base expert {before:.3f} -> tuned {after:.3f}")

# %%
own = lrkit.soft_label_fit(ex.expert_path, lrkit.no_contrast(subset), device=ex.device, dtype=ex.dtype)
teaching.check("3.2", MY_NO_CONTRAST_LOSS, teaching.direction(before, own, margin=0.1 * before),
               no_contrast=own, contrast=before)

# %% [markdown]
# Only the kept steps were trained on: `trained.tuned_tokens` supervised positions out of all the
# rollout tokens sampled.

# %%
print(f"{trained.tuned_tokens} supervised positions ({trained.steps} steps of one batch each, drawn from "
      f"{trained.examples} records) out of {len(steps)} rollout tokens; {trained.seconds:.0f} s of training")

# %% [markdown]
# Next: [4. Evaluation](04_evaluation.ipynb) compares the tuned expert with the base one.
