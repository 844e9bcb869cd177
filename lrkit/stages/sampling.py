"""The sampling stage: expert rollouts, one teacher-forced pass per model,
step statistics, selection and contrastive soft labels.

Per batch of problems:
1. the expert decodes (left-padded batch, stop at EOS): greedily (do_sample=False, the
   paper), or as its checkpoint's generation_config samples, seeded (``rollouts
   "model-default"``, the authors' code for the DeepSeek pair);
2. each model reads prompt + rollout ONCE (same token ids, never re-tokenized)
   and yields every step's next-token distribution at once;
3. every step gets its statistics; steps with KL >= beta become records.

Output directory (written as each batch finishes; a rerun of the same command
resumes after the last finished batch and ends with exactly the files of an
uninterrupted run):
``config.json``, ``rollouts.jsonl``, ``steps.jsonl``, ``records.jsonl``,
``state.json`` (resume point), ``provenance.json`` and, at the end, ``summary.json``.
Every check on the input (problems, pair, prompt lengths against the models'
context, an --out holding something else) runs before anything is written.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional, Sequence, Union

import torch

from lrkit import distributed
from lrkit.config import SampleConfig, current_names, to_dict, with_added_fields
from lrkit.data.answers import Problem
from lrkit.data.problems import training_problems
from lrkit.data.records import dumps, read_records, tokenizer_fingerprint
from lrkit.maths import divergence
from lrkit.maths.selection import select_steps
from lrkit.models.generation import (
    checkpoint_generate_batch, greedy_generate_batch, last_positions_hidden, pad_token_id, stop_token_ids,
    to_logits)
from lrkit.models.guard import finite_guard, model_dtype, non_finite_message
from lrkit.models.loading import ModelPair, check_prompt_lengths, load_pair, load_tokenizer, resolve_member
from lrkit.models.pairs import default_rollouts
from lrkit.models.prompts import build_prompt_ids
from lrkit.provenance import PROVENANCE_FILE, Provenance, api_call
from lrkit.runs import StageFolder, problems_digest, read_json, write_json, writes_folder

OUTPUT_FILES = ("rollouts.jsonl", "steps.jsonl", "records.jsonl")
STATE_FILE = "state.json"
CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"


STAGE = "sampling run"
WAY_OUT = "pass overwrite=True (--overwrite) to replace it"


# --------------------------------------------------------------------------- scoring

@dataclass
class Rollout:
    problem: Problem
    prompt_ids: list[int]
    token_ids: list[int]
    finished: bool


def score_rollouts(pair: ModelPair, rollouts: Sequence[Rollout], config: SampleConfig):
    """Step statistics of every step of every rollout, plus the kept rows' soft labels.

    Returns (stats as a dict of python lists with 'row' and 'step' columns,
    {flat index: (ids, weights, expert_logprobs, amateur_logprobs)} for kept rows).
    """
    stop_ids = stop_token_ids(pair.expert, pair.tokenizer)
    pad_id = pad_token_id(pair.tokenizer, stop_ids)
    device = pair.device
    lengths = [len(r.token_ids) for r in rollouts]
    width_gen = max(lengths)
    width_prompt = max(len(r.prompt_ids) for r in rollouts)
    # Layout of generate(): left-padded prompts, then right-padded rollouts. The
    # distribution of step t sits at column width_prompt - 1 + t.
    total = width_prompt + width_gen - 1
    input_ids = torch.full((len(rollouts), total), pad_id, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    for row, r in enumerate(rollouts):
        seq = r.prompt_ids + r.token_ids[:-1]
        start = width_prompt - len(r.prompt_ids)
        input_ids[row, start:start + len(seq)] = torch.tensor(seq)
        attention[row, start:start + len(seq)] = 1
    input_ids, attention = input_ids.to(device), attention.to(device)

    e_states, e_head = last_positions_hidden(pair.expert, input_ids, attention, width_gen)
    a_states, a_head = last_positions_hidden(pair.amateur, input_ids, attention, width_gen)

    rows = [(row, t) for row, n in enumerate(lengths) for t in range(n)]
    chosen_all = torch.tensor([rollouts[row].token_ids[t] for row, t in rows], device=device)
    row_index = torch.tensor([row for row, _ in rows], device=device)
    step_index = torch.tensor([t for _, t in rows], device=device)
    columns: dict[str, list] = {"row": [row for row, _ in rows], "step": [t for _, t in rows]}
    labels: dict[int, tuple] = {}
    for start in range(0, len(rows), config.chunk_size):
        sl = slice(start, start + config.chunk_size)
        r_idx, s_idx = row_index[sl], step_index[sl]
        with torch.inference_mode():
            e_logits = to_logits(e_states[r_idx, s_idx], e_head)
            a_logits = to_logits(a_states[r_idx, s_idx], a_head)
            try:
                stats, e_logp, a_logp = divergence.step_statistics(
                    e_logits, a_logits, chosen_all[sl], pair.vocab_size, config.alpha, config.top_k)
            except divergence.NonFiniteLogitsError:
                bad = _first_non_finite(e_logits, a_logits)
                row, t = rows[start + bad[1]]
                model = pair.expert if bad[0] == "expert" else pair.amateur
                name = pair.expert_name if bad[0] == "expert" else pair.amateur_name
                error = divergence.NonFiniteLogitsError(non_finite_message(
                    "sampling", f"the {bad[0]} {name}", model_dtype(model),
                    f"teacher-forced pass, problem {rollouts[row].problem.id!r}, step {t}"))
                error.guarded = True
                raise error from None
            keep = select_steps({"kl": stats.kl, "step": s_idx}, config.beta, config.kl_inclusive,
                                config.skip_first_step)
        for name in ("kl", "expert_entropy", "amateur_entropy", "expert_logprob",
                     "amateur_logprob", "expert_topk_ids", "expert_topk_logprobs",
                     "amateur_logprobs_at_expert_topk", "amateur_topk_ids",
                     "amateur_topk_logprobs", "mask_size"):
            columns.setdefault(name, []).extend(getattr(stats, name).tolist())
        columns.setdefault("kept", []).extend(keep.tolist())
        for local in keep.nonzero(as_tuple=True)[0].tolist():
            ids, weights = divergence.sparse_soft_label(e_logp[local], a_logp[local],
                                                        config.alpha, config.temperature)
            index = torch.tensor(ids, device=e_logp.device)
            labels[start + local] = (ids, weights, e_logp[local, index].tolist(),
                                     a_logp[local, index].tolist())
    return columns, labels


def _first_non_finite(e_logits, a_logits) -> tuple[str, int]:
    for role, logits in (("expert", e_logits), ("amateur", a_logits)):
        bad = (torch.isnan(logits) | torch.isposinf(logits)).any(-1).nonzero(as_tuple=True)[0]
        if len(bad):
            return role, int(bad[0])
    return "expert", 0


# --------------------------------------------------------------------------- output

def _decode_one(tokenizer, cache: dict, token_id: int) -> str:
    if token_id not in cache:
        cache[token_id] = tokenizer.decode([token_id])
    return cache[token_id]


def build_outputs(pair: ModelPair, rollouts: Sequence[Rollout], columns: dict, labels: dict,
                  config: SampleConfig) -> tuple[list[dict], list[dict], list[dict]]:
    """JSON-ready rollout lines, step rows and records of one batch."""
    tok = pair.tokenizer
    cache: dict[int, str] = {}
    fingerprint = tokenizer_fingerprint(tok)
    rollout_lines = [{
        "prompt_id": r.problem.id, "question": r.problem.question, "answer": r.problem.answer,
        "prompt_token_ids": r.prompt_ids, "token_ids": r.token_ids,
        "text": tok.decode(r.token_ids), "finished": r.finished,
    } for r in rollouts]
    step_rows, records = [], []
    for flat, (row, t) in enumerate(zip(columns["row"], columns["step"])):
        r = rollouts[row]
        token_id = r.token_ids[t]
        e_top, a_top = columns["expert_topk_ids"][flat], columns["amateur_topk_ids"][flat]
        step_rows.append({
            "prompt_id": r.problem.id, "step": t,
            "token_id": token_id, "token": _decode_one(tok, cache, token_id),
            "kl": columns["kl"][flat],
            "expert_entropy": columns["expert_entropy"][flat],
            "amateur_entropy": columns["amateur_entropy"][flat],
            "expert_logprob": columns["expert_logprob"][flat],
            "amateur_logprob": columns["amateur_logprob"][flat],
            "expert_top1_id": e_top[0], "amateur_top1_id": a_top[0],
            "expert_top1": _decode_one(tok, cache, e_top[0]),
            "amateur_top1": _decode_one(tok, cache, a_top[0]),
            "top1_agree": e_top[0] == a_top[0],
            "expert_topk_ids": e_top,
            "expert_topk_logprobs": columns["expert_topk_logprobs"][flat],
            "amateur_logprobs_at_expert_topk": columns["amateur_logprobs_at_expert_topk"][flat],
            "amateur_topk_ids": a_top,
            "amateur_topk_logprobs": columns["amateur_topk_logprobs"][flat],
            "expert_topk_tokens": [_decode_one(tok, cache, i) for i in e_top],
            "amateur_topk_tokens": [_decode_one(tok, cache, i) for i in a_top],
            "mask_size": columns["mask_size"][flat],
            "kept": columns["kept"][flat],
        })
        if flat in labels:
            ids, weights, e_lp, a_lp = labels[flat]
            records.append({
                "prompt_id": r.problem.id, "step": t,
                "prefix": tok.decode(r.token_ids[:t]),
                "tokens": [_decode_one(tok, cache, i) for i in ids],
                "token_ids": ids, "weights": weights,
                "kl_divergence": columns["kl"][flat],
                "question": r.problem.question,
                "prompt_token_ids": r.prompt_ids, "prefix_token_ids": r.token_ids[:t],
                "expert_token_id": token_id, "expert_token": _decode_one(tok, cache, token_id),
                "expert_entropy": columns["expert_entropy"][flat],
                "amateur_entropy": columns["amateur_entropy"][flat],
                "expert_top1_id": e_top[0], "amateur_top1_id": a_top[0],
                "expert_logprobs": e_lp, "amateur_logprobs": a_lp,
                "mask_size": len(ids), "alpha": config.alpha, "beta": config.beta,
                "temperature": config.temperature,
                "expert": pair.expert_name, "amateur": pair.amateur_name,
                "tokenizer_fingerprint": fingerprint,
            })
    return rollout_lines, step_rows, records


# --------------------------------------------------------------------------- resume

def _write_json_atomic(path: Path, data: dict) -> None:
    write_json(path, data, sort_keys=True)


def _run_config(config: SampleConfig, expert_name: str, amateur_name: str, problems, tokenizer) -> dict:
    """What config.json stores: the settings, the models, the problems' digest, the vocabulary."""
    return {**to_dict(config), "expert": expert_name, "amateur": amateur_name, "problems": len(problems),
            "problems_sha256": problems_digest(problems), "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer)}


def _finished(out_dir: Path, run_config: dict) -> Optional["SampleResult"]:
    """The stored result when ``out_dir`` holds this run finished; FolderError when it
    holds a run with other settings or other files; None otherwise (absent, empty or unfinished)."""
    opened = SAMPLING.open(out_dir, run_config)
    return opened.result if opened.state == "stored" else None


def _finished_before_loading(expert: str, amateur: Optional[str], problems, out_dir: Path,
                             config: SampleConfig, trust_remote_code: bool) -> Optional["SampleResult"]:
    """:func:`_finished` from the tokenizer alone (no model loaded), for a folder
    that holds a finished run."""
    if not ((out_dir / CONFIG_FILE).exists() and (out_dir / SUMMARY_FILE).exists()):
        return None
    if amateur is None:
        from lrkit.models.pairs import resolve_pair

        expert, amateur = resolve_pair(expert)
    tokenizer = load_tokenizer(resolve_member(str(expert)), trust_remote_code)
    return _finished(out_dir, _run_config(config, str(expert), str(amateur), problems, tokenizer))


def _prepare_out_dir(out_dir: Path, run_config: dict, overwrite: bool) -> tuple[int, dict]:
    """Create or reopen the output folder; returns the number of batches done
    and the seconds spent on them so far (rollout_s, scoring_s).

    Files are cut back to their size after the last finished batch, so a line
    half-written when the process died disappears.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    config_path, state_path = out_dir / CONFIG_FILE, out_dir / STATE_FILE
    if overwrite:
        for name in OUTPUT_FILES + (STATE_FILE, CONFIG_FILE, SUMMARY_FILE, PROVENANCE_FILE):
            (out_dir / name).unlink(missing_ok=True)
        _remove_shards(out_dir)
    # Another run's settings, or anything else there (an evaluation's summary.json, a user's
    # files), would be overwritten or mixed with this run's files: refused in one line.
    if overwrite:
        if not config_path.exists():
            _write_json_atomic(config_path, run_config)
    elif SAMPLING.open(out_dir, run_config).state == "new":
        _write_json_atomic(config_path, run_config)
    state = json.loads(state_path.read_text()) if state_path.exists() else {"batches_done": 0, "sizes": {}}
    for name in OUTPUT_FILES:
        path = out_dir / name
        size = state["sizes"].get(name, 0)
        if path.exists() and path.stat().st_size != size:
            with path.open("r+b") as handle:
                handle.truncate(size)
    timings = {key: float(state.get(key, 0.0)) for key in ("rollout_s", "scoring_s")}
    return int(state["batches_done"]), timings


def _append_batch(out_dir: Path, batch_index: int, chunks: dict[str, str], timings: dict) -> None:
    sizes = {}
    for name in OUTPUT_FILES:
        path = out_dir / name
        with path.open("a", encoding="utf-8") as handle:
            handle.write(chunks[name])
            handle.flush()
            os.fsync(handle.fileno())
        sizes[name] = path.stat().st_size
    _write_json_atomic(out_dir / STATE_FILE, {"batches_done": batch_index + 1, "sizes": sizes,
                                              **{k: round(v, 3) for k, v in timings.items()}})


# --------------------------------------------------------------------------- the stage

@dataclass
class SampleResult:
    out_dir: Path
    summary: dict = field(default_factory=dict)

    @property
    def records_path(self) -> Path:
        return self.out_dir / "records.jsonl"

    def records(self) -> list[dict]:
        return read_records(self.records_path, allow_empty=True)

    def steps(self):
        return read_steps(self.out_dir)

    def rollouts(self):
        return read_rollouts(self.out_dir)

    @classmethod
    def load(cls, out_dir: Union[str, Path]) -> "SampleResult":
        """The result of the finished sampling run in ``out_dir`` (its summary.json)."""
        out_dir = Path(out_dir)
        summary = read_json(out_dir / SUMMARY_FILE)
        if not isinstance(summary, dict) or not (out_dir / CONFIG_FILE).exists():
            raise FileNotFoundError(f"{out_dir}: no finished sampling run ({CONFIG_FILE}, {SUMMARY_FILE})")
        return cls(out_dir, summary)


SAMPLING = StageFolder(STAGE, CONFIG_FILE, finished=lambda folder, stored: (folder / SUMMARY_FILE).exists(),
                       load=lambda folder: SampleResult.load(folder),
                       as_stored=lambda stored, current: _today(stored), way_out=WAY_OUT)
"""The sampling stage's folder protocol (lrkit.runs.StageFolder): settings in config.json,
finished once summary.json is written."""


def _today(stored: dict) -> dict:
    """config.json under today's field names, with the fields added since filled in as the
    folder was made (a folder from before a rename or an added field resumes)."""
    return with_added_fields(current_names(SampleConfig, stored), SampleConfig)


def read_steps(out_dir: Union[str, Path]):
    """Every step's statistics of a sampling run, as a pandas DataFrame.

    Args:
        out_dir: the sampling run's folder (the one holding ``steps.jsonl``).

    Returns:
        pandas.DataFrame: one row per generated position of every rollout, the columns of
        docs/ARCHITECTURE.md's step-statistics table. ``attrs["beta"]`` holds the run's beta
        (from config.json) and ``attrs["questions"]`` maps each prompt_id to its question
        (from rollouts.jsonl), when those files are there: the token views read both.

    Raises:
        FileNotFoundError: the folder has no ``steps.jsonl`` (a run with ``write_steps=False``).
    """
    import pandas as pd

    path = Path(out_dir) / "steps.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no step statistics (was the run made with write_steps=False?)")
    steps = pd.read_json(path, lines=True, dtype=False)
    # What the views need beside the numbers: the run's beta (their colour scale marks
    # it) and each problem's question (shown above its rollout).
    config_path, rollouts_path = Path(out_dir) / "config.json", Path(out_dir) / "rollouts.jsonl"
    if config_path.exists():
        steps.attrs["beta"] = json.loads(config_path.read_text()).get("beta")
    if rollouts_path.exists():
        with open(rollouts_path, encoding="utf-8") as lines:
            rows = (json.loads(line) for line in lines if line.strip())
            steps.attrs["questions"] = {str(r["prompt_id"]): r.get("question") for r in rows}
    return steps


def read_rollouts(out_dir: Union[str, Path]):
    import pandas as pd

    return pd.read_json(Path(out_dir) / "rollouts.jsonl", lines=True, dtype=False)


def summarize_steps(steps) -> dict:
    """The paper's statistics of a run's steps."""
    agree = steps["top1_agree"].astype(bool)
    kl = steps["kl"]
    return {
        "steps": int(len(steps)),
        "kept": int(steps["kept"].sum()),
        "share_kept": float(steps["kept"].mean()) if len(steps) else 0.0,
        "share_kl_below_0.1": float((kl < 0.1).mean()) if len(steps) else 0.0,
        "share_kl_at_least_0.4": float((kl >= 0.4).mean()) if len(steps) else 0.0,
        "mean_kl": float(kl.mean()) if len(steps) else 0.0,
        "mean_kl_top1_agree": float(kl[agree].mean()) if agree.any() else float("nan"),
        "mean_kl_top1_disagree": float(kl[~agree].mean()) if (~agree).any() else float("nan"),
        "share_top1_agree": float(agree.mean()) if len(steps) else 0.0,
        "share_agree_with_kl_above_0.4": float((kl[agree] > 0.4).mean()) if agree.any() else float("nan"),
    }


@writes_folder("sampling run")
def sample(expert: Union[str, ModelPair], amateur: Optional[str], problems, out_dir,
           config: Optional[SampleConfig] = None, *, max_problems: Optional[int] = None,
           device=None, dtype=None, trust_remote_code: bool = False, overwrite: bool = False,
           progress: bool = True) -> SampleResult:
    """Run the sampling stage and write its files to ``out_dir``.

    The expert generates a rollout per problem (greedy, or its generation_config's
    sampling: ``config.rollouts``); both models then score every position of it
    teacher-forced, in float32: KL(pi_E || pi_A), entropies, top-k. Steps with
    KL >= beta become records holding the soft label v_C over the alpha mask.
    Rerunning the same call after an interruption resumes where it stopped (the files
    are cut back to the last finished batch); a folder that holds this run finished
    (same settings, models, problems and tokenizer) gives its stored result back
    without loading the models or writing anything. The folder is locked while the
    call writes it (:func:`lrkit.runs.locked`).

    Args:
        expert: a loaded :class:`lrkit.models.loading.ModelPair` (then ``amateur`` is None),
            a pair name such as ``"toy"`` (``amateur`` None), or the expert's Hub name,
            folder or pair member with ``amateur`` beside it.
        amateur (str, optional): the amateur's name or folder; None with a pair.
        problems: a JSONL path, a benchmark split such as ``"gsm8k:train"`` (the paper's;
            a bare benchmark name, which means its evaluation split, is refused), or a list
            of problem dicts / ``Problem``.
        out_dir: the run's folder: config.json, rollouts.jsonl, steps.jsonl, records.jsonl,
            state.json, summary.json, provenance.json (docs/ARCHITECTURE.md).
        config (SampleConfig, optional): default ``SampleConfig()``; ``rollouts`` None is
            stored as the pair's own way (greedy, or model-default for DeepSeek).
        max_problems (int, optional): the first N problems only.
        device, dtype: where and in what dtype models given by name load
            (:func:`lrkit.load_pair`; default auto); ignored for a loaded pair.
        trust_remote_code (bool): passed to ``from_pretrained``.
        overwrite (bool): delete the sampling files already in ``out_dir`` first (another
            run's too); other files there are left as they are, not refused.
        progress (bool): show a progress bar over problems.

    Returns:
        SampleResult: the folder (``out_dir``, ``records_path``; ``records()``, ``steps()``,
        ``rollouts()`` read them) and ``summary``, summary.json's counts, timings and the
        paper's step statistics.

    Raises:
        lrkit.runs.FolderError: ``out_dir`` holds a run of other settings, models, problems
            or tokenizer, or files that are not a sampling run's (without ``overwrite``).
        lrkit.runs.FolderBusyError: another process is writing ``out_dir``.
        lrkit.data.answers.ProblemError: a bare benchmark name, or a bad problem source.
        lrkit.models.loading.PairError: the two models do not share a tokenizer.
        ValueError: a config value out of range, a prompt that with ``max_new_tokens``
            does not fit a model's context, or more processes than problems.
    """
    ranks = distributed.current()
    with distributed.together():  # every rank checks the input; rank 0 alone touches the folder
        config = (config or SampleConfig()).validate()
        if config.rollouts is None:  # the pair's own way, stored as what it is
            config = replace(config, rollouts=default_rollouts(
                expert.expert_name if isinstance(expert, ModelPair) else str(expert)))
        problems_source = problems
        problems = training_problems(problems, max_problems=max_problems, caller="sampling")
        if ranks.world > len(problems):
            raise ValueError(f"{ranks.world} processes for {len(problems)} problem(s): launch at most "
                             f"{len(problems)} (torchrun --nproc-per-node / accelerate --num_processes)")
        out_dir = Path(out_dir)
        if not overwrite and not isinstance(expert, ModelPair):
            stored = _finished_before_loading(str(expert), amateur, problems, out_dir, config, trust_remote_code)
            if stored is not None:
                return stored
        pair = expert if isinstance(expert, ModelPair) else load_pair(
            expert, amateur, device=distributed.local_device(device), dtype=dtype,
            trust_remote_code=trust_remote_code)
        prompts = [build_prompt_ids(pair.tokenizer, p.question, config.system_prompt) for p in problems]
        check_prompt_lengths(prompts, problems, [pair.expert, pair.amateur], config.max_new_tokens,
                             source="" if isinstance(problems_source, (list, tuple)) else str(problems_source))
        run_config = _run_config(config, pair.expert_name, pair.amateur_name, problems, pair.tokenizer)
        if not overwrite:
            stored = _finished(out_dir, run_config)
            if stored is not None:
                return stored
        done, timings, provenance = 0, {}, None
        if ranks.is_main:
            # Timings add up over resumed runs: a finished folder reopened keeps its own.
            done, timings = _prepare_out_dir(out_dir, run_config, overwrite)
            provenance = Provenance(out_dir, api_call("sample", pair.expert_name, pair.amateur_name,
                                                      problems_source, out_dir=str(out_dir)),
                                    pair.device, next(pair.expert.parameters()).dtype).start()
    done = distributed.broadcast(done)
    batches = [range(i, min(i + config.batch_size, len(problems)))
               for i in range(0, len(problems), config.batch_size)]
    stop_ids = stop_token_ids(pair.expert, pair.tokenizer)
    mine = [index for index in range(done, len(batches)) if ranks.mine(index)]
    bar = None
    if progress and ranks.is_main:
        from tqdm.auto import tqdm
        bar = tqdm(total=sum(len(batches[i]) for i in mine), desc="sampling", unit="problem")
    with contextlib.closing(bar) if bar is not None else contextlib.nullcontext(), distributed.together():
        # each rank samples its batches: r, r + N, r + 2N... (the bar closes, error or not)
        for index in mine:
            chunks = _read_shard(out_dir, index)
            if chunks is None:
                batch = [problems[i] for i in batches[index]]
                batch_prompts = [prompts[i] for i in batches[index]]
                start = time.perf_counter()
                with finite_guard("sampling", f"the expert {pair.expert_name}", model_dtype(pair.expert),
                                  "its rollouts"):
                    if config.rollouts == "model-default":  # seeded per batch: a resumed run draws the same
                        gens = checkpoint_generate_batch(pair.expert, pair.tokenizer, batch_prompts,
                                                         config.max_new_tokens, stop_ids,
                                                         seed=config.rollout_seed + index)
                    else:
                        gens = greedy_generate_batch(pair.expert, pair.tokenizer, batch_prompts,
                                                     config.max_new_tokens, stop_ids)
                rollouts = [Rollout(p, ids, g.token_ids, g.finished)
                            for p, ids, g in zip(batch, batch_prompts, gens)]
                middle = time.perf_counter()
                columns, labels = score_rollouts(pair, rollouts, config)
                rollout_lines, step_rows, records = build_outputs(pair, rollouts, columns, labels, config)
                chunks = {"rollouts.jsonl": "".join(dumps(line) for line in rollout_lines),
                          "steps.jsonl": "".join(dumps(line) for line in step_rows) if config.write_steps else "",
                          "records.jsonl": "".join(dumps(line) for line in records),
                          "rollout_s": middle - start, "scoring_s": time.perf_counter() - middle}
            if ranks.sharded:  # rank 0 merges every rank's batches in order once all are done
                _write_shard(out_dir, index, chunks)
            else:
                _merge_batch(out_dir, index, chunks, timings)
            if bar is not None:
                bar.update(len(batches[index]))
    summary = None
    with distributed.together():
        if ranks.is_main:
            for index in range(done, len(batches) if ranks.sharded else 0):
                _merge_batch(out_dir, index, _read_shard(out_dir, index), timings)
            _remove_shards(out_dir)
            summary = {"problems": len(problems), "expert": pair.expert_name, "amateur": pair.amateur_name,
                       "records": _count_lines(out_dir / "records.jsonl"), **timings}
            if config.write_steps:
                summary.update(summarize_steps(read_steps(out_dir)))
            _write_json_atomic(out_dir / SUMMARY_FILE, summary)
            provenance.finish(**({"processes": ranks.world} if ranks.sharded else {}))
    return SampleResult(out_dir, distributed.broadcast(summary))


# --------------------------------------------------------------------------- shards (several processes)
# Under a launcher each rank writes every batch it finished to shards/batch-N.json
# (atomically: a killed rank leaves whole batches or none); rank 0 appends them
# to the run's files in batch order, so the folder ends as one process would
# leave it. A rerun, with any number of processes, reuses the batches there.

SHARD_DIR = "shards"


def _shard_path(out_dir: Path, index: int) -> Path:
    return out_dir / SHARD_DIR / f"batch-{index:06d}.json"


def _read_shard(out_dir: Path, index: int) -> Optional[dict]:
    path = _shard_path(out_dir, index)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _write_shard(out_dir: Path, index: int, chunks: dict) -> None:
    path = _shard_path(out_dir, index)
    path.parent.mkdir(exist_ok=True)
    _write_json_atomic(path, chunks)


def _remove_shards(out_dir: Path) -> None:
    import shutil

    shutil.rmtree(out_dir / SHARD_DIR, ignore_errors=True)


def _merge_batch(out_dir: Path, index: int, chunks: dict, timings: dict) -> None:
    for key in ("rollout_s", "scoring_s"):
        timings[key] += chunks[key]
    _append_batch(out_dir, index, {name: chunks[name] for name in OUTPUT_FILES}, timings)


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())
