"""Robustness protocols: sample-level missing modalities and input noise, with their summaries.

- Missing rate η (GCNet, Lian et al., TPAMI 2023): each (sample, modality) is dropped with
  probability η and every sample keeps at least one of the modalities it has
  (:func:`bridge.presence.drop_modalities`, the same function as training's modality dropout).
- Noise levels in [0, 1] on the model inputs (MultiBench, Liang et al., NeurIPS 2021), seeded,
  per modality or all at once; level 0 returns the batch unchanged. What each level does:

  - face (normalised pixels): Gaussian pixel noise σ = 0.3·level (in [0, 1] pixel units,
    clipped to [0, 1]), Gaussian blur σ = 2·level pixels, one grey occlusion square covering
    ``level / 2`` of each frame (same place in every frame of a sample), and each real frame
    dropped (mask off) with probability ``level / 2``, one frame always kept.
  - audio (normalised log-mel): the waveform is gone after preprocessing, so additive noise is
    added in the mel power domain: per sample, noise of power ``P_signal · (level / (1 - level))²``
    (an SNR of ``20·log10((1 - level) / level)`` dB: 19 dB at 0.1, 0 dB at 0.5, -19 dB at 0.9),
    exponentially distributed per (frame, bin) like a white-noise periodogram and flat across
    mel bins (an approximation: kaldi's unnormalised filters would tilt it). Before that, each
    100 ms chunk of real frames is dropped with probability ``level / 2``: set to silence (the
    sample's lowest log-mel value), mask unchanged, so the noise fills the gap like a dropout on
    a live channel.
  - text (token ids): each content token (not padding, [CLS], [SEP] or another special id) is
    corrupted with probability ``level`` by one of, uniformly: replacement by a random id, a
    swap with the next content token, deletion, or the unknown token. Rows are re-packed to
    the left and the mask follows. With the hash tokenizer a token is a word; with a pretrained
    tokenizer it is a word piece.
  - features (pre-extracted vectors, any modality): Gaussian noise σ = level on the standardised
    values (σ = level · the encoder's training std in raw units), and each real step dropped
    (zeroed, mask off) with probability ``level / 2``, one step always kept.

- Summaries: the area under a metric-vs-level curve (trapezoid, normalised by the level range),
  and MultiBench's effective robustness against a baseline curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from bridge.batch import Batch
from bridge.config import AudioConfig, FaceConfig, FeatureConfig, TextConfig
from bridge.modality import Modality

AUDIO_CHUNK_FRAMES = 10  # 100 ms at kaldi's 10 ms frame shift


# --- noise ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TextVocab:
    """What text corruption needs to know about the tokenizer.

    Args:
        size: number of token ids.
        unk: the unknown-token id.
        pad: the padding id.
        specials: ids never corrupted nor drawn as replacements ([CLS], [SEP], padding, ...).
    """

    size: int
    unk: int
    pad: int = 0
    specials: frozenset[int] = frozenset({0, 1, 2, 3})


@dataclass(frozen=True)
class NoiseContext:
    """Per modality, the encoder config its inputs follow, plus what some corruptions need.

    Args:
        encoders: per modality, the encoder config (``FaceConfig``, ``AudioConfig``, ...).
        vocab: the text tokenizer's ids, when text is tokenised.
        feature_std: per feature modality, the ``(f,)`` std the encoder standardises with.
    """

    encoders: dict[Modality, object]
    vocab: TextVocab | None = None
    feature_std: dict[Modality, Tensor] = field(default_factory=dict)


def noise_context(model, preprocessor) -> NoiseContext:
    """The :class:`NoiseContext` of a :class:`~bridge.model.BridgeModel` and its preprocessor."""
    encoders = dict(model.config.encoders)
    vocab = None
    tok = getattr(preprocessor, "tokenizer", None)
    if tok is not None:
        hf = getattr(tok, "tokenizer", None)
        if hf is None:  # the hash tokenizer
            vocab = TextVocab(tok.vocab_size, unk=3)
        else:
            vocab = TextVocab(len(hf), unk=hf.unk_token_id, pad=hf.pad_token_id or 0,
                              specials=frozenset(hf.all_special_ids))
    feature_std = {m: (model.encoders[m.value].std.detach().cpu() if cfg.normalize else torch.ones(cfg.input_dim))
                   for m, cfg in encoders.items() if isinstance(cfg, FeatureConfig)}
    return NoiseContext(encoders, vocab, feature_std)


def _keep_one(drop: Tensor, real: Tensor, generator: torch.Generator) -> Tensor:
    """``drop`` ``(b, t)`` with one real step of every row with real steps left undropped."""
    kept = real & ~drop
    lost = ~kept.any(dim=1) & real.any(dim=1)  # (b,)
    if lost.any():
        choice = (torch.rand(real.shape, generator=generator) * real).argmax(dim=1)  # (b,)
        rows = lost.nonzero().squeeze(1)
        drop = drop.clone()
        drop[rows, choice[rows]] = False
    return drop


def _gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Blur images ``(n, c, h, w)`` with a Gaussian of ``sigma`` pixels (reflect padding)."""
    radius = max(1, math.ceil(3 * sigma))
    radius = min(radius, x.shape[-1] - 1, x.shape[-2] - 1)
    grid = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (grid / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def corrupt_face(frames: Tensor, mask: Tensor, level: float, cfg: FaceConfig,
                 generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Noise, blur, occlusion and dropped frames on normalised face crops ``(b, t, c, h, w)``."""
    b, t, c, h, w = frames.shape
    dev = frames.device
    pixels = frames.float().cpu() * cfg.std + cfg.mean  # (b, t, c, h, w) in [0, 1]
    pixels = pixels + 0.3 * level * torch.randn(pixels.shape, generator=generator)
    pixels = _gaussian_blur(pixels.reshape(b * t, c, h, w), 2 * level).reshape(b, t, c, h, w)
    side_h, side_w = round(h * math.sqrt(level / 2)), round(w * math.sqrt(level / 2))
    top = (torch.rand(b, generator=generator) * (h - side_h + 1)).long()  # (b,)
    left = (torch.rand(b, generator=generator) * (w - side_w + 1)).long()
    rows, cols = torch.arange(h), torch.arange(w)
    inside = (((rows[None] >= top[:, None]) & (rows[None] < (top + side_h)[:, None]))[:, :, None]
              & ((cols[None] >= left[:, None]) & (cols[None] < (left + side_w)[:, None]))[:, None, :])  # (b, h, w)
    pixels = torch.where(inside[:, None, None], torch.full_like(pixels, 0.5), pixels).clamp(0, 1)
    real = mask.cpu()
    drop = _keep_one(torch.rand(real.shape, generator=generator) < level / 2, real, generator)  # (b, t)
    pixels = pixels.masked_fill(drop[:, :, None, None, None], cfg.mean)
    x = ((pixels - cfg.mean) / cfg.std).to(frames.dtype)
    x = torch.where(real[:, :, None, None, None], x, frames.cpu())  # padding frames stay as they were
    return x.to(dev), (real & ~drop).to(dev)


def _log_power(x: Tensor, cfg: AudioConfig, inverse: bool = False) -> Tensor:
    """An audio encoder's input frames -> natural-log mel power (or back, with ``inverse``)."""
    if cfg.arch == "whisper":  # (log10(power) + 4) / 4
        return x / (4 * math.log(10)) + 1 if inverse else (4 * x - 4) * math.log(10)
    return (x - cfg.fbank_mean) / (2 * cfg.fbank_std) if inverse else x * (2 * cfg.fbank_std) + cfg.fbank_mean


def corrupt_audio(fbank: Tensor, mask: Tensor, level: float, cfg: AudioConfig,
                  generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Dropped 100 ms chunks and additive noise at an SNR set by ``level`` on normalised log-mel ``(b, frames, mels)``."""
    b, n, mels = fbank.shape
    dev = fbank.device
    real = mask.cpu()  # (b, n)
    logmel = _log_power(fbank.float().cpu(), cfg)  # natural-log mel power
    floor = logmel.masked_fill(~real[:, :, None], float("inf")).amin(dim=(1, 2))  # (b,) silence
    chunks = math.ceil(n / AUDIO_CHUNK_FRAMES)
    drop = torch.rand(b, chunks, generator=generator) < level / 2
    drop = drop.repeat_interleave(AUDIO_CHUNK_FRAMES, dim=1)[:, :n] & real  # (b, n)
    logmel = torch.where(drop[:, :, None], floor[:, None, None].expand_as(logmel), logmel)
    power = logmel.exp()
    weight = real[:, :, None].float()
    signal = (power * weight).sum(dim=(1, 2)) / (weight.sum(dim=(1, 2)) * mels).clamp_min(1)  # (b,)
    ratio = (level / (1 - level)) ** 2 if level < 1 else 1e6
    noise = signal[:, None, None] * ratio * -torch.log1p(-torch.rand(power.shape, generator=generator))  # Exp(1)
    noisy = _log_power(torch.log(power + noise), cfg, inverse=True)
    x = torch.where(real[:, :, None], noisy, fbank.float().cpu()).to(fbank.dtype)
    return x.to(dev), mask


def corrupt_text(ids: Tensor, mask: Tensor, level: float, vocab: TextVocab,
                 generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Word corruption (replace, swap, delete, unknown) on token ids ``(b, L)``; rows re-packed left."""
    b, length = ids.shape
    rows = ids.cpu().tolist()
    real = mask.cpu().tolist()
    out = torch.full((b, length), vocab.pad, dtype=ids.dtype)
    out_mask = torch.zeros(b, length, dtype=torch.bool)
    specials = sorted(vocab.specials)
    for i in range(b):
        tokens = [tok for tok, keep in zip(rows[i], real[i]) if keep]
        content = [j for j, tok in enumerate(tokens) if tok not in vocab.specials]
        hit = torch.rand(len(content), generator=generator) < level
        ops = torch.randint(0, 4, (len(content),), generator=generator)
        draws = torch.randint(0, vocab.size - len(specials), (len(content),), generator=generator)
        deleted = set()
        for k, j in enumerate(content):
            if not hit[k]:
                continue
            op = int(ops[k])
            if op == 0:  # replace by a random non-special id
                new = int(draws[k])
                for s in specials:  # map [0, size - #specials) onto the non-special ids
                    new += new >= s
                tokens[j] = new
            elif op == 1 and k + 1 < len(content):  # swap with the next content token
                nxt = content[k + 1]
                tokens[j], tokens[nxt] = tokens[nxt], tokens[j]
            elif op == 2:
                deleted.add(j)
            elif op == 3:
                tokens[j] = vocab.unk
        kept = [tok for j, tok in enumerate(tokens) if j not in deleted]
        out[i, : len(kept)] = torch.tensor(kept, dtype=ids.dtype)
        out_mask[i, : len(kept)] = True
    return out.to(ids.device), out_mask.to(mask.device)


def corrupt_features(x: Tensor, mask: Tensor, level: float, std: Tensor,
                     generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Gaussian noise σ = level on standardised features ``(b, s, f)`` and dropped steps."""
    dev = x.device
    real = mask.cpu()
    noisy = x.float().cpu() + level * std * torch.randn(x.shape, generator=generator)
    drop = _keep_one(torch.rand(real.shape, generator=generator) < level / 2, real, generator)  # (b, s)
    keep = real & ~drop
    noisy = torch.where(keep[:, :, None], noisy, torch.zeros_like(noisy))
    noisy = torch.where(real[:, :, None], noisy, x.float().cpu())
    return noisy.to(x.dtype).to(dev), keep.to(dev)


def corrupt_batch(batch: Batch, level: float, modalities: Sequence[Modality], context: NoiseContext,
                  generator: torch.Generator) -> Batch:
    """The batch with ``modalities`` corrupted at ``level`` (see the module docstring).

    Level 0 returns ``batch`` itself. ``present`` is unchanged: a noisy modality is still there.

    Args:
        batch: model inputs.
        level: noise level in [0, 1].
        modalities: which modalities to corrupt (those the batch lacks are skipped).
        context: encoder configs and tokenizer ids (:func:`noise_context`).
        generator: CPU random generator (for reproducibility).

    Raises:
        ValueError: when ``level`` is outside [0, 1].
    """
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"noise level {level} is outside [0, 1]")
    if level == 0:
        return batch
    inputs, masks = dict(batch.inputs), dict(batch.masks)
    for m in modalities:
        if m not in batch.inputs or m not in context.encoders:
            continue
        cfg = context.encoders[m]
        x, mask = batch.inputs[m], batch.masks[m]
        if isinstance(cfg, FeatureConfig):
            inputs[m], masks[m] = corrupt_features(x, mask, level, context.feature_std[m], generator)
        elif isinstance(cfg, FaceConfig):
            inputs[m], masks[m] = corrupt_face(x, mask, level, cfg, generator)
        elif isinstance(cfg, AudioConfig):
            inputs[m], masks[m] = corrupt_audio(x, mask, level, cfg, generator)
        elif isinstance(cfg, TextConfig):
            if context.vocab is None:
                raise ValueError("text corruption needs the tokenizer's ids (NoiseContext.vocab)")
            inputs[m], masks[m] = corrupt_text(x, mask, level, context.vocab, generator)
    return Batch(inputs, masks, batch.present, batch.labels, batch.ids)


# --- summaries --------------------------------------------------------------------------------
def area_under_curve(levels: Sequence[float], values: Sequence[float]) -> float:
    """Trapezoid area under ``values`` over ``levels``, divided by the level range.

    A flat curve at ``v`` gives ``v``, whatever the levels.

    Raises:
        ValueError: on fewer than two levels, unsorted levels or mismatched lengths.
    """
    x, y = np.asarray(levels, dtype=float), np.asarray(values, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError("an area needs at least two levels and one value per level")
    if np.any(np.diff(x) <= 0):
        raise ValueError("levels must be strictly increasing")
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)) / (x[-1] - x[0]))


def effective_robustness(model_curve: Sequence[float], baseline_curve: Sequence[float]) -> float:
    """MultiBench's effective robustness: ``sum(f - (b + f[0] - b[0]))``.

    The baseline curve (a late-fusion model in MultiBench) is shifted to start at the model's
    clean score, and the model's gains over it are summed over the levels: positive means the
    model degrades more slowly than the baseline.

    Args:
        model_curve: the model's metric at each level, the clean level first.
        baseline_curve: the baseline's metric at the same levels.

    Raises:
        ValueError: on curves of different or zero length.
    """
    f, b = np.asarray(model_curve, dtype=float), np.asarray(baseline_curve, dtype=float)
    if f.shape != b.shape or f.ndim != 1 or not len(f):
        raise ValueError("the model and baseline curves need the same, non-zero number of levels")
    return float(np.sum(f - (b + f[0] - b[0])))
