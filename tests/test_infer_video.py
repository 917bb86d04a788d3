"""infer.py on videos: the timeline (printed, and as CSV, JSON and PNG), the per-modality
explanation, the documented --json schema, and live mode on a video file written headless, with
the microphone (a stand-in sounddevice) or the file's own sound track as the audio modality."""

from __future__ import annotations

import csv
import json
import sys
import types

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
              "reconstructed": list, "face_frames": (dict, type(None)), "notes": list}


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


def test_timeline_windows_see_only_their_own_frames(trained_checkpoint, media, tmp_path, capsys):
    """Detected faces per window: each 1 s window gets its own frames (no face in the first second,
    the astronaut in the second), and the text is in every window."""
    from skimage.data import astronaut

    photo = cv2.resize(astronaut(), (256, 256))
    frames = np.stack([np.full_like(photo, 90)] * FPS + [np.roll(photo, 2 * k, axis=1) for k in range(FPS)])
    write_video(tmp_path / "later.mp4", frames, fps=FPS)
    rc = infer.main(["--checkpoint", str(trained_checkpoint), "--video", str(tmp_path / "later.mp4"),
                     "--window", "1", "--text", "what a wonderful day", "--json"])
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)["timeline"]
    assert [r["start"] for r in rows] == [0, 0.5, 1.0]  # the hop defaults to half the window
    assert [r["face_frames"]["searched"] for r in rows] == [8, 8, 8]
    first, middle, last = (r["face_frames"]["with_face"] for r in rows)
    assert first == 0 and 0 < middle < 8 and last >= 6  # the face is found only where it is
    assert rows[0]["observed"] == ["text"] and rows[0]["reconstructed"] == ["face", "audio"]
    for row in rows[1:]:
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


def _fake_sounddevice(blocks: list[np.ndarray], error: str | None = None):
    """A stand-in ``sounddevice`` whose input stream delivers ``blocks`` to its callback on start."""
    fake = types.ModuleType("sounddevice")

    class PortAudioError(Exception):
        pass

    class InputStream:
        def __init__(self, **kwargs):
            if error is not None:
                raise PortAudioError(error)
            self.kwargs, self.closed = kwargs, False
            fake.streams.append(self)

        def start(self):
            for block in blocks:
                self.kwargs["callback"](block[:, None].astype(np.float32), len(block), None, None)

        def stop(self):
            pass

        def close(self):
            self.closed = True

    fake.PortAudioError, fake.InputStream, fake.streams = PortAudioError, InputStream, []
    return fake


def test_microphone_keeps_the_last_seconds_of_sound(monkeypatch):
    from bridge.inference.live import MicrophoneAudio

    t = np.arange(RATE) / RATE
    sound = (0.5 * np.sin(2 * np.pi * 440 * t) + np.random.default_rng(0).normal(0, 0.05, RATE)).astype(np.float32)
    blocks = np.split(sound[:9600], 6) + [sound[9600:]]  # six small blocks, then one larger than the buffer
    fake = _fake_sounddevice(blocks[:3])
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    with MicrophoneAudio(device="USB", seconds=0.25, sample_rate=RATE) as mic:
        stream = fake.streams[0]
        assert stream.kwargs["samplerate"] == RATE and stream.kwargs["channels"] == 1
        assert stream.kwargs["dtype"] == "float32" and stream.kwargs["device"] == "USB"
        np.testing.assert_array_equal(mic.window(), sound[800:4800])  # 3 x 1600 samples: the last 4000
        for block in blocks[3:6]:
            stream.kwargs["callback"](block[:, None], len(block), None, None)
        np.testing.assert_array_equal(mic.window(), sound[9600 - 4000:9600])
        stream.kwargs["callback"](blocks[6][:, None], len(blocks[6]), None, None)
        window = mic.window()
        assert window.dtype == np.float32 and window.shape == (4000,)
        np.testing.assert_array_equal(window, sound[-4000:])
    assert stream.closed
    monkeypatch.setitem(sys.modules, "sounddevice", _fake_sounddevice([]))
    with MicrophoneAudio(seconds=0.25, sample_rate=RATE) as silent:
        assert silent.window() is None  # nothing heard yet


def test_webcam_listen_on_a_camera_uses_the_microphone(trained_checkpoint, media, tmp_path, monkeypatch, capsys):
    import bridge.inference.live

    noise = np.random.default_rng(1).normal(0, 0.1, RATE).astype(np.float32)
    fake = _fake_sounddevice([noise])
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    monkeypatch.setattr(bridge.inference.live, "open_capture",  # no camera here: the astronaut video plays camera 0
                        lambda source: (cv2.VideoCapture(str(media / "astronaut.mp4")), f"camera {source}"))
    def memos(predictor) -> set:  # the memos the model's encoders write to (None: not memoising)
        return {getattr(e, "memo", None) for e in predictor.model.encoders.values()}

    memo_during, real_predict = [], bridge.inference.live._predict
    monkeypatch.setattr(bridge.inference.live, "_predict",
                        lambda *a, **k: memo_during.append(memos(a[0])) or real_predict(*a, **k))
    saved = tmp_path / "annotated.mp4"
    rc = infer.main(["--checkpoint", str(trained_checkpoint), "--webcam", "0", "--listen", "2", "--every", "5",
                     "--save-video", str(saved)])
    assert rc == 0
    assert memo_during and all(m == {None} for m in memo_during)  # live inputs never repeat: no memo
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and all(line.endswith("(face found, audio)") for line in lines[:4])
    assert fake.streams[0].kwargs["device"] == 2 and fake.streams[0].kwargs["samplerate"] == RATE
    assert fake.streams[0].closed and video_info(saved).num_frames == 20


def test_live_update_predicts_from_the_audio_window(trained_checkpoint, media):
    from bridge.inference.live import _predict
    from bridge.inference.predictor import Predictor

    predictor = Predictor.from_pretrained(trained_checkpoint)
    blank = np.full((120, 160, 3), 90, np.uint8)  # no face found in it
    wave = np.random.default_rng(2).normal(0, 0.1, RATE).astype(np.float32)
    prediction, observed = _predict(predictor, blank, None, None, None, wave, RATE)
    assert observed == ["audio"] == prediction.observed
    expected = predictor.predict(audio=wave, sample_rate=RATE)
    assert prediction.probabilities == pytest.approx(expected.probabilities, abs=1e-6)
    assert _predict(predictor, blank, None, None, prediction) == (prediction, [])  # nothing new: the last kept


def test_webcam_listen_on_a_video_file_plays_its_sound_track(trained_checkpoint, media, tmp_path, capsys):
    saved = tmp_path / "annotated.mp4"
    rc = infer.main(["--checkpoint", str(trained_checkpoint), "--webcam", str(media / "clip.mp4"), "--listen",
                     "--save-video", str(saved)])
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" (")[0] for line in lines[:4]] == ["frame 0", "frame 10", "frame 20", "frame 30"]
    assert all(line.split(": ")[1] != "-" and line.endswith(", audio)") for line in lines[:4])
    assert lines[-1] == f"40 frames, annotated video written to {saved}" and video_info(saved).num_frames == 40


def test_track_audio_follows_the_frames(media):
    from bridge.inference.live import TrackAudio
    from bridge.media import MediaError, audio_from_video

    wave = audio_from_video(media / "clip.mp4", RATE)
    track = TrackAudio(media / "clip.mp4", FPS, seconds=1.0, sample_rate=RATE)
    np.testing.assert_array_equal(track.window(0), wave[:RATE // FPS])  # the first frame's 0.1 s
    np.testing.assert_array_equal(track.window(9), wave[:RATE])
    np.testing.assert_array_equal(track.window(39), wave[3 * RATE:4 * RATE])
    assert track.window(1000) is None  # long after the sound ended
    with pytest.raises(MediaError, match="astronaut.mp4: no audio stream"):
        TrackAudio(media / "astronaut.mp4", FPS)


def test_listen_needs_a_raw_audio_modality(tmp_path):
    from types import SimpleNamespace

    from bridge.config import FaceConfig
    from bridge.inference.live import run_live
    from bridge.inference.predictor import InputError

    predictor = SimpleNamespace(config=SimpleNamespace(face=FaceConfig(), audio=None))
    with pytest.raises(InputError, match="--listen needs a checkpoint with a raw audio modality"):
        run_live(predictor, "0", save_video=tmp_path / "x.mp4", listen="default")


@pytest.mark.parametrize("case", ["no sounddevice", "no microphone", "silent video", "device for a video file",
                                  "without webcam"])
def test_listen_problems_are_one_line_exit_2(case, trained_checkpoint, media, tmp_path, monkeypatch, capsys):
    if case == "no sounddevice":
        monkeypatch.setitem(sys.modules, "sounddevice", None)  # import raises ImportError
    elif case == "no microphone":
        monkeypatch.setitem(sys.modules, "sounddevice", _fake_sounddevice([], error="Error querying device -1"))
    saved = tmp_path / "annotated.mp4"
    source = {"silent video": ["--webcam", str(media / "astronaut.mp4"), "--listen"],
              "device for a video file": ["--webcam", str(media / "clip.mp4"), "--listen", "3"],
              "without webcam": ["--text", "hello", "--listen"]}.get(case, ["--webcam", "0", "--listen"])
    output = ["--save-video", str(saved)] if "--webcam" in source else []
    rc = infer.main(["--checkpoint", str(trained_checkpoint), *source, *output])
    assert rc == 2
    expected = {"no sounddevice": "cannot listen: sounddevice is not installed",
                "no microphone": "cannot listen: no microphone at the default input (Error querying device -1)",
                "silent video": "astronaut.mp4: no audio stream", "device for a video file": "give --listen alone",
                "without webcam": "--listen needs --webcam"}[case]
    assert expected in _one_line_error(capsys)
    assert not saved.exists() and list(tmp_path.iterdir()) == []
