"""Batched greedy generation with left padding.

Decoding is always stated explicitly (do_sample=False on a fresh
GenerationConfig), never inherited from a checkpoint's generation_config, which
for many instruct models samples at temperature 0.6-0.7.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import torch
from transformers import GenerationConfig


@dataclass
class Generation:
    token_ids: list[int]
    """Generated ids, cut just after the first stop id (the stop id is kept)."""
    finished: bool
    """True when a stop id ended the generation before max_new_tokens ran out."""


def stop_token_ids(model, tokenizer) -> list[int]:
    """EOS ids from the tokenizer and the model's own generation config."""
    ids: list[int] = []
    for source in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if source is None:
            continue
        for i in source if isinstance(source, (list, tuple)) else [source]:
            if i not in ids:
                ids.append(int(i))
    if not ids:
        raise ValueError("neither the tokenizer nor the model defines an EOS token; "
                         "greedy rollouts would never stop")
    return ids


def pad_token_id(tokenizer, stop_ids: Sequence[int]) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if len(seq):
            ids[row, width - len(seq):] = torch.as_tensor(list(seq), dtype=torch.long)
            mask[row, width - len(seq):] = 1
    return ids.to(device), mask.to(device)


def cut_at_stop(ids: Iterable[int], stop_ids: Sequence[int]) -> Generation:
    out: list[int] = []
    stops = set(stop_ids)
    for token in ids:
        out.append(int(token))
        if token in stops:
            return Generation(out, True)
    return Generation(out, False)


@torch.inference_mode()
def greedy_generate_batch(model, tokenizer, prompts: Sequence[Sequence[int]], max_new_tokens: int,
                          stop_ids: Optional[Sequence[int]] = None) -> list[Generation]:
    """Greedy continuations of one batch of prompt id lists.

    Output rows beyond the tokenizer (padding of the output layer) are never
    chosen: they belong to no token.
    """
    stop_ids = list(stop_ids or stop_token_ids(model, tokenizer))
    pad_id = pad_token_id(tokenizer, stop_ids)
    device = next(model.parameters()).device
    input_ids, attention_mask = left_pad(prompts, pad_id, device)
    rows = model.get_output_embeddings().weight.shape[0]
    config = GenerationConfig(
        do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
        eos_token_id=stop_ids, pad_token_id=pad_id,
        temperature=None, top_p=None, top_k=None,
        suppress_tokens=list(range(len(tokenizer), rows)) if rows > len(tokenizer) else None,
    )
    out = model.generate(input_ids=input_ids, attention_mask=attention_mask,
                         generation_config=config)
    new = out[:, input_ids.shape[1]:].tolist()
    return [cut_at_stop(row, stop_ids) for row in new]


def greedy_generate(model, tokenizer, prompts: Sequence[Sequence[int]], max_new_tokens: int,
                    batch_size: int = 16, progress: bool = False,
                    stop_ids: Optional[Sequence[int]] = None) -> list[Generation]:
    """Greedy continuations of many prompts, batched by prompt length to save padding.

    Results come back in the order of ``prompts``.
    """
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: list[Optional[Generation]] = [None] * len(prompts)
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if progress:
        from tqdm.auto import tqdm
        batches = tqdm(batches, desc="generating", unit="batch")
    for batch in batches:
        outs = greedy_generate_batch(model, tokenizer, [prompts[i] for i in batch],
                                     max_new_tokens, stop_ids)
        for i, gen in zip(batch, outs):
            results[i] = gen
    return results  # type: ignore[return-value]
