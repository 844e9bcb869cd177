"""The evaluation loop: greedy pass@1 of one model (``evaluate``) or of a pair decoding
by the soft label's argmax (``evaluate_contrastive``), under the config's protocol
(:mod:`lrkit.evaluation.protocol`: the paper's toolkit or lrkit's rules), in
length-sorted batches, saved after every batch, sharded under a launcher."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Union

from lrkit import distributed
from lrkit.config import EvalConfig, to_dict
from lrkit.data.problems import benchmark_source, load_problems
from lrkit.evaluation import protocol as protocols
from lrkit.evaluation.results import EvalResult, results_frame, check_eval_out_dir, unfinished_rows
from lrkit.models.generation import contrastive_generate_batch, greedy_generate_batch
from lrkit.models.guard import dtype_name, finite_guard, model_dtype
from lrkit.models.loading import fit_answer_limit
from lrkit.provenance import Provenance, api_call
from lrkit.runs import problems_digest, writes_folder

def model_identity(model, out_dir: Union[str, Path, None] = None) -> str:
    """What an evaluation records as the model it evaluated: for a model object, the name or
    folder it was loaded from (``config._name_or_path``, else its class name); then a
    registered pair's member is ``NAME:role`` (``toy:expert``), another local folder is its
    path relative to ``out_dir`` (so a run folder moved whole, with its models, still
    matches), and anything else (a Hub name) stays as it is. A display name (``name=``) is
    not part of it: the same model under two labels is one evaluation."""
    import os

    from lrkit.models.pairs import pair_member

    if not isinstance(model, (str, Path)):
        model = getattr(getattr(model, "config", None), "_name_or_path", "") or type(model).__name__
    model = str(model)
    member = pair_member(model)
    if member is not None:
        return member
    if out_dir is not None and Path(model).exists():
        return os.path.relpath(Path(model).resolve(), Path(out_dir).resolve())
    return model


def _resolve_model(model_or_path, tokenizer, device=None, dtype=None):
    if isinstance(model_or_path, (str, Path)):
        from lrkit.distributed import local_device
        from lrkit.models.loading import load_model

        model, loaded_tokenizer = load_model(str(model_or_path), device=local_device(device), dtype=dtype)
        return model, tokenizer or loaded_tokenizer, str(model_or_path)
    if tokenizer is None:
        raise ValueError("evaluate() got a model object without its tokenizer; pass tokenizer=")
    name = getattr(getattr(model_or_path, "config", None), "_name_or_path", "") or type(model_or_path).__name__
    return model_or_path, tokenizer, str(name)


def evaluate(model_or_path, problems, config: Optional[EvalConfig] = None, tokenizer=None,
             out_dir: Union[str, Path, None] = None, progress: bool = True,
             name: Optional[str] = None, device=None, dtype=None,
             benchmark: Optional[str] = None) -> EvalResult:
    """Greedy pass@1 of one model on a problem set, under ``config.protocol``.

    ``model_or_path``: a loaded model (with ``tokenizer``) or a name/path for
    ``lrkit.models.loading.load_model``. ``problems``: a list of dicts with id, question
    and answer (GSM8K solutions are reduced to the text after ``####``), a list
    of ``Problem`` or a JSONL path. With ``out_dir``, ``results.jsonl`` and
    ``summary.json`` are rewritten after every batch, so a long run can be
    watched and a crash keeps finished batches; the final files are in problem
    order. A folder holding this evaluation finished (same model name, dtype, config
    and problems) gives the stored result back without generating (before loading
    the model when it is given by name); one holding it unfinished keeps the
    batches it saved and generates the rest, so the files end as an uninterrupted
    run's; another evaluation or other files there raise :class:`lrkit.runs.FolderError`.
    ``device`` / ``dtype``: where and how a model given by name is loaded (default: auto).
    ``benchmark``: the registry name the problems come from (``lrkit.data.benchmarks``), which
    the paper's protocol reads them by (MMLU-STEM's shots, Minerva's units...); found by itself
    when ``problems`` is a benchmark name; None reads a problem file as GSM8K. The answer length
    actually used is ``info["answer_limit"]``.

    Args:
        model_or_path: a loaded causal LM (then ``tokenizer`` is needed), or a Hub name,
            folder, ``.gguf`` file or pair member to load.
        problems: a JSONL path, a benchmark name (``"gsm8k"``, ``"math500"``,
            ``"gsm8k:train"``), or a list of dicts / ``Problem``; every one needs its answer.
        config (EvalConfig, optional): default ``EvalConfig()``, the paper's protocol.
        tokenizer: the loaded model's tokenizer; for a model given by name, None loads its own.
        out_dir: the evaluation's folder (``results.jsonl``, ``summary.json``,
            ``provenance.json``); None keeps the result in memory only.
        progress (bool): a progress bar with the running accuracy.
        name (str, optional): a display name for tables and the summary; not part of the
            evaluation's identity (that is the model's name or folder).
        device: where a model given by name loads (default: CUDA when available).
        dtype: its dtype (``"bf16"``, ``"fp16"``, ``"fp32"``, a ``torch.dtype``; default: auto).
        benchmark (str, optional): the registry name the problems come from, see above.

    Returns:
        EvalResult: ``df`` (one row per problem in problem order: id, question, gold, output,
        prediction, correct, n_tokens, finished, unparsed) and ``info`` (model, name, dtype,
        config, benchmark, stop ids, answer limit, timing); ``accuracy`` and ``interval``
        (95% Wilson) read them.

    Raises:
        ValueError: no problems, a problem without an answer, a model object without
            ``tokenizer``, a prompt too long for the model's context, or more processes
            than problems.
        lrkit.runs.FolderError: ``out_dir`` holds another evaluation or other files.
        lrkit.runs.FolderBusyError: another process is writing ``out_dir``.
    """
    config = (config or EvalConfig()).validate()
    benchmark = benchmark or _benchmark_of(problems)
    problems = _scorable_problems(problems, "evaluate()")
    by_name = isinstance(model_or_path, (str, Path))
    if by_name:
        from lrkit.distributed import local_device
        from lrkit.models.loading import choose_device, choose_dtype

        precision = dtype_name(choose_dtype(choose_device(local_device(device)), dtype))
    else:
        precision = dtype_name(model_dtype(model_or_path))
    identity = model_identity(model_or_path, out_dir)
    label = name or (str(model_or_path) if by_name else identity)
    if out_dir is not None:
        # Before the model loads: a folder in use is refused at once.
        stored = check_eval_out_dir(Path(out_dir), {"model": identity, "name": label, "dtype": precision,
                                                    "config": to_dict(config), "benchmark": benchmark,
                                                    "problems_sha256": _problems_sha256(problems)})
        if stored is not None:
            return stored
    model, tokenizer, model_name = _resolve_model(model_or_path, tokenizer, device, dtype)
    info = {"model": identity, "name": label, "dtype": precision, "config": to_dict(config),
            "benchmark": benchmark}
    # The toolkit decides its stop ids by the model's name or path ("qwen2" in it), not a label.
    stop_ids = protocols.stop_ids(model, tokenizer, config.protocol, model_name)
    return _run_evaluation(
        lambda prompts, limit: greedy_generate_batch(model, tokenizer, prompts, limit, stop_ids),
        [model], tokenizer, problems, config, {**info, "stop_ids": stop_ids}, out_dir, progress)


def evaluate_contrastive(pair, problems, config: Optional[EvalConfig] = None, alpha: float = 0.2,
                         out_dir: Union[str, Path, None] = None, progress: bool = True,
                         name: Optional[str] = None, benchmark: Optional[str] = None) -> EvalResult:
    """Pass@1 of a pair decoding by the method's own target: at each step the
    argmax of the soft label v_C (log pi_E - log pi_A inside the alpha mask),
    with no training at all (:func:`lrkit.models.generation.contrastive_generate_batch`).

    If this scores below greedy decoding of the expert alone, the pair's
    contrast points away from better answers and tuning towards it cannot be
    expected to help; the demo's ablations report it for that reason. With
    ``out_dir`` the folder rules of :func:`evaluate` apply (the settings include alpha).

    Args:
        pair: a loaded :class:`lrkit.models.loading.ModelPair` (:func:`lrkit.load_pair`).
        problems: as for :func:`evaluate`: a JSONL path, a benchmark name or a list, every
            problem with its answer.
        config (EvalConfig, optional): default ``EvalConfig()``; its prompt, answer limit,
            stop tokens and grading are those of greedy evaluation.
        alpha (float): the plausibility mask of v_C: tokens with
            pi_E >= alpha * max pi_E.
        out_dir: the evaluation's folder, or None to keep the result in memory only.
        progress (bool): a progress bar with the running accuracy.
        name (str, optional): a display name; default names the two models and alpha.
        benchmark (str, optional): the registry name the problems come from (see
            :func:`evaluate`).

    Returns:
        EvalResult: as :func:`evaluate` returns, its ``info["model"]`` naming the pair.

    Raises:
        ValueError: no problems, a problem without an answer, a prompt too long for a
            model's context, or more processes than problems.
        lrkit.runs.FolderError: ``out_dir`` holds another evaluation or other files.
        lrkit.runs.FolderBusyError: another process is writing ``out_dir``.
    """
    config = (config or EvalConfig()).validate()
    benchmark = benchmark or _benchmark_of(problems)
    problems = _scorable_problems(problems, "evaluate_contrastive()")
    info = contrastive_settings(pair.expert_name, pair.amateur_name, dtype_name(model_dtype(pair.expert)), config,
                                alpha, benchmark, name, out_dir)
    stop_ids = protocols.stop_ids(pair.expert, pair.tokenizer, config.protocol, pair.expert_name)
    return _run_evaluation(
        lambda prompts, limit: contrastive_generate_batch(pair, prompts, limit, alpha, stop_ids),
        [pair.expert, pair.amateur], pair.tokenizer, problems, config, {**info, "stop_ids": stop_ids}, out_dir,
        progress)


def contrastive_settings(expert_name: str, amateur_name: str, dtype: str, config: EvalConfig, alpha: float,
                         benchmark: Optional[str] = None, name: Optional[str] = None,
                         out_dir: Union[str, Path, None] = None) -> dict:
    """What identifies decoding by v_C's argmax of a pair (with the problems' digest, which
    the loop adds): the two models (:func:`model_identity`), their dtype, the config with alpha."""
    identity = (f"contrastive decoding ({model_identity(expert_name, out_dir)} vs "
                f"{model_identity(amateur_name, out_dir)})")  # alpha: in the config
    return {"model": identity, "name": name or f"{identity[:-1]}, alpha {alpha})", "dtype": dtype,
            "config": {**to_dict(config), "alpha": alpha}, "benchmark": benchmark}


def stored_contrastive(expert_name: str, amateur_name: str, dtype: str, problems, config: EvalConfig,
                       alpha: float, out_dir: Union[str, Path], name: Optional[str] = None) -> Optional[EvalResult]:
    """The finished :func:`evaluate_contrastive` that ``out_dir`` holds for these settings,
    read without loading a model; None when there is none (FolderError for another one)."""
    config = config.validate()
    benchmark = _benchmark_of(problems)
    problems = _scorable_problems(problems, "evaluate_contrastive()")
    info = contrastive_settings(expert_name, amateur_name, dtype, config, alpha, benchmark, name, out_dir)
    return check_eval_out_dir(Path(out_dir), {**info, "problems_sha256": _problems_sha256(problems)})


def _benchmark_of(problems) -> Optional[str]:
    """The registry name when ``problems`` names a benchmark ("gsm8k", "mmlu_stem:test"), else None."""
    named = benchmark_source(problems)
    return named[0] if named is not None else None


def _scorable_problems(problems, caller: str) -> list:
    problems = load_problems(problems, require_answers=True)
    if not problems:
        raise ValueError(f"{caller} got no problems")
    missing = [p.id for p in problems if p.answer is None]
    if missing:
        raise ValueError(f"{len(missing)} problem(s) have no answer to score against, "
                         f"first: {', '.join(missing[:5])}")
    return problems


@writes_folder("evaluation")
def _run_evaluation(generate_batch, models, tokenizer, problems, config: EvalConfig, info: dict,
                    out_dir, progress: bool) -> EvalResult:
    """Generate in length-sorted batches, score each answer, save after every
    batch; ``models`` are in eval mode meanwhile and get their mode back."""
    ranks = distributed.current()
    stage = "evaluation" if len(models) == 1 else "decoding by v_C"
    with distributed.together():  # every rank checks the input; rank 0 alone touches the folder
        benchmark = info.get("benchmark")
        prompts = [protocols.prompt_ids(tokenizer, p.question, config.system_prompt, config.protocol, benchmark)
                   for p in problems]
        limit = fit_answer_limit(prompts, problems, models, config.max_new_tokens,
                                 protocols.default_answer_limit(config.protocol))
        if ranks.world > len(problems):
            raise ValueError(f"{ranks.world} processes for {len(problems)} problem(s): launch at most "
                             f"{len(problems)} (torchrun --nproc-per-node / accelerate --num_processes)")
        info = {**info, "problems_sha256": _problems_sha256(problems), "answer_limit": limit}
        provenance = None
        stored = check_eval_out_dir(Path(out_dir), info) if out_dir is not None else None
        if stored is not None:  # every rank reads it: all return the stored evaluation
            return stored
        done, seconds_before = unfinished_rows(Path(out_dir)) if out_dir is not None else ({}, 0.0)
        if out_dir is not None and ranks.is_main:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            first = next(models[0].parameters())
            provenance = Provenance(out_dir, api_call("evaluate", info.get("name"), out_dir=str(out_dir)),
                                    first.device, first.dtype).start()
    # Similar lengths share a batch so little compute goes to padding. Under a
    # launcher rank r takes batches r, r + N...: each problem is generated in
    # the batch it would have in one process, so the results are the same.
    order = sorted(range(len(problems)), key=lambda i: len(prompts[i]))
    batches = [order[i:i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    # A batch an interrupted run of this evaluation saved is taken as it was: each
    # batch is generated alone, so the rows are the ones this run would make.
    rows: list[Optional[dict]] = [None] * len(problems)
    for batch in batches:
        if all(problems[i].id in done for i in batch):
            for i in batch:
                rows[i] = done[problems[i].id]
    batches = [batch for index, batch in enumerate(batches)
               if ranks.mine(index) and any(rows[i] is None for i in batch)]
    bar = None
    if progress and ranks.is_main:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(problems), initial=sum(r is not None for r in rows), desc="evaluating",
                   unit="problem")
    modes = [model.training for model in models]
    for model in models:
        model.eval()
    start = time.perf_counter() - seconds_before
    try:
        with distributed.together():
            for batch in batches:
                with finite_guard(stage, str(info.get("name")), model_dtype(models[0])):
                    generations = generate_batch([prompts[i] for i in batch], limit)
                for i, generation in zip(batch, generations):
                    rows[i] = _result_row(problems[i], generation, tokenizer, config.protocol, benchmark)
                if bar is not None:
                    bar.update(len(batch))
                    done = [r for r in rows if r is not None]
                    bar.set_postfix(accuracy=f"{sum(r['correct'] for r in done) / len(done):.1%}")
                if out_dir is not None and ranks.is_main:
                    _finish(rows, {**info, "complete": False, "n_planned": len(problems)}, start).save(out_dir)
    finally:
        for model, mode in zip(models, modes):
            model.train(mode)
        if bar is not None:
            bar.close()
    if ranks.sharded:  # every rank's rows, back in problem order
        for shard in distributed.gather(rows):
            rows = [mine if mine is not None else theirs for mine, theirs in zip(rows, shard)]
    result = _finish(rows, {**info, "complete": True}, start)
    if out_dir is not None and ranks.is_main:
        result.save(out_dir)
        provenance.finish(**({"processes": ranks.world} if ranks.sharded else {}))
    return result


def _problems_sha256(problems) -> str:
    return problems_digest(problems, ("id", "question", "answer"))


def _result_row(problem, generation, tokenizer, protocol: str, benchmark: Optional[str]) -> dict:
    output = tokenizer.decode(generation.token_ids, skip_special_tokens=True)
    scored = protocols.score(output, problem, protocol, benchmark)
    return {"id": problem.id, "question": problem.question, "gold": scored["gold"], "output": output,
            "prediction": scored["prediction"], "correct": scored["correct"],
            "n_tokens": len(generation.token_ids), "finished": generation.finished,
            "unparsed": scored["unparsed"]}


def _finish(rows: list, info: dict, start: float) -> EvalResult:
    done = [r for r in rows if r is not None]
    seconds = time.perf_counter() - start
    tokens = sum(r["n_tokens"] for r in done)
    timing = {"seconds": seconds, "generated_tokens": tokens,
              "tokens_per_second": tokens / seconds if seconds > 0 else float("nan")}
    return EvalResult(results_frame(done), {**info, **timing})
