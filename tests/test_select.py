"""``train.py --select patterns``: keep the epoch with the best validation macro F1 averaged
over every modality pattern, not only with all modalities observed."""

from __future__ import annotations

import json

import pytest

import evaluate
import train
from bridge.model import load_checkpoint

PATTERNS = {"face", "audio", "text", "face+audio", "face+text", "audio+text", "face+audio+text"}


def test_select_patterns_keeps_the_epoch_best_on_the_mean_over_patterns(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--limit", "40", "--epochs", "2", "--batch-size", "16", "--no-cache", "--select", "patterns"]
    assert train.main([*argv, "--output", str(out)]) == 0
    history = json.loads((out / "history.json").read_text())
    for row in history:
        per_pattern = {k.split("/", 1)[1]: v for k, v in row["val"].items() if k.startswith("macro_f1/")}
        assert set(per_pattern) == PATTERNS
        assert row["val"]["macro_f1_patterns"] == pytest.approx(sum(per_pattern.values()) / len(PATTERNS))
        assert row["val"]["macro_f1/face+audio+text"] == pytest.approx(row["val"]["macro_f1"])
    best = max(history, key=lambda r: r["val"]["macro_f1_patterns"])  # the first of equals, as training keeps
    _, meta = load_checkpoint(out)
    assert meta["training"]["select"] == "patterns" and meta["best"]["epoch"] == best["epoch"]
    assert f"best epoch {best['epoch']}: " in capsys.readouterr().out  # the summary names the kept epoch
    # the saved model scores the recorded figures when evaluate.py reads the same validation split
    report = tmp_path / "eval"
    assert evaluate.main(["--checkpoint", str(out), "--split", "val", "--limit", "40", "--no-cache",
                          "--protocols", "patterns", "--output", str(report)]) == 0
    results = json.loads((report / "results.json").read_text())["results"]
    for pattern in PATTERNS:
        assert results[pattern]["reconstruct"]["macro_f1"] == pytest.approx(best["val"][f"macro_f1/{pattern}"])


def test_select_all_is_the_default_and_records_no_pattern_scores(tmp_path, capsys):
    out = tmp_path / "run"
    assert train.main(["--limit", "32", "--epochs", "1", "--batch-size", "16", "--no-cache",
                       "--output", str(out)]) == 0
    history = json.loads((out / "history.json").read_text())
    assert "macro_f1_patterns" not in history[0]["val"]
    assert load_checkpoint(out)[1]["training"]["select"] == "all"
    with pytest.raises(SystemExit):
        train.main(["--select", "best", "--output", str(tmp_path / "bad")])
    assert "invalid choice: 'best'" in capsys.readouterr().err


@pytest.mark.parametrize("select, kept", [("all", 1), ("patterns", 2)])
def test_the_kept_epoch_follows_the_selection_score(select, kept, tmp_path, monkeypatch, capsys):
    """Scripted validation scores that disagree: epoch 1 is best on all modalities, epoch 2 on the mean."""
    import bridge.train.trainer

    scripted = iter([{"loss": 1.0, "accuracy": 0.9, "macro_f1": 0.9, "macro_f1_patterns": 0.3},
                     {"loss": 1.0, "accuracy": 0.6, "macro_f1": 0.6, "macro_f1_patterns": 0.5}])
    monkeypatch.setattr(bridge.train.trainer.Trainer, "_validate", lambda self, loader: next(scripted))
    out = tmp_path / "run"
    assert train.main(["--limit", "16", "--epochs", "2", "--batch-size", "16", "--no-cache", "--select", select,
                       "--output", str(out)]) == 0
    assert load_checkpoint(out)[1]["best"]["epoch"] == kept
    assert f"best epoch {kept}: " in capsys.readouterr().out
