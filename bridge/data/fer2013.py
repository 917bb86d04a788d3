"""FER-2013 (Goodfellow et al., "Challenges in representation learning", ICML 2013 workshop):
48x48 grayscale faces in ``{train,test}/<class>/*.png`` folders.

``train`` is the challenge's Training set (28,709), ``test`` its PublicTest + PrivateTest
(7,178). There is no speaker information, so a validation split can only be a random,
class-stratified carve-out of train (``val_fraction``, ``seed``); pass the same values when
reading ``train`` so the two do not overlap. Labels are mapped to the canonical seven (see
:mod:`bridge.data.labels`); each sample's face is ``(1, 48, 48)`` uint8, as the corpus has it,
until a model's decoder is attached (:func:`~bridge.data.corpus.attach_decoder`): then each
image becomes that model's crop (:meth:`~bridge.media.decoder.MediaDecoder.whole`: resized, or
found again and realigned when the model's ``face.realign`` says so), as the predictor makes it.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from bridge.data.corpus import Corpus, carve_stratified, normalise_split, report_skips
from bridge.data.labels import label_names, map_label
from bridge.data.sample import Sample
from bridge.media.decoder import MediaDecoder

NAME = "fer2013"
_DIGITS = re.compile(r"(\d+)")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".tif", ".tiff", ".webp"})
LABEL_NAMES = label_names(NAME)


def natural_key(name: str) -> tuple:
    """``im2`` before ``im10``."""
    return tuple(int(part) if part.isdigit() else part for part in _DIGITS.split(name))


def read_face_image(path: str | os.PathLike, size: int = 48) -> np.ndarray | None:
    """A grayscale image file as ``(1, size, size)`` uint8 (resized with INTER_AREA if need
    be), or None when it cannot be decoded."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None or image.size == 0:
        return None
    if image.shape != (size, size):
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return image[None]


def read_fer2013(
    root: str | os.PathLike,
    split: str = "train",
    *,
    val_fraction: float = 0.0,
    seed: int = 0,
    lazy: bool = False,
    size: int = 48,
) -> Corpus:
    """Read one split of FER-2013.

    Args:
        root: the corpus folder (holding ``train/`` and ``test/``).
        split: ``"train"``, ``"val"`` (carved from train) or ``"test"``.
        val_fraction: fraction of train, per class, held out as ``"val"``; 0 keeps train whole.
        seed: chooses the held-out images.
        lazy: decode images on access instead of now (listing is then instant; a corrupt
            image becomes a sample without a face, counted in ``missing``).
        size: side of the returned faces (FER-2013 images are already 48).

    Returns:
        A :class:`~bridge.data.corpus.Corpus` over the canonical seven emotions.
    """
    root = Path(root)
    split = normalise_split(split)
    if split == "val" and val_fraction <= 0:
        raise ValueError(
            "FER-2013 has no validation split: pass val_fraction (e.g. 0.1) to carve one from train, "
            "and the same val_fraction and seed when reading train"
        )
    folder = root / ("test" if split == "test" else "train")
    if not folder.is_dir():
        raise FileNotFoundError(f"FER-2013 split folder not found: {folder}")

    skipped: Counter = Counter()
    paths, labels = [], []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        label = map_label(NAME, class_dir.name)
        with os.scandir(class_dir) as entries:  # scandir: no stat call per file
            files = sorted(((e.name, e.is_file()) for e in entries), key=lambda f: natural_key(f[0]))
        for name, is_file in files:
            if name.startswith("."):
                continue
            if not is_file or os.path.splitext(name)[1].lower() not in IMAGE_SUFFIXES:
                skipped["not an image file"] += 1
                continue
            paths.append(os.path.join(class_dir, name))
            labels.append(label)

    if split != "test" and val_fraction > 0:
        in_val = carve_stratified(labels, val_fraction, seed)
        keep = np.flatnonzero(in_val if split == "val" else ~in_val)
        paths, labels = [paths[i] for i in keep], [labels[i] for i in keep]

    stubs, meta = [], []
    loader = CropLoader(size)
    for path, label in zip(paths, labels):
        face = None
        if not lazy:
            face = read_face_image(path, size)
            if face is None:
                skipped["unreadable image"] += 1
                continue
        class_name, file_name = path.rsplit(os.sep, 2)[-2:]
        sample_id = f"{NAME}/{folder.name}/{class_name}/{os.path.splitext(file_name)[0]}"
        stubs.append(Sample(id=sample_id, label=label, face=face, split=split))
        meta.append({"path": path})
    report_skips(NAME, split, skipped)

    corpus = Corpus(
        NAME, split, LABEL_NAMES, stubs, loader if lazy else None, meta, skipped,
        description="FER-2013 faces, 48x48 grayscale (Goodfellow et al. 2013)",
    )  # fmt: skip
    corpus.crops = loader
    return corpus


@dataclass
class CropLoader:
    """Reads an item's face-crop image (``info["path"]``): as ``(1, size, size)`` grey, or, once
    a model's decoder is attached (:meth:`use`), as that decoder makes the crop of an image that
    is already a face (:meth:`~bridge.media.decoder.MediaDecoder.whole`)."""

    size: int = 48
    decoder: MediaDecoder | None = None

    def use(self, decoder: MediaDecoder) -> None:
        self.decoder = decoder

    def __call__(self, stub: Sample, info: dict) -> tuple[Sample, list[str]]:
        face = read_face_image(info["path"], self.size)
        if face is None:
            return stub, ["face: unreadable image"]
        if self.decoder is not None:
            face = self.decoder.whole(face[0])[None]
        return replace(stub, face=face), []
