"""One browser's live stream: camera frames (JPEG) and microphone sound (16-bit PCM) in, one
prediction per frame out.

Each WebSocket connection owns a :class:`LiveSession` (its sound buffer, its text, its sample
rate, its face tracker), so streams never share state; the predictor they share is called under
the app's lock. The face is found, followed and cropped by the model's own decoder (the detector,
alignment and crop geometry of training), as ``infer.py --webcam`` does (:mod:`bridge.inference.live`).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Hashable
from typing import Any

import cv2
import numpy as np

from bridge.config import AudioConfig, FaceConfig
from bridge.inference.live import SoundBuffer, live_sample
from bridge.inference.predictor import EncodingMemo, InputError, Predictor
from bridge.media.decoder import FaceTracker
from bridge.modality import Modality

FRAME = ord("F")  # b"F" + uint32 little-endian sequence number + JPEG bytes (none: predict without a frame)
SOUND = ord("A")  # b"A" + int16 little-endian mono PCM at the session's sample rate
MIN_SOUND_SECONDS = 0.5  # less sound than this is not yet used as the audio modality
MAX_FRAME_PIXELS = 1920 * 1920  # a live frame larger than this is refused (the page sends 480 x 360)
# the voice is encoded again once this much new sound has arrived, not every frame: its window is
# seconds long, so a quarter second more changes it little, and its encoder costs more than the face's
SOUND_REFRESH_SECONDS = 0.25


class LiveError(ValueError):
    """A message the live endpoint cannot use; sent back as ``{"error": ...}``, the stream goes on."""


class LiveSession:
    """The state of one live stream.

    Args:
        predictor: the app's predictor (read only here; calls to it go through ``predict``).
        max_frame_bytes: refuse larger JPEG frames.
        max_text_chars: refuse longer texts.
    """

    def __init__(self, predictor: Predictor, max_frame_bytes: int, max_text_chars: int):
        config = predictor.config
        if not isinstance(config.face, FaceConfig) and not isinstance(config.audio, AudioConfig):
            raise InputError("live mode needs a checkpoint with a raw face or audio modality")
        self.predictor = predictor
        # follows this stream's person from frame to frame (its detector is the predictor's, used under the lock)
        self.tracker = (predictor.decoder.tracker() if isinstance(config.face, FaceConfig) and predictor.detect_faces
                        else None)
        self.max_frame_bytes = max_frame_bytes
        self.max_text_chars = max_text_chars
        self.text: str | None = None
        self.sample_rate = 16_000  # of incoming sound; the page asks its AudioContext for 16 kHz
        self.sound = None
        # the voice and the text are encoded again only when they change: the text when it is edited,
        # the sound once per SOUND_REFRESH_SECONDS of new sound; the face is encoded every frame
        self.memo = EncodingMemo()
        if isinstance(config.audio, AudioConfig):
            self.sound = SoundBuffer(config.audio.window_seconds, config.audio.sample_rate, MIN_SOUND_SECONDS)

    def control(self, message: str) -> None:
        """A JSON text message: ``{"text": str | null}`` sets the text, ``{"sample_rate": int}`` the sound's rate.

        Raises:
            LiveError: not a JSON object, an unknown key, or a bad value.
        """
        try:
            data = json.loads(message)
        except json.JSONDecodeError:
            raise LiveError("a text message must be a JSON object such as {\"text\": \"...\"}") from None
        if not isinstance(data, dict):
            raise LiveError("a text message must be a JSON object such as {\"text\": \"...\"}")
        unknown = sorted(set(data) - {"text", "sample_rate"})
        if unknown:
            raise LiveError(f"unknown key {unknown[0]!r} (expected text, sample_rate)")
        if "text" in data:
            text = data["text"]
            if text is not None and not isinstance(text, str):
                raise LiveError("text must be a string or null")
            if text is not None and len(text) > self.max_text_chars:
                raise LiveError(f"text too long: {len(text)} characters > {self.max_text_chars}")
            if text is not None and self.predictor.config.text is None:
                raise LiveError("this checkpoint has no text modality")
            self.text = text if text and text.strip() else None
        if "sample_rate" in data:
            rate = data["sample_rate"]
            if not isinstance(rate, int) or isinstance(rate, bool) or not 8_000 <= rate <= 192_000:
                raise LiveError(f"sample_rate must be an integer from 8000 to 192000, got {rate!r}")
            self.sample_rate = rate

    def add_sound(self, payload: bytes) -> None:
        """Append int16 PCM (after the ``A`` byte) to the sound buffer.

        Raises:
            LiveError: an odd byte count, or a checkpoint without raw audio.
        """
        if self.sound is None:
            raise LiveError("this checkpoint has no raw audio modality")
        if len(payload) % 2:
            raise LiveError(f"sound must be 16-bit PCM (an even number of bytes), got {len(payload)} bytes")
        self.sound.add(np.frombuffer(payload, "<i2").astype(np.float32) / 32768.0, self.sample_rate)

    def decode_frame(self, payload: bytes) -> tuple[int, np.ndarray | None]:
        """The sequence number and the RGB frame (None for a frame-less update) of an ``F`` message.

        Raises:
            LiveError: too short, too large or not a decodable image.
        """
        if len(payload) < 4:
            raise LiveError("a frame message is b'F', a 4-byte sequence number, then JPEG bytes")
        seq = struct.unpack("<I", payload[:4])[0]
        data = payload[4:]
        if not data:
            return seq, None
        if len(data) > self.max_frame_bytes:
            raise LiveError(f"frame too large: {len(data)} bytes > {self.max_frame_bytes}")
        buffer = np.frombuffer(data, np.uint8)
        header = cv2.imdecode(buffer, cv2.IMREAD_REDUCED_GRAYSCALE_8)  # cheap size check before a full decode
        if header is None:
            raise LiveError("frame is not a decodable image (send JPEG)")
        if header.shape[0] * header.shape[1] * 64 > MAX_FRAME_PIXELS:
            raise LiveError(f"frame too large: over {MAX_FRAME_PIXELS} pixels")
        bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
        return seq, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def predict(self, rgb: np.ndarray | None) -> dict[str, Any]:
        """The face box and a prediction from the frame, the latest sound and the text.

        Call under the app's locks (it uses the face detector, then the model).
        """
        keys = {Modality.TEXT: self.text}
        if self.sound is not None:
            keys[Modality.AUDIO] = self.sound.generation(SOUND_REFRESH_SECONDS)
        return predict_frame(self.predictor, self.tracker, rgb, self.sound.window() if self.sound else None,
                             self.sound.sample_rate if self.sound else 16_000, self.text, self.memo, keys)


def predict_frame(predictor: Predictor, tracker: FaceTracker | None, rgb: np.ndarray | None,
                  audio: np.ndarray | None, sample_rate: int, text: str | None, memo: EncodingMemo | None = None,
                  keys: dict[Modality, Hashable] | None = None) -> dict[str, Any]:
    """One live update: ``box`` ([x, y, w, h] or null), ``width``, ``height`` and the fields of a
    prediction (docs/infer-json.md); with nothing to predict from, ``label`` is null.

    ``tracker`` (the model's decoder's) finds the face in ``rgb``; None: the frame is the face crop
    (a predictor without face detection), or the model has no raw face modality. ``memo`` and ``keys``:
    what is not encoded again (:meth:`~bridge.inference.predictor.Predictor.predict_sample`)."""
    box, face, notes, face_info = None, None, [], None
    if rgb is not None and tracker is not None:
        face = tracker.update(rgb)
        face_info = {"searched": 1, "with_face": int(face is not None)}
        if face is not None:
            box = face.box
        else:
            notes.append("no face found in the frame")
    result: dict[str, Any] = {"box": list(box) if box is not None else None,
                              "width": int(rgb.shape[1]) if rgb is not None else None,
                              "height": int(rgb.shape[0]) if rgb is not None else None}
    empty = {"label": None, "probabilities": {}, "observed": [], "reconstructed": [], "notes": notes,
             "face_frames": None, "explanation": {}}
    sample = live_sample(predictor, rgb, face, audio, sample_rate, text)
    if sample is None:
        return {**result, **empty}
    try:
        prediction = predictor.predict_sample(sample, notes, face_info, memo, keys)
    except InputError as e:
        return {**result, **empty, "notes": notes + [str(e)]}
    return {**result, **prediction.to_dict()}
