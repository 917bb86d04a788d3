"""bridge: multimodal emotion recognition with cross-modal translation for missing modalities.

Importing bridge is light: the names below are imported on first use (PEP 562), so ``import
bridge.cli`` or ``bridge.config`` does not pay for torch, and the encoders' libraries (timm,
transformers) load only when a model is built. The scripts parse their arguments, and answer
``--help`` or a flag error, before any heavy import.
"""

from __future__ import annotations

import importlib
from typing import Any

from bridge.version import __version__

_LAZY = {
    "Batch": "bridge.batch",
    "CheckpointError": "bridge.checkpoint",
    "Classifier": "bridge.contract",
    **{name: "bridge.config" for name in ("AudioConfig", "BridgeConfig", "FaceConfig", "FeatureConfig",
                                          "FusionConfig", "TextConfig", "TranslatorConfig", "create_config")},
    **{name: "bridge.modality" for name in ("ALL_MODALITIES", "EMOTIONS", "Modality")},
    **{name: "bridge.model" for name in ("BridgeModel", "BridgeOutput", "Encoded", "create_model")},
    "Predictor": "bridge.inference.predictor",
}

__all__ = sorted([*_LAZY, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'bridge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
