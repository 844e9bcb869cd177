"""Does a pair suit the method? The gold-path check, before any training.

Feed gold worked solutions to both models token by token (teacher forcing).
At every step the method would keep (KL >= beta), compare the expert's own
choice with the soft label's: where v_C's argmax differs from the expert's
argmax, it either *fixes* a token (the expert's argmax is wrong, v_C's is the
gold token) or *breaks* one (the other way round). Also compare the mass v_C
puts on the gold token with the mass the expert's own distribution, restricted
to the same plausibility mask, puts there (the "no contrast" target).

A pair whose contrast fixes clearly more than it breaks, and moves mass
towards gold, is one where tuning towards v_C can help; the bundled control
pair (``toy-shared``) shows the opposite. It takes one teacher-forced pass of
each model, seconds on the toy pairs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from lrkit.config import AUTHORS_SYSTEM_PROMPT
from lrkit.data.answers import gold_path_text
from lrkit.data.problems import load_problems
from lrkit.maths import divergence
from lrkit.maths.selection import plausibility_mask, select_steps
from lrkit.models.generation import last_positions_hidden, stop_token_ids, to_logits
from lrkit.models.prompts import build_prompt_ids

MIN_FIX_RATIO = 2.0
"""The gate: v_C's argmax fixes at least twice as many tokens as it breaks..."""
MIN_DISAGREEMENTS = 50
"""...over at least this many steps where it disagrees with the expert's argmax..."""
MIN_GOLD_MASS_GAIN = 0.03
"""...and puts at least this much more mass on gold than the expert's masked distribution."""


def gold_path_statistics(expert_logp: torch.Tensor, amateur_logp: torch.Tensor, gold_ids: torch.Tensor,
                         alpha: float, temperature: float = 1.0) -> dict[str, torch.Tensor]:
    """Per-step comparison of v_C with the expert on gold tokens ([N, V] log-probs, [N] gold ids).

    Returns tensors of length N: ``kl``, ``expert_argmax``, ``label_argmax``
    (v_C's), ``label_gold_mass`` (v_C at gold, 0 outside the mask),
    ``expert_gold_mass`` (the expert's distribution renormalised over the mask,
    at gold), and how the expert ranks v_C's argmax: ``label_expert_ratio``
    (its probability over the expert's top probability) and ``label_expert_rank``
    (1 = the expert's own top token).
    """
    mask = plausibility_mask(expert_logp, alpha)
    scores = divergence.contrastive_scores(expert_logp, amateur_logp, mask, temperature)
    label = torch.softmax(scores, dim=-1)
    own = torch.softmax(expert_logp.masked_fill(~mask, float("-inf")), dim=-1)
    gold = gold_ids.long().unsqueeze(-1)
    label_argmax = scores.argmax(-1)
    label_logp = expert_logp.gather(-1, label_argmax.unsqueeze(-1))
    return {
        "kl": divergence.kl_divergence(expert_logp, amateur_logp),
        "expert_argmax": expert_logp.argmax(-1),
        "label_argmax": label_argmax,
        "label_gold_mass": label.gather(-1, gold).squeeze(-1),
        "expert_gold_mass": own.gather(-1, gold).squeeze(-1),
        # How the expert itself ranks v_C's choice (the odd-token audit, lrkit.evaluation.audit).
        "label_expert_ratio": (label_logp.squeeze(-1) - expert_logp.max(-1).values).exp(),
        "label_expert_rank": 1 + (expert_logp > label_logp).sum(-1),
    }


@dataclass
class ContrastCheck:
    """What the gold-path check found; ``steps`` has one row per scored step."""

    steps: "object"  # pandas DataFrame
    beta: float
    alpha: float
    settings: dict = field(default_factory=dict)

    @property
    def kept(self):
        return self.steps[self.steps["kept"]]

    @property
    def fixes(self) -> int:
        k = self.kept
        return int(((k.label_argmax == k.gold_id) & (k.expert_argmax != k.gold_id)).sum())

    @property
    def breaks(self) -> int:
        k = self.kept
        return int(((k.label_argmax != k.gold_id) & (k.expert_argmax == k.gold_id)).sum())

    @property
    def disagreements(self) -> int:
        k = self.kept
        return int((k.label_argmax != k.expert_argmax).sum())

    @property
    def label_gold_mass(self) -> float:
        return float(self.kept.label_gold_mass.mean()) if len(self.kept) else float("nan")

    @property
    def expert_gold_mass(self) -> float:
        return float(self.kept.expert_gold_mass.mean()) if len(self.kept) else float("nan")

    @property
    def favours(self) -> bool:
        """The direction the check measures, whatever the number of steps: v_C's argmax fixes
        at least twice as many expert tokens as it breaks, and moves >= 0.03 more mass onto
        gold than the expert's masked distribution."""
        gain = self.label_gold_mass - self.expert_gold_mass
        return self.fixes >= MIN_FIX_RATIO * self.breaks and gain >= MIN_GOLD_MASS_GAIN  # nan gain: False

    @property
    def conclusive(self) -> bool:
        """Enough evidence for the gate: v_C's argmax differs from the expert's at >= 50 kept steps."""
        return self.disagreements >= MIN_DISAGREEMENTS

    @property
    def passes(self) -> bool:
        """The gate: the check :attr:`favours` the pair, on :attr:`conclusive` evidence."""
        return self.conclusive and self.favours

    @property
    def verdict(self) -> str:
        """"suits", "does not suit", or, on fewer than 50 disagreements, "leans to suit" /
        "leans against" (the direction :attr:`favours` gives, on too little evidence to pass)."""
        if self.conclusive:
            return "suits" if self.favours else "does not suit"
        return "leans to suit" if self.favours else "leans against"

    def summary(self) -> dict:
        return {"problems": int(self.steps.prompt_id.nunique()), "steps": int(len(self.steps)),
                "kept": int(len(self.kept)), "beta": self.beta, "alpha": self.alpha,
                "disagreements": self.disagreements, "fixes": self.fixes, "breaks": self.breaks,
                "label_gold_mass": self.label_gold_mass, "expert_gold_mass": self.expert_gold_mass,
                "favours": self.favours, "passes": self.passes, "verdict": self.verdict, **self.settings}

    def __str__(self) -> str:
        s = self.summary()
        ratio = f"{s['fixes'] / s['breaks']:.1f}x" if s["breaks"] else "no breaks"
        words = {"suits": "suits the method", "does not suit": "does not suit the method",
                 "leans to suit": f"leans towards suiting the method, on fewer than {MIN_DISAGREEMENTS} "
                                  f"disagreements (too few to pass the gate)",
                 "leans against": f"leans against the method, on fewer than {MIN_DISAGREEMENTS} disagreements"}
        return (f"gold-path check on {s['problems']} problems, {s['kept']} of {s['steps']} steps kept "
                f"(beta {s['beta']}): v_C's argmax differs from the expert's at {s['disagreements']}, "
                f"fixes {s['fixes']}, breaks {s['breaks']} ({ratio}); mass on gold: v_C "
                f"{s['label_gold_mass']:.3f}, expert's masked distribution {s['expert_gold_mass']:.3f} "
                f"-> {words[s['verdict']]}")

    __repr__ = __str__


def contrast_check(pair, problems, beta: float = 0.4, alpha: float = 0.2, temperature: float = 1.0,
                   system_prompt: Optional[str] = AUTHORS_SYSTEM_PROMPT, skip_first_step: bool = True,
                   batch_size: int = 16, progress: bool = False, gold_form: str = "auto") -> ContrastCheck:
    """Run the gold-path check of ``pair`` (a loaded
    :class:`lrkit.models.loading.ModelPair`) on problems with worked gold answers.

    The gold solution is put in the form a model writes it
    (:func:`lrkit.data.answers.gold_path_text`: GSM8K's calculator notes ``<<48/2=24>>``
    removed; ``gold_form`` "auto" ends it with ``\\boxed{N}`` when the system prompt asks
    for a box, else with its ``#### N`` line, which the toy pairs learned), tokenized on
    its own and followed by EOS, exactly as a model would generate it after the prompt.
    ``system_prompt`` is sampling's default; None sends no system turn.

    Args:
        pair: the loaded expert and amateur (:func:`lrkit.load_pair`).
        problems: a JSONL path, a benchmark name or a list of dicts / ``Problem``;
            problems without an answer are skipped. Use validation problems, not the
            test problems a result is reported on.
        beta (float): the selection threshold: steps with KL >= beta count (the check
            always keeps KL equal to beta, as sampling does by default).
        alpha (float): the plausibility mask of v_C.
        temperature (float): v_C's temperature (1.0: the paper's plain softmax).
        system_prompt (str, optional): the prompt's system turn, and what ``gold_form``
            "auto" reads.
        skip_first_step (bool): never keep step 0 (the empty prefix).
        batch_size (int): problems per teacher-forced pass.
        progress (bool): a progress bar over batches.
        gold_form (str): "auto", "boxed" or "as-written" (:func:`gold_path_text`).

    Returns:
        ContrastCheck: ``steps``, one row per gold token of every problem (KL, both argmaxes,
        v_C's and the expert's masked mass on gold, ``kept``), and over the kept steps
        ``fixes``, ``breaks``, ``disagreements``, the mean gold masses, ``passes`` and
        ``verdict`` ("suits", "does not suit", "leans to suit", "leans against").

    Raises:
        ValueError: no problem has a gold answer, or ``gold_form`` is unknown.
    """
    import pandas as pd

    problems = [p for p in load_problems(problems) if p.answer]
    if not problems:
        raise ValueError("contrast_check() needs problems with gold answers")
    tokenizer = pair.tokenizer
    eos = stop_token_ids(pair.expert, tokenizer)[0]
    rows = []
    batches = [problems[i:i + batch_size] for i in range(0, len(problems), batch_size)]
    if progress:
        from tqdm.auto import tqdm
        batches = tqdm(batches, desc="gold-path check", unit="batch")
    for batch in batches:
        prompts = [build_prompt_ids(tokenizer, p.question, system_prompt) for p in batch]
        golds = [tokenizer(gold_path_text(p.answer, gold_form, system_prompt), add_special_tokens=False)["input_ids"]
                 + [eos] for p in batch]
        width_prompt, width_gold = max(map(len, prompts)), max(map(len, golds))
        # Prompts left-padded, gold right-padded: step t of every row sits at
        # column width_prompt - 1 + t, as in sampling.
        total = width_prompt + width_gold - 1
        ids = torch.full((len(batch), total), tokenizer.pad_token_id or 0, dtype=torch.long)
        attention = torch.zeros_like(ids)
        for row, (prompt, gold) in enumerate(zip(prompts, golds)):
            seq = prompt + gold[:-1]
            start = width_prompt - len(prompt)
            ids[row, start:start + len(seq)] = torch.tensor(seq)
            attention[row, start:start + len(seq)] = 1
        ids, attention = ids.to(pair.device), attention.to(pair.device)
        e_states, e_head = last_positions_hidden(pair.expert, ids, attention, width_gold)
        a_states, a_head = last_positions_hidden(pair.amateur, ids, attention, width_gold)
        with torch.inference_mode():
            for row, (problem, gold) in enumerate(zip(batch, golds)):
                n = len(gold)
                e_logp = divergence.log_probs(to_logits(e_states[row, :n], e_head), pair.vocab_size)
                a_logp = divergence.log_probs(to_logits(a_states[row, :n], a_head), pair.vocab_size)
                gold_ids = torch.tensor(gold, device=e_logp.device)
                stats = gold_path_statistics(e_logp, a_logp, gold_ids, alpha, temperature)
                steps = torch.arange(n, device=e_logp.device)
                kept = select_steps({"kl": stats["kl"], "step": steps}, beta, True, skip_first_step)
                for t in range(n):
                    rows.append({"prompt_id": problem.id, "step": t, "gold_id": gold[t],
                                 "gold": tokenizer.decode([gold[t]]), "kept": bool(kept[t]),
                                 "prefix": tokenizer.decode(gold[:t]) if kept[t] else None,
                                 "label": tokenizer.decode([int(stats["label_argmax"][t])]) if kept[t] else None,
                                 **{k: v[t].item() for k, v in stats.items()}})
    frame = pd.DataFrame(rows)
    return ContrastCheck(frame, beta, alpha, {"system_prompt": system_prompt, "temperature": temperature,
                                              "gold_form": gold_form})
