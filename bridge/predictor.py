"""Prediction from raw files or arrays with a trained checkpoint: the Python API behind ``infer.py``.

Media goes through the same decoding, face detection and preprocessing as training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bridge.checkpoint import load_checkpoint, tokenizer_dir
from bridge.config import AudioConfig, FaceConfig, TextConfig
from bridge.data.sample import Sample
from bridge.modality import Modality
from bridge.preprocess import Preprocessor, collate


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
    """

    label: str
    probabilities: dict[str, float]
    observed: list[str]
    reconstructed: list[str]
    notes: list[str] = field(default_factory=list)
    face_frames: dict[str, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class InputError(ValueError):
    """An input the predictor cannot use (no modality, a modality the checkpoint lacks, ...)."""


class Predictor:
    """A loaded checkpoint plus its preprocessing.

    Args:
        model: a loaded :class:`~bridge.model.BridgeModel`.
        preprocessor: the matching :class:`~bridge.preprocess.Preprocessor`.
        device: where to run.
    """

    def __init__(self, model, preprocessor: Preprocessor, device: torch.device | str = "cpu",
                 detect_faces: bool = True):
        self.model = model.eval()
        self.detect_faces = detect_faces
        self.preprocessor = preprocessor
        self.device = torch.device(device)
        self.config = model.config
        self._detector = None

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str = "cpu", detect_faces: bool = True) -> "Predictor":
        """Load a checkpoint directory written by ``train.py``.

        Args:
            directory: the checkpoint.
            device: where to run.
            detect_faces: find and crop the largest face; False when images and frames are
                already face crops (as FER-2013's are).
        """
        model, _ = load_checkpoint(Path(directory), device)
        return cls(model, Preprocessor(model.config, tokenizer_dir(Path(directory))), device, detect_faces)

    @property
    def detector(self):
        if self._detector is None:
            from bridge.media import FaceDetector

            self._detector = FaceDetector()
        return self._detector

    def _check(self, modality: Modality, raw: bool = True) -> None:
        cfg = self.config.encoders.get(modality)
        if cfg is None:
            have = ", ".join(m.value for m in self.config.modalities)
            raise InputError(f"this checkpoint has no {modality.value} modality (it has {have})")
        if raw and cfg.kind == "features":
            raise InputError(f"this checkpoint takes {modality.value} as pre-extracted features, not raw media")

    def _face_from_image(self, image: str | Path | np.ndarray,
                         notes: list[str]) -> tuple[np.ndarray | None, dict | None]:
        from bridge.media import load_image

        cfg: FaceConfig = self.config.face
        img = load_image(image) if isinstance(image, (str, Path)) else np.asarray(image)
        if not self.detect_faces:
            return img[None], None
        crop = self.detector.crop_largest(img, margin=cfg.margin, size=cfg.img_size or 224, grayscale=cfg.in_chans == 1)
        if crop is None:
            notes.append("no face found in the image")
            return None, {"searched": 1, "with_face": 0}
        return crop[None], {"searched": 1, "with_face": 1}

    def _face_from_video(self, video: str | Path, notes: list[str], start: float = 0.0,
                         end: float | None = None) -> tuple[np.ndarray | None, dict | None]:
        from bridge.media import face_track, read_video_frames

        cfg: FaceConfig = self.config.face
        frames, _ = read_video_frames(video, num_frames=max(cfg.num_frames * 2, 8), start=start, end=end)
        if not self.detect_faces:
            return frames, None
        crops, found, _ = face_track(frames, self.detector, cfg.margin, cfg.img_size or 224, cfg.in_chans == 1)
        info = {"searched": int(len(found)), "with_face": int(found.sum())}
        if not len(crops):
            notes.append("no face found in the video")
            return None, info
        return crops, info

    def sample(self, image=None, audio=None, text: str | None = None, video=None, sample_rate: int = 16_000,
               notes: list[str] | None = None) -> tuple[Sample, dict | None]:
        """Decode the given inputs into a :class:`Sample` (face detection included)."""
        from bridge.media import MediaError, audio_from_video, load_audio

        notes = notes if notes is not None else []
        if image is None and audio is None and text is None and video is None:
            raise InputError("no input given: pass at least one of image, audio, text or video")
        if image is not None and video is not None:
            raise InputError("give either an image or a video for the face, not both")
        face, face_info, wave = None, None, None
        if image is not None or video is not None:
            if video is not None and self.config.face is None and self.config.audio is None:
                raise InputError("this checkpoint has neither face nor audio, which a video provides")
            if image is not None or self.config.face is not None:
                self._check(Modality.FACE)
                face, face_info = (self._face_from_image(image, notes) if image is not None
                                   else self._face_from_video(video, notes))
        if video is not None and audio is None and isinstance(self.config.audio, AudioConfig):
            try:
                wave = audio_from_video(video, self.config.audio.sample_rate)
                sample_rate = self.config.audio.sample_rate
            except MediaError as e:
                if "no audio stream" not in str(e):
                    raise
                notes.append("the video has no sound track")
        if audio is not None:
            self._check(Modality.AUDIO)
            if isinstance(audio, (str, Path)):
                wave, sample_rate = load_audio(audio, self.config.audio.sample_rate), self.config.audio.sample_rate
            else:
                wave = np.asarray(audio, dtype=np.float32)
        if text is not None:
            self._check(Modality.TEXT)
            if not isinstance(self.config.text, TextConfig):
                raise InputError("this checkpoint takes text as pre-extracted features, not raw text")
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
            InputError: nothing given, an empty text, or a modality the checkpoint lacks.
            MediaError: an unreadable or unsupported file.
        """
        notes: list[str] = []
        sample, face_info = self.sample(image, audio, text, video, sample_rate, notes)
        example = self.preprocessor(sample)
        if not example.inputs:
            raise InputError(f"{'; '.join(notes) or 'no usable input'}, and no other input to predict from")
        batch = collate([example]).to(self.device)
        out = self.model(batch)
        probs = out.logits.float().softmax(-1)[0].cpu().numpy()
        observed = [m.value for m in self.config.modalities if m in example.inputs]
        return Prediction(label=self.config.labels[int(probs.argmax())],
                          probabilities={n: float(p) for n, p in zip(self.config.labels, probs)},
                          observed=observed,
                          reconstructed=[m.value for m in self.config.modalities if m.value not in observed],
                          notes=notes, face_frames=face_info)
