"""The train / validation / test splits of a corpus, as every corpus loader returns them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from bridge.data.sample import Sample


@dataclass
class Splits:
    """A corpus's train, validation and test samples.

    Args:
        name: corpus name as reports should show it (label-paired corpora say so).
        train, val, test: the splits.
        labels: class names, in label-index order.
        info: JSON-able description (root, options, sizes), stored with checkpoints and reports.
    """

    name: str
    train: Sequence[Sample]
    val: Sequence[Sample]
    test: Sequence[Sample]
    labels: tuple[str, ...]
    info: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> Sequence[Sample]:
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r} (choose from train, val, test)")
        return getattr(self, name)
