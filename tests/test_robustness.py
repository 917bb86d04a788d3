"""The robustness protocols: missing-rate masks, input noise, their summaries, and
``evaluate.main`` running them on a trained checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

import evaluate
from bridge.batch import Batch
from bridge.config import AudioConfig, FaceConfig, FeatureConfig, TextConfig
from bridge.modality import Modality
from bridge.presence import drop_modalities
from bridge.eval.robustness import NoiseContext, TextVocab, area_under_curve, corrupt_batch, effective_robustness

FACE, AUDIO, TEXT = Modality.FACE, Modality.AUDIO, Modality.TEXT


def test_missing_masks_drop_rate_and_guarantees():
    n = 20000
    g = torch.Generator().manual_seed(0)
    has = {FACE: torch.rand(n, generator=g) < 0.8, AUDIO: torch.rand(n, generator=g) < 0.9,
           TEXT: torch.ones(n, dtype=torch.bool)}
    for eta in (0.0, 0.1, 0.3, 0.5, 0.7):
        kept = drop_modalities(has, eta, torch.Generator().manual_seed(1))
        available = torch.stack(list(has.values()))  # (m, n)
        left = torch.stack(list(kept.values()))
        assert not (left & ~available).any()  # never invents a modality
        assert left.any(dim=0).all()  # every sample keeps one
        # samples that keep one by chance anyway: there the drop rate is exactly Bernoulli(eta)
        safe = has[TEXT] & has[FACE] & has[AUDIO]
        drop_rate = 1 - left[:, safe].float().mean().item()
        p_all_lost = eta ** 3
        expected = eta - p_all_lost / 3  # one of the three comes back when all are lost
        assert drop_rate == pytest.approx(expected, abs=0.01)
    kept = drop_modalities(has, 0.0, g)
    assert all(torch.equal(kept[m], has[m]) for m in has)
    none = {FACE: torch.tensor([True, False]), AUDIO: torch.tensor([False, False])}
    kept = drop_modalities(none, 0.9, torch.Generator().manual_seed(0))
    assert not kept[FACE][1] and not kept[AUDIO][1]  # a sample with nothing is not given a modality


@pytest.mark.parametrize("eta", [-0.1, 1.0, 1.5])
def test_missing_masks_reject_bad_eta(eta):
    with pytest.raises(ValueError, match="outside"):
        drop_modalities({FACE: torch.ones(3, dtype=torch.bool)}, eta, torch.Generator())


def _batch(b: int = 6) -> tuple[Batch, NoiseContext, Batch, NoiseContext]:
    g = torch.Generator().manual_seed(0)
    face = torch.rand(b, 4, 1, 16, 16, generator=g) * 2 - 1
    face_mask = torch.ones(b, 4, dtype=torch.bool)
    face_mask[0, 3] = False
    audio = torch.randn(b, 50, 8, generator=g) * 0.3
    audio_mask = torch.ones(b, 50, dtype=torch.bool)
    audio_mask[1, 30:] = False
    ids = torch.zeros(b, 12, dtype=torch.long)
    for i in range(b):
        words = torch.randint(4, 100, (2 + i,), generator=g)
        ids[i, : len(words) + 2] = torch.cat([torch.tensor([1]), words, torch.tensor([2])])
    feats = torch.randn(b, 5, 3, generator=g)
    feat_mask = torch.ones(b, 5, dtype=torch.bool)
    inputs = {FACE: face, AUDIO: audio, TEXT: ids}
    masks = {FACE: face_mask, AUDIO: audio_mask, TEXT: ids != 0}
    present = {m: torch.ones(b, dtype=torch.bool) for m in inputs}
    context = NoiseContext({FACE: FaceConfig(img_size=16, num_frames=4, in_chans=1),
                            AUDIO: AudioConfig(num_mel_bins=8, max_frames=50), TEXT: TextConfig()},
                           TextVocab(100, unk=3))
    batch = Batch(inputs, masks, present, torch.zeros(b, dtype=torch.long), [str(i) for i in range(b)])
    # a feature modality: the same batch with audio served by pre-extracted features
    feature_batch = Batch({**inputs, AUDIO: feats}, {**masks, AUDIO: feat_mask}, present, batch.labels, batch.ids)
    feature_context = NoiseContext({**context.encoders, AUDIO: FeatureConfig(input_dim=3, max_steps=5)},
                                   context.vocab, {AUDIO: torch.full((3,), 2.0)})
    return batch, context, feature_batch, feature_context


def test_noise_level_zero_is_the_identity():
    batch, context, feature_batch, feature_context = _batch()
    for b, ctx in [(batch, context), (feature_batch, feature_context)]:
        out = corrupt_batch(b, 0.0, tuple(b.inputs), ctx, torch.Generator().manual_seed(0))
        for m in b.inputs:
            assert torch.equal(out.inputs[m], b.inputs[m]) and torch.equal(out.masks[m], b.masks[m])


@pytest.mark.parametrize("features", [False, True])
def test_noise_changes_inputs_reproducibly_and_keeps_masks_consistent(features):
    batch, context, feature_batch, feature_context = _batch()
    if features:
        batch, context = feature_batch, feature_context
    mods = tuple(batch.inputs)
    a = corrupt_batch(batch, 0.6, mods, context, torch.Generator().manual_seed(3))
    b = corrupt_batch(batch, 0.6, mods, context, torch.Generator().manual_seed(3))
    c = corrupt_batch(batch, 0.6, mods, context, torch.Generator().manual_seed(4))
    for m in mods:
        assert torch.equal(a.inputs[m], b.inputs[m]) and torch.equal(a.masks[m], b.masks[m])
        assert not torch.equal(a.inputs[m], batch.inputs[m])
        assert a.masks[m].any(dim=1).all()  # one frame, step or token always left
        assert not (a.masks[m] & ~batch.masks[m]).any()  # frames, steps and words are only ever removed
        assert torch.isfinite(a.inputs[m].float()).all()
    assert any(not torch.equal(a.inputs[m], c.inputs[m]) for m in mods)
    text, mask = a.inputs[TEXT], a.masks[TEXT]
    assert torch.equal(mask, text != 0)  # padding exactly where the mask is off
    assert (text[:, 0] == 1).all() and ((text == 2).sum(dim=1) == 1).all()  # [CLS] and [SEP] kept
    only_face = corrupt_batch(batch, 0.6, (FACE,), context, torch.Generator().manual_seed(3))
    assert all(only_face.inputs[m] is batch.inputs[m] for m in mods if m != FACE)
    with pytest.raises(ValueError, match="outside"):
        corrupt_batch(batch, 1.2, mods, context, torch.Generator())


def test_area_under_curve_by_hand():
    assert area_under_curve([0, 0.5, 1], [1.0, 0.5, 0.0]) == pytest.approx(0.5)
    # (0.8 + 0.6) / 2 * 0.1 + (0.6 + 0.2) / 2 * 0.2 = 0.07 + 0.08 = 0.15, over a range of 0.3
    assert area_under_curve([0, 0.1, 0.3], [0.8, 0.6, 0.2]) == pytest.approx(0.5)
    assert area_under_curve([0.2, 0.9], [0.7, 0.7]) == pytest.approx(0.7)
    with pytest.raises(ValueError):
        area_under_curve([0.0], [1.0])


def test_effective_robustness_by_hand():
    # baseline shifted to start at 0.9: [0.9, 0.7, 0.5]; model minus it: [0, 0.1, 0.2] -> 0.3
    assert effective_robustness([0.9, 0.8, 0.7], [0.8, 0.6, 0.4]) == pytest.approx(0.3)
    assert effective_robustness([0.5, 0.1], [0.9, 0.8]) == pytest.approx(-0.3)
    with pytest.raises(ValueError):
        effective_robustness([0.9, 0.8], [0.9])


def test_evaluate_robustness_protocols(trained_checkpoint, tmp_path, capsys):
    out = tmp_path / "report"
    argv = ["--checkpoint", str(trained_checkpoint), "--limit", "40", "--output", str(out), "--protocols",
            "missing,noise", "--etas", "0,0.5", "--noise-levels", "0,0.8", "--seeds", "2"]
    assert evaluate.main(argv) == 0
    report = json.loads((out / "results.json").read_text())
    assert report["protocols"] == ["missing", "noise"] and report["results"] == {}
    missing, noise = report["robustness"]["missing"], report["robustness"]["noise"]
    assert missing["levels"] == [0, 0.5] and missing["seeds"] == 2
    for by_fill in [missing["results"], *noise["results"].values()]:
        assert set(by_fill) == {"reconstruct", "zero"}
        for curves in by_fill.values():
            assert set(curves) == {"accuracy", "macro_f1", "weighted_f1", "uar"}
            for c in curves.values():
                assert len(c["mean"]) == len(c["std"]) == 2 and 0 <= c["auc"]["mean"] <= 1
                assert all(0 <= v <= 1 for v in c["mean"])
    assert missing["results"]["reconstruct"]["accuracy"]["std"][0] == 0  # η = 0 is the same for every seed
    assert set(noise["results"]) == {"face", "audio", "text", "all"}
    clean = noise["results"]["all"]["reconstruct"]["accuracy"]["mean"][0]
    assert missing["results"]["reconstruct"]["accuracy"]["mean"][0] == pytest.approx(clean)
    assert (out / "missing.png").stat().st_size > 1000 and (out / "noise.png").stat().st_size > 1000
    md = (out / "results.md").read_text()
    assert "missing rate" in md and "noise on text" in md and "AUC" in md
    # reproducible by seed
    again = tmp_path / "again"
    assert evaluate.main(argv[:4] + ["--output", str(again)] + argv[6:]) == 0
    assert json.loads((again / "results.json").read_text())["robustness"] == report["robustness"]


@pytest.mark.parametrize("option, message", [
    (["--etas", "0,1"], "missing rate 1 is outside [0, 1)"),
    (["--etas", "-0.2"], "outside [0, 1)"),
    (["--noise-levels", "0.5,1.5"], "noise level 1.5 is outside [0, 1]"),
    (["--protocols", "missing,telepathy"], "unknown protocol telepathy"),
    (["--etas", "half"], "comma-separated numbers"),
    (["--modalities", "smell"], "unknown modality smell"),
])
def test_evaluate_bad_robustness_arguments(trained_checkpoint, tmp_path, capsys, option, message):
    out = tmp_path / "bad"
    assert evaluate.main(["--checkpoint", str(trained_checkpoint), "--output", str(out), *option]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_evaluate_a_subset_of_modalities(trained_checkpoint, tmp_path):
    out = tmp_path / "text-only"
    argv = ["--checkpoint", str(trained_checkpoint), "--limit", "24", "--output", str(out),
            "--modalities", "text,audio",
            "--etas", "0,0.5", "--noise-levels", "0,0.5", "--seeds", "1"]
    assert evaluate.main(argv) == 0
    report = json.loads((out / "results.json").read_text())
    assert report["modalities"] == ["audio", "text"]
    assert set(report["results"]) == {"audio", "text", "audio+text"}
    assert set(report["robustness"]["noise"]["results"]) == {"audio", "text", "all"}


def test_evaluated_modalities_must_be_in_the_checkpoint_and_the_corpus():
    from evaluate import evaluated_modalities

    assert evaluated_modalities(None, (FACE, AUDIO, TEXT), {FACE: "raw", AUDIO: "raw", TEXT: "raw"}, "x") == (
        FACE, AUDIO, TEXT)
    with pytest.raises(ValueError, match=r"^the checkpoint has no face \(it has text\)$"):
        evaluated_modalities("face,text", (TEXT,), {FACE: "raw", TEXT: "raw"}, "x")
    with pytest.raises(ValueError, match=r"^meld has no face, audio \(it has text\); evaluate the rest with "
                                         r"--modalities text$"):
        evaluated_modalities(None, (FACE, AUDIO, TEXT), {TEXT: "raw"}, "meld")
