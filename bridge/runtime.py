"""Process set-up for a run: the device, the seeds, deterministic algorithms. These change
process-wide state, so the scripts call them once (``train.py``, ``evaluate.py``), not the library."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def pick_device(name: str) -> torch.device:
    """``"auto"`` picks CUDA when available; any other name is taken as given (``cpu``, ``cuda:1``)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def use_deterministic_algorithms(on: bool = True) -> None:
    """Deterministic algorithms only (slower on GPU; CPU runs are already repeatable), with the
    cuBLAS workspace setting that determinism needs (set only where the environment has none)."""
    torch.use_deterministic_algorithms(on, warn_only=False)
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
