"""Label spaces: the canonical seven emotions and how each corpus's labels map onto them.

The canonical space is :data:`bridge.modality.EMOTIONS` (Ekman's six basic emotions plus
neutral): angry, disgust, fear, happy, neutral, sad, surprise. Mappings, raw label ->
canonical name:

- ``fer2013``: folder names angry, disgusted, fearful, happy, neutral, sad, surprised (the
  shared copy; other releases spell them disgust, fear, surprise, also accepted).
- ``ravdess``: the emotion code of the file name, 01 neutral, 02 calm, 03 happy, 04 sad,
  05 angry, 06 fearful, 07 disgust, 08 surprised; **calm -> neutral** (the RAVDESS reader can
  drop calm instead). ``ravdess-native8`` keeps the eight classes in code order.
- ``meld``: neutral, joy -> happy, surprise, anger -> angry, sadness -> sad, disgust, fear.
  ``meld-sentiment``: negative, neutral, positive.
- ``goemotions``: the Ekman names (and ids 0-6 of ``ekman/labels.txt``) anger -> angry,
  disgust, fear, joy -> happy, neutral, sadness -> sad, surprise.
  ``goemotions-original`` keeps the 28 original labels (ids 0-27 of ``original/labels.txt``).
- ``mosi``: native binary sentiment, 0 negative, 1 positive (no emotion mapping exists).
- ``canonical``: the seven names and the usual synonyms (anger, joy, happiness, sadness,
  fearful, disgusted, surprised), for user manifests.

Matching is case-insensitive and ignores surrounding spaces; integer codes may be given as
ints or strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bridge.modality import EMOTIONS


class LabelError(ValueError):
    """A raw label a corpus's mapping does not know."""


@dataclass(frozen=True)
class LabelSpace:
    """Output label names and the raw labels accepted for each (lower-case keys)."""

    name: str
    names: tuple[str, ...]
    aliases: Mapping[str, str]

    def index(self, raw: object) -> int:
        key = _normalise(raw)
        if key not in self.aliases:
            known = ", ".join(sorted(set(self.aliases), key=lambda k: (k.isdigit(), k)))
            raise LabelError(f"unknown {self.name} label {raw!r} (known: {known})")
        return self.names.index(self.aliases[key])


def _normalise(raw: object) -> str:
    if isinstance(raw, bool):
        raise LabelError(f"a label cannot be a bool, got {raw!r}")
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if hasattr(raw, "item") and not isinstance(raw, str):  # numpy scalars
        return _normalise(raw.item())
    return str(raw).strip().lower()


def _identity(names) -> dict[str, str]:
    return {n: n for n in names}


def _codes(names, start: int, pad: int) -> dict[str, str]:
    """``{"01": names[0], "1": names[0], ...}`` for zero-padded and plain integer codes."""
    out = {}
    for i, name in enumerate(names, start):
        out[str(i)] = name
        out[str(i).zfill(pad)] = name
    return out


RAVDESS_NATIVE8: tuple[str, ...] = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
RAVDESS_TO_CANONICAL: dict[str, str] = {
    "neutral": "neutral", "calm": "neutral", "happy": "happy", "sad": "sad",
    "angry": "angry", "fearful": "fear", "disgust": "disgust", "surprised": "surprise",
}  # fmt: skip
FER2013_FOLDERS: dict[str, str] = {
    "angry": "angry", "disgusted": "disgust", "fearful": "fear", "happy": "happy",
    "neutral": "neutral", "sad": "sad", "surprised": "surprise",
}  # fmt: skip
MELD_EMOTIONS: tuple[str, ...] = ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear")
MELD_TO_CANONICAL: dict[str, str] = {
    "neutral": "neutral", "joy": "happy", "surprise": "surprise", "anger": "angry",
    "sadness": "sad", "disgust": "disgust", "fear": "fear",
}  # fmt: skip
MELD_SENTIMENTS: tuple[str, ...] = ("negative", "neutral", "positive")
GOEMOTIONS_EKMAN: tuple[str, ...] = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
GOEMOTIONS_EKMAN_TO_CANONICAL: dict[str, str] = {
    "anger": "angry", "disgust": "disgust", "fear": "fear", "joy": "happy",
    "neutral": "neutral", "sadness": "sad", "surprise": "surprise",
}  # fmt: skip
GOEMOTIONS_ORIGINAL: tuple[str, ...] = (
    "admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion", "curiosity",
    "desire", "disappointment", "disapproval", "disgust", "embarrassment", "excitement", "fear",
    "gratitude", "grief", "joy", "love", "nervousness", "optimism", "pride", "realization", "relief",
    "remorse", "sadness", "surprise", "neutral",
)  # fmt: skip
MOSI_LABELS: tuple[str, ...] = ("negative", "positive")
CANONICAL_SYNONYMS: dict[str, str] = {
    "anger": "angry", "disgusted": "disgust", "fearful": "fear", "afraid": "fear", "joy": "happy",
    "happiness": "happy", "sadness": "sad", "surprised": "surprise",
}  # fmt: skip

LABEL_SPACES: dict[str, LabelSpace] = {
    space.name: space
    for space in (
        LabelSpace("canonical", EMOTIONS, {**_identity(EMOTIONS), **CANONICAL_SYNONYMS}),
        LabelSpace("fer2013", EMOTIONS, {**FER2013_FOLDERS, **_identity(EMOTIONS)}),
        LabelSpace(
            "ravdess",
            EMOTIONS,
            {
                **{k: RAVDESS_TO_CANONICAL[v] for k, v in _codes(RAVDESS_NATIVE8, 1, 2).items()},
                **RAVDESS_TO_CANONICAL,
            },
        ),
        LabelSpace("ravdess-native8", RAVDESS_NATIVE8, {**_codes(RAVDESS_NATIVE8, 1, 2), **_identity(RAVDESS_NATIVE8)}),
        LabelSpace("meld", EMOTIONS, MELD_TO_CANONICAL),
        LabelSpace("meld-sentiment", MELD_SENTIMENTS, _identity(MELD_SENTIMENTS)),
        LabelSpace(
            "goemotions",
            EMOTIONS,
            {
                **{k: GOEMOTIONS_EKMAN_TO_CANONICAL[v] for k, v in _codes(GOEMOTIONS_EKMAN, 0, 1).items()},
                **GOEMOTIONS_EKMAN_TO_CANONICAL,
            },
        ),
        LabelSpace(
            "goemotions-original",
            GOEMOTIONS_ORIGINAL,
            {**_codes(GOEMOTIONS_ORIGINAL, 0, 1), **_identity(GOEMOTIONS_ORIGINAL)},
        ),
        LabelSpace("mosi", MOSI_LABELS, {**_codes(MOSI_LABELS, 0, 1), **_identity(MOSI_LABELS)}),
    )
}


def label_space(name: str) -> LabelSpace:
    """The :class:`LabelSpace` called ``name`` (see the module docstring)."""
    if name not in LABEL_SPACES:
        raise KeyError(f"no label space {name!r} (choose from {', '.join(LABEL_SPACES)})")
    return LABEL_SPACES[name]


def label_names(name: str) -> tuple[str, ...]:
    """The output label names of label space ``name``, in index order."""
    return label_space(name).names


def map_label(corpus: str, raw: object) -> int:
    """Map a corpus's raw label (a name or code) to an index into ``label_names(corpus)``.

    >>> map_label("meld", "joy") == EMOTIONS.index("happy")
    True

    Raises:
        LabelError: on a label the corpus's mapping does not know, listing the known ones.
    """
    return label_space(corpus).index(raw)
