"""``train.py --data NAME`` and ``evaluate.py --data NAME`` on every real corpus (short runs)."""

from __future__ import annotations

import json

import pytest

import evaluate
import train
from bridge.data.paths import require_corpus

FOLDERS = {"fer2013": ["fer2013"], "ravdess": ["ravdess"], "ravdess8": ["ravdess"], "meld": ["meld"],
           "goemotions": ["goemotions"],
           "mosi": ["mosi"], "paired": ["fer2013", "ravdess", "meld"]}
EXPECTED = {  # the modalities each corpus gives the model, and its label count
    "fer2013": ({"face"}, 7), "ravdess": ({"audio"}, 7), "ravdess8": ({"audio"}, 8), "meld": ({"text"}, 7),
    "goemotions": ({"text"}, 7),
    "mosi": ({"face", "audio", "text"}, 2), "paired": ({"face", "audio", "text"}, 7),
}


@pytest.mark.parametrize("name", sorted(FOLDERS))
def test_train_and_evaluate_on_real_corpus(name, tmp_path):
    for folder in FOLDERS[name]:
        try:
            require_corpus(folder)
        except FileNotFoundError as e:
            pytest.skip(f"real data absent: {e}")
    out = tmp_path / name
    common = ["--limit", "21", "--cache-dir", str(tmp_path / "cache")]
    assert train.main(["--data", name, "--epochs", "1", "--batch-size", "8", "--output", str(out), *common]) == 0
    meta = json.loads((out / "config.json").read_text())
    modalities, classes = EXPECTED[name]
    assert {m for m in ("face", "audio", "text") if meta["model"][m] is not None} == modalities
    assert len(meta["labels"]) == classes
    if name == "mosi":  # shipped as features: feature encoders serve face and audio, raw transcripts feed text
        assert meta["model"]["face"]["kind"] == meta["model"]["audio"]["kind"] == "features"
        assert meta["model"]["text"]["kind"] == "text"
    report = tmp_path / "report"
    assert evaluate.main(["--checkpoint", str(out), "--output", str(report), *common]) == 0
    results = json.loads((report / "results.json").read_text())
    assert results["data"].startswith("label-paired") == (name == "paired")
    assert len(results["results"]) == 2 ** len(modalities) - 1
