"""Training objective: cross-entropy plus translation (and optional cycle and distillation) terms, by name.

Translation loss choice: mean squared error between the translator's output and the target
modality's latent, with the target **detached**. Both are LayerNorm outputs, so MSE compares
vectors of a fixed scale (close to a cosine distance, but it also matches the per-token
offsets the fusion sees). Detaching keeps the translation loss from shaping the target
encoder: without it the cheapest way to lower the loss is to make every latent constant,
which the classification loss only partly resists. The translators learn to imitate the
encoders; the encoders learn only from classification. ``loss="cosine"`` is offered too.

MSE predicts the conditional mean of the target latent: a blurred latent that may carry little
of what the classifier needs. Two objectives aim at the task instead (issue 26):

- ``distance="infonce"``, contrastive translation: each translation must pick its own sample's
  target latent out of the batch's (InfoNCE over cosine similarities of the flattened latents,
  temperature :data:`CONTRASTIVE_TEMPERATURE`; CLIP's objective, Radford et al. 2021, between a
  translation and the latents of the samples that have both modalities). It keeps what tells
  samples apart and ignores the offsets they share.
- ``distill_weight > 0``, distillation (Hinton et al., 2015): the fusion's prediction with
  modalities hidden by modality dropout and rebuilt from the others (the student, ``logits``)
  is pulled toward its prediction from every real latent the sample has (the teacher,
  ``teacher_logits``, detached), KL divergence at temperature ``distill_temperature``, times
  T². Gradients reach the translators through the reconstructions, so a translation is trained
  for what the fusion reads from it, not for its distance to the target alone.

Neither beat MSE on validation data (``docs/translation.md``: CMU-MOSI, the mean of the field's
fixed and random weighted-F1 averages), so MSE stays the default and they stay options.

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


CONTRASTIVE_TEMPERATURE = 0.1  # InfoNCE logit scale 10, as CLIP's learned scale starts near (1 / 0.07)


def contrastive_translation(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """InfoNCE: each translation ``(b, k, d)`` against the targets ``(b, k, d)`` of the masked samples.

    Rows and candidates are the samples where ``mask`` ``(b,)`` is True; with fewer than two
    there is nothing to tell apart and the term is 0 (connected to ``pred``, so backward works).
    """
    idx = mask.nonzero().squeeze(1)
    if len(idx) < 2:
        return pred.sum() * 0.0
    p = F.normalize(pred[idx].flatten(1), dim=-1)  # (n, k d)
    t = F.normalize(target[idx].flatten(1), dim=-1)  # (n, k d)
    logits = p @ t.T / CONTRASTIVE_TEMPERATURE  # (n, n)
    return F.cross_entropy(logits, torch.arange(len(idx), device=pred.device))


def translation_term(pred: Tensor, target: Tensor, mask: Tensor, kind: str) -> Tensor:
    """One translation's loss against its (already detached) target over the samples where ``mask`` holds."""
    if kind == "infonce":
        return contrastive_translation(pred, target, mask)
    return _masked_mean(latent_distance(pred, target, kind), mask)


def distillation(student: Tensor, teacher: Tensor, mask: Tensor, temperature: float) -> Tensor:
    """``T² · KL(softmax(teacher / T) ‖ softmax(student / T))`` per sample, averaged where ``mask`` ``(b,)`` holds."""
    log_student = F.log_softmax(student / temperature, dim=-1)
    log_teacher = F.log_softmax(teacher.detach() / temperature, dim=-1)
    kl = (log_teacher.exp() * (log_teacher - log_student)).sum(dim=-1)  # (b,)
    return _masked_mean(kl, mask) * temperature ** 2


def view_consistency(a: Tensor, b: Tensor) -> Tensor:
    """Symmetric KL divergence between the predictions of two views of the same samples, logits
    ``(b, classes)``, averaged over samples; gradients reach both views (R-Drop, Liang et al. 2021)."""
    log_a, log_b = F.log_softmax(a.float(), dim=-1), F.log_softmax(b.float(), dim=-1)
    kl_ab = (log_a.exp() * (log_a - log_b)).sum(dim=-1)
    kl_ba = (log_b.exp() * (log_b - log_a)).sum(dim=-1)
    return ((kl_ab + kl_ba) / 2).mean()


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
        distance: how a translation is compared with its (detached) target: a per-sample
            distance (``mse``, ``cosine``) or contrastive translation (``infonce``).
        distill_weight: weight of the distillation term (0 disables; else the model's forward
            must be called with ``teacher=True``).
        distill_temperature: softmax temperature of the distillation term.
    """

    def __init__(self, config: BridgeConfig, label_smoothing: float = 0.0, unimodal_weight: float = 0.0,
                 translation_weight: float = 1.0, cycle_weight: float = 0.0,
                 distance: Literal["mse", "cosine", "infonce"] = "mse", distill_weight: float = 0.0,
                 distill_temperature: float = 2.0):
        super().__init__()
        if distance not in ("mse", "cosine", "infonce"):
            raise ValueError(f"translation loss must be mse, cosine or infonce, got {distance!r}")
        self.kind = distance
        self.distill_weight = distill_weight
        self.distill_temperature = distill_temperature
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
                terms[f"translate/{key}"] = translation_term(out.translations[key], out.latents[t].detach(), both,
                                                             self.kind)
                translation.append(terms[f"translate/{key}"])
                if self.cycle_weight > 0:
                    if key not in out.cycles:
                        raise ValueError("cycle terms need the model's forward with cycle=True")
                    terms[f"cycle/{key}"] = translation_term(out.cycles[key], out.latents[s].detach(), both,
                                                             self.kind)
                    cycle.append(terms[f"cycle/{key}"])
        if translation:
            terms["translation"] = torch.stack(translation).mean()
            total = total + self.weight * terms["translation"]
        if cycle:
            terms["cycle"] = torch.stack(cycle).mean()
            total = total + self.cycle_weight * terms["cycle"]
        if self.distill_weight > 0:
            if out.teacher_logits is None:
                raise ValueError("the distillation term needs the model's forward with teacher=True")
            hidden = torch.zeros_like(batch.labels, dtype=torch.bool)  # (b,) samples with a modality rebuilt
            for m in out.present:
                if m in batch.present:
                    hidden = hidden | (batch.present[m] & ~out.present[m])
            terms["distill"] = distillation(out.logits, out.teacher_logits, hidden, self.distill_temperature)
            total = total + self.distill_weight * terms["distill"]
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
