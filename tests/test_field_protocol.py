"""The field's missing-modality protocol (CyIN, IMDer on CMU-MOSI): the six fixed patterns, missing
rates 0.1 … 0.7 with a repeatable draw that keeps a modality per sample, and evaluate.py's report."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

from bridge.eval.protocols import FIELD_ETAS, evaluate_field, evaluate_patterns, field_patterns
from bridge.modality import ALL_MODALITIES, Modality
from bridge.presence import drop_modalities


def test_fixed_patterns_are_the_six_with_one_present_and_one_missing():
    patterns = field_patterns(ALL_MODALITIES)
    assert len(patterns) == 6 == len(set(patterns))
    expected = {frozenset(c) for r in (1, 2) for c in itertools.combinations(ALL_MODALITIES, r)}
    assert {frozenset(p) for p in patterns} == expected
    assert all(0 < len(p) < 3 for p in patterns)
    assert field_patterns((Modality.AUDIO, Modality.TEXT)) == [(Modality.AUDIO,), (Modality.TEXT,)]
    with pytest.raises(ValueError, match="at least two modalities"):
        field_patterns((Modality.TEXT,))


def test_random_rates_are_point_one_to_point_seven():
    assert FIELD_ETAS == pytest.approx((0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7))


@pytest.mark.parametrize("eta", FIELD_ETAS)
def test_the_draw_keeps_a_modality_and_repeats(eta):
    full = {m: torch.ones(500, dtype=torch.bool) for m in ALL_MODALITIES}
    full[Modality.FACE][:100] = False  # some samples lack face in the data: never made present
    a = drop_modalities(full, eta, torch.Generator().manual_seed(7))
    b = drop_modalities(full, eta, torch.Generator().manual_seed(7))
    assert all(torch.equal(a[m], b[m]) for m in ALL_MODALITIES)
    assert torch.stack(list(a.values())).any(dim=0).all()
    assert not a[Modality.FACE][:100].any()
    dropped = 1 - torch.stack(list(a.values()))[:, 100:].float().mean().item()
    # each of the three goes with probability eta; the eta^3 of samples that lost all get one back
    assert dropped == pytest.approx(eta - eta ** 3 / 3, abs=0.04)
    c = drop_modalities(full, eta, torch.Generator().manual_seed(8))
    assert any(not torch.equal(a[m], c[m]) for m in ALL_MODALITIES)


@pytest.fixture(scope="module")
def tiny_loader(synthetic_samples):
    from bridge import create_model
    from bridge.dataset import ExampleDataset, make_loader
    from bridge.preprocess import Preprocessor

    torch.manual_seed(0)
    model = create_model("tiny").eval()
    dataset = ExampleDataset([synthetic_samples[i] for i in range(16)], Preprocessor(model.config), "p", None, False)
    return model, make_loader(dataset, 8, False, 0, 0)


def test_evaluate_field_shape_and_repeatability(tiny_loader):
    model, loader = tiny_loader
    a = evaluate_field(model, loader, torch.device("cpu"), seeds=2, progress=False)
    b = evaluate_field(model, loader, torch.device("cpu"), seeds=2, progress=False)
    assert a == b
    assert a["patterns"] == ["face", "audio", "text", "face+audio", "face+text", "audio+text"]
    rec = a["results"]["reconstruct"]
    assert set(rec["summary"]) == {"fixed_average", "random_average", "text_only", "no_text", "all"}
    assert rec["named"] == {"text_only": "text", "no_text": "face+audio", "all": "face+audio+text"}
    by_pattern = evaluate_patterns(model, loader, torch.device("cpu"), progress=False)  # scored the other way
    for fill in ("reconstruct", "zero"):
        for p in a["patterns"]:
            assert a["results"][fill]["fixed"][p]["weighted_f1"] == pytest.approx(
                by_pattern[p][fill]["weighted_f1"]), (fill, p)
    assert rec["summary"]["text_only"]["weighted_f1"]["mean"] == pytest.approx(rec["fixed"]["text"]["weighted_f1"])
    fixed = rec["summary"]["fixed_average"]["weighted_f1"]["mean"]
    assert fixed == pytest.approx(sum(rec["fixed"][p]["weighted_f1"] for p in a["patterns"]) / 6)
    assert len(rec["random"]["weighted_f1"]["mean"]) == 7
    assert rec["summary"]["random_average"]["weighted_f1"]["mean"] == pytest.approx(
        sum(rec["random"]["weighted_f1"]["mean"]) / 7)
    gain = a["reconstruct_minus_zero"]["weighted_f1"]
    per = {p: rec["fixed"][p]["weighted_f1"] - a["results"]["zero"]["fixed"][p]["weighted_f1"] for p in a["patterns"]}
    assert gain["mean"] == pytest.approx(sum(per.values()) / 6)
    assert gain["worst"] == pytest.approx(min(per.values()))
    other = evaluate_field(model, loader, torch.device("cpu"), seeds=1, etas=(0.5,), first_seed=5, progress=False)
    assert other["results"]["reconstruct"]["fixed"] == rec["fixed"]  # fixed patterns draw nothing
    assert other["results"]["reconstruct"]["random"]["weighted_f1"]["std"] == [0.0]


def test_evaluate_py_field_protocol_names_the_figures(trained_checkpoint, tmp_path, capsys):
    import evaluate

    out = tmp_path / "field"
    assert evaluate.main(["--checkpoint", str(trained_checkpoint), "--limit", "40", "--protocols", "field",
                          "--seeds", "2", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ("the field's protocol", "fixed average (6 patterns", "random average (η 0.1–0.7, 2 draws)",
                 "text only", "no text (face+audio)", "all modalities", "reconstruct − zero-fill"):
        assert name in printed, name
    report = json.loads((out / "results.json").read_text())
    assert report["protocols"] == ["field"]
    assert report["field"]["etas"] == pytest.approx(list(FIELD_ETAS))
    assert set(report["field"]["results"]) == {"reconstruct", "zero"}


def test_evaluate_py_field_needs_two_modalities(trained_checkpoint, tmp_path, capsys):
    import evaluate

    rc = evaluate.main(["--checkpoint", str(trained_checkpoint), "--limit", "20", "--protocols", "field",
                        "--modalities", "text", "--output", str(tmp_path / "x")])
    assert rc == 2
    assert "at least two modalities" in capsys.readouterr().err
