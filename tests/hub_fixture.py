"""A local Hugging Face cache holding the paper's pair and GSM8K, in the layout
``huggingface_hub`` and ``datasets`` write, for rehearsing the Colab path with
``HF_HUB_OFFLINE=1`` and ``HF_HOME`` pointing here.

- ``Qwen/Qwen2.5-Math-1.5B`` and ``Qwen/Qwen2.5-0.5B``: Qwen2.5's real
  tokenizer (tests/fixtures/qwen2.5/tokenizer.json.xz, 151,665 tokens), each
  model's own tokenizer_config.json (chat template, default system prompt),
  its real config.json with depth and width shrunk (vocabulary 151,936 rows and
  ``tie_word_embeddings`` kept), random weights.
- ``Qwen/Qwen2.5-Math-7B``: the same tokenizer and template as the 1.5B, the 7B's
  shape (untied output layer of 152,064 rows, 4,096 positions), shrunk.
- ``deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B``: Qwen2.5's vocabulary with the
  distill's 22 added tokens renamed (``<｜end▁of▁sentence｜>``, ``<｜User｜>``,
  ``<｜begin▁of▁sentence｜>`` ...; tests/fixtures/deepseek-r1-distill/added_tokens.json),
  its tokenizer_config (BOS added, its own chat template), its generation_config
  (sampling at temperature 0.6, top-p 0.95) and its untied config, shrunk.
- ``openai/gsm8k``, config ``main``: train from ../shared/data/gsm8k/train.jsonl,
  test from a small fixture, as parquet under ``main/`` with the dataset card's
  config table, as the Hub repository holds them; and the paper's six other
  benchmarks from tests/fixtures/benchmarks, each under its Hub id, config and
  split(s). ``datasets`` reads its own cache offline, so each is also prepared
  there, as an online ``load_dataset`` leaves it.

The code under test is not told: it asks for Hub names and the libraries find
them here. ``requested`` lists every repository they asked for.
"""
from __future__ import annotations

import json
import lzma
import shutil
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
QWEN = FIXTURES / "qwen2.5"
DEEPSEEK_FILES = FIXTURES / "deepseek-r1-distill"
REPO = Path(__file__).resolve().parents[1]
GSM8K_TRAIN = REPO.parent / "shared" / "data" / "gsm8k" / "train.jsonl"
GSM8K_TEST = FIXTURES / "benchmarks" / "gsm8k.jsonl"
REVISION = "0123456789abcdef0123456789abcdef01234567"
EXPERT, AMATEUR = "Qwen/Qwen2.5-Math-1.5B", "Qwen/Qwen2.5-0.5B"
EXPERT_7B, DEEPSEEK = "Qwen/Qwen2.5-Math-7B", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
MODELS = (EXPERT, AMATEUR, EXPERT_7B, DEEPSEEK)
TOKENS, ROWS, ROWS_7B = 151_665, 151_936, 152_064

# Shrunk in depth and width only: heads and kv heads as the real models have
# them, head size cut; everything else in config.json as published.
SHRINK = {
    EXPERT: {"hidden_size": 96, "intermediate_size": 256, "num_hidden_layers": 2, "max_window_layers": 2},
    AMATEUR: {"hidden_size": 56, "intermediate_size": 160, "num_hidden_layers": 1, "max_window_layers": 1},
    EXPERT_7B: {"hidden_size": 56, "intermediate_size": 128, "num_hidden_layers": 2, "max_window_layers": 2},
    DEEPSEEK: {"hidden_size": 48, "intermediate_size": 128, "num_hidden_layers": 2, "max_window_layers": 2},
}
WEIGHT_STD = 0.25
EOS_WEIGHT = 6.0
GSM8K_CARD = """---
dataset_info:
- config_name: main
  features:
  - name: question
    dtype: string
  - name: answer
    dtype: string
configs:
- config_name: main
  data_files:
  - split: train
    path: main/train-*
  - split: test
    path: main/test-*
---
# GSM8K (rehearsal copy: train as published, test a small fixture)
"""


def tokenizer_json() -> bytes:
    return lzma.decompress((QWEN / "tokenizer.json.xz").read_bytes())


def real_config(name: str) -> dict:
    if name == DEEPSEEK:
        return json.loads((DEEPSEEK_FILES / "config.json").read_text())
    return json.loads((QWEN / f"{name.split('/')[1]}.config.json").read_text())


def deepseek_added_tokens() -> list[dict]:
    return json.loads((DEEPSEEK_FILES / "added_tokens.json").read_text(encoding="utf-8"))


def deepseek_tokenizer_json(qwen: bytes) -> bytes:
    """Qwen2.5's tokenizer.json with the distill's added tokens (same ids, renamed, its
    special flags) and the BOS its tokenizer adds (add_bos_token: a LlamaTokenizerFast
    saves that as a TemplateProcessing post-processor)."""
    data = json.loads(qwen.decode("utf-8"))
    renamed = {t["id"]: t for t in deepseek_added_tokens()}
    for token in data["added_tokens"]:
        if token["id"] in renamed:
            token["content"], token["special"] = renamed[token["id"]]["content"], renamed[token["id"]]["special"]
    bos = next(t for t in deepseek_added_tokens() if t["content"] == "<｜begin▁of▁sentence｜>")
    data["post_processor"] = {"type": "TemplateProcessing",
                              "single": [{"SpecialToken": {"id": bos["content"], "type_id": 0}},
                                         {"Sequence": {"id": "A", "type_id": 0}}],
                              "pair": [{"SpecialToken": {"id": bos["content"], "type_id": 0}},
                                       {"Sequence": {"id": "A", "type_id": 0}},
                                       {"SpecialToken": {"id": bos["content"], "type_id": 1}},
                                       {"Sequence": {"id": "B", "type_id": 1}}],
                              "special_tokens": {bos["content"]: {"id": bos["content"], "ids": [bos["id"]],
                                                                  "tokens": [bos["content"]]}}}
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


def _model_files(repo_id: str) -> dict:
    """The small files of a model's repository: name -> source path."""
    if repo_id == DEEPSEEK:
        return {name: DEEPSEEK_FILES / name for name in ("tokenizer_config.json", "generation_config.json")}
    return {"tokenizer_config.json": QWEN / f"{repo_id.split('/')[1]}.tokenizer_config.json",
            "generation_config.json": QWEN / "generation_config.json"}


def _snapshot(hub: Path, kind: str, repo_id: str) -> Path:
    root = hub / f"{kind}--{repo_id.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(REVISION)
    snapshot = root / "snapshots" / REVISION
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot


def write_model(hub: Path, repo_id: str, seed: int, tokenizer_bytes: bytes) -> Path:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    snapshot = _snapshot(hub, "models", repo_id)
    config = {**real_config(repo_id), **SHRINK[repo_id]}
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(Qwen2Config(**{k: v for k, v in config.items() if k != "torch_dtype"}))
    with torch.no_grad():
        for param in model.parameters():  # wider than the initializer's 0.02: peaked distributions
            if param.dim() > 1:
                param.normal_(0.0, WEIGHT_STD)
        # Rollouts that end: every embedding (tied to the output layer) gets one
        # shared coordinate, EOS a larger one, so EOS wins now and then (rollouts of
        # about 1-20 tokens instead of running to max_new_tokens).
        # (an untied output layer gets the same coordinate, so it works alike)
        for embeddings in {id(w): w for w in (model.get_input_embeddings().weight,
                                              model.get_output_embeddings().weight)}.values():
            embeddings[:, 0] = 1.0
            embeddings[config["eos_token_id"], 0] = EOS_WEIGHT
    model.save_pretrained(snapshot, safe_serialization=True)
    (snapshot / "config.json").write_text(json.dumps(config, indent=2))  # the published fields, shrunk
    for name, source in _model_files(repo_id).items():
        shutil.copy(source, snapshot / name)
    (snapshot / "tokenizer.json").write_bytes(deepseek_tokenizer_json(tokenizer_bytes) if repo_id == DEEPSEEK
                                              else tokenizer_bytes)
    shutil.copy(QWEN / "LICENSE", snapshot / "LICENSE")  # (DeepSeek's distills are MIT; the vocabulary is Qwen's)
    return snapshot


def write_dataset(home: Path, repo_id: str, config: str | None, splits: dict, card: str = "") -> Path:
    """One Hub dataset: its parquet files in a Hub snapshot (``<config>/<split>-00000-of-00001.parquet``)
    and the cache ``datasets`` keeps after an online ``load_dataset(repo_id, config)``
    (``datasets/<owner>___<name>/<config>/0.0.0/<revision>/``), which is what it reads
    offline. That cache is made by the builder the online call uses (Parquet, named
    after the Hub repository) on the snapshot's files."""
    import pandas as pd
    from datasets import disable_progress_bars
    from datasets.data_files import DataFilesDict
    from datasets.packaged_modules.parquet.parquet import Parquet, ParquetConfig

    disable_progress_bars()

    snapshot = _snapshot(Path(home) / "hub", "datasets", repo_id)
    config = config or "default"
    (snapshot / config).mkdir(exist_ok=True)
    files = {}
    for split, rows in splits.items():
        path = snapshot / config / f"{split}-00000-of-00001.parquet"
        pd.DataFrame(rows).to_parquet(path, index=False)
        files[split] = [str(path)]
    if card:
        (snapshot / "README.md").write_text(card)
    data_files = DataFilesDict.from_patterns(files, base_path=str(snapshot))

    class HubParquet(Parquet):  # as the Hub module does: the card's configs are the builder's
        BUILDER_CONFIGS = [ParquetConfig(name=config, data_files=data_files)]

    builder = HubParquet(cache_dir=str(Path(home) / "datasets"), dataset_name=repo_id.split("/")[1],
                         config_name=config, hash=REVISION)
    # Online the files are hf://datasets/<repo>@<revision>/...; here they are the
    # snapshot's, so the repository is named once the builder has checked them.
    builder.repo_id = repo_id
    builder._cache_dir = builder._build_cache_dir()
    builder.download_and_prepare()
    return snapshot


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def benchmark_splits(name: str) -> dict:
    """A paper benchmark's fixture rows (tests/fixtures/benchmarks, Hub schema) by Hub split."""
    from lrkit.data.benchmarks import BENCHMARKS

    rows = _rows(FIXTURES / "benchmarks" / f"{name}.jsonl")
    parts = BENCHMARKS[name].split.split("+")
    if len(parts) == 2:  # SVAMP's train+test
        return {parts[0]: rows[:2], parts[1]: rows[2:]}
    return {parts[0]: rows}


def write_benchmarks(home: Path, n_train: int | None = None) -> None:
    """GSM8K (train from ../shared/data/gsm8k, test the fixture) and the paper's
    other six benchmarks (the fixtures), each under its Hub id and config."""
    from lrkit.data.benchmarks import BENCHMARKS, PAPER_BENCHMARKS

    train = _rows(GSM8K_TRAIN)
    gsm8k = {"train": train[:n_train] if n_train else train, "test": _rows(GSM8K_TEST)}
    write_dataset(home, "openai/gsm8k", "main", gsm8k, GSM8K_CARD)
    for name in PAPER_BENCHMARKS[1:]:
        bench = BENCHMARKS[name]
        write_dataset(home, bench.hub_id, bench.config, benchmark_splits(name))


def build_hub_cache(home: Path, n_train: int | None = None) -> Path:
    """Write the cache under ``home`` (use as HF_HOME); returns ``home``."""
    hub = Path(home) / "hub"
    tokenizer_bytes = tokenizer_json()
    for seed, repo_id in enumerate(MODELS, 1):
        write_model(hub, repo_id, seed, tokenizer_bytes)
    write_benchmarks(home, n_train)
    return Path(home)


def offline_env(home: Path) -> dict:
    """Environment variables of the rehearsal."""
    return {"HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
