"""Training-time augmentation of face crops, as facial-expression work uses it: horizontal flips,
small rotations, shifts and zooms (one random affine warp per sample), and random erasing
(Zhong et al., AAAI 2020). It runs on the batch tensors, on the training device, after the
shared preprocessing: inference sees the same crops as training, minus the randomness.

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
    """

    flip: float = 0.5
    degrees: float = 10.0
    translate: float = 0.1
    scale: tuple[float, float] = (0.9, 1.1)
    erase: float = 0.25
    erase_area: tuple[float, float] = (0.02, 0.2)

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
