"""The GPU check: lrkit at the paper's scale on one GPU, against the authors' algorithm.

    python perf/gpu_check.py                   # one H100/H200: under 8 minutes
    python perf/gpu_check.py --dry-run         # the same code on the CPU, tiny configs, < 1 minute

Needs nothing beyond this repository and torch/transformers/peft/accelerate: no
network, no downloaded weights. It builds a random-initialised pair with the
architectures of Qwen2.5-Math-1.5B (expert) and Qwen2.5-0.5B (amateur) from
``perf/configs/*.json``, vocabulary 151,936 rows for both, and a
151,665-token tokenizer (Qwen2.5's length). The tied embeddings are scaled so the
logits spread with std ~2 (peaked distributions: masks of a few tokens, most steps
above beta), and the EOS row is zeroed, so no rollout ever stops early: every one
runs the full 128 tokens, the worst case. It measures:

1. sampling: 512 problems x 128 new tokens at batch 64 (lrkit, bf16), against the
   authors' algorithm (batch-1 generate, one amateur pass per prefix; see
   perf/bench_sampling.py) on 8 problems: seconds per problem, their
   ratio, and the share of those 8 problems' kept steps both select;
2. training: 100 steps at the paper's settings (bf16 autocast, batch 8 x grad-accum
   2, lengths up to 512, LoRA q/v r 8) with lrkit's per-record loss (left padding,
   last position logits, sparse labels), against the authors' recipe (right
   padding, all-position logits, dense labels; perf/bench_train_step.py) for
   10 steps: seconds per step and peak GPU memory; then lrkit's merge of the
   adapter. Then packed training (lrkit's default) against per-record on
   paper-shaped records (128-token rollouts, about 20% of steps kept; see
   ``bench_train_step.paper_shaped_records``): 100 packed steps and 20 per-record
   steps of the same schedule, with token-forwards, seconds per step and peak memory;
3. ``lrkit demo`` end to end on CUDA (the toy pair in fp32: its kept steps are
   compared with a CPU run of the demo's sampling stage; the same sampling in bf16
   on CUDA reports whether bf16 changes the rollouts);
4. a projection of the paper's pipeline (1,000 problems sampled, 1,000 packed
   steps trained, one merge) from these numbers, against the authors' 0.5 h on one H200.

Writes ``gpu_check.json`` and ``gpu_check.md`` (one Markdown table) to ``--out``.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "perf"))
sys.path.insert(0, str(ROOT / "tests"))

from bench_sampling import authors_algorithm  # noqa: E402
from bench_train_step import epoch_plan, epoch_step, paper_shaped_records, token_counts  # noqa: E402
from lrkit.config import SampleConfig, TrainConfig  # noqa: E402
from lrkit.models.loading import load_pair  # noqa: E402
from lrkit.stages.sampling import sample  # noqa: E402
from lrkit.stages.training import SoftLabelCollator, add_lora, build_examples, merge, soft_label_kl  # noqa: E402
from tiny_models import CHAT_TEMPLATE, SPECIALS  # noqa: E402

CONFIGS = {"expert": ROOT / "perf" / "configs" / "qwen2.5-math-1.5b.json",
           "amateur": ROOT / "perf" / "configs" / "qwen2.5-0.5b.json"}
TOKENIZER_LEN = 151665  # len(Qwen2.5's tokenizer): the rows lrkit scores
LOGIT_STD = 2.0
AUTHORS_MINUTES = 30.0  # the paper: 0.5 h on one H200 for 1,000 problems and 1,000 steps


@dataclasses.dataclass
class Scale:
    """The run's sizes; --dry-run shrinks every one of them."""

    packed_steps: int = 100
    per_record_steps: int = 20
    prompt_lengths: tuple = (80, 120)
    problems: int = 512
    new_tokens: int = 128
    batch: int = 64
    authors_problems: int = 8
    train_steps: int = 100
    authors_steps: int = 10
    train_batch: int = 8
    grad_accum: int = 2
    max_length: int = 512
    demo: dict = dataclasses.field(default_factory=dict)
    shrink: dict = dataclasses.field(default_factory=dict)
    tokenizer_len: int = TOKENIZER_LEN


DRY = Scale(packed_steps=3, per_record_steps=2, prompt_lengths=(4, 8), problems=12, new_tokens=12, batch=4, authors_problems=2, train_steps=3, authors_steps=2,
            train_batch=2, grad_accum=2, max_length=48,
            demo={"train_problems": 6, "test_problems": 6, "max_steps": 2, "eval_tokens": 24},
            shrink={"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
                    "num_key_value_heads": 2, "vocab_size": 2048,
                    "initializer_range": 0.125},  # at hidden 64 the layers must outweigh the embeddings too
            tokenizer_len=1990)


# ---------------------------------------------------------------- the pair

def build_tokenizer(length: int):
    """A word-level tokenizer of ``length`` entries with a chat template."""
    import string

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for ch in string.ascii_letters + string.digits + " .,+-*/=?\n#$":
        vocab.setdefault(ch, len(vocab))
    for i in range(length - len(vocab)):
        vocab[f"<w{i}>"] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    backend.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>",
                                  unk_token="<pad>", additional_special_tokens=SPECIALS[2:])
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_pair(root: Path, scale: Scale, device: str) -> tuple[Path, Path, dict]:
    """Random Qwen2.5-Math-1.5B / Qwen2.5-0.5B architectures, saved in bf16 (fp32 on a dry run)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_tokenizer(scale.tokenizer_len)
    dtype = torch.float32 if scale.shrink else torch.bfloat16
    sizes = {}
    for role, path in CONFIGS.items():
        values = {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}
        values.update(scale.shrink)
        if scale.shrink:
            values["num_hidden_layers"] = 2 if role == "expert" else 1
        config = Qwen2Config(**values, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                             bos_token_id=None)
        torch.manual_seed(0 if role == "expert" else 1)
        with torch.device(device):
            model = Qwen2ForCausalLM(config).to(dtype)
        with torch.no_grad():
            # Tied embeddings scaled so the logits spread with std ~LOGIT_STD (the final
            # RMSNorm gives hidden states of norm sqrt(hidden)): peaked enough for
            # plausibility masks of a few tokens, as a trained model's, not thousands.
            embeddings = model.get_input_embeddings().weight
            embeddings.normal_(0, LOGIT_STD / config.hidden_size ** 0.5)
            # Random weights must never stop a rollout: the worst case, every one full length.
            embeddings[tokenizer.eos_token_id].zero_()
        sizes[role] = sum(p.numel() for p in model.parameters())
        model.save_pretrained(root / role)
        tokenizer.save_pretrained(root / role)
        del model
    return root / "expert", root / "amateur", sizes


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# ---------------------------------------------------------------- 1. sampling

def check_sampling(expert: Path, amateur: Path, scale: Scale, device: str, dtype: str, root: Path) -> dict:
    pair = load_pair(str(expert), str(amateur), device=device, dtype=dtype)
    problems = [{"id": f"g{i}", "question": f"A farmer has {3 * i + 7} cows and buys {i + 2} more. "
                 f"How many cows does the farmer have now?"} for i in range(scale.problems)]
    config = SampleConfig(max_new_tokens=scale.new_tokens, batch_size=scale.batch)
    synchronize(device)
    start = time.perf_counter()
    result = sample(pair, None, problems, root / "sampling", config, progress=False)
    synchronize(device)
    lrkit_s = time.perf_counter() - start
    subset = problems[:scale.authors_problems]
    start = time.perf_counter()
    reference = authors_algorithm(pair, subset, config)
    synchronize(device)
    authors_s = time.perf_counter() - start
    ids = {p["id"] for p in subset}
    ours = {(r["prompt_id"], r["step"]) for r in result.records() if r["prompt_id"] in ids}
    theirs = set(reference)
    rollout_tokens = result.summary["steps"]
    per_problem = {"lrkit": lrkit_s / len(problems), "authors": authors_s / len(subset)}
    return {"problems": len(problems), "new_tokens": scale.new_tokens, "batch": scale.batch,
            "rollout_tokens": rollout_tokens, "all_full_length": rollout_tokens == len(problems) * scale.new_tokens,
            "lrkit_s": lrkit_s, "authors_problems": len(subset), "authors_s": authors_s,
            "s_per_problem": per_problem, "speedup": per_problem["authors"] / per_problem["lrkit"],
            "kept_steps_lrkit": len(ours), "kept_steps_authors": len(theirs),
            "kept_steps_agreement": len(ours & theirs) / max(len(ours | theirs), 1),
            "same_kept_steps": ours == theirs, "rollout_s": result.summary["rollout_s"], "scoring_s": result.summary["scoring_s"]}


# ---------------------------------------------------------------- 2. training

def synthetic_records(n: int, max_length: int, vocab: int, seed: int = 1) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.linspace(32 if max_length > 64 else 8, max_length, n).round().int().tolist()
    records = []
    for length in lengths:
        ids = torch.randint(len(SPECIALS), vocab, (length,), generator=generator).tolist()
        target = torch.randperm(vocab - len(SPECIALS), generator=generator)[:5].add(len(SPECIALS)).tolist()
        weights = torch.softmax(torch.randn(5, generator=generator), 0).tolist()
        records.append({"prompt_token_ids": ids[:16], "prefix_token_ids": ids[16:], "token_ids": target,
                        "weights": weights})
    return records


def lrkit_step_loss(model, records, vocab: int, device: str):
    examples = build_examples(records, tokenizer=None, max_length=10**6)
    batch = {k: v.to(device) for k, v in SoftLabelCollator(0)(examples).items()}
    return soft_label_kl(model, batch, vocab).mean()


def authors_step_loss(model, records, vocab: int, device: str):
    """Their trainer: right padding, logits of every position, dense labels, logits[:, -1]."""
    import torch.nn.functional as F

    sequences = [torch.tensor(r["prompt_token_ids"] + r["prefix_token_ids"]) for r in records]
    labels = torch.zeros(len(records), vocab, device=device)
    for row, r in enumerate(records):
        labels[row, r["token_ids"]] = torch.tensor(r["weights"], device=device)
    input_ids = torch.nn.utils.rnn.pad_sequence(sequences, batch_first=True, padding_value=0).to(device)
    mask = torch.nn.utils.rnn.pad_sequence([torch.ones_like(s) for s in sequences], batch_first=True).to(device)
    logits = model(input_ids=input_ids, attention_mask=mask).logits
    return F.kl_div(F.log_softmax(logits[:, -1, :vocab].float(), dim=-1), labels, reduction="batchmean")


def time_training(expert: Path, scale: Scale, device: str, variant: str, steps: int, vocab: int,
                  adapter_dir: Path = None) -> dict:
    from transformers import AutoModelForCausalLM

    cuda = device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    model = AutoModelForCausalLM.from_pretrained(str(expert), dtype=dtype).to(device)
    config = TrainConfig(max_length=scale.max_length)  # the paper's LoRA: r 8, alpha 16, q_proj + v_proj
    model = add_lora(model, config).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate)
    loss_fn = lrkit_step_loss if variant == "lrkit" else authors_step_loss
    micro = [synthetic_records(scale.train_batch, scale.max_length, vocab, seed=s) for s in range(scale.grad_accum)]
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()

    def step() -> float:
        total = 0.0
        for records in micro:
            with autocast:
                loss = loss_fn(model, records, vocab, device) / scale.grad_accum
            loss.backward()
            total += loss.item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        return total

    step()  # warm-up: kernels, optimizer state
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    for _ in range(steps):
        start = time.perf_counter()
        losses.append(step())
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    if adapter_dir is not None:
        model.save_pretrained(str(adapter_dir))
    del model, optimizer
    if cuda:
        torch.cuda.empty_cache()
    return {"variant": variant, "steps": steps, "s_per_step": statistics.median(times),
            "peak_gib": peak, "final_loss": losses[-1], "finite": all(map(lambda v: v == v, losses))}


def time_paper_shaped(expert: Path, scale: Scale, device: str, variant: str, steps: int, vocab: int) -> dict:
    """``steps`` optimizer steps of one epoch's schedule over paper-shaped records."""
    from transformers import AutoModelForCausalLM

    cuda = device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    model = AutoModelForCausalLM.from_pretrained(str(expert), dtype=dtype).to(device)
    model = add_lora(model, TrainConfig()).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-5)
    per_step = scale.train_batch * scale.grad_accum
    rollouts = -(-(steps + 1) * per_step // max(1, int(0.2 * scale.new_tokens)))  # enough for steps + warm-up
    records = paper_shaped_records(rollouts, new_tokens=scale.new_tokens, vocab=vocab,
                                   prompt_lengths=scale.prompt_lengths, first_id=len(SPECIALS))
    examples, plan = epoch_plan(records, variant, scale.train_batch, scale.grad_accum)
    plan = plan[:steps + 1]
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else None
    step = epoch_step(model, optimizer, examples, variant, vocab, 0, device, autocast)
    step(plan[0])  # warm-up
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    for micro_batches in plan[1:]:
        start = time.perf_counter()
        losses.append(step(micro_batches))
        times.append(time.perf_counter() - start)
    tokens, padded = token_counts(examples, plan[1:], variant)
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    del model, optimizer
    if cuda:
        torch.cuda.empty_cache()
    return {"variant": variant, "steps": len(times), "s_per_step": statistics.median(times), "peak_gib": peak,
            "token_forwards_per_step": tokens / len(times), "padded_token_forwards_per_step": padded / len(times),
            "finite": all(v == v for v in losses)}


def check_training(expert: Path, scale: Scale, device: str, vocab: int, root: Path) -> dict:
    from transformers import AutoTokenizer

    adapter = root / "adapter"
    lrkit = time_training(expert, scale, device, "lrkit", scale.train_steps, vocab, adapter)
    authors = time_training(expert, scale, device, "authors", scale.authors_steps, vocab)
    AutoTokenizer.from_pretrained(str(expert)).save_pretrained(str(adapter))
    start = time.perf_counter()
    merge(str(expert), str(adapter), str(root / "merged"))
    merge_s = time.perf_counter() - start
    packed = time_paper_shaped(expert, scale, device, "packed", scale.packed_steps, vocab)
    per_record = time_paper_shaped(expert, scale, device, "per-record", scale.per_record_steps, vocab)
    return {"packed": packed, "per_record": per_record,
            "packing_speedup": per_record["s_per_step"] / packed["s_per_step"],
            "packing_token_ratio": per_record["padded_token_forwards_per_step"] / packed["padded_token_forwards_per_step"],
            "batch": scale.train_batch, "grad_accum": scale.grad_accum, "max_length": scale.max_length,
            "precision": "bf16" if device.startswith("cuda") else "fp32", "lrkit": lrkit, "authors": authors,
            "speedup": authors["s_per_step"] / lrkit["s_per_step"],
            "memory_ratio": (authors["peak_gib"] / lrkit["peak_gib"]) if lrkit["peak_gib"] else None,
            "merge_s": merge_s}


# ---------------------------------------------------------------- 3. the demo on CUDA

def check_demo(scale: Scale, device: str, root: Path) -> dict:
    """`lrkit demo` with its models on ``device`` in fp32, then the demo's sampling
    stage on the CPU: same kept steps? And in bf16: same rollouts?"""
    from lrkit.config import ExperimentConfig
    from lrkit.demo import run_demo
    from lrkit.experiment import Experiment
    from lrkit.models.pairs import resolve_pair

    defaults = ExperimentConfig()
    config = defaults
    if scale.demo:
        config = dataclasses.replace(
            defaults, train_problems=scale.demo["train_problems"], test_problems=scale.demo["test_problems"],
            seeds=1, check_problems=scale.demo["test_problems"],
            train=dataclasses.replace(defaults.train, max_steps=scale.demo["max_steps"]),
            eval=dataclasses.replace(defaults.eval, max_new_tokens=scale.demo["eval_tokens"]))
    start = time.perf_counter()
    demo = run_demo(root / "demo", config, fresh=True, progress=False, device=device, dtype="fp32")
    demo_s = time.perf_counter() - start
    sampled = Experiment(root / "demo", config, device="cpu").sampling_dir()
    rollouts = [json.loads(line) for line in (sampled / "rollouts.jsonl").open()]
    problems = [{"id": r["prompt_id"], "question": r["question"]} for r in rollouts]
    expert, amateur = (str(p) for p in resolve_pair("toy"))

    def kept(folder: Path) -> set:
        return {(r["prompt_id"], r["step"]) for r in map(json.loads, (folder / "records.jsonl").open())}

    def tokens(folder: Path) -> list:
        return [r["token_ids"] for r in map(json.loads, (folder / "rollouts.jsonl").open())]

    cpu = sample(load_pair(expert, amateur, device="cpu", dtype="fp32"), None, problems, root / "demo_cpu",
                 config.sample, progress=False)
    bf16_folder = root / "demo_bf16"
    sample(load_pair(expert, amateur, device=device, dtype="bf16" if device.startswith("cuda") else "fp32"),
           None, problems, bf16_folder, config.sample, progress=False)
    on_gpu, on_cpu = kept(sampled), kept(cpu.out_dir)
    return {"seconds": demo_s, "precision": "fp32", "train_problems": config.train_problems,
            "test_problems": config.test_problems, "kept_steps": len(on_gpu),
            "kept_steps_cpu": len(on_cpu), "same_kept_steps_as_cpu": on_gpu == on_cpu,
            "kept_steps_agreement": len(on_gpu & on_cpu) / max(len(on_gpu | on_cpu), 1),
            "bf16_same_rollouts": tokens(bf16_folder) == tokens(cpu.out_dir),
            "base_accuracy": demo.summary.base_accuracy, "tuned_accuracy": demo.summary.tuned_accuracy,
            "stage_seconds": demo.summary.seconds}


# ---------------------------------------------------------------- 4. projection, report

def projection(sampling: dict, training: dict, load_s: float) -> dict:
    minutes = {"sampling 1,000 problems": 1000 * sampling["s_per_problem"]["lrkit"] / 60,
               "training 1,000 steps (packed)": 1000 * training["packed"]["s_per_step"] / 60,
               "merge": training["merge_s"] / 60, "loading the pair": load_s / 60}
    authors = {"sampling 1,000 problems": 1000 * sampling["s_per_problem"]["authors"] / 60,
               "training 1,000 steps": 1000 * training["authors"]["s_per_step"] / 60}
    return {"lrkit_minutes": minutes, "lrkit_total_minutes": sum(minutes.values()),
            "authors_algorithm_minutes": authors, "authors_reported_minutes": AUTHORS_MINUTES}


def markdown(report: dict) -> str:
    s, t, d, p = report["sampling"], report["training"], report["demo"], report["projection"]
    gib = (lambda v: f"{v:.1f} GiB" if v is not None else "n/a")
    rows = [
        ("sampling, s per problem", f"{s['s_per_problem']['lrkit']:.3f} (batch {s['batch']}, {s['problems']} problems)",
         f"{s['s_per_problem']['authors']:.3f} ({s['authors_problems']} problems)", f"{s['speedup']:.1f}x faster",
         ">= 20x"),
        ("kept steps, same problems", str(s["kept_steps_lrkit"]), str(s["kept_steps_authors"]),
         f"{s['kept_steps_agreement']:.1%} shared", "the same"),
        ("training, s per step", f"{t['lrkit']['s_per_step']:.3f}", f"{t['authors']['s_per_step']:.3f}",
         f"{t['speedup']:.1f}x faster", ""),
        ("training, peak memory", gib(t["lrkit"]["peak_gib"]), gib(t["authors"]["peak_gib"]),
         f"{t['memory_ratio']:.1f}x less" if t["memory_ratio"] else "n/a", ""),
        ("packed vs per-record training, s per step", f"{t['packed']['s_per_step']:.3f}",
         f"{t['per_record']['s_per_step']:.3f} (lrkit per-record)", f"{t['packing_speedup']:.1f}x faster", ">= 5x"),
        ("packed vs per-record, token-forwards per step",
         f"{t['packed']['padded_token_forwards_per_step']:.0f}",
         f"{t['per_record']['padded_token_forwards_per_step']:.0f} (lrkit per-record)",
         f"{t['packing_token_ratio']:.1f}x fewer", ">= 8x"),
        ("merge, s", f"{t['merge_s']:.1f}", "", "", ""),
        ("demo end to end, s", f"{d['seconds']:.1f} ({d['precision']})", "", "", ""),
        ("demo kept steps vs CPU", f"{d['kept_steps']} vs {d['kept_steps_cpu']}: " + (
            "same" if d["same_kept_steps_as_cpu"] else f"{d['kept_steps_agreement']:.1%} shared"),
         "", f"bf16 rollouts {'unchanged' if d['bf16_same_rollouts'] else 'changed'}", "the same"),
        ("paper pipeline, projected minutes", f"{p['lrkit_total_minutes']:.1f}",
         f"{p['authors_reported_minutes']:.0f} (reported)", f"{p['authors_reported_minutes'] / p['lrkit_total_minutes']:.1f}x",
         "<= 5"),
    ]
    head = (f"GPU check, {report['date']}, {report['device_name']}"
            f"{' (DRY RUN: tiny configs on the CPU, numbers mean nothing)' if report['dry_run'] else ''}; "
            f"expert {report['parameters']['expert'] / 1e9:.2f}B, amateur {report['parameters']['amateur'] / 1e9:.2f}B "
            f"parameters, vocabulary {report['vocab_rows']:,}\n\n")
    table = "| measurement | lrkit | authors | ratio | target |\n|---|---|---|---|---|\n"
    table += "".join(f"| {' | '.join(row)} |\n" for row in rows)
    return head + table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="tiny configs on the CPU (a smoke test)")
    parser.add_argument("--out", default="runs/gpu_check", help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --dry-run)")
    args = parser.parse_args(argv)
    scale = DRY if args.dry_run else Scale()
    device = args.device or ("cpu" if args.dry_run else "cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: error: no CUDA device; run with --dry-run to check the script on the CPU",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dtype = "bf16" if device.startswith("cuda") else "fp32"
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        expert, amateur, sizes = build_pair(root, scale, device)
        start = time.perf_counter()
        load_pair(str(expert), str(amateur), device=device, dtype=dtype)
        synchronize(device)
        load_s = time.perf_counter() - start
        vocab = scale.tokenizer_len
        print("sampling...", flush=True)
        sampling = check_sampling(expert, amateur, scale, device, dtype, root)
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        print("training...", flush=True)
        training = check_training(expert, scale, device, vocab, root)
        print("demo...", flush=True)
        demo = check_demo(scale, device, root)
    vocab_rows = json.loads(CONFIGS["expert"].read_text())["vocab_size"] if not scale.shrink else scale.shrink["vocab_size"]
    report = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "dry_run": args.dry_run, "device": device,
        "device_name": torch.cuda.get_device_name(device) if device.startswith("cuda") else platform.processor() or "CPU",
        "versions": {name: __import__(name).__version__ for name in ("torch", "transformers", "peft", "accelerate")},
        "parameters": sizes, "vocab_rows": vocab_rows, "scale": dataclasses.asdict(scale),
        "load_pair_s": load_s, "sampling": sampling, "training": training, "demo": demo,
        "projection": projection(sampling, training, load_s), "total_s": time.perf_counter() - started,
    }
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "gpu_check.md").write_text(markdown(report))
    print(markdown(report))
    print(f"written: {out / 'gpu_check.json'}, {out / 'gpu_check.md'} in {report['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
