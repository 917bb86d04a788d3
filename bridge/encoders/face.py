"""Face encoder: a timm Vision Transformer (Dosovitskiy et al., 2021) applied to each face crop;
the frames of a video become one temporal token sequence."""

from __future__ import annotations

import timm
import torch
from einops import rearrange, repeat
from torch import Tensor, nn

from bridge.config import FaceConfig


class FaceEncoder(nn.Module):
    """ViT over ``(b, t, c, h, w)`` face crops -> tokens ``(b, t * n, e)``.

    Args:
        config: the face encoder's config.
        load_weights: load ``config.weights`` (False when a checkpoint supplies them).
    """

    def __init__(self, config: FaceConfig, load_weights: bool = True):
        super().__init__()
        self.config = config
        overrides = {k: getattr(config, k) for k in ("img_size", "patch_size", "embed_dim", "depth", "num_heads")
                     if getattr(config, k) is not None}
        pretrained = load_weights and config.weights is not None
        kwargs = {}
        if pretrained and config.weights != "hub":
            kwargs["pretrained_cfg_overlay"] = {"file": config.weights}
        self.vit = timm.create_model(config.arch, pretrained=pretrained, num_classes=0, global_pool="",
                                     in_chans=config.in_chans, **overrides, **kwargs)
        self.out_dim: int = self.vit.num_features
        self.temporal = nn.Parameter(torch.zeros(config.num_frames, self.out_dim))
        nn.init.trunc_normal_(self.temporal, std=0.02)

    def forward(self, frames: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Encode face crops.

        Args:
            frames: ``(b, t, c, h, w)`` normalised crops, ``t <= config.num_frames``.
            mask: ``(b, t)``, True for real frames.

        Returns:
            tokens ``(b, t * n, e)`` and their mask ``(b, t * n)``.
        """
        b, t = frames.shape[:2]
        x = self.vit.forward_features(rearrange(frames, "b t c h w -> (b t) c h w"))  # (b t, 1 + n, e)
        if self.config.frame_tokens == "cls":
            x = x[:, :1]
        x = rearrange(x, "(b t) n e -> b t n e", b=b) + self.temporal[:t, None, :]
        n = x.shape[2]
        return rearrange(x, "b t n e -> b (t n) e"), repeat(mask, "b t -> b (t n)", n=n)
