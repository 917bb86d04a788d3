"""Per-sample presence of modalities: completing a batch's mask for a model's modalities, and
modality dropout, the one algorithm behind training's dropout and the missing-rate protocol."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from bridge.modality import Modality


def complete_presence(present: Mapping[Modality, Tensor], modalities: Sequence[Modality], batch_size: int,
                      device: torch.device | str) -> dict[Modality, Tensor]:
    """Per modality of ``modalities``, ``(b,)`` bool: ``present``'s mask, or all False where it has no key.

    Keys of ``present`` outside ``modalities`` are left out.

    Args:
        present: per modality ``(b,)`` bool, e.g. ``batch.present`` (a missing modality is an absent key).
        modalities: the modalities to give a mask each, in this order (e.g. ``model.modalities``).
        batch_size: ``b``.
        device: where the all-False masks are made.
    """
    return {m: present[m] if m in present else torch.zeros(batch_size, dtype=torch.bool, device=device)
            for m in modalities}


def drop_modalities(present: Mapping[Modality, Tensor], rate: float,
                    generator: torch.Generator) -> dict[Modality, Tensor]:
    """Hide each (sample, modality) with probability ``rate``; every sample keeps one it has.

    A sample that lost all its modalities gets one of them back, chosen uniformly among those it
    has (GCNet's protocol, Lian et al., TPAMI 2023). A modality a sample lacks is never made
    present, and a sample with none stays with none. Training uses it as modality dropout, the
    missing-rate protocol with ``rate`` as η.

    Args:
        present: per modality ``(b,)`` availability.
        rate: drop probability in [0, 1).
        generator: CPU random generator (for reproducibility).

    Raises:
        ValueError: when ``rate`` is outside [0, 1).
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"missing rate {rate} is outside [0, 1)")
    mods = list(present)
    avail = torch.stack([present[m].cpu() for m in mods])  # (m, b)
    kept = avail & (torch.rand(avail.shape, generator=generator) >= rate)
    lost = ~kept.any(dim=0) & avail.any(dim=0)  # (b,)
    if lost.any():
        choice = (torch.rand(avail.shape, generator=generator) * avail).argmax(dim=0)  # (b,) one available each
        kept[choice[lost], lost.nonzero().squeeze(1)] = True
    device = next(iter(present.values())).device
    return {m: kept[i].to(device) for i, m in enumerate(mods)}
