"""The bridge model: cross-modal translation for emotion recognition with missing modalities.

Encode each present modality and summarise it into ``k`` latent tokens; translate every
modality's latent into every other's; rebuild a missing modality's latent from the
translations of the present ones; fuse observed and reconstructed latents with a
Transformer; classify. Follows the MERT design in ``DESIGN.md``, drawing on MCTN
(Pham et al., 2019), MMIN (Zhao et al., 2021) and MulT (Tsai et al., 2019).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from bridge.batch import Batch
from bridge.config import BridgeConfig
from bridge.encoders import build_encoder
from bridge.fusion import OBSERVED, RECONSTRUCTED, ZERO_FILLED, Fusion
from bridge.layers import LatentSummariser
from bridge.modality import Modality
from bridge.translator import Translator

Fill = Literal["reconstruct", "zero"]


def pair_key(source: Modality, target: Modality) -> str:
    return f"{source.value}_to_{target.value}"


@dataclass
class BridgeOutput:
    """What :meth:`BridgeModel.forward` returns.

    Args:
        logits: ``(b, classes)``.
        latents: observed latents ``(b, k, d)`` of every modality the batch carries.
        translations: ``(b, k, d)`` predictions keyed ``"audio_to_text"``, for sources in the batch.
        reconstructions: per modality, ``(b, k, d)`` latent rebuilt from the present others.
        present: per modality, ``(b,)`` bool: used as observed (others were reconstructed or zeroed).
    """

    logits: Tensor
    latents: dict[Modality, Tensor] = field(default_factory=dict)
    translations: dict[str, Tensor] = field(default_factory=dict)
    reconstructions: dict[Modality, Tensor] = field(default_factory=dict)
    present: dict[Modality, Tensor] = field(default_factory=dict)


class CheckpointError(ValueError):
    """A directory that is not a loadable bridge checkpoint."""


class BridgeModel(nn.Module):
    """Cross-modal translation model.

    Args:
        config: the model config.
        load_weights: load pretrained encoder weights the config names (False when a checkpoint
            supplies all weights).
        hf_config_dirs: saved transformers configs per modality, to rebuild pretrained
            architectures offline (checkpoint loading).
    """

    def __init__(self, config: BridgeConfig, load_weights: bool = True,
                 hf_config_dirs: dict[Modality, Path] | None = None):
        super().__init__()
        self.config = config
        hf_config_dirs = hf_config_dirs or {}
        d, k = config.dim, config.latent_tokens
        self.encoders = nn.ModuleDict({
            m.value: build_encoder(cfg, load_weights, hf_config_dirs.get(m)) for m, cfg in config.encoders.items()})
        self.summarisers = nn.ModuleDict({
            m.value: LatentSummariser(self.encoders[m.value].out_dim, d, k, config.heads, config.mlp_ratio)
            for m in config.modalities})
        self.modality_embed = nn.ParameterDict({
            m.value: nn.Parameter(torch.randn(k, d) * 0.02) for m in config.modalities})
        self.translators = nn.ModuleDict({
            pair_key(s, t): Translator(d, k, config.heads, config.translator.depth, config.mlp_ratio)
            for s, t in itertools.permutations(config.modalities, 2)})
        self.fusion = Fusion(d, config.heads, config.fusion.depth, config.mlp_ratio, config.num_classes,
                             config.fusion.dropout)

    @property
    def modalities(self) -> tuple[Modality, ...]:
        return self.config.modalities

    # --- the split forward contract ------------------------------------------------------------
    def encode(self, batch: Batch) -> dict[Modality, Tensor]:
        """Latents ``(b, k, d)`` for every configured modality the batch carries."""
        latents = {}
        for m in self.modalities:
            if m in batch.inputs:
                latents[m] = self._encode_one(m, batch.inputs[m], batch.masks[m])
                if not self.training and getattr(self.config.encoders[m], "test_flip", False):
                    mirrored = self._encode_one(m, batch.inputs[m].flip(-1), batch.masks[m])
                    latents[m] = (latents[m] + mirrored) / 2  # horizontal-flip test-time augmentation
        return latents

    def _encode_one(self, modality: Modality, inputs: Tensor, mask: Tensor) -> Tensor:
        tokens, mask = self.encoders[modality.value](inputs, mask)  # (b, n, e), (b, n)
        return self.summarisers[modality.value](tokens, mask)  # (b, k, d)

    def set_test_flip(self, on: bool) -> None:
        """Turn horizontal-flip test-time augmentation of faces on or off (``FaceConfig.test_flip``).

        Raises:
            ValueError: when the model has no raw-face encoder.
        """
        face = self.config.face
        if face is None or face.kind != "face":
            raise ValueError("test-time flipping needs a model with a face encoder (not features)")
        self.config = dataclasses.replace(self.config, face=dataclasses.replace(face, test_flip=on))

    def translate(self, latents: dict[Modality, Tensor]) -> dict[str, Tensor]:
        """Every translation whose source is in ``latents``, keyed ``"source_to_target"``."""
        return {pair_key(s, t): self.translators[pair_key(s, t)](latents[s])
                for s, t in itertools.permutations(self.modalities, 2) if s in latents}

    def reconstruct(self, translations: dict[str, Tensor], present: dict[Modality, Tensor],
                    batch_size: int) -> dict[Modality, Tensor]:
        """Per modality, the mean of the translations from the modalities each sample has.

        A sample with no present source gets zeros (it must then have the modality itself).
        """
        out = {}
        for t in self.modalities:
            total, count = None, None
            for s in self.modalities:
                key = pair_key(s, t)
                if s == t or key not in translations:
                    continue
                w = present[s].to(translations[key].dtype)[:, None, None]  # (b, 1, 1)
                total = translations[key] * w if total is None else total + translations[key] * w
                count = w if count is None else count + w
            if total is None:
                shape = (batch_size, self.config.latent_tokens, self.config.dim)
                out[t] = torch.zeros(shape, device=present[t].device)
            else:
                out[t] = total / count.clamp_min(1.0)
        return out

    def fuse(self, latents: dict[Modality, Tensor], reconstructions: dict[Modality, Tensor],
             present: dict[Modality, Tensor], fill: Fill = "reconstruct") -> Tensor:
        """Joint latent ``(b, d)`` from observed latents where present, else reconstructions or zeros."""
        tokens, flags = [], []
        for m in self.modalities:
            rec = reconstructions[m]
            obs = present[m][:, None, None]  # (b, 1, 1)
            missing_value = rec if fill == "reconstruct" else torch.zeros_like(rec)
            missing_flag = RECONSTRUCTED if fill == "reconstruct" else ZERO_FILLED
            z = torch.where(obs, latents[m], missing_value) if m in latents else missing_value
            tokens.append(z + self.modality_embed[m.value])  # (b, k, d)
            flag = torch.where(present[m], OBSERVED, missing_flag)  # (b,)
            flags.append(flag[:, None].expand(-1, self.config.latent_tokens))
        return self.fusion.forward_features(torch.cat(tokens, dim=1), torch.cat(flags, dim=1))

    def classify(self, joint: Tensor) -> Tensor:
        return self.fusion.forward_head(joint)

    def forward(self, batch: Batch, present: dict[Modality, Tensor] | None = None,
                fill: Fill = "reconstruct") -> BridgeOutput:
        """Classify a batch.

        Args:
            batch: inputs; modalities the model lacks are ignored.
            present: which (sample, modality) the fusion may use as observed; defaults to
                ``batch.present``. Training passes a randomly thinned copy (modality dropout).
            fill: how a missing modality enters the fusion: its reconstruction, or zeros.

        Raises:
            ValueError: when a sample has none of the model's modalities.
        """
        present = batch.present if present is None else present
        b = len(batch)
        present = {m: present[m] if m in present else torch.zeros(b, dtype=torch.bool, device=_device(batch))
                   for m in self.modalities}
        for m in self.modalities:
            if m not in batch.inputs and bool(present[m].any()):
                raise ValueError(f"{m.value} is marked present but the batch has no {m.value} input")
        if not torch.stack(list(present.values())).any(dim=0).all():
            raise ValueError("every sample needs at least one of the model's modalities "
                             f"({', '.join(m.value for m in self.modalities)})")
        latents = self.encode(batch)
        translations = self.translate(latents)
        reconstructions = self.reconstruct(translations, present, b)
        joint = self.fuse(latents, reconstructions, present, fill)
        return BridgeOutput(self.classify(joint), latents, translations, reconstructions, present)

    # --- checkpoints ------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, extra: dict | None = None) -> None:
        """Write ``model.safetensors`` and ``config.json`` (and saved encoder configs) to ``directory``.

        Args:
            directory: created if needed.
            extra: more JSON to store beside the model config (training settings, data, metrics).
        """
        from bridge.checkpoint import save_checkpoint

        save_checkpoint(self, Path(directory), extra or {})

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> "BridgeModel":
        """Rebuild a model from a checkpoint directory alone (safetensors + JSON; no pickle).

        Raises:
            CheckpointError: when the directory is missing, incomplete or inconsistent.
        """
        from bridge.checkpoint import load_checkpoint

        return load_checkpoint(Path(directory), device)[0]


def _device(batch: Batch) -> torch.device:
    return next(iter(batch.present.values())).device


def create_model(preset: str = "tiny", **overrides) -> BridgeModel:
    """A model from a named preset (see :func:`bridge.config.create_config`)."""
    from bridge.config import create_config

    return BridgeModel(create_config(preset, **overrides))
