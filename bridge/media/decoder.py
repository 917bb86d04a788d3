"""One decoder for every path from media to a :class:`~bridge.data.sample.Sample`: the corpus
readers (:class:`~bridge.data.corpus.MediaLoader`, and so the cache), the predictor, the
timeline and live mode all call it, and it is built from the model's config, so training and
inference see the same face size, colour, margin, alignment, frame sampling and sample rate by
construction (open_clip's ``create_model_and_transforms``: the transform comes with the model).

Faces: the detector (BlazeFace by default, :mod:`bridge.media.detectors`) finds every face;
the one used is the largest, or the ``face_index``-th largest; in a video a
:class:`FaceTracker` keeps following that person from frame to frame; the crop is
:func:`~bridge.media.align.aligned_crop` (eyes level, FER-2013 geometry).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from bridge.media.align import FER_GEOMETRY, aligned_crop, realign_crop
from bridge.media.audio import DEFAULT_MAX_SECONDS, NO_AUDIO_STREAM, audio_from_video, load_audio
from bridge.media.errors import MediaError
from bridge.media.detectors import DEFAULT_DETECTOR, Face, MirrorEyes, OnetEyes, create_detector, detect_faces
from bridge.media.faces import DEFAULT_MAX_PIXELS, Box, to_gray


@dataclass(frozen=True)
class FaceDecoding:
    """How faces are decoded; every field but the detector's choice comes from a ``FaceConfig``.

    Args:
        size: side of the square crop in pixels.
        grayscale: grey crops ``(s, s)``, else RGB ``(s, s, 3)``.
        margin: border around a box for detectors without eye points (Haar), as a fraction of its side.
        num_frames: frames sampled evenly from a video clip (twice what the model keeps, at least 8).
        detector: ``blazeface``, ``blazeface-short``, ``mtcnn`` or ``haar``.
        align: rotate so the eyes are level (detectors with eye points).
        face_index: which face when there are several: 0 the largest, 1 the next, ...
        detect: find faces; False when the images are already face crops (FER-2013).
        realign: images that are already face crops are found again by this detector and
            re-cropped as faces found in frames are (None: resized as given).
        crop_scale: side of an eyes-level crop as a fraction of FER-2013's median framing.
        mirror_eyes: eye points averaged with those found in the mirror image
            (:class:`~bridge.media.detectors.MirrorEyes`), for found faces and realigned crops alike.
        refine_eyes: O-Net passes that place the eye points again
            (:class:`~bridge.media.detectors.OnetEyes`; 0: none), for found faces and realigned crops alike.
    """

    size: int = 48
    grayscale: bool = True
    margin: float = 0.2
    num_frames: int = 8
    detector: str = DEFAULT_DETECTOR
    align: bool = True
    face_index: int = 0
    detect: bool = True
    realign: str | None = None
    crop_scale: float = 1.0
    mirror_eyes: bool = False
    refine_eyes: int = 0

    def __post_init__(self) -> None:
        if not self.crop_scale > 0:
            raise ValueError(f"face.crop_scale must be > 0, got {self.crop_scale:g}")
        if self.refine_eyes < 0:
            raise ValueError(f"face.refine_eyes must be >= 0, got {self.refine_eyes}")

    @classmethod
    def from_config(cls, face_config, **overrides) -> "FaceDecoding":
        """The decoding a :class:`~bridge.config.FaceConfig` implies (``overrides``: the
        detector's choice, ``face_index``, ``detect``)."""
        return cls(size=face_config.img_size or 224, grayscale=face_config.in_chans == 1, margin=face_config.margin,
                   num_frames=face_config.sampled_frames, realign=face_config.realign,
                   crop_scale=face_config.crop_scale, mirror_eyes=face_config.mirror_eyes,
                   refine_eyes=face_config.refine_eyes, **overrides)


def _shift(a: Box, last: Box) -> float:
    """How far ``a``'s centre is from ``last``'s, in ``last``'s sides."""
    dx = (a.x + a.w / 2) - (last.x + last.w / 2)
    dy = (a.y + a.h / 2) - (last.y + last.h / 2)
    return float(np.hypot(dx, dy)) / max(last.w, last.h, 1)


@dataclass
class FaceTracker:
    """Follows one person through a video: picks the ``face_index``-th largest face when it has
    none, then in each frame the detection that overlaps the last box most or, when none overlaps
    it enough (a quick move), the nearest one within ``max_shift`` box sides. A frame where that
    person is not found has no face (even if someone else is there); after ``hold`` such frames
    in a row the tracker starts again on the ``face_index``-th largest face. With ``every`` > 1 the detector runs on every
    ``every``-th frame only and the box is held between (for detectors too slow for every frame).

    Args:
        detector: any detector of :mod:`bridge.media.detectors`.
        face_index: which face to start with (0: the largest).
        every: run the detector every this many frames.
        hold: frames a lost face is waited for before the tracker lets go.
        min_iou: overlap with the last box that counts as the same person.
        max_shift: else a face whose centre moved at most this many of the last box's sides.
    """

    detector: object
    face_index: int = 0
    every: int = 1
    hold: int = 5
    min_iou: float = 0.2
    max_shift: float = 1.0
    last: Face | None = None
    count: int = 0  # frames seen
    faces_seen: int = 0  # most faces found in one frame
    _missed: int = field(default=0, repr=False)

    def reset(self) -> None:
        self.last, self.count, self._missed = None, 0, 0

    def update(self, frame: np.ndarray) -> Face | None:
        """The tracked face in the next frame, or None."""
        detect = self.count % self.every == 0
        self.count += 1
        if not detect:
            return self.last
        faces = detect_faces(self.detector, frame)
        self.faces_seen = max(self.faces_seen, len(faces))
        chosen = None
        if self.last is not None and faces:
            best = max(faces, key=lambda f: f.box.iou(self.last.box))
            if best.box.iou(self.last.box) >= self.min_iou:
                chosen = best
            else:
                near = min(faces, key=lambda f: _shift(f.box, self.last.box))
                chosen = near if _shift(near.box, self.last.box) <= self.max_shift else None
        if chosen is None and self.last is None and len(faces) > self.face_index:
            chosen = faces[self.face_index]
        if chosen is None and self.last is not None:
            self._missed += 1
            if self._missed > self.hold:
                self.last, self._missed = None, 0
                if len(faces) > self.face_index:  # the person left: start again on who is there
                    chosen = faces[self.face_index]
            else:
                return None
        if chosen is not None:
            self.last, self._missed = chosen, 0
        return chosen


class MediaDecoder:
    """Files and frames -> the arrays a :class:`~bridge.data.sample.Sample` holds.

    Args:
        faces: face decoding (None: a model without a raw face modality).
        sample_rate: audio rate in Hz (the model's).
        max_pixels: larger images are refused.
    """

    def __init__(self, faces: FaceDecoding | None = None, sample_rate: int = 16_000,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS):
        self.faces = faces or FaceDecoding()
        self.sample_rate = sample_rate
        self.max_pixels = max_pixels
        # the crop geometry of each network's eye points, where faces are found: a setting of the
        # decoded crops like any other (so a new calibration rebuilds cached crops)
        self.alignment = {name: g.scaled(self.faces.crop_scale) for name, g in FER_GEOMETRY.items()} \
            if self.faces.detect else None
        self._detector = None
        self._realigner = None

    @classmethod
    def from_config(cls, config, detector: str | None = None, face_index: int = 0, detect_faces: bool = True,
                    max_pixels: int | None = DEFAULT_MAX_PIXELS) -> "MediaDecoder":
        """The decoder of a :class:`~bridge.config.BridgeConfig` (the model's own preprocessing).
        ``detector`` None: the detector that realigned the model's training crops (``face.realign``;
        its eye points are what that model's crops were placed by), else the default."""
        from bridge.config import AudioConfig, FaceConfig

        face = config.face if isinstance(getattr(config, "face", None), FaceConfig) else None
        detector = detector or (face.realign if face is not None else None) or DEFAULT_DETECTOR
        audio = config.audio if isinstance(getattr(config, "audio", None), AudioConfig) else None
        faces = FaceDecoding.from_config(face, detector=detector, face_index=face_index, detect=detect_faces) \
            if face is not None else FaceDecoding(detector=detector, face_index=face_index, detect=detect_faces)
        return cls(faces, audio.sample_rate if audio is not None else 16_000, max_pixels)

    def __getstate__(self) -> dict:  # detectors hold OpenCV / torch state: rebuilt in each worker
        return {**self.__dict__, "_detector": None, "_realigner": None}

    def _create(self, name: str):
        """The detector ``name``, its eye points placed again by O-Net and mirror-averaged where the
        decoding says so."""
        detector = create_detector(name)
        if self.faces.refine_eyes and name != "haar":  # Haar has no eye points to refine
            detector = OnetEyes(detector, self.faces.refine_eyes)
        return MirrorEyes(detector) if self.faces.mirror_eyes else detector

    @property
    def detector(self):
        if self._detector is None:
            self._detector = self._create(self.faces.detector)
        return self._detector

    @detector.setter
    def detector(self, value) -> None:
        self._detector = value

    def tracker(self, every: int = 1) -> FaceTracker:
        return FaceTracker(self.detector, self.faces.face_index, every)

    # --- faces ---------------------------------------------------------------------------
    def crop(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The model's crop of ``face`` in ``image``: ``(s, s)`` or ``(s, s, 3)`` uint8."""
        f = self.faces
        geometry = self.alignment.get(face.landmarks) if self.alignment and face.landmarks else None
        return aligned_crop(image, face, f.size, f.grayscale, geometry, f.margin, level=f.align)

    def whole(self, image: np.ndarray) -> np.ndarray:
        """An image that is already a face crop as the model's crop: found again and re-cropped
        when the decoding realigns crops (as given where no face is found), else resized."""
        f = self.faces
        image = np.asarray(image)
        if f.realign:
            if self._realigner is None:
                self._realigner = self._create(f.realign)
            crop = realign_crop(image, self._realigner, f.size, f.grayscale, f.crop_scale)
            if crop is not None:
                return crop
        crop = to_gray(image) if f.grayscale else _rgb(image)
        if crop.shape[:2] != (f.size, f.size):
            interp = cv2.INTER_AREA if crop.shape[0] > f.size else cv2.INTER_LINEAR
            crop = cv2.resize(crop, (f.size, f.size), interpolation=interp)
        return crop

    def image_face(self, image: str | os.PathLike | np.ndarray) -> tuple[np.ndarray | None, int]:
        """``(1, s, s[, 3])`` crop of the chosen face of an image (None when there is none),
        and the number of faces found (1 without detection)."""
        from bridge.media.faces import load_image

        img = load_image(image, self.max_pixels) if isinstance(image, (str, os.PathLike)) else np.asarray(image)
        if not self.faces.detect:
            return self.whole(img)[None], 1
        faces = detect_faces(self.detector, img)
        if len(faces) <= self.faces.face_index:
            return None, len(faces)
        return self.crop(img, faces[self.faces.face_index])[None], len(faces)

    def frames_faces(self, frames: np.ndarray | Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, list]:
        """Track and crop one person's face through frames.

        Returns:
            crops ``(t', s, s[, 3])`` of the frames with the face; found ``(t,)`` bool; the
            :class:`Face` per frame (None where none).
        """
        f = self.faces
        if not f.detect:
            crops = [self.whole(frame) for frame in frames]
            shape = (0, f.size, f.size) if f.grayscale else (0, f.size, f.size, 3)
            return (np.stack(crops) if crops else np.zeros(shape, np.uint8)), np.ones(len(crops), bool), \
                [None] * len(crops)
        tracker = self.tracker()
        crops, found, faces = [], [], []
        for frame in frames:
            face = tracker.update(frame)
            faces.append(face)
            found.append(face is not None)
            if face is not None:
                crops.append(self.crop(frame, face))
        shape = (0, f.size, f.size) if f.grayscale else (0, f.size, f.size, 3)
        return (np.stack(crops) if crops else np.zeros(shape, np.uint8)), np.asarray(found, bool), faces

    def video_faces(self, path: str | os.PathLike, start: float = 0.0, end: float | None = None,
                    num_frames: int | None = None, fps: float | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Decode -> detect -> track -> crop over ``num_frames`` (default: the decoding's) frames
        sampled evenly from ``[start, end)``, or at ``fps``.

        Returns:
            crops ``(t', s, s[, 3])``, the timestamps ``(t,)`` of all sampled frames, found ``(t,)``.
        """
        from bridge.media.video import read_video_frames

        if fps is None and num_frames is None:
            num_frames = self.faces.num_frames
        frames, times = read_video_frames(path, num_frames=num_frames, fps=fps, start=start, end=end)
        crops, found, _ = self.frames_faces(frames)
        return crops, times, found

    # --- sound -----------------------------------------------------------------------------
    def audio(self, path: str | os.PathLike, in_video: bool = False,
              max_seconds: float | None = DEFAULT_MAX_SECONDS) -> np.ndarray:
        """Mono float32 at the model's rate from an audio file or a video's sound track.

        Raises:
            MediaError: as :func:`~bridge.media.audio.load_audio` (longer than ``max_seconds``;
                None: no limit), and a problem of ``NO_AUDIO_STREAM`` for a silent video.
        """
        read = audio_from_video if in_video else load_audio
        return read(Path(path), self.sample_rate, max_seconds)

    def sound_track(self, video: str | os.PathLike, max_seconds: float | None = DEFAULT_MAX_SECONDS) -> np.ndarray | None:
        """A video's whole sound track (as :meth:`audio`), or None when the video has none."""
        try:
            return self.audio(video, in_video=True, max_seconds=max_seconds)
        except MediaError as e:
            if e.problem != NO_AUDIO_STREAM:
                raise
            return None


def _rgb(image: np.ndarray) -> np.ndarray:
    from bridge.media.detectors import to_rgb

    return to_rgb(image)
