"""Text encoder: a BERT-family Transformer (Devlin et al., 2019) from transformers, randomly
initialised from a small config or loaded from a hub name or local path."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn
from transformers import AutoConfig, AutoModel, BertConfig
from transformers.utils import logging as hf_logging

from bridge.config import TextConfig
from bridge.encoders.memo import TokenStateMemo, fingerprint, memoised
from bridge.tokenizer import resolve_pretrained


@contextlib.contextmanager
def _no_progress_bar() -> Iterator[None]:
    """Load without transformers' "Loading weights" bar in the middle of ``infer.py``'s output."""
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()


class TextEncoder(nn.Module):
    """BERT over token ids ``(b, L)`` -> tokens ``(b, L, h)``.

    Args:
        config: the text encoder's config.
        load_weights: load ``config.weights`` (False when a checkpoint supplies them).
        hf_config_dir: a saved transformers config to build from instead (checkpoint loading).
    """

    def __init__(self, config: TextConfig, load_weights: bool = True, hf_config_dir: Path | None = None):
        super().__init__()
        self.config = config
        if hf_config_dir is not None:
            self.bert = AutoModel.from_config(AutoConfig.from_pretrained(hf_config_dir), add_pooling_layer=False)
        elif load_weights and config.weights is not None:
            with _no_progress_bar():
                self.bert = AutoModel.from_pretrained(resolve_pretrained(config.weights))
            # Only token states are used. Loading the pooler the checkpoint carries, then dropping it,
            # keeps transformers' load report for real mismatches without listing it as unexpected.
            self.bert.pooler = None
        else:
            self.bert = AutoModel.from_config(BertConfig(
                vocab_size=config.vocab_size, hidden_size=config.hidden_size, num_hidden_layers=config.num_layers,
                num_attention_heads=config.num_heads, intermediate_size=config.intermediate_size,
                max_position_embeddings=max(64, config.max_length)), add_pooling_layer=False)
        self.memo: TokenStateMemo | None = None  # set on a frozen encoder (bridge.freeze.memoise_frozen)
        if config.tune_layers and not 0 < config.tune_layers <= len(self.bert.encoder.layer):
            raise ValueError(f"text.tune_layers must be in 1..{len(self.bert.encoder.layer)}, got {config.tune_layers}")
        self.out_dim: int = self.bert.config.hidden_size

    def forward(self, ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Encode token ids ``(b, L)`` with their mask ``(b, L)``; returns ``(b, L', h)`` and its mask.

        Padding columns that no row uses are cut first (``L' <= L``), and padded positions are
        zero in the output. A frozen encoder's output depends on its weights and the text alone,
        so with a ``memo`` it is memoised (:mod:`bridge.encoders.memo`): later epochs, and other models
        built on the same frozen weights that share the memo, skip the Transformer.
        """
        used = mask.any(dim=0).nonzero()
        width = int(used[-1]) + 1 if len(used) else 1
        ids, mask = ids[:, :width], mask[:, :width]
        if self.config.freeze and self.config.tune_layers:
            return self._encode_top(ids, mask), mask
        if self.memo is not None and self.memo.max_bytes > 0:
            return self._memoised(ids, mask), mask
        return self._encode(ids, mask), mask

    def tuned_parts(self) -> list[nn.Module]:
        """What still learns when the encoder is frozen: the top ``tune_layers`` Transformer layers."""
        layers = self.bert.encoder.layer
        return list(layers[len(layers) - self.config.tune_layers:]) if self.config.tune_layers else []

    def _encode_top(self, ids: Tensor, mask: Tensor) -> Tensor:
        """Frozen embeddings and bottom layers (memoised like a frozen encoder), then the tuned top layers."""
        layers = self.bert.encoder.layer
        cut = len(layers) - self.config.tune_layers

        def encode_bottom(rows: list[int]) -> Tensor:
            with torch.no_grad():
                return self._run(ids[rows], mask[rows], 0, cut, embed=True)

        if self.memo is not None and self.memo.max_bytes > 0:
            lengths = mask.sum(dim=1).tolist()
            keys = [ids[i, :n].cpu().numpy().tobytes() for i, n in enumerate(lengths)]
            hidden = ids.new_zeros((*ids.shape, self.out_dim), dtype=torch.get_default_dtype())
            owner = "".join(fingerprint(m) for m in (self.bert.embeddings, *layers[:cut]))  # the frozen part only
            hidden = memoised(self.memo, owner, keys, lengths, encode_bottom, hidden)
        else:
            hidden = encode_bottom(list(range(len(ids))))
        out = self._run(hidden, mask, cut, len(layers), embed=False)
        return out * mask[..., None].to(out.dtype)

    def _run(self, x: Tensor, mask: Tensor, start: int, stop: int, embed: bool) -> Tensor:
        """BERT's layers ``start:stop`` over ``x`` (token ids when ``embed``, else hidden states)."""
        hidden = self.bert.embeddings(input_ids=x) if embed else x
        attention, _ = self.bert._create_attention_masks(attention_mask=mask.long(), encoder_attention_mask=None,
                                                         embedding_output=hidden, encoder_hidden_states=None,
                                                         past_key_values=None)
        for layer in self.bert.encoder.layer[start:stop]:
            hidden = layer(hidden, attention)
        return hidden

    def _encode(self, ids: Tensor, mask: Tensor) -> Tensor:
        out = self.bert(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        return out * mask[..., None].to(out.dtype)

    def _memoised(self, ids: Tensor, mask: Tensor) -> Tensor:
        lengths = mask.sum(dim=1).tolist()
        keys = [ids[i, :n].cpu().numpy().tobytes() for i, n in enumerate(lengths)]
        out = ids.new_zeros((*ids.shape, self.out_dim), dtype=torch.get_default_dtype())
        return memoised(self.memo, fingerprint(self.bert), keys, lengths, lambda rows: self._encode(ids[rows], mask[rows]), out)
