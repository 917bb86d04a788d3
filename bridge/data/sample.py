"""The one sample type every reader yields and every preprocessor consumes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bridge.modality import Modality


@dataclass
class Sample:
    """One labelled example with any subset of modalities.

    A modality the sample lacks is ``None`` here and becomes an absent key in a batch.

    Args:
        id: unique, stable identifier (file stem, utterance id, ...).
        label: index into the corpus's label names.
        face: face crops, uint8, ``(t, h, w)`` grayscale or ``(t, h, w, 3)`` RGB; ``t`` frames.
        audio: mono waveform, float32 in [-1, 1], ``(n,)``, at ``sample_rate``.
        sample_rate: sampling rate of ``audio`` in Hz.
        text: transcript or message.
        features: pre-extracted features per modality, float32 ``(s, f)`` (a vector is ``s = 1``).
        group: speaker or recording-session id, for speaker-independent splits.
        split: ``"train"``, ``"val"`` or ``"test"`` when the corpus defines it.
    """

    id: str
    label: int
    face: np.ndarray | None = None
    audio: np.ndarray | None = None
    sample_rate: int = 16_000
    text: str | None = None
    features: dict[Modality, np.ndarray] = field(default_factory=dict)
    group: str | None = None
    split: str | None = None

    def has(self, modality: Modality, *, as_features: bool = False) -> bool:
        """Whether the sample carries ``modality`` (as features, or as raw media)."""
        if as_features:
            return modality in self.features
        return {Modality.FACE: self.face, Modality.AUDIO: self.audio, Modality.TEXT: self.text}[modality] is not None
