"""The paper's SFT baseline (docs/METHOD.md, section 2), on lrkit's training code paths.

1. One greedy chain-of-thought rollout of the expert per train problem
   (``lrkit.models.generation.greedy_generate``, the prompt of ``lrkit.models.prompts``).
2. Keep the rollouts whose final answer is right (``lrkit.evaluation``).
3. Cross-entropy on every rollout token, prompt tokens masked; the same LoRA,
   precision, checkpoints, resume and loss log as ``lrkit.stages.training.train``;
   batch 4 x grad-accum 4; one pass over the kept rollouts.

``SFTResult.summary()`` has the keys of ``TrainResult.summary()`` (and more), so the
paper's efficiency comparison (problems used, tuned tokens, time) is one
DataFrame: ``pd.DataFrame([lr_result.summary(), sft_result.summary()])``.
Output folder: ``rollouts.jsonl`` (every rollout, with ``correct``; while the rollouts
run, ``rollouts.partial.jsonl`` holds the batches finished, so a run cut off resumes
after them), then what ``train`` writes (adapter, tokenizer, ``loss.jsonl`` with ``ce``, checkpoints).
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import torch

from lrkit.config import AUTHORS_SYSTEM_PROMPT, TrainConfig, to_dict
from lrkit.data.answers import Problem
from lrkit.data.problems import training_problems
from lrkit.data.records import tokenizer_fingerprint
from lrkit.evaluation import answers_match, extract_answer
from lrkit.models.generation import greedy_generate_batch, left_pad, length_batches, position_ids_of
from lrkit.models.loading import choose_device, load_model, load_tokenizer, resolve_member
from lrkit.models.prompts import build_prompt_ids
from lrkit.provenance import Provenance, api_call
from lrkit.runs import problems_digest, read_json, write_text, writes_folder
from lrkit.stages.cards import write_model_card
from lrkit.stages.training import (
    RUN_FILE, CountingTrainer, PathLike, TrainResult, finished_run, fit, loss_history, pad_id_of, prepare_out_dir,
    resolve_precision, write_run)

ROLLOUTS_FILE = "rollouts.jsonl"
PARTIAL_ROLLOUTS_FILE = "rollouts.partial.jsonl"
"""The rollouts of the batches finished so far (a run cut off resumes after them); gone
once ``rollouts.jsonl`` is written."""
IGNORE = -100
"""Label of positions without a loss (the prompt, padding)."""


def sft_config(config: Optional[TrainConfig] = None) -> TrainConfig:
    """The paper's SFT settings on top of ``config``: batch 4 x grad-accum 4, and
    room for prompt + a 512-token rollout (max_length at least 1024). One pass
    over the data, so ``max_steps`` is not used."""
    config = config or TrainConfig()
    return dataclasses.replace(config, per_device_batch_size=4, gradient_accumulation_steps=4,
                               max_length=max(config.max_length, 1024)).validate()


def answer_is_right(text: str, problem: Problem) -> bool:
    """The rollout's final answer (:func:`lrkit.evaluation.extract_answer`: the last
    \\boxed{}, else the last ``####`` line, "answer is", the last number) equals the gold one
    by lrkit's rules (:func:`lrkit.evaluation.answers_match`)."""
    return answers_match(extract_answer(text), problem.gold)


def sft_examples(rollouts: Sequence[dict], max_length: int) -> list[dict]:
    """prompt + rollout ids, labelled on the rollout tokens only; longer inputs
    lose their END (the prompt is needed, the last tokens are the least)."""
    examples = []
    for r in rollouts:
        ids = (r["prompt_token_ids"] + r["token_ids"])[:max_length]
        labels = ([IGNORE] * len(r["prompt_token_ids"]) + r["token_ids"])[:max_length]
        if any(label != IGNORE for label in labels):
            examples.append({"input_ids": ids, "labels": labels})
    return examples


@dataclass
class CausalLMCollator:
    """Left padding with position ids (as for soft labels); labels -100 on pads."""

    pad_token_id: int

    def __call__(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        input_ids, attention_mask = left_pad([f["input_ids"] for f in features], self.pad_token_id, "cpu")
        labels, _ = left_pad([f["labels"] for f in features], IGNORE, "cpu")
        return {"input_ids": input_ids, "attention_mask": attention_mask,
                "position_ids": position_ids_of(attention_mask), "labels": labels}


class CrossEntropyTrainer(CountingTrainer):
    """The model's own token cross-entropy (normalised over the accumulated batch
    by the Trainer); counts the supervised tokens."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        self.count((inputs["labels"][:, 1:] != IGNORE).sum())  # the model shifts labels by one
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)


@dataclass
class SFTResult:
    """Problems, tuned tokens and time of each stage of the SFT baseline."""

    adapter_dir: Path
    problems_rolled_out: int
    """Train problems the expert answered."""
    problems_used: int
    """Problems whose rollout was right: the training examples."""
    rollout_tokens: int
    """Tokens the expert generated in the rollout stage."""
    tuned_tokens: int
    """Rollout tokens trained on (one pass)."""
    rollout_seconds: float
    """Time of the rollout stage (0 when stored rollouts were reused)."""
    train_seconds: float
    """Time of the training stage (model loading, training, saving)."""
    train: TrainResult

    def summary(self) -> dict:
        """Same keys as TrainResult.summary(), plus the time of each stage."""
        return {**self.train.summary(), "problems_rolled_out": self.problems_rolled_out,
                "rollout_tokens": self.rollout_tokens,
                "rollout_seconds": round(self.rollout_seconds, 2),
                "train_seconds": round(self.train_seconds, 2),
                "seconds": round(self.rollout_seconds + self.train_seconds, 2)}

    def stored(self) -> dict:
        """What the run file keeps as ``result``: the summary with exact times."""
        return {**self.summary(), "rollout_seconds": self.rollout_seconds, "train_seconds": self.train_seconds,
                "resumed_from": self.train.resumed_from}

    @classmethod
    def load(cls, out_dir: PathLike) -> "SFTResult":
        """The result of the finished SFT run in ``out_dir``."""
        out_dir = Path(out_dir)
        train = TrainResult.load(out_dir)
        result = read_json(out_dir / RUN_FILE)["result"]
        return cls(out_dir, result["problems_rolled_out"], train.problems, result["rollout_tokens"],
                   train.tuned_tokens, result["rollout_seconds"], result["train_seconds"], train)


def rollout(expert: str, problems: Sequence[Problem], system_prompt: Optional[str], max_new_tokens: int,
            batch_size: int, judge: Callable[[str, Problem], bool], progress: bool = True,
            partial: Optional[Path] = None) -> list[dict]:
    """One greedy rollout per problem, judged; rows as stored in rollouts.jsonl.

    With ``partial``, the rows of each finished batch are appended to that file, and the
    rows found there are kept: a run cut off generates only the batches it had not
    finished. The batches are :func:`greedy_generate`'s (``length_batches``), each
    generated alone, so the rows are the ones of an uninterrupted run."""
    tokenizer = load_tokenizer(expert)
    prompts = [build_prompt_ids(tokenizer, p.question, system_prompt) for p in problems]
    saved = _saved_rollouts(partial)
    rows: list[Optional[dict]] = [None] * len(problems)
    todo = []
    for batch in length_batches(prompts, batch_size):
        if all(problems[i].id in saved for i in batch):
            for i in batch:
                rows[i] = saved[problems[i].id]
        else:
            todo.append(batch)
    if todo:
        model, _ = load_model(expert)
        if progress:
            from tqdm.auto import tqdm

            todo = tqdm(todo, desc="generating", unit="batch")
        for batch in todo:
            generations = greedy_generate_batch(model, tokenizer, [prompts[i] for i in batch], max_new_tokens, None)
            for i, generation in zip(batch, generations):
                problem, text = problems[i], tokenizer.decode(generation.token_ids, skip_special_tokens=True)
                rows[i] = {"id": problem.id, "question": problem.question, "answer": problem.answer,
                           "prompt_token_ids": prompts[i], "token_ids": generation.token_ids, "text": text,
                           "finished": generation.finished, "correct": bool(judge(text, problem))}
            if partial is not None:
                with partial.open("a", encoding="utf-8") as handle:  # one write per batch, on disk before the next
                    handle.write("".join(json.dumps(rows[i], ensure_ascii=False) + "\n" for i in batch))
                    handle.flush()
                    os.fsync(handle.fileno())
        del model
    return rows


def _saved_rollouts(partial: Optional[Path]) -> dict[str, dict]:
    """The rows an interrupted rollout stage saved, by problem id (a line cut off by the
    interruption is left out, and with it its batch, which is generated again)."""
    saved = {}
    if partial is not None and partial.exists():
        for line in partial.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            saved[str(row["id"])] = row
    return saved


@writes_folder("SFT run")
def run_sft(expert: PathLike, problems: Union[PathLike, Sequence], out_dir: PathLike,
            config: Optional[TrainConfig] = None, system_prompt: Optional[str] = AUTHORS_SYSTEM_PROMPT,
            max_new_tokens: int = 512, generation_batch_size: int = 16, require_finished: bool = True,
            judge: Optional[Callable[[str, Problem], bool]] = None, resume: bool = False,
            progress: bool = True) -> SFTResult:
    """Run the SFT baseline on ``problems`` (a JSONL path, "gsm8k:train", or a list of
    dicts/Problems with gold answers) and LoRA-tune ``expert`` on the right rollouts.

    ``config`` goes through ``sft_config`` (batch 4 x 4, one pass). The system
    prompt defaults to the one LightReasoner's records use, so both methods
    train on the same prompts. ``require_finished`` keeps only rollouts that
    ended with EOS (a cut-off rollout "right" by its last number is luck).
    ``judge(text, problem)`` replaces the answer check. ``resume=True`` reuses
    stored rollouts (those of the batches a cut-off run finished, too) and continues
    training from the last checkpoint.
    ``progress`` shows the generation and training progress bars.

    As for ``train``: a folder holding the finished run of the same settings
    gives its stored result back (no generation, no training), ``resume`` or not;
    other settings or files raise :class:`lrkit.runs.FolderError`.

    Args:
        expert: the model to roll out and tune: a folder, Hub name or pair member; it
            loads on the default device (CUDA when available).
        problems: a JSONL path, a benchmark split (``"gsm8k:train"``; a bare benchmark
            name is refused) or a list of dicts / ``Problem``, every one with its answer.
        out_dir: the run's folder: ``rollouts.jsonl``, the adapter, ``lrkit_train.json``,
            ``loss.jsonl``, checkpoints, the model card.
        config (TrainConfig, optional): LoRA and optimizer settings; ``sft_config`` sets
            batch 4 x 4, ``max_length`` >= 1024 and one epoch (``max_steps`` unused).
        system_prompt (str, optional): the rollouts' system turn; None sends none.
        max_new_tokens (int): longest rollout.
        generation_batch_size (int): problems generated at once.
        require_finished (bool): train only on rollouts that ended with EOS.
        judge: ``judge(text, problem) -> bool`` in place of :func:`answer_is_right`. It is
            not part of the run's settings: a folder's stored rollouts keep the verdicts
            they were judged with.
        resume (bool): continue an unfinished run of these settings (stored rollouts,
            last checkpoint).
        progress (bool): show the generation and training bars.

    Returns:
        SFTResult: the adapter folder, problems rolled out and used, rollout and tuned
        tokens, each stage's seconds, and the :class:`TrainResult` (loss history...).

    Raises:
        ValueError: a problem without a gold answer, or no rollout right (and finished)
            to train on.
        lrkit.data.answers.ProblemError: a bare benchmark name or a bad problem source.
        lrkit.runs.FolderError: ``out_dir`` holds another run or other files, or an
            unfinished run without ``resume``.
        lrkit.runs.FolderBusyError: another process is writing ``out_dir``.
    """
    config = sft_config(config)
    expert, out_dir = resolve_member(str(expert)), Path(out_dir)
    problems = training_problems(problems, caller="SFT")
    unanswered = [p.id for p in problems if p.answer is None]
    if unanswered:
        raise ValueError(f"SFT needs gold answers; problem(s) {', '.join(unanswered[:5])} have none")
    tokenizer = load_tokenizer(expert)
    run = {"method": "SFT", "expert": expert, "config": to_dict(config), "system_prompt": system_prompt,
           "max_new_tokens": max_new_tokens, "require_finished": require_finished,
           "problems": len(problems), "problems_sha256": problems_digest(problems, ("id", "question", "answer")),
           "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer)}
    if finished_run(out_dir, run):
        return SFTResult.load(out_dir)
    checkpoint = prepare_out_dir(out_dir, run, resume, stage="SFT run")
    write_run(out_dir, run)
    provenance = Provenance(out_dir, api_call("run_sft", expert, problems, str(out_dir), resume=resume),
                            choose_device(), resolve_precision(config.precision)).start()

    started = time.perf_counter()
    path = out_dir / ROLLOUTS_FILE
    if path.exists():
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    else:
        rows = rollout(expert, problems, system_prompt, max_new_tokens, generation_batch_size,
                       judge or answer_is_right, progress, partial=out_dir / PARTIAL_ROLLOUTS_FILE)
        write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        (out_dir / PARTIAL_ROLLOUTS_FILE).unlink(missing_ok=True)
    rollout_seconds = time.perf_counter() - started

    kept = [r for r in rows if r["correct"] and (r["finished"] or not require_finished)]
    examples = sft_examples(kept, config.max_length)
    if not examples:
        raise ValueError(f"none of the {len(rows)} rollouts is right{' and finished' if require_finished else ''}; "
                         f"nothing to train on (rollouts are in {path})")
    started = time.perf_counter()
    trainer = fit(CrossEntropyTrainer, expert, tokenizer, examples, out_dir, config,
                  CausalLMCollator(pad_id_of(tokenizer)), "ce", checkpoint, progress=progress,
                  args_overrides={"max_steps": -1, "num_train_epochs": 1})
    train_seconds = time.perf_counter() - started
    result = TrainResult(
        adapter_dir=out_dir, loss_history=loss_history(trainer, "ce"),
        tuned_tokens=trainer.supervised_positions, problems=len(examples), examples=len(examples),
        steps=trainer.state.global_step, seconds=train_seconds, method="SFT",
        resumed_from=str(checkpoint) if checkpoint else None)
    sft_result = SFTResult(out_dir, len(rows), len(examples), sum(len(r["token_ids"]) for r in rows),
                           result.tuned_tokens, rollout_seconds, train_seconds, result)
    write_run(out_dir, {**run, "result": sft_result.stored()})
    provenance.finish()

    write_model_card(out_dir)  # replaces peft's boilerplate README.md
    return sft_result
