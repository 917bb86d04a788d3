"""MELD, the Multimodal EmotionLines Dataset (Poria et al., ACL 2019): utterances from the
TV series *Friends* with emotion and sentiment labels.

The given ``{train,dev,test}_sent_emo.csv`` files are the splits (dev is read as ``"val"``);
the standard metric is weighted F1 on test. Each row becomes a sample with the utterance
as ``text``, the emotion mapped to the canonical seven (joy -> happy, anger -> angry,
sadness -> sad; see :mod:`bridge.data.labels`) or, with ``target="sentiment"``, the
sentiment, and the speaker as ``group``. Dialogue and utterance ids, season, episode and
start/end times (seconds into the episode) are in ``corpus.meta``.

The CSVs are UTF-8 with typographic quotes. The original release also carries mojibake
(Windows-1252 bytes such as ``\\x92`` for an apostrophe, or UTF-8 read as Windows-1252 such
as ``â€™``); :func:`fix_mojibake` repairs both, and a file that is not UTF-8 is read as
Windows-1252.

With ``clip_dir`` (the full release's video clips, ``dia{D}_utt{U}.mp4``) the corpus is lazy:
each sample also gets face crops and the clip's sound track on access. A missing clip leaves
face and audio out for that sample, counted in ``corpus.missing``.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from bridge.data.corpus import Corpus, MediaLoader, normalise_split, report_skips
from bridge.data.labels import LabelError, label_names, map_label
from bridge.data.sample import Sample
from bridge.media.faces import FaceDetector

NAME = "meld"
SPLIT_FILES = {"train": "train_sent_emo.csv", "val": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}
# Where the full release keeps each split's clips, under a clip folder.
CLIP_SUBDIRS = {
    "train": ("train_splits", "train"),
    "val": ("dev_splits_complete", "dev_splits", "dev"),
    "test": ("output_repeated_splits_test", "test_splits", "test"),
}
TARGETS = {"emotion": ("Emotion", "meld"), "sentiment": ("Sentiment", "meld-sentiment")}
_C1 = re.compile("[\x80-\x9f]")
_UTF8_AS_CP1252 = re.compile("[\u00c2-\u00f4][\u0080-\u00bf\u0152-\u2122]")


def fix_mojibake(text: str) -> str:
    """Repair MELD's two kinds of mojibake and trim the ends.

    - UTF-8 decoded as Windows-1252 (``"itâ€™s"`` -> ``"it’s"``);
    - Windows-1252 bytes decoded as Latin-1, left as C1 control characters
      (``"It\\x92s"`` -> ``"It’s"``, ``"\\x85"`` -> ``"…"``).
    """
    if _UTF8_AS_CP1252.search(text):
        try:
            text = text.encode("cp1252").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass  # not mojibake after all
    if _C1.search(text):
        text = _C1.sub(lambda m: bytes([ord(m.group())]).decode("cp1252", errors="ignore"), text)
    return text.strip()


def parse_time(stamp: str) -> float | None:
    """``"00:16:16,059"`` -> 976.059 seconds (None when unparsable)."""
    match = re.fullmatch(r"\s*(\d+):(\d{1,2}):(\d{1,2})[,.](\d{1,3})\s*", stamp or "")
    if not match:
        return None
    h, m, s, ms = match.groups()
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000


def read_meld(
    root: str | os.PathLike,
    split: str = "train",
    *,
    target: Literal["emotion", "sentiment"] = "emotion",
    clip_dir: str | os.PathLike | None = None,
    sample_rate: int = 16_000,
    face_frames: int = 8,
    face_size: int = 48,
    grayscale: bool = True,
    detector: FaceDetector | None = None,
) -> Corpus:
    """Read one split of MELD.

    Args:
        root: the corpus folder holding the three CSVs.
        split: ``"train"``, ``"val"`` (``"dev"``) or ``"test"``.
        target: ``"emotion"`` (canonical seven) or ``"sentiment"`` (negative, neutral, positive).
        clip_dir: folder of ``dia{D}_utt{U}.mp4`` clips for this split (or the release's
            root holding ``train_splits/``, ``dev_splits_complete/``,
            ``output_repeated_splits_test/``); None for text only.
        sample_rate, face_frames, face_size, grayscale, detector: how clips are decoded.
    """
    root = Path(root)
    split = normalise_split(split)
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    column, space = TARGETS[target]
    path = root / SPLIT_FILES[split]
    if not path.is_file():
        raise FileNotFoundError(f"MELD {split} file not found: {path}")
    clips = _index_clips(Path(clip_dir), split) if clip_dir is not None else None

    skipped: Counter = Counter()
    missing: Counter = Counter()
    stubs, meta = [], []
    seen: set[str] = set()
    for line, row in enumerate(_read_rows(path), start=2):
        text = fix_mojibake(row.get("Utterance") or "")
        dialogue, utterance = (row.get("Dialogue_ID") or "").strip(), (row.get("Utterance_ID") or "").strip()
        if not dialogue.isdigit() or not utterance.isdigit():
            skipped["bad dialogue or utterance id"] += 1
            continue
        if not text:
            skipped["empty utterance"] += 1
            continue
        try:
            label = map_label(space, row.get(column) or "")
        except LabelError:
            skipped[f"unknown {target} label"] += 1
            continue
        clip_name = f"dia{int(dialogue)}_utt{int(utterance)}"
        if clip_name in seen:
            skipped["duplicate utterance"] += 1
            continue
        seen.add(clip_name)
        info: dict[str, Any] = {
            "line": line, "dialogue_id": int(dialogue), "utterance_id": int(utterance),
            "season": row.get("Season"), "episode": row.get("Episode"),
            "start": parse_time(row.get("StartTime", "")), "end": parse_time(row.get("EndTime", "")),
            "emotion": (row.get("Emotion") or "").strip().lower(),
            "sentiment": (row.get("Sentiment") or "").strip().lower(),
        }  # fmt: skip
        if clips is not None:
            clip = clips.get(clip_name)
            info.update(video_path=clip, audio_path=clip, audio_in_video=True)
            if clip is None:
                missing["clip not found (face and audio missing)"] += 1
        speaker = fix_mojibake(row.get("Speaker") or "") or None
        stubs.append(Sample(id=f"{NAME}/{split}/{clip_name}", label=label, text=text, sample_rate=sample_rate,
                            group=speaker, split=split))  # fmt: skip
        meta.append(info)
    report_skips(NAME, split, skipped)
    loader = None
    if clips is not None:
        loader = MediaLoader(sample_rate, face_frames, face_size, grayscale, detector=detector)
    return Corpus(
        NAME, split, label_names(space), stubs, loader, meta, skipped, missing,
        description="MELD utterances from Friends (Poria et al. 2019), " + ("text and clips" if clips else "text"),
    )  # fmt: skip


def _read_rows(path: Path) -> list[dict[str, str]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _index_clips(clip_dir: Path, split: str) -> dict[str, str]:
    """``{"dia0_utt0": path}`` for the clips of ``split`` under ``clip_dir``."""
    if not clip_dir.is_dir():
        raise FileNotFoundError(f"MELD clip folder not found: {clip_dir}")
    folder = next((clip_dir / sub for sub in CLIP_SUBDIRS[split] if (clip_dir / sub).is_dir()), clip_dir)
    clips = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in (".mp4", ".mkv", ".avi", ".mov", ".webm"):
            continue
        if re.fullmatch(r"dia\d+_utt\d+", path.stem) and path.stat().st_size > 0:
            clips.setdefault(path.stem, str(path))
    return clips
