"""The one classifier contract (encode once, score the head under any presence), the presence
helper, the loss reading only the model's output, checkpoints from before the contract, and a
trainer that leaves process-wide state alone."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from bridge import Classifier, Modality, create_config
from bridge.baselines.late_fusion import LateFusion
from bridge.checkpoint import read_meta
from bridge.config import with_modalities
from bridge.ensemble import Ensemble
from bridge.train.losses import BridgeLoss
from bridge.model import BridgeModel, load_checkpoint
from bridge.inference.predictor import Predictor
from bridge.preprocess import Preprocessor, collate
from bridge.presence import complete_presence
from bridge.views import checkpoint_views

FACE, AUDIO, TEXT = Modality.FACE, Modality.AUDIO, Modality.TEXT


def _model(seed: int, **overrides) -> BridgeModel:
    torch.manual_seed(seed)
    return BridgeModel(create_config("tiny", **overrides)).eval()


@pytest.fixture(scope="module")
def batch(synthetic_samples):
    pre = Preprocessor(create_config("tiny"))
    return collate([pre(synthetic_samples[i]) for i in range(6)])


def test_complete_presence_fills_absent_modalities_with_false():
    present = {AUDIO: torch.tensor([True, False]), TEXT: torch.tensor([True, True])}
    full = complete_presence(present, (FACE, AUDIO), 2, "cpu")
    assert list(full) == [FACE, AUDIO]  # the given order; text is not one of them
    assert not full[FACE].any() and full[FACE].dtype == torch.bool and full[AUDIO] is present[AUDIO]


def test_model_ensemble_and_late_fusion_keep_one_contract(batch):
    model = _model(0)
    unimodal = [_model(i, **{m.value: None for m in (FACE, AUDIO, TEXT) if m != keep})
                for i, keep in enumerate((FACE, AUDIO, TEXT))]
    for classifier in (model, Ensemble([model, _model(1)]), LateFusion(unimodal).eval()):
        assert isinstance(classifier, Classifier)
        with torch.no_grad():
            encoded = classifier.encode(batch)
            only_text = {TEXT: batch.present[TEXT]}  # face and audio missing: reconstructed (or left out)
            logits = classifier.head(encoded, only_text)
            assert logits.shape == (len(batch), 7) and torch.isfinite(logits).all()
            alone = classifier.head(classifier.encode(batch.select((TEXT,))), only_text)
            torch.testing.assert_close(logits, alone)  # unobserved inputs do not leak into the head
            first = _first(batch.select((FACE, TEXT)))
            one = classifier.encode(first)
            seen = {FACE: torch.ones(3, dtype=torch.bool), TEXT: torch.tensor([True, False, True])}
            repeated = classifier.head(one.expand(3), seen)  # a single sample's encoding, repeated
            torch.testing.assert_close(repeated[0], classifier.head(one, {FACE: seen[FACE][:1], TEXT: seen[TEXT][:1]})[0])
            torch.testing.assert_close(repeated[1], classifier.head(one, {FACE: seen[FACE][:1]})[0])
            assert not torch.allclose(repeated[0], repeated[1])


def _first(batch):
    """The batch's first sample alone."""
    take = lambda d: {m: t[:1] for m, t in d.items()}  # noqa: E731
    return type(batch)(take(batch.inputs), take(batch.masks), take(batch.present), batch.labels[:1], batch.ids[:1])


def test_head_of_an_encoding_is_the_forward_pass(batch):
    model = _model(0)
    present = {m: torch.rand(len(batch), generator=torch.Generator().manual_seed(i)) < 0.6
               for i, m in enumerate(model.modalities)}
    present[TEXT] |= ~(present[FACE] | present[AUDIO])  # every sample keeps one
    with torch.no_grad():
        for fill in ("reconstruct", "zero"):
            torch.testing.assert_close(model.head(model.encode(batch), present, fill),
                                       model(batch, present=present, fill=fill).logits)


def test_merging_encodings_replaces_a_modality_and_its_translations(batch):
    model = _model(0)
    noisy = dict(batch.inputs)
    noisy[AUDIO] = batch.inputs[AUDIO] + 0.5
    with torch.no_grad():
        clean = model.encode(batch)
        swapped = model.encode(type(batch)(noisy, batch.masks, batch.present, batch.labels, batch.ids))
        merged = clean.merge(model.encode(type(batch)({AUDIO: noisy[AUDIO]}, {AUDIO: batch.masks[AUDIO]},
                                                      {AUDIO: batch.present[AUDIO]})))
    assert set(merged.translations) == set(clean.translations)
    for key in merged.translations:
        expected = swapped if key.startswith("audio_to_") else clean
        torch.testing.assert_close(merged.translations[key], expected.translations[key])
    torch.testing.assert_close(merged.latents[AUDIO], swapped.latents[AUDIO])
    assert not torch.allclose(merged.latents[AUDIO], clean.latents[AUDIO])


def test_cycle_terms_come_from_the_forward_output(batch):
    model = _model(0).train()
    loss = BridgeLoss(model.config, cycle_weight=0.5)
    b = batch.select((FACE, TEXT))
    out = model(b, cycle=True)
    assert set(out.cycles) == {"face_to_text", "text_to_face"}
    terms = loss(out, b)
    assert terms["cycle"] > 0 and {"cycle/face_to_text", "cycle/text_to_face"} <= set(terms)
    terms["cycle"].backward()
    back = model.translators["text_to_face"]  # face -> text -> face learns through the text-to-face translator
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in back.parameters())
    with pytest.raises(ValueError, match="cycle=True"):
        loss(model(b), b)
    assert "cycle" not in BridgeLoss(model.config)(model(b), b)  # weight 0: no cycle terms


def test_checkpoints_from_before_the_contract_and_test_views_load_and_keep_their_mirror(tmp_path, batch):
    model = _model(0)
    model.save_pretrained(tmp_path / "ck")
    path = tmp_path / "ck" / "config.json"
    meta = json.loads(path.read_text())
    meta["model"]["face"]["test_flip"] = True  # what older checkpoints wrote into the model config
    meta["model"]["translator"].update({"loss": "cosine", "weight": 0.5, "cycle_weight": 0.1})
    path.write_text(json.dumps(meta))
    loaded, migrated = load_checkpoint(tmp_path / "ck")
    assert loaded.config == model.config and checkpoint_views(migrated) == "mirror"
    assert "test_flip" not in migrated["model"]["face"] and set(migrated["model"]["translator"]) == {"depth"}
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch).logits, model(batch).logits)
    assert Predictor.from_pretrained(tmp_path / "ck").test_views == "mirror"
    assert Predictor.from_pretrained(tmp_path / "ck", test_views="crops").test_views == "crops"
    model.save_pretrained(tmp_path / "new")
    assert checkpoint_views(read_meta(tmp_path / "new")) == "single"
    for flip, views in ((True, "mirror"), (False, "single")):  # a checkpoint from before test-time views
        model.save_pretrained(tmp_path / "flip", extra={"inference": {"test_flip": flip}})
        assert read_meta(tmp_path / "flip")["inference"] == {"test_views": views}
    model.save_pretrained(tmp_path / "bad", extra={"inference": {"test_views": "many"}})
    with pytest.raises(ValueError, match="unknown test-time views 'many'.*single, mirror, crops"):
        Predictor.from_pretrained(tmp_path / "bad")


def test_freezing_is_structural(batch):
    from bridge.config import TextConfig

    config = create_config("tiny", text=TextConfig(freeze=True))
    torch.manual_seed(0)
    model = BridgeModel(config)
    text = model.encoders["text"]
    assert not any(p.requires_grad for p in text.parameters()) and not text.training
    assert all(p.requires_grad for p in model.encoders["face"].parameters())
    model.train()  # a plain train() trains everything: keeping frozen parts in eval mode is the trainer's
    assert text.training
    from bridge.freeze import train_mode

    train_mode(model)
    assert model.training and model.encoders["face"].training and not text.training


def test_building_a_trainer_changes_no_process_state(tmp_path, synthetic_samples):
    from bridge.train.trainer import TrainConfig, Trainer

    torch.use_deterministic_algorithms(False)
    env, rng = dict(os.environ), torch.get_rng_state()
    config = with_modalities(create_config("tiny"), (TEXT,))
    Trainer(config, TrainConfig(epochs=1, batch_size=4, deterministic=True, seed=3), tmp_path / "run")
    assert not torch.are_deterministic_algorithms_enabled()
    assert dict(os.environ) == env and torch.equal(torch.get_rng_state(), rng)
    a = Trainer(config, TrainConfig(seed=3), tmp_path / "a").model.state_dict()
    b = Trainer(config, TrainConfig(seed=3), tmp_path / "b").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # the seed still decides the initialisation
    assert not np.allclose(a["fusion.head.1.weight"].numpy(),
                           Trainer(config, TrainConfig(seed=4), tmp_path / "c").model.state_dict()[
                               "fusion.head.1.weight"].numpy())


def test_train_test_views_are_recorded_for_inference_not_in_the_model_config(tmp_path):
    import evaluate
    import train
    from bridge.train.trainer import TrainConfig, Trainer

    out = tmp_path / "run"
    assert train.main(["--modalities", "face", "--limit", "12", "--batch-size", "6", "--epochs", "1",
                       "--no-cache", "--test-views", "crops", "--output", str(out)]) == 0
    meta = read_meta(out)
    assert checkpoint_views(meta) == "crops" and meta["training"]["test_views"] == "crops"
    assert "test_flip" not in meta["model"]["face"] and "test_views" not in meta["model"]["face"]
    assert evaluate.main(["--checkpoint", str(out), "--limit", "12", "--no-cache", "--protocols", "patterns",
                          "--output", str(tmp_path / "eval")]) == 0
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["test_views"] == "crops"  # as recorded
    features = create_config("tiny", face=None, audio=None)
    with pytest.raises(ValueError, match="face encoder"):
        Trainer(features, TrainConfig(test_views="mirror"), tmp_path / "none")
