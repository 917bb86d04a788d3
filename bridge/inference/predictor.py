"""Prediction from raw files or arrays with a trained checkpoint: the Python API behind ``infer.py``.

Media goes through the same decoding, face detection and preprocessing as training.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bridge.batch import Batch
from bridge.checkpoint import tokenizer_dir
from bridge.config import AudioConfig, FaceConfig, TextConfig
from bridge.contract import Classifier, Encoding
from bridge.data.sample import Sample
from bridge.ensemble import load_models
from bridge.media.audio import DEFAULT_MAX_SECONDS
from bridge.media.decoder import MediaDecoder
from bridge.modality import Modality
from bridge.preprocess import Example, Preprocessor, collate
from bridge.presence import complete_presence
from bridge.inference.timeline import TimelineRow, window_starts
from bridge.views import checkpoint_views, require_face_views


@dataclass
class EncodingMemo:
    """One stream's last encoding, kept between predictions (live mode), so that an input that has
    not changed is not encoded again: a modality whose key in :meth:`Predictor.predict_sample`'s
    ``keys`` equals the key it was last encoded under reuses that encoding (its latent and its
    translations). The keys are the caller's: the text itself, or a count of the sound a live stream
    has taken in, in steps of its refresh interval.
    """

    encoded: Encoding | None = None
    keys: dict[Modality, Hashable] = field(default_factory=dict)


@dataclass
class ModalityExplanation:
    """What one observed modality contributes to a prediction.

    Args:
        alone_label: the class predicted from this modality alone (the others reconstructed from it).
        alone_probabilities: class name -> probability from this modality alone.
        top_change_without: the change in the probability of the overall top class when this
            modality is left out (reconstructed from the other observed ones): negative when it
            supported the top class. None when it is the only observed modality.
    """

    alone_label: str
    alone_probabilities: dict[str, float]
    top_change_without: float | None


@dataclass
class Prediction:
    """What :meth:`Predictor.predict` returns.

    Args:
        label: the most probable class.
        probabilities: class name -> probability, in the model's label order.
        observed: modalities given and used.
        reconstructed: the model's modalities that were missing and rebuilt by translation.
        notes: what happened to inputs on the way (e.g. no face found, so face was reconstructed).
        face_frames: frames searched for a face and frames where one was found (when faces were detected).
        explanation: per observed modality, its prediction alone and the effect of leaving it out.
    """

    label: str
    probabilities: dict[str, float]
    observed: list[str]
    reconstructed: list[str]
    notes: list[str] = field(default_factory=list)
    face_frames: dict[str, int] | None = None
    explanation: dict[str, ModalityExplanation] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class InputError(ValueError):
    """An input the predictor cannot use (no modality, a modality the checkpoint lacks, ...)."""


class UnsupportedInput(InputError):
    """An input this checkpoint cannot take: a modality it lacks, or raw media where it expects
    pre-extracted features (the web app answers it with 422, not 400)."""


class TimelineInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped :meth:`Predictor.timeline`: ``rows`` holds the windows finished
    (those whose frames were all searched), out of ``total``."""

    def __init__(self, rows: list[TimelineRow], total: int):
        super().__init__(f"{len(rows)} of {total} windows finished")
        self.rows, self.total = rows, total


class Predictor:
    """A loaded checkpoint plus its preprocessing.

    Args:
        model: a loaded classifier (:class:`bridge.contract.Classifier`: a
            :class:`~bridge.model.BridgeModel` or an :class:`~bridge.ensemble.Ensemble`).
        preprocessor: the matching :class:`~bridge.preprocess.Preprocessor`.
        device: where to run.
        detect_faces: find and crop a face (False: images and frames are face crops).
        max_seconds: refuse longer audio before decoding (None: no limit).
        test_views: the test-time views each face latent averages (:mod:`bridge.views`: ``single``,
            ``mirror`` or ``crops``, 1, 2 or 10 face encodings per frame).
        face_detector: the detector's name (None: the one that realigned the model's training crops,
            ``face.realign``, else :data:`~bridge.media.detectors.DEFAULT_DETECTOR`, BlazeFace).
        face_index: which face where there are several, by size: 0 the largest, 1 the next, ...

    Raises:
        ValueError: unknown ``test_views``, or views beyond ``single`` with a model that has no
            raw-face encoder.
    """

    def __init__(self, model: Classifier, preprocessor: Preprocessor, device: torch.device | str = "cpu",
                 detect_faces: bool = True, max_seconds: float | None = DEFAULT_MAX_SECONDS,
                 test_views: str = "single", face_detector: str | None = None, face_index: int = 0):
        require_face_views(model.config, test_views)
        if face_index < 0:
            raise ValueError(f"face_index must be >= 0 (0: the largest face), got {face_index}")
        self.model = model.eval()
        self.test_views = test_views
        self.detect_faces = detect_faces
        self.max_seconds = max_seconds  # longer audio or sound tracks are refused before decoding
        self.preprocessor = preprocessor
        self.device = torch.device(device)
        self.config = model.config
        # the model's own decoding (crop size, colour, margin, frames, sample rate), as in training
        self.decoder = MediaDecoder.from_config(model.config, face_detector, face_index, detect_faces)

    @classmethod
    def from_pretrained(cls, directory: str | Path | Sequence[str | Path] | None = None, device: str = "cpu",
                        detect_faces: bool = True, max_seconds: float | None = DEFAULT_MAX_SECONDS,
                        test_views: str | None = None, face_detector: str | None = None,
                        face_index: int = 0) -> "Predictor":
        """Load the shipped model, a checkpoint directory written by ``train.py``, or several as an ensemble.

        Args:
            directory: None for the shipped model (:data:`bridge.release.DEFAULT_RELEASE`), a shipped
                release's name, or a checkpoint directory; a list of checkpoints of one task averages
                their probabilities (:class:`~bridge.ensemble.Ensemble`).
            device: where to run.
            detect_faces: find and crop a face; False when images and frames are already face
                crops (as FER-2013's are).
            max_seconds: refuse audio (or a video's sound track) longer than this, checked before
                decoding (None: no limit; a long track is decoded whole, 64 kB per second).
            test_views: the test-time views of faces (``single``, ``mirror``, ``crops``; None: as the
                checkpoint says).
            face_detector: ``blazeface``, ``blazeface-short``, ``mtcnn`` or ``haar`` (docs/faces.md); None:
                the model's ``face.realign`` detector where it has one, else ``blazeface``.
            face_index: with several faces, which one: 0 the largest, 1 the next largest, ...
        """
        from bridge.release import locate

        directories = [directory] if directory is None or isinstance(directory, (str, Path)) else list(directory)
        directories = [locate(d) for d in directories]
        model, metas = load_models(directories, device)
        views = checkpoint_views(metas[0]) if test_views is None else test_views
        return cls(model, Preprocessor(model.config, tokenizer_dir(Path(directories[0]))), device, detect_faces,
                   max_seconds, views, face_detector, face_index)

    @property
    def detector(self):
        """The face detector (created on first use; a missing package is an OSError naming it)."""
        return self.decoder.detector

    def _check(self, modality: Modality, raw: bool = True) -> None:
        cfg = self.config.encoders.get(modality)
        if cfg is None:
            have = ", ".join(m.value for m in self.config.modalities)
            raise UnsupportedInput(f"this checkpoint has no {modality.value} modality (it has {have})")
        if raw and cfg.kind == "features":
            raise UnsupportedInput(f"this checkpoint takes {modality.value} as pre-extracted features, not raw media")

    def _face_from_image(self, image: str | Path | np.ndarray,
                         notes: list[str]) -> tuple[np.ndarray | None, dict | None]:
        from bridge.media import load_image

        img = load_image(image) if isinstance(image, (str, Path)) else np.asarray(image)
        crop, faces = self.decoder.image_face(img)
        if not self.detect_faces:
            return crop, None
        if crop is None:
            index = self.decoder.faces.face_index
            notes.append("no face found in the image" if faces == 0 or index == 0
                         else f"face index {index} asked for, but only {faces} face(s) found in the image")
            return None, {"searched": 1, "with_face": 0}
        return crop, {"searched": 1, "with_face": 1}

    def _face_from_video(self, video: str | Path, notes: list[str], start: float = 0.0,
                         end: float | None = None) -> tuple[np.ndarray | None, dict | None]:
        crops, _, found = self.decoder.video_faces(video, start=start, end=end)
        if not self.detect_faces:
            return crops, None
        info = {"searched": int(len(found)), "with_face": int(found.sum())}
        if not len(crops):
            notes.append("no face found in the video")
            return None, info
        return crops, info

    def sample(self, image=None, audio=None, text: str | None = None, video=None, sample_rate: int = 16_000,
               notes: list[str] | None = None) -> tuple[Sample, dict | None]:
        """Decode the given inputs into a :class:`Sample` (face detection included)."""
        notes = notes if notes is not None else []
        if image is None and audio is None and text is None and video is None:
            raise InputError("no input given: pass at least one of image, audio, text or video")
        if image is not None and video is not None:
            raise InputError("give either an image or a video for the face, not both")
        face, face_info, wave = None, None, None
        if image is not None or video is not None:
            if video is not None and self.config.face is None and self.config.audio is None:
                raise UnsupportedInput("this checkpoint has neither face nor audio, which a video provides")
            if image is not None or self.config.face is not None:
                self._check(Modality.FACE)
                face, face_info = (self._face_from_image(image, notes) if image is not None
                                   else self._face_from_video(video, notes))
        if video is not None and audio is None and isinstance(self.config.audio, AudioConfig):
            wave, sample_rate = self._sound_track(video), self.decoder.sample_rate
            if wave is None:
                notes.append("the video has no sound track")
        if audio is not None:
            self._check(Modality.AUDIO)
            if isinstance(audio, (str, Path)):
                wave, sample_rate = self.decoder.audio(audio, max_seconds=self.max_seconds), self.decoder.sample_rate
            else:
                wave = np.asarray(audio, dtype=np.float32)
        if text is not None:
            self._check(Modality.TEXT)
            if not isinstance(self.config.text, TextConfig):
                raise UnsupportedInput("this checkpoint takes text as pre-extracted features, not raw text")
            if not text.strip():
                raise InputError("text is empty")
        sample = Sample(id="input", label=0, face=face, audio=wave, sample_rate=sample_rate, text=text)
        return sample, face_info

    @torch.inference_mode()
    def predict(self, image=None, audio=None, text: str | None = None, video=None,
                sample_rate: int = 16_000) -> Prediction:
        """Predict the emotion from any subset of inputs.

        Args:
            image: a path or an RGB/grayscale array of a photo with a face.
            audio: a path, or a mono float waveform at ``sample_rate``.
            text: a transcript or message.
            video: a path; gives face frames and, unless ``audio`` is given, the sound track.
            sample_rate: the rate of an ``audio`` array.

        Raises:
            InputError: nothing given, an empty text, a modality the checkpoint lacks, or an
                array with NaN or infinite values.
            MediaError: an unreadable, truncated, too long or too large file, or a ``video``
                with no video stream (an audio-only file: pass it as ``audio``). A video with no
                sound track is used for its face frames, with a note.
        """
        notes: list[str] = []
        sample, face_info = self.sample(image, audio, text, video, sample_rate, notes)
        return self.predict_sample(sample, notes, face_info)

    @torch.inference_mode()
    def predict_sample(self, sample: Sample, notes: list[str] | None = None, face_info: dict | None = None,
                       memo: EncodingMemo | None = None, keys: Mapping[Modality, Hashable] | None = None,
                       ) -> Prediction:
        """Predict from a decoded :class:`Sample` (face crops, waveform, text), with an explanation.

        The sample is encoded once; the explanation re-runs only reconstruction, fusion and head.
        With ``memo``, a modality whose ``keys`` entry is the one it was last encoded under is not
        encoded again (see :class:`EncodingMemo`); the memo then holds this sample's encoding.
        """
        notes = notes if notes is not None else []
        sample = self._usable_audio(sample, notes)
        try:
            example = self.preprocessor(sample)
        except ValueError as e:  # e.g. NaN features or samples, a waveform that is not mono
            raise InputError(str(e)) from None
        if not example.inputs:
            raise InputError(f"{'; '.join(notes) or 'no usable input'}, and no other input to predict from")
        batch = collate([example]).to(self.device)
        encoded, present = self._encode(batch) if memo is None else self._encode_reusing(batch, memo, keys or {})
        observed = [m for m in self.config.modalities if bool(present[m][0])]
        # The prediction and every explanation pattern (each modality alone, each left out) in one
        # fusion call: the batch is the same encoded sample under different observed sets.
        patterns = [present] + [{k: v & (k == m) for k, v in present.items()} for m in observed]
        if len(observed) >= 2:
            patterns += [{k: v & (k != m) for k, v in present.items()} for m in observed]
        n = len(patterns)
        stacked = {k: torch.cat([p[k] for p in patterns]) for k in present}  # (n,)
        all_probs = self._probabilities(encoded.expand(n), stacked)
        probs = all_probs[0]
        top = int(probs.argmax())
        explanation = {}
        for i, m in enumerate(observed):
            alone = all_probs[1 + i]
            change = float(all_probs[1 + len(observed) + i][top] - probs[top]) if len(observed) >= 2 else None
            explanation[m.value] = ModalityExplanation(self.config.labels[int(alone.argmax())], self._named(alone), change)
        return Prediction(label=self.config.labels[top], probabilities=self._named(probs),
                          observed=[m.value for m in observed],
                          reconstructed=[m.value for m in self.config.modalities if m not in observed],
                          notes=notes, face_frames=face_info, explanation=explanation)

    def _usable_audio(self, sample: Sample, notes: list[str]) -> Sample:
        """The sample without its audio when it is too short or silent (:func:`~bridge.media.audio.audio_problem`),
        with a note saying why: the audio modality then counts as missing and is reconstructed."""
        from bridge.media.audio import audio_problem

        if sample.audio is None or not isinstance(self.config.audio, AudioConfig):
            return sample
        wave = np.asarray(sample.audio)
        if wave.ndim != 1 or not np.isfinite(wave).all():
            return sample  # the preprocessor names these problems
        problem = audio_problem(wave, sample.sample_rate)
        if problem is None:
            return sample
        notes.append(problem)
        return replace(sample, audio=None)

    @torch.inference_mode()
    def timeline(self, video: str | Path, window: float, hop: float, text: str | None = None,
                 batch_size: int = 16) -> list[TimelineRow]:
        """Emotion over time: one prediction per sliding window of a video.

        Frames are decoded, and faces detected, once for the whole video; the sound track is
        decoded once and sliced per window.

        Args:
            video: a path.
            window: window length in seconds (at most the video's duration).
            hop: seconds between window starts.
            text: a transcript used in every window.
            batch_size: windows per model call.

        Raises:
            ValueError: a non-positive window or hop, or a window longer than the video.
            MediaError: an unreadable video, or one with no frames.
        """
        if text is not None:
            self._check(Modality.TEXT)
        duration = _video_duration(video)
        starts = all_starts = window_starts(duration, window, hop)
        crops = times = found = None
        interrupted = False
        if isinstance(self.config.face, FaceConfig):
            crops, found, times, interrupted = self._face_frames(video, window)
            if interrupted:  # keep the windows whose frames were all searched
                starts = [t for t in starts if len(times) and t + window <= times[-1] + 1e-6]
        wave = self._sound_track(video) if isinstance(self.config.audio, AudioConfig) else None
        rate = self.config.audio.sample_rate if wave is not None else 16_000
        found_at = np.flatnonzero(found) if found is not None else None  # frame index of each crop
        rows, pending = [], []
        for start in starts:
            end = start + window
            face, face_info = None, None
            if crops is not None:
                in_window = (times >= start - 1e-6) & (times < end - 1e-6)
                with_face = in_window[found_at]
                face = crops[with_face] if with_face.any() else None
                if self.detect_faces:
                    face_info = {"searched": int(in_window.sum()), "with_face": int(with_face.sum())}
            audio = wave[round(start * rate):round(end * rate)] if wave is not None else None
            audio = audio if audio is not None and len(audio) else None
            sample, notes = Sample(id=f"{start:g}", label=0, face=face, audio=audio, sample_rate=rate, text=text), []
            sample = self._usable_audio(sample, notes)
            pending.append((start, end, face_info, self.preprocessor(sample), notes))
        try:
            for i in range(0, len(pending), batch_size):
                rows += self._timeline_rows(pending[i:i + batch_size])
        except KeyboardInterrupt:
            interrupted = True
        if interrupted:
            raise TimelineInterrupted(rows, len(all_starts))
        return rows

    def _face_frames(self, video: str | Path, window: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """Face crops of the frames with a face, whether each frame had one, frame times, and
        whether Ctrl-C (or SIGTERM) stopped the search early (the arrays then hold the frames done).

        Frames are streamed at the rate that gives each window twice the model's face frames, and
        only the crops are kept, so a long video never sits in memory.
        """
        from bridge.media import MediaError, iter_video_frames

        cfg: FaceConfig = self.config.face
        size = self.decoder.faces.size
        tracker = self.decoder.tracker()
        crops, found, times, interrupted = [], [], [], False
        try:
            for t, frame in iter_video_frames(video, fps=cfg.sampled_frames / window):
                if self.detect_faces:
                    face = tracker.update(frame)
                    crop = self.decoder.crop(frame, face) if face is not None else None
                else:  # already a face crop: only resized to the model's crop, as the decoder does
                    crop = self.decoder.whole(frame)
                times.append(t)
                found.append(crop is not None)
                if crop is not None:
                    crops.append(crop)
        except KeyboardInterrupt:
            interrupted = True
        if not times and not interrupted:
            raise MediaError(video, "no video frames")
        shape = (0, size, size) if self.decoder.faces.grayscale else (0, size, size, 3)
        stacked = np.stack(crops) if crops else np.zeros(shape, np.uint8)
        return stacked, np.asarray(found, dtype=bool), np.asarray(times, dtype=np.float64), interrupted

    def _timeline_rows(self, chunk: list[tuple[float, float, dict | None, Example, list[str]]]) -> list[TimelineRow]:
        usable = [c for c in chunk if c[3].inputs]
        probs = []
        if usable:
            batch = collate([c[3] for c in usable]).to(self.device)
            probs = list(self._probabilities(*self._encode(batch)))
        rows = []
        for start, end, face_info, example, notes in chunk:
            observed = [m.value for m in self.config.modalities if m in example.inputs]
            p = probs.pop(0) if example.inputs else None
            rows.append(TimelineRow(
                start=float(start), end=float(end),
                label=self.config.labels[int(p.argmax())] if p is not None else None,
                probabilities=self._named(p) if p is not None else {},
                observed=observed,
                reconstructed=[m.value for m in self.config.modalities if m.value not in observed] if observed else [],
                face_frames=face_info, notes=notes))
        return rows

    def _sound_track(self, video: str | Path) -> np.ndarray | None:
        """The whole sound track at the model's rate, or None for a silent video."""
        return self.decoder.sound_track(video, self.max_seconds)

    def _encode(self, batch: Batch) -> tuple[Encoding, dict[Modality, torch.Tensor]]:
        """The batch encoded once, and which of the model's modalities each sample has."""
        present = complete_presence(batch.present, self.config.modalities, len(batch), self.device)
        return self.model.encode(batch, self.test_views), present

    def _encode_reusing(self, batch: Batch, memo: EncodingMemo, keys: Mapping[Modality, Hashable],
                        ) -> tuple[Encoding, dict[Modality, torch.Tensor]]:
        """:meth:`_encode` for one sample, reusing the memo's encoding of each modality whose key is unchanged."""
        present = complete_presence(batch.present, self.config.modalities, len(batch), self.device)
        fresh = tuple(m for m in batch.inputs
                      if memo.encoded is None or m not in keys or m not in memo.keys or memo.keys[m] != keys[m])
        if memo.encoded is not None and not fresh:
            return memo.encoded, present
        encoded = self.model.encode(batch.select(fresh), self.test_views)
        # A modality the memo holds but this sample lacks stays in the encoding unused: the fusion
        # takes only the present modalities' latents, and reconstructs from present sources only.
        memo.encoded = encoded if memo.encoded is None else memo.encoded.merge(encoded)
        for m in fresh:
            if m in keys:
                memo.keys[m] = keys[m]
            else:
                memo.keys.pop(m, None)
        return memo.encoded, present

    def _probabilities(self, encoded: Encoding, present: dict[Modality, torch.Tensor]) -> np.ndarray:
        """``(b, classes)`` probabilities with ``present`` as the observed modalities (the rest reconstructed)."""
        return self.model.head(encoded, present).float().softmax(-1).cpu().numpy()

    def _named(self, probs: np.ndarray) -> dict[str, float]:
        return {n: float(p) for n, p in zip(self.config.labels, probs)}


def _video_duration(video: str | Path) -> float:
    """Seconds of video, from the header or, failing that, from the frame times (streamed)."""
    from bridge.media import MediaError, iter_video_frames, video_info

    info = video_info(video)
    if info.duration:
        return float(info.duration)
    times = [t for t, _ in iter_video_frames(video)]
    if not times:
        raise MediaError(video, "no video frames")
    step = times[-1] - times[-2] if len(times) > 1 else 1.0 / (info.fps or 25.0)
    return float(times[-1] + step)
