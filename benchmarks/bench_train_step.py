"""One soft-label training step: lrkit's against the authors' recipe, at Qwen's vocabulary.

    python benchmarks/bench_train_step.py                 # CPU: batch 8, lengths 32..256
    python benchmarks/bench_train_step.py --device cuda   # GPU: peak from the CUDA allocator

Both variants train the same random Qwen2 (vocabulary 151936, hidden 256, 2
layers, tied embeddings) with the same LoRA (lrkit's add_lora: r 8, q_proj +
v_proj), the same AdamW and the same 8 examples of lengths spread over 32..256.

- lrkit: left padding, logits of the last position only (``logits_to_keep=1``),
  sparse targets, KL in float32 (``lrkit.training.soft_label_kl``);
- authors (LightR_finetuning.py): right padding, logits of every position, a
  dense vocabulary-sized label vector per example, ``logits[:, -1]``,
  ``F.kl_div(log_softmax, labels, reduction="batchmean")``.

A step is forward + loss + backward + optimizer step. Each variant runs in a
fresh subprocess: one warm-up step, then the median of ``--steps`` timed steps.
Memory is the peak during the timed steps (CPU: the resident set's high-water
mark VmHWM, reset after set-up via /proc/self/clear_refs; CUDA: the allocator's
peak), shown three ways: the whole process ("peak": on CPU it includes some
600 MiB of Python, torch and transformers that no step can change); above the
process before the model was built ("model+step": weights, LoRA, optimizer,
batch and the step's tensors, the CPU analogue of CUDA's max_memory_allocated);
and above the set-up ("step": what the step itself adds). Ratios: memory
authors / lrkit (higher is better for lrkit), time lrkit / authors (below 1
means lrkit is faster).

Figures on a CPU (2 cores shared with other jobs, so times are noisy; fp32):

    lengths 32..256   peak MiB   model+step MiB   step MiB   step s
    authors             2039.3           1561.8     1208.2   12.06
    lrkit                847.4            370.0       56.1    3.58
    ratios: memory 2.41x whole process, 4.22x model+step, 21.5x step; time 0.30

    lengths 32..512 (--max-len 512, the paper's max_length)
    authors             3384.9           2907.4     2442.4   41.78
    lrkit               1007.7            530.3      188.5    5.48
    ratios: memory 3.36x whole process, 5.48x model+step, 13.0x step; time 0.13

The authors' extra memory is the all-position logits, 8 x 256 x 151936 floats
(1.16 GiB) at length 256; lrkit's last-position logits take 8 x 151936 (4.6 MiB).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lrkit.config import TrainConfig  # noqa: E402
from lrkit.training import SoftLabelCollator, add_lora, build_examples, soft_label_kl  # noqa: E402

VOCAB_ROWS = 151936     # Qwen2.5-Math-1.5B output rows
TOKENIZER_LEN = 151665  # len(tokenizer) of Qwen2.5: the rows lrkit scores
AUTHORS_VOCAB = 151643  # tokenizer.vocab_size, what the authors' labels span
TOP_K = 5               # ids per soft label (the plausibility mask is usually small)
PAD_ID = 151643


def make_model(hidden: int, layers: int, device: str):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=VOCAB_ROWS, hidden_size=hidden, intermediate_size=4 * hidden,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, tie_word_embeddings=True)
    return add_lora(Qwen2ForCausalLM(config), TrainConfig()).to(device).train()


def make_records(batch: int, max_len: int) -> list[dict]:
    """Records with prompt and prefix ids (lengths evenly spread up to max_len)."""
    generator = torch.Generator().manual_seed(1)
    lengths = torch.linspace(32, max_len, batch).round().int().tolist()
    records = []
    for length in lengths:
        ids = torch.randint(0, AUTHORS_VOCAB, (length,), generator=generator).tolist()
        target = torch.randperm(AUTHORS_VOCAB, generator=generator)[:TOP_K].tolist()
        weights = torch.softmax(torch.randn(TOP_K, generator=generator), 0).tolist()
        records.append({"prompt_token_ids": ids[:16], "prefix_token_ids": ids[16:],
                        "token_ids": target, "weights": weights})
    return records


def lrkit_batch(records, device):
    examples = build_examples(records, tokenizer=None, max_length=512)
    return {k: v.to(device) for k, v in SoftLabelCollator(PAD_ID)(examples).items()}


def lrkit_loss(model, batch):
    return soft_label_kl(model, batch, TOKENIZER_LEN).mean()


def authors_batch(records, device):
    """Their collate_fn: right padding, dense labels over tokenizer.vocab_size."""
    sequences = [torch.tensor(r["prompt_token_ids"] + r["prefix_token_ids"]) for r in records]
    labels = torch.zeros(len(records), AUTHORS_VOCAB)
    for row, r in enumerate(records):
        labels[row, r["token_ids"]] = torch.tensor(r["weights"])
    return {"input_ids": torch.nn.utils.rnn.pad_sequence(sequences, batch_first=True,
                                                         padding_value=PAD_ID).to(device),
            "attention_mask": torch.nn.utils.rnn.pad_sequence([torch.ones_like(s) for s in sequences],
                                                              batch_first=True).to(device),
            "labels": labels.to(device)}


def authors_loss(model, batch):
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    log_probs = F.log_softmax(logits[:, -1, :AUTHORS_VOCAB], dim=-1)
    return F.kl_div(log_probs, batch["labels"], reduction="batchmean")


VARIANTS = {"lrkit": (lrkit_batch, lrkit_loss), "authors": (authors_batch, authors_loss)}


def _kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def run_variant(name: str, args) -> dict:
    """One variant in this process: set-up, warm-up, timed steps, peak memory."""
    make_batch, loss_fn = VARIANTS[name]
    torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    before_model = torch.cuda.memory_allocated() if cuda else _kib("VmRSS") * 1024
    model = make_model(args.hidden, args.layers, args.device)
    batch = make_batch(make_records(args.batch, args.max_len), args.device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-5)

    def step():
        loss = loss_fn(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        return loss.item()

    step()  # warm-up: optimizer state, kernels
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        base = _kib("VmRSS") * 1024
    times, loss = [], None
    for _ in range(args.steps):
        start = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() if cuda else _kib("VmHWM") * 1024
    return {"variant": name, "peak_mib": peak / 2**20, "above_libraries_mib": (peak - before_model) / 2**20,
            "above_setup_mib": (peak - base) / 2**20, "step_s": statistics.median(times), "loss": loss}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-len", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--variant", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.variant:  # child process
        print(json.dumps(run_variant(args.variant, args)))
        return 0

    forwarded = [a for a in (argv if argv is not None else sys.argv[1:])]
    results = {}
    for name in ("authors", "lrkit"):
        out = subprocess.run([sys.executable, __file__, *forwarded, "--variant", name],
                             check=True, capture_output=True, text=True).stdout
        results[name] = json.loads(out.strip().splitlines()[-1])
    print(f"device {args.device}, batch {args.batch}, lengths 32..{args.max_len}, vocabulary {VOCAB_ROWS}, "
          f"hidden {args.hidden}, {args.layers} layers, {args.threads} threads")
    columns = ("peak_mib", "above_libraries_mib", "above_setup_mib")
    print(f"{'variant':8} {'peak MiB':>9} {'model+step MiB':>15} {'step MiB':>9} {'step s':>8} {'loss':>8}")
    for r in results.values():
        print(f"{r['variant']:8} {r['peak_mib']:9.1f} {r['above_libraries_mib']:15.1f} "
              f"{r['above_setup_mib']:9.1f} {r['step_s']:8.3f} {r['loss']:8.4f}")
    a, b = results["authors"], results["lrkit"]
    ratios = [a[c] / max(b[c], 1e-9) for c in columns]
    print(f"memory authors/lrkit: peak {ratios[0]:.2f}x, model+step {ratios[1]:.2f}x, step {ratios[2]:.1f}x")
    print(f"time lrkit/authors: {b['step_s'] / a['step_s']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
