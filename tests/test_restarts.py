"""Warm restarts in one run (``train.py --restarts``): each cycle an ordinary resumable run in
OUTPUT/cycles/K starting from the one before; OUTPUT holds the last; a recipe with restarts is one
stage of the release build."""

from __future__ import annotations

import json
import shutil

import train
from bridge.model import load_checkpoint
from bridge.checkpoint import run_state

QUICK = ["--limit", "12", "--batch-size", "6", "--no-cache", "--modalities", "face,text"]


def test_restarts_chain_cycles_and_resume_only_what_is_missing(tmp_path, capsys):
    out = tmp_path / "run"
    assert train.main([*QUICK, "--epochs", "1", "--restarts", "1", "--restart-epochs", "2", "--restart-lr", "5e-4",
                       "--output", str(out)]) == 0
    said = capsys.readouterr().out
    assert "cycle 1 of 2: training" in said and "cycle 2 of 2: training" in said
    assert f"face: encoder and latent summariser from {out / 'cycles' / '1'}" in said
    assert f"text: encoder and latent summariser from {out / 'cycles' / '1'}" in said
    plan = json.loads((out / "cycles.json").read_text())
    assert plan["finished"] and [c["epochs"] for c in plan["cycles"]] == [1, 2]
    assert len(json.loads((out / "cycles" / "1" / "history.json").read_text())) == 1
    second = json.loads((out / "cycles" / "2" / "history.json").read_text())
    assert len(second) == 2 and second[0]["lr"] <= 5e-4
    assert plan["restart_lr"] == 5e-4  # not the default, 0.3 x --lr = 3e-4
    assert json.loads((out / "cycles" / "2" / "config.json").read_text())["training"]["lr"] == 5e-4
    # OUTPUT holds the last cycle's checkpoint, loadable like any other
    assert (out / "model.safetensors").read_bytes() == (out / "cycles" / "2" / "model.safetensors").read_bytes()
    model, _ = load_checkpoint(out)
    assert {m.value for m in model.config.modalities} == {"face", "text"}
    # a finished cycled run says so
    assert train.main(["--output", str(out), "--resume"]) == 0
    assert "already finished its 2 cycles" in capsys.readouterr().out
    # interrupted before cycle 2: --output and --resume alone train cycle 2 only
    first = (out / "cycles" / "1" / "model.safetensors").stat().st_mtime_ns
    shutil.rmtree(out / "cycles" / "2")
    plan["finished"] = False
    (out / "cycles.json").write_text(json.dumps(plan))
    assert train.main(["--output", str(out), "--resume"]) == 0
    said = capsys.readouterr().out
    assert "cycle 2 of 2: training" in said and "cycle 1 of 2" not in said
    assert (out / "cycles" / "1" / "model.safetensors").stat().st_mtime_ns == first
    assert json.loads((out / "cycles.json").read_text())["finished"]


def test_restart_errors_and_run_state(tmp_path, capsys):
    assert train.main([*QUICK, "--restarts", "1", "--init-encoder", f"face={tmp_path}", "--output",
                       str(tmp_path / "x")]) == 2
    assert "--init-encoder would name a second source" in capsys.readouterr().err
    assert train.main([*QUICK, "--restarts", "-1", "--output", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"epochs": 1, "restarts": 2}))
    run = tmp_path / "stage"
    assert run_state(run, recipe) == "new"
    run.mkdir()
    (run / "cycles.json").write_text(json.dumps({"finished": False}))
    assert run_state(run, recipe) == "interrupted"
    (run / "cycles.json").write_text(json.dumps({"finished": True}))
    assert run_state(run, recipe) == "finished"
    assert train.main(["--output", str(tmp_path / "nothing"), "--resume", "--restarts", "1"]) == 2
    assert "holds no run with warm restarts" in capsys.readouterr().err
