"""Finding and cropping faces: OpenCV's Viola-Jones Haar cascade (Viola & Jones, CVPR 2001),
the detector of the reference paper's face pipeline, and reading still images.

Crops are square boxes around the largest face, grown by a margin, kept inside the image,
and resized with ``cv2.INTER_AREA`` to the size the face encoder expects (48 for
FER-2013-style crops).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from bridge.media.errors import MediaError, MediaTooLarge, check_file

DEFAULT_CASCADE = "haarcascade_frontalface_default.xml"
DEFAULT_MAX_PIXELS = 50_000_000


class Box(NamedTuple):
    """A face box in pixels of the image it was found in."""

    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h

    def iou(self, other: "Box") -> float:
        """Intersection over union with ``other``."""
        x0, y0 = max(self.x, other.x), max(self.y, other.y)
        x1, y1 = min(self.x + self.w, other.x + other.w), min(self.y + self.h, other.y + other.h)
        inter = max(x1 - x0, 0) * max(y1 - y0, 0)
        return inter / max(self.area + other.area - inter, 1)


class FaceDetector:
    """Frontal-face detection with an OpenCV Haar cascade, created on first use.

    Args:
        scale_factor: image pyramid step; smaller finds more faces, slower.
        min_neighbors: overlapping detections a face needs; higher means fewer false faces.
        min_size: smallest face, as a fraction of the image's shorter side.
        cascade: a file name under ``cv2.data.haarcascades`` or a path to a cascade XML.
        max_side: images whose longer side exceeds this are searched at this size (faster);
            boxes are mapped back to the full image. None searches at full size.
        equalize: equalise the histogram first (helps in dim or flat light).
    """

    def __init__(
        self,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: float = 0.1,
        cascade: str | os.PathLike = DEFAULT_CASCADE,
        max_side: int | None = 640,
        equalize: bool = True,
    ):
        if scale_factor <= 1.0:
            raise ValueError(f"scale_factor must be > 1, got {scale_factor}")
        if not 0.0 <= min_size < 1.0:
            raise ValueError(f"min_size is a fraction of the image side in [0, 1), got {min_size}")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        self.cascade = str(cascade)
        self.max_side = max_side
        self.equalize = equalize
        self._classifier = None

    def __getstate__(self) -> dict:  # a cv2 classifier does not pickle: rebuilt on first use
        return {**self.__dict__, "_classifier": None}

    @property
    def classifier(self) -> cv2.CascadeClassifier:
        if self._classifier is None:
            path = Path(self.cascade)
            if not path.is_file():
                path = Path(cv2.data.haarcascades) / self.cascade
            classifier = cv2.CascadeClassifier(str(path))
            if classifier.empty():
                raise FileNotFoundError(f"cannot load Haar cascade {self.cascade!r} (looked at {path})")
            self._classifier = classifier
        return self._classifier

    def detect(self, image: np.ndarray) -> list[Box]:
        """Faces in a grayscale ``(h, w)`` or RGB ``(h, w, 3)`` image, largest first."""
        gray = to_gray(image)
        scale = 1.0
        if self.max_side is not None and max(gray.shape) > self.max_side:
            scale = self.max_side / max(gray.shape)
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if self.equalize:
            gray = cv2.equalizeHist(gray)
        side = max(int(self.min_size * min(gray.shape)), 1)
        found = self.classifier.detectMultiScale(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(side, side)
        )
        boxes = [Box(*(int(round(v / scale)) for v in box)) for box in np.asarray(found).reshape(-1, 4)]
        return sorted(boxes, key=lambda b: b.area, reverse=True)

    def crop_largest(
        self, image: np.ndarray, margin: float = 0.2, size: int = 48, grayscale: bool = True
    ) -> np.ndarray | None:
        """The largest face as a square crop, or None when no face is found.

        Args:
            image: grayscale ``(h, w)`` or RGB ``(h, w, 3)`` uint8.
            margin: added on each side of the face box, as a fraction of its longer side.
            size: output side in pixels.
            grayscale: return ``(size, size)`` gray, else ``(size, size, 3)`` RGB.
        """
        boxes = self.detect(image)
        return crop_box(image, boxes[0], margin, size, grayscale) if boxes else None


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 ``(h, w)`` from a grayscale, RGB or RGBA image (float images in [0, 1] are scaled)."""
    image = _as_uint8(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        return image[..., 0]
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        return cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)
    if image.ndim == 2:
        return image
    raise ValueError(f"an image must be (h, w), (h, w, 1), (h, w, 3) or (h, w, 4), got shape {image.shape}")


def crop_box(image: np.ndarray, box: Box, margin: float = 0.2, size: int = 48, grayscale: bool = True) -> np.ndarray:
    """A square crop around ``box`` grown by ``margin`` on each side, shifted (and if need be
    shrunk) to stay inside the image, resized to ``size`` with ``cv2.INTER_AREA``.

    Returns:
        uint8 ``(size, size)`` when ``grayscale``, else ``(size, size, 3)`` RGB.
    """
    image = _as_uint8(image)
    height, width = image.shape[:2]
    x, y, w, h = box
    side = min(max(w, h) * (1.0 + 2.0 * margin), height, width)
    side_px = max(int(round(side)), 1)
    x0 = int(round(min(max(x + w / 2 - side / 2, 0.0), width - side_px)))
    y0 = int(round(min(max(y + h / 2 - side / 2, 0.0), height - side_px)))
    crop = image[y0 : y0 + side_px, x0 : x0 + side_px]
    crop = to_gray(crop) if grayscale else _to_rgb(crop)
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def face_track(
    frames: np.ndarray | Sequence[np.ndarray],
    detector: FaceDetector | None = None,
    margin: float = 0.2,
    size: int = 48,
    grayscale: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[Box | None]]:
    """Detect and crop the largest face in every frame of a video.

    Args:
        frames: ``(t, h, w, 3)`` RGB or ``(t, h, w)`` grayscale uint8.
        detector: a :class:`FaceDetector` (a default one when None).
        margin, size, grayscale: as :meth:`FaceDetector.crop_largest`.

    Returns:
        crops ``(t', size, size)`` (or ``(t', size, size, 3)``) of the frames with a face, in
        order; found ``(t,)`` bool; the box per frame (None where no face).
    """
    detector = detector or FaceDetector()
    crops, found, boxes = [], [], []
    for frame in frames:
        faces = detector.detect(frame)
        box = faces[0] if faces else None
        boxes.append(box)
        found.append(box is not None)
        if box is not None:
            crops.append(crop_box(frame, box, margin, size, grayscale))
    shape = (0, size, size) if grayscale else (0, size, size, 3)
    stacked = np.stack(crops) if crops else np.zeros(shape, np.uint8)
    return stacked, np.asarray(found, dtype=bool), boxes


def faces_from_video(
    path: str | os.PathLike,
    num_frames: int | None = 8,
    fps: float | None = None,
    detector: FaceDetector | None = None,
    margin: float = 0.2,
    size: int = 48,
    grayscale: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode -> detect -> crop: the largest face in frames sampled from a video.

    Args:
        path: any video FFmpeg reads.
        num_frames, fps: frame sampling, as :func:`~bridge.media.video.read_video_frames`.
        detector, margin, size, grayscale: as :func:`face_track`.

    Returns:
        crops ``(t', size, size[, 3])`` uint8 of the sampled frames where a face was found
        (``t'`` may be 0) and their timestamps ``(t',)`` in seconds.

    Raises:
        MediaError: unreadable video, no video stream, no frames.
    """
    from bridge.media.video import read_video_frames

    frames, times = read_video_frames(path, num_frames=num_frames, fps=fps)
    crops, found, _ = face_track(frames, detector, margin, size, grayscale)
    return crops, times[found]


def load_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as RGB uint8 ``(h, w, 3)``, upright per its EXIF orientation.

    The size is read from the header first, so an absurdly large image is refused before
    it is decoded.

    Args:
        path: any format Pillow (or failing that OpenCV) reads.
        max_pixels: refuse images with more pixels; None for no limit.

    Raises:
        MediaError: missing, empty, unreadable, truncated or too large file.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = check_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                _check_pixels(path, img.width, img.height, max_pixels)
                img = ImageOps.exif_transpose(img)
                return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except MediaError:
        raise
    except Image.DecompressionBombError as e:  # "Image size (N pixels) exceeds limit of M pixels, could be ..."
        raise MediaTooLarge(path, f"too large: {str(e).split(', could')[0]} "
                                  "(Pillow's decompression-bomb limit)") from None
    except UnidentifiedImageError:
        pass  # not a format Pillow knows: OpenCV may
    except (OSError, ValueError, SyntaxError) as e:
        raise MediaError(path, f"unreadable or truncated image ({e})") from None
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # no libpng chatter on stderr
    try:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if image is None:
        raise MediaError(path, "unreadable image or unsupported format")
    _check_pixels(path, image.shape[1], image.shape[0], max_pixels)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _check_pixels(path: Path, width: int, height: int, max_pixels: int | None) -> None:
    if width <= 0 or height <= 0:
        raise MediaError(path, f"empty image ({width}x{height})")
    if max_pixels is not None and width * height > max_pixels:
        raise MediaTooLarge(path, f"too large: {width}x{height} = {width * height} pixels > max_pixels={max_pixels}")


def _as_uint8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    if np.issubdtype(image.dtype, np.floating) and image.size and float(image.max()) <= 1.0:
        image = image * 255.0
    return np.clip(image, 0, 255).astype(np.uint8)


def _to_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2 or image.shape[-1] == 1:
        return cv2.cvtColor(np.ascontiguousarray(image.reshape(image.shape[:2])), cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(image[..., :3])
