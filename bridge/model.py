"""The bridge model: cross-modal translation for emotion recognition with missing modalities.

Encode each present modality and summarise it into ``k`` latent tokens; translate every
modality's latent into every other's; rebuild a missing modality's latent from the
translations of the present ones; fuse observed and reconstructed latents with a
Transformer; classify. Follows the MERT design in ``docs/contract.md``, drawing on MCTN
(Pham et al., 2019), MMIN (Zhao et al., 2021) and MulT (Tsai et al., 2019).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from bridge.batch import Batch
from bridge.cli import first_line
from bridge.checkpoint import (CheckpointError, encoder_config_dirs, migrate, model_config, read_meta, save_checkpoint,
                               weights_file)
from bridge.checkpoint import load_weights as load_checkpoint_weights
from bridge.config import BridgeConfig
from bridge.contract import Fill
from bridge.encoders import build_encoder
from bridge.freeze import freeze_encoder, frozen_encoders
from bridge.fusion import OBSERVED, RECONSTRUCTED, ZERO_FILLED, ConfidenceGate, Fusion
from bridge.layers import LatentSummariser
from bridge.manifest import ReleaseError, inherited_prefixes, is_release, verify
from bridge.modality import Modality
from bridge.presence import complete_presence
from bridge.translator import Translator
from bridge.views import TestViews, face_views, require_face_views

__all__ = ["BridgeModel", "BridgeOutput", "CheckpointError", "Encoded", "Fill", "create_model", "load_checkpoint",
           "pair_key"]


def pair_key(source: Modality, target: Modality) -> str:
    return f"{source.value}_to_{target.value}"


@dataclass
class Encoded:
    """What :meth:`BridgeModel.encode` returns: the part of the forward pass that depends on the
    inputs alone, computed once and scored by :meth:`BridgeModel.head` under any presence mask.

    Args:
        latents: ``(b, k, d)`` of every model modality the batch carries.
        translations: ``(b, k, d)`` predictions keyed ``"audio_to_text"``, for every source in ``latents``.
    """

    latents: dict[Modality, Tensor]
    translations: dict[str, Tensor]

    def merge(self, other: "Encoded") -> "Encoded":
        """This encoding with ``other``'s modalities (their latents and translations) replacing its own."""
        replaced = tuple(f"{m.value}_to_" for m in other.latents)
        kept = {k: v for k, v in self.translations.items() if not k.startswith(replaced)}
        return Encoded({**self.latents, **other.latents}, {**kept, **other.translations})

    def expand(self, n: int) -> "Encoded":
        """A one-sample encoding seen ``n`` times (views, no copies)."""
        return Encoded({m: z.expand(n, -1, -1) for m, z in self.latents.items()},
                       {k: t.expand(n, -1, -1) for k, t in self.translations.items()})


@dataclass
class BridgeOutput:
    """What :meth:`BridgeModel.forward` returns.

    Args:
        logits: ``(b, classes)``.
        latents: observed latents ``(b, k, d)`` of every modality the batch carries.
        translations: ``(b, k, d)`` predictions keyed ``"audio_to_text"``, for sources in the batch.
        reconstructions: per modality, ``(b, k, d)`` latent rebuilt from the present others.
        present: per modality, ``(b,)`` bool: used as observed (others were reconstructed or zeroed).
        cycles: with ``forward(cycle=True)``, each translation translated back to its source, keyed
            like the translation (``"audio_to_text"``: audio -> text -> audio), for pairs the batch has.
        teacher_logits: with ``forward(teacher=True)``, ``(b, classes)`` logits from every modality
            the batch really has (``batch.present``), computed without gradients: the distillation
            target of the logits under ``present``.
    """

    logits: Tensor
    latents: dict[Modality, Tensor] = field(default_factory=dict)
    translations: dict[str, Tensor] = field(default_factory=dict)
    reconstructions: dict[Modality, Tensor] = field(default_factory=dict)
    present: dict[Modality, Tensor] = field(default_factory=dict)
    cycles: dict[str, Tensor] = field(default_factory=dict)
    teacher_logits: Tensor | None = None


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
        self.confidence = ConfidenceGate(d) if config.fusion.confidence else None
        for encoder in frozen_encoders(self):  # e.g. face.freeze: no gradients, eval mode (bridge.freeze)
            freeze_encoder(encoder)

    @property
    def modalities(self) -> tuple[Modality, ...]:
        return self.config.modalities

    # --- the classifier contract (bridge.contract.Classifier) --------------------------------
    def encode(self, batch: Batch, views: TestViews = "single") -> Encoded:
        """Latents ``(b, k, d)`` for every model modality the batch carries, and their translations.

        Args:
            batch: inputs; modalities the model lacks are ignored.
            views: out of training, each face latent is the mean over these test-time views of
                its crop (:mod:`bridge.views`: ``single``, ``mirror`` or ``crops``).

        Raises:
            ValueError: unknown views, or views beyond ``single`` on a model without a raw-face encoder.
        """
        require_face_views(self.config, views)
        latents = {}
        for m in self.modalities:
            if m not in batch.inputs:
                continue
            if m == Modality.FACE and views != "single" and not self.training:
                latents[m] = self._encode_views(face_views(batch.inputs[m], views), batch.masks[m])
            else:
                latents[m] = self._encode_one(m, batch.inputs[m], batch.masks[m])
        return Encoded(latents, self.translate(latents))

    def head(self, encoded: Encoded, present: dict[Modality, Tensor], fill: Fill = "reconstruct") -> Tensor:
        """Logits ``(b, classes)`` of an encoding, with ``present`` as the observed (sample, modality).

        Args:
            encoded: from :meth:`encode`.
            present: per modality ``(b,)`` bool; a modality with no key counts as missing.
            fill: how a missing modality enters the fusion: its reconstruction, or zeros.
        """
        any_mask = next(iter(present.values()))
        b = len(any_mask)
        present = complete_presence(present, self.modalities, b, any_mask.device)
        reconstructions = self.reconstruct(encoded.translations, present, b)
        return self.classify(self.fuse(encoded.latents, reconstructions, present, fill))

    # --- the stages ---------------------------------------------------------------------------
    def _encode_one(self, modality: Modality, inputs: Tensor, mask: Tensor) -> Tensor:
        tokens, mask = self.encoders[modality.value](inputs, mask)  # (b, n, e), (b, n)
        return self.summarisers[modality.value](tokens, mask)  # (b, k, d)

    def _encode_views(self, views: list[Tensor], mask: Tensor, per_call: int = 64) -> Tensor:
        """The mean face latent over ``views`` of the same faces. A small batch (a photo, a live
        frame) encodes its views in one call, a large one (evaluation) one view per call."""
        b = len(mask)
        group = max(1, per_call // max(b, 1))
        total = None
        for start in range(0, len(views), group):
            chunk = views[start:start + group]
            latent = self._encode_one(Modality.FACE, torch.cat(chunk), torch.cat([mask] * len(chunk)))
            latent = latent.reshape(len(chunk), b, *latent.shape[1:]).sum(0)
            total = latent if total is None else total + latent
        return total / len(views)

    def translate(self, latents: dict[Modality, Tensor]) -> dict[str, Tensor]:
        """Every translation whose source is in ``latents``, keyed ``"source_to_target"``."""
        return {pair_key(s, t): self.translators[pair_key(s, t)](latents[s])
                for s, t in itertools.permutations(self.modalities, 2) if s in latents}

    def cycle(self, translations: dict[str, Tensor], modalities: tuple[Modality, ...]) -> dict[str, Tensor]:
        """Each translation between two of ``modalities`` translated back to its source, keyed like it."""
        return {pair_key(s, t): self.translators[pair_key(t, s)](translations[pair_key(s, t)])
                for s in modalities for t in modalities if s != t}

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
            flag = torch.where(present[m], OBSERVED, missing_flag)[:, None].expand(-1, self.config.latent_tokens)
            if self.confidence is not None:
                z = self.confidence(z, flag)  # reconstructed tokens scaled by their learned confidence
            tokens.append(z + self.modality_embed[m.value])  # (b, k, d)
            flags.append(flag)  # (b, k)
        return self.fusion.forward_features(torch.cat(tokens, dim=1), torch.cat(flags, dim=1))

    def classify(self, joint: Tensor) -> Tensor:
        return self.fusion.forward_head(joint)

    def forward(self, batch: Batch, present: dict[Modality, Tensor] | None = None,
                fill: Fill = "reconstruct", cycle: bool = False, views: TestViews = "single",
                teacher: bool = False) -> BridgeOutput:
        """Classify a batch, keeping the intermediates the training loss reads.

        Args:
            batch: inputs; modalities the model lacks are ignored.
            present: which (sample, modality) the fusion may use as observed; defaults to
                ``batch.present``. Training passes a randomly thinned copy (modality dropout).
            fill: how a missing modality enters the fusion: its reconstruction, or zeros.
            cycle: also translate every translation back to its source (``BridgeOutput.cycles``).
            views: out of training, the test-time views each face latent averages (see :meth:`encode`).
            teacher: also classify with every modality of ``batch.present`` observed, without
                gradients (``BridgeOutput.teacher_logits``, the distillation target).

        Raises:
            ValueError: when a sample has none of the model's modalities.
        """
        b = len(batch)
        present = complete_presence(batch.present if present is None else present, self.modalities, b,
                                    _device(batch))
        for m in self.modalities:
            if m not in batch.inputs and bool(present[m].any()):
                raise ValueError(f"{m.value} is marked present but the batch has no {m.value} input")
        if not torch.stack(list(present.values())).any(dim=0).all():
            raise ValueError("every sample needs at least one of the model's modalities "
                             f"({', '.join(m.value for m in self.modalities)})")
        encoded = self.encode(batch, views)
        reconstructions = self.reconstruct(encoded.translations, present, b)
        logits = self.classify(self.fuse(encoded.latents, reconstructions, present, fill))
        cycles = self.cycle(encoded.translations, tuple(encoded.latents)) if cycle else {}
        teacher_logits = None
        if teacher:
            with torch.no_grad():
                full = complete_presence(batch.present, self.modalities, b, _device(batch))
                teacher_logits = self.classify(self.fuse(encoded.latents, self.reconstruct(encoded.translations, full, b),
                                                         full, fill))
        return BridgeOutput(logits, encoded.latents, encoded.translations, reconstructions, present, cycles,
                            teacher_logits)

    # --- checkpoints ------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, extra: dict | None = None) -> None:
        """Write ``model.safetensors`` and ``config.json`` (and saved encoder configs) to ``directory``.

        Args:
            directory: created if needed.
            extra: more JSON to store beside the model config (training settings, data, metrics).
        """
        save_checkpoint(self, Path(directory), extra or {})

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> "BridgeModel":
        """Rebuild a model from a checkpoint directory alone (safetensors + JSON; no pickle).

        Raises:
            CheckpointError: when the directory is missing, incomplete or inconsistent.
        """
        return load_checkpoint(Path(directory), device)[0]


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu") -> tuple[BridgeModel, dict]:
    """Rebuild the model from ``directory`` alone; returns it (in eval mode) and the metadata
    (:func:`bridge.checkpoint.read_meta`, older layouts migrated).

    Raises:
        CheckpointError: on a missing, truncated or mismatching checkpoint.
    """
    directory = Path(directory)
    if is_release(directory):  # a shipped model: hash-checked, pretrained parts from their packages
        return _load_release(directory, device)
    meta = read_meta(directory)
    config = model_config(directory, meta)
    weights_file(directory)  # a missing file fails before the model is built
    model = BridgeModel(config, load_weights=False, hf_config_dirs=encoder_config_dirs(directory))
    load_checkpoint_weights(model, directory, device)
    return model.to(device).eval(), meta


def _load_release(folder: Path, device: str | torch.device = "cpu") -> tuple[BridgeModel, dict]:
    """A release folder (:mod:`bridge.release`), verified first: the encoders whose frozen weights ship
    in a pip package are built from it, and every stored tensor is laid over the model.

    Raises:
        ReleaseError: a missing, altered or unlisted file, a missing package, or weights that do not fit.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    meta = migrate(verify(folder))  # a release packed before test-time views records test_flip
    config = model_config(folder, meta)
    prefixes = inherited_prefixes(config)
    saved = {m: d for m, d in encoder_config_dirs(folder).items() if f"encoders.{m.value}." not in prefixes}
    model = BridgeModel(config, load_weights=bool(prefixes), hf_config_dirs=saved)
    weights = weights_file(folder)
    try:
        stored = load_file(str(weights))
    except (SafetensorError, OSError) as e:
        raise ReleaseError(f"{weights} cannot be read: {first_line(e)}") from None
    missing, unexpected = model.load_state_dict(stored, strict=False)  # float16 copied into float32
    missing = [k for k in missing if not any(k.startswith(p) for p in prefixes)]
    if missing or unexpected:
        raise ReleaseError(f"{weights} does not match its config: "
                           f"{len(missing)} missing and {len(unexpected)} unexpected tensors")
    return model.to(device).eval(), meta


def _device(batch: Batch) -> torch.device:
    return next(iter(batch.present.values())).device


def create_model(preset: str = "tiny", **overrides) -> BridgeModel:
    """A model from a named preset (see :func:`bridge.config.create_config`)."""
    from bridge.config import create_config

    return BridgeModel(create_config(preset, **overrides))
