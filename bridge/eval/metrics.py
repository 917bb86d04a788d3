"""Classification metrics: accuracy, macro and weighted F1, unweighted average recall (UAR),
per-class precision/recall/F1 and the confusion matrix."""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``(c, c)`` counts, rows true class, columns predicted."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)), 1)
    return cm


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, labels: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """All metrics for one set of predictions.

    Macro F1 averages over the classes that occur in ``y_true`` or ``y_pred`` (sklearn's
    convention); UAR averages recall over the classes that occur in ``y_true``.

    Args:
        y_true: ``(n,)`` true class indices.
        y_pred: ``(n,)`` predicted class indices.
        labels: class names, in index order.
    """
    c = len(labels)
    cm = confusion_matrix(y_true, y_pred, c)
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1).astype(float)
    predicted = cm.sum(axis=0).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros(c), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(c), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(c), where=(precision + recall) > 0)
    seen = (support > 0) | (predicted > 0)
    n = support.sum()
    return {
        "n": int(n),
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_f1": float(f1[seen].mean()) if seen.any() else 0.0,
        "weighted_f1": float((f1 * support).sum() / n) if n else 0.0,
        "uar": float(recall[support > 0].mean()) if (support > 0).any() else 0.0,
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                             "support": int(support[i])} for i, name in enumerate(labels)},
        "confusion": cm.tolist(),
    }
