"""A user's own data as a manifest: a CSV or JSON Lines file listing examples.

Columns (CSV header or JSON keys, case-insensitive):

- ``label`` (required): a label name; by default the canonical seven emotions and their usual
  synonyms (``joy``, ``anger``, ...), or the names given as ``label_names``;
- ``split``: ``train``, ``val`` (``dev``, ``valid``) or ``test``; without the column only
  ``split="all"`` can be read;
- ``id``: unique; ``row<N>`` when absent;
- any of ``image``, ``video``, ``audio`` (paths relative to the manifest's folder, or
  absolute) and ``text``; a video gives face crops, and its sound track unless ``audio``
  is given; an image gives one face crop (``video`` wins when both are given);
- ``group`` or ``speaker``: for speaker-independent evaluation.

A row naming a file that does not exist is skipped and counted (``corpus.skipped``, one
warning), never a crash halfway; an unknown label is an error naming the row, since it means
the manifest and the label space disagree. Media are decoded on access (lazy).
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bridge.data.corpus import SPLIT_ALIASES, Corpus, MediaLoader, report_skips
from bridge.data.labels import LabelError, LabelSpace, label_space
from bridge.data.sample import Sample
from bridge.media.faces import DEFAULT_MAX_PIXELS, FaceDetector

NAME = "manifest"
MEDIA_COLUMNS = ("image", "video", "audio")
MANIFEST_NAMES = ("manifest.csv", "manifest.jsonl", "manifest.json")


def find_manifest(root: str | os.PathLike) -> Path:
    """``root`` if it is a file, else the ``manifest.{csv,jsonl,json}`` inside it."""
    root = Path(root)
    if root.is_file():
        return root
    for name in MANIFEST_NAMES:
        if (root / name).is_file():
            return root / name
    names = " or ".join(MANIFEST_NAMES)
    raise FileNotFoundError(f"no manifest at {root} (a .csv/.jsonl file, or a folder holding {names})")


def read_manifest(
    root: str | os.PathLike,
    split: str = "train",
    *,
    label_names: Sequence[str] | None = None,
    sample_rate: int = 16_000,
    face_frames: int = 8,
    face_size: int = 48,
    grayscale: bool = True,
    detect_faces: bool = True,
    detector: FaceDetector | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Corpus:
    """Read the rows of one split of a manifest.

    Args:
        root: the manifest file, or a folder holding ``manifest.csv`` / ``.jsonl`` / ``.json``.
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"`` (every row).
        label_names: the label space, in index order; None for the canonical seven emotions.
        sample_rate: audio rate in Hz.
        face_frames: frames sampled evenly from a video for face crops.
        face_size: side of face crops.
        grayscale: gray crops ``(t, s, s)``, else RGB ``(t, s, s, 3)``.
        detect_faces: crop the largest face from images (else the whole image, resized).
        detector: a face detector to use instead of the default (BlazeFace); the model's decoder
            replaces it when a model trains or evaluates on the corpus (attach_decoder).
        max_pixels: images with more pixels are refused (a missing face, counted).

    Raises:
        LabelError: a row's label is not in the label space (names the row).
        ValueError: duplicate ids, an unknown split value, or no split column.
    """
    path = find_manifest(root)
    base = path.parent
    wanted = SPLIT_ALIASES.get(str(split).strip().lower(), str(split).strip().lower())
    if wanted not in ("train", "val", "test", "all"):
        raise ValueError(f"unknown split {split!r} (choose from train, val, test, all)")
    space = _space(label_names)
    rows = _read_rows(path)

    skipped: Counter = Counter()
    stubs, meta, ids = [], [], {}
    for n, row in rows:
        where = f"{path} row {n}"
        sample_id = str(row.get("id") or "").strip() or f"row{n}"
        if sample_id in ids:
            raise ValueError(f"{where}: id {sample_id!r} already used on row {ids[sample_id]}")
        ids[sample_id] = n
        try:
            label = space.index(row.get("label", ""))
        except LabelError:
            raise LabelError(
                f"{where} (id {sample_id!r}): unknown label {row.get('label')!r} (known: {', '.join(space.names)})"
            ) from None
        row_split = _row_split(row, where, wanted)
        if wanted != "all" and row_split != wanted:
            continue
        files: dict[str, str] = {}
        for column in MEDIA_COLUMNS:
            value = str(row.get(column) or "").strip()
            if value:
                files[column] = str(_resolve(base, value))
        if any(not Path(f).is_file() or Path(f).stat().st_size == 0 for f in files.values()):
            skipped["missing or empty file"] += 1
            continue
        text = str(row.get("text") or "").strip() or None
        if not files and text is None:
            skipped["no modality"] += 1
            continue
        group = str(row.get("group") or row.get("speaker") or "").strip() or None
        stubs.append(Sample(id=sample_id, label=label, text=text, sample_rate=sample_rate, group=group,
                            split=row_split or wanted))  # fmt: skip
        info = {"row": n, **{f"{column}_path": f for column, f in files.items()}, "audio_in_video": False}
        if "audio" not in files and "video" in files:
            info.update(audio_path=files["video"], audio_in_video=True)  # the video's sound track
        meta.append(info)
    report_skips(f"{NAME} {path.name}", wanted, skipped)
    loader = MediaLoader(sample_rate, face_frames, face_size, grayscale, detect_faces, detector, max_pixels)
    return Corpus(NAME, wanted, space.names, stubs, loader, meta, skipped, description=f"manifest {path}")


def _space(names: Sequence[str] | None) -> LabelSpace:
    if names is None:
        return label_space("canonical")
    names = tuple(str(n).strip() for n in names)
    if len(set(n.lower() for n in names)) != len(names) or not all(names):
        raise ValueError(f"label_names must be distinct and non-empty, got {names}")
    return LabelSpace("manifest", names, {n.lower(): n for n in names})


def _read_rows(path: Path, required: str | None = "label") -> list[tuple[int, dict[str, Any]]]:
    """``(row number, {lower-case column: value})``; CSV rows count from 2 (after the header).

    ``required``: a CSV column that must exist (None: any header; batch inference needs no label).
    """
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as f:
            header = f.readline()
            f.seek(0)
            # Comma-separated; a header with semicolons (or tabs) and no comma, as spreadsheets in many
            # locales export, is read with that delimiter.
            delimiter = next((d for d in (";", "\t") if d in header and "," not in header), ",")
            reader = csv.DictReader(f, delimiter=delimiter)
            columns = {c.strip().lower() for c in reader.fieldnames or () if c}
            if not columns or (required is not None and required not in columns):
                raise ValueError(f"{path}: a manifest needs a{' ' + repr(required) if required else ''} column "
                                 f"(comma-, semicolon- or tab-separated), found {reader.fieldnames}")
            return [(n, {(k or "").strip().lower(): v for k, v in row.items()})
                    for n, row in enumerate(reader, start=2)]
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        items = list(enumerate(json.loads(text), start=1))
    else:
        items = []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    items.append((n, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path} line {n}: not JSON ({e.msg})") from None
    rows = []
    for n, item in items:
        if not isinstance(item, dict):
            raise ValueError(f"{path} row {n}: expected an object with id, label, split, ...")
        rows.append((n, {str(k).strip().lower(): v for k, v in item.items()}))
    return rows


def _row_split(row: dict[str, Any], where: str, wanted: str) -> str | None:
    if "split" not in row:
        if wanted != "all":
            raise ValueError(f"{where}: the manifest has no split column; read it with split='all' or add one")
        return None
    value = str(row.get("split") or "").strip().lower()
    name = SPLIT_ALIASES.get(value)
    if name is None:
        raise ValueError(f"{where}: unknown split {row.get('split')!r} (train, val or test)")
    return name


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path
