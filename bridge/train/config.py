"""How to train (:class:`TrainConfig`), in a module light enough for ``train.py`` to build its
argument parser, and answer ``--help``, without importing torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bridge.views import TestViews

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
    translation_weight: float = 1.0  # weight of the translation terms against cross-entropy
    cycle_weight: float = 0.0  # weight of source -> target -> source reconstruction terms (0 disables)
    # how a translation is pulled toward its detached target: a distance (mse, cosine) or contrastive (infonce).
    # MSE, and no distillation, because they had the best validation score of the ablation in
    # docs/translation.md (CMU-MOSI, mean of the field's fixed and random weighted-F1 averages over 3 seeds:
    # MSE 68.4, MSE + distillation 67.0, MSE + cycle 67.0, InfoNCE 66.4; InfoNCE + distillation 66.4 on
    # 2 seeds); the other objectives stay options.
    translation_loss: Literal["mse", "cosine", "infonce"] = "mse"
    distill_weight: float = 0.0  # weight of the fusion's prediction from reconstructions matching its real-latent one
    distill_temperature: float = 2.0  # softmax temperature of that distillation term
    modality_dropout: float = 0.5  # chance of hiding each (sample, modality) from the fusion
    dropout_schedule: Literal["constant", "linear"] = "linear"  # linear: ramp up from 0 over dropout_warmup_epochs
    dropout_warmup_epochs: int = 3
    fill: Literal["reconstruct", "zero"] = "reconstruct"  # "zero": the early-fusion baseline, no translation
    augment: bool = False  # face crops: flips, warps, erasing; audio: level, noise, tempo (bridge.train.augment)
    augment_zoom: tuple[float, float] = (0.9, 1.1)  # face zoom factors drawn from this range (above 1 zooms in)
    augment_shift: float = 0.1  # face shifts drawn from [-shift, shift] of the side, on each axis
    augment_surround: float = 0.0  # chance a warp's area beyond the crop shows the batch's next face, not its edge
    # with augment: weight of view consistency, the symmetric KL divergence between the predictions from two
    # augmented views of each face (R-Drop's term, Liang et al., NeurIPS 2021, over views; 0 disables). The
    # second view costs a second forward and backward of the model.
    consistency_weight: float = 0.0
    # a joined corpus (item ids PART/..., e.g. meld+goemotions): each epoch draws as many training items from
    # every part as the smallest part has, afresh per epoch, so a large part does not outweigh a small one
    balance_parts: bool = False
    # "PART=SHARE": with balance_parts, draw SHARE times as many items from that part (e.g. goemotions=0.5)
    part_share: tuple[str, ...] = ()
    init_encoders: tuple[str, ...] = ()  # "MODALITY=CHECKPOINT": start that encoder from a trained checkpoint
    mismatch: tuple[str, ...] = ()  # "MODALITY=RATE": that share of training samples take it from another label's
    select: Literal["all", "patterns"] = "all"  # keep the epoch best on all modalities, or on the mean over patterns
    # validate with each face latent averaged over these test-time views (bridge.views: single, mirror,
    # crops), and record them in the checkpoint (inference.test_views) for infer.py and evaluate.py;
    # training itself sees single crops
    test_views: TestViews = "single"
    grad_clip: float = 1.0
    # the training forward's arithmetic: "bfloat16" runs it under torch.autocast (weights, gradients and the
    # optimiser stay float32; validation and checkpoints are float32 either way). On a CPU with AVX-512 BF16 it
    # makes a step of the FER-2013 face encoder 1.27x faster, a whole epoch about 1.09x (docs/benchmarks.md)
    precision: Literal["float32", "bfloat16"] = "float32"
    seed: int = 0
    # deterministic algorithms only (slower on GPU; CPU runs are already repeatable): recorded here,
    # switched on by the script (bridge.runtime.use_deterministic_algorithms), as it is process-wide
    deterministic: bool = False
    num_workers: int = 0  # DataLoader workers for preprocessing (0: in the main process)
    device: str = "auto"  # "auto" picks CUDA when available
    memo_mb: float = 1024  # memo of frozen encoders' outputs, megabytes (bridge.encoders.memo; 0: none)
