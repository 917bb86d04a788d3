"""Text encoder: a BERT-family Transformer (Devlin et al., 2019) from transformers, randomly
initialised from a small config or loaded from a hub name or local path."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn
from transformers import AutoConfig, AutoModel, BertConfig

from bridge.config import TextConfig
from bridge.tokenizer import resolve_pretrained


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
            self.bert = AutoModel.from_pretrained(resolve_pretrained(config.weights), add_pooling_layer=False)
        else:
            self.bert = AutoModel.from_config(BertConfig(
                vocab_size=config.vocab_size, hidden_size=config.hidden_size, num_hidden_layers=config.num_layers,
                num_attention_heads=config.num_heads, intermediate_size=config.intermediate_size,
                max_position_embeddings=max(64, config.max_length)), add_pooling_layer=False)
        if config.freeze:
            self.bert.requires_grad_(False)  # the pooler is not built: bridge reads the token states
        self.out_dim: int = self.bert.config.hidden_size

    def forward(self, ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Encode token ids ``(b, L)`` with their mask ``(b, L)``; returns ``(b, L, h)`` and the mask."""
        if self.config.freeze:
            self.bert.eval()  # a frozen encoder keeps dropout off even while the rest trains
        out = self.bert(input_ids=ids, attention_mask=mask.long())
        return out.last_hidden_state, mask
