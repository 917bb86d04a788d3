"""Several corpora of the same labels read as one, so a text encoder is not tied to one register.

``meld+goemotions`` joins MELD's TV dialogue and GoEmotions' Reddit comments (Ekman labels)
over the canonical seven emotions, split by split (train with train, dev with dev, test with
test): neither corpus's test items ever reach training. Item ids keep their corpus prefix
(``meld/...``, ``goemotions/...``), so the parts stay apart in reports and the cache.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from typing import Protocol

from bridge.data.corpus import Corpus
from bridge.data.goemotions import read_goemotions
from bridge.data.meld import read_meld
from bridge.data.paths import require_corpus

READERS = {"meld": (read_meld, {}), "goemotions": (read_goemotions, {"variant": "ekman"})}
PARTS = tuple(READERS)


class _HasId(Protocol):
    id: str


def corpus_parts(items: Sequence[_HasId]) -> dict[str, list[int]]:
    """Positions of a joined corpus's items (samples or examples) by part: the id's prefix before
    its first ``/`` (``meld/...``, ``goemotions/...``; ids without one form the part ``""``)."""
    parts: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        parts.setdefault(item.id.split("/", 1)[0] if "/" in item.id else "", []).append(i)
    return parts


def read_mixed(root: str | os.PathLike | None, split: str = "train", *, parts: tuple[str, ...] = PARTS) -> Corpus:
    """Read one split of each corpus in ``parts`` (names of :data:`READERS`) under the data root
    ``root`` and concatenate them.

    Raises:
        ValueError: an unknown part, corpora whose label names differ, or a corpus that needs its
            media decoded (only listed corpora, such as text corpora, can be joined).
        FileNotFoundError: a part's folder is missing under the data root.
    """
    unknown = [p for p in parts if p not in READERS]
    if unknown:
        raise ValueError(f"cannot join {', '.join(unknown)}: joinable corpora are {', '.join(READERS)}")
    corpora = [READERS[name][0](require_corpus(name, root), split, **READERS[name][1]) for name in parts]
    first = corpora[0]
    stubs, meta, skipped, missing = [], [], Counter(), Counter()
    for name, corpus in zip(parts, corpora):
        if corpus.label_names != first.label_names:
            raise ValueError(f"cannot join {parts[0]} and {name}: labels {first.label_names} and {corpus.label_names}")
        if corpus._loader is not None:
            raise ValueError(f"cannot join {name}: its media are decoded on access")
        stubs += corpus.stubs
        meta += corpus.meta
        skipped.update({f"{name}: {k}": v for k, v in corpus.skipped.items()})
        missing.update({f"{name}: {k}": v for k, v in corpus.missing.items()})
    return Corpus("+".join(parts), first.split, first.label_names, stubs, meta=meta, skipped=skipped,
                  missing=missing, description=" + ".join(c.description or n for n, c in zip(parts, corpora)))
