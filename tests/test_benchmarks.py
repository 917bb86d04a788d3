"""The speed benchmark runs end to end (--quick) and writes every section; no timing assertions."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_speed_quick_writes_every_section(tmp_path, capsys):
    speed = _load("speed")
    out = tmp_path / "speed.json"
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    try:
        assert speed.main(["--quick", "--threads", "1", "--output", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)
    report = json.loads(out.read_text())
    assert report["threads"] == 1 and report["matmul_gflop_per_s"] > 0
    assert set(report["startup"]) == {"infer.py --help", "infer.py --image (one prediction)"}
    assert all(v["median_s"] > 0 for v in report["startup"].values())
    tiny = report["presets"]["tiny"]
    assert set(tiny) == {"parameters", "latency", "throughput", "face_path", "stages", "live_face_path", "clip_face_voice"}
    assert set(tiny["latency"]) == {"image", "audio", "text", "video", "end_to_end"}
    assert sorted(tiny["latency"]["end_to_end"]["observed"]) == ["audio", "face", "text"]
    assert tiny["latency"]["image"]["observed"] == ["face"]  # the detector found the astronaut's face
    for v in tiny["latency"].values():
        assert 0 < v["p50_ms"] <= v["p95_ms"]
    assert [r["batch_size"] for r in tiny["throughput"]] == [1, 2]
    assert {r["model"] for r in tiny["face_path"]} == {"bridge", "reference CNN"}
    live = {(r["detector"], r["model"]): r for r in tiny["live_face_path"]}
    assert set(live) == {(d, m) for d in ("blazeface", "haar") for m in ("bridge", "reference CNN")} | {
        ("blazeface", "bridge, mirror views"), ("blazeface", "bridge, crops views")}
    assert all(r["frames"] == 3 and r["frames_per_s"] > 0 for r in live.values())
    assert live["blazeface", "bridge"]["with_face"] == 3  # the default detector finds the face in every frame
    assert [r["detector"] for r in tiny["clip_face_voice"]] == ["blazeface", "haar"]
    assert sorted(tiny["clip_face_voice"][0]["observed"]) == ["audio", "face"]
    stages = {r["stage"]: r for r in tiny["stages"]}
    assert set(stages) == {"face encoder", "audio encoder", "text encoder", "translators", "fusion + head",
                           "whole forward"}
    parts = sum(stages[s]["gflop"] for s in stages if s != "whole forward")
    assert math.isclose(parts, stages["whole forward"]["gflop"], rel_tol=0.05)  # the stages cover the forward
    assert report["reference_cnn"]["parameters"] == 2_345_607
    # 3x3 convs and dense layers of the paper's CNN on a 48x48 face: multiply-adds x 2.
    macs = 46 * 46 * 9 * 32 + 44 * 44 * 9 * 32 * 64 + 20 * 20 * 9 * 64 * 128 + 8 * 8 * 9 * 128 * 128 + 2048 * 1024 \
        + 1024 * 7
    assert math.isclose(report["reference_cnn"]["gflop_per_face"], 2 * macs / 1e9, rel_tol=1e-6)
    assert "face path" in capsys.readouterr().out


def _history(run: Path, val_f1: list[float], patterns: bool = False) -> Path:
    rows = []
    for i, f1 in enumerate(val_f1):
        val = {"loss": 1.0, "accuracy": f1 + 0.1, "macro_f1": f1}
        if patterns:
            val["macro_f1_patterns"] = 1.0 - f1  # a different best epoch than macro_f1's
        rows.append({"epoch": i + 1, "train": {"loss": 1.0}, "val": val, "seconds": 10.0})
    run.mkdir(parents=True)
    (run / "history.json").write_text(json.dumps(rows))
    return run


def test_train_step_quick_times_both_stem_layouts_in_both_precisions(tmp_path, capsys):
    bench = _load("train_step")
    out = tmp_path / "step.json"
    threads = torch.get_num_threads()
    try:
        assert bench.main(["--quick", "--threads", "1", "--batch-size", "4", "--output", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    report = json.loads(out.read_text())
    assert report["recipe"] == "fer2013-chain.json" and report["batch_size"] == 4 and report["threads"] == 1
    assert (report["face"]["stem"], report["face"]["img_size"], report["face"]["in_chans"]) == ("cnn", 48, 1)
    assert [(r["layout"], r["precision"]) for r in report["rows"]] == [
        ("contiguous", "float32"), ("channels-last", "float32"), ("contiguous", "bfloat16"), ("channels-last", "bfloat16")]
    assert all(r["ms_p50"] > 0 and r["samples_per_s"] > 0 for r in report["rows"])
    assert report["rows"][0]["speedup"] == 1.0
    assert "channels-last" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        bench.main(["--recipe", str(tmp_path / "nope.json"), "--output", str(tmp_path / "x.json")])
    assert e.value.code == 2 and "not a readable recipe" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
    with pytest.raises(SystemExit) as e:
        bench.main(["--precisions", "float16", "--output", str(tmp_path / "x.json")])
    assert e.value.code == 2 and "choose from float32, bfloat16" in capsys.readouterr().err


def test_curves_chain_best_epochs_and_plot(tmp_path, capsys):
    curves = _load("curves")
    first = _history(tmp_path / "a" / "seed0", [0.1, 0.4, 0.3])
    second = _history(tmp_path / "b", [0.5, 0.6])
    out, png = tmp_path / "curves.json", tmp_path / "curves.png"
    assert curves.main([str(first), str(second), "--chain", "--labels", "first,second",
                        "--output", str(out), "--plot", str(png)]) == 0
    report = json.loads(out.read_text())
    a, b = report["runs"]
    assert (a["label"], a["best"]["epoch"], a["last"]["macro_f1"], a["seconds"]) == ("first", 2, 0.3, 30.0)
    assert b["offset"] == 3 and [p["epoch"] for p in b["curve"]] == [4, 5] and b["best"]["epoch"] == 2
    assert png.stat().st_size > 0 and cv2.imread(str(png)) is not None
    table = capsys.readouterr().out
    assert "first" in table and "second" in table and "60.0" in table  # b's best macro F1, in %

    # side by side (no --chain), labels from the folders, the selection score a run recorded
    patterns = _history(tmp_path / "c", [0.2, 0.9], patterns=True)
    assert curves.main([str(first), str(patterns), "--output", str(out)]) == 0
    a, c = json.loads(out.read_text())["runs"]
    assert (a["label"], c["label"], c["offset"]) == ("a", "c", 0)
    assert (c["select"], c["best"]["epoch"]) == ("macro_f1_patterns", 1)


def test_curves_bad_input_is_one_line(tmp_path, capsys):
    curves = _load("curves")
    assert curves.main([str(tmp_path / "nowhere"), "--output", str(tmp_path / "x.json")]) == 2
    assert "no history.json" in capsys.readouterr().err
    for text in ("{}", '[{"epoch": 1, "val": {"loss": 1.0}}]', "[1]", "not json"):
        (tmp_path / "h.json").write_text(text)
        assert curves.main([str(tmp_path / "h.json"), "--output", str(tmp_path / "x.json")]) == 2
        assert "h.json" in capsys.readouterr().err
    run = _history(tmp_path / "r", [0.1])
    assert curves.main([str(run), "--labels", "one,two", "--output", str(tmp_path / "x.json")]) == 2
    assert "--labels names 2 runs, but 1 were given" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()  # nothing written on bad input


def test_faces_agreement_by_margin_bins_each_face_once():
    bins = _load("faces").margin_bins([(0.0, True), (0.05, False), (0.1, True), (0.29, True), (0.3, False),
                                       (1.0, True)])
    assert [b["margin"] for b in bins] == ["< 0.1", "0.1 to 0.3", ">= 0.3"]
    assert [b["found"] for b in bins] == [2, 2, 2]
    assert [b["same"] for b in bins] == [0.5, 1.0, 0.5]
    assert [b["share"] for b in bins] == pytest.approx([1 / 3] * 3)
    empty = _load("faces").margin_bins([])
    assert all(b["found"] == 0 and b["same"] is None for b in empty)


def test_faces_reads_fer2013_classes_by_their_canonical_names():
    """The folders say ``fearful`` and ``surprised``; a prediction says ``fear`` and ``surprise``, so
    the benchmark's accuracy on the original crops compares canonical names."""
    from bridge.data.paths import data_root
    from bridge.modality import EMOTIONS

    if not (data_root() / "fer2013" / "test").is_dir():
        pytest.skip("FER-2013 absent")
    faces = _load("faces").fer_faces(data_root(), "test", 400, seed=2)
    names = {name for _, name in faces}
    assert names <= set(EMOTIONS) and {"fear", "surprise"} <= names
    assert all(crop.shape == (48, 48) for crop, _ in faces)


@pytest.mark.parametrize("folder", [None, "contempt"])
def test_faces_bad_data_root_is_one_line_and_writes_nothing(tmp_path, capsys, folder):
    """No FER-2013 test images, or a class folder FER-2013 does not have: one line, exit 2."""
    if folder:
        (tmp_path / "fer2013" / "test" / folder).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "fer2013" / "test" / folder / "0.png"), np.zeros((48, 48), np.uint8))
    out = tmp_path / "report.json"
    assert _load("faces").main(["--detectors", "haar", "--data-root", str(tmp_path), "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("faces.py: ") and (folder or "no FER-2013") in err[0]
    assert not out.exists()


def test_faces_agreement_scores_the_shipped_model_over_the_views_asked_for(tmp_path, capsys):
    """benchmarks/faces.py --agreement on a few real FER-2013 test faces pasted into real scenes."""
    from bridge.data.paths import data_root
    from bridge.release import DEFAULT_RELEASE, MANIFEST, RELEASES

    if not (data_root() / "fer2013").is_dir() or not (RELEASES / DEFAULT_RELEASE / MANIFEST).is_file():
        pytest.skip("FER-2013 or the shipped model absent")
    faces = _load("faces")
    out = tmp_path / "agreement.json"
    assert faces.main(["--agreement", "--checkpoint", DEFAULT_RELEASE, "--faces", "6", "--detectors", "blazeface",
                       "--test-views", "crops", "--output", str(out)]) == 0
    report = json.loads(out.read_text())["agreement"]
    assert report["test_views"] == "crops" and report["faces"] == 6
    assert "6 FER-2013 test faces, crops views" in capsys.readouterr().out
    for setting in report["detectors"]["blazeface"].values():
        assert 0 <= setting["found"] <= 6 and 0 <= setting["same_aligned"] <= 1
        bins = setting["same_aligned_by_margin"]
        assert sum(b["found"] for b in bins) == setting["found"]
        assert sum(b["same"] * b["found"] for b in bins if b["found"]) == pytest.approx(
            setting["same_aligned"] * setting["found"])
    with pytest.raises(SystemExit):
        faces.main(["--agreement", "--checkpoint", DEFAULT_RELEASE, "--test-views", "many"])


def test_meld_context_builds_each_turns_history_and_writes_its_table(tmp_path, capsys):
    from bridge.data.meld import read_meld
    from bridge.data.paths import require_corpus

    try:
        folder = require_corpus("meld")
    except FileNotFoundError as e:
        pytest.skip(f"real data absent: {e}")
    probe = _load("meld_context")
    train = read_meld(folder, "train")
    first = probe.with_context(train, 2)[:3]  # dialogue 0: Chandler, the interviewer, Chandler
    assert first[0][1] == "" and first[0][0].startswith("also I was the point person")
    assert first[1][1].startswith("Chandler: also I was")
    assert first[2][1].startswith("The Interviewer: You must") and " | Chandler: also I was" in first[2][1]
    assert all(c is None for _, c, _ in probe.with_context(train, 0)[:3])
    out = tmp_path / "meld-context.json"
    assert probe.main(["--limit", "48", "--epochs", "2", "--seeds", "0", "--context", "0,1", "--batch-size", "8",
                       "--device", "cpu", "--output", str(out)]) == 0  # 12 steps: the one-cycle schedule
    report = json.loads(out.read_text())
    assert [(r["context"], r["seed"]) for r in report["runs"]] == [(0, 0), (1, 0)]
    assert all(0 <= r["dev"] <= 1 and 0 <= r["test"] <= 1 and r["epoch"] in (1, 2) for r in report["runs"])
    assert report["n"] == {"train": 48, "val": 48, "test": 48}
    assert [s["context"] for s in report["summary"]] == [0, 1]
    assert "earlier turns" in capsys.readouterr().out
    capsys.readouterr()
    for bad in (["--data-root", str(tmp_path / "nowhere")], ["--context", "0,three"]):  # one line, exit 2
        out.unlink(missing_ok=True)
        assert probe.main([*bad, "--output", str(out)]) == 2 and not out.exists()
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("benchmarks/meld_context.py: error: ")
    assert "--context takes comma-separated whole numbers" in err[0]
