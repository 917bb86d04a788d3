"""The speed benchmark runs end to end (--quick) and writes every section; no timing assertions."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import cv2
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
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
    tiny = report["presets"]["tiny"]
    assert set(tiny) == {"parameters", "latency", "throughput", "face_path", "stages"}
    assert set(tiny["latency"]) == {"image", "audio", "text", "video", "end_to_end"}
    assert sorted(tiny["latency"]["end_to_end"]["observed"]) == ["audio", "face", "text"]
    assert tiny["latency"]["image"]["observed"] == ["face"]  # the detector found the astronaut's face
    for v in tiny["latency"].values():
        assert 0 < v["p50_ms"] <= v["p95_ms"]
    assert [r["batch_size"] for r in tiny["throughput"]] == [1, 2]
    assert {r["model"] for r in tiny["face_path"]} == {"bridge", "reference CNN"}
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
