"""How to train (:class:`TrainConfig`), in a module light enough for ``train.py`` to build its
argument parser, and answer ``--help``, without importing torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SELECT_KEYS = {"all": "macro_f1", "patterns": "macro_f1_patterns"}  # --select: the validation score to maximise


@dataclass(frozen=True)
class TrainConfig:
    """How to train (the model itself is a :class:`~bridge.config.BridgeConfig`)."""

    epochs: int = 15
    batch_size: int = 32  # global: a run of N processes gives each batch_size // N
    lr: float = 1e-3  # peak AdamW learning rate, after a linear warm-up, then cosine decay
    encoder_lr_scale: float = 1.0  # learning rate of pretrained encoders relative to lr
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    unimodal_weight: float = 0.5  # weight of per-modality classification terms (training-only heads)
    modality_dropout: float = 0.5  # chance of hiding each (sample, modality) from the fusion
    dropout_schedule: Literal["constant", "linear"] = "linear"  # linear: ramp up from 0 over dropout_warmup_epochs
    dropout_warmup_epochs: int = 3
    fill: Literal["reconstruct", "zero"] = "reconstruct"  # "zero": the early-fusion baseline, no translation
    augment: bool = False  # random flips, warps and erasing of face crops (bridge.augment.FaceAugment)
    init_encoders: tuple[str, ...] = ()  # "MODALITY=CHECKPOINT": start that encoder from a trained checkpoint
    mismatch: tuple[str, ...] = ()  # "MODALITY=RATE": that share of training samples take it from another label's
    select: Literal["all", "patterns"] = "all"  # keep the epoch best on all modalities, or on the mean over patterns
    grad_clip: float = 1.0
    seed: int = 0
    deterministic: bool = False  # deterministic algorithms only (slower on GPU; CPU runs are already repeatable)
    num_workers: int = 0  # DataLoader workers for preprocessing (0: in the main process)
    device: str = "auto"  # "auto" picks CUDA when available
