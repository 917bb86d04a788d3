"""One encoder per file; :func:`build_encoder` picks the one a config names.

The encoder modules (and timm / transformers behind them) are imported when an encoder is
built or named, not with this package.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from torch import nn

from bridge.config import AudioConfig, EncoderConfig, FaceConfig, FeatureConfig, TextConfig

# encoder class name -> the module defining it
_MODULES = {"FaceEncoder": "face", "AudioEncoder": "audio", "TextEncoder": "text", "FeatureEncoder": "features",
            "WhisperAudioEncoder": "whisper"}
ENCODERS: dict[type, str] = {FaceConfig: "FaceEncoder", AudioConfig: "AudioEncoder", TextConfig: "TextEncoder",
                             FeatureConfig: "FeatureEncoder"}


def encoder_class(name: str) -> type[nn.Module]:
    """The encoder class called ``name`` (importing its module)."""
    return getattr(importlib.import_module(f"bridge.encoders.{_MODULES[name]}"), name)


def build_encoder(config: EncoderConfig, load_weights: bool = True, hf_config_dir: Path | None = None) -> nn.Module:
    """Build the encoder for ``config``; ``hf_config_dir`` rebuilds a checkpoint's saved architecture
    (a transformers config, or ``whisper.json`` for the Whisper audio encoder)."""
    name = ENCODERS[type(config)]
    if isinstance(config, AudioConfig) and config.arch == "whisper":
        name = "WhisperAudioEncoder"
    cls = encoder_class(name)
    if name in ("AudioEncoder", "TextEncoder", "WhisperAudioEncoder"):
        return cls(config, load_weights=load_weights, hf_config_dir=hf_config_dir)
    return cls(config, load_weights=load_weights)


def __getattr__(name: str):
    if name in _MODULES:
        return encoder_class(name)
    raise AttributeError(f"module 'bridge.encoders' has no attribute {name!r}")


__all__ = ["AudioEncoder", "FaceEncoder", "FeatureEncoder", "TextEncoder", "WhisperAudioEncoder", "build_encoder",
           "encoder_class"]
