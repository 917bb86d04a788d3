"""The modalities bridge reasons about, and the default emotion label space."""

from __future__ import annotations

from enum import Enum


class Modality(str, Enum):
    """A sensing channel. Any of them may be fed raw media or pre-extracted features."""

    FACE = "face"
    AUDIO = "audio"
    TEXT = "text"

    def __str__(self) -> str:
        return self.value


ALL_MODALITIES: tuple[Modality, ...] = (Modality.FACE, Modality.AUDIO, Modality.TEXT)

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def parse_modalities(spec: str | list[str] | tuple[str, ...]) -> tuple[Modality, ...]:
    """Parse ``"face,audio"`` (or a list of names) into modalities, in canonical order.

    Raises:
        ValueError: on an unknown or empty specification.
    """
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [n.strip().lower() for n in names if n.strip()]
    if not names:
        raise ValueError("no modality given")
    known = {m.value for m in ALL_MODALITIES}
    unknown = sorted(set(names) - known)
    if unknown:
        raise ValueError(f"unknown modality {', '.join(unknown)} (choose from {', '.join(sorted(known))})")
    return tuple(m for m in ALL_MODALITIES if m.value in names)


def pattern_name(modalities: tuple[Modality, ...] | frozenset[Modality]) -> str:
    """``{face, text}`` -> ``"face+text"`` in canonical order."""
    return "+".join(m.value for m in ALL_MODALITIES if m in modalities)
