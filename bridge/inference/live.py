"""Live predictions on a camera feed or a video file: the face box, the label and the top
probabilities drawn on each frame (the reference paper's display mode), shown in a window
or written to a video when no display is available. Optionally the audio modality too: the
microphone beside a camera, or a video file's own sound track played in step with its frames."""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from bridge.config import AudioConfig, FaceConfig
from bridge.data.sample import Sample
from bridge.media.audio import DEFAULT_MAX_SECONDS, MIN_SECONDS
from bridge.inference.predictor import EncodingMemo, InputError, Prediction, Predictor
from bridge.inference.timeline import Smoother, Smoothing
from bridge.modality import Modality


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


class SoundBuffer:
    """The latest ``seconds`` of mono sound at ``sample_rate``, oldest sample first (a ring buffer).

    Args:
        seconds: how much sound :meth:`window` returns at most.
        sample_rate: the model's rate; chunks at another rate are resampled on arrival.
        min_seconds: :meth:`window` is None until this much sound has arrived.
    """

    def __init__(self, seconds: float, sample_rate: int, min_seconds: float = 0.0):
        self.sample_rate = sample_rate
        self.min_seconds = min_seconds
        self._buffer = np.zeros(max(round(seconds * sample_rate), 1), np.float32)  # (n,)
        self._filled = 0
        self.added = 0  # samples taken in since the start (at sample_rate)

    def add(self, chunk: np.ndarray, rate: int | None = None) -> None:
        """Append mono sound at ``rate`` (None: already at ``sample_rate``)."""
        from bridge.media import resample

        chunk = np.asarray(chunk, np.float32)
        if rate is not None and rate != self.sample_rate and len(chunk):
            chunk = resample(chunk, rate, self.sample_rate)
        n = len(self._buffer)
        if len(chunk) >= n:
            self._buffer[:] = chunk[-n:]
        elif len(chunk):
            self._buffer[:-len(chunk)] = self._buffer[len(chunk):]
            self._buffer[-len(chunk):] = chunk
        self._filled = min(n, self._filled + len(chunk))
        self.added += len(chunk)

    def generation(self, seconds: float) -> int:
        """How many whole steps of ``seconds`` of sound have arrived: it changes once per step, so a
        prediction keyed by it encodes the sound again at most that often (:class:`~bridge.inference.predictor.EncodingMemo`)."""
        return self.added // max(round(seconds * self.sample_rate), 1)

    def window(self) -> np.ndarray | None:
        """The buffered sound ``(n,)``, or None while there is none or less than ``min_seconds``."""
        if not self._filled or self._filled < self.min_seconds * self.sample_rate:
            return None
        return self._buffer[-self._filled:].copy()


class MicrophoneAudio:
    """The last ``seconds`` of sound from a microphone (``sounddevice``), kept in a ring buffer.

    Args:
        device: a sounddevice input device (index or name); None for the default input.
        seconds: how much of the latest sound :meth:`window` returns.
        sample_rate: the rate the device is opened at (the model's, so nothing is resampled).

    Raises:
        OSError: sounddevice or PortAudio is missing, or no microphone can be opened.
    """

    def __init__(self, device: int | str | None = None, seconds: float = 3.0, sample_rate: int = 16_000):
        try:
            import sounddevice as sd
        except ImportError:
            raise OSError("cannot listen: sounddevice is not installed (pip install sounddevice; on Linux also "
                          "apt-get install libportaudio2)") from None
        except OSError as e:  # the package is there but the PortAudio library is not
            raise OSError(f"cannot listen: sounddevice cannot load PortAudio ({_one_line(e)}; on Linux "
                          "apt-get install libportaudio2)") from None
        self.sample_rate = sample_rate
        self._sound = SoundBuffer(seconds, sample_rate)  # filled from the device's thread, under the lock
        self._lock = threading.Lock()
        stream = None
        try:
            stream = sd.InputStream(samplerate=sample_rate, channels=1, dtype="float32", device=device,
                                    callback=self._callback)
            stream.start()
        except (sd.PortAudioError, ValueError) as e:  # ValueError: no input device matches ``device``
            if stream is not None:
                stream.close()
            name = "the default input" if device is None else f"input device {device!r}"
            raise OSError(f"cannot listen: no microphone at {name} ({_one_line(e)})") from None
        self._stream = stream

    def _callback(self, indata: np.ndarray, frames: int, time, status) -> None:
        block = np.asarray(indata, np.float32).reshape(len(indata), -1)[:, 0]  # (frames, 1) -> (frames,)
        with self._lock:
            self._sound.add(block)

    def window(self, frame_index: int | None = None) -> np.ndarray | None:
        """The latest sound, mono float32 ``(n,)`` (up to ``seconds``), or None before any arrived."""
        with self._lock:
            return self._sound.window()

    def close(self) -> None:
        self._stream.stop()
        self._stream.close()

    def __enter__(self) -> MicrophoneAudio:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TrackAudio:
    """A video file's own sound track, played back in step with its frames.

    Decoded once, as for training (:func:`bridge.media.audio_from_video`).

    Args:
        path: the video file.
        fps: its frame rate, to place a frame in time.
        seconds: how much sound :meth:`window` returns.
        sample_rate: the rate to decode at (the model's).
        max_seconds: refuse longer sound tracks before decoding (None: no limit).

    Raises:
        MediaError: ``"FILE: no audio stream"`` for a silent video, or an unreadable sound track.
    """

    def __init__(self, path: str | Path, fps: float, seconds: float = 3.0, sample_rate: int = 16_000,
                 max_seconds: float | None = DEFAULT_MAX_SECONDS):
        from bridge.media import audio_from_video

        self.wave = audio_from_video(path, sample_rate, max_seconds)  # (n,)
        self.fps, self.seconds, self.sample_rate = fps, seconds, sample_rate

    def window(self, frame_index: int) -> np.ndarray | None:
        """The ``seconds`` of sound up to the end of frame ``frame_index`` (shorter at the start), or
        None when there is none (after the sound track ended)."""
        end = round((frame_index + 1) / self.fps * self.sample_rate)
        start = max(end - round(self.seconds * self.sample_rate), 0)
        chunk = self.wave[start:end]
        return chunk if len(chunk) else None

    def close(self) -> None:
        pass

    def __enter__(self) -> TrackAudio:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _input_device(listen: str) -> int | str | None:
    """``--listen`` DEVICE as sounddevice takes it: None for the default input, an index or a name."""
    return None if listen == "default" else int(listen) if listen.isdigit() else listen


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


def annotate(frame_bgr: np.ndarray, box, prediction: Prediction | None, top: int = 3,
             stale: bool = False) -> np.ndarray:
    """Draw the face box, the label and the ``top`` class probabilities on a BGR frame (in place).

    ``stale``: the prediction is an earlier one, kept because this update had nothing to predict
    from (no face, no sound, no text); the label then says so.
    """
    if box is not None:
        x, y, w, h = box
        cv2.rectangle(frame_bgr, (x, y), (x + w, y + h), (0, 220, 0), 2)
    if prediction is None:
        return frame_bgr
    scale = max(frame_bgr.shape[0] / 480, 0.35)
    anchor = (box[0], max(box[1] - 6, 14)) if box is not None else (8, int(22 * scale) + 4)
    _text(frame_bgr, f"{prediction.label} (no face: earlier)" if stale else prediction.label, anchor, 0.7 * scale)
    ranked = sorted(prediction.probabilities.items(), key=lambda kv: -kv[1])[:top]
    for i, (name, p) in enumerate(ranked):
        _text(frame_bgr, f"{name} {p:.0%}", (8, frame_bgr.shape[0] - 8 - int(20 * scale) * (top - 1 - i)), 0.5 * scale)
    return frame_bgr


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def run_live(predictor: Predictor, source: str, every: int = 10, save_video: Path | None = None,
             text: str | None = None, report: Callable[[str], None] = print, listen: str | None = None,
             smoothing: Smoothing | None = None, detect_every: int = 1) -> int:
    """Predict every ``every`` frames from the face (and the sound and ``text``, if given) and draw the result.

    The face is detected and tracked on every frame (every ``detect_every``-th with a slow
    detector, the box held between), so the box follows the person; predictions can be smoothed
    over time (``smoothing``).

    Without ``save_video`` the frames are shown in a window (quit with ``q``); with it, the run is
    headless and the annotated video is written there (atomically, when the feed ends or on Ctrl-C).

    Args:
        predictor: a loaded predictor; its face detector finds the face.
        source: a camera index (``"0"``) or a video file.
        every: frames between predictions.
        save_video: an ``.mp4`` to write instead of showing a window.
        text: a transcript used in every prediction.
        report: where the one line per update goes.
        listen: also use the audio modality: with a camera, the microphone (``"default"`` for the
            default input, or a sounddevice index or name); with a video file, its own sound track
            (``"default"`` only). Each prediction hears the latest span of sound the model takes.
        smoothing: average the predictions over time (None: each update stands alone).
        detect_every: run the face detector every this many frames (1: every frame).

    Returns:
        The number of frames read.

    Raises:
        ValueError: ``every`` < 1, a device given for a video file, or no display and no ``save_video``.
        InputError: no raw face modality, or ``listen`` without a raw audio modality.
        OSError: a camera, file or microphone that cannot be opened.
        MediaError: ``listen`` on a video file without a sound track.
    """
    if every < 1:
        raise ValueError(f"--every must be >= 1, got {every}")
    if detect_every < 1:
        raise ValueError(f"--detect-every must be >= 1, got {detect_every}")
    if not isinstance(predictor.config.face, FaceConfig):
        raise InputError("live mode needs a checkpoint with a raw face modality")
    if listen is not None:
        if not isinstance(predictor.config.audio, AudioConfig):
            raise InputError("--listen needs a checkpoint with a raw audio modality")
        if not source.isdigit() and listen != "default":
            raise ValueError(f"--listen {listen}: a video file plays its own sound track; give --listen alone")
    if save_video is None and (problem := gui_problem()) is not None:
        raise ValueError(f"cannot show a window: {problem}; pass --save-video OUT.mp4 to run headless")
    with contextlib.ExitStack() as stack:
        audio = None
        if listen is not None:
            rate = predictor.config.audio.sample_rate
            seconds = predictor.config.audio.window_seconds
            if source.isdigit():  # before the camera: a missing microphone is the likelier problem
                audio = stack.enter_context(MicrophoneAudio(_input_device(listen), seconds, rate))
        capture, name = open_capture(source)
        stack.callback(capture.release)
        fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
        fps = fps if 1.0 <= fps <= 240.0 else 25.0
        if listen is not None and audio is None:
            audio = stack.enter_context(TrackAudio(source, fps, seconds, rate, predictor.max_seconds))
        output = _Output(save_video, name, fps)
        prediction, count, stale = None, 0, False
        tracker = predictor.decoder.tracker(every=detect_every)
        smoother = Smoother(smoothing or Smoothing())
        memo = EncodingMemo()  # the text, which does not change, is encoded once
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                face = tracker.update(rgb)
                box = face.box if face is not None else None
                if count % every == 0:
                    # A file's first frames hear its first MIN_SECONDS, the least that counts as sound
                    # (a microphone's window ignores the frame index).
                    wave = audio.window(max(count, math.ceil(MIN_SECONDS * fps) - 1)) if audio is not None else None
                    prediction, observed = _predict(predictor, rgb, face, text, prediction, wave,
                                                    audio.sample_rate if audio is not None else 16_000, smoother, memo)
                    stale = prediction is not None and not observed  # nothing new to predict from: the last one kept
                    seen = ", ".join(["face found" if box is not None else "no face"]
                                     + [m for m in observed if m != "face"])
                    label = f"{prediction.label} {prediction.probabilities[prediction.label]:.0%}" if prediction else "-"
                    report(f"frame {count} ({count / fps:.2f} s): {label}{' (kept from before)' if stale else ''} "
                           f"({seen})")
                annotate(frame, box, prediction, stale=stale)
                count += 1
                if not output.show(frame):
                    break
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: how a headless session on a camera ends
            report(f"interrupted after {count} frames" + (f": finishing {save_video}" if output.writing else ""))
        except BaseException:
            output.close(keep=False)
            raise
        output.close(keep=count > 0)
    if count == 0:
        raise OSError(f"no frame could be read from {name}")
    return count


class _Output:
    """Where annotated frames go: a window (``q`` quits), or, with ``save_video``, an ``.mp4`` written
    to a temporary file and renamed into place when the feed ends (removed on an error)."""

    def __init__(self, save_video: Path | None, name: str, fps: float):
        self.save_video, self.name, self.fps = save_video, name, fps
        self.writer: cv2.VideoWriter | None = None
        self.tmp: Path | None = None

    @property
    def writing(self) -> bool:
        return self.tmp is not None

    def show(self, frame_bgr: np.ndarray) -> bool:
        """Show or write one frame; False when the viewer asked to quit."""
        if self.save_video is None:
            cv2.imshow(f"bridge: {self.name} (q to quit)", frame_bgr)
            return cv2.waitKey(1) & 0xFF != ord("q")
        if self.writer is None:
            self.writer, self.tmp = _open_writer(self.save_video, self.fps, frame_bgr.shape[1], frame_bgr.shape[0])
        self.writer.write(frame_bgr)
        return True

    def close(self, keep: bool) -> None:
        """Finish the video (``keep``: rename it into place, else remove it) or close the window."""
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if self.save_video is None:
            cv2.destroyAllWindows()
        if self.tmp is not None:
            if keep:
                os.replace(self.tmp, self.save_video)
            else:
                self.tmp.unlink(missing_ok=True)
            self.tmp = None


def live_sample(predictor: Predictor, rgb: np.ndarray | None, face, audio: np.ndarray | None, sample_rate: int,
                text: str | None) -> Sample | None:
    """The sample of one live update (here and in the web app's live stream), or None when there is
    nothing to predict from.

    Its face is the crop of ``face`` (the tracked :class:`~bridge.media.detectors.Face` in the RGB
    frame ``rgb``, None: no face found) by the model's decoder, as in training; a predictor that
    does not detect faces takes the whole frame as the crop. ``audio``: the latest sound."""
    crop = None
    if rgb is not None and isinstance(predictor.config.face, FaceConfig):
        if face is not None:
            crop = predictor.decoder.crop(rgb, face)[None]
        elif not predictor.detect_faces:
            crop = predictor.decoder.whole(rgb)[None]
    if crop is None and audio is None and text is None:
        return None
    return Sample(id="live", label=0, face=crop, audio=audio, sample_rate=sample_rate, text=text)


def _predict(predictor: Predictor, rgb: np.ndarray, face, text: str | None, last: Prediction | None,
             audio: np.ndarray | None = None, sample_rate: int = 16_000, smoother: Smoother | None = None,
             memo: EncodingMemo | None = None):
    """A new prediction from the face (a :class:`~bridge.media.detectors.Face` in ``rgb``, or None),
    the sound and the text, smoothed over time by ``smoother``; the last one when there is nothing
    to predict from. Returns it and the modalities it observed (none when the last one was kept).
    ``memo``: keeps the text's encoding from one prediction to the next."""
    sample = live_sample(predictor, rgb, face, audio, sample_rate, text)
    if sample is None:
        return last, []
    try:
        prediction = predictor.predict_sample(sample, memo=memo, keys={Modality.TEXT: text})
    except InputError:
        return last, []
    if smoother is not None and smoother.smoothing.kind != "none":
        probs = smoother(prediction.probabilities)
        prediction = replace(prediction, probabilities=probs, label=max(probs, key=probs.get))
    return prediction, prediction.observed


def _open_writer(path: Path, fps: float, width: int, height: int) -> tuple[cv2.VideoWriter, Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix or '.mp4'}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"cannot write video {path}")
    return writer, tmp
