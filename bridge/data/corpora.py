"""One entry point for every corpus: train/val/test splits, label names and a description."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from bridge.data.splits import Splits

__all__ = ["Splits", "load_splits", "problems_report", "synthetic"]


def synthetic(seed: int = 0, sizes: tuple[int, int, int] = (1400, 300, 300)) -> Splits:
    """The embedded synthetic default (tests and quick start only; never for reported accuracy)."""
    from bridge.data.synthetic import synthetic_splits

    parts = synthetic_splits(*sizes, seed=seed)
    return Splits("synthetic", parts["train"], parts["val"], parts["test"], parts["train"].label_names,
                  {"name": "synthetic", "seed": seed, "sizes": list(sizes)})


def load_splits(name: str, root: str | Path | None = None, seed: int = 0, limit: int | None = None,
                detect_faces: bool = True) -> Splits:
    """Load a corpus by name.

    Args:
        name: ``"synthetic"``, a corpus of :mod:`bridge.data.registry`, or ``"manifest:PATH"``.
        root: data root (default: ``$BRIDGE_DATA_ROOT`` or ``../shared/data``).
        seed: for synthetic generation and deterministic carve-outs.
        limit: keep at most this many samples per split (quick runs; a split with fewer keeps them all).
        detect_faces: False when a manifest's images and video frames are face crops already.

    Raises:
        ValueError: on an unknown corpus name.
        FileNotFoundError: when the corpus is not under the data root.
    """
    if name == "synthetic":
        if not detect_faces:
            raise ValueError("--no-face-detection applies to manifest data; the synthetic data has no detection")
        splits = synthetic(seed)
    else:
        from bridge.data.registry import load_corpus_splits

        if name.startswith("manifest:"):  # manifest:PATH names the user's manifest file
            name, root = "manifest", name.split(":", 1)[1]
        options = {} if detect_faces else {"detect_faces": False}
        if options and name != "manifest":
            raise ValueError(f"--no-face-detection applies to manifest data; {name}'s reader prepares its faces itself")
        try:
            splits = load_corpus_splits(name, root, seed=seed, **options)
        except KeyError as e:
            raise ValueError(e.args[0]) from None
    if limit is not None:
        splits = Splits(splits.name, _head(splits.train, limit), _head(splits.val, limit), _head(splits.test, limit),
                        splits.labels, {**splits.info, "limit": limit})
    splits.info.update({f"{s}_size": len(splits.split(s)) for s in ("train", "val", "test")})
    return splits


class _Head(Sequence):
    def __init__(self, items: Sequence, n: int):
        # Spread the kept items over the whole split so that every class is represented.
        self.items, self.index = items, [round(i * len(items) / n) for i in range(n)] if n < len(items) else None

    def __len__(self) -> int:
        return len(self.index) if self.index is not None else len(self.items)

    def __getitem__(self, i):
        return self.items[self.index[i]] if self.index is not None else self.items[i]


def _head(items: Sequence, n: int) -> Sequence:
    if n >= len(items):
        return items  # a split smaller than the limit stays whole (and stays cacheable)
    if n < len(items) and hasattr(items, "subset") and getattr(items, "meta", None) is not None:  # a listed corpus stays one (and stays cacheable)
        return items.subset([round(i * len(items) / n) for i in range(n)])
    return _Head(items, n)


def problems_report(splits: Splits) -> list[str]:
    """One line per split that skipped items or lost a modality of some, with counts and reasons."""
    lines = []
    for name in ("train", "val", "test"):
        part = splits.split(name)
        skipped, missing = dict(getattr(part, "skipped", {}) or {}), dict(getattr(part, "missing", {}) or {})
        detail = []
        if skipped:
            detail.append(f"skipped {sum(skipped.values())} ({', '.join(f'{n} {r}' for r, n in skipped.items())})")
        if missing:
            detail.append(f"a modality missing in {sum(missing.values())} "
                          f"({', '.join(f'{n} {r}' for r, n in missing.items())})")
        if detail:
            lines.append(f"{name}: " + "; ".join(detail))
    return lines
