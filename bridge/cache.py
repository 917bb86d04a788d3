"""Preprocessing cache: decoding, face detection and filterbanks run once per file.

Preprocessed examples of a corpus split are stored as one safetensors shard under
``<cache dir>/<settings hash>/``, its index (which item is in which slot) in the shard's own
header, so tensors and index are written, renamed and read as one unit: a crash at any point
leaves the previous shard or the new one, never a mix. Long preprocessing saves its progress
every few minutes, so a killed run starts from what was done; temporary shards a killed run
left behind are removed. The settings hash covers every preprocessing setting
(the model's preprocessing, the tokenizer, the corpus loader's decoding options and the
cache format), so changing any of them can never reuse a stale entry. Within a shard each
item is keyed by its id, label, text and the *content* of the files it reads (BLAKE2b), so
an edited or replaced file is preprocessed again while the rest is reused.

The cache directory is ``--cache-dir``, else ``$BRIDGE_CACHE_DIR``, else ``.cache/bridge``
in the project root.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from safetensors import SafetensorError
from safetensors import safe_open
from safetensors.torch import save_file

from bridge.checkpoint import preprocessing_settings
from bridge.modality import Modality
from bridge.preprocess import Example, Preprocessor

CACHE_FORMAT = 2  # 2: one file per shard (index in the safetensors header)
SAVE_EVERY_SECONDS = 120.0  # progress of long preprocessing is saved this often
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def default_cache_dir() -> Path:
    return Path(os.environ.get("BRIDGE_CACHE_DIR") or PROJECT_ROOT / ".cache" / "bridge")


def _hash(data: Any) -> str:
    return hashlib.blake2b(json.dumps(data, sort_keys=True, default=str).encode(), digest_size=12).hexdigest()


def file_digest(path: str | Path) -> str:
    """BLAKE2b of a file's bytes (missing files digest to ``"missing"``)."""
    h = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return "missing"
    return h.hexdigest()


def _describe(obj: Any) -> Any:
    """Plain settings of a loader (dataclass fields that are numbers, strings or flags)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: _describe(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (int, float, str, bool)) or obj is None:
        return obj
    if isinstance(obj, (list, tuple)):
        return [_describe(o) for o in obj]
    if isinstance(obj, dict):
        return {str(k): _describe(v) for k, v in obj.items()}
    if hasattr(obj, "__dict__"):  # e.g. a face detector: its public settings
        return {type(obj).__name__: {k: _describe(v) for k, v in vars(obj).items()
                                     if not k.startswith("_") and (isinstance(v, (int, float, str, bool, dict,
                                                                                  type(None)))
                                                                   or dataclasses.is_dataclass(v))}}
    return type(obj).__name__


def item_keys(corpus: Any) -> list[str]:
    """One content key per item: id, label, text and the bytes of every file its meta names."""
    keys = []
    for stub, meta in zip(corpus.stubs, corpus.meta or [{}] * len(corpus.stubs)):
        files = {k: file_digest(v) for k, v in sorted((meta or {}).items())
                 if k.endswith("path") and isinstance(v, (str, Path)) and v}
        keys.append(_hash([stub.id, stub.label, stub.text, files]))
    return keys


class ExampleCache:
    """Cached :class:`~bridge.preprocess.Example` lists, one shard per corpus split and settings.

    Args:
        directory: cache root.
        preprocessor: fixes the preprocessing settings (part of the key).
    """

    def __init__(self, directory: str | Path, preprocessor: Preprocessor):
        tokenizer = preprocessor.tokenizer
        self.preprocessor = preprocessor
        self.base_settings = {"format": CACHE_FORMAT, "preprocessing": preprocessing_settings(preprocessor.config),
                              "tokenizer": _describe(tokenizer) if tokenizer is not None else None,
                              "tokenizer_vocab": getattr(getattr(tokenizer, "tokenizer", None), "vocab_size", None)}
        self.directory = Path(directory)

    @staticmethod
    def supports(samples: Sequence) -> bool:
        """Only corpora that list their items (stubs and meta) can be keyed by content."""
        return hasattr(samples, "stubs") and hasattr(samples, "meta") and hasattr(samples, "name")

    def shard(self, corpus: Any) -> Path:
        settings = {**self.base_settings, "corpus": corpus.name, "loader": _describe(getattr(corpus, "_loader", None))}
        slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in f"{corpus.name}-{corpus.split}")
        return self.directory / _hash(settings) / slug

    def load(self, corpus: Any) -> tuple[list[Example | str | None], list[str], int]:
        """Cached results aligned with the corpus: an example, the reason an item was unusable
        (a string), or None where the item must be preprocessed; the item keys; the hit count.

        The problems recorded with cached items (e.g. a modality missing) are counted again in
        the corpus (``corpus.note_problems``), so a warm run reports what a cold one does."""
        keys = item_keys(corpus)
        shard = self.shard(corpus)
        remove_stale_temporaries(shard.parent)
        path = shard.with_suffix(".safetensors")
        if not path.is_file():
            return [None] * len(keys), keys, 0
        try:
            with safe_open(str(path), framework="pt") as f:
                index = json.loads((f.metadata() or {})["index"])
                tensors = {name: f.get_tensor(name) for name in f.keys()}
            by_key = {item["key"]: item for item in index["items"]}
        except (OSError, ValueError, RuntimeError, KeyError, TypeError, SafetensorError):
            return [None] * len(keys), keys, 0  # a damaged or foreign shard is rebuilt, never trusted
        examples: list[Example | str | None] = []
        note = getattr(corpus, "note_problems", None)
        for key in keys:
            item = by_key.get(key)
            if item is None:
                examples.append(None)
                continue
            if note is not None and item.get("problems"):
                note(item["id"], item["problems"])
            if "error" in item:
                examples.append(item["error"])
                continue
            try:
                inputs = {Modality(m): (tensors[f"{item['slot']}/{m}/x"], tensors[f"{item['slot']}/{m}/mask"])
                          for m in item["modalities"]}
            except (KeyError, ValueError):
                examples.append(None)  # an index entry without its tensors: preprocess the item again
                continue
            examples.append(Example(inputs, item["label"], item["id"]))
        return examples, keys, sum(e is not None for e in examples)

    def save(self, corpus: Any, examples: list[Example | str | None], keys: list[str]) -> None:
        """Write the shard as one file (tensors and index), renamed into place; unusable items
        are remembered with their reason, so they are not decoded again either. Items still
        None (not preprocessed yet) are left out: a partial shard is progress, not a result."""
        shard = self.shard(corpus)
        shard.parent.mkdir(parents=True, exist_ok=True)
        problems = getattr(corpus, "problems", {}) or {}
        ids = [s.id for s in corpus.stubs]
        tensors: dict[str, torch.Tensor] = {}
        items = []
        for slot, (ex, key) in enumerate(zip(examples, keys)):
            if ex is None:
                continue
            extra = {"problems": problems[ids[slot]]} if ids[slot] in problems else {}
            if isinstance(ex, str):
                items.append({"slot": slot, "key": key, "id": ids[slot], "error": ex, **extra})
                continue
            for m, (x, mask) in ex.inputs.items():
                tensors[f"{slot}/{m.value}/x"] = x.contiguous()
                tensors[f"{slot}/{m.value}/mask"] = mask.contiguous()
            items.append({"slot": slot, "key": key, "id": ex.id, "label": ex.label,
                          "modalities": [m.value for m in ex.inputs], **extra})
        index = json.dumps({"corpus": corpus.name, "split": corpus.split, "items": items})
        tmp = shard.with_name(f".{shard.name}.{os.getpid()}.tmp")
        try:
            save_file(tensors, str(tmp), metadata={"index": index})
            os.replace(tmp, shard.with_suffix(".safetensors"))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary shards (``.NAME.PID.tmp``) whose writing process no longer runs."""
    if not folder.is_dir():
        return
    for path in folder.glob(".*.tmp"):
        pid = path.name.rsplit(".", 2)[-2]
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True
