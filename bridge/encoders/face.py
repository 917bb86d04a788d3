"""Face encoder: a timm Vision Transformer (Dosovitskiy et al., 2021) applied to each face crop;
the frames of a video become one temporal token sequence. Trained from scratch, the patch
embedding can be a stack of 3x3 convolutions (Xiao et al., "Early convolutions help
transformers see better", NeurIPS 2021), which learns from far fewer faces, or a deeper
VGG-style CNN whose feature map becomes the tokens (a CNN-ViT hybrid), which learns faster still."""

from __future__ import annotations

import timm
import torch
from einops import rearrange, repeat
from torch import Tensor, nn

from bridge.config import FaceConfig
from bridge.encoders.memo import TokenStateMemo, fingerprint, memoised, row_digests


def conv_stem(in_chans: int, dim: int, patch: int) -> nn.Sequential:
    """3x3 stride-2 convolutions (then one to finish the stride) producing the ViT's patch grid.

    Args:
        in_chans: image channels.
        dim: ViT width.
        patch: total stride, the ViT's patch size (a power of two times an integer).
    """
    layers, ch, stride = [], in_chans, 1
    widths = [max(16, dim // 4), max(16, dim // 2)]
    for w in widths:
        if patch % (stride * 2):
            break
        layers += [nn.Conv2d(ch, w, 3, stride=2, padding=1, bias=False), nn.GroupNorm(1, w), nn.GELU()]
        ch, stride = w, stride * 2
    rest = patch // stride
    layers.append(nn.Conv2d(ch, dim, rest, stride=rest))  # (b, dim, h / patch, w / patch)
    return nn.Sequential(*layers)


def cnn_stem(in_chans: int, dim: int, patch: int, width: int = 32) -> nn.Sequential:
    """A VGG-style convolutional stem (the hybrid of Dosovitskiy et al., 2021, Sec. 3.1): stages of
    two 3x3 convolutions with batch norm and ReLU, then 2x2 max-pooling, doubling the width from
    ``width`` until the stride reaches ``patch``; a 1x1 convolution then maps to the ViT width.

    Raises:
        ValueError: when ``patch`` is not a power of two.
    """
    if patch < 2 or patch & (patch - 1):
        raise ValueError(f"the cnn face stem needs a power-of-two patch_size, got {patch}")
    layers: list[nn.Module] = []
    ch, stride, w = in_chans, 1, width
    while stride < patch:
        for c_in in (ch, w):
            layers += [nn.Conv2d(c_in, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        layers.append(nn.MaxPool2d(2))
        ch, stride, w = w, stride * 2, w * 2
    layers.append(nn.Conv2d(ch, dim, 1))  # (b, dim, h / patch, w / patch)
    return nn.Sequential(*layers)


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
        if config.stem != "patch":
            stem = conv_stem if config.stem == "conv" else cnn_stem
            self.vit.patch_embed.proj = stem(config.in_chans, self.vit.embed_dim, self.vit.patch_embed.patch_size[0])
            if config.stem == "cnn":
                # channels-last weights keep the VGG stem's activations channels-last in oneDNN, where its
                # full-resolution convolutions, batch norm and pooling train faster on CPU; the GroupNorm
                # conv stem gains nothing (benchmarks/train_step.py measures both)
                self.vit.patch_embed.proj.to(memory_format=torch.channels_last)
        self.out_dim: int = self.vit.num_features
        self.temporal = nn.Parameter(torch.zeros(config.num_frames, self.out_dim))
        nn.init.trunc_normal_(self.temporal, std=0.02)
        self.memo: TokenStateMemo | None = None  # set on a frozen encoder (bridge.freeze.memoise_frozen)

    def forward(self, frames: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Encode face crops.

        Args:
            frames: ``(b, t, c, h, w)`` normalised crops, ``t <= config.num_frames``.
            mask: ``(b, t)``, True for real frames.

        Returns:
            tokens ``(b, t * n, e)`` and their mask ``(b, t * n)``.
        """
        if self.memo is not None and self.memo.max_bytes > 0:  # frozen: tokens depend on the input alone
            b, t = frames.shape[:2]
            n = self.tokens_per_frame
            out = frames.new_zeros((b, t * n, self.out_dim))
            keys = row_digests(frames, mask)
            tokens = memoised(self.memo, fingerprint(self), keys, [t * n] * b,
                              lambda rows: self._encode(frames[rows], mask[rows])[0], out)
            return tokens, repeat(mask, "b t -> b (t n)", n=n)
        return self._encode(frames, mask)

    @property
    def tokens_per_frame(self) -> int:
        if self.config.frame_tokens == "cls":
            return 1
        return getattr(self.vit, "num_prefix_tokens", 1) + self.vit.patch_embed.num_patches

    def _encode(self, frames: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        b, t = frames.shape[:2]
        x = self.vit.forward_features(rearrange(frames, "b t c h w -> (b t) c h w"))  # (b t, 1 + n, e)
        if self.config.frame_tokens == "cls":
            x = x[:, :1]
        x = rearrange(x, "(b t) n e -> b t n e", b=b) + self.temporal[:t, None, :]
        n = x.shape[2]
        return rearrange(x, "b t n e -> b (t n) e"), repeat(mask, "b t -> b (t n)", n=n)
