"""Figures: training curves and confusion matrices (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # no display needed; set here, not at package import
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def save_figure(fig, path: Path) -> None:
    """Write a figure atomically (temporary file, then rename) and close it.

    Raises:
        OSError: ``"cannot write PATH (why)"`` when the folder cannot be made or written.
    """
    from bridge.checkpoint import cannot_write

    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
        tmp.replace(path)
    except OSError as e:
        if tmp.parent.is_dir():
            tmp.unlink(missing_ok=True)
        raise cannot_write(path, e) from e
    finally:
        plt.close(fig)


def plot_curves(history: Sequence[dict[str, Any]], path: Path, kept: int | None = None) -> None:
    """Loss, accuracy and macro F1 per epoch, train and validation; ``kept``: the epoch whose
    weights the checkpoint holds, marked on every panel."""
    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(epochs, [r["train"]["loss"] for r in history], "o-", label="train")
    axes[0].plot(epochs, [r["val"]["loss"] for r in history], "o-", label="val")
    axes[0].set_title("loss")
    if any("translation" in r["train"] for r in history):
        axes[0].plot(epochs, [r["train"].get("translation", np.nan) for r in history], "--", label="train translation")
    for ax, metric in ((axes[1], "accuracy"), (axes[2], "macro_f1")):
        if all(metric in r["train"] for r in history):
            ax.plot(epochs, [r["train"][metric] for r in history], "o-", color="C0",
                    label="train (modality dropout on)")
        ax.plot(epochs, [r["val"][metric] for r in history], "o-", color="C1", label="val")
        ax.set_title(metric.replace("_", " ").replace("f1", "F1"))
    if all("macro_f1_patterns" in r["val"] for r in history):  # train.py --select patterns
        axes[2].plot(epochs, [r["val"]["macro_f1_patterns"] for r in history], "s--", color="C2",
                     label="val, mean over modality patterns")
    for ax in axes:
        if kept is not None:
            ax.axvline(kept, color="0.3", linestyle=":", linewidth=1.2, label=f"kept (epoch {kept})")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, path)


def plot_confusion(confusion: Sequence[Sequence[int]], labels: Sequence[str], path: Path, title: str = "") -> None:
    """Row-normalised confusion matrix with counts."""
    cm = np.asarray(confusion, dtype=float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(labels), 0.8 + 0.7 * len(labels)))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    save_figure(fig, path)


def plot_patterns(results: dict[str, dict[str, dict[str, Any]]], path: Path, metric: str = "macro_f1",
                  errors: dict[str, dict[str, float]] | None = None) -> None:
    """Grouped bars of ``metric`` per modality pattern, one bar per series: ``results[pattern][series]``.

    Series are fills (reconstruct beside zero-fill) for one model, or systems in a comparison; a
    series missing from a pattern leaves a gap. ``errors[pattern][series]`` draws error bars.
    """
    patterns = list(results)
    series = list(dict.fromkeys(name for p in patterns for name in results[p]))
    width = 0.8 / len(series)
    x = np.arange(len(patterns))
    fig, ax = plt.subplots(figsize=(1.2 + (0.5 + 0.35 * len(series)) * len(patterns), 3.8))
    for i, name in enumerate(series):
        values = [results[p][name][metric] if name in results[p] else np.nan for p in patterns]
        err = None if errors is None else [errors.get(p, {}).get(name, 0.0) for p in patterns]
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, yerr=err, capsize=2,
               label="zero-fill" if name == "zero" else name)
    ax.set_xticks(x, patterns, rotation=30, ha="right")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if len(series) > 4 else 1)
    save_figure(fig, path)


def plot_timeline(rows: Sequence[Any], labels: Sequence[str], path: Path, title: str = "") -> None:
    """Per-class probability over time, stacked, from the first window's start to the last one's end;
    the top label is written above, and a strip below shows which modalities each window observed.

    Args:
        rows: :class:`~bridge.inference.timeline.TimelineRow` (``start``, ``end``, ``label``, ``probabilities``).
        labels: class names, in the model's order.
        path: the PNG to write.
    """
    centres = np.array([(r.start + r.end) / 2 for r in rows])
    probs = np.array([[r.probabilities.get(n, 0.0) for n in labels] for r in rows])  # (windows, classes)
    fig, (ax, strip) = plt.subplots(2, 1, figsize=(max(6.0, 0.5 * len(rows) + 3), 4.6), sharex=True,
                                    gridspec_kw={"height_ratios": [4, 1]})
    if len(rows) == 1:  # a stack needs two points: draw the single window as a bar
        bottom = 0.0
        for j, name in enumerate(labels):
            ax.bar(centres[0], probs[0, j], rows[0].end - rows[0].start, bottom=bottom, color=f"C{j}", label=name)
            bottom += probs[0, j]
    else:  # the first and last windows' values held out to their edges: the plot spans the whole video
        xs = np.concatenate([[rows[0].start], centres, [rows[-1].end]])
        ys = np.concatenate([probs[:1], probs, probs[-1:]])
        ax.stackplot(xs, ys.T, labels=labels, colors=[f"C{j}" for j in range(len(labels))], alpha=0.85)
    for r, x in zip(rows, centres):
        if r.label is not None:
            ax.text(x, 1.01, r.label, rotation=90, ha="center", va="bottom", fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_xlim(rows[0].start, rows[-1].end)
    # Which modalities each window observed (the others were reconstructed): one row per modality.
    names = list(dict.fromkeys(m for r in rows for m in (*r.observed, *r.reconstructed))) or ["-"]
    for i, name in enumerate(names):
        for r, x in zip(rows, centres):
            seen = name in r.observed
            strip.plot([x], [i], "s" if seen else "x", color="C2" if seen else "0.6", markersize=6)
    strip.set_yticks(range(len(names)), names, fontsize=7)
    strip.set_ylim(-0.6, len(names) - 0.4)
    strip.set_ylabel("observed", fontsize=7)
    strip.set_xlabel("time (s); squares: observed, crosses: reconstructed")
    ax.set_ylabel("probability")
    ax.set_title(title, pad=40 if title else 34)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    save_figure(fig, path)
