"""Training-time augmentation of face crops, as facial-expression work uses it: horizontal flips,
small rotations, shifts and zooms (one random affine warp per sample), and random erasing
(Zhong et al., AAAI 2020); optionally, what a warp brings in from beyond the crop's edge is taken
from another face of the batch instead of repeating the edge (``surround``). It runs on the batch
tensors, on the training device, after the shared preprocessing: inference sees the same crops as
training, minus the randomness.

Every frame of a sample gets the same warp, so a clip stays one coherent face track.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class FaceAugment:
    """Random flip, affine warp and erasing of normalised face crops ``(b, t, c, h, w)``.

    Args:
        flip: chance of a horizontal flip.
        degrees: rotations are drawn from ``[-degrees, degrees]``.
        translate: shifts are drawn from ``[-translate, translate]`` of the side, on each axis.
        scale: zoom factors are drawn from this range (above 1 zooms in).
        erase: chance of erasing one rectangle (set to 0, the normalised mid-grey).
        erase_area: the rectangle's area as a fraction of the crop, drawn from this range.
        surround: chance that the part of a warped crop that lies beyond the original crop's edge
            shows the next face of the batch at the same place instead of the edge's pixels
            repeated. A face found in a frame and cropped sees the frame's own surroundings there
            wherever its crop strays past the training crop's framing; repeated edges show the model
            a border that a frame does not (docs/faces.md).
    """

    flip: float = 0.5
    degrees: float = 10.0
    translate: float = 0.1
    scale: tuple[float, float] = (0.9, 1.1)
    erase: float = 0.25
    erase_area: tuple[float, float] = (0.02, 0.2)
    surround: float = 0.0

    def __call__(self, faces: Tensor, generator: torch.Generator) -> Tensor:
        """Augmented copy of ``faces``; draws from ``generator`` (a CPU generator) only."""
        if faces.ndim != 5:
            raise ValueError(f"face batch must be (b, t, c, h, w), got shape {tuple(faces.shape)}")
        b, t, c, h, w = faces.shape

        def uniform(low: float, high: float) -> Tensor:
            return low + (high - low) * torch.rand(b, generator=generator)

        angle = uniform(-self.degrees, self.degrees) * math.pi / 180
        zoom = uniform(*self.scale)
        sign = torch.where(torch.rand(b, generator=generator) < self.flip, -1.0, 1.0)
        shift = uniform(-self.translate, self.translate), uniform(-self.translate, self.translate)
        # affine_grid maps output coordinates in [-1, 1] to input ones: rotate, zoom in by 1/zoom, mirror x.
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack([torch.stack([cos * sign, -sin, 2 * shift[0]], -1),
                             torch.stack([sin * sign, cos, 2 * shift[1]], -1)], 1)  # (b, 2, 3)
        theta = theta.to(faces.device, faces.dtype).repeat_interleave(t, 0)
        flat = faces.reshape(b * t, c, h, w)
        grid = F.affine_grid(theta, list(flat.shape), align_corners=False)
        out = F.grid_sample(flat, grid, mode="bilinear", padding_mode="border", align_corners=False)
        out = out.reshape(b, t, c, h, w)
        if self.surround > 0:
            # grid points beyond [-1, 1] lie outside the crop (align_corners=False: its outer edge)
            beyond = (grid.abs().amax(-1) > 1).reshape(b, t, 1, h, w)
            chosen = (torch.rand(b, generator=generator) < self.surround).to(faces.device)
            out = torch.where(beyond & chosen[:, None, None, None, None], faces.roll(1, 0), out)

        # Random erasing: one rectangle per chosen sample, aspect ratio log-uniform in [0.3, 3.3].
        area = uniform(*self.erase_area)
        aspect = torch.exp(uniform(math.log(0.3), math.log(3.3)))
        eh = (torch.sqrt(area * aspect) * h).clamp(1, h).floor()
        ew = (torch.sqrt(area / aspect) * w).clamp(1, w).floor()
        y0 = (torch.rand(b, generator=generator) * (h - eh + 1)).floor()
        x0 = (torch.rand(b, generator=generator) * (w - ew + 1)).floor()
        chosen = torch.rand(b, generator=generator) < self.erase
        ys, xs = torch.arange(h), torch.arange(w)
        rows = (ys >= y0[:, None]) & (ys < (y0 + eh)[:, None])  # (b, h)
        cols = (xs >= x0[:, None]) & (xs < (x0 + ew)[:, None])  # (b, w)
        hole = (rows[:, :, None] & cols[:, None, :] & chosen[:, None, None]).to(faces.device)
        return out.masked_fill(hole[:, None, None], 0.0)


@dataclass(frozen=True)
class AudioAugment:
    """Random level, additive noise and tempo of normalised log-mel batches ``(b, frames, mels)``.

    It works on the filterbank the shared preprocessing made, in the power domain that the
    filterbank's scale stands for, so a cached training set is augmented afresh every epoch:

    - level: a gain drawn in decibels shifts every log-power value alike;
    - noise: stationary noise at an SNR drawn in decibels, relative to the clip's mean power over its
      valid frames and flat across mel bands, is added to the power (cross terms average out);
    - tempo: the valid frames are stretched or squeezed in time (linear interpolation), then
      centre-cropped or padded back, as the preprocessing does.

    Args:
        arch: the audio encoder's front-end scale: ``"whisper"`` (``(log10 P + 4) / 4``, floored 2
            below the clip's peak) or ``"ast"`` (``(ln P - mean) / (2 std)``).
        gain_db: gains are drawn from this range.
        snr_db: SNRs are drawn from this range.
        noise: chance of adding noise to a clip.
        tempo: stretch factors are drawn from this range (above 1 is faster).
        fbank_mean: the AST scale's mean (``ast`` only).
        fbank_std: the AST scale's standard deviation (``ast`` only).
    """

    arch: str = "whisper"
    gain_db: tuple[float, float] = (-6.0, 6.0)
    snr_db: tuple[float, float] = (5.0, 30.0)
    noise: float = 0.5
    tempo: tuple[float, float] = (0.9, 1.1)
    fbank_mean: float = -4.27
    fbank_std: float = 4.57

    def _to_log10(self, x: Tensor) -> Tensor:
        return x * 4 - 4 if self.arch == "whisper" else (x * 2 * self.fbank_std + self.fbank_mean) / math.log(10)

    def _from_log10(self, log10: Tensor) -> Tensor:
        if self.arch == "whisper":
            return (log10 + 4) / 4
        return (log10 * math.log(10) - self.fbank_mean) / (2 * self.fbank_std)

    def __call__(self, fbank: Tensor, mask: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Augmented copies of ``fbank`` ``(b, frames, mels)`` and its frame mask ``(b, frames)``."""
        if fbank.ndim != 3 or mask.shape != fbank.shape[:2]:
            raise ValueError(f"audio batch must be (b, frames, mels) with a (b, frames) mask, got "
                             f"{tuple(fbank.shape)} and {tuple(mask.shape)}")
        b, frames, _ = fbank.shape

        def uniform(low: float, high: float) -> Tensor:
            return low + (high - low) * torch.rand(b, generator=generator)

        gain, snr = uniform(*self.gain_db), uniform(*self.snr_db)
        noisy = torch.rand(b, generator=generator) < self.noise
        tempo = uniform(*self.tempo)
        out, out_mask = fbank.clone(), mask.clone()
        for i in range(b):
            valid = mask[i].nonzero().flatten()
            if len(valid) < 2:
                continue
            clip = fbank[i, valid[0]: valid[-1] + 1]  # (n, mels)
            log10 = self._to_log10(clip) + float(gain[i]) / 10  # power gain: 10 log10 P shifts by gain_db
            if noisy[i]:
                power = torch.pow(10.0, log10)
                level = power.mean() * 10 ** (-float(snr[i]) / 10)
                log10 = torch.log10(power + level)
            if self.arch == "whisper":
                log10 = torch.maximum(log10, log10.max() - 8.0)  # Whisper's floor, 8 below the peak
            clip = self._from_log10(log10)
            n = max(2, round(clip.shape[0] / float(tempo[i])))
            clip = F.interpolate(clip.T[None], size=n, mode="linear", align_corners=True)[0].T  # (n', mels)
            pad = float(clip.min()) if self.arch == "whisper" else 0.0
            row = torch.full_like(fbank[i], pad)
            keep = torch.zeros(frames, dtype=torch.bool, device=mask.device)
            if n > frames:
                start = (n - frames) // 2
                row[:], keep[:] = clip[start: start + frames], True
            else:
                row[:n], keep[:n] = clip, True
            out[i], out_mask[i] = row, keep
        return out, out_mask
