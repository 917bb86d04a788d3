"""One encoder per file; :func:`build_encoder` picks the one a config names."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from bridge.config import AudioConfig, EncoderConfig, FaceConfig, FeatureConfig, TextConfig
from bridge.encoders.audio import AudioEncoder
from bridge.encoders.face import FaceEncoder
from bridge.encoders.features import FeatureEncoder
from bridge.encoders.text import TextEncoder
from bridge.encoders.whisper import WhisperAudioEncoder

ENCODERS: dict[type, type[nn.Module]] = {
    FaceConfig: FaceEncoder, AudioConfig: AudioEncoder, TextConfig: TextEncoder, FeatureConfig: FeatureEncoder,
}


def build_encoder(config: EncoderConfig, load_weights: bool = True, hf_config_dir: Path | None = None) -> nn.Module:
    """Build the encoder for ``config``; ``hf_config_dir`` rebuilds a checkpoint's saved architecture
    (a transformers config, or ``whisper.json`` for the Whisper audio encoder)."""
    cls = ENCODERS[type(config)]
    if isinstance(config, AudioConfig) and config.arch == "whisper":
        cls = WhisperAudioEncoder
    if cls in (AudioEncoder, TextEncoder, WhisperAudioEncoder):
        return cls(config, load_weights=load_weights, hf_config_dir=hf_config_dir)
    return cls(config, load_weights=load_weights)


__all__ = ["AudioEncoder", "FaceEncoder", "FeatureEncoder", "TextEncoder", "WhisperAudioEncoder", "build_encoder"]
