"""Label-paired composition: tri-modal samples built from three unimodal corpora.

No corpus with raw face video, voice and text of the same emotional moment is available,
so this draws a face, a voice clip and a text **of the same label** from different corpora
(by default FER-2013 x RAVDESS x MELD over the canonical seven emotions). The modalities of a
composed sample share the label but no instance: it exercises the raw pipeline, fusion and
robustness to missing modalities on real signals, not instance-level cross-modal
translation. Every name and description of such a corpus says "label-paired" so results
are never mistaken for a truly aligned corpus.

One composed sample per item of the *anchor* corpus (faces by default), so the label
distribution is the anchor's; partners of each label are drawn from a seeded shuffle of
that label's items, cycling (reshuffled each cycle) so every partner is used about equally.
Composition is deterministic given the seed, and split by split: every source must be the
same split, so test samples are built only from test items and never mix with train.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bridge.data.corpus import Corpus, normalise_split, report_skips
from bridge.data.fer2013 import read_fer2013
from bridge.data.meld import read_meld
from bridge.data.mixed import corpus_parts, read_mixed
from bridge.data.paths import require_corpus
from bridge.data.ravdess import read_ravdess
from bridge.data.sample import Sample
from bridge.modality import EMOTIONS, Modality

NAME = "paired"
ROLES = (Modality.FACE, Modality.AUDIO, Modality.TEXT)
_ALONE_SEED = {Modality.TEXT: 1, Modality.AUDIO: 2, Modality.FACE: 3}  # text's as before voices could be added


def compose_paired(
    face: Sequence[Sample],
    voice: Sequence[Sample],
    text: Sequence[Sample],
    *,
    split: str | None = None,
    seed: int = 0,
    anchor: Modality | str = Modality.FACE,
    max_samples: int | None = None,
    label_names: Sequence[str] = EMOTIONS,
) -> Corpus:
    """Compose tri-modal samples from a face, a voice and a text corpus of one split.

    Args:
        face, voice, text: corpora (a :class:`~bridge.data.corpus.Corpus` or any sequence of
            samples) in the same label space; the face, audio and text of their items is used.
        split: the split all three must be; None takes theirs (which must agree).
        seed: fixes the pairing.
        anchor: the modality whose every item yields one sample.
        max_samples: keep a seeded random subset of this many (None: all).
        label_names: the shared label space.

    Returns:
        A lazy corpus named ``"label-paired <face>+<voice>+<text>"``; ``meta[i]`` names the
        three source items. ``group`` is the voice's speaker.

    Raises:
        ValueError: sources of different splits or label spaces.
    """
    anchor = Modality(anchor)
    sources = {Modality.FACE: face, Modality.AUDIO: voice, Modality.TEXT: text}
    split = _common_split(sources, split)
    label_names = tuple(label_names)
    for modality, corpus in sources.items():
        names = getattr(corpus, "label_names", None)
        if names is not None and tuple(names) != label_names:
            raise ValueError(f"{modality} corpus labels {tuple(names)} differ from {label_names}")
    labels = {m: _labels(c) for m, c in sources.items()}
    rng = np.random.default_rng(seed)

    skipped: Counter = Counter()
    picks: dict[Modality, np.ndarray] = {anchor: np.arange(len(labels[anchor]))}
    for modality in ROLES:
        if modality != anchor:
            picks[modality] = np.full(len(labels[anchor]), -1)
    for label in range(len(label_names)):
        anchors = np.flatnonzero(labels[anchor] == label)
        if not len(anchors):
            continue
        for modality in ROLES:
            if modality == anchor:
                continue
            pool = np.flatnonzero(labels[modality] == label)
            if not len(pool):
                skipped[f"no {modality} item labelled {label_names[label]}"] += len(anchors)
                continue
            cycles = -(-len(anchors) // len(pool))
            order = np.concatenate([rng.permutation(pool) for _ in range(cycles)])
            picks[modality][anchors] = order[: len(anchors)]
    keep = np.flatnonzero(np.all([p >= 0 for p in picks.values()], axis=0))
    if max_samples is not None and max_samples < len(keep):
        keep = np.sort(rng.permutation(keep)[:max_samples])

    names = {m: getattr(c, "name", m.value) for m, c in sources.items()}
    stub_lists = [getattr(sources[m], "stubs", None) or sources[m] for m in ROLES]  # no media loading
    keys = [m.value for m in ROLES]
    columns = [picks[m][keep].tolist() for m in ROLES]
    anchor_labels = labels[anchor][keep].tolist()
    voice_col = ROLES.index(Modality.AUDIO)
    stubs, meta = [], []
    for row, label in zip(zip(*columns), anchor_labels):
        ids = [items[j].id for items, j in zip(stub_lists, row)]
        stubs.append(Sample(id=f"{NAME}/{split}/" + "+".join(ids), label=label,
                            group=stub_lists[voice_col][row[voice_col]].group, split=split))  # fmt: skip
        meta.append({**dict(zip(keys, row)), **{f"{k}_id": id_ for k, id_ in zip(keys, ids)}})
    name = "label-paired " + "+".join(names[m] for m in ROLES)
    report_skips(name, split, skipped)
    return Corpus(
        name, split, label_names, stubs, _PairedLoader(face, voice, text), meta, skipped,
        description=f"{name}: face, voice and text share the label but no instance (not an aligned corpus)",
    )  # fmt: skip


def read_paired(
    root: str | os.PathLike | None,
    split: str = "train",
    *,
    seed: int = 0,
    anchor: Modality | str = Modality.FACE,
    max_samples: int | None = None,
    fer2013: Mapping[str, Any] | None = None,
    ravdess: Mapping[str, Any] | None = None,
    meld: Mapping[str, Any] | None = None,
    text: str = "meld",
    alone: Mapping[str, float] | None = None,
) -> Corpus:
    """FER-2013 faces x RAVDESS voices x MELD texts (or MELD + GoEmotions texts), label-paired, for one split.

    Args:
        root: the data root.
        split: ``"train"``, ``"val"`` or ``"test"``; ``"val"`` needs FER-2013's
            ``val_fraction`` and RAVDESS's ``val_actors`` (MELD has dev).
        seed, anchor, max_samples: as :func:`compose_paired`.
        fer2013, ravdess, meld: options for each reader (e.g. ``ravdess={"calm": "drop"}``).
        text: the text source: ``"meld"``, or ``"meld+goemotions"`` (both registers, as the shipped
            model's text stage reads them; ``meld`` options then do not apply).
        alone: in the training split only, per modality name, add this many single-modality
            samples per composed one (:func:`add_alone`): texts from MELD and GoEmotions, voices
            from the RAVDESS split composed here, faces from the FER-2013 one. Validation and
            test stay label-paired.
    """
    split = normalise_split(split)
    face = read_fer2013(require_corpus("fer2013", root), split, **dict(fer2013 or {}))
    voice = read_ravdess(require_corpus("ravdess", root), split, **{"modalities": ("audio",), **dict(ravdess or {})})
    if text == "meld":
        texts = read_meld(require_corpus("meld", root), split, **dict(meld or {}))
    elif text == "meld+goemotions":
        texts = read_mixed(root, split, parts=("meld", "goemotions"))
    else:
        raise ValueError(f"label-paired text source {text!r}: expected 'meld' or 'meld+goemotions'")
    paired = compose_paired(face, voice, texts, split=split, seed=seed, anchor=anchor, max_samples=max_samples)
    if split != "train":
        return paired
    for name, share in dict(alone or {}).items():
        try:
            modality = Modality(name)
        except ValueError:
            raise ValueError(f"samples alone of {name!r}: expected one of {', '.join(m.value for m in ROLES)}") from None
        if not share:
            continue
        if modality is Modality.TEXT:
            source = read_mixed(root, split, parts=("meld", "goemotions"))
        else:
            source = face if modality is Modality.FACE else voice
        paired = add_alone(paired, modality, source, share, seed)
    return paired


def add_alone(paired: Corpus, modality: Modality | str, source: Corpus, share: float, seed: int = 0) -> Corpus:
    """``paired`` with ``share`` x its size more samples that have ``modality`` alone, each with its
    own label, drawn equally from each part of ``source`` (the parts of a joined corpus such as
    ``meld+goemotions``; a plain corpus is one part).

    A fusion trained on label-paired samples alone learns the anchor corpus's label mix (FER-2013's)
    and meets one text register; a user's text or voice alone is classified with that prior.
    Single-modality samples with their corpora's own labels teach the fusion's path from that
    modality alone the corpus's label mix (and, for texts, both registers), while the composed
    samples still teach it to fuse. A part with fewer items than its quota gives every item, and
    then every item again (ids marked ``~2``, ``~3`` ...) until the quota is met.

    Raises:
        ValueError: a negative share.
    """
    modality = Modality(modality)
    if share < 0:
        raise ValueError(f"the share of {modality.value} alone must be at least 0, got {share}")
    rng = np.random.default_rng(seed + _ALONE_SEED[modality])
    parts = corpus_parts(source.stubs)
    wanted = round(share * len(paired.stubs))
    picks: list[tuple[int, int]] = []  # (item of source, how many times it was drawn before)
    for k, members in enumerate(parts.values()):
        n = wanted // len(parts) + (k < wanted % len(parts))
        for copy in range(-(-n // len(members))):  # whole passes, then a random remainder
            take = min(len(members), n - copy * len(members))
            picks += [(j, copy) for j in sorted(rng.choice(members, take, replace=False).tolist())]
    prefix = f"{NAME}/{paired.split}/alone"
    stubs = list(paired.stubs) + [
        Sample(id=f"{prefix}/{source.stubs[j].id}" + (f"~{copy + 1}" if copy else ""), label=source.stubs[j].label,
               group=None, split=paired.split) for j, copy in picks]
    meta = list(paired.meta) + [{"alone": modality.value, "index": j, "source_id": source.stubs[j].id}
                                for j, _ in picks]
    loader = paired._loader
    loader = _PairedLoader(*loader.parts, alone={**loader.alone, modality.value: source})
    what = {Modality.FACE: "faces", Modality.AUDIO: "voices", Modality.TEXT: "texts"}[modality]
    return Corpus(f"{paired.name} + {what} alone", paired.split, paired.label_names, stubs, loader, meta,
                  paired.skipped, description=f"{paired.description}; plus {len(picks)} {what} alone "
                  f"({' + '.join(parts)}) with their own labels")


@dataclass
class _PairedLoader:
    """Loads the three source items of a composed sample and takes one modality from each."""

    face: Sequence[Sample]
    voice: Sequence[Sample]
    text: Sequence[Sample]
    alone: Mapping[str, Sequence[Sample]] = field(default_factory=dict)  # sources of single-modality samples

    @property
    def parts(self) -> tuple[Sequence[Sample], ...]:
        """The source corpora (what :func:`~bridge.data.corpus.attach_decoder` follows)."""
        return self.face, self.voice, self.text

    def __call__(self, stub: Sample, info: dict[str, Any]) -> tuple[Sample, list[str]]:
        if "alone" in info:
            modality, item = Modality(info["alone"]), self.alone[info["alone"]][info["index"]]
            media = {Modality.FACE: {"face": item.face}, Modality.TEXT: {"text": item.text},
                     Modality.AUDIO: {"audio": item.audio, "sample_rate": item.sample_rate}}[modality]
            sample = Sample(id=stub.id, label=stub.label, split=stub.split, **media)
            return sample, [] if sample.has(modality) else [f"{modality}: missing in its source item"]
        face = self.face[info[Modality.FACE.value]]
        voice = self.voice[info[Modality.AUDIO.value]]
        text = self.text[info[Modality.TEXT.value]]
        sample = Sample(
            id=stub.id, label=stub.label, face=face.face, audio=voice.audio, sample_rate=voice.sample_rate,
            text=text.text, group=stub.group, split=stub.split,
        )  # fmt: skip
        problems = [f"{m}: missing in its source item" for m in ROLES if not sample.has(m)]
        return sample, problems


def _labels(corpus: Sequence[Sample]) -> np.ndarray:
    labels = getattr(corpus, "labels", None)
    if labels is not None:
        return np.asarray(labels)
    return np.array([s.label for s in corpus], dtype=np.int64)


def _common_split(sources: Mapping[Modality, Sequence[Sample]], split: str | None) -> str:
    """The one split every source is in; ValueError when they differ (train never meets test)."""
    found = {}
    for modality, corpus in sources.items():
        names = {getattr(corpus, "split", None)} - {None}
        if not names:
            names = {s.split for s in (getattr(corpus, "stubs", None) or corpus)}
        if len(names) != 1 or None in names:
            raise ValueError(f"the {modality} corpus mixes or lacks splits ({names}); compose one split at a time")
        found[modality] = names.pop()
    wanted = normalise_split(split) if split is not None else None
    if len(set(found.values())) != 1 or (wanted is not None and wanted not in found.values()):
        detail = ", ".join(f"{m}: {s}" for m, s in found.items())
        raise ValueError(f"label-paired composition needs every source in split {wanted or 'one split'} ({detail})")
    return next(iter(found.values()))
