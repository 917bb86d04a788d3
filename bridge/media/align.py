"""Aligned face crops: rotate so the eyes are level and crop with the geometry of FER-2013
(Goodfellow et al., "Challenges in Representation Learning", ICONIP 2013) faces, the corpus
bridge's face models are trained on, so a face found in a frame looks like a training crop.

The geometry is measured, not guessed: ``python benchmarks/faces.py --calibrate`` pastes
FER-2013 training faces into real backgrounds, finds them, and takes the median position of the
detector's eye points in the original 48x48 crops (docs/faces.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from bridge.media.detectors import Face, detect_faces, to_rgb
from bridge.media.faces import Box, crop_box, to_gray


@dataclass(frozen=True)
class CropGeometry:
    """Where the eyes sit in a crop, in units of the crop side.

    Args:
        side: crop side divided by the distance between the eye centres.
        eye_x: horizontal position of the midpoint between the eyes (0 left, 1 right).
        eye_y: vertical position of that midpoint (0 top, 1 bottom).
    """

    side: float
    eye_x: float = 0.5
    eye_y: float = 0.4

    def scaled(self, scale: float) -> "CropGeometry":
        """The same eye placement in a crop ``scale`` times as wide (below 1: tighter)."""
        return CropGeometry(self.side * scale, self.eye_x, self.eye_y)


# Median FER-2013 geometry of each network's eye points (they differ slightly), measured by
# `python benchmarks/faces.py --calibrate --faces 2000` on FER-2013 training faces (docs/faces.md).
# The eyes alone place the crop: a four-point fit (eyes, nose, mouth) was tried and did not make
# the found crops' predictions agree more often with the originals', and a mouth moves with the
# expression. Single FER-2013 crops stray from these medians by about 0.06 crop sides, several
# times what the detectors' own eye points stray (docs/faces.md): the corpus's framing, not the
# detector, limits how closely a found crop can match its original.
FER_GEOMETRY: dict[str, CropGeometry] = {
    "blazeface": CropGeometry(side=2.777, eye_x=0.494, eye_y=0.406),
    "blazeface-short": CropGeometry(side=3.028, eye_x=0.486, eye_y=0.396),
    "mtcnn": CropGeometry(side=2.675, eye_x=0.510, eye_y=0.393),
}


def fer_geometry(landmarks: str | None, scale: float = 1.0) -> CropGeometry:
    """FER-2013's geometry for the eye points of the network ``landmarks`` names (BlazeFace's
    when it names none), in a crop ``scale`` times as wide."""
    return FER_GEOMETRY.get(landmarks or "blazeface", FER_GEOMETRY["blazeface"]).scaled(scale)


def eye_angle(eyes: np.ndarray) -> float:
    """Degrees the line from the image-left eye to the other is turned clockwise from level."""
    (x0, y0), (x1, y1) = eyes
    return math.degrees(math.atan2(y1 - y0, x1 - x0))


def crop_transform(eyes: np.ndarray, geometry: CropGeometry, level: bool = True) -> tuple[complex, complex]:
    """The similarity map from crop coordinates (units of the crop side, as ``x + iy``) to frame
    pixels, ``frame = a * crop + b``: ``|a|`` is the crop's side in frame pixels, turned with the
    eyes (unless ``level`` is False), and the eye midpoint lands at ``(eye_x, eye_y)``."""
    eyes = np.asarray(eyes, np.float64)
    distance = max(float(np.linalg.norm(eyes[1] - eyes[0])), 1.0)
    theta = math.radians(eye_angle(eyes)) if level else 0.0
    a = max(geometry.side * distance, 2.0) * complex(math.cos(theta), math.sin(theta))
    return a, complex(*eyes.mean(axis=0)) - a * complex(geometry.eye_x, geometry.eye_y)


def aligned_crop(image: np.ndarray, face: Face, size: int = 48, grayscale: bool = True,
                 geometry: CropGeometry | None = None, margin: float = 0.2, level: bool = True) -> np.ndarray:
    """The face rotated so its eyes are level, cropped with ``geometry``, resized to ``size``.

    A face without eye points (Haar) gets :func:`~bridge.media.faces.crop_box` with ``margin``.
    Parts of the crop outside the frame (a face cut by the edge) repeat the edge pixels.

    Args:
        image: grey, RGB or RGBA uint8 frame.
        face: a detection from :mod:`bridge.media.detectors`.
        size: output side in pixels.
        grayscale: ``(size, size)`` grey, else ``(size, size, 3)`` RGB.
        geometry: eye placement (default: the FER-2013 geometry of the network that found the
            eyes, ``face.landmarks``, else of BlazeFace's).
        margin: for faces without eye points, the border around the box as a fraction of its side.
        level: rotate so the eyes are level (False: keep the frame's orientation).

    Returns:
        uint8 ``(size, size)`` or ``(size, size, 3)``.
    """
    if face.eyes is None:
        return crop_box(image, face.box, margin, size, grayscale)
    geometry = geometry or fer_geometry(face.landmarks)
    a, b = crop_transform(face.eyes, geometry, level)
    side_px = max(int(round(abs(a))), 2)
    # crop pixel (u, v) -> frame point a * ((u, v) + 0.5) / side_px + b
    linear = np.array([[a.real, -a.imag], [a.imag, a.real]]) / side_px
    offset = np.array([b.real, b.imag]) + linear @ np.array([0.5, 0.5])
    inverse = np.hstack([linear, offset[:, None]])  # (2, 3), crop -> frame
    source = to_gray(image) if grayscale else to_rgb(image)
    crop = cv2.warpAffine(source, inverse, (side_px, side_px), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)
    if side_px != size:
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return crop


# A face crop is searched for its face upscaled to this side (a 48-px FER-2013 crop is below the
# detectors' range) and framed by half that side of repeated edge pixels, so a tight crop still
# shows the detector a whole face.
REALIGN_SIDE = 144


def found_in(box: Box, x: float, y: float, side: float) -> bool:
    """Whether a detection's ``box`` is the face of the square ``(x, y, side)``: its centre inside
    the square, its size 0.25 to 2 times the square's side."""
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    return x <= cx <= x + side and y <= cy <= y + side and 0.25 <= max(box.w, box.h) / side <= 2.0


def realign_crop(crop: np.ndarray, detector, size: int = 48, grayscale: bool = True,
                 crop_scale: float = 1.0) -> np.ndarray | None:
    """A face crop (a FER-2013 image) found again by ``detector`` and cropped as a face found in a
    frame is (:func:`aligned_crop`), so training crops and crops found in frames share one framing
    instead of the corpus's own, which strays from face to face (docs/faces.md).

    The crop is upscaled to :data:`REALIGN_SIDE`, framed by repeated edge pixels and searched; the
    largest face with eye points whose box centre lies in the crop, at 0.25 to 2 times its side,
    is re-cropped (the frame outside the original crop repeats its edge) with the FER-2013 geometry
    of the network that found its eyes, ``crop_scale`` times as wide.

    Returns:
        uint8 ``(size, size)`` or ``(size, size, 3)``; None when no such face is found.
    """
    rgb = to_rgb(crop)
    h, w = rgb.shape[:2]
    scale = REALIGN_SIDE / max(h, w, 1)
    big = cv2.resize(rgb, (max(round(w * scale), 1), max(round(h * scale), 1)), interpolation=cv2.INTER_CUBIC)
    pad = REALIGN_SIDE // 2
    canvas = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    for face in detect_faces(detector, canvas):  # largest first
        if face.eyes is not None and found_in(face.box, pad, pad, max(big.shape[:2])):
            return aligned_crop(canvas, face, size, grayscale, fer_geometry(face.landmarks, crop_scale))
    return None
