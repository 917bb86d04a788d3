"""Turning a :class:`~bridge.data.sample.Sample` into model inputs: face crops to normalised
tensors, waveforms to log-mel filterbanks, texts to token ids, features to padded steps.

The same :class:`Preprocessor`, rebuilt from a checkpoint's config, serves training,
evaluation and inference, so preprocessing cannot drift between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torchaudio
from torch import Tensor

from bridge.batch import Batch
from bridge.config import AudioConfig, BridgeConfig, FaceConfig, FeatureConfig, TextConfig
from bridge.data.sample import Sample
from bridge.modality import Modality
from bridge.tokenizer import load_tokenizer


@dataclass
class Example:
    """One preprocessed sample: per present modality an input tensor and its padding mask."""

    inputs: dict[Modality, tuple[Tensor, Tensor]]
    label: int
    id: str


def even_indices(n: int, k: int) -> np.ndarray:
    """``min(n, k)`` indices spread evenly over ``range(n)``."""
    if n <= k:
        return np.arange(n)
    return np.linspace(0, n - 1, k).round().astype(int)


MAX_GAIN_DB = 40.0  # a near-silent clip is raised at most this much, not to the target


def normalise_loudness(wave: Tensor, sample_rate: int, target_db: float) -> Tensor:
    """``wave`` scaled so the mean power of its louder half of 25 ms frames is ``target_db`` dBFS.

    The louder half skips the pauses around speech, so a clip's level does not depend on how much
    silence it has; the gain is capped at :data:`MAX_GAIN_DB` and the result clipped to [-1, 1].
    """
    frame = max(1, int(0.025 * sample_rate))
    n = wave.numel() // frame
    if n == 0:
        return wave
    power = wave[: n * frame].reshape(n, frame).double().pow(2).mean(dim=1)
    loud = power.sort(descending=True).values[: max(1, n // 2)].mean()
    if loud <= 0:
        return wave
    gain_db = min(target_db - 10 * float(torch.log10(loud)), MAX_GAIN_DB)
    return (wave * 10 ** (gain_db / 20)).clamp(-1.0, 1.0)


class Preprocessor:
    """Builds model inputs for the modalities a config has.

    Args:
        config: the model config, which fixes every preprocessing setting.
        tokenizer_dir: a saved tokenizer to use instead of ``config.text.tokenizer`` (checkpoints).
    """

    def __init__(self, config: BridgeConfig, tokenizer_dir: Path | None = None):
        self.config = config
        self.tokenizer = None
        if isinstance(config.text, TextConfig):
            source = str(tokenizer_dir) if tokenizer_dir is not None else config.text.tokenizer
            self.tokenizer = load_tokenizer(source, config.text.vocab_size, config.text.max_length)

    # --- one modality each -------------------------------------------------------------
    def face(self, crops: np.ndarray, cfg: FaceConfig) -> tuple[Tensor, Tensor]:
        """uint8 crops ``(t, h, w)`` or ``(t, h, w, 3)`` -> ``(t', c, s, s)`` normalised, ``(t',)`` mask."""
        crops = np.asarray(crops)
        if crops.ndim == 2 or (crops.ndim == 3 and crops.shape[-1] == 3):
            crops = crops[None]  # one grayscale (h, w) or RGB (h, w, 3) image
        if crops.ndim not in (3, 4) or crops.shape[0] == 0:
            raise ValueError(f"face crops must be (t, h, w) or (t, h, w, 3), got shape {crops.shape}")
        size = cfg.img_size or 224
        frames = []
        for crop in crops[even_indices(len(crops), cfg.num_frames)]:
            if crop.ndim == 3 and cfg.in_chans == 1:
                crop = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
            elif crop.ndim == 2 and cfg.in_chans == 3:
                crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2RGB)
            if crop.shape[0] != size or crop.shape[1] != size:
                interp = cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR
                crop = cv2.resize(crop, (size, size), interpolation=interp)
            frames.append(crop.reshape(size, size, cfg.in_chans))
        x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div_(255.0)  # (t, c, s, s)
        x = (x - cfg.mean) / cfg.std
        return x, torch.ones(len(frames), dtype=torch.bool)

    def audio(self, wave: np.ndarray, sample_rate: int, cfg: AudioConfig) -> tuple[Tensor, Tensor]:
        """Waveform ``(n,)`` -> normalised log-mel ``(max_frames, mels)`` (centre crop or pad) and mask.

        ``arch="ast"``: Kaldi fbank normalised by ``fbank_mean``/``fbank_std``, zero padding;
        ``arch="whisper"``: Whisper's log-mel (:func:`~bridge.encoders.whisper.whisper_log_mel`),
        padded with the clip's floor (what Whisper's silence padding gives).
        """
        w = torch.as_tensor(np.asarray(wave, dtype=np.float32))
        if w.ndim != 1:
            raise ValueError(f"audio must be a mono waveform (n,), got shape {tuple(w.shape)}")
        if not torch.isfinite(w).all():
            raise ValueError("audio contains NaN or infinite samples")
        if sample_rate != cfg.sample_rate:
            w = torchaudio.functional.resample(w, sample_rate, cfg.sample_rate)
        if cfg.loudness is not None:
            w = normalise_loudness(w, cfg.sample_rate, cfg.loudness)
        min_len = int(0.025 * cfg.sample_rate)  # one 25 ms window
        if w.numel() < min_len:
            w = torch.nn.functional.pad(w, (0, min_len - w.numel()))
        if cfg.arch == "whisper":
            from bridge.encoders.whisper import whisper_log_mel  # only Whisper configs pay for the import

            fbank = whisper_log_mel(w, cfg.num_mel_bins).T  # (frames, mels)
            pad_value = float(fbank.min())
        else:
            fbank = torchaudio.compliance.kaldi.fbank(  # (frames, mels), AST's recipe
                (w - w.mean())[None], htk_compat=True, sample_frequency=cfg.sample_rate, use_energy=False,
                window_type="hanning", num_mel_bins=cfg.num_mel_bins, dither=0.0, frame_shift=10)
            fbank = (fbank - cfg.fbank_mean) / (2 * cfg.fbank_std)
            pad_value = 0.0
        n = fbank.shape[0]
        if n > cfg.max_frames:
            start = (n - cfg.max_frames) // 2
            fbank, valid = fbank[start: start + cfg.max_frames], cfg.max_frames
        else:
            valid = n
        out = torch.full((cfg.max_frames, cfg.num_mel_bins), pad_value)
        out[:valid] = fbank[:valid]
        mask = torch.zeros(cfg.max_frames, dtype=torch.bool)
        mask[:valid] = True
        return out, mask

    def text(self, text: str) -> tuple[Tensor, Tensor]:
        """A string -> token ids ``(L,)`` and mask."""
        if not text or not text.strip():
            raise ValueError("text is empty")
        ids, mask = self.tokenizer.encode(text)
        return torch.from_numpy(ids), torch.from_numpy(mask)

    def features(self, values: np.ndarray, cfg: FeatureConfig) -> tuple[Tensor, Tensor]:
        """Features ``(s, f)`` or ``(f,)`` -> ``(max_steps, f)`` zero-padded and mask."""
        x = np.asarray(values, dtype=np.float32)
        x = x[None] if x.ndim == 1 else x
        if x.ndim != 2 or x.shape[1] != cfg.input_dim:
            raise ValueError(f"features must be (steps, {cfg.input_dim}), got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("features contain NaN or infinite values")
        x = x[even_indices(len(x), cfg.max_steps)]
        out = torch.zeros(cfg.max_steps, cfg.input_dim)
        out[: len(x)] = torch.from_numpy(x)
        mask = torch.zeros(cfg.max_steps, dtype=torch.bool)
        mask[: len(x)] = True
        return out, mask

    # --- whole samples -------------------------------------------------------------------
    def __call__(self, sample: Sample) -> Example:
        """Preprocess every modality of the model that ``sample`` carries (others stay absent)."""
        inputs: dict[Modality, tuple[Tensor, Tensor]] = {}
        for m, cfg in self.config.encoders.items():
            if isinstance(cfg, FeatureConfig):
                if m in sample.features:
                    inputs[m] = self.features(sample.features[m], cfg)
            elif isinstance(cfg, FaceConfig) and sample.face is not None:
                inputs[m] = self.face(sample.face, cfg)
            elif isinstance(cfg, AudioConfig) and sample.audio is not None:
                inputs[m] = self.audio(sample.audio, sample.sample_rate, cfg)
            elif isinstance(cfg, TextConfig) and sample.text is not None:
                inputs[m] = self.text(sample.text)
        return Example(inputs, sample.label, sample.id)


def collate(examples: list[Example]) -> Batch:
    """Stack examples; a modality some samples lack is zero-filled there with ``present`` False.

    Face inputs of different frame counts are padded along time.
    """
    b = len(examples)
    modalities = [m for m in Modality if any(m in e.inputs for e in examples)]
    inputs, masks, present = {}, {}, {}
    for m in modalities:
        ref_x, ref_mask = next(e.inputs[m] for e in examples if m in e.inputs)
        steps = max(e.inputs[m][0].shape[0] for e in examples if m in e.inputs)
        x = torch.zeros((b, steps, *ref_x.shape[1:]), dtype=ref_x.dtype)
        mask = torch.zeros((b, steps), dtype=torch.bool)
        for i, e in enumerate(examples):
            if m in e.inputs:
                xi, mi = e.inputs[m]
                x[i, : xi.shape[0]] = xi
                mask[i, : mi.shape[0]] = mi
        inputs[m], masks[m] = x, mask
        present[m] = torch.tensor([m in e.inputs for e in examples])
    labels = torch.tensor([e.label for e in examples], dtype=torch.long)
    return Batch(inputs, masks, present, labels, [e.id for e in examples])
