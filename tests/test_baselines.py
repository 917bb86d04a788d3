"""Late fusion of unimodal models, and ``benchmarks/robustness.py`` training and comparing
every baseline in one command."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from bridge import create_config
from bridge.baselines.late_fusion import LateFusion
from bridge.dataset import make_loader
from bridge.eval.protocols import evaluate_patterns
from bridge.modality import Modality
from bridge.model import BridgeModel
from bridge.preprocess import Preprocessor, collate

ROOT = Path(__file__).resolve().parents[1]
FACE, AUDIO, TEXT = Modality.FACE, Modality.AUDIO, Modality.TEXT


def _benchmark(name: str):
    """A script of benchmarks/ loaded from its file (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def unimodal(modality: Modality) -> BridgeModel:
    config = create_config("tiny")
    return BridgeModel(replace(config, **{m.value: None for m in Modality if m != modality})).eval()


@pytest.fixture(scope="module")
def members():
    torch.manual_seed(0)
    return [unimodal(m) for m in (FACE, AUDIO, TEXT)]


@pytest.fixture(scope="module")
def batch(synthetic_samples):
    return collate([Preprocessor(create_config("tiny"))(synthetic_samples[i]) for i in range(6)])


@torch.inference_mode()
def test_late_fusion_averages_the_present_members(members, batch):
    fusion = LateFusion(members).eval()
    present = {FACE: torch.tensor([1, 1, 0, 0, 1, 0], dtype=torch.bool),
               AUDIO: torch.tensor([1, 0, 1, 0, 1, 0], dtype=torch.bool),
               TEXT: torch.tensor([1, 0, 0, 1, 0, 0], dtype=torch.bool)}
    probs = fusion(batch, present=present).logits.softmax(-1)
    alone = {m: member(batch.select((m,))).logits.softmax(-1) for m, member in zip((FACE, AUDIO, TEXT), members)}
    for i in range(5):
        used = [alone[m][i] for m in (FACE, AUDIO, TEXT) if present[m][i]]
        torch.testing.assert_close(probs[i], torch.stack(used).mean(0), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(probs[5], torch.full((7,), 1 / 7))  # nothing present: the (uniform) prior


def test_late_fusion_prior_and_member_checks(members, batch):
    prior = torch.arange(1, 8, dtype=torch.float32)
    fusion = LateFusion(members[:1], prior=prior).eval()
    none = {FACE: torch.zeros(6, dtype=torch.bool)}
    with torch.inference_mode():
        probs = fusion(batch, present=none).logits.softmax(-1)
    torch.testing.assert_close(probs[0], prior / prior.sum())
    with pytest.raises(ValueError, match="must be unimodal"):
        LateFusion([BridgeModel(create_config("tiny"))])
    with pytest.raises(ValueError, match="two late-fusion members for face"):
        LateFusion([members[0], members[0]])
    with pytest.raises(ValueError, match="at least one"):
        LateFusion([])


def test_late_fusion_runs_the_evaluation_protocols(members, synthetic_samples):
    from bridge.eval.protocols import evaluate_robustness
    from bridge.eval.robustness import noise_context
    from bridge.dataset import ExampleDataset

    fusion = LateFusion(members).eval()
    pre = Preprocessor(fusion.config)
    loader = make_loader(ExampleDataset([synthetic_samples[i] for i in range(12)], pre), 6, False, 0, 0)
    results = evaluate_patterns(fusion, loader, torch.device("cpu"), ("reconstruct",), progress=False)
    assert len(results) == 7
    rob = evaluate_robustness(fusion, loader, torch.device("cpu"), (0.0, 0.5), (0.0, 0.5), 1,
                              noise_context(fusion, pre), ("reconstruct",), progress=False)
    clean = rob["noise"]["results"]["all"]["reconstruct"]["accuracy"]["mean"][0]
    assert clean == pytest.approx(results["face+audio+text"]["reconstruct"]["accuracy"])


def test_robustness_benchmark_trains_and_compares_every_system(tmp_path, capsys):
    bench = _benchmark("robustness")

    argv = ["--data", "synthetic", "--preset", "tiny", "--epochs", "1", "--seeds", "2", "--limit", "32",
            "--etas", "0,0.5", "--noise-levels", "0,0.5", "--batch-size", "16",
            "--checkpoints", str(tmp_path / "ckpt"), "--output", str(tmp_path / "report")]
    assert bench.main(argv) == 0
    report = json.loads((tmp_path / "report" / "results.json").read_text())
    systems = {"bridge", "bridge, zero-filled", "early fusion (zero-fill)", "late fusion",
               "face alone", "audio alone", "text alone"}
    assert set(report["summary"]["missing"]) == systems
    assert set(report["summary"]["patterns"]["face+audio+text"]) == systems - {"face alone", "audio alone",
                                                                               "text alone"}
    assert report["summary"]["missing"]["late fusion"]["macro_f1"]["effective_robustness"]["mean"] == 0  # its baseline
    from bridge.eval.robustness import effective_robustness

    expected = [effective_robustness(s["missing"]["bridge"]["macro_f1"], s["missing"]["late fusion"]["macro_f1"])
                for s in report["per_seed"]]  # bridge's, against late fusion, from the per-seed curves
    assert report["summary"]["missing"]["bridge"]["macro_f1"]["effective_robustness"]["values"] == pytest.approx(expected)
    # the field's protocol, for the systems with several modalities, mean ± std over the 2 seeds
    field = report["summary"]["field"]
    assert set(field) == {"bridge", "bridge, zero-filled", "early fusion (zero-fill)", "late fusion", bench.FILL_GAIN}
    assert set(field["bridge"]) == {"fixed_average", "random_average", "text_only", "no_text", "all"}
    assert len(field["late fusion"]["random_average"]["weighted_f1"]["values"]) == 2
    md = (tmp_path / "report" / "results.md").read_text()
    assert "The field's protocol" in md and "| fixed average |" in md and "| no text |" in md
    assert len(report["per_seed"]) == 2 and len(report["checkpoint_sha256"]["seed1"]) == 5
    for name in ("results.md", "patterns.png", "missing.png", "noise.png", "confusion-bridge.png"):
        assert (tmp_path / "report" / name).is_file()
    # the finished runs and their evaluations are reused: nothing is trained or evaluated the second time,
    # and one seed at a time (as parallel processes would) gives the same report
    assert len(list((tmp_path / "ckpt" / "seed1").glob("evaluation-*.json"))) == 1
    capsys.readouterr()
    again = tmp_path / "again"
    assert bench.main([*argv[:-1], str(again), "--seed-values", "1,0"]) == 0
    out = capsys.readouterr().out
    assert "$ python train.py" not in out and "evaluating" not in out
    assert json.loads((again / "results.json").read_text())["summary"] == report["summary"]
    # different training arguments for the same folder are refused
    assert bench.main([*argv, "--train-args", "--lr 0.01"]) == 2
    assert "trained with other arguments" in capsys.readouterr().err


def test_a_unimodal_baseline_keeps_only_its_own_modality_flags():
    bench = _benchmark("robustness")
    argv = ["--select", "patterns", "--mismatch", "face=0.5", "--mismatch=audio=0.3", "--lr", "0.01"]
    assert bench.own_modality_flags(argv, "face") == ["--select", "patterns", "--mismatch", "face=0.5", "--lr", "0.01"]
    assert bench.own_modality_flags(argv, "audio") == ["--select", "patterns", "--mismatch", "audio=0.3", "--lr", "0.01"]
    assert bench.own_modality_flags(argv, "text") == ["--select", "patterns", "--lr", "0.01"]
    started = ["--init-encoder", "face=runs/face", "--init-encoder=text=runs/text", "--mismatch", "text=0.2"]
    assert bench.own_modality_flags(started, "text") == ["--init-encoder", "text=runs/text", "--mismatch", "text=0.2"]
    assert bench.own_modality_flags(started, "audio") == []
    settings = ["--set", "face.freeze=true", "--set=text.tune_layers=0", "--set", "fusion.depth=2",
                "--test-views", "crops", "--lr", "0.01", "--test-views=mirror"]
    assert bench.own_modality_flags(settings, "text") == ["--set", "text.tune_layers=0", "--set", "fusion.depth=2",
                                                          "--lr", "0.01"]
    assert bench.own_modality_flags(settings, "face") == ["--set", "face.freeze=true", "--set", "fusion.depth=2",
                                                          "--test-views", "crops", "--lr", "0.01",
                                                          "--test-views=mirror"]
    args = bench.parse_args(["--data", "mosi", "--train-args", "--mismatch face=0.5 --select patterns"])
    assert bench.train_argv(args, 0, "bridge")[-4:] == ["--mismatch", "face=0.5", "--select", "patterns"]
    assert bench.train_argv(args, 0, "unimodal", "audio")[-2:] == ["--select", "patterns"]


def test_a_resumed_run_counts_the_epochs_before_the_interruption(tmp_path, monkeypatch):
    """ensure_trained resumes an interrupted run and reports its epochs before and after."""
    bench = _benchmark("robustness")
    from bridge.checkpoint import STATE_FILE
    from bridge.commands import train  # what bridge.train.runs.ensure_trained calls

    run = tmp_path / "seed0"
    run.mkdir()
    (run / "history.json").write_text(json.dumps([{"epoch": 1, "seconds": 100.0}, {"epoch": 2, "seconds": 50.0}]))
    (run / STATE_FILE).write_bytes(b"state")
    argv = ["--data", "synthetic", "--epochs", "3"]
    bench.command_record(run).write_text(json.dumps({"argv": argv}))  # started, never finished
    calls = []
    monkeypatch.setattr(train, "main", lambda a: calls.append(a) or 0)
    result = bench.ensure_trained(run, argv, False)
    assert calls == [argv + ["--output", str(run), "--resume"]]
    assert result["trained"] and 150.0 <= result["seconds"] < 160.0
    assert json.loads(bench.command_record(run).read_text())["seconds"] == result["seconds"]
    # from scratch, nothing before counts
    calls.clear()
    assert bench.ensure_trained(run, argv, True)["seconds"] < 10.0
    assert calls == [argv + ["--output", str(run)]]


def test_a_command_that_failed_before_training_can_be_run_again_with_other_arguments(tmp_path, monkeypatch):
    bench = _benchmark("robustness")
    from bridge.commands import train

    run = tmp_path / "seed0" / "unimodal-audio"
    monkeypatch.setattr(train, "main", lambda a: 2)  # train.py refused its arguments: no folder was made
    with pytest.raises(ValueError, match="train.py failed"):
        bench.ensure_trained(run, ["--data", "synthetic", "--mismatch", "face=0.5"], False)
    calls = []
    monkeypatch.setattr(train, "main", lambda a: calls.append(a) or 0)
    assert bench.ensure_trained(run, ["--data", "synthetic"], False)["trained"]  # not "trained with other arguments"
    assert calls == [["--data", "synthetic", "--output", str(run)]]


def test_accuracy_row_with_warm_restarts_trains_its_cycles_once(tmp_path, monkeypatch, capsys):
    """A row whose command has --restarts (the FER-2013 chain's rows) trains every cycle into its run
    folder, scores the last, and a second call finds the finished run without training."""
    accuracy = _benchmark("accuracy")

    quick = ("--data", "synthetic", "--limit", "40", "--epochs", "1", "--batch-size", "16", "--no-cache")
    rows = {"tri": accuracy.Row("synthetic", (*quick, "--restarts", "1", "--restart-epochs", "1"), "face+audio+text",
                                "macro_f1", "best single + 10", "-", limit=40, views="mirror")}
    monkeypatch.setattr(accuracy, "ROWS", rows)
    out = tmp_path / "accuracy.json"
    argv = ["--rows", "tri", "--seeds", "1", "--checkpoints", str(tmp_path / "ckpt"), "--output", str(out)]
    assert accuracy.main(argv) == 0
    entry = json.loads(out.read_text())["rows"][0]
    run = next((tmp_path / "ckpt" / "accuracy").glob("synthetic-*/seed0"))
    assert json.loads((run / "cycles.json").read_text())["finished"]
    assert (run / "cycles" / "1" / "config.json").is_file() and (run / "cycles" / "2" / "config.json").is_file()
    assert json.loads((run / "cycles" / "2" / "config.json").read_text())["training"]["init_encoders"] == [
        f"{m}={run / 'cycles' / '1'}" for m in ("face", "audio", "text")]
    assert {"best single", "face alone", "audio alone", "text alone", "macro_f1 without flip"} <= set(entry["figures"])
    assert entry["test_views"] == "mirror"
    assert entry["figures"]["best single"]["mean"] == max(entry["figures"][f"{m} alone"]["mean"]
                                                          for m in ("face", "audio", "text"))
    capsys.readouterr()
    assert accuracy.main([*argv, "--no-train"]) == 0  # finds the same run without training anything
    assert accuracy.main(argv) == 0  # and a finished cycled run is not trained again
    assert "$ python train.py" not in capsys.readouterr().out
    assert json.loads(out.read_text())["rows"][0]["figures"] == entry["figures"]


def test_accuracy_benchmark_smoke_run_on_mosi(tmp_path, capsys):
    """The machinery of benchmarks/accuracy.py on a few real MOSI samples (no figure is claimed)."""
    from bridge.data.paths import require_corpus

    try:
        require_corpus("mosi")
    except FileNotFoundError as e:
        pytest.skip(f"real data absent: {e}")
    accuracy = _benchmark("accuracy")

    out = tmp_path / "accuracy.json"
    argv = ["--rows", "mosi,mosi-av", "--seeds", "1", "--limit", "40", "--epochs", "1", "--preset", "tiny",
            "--checkpoints", str(tmp_path / "ckpt"), "--output", str(out)]
    assert accuracy.main(argv) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["row"] for r in rows] == ["mosi", "mosi-av"]
    assert rows[0]["preset"] == "tiny" and rows[0]["n"] == 40
    assert set(rows[1]["figures"]) == {"weighted_f1", "accuracy", "weighted_f1 zero-fill"}
    assert all(0 <= f["mean"] <= 1 for r in rows for f in r["figures"].values())
    # both rows share one training command, so the second reuses the first's run
    assert len(list((tmp_path / "ckpt" / "accuracy").glob("mosi-*/seed0/config.json"))) == 1
    assert "| mosi-av" in capsys.readouterr().out
    assert accuracy.main(["--rows", "nope"]) == 2


def test_frozen_minilm_lr_anchor_embeds_normalised_and_picks_c_on_validation(tmp_path, capsys):
    from bridge.baselines.text_lr import C_GRID, embed, text_lr
    from bridge.data.paths import require_corpus

    vectors = embed(["I am so happy today", "This is awful", "I am so happy today"], progress=False)
    assert vectors.shape == (3, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert np.allclose(vectors[0], vectors[2], atol=1e-5)  # sorting by length keeps each text's row
    got = text_lr("synthetic", limit=60, progress=False)
    assert got["C"] in C_GRID and got["C"] == max(C_GRID, key=lambda c: got["val_by_C"][str(c)])
    assert all(0 < n <= 60 for n in got["n"].values())
    assert got["test"]["macro_f1"] > 1.5 / len(got["labels"])  # the synthetic texts carry their emotion
    try:  # the benchmark's anchor rows, on a few real MELD utterances (no figure is claimed)
        require_corpus("meld")
    except FileNotFoundError as e:
        pytest.skip(f"real data absent: {e}")
    assert _benchmark("release").main(["--anchors", "--rows", "text-meld,face", "--limit", "80", "--output", str(tmp_path / "a.json")]) == 0
    rows = json.loads((tmp_path / "a.json").read_text())
    assert [r["row"] for r in rows] == ["text-meld"] and rows[0]["n"] == 80 and 0 < rows[0]["weighted_f1"] <= 100
    assert "frozen MiniLM-L6 + logistic regression" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="--anchors: corpus 'meld' not found"):  # one line, no traceback
        _benchmark("release").main(["--anchors", "--rows", "text-meld", "--data-root", str(tmp_path / "none"),
                                    "--output", str(tmp_path / "b.json")])
    assert not (tmp_path / "b.json").exists()
