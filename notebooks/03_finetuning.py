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
# On Colab only: install lrkit (Colab's torch is kept) and enable ipywidgets.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "lrkit[notebooks] @ git+https://github.com/lrkit/lrkit"], check=True)
    from google.colab import output

    output.enable_custom_widget_manager()

# %% tags=["parameters"]
# Parameters: the same cell in all four notebooks; change it here (papermill injects values after it).
PAIR = "toy"          # bundled: "toy" (CPU, seconds) or the control "toy-shared"; "qwen2.5-math-1.5b": the pair of the paper (Colab GPU)
N_PROBLEMS = 48       # train problems the expert samples on (the paper: 1000 GSM8K problems)
BETA = 0.4            # a step is kept when KL(expert || amateur) is at least BETA (the paper: 0.4)
ALPHA = 0.2           # plausibility mask: tokens with p_E at least ALPHA * max p_E (the paper: 0.2)
MAX_STEPS = 30        # notebooks 3-4: LoRA optimizer steps (the paper: 1000)
LEARNING_RATE = None  # notebooks 3-4: None: the default of the pair (toy 2e-3; Hub pairs 5e-5 as in the paper)
N_EVAL = 150          # notebook 4: held-out test problems (the paper: all 1319 of GSM8K test)
ABLATIONS = True      # notebook 4: train and evaluate the three ablation variants of the paper
SFT_BASELINE = True   # notebook 4: train and evaluate the SFT baseline
DEVICE = "auto"       # "auto": the GPU when there is one (bf16, or fp16 on a T4), else the CPU
SEED = 2026           # seed of the toy problems

# %%
import lrkit
from lrkit import workshop

ex = workshop.notebook_experiment(PAIR, N_PROBLEMS, BETA, ALPHA, MAX_STEPS, LEARNING_RATE, N_EVAL, SEED, DEVICE)

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
# returns the finished run its folder holds; a partial run resumes from its last checkpoint.

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
