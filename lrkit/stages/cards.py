"""Model cards for adapters and merged models, and ``lrkit push``.

Every folder ``lrkit.train`` or ``lrkit.merge`` writes (and the demo's) gets a
``README.md`` model card built with the Hub's own tooling
(``huggingface_hub.ModelCard`` / ``ModelCardData``): front matter with
``base_model`` (the expert's public name: a Hub id, or ``PAIR:expert`` for a
bundled pair's member; never a local path), ``library_name`` (peft for an
adapter, transformers for a merged model), ``tags`` (lightreasoner) and
``datasets`` when known; a body with the settings, the tuned tokens, the
records used and the evaluations of that model.

The card's inputs sit beside it in ``lrkit_card.json``; ``add_evaluation`` adds
an evaluation there (``lrkit eval`` of an lrkit model folder and the demo do)
and writes the card again.

``push`` uploads a folder with its card through ``huggingface_hub.HfApi``
(``create_repo`` + ``upload_folder``). It is tested against a mocked HfApi only:
it has not run against the real Hub.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Sequence, Union

from lrkit.links import GITHUB_REPO
from lrkit.models.pairs import public_name
from lrkit.runs import RUN_FILE, write_json, write_text

PathLike = Union[str, os.PathLike]
CARD_FILE = "README.md"
CARD_DATA_FILE = "lrkit_card.json"
TAG = "lightreasoner"
PUSH_IGNORE = ("checkpoint-*", "checkpoint-*/**", "*.partial/**")
"""What ``push`` leaves out: the Trainer's checkpoints (optimizer states)."""


class CardError(ValueError):
    """A folder that holds no model (or dataset) lrkit can describe or push."""


# ---------------------------------------------------------------- names

# ---------------------------------------------------------------- card inputs

def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


EXTERNAL = "a LoRA adapter trained outside lrkit"


def card_inputs(folder: PathLike, adapter_dir: Optional[PathLike] = None, expert: Optional[str] = None) -> dict:
    """What the card of an adapter folder (``lrkit_train.json`` beside it) or a
    merged folder (``adapter_dir`` given: the adapter's run) says. A merged
    adapter that lrkit did not train (no run file) is described from ``expert``."""
    folder = Path(folder)
    kind = "merged" if adapter_dir is not None else "adapter"
    run = _read_json(Path(adapter_dir if adapter_dir is not None else folder) / RUN_FILE)
    if not run and adapter_dir is not None and expert is not None:
        run = {"method": EXTERNAL, "expert": expert}
    if not run:
        raise CardError(f"{Path(adapter_dir or folder) / RUN_FILE}: no training run to describe")
    previous = _read_json(folder / CARD_DATA_FILE)
    result = run.get("result", {})
    return {
        "kind": kind, "method": run.get("method", "LightReasoner"),
        "base_model": public_name(run["expert"]),
        "config": run.get("config", {}), "system_prompt": run.get("system_prompt"),
        "examples": run.get("examples", result.get("examples")), "examples_sha256": run.get("examples_sha256"),
        "problems": result.get("problems"), "tuned_tokens": result.get("tuned_tokens"),
        "steps": result.get("steps"),
        "adapter": Path(adapter_dir).name if adapter_dir is not None else None,
        "datasets": previous.get("datasets", []), "evaluations": previous.get("evaluations", []),
    }


# ---------------------------------------------------------------- the card

def build_model_card(info: dict):
    """A ``huggingface_hub.ModelCard`` from ``card_inputs`` (front matter by ModelCardData)."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    adapter = info["kind"] == "adapter"
    base = info.get("base_model")
    external = info["method"] == EXTERNAL
    title = (f"Merged LoRA model of {base or 'a local model'}" if external else
             f"{info['method']} {'LoRA adapter' if adapter else 'model'} of {base or 'a local model'}")
    evaluations = info.get("evaluations", [])
    data = ModelCardData(
        base_model=base, library_name="peft" if adapter else "transformers",
        tags=[TAG, "lrkit", "lora" if adapter else "merged-lora"],
        datasets=list(info.get("datasets") or []) or None,
        pipeline_tag="text-generation", model_name=title if evaluations else None,
        eval_results=[EvalResult(task_type="text-generation", dataset_type=e["dataset"], dataset_name=e["problems"],
                                 metric_type="accuracy", metric_name="pass@1 (greedy)",
                                 metric_value=round(float(e["accuracy"]), 4))
                      for e in evaluations] or None)
    config = info.get("config", {})
    lines = [f"# {title}", ""]
    what = ("a LoRA adapter" if adapter else
            f"the expert with the LoRA adapter `{info.get('adapter')}` merged into it (plain transformers weights)")
    lines += [f"This is {what}, trained by [lrkit]({repo_url()}) with {info['method']}: the expert "
              "is tuned towards contrastive soft labels at the steps where it and a weaker amateur "
              "disagree most (KL >= beta)." if info["method"] == "LightReasoner" else
              f"This is the expert with {EXTERNAL} merged into it by lrkit (plain transformers weights); "
              "lrkit knows nothing of its training." if info["method"] == EXTERNAL else
              f"This is {what}, trained by lrkit with {info['method']}.", ""]
    if base is None:
        lines += ["The expert was a local model with no public name, so the card names no base model.", ""]
    elif ":" in base:
        lines += [f"Base model: `{base}`, a member of lrkit's bundled pair (`lrkit pair show "
                  f"{base.split(':')[0]}`); it is not on the Hub.", ""]
    lines += [] if external else ["## Training", "",
              "| item | value |", "| --- | --- |",
              (f"| records used (training examples) | {info.get('examples')} |" if info["method"] == "LightReasoner"
               else f"| training examples (the expert's right rollouts) | {info.get('examples')} |"),
              f"| problems they came from | {info.get('problems')} |",
              f"| tuned tokens (supervised positions) | {info.get('tuned_tokens')} |",
              f"| optimizer steps | {info.get('steps')} |",
              *([f"| examples sha256 | `{info['examples_sha256']}` |"] if info.get("examples_sha256") else []), ""]
    if not external:
        lines += ["### Settings", "", "| setting | value |", "| --- | --- |"]
        lines += [f"| {key} | {table_cell(value)} |" for key, value in sorted(config.items())]
        lines += [f"| system_prompt | {table_cell(info.get('system_prompt'))} |", ""]
    lines += ["## Evaluation", ""]
    if evaluations:
        lines += ["| problems | n | accuracy | 95% interval | cut at the token limit |",
                  "| --- | --- | --- | --- | --- |"]
        lines += [f"| {e['problems']} | {e['n']} | {100 * e['accuracy']:.1f}% | "
                  f"[{100 * e['interval'][0]:.1f}, {100 * e['interval'][1]:.1f}] | {e.get('n_hit_limit', '')} |"
                  for e in evaluations]
        lines.append("")
        lines.append("Greedy pass@1 (`lrkit eval`).")
    else:
        lines.append("No evaluation of this model yet (`lrkit eval --model FOLDER` adds one here).")
    lines.append("")
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def repo_url() -> str:
    """lrkit's GitHub address, as cards link it (lrkit.links.GITHUB_REPO)."""
    return f"https://github.com/{GITHUB_REPO}"


def table_cell(value) -> str:
    """``value`` as the text of one Markdown table cell (lists joined, ``|`` escaped, one line)."""
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    return "none" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def _write(folder: Path, info: dict) -> Path:
    write_json(folder / CARD_DATA_FILE, info, sort_keys=True)
    write_text(folder / CARD_FILE, str(build_model_card(info)))
    return folder / CARD_FILE


def write_model_card(folder: PathLike, adapter_dir: Optional[PathLike] = None,
                     datasets: Sequence[str] = (), expert: Optional[str] = None) -> Path:
    """Write (or rewrite) ``folder/README.md``: an adapter folder's card from its
    ``lrkit_train.json``, a merged folder's from its ``adapter_dir``'s. Earlier
    evaluations and datasets in ``lrkit_card.json`` are kept."""
    folder = Path(folder)
    info = card_inputs(folder, adapter_dir, expert)
    info["datasets"] = sorted(set(info["datasets"]) | set(datasets))
    return _write(folder, info)


def is_lrkit_model(folder: PathLike) -> bool:
    return (Path(folder) / CARD_DATA_FILE).is_file()


def add_evaluation(folder: PathLike, result, problems: str, dataset: Optional[str] = None) -> Optional[Path]:
    """Put an evaluation (an ``EvalResult``) of the model in ``folder`` on its
    card; one per ``problems`` label, the newest kept. A folder without an lrkit
    card (not made by lrkit.train / merge) is left alone: returns None."""
    folder = Path(folder)
    if not is_lrkit_model(folder):
        return None
    info = _read_json(folder / CARD_DATA_FILE)
    entry = {"problems": problems, "dataset": dataset or problems, "n": int(result.n),
             "accuracy": float(result.accuracy), "interval": [float(x) for x in result.interval],
             "n_hit_limit": int(result.n_hit_limit)}
    info["evaluations"] = [e for e in info.get("evaluations", []) if e["problems"] != problems] + [entry]
    return _write(folder, info)


# ---------------------------------------------------------------- push

def repo_type_of(folder: PathLike) -> str:
    """"model" for an adapter or model folder, "dataset" for an ``lrkit export`` folder."""
    folder = Path(folder)
    if (folder / "adapter_config.json").is_file() or (folder / "config.json").is_file() and any(
            folder.glob("*.safetensors")):
        return "model"
    if any(folder.glob("data/*.parquet")):
        return "dataset"
    raise CardError(f"{folder}: neither a model (adapter_config.json, or config.json and weights) nor an "
                    "lrkit export (data/*.parquet)")


def push(folder: PathLike, repo_id: str, private: bool = False, token: Optional[str] = None,
         datasets: Sequence[str] = (), commit_message: Optional[str] = None, api=None) -> str:
    """Upload an adapter, merged model or exported dataset folder, with its card,
    to the Hub repo ``repo_id`` (created when missing). ``datasets`` adds Hub
    dataset ids to a model card first. Checkpoints stay behind. Returns the
    repo's URL. (Tested against a mocked HfApi only.)"""
    folder = Path(folder)
    if not folder.is_dir():
        raise CardError(f"{folder}: no such folder")
    if "/" not in repo_id or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise CardError(f"--repo-id {repo_id!r}: expected OWNER/NAME")
    repo_type = repo_type_of(folder)
    if datasets:
        if repo_type != "model" or not is_lrkit_model(folder):
            raise CardError(f"{folder}: --dataset applies to the model folders lrkit wrote (with {CARD_DATA_FILE})")
        info = _read_json(folder / CARD_DATA_FILE)
        info["datasets"] = sorted(set(info.get("datasets", [])) | set(datasets))
        _write(folder, info)
    if not (folder / CARD_FILE).is_file():
        raise CardError(f"{folder}: no {CARD_FILE} card (folders from lrkit train, merge and export have one)")
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    url = api.create_repo(repo_id=repo_id, repo_type=repo_type, private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type,
                      ignore_patterns=list(PUSH_IGNORE),
                      commit_message=commit_message or f"Upload {folder.name} with lrkit")
    return str(url)
