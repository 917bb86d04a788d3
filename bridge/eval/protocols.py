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
                        progress: bool = True, views: str = "single",
                        ) -> dict[tuple[tuple[Modality, ...], Fill], dict[str, np.ndarray]]:
    """Probabilities and labels per (pattern, fill); each batch is encoded once for all of them.

    A sample that has none of a pattern's modalities is left out of that pattern.
    ``views``: the test-time views each face latent averages (:mod:`bridge.views`).
    """
    model.eval()
    acc: dict[Any, dict[str, list]] = {(p, f): {"probs": [], "labels": [], "ids": []} for p in patterns for f in fills}
    for batch in tqdm(loader, desc="evaluate", leave=False, disable=not progress, mininterval=1.0):
        batch = batch.to(device)
        encoded = model.encode(batch, views)
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
                      views: str = "single") -> dict[str, dict[str, Any]]:
    """Metrics per modality pattern (``"face+text"``) and fill: ``results[pattern][fill] = report``.

    ``modalities`` limits the patterns to subsets of these (default: all the model's);
    ``views``: the test-time views each face latent averages (:mod:`bridge.views`).
    """
    patterns = subsets(modalities or model.modalities)
    preds = pattern_predictions(model, loader, device, patterns, fills, progress, views)
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
                           views: str = "single") -> dict[tuple, dict[str, np.ndarray]]:
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
        views: the test-time views each face latent averages, clean and noisy faces alike (:mod:`bridge.views`).
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
        encoded = model.encode(batch, views)
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
                noisy[m] = model.encode(corrupt_batch(batch.select((m,)), level, (m,), context, gen), views)
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
                        views: str = "single") -> dict[str, Any]:
    """The missing-rate and noise protocols as metric curves over seeds.

    Returns ``{"missing": {"levels", "seeds", "results": {fill: {metric: {"mean", "std", "auc"}}}},
    "noise": {"levels", "seeds", "results": {target: {fill: {metric: ...}}}}}`` with the lists
    in ``mean``/``std`` aligned with ``levels``; a protocol with no levels is left out and
    ``auc`` needs two levels or more.
    """
    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {seeds}")
    preds = robustness_predictions(model, loader, device, etas, noise_levels, seeds, context, fills, progress,
                                   first_seed, modalities, views)
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


# --- the field's protocol (CyIN, IMDer, GCNet, MMIN on CMU-MOSI) ---------------------------------
FIELD_ETAS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
FIELD_METRICS: tuple[str, ...] = ("weighted_f1", "accuracy", "macro_f1")
FIELD_FIGURES: dict[str, str] = {  # summary key -> the name tables print
    "fixed_average": "fixed average",
    "random_average": "random average",
    "text_only": "text only",
    "no_text": "no text",
    "all": "all modalities",
}


def field_patterns(modalities: tuple[Modality, ...]) -> list[tuple[Modality, ...]]:
    """The field's fixed missing patterns: every subset with at least one modality present and
    at least one missing (6 of three modalities; MMIN's and CyIN's "fixed" protocol).

    Raises:
        ValueError: with fewer than two modalities (nothing can be missing).
    """
    if len(modalities) < 2:
        raise ValueError("the field protocol needs a model with at least two modalities "
                         f"(it has {pattern_name(modalities) or 'none'})")
    return [s for s in subsets(modalities) if len(s) < len(modalities)]


def _field_pattern(modalities: tuple[Modality, ...], name: str) -> tuple[Modality, ...] | None:
    """The pattern behind ``text_only``, ``no_text`` or ``all``; None when the model cannot have it."""
    if name == "all":
        return modalities
    if Modality.TEXT not in modalities:
        return None
    if name == "text_only":
        return (Modality.TEXT,)
    rest = tuple(m for m in modalities if m != Modality.TEXT)
    return rest or None


def evaluate_field(model: Classifier, loader: DataLoader, device: torch.device, seeds: int = 3,
                   fills: tuple[Fill, ...] = FILLS, etas: tuple[float, ...] = FIELD_ETAS, first_seed: int = 0,
                   modalities: tuple[Modality, ...] | None = None, progress: bool = True,
                   views: str = "single") -> dict[str, Any]:
    """The field's missing-modality protocol, as CyIN (NeurIPS 2025) and IMDer (NeurIPS 2023) report it.

    - **fixed**: each of :func:`field_patterns` observed by every sample, the rest missing; the
      figure is the mean over the patterns (one value: no randomness).
    - **random**: at each missing rate η of ``etas`` (default 0.1 … 0.7) each (sample, modality) is
      dropped with probability η and every sample keeps one (:func:`bridge.presence.drop_modalities`,
      GCNet's draw, seeded by ``first_seed + s`` for draw ``s``); the figure is the mean over η,
      mean ± std over the ``seeds`` draws.
    - **text only**, **no text** (every other modality) and **all modalities**.

    Returns:
        ``{"patterns", "etas", "seeds", "results": {fill: {"fixed": {pattern: {metric}},
        "random": {metric: {"mean": [per η], "std": [...]}}, "summary": {figure: {metric: {"mean", "std"}}}}}}``
        with figures keyed as :data:`FIELD_FIGURES` and metrics :data:`FIELD_METRICS`; and, with
        both fills, ``"reconstruct_minus_zero"``: per metric the mean over the fixed patterns of
        reconstruct − zero-fill (the same weights) and the pattern where zero-fill wins most.
    """
    from bridge.eval.metrics import classification_report

    active = tuple(modalities or model.modalities)
    patterns = field_patterns(active)
    named = {k: _field_pattern(active, k) for k in ("text_only", "no_text", "all")}
    wanted = list(dict.fromkeys([*patterns, *(p for p in named.values() if p is not None)]))
    labels = model.config.labels
    fixed_preds = pattern_predictions(model, loader, device, wanted, fills, progress, views)
    random_preds = robustness_predictions(model, loader, device, tuple(etas), (), seeds, None, fills, progress,
                                          first_seed, active, views) if etas else {}

    def scores(p: dict[str, np.ndarray]) -> dict[str, float]:
        report = classification_report(p["labels"], p["probs"].argmax(-1), labels)
        return {k: float(report[k]) for k in FIELD_METRICS}

    def fixed_stat(values: list[float]) -> dict[str, float]:
        return {"mean": float(np.mean(values)), "std": 0.0}

    results: dict[str, Any] = {}
    for fill in fills:
        fixed = {pattern_name(p): scores(fixed_preds[(p, fill)]) for p in wanted if (p, fill) in fixed_preds}
        summary: dict[str, Any] = {"fixed_average": {k: fixed_stat([fixed[pattern_name(p)][k] for p in patterns])
                                                     for k in FIELD_METRICS}}
        random: dict[str, Any] = {}
        if etas:
            per = np.array([[list(scores(random_preds[("missing", eta, s, fill)]).values()) for eta in etas]
                            for s in range(seeds)])  # (seed, eta, metric)
            random = {k: {"mean": per[:, :, i].mean(0).tolist(), "std": per[:, :, i].std(0).tolist()}
                      for i, k in enumerate(FIELD_METRICS)}
            averages = per.mean(axis=1)  # (seed, metric)
            summary["random_average"] = {k: {"mean": float(averages[:, i].mean()), "std": float(averages[:, i].std())}
                                         for i, k in enumerate(FIELD_METRICS)}
        for key, p in named.items():
            if p is not None and pattern_name(p) in fixed:
                summary[key] = {k: fixed_stat([fixed[pattern_name(p)][k]]) for k in FIELD_METRICS}
        results[fill] = {"fixed": {pattern_name(p): fixed[pattern_name(p)] for p in patterns}, "random": random,
                         "summary": summary, "named": {k: pattern_name(p) for k, p in named.items() if p is not None}}
    out: dict[str, Any] = {"patterns": [pattern_name(p) for p in patterns], "etas": list(etas), "seeds": seeds,
                           "first_seed": first_seed, "results": results}
    if "reconstruct" in results and "zero" in results:
        out["reconstruct_minus_zero"] = fill_gain(results["reconstruct"]["fixed"], results["zero"]["fixed"])
    return out


def fill_gain(reconstruct: dict[str, dict[str, float]], zero: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Per metric, reconstruct − zero-fill over the patterns both have: the mean, and the worst pattern."""
    out = {}
    common = [p for p in reconstruct if p in zero]
    for k in FIELD_METRICS:
        gains = {p: reconstruct[p][k] - zero[p][k] for p in common}
        worst = min(gains, key=gains.get)
        out[k] = {"mean": float(np.mean(list(gains.values()))), "worst_pattern": worst, "worst": gains[worst],
                  "per_pattern": gains}
    return out
