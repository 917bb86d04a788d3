"""Inputs for batch inference (``infer.py --batch``): a folder of media files or a manifest.

A folder: every media file under it (recursively; hidden files skipped) belongs to the item
named by its path without the suffix, so ``clip01.mp4``, ``clip01.wav`` and ``clip01.txt``
form one multimodal item ``clip01``. Images, videos and audio are recognised by suffix;
``.txt`` files are the item's text. Other files are ignored (and counted), as is the
``timeline.png`` an earlier ``--timeline-dir`` run wrote beside its ``timeline.csv``/``.json``.

A manifest: the CSV / JSON Lines format of :mod:`bridge.data.manifest` (columns ``id``,
``image``, ``video``, ``audio``, ``text``; paths relative to the manifest's folder), with
``label`` and ``split`` optional and ignored. Nothing is decoded here: a bad file becomes that
item's error when it is predicted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from bridge.data.manifest import MEDIA_COLUMNS, _read_rows, _resolve

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac"})
TEXT_SUFFIXES = frozenset({".txt"})
KINDS = {**{s: "image" for s in IMAGE_SUFFIXES}, **{s: "video" for s in VIDEO_SUFFIXES},
         **{s: "audio" for s in AUDIO_SUFFIXES}, **{s: "text" for s in TEXT_SUFFIXES}}
MANIFEST_SUFFIXES = (".csv", ".jsonl", ".json")


@dataclass
class Item:
    """One input to predict from.

    Args:
        id: the file stem (relative to the folder) or the manifest's ``id``.
        files: ``image`` / ``video`` / ``audio`` / ``text`` -> path (a folder's ``.txt`` is a path).
        text: inline text (a manifest's ``text`` column).
        problem: why the item cannot be predicted, found while listing (e.g. two audio files).
    """

    id: str
    files: dict[str, Path] = field(default_factory=dict)
    text: str | None = None
    problem: str | None = None

    def read_text(self) -> str | None:
        """The item's text: inline, or its ``.txt`` file read as UTF-8.

        Raises:
            ValueError: the text file is not UTF-8.
            OSError: it cannot be read.
        """
        if self.text is not None or "text" not in self.files:
            return self.text
        path = self.files["text"]
        try:
            return path.read_text(encoding="utf-8-sig")  # a byte-order mark is not text
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not valid UTF-8 text") from None


def find_items(source: str | os.PathLike) -> tuple[list[Item], int]:
    """The items of a folder or a manifest file, sorted by id, and the count of ignored files.

    Raises:
        FileNotFoundError: ``source`` does not exist.
        ValueError: a file that is not a ``.csv`` / ``.jsonl`` manifest, a malformed manifest,
            duplicate ids, or no items at all.
        OSError: the folder or manifest cannot be read.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"--batch {source} does not exist")
    if source.is_dir():
        items, ignored = folder_items(source)
    elif source.suffix.lower() in MANIFEST_SUFFIXES:
        items, ignored = manifest_items(source), 0
    else:
        raise ValueError(f"--batch {source}: expected a folder or a .csv/.jsonl manifest")
    if not items:
        raise ValueError(f"--batch {source}: no media or text files found" if source.is_dir()
                         else f"--batch {source}: the manifest lists no items")
    return items, ignored


def folder_items(folder: Path) -> tuple[list[Item], int]:
    """Media files under ``folder`` grouped by their path without suffix, and the ignored count."""
    items: dict[str, Item] = {}
    ignored = 0
    for path in sorted(folder.rglob("*")):  # raises PermissionError on an unreadable folder
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        kind = KINDS.get(path.suffix.lower())
        if kind is None or _timeline_output(path):
            ignored += 1
            continue
        item_id = rel.with_suffix("").as_posix()
        item = items.setdefault(item_id, Item(item_id))
        if kind in item.files:
            item.problem = f"two {kind} files: {item.files[kind].name} and {path.name}"
        else:
            item.files[kind] = path
    for item in items.values():
        if item.problem is None and "image" in item.files and "video" in item.files:
            item.problem = f"both an image and a video: {item.files['image'].name} and {item.files['video'].name}"
    return [items[k] for k in sorted(items)], ignored


def _timeline_output(path: Path) -> bool:
    """A ``timeline.png`` that an earlier ``infer.py --timeline-dir`` wrote (beside its CSV or JSON): not an input."""
    return path.name == "timeline.png" and any((path.parent / n).is_file() for n in ("timeline.csv", "timeline.json"))


def manifest_items(path: Path) -> list[Item]:
    """The rows of a manifest as items (every row; ``label`` and ``split`` are not needed)."""
    try:
        rows = _read_rows(path, required=None)
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 manifest") from None
    items, seen = [], {}
    for n, row in rows:
        item_id = str(row.get("id") or "").strip() or f"row{n}"
        if item_id in seen:
            raise ValueError(f"{path} row {n}: id {item_id!r} already used on row {seen[item_id]}")
        seen[item_id] = n
        files = {c: _resolve(path.parent, str(row[c]).strip()) for c in MEDIA_COLUMNS if str(row.get(c) or "").strip()}
        text = row.get("text")
        text = str(text) if text is not None and str(text).strip() else None
        item = Item(item_id, files, text)
        if not files and text is None:
            item.problem = "the row names no image, video, audio or text"
        elif "image" in files and "video" in files:
            item.problem = "the row names both an image and a video"
        items.append(item)
    return items
