"""bridge.media on media written by the tests themselves (and, where present, real corpora)."""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf

from bridge.data.paths import data_root
from bridge.media import (
    Box,
    FaceDetector,
    MediaError,
    audio_from_video,
    audio_info,
    crop_box,
    face_track,
    faces_from_video,
    load_audio,
    load_image,
    read_video_frames,
    resample,
    video_info,
)
from bridge.media import write_video as media_write_video

# --- helpers -----------------------------------------------------------------------------


def tone(freq: float, seconds: float, sr: int, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


def peak_frequency(wave: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave))
    return float(np.fft.rfftfreq(len(wave), 1 / sr)[spectrum.argmax()])


def write_video(path: Path, frames: np.ndarray, fps: int = 25, audio: np.ndarray | None = None,
                sr: int = 16_000) -> Path:
    return media_write_video(path, frames, fps, audio, sr)


def ramp_frames(n: int, h: int = 96, w: int = 128) -> np.ndarray:
    """Frames whose brightness encodes their index (frame i is 5 * i grey)."""
    return np.stack([np.full((h, w, 3), 5 * i, np.uint8) for i in range(n)])


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage.data import astronaut

    return astronaut()  # a real photograph with one frontal face, (512, 512, 3) RGB


# --- audio -------------------------------------------------------------------------------


def test_wav_48k_stereo_to_16k_mono(tmp_path):
    left, right = tone(440, 2.0, 48_000, 0.6), tone(440, 2.0, 48_000, 0.2)
    sf.write(tmp_path / "a.wav", np.stack([left, right], axis=1), 48_000)
    wave = load_audio(tmp_path / "a.wav")
    assert wave.dtype == np.float32 and wave.shape == (32_000,)
    assert abs(np.abs(wave).max() - 0.4) < 0.02  # the channel mean
    assert abs(peak_frequency(wave, 16_000) - 440) < 2
    assert audio_info(tmp_path / "a.wav").channels == 2


def test_flac_and_rates(tmp_path):
    sf.write(tmp_path / "a.flac", tone(1000, 1.5, 22_050), 22_050, subtype="PCM_16")
    wave = load_audio(tmp_path / "a.flac")
    assert wave.shape == (int(np.ceil(1.5 * 22_050 * 16_000 / 22_050)),)
    assert abs(peak_frequency(wave, 16_000) - 1000) < 2
    assert load_audio(tmp_path / "a.flac", sample_rate=8_000).shape == (12_000,)
    assert -1.0 <= wave.min() and wave.max() <= 1.0


def test_resample():
    wave = tone(300, 1.0, 44_100)
    out = resample(wave, 44_100, 16_000)
    assert out.dtype == np.float32 and out.shape == (16_000,)
    assert abs(peak_frequency(out, 16_000) - 300) < 2
    assert resample(wave, 16_000, 16_000) is not None and resample(wave, 16_000, 16_000).shape == wave.shape
    with pytest.raises(ValueError):
        resample(wave, 0, 16_000)


def test_too_long_refused_from_header(tmp_path):
    sf.write(tmp_path / "long.wav", np.zeros(16_000 * 3, np.float32), 16_000)
    with pytest.raises(MediaError, match="too long"):
        load_audio(tmp_path / "long.wav", max_seconds=2.0)
    assert load_audio(tmp_path / "long.wav", max_seconds=None).shape == (48_000,)


# --- video -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip_with_sound(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "talk.mp4"
    return write_video(path, ramp_frames(50), fps=25, audio=tone(440, 2.0, 16_000, 0.3))


def test_video_info_and_all_frames(clip_with_sound):
    info = video_info(clip_with_sound)
    assert (info.width, info.height, info.fps, info.num_frames, info.has_audio) == (128, 96, 25.0, 50, True)
    assert info.duration == pytest.approx(2.0, abs=0.05)
    frames, times = read_video_frames(clip_with_sound)
    assert frames.shape == (50, 96, 128, 3) and frames.dtype == np.uint8
    np.testing.assert_allclose(times, np.arange(50) / 25, atol=1e-6)
    # brightness survives encoding closely enough to identify each frame
    assert np.abs(frames.reshape(50, -1).mean(1) - 5 * np.arange(50)).max() < 3


def test_video_sampling(clip_with_sound):
    frames, times = read_video_frames(clip_with_sound, num_frames=5)
    assert frames.shape[0] == 5
    np.testing.assert_allclose(times, [0.16, 0.56, 0.96, 1.36, 1.76], atol=0.05)
    _, times = read_video_frames(clip_with_sound, fps=5)
    np.testing.assert_allclose(times, np.arange(10) / 5, atol=1e-6)
    _, times = read_video_frames(clip_with_sound, num_frames=4, start=1.0, end=1.5)
    assert len(times) == 4 and times.min() >= 1.0 and times.max() < 1.5
    frames, _ = read_video_frames(clip_with_sound, num_frames=500)  # never a frame twice
    assert len(frames) == 50
    with pytest.raises(ValueError):
        read_video_frames(clip_with_sound, num_frames=4, fps=2)
    with pytest.raises(MediaError, match="no frames"):
        read_video_frames(clip_with_sound, start=5.0)


def test_audio_from_video(clip_with_sound):
    wave = audio_from_video(clip_with_sound, 16_000)
    assert wave.dtype == np.float32
    assert abs(len(wave) - 32_000) <= 2_048  # AAC adds up to a couple of frames of padding
    assert abs(peak_frequency(wave, 16_000) - 440) < 3
    assert abs(len(load_audio(clip_with_sound, 8_000)) - 16_000) <= 1_024  # load_audio takes videos too


def test_video_without_sound_track(tmp_path):
    path = tmp_path / "silent.mp4"  # written by OpenCV this time
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for i in range(10):
        writer.write(np.full((48, 64, 3), 20 * i, np.uint8))
    writer.release()
    info = video_info(path)
    assert not info.has_audio and info.num_frames == 10
    assert read_video_frames(path)[0].shape == (10, 48, 64, 3)
    with pytest.raises(MediaError, match="no audio stream"):
        audio_from_video(path)


# --- bad files ---------------------------------------------------------------------------


@pytest.fixture()
def bad_files(tmp_path, clip_with_sound) -> dict[str, Path]:
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "empty.wav").write_bytes(b"")
    data = clip_with_sound.read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (tmp_path / "notes.mp4").write_text("this is a text file, not a video\n" * 50)
    sf.write(tmp_path / "good.flac", tone(440, 1.0, 16_000), 16_000)
    flac = (tmp_path / "good.flac").read_bytes()
    (tmp_path / "truncated.flac").write_bytes(flac[: len(flac) // 3])
    return {p.stem + p.suffix: p for p in tmp_path.iterdir()}


@pytest.mark.parametrize("reader", [read_video_frames, video_info, load_audio, audio_from_video])
@pytest.mark.parametrize(
    "name, problem",
    [("empty.mp4", "zero-length"), ("truncated.mp4", "truncated"), ("notes.mp4", "unsupported format"),
     ("missing.mp4", "not found")],
)  # fmt: skip
def test_bad_video_files(bad_files, tmp_path, reader, name, problem):
    with pytest.raises(MediaError, match=problem) as caught:
        reader(tmp_path / name)
    message = str(caught.value)
    assert name in message and "\n" not in message
    assert isinstance(caught.value, ValueError)


def test_bad_audio_files(bad_files, tmp_path):
    with pytest.raises(MediaError, match="zero-length"):
        load_audio(tmp_path / "empty.wav")
    with pytest.raises(MediaError, match="truncated.flac"):
        load_audio(tmp_path / "truncated.flac")


def test_media_error_pickles():
    error = pickle.loads(pickle.dumps(MediaError("a.mp4", "no audio stream")))
    assert str(error) == "a.mp4: no audio stream" and error.problem == "no audio stream"


# --- images and faces --------------------------------------------------------------------


def test_load_image(tmp_path, astronaut):
    cv2.imwrite(str(tmp_path / "gray.png"), cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY))
    image = load_image(tmp_path / "gray.png")
    assert image.shape == (512, 512, 3) and image.dtype == np.uint8
    cv2.imwrite(str(tmp_path / "rgb.jpg"), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    rgb = load_image(tmp_path / "rgb.jpg")
    assert np.abs(rgb.astype(int) - astronaut).mean() < 10  # RGB order, not BGR
    with pytest.raises(MediaError, match="too large"):
        load_image(tmp_path / "rgb.jpg", max_pixels=100_000)
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(MediaError, match="notes.png"):
        load_image(tmp_path / "notes.png")
    data = (tmp_path / "rgb.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 4])
    with pytest.raises(MediaError, match="truncated"):
        load_image(tmp_path / "cut.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(MediaError, match="zero-length"):
        load_image(tmp_path / "empty.png")


def test_face_detection_on_a_photograph(astronaut):
    detector = FaceDetector()
    boxes = detector.detect(astronaut)
    assert boxes and isinstance(boxes[0], Box)
    x, y, w, h = boxes[0]
    assert 150 < x + w / 2 < 300 and 60 < y + h / 2 < 200  # the astronaut's face, upper middle
    gray = detector.crop_largest(astronaut)
    assert gray.shape == (48, 48) and gray.dtype == np.uint8
    rgb = detector.crop_largest(astronaut, size=64, grayscale=False)
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    from_gray = detector.crop_largest(cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY), grayscale=False)
    assert from_gray is not None and from_gray.shape == (48, 48, 3)
    assert detector.crop_largest(np.full((240, 320, 3), 128, np.uint8)) is None
    assert detector.crop_largest(np.full((240, 320), 128, np.uint8)) is None
    clone = pickle.loads(pickle.dumps(detector))  # DataLoader workers
    assert clone.detect(astronaut) == boxes


def test_crop_box_stays_inside_and_square():
    image = np.arange(100 * 80, dtype=np.uint32).reshape(100, 80).astype(np.uint8)
    crop = crop_box(image, Box(0, 0, 30, 30), margin=0.5, size=32)
    assert crop.shape == (32, 32)
    big = crop_box(image, Box(10, 10, 70, 90), margin=0.5, size=16, grayscale=False)
    assert big.shape == (16, 16, 3)  # shrunk to the image's shorter side, still square


def test_face_track(astronaut):
    grey = np.full_like(astronaut, 128)
    crops, found, boxes = face_track(np.stack([astronaut, grey, astronaut]))
    assert found.tolist() == [True, False, True]
    assert crops.shape == (2, 48, 48) and boxes[1] is None and boxes[0] == boxes[2]
    crops, found, _ = face_track(np.stack([grey]), grayscale=False, size=32)
    assert crops.shape == (0, 32, 32, 3) and not found.any()


# --- real data: a FER-2013 face on a background with a RAVDESS voice, as a video ------------


def _real(folder: str) -> Path:
    path = data_root() / folder
    if not path.is_dir():
        pytest.skip(f"real data not found at {path} (set BRIDGE_DATA_ROOT)")
    return path


def test_real_face_video_with_real_voice(tmp_path):
    fer, ravdess = _real("fer2013"), _real("ravdess_speech_16k")
    detector = FaceDetector()

    def on_background(face: np.ndarray, dx: int = 0) -> np.ndarray:
        frame = np.full((240, 320), 70, np.uint8)
        frame[:, 160:] = 150  # a two-tone wall
        big = cv2.resize(face, (144, 144), interpolation=cv2.INTER_CUBIC)
        frame[48 : 48 + 144, 80 + dx : 224 + dx] = big
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)

    # the first happy test face the detector finds when scaled up (a test of the pipeline, not of Haar recall)
    for path in sorted((fer / "test" / "happy").glob("*.png"))[:40]:
        face = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if detector.detect(on_background(face)):
            break
    else:
        pytest.fail("no FER-2013 face detected after scaling up")
    voice_path = ravdess / "Actor_01" / "03-01-03-01-01-01-01.flac"
    voice = load_audio(voice_path)
    seconds = len(voice) / 16_000
    n = int(seconds * 25)
    rng = np.random.default_rng(0)
    frames = np.stack([on_background(face, dx=int(8 * np.sin(i / 5))) for i in range(n)])
    frames = np.clip(frames + rng.normal(0, 3, frames.shape), 0, 255).astype(np.uint8)  # sensor noise
    clip = write_video(tmp_path / "01-01-03-01-01-01-01.mp4", frames, fps=25, audio=voice)

    frames, times = read_video_frames(clip, num_frames=8)  # decode -> detect -> crop, step by step
    crops, found, boxes = face_track(frames, detector)
    assert found.sum() >= 6, f"face found in only {found.sum()} of 8 frames"
    for box in filter(None, boxes):  # each box sits on the pasted face (x 72..232, y 48..192)
        assert 72 <= box.x + box.w / 2 <= 232 and 48 <= box.y + box.h / 2 <= 192
    assert crops.shape[1:] == (48, 48) and crops.dtype == np.uint8
    crops, times = faces_from_video(clip, num_frames=2, detector=detector)  # the same in one call
    assert len(crops) >= 1 and crops.shape[1:] == (48, 48) and np.all(np.diff(times) > 0)
    track = audio_from_video(clip)
    assert abs(len(track) - len(voice)) <= 2_048
