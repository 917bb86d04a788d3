"""Fit a preset to a corpus: its label names, the modalities it carries, and feature sizes."""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from bridge.config import BridgeConfig, FeatureConfig, create_config
from bridge.data.corpora import Splits
from bridge.data.sample import Sample
from bridge.modality import ALL_MODALITIES, Modality, parse_modalities


def corpus_modalities(samples: Sequence[Sample], probe: int = 32) -> dict[Modality, str | tuple[int, int]]:
    """What a corpus carries per modality: ``"raw"``, or ``(steps, dim)`` of its features.

    Raw media wins when a corpus has both (e.g. MOSI transcripts beside text-CNN features).
    """
    found: dict[Modality, str | tuple[int, int]] = {}
    step = max(1, len(samples) // probe)
    for i in range(0, min(len(samples), probe * step), step):
        s = samples[i]
        for m in ALL_MODALITIES:
            if s.has(m):
                found[m] = "raw"
            elif m in s.features and found.get(m) != "raw":
                shape = s.features[m].shape
                found[m] = (1, shape[0]) if len(shape) == 1 else (max(shape[0], found.get(m, (0, 0))[0]), shape[1])
    return found


def model_config_for(preset: str, splits: Splits, modalities: str | None = None) -> BridgeConfig:
    """The preset, with the corpus's labels and modalities (feature encoders where it ships features).

    Args:
        preset: a preset name.
        splits: the corpus.
        modalities: optional comma-separated subset to keep.

    Raises:
        ValueError: when a requested modality is not in the corpus.
    """
    config = create_config(preset, labels=tuple(splits.labels))
    available = corpus_modalities(splits.train)
    wanted = parse_modalities(modalities) if modalities else tuple(available)
    missing = [m.value for m in wanted if m not in available]
    if missing:
        have = ", ".join(m.value for m in available) or "nothing"
        raise ValueError(f"corpus {splits.name} has no {', '.join(missing)} (it has {have})")
    encoders = {}
    for m in ALL_MODALITIES:
        kind = available.get(m)
        if m not in wanted or kind is None:
            encoders[m.value] = None
        elif kind == "raw":
            encoders[m.value] = getattr(config, m.value)
        else:
            steps, dim = kind
            encoders[m.value] = FeatureConfig(input_dim=dim, max_steps=steps, hidden_size=config.dim)
    return replace(config, **encoders)
