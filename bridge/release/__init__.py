"""The shipped model: a release folder that holds a bridge checkpoint small enough for the repository,
hash-checked at load.

A release folder (``bridge/pretrained/<name>/``) is a checkpoint (``config.json``, ``model.safetensors``,
the tokenizer) plus ``manifest.json`` and ``MODEL_CARD.md``:

- ``model.safetensors`` stores, in float16, every tensor that training produced. Encoder tensors
  that equal the frozen pretrained weights a pip package ships (Whisper tiny.en, MiniLM-L6) are
  not stored: the manifest names each such source by package and SHA-256, and loading rebuilds the
  encoder from it, checks its hash, then lays the stored tensors over it.
- ``manifest.json`` holds the SHA-256 and size of every file in the folder. Any missing, altered or
  extra weight file is refused with a one-line :class:`ReleaseError` before anything is built.

``python -m bridge.release pack CHECKPOINT --name NAME`` writes a release folder from a checkpoint
(``python -m bridge.release build`` trains one first: :mod:`bridge.release.builder`; the command
line is :mod:`bridge.commands.release`);
:func:`locate` turns ``None``, a release name or a directory into the folder to load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bridge.checkpoint import CheckpointError
from bridge.manifest import (MANIFEST, ReleaseError, inherited_prefixes, is_release, pretrained_sources,  # noqa: F401
                             sha256, verify, write_manifest)

RELEASES = Path(__file__).resolve().parents[1] / "pretrained"  # bridge/pretrained
DEFAULT_RELEASE = "emotion7"  # the model infer.py, evaluate.py, Predictor and the web app use by default
CARD = "MODEL_CARD.md"


def release_names() -> list[str]:
    """The releases shipped in this copy of bridge."""
    return sorted(p.name for p in RELEASES.iterdir() if (p / MANIFEST).is_file()) if RELEASES.is_dir() else []


def locate(name_or_path: str | Path | None = None) -> Path:
    """The directory to load: the default release for None, a shipped release by name, else the path.

    Raises:
        ReleaseError: a name that is neither a directory nor a shipped release.
    """
    if name_or_path is None:
        name_or_path = DEFAULT_RELEASE
    path = Path(name_or_path)
    if path.exists():
        return path
    if len(path.parts) == 1 and (RELEASES / path.name / MANIFEST).is_file():
        return RELEASES / path.name
    if str(name_or_path) == DEFAULT_RELEASE:
        raise ReleaseError(f"the shipped model {DEFAULT_RELEASE} is not in this copy of bridge ({RELEASES}); "
                           "build it with `python -m bridge.release build`, or pass --checkpoint DIR")
    if len(path.parts) == 1 and not path.suffix:
        shipped = ", ".join(release_names()) or "none"
        raise ReleaseError(f"{name_or_path} is neither a checkpoint directory nor a shipped release "
                           f"(shipped: {shipped})")
    raise CheckpointError(f"checkpoint directory {path} does not exist")


# --- pack ---------------------------------------------------------------------------------------

def pack(checkpoint: Path, output: Path, name: str, card: str | None = None) -> dict[str, Any]:
    """Write a release folder from a checkpoint directory; returns the manifest.

    Tensors under a pretrained encoder that equal the packaged weights are left out; every other
    floating tensor is stored in float16.
    """
    import shutil

    import torch
    from safetensors.torch import save_file

    from bridge.checkpoint import CONFIG_FILE, TOKENIZER_DIR, WEIGHTS_FILE, atomic_write_text, umask
    from bridge.model import BridgeModel, load_checkpoint

    checkpoint, output = Path(checkpoint), Path(output)
    model, meta = load_checkpoint(checkpoint)
    sources = pretrained_sources(model.config)
    prefixes = inherited_prefixes(model.config)
    reference = BridgeModel(model.config, load_weights=True).state_dict() if prefixes else {}
    stored, inherited = {}, []
    for key, tensor in model.state_dict().items():
        if any(key.startswith(p) for p in prefixes) and key in reference and torch.equal(reference[key], tensor):
            inherited.append(key)
            continue
        tensor = tensor.detach().cpu().contiguous()
        stored[key] = tensor.half() if tensor.is_floating_point() else tensor
    if output.exists():
        if not (is_release(output) or not any(output.iterdir())):
            raise ValueError(f"{output} exists and is not a release folder; choose another --output")
        shutil.rmtree(output)
    output.mkdir(parents=True)
    save_file(stored, str(output / WEIGHTS_FILE))
    os.chmod(output / WEIGHTS_FILE, 0o666 & ~umask())  # readable by all, as the umask allows
    for item in checkpoint.iterdir():  # the saved encoder architectures and the tokenizer
        if item.is_dir() and (item.name == TOKENIZER_DIR or item.name.endswith("_encoder")):
            shutil.copytree(item, output / item.name)
    release = {"name": name, "source_checkpoint_sha256": sha256(checkpoint / WEIGHTS_FILE),
               "stored_dtype": "float16", "inherited_tensors": len(inherited),
               "pretrained": {m: {k: v for k, v in s.items() if k != "path"} | {"sha256": sha256(Path(s["path"]))}
                              for m, s in sources.items()}}
    keep = dict(meta)
    for section in ("data", "run"):  # where the corpora were on the training machine
        if isinstance(keep.get(section), dict):
            keep[section] = {**keep[section], "data_root": None}
    atomic_write_text(output / CONFIG_FILE, json.dumps({**keep, "release": release}, indent=2))
    if card is not None:
        atomic_write_text(output / CARD, card)
    return write_manifest(output)
