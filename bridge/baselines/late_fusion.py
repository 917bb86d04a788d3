"""Late fusion (MultiBench's robustness baseline, Liang et al., NeurIPS 2021): one unimodal
bridge model per modality, each trained by ``train.py --modalities M``, and the average of
their class probabilities over the modalities a sample has.

:class:`LateFusion` follows :class:`~bridge.model.BridgeModel`'s staged contract (``encode`` →
``translate`` → ``reconstruct`` → ``fuse`` → ``classify``), so the evaluation protocols of
:mod:`bridge.evaluation` run on it unchanged. It has nothing to translate: a missing modality
simply leaves the average, and a sample with none of them gets the training label prior.
With a single member it is that unimodal model, scored on every sample.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

from bridge.batch import Batch
from bridge.config import BridgeConfig
from bridge.modality import Modality
from bridge.model import BridgeModel, BridgeOutput


class LateFusion(nn.Module):
    """The mean of unimodal models' probabilities over the present modalities.

    Args:
        members: one single-modality :class:`BridgeModel` per modality, sharing a label set.
        prior: ``(c,)`` label distribution for samples with no member modality (default uniform).

    Raises:
        ValueError: when a member has several modalities, two share one, or labels differ.
    """

    def __init__(self, members: Sequence[BridgeModel], prior: Tensor | None = None):
        super().__init__()
        if not members:
            raise ValueError("late fusion needs at least one unimodal model")
        labels = members[0].config.labels
        by_modality: dict[Modality, BridgeModel] = {}
        for member in members:
            if len(member.modalities) != 1:
                raise ValueError(f"a late-fusion member must be unimodal, got "
                                 f"{'+'.join(m.value for m in member.modalities)}")
            if member.config.labels != labels:
                raise ValueError(f"late-fusion members disagree on labels: {list(member.config.labels)} vs "
                                 f"{list(labels)}")
            m = member.modalities[0]
            if m in by_modality:
                raise ValueError(f"two late-fusion members for {m.value}")
            by_modality[m] = member
        order = [m for m in Modality if m in by_modality]
        self.members = nn.ModuleDict({m.value: by_modality[m] for m in order})
        self.config: BridgeConfig = replace(
            members[0].config, **{m.value: by_modality[m].config.encoders[m] if m in by_modality else None
                                  for m in Modality})
        self.encoders = nn.ModuleDict({m.value: by_modality[m].encoders[m.value] for m in order})
        c = len(labels)
        prior = torch.full((c,), 1.0 / c) if prior is None else prior.float() / prior.float().sum()
        self.register_buffer("prior", prior)

    @classmethod
    def from_checkpoints(cls, directories: Sequence[str | Path], device: str | torch.device = "cpu",
                         prior: Tensor | None = None) -> "LateFusion":
        """Late fusion of unimodal checkpoints written by ``train.py --modalities M``."""
        from bridge.checkpoint import load_checkpoint

        return cls([load_checkpoint(Path(d), device)[0] for d in directories], prior).to(device)

    @property
    def modalities(self) -> tuple[Modality, ...]:
        return self.config.modalities

    def encode(self, batch: Batch) -> dict[Modality, Tensor]:
        """Each member's latent for its modality, where the batch carries it."""
        latents = {}
        for member in self.members.values():
            latents.update(member.encode(batch))
        return latents

    def translate(self, latents: dict[Modality, Tensor]) -> dict[str, Tensor]:
        return {}  # late fusion translates nothing

    def reconstruct(self, translations: dict[str, Tensor], present: dict[Modality, Tensor],
                    batch_size: int) -> dict[Modality, Tensor]:
        return {}

    def fuse(self, latents: dict[Modality, Tensor], reconstructions: dict[Modality, Tensor],
             present: dict[Modality, Tensor], fill: str = "reconstruct") -> tuple[Tensor, Tensor]:
        """Per-member probabilities ``(b, m, c)`` and which of them count ``(b, m)``; ``fill`` is ignored."""
        probs, counts = [], []
        for m in self.modalities:
            member = self.members[m.value]
            if m not in latents:
                b = len(next(iter(present.values())))
                probs.append(self.prior.expand(b, -1))
                counts.append(torch.zeros(b, dtype=torch.bool, device=self.prior.device))
                continue
            z = latents[m]
            alone = {m: torch.ones(len(z), dtype=torch.bool, device=z.device)}
            logits = member.classify(member.fuse({m: z}, {m: torch.zeros_like(z)}, alone))
            probs.append(logits.float().softmax(-1))
            counts.append(present[m])
        return torch.stack(probs, dim=1), torch.stack(counts, dim=1)

    def classify(self, joint: tuple[Tensor, Tensor]) -> Tensor:
        """Log of the mean probability over the counted members (the prior where none counts)."""
        probs, counted = joint
        w = counted.to(probs.dtype)[..., None]  # (b, m, 1)
        n = w.sum(dim=1)  # (b, 1)
        mean = (probs * w).sum(dim=1) / n.clamp_min(1.0)
        mean = torch.where(n > 0, mean, self.prior.to(probs.dtype))
        return mean.clamp_min(1e-12).log()

    def forward(self, batch: Batch, present: dict[Modality, Tensor] | None = None,
                fill: str = "reconstruct") -> BridgeOutput:
        present = batch.present if present is None else present
        b = len(batch)
        present = {m: present[m] if m in present else torch.zeros(b, dtype=torch.bool, device=self.prior.device)
                   for m in self.modalities}
        latents = self.encode(batch)
        logits = self.classify(self.fuse(latents, {}, present, fill))
        return BridgeOutput(logits, latents, {}, {}, present)
