"""The batch type: inputs keyed by modality; a modality no sample has is an absent key."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from bridge.modality import Modality


@dataclass
class Batch:
    """Model inputs for ``b`` samples.

    Args:
        inputs: per modality: face ``(b, t, c, h, w)``, audio ``(b, frames, mels)``, text ids ``(b, L)``,
            features ``(b, s, f)``.
        masks: per modality, the padding mask of ``inputs`` (True = keep): ``(b, t)``, ``(b, frames)``, ...
        present: per modality, ``(b,)`` bool: whether each sample really has it.
        labels: ``(b,)`` class indices, or None at inference.
        ids: sample identifiers.
    """

    inputs: dict[Modality, Tensor]
    masks: dict[Modality, Tensor]
    present: dict[Modality, Tensor]
    labels: Tensor | None = None
    ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return next(iter(self.present.values())).shape[0]

    def to(self, device: torch.device | str) -> "Batch":
        move = lambda d: {m: t.to(device, non_blocking=True) for m, t in d.items()}  # noqa: E731
        labels = None if self.labels is None else self.labels.to(device, non_blocking=True)
        return Batch(move(self.inputs), move(self.masks), move(self.present), labels, self.ids)

    def select(self, modalities: tuple[Modality, ...] | frozenset[Modality]) -> "Batch":
        """The same batch with only ``modalities`` kept (the others become absent keys)."""
        keep = lambda d: {m: t for m, t in d.items() if m in modalities}  # noqa: E731
        return Batch(keep(self.inputs), keep(self.masks), keep(self.present), self.labels, self.ids)
