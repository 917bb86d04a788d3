"""Self-describing checkpoints: ``model.safetensors`` + ``config.json`` (+ saved encoder configs
and tokenizer), written atomically and loaded without pickle."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from bridge.config import AudioConfig, BridgeConfig, TextConfig
from bridge.modality import Modality
from bridge.version import __version__

WEIGHTS_FILE, CONFIG_FILE, TOKENIZER_DIR = "model.safetensors", "config.json", "tokenizer"
FORMAT = "bridge-checkpoint"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def cannot_write(path: Path, error: OSError) -> OSError:
    """A one-line ``OSError`` saying that ``error`` stopped the output ``path`` from being written."""
    parent = isinstance(error.filename, str) and Path(error.filename) in Path(path).parents  # e.g. a file in the way
    culprit = f"{error.filename}: " if parent else ""
    why = "Not a directory" if isinstance(error, FileExistsError) else error.strerror or error  # mkdir over a file
    return OSError(f"cannot write {path} ({culprit}{why})")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename, so no half file is ever seen.

    Raises:
        OSError: ``"cannot write PATH (why)"`` when the folder cannot be made or written.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise cannot_write(path, e) from e
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):  # e.g. the path is a folder, or the disk is full
            raise cannot_write(path, e) from e
        raise


def preprocessing_settings(config: BridgeConfig) -> dict[str, Any]:
    """The preprocessing each modality needs, spelled out for readers of ``config.json``."""
    from bridge.media.detectors import DEFAULT_DETECTOR

    out: dict[str, Any] = {}
    for m, cfg in config.encoders.items():
        if cfg.kind == "face":
            out[m.value] = {"crop_size": cfg.img_size, "channels": cfg.in_chans, "frames": cfg.num_frames,
                            "margin": cfg.margin, "mean": cfg.mean, "std": cfg.std, "detector": DEFAULT_DETECTOR,
                            "alignment": "eyes level, FER-2013 geometry (bridge/media/align.py)",
                            "video_frames_sampled": max(cfg.num_frames * 2, 8)}
        elif cfg.kind == "audio" and cfg.arch == "whisper":
            out[m.value] = {"sample_rate": cfg.sample_rate, "filterbank": "whisper-log-mel",
                            "mel_bins": cfg.num_mel_bins, "frame_shift_ms": 10, "window_ms": 25,
                            "max_frames": cfg.max_frames, "crop": "centre",
                            "scale": "(log10 + 4) / 4, floored 8 below the peak"}
        elif cfg.kind == "audio":
            out[m.value] = {"sample_rate": cfg.sample_rate, "filterbank": "kaldi-fbank", "mel_bins": cfg.num_mel_bins,
                            "frame_shift_ms": 10, "window_ms": 25, "max_frames": cfg.max_frames,
                            "crop": "centre", "mean": cfg.fbank_mean, "std": cfg.fbank_std}
        elif cfg.kind == "text":
            out[m.value] = {"tokenizer": cfg.tokenizer, "max_length": cfg.max_length}
        else:
            out[m.value] = {"features": cfg.input_dim, "max_steps": cfg.max_steps, "normalize": cfg.normalize}
    return out


def save_checkpoint(model: "BridgeModel", directory: Path, extra: dict[str, Any],  # noqa: F821
                    tokenizer: Any | None = None) -> None:
    """Write a checkpoint directory atomically (built beside it, then moved into place)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
    try:
        save_model(model, str(tmp / WEIGHTS_FILE))
        for m, cfg in model.config.encoders.items():
            if isinstance(cfg, AudioConfig) and cfg.arch == "whisper":
                model.encoders[m.value].save_architecture(tmp / f"{m.value}_encoder")
            elif isinstance(cfg, (AudioConfig, TextConfig)):
                hf = model.encoders[m.value].ast if isinstance(cfg, AudioConfig) else model.encoders[m.value].bert
                hf.config.save_pretrained(tmp / f"{m.value}_encoder")
        if tokenizer is not None and hasattr(tokenizer, "save"):
            tokenizer.save(tmp / TOKENIZER_DIR)
        meta = {"format": FORMAT, "bridge_version": __version__, "model": model.config.to_dict(),
                "labels": list(model.config.labels), "preprocessing": preprocessing_settings(model.config), **extra}
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        # Keep files the trainer wrote into the directory before (training state, curves).
        if directory.exists():
            for item in directory.iterdir():
                if not (tmp / item.name).exists():
                    os.replace(item, tmp / item.name)
            old = directory.with_name(f".{directory.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(directory, old)
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_meta(directory: Path) -> dict[str, Any]:
    """Read and check ``config.json``.

    Raises:
        CheckpointError: when the directory or its config is missing or not a bridge checkpoint.
    """
    from bridge.model import CheckpointError

    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory {directory} does not exist")
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{directory} is not a bridge checkpoint: no {CONFIG_FILE}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e.msg if hasattr(e, 'msg') else e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "model" not in meta:
        raise CheckpointError(f"{path} is not a bridge checkpoint config")
    return meta


def load_checkpoint(directory: Path, device: str | torch.device = "cpu") -> tuple["BridgeModel", dict]:  # noqa: F821
    """Rebuild the model from ``directory`` alone; returns it (in eval mode) and the metadata.

    Raises:
        CheckpointError: on a missing, truncated or mismatching checkpoint.
    """
    from bridge.model import BridgeModel, CheckpointError

    directory = Path(directory)
    meta = read_meta(directory)
    try:
        config = BridgeConfig.from_dict(meta["model"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{directory / CONFIG_FILE} has an invalid model config: {e}") from None
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{directory} is not a bridge checkpoint: no {WEIGHTS_FILE}")
    hf_dirs = {m: directory / f"{m.value}_encoder" for m in Modality if (directory / f"{m.value}_encoder").is_dir()}
    model = BridgeModel(config, load_weights=False, hf_config_dirs=hf_dirs)
    try:
        missing, unexpected = load_model(model, str(weights), strict=False, device=str(device))
    except (SafetensorError, OSError, RuntimeError) as e:
        # torch's first line only says "Error(s) in loading state_dict"; then "size mismatch for NAME: copying
        # a param with shape torch.Size([4, 64]) from checkpoint, the shape in current model is torch.Size([4, 32])."
        shapes = re.findall(r"size mismatch for (\S+): .*?(\[.*?\]).*?(\[.*?\])", str(e))
        if shapes:
            name, saved, built = shapes[0]
            raise CheckpointError(f"{weights} does not match {CONFIG_FILE}: {len(shapes)} tensors of another shape, "
                                  f"e.g. {name} is {saved} in the weights but {built} in the config") from None
        raise CheckpointError(f"{weights} cannot be loaded: {str(e).splitlines()[0]}") from None
    if missing or unexpected:
        raise CheckpointError(f"{weights} does not match {CONFIG_FILE}: "
                              f"{len(missing)} missing and {len(unexpected)} unexpected tensors")
    return model.to(device).eval(), meta


def tokenizer_dir(directory: Path) -> Path | None:
    """The tokenizer saved in a checkpoint, if any."""
    path = Path(directory) / TOKENIZER_DIR
    return path if path.is_dir() else None
