"""train.main -> evaluate.main -> infer.main in-process on the synthetic default, and the
one-line errors (exit code 2, nothing written) the scripts give on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import evaluate
import infer
import train
from bridge.data.export import export_sample
from bridge.data.synthetic import SyntheticEmotions


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A face image, a voice recording and a text from the synthetic test split."""
    from skimage.data import astronaut  # a real photo of a smiling face, for the detector

    d = tmp_path_factory.mktemp("media")
    export_sample(SyntheticEmotions(1, split="test", seed=3)[0], d)  # face.png is a crop: --no-face-detection
    cv2.imwrite(str(d / "astronaut.png"), cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR))
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (d / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    return d


def test_train_writes_a_self_describing_checkpoint(trained_checkpoint):
    files = {p.name for p in trained_checkpoint.iterdir()}
    assert {"model.safetensors", "config.json", "training_state.pt", "history.json", "curves.png"} <= files
    meta = json.loads((trained_checkpoint / "config.json").read_text())
    assert meta["labels"] == ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    assert meta["preprocessing"]["audio"]["sample_rate"] == 16000
    assert meta["bridge_version"] and meta["training"]["epochs"] == 2 and meta["data"]["name"] == "synthetic"
    history = json.loads((trained_checkpoint / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    assert {"loss", "ce", "translation", "translate/audio_to_text"} <= set(history[0]["train"])


def test_resume_continues_where_it_stopped(trained_checkpoint, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_checkpoint, run)
    assert train.main(["--limit", "140", "--epochs", "3", "--batch-size", "16", "--output", str(run), "--resume"]) == 0
    history = json.loads((run / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3]


def test_evaluate_reports_every_pattern_and_fill(trained_checkpoint, tmp_path, capsys):
    out = tmp_path / "report"
    assert evaluate.main(["--checkpoint", str(trained_checkpoint), "--limit", "70", "--output", str(out),
                          "--protocols", "patterns"]) == 0  # the robustness protocols: tests/test_robustness.py
    report = json.loads((out / "results.json").read_text())
    patterns = {"face", "audio", "text", "face+audio", "face+text", "audio+text", "face+audio+text"}
    assert set(report["results"]) == patterns
    for by_fill in report["results"].values():
        assert set(by_fill) == {"reconstruct", "zero"}
        r = by_fill["reconstruct"]
        assert r["n"] == 70 and 0 <= r["macro_f1"] <= 1 and {"uar", "weighted_f1", "per_class", "confusion"} <= set(r)
    assert (out / "results.md").read_text().count("|") > 50
    assert (out / "confusion.png").stat().st_size > 1000 and (out / "patterns.png").is_file()
    assert "face+audio+text" in capsys.readouterr().out


def test_evaluate_test_views_follow_the_checkpoint_unless_told(trained_checkpoint, tmp_path, monkeypatch):
    import bridge.eval.protocols

    recorded, used, real = {}, [], bridge.eval.protocols.evaluate_patterns
    monkeypatch.setattr(bridge.eval.protocols, "evaluate_patterns",
                        lambda *a, **k: used.append(k["views"]) or real(*a, **k))
    for choice in ("checkpoint", "mirror", "crops"):
        out = tmp_path / choice
        assert evaluate.main(["--checkpoint", str(trained_checkpoint), "--limit", "30", "--output", str(out),
                              "--protocols", "patterns", "--modalities", "face", "--test-views", choice]) == 0
        report = json.loads((out / "results.json").read_text())
        assert set(report["results"]) == {"face"}
        recorded[choice] = report["test_views"]
    assert recorded == {"checkpoint": "single", "mirror": "mirror", "crops": "crops"}
    assert used == ["single", "mirror", "crops"]  # what the scoring did, not just said


@pytest.mark.parametrize("inputs", [
    ["--image", "face.png", "--no-face-detection"], ["--image", "astronaut.png"], ["--audio", "voice.wav"],
    ["--text", "@text.txt"], ["--image", "face.png", "--no-face-detection", "--audio", "voice.wav", "--text", "@text.txt"],
], ids=["face-crop", "photo", "audio", "text", "all"])
def test_infer_each_modality_and_all(trained_checkpoint, media, inputs, capsys):
    args = [a if a.startswith("--") else (f"@{media / a[1:]}" if a.startswith("@") else str(media / a)) for a in inputs]
    assert infer.main(["--checkpoint", str(trained_checkpoint), *args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    if "astronaut.png" in inputs:
        assert result["face_frames"] == {"searched": 1, "with_face": 1}
    assert result["label"] in result["probabilities"]
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    expected = {"--image": "face", "--audio": "audio", "--text": "text"}
    observed = {expected[a] for a in inputs if a in expected}
    assert set(result["observed"]) == observed
    assert set(result["reconstructed"]) == {"face", "audio", "text"} - observed


def test_infer_test_views_average_the_face_over_its_views(trained_checkpoint, media, capsys):
    probs = {}
    for choice in ("checkpoint", "single", "mirror", "crops"):
        assert infer.main(["--checkpoint", str(trained_checkpoint), "--image", str(media / "face.png"),
                           "--no-face-detection", "--json", "--test-views", choice]) == 0
        probs[choice] = list(json.loads(capsys.readouterr().out)["probabilities"].values())
    assert probs["checkpoint"] == probs["single"]  # trained without views
    assert not np.allclose(probs["mirror"], probs["single"], atol=1e-7)
    assert not np.allclose(probs["crops"], probs["mirror"], atol=1e-7)


def test_infer_human_readable(trained_checkpoint, capsys):
    assert infer.main(["--checkpoint", str(trained_checkpoint), "--text", "I am so angry with you"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("emotion: ") and "observed: text" in out and "reconstructed: face, audio" in out


def test_infer_image_without_face_reconstructs_it(trained_checkpoint, tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "wall.png"), np.full((120, 160, 3), 128, np.uint8))
    rc = infer.main(["--checkpoint", str(trained_checkpoint), "--image", str(tmp_path / "wall.png"),
                     "--text", "what a lovely day", "--json"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert "face" in result["reconstructed"] and any("no face" in n for n in result["notes"])


@pytest.mark.parametrize("case", ["missing file", "unreadable image", "unreadable audio", "empty text",
                                  "not a checkpoint", "no modality", "modality not in checkpoint"])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, trained_checkpoint, media, tmp_path, capsys):
    ckpt = str(trained_checkpoint)
    out = tmp_path / "result.json"
    if case == "modality not in checkpoint":
        text_only = tmp_path / "text-only"
        assert train.main(["--limit", "35", "--epochs", "1", "--modalities", "text", "--output", str(text_only)]) == 0
        capsys.readouterr()
        ckpt = str(text_only)
    args = {
        "missing file": ["--image", str(media / "nope.png")],
        "unreadable image": ["--image", str(media / "broken.png")],
        "unreadable audio": ["--audio", str(media / "broken.wav")],
        "empty text": ["--text", "   "],
        "not a checkpoint": ["--text", "hello"],
        "no modality": [],
        "modality not in checkpoint": ["--audio", str(media / "voice.wav")],
    }[case]
    if case == "not a checkpoint":
        ckpt = str(media)
    rc = infer.main(["--checkpoint", ckpt, *args, "--output", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("infer.py: error: ") and "\n" not in err and "Traceback" not in err
    expected = {"missing file": "nope.png does not exist",
                "unreadable image": "broken.png: unreadable image or unsupported format",
                "unreadable audio": "broken.wav: unreadable audio",
                "empty text": "text is empty",
                "not a checkpoint": "is not a bridge checkpoint: no config.json",
                "no modality": "no input given: pass at least one of --image, --video, --audio, --text",
                "modality not in checkpoint": "this checkpoint has no audio modality (it has text)"}[case]
    assert expected in err, err
    assert not out.exists()


def test_train_and_evaluate_bad_arguments(tmp_path, trained_checkpoint, capsys):
    assert train.main(["--modalities", "face,smell", "--output", str(tmp_path / "x")]) == 2
    assert "unknown modality smell" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert train.main(["--data", "nonexistent-corpus", "--output", str(tmp_path / "y")]) == 2
    assert evaluate.main(["--checkpoint", str(tmp_path / "none")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_recipe_file_sets_defaults_and_flags_win(tmp_path):
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"_note": "a comment", "data": "synthetic", "preset": "tiny", "epochs": 7,
                                  "set": ["fusion.depth=1"], "encoder-lr-scale": 0.1}))
    args = train.parse_args(["--recipe", str(recipe), "--epochs", "2", "--set", "dim=32"])
    assert (args.data, args.preset, args.epochs, args.encoder_lr_scale) == ("synthetic", "tiny", 2, 0.1)
    assert args.set == ["fusion.depth=1", "dim=32"]  # the recipe's overrides, then the command line's


def test_a_flag_given_again_replaces_the_recipes_entry_for_that_key(tmp_path):
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"set": ["fusion.depth=1", "dim=32"], "mismatch": ["face=auto", "text=auto"],
                                  "init-encoder": ["face=a", "text=b"]}))
    args = train.parse_args(["--recipe", str(recipe), "--mismatch", "face=0.1", "--set", "fusion.depth=2",
                             "--init-encoder", "text=c"])
    assert args.mismatch == ["text=auto", "face=0.1"]  # face's rate from the command line, not measured
    assert args.set == ["dim=32", "fusion.depth=2"] and args.init_encoder == ["face=a", "text=c"]
    assert train.parse_args(["--recipe", str(recipe)]).mismatch == ["face=auto", "text=auto"]


def test_train_set_overrides_reach_the_checkpoint(tmp_path):
    out = tmp_path / "ck"
    assert train.main(["--limit", "24", "--epochs", "1", "--modalities", "text", "--set", "fusion.depth=1",
                       "--set", "text.num_layers=1", "--output", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())["model"]
    assert config["fusion"]["depth"] == 1 and config["text"]["num_layers"] == 1


@pytest.mark.parametrize("argv, message", [
    (["--set", "fusion.nope=1"], "FusionConfig has no field 'nope'"),
    (["--recipe", "missing.json"], "recipe missing.json does not exist"),
    (["--recipe", "BAD"], "train.py has no option --colour"),
    (["--recipe", "SELECT"], "--select 'best' is not one of all, patterns"),
    (["--recipe", "MISMATCH"], "--mismatch takes a list, got 'audio=0.3'"),
])
def test_train_bad_overrides_and_recipes_are_one_line(argv, message, tmp_path, capsys):
    recipes = {"BAD": {"colour": "blue"}, "SELECT": {"select": "best"}, "MISMATCH": {"mismatch": "audio=0.3"}}
    for name, recipe in recipes.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(recipe))
    argv = [str(tmp_path / f"{a}.json") if a in recipes else a for a in argv]
    assert train.main(argv + ["--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("train.py: error: ") and message in err and "\n" not in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("recipe", sorted(p.name for p in (Path(train.__file__).parent / "recipes").glob("*.json")))
def test_shipped_recipes_parse_from_any_directory(recipe, tmp_path, monkeypatch):
    from bridge.config import create_config, override

    monkeypatch.chdir(tmp_path)  # recipes/NAME.json is found beside train.py
    args = train.parse_args(["--recipe", f"recipes/{recipe}"])
    assert args.data != "synthetic" and args.epochs >= 1
    override(create_config(args.preset), args.set)  # every override names a real field


def test_every_training_option_reaches_the_train_config():
    from dataclasses import fields

    from bridge.train.config import TrainConfig

    args = train.parse_args(["--epochs", "3", "--lr", "0.01", "--workers", "2", "--mismatch", "audio=0.2",
                             "--balance-parts", "--part-share", "goemotions=0.5", "--augment-zoom", "0.8,1.25",
                             "--augment-shift", "0.12", "--translation-loss", "infonce", "--memo-mb", "8",
                             "--seed", "5"])
    config = train.train_config_from(args, ["face=run"], "cpu")
    assert (config.num_workers, config.init_encoders, config.device, config.mismatch, config.part_share) == (
        2, ("face=run",), "cpu", ("audio=0.2",), ("goemotions=0.5",))
    assert (config.augment_zoom, config.augment_shift) == ((0.8, 1.25), 0.12)
    assert (config.epochs, config.lr, config.balance_parts, config.translation_loss, config.memo_mb, config.seed) == (
        3, 0.01, True, "infonce", 8, 5)
    resolved = {"num_workers", "init_encoders", "device", "mismatch", "part_share", "augment_zoom"}
    same_name = {f.name for f in fields(TrainConfig) if hasattr(args, f.name)} - resolved
    assert {name for name in same_name if getattr(config, name) != getattr(args, name)} == set()
    # the fields no option sets (a new option reaches the trainer by taking its field's name)
    assert {f.name for f in fields(TrainConfig)} - same_name - resolved == {"warmup_epochs", "dropout_warmup_epochs",
                                                                            "grad_clip"}


def test_bfloat16_autocasts_the_training_forward_and_keeps_float32_weights(tmp_path, monkeypatch):
    import torch

    from bridge.train.trainer import TrainStep

    forward, seen = TrainStep.forward, []

    def spy(self, *args, **kwargs):
        logits, terms = forward(self, *args, **kwargs)
        seen.append((logits.dtype, terms["loss"].dtype))
        return logits, terms

    monkeypatch.setattr(TrainStep, "forward", spy)
    out = tmp_path / "run"
    assert train.main(["--limit", "24", "--epochs", "1", "--batch-size", "8", "--no-cache", "--precision", "bfloat16",
                       "--output", str(out)]) == 0
    assert seen and all(logits == torch.bfloat16 for logits, _ in seen)  # the fusion head ran in bfloat16
    assert all(loss == torch.float32 for _, loss in seen)  # the losses are float32 (autocast's float32 ops)
    meta = json.loads((out / "config.json").read_text())
    assert meta["training"]["precision"] == "bfloat16"
    from safetensors.torch import load_file

    assert {t.dtype for t in load_file(out / "model.safetensors").values() if t.is_floating_point()} == {torch.float32}
    history = json.loads((out / "history.json").read_text())
    assert np.isfinite(history[0]["train"]["loss"]) and np.isfinite(history[0]["val"]["loss"])
    with pytest.raises(ValueError, match="--precision float32 contradicts"):  # a resumed run keeps its precision
        train.resume_args(train.parse_args(["--precision", "float32", "--output", str(out), "--resume"]),
                          {"precision"}, out)
