"""lrkit.workshop: the notebooks' parameters from the environment, their run folder
(LRKIT_RUN_DIR, LRKIT_HOME), the device/dtype set-up and the light import the
parameters cell relies on."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lrkit import workshop

REPO = Path(__file__).resolve().parents[1]


def test_a_setting_comes_from_the_environment_as_the_defaults_type(monkeypatch, capsys):
    for name in ("PAIR", "N_PROBLEMS", "BETA", "ABLATIONS", "LEARNING_RATE", "SAVE_STEPS"):
        monkeypatch.delenv(f"LRKIT_{name}", raising=False)
    assert workshop.setting("PAIR", "toy") == "toy" and workshop.setting("LEARNING_RATE", None, float) is None
    assert capsys.readouterr().out == "", "a default is not announced"
    monkeypatch.setenv("LRKIT_PAIR", "toy-shared")
    monkeypatch.setenv("LRKIT_N_PROBLEMS", "16")
    monkeypatch.setenv("LRKIT_BETA", "0.6")
    monkeypatch.setenv("LRKIT_ABLATIONS", "False")
    monkeypatch.setenv("LRKIT_LEARNING_RATE", "5e-5")
    monkeypatch.setenv("LRKIT_SAVE_STEPS", "None")
    values = (workshop.setting("PAIR", "toy"), workshop.setting("N_PROBLEMS", 48), workshop.setting("BETA", 0.4),
              workshop.setting("ABLATIONS", True), workshop.setting("LEARNING_RATE", None, float),
              workshop.setting("SAVE_STEPS", None, int))
    assert values == ("toy-shared", 16, 0.6, False, 5e-5, None)
    assert type(values[1]) is int and type(values[2]) is float
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "PAIR = 'toy-shared' (from LRKIT_PAIR)" and len(printed) == 6


@pytest.mark.parametrize("name, default, text, expected", [
    ("N_PROBLEMS", 48, "1e3", "LRKIT_N_PROBLEMS='1e3': expected an integer"),
    ("BETA", 0.4, "high", "LRKIT_BETA='high': expected a number"),
    ("ABLATIONS", True, "maybe", "LRKIT_ABLATIONS='maybe': expected true or false"),
])
def test_a_bad_setting_is_one_line_naming_the_variable(monkeypatch, name, default, text, expected):
    monkeypatch.setenv(f"LRKIT_{name}", text)
    with pytest.raises(ValueError) as error:
        workshop.setting(name, default)
    assert str(error.value) == expected


def test_run_folder_lrkit_run_dir_then_lrkit_home_then_the_clone(tmp_path, monkeypatch):
    monkeypatch.delenv(workshop.RUN_DIR_ENV, raising=False)
    monkeypatch.delenv(workshop.HOME_ENV, raising=False)
    monkeypatch.chdir(REPO / "notebooks")
    assert workshop.runs_root() == REPO / "runs" / "notebooks"
    monkeypatch.setenv(workshop.HOME_ENV, str(tmp_path / "drive" / "lrkit"))
    assert workshop.run_dir("toy", "n8") == tmp_path / "drive" / "lrkit" / "runs" / "toy" / "n8"
    assert (tmp_path / "drive" / "lrkit" / "runs" / "toy" / "n8").is_dir()
    monkeypatch.setenv(workshop.RUN_DIR_ENV, str(tmp_path / "explicit"))
    assert workshop.run_dir() == tmp_path / "explicit", "LRKIT_RUN_DIR keeps working and wins"


def test_fp16_on_the_cpu_is_refused_in_one_line():
    with pytest.raises(ValueError, match="fp16 needs a GPU"):
        workshop.notebook_setup("cpu", "fp16", quiet=True)
    with pytest.raises(ValueError, match="unknown dtype 'fp8'"):
        workshop.notebook_setup("cpu", "fp8", quiet=True)
    assert workshop.notebook_setup("cpu", "bf16", quiet=True).precision == "bf16"


def test_importing_the_workshop_loads_neither_torch_nor_huggingface():
    """The parameters cell imports ``setting`` before HF_HOME may be set by the set-up."""
    code = ("import sys, lrkit.workshop; "
            "print(sorted(m for m in ('torch', 'transformers', 'huggingface_hub') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.stdout.strip() == "[]"
