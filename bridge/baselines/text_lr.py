"""The text anchor the release is measured against: a frozen sentence encoder (MiniLM-L6, mean-pooled
and L2-normalised, as sentence-transformers uses it) under a logistic regression.

Nothing is fine-tuned, so the gap between this and bridge's text part is what training the encoder's
top layers and bridge's head buys. The regularisation strength is chosen on the validation split by
the row's headline metric, then the model is refit on the training split alone and scored on test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

C_GRID = (0.1, 1.0, 10.0, 100.0)


@torch.no_grad()
def embed(texts: list[str], weights: str = "minilm-l6", batch_size: int = 128, max_length: int = 128,
          progress: bool = True) -> np.ndarray:
    """Mean-pooled, L2-normalised last hidden states of a frozen encoder, ``(n, hidden)`` float32.

    Args:
        texts: the sentences.
        weights: a hub name, a local folder, or an alias of :func:`bridge.tokenizer.resolve_pretrained`.
        max_length: tokens per text, longer ones are cut.
    """
    from tqdm import tqdm
    from transformers import AutoModel, AutoTokenizer

    from bridge.tokenizer import resolve_pretrained

    path = resolve_pretrained(weights)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, add_pooling_layer=False).eval()
    order = np.argsort([len(t) for t in texts])  # batches of similar length pad little
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    for start in tqdm(range(0, len(texts), batch_size), desc="embedding", disable=not progress, leave=False):
        rows = order[start:start + batch_size]
        enc = tokenizer([texts[i] for i in rows], padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt")
        hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        out[rows] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    return out


def text_lr(data: str, root: str | Path | None = None, select: str = "macro_f1", weights: str = "minilm-l6",
            limit: int | None = None, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Frozen-encoder + logistic-regression figures on a corpus's test split.

    Args:
        data: a corpus with text (``meld``, ``goemotions``, ``meld+goemotions``, ``synthetic``, ...).
        select: the validation metric that picks ``C`` (a key of
            :func:`bridge.eval.metrics.classification_report`).
        limit: at most this many samples per split (quick runs).

    Returns:
        ``{"test": report, "val": report, "C": chosen, "n": {split: count}, "labels": [...]}``.

    Raises:
        ValueError: a split has no text.
    """
    from sklearn.linear_model import LogisticRegression

    from bridge.data.corpora import load_splits
    from bridge.eval.metrics import classification_report

    splits = load_splits(data, root, seed=seed, limit=limit)
    xy = {}
    for name in ("train", "val", "test"):
        samples = [s for s in getattr(splits, name) if s.text is not None]
        if not samples:
            raise ValueError(f"{data}: the {name} split has no text")
        xy[name] = embed([s.text for s in samples], weights, progress=progress), np.array([s.label for s in samples])

    def fit(c: float) -> LogisticRegression:
        return LogisticRegression(C=c, max_iter=3000).fit(*xy["train"])

    def report(clf: LogisticRegression, name: str) -> dict[str, Any]:
        return classification_report(xy[name][1], clf.predict(xy[name][0]), splits.labels)

    scores = {c: report(fit(c), "val")[select] for c in C_GRID}
    best = max(C_GRID, key=lambda c: scores[c])  # the smallest C of equals: the most regularised
    clf = fit(best)
    return {"test": report(clf, "test"), "val": report(clf, "val"), "C": best, "select": select,
            "val_by_C": {str(c): s for c, s in scores.items()}, "n": {k: len(v[1]) for k, v in xy.items()},
            "labels": list(splits.labels), "encoder": weights}
