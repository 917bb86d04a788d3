"""Evaluation over modality patterns: every non-empty subset of the model's modalities, each
with missing modalities reconstructed by translation and with them zero-filled (MMIN's
fixed-pattern protocol, Zhao et al., ACL 2021); and the robustness protocols of
:mod:`bridge.eval.robustness`: a sample-level missing rate (GCNet) and input noise (MultiBench),
as metric curves over levels, mean and std over seeds.

Every function here scores any :class:`bridge.contract.Classifier` (a model, an ensemble, the
late-fusion baseline) through its ``encode`` and ``head`` alone: each batch is encoded once and
its head scored under every pattern, missing rate and fill."""

from __future__ import annotations

import itertools
import zlib
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from bridge.contract import Classifier, Fill
from bridge.eval.metrics import classification_report
from bridge.modality import Modality, pattern_name
from bridge.presence import complete_presence, drop_modalities
from bridge.eval.robustness import NoiseContext, area_under_curve, corrupt_batch

FILLS: tuple[Fill, ...] = ("reconstruct", "zero")


def subsets(modalities: tuple[Modality, ...]) -> list[tuple[Modality, ...]]:
    """Every non-empty subset, smallest first: ``(face,), (audio,), ..., (face, audio, text)``."""
    return [c for r in range(1, len(modalities) + 1) for c in itertools.combinations(modalities, r)]


@torch.inference_mode()
def pattern_predictions(model: Classifier, loader: DataLoader, device: torch.device,
                        patterns: list[tuple[Modality, ...]], fills: tuple[Fill, ...] = FILLS,
                        progress: bool = True, test_flip: bool = False,
                        ) -> dict[tuple[tuple[Modality, ...], Fill], dict[str, np.ndarray]]:
    """Probabilities and labels per (pattern, fill); each batch is encoded once for all of them.

    A sample that has none of a pattern's modalities is left out of that pattern.
    ``test_flip`` averages each face with its mirror image.
    """
    model.eval()
    acc: dict[Any, dict[str, list]] = {(p, f): {"probs": [], "labels": [], "ids": []} for p in patterns for f in fills}
    for batch in tqdm(loader, desc="evaluate", leave=False, disable=not progress, mininterval=1.0):
        batch = batch.to(device)
        encoded = model.encode(batch, test_flip)
        for pattern in patterns:
            present = complete_presence({m: v for m, v in batch.present.items() if m in pattern}, model.modalities,
                                        len(batch), device)
            keep = torch.stack(list(present.values())).any(dim=0)  # (b,)
            if not keep.any():
                continue
            for fill in fills:
                logits = model.head(encoded, present, fill)
                slot = acc[(pattern, fill)]
                slot["probs"].append(logits.float().softmax(-1)[keep].cpu())
                slot["labels"].append(batch.labels[keep].cpu())
                slot["ids"].extend(i for i, k in zip(batch.ids, keep.tolist()) if k)
    return {key: {"probs": torch.cat(v["probs"]).numpy(), "labels": torch.cat(v["labels"]).numpy(), "ids": v["ids"]}
            for key, v in acc.items() if v["probs"]}


def evaluate_patterns(model: Classifier, loader: DataLoader, device: torch.device,
                      fills: tuple[Fill, ...] = FILLS, progress: bool = True,
                      modalities: tuple[Modality, ...] | None = None,
                      test_flip: bool = False) -> dict[str, dict[str, Any]]:
    """Metrics per modality pattern (``"face+text"``) and fill: ``results[pattern][fill] = report``.

    ``modalities`` limits the patterns to subsets of these (default: all the model's);
    ``test_flip`` averages each face with its mirror image.
    """
    patterns = subsets(modalities or model.modalities)
    preds = pattern_predictions(model, loader, device, patterns, fills, progress, test_flip)
    results: dict[str, dict[str, Any]] = {}
    for (pattern, fill), p in preds.items():
        report = classification_report(p["labels"], p["probs"].argmax(-1), model.config.labels)
        results.setdefault(pattern_name(pattern), {})[fill] = report
    return results


# --- robustness protocols: missing rate and noise (bridge.eval.robustness) ----------------------------
METRICS: tuple[str, ...] = ("accuracy", "macro_f1", "weighted_f1", "uar")
ALL_TARGET = "all"


def _generator(seed: int, name: str) -> torch.Generator:
    """A CPU generator for one (seed, protocol setting), independent of the others."""
    return torch.Generator().manual_seed(zlib.crc32(f"{seed}/{name}".encode()))


@torch.inference_mode()
def robustness_predictions(model: Classifier, loader: DataLoader, device: torch.device,
                           etas: tuple[float, ...], noise_levels: tuple[float, ...], seeds: int,
                           context: NoiseContext | None, fills: tuple[Fill, ...] = FILLS,
                           progress: bool = True, first_seed: int = 0,
                           modalities: tuple[Modality, ...] | None = None,
                           test_flip: bool = False) -> dict[tuple, dict[str, np.ndarray]]:
    """Probabilities and labels under random missing modalities and under input noise.

    Keys are ``("missing", eta, seed, fill)`` and ``("noise", target, level, seed, fill)``, with
    ``target`` a modality name or ``"all"``. Each batch is encoded once for every missing rate.
    Under noise each modality is corrupted and re-encoded once per (level, seed); its noisy
    latent replaces the clean one alone (target: that modality) and together with the other
    modalities' noisy latents (target ``"all"``, the same noise draws).
    Noise keeps every modality present, so there the two fills differ only for samples that
    lack a modality in the data.

    Args:
        etas: missing rates, each in [0, 1) (empty: no missing-rate protocol).
        noise_levels: noise levels, each in [0, 1] (empty: no noise protocol).
        seeds: how many random draws of the masks and noise.
        modalities: the modalities that may be observed and noised (default: all the model's);
            the others count as missing throughout.
        first_seed: the draws use seeds ``first_seed, ..., first_seed + seeds - 1`` (keys keep ``0..seeds-1``).
        context: what the corruptions need (:func:`bridge.eval.robustness.noise_context`); None
            when ``noise_levels`` is empty.
        test_flip: average each face with its mirror image (clean and noisy faces alike).
    """
    model.eval()
    active = tuple(modalities or model.modalities)
    targets = [m.value for m in active] + [ALL_TARGET]
    gens: dict[tuple, torch.Generator] = {}
    acc: dict[tuple, dict[str, list]] = {}

    def add(key: tuple, logits: Tensor, labels: Tensor) -> None:
        slot = acc.setdefault(key, {"probs": [], "labels": []})
        slot["probs"].append(logits.float().softmax(-1).cpu())
        slot["labels"].append(labels.cpu())

    for batch in tqdm(loader, desc="robustness", leave=False, disable=not progress, mininterval=1.0):
        batch = batch.to(device)
        full = complete_presence({m: v for m, v in batch.present.items() if m in active}, model.modalities,
                                 len(batch), device)
        encoded = model.encode(batch, test_flip)
        for seed in range(seeds):
            for eta in etas:
                gen = gens.setdefault(("missing", eta, seed), _generator(first_seed + seed, f"missing/{eta}"))
                present = drop_modalities(full, eta, gen)
                for fill in fills:
                    add(("missing", eta, seed, fill), model.head(encoded, present, fill), batch.labels)
        if 0 in noise_levels:  # the clean inputs: the same for every target and seed
            for fill in fills:
                logits = model.head(encoded, full, fill)
                for name, seed in itertools.product(targets, range(seeds)):
                    add(("noise", name, 0, seed, fill), logits, batch.labels)
        for level, seed in itertools.product([v for v in noise_levels if v > 0], range(seeds)):
            noisy = {}  # each modality corrupted and re-encoded once, alone and then all together
            for m in active:
                gen = gens.setdefault(("noise", m, level, seed),
                                      _generator(first_seed + seed, f"noise/{m.value}/{level}"))
                noisy[m] = model.encode(corrupt_batch(batch.select((m,)), level, (m,), context, gen), test_flip)
            for name in targets:
                noisy_encoded = encoded
                for m, e in noisy.items():
                    if name in (ALL_TARGET, m.value):
                        noisy_encoded = noisy_encoded.merge(e)
                for fill in fills:
                    add(("noise", name, level, seed, fill), model.head(noisy_encoded, full, fill), batch.labels)
    return {key: {"probs": torch.cat(v["probs"]).numpy(), "labels": torch.cat(v["labels"]).numpy()}
            for key, v in acc.items()}


def _curves(preds: dict[tuple, dict[str, np.ndarray]], prefix: tuple, levels: tuple[float, ...], seeds: int,
            fill: Fill, labels: tuple[str, ...]) -> dict[str, Any]:
    """Per metric: mean and std over seeds at every level, and the area under the curve (mean, std)."""
    scores = np.zeros((len(METRICS), seeds, len(levels)))  # (metric, seed, level)
    for j, level in enumerate(levels):
        for seed in range(seeds):
            p = preds[(*prefix, level, seed, fill)]
            report = classification_report(p["labels"], p["probs"].argmax(-1), labels)
            scores[:, seed, j] = [report[k] for k in METRICS]
    out: dict[str, Any] = {}
    for i, metric in enumerate(METRICS):
        entry = {"mean": scores[i].mean(axis=0).tolist(), "std": scores[i].std(axis=0).tolist()}
        if len(levels) >= 2:
            areas = [area_under_curve(levels, s) for s in scores[i]]
            entry["auc"] = {"mean": float(np.mean(areas)), "std": float(np.std(areas))}
        out[metric] = entry
    return out


def evaluate_robustness(model: Classifier, loader: DataLoader, device: torch.device, etas: tuple[float, ...],
                        noise_levels: tuple[float, ...], seeds: int, context: NoiseContext | None,
                        fills: tuple[Fill, ...] = FILLS, progress: bool = True,
                        first_seed: int = 0, modalities: tuple[Modality, ...] | None = None,
                        test_flip: bool = False) -> dict[str, Any]:
    """The missing-rate and noise protocols as metric curves over seeds.

    Returns ``{"missing": {"levels", "seeds", "results": {fill: {metric: {"mean", "std", "auc"}}}},
    "noise": {"levels", "seeds", "results": {target: {fill: {metric: ...}}}}}`` with the lists
    in ``mean``/``std`` aligned with ``levels``; a protocol with no levels is left out and
    ``auc`` needs two levels or more.
    """
    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {seeds}")
    preds = robustness_predictions(model, loader, device, etas, noise_levels, seeds, context, fills, progress,
                                   first_seed, modalities, test_flip)
    labels = model.config.labels
    out: dict[str, Any] = {}
    if etas:
        out["missing"] = {"levels": list(etas), "seeds": seeds, "results": {
            fill: _curves(preds, ("missing",), etas, seeds, fill, labels) for fill in fills}}
    if noise_levels:
        targets = [m.value for m in (modalities or model.modalities)] + [ALL_TARGET]
        out["noise"] = {"levels": list(noise_levels), "seeds": seeds, "results": {
            t: {fill: _curves(preds, ("noise", t), noise_levels, seeds, fill, labels) for fill in fills}
            for t in targets}}
    return out
