"""Cross-modal translators (MERT-style; after the cross-modal Transformers of MulT, Tsai et al.,
ACL 2019, and the translation objective of MCTN, Pham et al., AAAI 2019): a cross-attention
decoder whose learned target queries read a source modality's latent and predict the target's.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bridge.layers import Transformer, block_factory


class Translator(nn.Module):
    """Predicts a target latent ``(b, k, d)`` from a source latent ``(b, k, d)``.

    Args:
        dim: latent width ``d``.
        k: latent tokens per modality.
        heads: attention heads.
        depth: decoder blocks (self-attention over the queries, cross-attention to the source, MLP).
        mlp_ratio: MLP width ratio.
        dropout: dropout.
    """

    def __init__(self, dim: int, k: int, heads: int, depth: int, mlp_ratio: float, dropout: float = 0.0):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(k, dim) * 0.02)
        self.decoder = Transformer(block_factory(dim, heads, mlp_ratio, dropout, cross=True), depth, dim)

    def forward(self, source: Tensor) -> Tensor:
        queries = self.queries.expand(source.shape[0], -1, -1)  # (b, k, d)
        return self.decoder(queries, context=source)  # (b, k, d)
