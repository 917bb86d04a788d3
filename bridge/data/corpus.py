"""A split of a corpus as a sequence of :class:`~bridge.data.sample.Sample`, with its label
names and an account of what was skipped.

Readers list a corpus once (file names, CSV rows) into *stubs*: samples with id, label,
group and split but possibly without media. An eager corpus's stubs are complete; a lazy
one decodes the media of item ``i`` when ``corpus[i]`` is read (a RAVDESS clip, a video's
faces), so listing 1,440 clips costs nothing and labels, groups and ids are known without
decoding (``corpus.labels``, ``corpus.groups``, ``corpus.stubs``).

Bad input never stops a corpus halfway:

- ``skipped``: items dropped while listing, counted by reason (unreadable file, bad file
  name, multi-label comment, ...);
- ``missing``: items kept with a modality absent, counted by reason (clip not found, no
  face detected, audio unreadable at load time, ...). Counts made in DataLoader worker
  processes stay in those processes.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from bridge.data.sample import Sample
from bridge.media import MediaError, load_image
from bridge.media.decoder import FaceDecoding, MediaDecoder
from bridge.media.detectors import DEFAULT_DETECTOR
from bridge.media.faces import DEFAULT_MAX_PIXELS, FaceDetector

log = logging.getLogger("bridge.data")

# (stub, meta) -> (loaded sample, problems): each problem a short reason, counted in ``missing``.
Loader = Callable[[Sample, dict[str, Any]], tuple[Sample, list[str]]]

SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "dev": "val", "test": "test"}  # fmt: skip


def normalise_split(split: str, allowed: Sequence[str] = SPLITS) -> str:
    """``"dev"`` -> ``"val"`` and the like; ValueError for a split the corpus does not have."""
    name = SPLIT_ALIASES.get(str(split).strip().lower(), str(split).strip().lower())
    if name not in allowed:
        raise ValueError(f"unknown split {split!r} (choose from {', '.join(allowed)})")
    return name


class Corpus(Sequence[Sample]):
    """One split of a corpus.

    Args:
        name: corpus name as reported (``"ravdess"``, ``"label-paired fer2013+ravdess+meld"``).
        split: ``"train"``, ``"val"``, ``"test"`` (or ``"all"``).
        label_names: names of the label indices.
        stubs: one sample per item; complete when ``loader`` is None.
        loader: fills in an item's media on access (lazy corpus).
        meta: per item, reader-specific details (paths, file-name fields, times), or None.
        skipped: items dropped while listing, by reason.
        missing: items kept with a modality absent, by reason.
        description: what the corpus is, one line, for reports.
    """

    def __init__(
        self,
        name: str,
        split: str,
        label_names: Sequence[str],
        stubs: list[Sample],
        loader: Loader | None = None,
        meta: list[dict[str, Any]] | None = None,
        skipped: Counter | dict[str, int] | None = None,
        missing: Counter | dict[str, int] | None = None,
        description: str = "",
    ):
        if meta is not None and len(meta) != len(stubs):
            raise ValueError(f"{len(meta)} meta entries for {len(stubs)} samples")
        self.name = name
        self.split = split
        self.label_names = tuple(label_names)
        self.stubs = stubs
        self.meta = meta if meta is not None else [{} for _ in stubs]
        self.skipped: Counter = Counter(skipped or {})
        self.missing: Counter = Counter(missing or {})
        self.description = description
        self.problems: dict[str, list[str]] = {}  # item id -> its problems, for the preprocessing cache
        self._counted: set[tuple[str, str]] = set()
        self._loader = loader
        # a corpus of face-crop images (FER-2013): the loader that can decode them again with a
        # model's decoder (attach_decoder), eager corpora included
        self.crops: Any = None
        bad = [s.id for s in stubs if not 0 <= s.label < len(self.label_names)]
        if bad:
            raise ValueError(f"{name} {split}: label out of range for {len(bad)} samples, e.g. {bad[0]}")

    @property
    def lazy(self) -> bool:
        return self._loader is not None

    def __len__(self) -> int:
        return len(self.stubs)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        stub = self.stubs[index]
        if self._loader is None:
            return stub
        sample, problems = self._loader(stub, self.meta[index])
        self.note_problems(stub.id, problems)
        return sample

    def note_problems(self, item_id: str, problems: Sequence[str]) -> None:
        """Count an item's problems in ``missing``, once per item however often it is loaded
        (a probe, each epoch) or read back from the preprocessing cache."""
        for problem in problems:
            if (item_id, problem) in self._counted:
                continue
            self._counted.add((item_id, problem))
            if not self.missing[problem]:
                log.warning("%s %s: %s (first case: %s; further cases only counted)",
                            self.name, self.split, problem, item_id)
            self.missing[problem] += 1
        if problems:
            self.problems[item_id] = list(problems)

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]

    @property
    def samples(self) -> list[Sample]:
        """Every sample, loaded (for a lazy corpus this decodes everything)."""
        return list(self)

    @property
    def labels(self) -> np.ndarray:
        """Label indices ``(n,)`` int64, without loading media."""
        return np.fromiter((s.label for s in self.stubs), dtype=np.int64, count=len(self.stubs))

    @property
    def groups(self) -> list[str | None]:
        return [s.group for s in self.stubs]

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.stubs]

    def label_counts(self) -> dict[str, int]:
        """Items per label name, in label order."""
        counts = np.bincount(self.labels, minlength=len(self.label_names))
        return {name: int(c) for name, c in zip(self.label_names, counts)}

    def subset(self, indices: Sequence[int], split: str | None = None) -> Corpus:
        """The items at ``indices`` (same loader, skip counts carried over)."""
        split = split or self.split
        stubs = [replace(self.stubs[i], split=split) for i in indices]
        part = Corpus(
            self.name, split, self.label_names, stubs, self._loader, [self.meta[i] for i in indices],
            self.skipped, self.missing, self.description,
        )  # fmt: skip
        part._counted, part.problems = set(self._counted), dict(self.problems)  # counted once, here too
        return part

    def describe(self) -> dict[str, Any]:
        """Name, split, size, label counts and skip counts, for reports."""
        return {
            "name": self.name, "split": self.split, "size": len(self), "labels": self.label_counts(),
            "skipped": dict(self.skipped), "missing": dict(self.missing), "description": self.description,
        }  # fmt: skip

    def __repr__(self) -> str:
        return f"Corpus({self.name!r}, split={self.split!r}, size={len(self)}, lazy={self.lazy})"


# Reasons that follow from an option the caller chose, logged at INFO rather than WARNING.
POLICY_REASONS = frozenset({"multi-label", "calm dropped"})


def report_skips(name: str, split: str, skipped: Counter) -> None:
    """Log what a reader skipped: one WARNING for bad input, one INFO for policy choices."""
    bad = Counter({r: n for r, n in skipped.items() if r not in POLICY_REASONS})
    chosen = Counter({r: n for r, n in skipped.items() if r in POLICY_REASONS})
    for level, counts in ((logging.WARNING, bad), (logging.INFO, chosen)):
        if counts:
            detail = ", ".join(f"{n} {reason}" for reason, n in counts.most_common())
            log.log(level, "%s %s: skipped %d items (%s)", name, split, sum(counts.values()), detail)


def carve_groups(groups: Sequence[str], fraction: float, seed: int) -> set[str]:
    """Groups (speakers, videos) holding about ``fraction`` of the items, chosen by ``seed``.

    Deterministic: groups are sorted, shuffled with ``numpy.random.default_rng(seed)`` and
    taken until the fraction is reached (at least one group when ``fraction > 0``).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction}")
    if fraction == 0.0:
        return set()
    sizes = Counter(groups)
    order = sorted(sizes)
    rng = np.random.default_rng(seed)
    chosen, total = set(), 0
    for i in rng.permutation(len(order)):
        if total >= fraction * len(groups) and chosen:
            break
        chosen.add(order[i])
        total += sizes[order[i]]
    return chosen


def carve_stratified(labels: Sequence[int], fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of about ``fraction`` of the items per label, chosen by ``seed``."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction}")
    labels = np.asarray(labels)
    mask = np.zeros(len(labels), dtype=bool)
    rng = np.random.default_rng(seed)
    for label in np.unique(labels):
        where = np.flatnonzero(labels == label)
        take = int(round(fraction * len(where)))
        mask[rng.permutation(where)[:take]] = True
    return mask


@dataclass
class MediaLoader:
    """Decodes the media files an item's meta names into its sample: the loader of every lazy
    corpus with media (RAVDESS, MELD clips, manifests), and picklable for DataLoader workers.

    Meta keys read: ``video_path`` (face crops from frames sampled evenly), ``audio_path``
    (sound; a video's sound track when ``audio_in_video``), ``image_path`` (one face crop,
    used when there is no video). A file that fails leaves its modality out and is reported
    as a short problem (``"face: no face detected"``, ``"audio: no audio stream"``), which
    the corpus counts in ``missing``.

    All decoding goes through one :class:`~bridge.media.decoder.MediaDecoder`, the predictor's:
    ``train.py`` and ``evaluate.py`` give it the model's (:func:`attach_decoder`), so crops and
    sound are what inference makes. The fields below only build a stand-alone default.

    Args:
        sample_rate: audio rate in Hz.
        face_frames: frames sampled from a video for face crops.
        face_size: side of the face crops.
        grayscale: gray crops ``(t, s, s)``, else RGB ``(t, s, s, 3)``.
        detect_faces: crop a face from images and frames (else resize the whole image).
        detector: a face detector to use instead of the decoder's (e.g. a Haar ``FaceDetector``).
        max_pixels: larger images are refused.
        decoder: the decoder (built from the fields above when None).
    """

    sample_rate: int = 16_000
    face_frames: int = 8
    face_size: int = 48
    grayscale: bool = True
    detect_faces: bool = True
    detector: Any = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    decoder: MediaDecoder | None = None

    def __post_init__(self):
        if self.decoder is None:
            name = "haar" if isinstance(self.detector, FaceDetector) else DEFAULT_DETECTOR
            faces = FaceDecoding(size=self.face_size, grayscale=self.grayscale, num_frames=self.face_frames,
                                 detector=name, detect=self.detect_faces)
            self.decoder = MediaDecoder(faces, self.sample_rate, self.max_pixels)
        if self.detector is not None:
            self.decoder.detector = self.detector

    def use(self, decoder: MediaDecoder) -> None:
        """Decode with ``decoder`` from now on (the fields follow it, for the cache key)."""
        f = decoder.faces
        self.decoder, self.detector = decoder, None
        self.sample_rate, self.face_frames, self.face_size = decoder.sample_rate, f.num_frames, f.size
        self.grayscale, self.detect_faces, self.max_pixels = f.grayscale, f.detect, decoder.max_pixels

    def __call__(self, stub: Sample, info: dict[str, Any]) -> tuple[Sample, list[str]]:
        problems: list[str] = []
        face = audio = None
        video, sound, image = info.get("video_path"), info.get("audio_path"), info.get("image_path")
        if video:
            try:
                crops, _, _ = self.decoder.video_faces(video)
                face = crops if len(crops) else None
            except MediaError as e:
                problems.append(f"face: {_short(e.problem)}")
        elif image:
            try:
                face, _ = self.decoder.image_face(load_image(image, self.max_pixels))
            except MediaError as e:
                problems.append(f"face: {_short(e.problem)}")
        if (video or image) and face is None and not problems:
            problems.append("face: no face detected")
        if sound:
            try:
                audio = self.decoder.audio(sound, in_video=bool(info.get("audio_in_video")))
            except MediaError as e:
                problems.append(f"audio: {_short(e.problem)}")
        return replace(stub, face=face, audio=audio, sample_rate=self.decoder.sample_rate), problems


def attach_decoder(splits: Any, decoder: MediaDecoder) -> int:
    """Make every lazy media corpus of ``splits`` (a :class:`~bridge.data.corpora.Splits`, a
    corpus, or a list of them) decode with ``decoder``: the model's, so training and evaluation
    decode as the predictor does. A corpus of face crops (FER-2013) whose crops that decoder
    would change (it realigns them) becomes lazy and loads its crops through it. Returns how
    many loaders now use it."""
    seen: set[int] = set()
    loaders: list[Any] = []

    def visit(obj: Any, depth: int = 0) -> None:
        if obj is None or id(obj) in seen or depth > 8:  # splits > corpus > loader > parts > corpus > loader
            return
        seen.add(id(obj))
        if isinstance(obj, Corpus) and obj.crops is not None:
            if decoder.faces.realign:
                obj._loader = obj.crops  # eager crops become lazy: the decoder makes them
            if obj._loader is obj.crops:
                obj.crops.use(decoder)
                loaders.append(obj.crops)
            return
        if isinstance(obj, MediaLoader):
            obj.use(decoder)
            loaders.append(obj)
        elif isinstance(obj, (list, tuple)):
            for o in obj:
                visit(o, depth + 1)
        else:
            for name in ("train", "val", "test", "_loader", "items", "parts", "corpora"):
                visit(getattr(obj, name, None), depth + 1)

    visit(splits)
    return len(loaders)


def _short(problem: str) -> str:
    """The reason without the library's detail in parentheses (for counting)."""
    return problem.split(" (")[0]
