"""Packed soft-label training: every kept step of a rollout in one forward pass.

A record's input is prompt ids + the rollout's first ``step`` ids, and it is
supervised at its last position. Records of one rollout are prefixes of one
another, so one causal pass over the longest of them gives the expert's
distribution at every one of their positions: the per-record recipe reads a
rollout once per kept step (about 25 times at the paper's shape), packing reads
it once per optimizer step it appears in.

Three parts, each exact against the per-record recipe:

* ``pack_units``: groups records into *units*, one token sequence each, purely
  from their token ids (sorted, a record joins the next one when its ids are a
  prefix of it), so records without rollout ids (the authors' files) group too.
  A unit never exceeds ``max_length``: a record whose input is longer sees only
  its last ``max_length`` tokens, as in the per-record recipe, so it gets a
  window of its own.
* ``schedule``: the order of training. Every optimizer step holds exactly
  ``records_per_step`` records (per-device batch x grad-accum x processes), as
  in the per-record recipe, so ``max_steps``, the batch size and the learning
  rate keep their meaning. Each epoch shuffles the units (seeded by seed and
  epoch) and streams their records in step order; a step takes the next
  ``records_per_step`` records, so a rollout is split across two steps where
  the stream is cut. Within a step the records of one unit form one sequence,
  cut after its last supervised position, and the step's sequences are dealt
  to its grad-accum x processes micro-batches (longest first, to the lightest).
  An epoch's last step may hold fewer records, as in the per-record recipe.
* ``packed_kl``: the loss. The decoder's last hidden states are gathered at the
  supervised positions only; the output layer is applied to them in chunks of
  ``chunk_size`` positions, each recomputed in the backward pass
  (``torch.utils.checkpoint``), so logits never take more than
  chunk_size x vocabulary floats, whatever the sequence length.

Each micro-batch returns sum(KL) x micro-batches x processes / records of its
step; the Trainer divides by the grad-accum steps and DDP averages over the
processes, so the optimizer sees the mean KL over the step's records: the
per-record recipe's loss, with the same meaning for every logged value.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch.utils.checkpoint import checkpoint

from lrkit.maths.losses import sparse_kl  # the per-record loss itself, so the two cannot drift apart
from lrkit.models.generation import left_pad, position_ids_of
from lrkit.models.loading import decoder_and_head


@dataclass
class Unit:
    """One token sequence and the records it supervises."""

    ids: list
    """Token ids of the sequence (a window of prompt + rollout)."""
    members: list = field(default_factory=list)
    """(record index, position in ``ids``) pairs, by position."""


def _is_prefix(short: Sequence[int], long: Sequence[int]) -> bool:
    return len(short) <= len(long) and list(long[:len(short)]) == list(short)


def pack_units(inputs: Sequence[Sequence[int]], max_length: int) -> list[Unit]:
    """Units from each record's full (untruncated) input ids.

    Sorted lexicographically, the inputs that are prefixes of one sequence come
    one after the other, each a prefix of the next; a record that is not a
    prefix of its successor ends its group. Records whose input fits in
    ``max_length`` share the group's window [0, longest); a longer record keeps
    its own last ``max_length`` tokens, as the per-record recipe does.
    """
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    if any(len(ids) == 0 for ids in inputs):
        raise ValueError("a record has no input ids (empty prompt and prefix)")
    order = sorted(range(len(inputs)), key=lambda i: list(inputs[i]))
    groups, current = [], []
    for position, index in enumerate(order):
        current.append(index)
        following = order[position + 1] if position + 1 < len(order) else None
        if following is None or not _is_prefix(inputs[index], inputs[following]):
            groups.append(current)
            current = []
    units = []
    for group in groups:
        fitting = [i for i in group if len(inputs[i]) <= max_length]
        if fitting:
            longest = max(fitting, key=lambda i: len(inputs[i]))
            unit = Unit(list(inputs[longest]))
            unit.members = sorted(((i, len(inputs[i]) - 1) for i in fitting), key=lambda m: (m[1], m[0]))
            units.append(unit)
        for i in group:
            if len(inputs[i]) > max_length:
                units.append(Unit(list(inputs[i][-max_length:]), [(i, max_length - 1)]))
    return units


@dataclass
class MicroBatch:
    """What one process reads in one micro-step."""

    sequences: list
    """Token id lists, one per unit piece."""
    positions: list
    """For each sequence, its supervised positions (one per record)."""
    records: list
    """Record indices, in the order of the positions (sequence by sequence)."""
    step_records: int
    """Records in the whole optimizer step (every micro-batch and process)."""


def schedule(units: Sequence[Unit], records_per_step: int, micro_batches: int, max_steps: int,
             seed: int) -> list[list[MicroBatch]]:
    """``max_steps`` optimizer steps, each a list of ``micro_batches`` micro-batches
    (grad-accum x processes; slot g x processes + rank is read by ``rank`` at micro-step g).

    Epoch e shuffles the units with ``torch.Generator().manual_seed(seed + e)``; the
    first steps do not depend on ``max_steps``, so a resumed run that raises it
    replays the same order.
    """
    total = sum(len(u.members) for u in units)
    if total == 0:
        raise ValueError("no records to schedule")
    steps: list[list[MicroBatch]] = []
    epoch = 0
    while len(steps) < max_steps:
        order = torch.randperm(len(units), generator=torch.Generator().manual_seed(seed + epoch)).tolist()
        stream = [(u, member) for u in order for member in units[u].members]
        for start in range(0, len(stream), records_per_step):
            if len(steps) == max_steps:
                break
            steps.append(_deal(units, stream[start:start + records_per_step], micro_batches))
        epoch += 1
    return steps


def _deal(units: Sequence[Unit], chunk: list, micro_batches: int) -> list[MicroBatch]:
    """One step: its records as sequences, dealt to ``micro_batches`` slots."""
    pieces: list[tuple[int, list]] = []
    for unit_index, member in chunk:
        if pieces and pieces[-1][0] == unit_index:
            pieces[-1][1].append(member)
        else:
            pieces.append((unit_index, [member]))
    loads = [0] * micro_batches
    slots: list[list] = [[] for _ in range(micro_batches)]
    by_length = sorted(pieces, key=lambda piece: -(max(p for _, p in piece[1]) + 1))
    for unit_index, members in by_length:
        lightest = min(range(micro_batches), key=lambda s: (loads[s], s))
        length = max(p for _, p in members) + 1
        slots[lightest].append((units[unit_index].ids[:length], members))
        loads[lightest] += length
    return [MicroBatch(sequences=[ids for ids, _ in slot],
                       positions=[[p for _, p in members] for _, members in slot],
                       records=[i for _, members in slot for i, _ in members],
                       step_records=len(chunk)) for slot in slots]


@dataclass
class PackedCollator:
    """One MicroBatch (the Trainer's batch size is 1) into tensors.

    Sequences are left-padded, with position ids that count real tokens only;
    ``rows`` / ``cols`` address each supervised position in the padded batch.
    A slot a step left empty becomes one pad token with no targets: it still
    runs forward and backward (DDP needs every process to), with loss 0.
    """

    pad_token_id: int
    targets: Sequence[tuple]
    """(target ids, target weights) of every record, by record index."""

    def __call__(self, features: Sequence[MicroBatch]) -> dict[str, torch.Tensor]:
        if len(features) != 1:
            raise ValueError("packed training reads one micro-batch per process and micro-step")
        batch = features[0]
        sequences = batch.sequences or [[self.pad_token_id]]
        input_ids, attention_mask = left_pad(sequences, self.pad_token_id, "cpu")
        width = input_ids.shape[1]
        rows, cols = [], []
        for row, (sequence, positions) in enumerate(zip(batch.sequences, batch.positions)):
            for position in positions:
                rows.append(row)
                cols.append(width - len(sequence) + position)
        k = max([len(self.targets[i][0]) for i in batch.records] or [1])
        target_ids = torch.zeros((len(batch.records), k), dtype=torch.long)
        target_weights = torch.zeros((len(batch.records), k), dtype=torch.float32)
        for n, record in enumerate(batch.records):
            ids, weights = self.targets[record]
            target_ids[n, :len(ids)] = torch.as_tensor(ids, dtype=torch.long)
            target_weights[n, :len(weights)] = torch.as_tensor(weights, dtype=torch.float32)
        return {"input_ids": input_ids, "attention_mask": attention_mask,
                "position_ids": position_ids_of(attention_mask),
                "rows": torch.as_tensor(rows, dtype=torch.long), "cols": torch.as_tensor(cols, dtype=torch.long),
                "target_ids": target_ids, "target_weights": target_weights,
                "step_records": torch.tensor(batch.step_records, dtype=torch.long)}


def _chunk_kl(head, hidden, target_ids, target_weights, vocab_size):
    return sparse_kl(head(hidden), target_ids, target_weights, vocab_size)


def packed_kl(model, batch: dict, vocab_size: int, chunk_size: int = 64) -> torch.Tensor:
    """KL(v_C || pi_E) at every supervised position of a packed batch, one value per record.

    The model runs through its own forward (so DDP and peft hooks run) with
    logits for one position only; a forward hook on the decoder keeps its last
    hidden states, of which only the supervised positions reach the output layer.
    """
    parts = decoder_and_head(model)
    if parts is None:
        raise ValueError(f"packed training needs logits that are a linear map of the last hidden state; "
                         f"{type(model).__name__} scales or caps them: train with --packing off")
    decoder, head = parts
    captured: list[torch.Tensor] = []

    def keep(_module, _inputs, output):
        captured.append(output[0] if isinstance(output, tuple) else output.last_hidden_state)

    handle = decoder.register_forward_hook(keep)
    try:
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
              position_ids=batch["position_ids"], logits_to_keep=1, use_cache=False)
    finally:
        handle.remove()
    hidden = captured[-1]
    if batch["rows"].numel() == 0:
        return hidden.sum() * 0.0  # an empty slot: nothing supervised, every parameter still in the graph
    selected = hidden[batch["rows"], batch["cols"]]
    pieces = []
    for start in range(0, selected.shape[0], chunk_size):
        part = (selected[start:start + chunk_size], batch["target_ids"][start:start + chunk_size],
                batch["target_weights"][start:start + chunk_size])
        if selected.shape[0] > chunk_size and torch.is_grad_enabled():
            pieces.append(checkpoint(_chunk_kl, head, *part, vocab_size, use_reentrant=False))
        else:
            pieces.append(_chunk_kl(head, *part, vocab_size))
    return torch.cat(pieces)
