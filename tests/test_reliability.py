"""Runs that die lose nothing, repeat exactly, and never execute code from a checkpoint."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import train

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--limit", "70", "--batch-size", "16", "--modality-dropout", "0.5"]
QUICK = ["--limit", "28", "--batch-size", "14"]


def _state(directory: Path) -> dict:
    return torch.load(directory / "training_state.pt", weights_only=True)


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    """Kill a run with SIGKILL after its first epoch, resume it: the final weights are bitwise equal."""
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert train.main([*ARGS, "--epochs", "3", "--output", str(straight), "--cache-dir", str(tmp_path / "c")]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *ARGS, "--epochs", "3", "--output", str(killed),
                             "--cache-dir", str(tmp_path / "c")], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (killed / "training_state.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    epochs_done = _state(killed)["epoch"] + 1
    assert epochs_done < 3, "the run finished before it could be killed"
    assert train.main([*ARGS, "--epochs", "3", "--output", str(killed), "--resume",
                       "--cache-dir", str(tmp_path / "c")]) == 0
    a, b = _state(straight), _state(killed)
    assert a["epoch"] == b["epoch"] == 2
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), f"{name} differs after resume"
    strip = lambda h: [{k: v for k, v in row.items() if k != "seconds"} for row in json.loads(h)]  # noqa: E731
    assert strip(a["history"]) == strip(b["history"])


def test_two_deterministic_runs_are_identical(tmp_path):
    try:
        for run in ("a", "b"):
            assert train.main([*QUICK, "--epochs", "1", "--deterministic", "--output", str(tmp_path / run),
                               "--no-cache"]) == 0
    finally:
        torch.use_deterministic_algorithms(False)
    ha = json.loads((tmp_path / "a" / "history.json").read_text())
    hb = json.loads((tmp_path / "b" / "history.json").read_text())
    assert [r["val"] for r in ha] == [r["val"] for r in hb]
    assert [r["train"] for r in ha] == [r["train"] for r in hb]


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {_Exploit.marker}",))


def test_a_training_state_that_runs_code_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    assert train.main([*QUICK, "--epochs", "1", "--output", str(run), "--no-cache"]) == 0
    _Exploit.marker = tmp_path / "pwned"
    with open(run / "training_state.pt", "wb") as f:
        pickle.dump({"epoch": 0, "model": _Exploit()}, f)
    rc = train.main([*QUICK, "--epochs", "2", "--output", str(run), "--resume", "--no-cache"])
    assert rc == 2
    assert "cannot resume" in capsys.readouterr().err
    assert not _Exploit.marker.exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_gpu_run_resumes(tmp_path):
    """A run trained on a GPU resumes there: its RNG states load back as the CPU byte tensors
    torch.set_rng_state wants (loading them onto the GPU once broke every GPU resume)."""
    run = tmp_path / "run"
    assert train.main([*QUICK, "--epochs", "1", "--device", "cuda", "--output", str(run), "--no-cache"]) == 0
    assert "cuda_rng" in _state(run)
    assert train.main([*QUICK, "--epochs", "2", "--device", "cuda", "--output", str(run), "--resume", "--no-cache"]) == 0
    assert _state(run)["epoch"] == 1
