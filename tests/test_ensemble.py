"""Ensembles average their members' probabilities everywhere a model runs: evaluation patterns, the
robustness protocols, the Predictor and the scripts; members that cannot share preprocessing are refused."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import evaluate
import infer
from bridge.config import create_config
from bridge.data.synthetic import SyntheticEmotions
from bridge.ensemble import Ensemble, load_models
from bridge.eval.protocols import pattern_predictions, robustness_predictions, subsets
from bridge.model import BridgeModel
from bridge.inference.predictor import Predictor
from bridge.preprocess import Preprocessor, collate

ROOT = Path(__file__).resolve().parents[1]


def _model(seed: int, **overrides) -> BridgeModel:
    torch.manual_seed(seed)
    return BridgeModel(create_config("tiny", **overrides)).eval()


@pytest.fixture(scope="module")
def loader():
    config = create_config("tiny")
    examples = [Preprocessor(config)(s) for s in SyntheticEmotions(24, split="test", seed=3)]
    return DataLoader(examples, batch_size=8, collate_fn=collate)


def test_probabilities_are_the_members_mean(loader):
    a, b = _model(0), _model(1)
    patterns = subsets(a.modalities)
    pa, pb = (pattern_predictions(m, loader, torch.device("cpu"), patterns, progress=False) for m in (a, b))
    pe = pattern_predictions(Ensemble([a, b]), loader, torch.device("cpu"), patterns, progress=False)
    assert set(pe) == set(pa) and len(pe) == 2 * len(patterns)  # every pattern, both fills
    for key in pe:
        np.testing.assert_allclose(pe[key]["probs"], (pa[key]["probs"] + pb[key]["probs"]) / 2, atol=1e-5)
        assert not np.allclose(pa[key]["probs"], pb[key]["probs"], atol=1e-3)  # the members do differ
    single = pattern_predictions(Ensemble([a]), loader, torch.device("cpu"), patterns, progress=False)
    for key in pa:
        np.testing.assert_allclose(single[key]["probs"], pa[key]["probs"], atol=1e-5)


def test_robustness_protocols_run_an_ensemble(loader):
    a, b = _model(0), _model(1)
    args = dict(etas=(0.5,), noise_levels=(), seeds=1, context=None, progress=False)
    pa, pb, pe = (robustness_predictions(m, loader, torch.device("cpu"), **args) for m in (a, b, Ensemble([a, b])))
    for key in pe:  # the same masks for every member: the ensemble's figures are its members' mean
        np.testing.assert_allclose(pe[key]["probs"], (pa[key]["probs"] + pb[key]["probs"]) / 2, atol=1e-5)


@pytest.mark.parametrize("change, what", [
    (dict(labels=("neg", "pos")), "labels"),
    (dict(face=None), "modalities"),
    ("img_size", "preprocessing"),
])
def test_members_must_share_labels_modalities_and_preprocessing(change, what):
    first = create_config("tiny")
    if change == "img_size":
        config = dataclasses.replace(first, face=dataclasses.replace(first.face, img_size=32))
    else:
        config = dataclasses.replace(first, **change)
    with pytest.raises(ValueError, match=f"second has other {what} than first"):
        Ensemble([BridgeModel(first), BridgeModel(config)], names=["first", "second"])
    with pytest.raises(ValueError, match="at least one model"):
        Ensemble([])


def test_networks_may_differ():
    first = create_config("tiny")
    deeper = dataclasses.replace(first, fusion=dataclasses.replace(first.fusion, depth=3))
    assert len(Ensemble([BridgeModel(first), BridgeModel(deeper)])) == 2


def test_predictor_and_infer_take_several_checkpoints(trained_checkpoint, tmp_path, capsys):
    one = Predictor.from_pretrained(trained_checkpoint)
    two = Predictor.from_pretrained([trained_checkpoint, trained_checkpoint])
    assert isinstance(two.model, Ensemble) and not isinstance(one.model, Ensemble)
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(8000) / 16_000)).astype(np.float32)  # silence counts as missing
    p1, p2 = (p.predict(text="what a lovely day", audio=tone) for p in (one, two))
    assert p1.label == p2.label and p2.reconstructed == ["face"] and set(p2.explanation) == {"audio", "text"}
    for name, value in p1.probabilities.items():
        assert p2.probabilities[name] == pytest.approx(value, abs=1e-5)
    for m, e in p1.explanation.items():
        assert p2.explanation[m].alone_label == e.alone_label
    assert infer.main(["--checkpoint", str(trained_checkpoint), str(trained_checkpoint), "--text", "hello there",
                       "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)["probabilities"]) == set(one.config.labels)


def test_evaluate_an_ensemble_names_its_members(trained_checkpoint, tmp_path, capsys):
    out = tmp_path / "ensemble"
    ckpts = [str(trained_checkpoint)] * 2
    argv = ["--checkpoint", *ckpts, "--limit", "40", "--protocols", "patterns", "--output", str(out)]
    assert evaluate.main(argv) == 0
    report = json.loads((out / "results.json").read_text())
    single = json.loads((trained_checkpoint / "config.json").read_text())
    assert [m["checkpoint"] for m in report["ensemble"]] == ckpts
    assert report["ensemble"][0]["checkpoint_sha256"] == report["checkpoint_sha256"]
    assert "ensemble of 2 checkpoints" in (out / "results.md").read_text()
    assert single["labels"] == report["labels"]
    model, metas = load_models(ckpts)
    assert isinstance(model, Ensemble) and len(metas) == 2


def test_evaluate_refuses_validation_scores_across_different_splits(trained_checkpoint, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    for f in trained_checkpoint.iterdir():
        if f.is_file():
            (other / f.name).write_bytes(f.read_bytes())
    meta = json.loads((other / "config.json").read_text())
    meta["data"]["options"] = {**(meta["data"].get("options") or {}), "seed": 7}
    (other / "config.json").write_text(json.dumps(meta))
    argv = ["--checkpoint", str(trained_checkpoint), str(other), "--limit", "20", "--protocols", "patterns",
            "--output", str(tmp_path / "r")]
    assert evaluate.main(argv + ["--split", "val"]) == 2
    assert "evaluate the ensemble on --split test" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    assert evaluate.main(argv) == 0  # test is shared by every member


def _accuracy():
    spec = importlib.util.spec_from_file_location("benchmarks_accuracy", ROOT / "benchmarks" / "accuracy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_accuracy_fer_chain_rows_are_one_recipe_with_a_restart_count():
    accuracy = _accuracy()
    args = accuracy.parse_args(["--no-train"])
    counts = []
    for name in ("fer2013-40", "fer2013-restart", "fer2013-restart2", "fer2013-restart3", "fer2013-restart4"):
        argv = accuracy.commands(name, args)[0]
        assert argv[:2] == ["--recipe", "recipes/fer2013-chain.json"] and "--init-encoder" not in argv
        counts.append(accuracy.train_options(argv).restarts)
    assert counts == [0, 1, 2, 3, 4]
    names = {accuracy.run_name(accuracy.commands(n, args)[1]) for n in ("fer2013-40", "fer2013-restart4")}
    assert len(names) == 2  # each count is a run of its own


def test_accuracy_ensemble_row_trains_members_and_reports_validation(tmp_path, monkeypatch, capsys):
    accuracy = _accuracy()
    base = ("--data", "synthetic", "--limit", "60", "--epochs", "1", "--batch-size", "16")
    rows = {"a": accuracy.Row("synthetic", base, "face+audio+text", "accuracy", 0.5, "none", limit=60),
            "b": accuracy.Row("synthetic", base + ("--lr", "3e-3"), "face+audio+text", "accuracy", 0.5, "none",
                              limit=60)}
    rows["ab"] = accuracy.Row("synthetic", (), "face+audio+text", "accuracy", 0.5, "none", also=("macro_f1",),
                              limit=60, ensemble=("a", "b"))
    rows["fixed"] = dataclasses.replace(rows["ab"], ensemble=("a@0", "b@0"))
    monkeypatch.setattr(accuracy, "ROWS", rows)
    out = tmp_path / "acc.json"
    argv = ["--seeds", "1", "--checkpoints", str(tmp_path / "ckpt"), "--output", str(out)]
    assert accuracy.main(argv + ["--rows", "ab"]) == 0
    entry = json.loads(out.read_text())["rows"][0]
    assert entry["ensemble"] == ["a", "b"] and entry["command"].count("python train.py") == 2
    figures = entry["figures"]
    assert {"accuracy", "macro_f1", "val accuracy", "val macro_f1", "val macro_f1 best member"} <= set(figures)
    assert len(list((tmp_path / "ckpt" / "accuracy").iterdir())) == 2  # one run folder per member
    assert accuracy.main(["--seeds", "2", *argv[2:], "--rows", "fixed"]) == 0  # seeds named: one figure
    fixed = json.loads(out.read_text())["rows"][0]
    assert fixed["seeds"] == 1 and fixed["figures"]["accuracy"] == figures["accuracy"]
    assert fixed["command"].count("--seed 0") == 2
    assert sorted(p.name for p in (tmp_path / "ckpt" / "accuracy").glob("*/*") if p.is_dir()) == ["seed0", "seed0"]
    assert accuracy.main(argv + ["--rows", "a,b,ab", "--no-train"]) == 0  # the members' runs are reused
    by_row = {e["row"]: e for e in json.loads(out.read_text())["rows"]}
    assert by_row["ab"]["figures"]["accuracy"] == figures["accuracy"]
    members = sorted(p for p in (tmp_path / "ckpt" / "accuracy").glob("*/*") if p.is_dir())
    val = []  # each member scored on validation by evaluate.py: the best of them is the row's "best member"
    for k, member in enumerate(members):
        assert evaluate.main(["--checkpoint", str(member), "--split", "val", "--limit", "60", "--protocols",
                              "patterns", "--output", str(tmp_path / f"val{k}")]) == 0
        val.append(json.loads((tmp_path / f"val{k}" / "results.json").read_text())
                   ["results"]["face+audio+text"]["reconstruct"]["macro_f1"])
    assert figures["val macro_f1 best member"]["mean"] == pytest.approx(max(val))


@pytest.mark.parametrize("spec", ["nope", "nope@1", "fer2013-40@x"])
def test_accuracy_rejects_unknown_ensemble_members(spec):
    with pytest.raises(ValueError, match="is not ROW or ROW@SEED"):
        _accuracy().member(spec)
    assert _accuracy().member("mosi@2") == ("mosi", 2)
