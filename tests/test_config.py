"""lrkit.config: validate() names the field, from_dict refuses unknown fields,
field_docs reads the docstring under each field."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from lrkit.config import EvalConfig, SampleConfig, TrainConfig, field_docs, from_dict, report_targets, to_dict


@pytest.mark.parametrize("cls, change, field", [
    (SampleConfig, {"alpha": 0.0}, "alpha"),
    (SampleConfig, {"alpha": 1.5}, "alpha"),
    (SampleConfig, {"beta": -0.1}, "beta"),
    (SampleConfig, {"max_new_tokens": 0}, "max_new_tokens"),
    (SampleConfig, {"top_k": 2.0}, "top_k"),
    (SampleConfig, {"batch_size": True}, "batch_size"),
    (SampleConfig, {"chunk_size": -3}, "chunk_size"),
    (SampleConfig, {"temperature": 0.0}, "temperature"),
    (TrainConfig, {"lora_r": 0}, "lora_r"),
    (TrainConfig, {"lora_dropout": 1.2}, "lora_dropout"),
    (TrainConfig, {"learning_rate": 0.0}, "learning_rate"),
    (TrainConfig, {"max_steps": "10"}, "max_steps"),
    (TrainConfig, {"precision": "fp8"}, "precision"),
    (TrainConfig, {"report_to": "tensorboard,nonsense"}, "report_to"),
    (TrainConfig, {"packing": True, "parity_right_padding": True}, "parity_right_padding"),
    (EvalConfig, {"max_new_tokens": 0}, "max_new_tokens"),
    (EvalConfig, {"batch_size": -1}, "batch_size"),
])
def test_validate_names_the_field(cls, change, field):
    with pytest.raises(ValueError) as caught:
        cls(**change).validate()
    message = str(caught.value)
    assert field in message and "\n" not in message
    if len(change) == 1 and field != "report_to":  # report_to names the unknown part only
        assert repr(change[field]) in message, "the message shows the value given"


@pytest.mark.parametrize("cls", [SampleConfig, TrainConfig, EvalConfig])
def test_defaults_are_valid_and_round_trip_through_dicts(cls):
    config = cls()
    assert config.validate() is config
    data = to_dict(config)
    assert all(not isinstance(v, tuple) for v in data.values()), "tuples become JSON lists"
    assert from_dict(cls, data) == config


def test_from_dict_names_unknown_fields_and_the_source():
    with pytest.raises(ValueError, match=r"^run/config\.json: unknown SampleConfig field\(s\): betta, gamma$"):
        from_dict(SampleConfig, {"alpha": 0.3, "gamma": 1, "betta": 0.5}, source="run/config.json")


def test_from_dict_validates_and_restores_tuples():
    with pytest.raises(ValueError, match="beta"):
        from_dict(SampleConfig, {"beta": -1.0})
    config = from_dict(TrainConfig, {"target_modules": ["q_proj", "k_proj"], "max_steps": 3})
    assert config.target_modules == ("q_proj", "k_proj") and config.max_steps == 3


@dataclass
class Documented:
    first: int = 1
    """Says what first is,
    over two lines."""
    undocumented: int = 2
    last: str = "x"
    """Last."""


def test_field_docs_reads_the_string_under_each_field():
    assert field_docs(Documented) == {"first": "Says what first is, over two lines.", "last": "Last."}
    docs = field_docs(SampleConfig)
    assert docs["beta"] == "KL(pi_E || pi_A) threshold that marks a step as critical."
    for cls in (SampleConfig, TrainConfig, EvalConfig):  # every field is documented once
        assert set(field_docs(cls)) == {f.name for f in dataclasses.fields(cls)}, cls.__name__


@pytest.mark.parametrize("value, targets", [
    (None, []), ("none", []), ("", []), (" tensorboard ", ["tensorboard"]),
    ("tensorboard,wandb", ["tensorboard", "wandb"]),
])
def test_report_targets(value, targets):
    assert report_targets(value) == targets
