"""GoEmotions (Demszky et al., ACL 2020; CC BY 4.0): Reddit comments labelled with 27
emotions plus neutral, and their grouping into Ekman's six plus neutral.

Files: ``{ekman,original}/{train,dev,test}.tsv`` with rows
``text<TAB>comma-separated label ids<TAB>comment_id``, ids indexing that folder's
``labels.txt``. ``variant="ekman"`` maps the seven Ekman labels onto the canonical seven
(anger -> angry, joy -> happy, sadness -> sad); ``variant="original"`` keeps the 28.

A comment can carry several labels (about 9 % of ekman rows, 16 % of original ones), but a
:class:`~bridge.data.sample.Sample` has one. ``multi_label`` chooses:

- ``"drop"`` (default): leave multi-label comments out, counted in ``skipped``. Every kept
  comment then has an unambiguous single gold label, so accuracy and F1 mean what they say
  and stay comparable with single-label corpora (FER-2013, MELD); the cost is fewer
  examples and slightly fewer mixed-emotion comments.
- ``"first"``: keep the first id listed. The ids are listed in ascending order, so this
  always prefers the label earlier in ``labels.txt`` (e.g. anger over joy), a systematic
  bias; use it for training data volume, not for reporting.

Every listed label is kept in ``corpus.meta[i]["labels"]`` either way.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Literal

from bridge.data.corpus import Corpus, normalise_split, report_skips
from bridge.data.labels import GOEMOTIONS_EKMAN, GOEMOTIONS_ORIGINAL, label_names, map_label
from bridge.data.sample import Sample

NAME = "goemotions"
SPLIT_FILES = {"train": "train.tsv", "val": "dev.tsv", "test": "test.tsv"}
VARIANTS = {"ekman": ("goemotions", GOEMOTIONS_EKMAN), "original": ("goemotions-original", GOEMOTIONS_ORIGINAL)}


def read_goemotions(
    root: str | os.PathLike,
    split: str = "train",
    *,
    variant: Literal["ekman", "original"] = "ekman",
    multi_label: Literal["drop", "first"] = "drop",
) -> Corpus:
    """Read one split of GoEmotions.

    Args:
        root: the corpus folder (holding ``ekman/`` and ``original/``).
        split: ``"train"``, ``"val"`` (``"dev"``) or ``"test"``.
        variant: ``"ekman"`` (canonical seven) or ``"original"`` (28 labels).
        multi_label: ``"drop"`` or ``"first"``, see the module docstring.
    """
    root = Path(root)
    split = normalise_split(split)
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    if multi_label not in ("drop", "first"):
        raise ValueError(f"multi_label must be 'drop' or 'first', got {multi_label!r}")
    space, expected = VARIANTS[variant]
    folder = root / variant
    path = folder / SPLIT_FILES[split]
    if not path.is_file():
        raise FileNotFoundError(f"GoEmotions {variant} {split} file not found: {path}")
    raw_names = _raw_label_names(folder, expected)

    skipped: Counter = Counter()
    stubs, meta = [], []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            skipped["malformed line"] += 1
            continue
        text, ids, comment_id = parts[0].strip(), parts[1].strip(), parts[2].strip()
        try:
            names = [raw_names[int(i)] for i in ids.split(",")]
        except (ValueError, IndexError):
            skipped["bad label id"] += 1
            continue
        if not text:
            skipped["empty text"] += 1
            continue
        if len(names) > 1 and multi_label == "drop":
            skipped["multi-label"] += 1
            continue
        stubs.append(Sample(id=f"{NAME}/{comment_id}", label=map_label(space, names[0]), text=text, split=split))
        meta.append({"comment_id": comment_id, "labels": names, "line": line_no})
    report_skips(f"{NAME}-{variant}", split, skipped)
    return Corpus(
        NAME if variant == "ekman" else space, split, label_names(space), stubs, None, meta, skipped,
        description=f"GoEmotions Reddit comments, {variant} labels (Demszky et al. 2020), multi-label: {multi_label}",
    )  # fmt: skip


def _raw_label_names(folder: Path, expected: tuple[str, ...]) -> tuple[str, ...]:
    """The names in ``labels.txt`` (checked against the known ones), else the known ones."""
    path = folder / "labels.txt"
    if not path.is_file():
        return expected
    names = tuple(n.strip() for n in path.read_text(encoding="utf-8").splitlines() if n.strip())
    if names != expected:
        raise ValueError(f"{path}: labels {names} differ from GoEmotions' {expected}")
    return names
