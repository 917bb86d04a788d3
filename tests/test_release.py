"""The shipped model and release folders: packing, hash checks at load, the defaults, and the model
card's figures reproduced on fixed subsets of the real test splits."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

import bridge.release.builder
import evaluate
import infer
from bridge.cli import RunLock
from bridge.commands.release import main as release_cli
from bridge.release import DEFAULT_RELEASE, MANIFEST, RELEASES, ReleaseError, locate, pack, verify

SHIPPED = RELEASES / DEFAULT_RELEASE
needs_release = pytest.mark.skipif(not (SHIPPED / MANIFEST).is_file(),
                                   reason=f"no release shipped yet in {SHIPPED}: python -m bridge.release build")


@pytest.fixture(scope="module")
def packed(trained_checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("release") / "tiny"
    pack(trained_checkpoint, out, "tiny", card="# tiny\n")
    return out


def _copy(folder: Path, tmp_path: Path) -> Path:
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    return copy


def test_pack_round_trip_matches_the_checkpoint(trained_checkpoint, packed):
    from bridge.inference.predictor import Predictor

    face = np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8)
    inputs = {"image": face, "text": "what a lovely surprise"}
    full = Predictor.from_pretrained(trained_checkpoint, detect_faces=False).predict(**inputs)
    shipped = Predictor.from_pretrained(packed, detect_faces=False).predict(**inputs)
    assert full.label == shipped.label
    assert max(abs(full.probabilities[k] - shipped.probabilities[k]) for k in full.probabilities) < 2e-3  # float16
    manifest = json.loads((packed / MANIFEST).read_text())
    assert set(manifest["files"]) >= {"config.json", "model.safetensors", "MODEL_CARD.md"}
    assert not json.loads((packed / "config.json").read_text())["data"]["data_root"]


@pytest.mark.parametrize("damage", ["alter", "delete", "extra"])
def test_a_damaged_release_is_one_line_and_exit_2(packed, tmp_path, capsys, damage):
    copy = _copy(packed, tmp_path)
    if damage == "alter":
        data = bytearray((copy / "model.safetensors").read_bytes())
        data[-1] ^= 1
        (copy / "model.safetensors").write_bytes(bytes(data))
    elif damage == "delete":
        (copy / "config.json").unlink()
    else:
        (copy / "extra.safetensors").write_bytes(b"\0" * 8)
    with pytest.raises(ReleaseError, match={"alter": "does not match its SHA-256", "delete": "config.json is missing",
                                            "extra": "extra.safetensors is not listed"}[damage]):
        verify(copy)
    capsys.readouterr()
    assert infer.main(["--checkpoint", str(copy), "--text", "hello"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("infer.py: error:") and len(err.splitlines()) == 1


def test_without_a_shipped_model_the_default_says_how_to_build_it(monkeypatch, tmp_path, capsys):
    import bridge.release

    monkeypatch.setattr(bridge.release, "RELEASES", tmp_path)
    assert infer.main(["--text", "hello"]) == 2
    assert "python -m bridge.release build" in capsys.readouterr().err


def test_an_unknown_release_name_is_refused(capsys):
    assert infer.main(["--checkpoint", "no-such-release", "--text", "hello"]) == 2
    assert "neither a checkpoint directory nor a shipped release" in capsys.readouterr().err
    with pytest.raises(ReleaseError, match="shipped: "):
        locate("no-such-release")


def test_a_config_naming_a_missing_package_is_refused(monkeypatch):
    import bridge.tokenizer
    from bridge.config import BridgeConfig, TextConfig
    from bridge.release import pretrained_sources

    monkeypatch.setitem(bridge.tokenizer.ALIASES, "minilm-l6", "no_such_package_for_bridge")
    config = BridgeConfig(face=None, audio=None, text=TextConfig(weights="minilm-l6"))
    with pytest.raises(ReleaseError, match="needs the package no-such-package-for-bridge"):
        pretrained_sources(config)


# --- the shipped model ------------------------------------------------------------------------------

@needs_release
def test_the_shipped_release_is_sealed_small_and_pickle_free():
    verify(SHIPPED)
    files = json.loads((SHIPPED / MANIFEST).read_text())["files"]
    weights = sum(f["bytes"] for name, f in files.items() if name.endswith(".safetensors"))
    assert weights <= 20 * 2**20, f"{weights / 2**20:.1f} MiB of weights (budget 20 MB)"
    assert not [n for n in files if n.endswith((".pt", ".pth", ".pkl", ".bin", ".ckpt"))]
    assert {"config.json", "model.safetensors", "MODEL_CARD.md", "figures.json"} <= set(files)


@pytest.mark.parametrize("which", ["test model", pytest.param("shipped", marks=needs_release)])
def test_the_default_release_loads_offline_without_pickle(which, trained_checkpoint, tmp_path, monkeypatch):
    import pickle

    import torch
    from skimage import data

    if which == "test model":  # the test model packed as the default release: runs wherever none is shipped
        import bridge.release

        pack(trained_checkpoint, tmp_path / DEFAULT_RELEASE, DEFAULT_RELEASE)
        monkeypatch.setattr(bridge.release, "RELEASES", tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("the shipped model must load without network or pickle")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    from bridge.inference.predictor import Predictor

    predictor = Predictor.from_pretrained()
    assert predictor.model.config.labels == ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    result = predictor.predict(image=data.astronaut(), text="I can't believe we won, this is wonderful!")
    assert result.observed == ["face", "text"] and result.reconstructed == ["audio"]
    assert abs(sum(result.probabilities.values()) - 1) < 1e-5


# --- the model card's figures, reproduced on fixed subsets of the real test splits ----------------------

SUBSET_ROWS = ("face", "text-meld", "voice")
TOLERANCE = 0.5  # percentage points: the same weights and items, so only float summation order may differ


@needs_release
def test_the_shipped_release_scores_faces_over_the_views_it_was_validated_with():
    """Its config.json predates test-time views (``inference.test_flip``): it still means the mirror."""
    from bridge.inference.predictor import Predictor

    assert json.loads((SHIPPED / "config.json").read_text())["inference"] in ({"test_flip": True},
                                                                             {"test_views": "mirror"})
    assert Predictor.from_pretrained().test_views == "mirror"
    assert Predictor.from_pretrained(test_views="crops").test_views == "crops"


@needs_release
@pytest.mark.parametrize("row", SUBSET_ROWS)
def test_the_model_card_figures_reproduce_on_real_subsets(row, tmp_path):
    from bridge.data.paths import data_root

    figures = {r["row"]: r for r in json.loads((SHIPPED / "figures.json").read_text())["subset"]}
    expected = figures[row]
    needed = {"fer2013": "fer2013", "ravdess": "ravdess_speech_16k", "meld": "meld"}[expected["data"]]
    if not (data_root() / needed).is_dir():
        pytest.skip(f"real data absent: {data_root() / needed}")
    argv = expected["command"].split()[2:] + ["--output", str(tmp_path), "--json"]  # after "python evaluate.py"
    assert evaluate.main(argv) == 0
    report = json.loads((tmp_path / "results.json").read_text())
    got = report["results"][expected["observed"]]["reconstruct"]
    assert report["n"] == expected["n"]
    for metric in ("accuracy", "macro_f1", "weighted_f1", "uar"):
        assert abs(100 * got[metric] - expected[metric]) <= TOLERANCE, (metric, 100 * got[metric], expected[metric])


def test_build_trains_each_stage_resumably_then_packs(tmp_path, monkeypatch, capsys):
    import bridge.release
    from bridge.release.builder import build

    monkeypatch.setattr(bridge.release, "RELEASES", tmp_path / "releases")
    stage = tmp_path / "stage.json"
    stage.write_text(json.dumps({"limit": 40, "epochs": 1, "batch_size": 16, "no_cache": True}))
    card = tmp_path / "card.md"
    card.write_text("# card\n")
    recipe = tmp_path / "release.json"
    recipe.write_text(json.dumps({"name": "tiny", "card": str(card),
                                  "stages": [{"name": "one", "recipe": str(stage)}]}))
    build(recipe, tmp_path / "runs")
    assert "release stage one: training" in capsys.readouterr().out
    verify(tmp_path / "releases" / "tiny")
    assert (tmp_path / "releases" / "tiny" / "MODEL_CARD.md").read_text() == "# card\n"
    build(recipe, tmp_path / "runs")  # finished stages are not trained again
    assert "release stage one: finished" in capsys.readouterr().out
    assert not (tmp_path / "runs" / RunLock.NAME).exists()  # the lock goes with the build
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"stages": [{"name": "b", "recipe": str(stage), "init": {"face": "later"}}]}))
    with pytest.raises(ValueError, match="'later', which is not an earlier stage"):
        build(bad, tmp_path / "runs")
    # a stage recipe that leaves its schedule to train.py's defaults: the build could not tell it finished
    (tmp_path / "open.json").write_text(json.dumps({"limit": 40, "restarts": 1}))
    bad.write_text(json.dumps({"stages": [{"name": "b", "recipe": str(tmp_path / "open.json")}]}))
    with pytest.raises(ValueError, match="stage b's recipe .*open.json must name its epochs and restart_epochs"):
        build(bad, tmp_path / "runs")
    bad.write_text(json.dumps({"stages": [{"name": "b", "recipe": str(tmp_path / "gone.json")}]}))
    with pytest.raises(ValueError, match="stage b's recipe cannot be read"):
        build(bad, tmp_path / "runs")
    # every corpus a stage to train reads is looked for before the first stage trains
    (tmp_path / "faces.json").write_text(json.dumps({"data": "fer2013", "epochs": 1}))
    (tmp_path / "paired.json").write_text(json.dumps({"data": "paired", "epochs": 1}))
    bad.write_text(json.dumps({"stages": [{"name": "one", "recipe": str(stage)},
                                          {"name": "f", "recipe": str(tmp_path / "faces.json")},
                                          {"name": "p", "recipe": str(tmp_path / "paired.json")}]}))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"not under .*empty: fer2013 \(stage f, p\); ravdess \(stage p\); "
                                                r"meld \(stage p\); see docs/data.md"):
        build(bad, tmp_path / "runs2", data_root=str(tmp_path / "empty"))
    assert not (tmp_path / "runs2").exists()  # nothing trained, nothing written


def test_build_can_train_chosen_stages_and_packs_once_all_are_finished(tmp_path, monkeypatch, capsys):
    import bridge.release
    from bridge.release.builder import build

    monkeypatch.setattr(bridge.release, "RELEASES", tmp_path / "releases")
    stage = tmp_path / "stage.json"
    stage.write_text(json.dumps({"limit": 40, "epochs": 1, "batch_size": 16, "no_cache": True}))
    recipe = tmp_path / "release.json"
    recipe.write_text(json.dumps({"name": "tiny", "stages": [
        {"name": "one", "recipe": str(stage)}, {"name": "two", "recipe": str(stage)},
        {"name": "three", "recipe": str(stage), "init": {"face": "one"}}]}))
    runs = tmp_path / "runs"
    with pytest.raises(ValueError, match="no stage 'four' in .*; its stages: one, two, three"):
        build(recipe, runs, stages=["four"])
    with pytest.raises(ValueError, match="release stage three starts from stage one, which is not finished"):
        build(recipe, runs, stages=["three"])
    build(recipe, runs, stages=["two"])
    out = capsys.readouterr().out
    assert "release stage one: new, not trained now (--stages)" in out and "release stage two: training" in out
    assert not (tmp_path / "releases" / "tiny").exists()  # not every stage is finished: nothing is packed
    assert [line.split(",")[0] for line in bridge.release.builder.status(recipe, runs)[:3]] == [
        "one: new", "two: finished", "three: new"]
    build(recipe, runs, stages=["one", "three"])
    verify(tmp_path / "releases" / "tiny")  # the last missing stages trained: the release is packed


def test_status_says_how_far_each_stage_is(tmp_path, monkeypatch, capsys):
    import bridge.release

    monkeypatch.setattr(bridge.release, "RELEASES", tmp_path / "releases")
    runs = tmp_path / "runs"

    def history(folder: Path, scores: list[float], seconds: float | None = None) -> None:
        folder.mkdir(parents=True)
        (folder / "history.json").write_text(json.dumps([{"epoch": i + 1, "val": {"macro_f1": f},
                                                           **({"seconds": seconds} if seconds else {})}
                                                          for i, f in enumerate(scores)]))

    def recipe(name: str, **spec) -> str:
        (tmp_path / name).write_text(json.dumps(spec))
        return str(tmp_path / name)

    history(runs / "done", [0.5, 0.6])
    history(runs / "chain" / "cycles" / "1", [0.3, 0.4, 0.45], seconds=100)
    history(runs / "chain" / "cycles" / "2", [0.5], seconds=400)  # a slow epoch: the median of the last five counts
    (runs / "chain" / "cycles.json").write_text(json.dumps({"finished": False}))
    (runs / "chain" / "cycles" / "2" / "training_state.pt").write_bytes(b"")
    release = tmp_path / "release.json"
    release.write_text(json.dumps({"name": "tiny", "stages": [
        {"name": "done", "recipe": recipe("a.json", epochs=2)},
        {"name": "chain", "recipe": recipe("b.json", epochs=3, restarts=2, restart_epochs=2)},
        {"name": "later", "recipe": recipe("c.json", epochs=4)}]}))
    assert release_cli(["status", "--recipe", str(release), "--checkpoints", str(runs)]) == 0
    chain = ("4 of 7 epochs, cycle 2 of 3, best validation macro F1 50.0; "
             "about 5 min of training left at its last epochs' pace")  # 3 epochs at the median 100 s
    assert capsys.readouterr().out.splitlines() == [
        "done: finished, 2 of 2 epochs, best validation macro F1 60.0",
        f"chain: interrupted, {chain}",
        "later: new, 0 of 4 epochs",
        "release tiny: not packed"]
    # while a build runs there, the stage it trains says so, and a second build is refused
    import subprocess
    import sys

    holder = ("import sys, time; from bridge.cli import RunLock; "
              "build = RunLock(sys.argv[1]); build.note(sys.argv[2]); "
              "stage = RunLock(sys.argv[3]) if sys.argv[3] != '-' else None; print('held', flush=True); time.sleep(60)")

    def hold(stage: str, training: bool) -> subprocess.Popen:
        other = subprocess.Popen([sys.executable, "-c", holder, str(runs), stage, str(runs / stage) if training else "-"],
                                 stdout=subprocess.PIPE, text=True)
        assert other.stdout.readline().strip() == "held"
        return other

    other = hold("chain", training=True)
    try:
        assert release_cli(["status", "--recipe", str(release), "--checkpoints", str(runs)]) == 0
        assert capsys.readouterr().out.splitlines()[1] == (
            f"chain: training (process {other.pid}), {chain}")
        assert release_cli(["build", "--recipe", str(release), "--checkpoints", str(runs)]) == 2
        assert f"{runs} is in use by another release build (process {other.pid})" in capsys.readouterr().err
    finally:
        other.kill()
        other.wait()
    other = hold("later", training=False)  # a build of chosen stages, before its train.py run takes the folder
    try:
        assert release_cli(["status", "--recipe", str(release), "--checkpoints", str(runs)]) == 0
        assert capsys.readouterr().out.splitlines()[1:3] == [
            f"chain: interrupted, {chain}",
            f"later: starting (build process {other.pid}), 0 of 4 epochs"]
    finally:
        other.kill()
        other.wait()
    assert release_cli(["status", "--recipe", str(release), "--checkpoints", str(runs)]) == 0
    assert capsys.readouterr().out.splitlines()[1:3] == [  # the process is gone, and so is its lock
        f"chain: interrupted, {chain}", "later: new, 0 of 4 epochs"]


def test_pack_refuses_to_overwrite_a_folder_that_is_not_a_release(trained_checkpoint, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="is not a release folder"):
        pack(trained_checkpoint, tmp_path, "x")
    assert (tmp_path / "keep.txt").read_text() == "mine"
