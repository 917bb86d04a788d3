"""The tiny preset end to end at the tensor level: every modality subset forward and backward,
translators that learn, and checkpoints that round-trip exactly."""

from __future__ import annotations

import itertools

import pytest
import torch

from bridge import BridgeModel, CheckpointError, Modality, create_config, create_model
from bridge.eval.protocols import subsets
from bridge.train.losses import BridgeLoss
from bridge.modality import ALL_MODALITIES
from bridge.preprocess import Preprocessor, collate
from bridge.presence import drop_modalities

SUBSETS = subsets(ALL_MODALITIES)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("tiny")


@pytest.fixture(scope="module")
def batch(model, synthetic_samples):
    pre = Preprocessor(model.config)
    return collate([pre(synthetic_samples[i]) for i in range(8)])


def test_tiny_preset_is_small(model):
    text = sum(p.numel() for p in model.encoders["text"].parameters())
    total = sum(p.numel() for p in model.parameters())
    assert total - text <= 2_000_000


@pytest.mark.parametrize("subset", SUBSETS, ids=lambda s: "+".join(m.value for m in s))
def test_forward_backward_every_subset(model, batch, subset):
    model.train()
    model.zero_grad(set_to_none=True)
    b = batch.select(subset)
    out = model(b)
    assert out.logits.shape == (len(batch), 7)
    assert torch.isfinite(out.logits).all()
    assert set(out.latents) == set(subset)
    for m in ALL_MODALITIES:
        assert out.reconstructions[m].shape == (len(batch), model.config.latent_tokens, model.config.dim)
    terms = BridgeLoss(model.config)(out, b)
    assert all(torch.isfinite(v) for v in terms.values())
    assert ("translation" in terms) == (len(subset) > 1)
    terms["loss"].backward()

    def should_learn(name: str) -> bool:
        part = name.split(".")
        if part[0] in ("encoders", "summarisers"):
            return Modality(part[1]) in subset
        if part[0] == "translators":
            return Modality(part[1].split("_to_")[0]) in subset
        return True

    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if should_learn(name):
            assert p.grad is not None and torch.isfinite(p.grad).all(), f"{name} got no gradient"
            assert p.grad.abs().sum() > 0, f"{name} got a zero gradient"
        else:
            assert p.grad is None or p.grad.abs().sum() == 0, f"{name} learned from an absent modality"


def test_mixed_patterns_in_one_batch(model, batch):
    """Per-sample absence: each sample reconstructs only what it lacks."""
    model.eval()
    present = {m: torch.ones(len(batch), dtype=torch.bool) for m in ALL_MODALITIES}
    present[Modality.AUDIO][:4] = False
    present[Modality.TEXT][4:] = False
    with torch.no_grad():
        mixed = model(batch, present=present).logits
        a = model(batch, present={**present, Modality.TEXT: torch.ones(len(batch), dtype=torch.bool)}).logits
        c = model(batch, present={**present, Modality.AUDIO: torch.ones(len(batch), dtype=torch.bool)}).logits
    torch.testing.assert_close(mixed[:4], a[:4])  # first half: only audio missing
    torch.testing.assert_close(mixed[4:], c[4:])  # second half: only text missing
    assert not torch.allclose(mixed, model(batch).logits)


def test_missing_everything_is_an_error(model, batch):
    present = {m: torch.zeros(len(batch), dtype=torch.bool) for m in ALL_MODALITIES}
    present[Modality.FACE][1:] = True
    with pytest.raises(ValueError, match="at least one"):
        model(batch, present=present)


def test_reconstruction_differs_from_zero_fill(model, batch):
    model.eval()
    b = batch.select((Modality.FACE,))
    with torch.no_grad():
        assert not torch.allclose(model(b, fill="reconstruct").logits, model(b, fill="zero").logits)


def test_modality_dropout_keeps_one_and_hits_rate():
    gen = torch.Generator().manual_seed(0)
    present = {m: torch.ones(20000, dtype=torch.bool) for m in ALL_MODALITIES}
    present[Modality.TEXT][:10000] = False
    kept = drop_modalities(present, 0.4, gen)
    stacked = torch.stack(list(kept.values()))
    assert stacked.any(dim=0).all()
    assert not kept[Modality.TEXT][:10000].any()  # never invents a modality
    rate = 1 - kept[Modality.FACE][10000:].float().mean().item()
    assert 0.35 < rate < 0.42  # 0.4, a little less where a sample would have lost all


def test_translator_learns_on_held_out(synthetic_samples):
    """A translator trained briefly (encoders fixed) lowers its reconstruction loss on held-out data."""
    from bridge.data.synthetic import SyntheticEmotions
    from bridge.train.losses import latent_distance
    from bridge.model import pair_key

    torch.manual_seed(0)
    model = create_model("tiny")
    pre = Preprocessor(model.config)
    train = SyntheticEmotions(256, "train", seed=1)
    held = collate([pre(s) for s in SyntheticEmotions(64, "val", seed=1)])
    batches = [collate([pre(train[i]) for i in range(j, j + 32)]) for j in range(0, 256, 32)]
    model.eval()  # encoders fixed: the test isolates the translators
    with torch.no_grad():
        latents = [model.encode(b).latents for b in batches]
        held_latents = model.encode(held).latents
    key = pair_key(Modality.AUDIO, Modality.FACE)
    translator = model.translators[key]

    def held_loss() -> float:
        with torch.no_grad():
            return latent_distance(translator(held_latents[Modality.AUDIO]), held_latents[Modality.FACE], "mse").mean().item()

    before = held_loss()
    opt = torch.optim.AdamW(translator.parameters(), lr=3e-3)
    translator.train()
    for _, lat in zip(range(150), itertools.cycle(latents)):
        loss = latent_distance(translator(lat[Modality.AUDIO]), lat[Modality.FACE], "mse").mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    translator.eval()
    after = held_loss()
    assert after < 0.5 * before


def test_checkpoint_round_trip_is_exact(tmp_path, model, batch):
    model.eval()
    model.save_pretrained(tmp_path / "ck")
    assert (tmp_path / "ck" / "model.safetensors").is_file()
    loaded = BridgeModel.from_pretrained(tmp_path / "ck")
    assert loaded.config == model.config
    with torch.no_grad():
        for subset in SUBSETS:
            assert torch.equal(model(batch.select(subset)).logits, loaded(batch.select(subset)).logits)


def test_test_views_average_each_face_over_its_views_out_of_training(tmp_path, model, batch):
    import dataclasses

    from bridge.checkpoint import read_meta
    from bridge.config import FeatureConfig
    from bridge.views import checkpoint_views, face_views, require_face_views

    def encode_face(faces):
        return model.encode(dataclasses.replace(batch, inputs={**batch.inputs, Modality.FACE: faces})).latents

    faces = batch.inputs[Modality.FACE]
    model.eval()
    with torch.no_grad():
        plain, flipped = model.encode(batch).latents, encode_face(faces.flip(-1))
        averaged = model.encode(batch, views="mirror").latents
        assert torch.allclose(averaged[Modality.FACE], (plain[Modality.FACE] + flipped[Modality.FACE]) / 2, atol=1e-5)
        assert not torch.allclose(averaged[Modality.FACE], plain[Modality.FACE], atol=1e-4)
        assert all(torch.equal(averaged[m], plain[m]) for m in (Modality.AUDIO, Modality.TEXT))
        cropped = model.encode(batch, views="crops").latents
        each = torch.stack([encode_face(v)[Modality.FACE] for v in face_views(faces, "crops")])
        assert torch.allclose(cropped[Modality.FACE], each.mean(0), atol=1e-5)
        one_by_one = model._encode_views(face_views(faces, "crops"), batch.masks[Modality.FACE], per_call=1)
        assert torch.allclose(one_by_one, cropped[Modality.FACE], atol=1e-5)  # large batches: a view per call
        assert not torch.allclose(cropped[Modality.FACE], averaged[Modality.FACE], atol=1e-4)
        assert all(torch.equal(cropped[m], plain[m]) for m in (Modality.AUDIO, Modality.TEXT))
        assert torch.equal(model.encode(batch, views="single").latents[Modality.FACE], plain[Modality.FACE])
        model.train()  # training sees single crops: its augmentation flips and warps at random instead
        for views in ("mirror", "crops"):
            torch.manual_seed(1)
            trained_view = model.encode(batch, views=views).latents[Modality.FACE]
            torch.manual_seed(1)
            assert torch.equal(trained_view, model.encode(batch).latents[Modality.FACE])
    model.eval()
    model.save_pretrained(tmp_path / "ck", extra={"inference": {"test_views": "crops"}})  # the checkpoint carries it
    assert checkpoint_views(read_meta(tmp_path / "ck")) == "crops"
    assert "test_views" not in read_meta(tmp_path / "ck")["model"]["face"]
    with pytest.raises(ValueError, match="unknown test-time views 'flip'"):
        model.encode(batch, views="flip")
    features = BridgeModel(create_config("tiny", face=FeatureConfig(input_dim=8), audio=None, text=None))
    with pytest.raises(ValueError, match="face encoder"):
        features.encode(batch, views="mirror")
    require_face_views(features.config, "single")  # single views need no raw faces


def test_face_views_are_the_mirror_and_five_zoomed_crops_inside_the_face():
    from bridge.views import CROP_ZOOM, face_views

    h, w = 12, 16
    ramp_x = torch.arange(w, dtype=torch.float32).expand(h, w)  # the value is the column
    ramp_y = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)  # the value is the row
    faces = torch.stack([ramp_x, ramp_y]).expand(2, 3, 2, h, w).contiguous()  # (b, frames, c, h, w)
    for name, count in {"single": 1, "mirror": 2, "crops": 10}.items():  # face encodings per frame
        views = face_views(faces, name)
        assert len(views) == count and all(v.shape == faces.shape for v in views)
    assert torch.equal(face_views(faces, "single")[0], faces)
    assert torch.equal(face_views(faces, "mirror")[1], faces.flip(-1))
    crops = face_views(faces, "crops")
    assert all(torch.equal(crops[i + 1], crops[i].flip(-1)) for i in range(0, 10, 2))  # each crop and its mirror
    centre, top_left, top_right, bottom_left, bottom_right = crops[::2]
    # a crop sees 1/CROP_ZOOM of each side: a linear ramp is resampled exactly, and stays inside the face
    for crop in crops:
        assert crop[..., 0, :, :].min() >= 0 and crop[..., 0, :, :].max() <= w - 1
        assert crop[..., 1, :, :].min() >= 0 and crop[..., 1, :, :].max() <= h - 1
    span = centre[0, 0, 0, 0, -1] - centre[0, 0, 0, 0, 0]
    assert span == pytest.approx((w - 1) / CROP_ZOOM, abs=1e-4)  # zoomed in by CROP_ZOOM
    assert centre[..., 0, :, :].mean() == pytest.approx((w - 1) / 2, abs=1e-4)  # centred
    assert top_left[0, 0, 0, 0, 0] == pytest.approx(0.0, abs=1e-4)
    assert top_left[0, 0, 1, 0, 0] == pytest.approx(0.0, abs=1e-4)
    assert bottom_right[0, 0, 0, -1, -1] == pytest.approx(w - 1, abs=1e-4)
    assert bottom_right[0, 0, 1, -1, -1] == pytest.approx(h - 1, abs=1e-4)
    assert top_right[0, 0, 0, 0, -1] == pytest.approx(w - 1, abs=1e-4)
    assert bottom_left[0, 0, 1, -1, 0] == pytest.approx(h - 1, abs=1e-4)


def test_bad_checkpoints_fail_clearly(tmp_path, model):
    with pytest.raises(CheckpointError, match="does not exist"):
        BridgeModel.from_pretrained(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        BridgeModel.from_pretrained(tmp_path / "empty")
    model.save_pretrained(tmp_path / "ck")
    weights = tmp_path / "ck" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="cannot be loaded"):
        BridgeModel.from_pretrained(tmp_path / "ck")
    (tmp_path / "ck" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        BridgeModel.from_pretrained(tmp_path / "ck")


def test_checkpoint_config_mismatch(tmp_path, model):
    model.save_pretrained(tmp_path / "ck")
    other = BridgeModel(create_config("tiny", dim=32, heads=4))
    other.save_pretrained(tmp_path / "other")
    (tmp_path / "ck" / "model.safetensors").write_bytes((tmp_path / "other" / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError):
        BridgeModel.from_pretrained(tmp_path / "ck")


def test_unimodal_terms_train_their_heads_and_encoders(model, batch):
    model.train()
    model.zero_grad(set_to_none=True)
    loss = BridgeLoss(model.config, unimodal_weight=0.5)
    b = batch.select((Modality.FACE, Modality.TEXT))
    terms = loss(model(b), b)
    assert {"unimodal/face", "unimodal/text", "unimodal"} <= set(terms) and "unimodal/audio" not in terms
    terms["unimodal"].backward()
    assert loss.unimodal_heads["face"].weight.grad.abs().sum() > 0
    assert loss.unimodal_heads["audio"].weight.grad is None
    assert model.encoders["face"].vit.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert not any(k.startswith("unimodal") for k in model.state_dict())  # training-only: never in checkpoints


def test_frozen_text_encoder_memo_matches_a_fresh_forward():
    from bridge.config import TextConfig
    from bridge.encoders.memo import TokenStateMemo
    from bridge.encoders.text import TextEncoder
    from bridge.freeze import freeze

    torch.manual_seed(0)
    MEMO = TokenStateMemo(2**26)  # noqa: N806 (one memo shared by the encoders below)

    def frozen(encoder):
        encoder.memo = MEMO
        return freeze(encoder)

    encoder = frozen(TextEncoder(TextConfig(freeze=True, max_length=16)))
    ids = torch.randint(5, 100, (4, 16))
    mask = torch.arange(16)[None] < torch.tensor([[3], [7], [5], [2]])
    ids = ids.masked_fill(~mask, 0)
    with torch.inference_mode():
        fresh = encoder._encode(ids[:, :7], mask[:, :7])
        evaluated, evaluated_mask = encoder(ids, mask)
    assert evaluated.shape == (4, 7, encoder.out_dim) and evaluated_mask.shape == (4, 7)  # unused padding cut
    assert len(MEMO) == 4
    calls = []
    encoder.bert.register_forward_hook(lambda *a: calls.append(1))
    twin = frozen(TextEncoder(TextConfig(freeze=True, max_length=16)))
    twin.load_state_dict(encoder.state_dict())  # the same weights in another model: its memo entries serve
    again, _ = twin.train()(ids[[2, 0]], mask[[2, 0]])
    twin.bert.register_forward_hook(lambda *a: calls.append(1))
    torch.testing.assert_close(evaluated, fresh, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(again, fresh[[2, 0], :5], atol=1e-5, rtol=1e-5)
    assert not calls and (evaluated[~mask[:, :7]] == 0).all()
    other = frozen(TextEncoder(TextConfig(freeze=True, max_length=16)))  # other weights: encoded afresh
    with torch.no_grad():
        other(ids, mask)
    assert len(MEMO) == 8
    encoder.memo = None
    with torch.no_grad():
        encoder(ids[:1] + 1, mask[:1])  # without a memo: nothing kept
    assert len(MEMO) == 8


def test_cnn_face_stem_makes_the_token_grid_and_round_trips_with_its_batch_norm(tmp_path, synthetic_samples):
    from dataclasses import replace

    from bridge.config import override
    from bridge.encoders.face import FaceEncoder

    config = override(create_config("tiny"), ["face.stem=cnn", "face.patch_size=8", "face.img_size=48"])
    encoder = FaceEncoder(config.face)
    tokens, mask = encoder(torch.randn(2, 3, 1, 48, 48), torch.ones(2, 3, dtype=torch.bool))
    assert tokens.shape == (2, 3 * (1 + 6 * 6), encoder.out_dim) and mask.shape == (2, 3 * 37)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in encoder.modules())
    with pytest.raises(ValueError, match="power-of-two patch_size"):
        FaceEncoder(replace(config.face, patch_size=6))

    torch.manual_seed(0)
    model = BridgeModel(config)
    pre = Preprocessor(config)
    batch = collate([pre(synthetic_samples[i]) for i in range(6)])
    model.train()
    model(batch)  # moves the batch-norm running statistics away from their initial values
    model.eval()
    model.save_pretrained(tmp_path / "ck")
    loaded = BridgeModel.from_pretrained(tmp_path / "ck")
    with torch.no_grad():
        assert torch.equal(model(batch).logits, loaded(batch).logits)
    for m in (model, loaded):  # the stem stays channels-last (it is faster on CPU) through saving and loading
        stem = m.encoders["face"].vit.patch_embed.proj
        assert all(c.weight.is_contiguous(memory_format=torch.channels_last)
                   for c in stem.modules() if isinstance(c, torch.nn.Conv2d))
    contiguous = BridgeModel.from_pretrained(tmp_path / "ck")
    contiguous.encoders["face"].vit.patch_embed.proj.to(memory_format=torch.contiguous_format)
    with torch.no_grad():  # the layout changes the order of float sums, not the result
        torch.testing.assert_close(contiguous(batch).logits, loaded(batch).logits, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("stem", ["conv", "cnn"])
def test_frozen_face_encoder_keeps_its_weights_and_statistics_and_memoises(stem):
    from dataclasses import replace

    from bridge.encoders.memo import TokenStateMemo
    from bridge.freeze import memoise_frozen, train_mode

    torch.manual_seed(0)
    config = create_config("tiny", audio=None, text=None)
    model = BridgeModel(replace(config, face=replace(config.face, stem=stem, freeze=True)))
    MEMO = TokenStateMemo(2**26)  # noqa: N806
    memoise_frozen(model, MEMO)
    train_mode(model)  # what the trainer calls: the rest trains, the frozen encoder stays in eval mode
    encoder = model.encoders["face"]
    assert model.fusion.training
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    frames, mask = torch.randn(3, 4, 1, 48, 48), torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]).bool()
    tokens, token_mask = encoder(frames, mask)
    assert not any(p.requires_grad for p in encoder.parameters()) and not encoder.training
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())  # batch norm included
    assert len(MEMO) == 3
    fresh, fresh_mask = encoder._encode(frames, mask)
    torch.testing.assert_close(tokens, fresh, atol=1e-5, rtol=1e-5)
    assert torch.equal(token_mask, fresh_mask)
    calls = []
    encoder.vit.register_forward_hook(lambda *a: calls.append(1))
    again, _ = encoder(frames[[2, 0]], mask[[2, 0]])  # other batches, other order: served from the memo
    assert not calls and torch.equal(again, tokens[[2, 0]])


def test_frozen_whisper_encoder_memo_matches_a_fresh_forward():
    from bridge.config import AudioConfig
    from bridge.encoders.memo import TokenStateMemo
    from bridge.encoders.whisper import WhisperAudioEncoder
    from bridge.freeze import freeze

    torch.manual_seed(0)
    encoder = freeze(WhisperAudioEncoder(AudioConfig(arch="whisper", num_mel_bins=80, max_frames=100, hidden_size=64,
                                                     num_heads=2, num_layers=1, intermediate_size=128, freeze=True)))
    fbank, mask = torch.randn(2, 100, 80), torch.arange(100)[None] < torch.tensor([[60], [100]])
    MEMO = TokenStateMemo(2**26)  # noqa: N806
    encoder.memo = MEMO
    states, state_mask = encoder(fbank, mask)
    fresh, fresh_mask = encoder._encode(fbank, mask)
    torch.testing.assert_close(states, fresh, atol=1e-5, rtol=1e-5)
    assert torch.equal(state_mask, fresh_mask) and state_mask.shape == (2, 50) and len(MEMO) == 2
    twin = freeze(WhisperAudioEncoder(encoder.config, load_weights=False))
    twin.memo = MEMO
    state = encoder.state_dict()
    state["whisper.conv1.weight"] = state["whisper.conv1.weight"] * 2
    twin.load_state_dict(state)  # other weights: another fingerprint, so encoded afresh
    twin(fbank, mask)
    assert len(MEMO) == 4
