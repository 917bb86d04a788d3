"""bridge: multimodal emotion recognition with cross-modal translation for missing modalities."""

from bridge.batch import Batch
from bridge.config import (AudioConfig, BridgeConfig, FaceConfig, FeatureConfig, FusionConfig, TextConfig,
                           TranslatorConfig, create_config)
from bridge.modality import ALL_MODALITIES, EMOTIONS, Modality
from bridge.model import BridgeModel, BridgeOutput, CheckpointError, create_model
from bridge.version import __version__

__all__ = [
    "ALL_MODALITIES", "AudioConfig", "Batch", "BridgeConfig", "BridgeModel", "BridgeOutput", "CheckpointError",
    "EMOTIONS", "FaceConfig", "FeatureConfig", "FusionConfig", "Modality", "TextConfig", "TranslatorConfig",
    "__version__", "create_config", "create_model",
]
