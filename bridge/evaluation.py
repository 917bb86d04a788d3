"""Evaluation over modality patterns: every non-empty subset of the model's modalities, each
with missing modalities reconstructed by translation and with them zero-filled (MMIN's
fixed-pattern protocol, Zhao et al., ACL 2021)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from bridge.metrics import classification_report
from bridge.model import BridgeModel, Fill
from bridge.modality import Modality, pattern_name

FILLS: tuple[Fill, ...] = ("reconstruct", "zero")


def subsets(modalities: tuple[Modality, ...]) -> list[tuple[Modality, ...]]:
    """Every non-empty subset, smallest first: ``(face,), (audio,), ..., (face, audio, text)``."""
    return [c for r in range(1, len(modalities) + 1) for c in itertools.combinations(modalities, r)]


@torch.inference_mode()
def pattern_predictions(model: BridgeModel, loader: DataLoader, device: torch.device,
                        patterns: list[tuple[Modality, ...]], fills: tuple[Fill, ...] = FILLS,
                        progress: bool = True) -> dict[tuple[tuple[Modality, ...], Fill], dict[str, np.ndarray]]:
    """Probabilities and labels per (pattern, fill); each batch is encoded once for all of them.

    A sample that has none of a pattern's modalities is left out of that pattern.
    """
    model.eval()
    acc: dict[Any, dict[str, list]] = {(p, f): {"probs": [], "labels": [], "ids": []} for p in patterns for f in fills}
    for batch in tqdm(loader, desc="evaluate", leave=False, disable=not progress, mininterval=1.0):
        batch = batch.to(device)
        b = len(batch)
        latents = model.encode(batch)
        translations = model.translate(latents)
        for pattern in patterns:
            present = {m: (batch.present[m] if (m in batch.present and m in pattern) else
                           torch.zeros(b, dtype=torch.bool, device=device)) for m in model.modalities}
            keep = torch.stack(list(present.values())).any(dim=0)  # (b,)
            if not keep.any():
                continue
            recon = model.reconstruct(translations, present, b)
            for fill in fills:
                logits = model.classify(model.fuse(latents, recon, present, fill))
                slot = acc[(pattern, fill)]
                slot["probs"].append(logits.float().softmax(-1)[keep].cpu())
                slot["labels"].append(batch.labels[keep].cpu())
                slot["ids"].extend(i for i, k in zip(batch.ids, keep.tolist()) if k)
    return {key: {"probs": torch.cat(v["probs"]).numpy(), "labels": torch.cat(v["labels"]).numpy(), "ids": v["ids"]}
            for key, v in acc.items() if v["probs"]}


def evaluate_patterns(model: BridgeModel, loader: DataLoader, device: torch.device,
                      fills: tuple[Fill, ...] = FILLS, progress: bool = True) -> dict[str, dict[str, Any]]:
    """Metrics per modality pattern (``"face+text"``) and fill: ``results[pattern][fill] = report``."""
    patterns = subsets(model.modalities)
    preds = pattern_predictions(model, loader, device, patterns, fills, progress)
    results: dict[str, dict[str, Any]] = {}
    for (pattern, fill), p in preds.items():
        report = classification_report(p["labels"], p["probs"].argmax(-1), model.config.labels)
        results.setdefault(pattern_name(pattern), {})[fill] = report
    return results
