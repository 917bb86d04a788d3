"""Bad input, case by case, through the three scripts and the Python API (issue 6).

Each refused case gives one line naming the problem: ``<script>: error: <message>`` on stderr
and exit code 2 from a script, a ``ValueError`` subclass (``MediaError``, ``InputError``,
``CheckpointError``) from the API; and no output file is left behind. Each accepted case
predicts without a traceback. FILE is the path given, DIR the checkpoint, OUT the output.

Media (``infer.py --image/--audio/--video``, ``load_image``, ``load_audio``):

- corrupt image: ``FILE: unreadable image or unsupported format`` (and no OpenCV log lines)
- truncated image: ``FILE: unreadable or truncated image (image file is truncated)``
- zero-byte image, audio or video: ``FILE: zero-length file``
- corrupt audio: ``FILE: unreadable audio (Error opening 'FILE': Error in WAV file. No 'data' chunk marker.)``
- truncated audio: ``FILE: unreadable or truncated audio (Error : flac decoder lost sync.)``
- corrupt or truncated video: ``FILE: unreadable, truncated or unsupported format (Invalid data found ...)``
- audio-only .m4a as ``--video``: ``FILE: no video stream`` (as ``Predictor.predict`` documents);
  the same file as ``--audio`` works
- silence (all-zero audio): counts as missing audio (no voice activity), reconstructed beside other inputs
- 48 kHz stereo: a prediction; ``load_audio`` gives 16 kHz mono
- 10-hour WAV (1.15 GB, sparse on disk): ``FILE: too long: 36000.0 s > max_seconds=600``, from the
  header, never decoded; ``max_seconds=None`` lifts the limit
- 1x1 image: with face detection the note ``no face found in the image`` (alone: ``no face found in
  the image, and no other input to predict from``); with ``--no-face-detection`` a prediction
- 20000x20000 image: ``FILE: too large: Image size (400000000 pixels) exceeds limit of 178956970
  pixels (Pillow's decompression-bomb limit)``, never decoded
- 10000x6000 image: ``FILE: too large: 10000x6000 = 60000000 pixels > max_pixels=50000000``, never decoded

Text (``infer.py --text``):

- empty text or empty ``@file``: ``text is empty``
- invalid UTF-8 in ``@file``: ``text file FILE is not valid UTF-8``; a missing one: ``text file FILE
  does not exist``
- 1 MB text: a prediction (the tokenizer keeps the first tokens)

Arrays (``Predictor``):

- NaN or infinite features: ``InputError: features contain NaN or infinite values``
- NaN in a waveform: ``InputError: audio contains NaN or infinite samples``

Checkpoints (``infer.py``, ``evaluate.py`` and ``load_checkpoint``, which raises ``CheckpointError``):

- no config.json: ``DIR is not a bridge checkpoint: no config.json``
- truncated config.json: ``DIR/config.json is not valid JSON (Expecting ...)``
- config.json not matching the weights: ``DIR/model.safetensors does not match config.json: 284
  tensors of another shape, e.g. summarisers.face.queries is [4, 64] in the weights but [4, 32] in
  the config``
- no model.safetensors: ``DIR is not a bridge checkpoint: no model.safetensors``
- truncated model.safetensors: ``DIR/model.safetensors cannot be loaded: Error while deserializing
  header: ...``

Other arguments:

- ``train.py --preset nope``: argparse's usage and ``invalid choice: 'nope'``, exit 2
- ``evaluate.py`` on data with other labels than the checkpoint's: ``label mismatch: synthetic has
  labels [...], the checkpoint [...]``
- an output that cannot be written (``infer.py --output``, ``evaluate.py --output``): ``cannot write
  OUT (PARENT: No such file or directory)``, ``cannot write OUT (PARENT: Not a directory)`` (a file
  where a folder should be), ``cannot write OUT (Is a directory)``
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf

import evaluate
import infer
import train
from bridge.config import FeatureConfig, create_config
from bridge.data.sample import Sample
from bridge.media import MediaError, load_audio, load_image, write_video
from bridge.modality import Modality
from bridge.model import BridgeModel, CheckpointError, load_checkpoint
from bridge.inference.predictor import InputError, Predictor
from bridge.preprocess import Preprocessor

RATE = 16_000


# --- inputs ------------------------------------------------------------------------------


def _tone(seconds: float, rate: int = RATE, amp: float = 0.3) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * 220 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def _png_chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


def _blank_png(path: Path, width: int, height: int) -> Path:
    """A valid white 1-bit PNG of any size, streamed row by row (20000x20000 is 76 kB)."""
    row, deflate = b"\x00" + b"\xff" * ((width + 7) // 8), zlib.compressobj(9)
    data = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, grayscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data)
                     + _png_chunk(b"IEND", b""))
    return path


def _silent_wav(path: Path, seconds: int, rate: int = RATE) -> Path:
    """A valid 16-bit mono WAV of silence, written sparse: ten hours take a header's worth of disk."""
    size = seconds * rate * 2
    header = (b"RIFF" + struct.pack("<I", 36 + size) + b"WAVE"
              + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, 2 * rate, 2, 16)
              + b"data" + struct.pack("<I", size))
    with path.open("wb") as f:
        f.write(header)
        f.truncate(len(header) + size)
    return path


def _audio_only_m4a(path: Path) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=RATE)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(_tone(1.0)[None], format="flt", layout="mono")
        frame.sample_rate = RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Good and bad media, texts and a file that is in the way of an output folder."""
    d = tmp_path_factory.mktemp("bad-inputs")
    face = np.full((64, 64, 3), 120, np.uint8)
    cv2.imwrite(str(d / "good.png"), face)
    png = (d / "good.png").read_bytes()
    (d / "truncated.png").write_bytes(png[: len(png) // 2])
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (d / "zero.png").write_bytes(b"")
    cv2.imwrite(str(d / "1x1.png"), np.full((1, 1, 3), 128, np.uint8))
    sf.write(d / "good.flac", _tone(1.0), RATE)
    flac = (d / "good.flac").read_bytes()
    (d / "truncated.flac").write_bytes(flac[: len(flac) // 3])
    (d / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (d / "zero.wav").write_bytes(b"")
    sf.write(d / "silence.wav", np.zeros(RATE, np.float32), RATE)
    stereo = np.stack([_tone(1.0, 48_000), np.zeros(48_000, np.float32)], axis=1)  # (n, 2): a tone on the left
    sf.write(d / "stereo-48k.wav", stereo, 48_000)
    write_video(d / "good.mp4", np.full((10, 64, 64, 3), 90, np.uint8), fps=10, audio=_tone(1.0), sample_rate=RATE)
    video = (d / "good.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(video[: len(video) // 2])
    (d / "corrupt.mp4").write_text("this is a text file, not a video\n" * 50)
    (d / "zero.mp4").write_bytes(b"")
    _audio_only_m4a(d / "sound-only.m4a")
    (d / "empty.txt").write_bytes(b"")
    (d / "latin1.txt").write_bytes("café déjà vu".encode("latin-1"))
    (d / "1mb.txt").write_text("what a happy day " * 62_000, encoding="utf-8")  # 1.05 MB
    (d / "a-file").write_text("not a folder\n")
    return d


# --- helpers -----------------------------------------------------------------------------


def _fails(capfd, main, argv: list[str], output: Path | None = None, last_line: bool = False) -> str:
    """Run a script that must refuse its input: exit 2, one line on stderr, no output left. Returns the message."""
    prog = main.__module__.rsplit(".", 1)[-1] + ".py"  # bridge.commands.infer -> infer.py
    rc = main(argv)
    err = capfd.readouterr().err.strip()
    assert rc == 2, err
    assert "Traceback" not in err
    if last_line:  # evaluate.py shows progress bars on stderr before it fails
        err = err.splitlines()[-1]
    assert err.startswith(f"{prog}: error: ") and "\n" not in err, err
    if output is not None:
        assert not output.exists()
        if output.parent.is_dir():
            assert not list(output.parent.glob(f".{output.name}.*"))  # nor a temporary file
    print(err)  # the messages the note lists: pytest -rP shows them
    return err.removeprefix(f"{prog}: error: ")


def _infer_json(capfd, argv: list[str]) -> dict:
    assert infer.main([*argv, "--json"]) == 0
    result = json.loads(capfd.readouterr().out)
    assert np.isfinite(list(result["probabilities"].values())).all()
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    return result


def _evaluate_args(checkpoint: Path, output: Path) -> list[str]:
    return ["--checkpoint", str(checkpoint), "--data", "synthetic", "--limit", "4", "--batch-size", "4",
            "--protocols", "patterns", "--no-cache", "--output", str(output)]


# --- media files through infer.py ---------------------------------------------------------


@pytest.mark.parametrize("flag, name, message", [
    ("--image", "corrupt.png", "unreadable image or unsupported format"),
    ("--image", "truncated.png", "unreadable or truncated image"),
    ("--image", "zero.png", "zero-length file"),
    ("--audio", "corrupt.wav", "unreadable audio"),
    ("--audio", "truncated.flac", "unreadable or truncated audio"),
    ("--audio", "zero.wav", "zero-length file"),
    ("--video", "corrupt.mp4", "unreadable, truncated or unsupported format"),
    ("--video", "truncated.mp4", "unreadable, truncated or unsupported format"),
    ("--video", "zero.mp4", "zero-length file"),
    ("--video", "sound-only.m4a", "no video stream"),
])  # fmt: skip
def test_bad_media_file_is_one_line_exit_2(flag, name, message, trained_checkpoint, files, tmp_path, capfd):
    out = tmp_path / "result.json"
    err = _fails(capfd, infer.main, ["--checkpoint", str(trained_checkpoint), flag, str(files / name),
                                     "--output", str(out)], out)
    assert err == f"{files / name}: {message}" or err.startswith(f"{files / name}: {message} (")


def test_audio_only_file_is_refused_as_video_but_read_as_audio(trained_checkpoint, files, capfd):
    """What Predictor.predict documents: a video needs a video stream; the file is fine as audio."""
    predictor = Predictor.from_pretrained(trained_checkpoint)
    with pytest.raises(MediaError, match="no video stream"):
        predictor.predict(video=files / "sound-only.m4a")
    assert predictor.predict(audio=files / "sound-only.m4a").observed == ["audio"]
    window = ["--checkpoint", str(trained_checkpoint), "--video", str(files / "sound-only.m4a"), "--window", "0.5"]
    assert _fails(capfd, infer.main, window).endswith("sound-only.m4a: no video stream")


def test_silence_counts_as_missing_audio(trained_checkpoint, files, capfd):
    """Issue 27: silence has no voice to hear; alone it is an error, beside text it is reconstructed."""
    err = _fails(capfd, infer.main, ["--checkpoint", str(trained_checkpoint), "--audio", str(files / "silence.wav")])
    assert "no voice activity" in err
    capfd.readouterr()  # _fails prints the message
    result = _infer_json(capfd, ["--checkpoint", str(trained_checkpoint), "--audio", str(files / "silence.wav"),
                                 "--text", "hello"])
    assert result["observed"] == ["text"] and "audio" in result["reconstructed"]


def test_48k_stereo_is_resampled_and_mixed_down(trained_checkpoint, files, capfd):
    wave = load_audio(files / "stereo-48k.wav", RATE)
    assert wave.shape == (RATE,)  # one second at 16 kHz, mono
    assert np.abs(wave[1000:-1000]).max() == pytest.approx(0.15, abs=0.01)  # the mean of the tone and silence
    result = _infer_json(capfd, ["--checkpoint", str(trained_checkpoint), "--audio", str(files / "stereo-48k.wav")])
    assert result["observed"] == ["audio"]


def test_ten_hour_audio_is_refused_from_its_header(trained_checkpoint, tmp_path, monkeypatch, capfd):
    path = _silent_wav(tmp_path / "ten-hours.wav", 10 * 3600)
    assert path.stat().st_size > 10**9

    def never(*args, **kwargs):
        raise AssertionError("decoded a ten-hour file")

    monkeypatch.setattr(sf, "read", never)
    monkeypatch.setattr(sf.SoundFile, "read", never)
    with pytest.raises(MediaError, match=r"too long: 36000\.0 s > max_seconds=600$"):
        load_audio(path)
    with pytest.raises(AssertionError, match="decoded"):  # the limit is what kept it from being read
        load_audio(path, max_seconds=None)
    out = tmp_path / "result.json"
    err = _fails(capfd, infer.main, ["--checkpoint", str(trained_checkpoint), "--audio", str(path),
                                     "--output", str(out)], out)
    assert err == f"{path}: too long: 36000.0 s > max_seconds=600"


def test_max_seconds_is_a_setting_of_infer(trained_checkpoint, files, tmp_path, capfd):
    audio = str(files / "stereo-48k.wav")  # one second
    out = tmp_path / "result.json"
    argv = ["--checkpoint", str(trained_checkpoint), "--audio", audio, "--output", str(out)]
    err = _fails(capfd, infer.main, [*argv, "--max-seconds", "0.5"], out)
    assert err == f"{audio}: too long: 1.0 s > max_seconds=0.5"
    capfd.readouterr()  # _fails echoes the message on stdout
    assert _infer_json(capfd, [*argv[:4], "--max-seconds", "0"])["observed"] == ["audio"]  # 0: no limit


# --- images ------------------------------------------------------------------------------


def test_1x1_image(trained_checkpoint, files, tmp_path, capfd):
    image = str(files / "1x1.png")
    ckpt = ["--checkpoint", str(trained_checkpoint)]
    result = _infer_json(capfd, [*ckpt, "--image", image, "--text", "hello"])
    assert "face" in result["reconstructed"] and result["notes"] == ["no face found in the image"]
    assert result["face_frames"] == {"searched": 1, "with_face": 0}
    assert _infer_json(capfd, [*ckpt, "--image", image, "--no-face-detection"])["observed"] == ["face"]
    out = tmp_path / "result.json"
    err = _fails(capfd, infer.main, [*ckpt, "--image", image, "--output", str(out)], out)
    assert err == "no face found in the image, and no other input to predict from"


@pytest.mark.parametrize("width, height, message", [
    (20_000, 20_000, (r"too large: Image size \(400000000 pixels\) exceeds limit of \d+ pixels "
                      r"\(Pillow's decompression-bomb limit\)")),
    (10_000, 6_000, r"too large: 10000x6000 = 60000000 pixels > max_pixels=50000000"),
])  # fmt: skip
def test_huge_image_is_refused_before_decoding(width, height, message, trained_checkpoint, tmp_path, monkeypatch,
                                               capfd):
    from PIL import ImageFile

    path = _blank_png(tmp_path / f"{width}x{height}.png", width, height)

    def never(*args, **kwargs):
        raise AssertionError("decoded a huge image")

    monkeypatch.setattr(ImageFile.ImageFile, "load", never)
    monkeypatch.setattr(cv2, "imread", never)
    with pytest.raises(MediaError, match=f"^{path}: {message}$"):
        load_image(path)
    out = tmp_path / "result.json"
    err = _fails(capfd, infer.main, ["--checkpoint", str(trained_checkpoint), "--image", str(path),
                                     "--output", str(out)], out)
    assert err.startswith(f"{path}: too large: ")


# --- text --------------------------------------------------------------------------------


@pytest.mark.parametrize("text, message", [
    ("   ", "text is empty"),
    ("@empty.txt", "text is empty"),
    ("@latin1.txt", "text file {files}/latin1.txt is not valid UTF-8"),
    ("@missing.txt", "text file {files}/missing.txt does not exist"),
])  # fmt: skip
def test_bad_text_is_one_line_exit_2(text, message, trained_checkpoint, files, tmp_path, capfd):
    text = f"@{files / text[1:]}" if text.startswith("@") else text
    out = tmp_path / "result.json"
    err = _fails(capfd, infer.main, ["--checkpoint", str(trained_checkpoint), "--text", text, "--output", str(out)],
                 out)
    assert err == message.format(files=files)


def test_1mb_text_is_truncated_by_the_tokenizer(trained_checkpoint, files, capfd):
    assert (files / "1mb.txt").stat().st_size > 1_000_000
    result = _infer_json(capfd, ["--checkpoint", str(trained_checkpoint), "--text", f"@{files / '1mb.txt'}"])
    assert result["observed"] == ["text"]


# --- arrays through the API --------------------------------------------------------------


@pytest.fixture(scope="module")
def feature_predictor() -> Predictor:
    """An untrained model over pre-extracted audio and text features (as CMU-MOSI's)."""
    config = create_config("tiny", face=None, audio=FeatureConfig(input_dim=8), text=FeatureConfig(input_dim=4))
    return Predictor(BridgeModel(config, load_weights=False), Preprocessor(config))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features_are_an_input_error(bad, feature_predictor):
    audio = np.zeros((3, 8), np.float32)
    good = Sample(id="x", label=0, features={Modality.AUDIO: audio, Modality.TEXT: np.zeros(4, np.float32)})
    assert feature_predictor.predict_sample(good).observed == ["audio", "text"]
    audio[1, 2] = bad
    with pytest.raises(InputError, match="^features contain NaN or infinite values$"):
        feature_predictor.predict_sample(Sample(id="x", label=0, features={Modality.AUDIO: audio}))
    with pytest.raises(InputError, match="pre-extracted features, not raw media"):
        feature_predictor.predict(audio=audio.ravel())


def test_non_finite_waveform_is_an_input_error(trained_checkpoint):
    predictor = Predictor.from_pretrained(trained_checkpoint)
    wave = _tone(0.5)
    wave[100] = np.nan
    with pytest.raises(InputError, match="^audio contains NaN or infinite samples$"):
        predictor.predict(audio=wave)


# --- checkpoints -------------------------------------------------------------------------


def _no_config(d: Path) -> None:
    (d / "config.json").unlink()


def _truncated_config(d: Path) -> None:
    (d / "config.json").write_text((d / "config.json").read_text()[:200])


def _config_not_matching_weights(d: Path) -> None:
    meta = json.loads((d / "config.json").read_text())
    meta["model"]["dim"] = 32  # the weights were trained at 64
    (d / "config.json").write_text(json.dumps(meta))


def _no_weights(d: Path) -> None:
    (d / "model.safetensors").unlink()


def _truncated_weights(d: Path) -> None:
    (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:5000])


BROKEN_CHECKPOINTS = {  # the message, a regular expression after CKPT
    "no config.json": (_no_config, r" is not a bridge checkpoint: no config\.json"),
    "truncated config.json": (_truncated_config, r"/config\.json is not valid JSON \(.+\)"),
    "config.json not matching weights": (_config_not_matching_weights,
                                         (r"/model\.safetensors does not match config\.json: \d+ tensors of another "
                                          r"shape, e\.g\. \S+ is \[.*64\] in the weights but \[.*32\] in the config")),
    "no model.safetensors": (_no_weights, r" is not a bridge checkpoint: no model\.safetensors"),
    "truncated model.safetensors": (_truncated_weights, r"/model\.safetensors cannot be loaded: .+"),
}


def _copy_checkpoint(source: Path, target: Path) -> Path:
    return Path(shutil.copytree(source, target, ignore=shutil.ignore_patterns("training_state.pt", "*.png")))


@pytest.mark.parametrize("entry", ["infer.py", "evaluate.py", "load_checkpoint"])
@pytest.mark.parametrize("case", list(BROKEN_CHECKPOINTS))
def test_broken_checkpoint_is_one_line_exit_2(case, entry, trained_checkpoint, tmp_path, capfd):
    break_it, message = BROKEN_CHECKPOINTS[case]
    ckpt = _copy_checkpoint(trained_checkpoint, tmp_path / "ckpt")
    break_it(ckpt)
    out = tmp_path / "out"
    if entry == "load_checkpoint":
        with pytest.raises(CheckpointError) as caught:
            load_checkpoint(ckpt)
        err = str(caught.value)
        assert "\n" not in err
    elif entry == "infer.py":
        err = _fails(capfd, infer.main, ["--checkpoint", str(ckpt), "--text", "hello", "--output", str(out)], out)
    else:
        err = _fails(capfd, evaluate.main, _evaluate_args(ckpt, out), out)
    assert re.fullmatch(re.escape(str(ckpt)) + message, err), err


# --- scripts' other arguments ------------------------------------------------------------


def test_unknown_preset_is_argparse_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        train.main(["--preset", "nope", "--output", str(tmp_path / "run")])
    assert caught.value.code == 2
    assert "argument --preset: invalid choice: 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_labels_other_than_the_checkpoint_are_refused(trained_checkpoint, tmp_path, capfd):
    ckpt = _copy_checkpoint(trained_checkpoint, tmp_path / "ckpt")
    meta = json.loads((ckpt / "config.json").read_text())
    meta["model"]["labels"] = meta["labels"] = ["furious", *meta["labels"][1:]]  # not the synthetic set
    (ckpt / "config.json").write_text(json.dumps(meta))
    out = tmp_path / "eval"
    err = _fails(capfd, evaluate.main, _evaluate_args(ckpt, out), out)
    assert err.startswith("label mismatch: synthetic has labels ['angry', ") and "the checkpoint ['furious', " in err


@pytest.mark.parametrize("where", ["under /proc", "under a file", "a folder"])
def test_output_that_cannot_be_written_is_one_line_exit_2(where, trained_checkpoint, files, tmp_path, capfd):
    if where == "under /proc" and not Path("/proc/self").is_dir():
        pytest.skip("no procfs here")
    (tmp_path / "taken").mkdir()
    out, reason = {
        "under /proc": (Path("/proc/bridge-forbidden/result.json"), "(/proc/bridge-forbidden: "),  # any errno
        "under a file": (files / "a-file" / "result.json", f"({files / 'a-file'}: Not a directory)"),
        "a folder": (tmp_path / "taken", "(Is a directory)"),
    }[where]
    argv = ["--checkpoint", str(trained_checkpoint), "--text", "hello", "--output", str(out)]
    err = _fails(capfd, infer.main, argv, None if where == "a folder" else out)
    assert err.startswith(f"cannot write {out} {reason}")
    assert [p.name for p in tmp_path.iterdir()] == ["taken"] and not list(out.parent.glob(".*.tmp"))


def test_evaluate_output_that_cannot_be_written_is_one_line_exit_2(trained_checkpoint, files, capfd):
    out = files / "a-file" / "eval"
    err = _fails(capfd, evaluate.main, _evaluate_args(trained_checkpoint, out), out, last_line=True)
    # Checked before the evaluation (issue 27), naming the output and the file in its way.
    assert err.startswith(f"cannot write {out} ") and err.endswith(f"({files / 'a-file'}: Not a directory)")


def test_an_error_with_an_empty_message_is_still_one_line():
    from bridge.cli import first_line

    assert first_line(KeyError()) == "KeyError" and first_line(OSError()) == "OSError"
    assert first_line(ValueError("  first\nsecond")) == "first"
    assert first_line(ValueError("x" * 300), 120) == "x" * 120
