"""Live predictions on a camera feed or a video file: the face box, the label and the top
probabilities drawn on each frame (the reference paper's display mode), shown in a window
or written to a video when no display is available."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from bridge.config import FaceConfig
from bridge.data.sample import Sample
from bridge.predictor import InputError, Prediction, Predictor


def open_capture(source: str) -> tuple[cv2.VideoCapture, str]:
    """A :class:`cv2.VideoCapture` on a camera index (``"0"``) or a video file, and its name.

    Raises:
        FileNotFoundError: a file that does not exist.
        OSError: a camera or file OpenCV cannot open.
    """
    if source.isdigit():
        name = f"camera {source}"
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # no multi-line backend warnings
        try:
            capture = cv2.VideoCapture(int(source))
        finally:
            cv2.utils.logging.setLogLevel(level)
    else:
        if not Path(source).is_file():
            raise FileNotFoundError(f"--webcam {source} is neither a camera index nor an existing file")
        name = source
        capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        capture.release()
        raise OSError(f"cannot open {name}")
    return capture, name


def gui_problem() -> str | None:
    """Why no window can be shown (headless OpenCV, no $DISPLAY), or None when one can."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display ($DISPLAY is unset)"
    try:
        cv2.namedWindow("bridge")
        cv2.destroyWindow("bridge")
    except cv2.error:
        return "this OpenCV has no GUI support (opencv-python-headless)"
    return None


def annotate(frame_bgr: np.ndarray, box, prediction: Prediction | None, top: int = 3) -> np.ndarray:
    """Draw the face box, the label and the ``top`` class probabilities on a BGR frame (in place)."""
    if box is not None:
        x, y, w, h = box
        cv2.rectangle(frame_bgr, (x, y), (x + w, y + h), (0, 220, 0), 2)
    if prediction is None:
        return frame_bgr
    scale = max(frame_bgr.shape[0] / 480, 0.35)
    anchor = (box[0], max(box[1] - 6, 14)) if box is not None else (8, int(22 * scale) + 4)
    _text(frame_bgr, prediction.label, anchor, 0.7 * scale)
    ranked = sorted(prediction.probabilities.items(), key=lambda kv: -kv[1])[:top]
    for i, (name, p) in enumerate(ranked):
        _text(frame_bgr, f"{name} {p:.0%}", (8, frame_bgr.shape[0] - 8 - int(20 * scale) * (top - 1 - i)), 0.5 * scale)
    return frame_bgr


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def run_live(predictor: Predictor, source: str, every: int = 10, save_video: Path | None = None,
             text: str | None = None, report: Callable[[str], None] = print) -> int:
    """Predict every ``every`` frames from the face (and ``text``, if given) and draw the result.

    Without ``save_video`` the frames are shown in a window (quit with ``q``); with it, the run is
    headless and the annotated video is written there (atomically, when the feed ends or on Ctrl-C).

    Args:
        predictor: a loaded predictor; its face detector finds the face.
        source: a camera index (``"0"``) or a video file.
        every: frames between predictions.
        save_video: an ``.mp4`` to write instead of showing a window.
        text: a transcript used in every prediction.
        report: where the one line per update goes.

    Returns:
        The number of frames read.

    Raises:
        ValueError: ``every`` < 1, or no display and no ``save_video``.
        OSError: a camera or file that cannot be opened.
    """
    if every < 1:
        raise ValueError(f"--every must be >= 1, got {every}")
    if not isinstance(predictor.config.face, FaceConfig):
        raise InputError("live mode needs a checkpoint with a raw face modality")
    if save_video is None and (problem := gui_problem()) is not None:
        raise ValueError(f"cannot show a window: {problem}; pass --save-video OUT.mp4 to run headless")
    capture, name = open_capture(source)
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    fps = fps if 1.0 <= fps <= 240.0 else 25.0
    cfg = predictor.config.face
    writer, tmp = None, None
    prediction, box, count = None, None, 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if count % every == 0:
                box, prediction = _update(predictor, frame, cfg, text, prediction)
                seen = "face found" if box is not None else "no face"
                label = f"{prediction.label} {prediction.probabilities[prediction.label]:.0%}" if prediction else "-"
                report(f"frame {count} ({count / fps:.2f} s): {label} ({seen})")
            annotate(frame, box, prediction)
            count += 1
            if save_video is not None:
                if writer is None:
                    writer, tmp = _open_writer(save_video, fps, frame.shape[1], frame.shape[0])
                writer.write(frame)
            else:
                cv2.imshow(f"bridge: {name} (q to quit)", frame)
                if cv2.waitKey(1) & 0xFF == ord("q"):
                    break
    finally:
        capture.release()
        if writer is not None:
            writer.release()
        if save_video is None:
            cv2.destroyAllWindows()
    if count == 0:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise OSError(f"no frame could be read from {name}")
    if tmp is not None:
        os.replace(tmp, save_video)
    return count


def _update(predictor: Predictor, frame_bgr: np.ndarray, cfg, text: str | None, last: Prediction | None):
    """The face box and a new prediction (the last one kept when there is nothing to predict from)."""
    from bridge.media import crop_box

    rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
    boxes = predictor.detector.detect(rgb)
    box = boxes[0] if boxes else None
    face = None
    if box is not None:
        face = crop_box(rgb, box, cfg.margin, cfg.img_size or 224, cfg.in_chans == 1)[None]
    if face is None and text is None:
        return box, last
    try:
        return box, predictor.predict_sample(Sample(id="live", label=0, face=face, text=text))
    except InputError:
        return box, last


def _open_writer(path: Path, fps: float, width: int, height: int) -> tuple[cv2.VideoWriter, Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix or '.mp4'}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"cannot write video {path}")
    return writer, tmp
