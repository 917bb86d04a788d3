"""Preprocessed examples in memory and the loaders over them: what training, evaluation and
the benchmarks feed a model (the preprocessing itself is :class:`bridge.preprocess.Preprocessor`)."""

from __future__ import annotations

import time

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from bridge.data.mixed import corpus_parts  # noqa: F401 (re-exported: the trainer's balanced draws)
from bridge.data.sample import Sample
from bridge.modality import Modality
from bridge.preprocess import Example, Preprocessor, collate

if TYPE_CHECKING:
    from torch.utils.data import Sampler


class ExampleDataset(Dataset):
    """Preprocessed examples, computed once and kept in memory.

    With a cache directory, corpora that list their files are preprocessed once per file and
    settings (see :mod:`bridge.cache`); later epochs and runs read the cache.

    Args:
        samples: the split's samples.
        preprocessor: turns a sample into model inputs.
        desc: progress-bar label.
        cache_dir: where to cache preprocessed examples (None: no cache).
        progress: show a progress bar.
    """

    def __init__(self, samples: Sequence[Sample], preprocessor: Preprocessor, desc: str = "preprocess",
                 cache_dir: str | Path | None = None, progress: bool = True):
        from bridge.cache import SAVE_EVERY_SECONDS, ExampleCache

        cache = ExampleCache(cache_dir, preprocessor) if cache_dir and ExampleCache.supports(samples) else None
        results: list[Example | str | None] = [None] * len(samples)
        keys: list[str] = []
        self.cache_hits = 0
        if cache is not None:
            results, keys, self.cache_hits = cache.load(samples)
        todo = [i for i, r in enumerate(results) if r is None]
        saved = time.monotonic()
        for i in tqdm(todo, desc=desc, leave=False, mininterval=1.0, disable=not todo or not progress):
            try:
                ex = preprocessor(samples[i])
                results[i] = ex if ex.inputs else "none of the model's modalities"
            except ValueError as e:  # one bad item never stops a run; counted and reported
                results[i] = str(e).split(":")[-1].strip() or type(e).__name__
            if cache is not None and time.monotonic() - saved > SAVE_EVERY_SECONDS:
                cache.save(samples, results, keys)  # progress: a killed run resumes from here
                saved = time.monotonic()
        if cache is not None and todo:
            cache.save(samples, results, keys)
        self.examples = [r for r in results if isinstance(r, Example)]
        self.skipped: dict[str, int] = {}
        for r in results:
            if isinstance(r, str):
                self.skipped[r] = self.skipped.get(r, 0) + 1

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> Example:
        return self.examples[index]


def feature_statistics(dataset: ExampleDataset, modality: Modality) -> tuple[Tensor, Tensor]:
    """Mean and std of a feature modality over the training examples' real steps."""
    rows = [x[mask] for ex in dataset.examples if modality in ex.inputs for x, mask in [ex.inputs[modality]]]
    values = torch.cat(rows)
    return values.mean(dim=0), values.std(dim=0)


def balanced_indices(parts: dict[str, list[int]], seed: int, shares: dict[str, float] | None = None) -> list[int]:
    """As many positions from every part as the smallest part has, drawn without replacement
    (the smallest part whole), parts in name order; the same ``seed`` gives the same draw.

    ``shares`` scales a part's draw: ``{"goemotions": 0.5}`` draws half as many from it as the
    smallest part has (rounded, at least one, at most the whole part); a part not named draws 1x.
    """
    generator = torch.Generator().manual_seed(seed)
    out: list[int] = []
    for name, n in sorted(part_quotas(parts, shares).items()):
        pick = torch.randperm(len(parts[name]), generator=generator)[:n].sort().values
        out += [parts[name][i] for i in pick.tolist()]
    return out


def part_quotas(parts: dict[str, list[int]], shares: dict[str, float] | None = None) -> dict[str, int]:
    """How many items :func:`balanced_indices` draws from each part."""
    k = min(map(len, parts.values()))
    return {name: min(len(members), max(1, round(k * (shares or {}).get(name, 1.0))))
            for name, members in parts.items()}


def part_draw(items: Sequence, balance: bool,
              share_specs: Sequence[str]) -> tuple[dict[str, list[int]] | None, dict[str, float]]:
    """``--balance-parts`` and ``--part-share`` checked against a training split's items (samples
    or examples): the parts to draw from (None: no balanced draw) and each named part's share.

    Raises:
        ValueError: ``--part-share`` without ``--balance-parts``, a corpus with one part, a bad share.
    """
    if share_specs and not balance:
        raise ValueError("--part-share scales --balance-parts' draw: give --balance-parts too")
    if not balance:
        return None, {}
    parts = corpus_parts(items)
    if len(parts) < 2:
        raise ValueError("--balance-parts needs a joined corpus (item ids PART/..., e.g. meld+goemotions); "
                         f"this one has {len(parts)} part")
    return parts, parse_part_shares(share_specs, list(parts))


def parse_part_shares(specs: Sequence[str], parts: Sequence[str]) -> dict[str, float]:
    """``["goemotions=0.5"]`` -> ``{"goemotions": 0.5}`` (``--part-share``).

    Raises:
        ValueError: a malformed or repeated spec, a part the corpus lacks, or a share that is not positive.
    """
    shares: dict[str, float] = {}
    for spec in specs:
        name, _, value = (x.strip() for x in spec.partition("="))
        try:
            share = float(value)
        except ValueError:
            raise ValueError(f"--part-share {spec!r}: expected PART=SHARE, e.g. goemotions=0.5") from None
        if name not in parts:
            raise ValueError(f"--part-share {spec!r}: the corpus has no part {name!r} "
                             f"(its parts: {', '.join(sorted(parts))})")
        if name in shares:
            raise ValueError(f"--part-share names {name} twice")
        if not share > 0:
            raise ValueError(f"--part-share {spec!r}: the share must be above 0")
        shares[name] = share
    return shares


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int, workers: int,
                sampler: "Sampler | None" = None) -> DataLoader:
    if sampler is not None:  # a process's shard of a multi-process run (the sampler shuffles)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate, num_workers=workers)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate, generator=generator,
                      num_workers=workers, drop_last=False)


