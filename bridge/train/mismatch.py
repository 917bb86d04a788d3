"""Modality mismatch for training: some samples take a modality from a sample of another label,
so the fusion learns how often an encoder that saw the training items is wrong on new ones."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Sequence

import torch

from bridge.batch import Batch
from bridge.cli import first_line
from bridge.modality import Modality, pattern_name


def parse_mismatch(specs: Sequence[str], modalities: Sequence[Modality]) -> dict[Modality, float]:
    """``["audio=0.35", ...]`` -> ``{Modality.AUDIO: 0.35, ...}``.

    Raises:
        ValueError: a malformed or repeated spec, a modality the model lacks, or a rate outside [0, 1).
    """
    rates: dict[Modality, float] = {}
    for spec in specs:
        name, _, value = spec.partition("=")
        try:
            modality, rate = Modality(name.strip()), float(value)
        except ValueError:
            raise ValueError(f"--mismatch {spec!r}: expected MODALITY=RATE with a modality of "
                             f"{', '.join(m.value for m in modalities)} and a rate in [0, 1), e.g. audio=0.3") from None
        if modality not in modalities:
            raise ValueError(f"--mismatch {spec!r}: this model has no {modality.value} "
                             f"(its modalities: {', '.join(m.value for m in modalities)})")
        if modality in rates:
            raise ValueError(f"--mismatch names {modality.value} twice")
        if not 0 <= rate < 1:
            raise ValueError(f"--mismatch {spec!r}: the rate must be in [0, 1)")
        rates[modality] = rate
    return rates


AUTO = "auto"


def source_rate(source: Path, data_root: str | None, corpus: str | None = None) -> tuple[float, float, float]:
    """The mismatch rate an encoder's source checkpoint calls for: 1 - validation UAR / training UAR
    of that checkpoint (``evaluate.py --split train`` and ``--split val``), floored at 0. UAR, not
    accuracy, so a corpus's majority class does not hide the gap.

    Args:
        corpus: the corpus to measure on (``--data``); None: the source's own, with the
            ``--limit`` it trained with. Name the corpus the fusion draws that modality from when
            it is not the source's own (the shipped text encoder trains on MELD and GoEmotions; the
            label-paired fusion reads MELD).

    Returns:
        the rate, the training UAR and the validation UAR.
    """
    from bridge.checkpoint import read_meta
    from bridge.commands import evaluate  # the evaluation evaluate.py runs, not a second copy of it

    limit = read_meta(source).get("data", {}).get("limit") if corpus is None else None  # the items it saw
    where = f"{source}" + (f" on {corpus}" if corpus else "")
    uar = {}
    for split in ("train", "val"):
        args = evaluate.parse_args(["--checkpoint", str(source), "--split", split, "--protocols", "patterns"]
                                   + (["--data", corpus] if corpus else [])
                                   + (["--data-root", data_root] if data_root else [])
                                   + (["--limit", str(limit)] if limit else []))
        try:
            run = evaluate.prepare(args)
            scores = evaluate.score(run, ("patterns",), (), (), args.seeds, args.batch_size)
        except (OSError, ValueError) as e:
            raise ValueError(f"--mismatch auto: cannot evaluate {where} on its {split} split "
                             f"({first_line(e, 200)})") from None
        uar[split] = scores.patterns[pattern_name(run.modalities)]["reconstruct"]["uar"]
    return max(0.0, 1 - uar["val"] / uar["train"]) if uar["train"] > 0 else 0.0, uar["train"], uar["val"]


def _auto(value: str) -> tuple[bool, str | None]:
    """``"auto"`` -> (True, None); ``"auto:meld"`` -> (True, "meld"); a rate -> (False, None)."""
    value = value.strip()
    if value == AUTO:
        return True, None
    if value.startswith(AUTO + ":") and value[len(AUTO) + 1:].strip():
        return True, value[len(AUTO) + 1:].strip()
    return False, None


def auto_modalities(specs: Sequence[str], started: Iterable[Modality]) -> dict[Modality, str | None]:
    """The modalities ``--mismatch MODALITY=auto[:CORPUS]`` names, each one an ``--init-encoder``
    starts, and the corpus to measure each on (None: the source's own).

    Raises:
        ValueError: an unknown modality or corpus, a modality named twice, or ``auto`` for a
            modality no ``--init-encoder`` starts.
    """
    from bridge.data.registry import CORPORA

    started, out, named = set(started), {}, set()
    for spec in specs:
        name, _, value = spec.partition("=")
        auto, corpus = _auto(value)
        try:
            modality = Modality(name.strip())
        except ValueError:
            if not auto:
                continue  # parse_mismatch says what is wrong with it
            raise ValueError(f"--mismatch {spec!r}: expected MODALITY=auto with a modality of "
                             f"{', '.join(m.value for m in Modality)}") from None
        if modality in named:  # before anything is measured, not after
            raise ValueError(f"--mismatch names {modality.value} twice")
        named.add(modality)
        if not auto:
            continue
        if modality not in started:
            raise ValueError(f"--mismatch {spec!r} measures the rate on the checkpoint --init-encoder "
                             f"{modality.value}=... starts from, and this run names none for {modality.value}")
        known = corpus is None or corpus in CORPORA or corpus == "synthetic" or corpus.startswith("manifest:")
        if not known:
            raise ValueError(f"--mismatch {spec!r}: no corpus {corpus!r} (choose from synthetic, "
                             f"{', '.join(CORPORA)}, manifest:PATH)")
        out[modality] = corpus
    return out


def resolve_auto(specs: Sequence[str], sources: dict[Modality, Path], data_root: str | None,
                 say: Callable[[str], None] = print,
                 measure: Callable[[Path, str | None, str | None], tuple[float, float, float]] = source_rate
                 ) -> list[str]:
    """``--mismatch MODALITY=auto[:CORPUS]`` specs replaced by the rate measured on that modality's
    ``--init-encoder`` source (:func:`source_rate`, two decimals); other specs pass through. The
    run then records the numbers, so a resumed run keeps them without measuring again.

    Raises:
        ValueError: as :func:`auto_modalities`.
    """
    rates = {}
    for modality, corpus in auto_modalities(specs, sources).items():
        rate, train_uar, val_uar = measure(sources[modality], data_root, corpus)
        on = f" on {corpus}" if corpus else ""
        say(f"mismatch {modality.value}={rate:.2f}: 1 - validation / training UAR of {sources[modality]}{on} "
            f"({100 * val_uar:.1f} / {100 * train_uar:.1f})")
        rates[modality.value] = f"{modality.value}={rate:.2f}"
    return [rates.get(spec.partition("=")[0].strip(), spec) for spec in specs]


def mismatch_modalities(batch: Batch, rates: dict[Modality, float], generator: torch.Generator) -> Batch:
    """The batch with some samples' modality taken from another sample of a different label.

    For each modality with a rate, each sample is picked with that probability and gets the
    input (and padding mask) of a random sample in the batch that has the modality and another
    label; a picked sample without such a donor, or with no other modality, keeps its own. The fusion then meets that
    modality wrong about as often as the rate says. Use it where encoders trained on the very
    items of the training split are right on them far more often than on unseen data (say a
    voice encoder with 93 % recall on its training clips and 63 % on held-out ones): without
    it the fusion learns to trust them as much as the training split suggests. The translators
    learn from the swapped pairs too, whose targets then belong to another label: a little
    noise in their targets, at the same rates.

    Args:
        batch: a labelled training batch.
        rates: per modality, the probability that a sample's input is swapped.
        generator: CPU random generator (for reproducibility).
    """
    inputs, masks, present = dict(batch.inputs), dict(batch.masks), batch.present
    labels = batch.labels.cpu()
    other = labels[:, None] != labels[None, :]  # (b, b): j may give i its input
    # a sample with one modality alone keeps it: with nothing to weigh it against, a swap would
    # only mislabel it (say a text-only sample added to label-paired training)
    fused = torch.stack([p.cpu() for p in present.values()]).sum(dim=0) > 1  # (b,)
    for modality, rate in rates.items():
        if rate <= 0 or modality not in inputs:
            continue
        has = present[modality].cpu()
        donors = other & has[None, :]
        picked = (torch.rand(len(labels), generator=generator) < rate) & has & fused & donors.any(dim=1)
        if not picked.any():
            continue
        choice = (torch.rand(donors.shape, generator=generator) * donors).argmax(dim=1)  # a random donor each
        source = torch.where(picked, choice, torch.arange(len(labels))).to(inputs[modality].device)
        inputs[modality] = inputs[modality][source]
        masks[modality] = masks[modality][source]
    return Batch(inputs, masks, present, batch.labels, batch.ids)
