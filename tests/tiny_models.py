"""Tiny tokenizers and models built in memory and saved with save_pretrained, so
lrkit's real loading code runs without a network."""
from __future__ import annotations

import string
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

SPECIALS = ["<pad>", "<eos>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def make_tokenizer(chars: str = string.ascii_letters + string.digits + " .,+-*/=?\n#$",
                   chat_template: bool = True) -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for ch in chars:
        vocab.setdefault(ch, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    backend.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<pad>",
                                  additional_special_tokens=SPECIALS[2:])
    if chat_template:
        tok.chat_template = CHAT_TEMPLATE
    return tok


def make_model(tokenizer, seed: int, hidden: int = 32, layers: int = 2, extra_rows: int = 0,
               eos_boost: float = 0.0) -> Qwen2ForCausalLM:
    """A random Qwen2 whose output layer may have ``extra_rows`` beyond the tokenizer.

    ``eos_boost`` lengthens the EOS row of the output layer so some rollouts stop early.
    """
    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=len(tokenizer) + extra_rows, hidden_size=hidden,
                         intermediate_size=2 * hidden, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=False, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    model = Qwen2ForCausalLM(config)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
        model.lm_head.weight[tokenizer.eos_token_id] *= (1.0 + eos_boost)
    return model.eval()


def save_pair(root: Path, expert_rows: int = 3, seeds=(1, 2), eos_boost: float = 0.0,
              amateur_tokenizer=None) -> tuple[Path, Path]:
    """Save an expert (output layer padded by ``expert_rows``) and an amateur."""
    tokenizer = make_tokenizer()
    paths = []
    for role, seed, rows, layers in (("expert", seeds[0], expert_rows, 2), ("amateur", seeds[1], 0, 1)):
        tok = amateur_tokenizer if (role == "amateur" and amateur_tokenizer is not None) else tokenizer
        model = make_model(tok, seed, layers=layers, extra_rows=rows, eos_boost=eos_boost)
        path = Path(root) / role
        model.save_pretrained(path)
        tok.save_pretrained(path)
        paths.append(path)
    return paths[0], paths[1]
