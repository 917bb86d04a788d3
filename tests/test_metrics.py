from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, recall_score

from bridge.eval.metrics import classification_report


def test_hand_computed_example():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2])
    r = classification_report(y_true, y_pred, ["a", "b", "c"])
    # a: P 1, R 2/3, F1 0.8; b: P 1/2, R 1/2, F1 1/2; c: P 1/2, R 1, F1 2/3
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert r["weighted_f1"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * 2 / 3) / 6)
    assert r["uar"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert r["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert r["per_class"]["c"]["support"] == 1


def test_matches_sklearn_on_random_labels():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 7, 500), rng.integers(0, 7, 500)
    r = classification_report(y_true, y_pred, list("abcdefg"))
    assert r["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert r["weighted_f1"] == pytest.approx(f1_score(y_true, y_pred, average="weighted"))
    assert r["uar"] == pytest.approx(recall_score(y_true, y_pred, average="macro"))
