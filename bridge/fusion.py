"""Fusion Transformer over the latents of all modalities, each token flagged as observed,
reconstructed (translated from the observed ones) or zero-filled, then a classifier head; and
an optional confidence gate on reconstructed tokens."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bridge.layers import Transformer, block_factory

OBSERVED, RECONSTRUCTED, ZERO_FILLED = 0, 1, 2


class Fusion(nn.Module):
    """Joint latent from ``(b, m * k, d)`` tokens and their flags ``(b, m * k)``; logits from it.

    Args:
        dim: latent width.
        heads: attention heads.
        depth: Transformer blocks.
        mlp_ratio: MLP width ratio.
        num_classes: classifier outputs.
        dropout: dropout in blocks and before the classifier.
    """

    def __init__(self, dim: int, heads: int, depth: int, mlp_ratio: float, num_classes: int, dropout: float):
        super().__init__()
        self.flag = nn.Embedding(3, dim)
        self.transformer = Transformer(block_factory(dim, heads, mlp_ratio, dropout), depth, dim)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, num_classes))

    def forward_features(self, tokens: Tensor, flags: Tensor) -> Tensor:
        x = self.transformer(tokens + self.flag(flags))  # (b, m k, d)
        return x.mean(dim=1)  # (b, d)

    def forward_head(self, joint: Tensor) -> Tensor:
        return self.head(joint)  # (b, classes)


class ConfidenceGate(nn.Module):
    """A learned confidence per reconstructed token: ``sigmoid(w · (LayerNorm(z) + e_flag) + b)``
    scales each token flagged reconstructed; observed and zero-filled tokens pass unchanged.

    Starts near 1 (weights 0, bias 3: 0.95), so a new gate first leaves the fusion as it was.

    Args:
        dim: latent width.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.flag = nn.Embedding(3, dim)
        self.score = nn.Linear(dim, 1)
        nn.init.zeros_(self.score.weight)
        nn.init.constant_(self.score.bias, 3.0)

    def forward(self, tokens: Tensor, flags: Tensor) -> Tensor:
        """``tokens`` ``(b, n, d)`` with the reconstructed ones scaled; ``flags`` ``(b, n)``."""
        confidence = torch.sigmoid(self.score(self.norm(tokens) + self.flag(flags)))  # (b, n, 1)
        return torch.where((flags == RECONSTRUCTED)[..., None], tokens * confidence, tokens)
