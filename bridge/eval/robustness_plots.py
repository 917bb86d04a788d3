"""Figures of the robustness protocols: a metric against the missing rate and against the noise
level (per corrupted modality), reconstruction against zero-fill, mean ± std over seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bridge.plots import save_figure  # first: it selects the headless Agg backend

import matplotlib.pyplot as plt  # noqa: E402, I001
import numpy as np  # noqa: E402


METRIC_NAMES = {"accuracy": "accuracy", "macro_f1": "macro F1", "weighted_f1": "weighted F1", "uar": "UAR"}


def _curve(ax, levels: list[float], by_fill: dict[str, dict[str, Any]], metric: str) -> None:
    """One line per fill with a ± std band."""
    for fill, curves in by_fill.items():
        mean, std = np.asarray(curves[metric]["mean"]), np.asarray(curves[metric]["std"])
        auc = curves[metric].get("auc")
        label = fill if auc is None else f"{fill} (AUC {auc['mean']:.3f})"
        ax.plot(levels, mean, marker="o", label=label)
        ax.fill_between(levels, mean - std, mean + std, alpha=0.2)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def plot_missing(missing: dict[str, Any], path: Path, metric: str = "macro_f1") -> None:
    """``metric`` against the missing rate η, reconstruct and zero-fill."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    _curve(ax, missing["levels"], missing["results"], metric)
    ax.set_xlabel("missing rate η")
    ax.set_ylabel(METRIC_NAMES[metric])
    ax.set_title(f"missing modalities, mean ± std over {missing['seeds']} seeds", fontsize=9)
    save_figure(fig, path)


def plot_noise(noise: dict[str, Any], path: Path, metric: str = "macro_f1") -> None:
    """``metric`` against the noise level, one panel per corrupted modality (and all at once)."""
    targets = list(noise["results"])
    fig, axes = plt.subplots(1, len(targets), figsize=(3.6 * len(targets), 3.4), squeeze=False)
    for ax, target in zip(axes[0], targets):
        _curve(ax, noise["levels"], noise["results"][target], metric)
        ax.set_xlabel("noise level")
        ax.set_title(f"noise on {target}", fontsize=9)
    axes[0][0].set_ylabel(METRIC_NAMES[metric])
    fig.suptitle(f"input noise, mean ± std over {noise['seeds']} seeds", fontsize=9)
    save_figure(fig, path)
