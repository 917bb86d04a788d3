"""Shared Transformer blocks: one attention for self- and cross-attention, pre-norm blocks,
and the learned-query summariser that maps any token sequence onto ``k`` latent tokens
(Perceiver-style; Jaegle et al., 2021). Masks are boolean with True meaning "keep".
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


def _safe_mask(mask: Tensor) -> Tensor:
    # A row with nothing to attend to would give NaN; let it attend everywhere instead.
    # Such rows belong to absent samples, whose outputs are masked out downstream.
    return mask | ~mask.any(dim=-1, keepdim=True)


class Attention(nn.Module):
    """Multi-head attention; self-attention when ``context`` is None, cross-attention otherwise.

    Args:
        dim: width of the queries (and of the output).
        heads: number of heads; ``dim`` must be divisible by it.
        context_dim: width of the context (defaults to ``dim``).
        dropout: attention dropout.
    """

    def __init__(self, dim: int, heads: int, context_dim: int | None = None, dropout: float = 0.0):
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.to_q = nn.Linear(dim, dim)
        self.to_kv = nn.Linear(context_dim or dim, 2 * dim)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, context: Tensor | None = None, context_mask: Tensor | None = None) -> Tensor:
        context = x if context is None else context
        q = rearrange(self.to_q(x), "b n (h e) -> b h n e", h=self.heads)
        k, v = rearrange(self.to_kv(context), "b m (two h e) -> two b h m e", two=2, h=self.heads)
        attn_mask = None
        if context_mask is not None:
            attn_mask = rearrange(_safe_mask(context_mask), "b m -> b 1 1 m")
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.to_out(rearrange(out, "b h n e -> b n (h e)"))


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))


class Block(nn.Module):
    """Pre-norm Transformer block: self-attention, optional cross-attention, MLP.

    Args:
        dim: token width.
        heads: attention heads.
        mlp_ratio: MLP hidden width relative to ``dim``.
        cross: add a cross-attention sub-layer over a context.
        context_dim: width of the context when ``cross``.
        dropout: dropout in attention and on each residual branch.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0, cross: bool = False,
                 context_dim: int | None = None, dropout: float = 0.0, self_attend: bool = True):
        super().__init__()
        self.self_attn = Attention(dim, heads, dropout=dropout) if self_attend else None
        self.norm_self = nn.LayerNorm(dim) if self_attend else None
        self.cross_attn = Attention(dim, heads, context_dim=context_dim, dropout=dropout) if cross else None
        self.norm_cross = nn.LayerNorm(dim) if cross else None
        self.norm_context = nn.LayerNorm(context_dim or dim) if cross else None
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, int(dim * mlp_ratio), dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None, context: Tensor | None = None,
                context_mask: Tensor | None = None) -> Tensor:
        if self.self_attn is not None:
            x = x + self.drop(self.self_attn(self.norm_self(x), context_mask=mask))
        if self.cross_attn is not None:
            if context is None:
                raise ValueError("a cross-attention block needs a context")
            x = x + self.drop(self.cross_attn(self.norm_cross(x), self.norm_context(context), context_mask))
        return x + self.drop(self.ff(self.norm_ff(x)))


class Transformer(nn.Module):
    """A stack of blocks built from one factory, with a final LayerNorm.

    Args:
        block: factory for one block, e.g. ``partial(Block, dim, heads)``.
        depth: number of blocks.
        dim: width, for the final norm.
    """

    def __init__(self, block: Callable[[], Block], depth: int, dim: int):
        super().__init__()
        self.blocks = nn.ModuleList([block() for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, mask: Tensor | None = None, context: Tensor | None = None,
                context_mask: Tensor | None = None) -> Tensor:
        for blk in self.blocks:
            x = blk(x, mask=mask, context=context, context_mask=context_mask)
        return self.norm(x)


class LatentSummariser(nn.Module):
    """Projects a token sequence to width ``dim`` and summarises it into ``k`` latent tokens.

    ``k`` learned queries cross-attend to the projected tokens (then attend to each other).

    Args:
        in_dim: width of the encoder's tokens.
        dim: latent width.
        k: number of latent tokens.
        heads: attention heads.
        mlp_ratio: MLP width ratio.
        dropout: dropout.
    """

    def __init__(self, in_dim: int, dim: int, k: int, heads: int, mlp_ratio: float = 2.0, dropout: float = 0.0):
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, dim))
        self.queries = nn.Parameter(torch.randn(k, dim) * 0.02)
        self.block = Block(dim, heads, mlp_ratio, cross=True, dropout=dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        context = self.proj(tokens)  # (b, n, d)
        queries = self.queries.expand(tokens.shape[0], -1, -1)  # (b, k, d)
        return self.norm(self.block(queries, context=context, context_mask=mask))  # (b, k, d)


def block_factory(dim: int, heads: int, mlp_ratio: float, dropout: float = 0.0, cross: bool = False):
    """A ``functools.partial`` building fresh :class:`Block` instances (never shared)."""
    return partial(Block, dim, heads, mlp_ratio, cross=cross, dropout=dropout)
