"""Teaching with the notebooks: "predict, then run" exercises and workshop handouts.

- ``EXERCISES``: every exercise of the five notebooks, by key ("1.1", ...): the
  variable a participant fills in, what kind of answer it takes, and the lesson
  shown once it is answered.
- ``check(key, prediction, answer)``: the self-checking cell. ``answer`` is computed
  in the notebook from the run's own results; a blank prediction (``None``) says
  "not answered yet" and never fails. The verdict renders as one coloured line in
  a notebook and as plain text elsewhere.
- ``write_handout(out)``: the participants' notebooks (cells tagged ``solution``
  removed, outputs cleared) and a one-page sheet; ``with_solutions=True`` writes the
  teacher's copy (solutions kept, and a page that lists them).

Nothing here imports torch: ``lrkit workshop handout`` runs on any machine.

    >>> check("1.1", None, 0.22).status
    'not answered yet'
    >>> check("1.1", 0.2, 0.22).status
    'right'
    >>> check("3.2", "Lower", "lower").status
    'right'
"""
from __future__ import annotations

import copy
import html
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from lrkit.paper import PAPER_EFFICIENCY
from lrkit.runs import write_text

SOLUTION_TAG = "solution"
"""Cells with this tag hold the teacher's answers; handouts drop them."""

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
"""The notebooks of the clone this lrkit was imported from (a wheel does not ship them)."""

NOT_ANSWERED = "not answered yet"
RIGHT = "right"
WRONG = "wrong"
INVALID = "not a valid answer"
NO_RESULT = "no result to check against"


@dataclass(frozen=True)
class Exercise:
    """One "predict, then run" exercise of a notebook."""

    key: str
    """"N.M": notebook N, exercise M; the notebook's heading says "Exercise N.M"."""
    notebook: str
    """The notebook's name, e.g. "01_sampling"."""
    variable: str
    """The name of the prediction cell's variable (``None`` until answered)."""
    question: str
    """The question in one line (the participant sheet lists them)."""
    kind: str
    """"share" (a number in [0, 1]), "count" (a number) or "choice" (one of ``choices``)."""
    lesson: str
    """What the result teaches, shown with the verdict; ``{answer}`` and the keyword
    arguments of ``check`` are formatted in."""
    choices: tuple = ()
    tolerance: float = 0.0
    """A share or count within this distance of the answer is right; for a count,
    a share of the answer (0.1: within 10%)."""
    needs: str = ""
    """What the run must include for the answer to exist (said when it does not)."""

    def show(self, value) -> str:
        if self.kind == "share":
            return f"{value:.1%}"
        if self.kind == "count":
            return f"{value:,.0f}"
        return repr(value)


EXERCISES: dict[str, Exercise] = {e.key: e for e in [
    Exercise("1.1", "01_sampling", "MY_SHARE_KEPT",
             "What share of all steps will beta = 0.4 keep?", "share",
             "Most tokens of a rollout are easy: both models agree and KL is near zero, so few steps "
             "become records (the paper: about 20% on GSM8K).",
             tolerance=0.07),
    Exercise("1.2", "01_sampling", "MY_SHARE_AT_0_8",
             "Raise beta to 0.8: what share of all steps is still kept?", "share",
             "Raising beta from {beta:g} to 0.8 takes the kept share from {at_beta:.1%} to {answer}: "
             "KL has a long tail. Beta trades the number of records against how distinctive each one is; "
             "notebook 5 shows that on toy, beta from 0.1 to 0.8 changes the gain little.",
             tolerance=0.05),
    Exercise("2.1", "02_critical_moments", "MY_QUADRANT",
             "In which entropy quadrant do most kept steps lie?", "choice",
             "{share:.0%} of the kept steps lie there. A confident expert facing an unsure amateur is "
             "where the expert knows something the amateur does not: the moments the method is after.",
             choices=("both confident", "confident expert, uncertain amateur",
                      "uncertain expert, confident amateur", "both uncertain")),
    Exercise("2.2", "02_critical_moments", "MY_SHARE_KEPT_BOTH_CONFIDENT",
             "Of the steps where both models are confident, what share is kept?", "share",
             "Two confident models nearly always agree, so their KL is small. Low entropy alone does "
             "not make a step critical; the two models must disagree.",
             tolerance=0.05),
    Exercise("3.1", "03_finetuning", "MY_TUNED_TOKENS",
             "How many positions (tuned tokens) will training supervise?", "count",
             "Every optimizer step takes per-device batch x gradient accumulation records and each "
             "record supervises one position, so the cost is set by MAX_STEPS, not by how many records "
             "were sampled ({records:,} here).",
             tolerance=0.1),
    Exercise("3.2", "03_finetuning", "MY_NO_CONTRAST_LOSS",
             "Is the base expert's loss lower or higher when the target is its own masked "
             "distribution (no contrast) instead of v_C?", "choice",
             "The loss is {no_contrast:.3f} against the expert's own masked distribution and {contrast:.3f} "
             "against v_C: the former is nearly what the expert already predicts, so without the contrast "
             "there is little left to learn. Notebook 4's ablation measures what that costs.",
             choices=("lower", "about the same", "higher")),
    Exercise("4.1", "04_evaluation", "MY_COSTLIER_REMOVAL",
             "Which removal costs more accuracy: the selection or the contrast?", "choice",
             "Gains over the base expert: without selection {no_selection:+.1f} points, without contrast "
             "{no_contrast:+.1f}, the full method {full:+.1f}. In the paper the contrast carries the gain "
             "and selection matters less.",
             choices=("selection", "contrast"), needs="ABLATIONS = True"),
    Exercise("4.2", "04_evaluation", "MY_CONTROL_DECODING_BEATS_GREEDY",
             "On the control pair toy-shared, does decoding by v_C's argmax beat greedy decoding?",
             "choice",
             "Greedy {greedy:.1%}, decoding by v_C {contrastive:.1%}. Both toy-shared models learned the "
             "same arithmetic, so the amateur is surest where the expert is right, and the contrast pushes "
             "the expert away from right tokens: check this on a new pair before training.",
             choices=("yes", "no"), needs="a bundled PAIR (toy or toy-shared)"),
    Exercise("4.3", "04_evaluation", "MY_SFT_TOKENS",
             "Does the SFT baseline tune more or fewer tokens than LightReasoner?", "choice",
             "SFT tuned {sft:,} tokens, LightReasoner {lightreasoner:,}. SFT trains on every token of its "
             "right rollouts; LightReasoner on one position per record (the paper: "
             f"{PAPER_EFFICIENCY['SFT']['tuned_tokens'] / 1e6:.2f}M against "
             f"{PAPER_EFFICIENCY['LightReasoner']['tuned_tokens'] / 1e6:.2f}M).",
             choices=("more", "fewer"), needs="SFT_BASELINE = True"),
    Exercise("5.1", "05_choosing_a_pair", "MY_BEST_AMATEUR",
             "Which amateur of the ladder gives the largest gain?", "choice",
             "Its mean gain is {gain:+.1f} points. The gain follows the expertise gap: the amateur must "
             "lack the expert's arithmetic and hold the habit the expert should lose; size matters less.",
             choices=("g-small", "g-large", "gf-05", "gf-20", "gf-50", "expert-50", "expert")),
    Exercise("5.2", "05_choosing_a_pair", "MY_SELF_SCOUT_SIGN",
             "With the expert as its own amateur (ladder:expert), is the scout's score positive, "
             "about zero or negative?", "choice",
             "The score is {score:+.1f} points. With identical models log p_E - log p_A is 0 everywhere: "
             "v_C is uniform over the mask and its argmax an arbitrary plausible token, so decoding by it "
             "breaks answers (and sampling keeps no step at all: nothing to train on).",
             choices=("positive", "about zero", "negative")),
]}


@dataclass(frozen=True)
class Verdict:
    """What ``check`` says: ``status`` is one of "not answered yet", "right", "wrong",
    "not a valid answer", "no result to check against"."""

    key: str
    status: str
    text: str

    def __str__(self) -> str:
        return f"Exercise {self.key}: {self.status}. {self.text}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        colour = {RIGHT: "#1a7f37", WRONG: "#b35900"}.get(self.status, "#57606a")
        return (f'<div style="border-left:4px solid {colour};padding:4px 10px">'
                f'<b style="color:{colour}">Exercise {html.escape(self.key)}: {html.escape(self.status)}.</b> '
                f"{html.escape(self.text)}</div>")


def exercise(key: str) -> Exercise:
    if key not in EXERCISES:
        raise ValueError(f"no exercise {key!r}; the exercises are {', '.join(EXERCISES)}")
    return EXERCISES[key]


def check(key: str, prediction, answer, **facts) -> Verdict:
    """Compare a participant's prediction with the run's answer.

    Args:
        key: the exercise, e.g. "1.1" (see ``EXERCISES``).
        prediction: what the participant wrote; ``None`` (or "") means not answered yet.
        answer: the value computed from this run's results; ``None`` when the run
            has no such result (e.g. the ablations were switched off).
        facts: further numbers of the run that the lesson quotes.

    Returns:
        a ``Verdict``; it never raises for a participant's input."""
    ex = exercise(key)
    if prediction is None or (isinstance(prediction, str) and not prediction.strip()):
        return Verdict(key, NOT_ANSWERED,
                       f"Write your prediction as {ex.variable} in the cell above, run it, then run this cell.")
    if answer is None:
        return Verdict(key, NO_RESULT, "This run has no result for it" + (f": it needs {ex.needs}." if ex.needs else "."))
    if ex.kind == "choice":
        chosen = _choice(prediction, ex.choices)
        if chosen is None:
            return Verdict(key, INVALID, f"{prediction!r} is none of {', '.join(map(repr, ex.choices))}; "
                                         f"set {ex.variable} to one of them (a unique start is enough).")
        right = chosen == answer
        said, gave, margin_note = repr(chosen), repr(answer), ""
    else:
        value = _number(prediction)
        if value is None or (ex.kind == "share" and not 0 <= value <= 1):
            hint = "a share between 0 and 1 (0.2 for 20%, or \"20%\")" if ex.kind == "share" else "a number"
            return Verdict(key, INVALID, f"{prediction!r} is not {hint}; set {ex.variable} again.")
        margin = ex.tolerance * abs(answer) if ex.kind == "count" else ex.tolerance
        right = abs(value - answer) <= margin
        said, gave = ex.show(value), ex.show(answer)
        within = f"{100 * margin:g} points" if ex.kind == "share" else ex.show(margin)
        margin_note = f" (within {within} counts as right)"
    lesson = ex.lesson.format(answer=gave if ex.kind == "choice" else ex.show(answer), **facts)
    return Verdict(key, RIGHT if right else WRONG, f"You said {said}; this run gave {gave}{margin_note}. {lesson}")


def _choice(prediction, choices: tuple) -> Optional[str]:
    """The choice a prediction names: the exact text, or a unique start of one, any case."""
    said = str(prediction).strip().lower()
    exact = [c for c in choices if c.lower() == said]
    starts = [c for c in choices if c.lower().startswith(said)]
    return exact[0] if exact else starts[0] if len(starts) == 1 else None


def _number(prediction) -> Optional[float]:
    if isinstance(prediction, bool):
        return None
    if isinstance(prediction, (int, float)):
        return float(prediction) if math.isfinite(prediction) else None
    text = str(prediction).strip().replace(",", "").replace("_", "")
    scale = 1.0
    if text.endswith("%"):
        text, scale = text[:-1], 0.01
    try:
        value = float(text) * scale
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def direction(reference: float, value: float, margin: float) -> str:
    """"lower", "about the same" or "higher": ``value`` against ``reference``, within ``margin``."""
    if value < reference - margin:
        return "lower"
    return "higher" if value > reference + margin else "about the same"


def sign(value: float, margin: float) -> str:
    """"negative", "about zero" or "positive", within ``margin`` of zero."""
    return {"lower": "negative", "higher": "positive"}.get(direction(0.0, value, margin), "about zero")


# --------------------------------------------------------------------------- handouts

AGENDA = (
    # (minutes, notebook, what the block teaches)
    (10, "", "Welcome, the paper in five minutes, `lrkit doctor` on every machine"),
    (15, "01_sampling", "the expert's rollouts, every step's KL, selection at beta, the records"),
    (15, "02_critical_moments", "the paper's preliminary analysis, entropy quadrants, the explorer"),
    (15, "03_finetuning", "soft labels, LoRA training, merging, did the expert move towards v_C?"),
    (20, "04_evaluation", "base against tuned, the ablations, the control pair, SFT's cost"),
    (10, "05_choosing_a_pair", "the amateur ladder, the scout's predictions"),
    (5, "", "Wrap-up: when does the method work, and what would you try on your own pair?"),
)
"""The 90-minute plan (docs/WORKSHOP.md explains each block)."""


@dataclass(frozen=True)
class Handout:
    folder: Path
    notebooks: list
    sheet: Path
    solutions: Optional[Path]


def notebook_files(notebooks: Union[str, Path, None] = None) -> list[Path]:
    """The numbered notebooks (``NN_name.ipynb``) of a folder, in order."""
    folder = Path(notebooks) if notebooks else NOTEBOOKS_DIR
    found = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise ValueError(f"{folder}: no notebooks (NN_name.ipynb) here; run this from an lrkit clone "
                         "or pass --notebooks FOLDER")
    return found


def is_solution(cell: dict) -> bool:
    return SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])


def handout_notebook(notebook: dict, with_solutions: bool = False) -> dict:
    """A copy of a notebook (nbformat JSON) for the room: outputs cleared, jupytext's
    pairing removed, and the cells tagged ``solution`` removed (kept, and shown, in the
    teacher's copy)."""
    nb = copy.deepcopy(notebook)
    nb.get("metadata", {}).pop("jupytext", None)
    cells = []
    for cell in nb["cells"]:
        if is_solution(cell):
            if not with_solutions:
                continue
            cell.get("metadata", {}).get("jupyter", {}).pop("source_hidden", None)
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
        cells.append(cell)
    nb["cells"] = cells
    return nb


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


EXERCISE_HEADING = re.compile(r"(?:^#+\s*|\*\*)Exercise (\d+\.\d+)\b", re.MULTILINE)
"""Where a notebook poses an exercise: a heading "### Exercise 1.1..." or a bold "**Exercise 2.1**"."""


def exercise_keys(notebook: dict) -> list[str]:
    """The exercises a notebook poses, by their markdown headings, in order."""
    return [k for c in notebook["cells"] if c["cell_type"] == "markdown"
            for k in EXERCISE_HEADING.findall(_source(c))]


def solutions_by_exercise(notebook: dict) -> dict:
    """{(keys posed by the markdown cell above): [source of each solution cell after it]}."""
    found, keys = {}, ()
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown":
            keys = tuple(EXERCISE_HEADING.findall(_source(cell))) or keys
        if is_solution(cell):
            found.setdefault(keys, []).append(_source(cell).strip())
    return found


def participant_sheet(notebooks: dict, with_solutions: bool = False) -> str:
    """The one-page sheet (markdown) for a set of notebooks {name: nbformat JSON}."""
    lines = ["# LightReasoner in 90 minutes: participant sheet", "",
             "**The method.** A weak *amateur* model shows a strong *expert* where its reasoning is "
             "distinctive. Both read the expert's greedy rollout; at every step t, "
             "KL(pi_E || pi_A) says how much they disagree. Steps with KL >= beta (0.4) are kept; each "
             "becomes a soft label v_C = softmax(log pi_E - log pi_A) over the tokens the expert finds "
             "plausible (pi_E >= alpha x max pi_E, alpha 0.2), and the expert is LoRA-tuned towards v_C.", "",
             "**Before you start.** In a terminal: `lrkit doctor` (every line `ok` or `warn`; a `fail` "
             "line says its fix). Open the notebooks in order; each also runs alone.", "",
             "**An exercise.** Write your prediction in its cell (`MY_... = None` until you do), run that "
             "cell, then run the cells after it: the check cell says right or wrong and why. Left blank, "
             "it says \"not answered yet\". Predict before you look at the results.", "",
             "## The plan", "", "| minutes | notebook | what it teaches |", "| --- | --- | --- |"]
    lines += [f"| {minutes} | {name or '-'} | {what} |" for minutes, name, what in AGENDA]
    lines += ["", "## The exercises", ""]
    for name, nb in notebooks.items():
        keys = exercise_keys(nb)
        if not keys:
            continue
        lines.append(f"**{name}**")
        lines += [f"- {k}: {EXERCISES[k].question} (`{EXERCISES[k].variable}`"
                  + (f", one of {', '.join(repr(c) for c in EXERCISES[k].choices)})"
                     if EXERCISES[k].kind == "choice" else ")")
                  for k in keys if k in EXERCISES]
        lines.append("")
    lines += ["## When something goes wrong", "",
              "- A cell is slow or stuck: Kernel -> Interrupt, then run it again; every stage resumes or "
              "returns what its folder already holds.",
              "- Results go to `runs/notebooks/` (or `$LRKIT_RUN_DIR`); deleting a folder there reruns that "
              "stage.",
              "- A changed parameter (BETA, N_PROBLEMS ...) makes new folders beside the old ones, never a "
              "clash.", ""]
    if with_solutions:
        lines += ["This is the teacher's copy: the notebooks keep the cells tagged `solution`; "
                  "SOLUTIONS.md lists them.", ""]
    return "\n".join(lines)


def solutions_page(notebooks: dict) -> str:
    lines = ["# Solutions (teacher's copy)", "",
             "The cells tagged `solution` of each notebook, by exercise. The check cells compute the "
             "answers from each run's own results, so a room's numbers may differ from these predictions; "
             "the check says whether a prediction holds for that run.", ""]
    for name, nb in notebooks.items():
        for keys, sources in solutions_by_exercise(nb).items():
            lines += [f"## {' and '.join(keys)} ({name})", ""]
            lines += [f"- {k}: {EXERCISES[k].question}" for k in keys if k in EXERCISES] + [""]
            lines += ["```python\n" + s + "\n```" for s in sources] + [""]
    return "\n".join(lines)


SHEET_FILE = "PARTICIPANT.md"
SOLUTIONS_FILE = "SOLUTIONS.md"


def write_handout(out: Union[str, Path], with_solutions: bool = False,
                  notebooks: Union[str, Path, None] = None) -> Handout:
    """Write the room's copies of the notebooks to ``out/notebooks/`` and the sheet to
    ``out/PARTICIPANT.md`` (plus ``out/SOLUTIONS.md`` with ``with_solutions``).

    Args:
        out: the folder to write (created; files of the same names are replaced).
        with_solutions: the teacher's copy: keep the cells tagged ``solution``.
        notebooks: the folder of the source notebooks (default: this clone's ``notebooks/``).

    Returns:
        a ``Handout`` naming what was written."""
    sources = notebook_files(notebooks)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: a file, not a folder")
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    written, read = [], {}
    for path in sources:
        try:
            nb = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not a notebook ({err})") from None
        read[path.stem] = nb
        target = out / "notebooks" / path.name
        write_text(target, json.dumps(handout_notebook(nb, with_solutions), indent=1, ensure_ascii=False) + "\n")
        written.append(target)
    sheet = out / SHEET_FILE
    write_text(sheet, participant_sheet(read, with_solutions))
    solutions = None
    if with_solutions:
        solutions = out / SOLUTIONS_FILE
        write_text(solutions, solutions_page(read))
    elif (out / SOLUTIONS_FILE).exists():  # a teacher's copy written here before: never hand it out
        (out / SOLUTIONS_FILE).unlink()
    return Handout(out, written, sheet, solutions)
