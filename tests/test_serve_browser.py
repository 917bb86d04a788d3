"""The web app in a real browser: headless Chromium (Debian's ``chromium``, driven by Playwright)
with a fake camera and microphone fed from a real photo that moves (skimage's astronaut, as Y4M)
and speech (espeak-ng, as WAV). The Live tab must show a face box and a label that update, with the
camera, the microphone and the typed text observed; a video uploaded on the Files tab must give a
prediction, its per-modality explanation and a timeline whose CSV and JSON download.

Set ``BRIDGE_SCREENSHOTS=DIR`` to keep screenshots of both tabs there, and
``BRIDGE_SCREENSHOT_CHECKPOINT=DIR`` to serve that checkpoint instead of the tiny test one (docs/serve.md).
Skipped only when Chromium or Playwright is missing outside CI (CI installs both: .ci/run)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None or not shutil.which("espeak-ng"):
    if os.environ.get("CI"):
        raise RuntimeError("CI must install chromium and espeak-ng for the browser test (.ci/run)")
    pytest.skip("the browser test needs Debian's chromium and espeak-ng (apt-get install chromium espeak-ng)",
                allow_module_level=True)
if os.environ.get("CI"):
    import playwright.sync_api as playwright  # pinned in requirements.txt: missing in CI fails, never skips
else:
    playwright = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (requirements.txt)")

W, H, FPS, FRAMES = 640, 480, 10, 40


def _write_y4m(path: Path, frames: np.ndarray) -> None:
    """RGB frames ``(t, h, w, 3)`` as a Y4M file (planar 4:2:0), the format Chromium's fake camera reads."""
    t, h, w, _ = frames.shape
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())  # Y, then U, then V planes


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> dict[str, Path]:
    """The astronaut's face gliding left and right on a grey background (Y4M and MP4 with the speech
    as its sound track), and spoken English from espeak-ng (WAV)."""
    import soundfile as sf
    from skimage.data import astronaut

    from bridge.media import resample, write_video

    d = tmp_path_factory.mktemp("browser")
    face = cv2.resize(astronaut()[0:300, 100:400], (300, 300))
    frames = np.full((FRAMES, H, W, 3), 110, np.uint8)
    for k in range(FRAMES):
        x = int(30 + 280 * (0.5 - 0.5 * np.cos(2 * np.pi * k / FRAMES)))  # there and back again
        frames[k, 90:390, x:x + 300] = face
    _write_y4m(d / "clip.y4m", frames)
    subprocess.run(["espeak-ng", "-w", str(d / "clip.wav"), "Hello! I am so happy to see you today. "
                    "This is wonderful news, and I cannot stop smiling."], check=True)
    wave, rate = sf.read(d / "clip.wav", dtype="float32")
    wave = resample(wave, rate, 16_000)
    write_video(d / "clip.mp4", frames[::2], fps=FPS // 2, audio=np.resize(wave, 4 * 16_000), sample_rate=16_000)
    return {"y4m": d / "clip.y4m", "wav": d / "clip.wav", "mp4": d / "clip.mp4"}


@pytest.fixture(scope="module")
def server(request):
    """The app on a free loopback port, served by uvicorn in a thread."""
    import uvicorn

    from bridge.inference.predictor import Predictor
    from bridge.serve import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    checkpoint = os.environ.get("BRIDGE_SCREENSHOT_CHECKPOINT") or request.getfixturevalue("trained_checkpoint")
    config = uvicorn.Config(create_app(Predictor.from_pretrained(checkpoint)), host="127.0.0.1", port=port,
                            log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started:
        assert time.time() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def page(clip, server):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={clip['y4m']}", f"--use-file-for-fake-audio-capture={clip['wav']}",
            "--autoplay-policy=no-user-gesture-required"])
        context = browser.new_context(viewport={"width": 1180, "height": 900}, accept_downloads=True)
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server)
        yield page
        assert errors == [], errors  # no JavaScript error on either tab
        browser.close()


def _shot(page, name: str) -> None:
    out = os.environ.get("BRIDGE_SCREENSHOTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(out) / name), full_page=True)


def test_live_tab_shows_a_moving_face_box_and_a_label(page):
    page.wait_for_function("document.querySelectorAll('#live-bars .bar').length > 0")  # labels from /healthz
    page.fill("#live-text", "I am so happy to see you")
    page.click("#live-start")
    page.wait_for_function("document.querySelector('#live-view').dataset.box !== ''", timeout=60_000)
    label = page.locator("#live-label")
    first_box = page.get_attribute("#live-view", "data-box")
    first_updates = int(label.get_attribute("data-updates"))
    assert label.inner_text().strip().lower() in {b.lower() for b in page.eval_on_selector_all(
        "#live-bars .bar", "bars => bars.map(b => b.dataset.label)")}
    # it keeps updating, and the box follows the face across the frame
    page.wait_for_function(f"+document.querySelector('#live-label').dataset.updates >= {first_updates + 5}",
                           timeout=60_000)
    page.wait_for_function(f"document.querySelector('#live-view').dataset.box !== '' && "
                           f"document.querySelector('#live-view').dataset.box !== '{first_box}'", timeout=60_000)
    xs = set()
    deadline = time.time() + 30
    while len(xs) < 3 and time.time() < deadline:
        box = page.get_attribute("#live-view", "data-box")
        if box:
            xs.add(int(box.split(",")[0]))
        time.sleep(0.2)
    assert len(xs) >= 3, xs
    page.wait_for_function("document.querySelector('#live-modalities').innerText.includes('audio: observed')",
                           timeout=30_000)
    chips = page.inner_text("#live-modalities")
    assert "face: observed" in chips and "text: observed" in chips
    assert "updates/s" in page.inner_text("#live-stats")
    _shot(page, "serve-live.png")
    page.fill("#live-text", "")
    page.wait_for_function("document.querySelector('#live-modalities').innerText.includes('text: reconstructed')",
                           timeout=30_000)
    page.click("#live-stop")


def test_files_tab_predicts_an_uploaded_video(page, clip, server):
    page.click("#tab-files")
    page.set_input_files("#files-form input[name=video]", str(clip["mp4"]))
    page.fill("#files-form textarea[name=text]", "This is wonderful news")
    page.fill("#files-form input[name=window]", "1")
    page.fill("#files-form input[name=hop]", "0.5")
    page.click("#files-submit")
    page.wait_for_function("document.querySelector('#files-timeline').dataset.windows", timeout=60_000)
    page.wait_for_function("document.querySelector('#download-csv').href.startsWith('blob:')", timeout=60_000)
    assert page.inner_text("#files-error") == ""
    label = page.inner_text("#files-label").strip().lower()
    assert label in {b.lower() for b in page.eval_on_selector_all("#files-bars .bar",
                                                                 "bars => bars.map(b => b.dataset.label)")}
    chips = page.inner_text("#files-modalities")
    assert "face: observed" in chips and "audio: observed" in chips and "text: observed" in chips
    rows = page.locator("#files-explanation tbody tr")
    assert rows.count() == 3
    assert page.get_attribute("#files-timeline", "data-windows") == "7"  # 4 s, windows of 1 s every 0.5 s
    with page.expect_download() as download:
        page.click("#download-json")
    timeline = json.loads(Path(download.value.path()).read_text())
    assert timeline["window"] == 1 and timeline["hop"] == 0.5 and len(timeline["timeline"]) == 7
    with page.expect_download() as download:
        page.click("#download-csv")
    csv = Path(download.value.path()).read_text().splitlines()
    assert csv[0].startswith("start,end,label,observed") and len(csv) == 8
    _shot(page, "serve-files.png")
    # a bad upload shows the server's one-line error
    page.set_input_files("#files-form input[name=video]", [])
    page.fill("#files-form textarea[name=text]", "")
    page.set_input_files("#files-form input[name=image]", {"name": "x.png", "mimeType": "image/png",
                                                           "buffer": b"not an image"})
    page.click("#files-submit")
    page.wait_for_function("document.querySelector('#files-error').innerText !== ''", timeout=30_000)
    assert page.inner_text("#files-error").startswith("422: image (x.png): unreadable")
