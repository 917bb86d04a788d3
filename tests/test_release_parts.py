"""The pieces the shipped model's recipes need: loudness normalisation, audio augmentation, tuning only
the top text layers, and MELD + GoEmotions read as one corpus."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from bridge.train.augment import AudioAugment
from bridge.config import AudioConfig, BridgeConfig, TextConfig
from bridge.preprocess import MAX_GAIN_DB, Preprocessor, normalise_loudness


def _speech_like(seconds: float = 2.0, rate: int = 16_000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    envelope = (np.sin(2 * np.pi * 1.5 * t) > 0).astype(np.float32)  # bursts and pauses
    return (0.1 * envelope * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def test_loudness_normalisation_removes_the_recording_gain():
    wave = torch.from_numpy(_speech_like())
    quiet, loud = normalise_loudness(wave * 0.05, 16_000, -23), normalise_loudness(wave * 2.0, 16_000, -23)
    assert torch.allclose(quiet, loud, atol=1e-4)
    frames = loud[: len(loud) // 400 * 400].reshape(-1, 400).double().pow(2).mean(1).sort(descending=True).values
    level = 10 * torch.log10(frames[: len(frames) // 2].mean())
    assert abs(float(level) + 23) < 0.1


def test_loudness_gain_is_capped_for_near_silence():
    hiss = torch.full((16_000,), 1e-6)
    out = normalise_loudness(hiss, 16_000, -23)
    assert float(out.abs().max()) == pytest.approx(1e-6 * 10 ** (MAX_GAIN_DB / 20), rel=1e-3)


@pytest.mark.parametrize("arch", ["whisper", "ast"])
def test_preprocessing_with_loudness_ignores_the_gain(arch):
    extra = {"num_mel_bins": 80, "max_frames": 300} if arch == "whisper" else {}
    cfg = AudioConfig(arch=arch, loudness=-23, **extra)
    pre = Preprocessor(BridgeConfig(face=None, text=None, audio=cfg))
    wave = _speech_like()
    a, mask_a = pre.audio(wave * 0.1, 16_000, cfg)
    b, mask_b = pre.audio(wave * 3.0, 16_000, cfg)
    assert torch.equal(mask_a, mask_b) and torch.allclose(a, b, atol=1e-4)
    plain = AudioConfig(arch=arch, **extra)
    c, _ = pre.audio(wave * 0.1, 16_000, plain)
    d, _ = pre.audio(wave * 3.0, 16_000, plain)
    assert not torch.allclose(c, d, atol=1e-2)  # without it, the level shows in the filterbank


def test_audio_augment_gain_shifts_the_log_power_and_keeps_shapes():
    fbank, mask = torch.rand(3, 50, 8) * 0.5 + 0.5, torch.zeros(3, 50, dtype=torch.bool)
    mask[:, :40] = True
    gen = torch.Generator().manual_seed(0)
    gain_only = AudioAugment("whisper", gain_db=(6.0, 6.0), noise=0.0, tempo=(1.0, 1.0))
    out, out_mask = gain_only(fbank, mask, gen)
    assert out.shape == fbank.shape and torch.equal(out_mask, mask)
    assert torch.allclose(out[:, :40], fbank[:, :40] + 6 / 40, atol=1e-5)  # (log10 P + 4) / 4: +6 dB is +0.15
    slower = AudioAugment("whisper", gain_db=(0.0, 0.0), noise=0.0, tempo=(0.8, 0.8))
    _, stretched = slower(fbank, mask, gen)
    assert int(stretched[0].sum()) == 50  # 40 frames played at 0.8x speed fill 50
    noisy = AudioAugment("ast", gain_db=(0.0, 0.0), noise=1.0, snr_db=(0.0, 0.0), tempo=(1.0, 1.0))
    louder, _ = noisy(fbank, mask, gen)
    assert (louder[:, :40] > fbank[:, :40]).all()  # noise adds power everywhere


def test_tuning_top_text_layers_matches_the_full_forward_and_trains_only_them():
    from bridge.encoders.memo import TokenStateMemo
    from bridge.encoders.text import TextEncoder
    from bridge.freeze import freeze_encoder

    torch.manual_seed(0)
    full = freeze_encoder(TextEncoder(TextConfig(weights="minilm-l6", tokenizer="minilm-l6", freeze=True)))
    top = freeze_encoder(TextEncoder(TextConfig(weights="minilm-l6", tokenizer="minilm-l6", freeze=True,
                                                tune_layers=2))).eval()
    top.memo = TokenStateMemo(64 * 2**20)
    ids = torch.tensor([[101, 1045, 2572, 2061, 3407, 102], [101, 2023, 2003, 9643, 102, 0]])
    mask = ids != 0
    expected, _ = full(ids, mask)
    for _ in range(2):  # the second pass reads the frozen bottom layers from the memo
        got, _ = top(ids, mask)
        assert torch.allclose(got, expected, atol=1e-5)
    assert len(top.memo) == 2  # one entry per text: the bottom layers' states
    trainable = {n.split(".")[2] for n, p in top.bert.named_parameters() if p.requires_grad}
    assert trainable == {"4", "5"}  # encoder.layer.4 and .5 of six
    with pytest.raises(ValueError, match="tune_layers must be in 1..6"):
        TextEncoder(TextConfig(weights="minilm-l6", tokenizer="minilm-l6", freeze=True, tune_layers=7))


def test_loading_the_packaged_text_encoder_prints_nothing(capfd):
    from transformers.utils import logging as hf_logging

    from bridge.encoders.text import TextEncoder

    encoder = TextEncoder(TextConfig(weights="minilm-l6", tokenizer="minilm-l6", freeze=True))
    out, err = capfd.readouterr()
    assert "UNEXPECTED" not in out + err and "Loading weights" not in out + err  # the dropped pooler, the bar
    assert hf_logging.is_progress_bar_enabled()  # transformers' setting is restored after the load
    assert not any(name.startswith("pooler.") for name in encoder.bert.state_dict())


def test_meld_and_goemotions_join_split_by_split():
    from bridge.data.paths import data_root
    from bridge.data.registry import load_corpus

    if not ((data_root() / "meld").is_dir() and (data_root() / "goemotions").is_dir()):
        pytest.skip("real data absent: MELD and GoEmotions")
    for split in ("val", "test"):
        joined = load_corpus("meld+goemotions", None, split)
        parts = [load_corpus(name, None, split) for name in ("meld", "goemotions")]
        assert len(joined) == sum(len(p) for p in parts)
        assert joined.label_names == parts[0].label_names == parts[1].label_names
        assert {s.id.split("/")[0] for s in joined.stubs} == {"meld", "goemotions"}


def test_balanced_epochs_draw_every_part_equally_and_afresh():
    from bridge.dataset import balanced_indices, corpus_parts
    from bridge.preprocess import Example

    ids = [f"big/{i}" for i in range(30)] + [f"small/{i}" for i in range(10)] + ["plain"]
    parts = corpus_parts([Example({}, 0, i) for i in ids])
    assert sorted(parts) == ["", "big", "small"] and len(parts["big"]) == 30 and parts[""] == [40]
    del parts[""]
    first, again, other = (balanced_indices(parts, s) for s in (1, 1, 2))
    assert first == again and first != other  # seeded per epoch: resumable, and a fresh draw each epoch
    for draw in (first, other):
        assert len(draw) == len(set(draw)) == 20  # 10 of each part, no repeats
        assert sorted(i for i in draw if i >= 30) == list(range(30, 40))  # the smallest part whole
    assert len(set(first + other) & set(range(30))) > 10  # the large part is visited across epochs


def test_part_shares_scale_each_parts_draw_and_bad_ones_are_refused():
    from bridge.dataset import balanced_indices, parse_part_shares

    parts = {"big": list(range(30)), "small": list(range(30, 40))}
    half = balanced_indices(parts, 1, parse_part_shares(["big=0.5"], list(parts)))
    assert len([i for i in half if i < 30]) == 5 and sorted(i for i in half if i >= 30) == list(range(30, 40))
    more = balanced_indices(parts, 1, {"big": 2.0, "small": 3.0})  # at most the whole part
    assert len([i for i in more if i < 30]) == 20 and len([i for i in more if i >= 30]) == 10
    assert balanced_indices(parts, 1, {}) == balanced_indices(parts, 1)  # no shares: the equal draw
    for specs, message in ((["huge=0.5"], "no part 'huge' (its parts: big, small)"), (["big"], "expected PART=SHARE"),
                           (["big=0"], "above 0"), (["big=1", "big=2"], "names big twice")):
        with pytest.raises(ValueError, match=re.escape(message)):
            parse_part_shares(specs, list(parts))


def test_balance_parts_trains_on_a_joined_corpus_and_refuses_a_single_one(tmp_path, capsys):
    from bridge.commands.train import main
    from bridge.data.paths import data_root

    argv = ["--preset", "tiny", "--modalities", "text", "--epochs", "2", "--limit", "60", "--balance-parts",
            "--no-cache"]
    assert main(argv + ["--output", str(tmp_path / "one")]) == 2
    assert "--balance-parts needs a joined corpus" in capsys.readouterr().err
    assert main(argv[:-2] + ["--no-cache", "--part-share", "x=1", "--output", str(tmp_path / "two")]) == 2
    assert "--part-share scales --balance-parts' draw" in capsys.readouterr().err
    if not ((data_root() / "meld").is_dir() and (data_root() / "goemotions").is_dir()):
        pytest.skip("real data absent: MELD and GoEmotions")
    assert main(argv + ["--data", "meld+goemotions", "--part-share", "goemotions=0.5",
                        "--output", str(tmp_path / "joined")]) == 0
    config = json.loads((tmp_path / "joined" / "config.json").read_text())
    assert config["training"]["balance_parts"] is True and config["training"]["part_share"] == ["goemotions=0.5"]


def test_the_data_check_says_what_is_missing(tmp_path, capsys):
    from bridge.data import check

    (tmp_path / "meld").mkdir()  # present but empty: the reader's reason is reported
    assert check.main(["--data-root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert out.count("MISSING") == 5 and "0 of 5 corpora usable" in out and "docs/data.md" in out
    assert "needed for: the shipped model's text" in out  # goemotions


def test_the_data_check_counts_the_real_corpora(capsys):
    from bridge.data import check
    from bridge.data.paths import data_root

    if not (data_root() / "meld").is_dir():
        pytest.skip("real data absent")
    rows = {r["corpus"]: r for r in check.check()}
    assert rows["meld"]["ok"] and rows["meld"]["counts"]["test"] == 2610
    assert rows["ravdess"]["ok"] and rows["fer2013"]["counts"]["test"] == 7178
