"""train.py --init-encoder: encoders (and latent summarisers) started from trained checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

import train
from bridge.modality import Modality
from bridge.model import load_checkpoint
from bridge.train.transfer import parse_init_encoders


@pytest.fixture(scope="module")
def face_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("source") / "face"
    assert train.main(["--limit", "48", "--epochs", "1", "--batch-size", "16", "--modalities", "face",
                       "--set", "face.stem=cnn", "--no-cache", "--output", str(out)]) == 0
    return out


def test_init_encoder_adopts_config_and_weights_and_frozen_ones_stay_fixed(face_checkpoint, tmp_path, capsys):
    out = tmp_path / "tri"
    assert train.main(["--limit", "48", "--epochs", "2", "--batch-size", "16", "--no-cache", "--output", str(out),
                       "--init-encoder", f"face={face_checkpoint}", "--set", "face.freeze=true"]) == 0
    assert f"started face: encoder and latent summariser from {face_checkpoint}" in capsys.readouterr().out
    source, _ = load_checkpoint(face_checkpoint)
    model, meta = load_checkpoint(out)
    assert model.config.face.stem == "cnn" and model.config.face.freeze  # the source's encoder config, then --set
    assert meta["training"]["init_encoders"] == [f"face={face_checkpoint}"]
    saved, started = model.encoders["face"].state_dict(), source.encoders["face"].state_dict()
    assert saved.keys() == started.keys() and all(torch.equal(saved[k], started[k]) for k in saved)  # frozen
    moved = model.summarisers["face"].state_dict()
    assert any(not torch.equal(v, source.summarisers["face"].state_dict()[k]) for k, v in moved.items())  # trained
    assert set(model.modalities) == set(Modality)
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 2


def test_init_encoder_without_freeze_trains_the_started_encoder(face_checkpoint, tmp_path):
    out = tmp_path / "tuned"
    assert train.main(["--limit", "48", "--epochs", "1", "--batch-size", "16", "--no-cache", "--output", str(out),
                       "--modalities", "face,text", "--init-encoder", f"face={face_checkpoint}"]) == 0
    source, _ = load_checkpoint(face_checkpoint)
    model, _ = load_checkpoint(out)
    changed = [not torch.equal(v, source.encoders["face"].state_dict()[k])
               for k, v in model.encoders["face"].state_dict().items()]
    assert any(changed)


@pytest.mark.parametrize("spec, message", [
    ("face", "expected MODALITY=CHECKPOINT"),
    ("smell=x", "unknown modality 'smell'"),
    ("face=", "expected MODALITY=CHECKPOINT"),
])
def test_parse_init_encoders_rejects_malformed_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_init_encoders([spec])
    with pytest.raises(ValueError, match="names face twice"):
        parse_init_encoders(["face=a", "face=b"])


@pytest.mark.parametrize("extra, message", [
    (["--init-encoder", "audio=SOURCE"], "SOURCE has no audio encoder"),
    (["--init-encoder", "face=SOURCE", "--set", "face.depth=3"], "the face encoder differs from the one in"),
    (["--init-encoder", "face=SOURCE", "--modalities", "text"], "this model has no face"),
    (["--init-encoder", "face=MISSING"], "checkpoint directory .*MISSING does not exist"),
])
def test_bad_init_encoder_is_a_one_line_error_and_writes_nothing(face_checkpoint, tmp_path, capsys, extra, message):
    out = tmp_path / "bad"
    argv = [a.replace("SOURCE", str(face_checkpoint)).replace("MISSING", str(tmp_path / "MISSING")) for a in extra]
    assert train.main(["--limit", "16", "--epochs", "1", "--no-cache", "--output", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("train.py: error: ") and "Traceback" not in err
    import re

    assert re.search(message, err.replace(str(face_checkpoint), "SOURCE"))
    assert not out.exists()


def test_a_recipe_named_as_a_source_is_trained_first_then_reused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "face-source.json"
    source.write_text(json.dumps({"modalities": "face", "limit": 48, "epochs": 1, "batch_size": 16,
                                  "no_cache": True}))
    fusion = tmp_path / "fusion.json"
    fusion.write_text(json.dumps({"limit": 48, "epochs": 1, "batch_size": 16, "no_cache": True,
                                  "init_encoder": [f"face=recipe:{source}"], "set": ["face.freeze=true"]}))
    assert train.main(["--recipe", str(fusion), "--output", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    run = tmp_path / "checkpoints" / "recipes" / "face-source"
    assert "face: training its source first" in out and (run / "config.json").is_file()
    assert f"started face: encoder and latent summariser from {run.relative_to(tmp_path)}" in out
    assert train.main(["--recipe", str(fusion), "--output", str(tmp_path / "b")]) == 0
    assert "training its source first" not in capsys.readouterr().out  # finished: reused, not retrained


def test_a_missing_recipe_source_is_one_line(tmp_path, capsys):
    assert train.main(["--epochs", "1", "--init-encoder", "face=recipe:no/such.json", "--output", str(tmp_path)]) == 2
    assert "recipe no/such.json does not exist" in capsys.readouterr().err
