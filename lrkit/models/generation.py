"""Batched generation with left padding: greedy, sampled as a checkpoint samples, or by
the soft label's argmax.

Greedy decoding is stated explicitly (do_sample=False on a fresh GenerationConfig),
never inherited from a checkpoint's generation_config, which for many instruct models
samples at temperature 0.6-0.7; :func:`checkpoint_generate_batch` is the one place that
takes the checkpoint's settings, on purpose and seeded.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import torch
from transformers import GenerationConfig, LogitsProcessorList

from lrkit.maths.divergence import contrastive_scores, log_probs
from lrkit.maths.selection import plausibility_mask
from lrkit.models.guard import FiniteLogits
from lrkit.models.loading import decoder_and_head, scored_vocab_size


@dataclass
class Generation:
    token_ids: list[int]
    """Generated ids, cut just after the first stop id (the stop id is kept)."""
    finished: bool
    """True when a stop id ended the generation before max_new_tokens ran out."""


END_OF_TURN_PROBE = "LRKIT0END0OF0TURN"


def end_of_turn_id(tokenizer) -> Optional[int]:
    """The special token a chat template closes an assistant turn with (Qwen's
    ``<|im_end|>``, Llama 3's ``<|eot_id|>``), or None.

    A base model prompted through its chat template (Qwen2.5-Math-1.5B: EOS
    ``<|endoftext|>``) ends its answer with that token; without it as a stop id
    the rollout would run on past the answer, and its steps after the turn's end
    would become records. Found by rendering a turn, not from a list of names.
    """
    if not getattr(tokenizer, "chat_template", None):
        return None
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "1"}, {"role": "assistant", "content": END_OF_TURN_PROBE}],
            tokenize=False)
    except Exception:  # a template that refuses this conversation names no end of turn
        return None
    if END_OF_TURN_PROBE not in text:
        return None
    after = text.split(END_OF_TURN_PROBE, 1)[1]
    ids = tokenizer(after, add_special_tokens=False)["input_ids"] if after else []
    special = {i for i, token in getattr(tokenizer, "added_tokens_decoder", {}).items() if token.special}
    special |= set(getattr(tokenizer, "all_special_ids", []))
    return int(ids[0]) if ids and ids[0] in special else None


def stop_token_ids(model, tokenizer) -> list[int]:
    """EOS ids from the tokenizer and the model's own generation config, and the
    chat template's end-of-turn token."""
    ids: list[int] = []
    for source in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None),
                   end_of_turn_id(tokenizer)):
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


def position_ids_of(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that count real tokens only (left padding gets position 0), as in
    generation, the sampler's teacher-forced passes and training."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


def cut_at_stop(ids: Iterable[int], stop_ids: Sequence[int]) -> Generation:
    out: list[int] = []
    stops = set(stop_ids)
    for token in ids:
        out.append(int(token))
        if token in stops:
            return Generation(out, True)
    return Generation(out, False)


def _generation_inputs(model, tokenizer, prompts: Sequence[Sequence[int]], stop_ids: Optional[Sequence[int]]):
    """What both generate() calls take: the stop ids and the pad id, the left-padded batch on
    the model's device, the output rows that belong to no token (suppressed) and how many are scored."""
    stop_ids = list(stop_ids or stop_token_ids(model, tokenizer))
    pad_id = pad_token_id(tokenizer, stop_ids)
    input_ids, attention_mask = left_pad(prompts, pad_id, next(model.parameters()).device)
    rows, scored = model.get_output_embeddings().weight.shape[0], scored_vocab_size(tokenizer)
    return stop_ids, pad_id, input_ids, attention_mask, (list(range(scored, rows)) if rows > scored else None), scored


@torch.inference_mode()
def greedy_generate_batch(model, tokenizer, prompts: Sequence[Sequence[int]], max_new_tokens: int,
                          stop_ids: Optional[Sequence[int]] = None) -> list[Generation]:
    """Greedy continuations of one batch of prompt id lists.

    Output rows beyond the tokenizer (padding of the output layer) and trailing
    placeholder tokens (``[PAD151665]``...) are never chosen: they belong to no text.
    NaN or inf among the scored logits raises :class:`NonFiniteLogitsError`
    (:class:`lrkit.models.guard.FiniteLogits`) instead of decoding garbage.
    """
    stop_ids, pad_id, input_ids, attention_mask, unscored, scored = _generation_inputs(model, tokenizer, prompts,
                                                                                      stop_ids)
    config = GenerationConfig(
        do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
        eos_token_id=stop_ids, pad_token_id=pad_id,
        temperature=None, top_p=None, top_k=None,
    )
    guard = FiniteLogits(scored, suppress_rest=unscored is not None)  # the unscored rows: -inf
    out = model.generate(input_ids=input_ids, attention_mask=attention_mask,
                         generation_config=config, logits_processor=LogitsProcessorList([guard]))
    new = out[:, input_ids.shape[1]:].tolist()
    return [cut_at_stop(row, stop_ids) for row in new]


@torch.inference_mode()
def checkpoint_generate_batch(model, tokenizer, prompts: Sequence[Sequence[int]], max_new_tokens: int,
                              stop_ids: Optional[Sequence[int]] = None, seed: int = 0) -> list[Generation]:
    """Continuations drawn as the checkpoint's own ``generation_config`` draws them, as a
    plain ``model.generate(**inputs, max_new_tokens=...)`` does (the authors' sampling
    script): DeepSeek-R1-Distill-Qwen samples at temperature 0.6, top-p 0.95 (with
    transformers' default top-k 50); a checkpoint without sampling settings decodes greedily.

    Reproducible: the draws come from a generator seeded with ``seed`` (the global random
    state is left as it was), so the same batch and seed give the same tokens. Only the
    stop ids, the padding, the length and the rows that belong to no text are set here.
    """
    import copy

    stop_ids, pad_id, input_ids, attention_mask, unscored, scored = _generation_inputs(model, tokenizer, prompts,
                                                                                      stop_ids)
    config = copy.deepcopy(model.generation_config)
    config.max_new_tokens, config.max_length = max_new_tokens, None
    config.eos_token_id, config.pad_token_id = stop_ids, pad_id
    config.suppress_tokens = unscored
    devices = [input_ids.device] if input_ids.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        out = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=config,
                             logits_processor=LogitsProcessorList([FiniteLogits(scored)]))
    new = out[:, input_ids.shape[1]:].tolist()
    return [cut_at_stop(row, stop_ids) for row in new]


def greedy_generate(model, tokenizer, prompts: Sequence[Sequence[int]], max_new_tokens: int,
                    batch_size: int = 16, progress: bool = False,
                    stop_ids: Optional[Sequence[int]] = None) -> list[Generation]:
    """Greedy continuations of many prompts, batched by prompt length to save padding.

    Results come back in the order of ``prompts``.
    """
    return _in_length_batches(
        lambda batch: greedy_generate_batch(model, tokenizer, batch, max_new_tokens, stop_ids),
        prompts, batch_size, "generating" if progress else None)


def length_batches(prompts: Sequence[Sequence[int]], batch_size: int) -> list[list[int]]:
    """Indices of ``prompts`` in batches of ``batch_size``, shortest prompts first (little
    padding): the batches :func:`greedy_generate` generates, so a caller that saves them one
    by one can resume with the same batches."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def _in_length_batches(generate_batch, prompts: Sequence[Sequence[int]], batch_size: int,
                       progress: Optional[str]) -> list[Generation]:
    """Run ``generate_batch`` over prompts sorted by length (little padding);
    results in the order of ``prompts``. ``progress``: the bar's label, or None."""
    results: list[Optional[Generation]] = [None] * len(prompts)
    batches = length_batches(prompts, batch_size)
    if progress:
        from tqdm.auto import tqdm
        batches = tqdm(batches, desc=progress, unit="batch")
    for batch in batches:
        for i, gen in zip(batch, generate_batch([prompts[i] for i in batch])):
            results[i] = gen
    return results  # type: ignore[return-value]


def _cache_argument(model) -> str:
    """The forward() keyword for the KV cache: ``cache`` in newer transformers."""
    import inspect

    parameters = inspect.signature(model.forward).parameters
    return "cache" if "cache" in parameters and "past_key_values" not in parameters else "past_key_values"


def _cache_of(output):
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


@torch.inference_mode()
def contrastive_generate_batch(pair, prompts: Sequence[Sequence[int]], max_new_tokens: int, alpha: float,
                               stop_ids: Optional[Sequence[int]] = None) -> list[Generation]:
    """Decode by following the method's own target: at each step the token that
    maximises log pi_E - log pi_A inside the plausibility mask (the argmax of
    the soft label v_C). Both models read the same prefix, with KV caches.

    This is inference-time contrastive decoding with the paper's alpha; it shows
    what the soft labels would make of the expert if it followed them exactly,
    which says whether a pair's contrast points towards better answers at all.
    """
    tokenizer, vocab = pair.tokenizer, pair.vocab_size
    stop_ids = list(stop_ids or stop_token_ids(pair.expert, tokenizer))
    pad_id = pad_token_id(tokenizer, stop_ids)
    device = pair.device
    ids, mask = left_pad(prompts, pad_id, device)
    positions = position_ids_of(mask)
    models = (pair.expert, pair.amateur)
    keys = [_cache_argument(m) for m in models]
    outputs = [m(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                 logits_to_keep=1) for m in models]
    caches = [_cache_of(o) for o in outputs]
    logits = [o.logits[:, -1] for o in outputs]
    stops = torch.tensor(stop_ids, device=device)
    done = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    chosen = []
    for _ in range(max_new_tokens):
        expert_logp, amateur_logp = (log_probs(x.float(), vocab) for x in logits)
        scores = contrastive_scores(expert_logp, amateur_logp, plausibility_mask(expert_logp, alpha))
        token = torch.where(done, torch.full_like(done, pad_id, dtype=torch.long), scores.argmax(-1))
        chosen.append(token)
        done |= torch.isin(token, stops)
        if bool(done.all()):
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        positions = positions[:, -1:] + 1
        outputs = [m(input_ids=token[:, None], attention_mask=mask, position_ids=positions, use_cache=True,
                     logits_to_keep=1, **{key: cache})
                   for m, key, cache in zip(models, keys, caches)]
        caches = [_cache_of(o) for o in outputs]
        logits = [o.logits[:, -1] for o in outputs]
    if not chosen:
        return [Generation([], False) for _ in prompts]
    rows = torch.stack(chosen, dim=1).tolist()
    return [cut_at_stop(row, stop_ids) for row in rows]


def contrastive_generate(pair, prompts: Sequence[Sequence[int]], max_new_tokens: int, alpha: float = 0.2,
                         batch_size: int = 16, progress: bool = False) -> list[Generation]:
    """:func:`contrastive_generate_batch` over many prompts, batched by length,
    results in the order of ``prompts``."""
    return _in_length_batches(
        lambda batch: contrastive_generate_batch(pair, batch, max_new_tokens, alpha),
        prompts, batch_size, "contrastive decoding" if progress else None)


@torch.inference_mode()
def last_positions_hidden(model, input_ids, attention_mask, n_last: int):
    """Hidden states of the last ``n_last`` positions and the head that turns them
    into logits (one forward pass). Falls back to logits for exotic models."""
    parts = decoder_and_head(model)
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask,
                  position_ids=position_ids_of(attention_mask), use_cache=False)
    if parts is None:
        logits = model(**kwargs, logits_to_keep=n_last).logits
        return logits[:, -n_last:], None
    decoder, head = parts
    hidden = decoder(**kwargs).last_hidden_state[:, -n_last:]
    return hidden, head


def to_logits(states: torch.Tensor, head) -> torch.Tensor:
    """Logits from :func:`last_positions_hidden`'s answer: ``head(states)``, or the states
    themselves when they already are logits (``head`` None)."""
    return states if head is None else head(states)
