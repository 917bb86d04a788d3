"""RAVDESS, the Ryerson Audio-Visual Database of Emotional Speech and Song (Livingstone &
Russo, PLoS ONE 2018; CC BY-NC-SA 4.0).

Every file name carries seven fields, ``MM-VV-EE-II-SS-RR-AA.ext``:

- ``MM`` modality: 01 audio-video, 02 video-only, 03 audio-only;
- ``VV`` vocal channel: 01 speech, 02 song;
- ``EE`` emotion: 01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust,
  08 surprised;
- ``II`` intensity: 01 normal, 02 strong (neutral has normal only);
- ``SS`` statement: 01 "Kids are talking by the door", 02 "Dogs are sitting by the door";
- ``RR`` repetition: 01, 02;
- ``AA`` actor: 01-24, odd male, even female.

The files of one recording (its audio-only WAV/FLAC, its audio-video and video-only MP4)
become one sample: audio from the audio-only file (else the audio-video file's sound
track), face crops from a video file (decoded, detected and cropped with
:mod:`bridge.media`). The corpus is **lazy**: listing only parses file names; ``corpus[i]``
decodes. The statement text carries no emotion and is left out unless ``include_text``.

Splits are speaker-independent, never by clip: actors 1-20 train, 21-24 test by default;
``val_actors`` (e.g. ``(19, 20)``) moves actors from train to a validation split. The group
of a sample is its actor.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from bridge.data.corpus import Corpus, MediaLoader, normalise_split, report_skips
from bridge.data.labels import RAVDESS_NATIVE8, label_names, map_label
from bridge.data.sample import Sample
from bridge.media import MediaError, audio_info, video_info
from bridge.media.faces import FaceDetector
from bridge.modality import Modality, parse_modalities

NAME = "ravdess"
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".mp3", ".m4a"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm"})
MODALITY_CODES = {"01": "audio-video", "02": "video-only", "03": "audio-only"}
VOCAL_CHANNELS = {"01": "speech", "02": "song"}
INTENSITIES = {"01": "normal", "02": "strong"}
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
DEFAULT_TEST_ACTORS = (21, 22, 23, 24)
LABEL_SETS = {"canonical": "ravdess", "native8": "ravdess-native8"}
_NAME_RE = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")


@dataclass(frozen=True)
class RavdessName:
    """The fields of a RAVDESS file name."""

    modality: str  # "audio-video", "video-only" or "audio-only"
    vocal_channel: str  # "speech" or "song"
    emotion: str  # native name: neutral calm happy sad angry fearful disgust surprised
    intensity: str  # "normal" or "strong"
    statement: str  # the sentence spoken or sung
    repetition: int  # 1 or 2
    actor: int  # 1..24
    codes: tuple[str, ...]  # the seven two-digit fields as written

    @property
    def sex(self) -> str:
        return "male" if self.actor % 2 else "female"

    @property
    def recording(self) -> str:
        """The recording's name without the modality field: shared by its WAV and MP4 files."""
        return "-".join(self.codes[1:])


def parse_ravdess_name(name: str) -> RavdessName:
    """Parse ``"03-01-05-02-01-01-12.flac"`` (a path or stem is fine too).

    Raises:
        ValueError: when the name is not seven valid two-digit fields.
    """
    stem = Path(name).name.split(".")[0]
    match = _NAME_RE.match(stem)
    if not match:
        raise ValueError(f"not a RAVDESS file name (MM-VV-EE-II-SS-RR-AA): {name!r}")
    mm, vv, ee, ii, ss, rr, aa = codes = match.groups()
    valid = (
        mm in MODALITY_CODES and vv in VOCAL_CHANNELS and 1 <= int(ee) <= len(RAVDESS_NATIVE8)
        and ii in INTENSITIES and ss in STATEMENTS and rr in ("01", "02") and int(aa) >= 1
    )  # fmt: skip
    if not valid:
        raise ValueError(f"RAVDESS file name with a field out of range: {name!r}")
    return RavdessName(
        modality=MODALITY_CODES[mm], vocal_channel=VOCAL_CHANNELS[vv], emotion=RAVDESS_NATIVE8[int(ee) - 1],
        intensity=INTENSITIES[ii], statement=STATEMENTS[ss], repetition=int(rr), actor=int(aa), codes=codes,
    )  # fmt: skip


def read_ravdess(
    root: str | os.PathLike,
    split: str = "train",
    *,
    label_set: Literal["canonical", "native8"] = "canonical",
    calm: Literal["neutral", "drop"] = "neutral",
    vocal_channel: Literal["speech", "song", "all"] = "speech",
    modalities: str | Sequence[str] = ("face", "audio"),
    test_actors: Sequence[int] = DEFAULT_TEST_ACTORS,
    val_actors: Sequence[int] = (),
    sample_rate: int = 16_000,
    face_frames: int = 8,
    face_size: int = 48,
    grayscale: bool = True,
    detector: FaceDetector | None = None,
    include_text: bool = False,
    verify: bool = False,
) -> Corpus:
    """List one speaker-independent split of RAVDESS (lazy: media decoded on access).

    Args:
        root: the corpus folder (``Actor_XX/`` folders, or files anywhere below it).
        split: ``"train"``, ``"val"`` (needs ``val_actors``) or ``"test"``.
        label_set: ``"canonical"`` seven emotions or RAVDESS's ``"native8"``.
        calm: with the canonical set, fold calm into ``"neutral"`` or ``"drop"`` calm clips.
        vocal_channel: ``"speech"`` (the usual task), ``"song"`` or ``"all"``.
        modalities: which of face and audio to load when files for them exist.
        test_actors: actors of the test split.
        val_actors: actors moved from train to the validation split.
        sample_rate: audio rate in Hz.
        face_frames: frames sampled evenly from a video for face crops.
        face_size: side of the face crops.
        grayscale: gray face crops ``(t, s, s)``, else RGB ``(t, s, s, 3)``.
        detector: a face detector to use instead of the default (BlazeFace); the model's decoder
            replaces it when a model trains or evaluates on the corpus (attach_decoder).
        include_text: put the spoken statement in ``text`` (it carries no emotion).
        verify: read every file's header now and skip unreadable ones (slower listing);
            otherwise a bad file surfaces on access as a missing modality, counted.
    """
    root = Path(root)
    split = normalise_split(split)
    if label_set not in LABEL_SETS:
        raise ValueError(f"label_set must be one of {', '.join(LABEL_SETS)}, got {label_set!r}")
    if calm not in ("neutral", "drop"):
        raise ValueError(f"calm must be 'neutral' or 'drop', got {calm!r}")
    if vocal_channel not in ("speech", "song", "all"):
        raise ValueError(f"vocal_channel must be 'speech', 'song' or 'all', got {vocal_channel!r}")
    wanted = set(parse_modalities(modalities)) & {Modality.FACE, Modality.AUDIO}
    test_set, val_set = {int(a) for a in test_actors}, {int(a) for a in val_actors}
    if test_set & val_set:
        raise ValueError(f"actors {sorted(test_set & val_set)} are in both test_actors and val_actors")
    if split == "val" and not val_set:
        raise ValueError(
            "RAVDESS has no validation split: pass val_actors (e.g. (19, 20)) to hold actors out of train, "
            "and the same val_actors when reading train"
        )
    if not root.is_dir():
        raise FileNotFoundError(f"RAVDESS folder not found: {root}")
    space = LABEL_SETS[label_set]

    skipped: Counter = Counter()
    recordings: dict[str, dict[str, Any]] = {}
    for path in sorted(root.rglob("*")):
        if path.name.startswith(".") or not path.is_file():
            continue
        suffix = path.suffix.lower()
        if suffix not in AUDIO_SUFFIXES | VIDEO_SUFFIXES:
            skipped["not a media file"] += 1
            continue
        try:
            fields = parse_ravdess_name(path.name)
        except ValueError:
            skipped["bad file name"] += 1
            continue
        if (fields.modality == "audio-only") != (suffix in AUDIO_SUFFIXES):
            skipped["file type does not match the modality field"] += 1
            continue
        if vocal_channel != "all" and fields.vocal_channel != vocal_channel:
            continue  # another task, not a bad file
        if fields.actor in test_set:
            actor_split = "test"
        elif fields.actor in val_set:
            actor_split = "val"
        else:
            actor_split = "train"
        if actor_split != split:
            continue
        if label_set == "canonical" and calm == "drop" and fields.emotion == "calm":
            skipped["calm dropped"] += 1
            continue
        if path.stat().st_size == 0:
            skipped["zero-length file"] += 1
            continue
        if verify:
            try:
                audio_info(path) if suffix in AUDIO_SUFFIXES else video_info(path)
            except MediaError:
                skipped["unreadable file"] += 1
                continue
        record = recordings.setdefault(fields.recording, {"fields": fields})
        record.setdefault(fields.modality, str(path))

    stubs, meta = [], []
    for key in sorted(recordings, key=lambda k: (recordings[k]["fields"].actor, k)):
        record = recordings[key]
        fields: RavdessName = record["fields"]
        audio_path = record.get("audio-only") or record.get("audio-video")
        video_path = record.get("audio-video") or record.get("video-only")
        info = {
            **{k: v for k, v in asdict(fields).items() if k not in ("modality", "codes")},
            "sex": fields.sex,
            "audio_path": audio_path if Modality.AUDIO in wanted else None,
            "audio_in_video": Modality.AUDIO in wanted and "audio-only" not in record and "audio-video" in record,
            "video_path": video_path if Modality.FACE in wanted else None,
            "files": [record[m] for m in MODALITY_CODES.values() if m in record],
        }
        if info["audio_path"] is None and info["video_path"] is None:
            skipped["no file for the modalities asked"] += 1
            continue
        stubs.append(
            Sample(
                id=f"{NAME}/{key}",
                label=map_label(space, fields.emotion),
                sample_rate=sample_rate,
                text=fields.statement if include_text else None,
                group=f"actor{fields.actor:02d}",
                split=split,
            )
        )
        meta.append(info)
    report_skips(NAME, split, skipped)
    loader = MediaLoader(sample_rate, face_frames, face_size, grayscale, detector=detector)
    return Corpus(
        NAME, split, label_names(space), stubs, loader, meta, skipped,
        description="RAVDESS speech (Livingstone & Russo 2018), speaker-independent split by actor",
    )  # fmt: skip
