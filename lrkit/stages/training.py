"""Fine-tuning stage: LoRA on the expert with contrastive soft labels (docs/METHOD.md, section 2).

Every record supervises one position: its input is the record's prompt ids plus
its prefix ids; its target is v_C, the record's sparse ``token_ids`` /
``weights``, at the last real position of that input.

The loss is KL(v_C || pi_E) = sum_i w_i (log w_i - log pi_E(i)) in float32, from
that position's logits only. Its gradient equals the gradient of the
v_C-weighted cross-entropy -sum_i w_i log pi_E(i): the two differ by the entropy
of v_C, a constant of the record. lrkit logs the KL, which is 0 when the expert
already matches v_C. The optimizer sees the mean over the step's records.

pi_E is the softmax over the first ``scored_vocab_size(tokenizer)`` logit rows
(the tokenizer's length without trailing ``[PAD...]`` placeholders), the same
rows the sampler built v_C from. Rows a model carries beyond its tokenizer
(Qwen2.5: 151936 rows for 151665 tokens) are never a target; they are sliced
off before the softmax, so the loss and the labels see the same distribution.

Two layouts give the same loss and gradients (tests/test_packing.py):

* packed (``TrainConfig.packing``, the default; ``lrkit.stages.packing``): the records
  of one rollout are prefixes of one sequence, so one causal pass over it gives
  the expert's distribution at every kept step. A step still holds per-device
  batch x grad-accum x processes records; the hidden states are gathered at the
  supervised positions and the output layer is applied in chunks;
* per-record (``packing=False``, the paper's recipe): one sequence per record,
  padded on the LEFT, so position -1 holds every row's last real token, and the
  model is asked for that position's logits only (``logits_to_keep=1``).
  ``TrainConfig.parity_right_padding`` reproduces the authors' trainer (right
  padding, ``logits[:, -1]``), which supervises every shorter row at a pad.

Output directory: the adapter and tokenizer, ``loss.jsonl`` (one line per
logged step: step, kl, learning_rate, grad_norm, epoch), ``trainer_state.json``,
``lrkit_train.json`` (config, expert, record digest, result), ``provenance.json``
and the Trainer's ``checkpoint-N`` folders that ``resume=True`` continues from.

A folder that holds the finished run of the same settings (expert, records,
config, system prompt, tokenizer) gives its stored :class:`TrainResult` back,
``resume`` or not, without loading the model. ``resume=True`` is what allows
continuing an unfinished run, or a finished one with ``max_steps`` raised
(``RESUMABLE_CHANGES``: ``max_steps`` upwards, ``save_steps``, ``logging_steps``,
``report_to``); anything else in the folder raises :class:`lrkit.runs.FolderError`.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from transformers import AutoConfig, Trainer, TrainerCallback, TrainingArguments

from lrkit import distributed
from lrkit.config import AUTHORS_SYSTEM_PROMPT, TrainConfig, report_targets, to_dict
from lrkit.data.records import (
    RecordError, check_records_tokenizer, iter_numbered_records, tokenizer_fingerprint, validate_record)
from lrkit.maths.divergence import NonFiniteLogitsError
from lrkit.maths.losses import sparse_kl
from lrkit.models.guard import finite_guard
from lrkit.models.generation import left_pad, position_ids_of
from lrkit.models.loading import (
    PRECISION_NAMES, choose_device, choose_dtype, load_model, load_tokenizer, resolve_member, scored_vocab_size)
from lrkit.models.prompts import build_prompt_ids
from lrkit.provenance import Provenance, api_call, now
from lrkit.runs import (
    LOCK_FILE, LOSS_FILE, RUN_FILE, FolderError, StageFolder, differing, digest, entries, read_json, sha256_of_file, write_json, write_text, writes_folder)
from lrkit.stages.cards import write_model_card
from lrkit.stages.packing import PackedCollator, pack_units, packed_kl, schedule

PathLike = Union[str, os.PathLike]
PROGRESS_FILE = "lrkit_progress.json"
RESUMABLE_CHANGES = ("max_steps", "save_steps", "logging_steps", "report_to")
"""TrainConfig fields a resumed run may change; any other change is refused."""
MERGE_FILE = "lrkit_merge.json"
"""A merged folder's settings: expert, adapter digest, dtype (written last: the folder is finished)."""


# ---------------------------------------------------------------- examples

def load_records(records: Union[PathLike, Sequence[dict]]) -> list[dict]:
    """Records from a JSONL path, or an in-memory list validated the same way."""
    return load_located_records(records)[0]


def load_located_records(records: Union[PathLike, Sequence[dict]]) -> tuple[list[dict], list[str]]:
    """Records and where each came from ("FILE, line N", or "record N" for a list)."""
    if isinstance(records, (str, os.PathLike)):
        numbered = list(iter_numbered_records(records))
        if not numbered:
            raise RecordError(f"{records}: the record file holds no records")
        loaded = [record for _, record in numbered]
        unit = "row" if Path(records).is_dir() else "line"  # a folder: lrkit export's parquet
        wheres = [f"{records}, {unit} {number}" for number, _ in numbered]
    else:
        wheres = [f"record {i + 1}" for i in range(len(records))]
        loaded = [validate_record(dict(r), where) for r, where in zip(records, wheres)]
        if not loaded:
            raise RecordError("no records to train on")
    for record in loaded:
        record.setdefault("question", str(record["prompt_id"]))
    return loaded, wheres


def record_input_ids(record: dict, tokenizer, system_prompt: Optional[str]) -> list[int]:
    """Prompt ids + prefix ids of one record.

    Stored ids are used as they are; only a part a record lacks (the authors'
    files carry text only) is tokenized: the prompt from the question with the
    expert's template, the prefix text without special tokens.
    """
    prompt = record.get("prompt_token_ids")
    if prompt is None:
        prompt = build_prompt_ids(tokenizer, record["question"], system_prompt)
    prefix = record.get("prefix_token_ids")
    if prefix is None:
        prefix = tokenizer(record["prefix"], add_special_tokens=False)["input_ids"] if record["prefix"] else []
    return list(prompt) + list(prefix)


def build_examples(records: Sequence[dict], tokenizer, max_length: int,
                   system_prompt: Optional[str] = AUTHORS_SYSTEM_PROMPT) -> list[dict]:
    """One training example per record; inputs longer than ``max_length`` lose
    tokens on the LEFT, so the supervised last position always survives."""
    return [{"input_ids": record_input_ids(r, tokenizer, system_prompt)[-max_length:],
             "target_ids": [int(i) for i in r["token_ids"]],
             "target_weights": [float(w) for w in r["weights"]]} for r in records]


@dataclass
class SoftLabelCollator:
    """Pads a list of examples into tensors.

    Left padding (default) puts every row's last real token at position -1 and
    passes position ids that count real tokens only. ``right_padding=True`` is
    the authors' layout, kept for parity runs. Sparse targets are padded with
    id 0 and weight 0, which adds nothing to the loss.
    """

    pad_token_id: int
    right_padding: bool = False

    def __call__(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        sequences = [f["input_ids"] for f in features]
        if self.right_padding:
            width = max(len(s) for s in sequences)
            input_ids = torch.full((len(sequences), width), self.pad_token_id, dtype=torch.long)
            attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
            for row, seq in enumerate(sequences):
                input_ids[row, :len(seq)] = torch.as_tensor(seq, dtype=torch.long)
                attention_mask[row, :len(seq)] = 1
            batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        else:
            input_ids, attention_mask = left_pad(sequences, self.pad_token_id, "cpu")
            batch = {"input_ids": input_ids, "attention_mask": attention_mask,
                     "position_ids": position_ids_of(attention_mask)}
        k = max(len(f["target_ids"]) for f in features)
        target_ids = torch.zeros((len(features), k), dtype=torch.long)
        target_weights = torch.zeros((len(features), k), dtype=torch.float32)
        for row, f in enumerate(features):
            target_ids[row, :len(f["target_ids"])] = torch.as_tensor(f["target_ids"], dtype=torch.long)
            target_weights[row, :len(f["target_weights"])] = torch.as_tensor(f["target_weights"])
        batch.update(target_ids=target_ids, target_weights=target_weights)
        return batch


# ---------------------------------------------------------------- loss

def last_position_logits(model, batch: dict) -> torch.Tensor:
    """Logits (batch, rows) at position -1 only; no all-position logits."""
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}
    return model(**inputs, logits_to_keep=1, use_cache=False).logits[:, -1, :]


def soft_label_kl(model, batch: dict, vocab_size: int) -> torch.Tensor:
    """Per-row KL(v_C || pi_E) at each row's position -1 (the last real token
    under left padding), pi_E over the tokenizer's ``vocab_size`` ids."""
    return sparse_kl(last_position_logits(model, batch), batch["target_ids"],
                     batch["target_weights"], vocab_size)


class CountingTrainer(Trainer):
    """HF Trainer that counts the positions it supervises (rows x processes for
    soft labels, target tokens for SFT): the "tuned tokens" of the paper's
    efficiency comparison. The count is stored in every checkpoint."""

    supervised_positions = 0

    def _last_round_rows(self) -> int:
        """Records in an epoch's last round of micro-batches when it is short, else 0.

        Under several processes accelerate completes that round with repeats of
        the epoch's first records (every rank needs a batch); they come after the
        real rows, in rank order. (Computed here rather than read from accelerate's
        gradient_state.remainder, which a resumed run's skipping loader loses.)
        """
        if self.args.world_size == 1 or not self.accelerator.gradient_state.end_of_dataloader:
            return 0
        return len(self.train_dataset) % (self.args.per_device_train_batch_size * self.args.world_size)

    def real_rows(self, rows: int) -> int:
        """How many of this micro-batch's rows are records, not repeats."""
        last = self._last_round_rows()
        if not last:
            return rows
        offset = self.args.process_index * self.args.per_device_train_batch_size
        return max(0, min(rows, last - offset))

    def global_rows(self, rows: int) -> int:
        """Records in this micro-step over every rank."""
        return self._last_round_rows() or rows * self.args.world_size

    def count(self, positions: int) -> None:
        if self.model.training:
            if self.args.world_size > 1:  # every rank's own count, summed (ranks may hold fewer rows)
                total = torch.tensor(int(positions), device=self.args.device)
                positions = self.accelerator.reduce(total, reduction="sum").item()
            self.supervised_positions += int(positions)


class PackedSoftLabelTrainer(CountingTrainer):
    """Packed soft-label training (lrkit.stages.packing): each item of the dataset is one
    process's micro-batch, already scheduled, read in order."""

    loss_is_scaled_for_ga = False  # the Trainer divides by the grad-accum steps

    def __init__(self, *args, vocab_size: int, chunk_size: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.vocab_size, self.chunk_size = vocab_size, chunk_size

    def _get_train_sampler(self, train_dataset=None):
        from torch.utils.data import SequentialSampler

        return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        kl = finite_kl(packed_kl(model, inputs, self.vocab_size, self.chunk_size))
        self.count(inputs["target_ids"].shape[0])
        # sum(KL) x micro-batches x processes / records of the step: after the
        # Trainer's division by grad-accum and DDP's mean over processes, the
        # optimizer sees the mean KL over the step's records.
        micro_batches = getattr(self, "current_gradient_accumulation_steps", None) or \
            self.args.gradient_accumulation_steps
        loss = kl.sum() * micro_batches * self.args.world_size / inputs["step_records"].float()
        return (loss, {"kl": kl}) if return_outputs else loss


def finite_kl(kl: torch.Tensor) -> torch.Tensor:
    """``kl`` unchanged, or :class:`NonFiniteLogitsError` when the forward pass overflowed
    (a NaN loss would otherwise be stepped on, or skipped by fp16's loss scaler, in silence)."""
    if not bool(torch.isfinite(kl.detach()).all()):
        raise NonFiniteLogitsError("logits hold NaN or inf")
    return kl


class SoftLabelTrainer(CountingTrainer):
    """The loss is the mean sparse KL at each row's last position."""

    loss_is_scaled_for_ga = False  # compute_loss returns a micro-batch mean

    def __init__(self, *args, vocab_size: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.vocab_size = vocab_size

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        kl = finite_kl(soft_label_kl(model, inputs, self.vocab_size))
        real = self.real_rows(kl.shape[0])
        self.count(real)
        # The mean over every rank's records, as one process takes it: DDP averages
        # the ranks' gradients, so each rank's sum is scaled by processes / rows.
        # (Repeated rows get weight 0; with one process this is kl.mean().)
        loss = kl[:real].sum() * self.args.world_size / self.global_rows(kl.shape[0])
        return (loss, {"kl": kl}) if return_outputs else loss


# ---------------------------------------------------------------- shared set-up (also used by lrkit.stages.sft)

def resolve_precision(precision: str) -> str:
    """"auto" -> bf16 on a GPU that has it, fp16 on other GPUs (e.g. T4), fp32 on CPU."""
    if precision != "auto":
        return precision
    return PRECISION_NAMES[choose_dtype(choose_device())]


def load_expert(expert: PathLike, precision: str):
    """The expert on the CPU in the training dtype; the Trainer places it on its
    device(s). Under fp16/bf16 the frozen base stays in that dtype while peft
    keeps the LoRA weights in float32."""
    model, _ = load_model(expert, device="cpu", dtype=precision, with_tokenizer=False)
    return model


def add_lora(model, config: TrainConfig):
    """The paper's LoRA (r, alpha, dropout, target modules from ``config``; bias none)."""
    from peft import LoraConfig, TaskType, get_peft_model

    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,
                      lora_dropout=config.lora_dropout, target_modules=list(config.target_modules),
                      bias="none", task_type=TaskType.CAUSAL_LM)
    return get_peft_model(model, lora)


def training_arguments(config: TrainConfig, out_dir: PathLike, precision: str,
                       **overrides) -> TrainingArguments:
    """TrainingArguments from a TrainConfig: AdamW, linear decay, seeded, checkpoints
    every ``save_steps`` (the last two kept, as the authors do)."""
    values = dict(
        output_dir=str(out_dir),
        per_device_train_batch_size=config.per_device_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate, lr_scheduler_type="linear",
        max_steps=config.max_steps,
        logging_steps=config.logging_steps, logging_first_step=True,
        save_strategy="steps", save_steps=config.save_steps, save_total_limit=2,
        bf16=precision == "bf16", fp16=precision == "fp16",
        seed=config.seed, data_seed=config.seed,
        remove_unused_columns=False, report_to=report_targets(config.report_to) or "none",
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    if precision == "bf16" and not torch.cuda.is_available():
        values["use_cpu"] = True  # the Trainer refuses bf16 without a GPU unless told it runs on the CPU
    if distributed.current().sharded:
        # Under a launcher: DDP over the process group lrkit.distributed joined
        # (the Trainer would otherwise reset it, and on CPUs fall back to one process).
        values.update(accelerator_config={"use_configured_state": True}, ddp_find_unused_parameters=False)
    values.update(overrides)
    return TrainingArguments(**values)


class LossLog(TrainerCallback):
    """Mirrors the Trainer's loss logs to ``path`` (JSONL) as they happen.

    At the start of a run the file is rewritten from the state's history, which
    on resume is the checkpoint's: lines a crashed run wrote after its last
    checkpoint are dropped, so the curve has each step once.
    """

    def __init__(self, path: PathLike, loss_name: str):
        self.path, self.loss_name = Path(path), loss_name

    def _line(self, logs: dict, step: int) -> str:
        entry = {"step": step, self.loss_name: logs["loss"]}
        entry.update({k: logs[k] for k in ("learning_rate", "grad_norm", "epoch") if k in logs})
        return json.dumps(entry) + "\n"

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            write_text(self.path, "".join(self._line(e, e["step"]) for e in state.log_history if "loss" in e))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs and "loss" in logs:
            with self.path.open("a") as handle:
                handle.write(self._line(logs, state.global_step))


def loss_history(trainer: Trainer, loss_name: str) -> list[dict]:
    return [{"step": e["step"], loss_name: e["loss"]} for e in trainer.state.log_history if "loss" in e]


def _run_settings(saved: dict, current=None) -> dict:
    return {k: v for k, v in saved.items() if k != "result"}


def training_folder(stage: str = "training run") -> StageFolder:
    """A training (or SFT) run's folder protocol (lrkit.runs.StageFolder): settings in
    lrkit_train.json, finished once it holds a result and the adapter is written."""
    return StageFolder(stage, RUN_FILE, load=TrainResult.load, as_stored=_run_settings,
                       finished=lambda folder, saved: bool(saved.get("result"))
                       and (folder / "adapter_model.safetensors").exists())


RESUMABLE = tuple(f"config.{k}" for k in RESUMABLE_CHANGES)

MERGING = StageFolder("merge", MERGE_FILE, finished=lambda folder, stored: True, load=Path)
"""The merge's folder protocol: settings in the merge file, written last (the merge is built
in ``<out>.partial`` and renamed), so a folder that holds it is a finished merge."""


def prepare_out_dir(out_dir: Path, run: dict, resume: bool, stage: str = "training run") -> Optional[Path]:
    """Refuse to mix runs; return the checkpoint to resume from, if any.

    A fresh run needs an empty or absent directory. A folder holding a run of
    ``stage`` is continued only with ``resume`` and the same expert, records and
    settings (``RESUMABLE_CHANGES`` aside); the caller has already returned a
    finished run of the same settings (:func:`finished_run`).
    """
    opened = training_folder(stage).open(out_dir, run, ignore=RESUMABLE)
    if opened.state == "new":
        out_dir.mkdir(parents=True, exist_ok=True)
        return None
    if not resume:
        changed = differing(_run_settings(opened.stored), run)
        if changed:
            raise FolderError(out_dir, stage, changed, way_out="pass resume=True (--resume) to continue "
                              "it with the new " + ", ".join(changed))
        raise FolderError(out_dir, stage, holds=f"an unfinished {stage} of these settings",
                          way_out="pass resume=True (--resume) to continue it")
    last = last_complete_checkpoint(out_dir)
    _check_step_target(out_dir, opened.stored, run, last)
    return last


def last_complete_checkpoint(out_dir: Path) -> Optional[Path]:
    """The newest ``checkpoint-N`` whose saving finished. The Trainer writes a checkpoint
    file by file, and lrkit's progress file (the supervised-position count) comes last,
    after trainer_state.json: a process killed in between leaves a folder that looks whole
    to the Trainer but would restart the count at zero. Such a folder is skipped (the
    Trainer writes it again when the resumed run reaches that step)."""
    steps = []
    for folder in Path(out_dir).glob("checkpoint-*"):
        number = folder.name.split("-", 1)[1]
        if number.isdigit() and folder.is_dir() and (folder / PROGRESS_FILE).is_file() \
                and (folder / "trainer_state.json").is_file():
            steps.append((int(number), folder))
    return max(steps)[1] if steps else None


def finished_run(out_dir: Path, run: dict) -> bool:
    """Whether ``out_dir`` holds the finished run of exactly these settings (its run
    file with a result, and the adapter); another run's folder is refused, one that
    differs only in what a resumed run may change (``RESUMABLE_CHANGES``) is not finished."""
    opened = training_folder().open(out_dir, run, ignore=RESUMABLE) if Path(out_dir).is_dir() else None
    return opened is not None and opened.state == "stored" and not differing(_run_settings(opened.stored), run)


def _check_step_target(out_dir: Path, saved: dict, run: dict, checkpoint: Optional[Path]) -> None:
    """A resumed run may go on to more steps, never fewer: the adapter there has
    done (or was scheduled for) its steps, and the run file would claim another
    number. SFT runs one epoch whatever max_steps says, so it has no target to compare."""
    if run.get("method") != "LightReasoner":
        return
    target, saved_target = run["config"].get("max_steps", -1), saved.get("config", {}).get("max_steps", -1)
    done = 0
    if checkpoint is not None and (checkpoint / "trainer_state.json").exists():
        done = int(json.loads((checkpoint / "trainer_state.json").read_text()).get("global_step", 0))
    done = max(done, int(saved.get("result", {}).get("steps", 0) or 0))
    if target < done or (saved_target is not None and target < saved_target):
        raise FolderError(out_dir, "training run", ["config.max_steps"],
                          holds=f"a training run of max_steps {saved_target} ({done} done), more than "
                                f"max_steps {target}",
                          way_out=f"resume with --max-steps {saved_target} or more, or delete {out_dir} "
                                  f"to train {target} steps afresh")


def write_run(out_dir: Path, run: dict) -> None:
    write_json(out_dir / RUN_FILE, run, sort_keys=True)


# ---------------------------------------------------------------- train / merge

@dataclass
class TrainResult:
    """What a training run produced and cost."""

    adapter_dir: Path
    """Folder with the LoRA adapter and the tokenizer (``merge`` takes it)."""
    loss_history: list
    """[{"step", <loss name>}] for every logged step, resumed runs included."""
    tuned_tokens: int
    """Supervised positions trained on (one per record per pass; SFT: rollout tokens)."""
    problems: int
    """Distinct problems the training data came from."""
    examples: int
    """Training examples (records, or kept rollouts for SFT)."""
    steps: int
    """Optimizer steps done, resumed ones included."""
    seconds: float
    """Wall time of this call (model loading, training, saving)."""
    method: str = "LightReasoner"
    resumed_from: Optional[str] = None

    def losses(self):
        import pandas as pd

        return pd.DataFrame(self.loss_history)

    def summary(self) -> dict:
        """One row for an efficiency table (see lrkit.stages.sft.SFTResult.summary)."""
        return {"method": self.method, "problems": self.problems, "examples": self.examples,
                "tuned_tokens": self.tuned_tokens, "steps": self.steps, "seconds": round(self.seconds, 2)}

    def stored(self) -> dict:
        """What the run file keeps as ``result``: the summary, exact seconds, where it resumed."""
        return {**self.summary(), "seconds": self.seconds, "resumed_from": self.resumed_from}

    @classmethod
    def load(cls, out_dir: PathLike) -> "TrainResult":
        """The result of the finished run in ``out_dir`` (its run file and loss log)."""
        out_dir = Path(out_dir)
        saved = read_json(out_dir / RUN_FILE)
        result = saved.get("result") if isinstance(saved, dict) else None
        if not result:
            raise FileNotFoundError(f"{out_dir}: no finished training run ({RUN_FILE} without a result)")
        method = saved.get("method", result.get("method", "LightReasoner"))
        loss_name = "ce" if method == "SFT" else "kl"
        path = out_dir / LOSS_FILE
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        losses = [{"step": e["step"], loss_name: e[loss_name]} for e in map(json.loads, filter(str.strip, lines))]
        return cls(adapter_dir=out_dir, loss_history=losses, tuned_tokens=result["tuned_tokens"],
                   problems=result["problems"], examples=result["examples"], steps=result["steps"],
                   seconds=result.get("train_seconds", result["seconds"]), method=method,
                   resumed_from=result.get("resumed_from"))


class _CheckpointProgress(TrainerCallback):
    """Stores the supervised-position count in each checkpoint, for resume."""

    def __init__(self, trainer: CountingTrainer):
        self.trainer = trainer

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and folder.is_dir():
            write_json(folder / PROGRESS_FILE, {"supervised_positions": self.trainer.supervised_positions})


def fit(trainer_class, expert: str, tokenizer, examples: Sequence[dict], out_dir: Path,
        config: TrainConfig, collator, loss_name: str, checkpoint: Optional[Path],
        callbacks: Sequence[TrainerCallback] = (), progress: bool = True,
        args_overrides: Optional[dict] = None, **trainer_kwargs) -> CountingTrainer:
    """The training run both methods share: seeded LoRA on the expert, the HF
    Trainer (checkpoints, resume, precision, accumulation, devices), loss log,
    adapter + tokenizer + trainer_state.json saved to ``out_dir``."""
    from transformers import set_seed

    precision = resolve_precision(config.precision)
    set_seed(config.seed)
    model = add_lora(load_expert(expert, precision), config)
    trainer = trainer_class(
        model=model, args=training_arguments(config, out_dir, precision, disable_tqdm=not progress,
                                             **(args_overrides or {})),
        train_dataset=list(examples), data_collator=collator, processing_class=tokenizer,
        callbacks=[LossLog(out_dir / LOSS_FILE, loss_name), *callbacks], **trainer_kwargs)
    trainer.add_callback(_CheckpointProgress(trainer))
    if not progress:  # without a progress bar the Trainer prints every log as a dict instead
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    from lrkit.stages.curves import log_tensorboard_to, use_loss_bar

    use_loss_bar(trainer)  # the bar shows the loss; its own callback would print each log as a dict
    log_tensorboard_to(trainer, out_dir)
    if checkpoint is not None and (checkpoint / PROGRESS_FILE).exists():
        trainer.supervised_positions = json.loads((checkpoint / PROGRESS_FILE).read_text())["supervised_positions"]
    # The run's own step target: max_steps may grow on resume (RESUMABLE_CHANGES);
    # epoch-based runs (SFT, max_steps -1) use the count the Trainer planned.
    target = trainer.args.max_steps if trainer.args.max_steps > 0 else None
    if checkpoint is not None and _finished(checkpoint, target):
        # Resuming a run that already did all its steps: the Trainer would start
        # another epoch and take one more (lr 0) step, counting its positions
        # and logging its loss. Restore the final checkpoint instead.
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file
        from transformers import TrainerState

        set_peft_model_state_dict(trainer.model, load_file(str(checkpoint / "adapter_model.safetensors")))
        trainer.state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
        for callback in trainer.callback_handler.callbacks:
            if isinstance(callback, LossLog):
                callback.on_train_begin(trainer.args, trainer.state, trainer.control)
    else:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    trainer.save_model(str(out_dir))
    trainer.save_state()
    return trainer


def _finished(checkpoint: Path, target: Optional[int]) -> bool:
    """True when the checkpoint has done ``target`` steps (None: the steps its
    own state planned)."""
    path = checkpoint / "trainer_state.json"
    if not (path.exists() and (checkpoint / "adapter_model.safetensors").exists()):
        return False
    state = json.loads(path.read_text())
    target = target or state.get("max_steps")
    return bool(target) and state.get("global_step", 0) >= target


def pad_id_of(tokenizer) -> int:
    """Any id works under an attention mask; parity runs use the authors' pad."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return candidate
    return 0


def packed_items(records: Sequence[dict], examples: Sequence[dict], tokenizer, config: TrainConfig,
                 system_prompt: Optional[str], processes: int = 1):
    """The packed schedule as the Trainer's dataset (one micro-batch per item, in
    reading order: step by step, micro-step by micro-step, process by process)
    and its collator."""
    inputs = [record_input_ids(r, tokenizer, system_prompt) for r in records]
    units = pack_units(inputs, config.max_length)
    steps = schedule(units, config.per_device_batch_size * config.gradient_accumulation_steps * processes,
                     config.gradient_accumulation_steps * processes, config.max_steps, config.seed)
    items = [micro for step in steps for micro in step]
    targets = [(e["target_ids"], e["target_weights"]) for e in examples]
    return items, PackedCollator(pad_id_of(tokenizer), targets)


@writes_folder("training run")
def train(expert: PathLike, records: Union[PathLike, Sequence[dict]], out_dir: PathLike,
          config: Optional[TrainConfig] = None, system_prompt: Optional[str] = AUTHORS_SYSTEM_PROMPT,
          resume: bool = False, callbacks: Sequence[TrainerCallback] = (), progress: bool = True) -> TrainResult:
    """LoRA-tune ``expert`` (a model folder, Hub name or pair member) on soft-label records.

    ``records``: a records.jsonl path or a list of record dicts. ``system_prompt``
    is used only for records without ``prompt_token_ids`` (the authors' files).
    Every check on the records (weights summing to 1, ids inside the vocabulary,
    the tokenizer fingerprint, an empty file) runs before any model is loaded
    and before ``out_dir`` is touched. ``resume=True`` continues from the last
    ``checkpoint-N`` in ``out_dir`` (or starts there if none was written yet).
    ``callbacks`` are extra transformers TrainerCallbacks; ``progress`` shows
    the Trainer's progress bar.

    A folder that already holds the finished run of the same settings gives its
    stored result (:meth:`TrainResult.load`) back, with or without ``resume``,
    before any model is loaded; an unfinished one of the same settings needs
    ``resume=True``; other settings or other files raise
    :class:`lrkit.runs.FolderError` (exit status 2 on the command line).

    The loss is KL(v_C || pi_E) at each record's supervised position, pi_E over the
    tokenizer's scored ids, in float32 (packed: every kept position of a rollout in one
    pass, ``config.packing``). The run's identity is the expert, the config, the system
    prompt, the examples' digest and the tokenizer fingerprint.

    Args:
        expert: the model to tune: a folder, Hub name or pair member (``toy:expert``).
        records: a records.jsonl path, a folder written by ``lrkit export``, or a list of
            record dicts.
        out_dir: the run's folder: adapter, tokenizer, ``lrkit_train.json``, ``loss.jsonl``,
            checkpoints, the model card, TensorBoard events (``config.report_to``).
        config (TrainConfig, optional): default ``TrainConfig()``, the paper's settings.
        system_prompt (str, optional): the system turn of the prompt built for records
            without ``prompt_token_ids``; None sends none.
        resume (bool): continue an unfinished run of these settings (more ``max_steps``
            and the other ``RESUMABLE_CHANGES`` allowed).
        callbacks: extra ``transformers.TrainerCallback`` objects.
        progress (bool): show the training bar, the loss as its postfix.

    Returns:
        TrainResult: ``adapter_dir`` (= ``out_dir``, what :func:`merge` takes), the loss
        history, tuned tokens (supervised positions), problems, examples, optimizer steps
        and seconds.

    Raises:
        lrkit.data.records.RecordError: a bad or empty record file, weights that do not
            sum to 1, ids outside the vocabulary, or records of another tokenizer.
        lrkit.runs.FolderError: ``out_dir`` holds another run or other files, an unfinished
            run without ``resume``, or a run of more steps than ``config.max_steps``.
        lrkit.runs.FolderBusyError: another process is writing ``out_dir``.
        ValueError: a config value out of range.
    """
    started = time.perf_counter()
    config = (config or TrainConfig()).validate()
    expert, out_dir = resolve_member(str(expert)), Path(out_dir)
    source = str(records) if isinstance(records, (str, os.PathLike)) else records
    records, wheres = load_located_records(records)
    tokenizer = load_tokenizer(expert)
    check_records_tokenizer(records, tokenizer, wheres=wheres)
    examples = build_examples(records, tokenizer, config.max_length, system_prompt)
    run = {"method": "LightReasoner", "expert": expert, "config": to_dict(config),
           "system_prompt": system_prompt, "examples": len(examples), "examples_sha256": digest(examples),
           "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer)}
    if finished_run(out_dir, run):  # every rank reads it: all return the stored run
        return TrainResult.load(out_dir)
    ranks = distributed.current()
    checkpoint, provenance = None, None
    with distributed.together():  # rank 0 alone checks and writes the folder; the others wait for it
        if ranks.is_main:
            checkpoint = prepare_out_dir(out_dir, run, resume)
            write_run(out_dir, run)
            provenance = Provenance(out_dir, api_call("train", expert, source, str(out_dir), resume=resume),
                                    choose_device(), resolve_precision(config.precision)).start()
    checkpoint = distributed.broadcast(checkpoint)
    with finite_guard("training", expert, resolve_precision(config.precision)):
        if config.packing:
            items, collator = packed_items(records, examples, tokenizer, config, system_prompt, ranks.world)
            trainer = fit(PackedSoftLabelTrainer, expert, tokenizer, items, out_dir, config, collator, "kl",
                          checkpoint, callbacks, progress, args_overrides={"per_device_train_batch_size": 1},
                          vocab_size=scored_vocab_size(tokenizer), chunk_size=config.chunk_size)
        else:
            trainer = fit(SoftLabelTrainer, expert, tokenizer, examples, out_dir, config,
                          SoftLabelCollator(pad_id_of(tokenizer), config.parity_right_padding), "kl",
                          checkpoint, callbacks, progress, vocab_size=scored_vocab_size(tokenizer))
    result = TrainResult(
        adapter_dir=out_dir, loss_history=loss_history(trainer, "kl"),
        tuned_tokens=trainer.supervised_positions,
        problems=len({str(r["prompt_id"]) for r in records}), examples=len(examples),
        steps=trainer.state.global_step, seconds=time.perf_counter() - started,
        resumed_from=str(checkpoint) if checkpoint else None)
    if ranks.is_main:
        write_run(out_dir, {**run, "result": result.stored()})
        provenance.finish(**({"processes": ranks.world} if ranks.sharded else {}))
        from lrkit.stages.cards import write_model_card

        write_model_card(out_dir)  # replaces peft's boilerplate README.md
    return result


def adapter_digest(adapter_dir: PathLike) -> str:
    """sha256 of an adapter folder's ``adapter_config.json`` and ``adapter_model.safetensors``
    (or ``adapter_model.bin``)."""
    h = hashlib.sha256()
    for name in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
        path = Path(adapter_dir) / name
        if path.exists():
            h.update(name.encode() + b"\0")
            sha256_of_file(path, into=h)
    return h.hexdigest()


def _move_into(partial: Path, out_dir: Path) -> None:
    """Put the finished ``partial`` folder in place of ``out_dir`` (absent or holding
    only the lock): one rename, the lock file going along with it; where that
    fails, entry by entry with the settings file last."""
    lock = out_dir / LOCK_FILE
    try:
        if lock.exists():
            os.rename(lock, partial / LOCK_FILE)  # the lock is on the file, wherever it lies
        os.rename(partial, out_dir)  # replaces an empty folder
        return
    except OSError:
        if (partial / LOCK_FILE).exists() and not lock.exists():
            os.rename(partial / LOCK_FILE, lock)
    out_dir.mkdir(parents=True, exist_ok=True)
    for entry in sorted(entries(partial), key=lambda p: p.name == MERGE_FILE):
        os.replace(entry, out_dir / entry.name)
    shutil.rmtree(partial, ignore_errors=True)


@writes_folder("merge")
def merge(expert: PathLike, adapter_dir: PathLike, out_dir: PathLike,
          dtype: Union[str, torch.dtype] = "auto") -> Path:
    """Fold a LoRA adapter into the expert; save model + tokenizer to ``out_dir``.

    PeftModel -> merge_and_unload -> save_pretrained. The merge runs in float32
    and is cast once to ``dtype`` ("auto": the expert's stored dtype), so small
    LoRA deltas are rounded once. The folder loads with plain
    ``AutoModelForCausalLM.from_pretrained`` and gives the adapter's logits.

    The merge is written into ``<out_dir>.partial`` beside it and renamed to
    ``out_dir`` when complete, with ``lrkit_merge.json`` (expert, adapter digest,
    dtype). A folder that holds the merge of the same settings is returned as it
    is, without loading a model; anything else there raises
    :class:`lrkit.runs.FolderError`.

    Args:
        expert: the base model the adapter was trained on: a folder, Hub name or pair
            member (``toy:expert``).
        adapter_dir: the adapter's folder (``lrkit.train``'s ``out_dir``, holding
            ``adapter_config.json``).
        out_dir: the merged model's folder: weights, tokenizer, model card,
            ``lrkit_merge.json``, provenance.json.
        dtype: ``"auto"`` (the expert's stored dtype, float32 when it names none),
            ``"bf16"``, ``"fp16"``, ``"fp32"`` or a ``torch.dtype``. The merge runs on the CPU.

    Returns:
        Path: ``out_dir``.

    Raises:
        FileNotFoundError: ``adapter_dir`` holds no ``adapter_config.json``.
        ValueError: the adapter was trained on an expert with another tokenizer, or an
            unknown dtype.
        lrkit.runs.FolderError: ``out_dir`` holds another merge or other files.
        lrkit.runs.FolderBusyError: another process is writing ``out_dir``.
    """
    from peft import PeftModel

    started = now()
    expert, adapter_dir, out_dir = resolve_member(str(expert)), Path(adapter_dir), Path(out_dir)
    if not (adapter_dir / "adapter_config.json").exists():
        raise FileNotFoundError(f"{adapter_dir}: no adapter_config.json (expected the --out folder of lrkit train)")
    tokenizer = load_tokenizer(expert)
    if (adapter_dir / RUN_FILE).exists():
        trained_on = json.loads((adapter_dir / RUN_FILE).read_text()).get("tokenizer_fingerprint")
        if trained_on and trained_on != tokenizer_fingerprint(tokenizer):
            raise ValueError(f"{adapter_dir} was trained on an expert with another tokenizer than {expert}")
    if dtype == "auto":
        dtype = AutoConfig.from_pretrained(expert).dtype or torch.float32
    target = choose_dtype(torch.device("cpu"), dtype)
    settings = {"expert": expert, "adapter_sha256": adapter_digest(adapter_dir),
                "dtype": str(target).replace("torch.", "")}
    if MERGING.open(out_dir, settings).state == "stored":
        return out_dir
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # a merge that died there (this folder's lock is ours)
    partial.mkdir(parents=True)
    base, _ = load_model(expert, device="cpu", dtype=torch.float32, with_tokenizer=False)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload().to(target)
    merged.save_pretrained(str(partial))
    tokenizer.save_pretrained(str(partial))
    provenance = Provenance(partial, api_call("merge", expert, str(adapter_dir), str(out_dir)), "cpu", target)
    provenance.entry["started"] = started
    provenance.finish()

    write_model_card(partial, adapter_dir=adapter_dir, expert=expert)
    write_json(partial / MERGE_FILE, settings, sort_keys=True)
    _move_into(partial, out_dir)
    return out_dir


def soft_label_fit(model: str, records: Sequence[dict], device="auto", dtype="auto", batch_size: int = 32) -> float:
    """Mean KL(v_C || pi_E) of ``model`` over ``records``: the training loss, measured
    with no update (did the tuned expert move towards the soft labels?).

    Each record is one example built as training builds it (stored prompt and prefix
    ids, else the question under the authors' system prompt; left-truncated to
    ``TrainConfig().max_length``, 512), scored at its last position, one record per row
    (no packing); pi_E over the tokenizer's scored ids.

    Args:
        model (str): a model folder, Hub name or pair member (a merged model, or the
            base expert for comparison).
        records: record dicts (``lrkit.read_records``); not validated here, and the
            authors' records need their ``question`` (which ``read_records`` adds).
        device: where the model loads (default ``"auto"``: CUDA when available).
        dtype: the model's dtype (default ``"auto"``: bf16 / fp16 on a GPU, fp32 on the CPU).
        batch_size (int): records per forward pass.

    Returns:
        float: the mean per-record KL in nats; 0.0 for no records.
    """
    loaded, tokenizer = load_model(model, device=device, dtype=dtype)
    examples = build_examples(records, tokenizer, TrainConfig().max_length)
    collate, total = SoftLabelCollator(pad_id_of(tokenizer)), 0.0
    with torch.inference_mode():
        for start in range(0, len(examples), batch_size):
            batch = {k: v.to(loaded.device) for k, v in collate(examples[start:start + batch_size]).items()}
            total += float(soft_label_kl(loaded, batch, scored_vocab_size(tokenizer)).sum())
    return total / max(len(examples), 1)
