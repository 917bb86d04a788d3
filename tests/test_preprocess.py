"""Preprocessing is shared by training and inference: shapes, crops, masks and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bridge.config import FeatureConfig, create_config
from bridge.data.sample import Sample
from bridge.modality import Modality
from bridge.preprocess import Preprocessor, collate
from bridge.tokenizer import HashTokenizer


@pytest.fixture(scope="module")
def pre():
    return Preprocessor(create_config("tiny"))


def test_audio_filterbank_pads_and_centre_crops(pre):
    cfg = pre.config.audio
    short, mask = pre.audio(np.zeros(8000, np.float32), 16000, cfg)  # 0.5 s
    assert short.shape == (cfg.max_frames, cfg.num_mel_bins)
    assert 45 <= mask.sum() <= 50 and not mask[60:].any() and (short[~mask] == 0).all()
    rng = np.random.default_rng(0)
    long = rng.standard_normal(16000 * 5).astype(np.float32) * 0.1
    long[: 16000 * 2] = 0  # the centre crop must skip most of this silence
    x, mask = pre.audio(long, 16000, cfg)
    assert mask.all() and x.shape == (cfg.max_frames, cfg.num_mel_bins)
    assert x[-50:].mean() > x[:5].mean()


def test_audio_is_resampled(pre):
    cfg = pre.config.audio
    t = np.arange(48000) / 48000
    x48, m48 = pre.audio(np.sin(2 * np.pi * 440 * t).astype(np.float32), 48000, cfg)
    t16 = np.arange(16000) / 16000
    x16, m16 = pre.audio(np.sin(2 * np.pi * 440 * t16).astype(np.float32), 16000, cfg)
    assert m48.sum() == m16.sum()
    assert torch.allclose(x48[m48].mean(0), x16[m16].mean(0), atol=0.05)


def test_audio_rejects_bad_waveforms(pre):
    with pytest.raises(ValueError, match="NaN"):
        pre.audio(np.array([0.0, np.nan] * 1000, np.float32), 16000, pre.config.audio)
    with pytest.raises(ValueError, match="mono"):
        pre.audio(np.zeros((2, 1000), np.float32), 16000, pre.config.audio)


def test_face_handles_gray_rgb_sizes_and_frames(pre):
    cfg = pre.config.face
    x, m = pre.face(np.full((96, 96), 255, np.uint8), cfg)  # one gray image, bigger than the crop size
    assert x.shape == (1, 1, 48, 48) and m.all() and torch.allclose(x, torch.ones_like(x))
    x, _ = pre.face(np.zeros((30, 30, 3), np.uint8), cfg)  # one RGB image
    assert x.shape == (1, 1, 48, 48) and torch.allclose(x, -torch.ones_like(x))
    x, m = pre.face(np.zeros((10, 48, 48), np.uint8), cfg)  # a 10-frame track sampled down
    assert x.shape == (cfg.num_frames, 1, 48, 48) and len(m) == cfg.num_frames
    with pytest.raises(ValueError, match="face crops"):
        pre.face(np.zeros((0, 48, 48), np.uint8), cfg)


def test_hash_tokenizer_is_deterministic_and_bounded():
    tok = HashTokenizer(vocab_size=100, max_length=8)
    ids, mask = tok.encode("I can't believe it, it's GREAT great!")
    again, _ = HashTokenizer(100, 8).encode("i can't believe it, it's great great!")
    assert (ids == again).all() and ids[0] == 1 and mask.sum() == 8 and ids.max() < 100
    assert ids[-1] == 2  # truncated to max_length, ending with [SEP]


def test_empty_text_is_an_error(pre):
    with pytest.raises(ValueError, match="text is empty"):
        pre.text("  \n")


def test_features_pad_and_check():
    pre = Preprocessor(create_config("tiny", face=None, text=None, audio=FeatureConfig(input_dim=3, max_steps=4)))
    cfg = pre.config.audio
    x, m = pre.features(np.ones(3), cfg)
    assert x.shape == (4, 3) and m.tolist() == [True, False, False, False]
    with pytest.raises(ValueError, match=r"\(steps, 3\)"):
        pre.features(np.ones((2, 5)), cfg)
    with pytest.raises(ValueError, match="NaN or infinite"):
        pre.features(np.array([1.0, np.inf, 0.0]), cfg)


def test_collate_marks_absent_modalities(pre):
    rng = np.random.default_rng(0)
    a = Sample("a", 1, face=rng.integers(0, 255, (1, 48, 48), dtype=np.uint8), text="hello there")
    b = Sample("b", 2, audio=rng.standard_normal(16000).astype(np.float32) * 0.1, text="oh no")
    batch = collate([pre(a), pre(b)])
    assert batch.present[Modality.FACE].tolist() == [True, False]
    assert batch.present[Modality.AUDIO].tolist() == [False, True]
    assert batch.present[Modality.TEXT].tolist() == [True, True]
    assert not batch.masks[Modality.FACE][1].any() and (batch.inputs[Modality.FACE][1] == 0).all()
    assert batch.labels.tolist() == [1, 2] and batch.ids == ["a", "b"]
    only_text = collate([pre(Sample("c", 0, text="fine"))])
    assert set(only_text.inputs) == {Modality.TEXT}
