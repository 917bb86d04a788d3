"""infer.py on videos: the timeline (printed, and as CSV, JSON and PNG), the per-modality
explanation, the documented --json schema, and live mode on a video file written headless."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

import infer
from bridge.data.synthetic import SyntheticEmotions
from bridge.media import video_info, write_video

SECONDS, FPS, RATE = 4, 10, 16_000
PREDICTION_FIELDS = {"label": str, "probabilities": dict, "observed": list, "reconstructed": list, "notes": list,
                     "face_frames": (dict, type(None)), "explanation": dict}
EXPLANATION_FIELDS = {"alone_label": str, "alone_probabilities": dict, "top_change_without": (float, type(None))}
ROW_FIELDS = {"start": float, "end": float, "label": (str, type(None)), "probabilities": dict, "observed": list,
              "reconstructed": list, "face_frames": (dict, type(None))}


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A 4 s video of synthetic face crops (one per second) on a background with synthetic
    speech, a video of the astronaut photo for the face detector, and a sound-only file."""
    import soundfile as sf
    from skimage.data import astronaut

    d = tmp_path_factory.mktemp("video")
    samples = SyntheticEmotions(SECONDS, split="test", seed=1)
    frames = np.full((SECONDS * FPS, 120, 160, 3), 90, np.uint8)
    for k in range(len(frames)):
        frames[k, 12:108, 32:128] = cv2.resize(samples[k // FPS].face[0], (96, 96))[..., None]
    audio = np.concatenate([np.resize(samples[i].audio, RATE) for i in range(SECONDS)]).astype(np.float32)
    write_video(d / "clip.mp4", frames, fps=FPS, audio=audio, sample_rate=RATE)
    photo = cv2.resize(astronaut(), (256, 256))
    write_video(d / "astronaut.mp4", np.stack([np.roll(photo, 2 * k, axis=1) for k in range(20)]), fps=FPS)
    sf.write(d / "voice.wav", audio[:RATE], RATE)
    return d


def _check_types(obj: dict, fields: dict) -> None:
    assert set(obj) == set(fields)
    for key, kind in fields.items():
        assert isinstance(obj[key], kind), (key, obj[key])


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("infer.py: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_timeline_prints_and_writes_csv_json_png(trained_checkpoint, media, tmp_path, capsys):
    out = tmp_path / "timeline"
    rc = infer.main(["--checkpoint", str(trained_checkpoint), "--video", str(media / "clip.mp4"), "--window", "2",
                     "--hop", "1", "--no-face-detection", "--timeline-dir", str(out), "--json"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((out / "timeline.json").read_text())
    assert printed["window"] == 2 and printed["hop"] == 1 and printed["labels"][0] == "angry"
    rows = printed["timeline"]
    assert [(r["start"], r["end"]) for r in rows] == [(0, 2), (1, 3), (2, 4)]
    for row in rows:
        _check_types(row, ROW_FIELDS)
        assert row["observed"] == ["face", "audio"] and row["reconstructed"] == ["text"]
        assert row["label"] == max(row["probabilities"], key=row["probabilities"].get)
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    table = list(csv.DictReader((out / "timeline.csv").open()))
    assert [r["label"] for r in table] == [r["label"] for r in rows]
    assert float(table[1]["sad"]) == pytest.approx(rows[1]["probabilities"]["sad"], abs=1e-5)
    png = (out / "timeline.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert {p.name for p in out.iterdir()} == {"timeline.csv", "timeline.json", "timeline.png"}


def test_timeline_windows_see_only_their_own_frames(trained_checkpoint, media, capsys):
    """Detected faces per window: each 1 s window gets its own frames, and the text is in every window."""
    rc = infer.main(["--checkpoint", str(trained_checkpoint), "--video", str(media / "astronaut.mp4"),
                     "--window", "1", "--text", "what a wonderful day", "--json"])
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)["timeline"]
    assert [r["start"] for r in rows] == [0, 0.5, 1.0]  # the hop defaults to half the window
    for row in rows:
        assert row["face_frames"]["searched"] == 8 and row["face_frames"]["with_face"] >= 6
        assert row["observed"] == ["face", "text"] and row["reconstructed"] == ["audio"]


def test_timeline_human_readable(trained_checkpoint, media, capsys):
    rc = infer.main(["--checkpoint", str(trained_checkpoint), "--video", str(media / "clip.mp4"), "--window", "4",
                     "--no-face-detection"])
    assert rc == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "timeline: 1 windows of 4 s, 2 s apart" and out[2].split()[:2] == ["0.00", "4.00"]


@pytest.mark.parametrize("case", ["window longer than the video", "zero window", "negative hop", "no video frames",
                                  "window without video"])
def test_timeline_bad_input_is_one_line_exit_2_and_writes_nothing(case, trained_checkpoint, media, tmp_path, capsys):
    video = str(media / ("voice.wav" if case == "no video frames" else "clip.mp4"))
    window = {"window longer than the video": ["--window", "5"], "zero window": ["--window", "0"],
              "negative hop": ["--window", "2", "--hop", "-1"]}.get(case, ["--window", "2"])
    source = ["--text", "hello"] if case == "window without video" else ["--video", video]
    out = tmp_path / "timeline"
    rc = infer.main(["--checkpoint", str(trained_checkpoint), *source, *window, "--timeline-dir", str(out),
                     "--output", str(tmp_path / "result.json")])
    assert rc == 2
    err = _one_line_error(capsys)
    expected = {"window longer than the video": "longer than the video", "zero window": "must be positive",
                "negative hop": "must be positive", "no video frames": "no video stream",
                "window without video": "--window needs --video"}[case]
    assert expected in err
    assert not out.exists() and not (tmp_path / "result.json").exists()


def test_explanation_covers_observed_modalities_only(trained_checkpoint, media, capsys):
    rc = infer.main(["--checkpoint", str(trained_checkpoint), "--video", str(media / "clip.mp4"),
                     "--no-face-detection", "--text", "I am so angry with you", "--json"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    _check_types(result, PREDICTION_FIELDS)
    assert set(result["explanation"]) == set(result["observed"]) == {"face", "audio", "text"}
    for e in result["explanation"].values():
        _check_types(e, EXPLANATION_FIELDS)
        assert e["alone_label"] == max(e["alone_probabilities"], key=e["alone_probabilities"].get)
        assert sum(e["alone_probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert -1.0 <= e["top_change_without"] <= 1.0
    # leaving one of three out differs from the full prediction, and from each single modality
    assert any(abs(e["top_change_without"]) > 1e-4 for e in result["explanation"].values())


def test_explanation_of_a_single_modality_is_the_prediction(trained_checkpoint, capsys):
    rc = infer.main(["--checkpoint", str(trained_checkpoint), "--text", "what a lovely surprise", "--json"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    _check_types(result, PREDICTION_FIELDS)
    assert list(result["explanation"]) == ["text"]
    text = result["explanation"]["text"]
    assert text["top_change_without"] is None and text["alone_label"] == result["label"]
    for name, p in result["probabilities"].items():
        assert text["alone_probabilities"][name] == pytest.approx(p, abs=1e-6)


def test_explanation_in_human_readable_output(trained_checkpoint, media, capsys):
    rc = infer.main(["--checkpoint", str(trained_checkpoint), "--audio", str(media / "voice.wav"),
                     "--text", "I am scared"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "per modality" in out and "face " not in out.split("per modality")[1]
    assert out.count("left out: ") == 2 and "  audio    alone: " in out and "  text     alone: " in out


def test_webcam_mode_on_a_video_file_writes_an_annotated_video(trained_checkpoint, media, tmp_path, capsys):
    saved = tmp_path / "annotated.mp4"
    rc = infer.main(["--checkpoint", str(trained_checkpoint), "--webcam", str(media / "astronaut.mp4"),
                     "--every", "5", "--save-video", str(saved)])
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" (")[0] for line in lines[:4]] == ["frame 0", "frame 5", "frame 10", "frame 15"]
    assert "face found" in lines[0] and lines[-1].startswith("20 frames")
    info = video_info(saved)
    assert (info.width, info.height) == (256, 256) and info.num_frames == 20
    capture = cv2.VideoCapture(str(saved))
    ok, first = capture.read()
    capture.release()
    assert ok
    original = cv2.VideoCapture(str(media / "astronaut.mp4"))
    _, plain = original.read()
    original.release()
    assert np.abs(first.astype(int) - plain.astype(int)).max() > 100  # the box and label were drawn
    assert [p.name for p in tmp_path.iterdir()] == ["annotated.mp4"]  # no temporary file left


def test_webcam_unopenable_camera_is_one_line_exit_2(trained_checkpoint, tmp_path, capsys):
    saved = tmp_path / "annotated.mp4"
    rc = infer.main(["--checkpoint", str(trained_checkpoint), "--webcam", "57", "--save-video", str(saved)])
    assert rc == 2
    assert "cannot open camera 57" in _one_line_error(capsys)
    assert not saved.exists()


def test_webcam_without_display_says_so(trained_checkpoint, media, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    rc = infer.main(["--checkpoint", str(trained_checkpoint), "--webcam", str(media / "astronaut.mp4")])
    assert rc == 2
    assert "--save-video" in _one_line_error(capsys)
