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
# # 5. Choosing a pair: when does the method work, and which amateur?
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/lrkit/lrkit/blob/main/notebooks/05_choosing_a_pair.ipynb)
#
# The paper's amateur study in miniature. `toy`'s expert learned a general corpus G (whose worked
# answers "copy the last number", `8 + 3 = 3`), then arithmetic; a **ladder** of amateurs
# (`lrkit.toy.ladder`) spans the expertise gap, from G only (two sizes) through G plus 5%, 20% and
# 50% of the expert's arithmetic problems and the expert's own build stopped halfway, to the expert
# itself. For each, `lrkit study ladder` measured LightReasoner's gain over three seeds on 500 test
# problems. This notebook
#
# * plots the gain against the amateur's accuracy and against the expertise gap,
# * shows the beta and alpha sweeps on the default pair,
# * runs `lrkit.scout` on two amateurs (predictions before any training) and says how well the
#   scout's score predicted the measured gain across the ladder,
# * audits the soft labels for odd tokens (does v_C reward tokens the expert itself ranks low?),
# * sorts the expert's errors into types and counts what the contrast fixes and what it breaks.
#
# It reads the committed results of the study (`docs/ladder/study.json`, no weights); where they are
# missing it runs a small study itself (about two minutes on a CPU). The cell after the next one
# rebuilds everything (off by default).

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
# Rebuild everything: the ladder (about 25 minutes of training on one thread) and the whole study
# (three seeds per amateur, the sweeps; about an hour on 2 cores). Off by default: the notebook reads
# the committed results.
REBUILD = False

# %%
import json
import os
from pathlib import Path

import pandas as pd
from IPython.display import display

import lrkit
from lrkit.studies import ladder as ladder_study
from lrkit import workshop
from lrkit.studies.scout import LADDER_RESULTS
from lrkit.viz import anatomy_frame
from lrkit.viz.ladder import ladder_figure, sweep_figure

setup = workshop.notebook_setup(DEVICE, DTYPE)
if REBUILD:
    results = ladder_study.run_study(workshop.run_dir("ladder"), progress=False)
elif LADDER_RESULTS.exists():
    results = json.loads(LADDER_RESULTS.read_text())
    print(f"the committed study: {LADDER_RESULTS}")
else:   # an installed lrkit without the docs: a small study, quickly
    with workshop.quiet():
        results = ladder_study.run_study(workshop.run_dir("ladder-quick"), ladder_study.quick_config(), log=None)
    print("no committed study here: ran the small version (two amateurs, one seed, 40 test problems)")
config = results["config"]
print(f"base expert: {results['base']['accuracy']:.1%} on {results['base']['n']} test problems; "
      f"{len(results['ladder'])} amateurs, {config['seeds']} seed(s) each, {config['train_problems']} problems sampled")

# %% [markdown]
# ### Exercise 5.1: predict, then run
#
# The ladder's amateurs, from the largest expertise gap to none: `g-small` (G only, the shipped
# amateur's size, 0.23M parameters), `g-large` (G only, the expert's size), `gf-05`, `gf-20`, `gf-50` (G,
# then 5%, 20% or 50% of the expert's arithmetic problems), `expert-50` (the expert's own build stopped
# halfway) and `expert` (the expert itself). Which one gives LightReasoner the largest gain?

# %%
MY_BEST_AMATEUR = None   # your prediction: one of the names above

# %% tags=["solution"] jupyter={"source_hidden": true}
MY_BEST_AMATEUR = "g-small"   # teacher: the largest gap and the habit held fully; size hardly matters

# %% [markdown]
# ## The ladder: gain against the amateur
#
# Each red dot is one amateur's mean gain over its seeds (blue: each seed), on the test problems.
# The gap is the base expert's accuracy minus the amateur's.

# %%
display(ladder_figure(results["ladder"]))
display(ladder_figure(results["ladder"], x="gap"))
ladder_study.ladder_frame(results["ladder"])

# %%
from lrkit import teaching

best = max(results["ladder"], key=lambda row: row["mean_gain_points"])
teaching.check("5.1", MY_BEST_AMATEUR, best["name"], gain=best["mean_gain_points"])

# %% [markdown]
# Columns marked * are the scout's predictions on validation problems, made before any training;
# the rest was measured on test problems. "CD" is decoding by $v_C$'s argmax with no training.

# %% [markdown]
# ## Beta and alpha on the default pair
#
# Beta sets how many steps become records; alpha how wide the plausibility mask of $v_C$ is.

# %%
for setting in ("beta", "alpha"):
    points = results["sweeps"].get(setting, [])
    if points:
        display(sweep_figure(points, setting))
        display(ladder_study.sweep_frame(points))

# %% [markdown]
# ### Exercise 5.2: predict, then run
#
# The scout's score is the accuracy of decoding by $v_C$'s argmax minus greedy accuracy, in points.
# The next cell scouts the expert against itself (`ladder:expert`) as the amateur. Will its score be
# positive, about zero (within 2 points) or negative?

# %%
MY_SELF_SCOUT_SIGN = None   # your prediction: "positive", "about zero" or "negative"

# %% tags=["solution"] jupyter={"source_hidden": true}
MY_SELF_SCOUT_SIGN = "negative"   # teacher: log p_E - log p_A = 0, so v_C is uniform over the mask and its argmax arbitrary

# %% [markdown]
# ## The scout: rank amateurs before spending compute
#
# `lrkit.scout` (and `lrkit scout --expert ... --amateur ... --problems FILE --out DIR`) runs
# decoding by $v_C$'s argmax and the gold-path check on problems with gold solutions (validation
# problems, never the ones you report on). Its score is decoding by $v_C$ minus greedy decoding of
# the expert, in points: a prediction of the gain's direction. Here on `N_PROBLEMS` validation
# problems, for the default amateur and for the expert itself (gap zero).

# %%
from lrkit.toy import toy_problems

validation = toy_problems("toy", N_PROBLEMS, "validation", seed=SEED)
config = lrkit.EvalConfig(max_new_tokens=160, batch_size=64)  # how the scout decodes
ranking = lrkit.scout("toy:expert", ["toy:amateur", "ladder:expert"], validation, eval_config=config,
                      out_dir=workshop.run_dir("scout"), betas=(BETA,), alphas=(ALPHA,), device=setup.device)
print(ranking.table())
display(ranking.figure())

# %%
itself = next(row for row in ranking.rows if row["amateur"] == "ladder:expert")
teaching.check("5.2", MY_SELF_SCOUT_SIGN, teaching.sign(itself["score"], margin=2.0), score=itself["score"])

# %% [markdown]
# How well did the score predict? Across the ladder, the rank correlation (Spearman) between each of
# the scout's numbers and the measured mean gain:

# %%
pd.DataFrame([{"scout's number (validation)": ladder_study.PREDICTORS[k],
               "Spearman with the measured gain (test)": v} for k, v in results["spearman"].items()])

# %% [markdown]
# ## The odd-token audit
#
# Does the contrast reward tokens the expert itself finds unlikely, only because the amateur finds
# them even less likely? A kept step is **odd** when $v_C$'s argmax is not the expert's top token and
# has less than half of its probability. On the scout's gold paths (live, above):

# %%
for (amateur, beta, alpha), audit in ranking.audits.items():
    print(f"{amateur}: {audit}")
    display(audit.examples)

# %% [markdown]
# And on the records the study kept when sampling with each amateur (200 train problems):

# %%
rows = []
for row in results["ladder"]:
    audit = row.get("records_audit")
    if audit:
        rows.append({"amateur": row["name"], "kept records": audit["kept_steps"],
                     "v_C not the expert's top": audit["not_expert_top"], "odd": audit["odd"],
                     "share odd": f"{100 * audit['share_odd']:.1f}%",
                     "most frequent odd tokens": ", ".join(f"{t!r} x{c}" for t, c in audit["top_tokens"][:5])})
display(pd.DataFrame(rows))
default = next(row for row in results["ladder"] if row["name"] == "g-small")
pd.DataFrame(default.get("records_audit_examples", []))

# %% [markdown]
# ## Error anatomy: what the contrast fixes and what it breaks
#
# `lrkit.error_anatomy(results, classify=...)` sorts every wrong answer into types; the default toy
# classifier knows three: **the G habit** (a line that copies its own operand, `5 + 3 = 3`), **other
# arithmetic slips**, and **reading errors** (right arithmetic on the wrong operands or operation).
# Per amateur and type: the base expert's errors, then per seed the errors after tuning, how many
# the method fixed and how many it introduced.

# %%
anatomy = anatomy_frame(results["ladder"])
display(anatomy[anatomy["amateur"] == "g-small"])
anatomy

# %% [markdown]
# The contrast pushes the expert away from whatever the amateur also does. On `toy` that is mostly
# G's habit, which it removes; but the amateur also reads numbers off the question correctly, so
# some right readings are pushed away too. Pass your own `classify` for your own problems:
#
# ```python
# lrkit.error_anatomy({"base": base, "tuned": tuned}, classify=lambda row: "no answer" if row["prediction"] is None else "wrong number")
# ```
