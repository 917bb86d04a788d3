"""Training objective: cross-entropy plus translation (and optional cycle) terms, by name.

Translation loss choice: mean squared error between the translator's output and the target
modality's latent, with the target **detached**. Both are LayerNorm outputs, so MSE compares
vectors of a fixed scale (close to a cosine distance, but it also matches the per-token
offsets the fusion sees). Detaching keeps the translation loss from shaping the target
encoder: without it the cheapest way to lower the loss is to make every latent constant,
which the classification loss only partly resists. The translators learn to imitate the
encoders; the encoders learn only from classification. ``loss="cosine"`` is offered too.

Unimodal terms: a linear head per modality classifies that modality's own latent. Without
them, the easiest modality (text, here) carries the fusion and the others barely learn
(modality imbalance; Peng et al., CVPR 2022; Wang et al., "What makes training multi-modal
classification networks hard?", CVPR 2020). The heads live in this loss module, not in the
model: they are training-only and never saved with the checkpoint.

The loss reads only what the model's forward returns (:class:`~bridge.model.BridgeOutput`;
cycle terms need ``forward(cycle=True)``); its weights are training settings, not model config.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bridge.batch import Batch
from bridge.config import BridgeConfig
from bridge.model import BridgeOutput, pair_key


def latent_distance(pred: Tensor, target: Tensor, kind: str) -> Tensor:
    """Per-sample distance ``(b,)`` between latents ``(b, k, d)``."""
    if kind == "cosine":
        return (1 - F.cosine_similarity(pred, target, dim=-1)).mean(dim=-1)
    return (pred - target).pow(2).mean(dim=(1, 2))


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    w = mask.to(values.dtype)
    return (values * w).sum() / w.sum().clamp_min(1.0)


class BridgeLoss(nn.Module):
    """Named loss terms and their weighted sum.

    Translations are supervised wherever a sample really has both modalities, also when
    modality dropout hid one of them from the fusion.

    Args:
        config: the model config (modalities, width and classes of the unimodal heads).
        label_smoothing: for the cross-entropy.
        unimodal_weight: weight of the per-modality classification terms (0: no unimodal heads).
        translation_weight: weight of the translation terms against cross-entropy (0: translators untrained).
        cycle_weight: weight of source -> target -> source reconstruction (0 disables; else the
            model's forward must be called with ``cycle=True``).
        distance: how a translation is compared with its (detached) target.
    """

    def __init__(self, config: BridgeConfig, label_smoothing: float = 0.0, unimodal_weight: float = 0.0,
                 translation_weight: float = 1.0, cycle_weight: float = 0.0,
                 distance: Literal["mse", "cosine"] = "mse"):
        super().__init__()
        self.kind = distance
        self.weight = translation_weight
        self.cycle_weight = cycle_weight
        self.label_smoothing = label_smoothing
        self.unimodal_weight = unimodal_weight
        self.unimodal_heads = nn.ModuleDict({m.value: nn.Linear(config.dim, config.num_classes)
                                             for m in config.modalities}) if unimodal_weight > 0 else nn.ModuleDict()

    def forward(self, out: BridgeOutput, batch: Batch) -> dict[str, Tensor]:
        terms: dict[str, Tensor] = {"ce": F.cross_entropy(out.logits, batch.labels, label_smoothing=self.label_smoothing)}
        total = terms["ce"]
        translation, cycle = [], []
        for s in out.latents:
            for t in out.latents:
                if s == t:
                    continue
                key = pair_key(s, t)
                both = batch.present[s] & batch.present[t]  # (b,)
                d = latent_distance(out.translations[key], out.latents[t].detach(), self.kind)
                terms[f"translate/{key}"] = _masked_mean(d, both)
                translation.append(terms[f"translate/{key}"])
                if self.cycle_weight > 0:
                    if key not in out.cycles:
                        raise ValueError("cycle terms need the model's forward with cycle=True")
                    terms[f"cycle/{key}"] = _masked_mean(
                        latent_distance(out.cycles[key], out.latents[s].detach(), self.kind), both)
                    cycle.append(terms[f"cycle/{key}"])
        if translation:
            terms["translation"] = torch.stack(translation).mean()
            total = total + self.weight * terms["translation"]
        if cycle:
            terms["cycle"] = torch.stack(cycle).mean()
            total = total + self.cycle_weight * terms["cycle"]
        unimodal = []
        for m, latent in out.latents.items():
            if m.value in self.unimodal_heads:
                ce = F.cross_entropy(self.unimodal_heads[m.value](latent.mean(dim=1)), batch.labels,
                                     label_smoothing=self.label_smoothing, reduction="none")
                terms[f"unimodal/{m.value}"] = _masked_mean(ce, batch.present[m])
                unimodal.append(terms[f"unimodal/{m.value}"])
        if unimodal:
            terms["unimodal"] = torch.stack(unimodal).mean()
            total = total + self.unimodal_weight * terms["unimodal"]
        terms["loss"] = total
        return terms
