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
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bridge.batch import Batch
from bridge.config import BridgeConfig
from bridge.model import BridgeModel, BridgeOutput, pair_key


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
        config: the model config (translator loss kind and weights).
        label_smoothing: for the cross-entropy.
    """

    def __init__(self, config: BridgeConfig, label_smoothing: float = 0.0, unimodal_weight: float = 0.0):
        super().__init__()
        self.kind = config.translator.loss
        self.weight = config.translator.weight
        self.cycle_weight = config.translator.cycle_weight
        self.label_smoothing = label_smoothing
        self.unimodal_weight = unimodal_weight
        self.unimodal_heads = nn.ModuleDict({m.value: nn.Linear(config.dim, config.num_classes)
                                             for m in config.modalities}) if unimodal_weight > 0 else nn.ModuleDict()

    def forward(self, model: BridgeModel, out: BridgeOutput, batch: Batch) -> dict[str, Tensor]:
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
                    back = model.translators[pair_key(t, s)](out.translations[key])
                    terms[f"cycle/{key}"] = _masked_mean(
                        latent_distance(back, out.latents[s].detach(), self.kind), both)
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
