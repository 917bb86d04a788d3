"""Feature encoder: pre-extracted vectors or sequences (openSMILE, CNN features, ...) projected
to a width and passed through a small Transformer, so feature-only corpora such as CMU-MOSI
(Zadeh et al., 2016) use the same model as raw media."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bridge.config import FeatureConfig
from bridge.layers import Transformer, block_factory


class FeatureEncoder(nn.Module):
    """Features ``(b, s, f)`` -> tokens ``(b, s, h)``.

    Standardisation statistics live in buffers (saved with the weights); the trainer sets them
    from the training split with :meth:`set_statistics`.

    Args:
        config: the feature encoder's config.
    """

    def __init__(self, config: FeatureConfig, **_: object):
        super().__init__()
        self.config = config
        self.register_buffer("mean", torch.zeros(config.input_dim))
        self.register_buffer("std", torch.ones(config.input_dim))
        self.proj = nn.Linear(config.input_dim, config.hidden_size)
        self.position = nn.Parameter(torch.zeros(config.max_steps, config.hidden_size))
        nn.init.trunc_normal_(self.position, std=0.02)
        self.transformer = Transformer(block_factory(config.hidden_size, config.num_heads, 2.0),
                                       config.num_layers, config.hidden_size)
        self.out_dim: int = config.hidden_size

    @torch.no_grad()
    def set_statistics(self, mean: Tensor, std: Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(1e-6))

    def forward(self, features: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Encode features ``(b, s, f)`` with a step mask ``(b, s)``."""
        x = (features - self.mean) / self.std if self.config.normalize else features
        x = self.proj(x) + self.position[: x.shape[1]]  # (b, s, h)
        return self.transformer(x, mask=mask), mask
