"""bridge: multimodal emotion recognition with cross-modal translation for missing modalities.

Importing bridge is light: the encoders' libraries (timm, transformers) load when a model is built.
"""

from bridge.batch import Batch
from bridge.checkpoint import CheckpointError
from bridge.config import (AudioConfig, BridgeConfig, FaceConfig, FeatureConfig, FusionConfig, TextConfig,
                           TranslatorConfig, create_config)
from bridge.contract import Classifier
from bridge.modality import ALL_MODALITIES, EMOTIONS, Modality
from bridge.model import BridgeModel, BridgeOutput, Encoded, create_model
from bridge.version import __version__

__all__ = [
    "ALL_MODALITIES", "AudioConfig", "Batch", "BridgeConfig", "BridgeModel", "BridgeOutput", "CheckpointError",
    "Classifier", "EMOTIONS", "Encoded", "FaceConfig", "FeatureConfig", "FusionConfig", "Modality", "TextConfig",
    "TranslatorConfig", "__version__", "create_config", "create_model",
]
