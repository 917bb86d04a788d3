"""Ensembles: several checkpoints of one task whose class probabilities are averaged, such as the
checkpoints that successive cosine cycles of one run leave behind (snapshot ensembles, Huang et
al., ICLR 2017) or runs with different seeds.

An :class:`Ensemble` keeps the classifier contract (:class:`bridge.contract.Classifier`), so
evaluation, the robustness protocols and :class:`~bridge.inference.predictor.Predictor` run it unchanged:
its encoding holds each member's, and its head returns the log of the members' mean
probabilities, whose softmax is that mean.

The members share one preprocessor, so they must agree on everything preprocessing reads (crop
size, channels, frames, filterbank, tokenizer, feature shape) and on the labels; their networks
may differ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from bridge.batch import Batch
from bridge.contract import Fill
from bridge.modality import Modality
from bridge.model import Encoded, load_checkpoint

# The encoder-config fields that preprocessing reads (bridge.preprocess, bridge.inference.predictor), per kind.
PREPROCESSING_FIELDS: dict[str, tuple[str, ...]] = {
    "face": ("img_size", "in_chans", "num_frames", "margin", "mean", "std"),
    "audio": ("arch", "sample_rate", "num_mel_bins", "max_frames", "fbank_mean", "fbank_std"),
    "text": ("tokenizer", "vocab_size", "max_length"),
    "features": ("input_dim", "max_steps"),
}


def preprocessing(config) -> dict[str, dict]:
    """What a :class:`~bridge.config.BridgeConfig` asks of preprocessing, per modality."""
    return {m.value: {"kind": cfg.kind, **{f: getattr(cfg, f) for f in PREPROCESSING_FIELDS[cfg.kind]}}
            for m, cfg in config.encoders.items()}


class Ensemble(nn.Module):
    """Models of one task with their probabilities averaged.

    Args:
        members: at least one model; all with the same labels, modalities and preprocessing.
        names: what errors call each member (e.g. its checkpoint directory); default "member I".

    Raises:
        ValueError: no members, or a member that differs from the first in labels, modalities or
            preprocessing (the message names the member and the difference).
    """

    def __init__(self, members: Sequence[nn.Module], names: Sequence[str] | None = None):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one model")
        names = list(names) if names is not None else [f"member {i}" for i in range(len(members))]
        first = members[0]
        for name, member in zip(names[1:], members[1:]):
            for what, get in (("labels", lambda m: tuple(m.config.labels)), ("modalities", lambda m: m.modalities),
                              ("preprocessing", lambda m: preprocessing(m.config))):
                if get(member) != get(first):
                    raise ValueError(f"{name} has other {what} than {names[0]}: {_plain(get(member))} vs "
                                     f"{_plain(get(first))}")
        self.members = nn.ModuleList(members)
        self.names = names

    def __len__(self) -> int:
        return len(self.members)

    @property
    def config(self):
        """The first member's config: labels, modalities and preprocessing are the same for all."""
        return self.members[0].config

    @property
    def modalities(self) -> tuple[Modality, ...]:
        return self.members[0].modalities

    @property
    def encoders(self):
        """The first member's encoders (the noise protocol reads feature statistics from them)."""
        return self.members[0].encoders

    def encode(self, batch: Batch, views: str = "single") -> "EnsembleEncoded":
        return EnsembleEncoded(tuple(member.encode(batch, views) for member in self.members))

    def head(self, encoded: "EnsembleEncoded", present: dict[Modality, Tensor], fill: Fill = "reconstruct") -> Tensor:
        """``(b, classes)`` log mean probability: its softmax is the members' mean softmax."""
        logp = torch.stack([member.head(e, present, fill).float().log_softmax(-1)
                            for member, e in zip(self.members, encoded.members)])
        return logp.logsumexp(0) - math.log(len(self.members))


@dataclass
class EnsembleEncoded:
    """An :class:`Ensemble`'s encoding: each member's :class:`~bridge.model.Encoded`, in member order."""

    members: tuple[Encoded, ...]

    def merge(self, other: "EnsembleEncoded") -> "EnsembleEncoded":
        return EnsembleEncoded(tuple(a.merge(b) for a, b in zip(self.members, other.members)))

    def expand(self, n: int) -> "EnsembleEncoded":
        return EnsembleEncoded(tuple(e.expand(n) for e in self.members))


def load_models(directories: Sequence[str | Path], device: str | torch.device = "cpu"):
    """One checkpoint as its :class:`~bridge.model.BridgeModel`, several as an :class:`Ensemble`.

    Returns:
        the model (eval mode) and a list of each checkpoint's metadata.

    Raises:
        CheckpointError: a checkpoint that cannot be loaded.
        ValueError: no directory, or checkpoints that cannot form an ensemble.
    """
    if not directories:
        raise ValueError("no checkpoint given")
    loaded = [load_checkpoint(Path(d), device) for d in directories]
    metas = [meta for _, meta in loaded]
    if len(loaded) == 1:
        return loaded[0][0], metas
    return Ensemble([model for model, _ in loaded], [str(d) for d in directories]).eval(), metas


def _plain(value) -> str:
    """Labels or modalities as a user writes them (``face, audio``), not Python reprs; other values as JSON."""
    if isinstance(value, (tuple, list)):
        return ", ".join(getattr(v, "value", str(v)) for v in value) or "none"
    import json

    return json.dumps(value, sort_keys=True, default=str)
