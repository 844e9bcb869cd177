"""Fixtures shared by the test modules.

pytest puts tests/ on ``sys.path`` (rootdir import mode), so test modules import
the helpers beside them as they are: ``from tiny_models import save_pair,
make_model, make_tokenizer`` (tiny Qwen2 models and a character tokenizer,
saved with save_pretrained so lrkit's real loading code runs offline) and
``from synthetic_steps import make_steps`` (step-statistics frames from random
logits). Helpers are imported inside the fixtures, so collecting a test module
that needs no model imports no torch.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:  # also when a test module is run from elsewhere
    sys.path.insert(0, str(TESTS))


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
