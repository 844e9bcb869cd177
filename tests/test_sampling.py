"""The sampling stage against a plain reference, resume, and bad inputs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from lrkit.config import SampleConfig
from lrkit.data.answers import ProblemError
from lrkit.data.records import read_records, tokenizer_fingerprint
from lrkit.maths.divergence import NonFiniteLogitsError
from lrkit.models.loading import PairError, load_pair, load_tokenizer
from lrkit.models.prompts import build_prompt_ids
from lrkit.runs import FolderError
from lrkit.stages.sampling import read_steps, sample

from tiny_models import make_model, make_tokenizer, save_pair

REPO = Path(__file__).resolve().parents[1]
PROBLEMS = [{"id": f"p{i}", "question": f"Tom has {i + 2} apples and buys {3 * i + 1} more. How many?"}
            for i in range(6)]
MAX_NEW = 20


def reference_steps(expert_path, amateur_path, problems, config):
    """The method written plainly: batch-1 greedy decoding by argmax with a full
    forward pass per token, then one separate forward pass of each model per
    prefix, KL by F.kl_div, mask and weights by softmax."""
    tok = load_tokenizer(str(expert_path))
    expert = AutoModelForCausalLM.from_pretrained(expert_path, dtype=torch.float32).eval()
    amateur = AutoModelForCausalLM.from_pretrained(amateur_path, dtype=torch.float32).eval()
    vocab = len(tok)
    out = {}
    with torch.no_grad():
        for problem in problems:
            prompt = build_prompt_ids(tok, problem["question"], config.system_prompt)
            generated = []
            for _ in range(config.max_new_tokens):
                logits = expert(torch.tensor([prompt + generated])).logits[0, -1, :vocab]
                generated.append(int(logits.argmax()))
                if generated[-1] == tok.eos_token_id:
                    break
            for t in range(len(generated)):
                ids = torch.tensor([prompt + generated[:t]])
                e_logp = F.log_softmax(expert(ids).logits[0, -1, :vocab].float(), -1)
                a_logp = F.log_softmax(amateur(ids).logits[0, -1, :vocab].float(), -1)
                kl = F.kl_div(a_logp, e_logp, log_target=True, reduction="sum").item()
                p_e = F.softmax(expert(ids).logits[0, -1, :vocab].float(), -1)
                mask = p_e >= config.alpha * p_e.max()
                weights = F.softmax((e_logp - a_logp)[mask], -1)
                out[(problem["id"], t)] = {
                    "token": generated[t], "kl": kl,
                    "label": dict(zip(mask.nonzero()[:, 0].tolist(), weights.tolist())),
                }
    return out


KL_TOLERANCE = 1e-5
"""lrkit's and the reference's KL of one step differ by float rounding (~1e-7)."""


def threshold_between_steps(kls: list[float]) -> float:
    """A beta that keeps about half the steps and lies halfway between two
    neighbouring reference KLs that are far apart compared with the tolerance, so
    no step's selection is decided by rounding (a beta equal to one step's KL
    would be)."""
    middle = len(kls) // 2
    candidates = [i for i in range(len(kls) // 4, 3 * len(kls) // 4)
                  if kls[i + 1] - kls[i] > 100 * KL_TOLERANCE]
    assert candidates, "no gap between the middle steps' KLs"
    i = min(candidates, key=lambda j: abs(j - middle))
    return (kls[i] + kls[i + 1]) / 2


def test_kept_steps_and_weights_match_plain_reference(pair_paths, tmp_path):
    expert_path, amateur_path = pair_paths
    probe = SampleConfig(max_new_tokens=MAX_NEW)
    ref = reference_steps(expert_path, amateur_path, PROBLEMS, probe)
    beta = threshold_between_steps(sorted(v["kl"] for v in ref.values()))
    config = SampleConfig(max_new_tokens=MAX_NEW, beta=beta, batch_size=4)

    result = sample(str(expert_path), str(amateur_path), PROBLEMS, tmp_path / "run", config,
                    progress=False)
    steps = read_steps(tmp_path / "run")
    lengths = steps.groupby("prompt_id").size()
    assert lengths.nunique() > 1, "rollouts of different lengths exercise the padding"

    assert len(steps) == len(ref)
    for row in steps.itertuples():
        expected = ref[(row.prompt_id, row.step)]
        assert row.token_id == expected["token"]
        assert row.kl == pytest.approx(expected["kl"], abs=KL_TOLERANCE)

    expected_kept = {key for key, v in ref.items() if v["kl"] >= beta and key[1] != 0}
    records = read_records(result.records_path)
    assert {(r["prompt_id"], r["step"]) for r in records} == expected_kept
    assert 0 < len(expected_kept) < len(ref)
    for r in records:
        label = ref[(r["prompt_id"], r["step"])]["label"]
        assert set(r["token_ids"]) == set(label)
        for token_id, weight in zip(r["token_ids"], r["weights"]):
            assert weight == pytest.approx(label[token_id], abs=1e-5)
        assert r["weights"] == sorted(r["weights"], reverse=True)
        assert len(r["prefix_token_ids"]) == r["step"]
        assert r["expert_token_id"] == ref[(r["prompt_id"], r["step"])]["token"]


def test_records_carry_authors_and_lrkit_fields(pair_paths, tmp_path):
    config = SampleConfig(max_new_tokens=MAX_NEW, beta=0.0)
    result = sample(str(pair_paths[0]), str(pair_paths[1]), PROBLEMS[:2], tmp_path / "run", config,
                    progress=False)
    tok = load_tokenizer(str(pair_paths[0]))
    rollouts = {r["prompt_id"]: r for r in map(json.loads, open(tmp_path / "run" / "rollouts.jsonl"))}
    records = read_records(result.records_path)
    steps = {r["prompt_id"]: 0 for r in records}
    for r in records:
        steps[r["prompt_id"]] += 1
        rollout = rollouts[r["prompt_id"]]
        assert r["prefix_token_ids"] == rollout["token_ids"][:r["step"]]
        assert r["prefix"] == tok.decode(r["prefix_token_ids"])
        assert r["tokens"] == [tok.decode([i]) for i in r["token_ids"]]
        assert r["prompt_token_ids"] == build_prompt_ids(tok, r["question"], config.system_prompt)
        assert r["step"] >= 1  # step 0 (empty prefix) is skipped, even at beta 0
    # beta 0 keeps every step but the first
    for pid, n in steps.items():
        assert n == len(rollouts[pid]["token_ids"]) - 1


def test_authors_record_file_loads(tmp_path):
    line = {"prompt_id": "Natalia sold clips to 48 of her friends...", "step": 3, "prefix": "Nat",
            "tokens": ["al", "a"], "token_ids": [278, 64], "weights": [0.75, 0.25],
            "kl_divergence": 0.52}
    path = tmp_path / "authors.jsonl"
    path.write_text(json.dumps(line) + "\n")
    (record,) = read_records(path)
    assert record["question"] == line["prompt_id"]
    assert record["token_ids"] == [278, 64]


def _sample_cli(expert, amateur, problems_path, out, batch_size=1):
    return [sys.executable, "-m", "lrkit.cli", "sample", "--expert", str(expert),
            "--amateur", str(amateur), "--problems", str(problems_path), "--out", str(out),
            "--max-new-tokens", str(MAX_NEW), "--beta", "0.5", "--batch-size", str(batch_size),
            "--device", "cpu"]


def _outputs(out: Path) -> dict:
    return {name: (out / name).read_bytes() for name in ("rollouts.jsonl", "steps.jsonl", "records.jsonl")}


def test_sigkill_then_rerun_gives_the_uninterrupted_output(pair_paths, tmp_path):
    problems = [{"id": f"q{i}", "question": f"Sam has {i} pens and {i + 4} pencils. How many?"}
                for i in range(16)]
    problems_path = tmp_path / "problems.jsonl"
    problems_path.write_text("".join(json.dumps(p) + "\n" for p in problems))
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    full = tmp_path / "full"
    subprocess.run(_sample_cli(*pair_paths, problems_path, full), check=True, env=env,
                   capture_output=True, cwd=REPO)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_sample_cli(*pair_paths, problems_path, killed), env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    state = killed / "state.json"
    while time.time() < deadline:
        if state.exists() and json.loads(state.read_text() or "{}").get("batches_done", 0) >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = json.loads(state.read_text())["batches_done"]
    assert 3 <= done_before < len(problems), "the kill must land in the middle of the run"

    subprocess.run(_sample_cli(*pair_paths, problems_path, killed), check=True, env=env,
                   capture_output=True, cwd=REPO)
    assert _outputs(killed) == _outputs(full)
    records = [json.loads(line) for line in open(killed / "records.jsonl")]
    keys = [(r["prompt_id"], r["step"]) for r in records]
    assert len(keys) == len(set(keys)), "no duplicate record"


def test_half_written_batch_is_dropped_on_resume(pair_paths, tmp_path):
    config = SampleConfig(max_new_tokens=MAX_NEW, beta=0.5, batch_size=2)
    full = tmp_path / "full"
    sample(str(pair_paths[0]), str(pair_paths[1]), PROBLEMS, full, config, progress=False)
    expected = _outputs(full)

    # Simulate a crash after batch 1 whose next batch died half-way through its writes.
    crashed = tmp_path / "crashed"
    sample(str(pair_paths[0]), str(pair_paths[1]), PROBLEMS[:2], tmp_path / "first", config,
           progress=False)
    crashed.mkdir()
    for name in ("rollouts.jsonl", "steps.jsonl", "records.jsonl"):
        first = (tmp_path / "first" / name).read_bytes()
        (crashed / name).write_bytes(first + expected[name][len(first):][:57])
    state = json.loads((tmp_path / "first" / "state.json").read_text())
    (crashed / "state.json").write_text(json.dumps(state))
    (crashed / "config.json").write_bytes((full / "config.json").read_bytes())

    sample(str(pair_paths[0]), str(pair_paths[1]), PROBLEMS, crashed, config, progress=False)
    assert _outputs(crashed) == expected


def test_timings_add_up_over_resumes_and_survive_a_rerun(pair_paths, tmp_path):
    config = SampleConfig(max_new_tokens=MAX_NEW, beta=0.5, batch_size=2)
    full = tmp_path / "full"
    sample(str(pair_paths[0]), str(pair_paths[1]), PROBLEMS, full, config, progress=False)
    first = tmp_path / "first"
    sample(str(pair_paths[0]), str(pair_paths[1]), PROBLEMS[:2], first, config, progress=False)
    state = json.loads((first / "state.json").read_text())
    assert state["rollout_s"] > 0 and state["scoring_s"] > 0

    # A run interrupted after its first batch, which (say) took 100 s and 50 s.
    run = tmp_path / "run"
    run.mkdir()
    for name in ("rollouts.jsonl", "steps.jsonl", "records.jsonl"):
        (run / name).write_bytes((first / name).read_bytes())
    (run / "state.json").write_text(json.dumps({**state, "rollout_s": 100.0, "scoring_s": 50.0}))
    (run / "config.json").write_bytes((full / "config.json").read_bytes())

    resumed = sample(str(pair_paths[0]), str(pair_paths[1]), PROBLEMS, run, config, progress=False)
    assert 100.0 < resumed.summary["rollout_s"] < 100.0 + 60
    assert 50.0 < resumed.summary["scoring_s"] < 50.0 + 60
    # A rerun on the finished folder does no work and keeps the timings it had.
    again = sample(str(pair_paths[0]), str(pair_paths[1]), PROBLEMS, run, config, progress=False)
    assert again.summary["rollout_s"] == pytest.approx(resumed.summary["rollout_s"], abs=1e-3)
    assert again.summary["scoring_s"] == pytest.approx(resumed.summary["scoring_s"], abs=1e-3)
    assert json.loads((run / "summary.json").read_text())["rollout_s"] == again.summary["rollout_s"]


def test_rerun_with_other_settings_is_refused(pair_paths, tmp_path):
    sample(str(pair_paths[0]), str(pair_paths[1]), PROBLEMS[:2], tmp_path / "run",
           SampleConfig(max_new_tokens=MAX_NEW), progress=False)
    with pytest.raises(FolderError, match="beta"):
        sample(str(pair_paths[0]), str(pair_paths[1]), PROBLEMS[:2], tmp_path / "run",
               SampleConfig(max_new_tokens=MAX_NEW, beta=0.9), progress=False)


def test_a_folder_from_before_write_steps_had_its_name_is_the_same_run(pair_paths, tmp_path, monkeypatch):
    """config.json written when SampleConfig.write_steps was called save_steps: the same
    settings return the stored run; other ones are refused by today's name."""
    import lrkit.stages.sampling as sampling

    run, config = tmp_path / "run", SampleConfig(max_new_tokens=MAX_NEW)
    first = sample(str(pair_paths[0]), str(pair_paths[1]), PROBLEMS[:2], run, config, progress=False)
    stored = json.loads((run / "config.json").read_text())
    stored["save_steps"] = stored.pop("write_steps")
    (run / "config.json").write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")
    before = {p.name: p.read_bytes() for p in run.iterdir()}

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run is returned, not generated again")

    monkeypatch.setattr(sampling, "greedy_generate_batch", refuse)
    again = sample(str(pair_paths[0]), str(pair_paths[1]), PROBLEMS[:2], run, config, progress=False)
    assert again.summary == first.summary
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    with pytest.raises(FolderError, match="write_steps"):
        sample(str(pair_paths[0]), str(pair_paths[1]), PROBLEMS[:2], run,
               SampleConfig(max_new_tokens=MAX_NEW, write_steps=False), progress=False)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


@pytest.mark.parametrize("content, message", [
    ('{"question": "ok"}\n{"answer": "#### 3"}\n', "line 2: missing field 'question'"),
    ('{"question": "   "}\n', "line 1: field 'question' must be a non-empty string"),
    ('{"question": "ok"}\nnot json\n', "line 2: not valid JSON"),
    ('{"id": 1, "question": "a"}\n{"id": 1, "question": "b"}\n', "line 2: id '1' already used on line 1"),
    ("", "holds no problems"),
])
def test_bad_problem_files_name_file_and_line(pair_paths, tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ProblemError) as err:
        sample(str(pair_paths[0]), str(pair_paths[1]), path, tmp_path / "out", progress=False)
    assert message in str(err.value) and str(path) in str(err.value)
    assert not (tmp_path / "out").exists(), "nothing is written for bad input"


def test_pair_whose_tokenizers_disagree_is_refused(tmp_path):
    other = make_tokenizer(chars="zyxwvutsrqponmlkjihgfedcba0123456789 .,+-*/=?\n#$")
    expert, amateur = save_pair(tmp_path, amateur_tokenizer=other)
    with pytest.raises(PairError, match=r"disagree on \d+ shared ids, first id 5: expert 'a' vs amateur 'z'"):
        load_pair(str(expert), str(amateur))


def test_pair_with_smaller_tokenizer_is_refused(tmp_path):
    smaller = make_tokenizer(chars="abc")
    expert, amateur = save_pair(tmp_path, amateur_tokenizer=smaller)
    with pytest.raises(PairError, match="differ in size"):
        load_pair(str(expert), str(amateur))


def test_non_finite_logits_are_a_clear_error_and_nothing_is_written(pair_paths, tmp_path):
    pair = load_pair(str(pair_paths[0]), str(pair_paths[1]), device="cpu")
    with torch.no_grad():
        pair.amateur.lm_head.weight[7, 0] = float("nan")
    with pytest.raises(NonFiniteLogitsError, match=r"^sampling: the amateur .* \(fp32\) gave non-finite logits .*problem 'p0', step 0"):
        sample(pair, None, PROBLEMS[:2], tmp_path / "out", SampleConfig(max_new_tokens=MAX_NEW),
               progress=False)
    assert not (tmp_path / "out" / "records.jsonl").exists()
    assert not (tmp_path / "out" / "state.json").exists()


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="alpha"):
        SampleConfig(alpha=0).validate()
    with pytest.raises(ValueError, match="max_new_tokens"):
        SampleConfig(max_new_tokens=0).validate()


# ---------------------------------------------------------------- placeholder tokens are output padding

def test_placeholder_tokens_are_scored_like_rows_beyond_the_tokenizer(tmp_path):
    """One model saved with its tokenizer and with the tokenizer a converter pads
    with [PADn] placeholders gives the same steps, records and fingerprint."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from tiny_models import CHAT_TEMPLATE, SPECIALS

    problems = [{"id": f"p{i}", "question": f"Ann has {i + 3} pens and {2 * i + 1} cups. How many?"}
                for i in range(4)]

    plain = make_tokenizer()
    vocab = dict(plain.backend_tokenizer.get_vocab())
    n = len(plain)
    for i in range(n, n + 7):
        vocab[f"[PAD{i}]"] = i
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    backend.decoder = decoders.Fuse()
    padded = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>",
                                     unk_token="<pad>", additional_special_tokens=SPECIALS[2:])
    padded.chat_template = CHAT_TEMPLATE
    assert len(padded) == n + 7 and padded.convert_ids_to_tokens(n) == f"[PAD{n}]"
    assert padded.convert_ids_to_tokens(list(range(n))) == plain.convert_ids_to_tokens(list(range(n)))

    expert, amateur = make_model(padded, seed=4, extra_rows=3), make_model(padded, seed=5, layers=1)
    with torch.no_grad():  # make the placeholders likely, as a careless model could
        expert.lm_head.weight[n:n + 7] = expert.lm_head.weight[n:n + 7] * 3 + 0.5
        amateur.lm_head.weight[n:n + 7] = amateur.lm_head.weight[n:n + 7] * 3 + 0.5
    runs = {}
    for name, tokenizer in (("plain", plain), ("padded", padded)):
        for role, model in (("expert", expert), ("amateur", amateur)):
            model.save_pretrained(tmp_path / name / role)
            tokenizer.save_pretrained(tmp_path / name / role)
        out = tmp_path / name / "run"
        sample(str(tmp_path / name / "expert"), str(tmp_path / name / "amateur"), problems, out,
               SampleConfig(max_new_tokens=8, beta=0.0, alpha=0.05, batch_size=2), progress=False)
        runs[name] = out
    plain_steps, padded_steps = read_steps(runs["plain"]), read_steps(runs["padded"])
    assert len(plain_steps) == len(padded_steps) > 0
    for column in ("token_id", "expert_top1_id", "amateur_top1_id", "mask_size", "expert_topk_ids"):
        assert plain_steps[column].tolist() == padded_steps[column].tolist(), column
    for column in ("kl", "expert_entropy", "amateur_entropy", "expert_logprob"):
        assert padded_steps[column].tolist() == pytest.approx(plain_steps[column].tolist(), abs=1e-6), column
    assert max(max(ids) for ids in padded_steps["expert_topk_ids"]) < n, "no placeholder is ever a candidate"
    records = {name: [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
               for name, out in runs.items()}
    assert [r["token_ids"] for r in records["plain"]] == [r["token_ids"] for r in records["padded"]]
    for a, b in zip(records["plain"], records["padded"]):
        assert b["weights"] == pytest.approx(a["weights"], abs=1e-6)
    assert tokenizer_fingerprint(plain) == tokenizer_fingerprint(padded)


# ---------------------------------------------------------------- rollouts drawn as the checkpoint draws them

def _sampling_pair(root):
    """A tiny pair whose expert checkpoint samples (DeepSeek-R1-Distill's generation_config:
    temperature 0.6, top-p 0.95)."""
    from transformers import GenerationConfig

    expert, amateur = save_pair(root, expert_rows=3, eos_boost=1.0)
    GenerationConfig(do_sample=True, temperature=0.6, top_p=0.95, eos_token_id=load_tokenizer(str(expert))
                     .eos_token_id).save_pretrained(expert)
    return expert, amateur


def test_model_default_rollouts_are_the_checkpoints_seeded_draws(tmp_path):
    expert, amateur = _sampling_pair(tmp_path / "pair")
    config = SampleConfig(max_new_tokens=MAX_NEW, batch_size=2, rollouts="model-default", rollout_seed=3)
    result = sample(str(expert), str(amateur), PROBLEMS, tmp_path / "run", config, progress=False)
    drawn = {r["prompt_id"]: r["token_ids"] for r in map(json.loads, open(tmp_path / "run" / "rollouts.jsonl"))}
    assert json.loads((tmp_path / "run" / "config.json").read_text())["rollouts"] == "model-default"

    # the reference: transformers' sampling with the checkpoint's settings spelled out, batch b seeded 3 + b
    tok = load_tokenizer(str(expert))
    model = AutoModelForCausalLM.from_pretrained(expert, dtype=torch.float32).eval()
    rows = model.get_output_embeddings().weight.shape[0]
    for b in range(3):
        batch = PROBLEMS[2 * b:2 * b + 2]
        prompts = [build_prompt_ids(tok, p["question"], config.system_prompt) for p in batch]
        width = max(map(len, prompts))
        ids = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        torch.manual_seed(3 + b)
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=0.6, top_p=0.95,
                             top_k=50, max_new_tokens=MAX_NEW, eos_token_id=[tok.eos_token_id],
                             pad_token_id=tok.pad_token_id, suppress_tokens=list(range(len(tok), rows)))
        for problem, row in zip(batch, out[:, width:].tolist()):
            expected = row[:row.index(tok.eos_token_id) + 1] if tok.eos_token_id in row else row
            assert drawn[problem["id"]] == expected

    # not the greedy rollouts, and the same draws again in another folder
    greedy = sample(str(expert), str(amateur), PROBLEMS, tmp_path / "greedy",
                    SampleConfig(max_new_tokens=MAX_NEW, batch_size=2), progress=False)
    greedy_ids = {r["prompt_id"]: r["token_ids"] for r in map(json.loads, open(greedy.out_dir / "rollouts.jsonl"))}
    assert json.loads((greedy.out_dir / "config.json").read_text())["rollouts"] == "greedy"  # a tiny pair's own way
    assert any(greedy_ids[k] != drawn[k] for k in drawn)
    sample(str(expert), str(amateur), PROBLEMS, tmp_path / "again", config, progress=False)
    assert (tmp_path / "again" / "rollouts.jsonl").read_bytes() == (tmp_path / "run" / "rollouts.jsonl").read_bytes()

    # KL stays on the raw logits of the teacher-forced passes, not the sampling distribution
    steps = read_steps(result.out_dir)
    first = PROBLEMS[0]
    prompt = build_prompt_ids(tok, first["question"], config.system_prompt)
    amateur_model = AutoModelForCausalLM.from_pretrained(amateur, dtype=torch.float32).eval()
    with torch.no_grad():
        t = 2
        context = torch.tensor([prompt + drawn[first["id"]][:t]])
        e = F.log_softmax(model(context).logits[0, -1, :len(tok)].float(), -1)
        a = F.log_softmax(amateur_model(context).logits[0, -1, :len(tok)].float(), -1)
    kl = F.kl_div(a, e, log_target=True, reduction="sum").item()
    got = steps[(steps.prompt_id == first["id"]) & (steps.step == t)].kl.item()
    assert got == pytest.approx(kl, abs=1e-4)


def test_rollouts_default_to_the_pairs_own_way():
    from lrkit.models.pairs import default_rollouts

    assert default_rollouts("deepseek-r1-distill-1.5b") == "model-default"
    assert default_rollouts("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B") == "model-default"
    assert default_rollouts("deepseek-r1-distill-1.5b:expert") == "model-default"
    assert default_rollouts("qwen2.5-math-1.5b") == "greedy" and default_rollouts("Qwen/Qwen2.5-Math-7B") == "greedy"
    assert default_rollouts("runs/merged") == "greedy"
    with pytest.raises(ValueError, match="rollouts must be one of greedy, model-default"):
        SampleConfig(rollouts="sampled").validate()


def test_a_sampling_folder_from_before_rollouts_reads_as_greedy(pair_paths, tmp_path):
    config = SampleConfig(max_new_tokens=6, batch_size=3)
    sample(str(pair_paths[0]), str(pair_paths[1]), PROBLEMS[:3], tmp_path / "run", config, progress=False)
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    del stored["rollouts"], stored["rollout_seed"]  # as written before this version
    (tmp_path / "run" / "config.json").write_text(json.dumps(stored))
    before = (tmp_path / "run" / "records.jsonl").read_bytes()
    again = sample(str(pair_paths[0]), str(pair_paths[1]), PROBLEMS[:3], tmp_path / "run", config, progress=False)
    assert again.records_path.read_bytes() == before
    with pytest.raises(FolderError, match="rollouts"):
        sample(str(pair_paths[0]), str(pair_paths[1]), PROBLEMS[:3], tmp_path / "run",
               SampleConfig(max_new_tokens=6, batch_size=3, rollouts="model-default"), progress=False)
