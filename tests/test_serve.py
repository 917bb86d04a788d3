"""The web app's HTTP API and live stream (bridge.serve) through FastAPI's test client, on the
tiny checkpoint: the JSON of ``POST /v1/predict`` is exactly ``infer.py --json``'s, field by field;
the timeline matches ``infer.py --window``; every refusal is a 4xx with one line of JSON; temporary
files are gone after each request; concurrent requests do not mix; ``infer.py --serve`` checks
its flags and loads the model once."""

from __future__ import annotations

import json
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

import bridge
import infer
from bridge.media import write_video
from bridge.inference.predictor import Predictor
from bridge.serve import ServeLimits, create_app
from test_infer_video import EXPLANATION_FIELDS, PREDICTION_FIELDS, ROW_FIELDS  # the schema infer.py --json writes

RATE = 16_000


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    """A real photo with a face (skimage's astronaut), a speech-like WAV, a 3 s video of the photo
    moving with a sound track, and a silent text-less PNG with no face."""
    import soundfile as sf
    from skimage.data import astronaut

    d = tmp_path_factory.mktemp("serve-media")
    photo = cv2.resize(astronaut(), (256, 256))
    cv2.imwrite(str(d / "face.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(d / "blank.png"), np.full((64, 64, 3), 128, np.uint8))
    t = np.arange(2 * RATE) / RATE
    voice = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    sf.write(d / "voice.wav", voice, RATE)
    frames = np.stack([np.roll(photo, 3 * k, axis=1) for k in range(30)])
    write_video(d / "clip.mp4", frames, fps=10, audio=np.resize(voice, 3 * RATE), sample_rate=RATE)
    write_video(d / "silent.mp4", frames[:10], fps=10)
    return d


@pytest.fixture(scope="module")
def predictor(trained_checkpoint) -> Predictor:
    return Predictor.from_pretrained(trained_checkpoint)


@pytest.fixture
def temp_dir(tmp_path) -> Path:
    d = tmp_path / "requests"
    d.mkdir()
    return d


@pytest.fixture
def client(predictor, temp_dir) -> TestClient:
    return TestClient(create_app(predictor, ServeLimits(max_upload_bytes=2 * 2**20, max_seconds=10.0,
                                                        max_text_chars=200), temp_dir=temp_dir))


def _files(media: Path, **fields: str) -> dict:
    return {field: (name, (media / name).read_bytes()) for field, name in fields.items()}


def _check_types(obj: dict, fields: dict) -> None:
    assert set(obj) == set(fields)
    for key, kind in fields.items():
        assert isinstance(obj[key], kind), (key, obj[key])


def _check_prediction(p: dict, labels: list[str]) -> None:
    _check_types(p, PREDICTION_FIELDS)
    assert list(p["probabilities"]) == labels
    assert abs(sum(p["probabilities"].values()) - 1) < 1e-5
    assert p["label"] == max(p["probabilities"], key=p["probabilities"].get)
    assert set(p["explanation"]) == set(p["observed"])
    for e in p["explanation"].values():
        _check_types(e, EXPLANATION_FIELDS)
        assert list(e["alone_probabilities"]) == labels
    if p["face_frames"] is not None:
        assert set(p["face_frames"]) == {"searched", "with_face"}


def _error(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    assert "\n" not in body["error"] and "bridge-serve-" not in body["error"]  # one line, no temp path
    return body["error"]


def _infer_json(capsys, *args: str) -> dict:
    capsys.readouterr()
    assert infer.main(list(args) + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _approx(a, b):
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b)
        for k in a:
            _approx(a[k], b[k])
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b):
            _approx(x, y)
    elif isinstance(a, float):
        assert b == pytest.approx(a, abs=1e-5)
    else:
        assert a == b


def test_healthz_and_page(client, predictor):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "version": bridge.__version__, "labels": list(predictor.config.labels),
                        "modalities": ["face", "audio", "text"], "inputs": ["image", "video", "audio", "text"]}
    page = client.get("/")
    assert page.status_code == 200 and 'id="live-view"' in page.text and 'id="files-form"' in page.text
    for asset in ("app.js", "style.css", "pcm-worklet.js"):
        assert client.get(f"/static/{asset}").status_code == 200
    assert "http" not in client.get("/static/app.js").text.replace("https:", "")  # nothing from a CDN
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/v1/predict", "/v1/timeline", "/healthz"} <= set(spec["paths"])


@pytest.mark.parametrize("fields", [
    {"image": "face.png"},
    {"audio": "voice.wav"},
    {"video": "clip.mp4"},
    {"image": "face.png", "audio": "voice.wav"},
    {"video": "silent.mp4"},
    {"image": "blank.png", "audio": "voice.wav"},
])
@pytest.mark.parametrize("text", [None, "I can't believe we won, this is wonderful"])
def test_predict_is_infer_json(client, predictor, media, trained_checkpoint, capsys, fields, text):
    data = {"text": text} if text is not None else {}
    r = client.post("/v1/predict", files=_files(media, **fields), data=data)
    assert r.status_code == 200, r.text
    p = r.json()
    _check_prediction(p, list(predictor.config.labels))
    args = ["--checkpoint", str(trained_checkpoint)]
    for field, name in fields.items():
        args += [f"--{field}", str(media / name)]
    if text is not None:
        args += ["--text", text]
    _approx(_infer_json(capsys, *args), p)  # the same object as infer.py --json, key order included
    assert ("text" in p["observed"]) == (text is not None)


def test_predict_text_only_and_observed_lists(client, predictor, media):
    p = client.post("/v1/predict", data={"text": "so sad and tired"}).json()
    assert p["observed"] == ["text"] and p["reconstructed"] == ["face", "audio"] and p["face_frames"] is None
    assert p["explanation"]["text"]["top_change_without"] is None
    p = client.post("/v1/predict", files=_files(media, video="clip.mp4")).json()
    assert p["observed"] == ["face", "audio"] and p["reconstructed"] == ["text"]
    assert p["face_frames"]["with_face"] > 0
    for e in p["explanation"].values():
        assert isinstance(e["top_change_without"], float)
    p = client.post("/v1/predict", files=_files(media, image="blank.png", audio="voice.wav")).json()
    assert p["observed"] == ["audio"] and p["notes"] == ["no face found in the image"]
    assert p["face_frames"] == {"searched": 1, "with_face": 0}


def test_timeline_json_and_csv_match_infer(client, predictor, media, trained_checkpoint, tmp_path, capsys):
    r = client.post("/v1/timeline", files=_files(media, video="clip.mp4"), data={"window": "1", "hop": "0.5"})
    assert r.status_code == 200, r.text
    t = r.json()
    assert set(t) == {"labels", "window", "hop", "timeline"} and t["window"] == 1 and t["hop"] == 0.5
    assert len(t["timeline"]) == 5
    for row in t["timeline"]:
        _check_types(row, ROW_FIELDS)
    expected = _infer_json(capsys, "--checkpoint", str(trained_checkpoint), "--video", str(media / "clip.mp4"),
                           "--window", "1", "--hop", "0.5", "--timeline-dir", str(tmp_path))
    _approx(expected, t)
    csv = client.post("/v1/timeline", files=_files(media, video="clip.mp4"),
                      data={"window": "1", "hop": "0.5", "format": "csv"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv.headers["content-disposition"]
    assert csv.text == (tmp_path / "timeline.csv").read_text()
    default = client.post("/v1/timeline", files=_files(media, video="clip.mp4")).json()
    assert default["window"] == 2.0 and default["hop"] == 1.0  # hop: half the window


def test_errors_are_one_line_json(client, media):
    post = client.post
    assert "no input" in _error(post("/v1/predict"), 400)
    assert "unknown field 'photo'" in _error(post("/v1/predict", data={"photo": "x"}), 400)
    assert "more than once" in _error(post("/v1/predict", files=[("image", ("a.png", b"1")),
                                                                 ("image", ("b.png", b"2"))]), 400)
    assert "either an image or a video" in _error(post("/v1/predict", files=_files(
        media, image="face.png", video="clip.mp4")), 400)
    assert "text is empty" in _error(post("/v1/predict", data={"text": "   "}), 400)
    assert _error(post("/v1/predict", files={"text": ("t.txt", b"hello")}), 422).startswith("text:")
    assert "text too long: 201 characters > 200" in _error(post("/v1/predict", data={"text": "x" * 201}), 413)
    message = _error(post("/v1/predict", files={"image": ("holiday.png", b"not a png at all")}), 422)
    assert message.startswith("image (holiday.png): unreadable")
    assert _error(post("/v1/predict", files={"audio": ("a.wav", b"RIFF....WAVEfmt ")}), 422).startswith("audio (a.wav):")
    assert "no video stream" in _error(post("/v1/predict", files={"video": ("v.mp4", (media / "voice.wav").read_bytes())}),
                                       422)
    assert "zero-length" in _error(post("/v1/predict", files={"audio": ("empty.wav", b"")}), 422)
    # timeline
    assert _error(post("/v1/timeline", data={"window": "1"}), 422).startswith("video:")
    assert "longer than the video" in _error(post("/v1/timeline", files=_files(media, video="clip.mp4"),
                                                  data={"window": "9"}), 400)
    assert "positive" in _error(post("/v1/timeline", files=_files(media, video="clip.mp4"),
                                     data={"window": "1", "hop": "-1"}), 400)
    assert _error(post("/v1/timeline", files=_files(media, video="clip.mp4"), data={"format": "xml"}),
                  422).startswith("format:")
    assert "unknown field 'image'" in _error(post("/v1/timeline", files=_files(media, video="clip.mp4",
                                                                               image="face.png")), 400)
    # routes
    assert _error(client.get("/nothing-here"), 404) == "Not Found"
    assert _error(client.get("/v1/predict"), 405) == "Method Not Allowed"


def test_limits_on_size_and_duration(predictor, media, temp_dir):
    c = TestClient(create_app(predictor, ServeLimits(max_upload_bytes=300_000, max_seconds=1.5), temp_dir=temp_dir))
    big = {"image": ("big.png", b"\0" * 400_000)}
    assert "request too large" in _error(c.post("/v1/predict", files=big), 413)

    def chunks():  # no Content-Length: refused while it streams
        for _ in range(40):
            yield b"x" * 10_000

    r = c.post("/v1/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert "request too large" in _error(r, 413)
    assert "too long: 2.0 s > the server's limit of 1.5 s" in _error(c.post("/v1/predict", files=_files(
        media, audio="voice.wav")), 413)
    assert _error(c.post("/v1/predict", files=_files(media, video="clip.mp4")), 413).startswith("video (clip.mp4): too long")
    assert _error(c.post("/v1/timeline", files=_files(media, video="clip.mp4")), 413).startswith("video (clip.mp4): too long")
    assert c.post("/v1/predict", files=_files(media, image="face.png")).status_code == 200
    assert list(temp_dir.iterdir()) == []


def test_checkpoint_without_a_modality_is_422(media, temp_dir):
    from bridge.config import create_config, with_modalities
    from bridge.model import BridgeModel
    from bridge.modality import Modality
    from bridge.preprocess import Preprocessor

    config = with_modalities(create_config("tiny"), (Modality.FACE, Modality.TEXT))
    c = TestClient(create_app(Predictor(BridgeModel(config), Preprocessor(config)), temp_dir=temp_dir))
    assert c.get("/healthz").json()["inputs"] == ["image", "video", "text"]
    assert "no audio modality" in _error(c.post("/v1/predict", files=_files(media, audio="voice.wav")), 422)
    assert c.post("/v1/predict", files=_files(media, image="face.png")).json()["reconstructed"] == ["text"]


def test_a_server_bug_is_a_500_with_one_line_of_json(media, temp_dir):
    from bridge.config import create_config
    from bridge.model import BridgeModel
    from bridge.preprocess import Preprocessor

    class Broken(Predictor):
        def predict_sample(self, *args, **kwargs):
            raise RuntimeError("boom")

    config = create_config("tiny")
    c = TestClient(create_app(Broken(BridgeModel(config), Preprocessor(config)), temp_dir=temp_dir),
                   raise_server_exceptions=False)
    assert _error(c.post("/v1/predict", files=_files(media, image="face.png")), 500) == \
        "internal error (RuntimeError); see the server's log"
    assert list(temp_dir.iterdir()) == []


class _Watching(Predictor):
    """A predictor that records the request's temporary files while it predicts."""

    seen: list

    def sample(self, *args, **kwargs):  # decoding: the app's first call with the request's files
        self.seen.append(sorted(p.name for p in self.temp_dir.rglob("*") if p.is_file()))
        return super().sample(*args, **kwargs)


def test_temporary_files_removed_after_success_and_error(predictor, media, temp_dir):
    watching = _Watching(predictor.model, predictor.preprocessor)
    watching.seen, watching.temp_dir = [], temp_dir
    c = TestClient(create_app(watching, temp_dir=temp_dir))
    assert c.post("/v1/predict", files=_files(media, image="face.png", audio="voice.wav")).status_code == 200
    assert list(temp_dir.iterdir()) == []
    junk = {"image": ("x.png", b"junk"), "audio": ("v.wav", (media / "voice.wav").read_bytes())}
    assert c.post("/v1/predict", files=junk).status_code == 422  # raised inside the predictor
    assert list(temp_dir.iterdir()) == []
    assert watching.seen == [["audio.wav", "image.png"], ["audio.wav", "image.png"]]  # they did exist meanwhile
    assert c.post("/v1/timeline", files=_files(media, video="clip.mp4"), data={"window": "99"}).status_code == 400
    assert list(temp_dir.iterdir()) == []


def test_concurrent_requests_do_not_mix(client, media):
    requests = [({"image": "face.png"}, None), ({"audio": "voice.wav"}, None), ({}, "what a lovely day"),
                ({"image": "face.png"}, "I am furious"), ({"video": "clip.mp4"}, None)]

    def ask(item):
        fields, text = item
        r = client.post("/v1/predict", files=_files(media, **fields), data={"text": text} if text else {})
        assert r.status_code == 200, r.text
        return r.json()

    alone = [ask(item) for item in requests]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(ask, requests * 4))
    for i, p in enumerate(together):
        _approx(alone[i % len(requests)], p)


def _frame(rgb: np.ndarray, seq: int) -> bytes:
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return b"F" + struct.pack("<I", seq) + jpeg.tobytes()


def test_a_live_frame_is_cropped_and_predicted_as_the_same_image_uploaded(client, media):
    """Live frames go through the model's own decoder (detector, alignment, crop) like files do."""
    photo = cv2.cvtColor(cv2.imread(str(media / "face.png")), cv2.COLOR_BGR2RGB)
    frame = _frame(photo, 1)
    with client.websocket_connect("/v1/live") as ws:
        ws.send_bytes(frame)
        live = ws.receive_json()
    upload = client.post("/v1/predict", files={"image": ("frame.jpg", frame[5:], "image/jpeg")}).json()
    assert live["observed"] == upload["observed"] == ["face"]
    for name, p in upload["probabilities"].items():  # the JPEG decoded by PIL here, by OpenCV live
        assert live["probabilities"][name] == pytest.approx(p, abs=2e-3)


def test_live_stream(client, predictor, media):
    photo = cv2.cvtColor(cv2.imread(str(media / "face.png")), cv2.COLOR_BGR2RGB)
    labels = list(predictor.config.labels)
    with client.websocket_connect("/v1/live") as ws:
        ws.send_bytes(_frame(photo, 7))
        u = ws.receive_json()
        assert u["seq"] == 7 and u["width"] == 256 and u["height"] == 256
        x, y, w, h = u["box"]
        assert 0 <= x < x + w <= 256 and 0 <= y < y + h <= 256
        _check_prediction({k: u[k] for k in PREDICTION_FIELDS}, labels)
        assert u["observed"] == ["face"] and u["face_frames"] == {"searched": 1, "with_face": 1}
        ws.send_bytes(_frame(np.roll(photo, 40, axis=1), 8))
        assert ws.receive_json()["box"][0] > x  # the box follows the face
        ws.send_bytes(_frame(np.full_like(photo, 128), 9))
        u = ws.receive_json()
        assert u["box"] is None and u["label"] is None and u["notes"] == ["no face found in the frame"]
        # sound: 16-bit PCM at 8 kHz, resampled; under half a second is not used yet
        ws.send_text(json.dumps({"sample_rate": 8000}))
        tone = (8000 * np.sin(np.arange(8000) / 8000 * 2 * np.pi * 200)).astype("<i2")
        ws.send_bytes(b"A" + tone[:3000].tobytes())
        ws.send_bytes(_frame(photo, 10))
        assert ws.receive_json()["observed"] == ["face"]
        ws.send_bytes(b"A" + tone.tobytes())
        ws.send_bytes(_frame(photo, 11))
        assert ws.receive_json()["observed"] == ["face", "audio"]
        ws.send_text(json.dumps({"text": "this is great"}))
        ws.send_bytes(b"F" + struct.pack("<I", 12))  # no frame: sound and text only
        u = ws.receive_json()
        assert u["box"] is None and u["width"] is None and u["observed"] == ["audio", "text"]
        ws.send_text(json.dumps({"text": None}))
        ws.send_bytes(_frame(photo, 13))
        assert ws.receive_json()["observed"] == ["face", "audio"]
        # bad messages: an error each, and the stream goes on
        for bad in (b"X123", b"F12", b"F" + struct.pack("<I", 1) + b"not a jpeg", b"A123"):
            ws.send_bytes(bad)
            assert set(ws.receive_json()) == {"error"}
        for bad in ("not json", "[1]", '{"volume": 3}', '{"sample_rate": 5}', '{"text": 3}',
                    json.dumps({"text": "x" * 201})):
            ws.send_text(bad)
            assert set(ws.receive_json()) == {"error"}
        ws.send_bytes(_frame(photo, 14))
        assert ws.receive_json()["seq"] == 14


def test_live_refuses_other_origins(client):
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect) as e:
        with client.websocket_connect("/v1/live", headers={"origin": "http://evil.example"}) as ws:
            ws.receive_json()
    assert e.value.code == 1008
    with client.websocket_connect("/v1/live", headers={"origin": "http://testserver"}) as ws:
        ws.send_bytes(b"F" + struct.pack("<I", 1))
        assert ws.receive_json()["label"] is None


def test_infer_serve_flags(trained_checkpoint, tmp_path, monkeypatch, capsys):
    import bridge.inference.predictor
    import bridge.serve

    calls, loads = [], []
    monkeypatch.setattr(bridge.serve, "serve", lambda predictor, host, port, limits: calls.append(
        (predictor, host, port, limits)))
    original = bridge.inference.predictor.Predictor.from_pretrained
    monkeypatch.setattr(bridge.inference.predictor.Predictor, "from_pretrained",
                        classmethod(lambda cls, *a, **k: loads.append(a) or original(*a, **k)))
    assert infer.main(["--serve", "--checkpoint", str(trained_checkpoint)]) == 0
    predictor, host, port, limits = calls[-1]
    assert (host, port, limits) == ("127.0.0.1", 8000, ServeLimits(max_upload_bytes=50 * 2**20, max_seconds=120.0))
    assert predictor.max_seconds == 120.0 and len(loads) == 1  # loaded once, for every request
    assert infer.main(["--serve", "--checkpoint", str(trained_checkpoint), "--host", "0.0.0.0", "--port", "9000",
                       "--max-upload-mb", "2", "--max-seconds", "0"]) == 0
    assert calls[-1][1:] == ("0.0.0.0", 9000, ServeLimits(max_upload_bytes=2 * 2**20, max_seconds=None))
    assert "warning: serving on 0.0.0.0" in capsys.readouterr().err
    bad = [(["--serve", "--checkpoint", str(trained_checkpoint), "--image", "x.png"], "--image cannot be used with --serve"),
           (["--host", "0.0.0.0", "--checkpoint", str(trained_checkpoint), "--text", "hi"], "--host needs --serve"),
           (["--serve", "--checkpoint", str(trained_checkpoint), "--port", "70000"], "--port must be 0-65535"),
           (["--serve", "--checkpoint", str(trained_checkpoint), "--max-upload-mb", "0"], "--max-upload-mb must be"),
           (["--serve", "--checkpoint", str(trained_checkpoint), "--text-file", "x.txt"],
            "--text-file cannot be used with --serve"),
           (["--serve", "--checkpoint", "no/such/dir"], "checkpoint directory no/such/dir does not exist"),
           (["--serve", "--checkpoint", "nosuchrelease"], "nosuchrelease is neither a checkpoint directory nor a shipped"),
           (["--serve"], "build it with `python -m bridge.release build`, or pass --checkpoint DIR"),
           (["--text", "hi"], "build it with `python -m bridge.release build`, or pass --checkpoint DIR")]
    import bridge.release

    monkeypatch.setattr(bridge.release, "RELEASES", Path("no/releases"))  # as if no model were shipped
    for argv, message in bad:
        capsys.readouterr()
        assert infer.main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("infer.py: error: ") and message in err and "\n" not in err
    releases = tmp_path / "releases"  # a shipped model: the default, and a release by name
    bridge.release.pack(trained_checkpoint, releases / bridge.release.DEFAULT_RELEASE, bridge.release.DEFAULT_RELEASE)
    monkeypatch.setattr(bridge.release, "RELEASES", releases)
    assert infer.main(["--serve"]) == 0 and infer.main(["--serve", "--checkpoint", "emotion7"]) == 0
    assert len(calls) == 4 and [a[0] for a in loads[-2:]] == [[str(releases / "emotion7")]] * 2


def test_benchmark_runs_on_loopback(trained_checkpoint, tmp_path, capsys):
    """benchmarks/serve.py end to end, briefly: a real ``infer.py --serve`` subprocess, every field
    written, no errors (numbers are printed, not asserted)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("benchmarks_serve", Path(__file__).resolve().parents[1]
                                                  / "benchmarks" / "serve.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "serve.json"
    assert bench.main(["--checkpoint", str(trained_checkpoint), "--duration", "1", "--clients", "1", "2",
                       "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["threads"] == 2 and report["modalities"] == "face + audio + text"
    live = report["live"]
    assert live["updates"] >= 1 and live["errors"] == 0 and live["with_face"] > 0
    assert 0 < live["p50_ms"] <= live["p95_ms"]
    assert [r["clients"] for r in report["predict"]] == [1, 2]
    for row in report["predict"]:
        assert row["requests"] >= 1 and row["errors"] == 0 and 0 < row["p50_ms"] <= row["p95_ms"]
    assert report["server_peak_memory_mb"] > 0
    assert "| POST /v1/predict (image), requests | 2 |" in capsys.readouterr().out
    assert bench.main(["--preset", "tiny", "--checkpoint", str(trained_checkpoint)]) == 2
    assert bench.main(["--checkpoint", str(tmp_path / "none"), "--duration", "1"]) == 2


def test_a_memo_encodes_only_what_changed(predictor, media, monkeypatch):
    """Live streams keep the voice's and the text's encodings until their key changes; reusing them
    gives the prediction a fresh encoding gives, and a modality the sample lacks is not used."""
    from bridge.data.sample import Sample
    from bridge.inference.predictor import EncodingMemo
    from bridge.modality import Modality

    photo = cv2.resize(cv2.cvtColor(cv2.imread(str(media / "face.png")), cv2.COLOR_BGR2RGB), (64, 64))
    crop = predictor.decoder.whole(photo)[None]
    t = np.arange(RATE) / RATE
    voice = (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)
    full = Sample(id="s", label=0, face=crop, audio=voice, sample_rate=RATE, text="what a day")
    no_text = Sample(id="s", label=0, face=crop, audio=voice, sample_rate=RATE)
    encoded = []
    encode = predictor.model.encode
    monkeypatch.setattr(predictor.model, "encode", lambda batch, *a: encoded.append(set(batch.inputs)) or encode(batch, *a))
    memo = EncodingMemo()
    keys = {Modality.AUDIO: 0, Modality.TEXT: "what a day"}
    first = predictor.predict_sample(full, memo=memo, keys=keys)
    again = predictor.predict_sample(full, memo=memo, keys=keys)
    assert encoded == [{Modality.FACE, Modality.AUDIO, Modality.TEXT}, {Modality.FACE}]
    assert again.probabilities == pytest.approx(first.probabilities, abs=1e-6)
    assert again.probabilities == pytest.approx(predictor.predict_sample(full).probabilities, abs=1e-6)
    predictor.predict_sample(full, memo=memo, keys={**keys, Modality.AUDIO: 1})
    assert encoded[-1] == {Modality.FACE, Modality.AUDIO}
    without = predictor.predict_sample(no_text, memo=memo, keys=keys)  # the memo's text is not used
    assert without.observed == ["face", "audio"]
    assert without.probabilities == pytest.approx(predictor.predict_sample(no_text).probabilities, abs=1e-6)


def test_sound_generation_steps_once_per_refresh():
    from bridge.inference.live import SoundBuffer

    sound = SoundBuffer(3.0, RATE)
    steps = []
    for _ in range(10):
        sound.add(np.zeros(RATE // 10, np.float32))  # 0.1 s
        steps.append(sound.generation(0.25))
    assert steps == [0, 0, 1, 1, 2, 2, 2, 3, 3, 4]
    sound.add(np.zeros(RATE // 2, np.float32), rate=RATE // 2)  # resampled: one second at the buffer's rate
    assert sound.generation(0.25) == 8
