"""Face augmentation: what each transform does, that a clip shares one warp, and that runs with
it stay repeatable and resumable."""

from __future__ import annotations

import json

import pytest
import torch

import train
from bridge.train.augment import FaceAugment
from bridge.train.trainer import Trainer

OFF = dict(flip=0.0, degrees=0.0, translate=0.0, scale=(1.0, 1.0), erase=0.0)
QUICK = ["--limit", "28", "--batch-size", "14", "--modality-dropout", "0", "--no-cache"]


def _faces(b: int = 6, t: int = 3, side: int = 16) -> torch.Tensor:
    return torch.randn(b, t, 1, side, side, generator=torch.Generator().manual_seed(1))


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_with_every_transform_off_the_crops_are_unchanged():
    faces = _faces()
    assert torch.allclose(FaceAugment(**OFF)(faces, _gen()), faces, atol=1e-5)


def test_a_certain_flip_mirrors_left_and_right():
    faces = _faces()
    out = FaceAugment(**{**OFF, "flip": 1.0})(faces, _gen())
    assert torch.allclose(out, faces.flip(-1), atol=1e-5)


def test_a_shift_moves_the_picture():
    faces = torch.zeros(1, 1, 1, 20, 20)
    faces[..., 8:12, 8:12] = 1.0  # a bright square in the middle
    out = FaceAugment(**{**OFF, "translate": 0.1})(faces.repeat(8, 1, 1, 1, 1), _gen())
    centres = [(out[i, 0, 0] > 0.5).nonzero().float().mean(0) for i in range(8)]
    moved = [float((c - torch.tensor([9.5, 9.5])).abs().max()) for c in centres]
    assert max(moved) > 0.5 and max(moved) <= 2.0 + 1e-6  # up to 10 % of 20 pixels on each axis


def test_erasing_blanks_one_rectangle_within_the_area_range():
    faces = torch.ones(32, 2, 1, 20, 20)
    out = FaceAugment(**{**OFF, "erase": 1.0, "erase_area": (0.05, 0.1)})(faces, _gen())
    for sample in out:
        assert torch.equal(sample[0], sample[1])  # every frame of a clip: the same hole
        hole = sample[0, 0] == 0
        rows, cols = hole.any(1).nonzero(), hole.any(0).nonzero()
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert int(hole.sum()) == int(box), "the erased pixels form one rectangle"
        assert 0.5 * 0.05 * 400 <= int(hole.sum()) <= 0.1 * 400 + 1e-6  # floor() can shave a row or column


def test_surround_fills_what_a_zoom_out_brings_in_with_the_next_face():
    faces = torch.arange(1.0, 5.0).reshape(4, 1, 1, 1, 1).repeat(1, 2, 1, 20, 20)  # face i: all pixels i + 1
    zoom_out = {**OFF, "scale": (0.5, 0.5)}  # the crop shrinks to the middle half: a 5-px border is new
    edge = FaceAugment(**zoom_out)(faces, _gen())
    assert torch.allclose(edge, faces, atol=1e-5)  # repeated edges of a flat face: no change
    out = FaceAugment(**zoom_out, surround=1.0)(faces, _gen())
    for i, sample in enumerate(out):
        nxt = float(faces[i - 1, 0, 0, 0, 0])  # roll(1): sample i gets sample i - 1's pixels
        for frame in sample:  # every frame of a clip: the same surroundings
            assert torch.allclose(frame[0, 6:14, 6:14], faces[i, 0, 0, 6:14, 6:14])  # the face itself kept
            border = torch.ones(20, 20, dtype=torch.bool)
            border[5:15, 5:15] = False
            assert torch.allclose(frame[0][border], torch.full((int(border.sum()),), nxt))
    assert torch.equal(FaceAugment(**zoom_out, surround=0.0)(faces, _gen()), edge)


def test_frames_of_a_sample_share_a_warp_and_samples_differ():
    clip = _faces(1, 1).repeat(8, 4, 1, 1, 1)  # 8 samples, each 4 copies of the same frame
    out = FaceAugment()(clip, _gen())
    for sample in out:
        for frame in sample[1:]:
            assert torch.equal(frame, sample[0])
    assert not torch.allclose(out[0], out[1])


def test_the_same_generator_seed_gives_the_same_batch_and_the_input_is_kept():
    faces = _faces()
    before = faces.clone()
    a, b = FaceAugment()(faces, _gen(3)), FaceAugment()(faces, _gen(3))
    assert torch.equal(a, b)
    assert not torch.equal(a, FaceAugment()(faces, _gen(4)))
    assert torch.equal(faces, before)


def test_a_batch_of_the_wrong_rank_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(b, t, c, h, w\)"):
        FaceAugment()(torch.zeros(2, 1, 8, 8), _gen())


def test_train_augment_is_recorded_changes_training_and_resumes_exactly(tmp_path, monkeypatch):
    plain, straight, broken = tmp_path / "plain", tmp_path / "straight", tmp_path / "broken"
    assert train.main([*QUICK, "--epochs", "2", "--output", str(plain)]) == 0
    assert train.main([*QUICK, "--epochs", "2", "--augment", "--output", str(straight)]) == 0
    assert json.loads((straight / "config.json").read_text())["training"]["augment"] is True
    assert json.loads((plain / "config.json").read_text())["training"]["augment"] is False
    history = lambda d: [r["train"] for r in json.loads((d / "history.json").read_text())]  # noqa: E731
    assert history(plain) != history(straight)

    epochs = []
    real = Trainer._train_epoch

    def dies_in_the_second_epoch(self, *args, **kwargs):
        epochs.append(1)
        if len(epochs) == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_train_epoch", dies_in_the_second_epoch)
    assert train.main([*QUICK, "--epochs", "2", "--augment", "--output", str(broken)]) != 0  # "interrupted"
    monkeypatch.undo()
    assert len(json.loads((broken / "history.json").read_text())) == 1
    assert train.main([*QUICK, "--epochs", "2", "--augment", "--output", str(broken), "--resume"]) == 0
    a = torch.load(straight / "training_state.pt", weights_only=True)["model"]
    b = torch.load(broken / "training_state.pt", weights_only=True)["model"]
    for name, tensor in a.items():
        assert torch.equal(tensor, b[name]), f"{name} differs after resume"


def test_augment_framing_is_recorded_changes_training_and_resumes(tmp_path, capsys):
    wide, standard = tmp_path / "wide", tmp_path / "standard"
    framing = ["--augment-zoom", "0.75,1.35", "--augment-shift", "0.12", "--augment-surround", "0.5"]
    assert train.main([*QUICK, "--epochs", "1", "--augment", *framing, "--output", str(wide)]) == 0
    assert train.main([*QUICK, "--epochs", "1", "--augment", "--output", str(standard)]) == 0
    recorded = lambda d: json.loads((d / "config.json").read_text())["training"]  # noqa: E731
    assert (recorded(wide)["augment_zoom"], recorded(wide)["augment_shift"]) == ([0.75, 1.35], 0.12)
    assert recorded(wide)["augment_surround"] == 0.5
    assert (recorded(standard)["augment_zoom"], recorded(standard)["augment_shift"]) == ([0.9, 1.1], 0.1)
    history = lambda d: [r["train"] for r in json.loads((d / "history.json").read_text())]  # noqa: E731
    assert history(wide) != history(standard)
    assert train.main([*QUICK, "--epochs", "2", "--output", str(wide), "--resume"]) == 0  # the framing comes back
    assert (recorded(wide)["augment_zoom"], recorded(wide)["augment_shift"]) == ([0.75, 1.35], 0.12)
    assert recorded(wide)["augment_surround"] == 0.5
    for bad in ("1.5", "-0.1", "often"):
        with pytest.raises(SystemExit):
            train.parse_args(["--augment-surround", bad])
    for bad in ("1.2,0.9", "0.9", "a,b"):
        with pytest.raises(SystemExit):
            train.parse_args(["--augment-zoom", bad])
        assert "--augment-zoom" in capsys.readouterr().err


def test_view_consistency_is_symmetric_zero_for_equal_views_and_reaches_both():
    from bridge.train.losses import view_consistency

    a = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]], requires_grad=True)
    b = torch.tensor([[0.0, 1.0, 0.0], [0.5, 0.5, 0.0]], requires_grad=True)
    assert view_consistency(a, a.detach()).item() == pytest.approx(0.0, abs=1e-7)
    term = view_consistency(a, b)
    assert term.item() == pytest.approx(view_consistency(b, a).item()) and term.item() > 0
    term.backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0
    p, q = a.softmax(-1)[0], b.softmax(-1)[0]  # the first sample by hand; the second's views agree
    by_hand = ((p * (p / q).log()).sum() + (q * (q / p).log()).sum()) / 2 / 2
    assert term.item() == pytest.approx(by_hand.item(), rel=1e-5)


def test_consistency_training_adds_its_term_is_recorded_and_refused_where_it_cannot_work(tmp_path):
    from bridge.config import create_config
    from bridge.train.config import TrainConfig
    from bridge.train.trainer import check_consistency

    views, plain = tmp_path / "views", tmp_path / "plain"
    args = [*QUICK, "--epochs", "1", "--augment", "--modalities", "face"]
    assert train.main([*args, "--consistency-weight", "2", "--output", str(views)]) == 0
    assert train.main([*args, "--output", str(plain)]) == 0
    history = lambda d: json.loads((d / "history.json").read_text())[0]["train"]  # noqa: E731
    assert history(views)["consistency"] > 0 and "consistency" not in history(plain)
    h = history(views)  # a face-only model: cross-entropy, its unimodal head (weight 0.5) and the views' term
    assert h["loss"] == pytest.approx(h["ce"] + 0.5 * h["unimodal"] + 2 * h["consistency"], rel=1e-4)
    assert json.loads((views / "config.json").read_text())["training"]["consistency_weight"] == 2
    assert train.main(["--output", str(views), "--resume", "--epochs", "2"]) == 0  # the weight comes back
    assert json.loads((views / "history.json").read_text())[1]["train"]["consistency"] > 0
    config = create_config("tiny")
    swapped = TrainConfig(consistency_weight=1.0, augment=True, mismatch=("face=0.2",))
    for bad, message in ((TrainConfig(consistency_weight=1.0), "add --augment"),
                         (TrainConfig(consistency_weight=-1.0), ">= 0"), (swapped, "before the swap")):
        with pytest.raises(ValueError, match=message):
            check_consistency(config, bad)
    with pytest.raises(ValueError, match="face encoder"):
        check_consistency(create_config("tiny", face=None), TrainConfig(consistency_weight=1.0, augment=True))
    check_consistency(config, TrainConfig(consistency_weight=1.0, augment=True, mismatch=("text=0.2",)))
