"""Shared fixtures: tiny synthetic batches and one checkpoint trained in-process per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def synthetic_samples():
    from bridge.data.synthetic import SyntheticEmotions

    return SyntheticEmotions(64, split="train", seed=0)


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory) -> Path:
    """A tiny model trained briefly on the synthetic default by ``train.main``."""
    import train

    out = tmp_path_factory.mktemp("ckpt") / "synthetic-tiny"
    rc = train.main(["--limit", "140", "--epochs", "2", "--batch-size", "16", "--output", str(out)])
    assert rc == 0
    return out
