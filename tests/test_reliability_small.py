"""The small reliability fixes (issue 27's low list): each a one-line message or a plain fix."""

from __future__ import annotations

import json

import numpy as np
import pytest

import evaluate
from bridge.commands import infer
import train


def _err(capsys) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_save_video_folder_is_refused_before_the_clip_runs(tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not decoded: the check comes first")
    assert infer.main(["--checkpoint", "missing", "--webcam", str(clip), "--save-video", str(tmp_path)]) == 2
    assert f"cannot write {tmp_path} (Is a directory)" in _err(capsys)


@pytest.mark.parametrize("flag", ["--image", "--video", "--audio"])
def test_a_folder_given_as_a_file_says_so(flag, tmp_path, capsys):
    assert infer.main(["--checkpoint", "missing", flag, str(tmp_path)]) == 2
    assert f"{flag} {tmp_path} is a folder, not a file" in _err(capsys)


def test_text_at_files_literals_and_byte_order_marks(tmp_path, capsys):
    assert infer._read_text("@@home at last") == "@home at last"
    bom = tmp_path / "bom.txt"
    bom.write_bytes("\ufeffI made it!".encode("utf-8"))
    assert infer._read_text(f"@{bom}") == "I made it!"
    assert infer._read_text(None, str(bom)) == "I made it!"
    assert infer.main(["--checkpoint", "missing", "--text", f"@{tmp_path}"]) == 2
    assert f"text file {tmp_path} is a folder, not a file" in _err(capsys)
    from bridge.inference.items import Item

    assert Item("x", {"text": bom}).read_text() == "I made it!"


@pytest.mark.parametrize("script, argv, message", [
    (infer, ["--checkpoint", "x", "--text", "hi", "--max-seconds", "-1"], "--max-seconds must be at least 0"),
    (train, ["--lr", "-1"], "--lr must be positive, got -1"),
    (train, ["--limit", "0"], "--limit must be at least 1"),
    (evaluate, ["--checkpoint", ".", "--limit", "0"], "--limit must be at least 1"),
])
def test_nonsense_numbers_are_one_line_errors(script, argv, message, capsys):
    assert script.main(argv) == 2
    assert message in _err(capsys)


def test_ensemble_mismatch_names_modalities_plainly():
    from bridge.config import create_config
    from bridge.ensemble import Ensemble
    from bridge.model import BridgeModel

    full = BridgeModel(create_config("tiny"))
    text_only = BridgeModel(create_config("tiny", face=None, audio=None))
    with pytest.raises(ValueError) as e:
        Ensemble([full, text_only], ["a", "b"])
    assert "b has other modalities than a: text vs face, audio, text" in str(e.value)
    assert "Modality." not in str(e.value)


def test_folder_batch_skips_an_earlier_timeline_png(tmp_path):
    from bridge.inference.items import find_items

    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "timeline.png").write_bytes(b"png")
    (tmp_path / "timeline.json").write_text("{}")
    items, ignored = find_items(tmp_path)
    assert [i.id for i in items] == ["a"] and ignored == 2


def test_semicolon_manifests_are_read(tmp_path):
    from bridge.data.manifest import read_manifest

    (tmp_path / "m.csv").write_text("id;label;split;text\nx;joy;train;so glad\ny;anger;train;go away\n")
    corpus = read_manifest(tmp_path / "m.csv", "train")
    assert [s.text for s in corpus] == ["so glad", "go away"]


def test_a_timeline_where_every_window_failed_exits_2(trained_checkpoint, tmp_path, capsys):
    from bridge.media import write_video

    video = tmp_path / "blank.mp4"
    write_video(video, np.full((50, 64, 64, 3), 128, np.uint8), fps=25)  # no face, no sound track
    assert infer.main(["--checkpoint", str(trained_checkpoint), "--video", str(video), "--window", "1",
                       "--json"]) == 2
    captured = capsys.readouterr()
    assert "no window of" in captured.err and json.loads(captured.out)["timeline"]


def test_live_marks_a_kept_prediction_as_stale(trained_checkpoint, tmp_path):
    import cv2
    from skimage.data import astronaut

    from bridge.inference.live import run_live
    from bridge.media import write_video
    from bridge.inference.predictor import Predictor

    face = cv2.resize(astronaut(), (256, 256))
    frames = np.stack([face] * 5 + [np.full_like(face, 128)] * 5)  # a face, then none
    write_video(tmp_path / "clip.mp4", frames, fps=10)
    lines = []
    run_live(Predictor.from_pretrained(trained_checkpoint), str(tmp_path / "clip.mp4"), every=5,
             save_video=tmp_path / "out.mp4", report=lines.append)
    assert "kept from before" not in lines[0] and "face found" in lines[0]
    assert "(kept from before) (no face)" in lines[1]


def test_timeline_png_spans_the_windows_and_shows_modalities(monkeypatch, tmp_path):
    import bridge.plots
    from bridge.inference.timeline import TimelineRow

    figures = []
    monkeypatch.setattr(bridge.plots, "save_figure", lambda fig, path: figures.append(fig))
    p = {"happy": 0.7, "sad": 0.3}
    rows = [TimelineRow(0, 2, "happy", p, ["face", "audio"], ["text"]),
            TimelineRow(1, 3, "happy", p, ["face"], ["audio", "text"]),
            TimelineRow(2, 4, "happy", p, ["audio"], ["face", "text"])]
    bridge.plots.plot_timeline(rows, ["happy", "sad"], tmp_path / "t.png")
    top, strip = figures[0].axes[:2]
    assert top.get_xlim() == (0, 4)  # from the first window's start to the last one's end
    assert [t.get_text() for t in strip.get_yticklabels()] == ["face", "audio", "text"]


def test_curves_mark_the_kept_epoch(monkeypatch, tmp_path):
    import bridge.plots

    figures = []
    monkeypatch.setattr(bridge.plots, "save_figure", lambda fig, path: figures.append(fig))
    row = lambda e, f: {"epoch": e, "train": {"loss": 1.0, "accuracy": 0.5, "macro_f1": 0.4},  # noqa: E731
                        "val": {"loss": 1.0, "accuracy": 0.5, "macro_f1": f}}
    bridge.plots.plot_curves([row(1, 0.2), row(2, 0.5), row(3, 0.4)], tmp_path / "c.png", kept=2)
    labels = [line.get_label() for ax in figures[0].axes for line in ax.get_lines()]
    assert labels.count("kept (epoch 2)") == 3


def test_training_curves_mark_the_epoch_the_checkpoint_holds(tmp_path, monkeypatch):
    import bridge.plots

    seen = []
    real = bridge.plots.plot_curves
    monkeypatch.setattr(bridge.plots, "plot_curves", lambda h, p, kept=None: seen.append(kept) or real(h, p, kept))
    assert train.main(["--limit", "8", "--batch-size", "8", "--epochs", "2", "--no-cache",
                       "--output", str(tmp_path / "run")]) == 0
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    assert seen[-1] == meta["best"]["epoch"]
