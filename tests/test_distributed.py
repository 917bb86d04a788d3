"""Multi-process training under torchrun (DistributedDataParallel, gloo on CPU) trains like one
process with the same global batch, and only rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file

import bridge.train.trainer
import train

from ddp_train import NoDropoutModel  # tests/ is on the path under pytest, as for conftest.py

ROOT = Path(__file__).resolve().parents[1]
# 24 samples, global batch 8: three steps an epoch, 4 samples per process. Constant modality
# dropout 0.5 so that every step uses the masks drawn on the global batch.
ARGS = ["--limit", "24", "--batch-size", "8", "--epochs", "2", "--modality-dropout", "0.5",
        "--dropout-schedule", "constant", "--no-cache", "--select", "patterns"]


def _relative_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    num = sum((a[k].double() - b[k].double()).pow(2).sum() for k in a)
    den = sum(a[k].double().pow(2).sum() for k in a)
    return float((num / den).sqrt())


@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                    reason="torch.distributed with the gloo backend is not available in this torch build")
def test_two_processes_train_like_one_process_with_the_same_global_batch(tmp_path, monkeypatch):
    """Two gloo processes (global batch 8, 4 each) against one process (batch 8), both with layer
    dropout off (``ddp_train.py``): layer dropout draws from each process's own random stream, so
    it cannot match step for step. Modality dropout stays on: it is drawn on the global batch with
    the same generator, so both runs hide the same (sample, modality) pairs. The shuffle, the
    per-step samples and the initial weights are identical too.

    Not bitwise: the averaged gradient of two half-batch means is summed in a different order
    than one full-batch mean (and the in-process run uses 2 threads, the workers 1), so values
    differ by float rounding. Tolerances: validation loss and training loss relative 1e-5 (seen
    about 1e-7); accuracy and macro F1 equal (predictions flip only on a near-exact tie); weights
    relative L2 difference 1e-5 (seen about 1e-6). Weights are compared in norm, not elementwise:
    attention key biases get an exactly zero true gradient, so their AdamW updates are rounding
    noise divided by eps and differ elementwise by up to ~1e-5 between any two reduction orders.
    """
    one, two = tmp_path / "one", tmp_path / "two"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "tests.ddp_train", *ARGS, "--output", str(two)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    monkeypatch.setattr(bridge.train.trainer, "BridgeModel", NoDropoutModel)
    assert train.main([*ARGS, "--output", str(one)]) == 0

    # Only rank 0 printed and wrote: one line each, the same files as a single process, no leftovers.
    out = proc.stdout
    assert out.count("bridge: training") == 1 and "x 2 processes (4 samples each)" in out
    assert out.count("epoch 1/2  train loss") == 1 and out.count("best epoch") == 1
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    assert len(list(two.rglob("*.safetensors"))) == len(list(one.rglob("*.safetensors")))
    assert not [p for p in two.rglob(".*")], "temporary files left behind"
    history = json.loads((two / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]

    # The saved weights are the bare model's (no DDP "module." prefix) and match the single process.
    a, b = load_file(str(one / "model.safetensors")), load_file(str(two / "model.safetensors"))
    assert sorted(a) == sorted(b) and not any(k.startswith("module.") for k in b)
    assert _relative_difference(a, b) < 1e-5
    sa = torch.load(one / "training_state.pt", weights_only=True)
    sb = torch.load(two / "training_state.pt", weights_only=True)
    assert sa["model"].keys() == sb["model"].keys() and sa["criterion"].keys() == sb["criterion"].keys()
    assert _relative_difference(sa["model"], sb["model"]) < 1e-5
    assert _relative_difference(sa["criterion"], sb["criterion"]) < 1e-5  # the loss's unimodal heads are synced

    for ra, rb in zip(json.loads((one / "history.json").read_text()), history):
        assert ra["val"]["accuracy"] == rb["val"]["accuracy"]
        assert ra["val"]["macro_f1"] == rb["val"]["macro_f1"]
        assert {k: v for k, v in ra["val"].items() if k.startswith("macro_f1")} == \
            {k: v for k, v in rb["val"].items() if k.startswith("macro_f1")}  # each pattern, gathered over ranks
        assert rb["val"]["loss"] == pytest.approx(ra["val"]["loss"], rel=1e-5)
        assert rb["train"]["loss"] == pytest.approx(ra["train"]["loss"], rel=1e-5)
        assert rb["train"]["accuracy"] == ra["train"]["accuracy"]


def test_a_global_batch_that_does_not_split_evenly_is_refused(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert train.main(["--batch-size", "8"]) == 2
    assert "--batch-size 8 is the global batch and must be divisible by the 3 processes" in capsys.readouterr().err


def test_merge_ranks_sums_numbers_joins_arrays_and_merges_keys_only_some_ranks_have():
    import numpy as np

    from bridge.train.distributed import World, _merge, merge_ranks

    alone = ({"ce": 1.0}, 3, np.arange(3))
    assert merge_ranks(alone, World()) is alone  # one process: its own values, untouched
    parts = [({"ce": 1.0, "cycle": 0.5}, 2, np.array([0, 1])),
             ({"ce": 2.0}, 1, np.array([2]))]
    sums, n, labels = _merge(parts)
    assert sums == {"ce": 3.0, "cycle": 0.5} and n == 3 and labels.tolist() == [0, 1, 2]
    by_pattern = _merge([{"face": (np.array([1]), np.array([0]))},
                         {"face": (np.array([2]), np.array([1])), "text": (np.array([3]), np.array([3]))}])
    assert list(by_pattern) == ["face", "text"] and by_pattern["face"][0].tolist() == [1, 2]
    with pytest.raises(TypeError, match="cannot merge a Tensor"):
        _merge([torch.zeros(1), torch.zeros(1)])
