"""Results people can share: TensorBoard event files in the run folder,
a training bar that prints no raw log dicts, model cards on adapters and merged
models, records as a Hugging Face dataset (parquet + dataset card) that training
reads back, and `lrkit push` against a mocked HfApi (the Hub is not reachable
here). Everything runs on the bundled toy pair with a few problems and steps.

Cross-cutting, around one small training run made once: it covers
lrkit.stages.curves, lrkit.stages.cards, lrkit.stages.export and `lrkit push`
(lrkit.cli). The tests only read that run's folders; a test that writes into
one (an evaluation updating a card, a push adding to one) works on its own
copy (``own_copy``), so the tests pass in any order."""
from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from lrkit.cli import main
from lrkit.config import TrainConfig
from lrkit.models.loading import torch_threads
from lrkit.models.pairs import TOY_DIR

pytestmark = pytest.mark.skipif(not (TOY_DIR / "expert").is_dir(), reason="no bundled pair")

STEPS = 3
BATCH = 4
CONFIG = dict(max_steps=STEPS, per_device_batch_size=BATCH, gradient_accumulation_steps=1, logging_steps=1,
              save_steps=100, learning_rate=1e-3)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """A sampling run, its export, an adapter trained from each (the JSONL one
    with its progress bar, stdout and stderr captured) and a merged model."""
    from lrkit import merge, sample, train
    from lrkit.config import SampleConfig
    from lrkit.stages.export import export
    from lrkit.toy import toy_problems

    root = tmp_path_factory.mktemp("sharing")
    with torch_threads(1):
        problems = [{"id": p["id"], "question": p["question"]} for p in toy_problems("toy", 8, "train", seed=5)]
        sample("toy", None, problems, root / "sampling", SampleConfig(batch_size=8), progress=False)
        export(root / "sampling", root / "export")
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            train("toy:expert", root / "sampling" / "records.jsonl", root / "adapter", TrainConfig(**CONFIG),
                  progress=True)
        train("toy:expert", root / "export", root / "adapter_from_export", TrainConfig(**CONFIG), progress=False)
        merge("toy:expert", root / "adapter", root / "merged")
    return {"root": root, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}


def own_copy(shared, name: str, tmp_path: Path) -> Path:
    """A copy of the shared run's folder ``name`` for a test that writes into it."""
    return Path(shutil.copytree(shared["root"] / name, tmp_path / name))


# ---------------------------------------------------------------- training curves and progress

def test_tensorboard_event_files_hold_the_logged_loss(shared):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    adapter = shared["root"] / "adapter"
    files = sorted((adapter / "tensorboard").glob("events.out.tfevents.*"))
    assert files, "report_to=tensorboard (the default) writes into the run folder's tensorboard/"
    assert not (adapter / "runs").exists()  # not the Trainer's dated runs/<date>_<host> folder
    read = {}
    for path in files:
        accumulator = EventAccumulator(str(path))
        accumulator.Reload()
        if "train/loss" in accumulator.Tags()["scalars"]:
            read.update({e.step: e.value for e in accumulator.Scalars("train/loss")})
    logged = {line["step"]: line["kl"] for line in jsonl(adapter / "loss.jsonl")}
    assert sorted(read) == sorted(logged) == list(range(1, STEPS + 1))
    for step, value in logged.items():  # TensorBoard stores float32
        assert read[step] == pytest.approx(value, rel=1e-6, abs=1e-9)


def test_read_tensorboard_gives_the_same_curve(shared):
    from lrkit.stages.curves import read_loss_log, read_tensorboard

    adapter = shared["root"] / "adapter"
    scalars = read_tensorboard(adapter)
    curve = [(line["step"], line["kl"]) for line in read_loss_log(adapter)]
    assert [step for step, _ in scalars["train/loss"]] == [step for step, _ in curve]
    assert [value for _, value in scalars["train/loss"]] == pytest.approx([value for _, value in curve], rel=1e-6)


def test_report_to_none_writes_no_event_files(shared, tmp_path):
    from lrkit import train

    train("toy:expert", shared["root"] / "export", tmp_path / "quiet",
          TrainConfig(**{**CONFIG, "max_steps": 1, "report_to": "none"}), progress=False)
    assert (tmp_path / "quiet" / "loss.jsonl").is_file()
    assert not list((tmp_path / "quiet").rglob("events.out.tfevents.*"))


def test_an_unknown_report_to_is_one_line_naming_the_setting(capsys, tmp_path):
    with pytest.raises(ValueError, match="report_to: unknown 'tensorbord'"):
        TrainConfig(report_to="tensorbord").validate()
    assert TrainConfig(report_to="tensorboard, trackio").validate()
    code = main(["train", "--expert", "toy:expert", "--records", str(tmp_path / "r.jsonl"), "--out",
                 str(tmp_path / "o"), "--report-to", "tensorbord"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "report_to" in err[0] and "tensorbord" in err[0]
    assert not (tmp_path / "o").exists()


def test_the_training_bar_prints_no_log_dicts_and_shows_the_loss(shared):
    assert not [line for line in shared["stdout"].splitlines() if line.lstrip().startswith("{")]
    last = jsonl(shared["root"] / "adapter" / "loss.jsonl")[-1]["kl"]
    assert f"loss={last:.4g}" in shared["stderr"]  # the bar's postfix, on stderr with the bar


def test_without_lrkits_bar_the_trainer_would_print_dicts(shared, tmp_path, monkeypatch):
    """The check above can fail: the Trainer's own progress callback prints each log as a dict."""
    from lrkit.stages import curves
    from lrkit import train

    monkeypatch.setattr(curves, "use_loss_bar", lambda trainer: None)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
        train("toy:expert", shared["root"] / "export", tmp_path / "raw", TrainConfig(**{**CONFIG, "max_steps": 1}),
              progress=True)
    assert any(line.startswith("{'loss'") for line in stdout.getvalue().splitlines())


# ---------------------------------------------------------------- model cards

def card(folder: Path):
    from huggingface_hub import ModelCard

    return ModelCard.load(folder / "README.md")


def test_the_adapter_card_replaces_peft_boilerplate(shared):
    root = shared["root"]
    text = (root / "adapter" / "README.md").read_text()
    data = card(root / "adapter").data.to_dict()
    assert data["base_model"] == "toy:expert" and data["library_name"] == "peft"
    assert "lightreasoner" in data["tags"]
    assert "Model Card for Model ID" not in text
    for local in (str(root), str(TOY_DIR), str(Path.home())):
        assert local not in text, f"the card names the local path {local}"
    records = jsonl(root / "sampling" / "records.jsonl")
    run = json.loads((root / "adapter" / "lrkit_train.json").read_text())
    assert f"| records used (training examples) | {len(records)} |" in text
    assert f"| problems they came from | {len({r['prompt_id'] for r in records})} |" in text
    # one supervised position per record: STEPS full batches of BATCH records
    assert f"| tuned tokens (supervised positions) | {STEPS * min(BATCH, len(records))} |" in text
    assert run["examples_sha256"] in text
    assert "| learning_rate | 0.001 |" in text and "| report_to | tensorboard |" in text


def test_the_merged_card_and_an_evaluation_on_it(shared, tmp_path, capsys):
    from lrkit.toy import toy_problems

    merged = own_copy(shared, "merged", tmp_path)  # the evaluation below adds itself to its card
    data = card(merged).data.to_dict()
    assert data["base_model"] == "toy:expert" and data["library_name"] == "transformers"
    assert "`adapter` merged into it" in (merged / "README.md").read_text()
    assert "No evaluation of this model yet" in (merged / "README.md").read_text()

    problems = tmp_path / "test.jsonl"
    problems.write_text("".join(json.dumps({"id": p["id"], "question": p["question"], "answer": p["answer"]}) + "\n"
                                for p in toy_problems("toy", 6, "test", seed=5)))
    assert main(["eval", "--model", str(merged), "--problems", str(problems), "--out", str(tmp_path / "eval"),
                 "--max-new-tokens", "64"]) == 0
    assert f"model card updated: {merged / 'README.md'}" in capsys.readouterr().out
    rows = jsonl(tmp_path / "eval" / "results.jsonl")
    accuracy = sum(r["correct"] for r in rows) / len(rows)
    evaluated = card(merged)
    [entry] = evaluated.data.eval_results
    assert entry.dataset_name == "test" and entry.metric_value == pytest.approx(round(accuracy, 4))
    assert f"| test | 6 | {100 * accuracy:.1f}% |" in evaluated.text
    assert "No evaluation of this model yet" not in evaluated.text


def test_a_merged_adapter_lrkit_did_not_train_gets_a_card_naming_the_expert(shared, tmp_path):
    """A plain peft adapter (no lrkit_train.json) merges, and its card says what lrkit knows."""
    from lrkit import merge
    from lrkit.stages.cards import EXTERNAL

    foreign = tmp_path / "foreign"
    shutil.copytree(shared["root"] / "adapter", foreign,
                    ignore=shutil.ignore_patterns("lrkit_*", "README.md", "checkpoint-*", "tensorboard"))
    assert not (foreign / "lrkit_train.json").exists()
    merge("toy:expert", foreign, tmp_path / "merged")
    data = card(tmp_path / "merged").data.to_dict()
    text = (tmp_path / "merged" / "README.md").read_text()
    assert data["base_model"] == "toy:expert" and data["library_name"] == "transformers"
    assert EXTERNAL in text and "## Training" not in text and str(tmp_path) not in text


def test_public_names():
    from lrkit.stages.cards import build_model_card, public_name

    assert public_name(str(TOY_DIR / "expert")) == "toy:expert"
    assert public_name(str(TOY_DIR / "amateur")) == "toy:amateur"
    assert public_name("toy:expert") == "toy:expert"
    assert public_name("qwen2.5-math-1.5b:expert") == "Qwen/Qwen2.5-Math-1.5B"
    assert public_name("Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B"
    assert public_name(str(Path(__file__).parent)) is None  # a local folder no pair names
    info = {"kind": "adapter", "method": "LightReasoner", "base_model": None, "config": {}, "evaluations": []}
    assert "base_model" not in build_model_card(info).data.to_dict()


# ---------------------------------------------------------------- records as a dataset

def test_records_dataset_has_the_records_with_sparse_targets_as_lists(shared):
    import lrkit

    records = jsonl(shared["root"] / "sampling" / "records.jsonl")
    dataset = lrkit.records_dataset(shared["root"] / "sampling")
    assert len(dataset) == len(records) > 0
    rows = dataset.to_list()
    for row, record in zip(rows, records):
        for field in ("prompt_id", "step", "token_ids", "weights", "tokens", "prompt_token_ids",
                      "prefix_token_ids", "kl_divergence"):
            assert row[field] == record[field], field
        assert row["expert"] == "toy:expert" and row["amateur"] == "toy:amateur"
    assert dataset.features["token_ids"].feature.dtype == "int64"
    assert dataset.features["weights"].feature.dtype == "float64"


def test_the_export_loads_with_datasets_and_has_a_dataset_card(shared):
    from datasets import load_dataset
    from huggingface_hub import DatasetCard

    root = shared["root"]
    loaded = load_dataset("parquet", data_files=str(root / "export" / "data" / "*.parquet"), split="train")
    records = jsonl(root / "sampling" / "records.jsonl")
    assert len(loaded) == len(records)
    assert loaded["weights"] == [r["weights"] for r in records]
    dataset_card = DatasetCard.load(root / "export" / "README.md")
    assert "lightreasoner" in dataset_card.data.tags
    config = json.loads((root / "sampling" / "config.json").read_text())
    text = dataset_card.text
    assert f"| records | {len(records)} |" in text and "| expert | toy:expert |" in text
    assert f"| beta (KL threshold) | {config['beta']} |" in text and f"| alpha (plausibility mask) | {config['alpha']} |" in text
    assert str(root) not in (root / "export" / "README.md").read_text()
    # the histogram's [0.4, 0.8) row, counted here from the files
    steps = [s["kl"] for s in jsonl(root / "sampling" / "steps.jsonl")]
    in_steps = sum(0.4 <= kl < 0.8 for kl in steps)
    in_records = sum(0.4 <= r["kl_divergence"] < 0.8 for r in records)
    assert (f"| [0.4, 0.8) | {in_steps} ({100 * in_steps / len(steps):.1f}%) | "
            f"{in_records} ({100 * in_records / len(records):.1f}%) |") in text


def test_training_from_the_export_builds_the_same_examples(shared):
    from lrkit.models.loading import load_tokenizer
    from lrkit.stages.training import build_examples, load_records

    root = shared["root"]
    from_jsonl = json.loads((root / "adapter" / "lrkit_train.json").read_text())
    from_export = json.loads((root / "adapter_from_export" / "lrkit_train.json").read_text())
    assert from_export["examples_sha256"] == from_jsonl["examples_sha256"]
    assert from_export["examples"] == from_jsonl["examples"] > 0
    tokenizer = load_tokenizer(str(TOY_DIR / "expert"))
    assert (build_examples(load_records(root / "export"), tokenizer, 512)
            == build_examples(load_records(root / "sampling" / "records.jsonl"), tokenizer, 512))


def test_a_bad_row_of_an_export_is_named(shared, tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(shared["root"] / "export" / "data" / "train-00000-of-00001.parquet")
    rows = table.to_pylist()
    rows[1]["weights"] = [w * 2 for w in rows[1]["weights"]]
    (tmp_path / "bad" / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), tmp_path / "bad" / "data" / "part.parquet")
    code = main(["train", "--expert", "toy:expert", "--records", str(tmp_path / "bad"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "part.parquet, row 2" in err[0] and "weights" in err[0]
    assert not (tmp_path / "o").exists()


def test_export_refuses_a_used_folder_and_a_folder_without_records(shared, tmp_path, capsys):
    code = main(["export", str(shared["root"] / "sampling"), "--to", str(shared["root"] / "export")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--overwrite" in err[0]
    code = main(["export", str(tmp_path), "--to", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "records.jsonl" in err[0]
    assert main(["export", str(shared["root"] / "sampling"), "--to", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "data" / "train-00000-of-00001.parquet").is_file()


# ---------------------------------------------------------------- push (mocked HfApi)

class FakeHfApi:
    """Records the calls; lists the files upload_folder would send with the Hub's own filter."""

    calls: list = []

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, repo_type=None, private=False, exist_ok=False):
        FakeHfApi.calls.append(("create_repo", dict(repo_id=repo_id, repo_type=repo_type, private=private,
                                                    exist_ok=exist_ok)))
        return f"https://huggingface.co/{'datasets/' if repo_type == 'dataset' else ''}{repo_id}"

    def upload_folder(self, folder_path, repo_id, repo_type=None, ignore_patterns=None, commit_message=None,
                      **kwargs):
        from huggingface_hub.utils import filter_repo_objects

        folder = Path(folder_path)
        files = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
        sent = sorted(filter_repo_objects(files, ignore_patterns=ignore_patterns))
        FakeHfApi.calls.append(("upload_folder", dict(repo_id=repo_id, repo_type=repo_type, files=sent)))


@pytest.fixture
def fake_hub(monkeypatch):
    import huggingface_hub

    FakeHfApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    return FakeHfApi


def test_push_uploads_an_adapter_with_its_card_and_without_checkpoints(shared, fake_hub, capsys, tmp_path):
    adapter = own_copy(shared, "adapter", tmp_path)  # a checkpoint is added, and the card names the dataset
    (adapter / "checkpoint-2").mkdir(exist_ok=True)
    (adapter / "checkpoint-2" / "optimizer.pt").write_bytes(b"x")
    assert main(["push", str(adapter), "--repo-id", "someone/toy-lightreasoner", "--private",
                 "--dataset", "someone/toy-records"]) == 0
    assert "pushed" in capsys.readouterr().out
    (create, create_args), (upload, upload_args) = fake_hub.calls
    assert create == "create_repo" and create_args == dict(repo_id="someone/toy-lightreasoner", repo_type="model",
                                                           private=True, exist_ok=True)
    assert upload == "upload_folder" and upload_args["repo_type"] == "model"
    files = upload_args["files"]
    assert {"README.md", "adapter_config.json", "adapter_model.safetensors", "loss.jsonl"} <= set(files)
    assert any(f.startswith("tensorboard/") for f in files)
    assert not any(f.startswith("checkpoint-") for f in files)
    assert card(adapter).data.to_dict()["datasets"] == ["someone/toy-records"]


def test_push_sends_an_export_as_a_dataset(shared, fake_hub):
    from lrkit.stages.cards import push

    url = push(shared["root"] / "export", "someone/toy-records")
    assert url == "https://huggingface.co/datasets/someone/toy-records"
    [(_, create), (_, upload)] = fake_hub.calls
    assert create["repo_type"] == upload["repo_type"] == "dataset"
    assert upload["files"] == ["README.md", "data/train-00000-of-00001.parquet"]


@pytest.mark.parametrize("case", ["bad repo id", "no card", "not a model"])
def test_push_refuses_with_one_line(case, shared, fake_hub, tmp_path, capsys):
    folder, repo = shared["root"] / "merged", "someone/x"
    if case == "bad repo id":
        repo = "just-a-name"
    elif case == "no card":
        folder = tmp_path / "m"
        folder.mkdir()
        (folder / "adapter_config.json").write_text("{}")
    else:
        folder = tmp_path
    code = main(["push", str(folder), "--repo-id", repo])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("lrkit push: error:")
    assert fake_hub.calls == []
