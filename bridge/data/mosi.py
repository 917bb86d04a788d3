"""CMU-MOSI utterance features (Zadeh et al., IEEE Intelligent Systems 2016; features from
Poria et al., "Context-dependent sentiment analysis in user-generated videos", ACL 2017).

The one corpus here whose three modalities are recorded together, utterance by utterance.
Files (no header rows, CRLF line ends, every field quoted):

- ``audio/audio_{split}0.csv``: 73 openSMILE features, then the label;
- ``video/video_{split}0.csv``: 100 3D-CNN features, then the label;
- ``text/text_{split}0.csv``: 100 text-CNN features, then the label;
- ``text_{split}.csv``: a row index into ``transcripts.csv``, then the same 100 text features;
- ``transcripts.csv``: ``utterance_id, transcript, video_number, label``.

The feature files are row-aligned with each other and, through the index column of
``text_{split}.csv``, with the transcripts. :func:`read_mosi` checks this before using it:
the row counts match, the labels of the three feature files agree row by row, the
transcript's label agrees with them, and the text features of ``text_{split}.csv`` equal
those of ``text/text_{split}0.csv``; anything else raises :class:`MosiAlignmentError`.

Splits are speaker-independent: 1,447 train utterances from videos 1-62, 752 test from
videos 63-93 (one speaker per video). A validation split is carved from train by whole
videos (``val_fraction``, ``seed``). Labels are native binary sentiment: 0 negative,
1 positive. Each sample carries ``features`` ``{audio: (1, 73), face: (1, 100),
text: (1, 100)}`` float32, the transcript as ``text`` and the video number as ``group``.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path

import numpy as np

from bridge.data.corpus import Corpus, carve_groups, normalise_split, report_skips
from bridge.data.labels import label_names
from bridge.data.sample import Sample
from bridge.modality import Modality

NAME = "mosi"
FEATURE_FILES = {
    Modality.AUDIO: "audio/audio_{split}0.csv",
    Modality.FACE: "video/video_{split}0.csv",
    Modality.TEXT: "text/text_{split}0.csv",
}


class MosiAlignmentError(ValueError):
    """The MOSI feature files and transcripts do not line up row by row."""


def read_mosi(root: str | os.PathLike, split: str = "train", *, val_fraction: float = 0.0, seed: int = 0) -> Corpus:
    """Read one split of the CMU-MOSI features, after checking their alignment.

    Args:
        root: the corpus folder.
        split: ``"train"``, ``"val"`` (carved from train by video) or ``"test"``.
        val_fraction: fraction of train utterances, in whole videos, held out as ``"val"``.
        seed: chooses the held-out videos; pass the same ``val_fraction`` and ``seed`` for train.

    Raises:
        MosiAlignmentError: when the files disagree (see the module docstring).
    """
    root = Path(root)
    split = normalise_split(split)
    if split == "val" and val_fraction <= 0:
        raise ValueError(
            "CMU-MOSI has no validation split: pass val_fraction (e.g. 0.15) to hold whole videos out of "
            "train, and the same val_fraction and seed when reading train"
        )
    file_split = "test" if split == "test" else "train"
    features, labels = {}, None
    for modality, pattern in FEATURE_FILES.items():
        path = root / pattern.format(split=file_split)
        table = _numeric_table(path)
        features[modality], file_labels = table[:, :-1].astype(np.float32), table[:, -1]
        if labels is None:
            labels, first = file_labels, path
        else:
            _check_same(first, labels, path, file_labels)
    index_path = root / f"text_{file_split}.csv"
    index_table = _numeric_table(index_path)
    if len(index_table) != len(labels):
        raise MosiAlignmentError(f"{index_path}: {len(index_table)} rows, but {first} has {len(labels)}")
    text_features = features[Modality.TEXT]
    if index_table.shape[1] - 1 != text_features.shape[1] or not np.allclose(
        index_table[:, 1:], text_features, atol=1e-5
    ):
        text_path = root / FEATURE_FILES[Modality.TEXT].format(split=file_split)
        raise MosiAlignmentError(f"{index_path}: text features differ from {text_path}")
    transcripts = _read_transcripts(root / "transcripts.csv")
    rows = index_table[:, 0].astype(np.int64)
    if rows.min() < 0 or rows.max() >= len(transcripts):
        raise MosiAlignmentError(f"{index_path}: row index out of range of transcripts.csv ({len(transcripts)} rows)")
    for i, row in enumerate(rows):
        if transcripts[row][3] != labels[i]:
            raise MosiAlignmentError(
                f"{index_path} row {i + 1} -> transcripts.csv row {row + 1} ({transcripts[row][0]}): "
                f"transcript label {transcripts[row][3]:g} != feature label {labels[i]:g}"
            )
    if not np.isin(labels, (0.0, 1.0)).all():
        raise MosiAlignmentError(f"{first}: labels other than 0 and 1: {sorted(set(labels.tolist()) - {0.0, 1.0})}")

    skipped: Counter = Counter()
    keep = np.ones(len(labels), dtype=bool)
    finite = np.all([np.isfinite(f).all(axis=1) for f in features.values()], axis=0)
    skipped["non-finite features"] += int((~finite).sum())
    keep &= finite
    videos = [transcripts[row][2] for row in rows]
    if split != "test" and val_fraction > 0:
        val_videos = carve_groups(videos, val_fraction, seed)
        in_val = np.array([v in val_videos for v in videos])
        keep &= in_val if split == "val" else ~in_val

    stubs, meta = [], []
    for i in np.flatnonzero(keep):
        utterance_id, transcript, video, _ = transcripts[rows[i]]
        stubs.append(
            Sample(
                id=f"{NAME}/{utterance_id}",
                label=int(labels[i]),
                text=transcript,
                features={m: f[i][None] for m, f in features.items()},  # (1, f) each
                group=f"video{video}",
                split=split,
            )
        )
        meta.append({"utterance_id": utterance_id, "video_number": int(video), "transcript_row": int(rows[i]),
                     "video_id": utterance_id.rsplit("_", 1)[0]})  # fmt: skip
    skipped = +skipped
    report_skips(NAME, split, skipped)
    return Corpus(
        NAME, split, label_names(NAME), stubs, None, meta, skipped,
        description="CMU-MOSI aligned utterance features (audio 73-d, video 100-d, text 100-d) and transcripts",
    )  # fmt: skip


def _numeric_table(path: Path) -> np.ndarray:
    """A CSV of numbers (quoted or not) as float64 ``(rows, cols)``; a header row is skipped."""
    if not path.is_file():
        raise FileNotFoundError(f"CMU-MOSI file not found: {path}")
    with path.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r]
    if rows and not _is_number(rows[0][0]):
        rows = rows[1:]
    widths = Counter(len(r) for r in rows)
    if len(widths) != 1:
        raise MosiAlignmentError(f"{path}: rows of different lengths {dict(widths)}")
    try:
        return np.array(rows, dtype=np.float64)
    except ValueError as e:
        raise MosiAlignmentError(f"{path}: non-numeric value ({e})") from None


def _read_transcripts(path: Path) -> list[tuple[str, str, str, float]]:
    if not path.is_file():
        raise FileNotFoundError(f"CMU-MOSI file not found: {path}")
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        rows = [r for r in csv.reader(f) if r]
    if rows and not _is_number(rows[0][-1]):
        rows = rows[1:]  # a header
    out = []
    for n, row in enumerate(rows, start=1):
        if len(row) != 4 or not _is_number(row[3]):
            raise MosiAlignmentError(f"{path} row {n}: expected utterance_id, transcript, video_number, label")
        out.append((row[0].strip(), " ".join(row[1].split()), row[2].strip(), float(row[3])))
    return out


def _check_same(first: Path, labels: np.ndarray, path: Path, other: np.ndarray) -> None:
    if len(other) != len(labels):
        raise MosiAlignmentError(f"{path}: {len(other)} rows, but {first} has {len(labels)}")
    differ = np.flatnonzero(other != labels)
    if len(differ):
        i = differ[0]
        raise MosiAlignmentError(
            f"{path} row {i + 1}: label {other[i]:g} != {labels[i]:g} in {first} ({len(differ)} rows disagree)"
        )


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
