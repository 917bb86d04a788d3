"""Text encoder: a BERT-family Transformer (Devlin et al., 2019) from transformers, randomly
initialised from a small config or loaded from a hub name or local path."""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from pathlib import Path

import torch
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
        self._fingerprint: str | None = None
        self.register_load_state_dict_post_hook(lambda module, keys: setattr(module, "_fingerprint", None))

    def forward(self, ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Encode token ids ``(b, L)`` with their mask ``(b, L)``; returns ``(b, L', h)`` and its mask.

        Padding columns that no row uses are cut first (``L' <= L``), and padded positions are
        zero in the output. A frozen encoder's output depends on its weights and the text alone,
        so it is memoised (:data:`MEMO`): later epochs, and other models built on the same
        frozen weights (baselines evaluated on the same noisy texts), skip the Transformer.
        """
        used = mask.any(dim=0).nonzero()
        width = int(used[-1]) + 1 if len(used) else 1
        ids, mask = ids[:, :width], mask[:, :width]
        if self.config.freeze:
            self.bert.eval()  # a frozen encoder keeps dropout off even while the rest trains
            if MEMO.max_bytes > 0:
                return self._memoised(ids, mask), mask
        return self._encode(ids, mask), mask

    def _encode(self, ids: Tensor, mask: Tensor) -> Tensor:
        out = self.bert(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        return out * mask[..., None].to(out.dtype)

    def fingerprint(self) -> str:
        """A hash of the Transformer's weights (computed once; reset when weights are loaded)."""
        if getattr(self, "_fingerprint", None) is None:
            h = hashlib.blake2b(digest_size=16)
            for name, tensor in self.bert.state_dict().items():
                h.update(name.encode())
                h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    @torch.no_grad()
    def _memoised(self, ids: Tensor, mask: Tensor) -> Tensor:
        owner = self.fingerprint()
        lengths = mask.sum(dim=1).tolist()
        keys = [(owner, ids[i, :n].cpu().numpy().tobytes()) for i, n in enumerate(lengths)]
        found = [MEMO.get(k) for k in keys]
        todo = [i for i, f in enumerate(found) if f is None]
        if todo:
            fresh = self._encode(ids[todo], mask[todo])
            for j, i in enumerate(todo):
                found[i] = fresh[j, : lengths[i]].clone()
                MEMO.put(keys[i], found[i])
        out = ids.new_zeros((*ids.shape, self.out_dim), dtype=torch.get_default_dtype())
        for i, states in enumerate(found):
            out[i, : lengths[i]] = states.to(out.device)
        return out


class TokenStateMemo:
    """Token states ``(n, h)`` of frozen text encoders keyed by (weights fingerprint, token ids),
    dropping the least recently used past ``max_bytes`` (0 turns memoisation off)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[tuple[str, bytes], Tensor] = OrderedDict()

    def get(self, key: tuple[str, bytes]) -> Tensor | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: tuple[str, bytes], value: Tensor) -> None:
        size = value.numel() * value.element_size()
        if key in self._items or size > self.max_bytes:
            return
        self._items[key] = value
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self.bytes -= old.numel() * old.element_size()

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0


MEMO = TokenStateMemo(int(float(os.environ.get("BRIDGE_TEXT_MEMO_MB", "512")) * 2**20))  # 0 turns it off
