"""One soft-label training step: lrkit's against the authors' recipe, at Qwen's vocabulary.

    python perf/bench_train_step.py                 # CPU: batch 8, lengths 32..256
    python perf/bench_train_step.py --device cuda   # GPU: peak from the CUDA allocator

Both variants train the same random Qwen2 (vocabulary 151936, hidden 256, 2
layers, tied embeddings) with the same LoRA (lrkit's add_lora: r 8, q_proj +
v_proj), the same AdamW and the same 8 examples of lengths spread over 32..256.

- lrkit: left padding, logits of the last position only (``logits_to_keep=1``),
  sparse targets, KL in float32 (``lrkit.stages.training.soft_label_kl``);
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

One epoch, packed against per-record (``--epoch``): the same records, the same
LoRA and AdamW, the paper's batch (8 records x grad-accum 2 per step), each
variant in a fresh subprocess, one after the other:

    python perf/bench_train_step.py --epoch                  # paper-shaped records, see below
    python perf/bench_train_step.py --epoch --records runs/demo/sampling/records.jsonl \
        --expert toy:expert --batch 16 --grad-accum 1                # the demo's records and model

Paper-shaped records (``paper_shaped_records``): ``--rollouts`` rollouts of 128
tokens after prompts of 80..120 tokens, each step after the first kept with
probability 0.2 (about 25 records a rollout), targets of 1..5 ids; the model is
a random Qwen2.5-Math-1.5B (perf/configs: hidden 1536, vocabulary 151936,
tied embeddings) with ``--layers`` of its 28 layers. Reported per variant:
token-forwards (tokens the model reads, without and with left padding), the
epoch's wall time (forward, loss, backward, optimizer step; one warm-up step
first, not counted) and the peak memory during the epoch, measured as above.
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
from lrkit.stages.packing import PackedCollator, pack_units, packed_kl, schedule  # noqa: E402
from lrkit.stages.training import SoftLabelCollator, add_lora, build_examples, soft_label_kl  # noqa: E402

CONFIGS = Path(__file__).resolve().parent / "configs"

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
EPOCH_VARIANTS = ("per-record", "packed")


# ---------------------------------------------------------------- one epoch, packed vs per-record

def paper_shaped_records(rollouts: int, seed: int = 0, new_tokens: int = 128, keep: float = 0.2,
                         vocab: int = AUTHORS_VOCAB, prompt_lengths: tuple = (80, 120),
                         first_id: int = 0) -> list[dict]:
    """Records shaped like the paper's sampling output (see the module docstring);
    token ids in [first_id, vocab)."""
    generator = torch.Generator().manual_seed(seed)
    records = []
    for r in range(rollouts):
        prompt_length = int(torch.randint(prompt_lengths[0], prompt_lengths[1] + 1, (1,), generator=generator))
        prompt = torch.randint(first_id, vocab, (prompt_length,), generator=generator).tolist()
        rollout = torch.randint(first_id, vocab, (new_tokens,), generator=generator).tolist()
        for step in range(1, new_tokens):
            if float(torch.rand((), generator=generator)) >= keep:
                continue
            k = int(torch.randint(1, 6, (1,), generator=generator))
            records.append({"prompt_id": f"p{r}", "prompt_token_ids": prompt, "prefix_token_ids": rollout[:step],
                            "token_ids": torch.randperm(vocab - first_id, generator=generator)[:k].add(first_id).tolist(),
                            "weights": torch.softmax(torch.randn(k, generator=generator), 0).tolist()})
    return records


def paper_model(layers: int, device: str):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    values = json.loads((CONFIGS / "qwen2.5-math-1.5b.json").read_text())
    values = {k: v for k, v in values.items() if not k.startswith("_")}
    values["num_hidden_layers"] = layers
    torch.manual_seed(0)
    return Qwen2ForCausalLM(Qwen2Config(**values))


def epoch_plan(records, variant: str, batch: int, grad_accum: int, seed: int = 0):
    """The micro-batches of one epoch, each as (kind, payload, records in its step)."""
    examples = build_examples(records, tokenizer=None, max_length=512)
    per_step = batch * grad_accum
    if variant == "packed":
        inputs = [list(r["prompt_token_ids"]) + list(r["prefix_token_ids"]) for r in records]
        steps = schedule(pack_units(inputs, 512), per_step, grad_accum, -(-len(records) // per_step), seed)
        return examples, [[m for m in step] for step in steps]
    order = torch.randperm(len(records), generator=torch.Generator().manual_seed(seed)).tolist()
    steps = []
    for start in range(0, len(order), per_step):
        chunk = order[start:start + per_step]
        steps.append([chunk[i:i + batch] for i in range(0, len(chunk), batch)])
    return examples, steps


def epoch_step(model, optimizer, examples, variant: str, vocab: int, pad: int, device: str,
               autocast=None):
    """One optimizer step over a step of ``epoch_plan``: forward, loss, backward, AdamW."""
    import contextlib

    collate = (PackedCollator(pad, [(e["target_ids"], e["target_weights"]) for e in examples])
               if variant == "packed" else SoftLabelCollator(pad))
    cuda = device.startswith("cuda")

    def step(micro_batches) -> float:
        total, count = 0.0, sum(len(m.records) if variant == "packed" else len(m) for m in micro_batches)
        for micro in micro_batches:
            features = [micro] if variant == "packed" else [examples[i] for i in micro]
            batch = {k: v.to(device) for k, v in collate(features).items()}
            with autocast or contextlib.nullcontext():
                kl = (packed_kl(model, batch, vocab) if variant == "packed" else soft_label_kl(model, batch, vocab))
            (kl.sum() / count).backward()
            total += kl.sum().item()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        return total / count

    return step


def token_counts(examples, steps, variant: str) -> tuple[int, int]:
    """(token-forwards, token-forwards with left padding) of an epoch."""
    plain = padded = 0
    for step in steps:
        for micro in step:
            lengths = ([len(s) for s in micro.sequences] if variant == "packed"
                       else [len(examples[i]["input_ids"]) for i in micro])
            if lengths:
                plain += sum(lengths)
                padded += len(lengths) * max(lengths)
    return plain, padded


def run_epoch(variant: str, args) -> dict:
    torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    before_model = torch.cuda.memory_allocated() if cuda else _kib("VmRSS") * 1024
    if args.records:
        from lrkit.models.loading import load_model, load_tokenizer, resolve_member, scored_vocab_size
        from lrkit.data.records import read_records

        expert = resolve_member(args.expert)
        model, _ = load_model(expert, device="cpu", dtype="fp32", with_tokenizer=False)
        vocab, pad = scored_vocab_size(load_tokenizer(expert)), 0
        records = read_records(args.records)
    else:
        model, vocab, pad = paper_model(args.layers, args.device), TOKENIZER_LEN, PAD_ID
        records = paper_shaped_records(args.rollouts)
    model = add_lora(model, TrainConfig(lora_dropout=0.0)).to(args.device).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-5)
    examples, steps = epoch_plan(records, variant, args.batch, args.grad_accum)

    step = epoch_step(model, optimizer, examples, variant, vocab, pad, args.device)

    step(steps[0])  # warm-up (not counted): optimizer state, kernels
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")
    start = time.perf_counter()
    losses = [step(s) for s in steps]
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if cuda else _kib("VmHWM") * 1024
    plain, padded = token_counts(examples, steps, variant)
    return {"variant": variant, "records": len(records), "steps": len(steps), "token_forwards": plain,
            "padded_token_forwards": padded, "epoch_s": seconds, "peak_mib": peak / 2**20,
            "model_plus_step_mib": (peak - before_model) / 2**20, "first_loss": losses[0],
            "mean_loss": sum(losses) / len(losses)}


def compare_epochs(args, forwarded) -> dict:
    results = {}
    for name in EPOCH_VARIANTS:
        out = subprocess.run([sys.executable, __file__, *forwarded, "--variant", name],
                             check=True, capture_output=True, text=True).stdout
        results[name] = json.loads(out.strip().splitlines()[-1])
    plain, packed = results["per-record"], results["packed"]
    shape = (f"records {args.records} on {args.expert}" if args.records else
             f"paper-shaped records, {args.rollouts} rollouts, random Qwen2.5-Math-1.5B with {args.layers} layers")
    print(f"one epoch: {shape}; batch {args.batch} x grad-accum {args.grad_accum}, {args.device}, "
          f"{args.threads} threads")
    print(f"{'variant':11} {'records':>7} {'steps':>5} {'token-fwd':>10} {'padded':>10} {'epoch s':>8} "
          f"{'peak MiB':>9} {'model+step':>10} {'mean loss':>9}")
    for r in results.values():
        print(f"{r['variant']:11} {r['records']:7d} {r['steps']:5d} {r['token_forwards']:10d} "
              f"{r['padded_token_forwards']:10d} {r['epoch_s']:8.2f} {r['peak_mib']:9.1f} "
              f"{r['model_plus_step_mib']:10.1f} {r['mean_loss']:9.4f}")
    ratios = {"token_forwards": plain["token_forwards"] / packed["token_forwards"],
              "padded_token_forwards": plain["padded_token_forwards"] / packed["padded_token_forwards"],
              "wall_time": plain["epoch_s"] / packed["epoch_s"],
              "peak_memory": plain["peak_mib"] / packed["peak_mib"],
              "model_plus_step_memory": plain["model_plus_step_mib"] / packed["model_plus_step_mib"]}
    print("per-record / packed: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
    return {"results": results, "ratios": ratios}


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
    parser.add_argument("--epoch", action="store_true", help="one epoch, packed vs per-record")
    parser.add_argument("--grad-accum", type=int, default=2, help="--epoch: micro-batches per step")
    parser.add_argument("--rollouts", type=int, default=16, help="--epoch: paper-shaped rollouts")
    parser.add_argument("--records", default=None, help="--epoch: a records.jsonl instead of paper-shaped records")
    parser.add_argument("--expert", default="toy:expert", help="--epoch with --records: the model they train")
    parser.add_argument("--json", default=None, help="--epoch: also write the results to this file")
    parser.add_argument("--variant", choices=sorted(VARIANTS) + list(EPOCH_VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.variant:  # child process
        result = run_epoch(args.variant, args) if args.epoch else run_variant(args.variant, args)
        print(json.dumps(result))
        return 0

    forwarded = [a for a in (argv if argv is not None else sys.argv[1:])]
    if args.epoch:
        report = compare_epochs(args, forwarded)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        return 0
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
