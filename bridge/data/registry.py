"""The corpora bridge reads, by name, and one way to load any of them.

======================  ==============================================================
name                    what
======================  ==============================================================
``fer2013``             FER-2013 faces (train / test; val carved from train)
``ravdess``             RAVDESS speech, and face video when present (by actor)
``ravdess8``            RAVDESS with its eight native emotions (calm kept)
``meld``                MELD utterances (train / dev / test), clips when given
``goemotions``          GoEmotions, Ekman labels -> canonical seven
``goemotions-original`` GoEmotions, the 28 original labels
``meld+goemotions``     MELD and GoEmotions (Ekman) joined split by split, 7 emotions
``mosi``                CMU-MOSI aligned features and transcripts, binary sentiment
``paired``              label-paired FER-2013 x RAVDESS x MELD (shares labels, not instances)
``paired+goemotions``   the same, its texts drawn from MELD and GoEmotions (Ekman) together
``paired+text``         ``paired``, and in training a quarter as many texts alone (MELD, GoEmotions)
``paired+text+voice``   ``paired+text``, and in training a tenth as many voices alone (RAVDESS)
``manifest``            a user's CSV / JSONL manifest (``root`` is the manifest)
======================  ==============================================================

:func:`load_corpus` reads one split exactly as the reader's options say. Corpora without a
validation split only give one when told how to carve it, and the same options must then be
passed for train; :func:`load_splits` does that consistently, adding each corpus's default
carve-out (:attr:`CorpusSpec.val_options`). Every reader skips bad files and rows instead of
failing halfway and reports them in ``corpus.skipped`` (and ``corpus.missing``).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from bridge.data.corpus import SPLITS, Corpus
from bridge.data.fer2013 import read_fer2013
from bridge.data.goemotions import read_goemotions
from bridge.data.manifest import read_manifest
from bridge.data.meld import read_meld
from bridge.data.mosi import read_mosi
from bridge.data.paired import read_paired
from bridge.data.paths import data_root, require_corpus
from bridge.data.mixed import read_mixed
from bridge.data.ravdess import read_ravdess
from bridge.data.splits import Splits


def _frozen(**kwargs: Any) -> Mapping[str, Any]:
    return MappingProxyType(kwargs)


@dataclass(frozen=True)
class CorpusSpec:
    """How to read a corpus by name."""

    name: str
    read: Callable[..., Corpus]  # read(root, split, **options)
    folder: str | None  # corpus folder under the data root; None: the reader takes the root itself
    options: Mapping[str, Any] = field(default_factory=_frozen)  # always passed (overridable)
    val_options: Mapping[str, Any] = field(default_factory=_frozen)  # how load_splits carves val
    description: str = ""
    parts: tuple[str, ...] = ()  # a composed corpus: the corpora it reads from the data root

    @property
    def folders(self) -> tuple[str, ...]:
        """The corpus folders it needs under the data root (none for a manifest)."""
        return (self.folder,) if self.folder else tuple(f for p in self.parts for f in CORPORA[p].folders)

    def load(self, root: str | os.PathLike | None, split: str, **options: Any) -> Corpus:
        """Read ``split``; ``root`` is the data root (for ``manifest``: the manifest)."""
        if self.name == "manifest":
            if root is None:
                raise ValueError("the manifest corpus needs root= the manifest file (or its folder)")
            location: Path | None = Path(root)
        elif self.folder is None:
            location = data_root(root)
        else:
            location = require_corpus(self.folder, root)
        return self.read(location, split, **{**self.options, **options})


# how the label-paired corpora carve validation: from their FER-2013 and RAVDESS parts
PAIRED_VAL = _frozen(fer2013=_frozen(val_fraction=0.1), ravdess=_frozen(val_actors=(19, 20)))

CORPORA: dict[str, CorpusSpec] = {
    spec.name: spec
    for spec in (
        CorpusSpec("fer2013", read_fer2013, "fer2013", val_options=_frozen(val_fraction=0.1),
                   description="FER-2013 48x48 faces, 7 emotions"),
        CorpusSpec("ravdess", read_ravdess, "ravdess", val_options=_frozen(val_actors=(19, 20)),
                   description="RAVDESS speech (+ face video when present), speaker-independent by actor"),
        CorpusSpec("ravdess8", read_ravdess, "ravdess", _frozen(label_set="native8"),
                   val_options=_frozen(val_actors=(19, 20)),
                   description="RAVDESS speech with its 8 native emotions (calm kept), speaker-independent"),
        CorpusSpec("meld", read_meld, "meld", description="MELD text (+ clips), 7 emotions"),
        CorpusSpec("goemotions", read_goemotions, "goemotions", _frozen(variant="ekman"),
                   description="GoEmotions Reddit text, Ekman labels mapped to 7 emotions"),
        CorpusSpec("goemotions-original", read_goemotions, "goemotions", _frozen(variant="original"),
                   description="GoEmotions Reddit text, 28 labels"),
        CorpusSpec("meld+goemotions", read_mixed, None,
                   description="MELD dialogue + GoEmotions Reddit comments (Ekman), 7 emotions, split by split",
                   parts=("meld", "goemotions")),
        CorpusSpec("mosi", read_mosi, "mosi", val_options=_frozen(val_fraction=0.15),
                   description="CMU-MOSI aligned audio/video/text features + transcripts, binary sentiment"),
        CorpusSpec("paired", read_paired, None,
                   val_options=PAIRED_VAL,
                   description="label-paired FER-2013 x RAVDESS x MELD: shared labels, no shared instances",
                   parts=("fer2013", "ravdess", "meld")),
        CorpusSpec("paired+goemotions", read_paired, None, _frozen(text="meld+goemotions"),
                   val_options=PAIRED_VAL,
                   description="label-paired FER-2013 x RAVDESS x (MELD + GoEmotions): shared labels, no shared instances",
                   parts=("fer2013", "ravdess", "meld", "goemotions")),
        CorpusSpec("paired+text", read_paired, None, _frozen(alone=_frozen(text=0.25)),
                   val_options=PAIRED_VAL,
                   description="label-paired FER-2013 x RAVDESS x MELD; training adds MELD and GoEmotions texts alone "
                               "(a quarter as many), with their own labels",
                   parts=("fer2013", "ravdess", "meld", "goemotions")),
        CorpusSpec("paired+text+voice", read_paired, None, _frozen(alone=_frozen(text=0.25, audio=0.1)),
                   val_options=PAIRED_VAL,
                   description="label-paired FER-2013 x RAVDESS x MELD; training adds MELD and GoEmotions texts alone "
                               "(a quarter as many) and RAVDESS voices alone (a tenth as many), with their own labels",
                   parts=("fer2013", "ravdess", "meld", "goemotions")),
        CorpusSpec("manifest", read_manifest, None, description="a user's CSV/JSONL manifest of media and labels"),
    )
}  # fmt: skip


def corpus_spec(name: str) -> CorpusSpec:
    if name not in CORPORA:
        raise KeyError(f"unknown corpus {name!r} (choose from {', '.join(CORPORA)})")
    return CORPORA[name]


def load_corpus(name: str, root: str | os.PathLike | None = None, split: str = "train", **options: Any) -> Corpus:
    """Read one split of corpus ``name``.

    Args:
        name: a key of :data:`CORPORA`.
        root: the data root (None: :func:`~bridge.data.paths.data_root`); for ``manifest``,
            the manifest file or its folder.
        split: ``"train"``, ``"val"`` or ``"test"``.
        **options: passed to the reader (see each reader's docstring).

    Raises:
        KeyError: unknown corpus name.
        FileNotFoundError: the corpus folder is missing (named in the message).
    """
    return corpus_spec(name).load(root, split, **options)


def load_splits(
    name: str, root: str | os.PathLike | None = None, splits: Sequence[str] = SPLITS, **options: Any
) -> dict[str, Corpus]:
    """Read several splits with the same options, carving a validation split where the
    corpus has none (the corpus's :attr:`CorpusSpec.val_options`, overridable), so train and
    val never overlap."""
    spec = corpus_spec(name)
    merged = _merge(spec.val_options, options)
    return {split: spec.load(root, split, **merged) for split in splits}


def load_corpus_splits(name: str, root: str | os.PathLike | None = None, seed: int = 0, **options: Any):
    """Train, val and test of corpus ``name`` as :class:`bridge.data.splits.Splits` (what
    ``train.py`` and ``evaluate.py`` consume), with a JSON-able ``info`` recording the data
    root, options, sizes and skip counts.

    Args:
        name: a key of :data:`CORPORA` (not ``manifest``'s path: pass ``root=`` the manifest).
        root: the data root.
        seed: for readers that take one (validation carve-outs, label pairing).
        **options: reader options, over the corpus's validation carve-out.
    """
    spec = corpus_spec(name)
    if "seed" in inspect.signature(spec.read).parameters:
        options = {"seed": seed, **options}
    parts = load_splits(name, root, SPLITS, **options)
    first = parts["train"]
    for split, corpus in parts.items():
        if corpus.label_names != first.label_names:
            raise ValueError(f"{name}: {split} labels {corpus.label_names} differ from train's {first.label_names}")
    info = {
        "name": name,
        "corpus": first.name,
        "description": first.description,
        "data_root": str(root if name == "manifest" else data_root(root)),
        "options": _jsonable(_merge(spec.options, _merge(spec.val_options, options))),
        "skipped": {split: dict(c.skipped) for split, c in parts.items()},
    }
    return Splits(first.name, parts["train"], parts["val"], parts["test"], first.label_names, info)


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``override``, merging nested option mappings (``paired``'s per-reader options)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value.value if hasattr(value, "value") else value)
