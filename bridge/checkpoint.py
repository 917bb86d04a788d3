"""Self-describing checkpoints: ``model.safetensors`` + ``config.json`` (+ saved encoder configs
and tokenizer), written atomically and loaded without pickle.

This module knows the file format; :func:`bridge.model.load_checkpoint` builds the model from
it (so the model depends on the format and not the other way round).

Settings that older checkpoints kept in the model config and that are not architecture are
moved out when read (:func:`migrate`): ``face.test_flip`` becomes ``inference.test_views`` of
the metadata (as does the later ``inference.test_flip``), and the translator's loss kind and
weights (training settings, also recorded under ``training``) are dropped.
"""

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

from torch import nn

from bridge.cli import first_line
from bridge.config import AudioConfig, BridgeConfig, TextConfig
from bridge.modality import Modality
from bridge.version import __version__

WEIGHTS_FILE, CONFIG_FILE, TOKENIZER_DIR = "model.safetensors", "config.json", "tokenizer"
STATE_FILE = "training_state.pt"  # what train.py --resume continues from (bridge.train.trainer)
FORMAT = "bridge-checkpoint"
LEGACY_TRANSLATOR_FIELDS = ("loss", "weight", "cycle_weight")  # training settings older configs kept


class CheckpointError(ValueError):
    """A directory that is not a loadable bridge checkpoint."""


def umask() -> int:
    """The process's file-creation mask (read without changing it for longer than a call)."""
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
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600 files; give the usual permissions
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
                            "margin": cfg.margin, "mean": cfg.mean, "std": cfg.std,
                            "detector": cfg.realign or DEFAULT_DETECTOR,
                            "alignment": "eyes level, FER-2013 geometry (bridge/media/align.py)",
                            "face_crops": f"found again by {cfg.realign} and realigned" if cfg.realign else "as given",
                            "video_frames_sampled": cfg.sampled_frames}
            if cfg.crop_scale != 1.0:  # recorded where set: 1 (FER-2013's framing) is what every earlier model used
                out[m.value]["crop_scale"] = cfg.crop_scale
            if cfg.mirror_eyes:  # likewise
                out[m.value]["mirror_eyes"] = True
            if cfg.refine_eyes:  # likewise
                out[m.value]["refine_eyes"] = cfg.refine_eyes
        elif cfg.kind == "audio" and cfg.arch == "whisper":
            out[m.value] = {"sample_rate": cfg.sample_rate, "filterbank": "whisper-log-mel",
                            "mel_bins": cfg.num_mel_bins, "frame_shift_ms": 10, "window_ms": 25,
                            "max_frames": cfg.max_frames, "crop": "centre",
                            "scale": "(log10 + 4) / 4, floored 8 below the peak", "loudness_dbfs": cfg.loudness}
        elif cfg.kind == "audio":
            out[m.value] = {"sample_rate": cfg.sample_rate, "filterbank": "kaldi-fbank", "mel_bins": cfg.num_mel_bins,
                            "frame_shift_ms": 10, "window_ms": 25, "max_frames": cfg.max_frames,
                            "crop": "centre", "mean": cfg.fbank_mean, "std": cfg.fbank_std,
                            "loudness_dbfs": cfg.loudness}
        elif cfg.kind == "text":
            out[m.value] = {"tokenizer": cfg.tokenizer, "max_length": cfg.max_length}
        else:
            out[m.value] = {"features": cfg.input_dim, "max_steps": cfg.max_steps, "normalize": cfg.normalize}
    return out


def save_checkpoint(model: nn.Module, directory: Path, extra: dict[str, Any], tokenizer: Any | None = None) -> None:
    """Write a checkpoint directory atomically (built beside it, then moved into place).

    Args:
        model: a :class:`~bridge.model.BridgeModel`.
        directory: created if needed; files already in it that are not rewritten stay.
        extra: more JSON to store beside the model config (``training``, ``data``, ``best``,
            ``inference`` settings such as ``{"test_views": "mirror"}``).
        tokenizer: saved under ``tokenizer/`` when it can save itself.
    """
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
        _honour_umask(tmp)
        # Keep files the trainer wrote into the directory before (training state, curves, its lock), but
        # not evaluation reports (eval-*/): they describe the weights being replaced.
        if directory.exists():
            for item in directory.iterdir():
                if not (tmp / item.name).exists() and not (item.name.startswith("eval-") and item.is_dir()):
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


def _honour_umask(folder: Path) -> None:
    """Give a freshly written folder and its files the permissions the umask asks for (safetensors
    and mkdtemp make private ones), so a checkpoint meant to be shared can be read by others."""
    mask = umask()
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def read_meta(directory: Path) -> dict[str, Any]:
    """Read and check ``config.json``, migrated to the current layout (:func:`migrate`).

    Raises:
        CheckpointError: when the directory or its config is missing or not a bridge checkpoint.
    """
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
    return migrate(meta)


def migrate(meta: dict[str, Any]) -> dict[str, Any]:
    """Checkpoint metadata with run-time settings moved out of the model config (older checkpoints).

    ``model.face.test_flip`` and ``inference.test_flip`` (a yes or no for the mirror image) become
    ``inference.test_views`` (``mirror`` or ``single``); the translator's ``loss``, ``weight`` and
    ``cycle_weight`` are dropped from ``model.translator``.
    """
    meta = dict(meta)
    inference = dict(meta.get("inference") or {})
    if "test_flip" in inference:
        inference.setdefault("test_views", "mirror" if inference.pop("test_flip") else "single")
        meta["inference"] = inference
    if not isinstance(meta.get("model"), dict):
        return meta
    model = dict(meta["model"])
    face = model.get("face")
    if isinstance(face, dict) and "test_flip" in face:
        face = dict(face)
        flip = face.pop("test_flip")
        model["face"] = face
        inference.setdefault("test_views", "mirror" if flip else "single")
        meta["inference"] = inference
    translator = model.get("translator")
    if isinstance(translator, dict):
        model["translator"] = {k: v for k, v in translator.items() if k not in LEGACY_TRANSLATOR_FIELDS}
    meta["model"] = model
    return meta


def model_config(directory: Path, meta: dict[str, Any]) -> BridgeConfig:
    """The model config of a checkpoint's (migrated) metadata.

    Raises:
        CheckpointError: when it is not a valid config.
    """
    try:
        return BridgeConfig.from_dict(meta["model"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{Path(directory) / CONFIG_FILE} has an invalid model config: {e}") from None


def encoder_config_dirs(directory: Path) -> dict[Modality, Path]:
    """The saved encoder architectures (transformers configs, ``whisper.json``) per modality."""
    return {m: directory / f"{m.value}_encoder" for m in Modality if (directory / f"{m.value}_encoder").is_dir()}


def weights_file(directory: Path) -> Path:
    """The checkpoint's weights file.

    Raises:
        CheckpointError: when there is none.
    """
    weights = Path(directory) / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{directory} is not a bridge checkpoint: no {WEIGHTS_FILE}")
    return weights


def load_weights(model: nn.Module, directory: Path, device: str | torch.device = "cpu") -> None:
    """Load ``model.safetensors`` into ``model``, every tensor accounted for.

    Raises:
        CheckpointError: a missing or unreadable weights file, or weights that do not match the config.
    """
    weights = weights_file(directory)
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
        raise CheckpointError(f"{weights} cannot be loaded: {first_line(e)}") from None
    if missing or unexpected:
        raise CheckpointError(f"{weights} does not match {CONFIG_FILE}: "
                              f"{len(missing)} missing and {len(unexpected)} unexpected tensors")


def tokenizer_dir(directory: Path) -> Path | None:
    """The tokenizer saved in a checkpoint, if any."""
    path = Path(directory) / TOKENIZER_DIR
    return path if path.is_dir() else None


def run_state(output: Path, recipe: Path | None = None) -> str:
    """``"finished"`` (every epoch the recipe asks for is in ``history.json``; for a recipe with warm
    restarts, every cycle), ``"interrupted"`` (a training state or a cycle plan to resume) or ``"new"``."""
    spec = json.loads(Path(recipe).read_text(encoding="utf-8")) if recipe is not None else {}
    if spec.get("restarts"):
        plan = Path(output) / "cycles.json"
        if not plan.is_file():
            return "new"
        return "finished" if json.loads(plan.read_text(encoding="utf-8")).get("finished") else "interrupted"
    history = Path(output) / "history.json"
    epochs = spec.get("epochs")
    if history.is_file() and epochs is not None and len(json.loads(history.read_text(encoding="utf-8"))) >= epochs:
        return "finished"
    return "interrupted" if (Path(output) / STATE_FILE).is_file() else "new"
