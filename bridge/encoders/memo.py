"""Memoised outputs of frozen encoders.

A frozen encoder's output depends on its weights and its input alone, so a trainer can keep
the outputs of recent inputs in a :class:`TokenStateMemo`: later epochs and the validation
pass skip the encoder, and so do other models built on the same frozen weights that share the
memo. Entries are keyed by a fingerprint of the weights and a digest of the input, and the
least recently used are dropped past the memo's size. An encoder memoises only when given a
memo (its ``memo`` attribute, set by :func:`bridge.freeze.memoise_frozen`); there is no
process-wide one.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn


class TokenStateMemo:
    """Token states ``(n, h)`` keyed by (weights fingerprint, input digest), least recently used
    dropped past ``max_bytes`` (0 turns memoisation off)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[tuple[str, bytes], Tensor] = OrderedDict()

    @classmethod
    def megabytes(cls, mb: float) -> "TokenStateMemo":
        """A memo of at most ``mb`` megabytes (0 memoises nothing)."""
        return cls(int(mb * 2**20))

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


def weights_fingerprint(module: nn.Module) -> str:
    """A hash of a module's weights and buffers (names included)."""
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def fingerprint(module: nn.Module) -> str:
    """:func:`weights_fingerprint` of ``module``, cached on it until its weights are next loaded
    with ``load_state_dict`` (frozen weights change no other way)."""
    if getattr(module, "_memo_fingerprint", None) is None:
        if not getattr(module, "_memo_hooked", False):
            module.register_load_state_dict_post_hook(lambda m, keys: setattr(m, "_memo_fingerprint", None))
            module._memo_hooked = True
        module._memo_fingerprint = weights_fingerprint(module)
    return module._memo_fingerprint


def digest(*tensors: Tensor) -> bytes:
    """A 16-byte digest of tensors' shapes and contents (the key of one input)."""
    h = hashlib.blake2b(digest_size=16)
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(str((tuple(t.shape), t.dtype)).encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return h.digest()


def row_digests(*batches: Tensor) -> list[bytes]:
    """One :func:`digest` per sample of same-length batches, copied to the host once per batch."""
    host = [b.detach().cpu().contiguous() for b in batches]
    return [digest(*(b[i] for b in host)) for i in range(len(host[0]))]


@torch.no_grad()
def memoised(memo: TokenStateMemo, owner: str, keys: Sequence[bytes], lengths: Sequence[int],
             encode: Callable[[list[int]], Tensor], out: Tensor) -> Tensor:
    """Fill ``out`` ``(b, n, h)`` row by row from ``memo``, encoding only the rows it lacks.

    Args:
        memo: where states are kept.
        owner: the encoder's weights fingerprint (part of every key).
        keys: one input digest per row.
        lengths: how many leading positions of each row to keep (the rest of ``out`` stays as given).
        encode: rows (indices) -> their states ``(len(rows), n, h)``.
        out: the result, zero-initialised by the caller.
    """
    full = [(owner, k) for k in keys]
    found = [memo.get(k) for k in full]
    todo = [i for i, f in enumerate(found) if f is None]
    if todo:
        fresh = encode(todo)
        for j, i in enumerate(todo):
            found[i] = fresh[j, : lengths[i]].clone()
            memo.put(full[i], found[i])
    for i, states in enumerate(found):
        out[i, : lengths[i]] = states.to(out.device, out.dtype)
    return out
