"""Translation objectives that carry the task (issue 26): contrastive translation, distillation of
the fusion's real-latent prediction into its prediction from reconstructions, and the confidence
gate on reconstructed tokens."""

from __future__ import annotations

import pytest
import torch

from bridge import Modality, create_model
from bridge.fusion import OBSERVED, RECONSTRUCTED, ZERO_FILLED, ConfidenceGate
from bridge.train.losses import BridgeLoss, contrastive_translation, distillation
from bridge.preprocess import Preprocessor, collate


@pytest.fixture(scope="module")
def batch(synthetic_samples):
    pre = Preprocessor(create_model("tiny").config)
    return collate([pre(synthetic_samples[i]) for i in range(8)])


def test_contrastive_translation_prefers_the_right_target():
    torch.manual_seed(0)
    target = torch.randn(6, 2, 8)
    mask = torch.ones(6, dtype=torch.bool)
    right = contrastive_translation(target + 0.01 * torch.randn(6, 2, 8), target, mask)
    shuffled = contrastive_translation(target[torch.tensor([1, 2, 3, 4, 5, 0])], target, mask)
    assert right < 0.01 < shuffled
    # samples outside the mask are neither rows nor candidates
    mask[3:] = False
    corrupted = target.clone()
    corrupted[3:] = torch.randn(3, 2, 8)
    assert torch.allclose(contrastive_translation(corrupted, target, mask),
                          contrastive_translation(target[:3], target[:3], torch.ones(3, dtype=torch.bool)))
    one = torch.zeros(6, dtype=torch.bool)
    one[0] = True
    pred = target.clone().requires_grad_()
    zero = contrastive_translation(pred, target, one)
    assert zero.item() == 0.0
    zero.backward()  # connected: a batch with one usable sample still backpropagates


def test_distillation_is_zero_at_the_teacher_and_masked():
    teacher = torch.tensor([[2.0, -1.0], [0.5, 0.5], [-3.0, 1.0]])
    mask = torch.tensor([True, True, False])
    assert distillation(teacher, teacher, mask, 2.0).item() == pytest.approx(0.0, abs=1e-7)
    student = teacher.clone()
    student[2] = torch.tensor([5.0, -5.0])  # far off, but masked out
    assert distillation(student, teacher, mask, 2.0).item() == pytest.approx(0.0, abs=1e-7)
    student[0] = torch.tensor([-2.0, 1.0])
    assert distillation(student, teacher, mask, 2.0).item() > 0.1


def test_distillation_trains_translators_through_reconstructions(batch):
    """The distill term's gradient reaches the translators (through the rebuilt latent) and not the teacher."""
    torch.manual_seed(0)
    model = create_model("tiny").train()
    present = {m: v.clone() for m, v in batch.present.items()}
    present[Modality.TEXT][:] = False  # text hidden from the fusion: rebuilt from face and audio
    out = model(batch, present=present, teacher=True)
    assert out.teacher_logits is not None and not out.teacher_logits.requires_grad
    loss = BridgeLoss(model.config, translation_weight=0.0, distill_weight=1.0)
    terms = loss(out, batch)
    assert terms["distill"] > 0
    model.zero_grad(set_to_none=True)
    terms["distill"].backward()
    grad = model.translators["audio_to_text"].queries.grad
    assert grad is not None and grad.abs().sum() > 0
    unused = model.translators["text_to_audio"].queries.grad  # audio was never rebuilt
    assert unused is None or unused.abs().sum() == 0


def test_distillation_needs_the_teacher(batch):
    model = create_model("tiny")
    out = model(batch)
    with pytest.raises(ValueError, match="teacher=True"):
        BridgeLoss(model.config, distill_weight=1.0)(out, batch)


def test_infonce_translation_loss_terms_and_backward(batch):
    torch.manual_seed(0)
    model = create_model("tiny").train()
    out = model(batch, cycle=True)
    terms = BridgeLoss(model.config, distance="infonce", cycle_weight=0.5)(out, batch)
    assert {"translation", "cycle", "translate/audio_to_text"} <= set(terms)
    assert all(torch.isfinite(v) for v in terms.values())
    # 8 samples: chance-level InfoNCE is about log 8; an untrained translator is near it
    assert 0.5 * torch.log(torch.tensor(8.0)) < terms["translation"] < 2 * torch.log(torch.tensor(8.0))
    terms["loss"].backward()
    with pytest.raises(ValueError, match="infonce"):
        BridgeLoss(model.config, distance="l1")


def test_confidence_gate_scales_reconstructed_tokens_only():
    gate = ConfidenceGate(8)
    tokens = torch.randn(2, 3, 8)
    flags = torch.tensor([[OBSERVED, RECONSTRUCTED, ZERO_FILLED]] * 2)
    out = gate(tokens, flags)
    assert torch.equal(out[:, 0], tokens[:, 0]) and torch.equal(out[:, 2], tokens[:, 2])
    assert torch.allclose(out[:, 1], tokens[:, 1] * torch.sigmoid(torch.tensor(3.0)))  # starts at 0.95


def test_confidence_model_learns_the_gate_and_round_trips(batch, tmp_path):
    torch.manual_seed(0)
    from bridge import BridgeModel
    from bridge.config import override

    model = BridgeModel(override(create_model("tiny").config, ["fusion.confidence=true"])).train()
    present = {m: v.clone() for m, v in batch.present.items()}
    present[Modality.FACE][:4] = False
    terms = BridgeLoss(model.config)(model(batch, present=present), batch)
    terms["loss"].backward()
    assert model.confidence.score.weight.grad.abs().sum() > 0
    model.eval()
    model.save_pretrained(tmp_path)
    from bridge.model import load_checkpoint

    loaded = load_checkpoint(tmp_path)[0]
    assert loaded.config.fusion.confidence and loaded.confidence is not None
    with torch.no_grad():
        assert torch.equal(model(batch, present=present).logits, loaded(batch, present=present).logits)
    assert create_model("tiny").confidence is None  # off by default: older checkpoints load unchanged


@pytest.mark.parametrize("flags", [["--translation-loss", "infonce"], ["--distill-weight", "1"]])
def test_train_main_with_each_objective(tmp_path, flags, monkeypatch):
    import train
    from bridge.train.losses import BridgeLoss

    built, real_init = [], BridgeLoss.__init__

    def spy(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        built.append((self.kind, self.distill_weight))

    monkeypatch.setattr(BridgeLoss, "__init__", spy)
    out = tmp_path / "run"
    rc = train.main(["--limit", "40", "--epochs", "2", "--batch-size", "16", "--output", str(out), *flags])
    assert rc == 0
    assert built == [("infonce", 0.0) if "infonce" in flags else ("mse", 1.0)]  # the loss that trained
    import json

    history = json.loads((out / "history.json").read_text())
    key = "distill" if "--distill-weight" in flags else "translation"
    assert key in history[-1]["train"]
    training = json.loads((out / "config.json").read_text())["training"]
    assert training["translation_loss"] == ("infonce" if "infonce" in flags else "mse")


def test_bad_objective_settings_exit_2(tmp_path, capsys):
    import train

    assert train.main(["--distill-weight", "-1", "--output", str(tmp_path / "a")]) == 2
    assert train.main(["--distill-temperature", "0", "--output", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "--distill-weight" in err and "--distill-temperature" in err
