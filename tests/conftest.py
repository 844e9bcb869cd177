"""Fixtures shared by the test modules.

pytest puts tests/ on ``sys.path`` (rootdir import mode), so test modules import
the helpers beside them as they are: ``from tiny_models import save_pair,
make_model, make_tokenizer`` (tiny Qwen2 models and a character tokenizer,
saved with save_pretrained so lrkit's real loading code runs offline) and
``from synthetic_steps import make_steps`` (step-statistics frames from random
logits). Helpers are imported inside the fixtures, so collecting a test module
that needs no model imports no torch.

No test reaches for the Hugging Face Hub: ``HF_HUB_OFFLINE`` and
``HF_DATASETS_OFFLINE`` are set here, before any test module imports
huggingface_hub or datasets, and the processes tests start inherit them. Every
test gives torch's thread count back as it found it (checked after each test;
the ``one_thread`` fixture runs a test on one thread).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:  # also when a test module is run from elsewhere
    sys.path.insert(0, str(TESTS))

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"


def _torch_threads():
    torch = sys.modules.get("torch")  # never imported here: a test without models stays without torch
    return None if torch is None else torch.get_num_threads()


@pytest.fixture(autouse=True)
def _threads_given_back():
    """A test that changes torch's thread count and keeps it changed fails, so no later
    test runs (or compares numbers) on a count it did not choose."""
    before = _torch_threads()
    yield
    after = _torch_threads()
    if before is not None and after != before:
        sys.modules["torch"].set_num_threads(before)
        pytest.fail(f"the test left torch on {after} threads (it found {before}); "
                    "use the one_thread fixture or lrkit.models.loading.torch_threads")


@pytest.fixture
def one_thread():
    """The test runs with torch on one thread; the previous count is given back after."""
    from lrkit.models.loading import torch_threads

    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def pair_paths(tmp_path_factory):
    """(expert, amateur) folders of a tiny pair: the expert's output layer has 3
    padding rows beyond the tokenizer and a lengthened EOS row, so some rollouts
    stop early. One pair per test module."""
    from tiny_models import save_pair

    return save_pair(tmp_path_factory.mktemp("pair"), expert_rows=3, eos_boost=1.0)


@pytest.fixture(scope="module")
def pair_paths_no_eos_boost(tmp_path_factory):
    """The same pair without the lengthened EOS row: rollouts mostly run to the token limit."""
    from tiny_models import save_pair

    return save_pair(tmp_path_factory.mktemp("pair"), expert_rows=3)
