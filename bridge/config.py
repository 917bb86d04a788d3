"""Frozen, typed configuration for the bridge model, with named presets.

A :class:`BridgeConfig` fully describes a model: which modalities it has, which encoder
(and input kind) serves each one, the shared latent, the translators and the fusion.
It round-trips through JSON, so a checkpoint carries its own config.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, Union

from bridge.modality import ALL_MODALITIES, EMOTIONS, Modality


@dataclass(frozen=True)
class FaceConfig:
    """A timm Vision Transformer over face crops; several frames become a token sequence."""

    kind: Literal["face"] = "face"
    arch: str = "vit_base_patch16_224"  # timm architecture name; the fields below override its defaults
    weights: str | None = None  # None: random init; "hub": timm's pretrained weights; else a local file
    img_size: int | None = 48  # side of the square crop fed to the ViT (None: the arch's default)
    patch_size: int | None = 8  # ViT patch side in pixels
    in_chans: int = 1  # 1 for grayscale crops (FER-style), 3 for RGB
    # conv: two 3x3 convolutions make the patch tokens (data-efficient from scratch); cnn: a VGG-style CNN
    # (batch norm, max-pooling; power-of-two patch_size) whose feature map becomes the tokens, a hybrid
    stem: Literal["patch", "conv", "cnn"] = "conv"
    embed_dim: int | None = 64  # ViT width
    depth: int | None = 2  # ViT blocks
    num_heads: int | None = 2  # ViT attention heads
    num_frames: int = 4  # most face frames per sample; video is sampled down to this
    frame_tokens: Literal["cls", "patches"] = "patches"  # per frame: one CLS token, or every patch token
    margin: float = 0.2  # extra border around a detected face box, as a fraction of its side
    # Face-crop images (FER-2013; --no-detect inputs) as given (None), or found again by this detector and
    # re-cropped eyes-level as a face found in a frame is, in training and inference alike ("mtcnn"): one
    # framing for corpus crops and found faces (bridge/media/align.py realign_crop; docs/faces.md).
    realign: Literal["blazeface", "blazeface-short", "mtcnn", None] = None
    # Side of an eyes-level crop (found faces, realigned crops) as a fraction of FER-2013's median framing:
    # below 1 crops tighter, so a realigned FER-2013 crop reaches less often past the original image, where
    # training can only repeat its edge and a frame shows background (docs/faces.md). A model trained on
    # FER-2013 crops as given keeps 1.
    crop_scale: float = 1.0
    # Eye points averaged with those the detector finds in the mirror image, for found faces and realigned
    # crops alike (bridge/media/detectors.py MirrorEyes): steadier eyes-level crops at twice the detection time.
    mirror_eyes: bool = False
    # O-Net passes that place the eye points again on a box drawn from them, for found faces and realigned
    # crops alike (bridge/media/detectors.py OnetEyes), so a face's eyes do not depend on what surrounds it
    # (0: the detector's own points).
    refine_eyes: int = 0
    mean: float = 0.5  # pixel normalisation after scaling to [0, 1]
    std: float = 0.5
    freeze: bool = False  # keep the encoder's weights (and batch-norm statistics) fixed, e.g. after --init-encoder

    @property
    def sampled_frames(self) -> int:
        """Frames decoded from a video clip for face crops: twice what the model keeps (a frame
        without a face still leaves enough), at least 8."""
        return max(self.num_frames * 2, 8)


@dataclass(frozen=True)
class AudioConfig:
    """An AST-style patch Transformer (transformers ``ASTModel``) over log-mel filterbanks, or
    Whisper's audio encoder over Whisper's log-mel spectrogram (``arch="whisper"``)."""

    kind: Literal["audio"] = "audio"
    arch: Literal["ast", "whisper"] = "ast"  # ast: patch Transformer; whisper: convs + Transformer (speech-pretrained)
    # None: random init; ast: a hub name or local path for ASTModel; whisper: "whisper-tiny.en" (packaged,
    # offline) or a local CTranslate2 Whisper folder (its sizes then replace the ones below)
    weights: str | None = None
    sample_rate: int = 16_000  # waveforms are resampled to this before the filterbank
    num_mel_bins: int = 64  # filterbank channels (AST-base: 128)
    max_frames: int = 200  # 10 ms frames per clip after crop/pad (AST-base: 1024)
    patch_size: int = 16  # square patch over (mel, time)
    frequency_stride: int = 16  # patch stride along mel; < patch_size overlaps patches like AST
    time_stride: int = 16  # patch stride along time
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 2
    intermediate_size: int = 128
    fbank_mean: float = -4.27  # AST's AudioSet statistics, used to normalise the log-mel input (ast only)
    fbank_std: float = 4.57
    freeze: bool = False  # keep a pretrained encoder's weights fixed
    # Scale each waveform so its active level (the mean power of its louder half of 25 ms frames) is this
    # many dBFS before the filterbank, in training and inference alike, so the recording gain cannot decide
    # the emotion (None: as recorded, as checkpoints made before this field).
    loudness: float | None = None
    # whisper only: the encoder's output is a learned weighted sum of all its layers (SUPERB's), not its
    # top layer alone; tune_mix: the weights learn while the encoder is frozen (off: they stay as loaded).
    layer_mix: bool = False
    tune_mix: bool = True

    def __post_init__(self) -> None:
        if self.arch not in ("ast", "whisper"):
            raise ValueError(f"audio arch must be 'ast' or 'whisper', got {self.arch!r}")
        if self.arch == "whisper" and self.sample_rate != 16_000:
            raise ValueError(f"the whisper audio encoder needs sample_rate 16000, got {self.sample_rate}")
        if self.layer_mix and self.arch != "whisper":
            raise ValueError("audio.layer_mix needs audio.arch=whisper")

    @property
    def window_seconds(self) -> float:
        """The sound the model hears at most: ``max_frames`` filterbank frames of 25 ms every 10 ms
        (a longer clip is cropped to its centre)."""
        return (self.max_frames - 1) * 0.010 + 0.025


@dataclass(frozen=True)
class TextConfig:
    """A transformers BERT-family encoder; random init from the fields below or pretrained."""

    kind: Literal["text"] = "text"
    weights: str | None = None  # None: random init BERT; else hub name, local path, or "minilm-l6" (packaged, offline)
    tokenizer: str = "hash"  # "hash": bridge's file-free word-hash tokenizer; else a HF tokenizer name or path
    vocab_size: int = 4096  # hash buckets / BERT vocabulary when randomly initialised
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 2
    intermediate_size: int = 128
    max_length: int = 48  # tokens kept per text, [CLS] and [SEP] included
    freeze: bool = False  # keep a pretrained encoder's weights fixed (trains faster, less overfitting)
    # With freeze, still fine-tune this many top Transformer layers: most of the gain of fine-tuning, in
    # weights small enough to ship (the frozen rest comes from the pretrained package).
    tune_layers: int = 0


@dataclass(frozen=True)
class FeatureConfig:
    """Pre-extracted vectors or sequences (openSMILE, CNN features, ...): projection + small Transformer."""

    kind: Literal["features"] = "features"
    input_dim: int = 64  # feature size f of the (s, f) input
    max_steps: int = 1  # longest sequence kept; a single vector is one step
    hidden_size: int = 64
    num_layers: int = 1
    num_heads: int = 2
    normalize: bool = True  # standardise features with statistics estimated on the training split


EncoderConfig = Union[FaceConfig, AudioConfig, TextConfig, FeatureConfig]
_SECTIONS = ("face", "audio", "text", "translator", "fusion")
_ENCODER_KINDS: dict[str, type] = {"face": FaceConfig, "audio": AudioConfig, "text": TextConfig, "features": FeatureConfig}


@dataclass(frozen=True)
class TranslatorConfig:
    """Cross-attention decoders mapping one modality's latent onto another's."""

    depth: int = 1  # decoder blocks (self-attention over target queries + cross-attention to the source)


@dataclass(frozen=True)
class FusionConfig:
    """The Transformer over real and reconstructed latents, and the classifier head."""

    depth: int = 2
    dropout: float = 0.1  # in attention/MLP blocks and before the classifier
    # scale each reconstructed token by a learned confidence in (0, 1) from the token and its flag
    # (bridge.fusion.ConfidenceGate), so the fusion can discount a poor reconstruction; off: as before it existed
    confidence: bool = False


@dataclass(frozen=True)
class BridgeConfig:
    """The whole model.

    Each modality field names the encoder that serves it, or ``None`` when the model does not
    use that modality. A modality may be served by its raw-media encoder or by a
    :class:`FeatureConfig` (pre-extracted features, e.g. CMU-MOSI's openSMILE vectors).
    """

    face: FaceConfig | FeatureConfig | None = field(default_factory=FaceConfig)
    audio: AudioConfig | FeatureConfig | None = field(default_factory=AudioConfig)
    text: TextConfig | FeatureConfig | None = field(default_factory=TextConfig)
    labels: tuple[str, ...] = EMOTIONS  # class names, in logit order
    dim: int = 64  # width d of the shared latent space
    latent_tokens: int = 4  # k learned queries summarising each modality
    heads: int = 4  # attention heads in the latent, translator and fusion blocks
    mlp_ratio: float = 2.0  # hidden width of MLPs relative to dim
    translator: TranslatorConfig = field(default_factory=TranslatorConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)

    def __post_init__(self) -> None:
        _check_values(BridgeConfig, {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _SECTIONS})
        if not self.encoders:
            raise ValueError("a BridgeConfig needs at least one modality")
        if len(self.labels) < 2:
            raise ValueError("a BridgeConfig needs at least two labels")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")

    @property
    def encoders(self) -> dict[Modality, EncoderConfig]:
        """The configured modalities, in canonical order, with their encoder configs."""
        return {m: getattr(self, m.value) for m in ALL_MODALITIES if getattr(self, m.value) is not None}

    @property
    def modalities(self) -> tuple[Modality, ...]:
        return tuple(self.encoders)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BridgeConfig":
        """Rebuild a config from :meth:`to_dict` output (e.g. a checkpoint's JSON).

        Raises:
            ValueError: on unknown fields or encoder kinds.
        """
        data = dict(data)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown BridgeConfig fields: {', '.join(unknown)}")
        for m in ALL_MODALITIES:
            enc = data.get(m.value)
            if isinstance(enc, dict):
                kind = enc.get("kind")
                if kind not in _ENCODER_KINDS:
                    raise ValueError(f"unknown encoder kind {kind!r} for {m.value}")
                data[m.value] = _build(_ENCODER_KINDS[kind], enc)
        if isinstance(data.get("translator"), dict):
            data["translator"] = _build(TranslatorConfig, data["translator"])
        if isinstance(data.get("fusion"), dict):
            data["fusion"] = _build(FusionConfig, data["fusion"])
        if "labels" in data:
            data["labels"] = tuple(data["labels"])
        return cls(**data)


def _build(cls: type, data: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {', '.join(unknown)}")
    _check_values(cls, data)
    return cls(**data)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _check_values(cls: type, data: dict[str, Any]) -> None:
    # Literal fields must hold one of their choices; int/float/bool/str fields (optionally None) their type.
    hints = _hints(cls)
    for name, value in data.items():
        hint = hints[name]
        if typing.get_origin(hint) is Literal:
            if value not in typing.get_args(hint):
                choices = ", ".join(repr(c) for c in typing.get_args(hint))
                raise ValueError(f"{cls.__name__}.{name} must be one of {choices}, got {value!r}")
            continue
        options = typing.get_args(hint) if typing.get_origin(hint) in (Union, types.UnionType) else (hint,)
        if not all(o in (int, float, bool, str, type(None)) for o in options):
            continue  # nested sections and tuples are checked where they are built
        ok = any(
            value is None if o is type(None)
            else isinstance(value, bool) if o is bool
            else isinstance(value, (int, float)) and not isinstance(value, bool) if o is float
            else isinstance(value, o) and not isinstance(value, bool) if o is int
            else isinstance(value, o)
            for o in options
        )
        if not ok:
            wanted = " or ".join("null" if o is type(None) else o.__name__ for o in options)
            raise ValueError(f"{cls.__name__}.{name} must be {wanted}, got {value!r}")


def _tiny() -> BridgeConfig:
    # About 1.1M parameters: for tests and the CPU quick start.
    return BridgeConfig()


def _small() -> BridgeConfig:
    # CPU research runs: wider encoders, more latent tokens, deeper fusion.
    return BridgeConfig(
        face=FaceConfig(img_size=48, patch_size=6, embed_dim=128, depth=4, num_heads=4, in_chans=1, num_frames=8),
        audio=AudioConfig(num_mel_bins=64, max_frames=300, patch_size=16, frequency_stride=10, time_stride=10,
                          hidden_size=128, num_layers=4, num_heads=4, intermediate_size=384),
        text=TextConfig(weights="minilm-l6", tokenizer="minilm-l6", max_length=64, freeze=True),
        dim=128, latent_tokens=8, heads=4,
        translator=TranslatorConfig(depth=2),
        fusion=FusionConfig(depth=2),
    )


def _base() -> BridgeConfig:
    # GPU users: ViT-B/16, AST-base and bert-base-uncased, all pretrained, loaded by hub name.
    return BridgeConfig(
        face=FaceConfig(arch="vit_base_patch16_224.augreg2_in21k_ft_in1k", weights="hub", img_size=224, stem="patch",
                        patch_size=None, in_chans=3, embed_dim=None, depth=None, num_heads=None,
                        num_frames=8, frame_tokens="cls"),
        audio=AudioConfig(weights="MIT/ast-finetuned-audioset-10-10-0.4593", num_mel_bins=128, max_frames=1024,
                          patch_size=16, frequency_stride=10, time_stride=10, hidden_size=768, num_layers=12,
                          num_heads=12, intermediate_size=3072),
        text=TextConfig(weights="bert-base-uncased", tokenizer="bert-base-uncased", max_length=128),
        dim=256, latent_tokens=8, heads=8,
        translator=TranslatorConfig(depth=2),
        fusion=FusionConfig(depth=4),
    )


PRESETS = {"tiny": _tiny, "small": _small, "base": _base}


def create_config(preset: str = "tiny", **overrides: Any) -> BridgeConfig:
    """A named preset, with top-level fields replaced.

    Args:
        preset: one of :data:`PRESETS`.
        **overrides: BridgeConfig fields to replace, e.g. ``labels=("neg", "pos")`` or ``face=None``.

    Raises:
        ValueError: on an unknown preset or field.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    config = PRESETS[preset]()
    known = {f.name for f in fields(BridgeConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown BridgeConfig fields: {', '.join(unknown)}")
    return replace(config, **overrides)


def with_modalities(config: BridgeConfig, modalities: tuple[Modality, ...]) -> BridgeConfig:
    """Keep only ``modalities`` (the others' encoders are set to ``None``)."""
    return replace(config, **{m.value: None for m in config.modalities if m not in modalities})


# Run-time settings that older versions kept in the model config, and where they are now.
MOVED = {"face.test_flip": "train.py --test-views (or --test-views of infer.py and evaluate.py)",
         "translator.loss": "train.py --translation-loss", "translator.weight": "train.py --translation-weight",
         "translator.cycle_weight": "train.py --cycle-weight"}


def override(config: BridgeConfig, assignments: list[str] | tuple[str, ...]) -> BridgeConfig:
    """``config`` with dotted fields replaced, e.g. ``["text.freeze=false", "fusion.depth=3", "dim=256"]``.

    Values are read as JSON (``true``, ``3``, ``0.1``, ``null``, ``[1, 2]``), anything else as a string.
    The result is validated like any config (types are not coerced: give an int where an int is meant).

    Raises:
        ValueError: a malformed assignment, an unknown field, or a modality the model does not have.
    """
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if key.strip() in MOVED:
            raise ValueError(f"--set {assignment!r}: {key.strip()} is not part of the model config any more; "
                             f"use {MOVED[key.strip()]}")
        path = key.strip().split(".")
        if not sep or not all(path):
            raise ValueError(f"--set {assignment!r}: expected FIELD=VALUE or SECTION.FIELD=VALUE")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        config = _set_path(config, path, value, assignment)
    return BridgeConfig.from_dict(config.to_dict())  # re-validates nested types and the model-level checks


def _set_path(node: Any, path: list[str], value: Any, assignment: str) -> Any:
    names = {f.name for f in fields(node)}
    head = path[0]
    if head not in names:
        raise ValueError(f"--set {assignment!r}: {type(node).__name__} has no field {head!r} "
                         f"(it has {', '.join(sorted(names))})")
    if len(path) == 1:
        if dataclasses.is_dataclass(getattr(node, head)):
            raise ValueError(f"--set {assignment!r}: {head} is a section; set one of its fields ({head}.FIELD=…)")
        return replace(node, **{head: tuple(value) if isinstance(value, list) else value})
    child = getattr(node, head)
    if child is None:
        raise ValueError(f"--set {assignment!r}: this model has no {head}")
    return replace(node, **{head: _set_path(child, path[1:], value, assignment)})
