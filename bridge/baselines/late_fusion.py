"""Late fusion (MultiBench's robustness baseline, Liang et al., NeurIPS 2021): one unimodal
bridge model per modality, each trained by ``train.py --modalities M``, and the average of
their class probabilities over the modalities a sample has.

:class:`LateFusion` keeps the classifier contract (:class:`bridge.contract.Classifier`:
``encode`` then ``head``), so the evaluation protocols of :mod:`bridge.eval.protocols` run on it
unchanged. It has nothing to translate: a missing modality simply leaves the average, and a
sample with none of them gets the training label prior.
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
from bridge.contract import Fill
from bridge.modality import Modality
from bridge.model import BridgeModel, BridgeOutput, Encoded, load_checkpoint
from bridge.presence import complete_presence
from bridge.views import require_face_views


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
        return cls([load_checkpoint(Path(d), device)[0] for d in directories], prior).to(device)

    @property
    def modalities(self) -> tuple[Modality, ...]:
        return self.config.modalities

    def encode(self, batch: Batch, views: str = "single") -> Encoded:
        """Each member's latent for its modality, where the batch carries it (nothing to translate);
        the face member's with the test-time ``views``."""
        require_face_views(self.config, views)
        latents = {}
        for m, member in self.members.items():
            latents.update(member.encode(batch, views if m == Modality.FACE.value else "single").latents)
        return Encoded(latents, {})

    def head(self, encoded: Encoded, present: dict[Modality, Tensor], fill: Fill = "reconstruct") -> Tensor:
        """Log of the mean probability over the members whose modality is present (the prior
        where none is); ``fill`` is ignored."""
        any_mask = next(iter(present.values()))
        b = len(any_mask)
        present = complete_presence(present, self.modalities, b, any_mask.device)
        probs, counted = [], []  # per member: (b, c) probabilities, (b,) whether they count
        for m in self.modalities:
            member = self.members[m.value]
            if m not in encoded.latents:
                probs.append(self.prior.expand(b, -1))
                counted.append(torch.zeros_like(present[m]))  # not encoded: it does not count
                continue
            z = encoded.latents[m]
            alone = {m: torch.ones(len(z), dtype=torch.bool, device=z.device)}
            probs.append(member.head(Encoded({m: z}, {}), alone).float().softmax(-1))
            counted.append(present[m])
        w = torch.stack(counted, dim=1).to(torch.float32)[..., None]  # (b, m, 1)
        n = w.sum(dim=1)  # (b, 1)
        mean = (torch.stack(probs, dim=1) * w).sum(dim=1) / n.clamp_min(1.0)
        mean = torch.where(n > 0, mean, self.prior.float())
        return mean.clamp_min(1e-12).log()

    def forward(self, batch: Batch, present: dict[Modality, Tensor] | None = None,
                fill: Fill = "reconstruct") -> BridgeOutput:
        present = complete_presence(batch.present if present is None else present, self.modalities, len(batch),
                                    self.prior.device)
        encoded = self.encode(batch)
        return BridgeOutput(self.head(encoded, present, fill), encoded.latents, {}, {}, present)
