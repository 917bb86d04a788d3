"""Reliability through the scripts, as a user meets it: resume restores the run, interrupts keep
work, phone videos are upright, too little sound is no sound, one run per folder, a cache that
cannot mix items, honest counts, outputs checked before work, shareable checkpoints, and a fast
``--help``. See docs/reliability.md."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf
import torch

import evaluate
import infer
import train
from bridge.data.export import export_sample
from bridge.data.synthetic import SyntheticEmotions
from bridge.media import write_video
from bridge.modality import EMOTIONS

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--limit", "8", "--batch-size", "8", "--no-cache"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _interruptible() -> None:
    """In the child, before infer.py starts: Ctrl-C as at a terminal. A shell that starts a command
    in the background (``pytest &``) leaves SIGINT ignored, and children inherit that, so the
    signal these tests send would never arrive."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "nothing on stderr"
    return err[-1]


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """The astronaut's face as a portrait phone clip stored sideways (display-matrix rotation),
    the same clip upright, and a long upright clip for interrupting."""
    from skimage.data import astronaut

    d = tmp_path_factory.mktemp("faces")
    photo = cv2.resize(astronaut(), (240, 240))
    upright = np.full((320, 240, 3), 70, np.uint8)  # portrait (h, w)
    upright[40:280] = photo
    clip = np.stack([np.roll(upright, k, axis=1) for k in range(20)])  # (t, 320, 240, 3)
    sideways = np.ascontiguousarray(np.rot90(clip, -1, axes=(1, 2)))  # stored turned clockwise: (t, 240, 320, 3)
    write_video(d / "phone.mp4", sideways, fps=10, rotation=90)  # players turn it back counter-clockwise
    write_video(d / "sideways-no-matrix.mp4", sideways, fps=10)
    small = cv2.resize(upright, (120, 160))
    write_video(d / "long.mp4", np.repeat(small[None], 600, axis=0), fps=25)
    return d


def _manifest(folder: Path, n_train: int = 24, n_eval: int = 6, seed: int = 5) -> Path:
    """A manifest of synthetic face crops, voices and texts (train, val and test rows)."""
    rows = ["id,label,split,image,audio,text"]
    samples = SyntheticEmotions(n_train + 2 * n_eval, "train", seed=seed)
    for i, sample in enumerate(samples):
        split = "train" if i < n_train else "val" if i < n_train + n_eval else "test"
        export_sample(sample, folder / f"s{i}")
        rows.append(f"s{i},{EMOTIONS[sample.label]},{split},s{i}/face.png,s{i}/voice.wav,\"{sample.text}\"")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    return folder / "manifest.csv"


# --- 1: resume restores the run ---------------------------------------------------------------


def test_resume_restores_the_runs_settings_and_refuses_contradictions(tmp_path, capsys):
    run = tmp_path / "run"
    start = [*QUICK, "--modalities", "text,face", "--set", "fusion.depth=1", "--seed", "3", "--output", str(run)]
    assert train.main([*start, "--epochs", "1"]) == 0
    capsys.readouterr()
    # As the README shows it: only --output and --resume (and more epochs). The run's data, modalities,
    # overrides and seed come back; before, this built the default model and died in load_state_dict.
    assert train.main(["--output", str(run), "--resume", "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "resuming with --epochs 2 (the run was started with 1)" in out
    assert "[face, text]" in out and "resumed at epoch 2" in out
    state = torch.load(run / "training_state.pt", weights_only=True)
    assert state["epoch"] == 1 and json.loads(state["run"])["seed"] == 3
    meta = json.loads((run / "config.json").read_text())
    assert meta["model"]["fusion"]["depth"] == 1 and meta["model"]["audio"] is None
    # A flag that contradicts the run: one line naming both values, nothing trained.
    assert train.main(["--output", str(run), "--resume", "--preset", "small"]) == 2
    message = _err(capsys)
    assert "--preset small contradicts the run" in message and "--preset tiny" in message
    assert train.main(["--output", str(run), "--resume", "--seed", "4"]) == 2
    assert "--seed 4" in _err(capsys)
    # Resuming a finished run says so and changes nothing.
    before = (run / "training_state.pt").stat().st_mtime_ns
    assert train.main(["--output", str(run), "--resume"]) == 0
    assert "already finished its 2 epochs" in capsys.readouterr().out
    assert (run / "training_state.pt").stat().st_mtime_ns == before
    assert train.main(["--output", str(run), "--resume", "--epochs", "1"]) == 2
    assert "already trained 2 epochs" in _err(capsys)


def test_resume_of_a_run_started_before_the_redesign(tmp_path, capsys):
    """A run whose config.json still keeps run-time settings in the model config (face.test_flip,
    translator.loss) and whose state predates recorded settings resumes; before, it died with
    "unknown FaceConfig fields: test_flip"."""
    run = tmp_path / "run"
    assert train.main([*QUICK, "--modalities", "face,text", "--output", str(run), "--epochs", "1"]) == 0
    meta = json.loads((run / "config.json").read_text())
    meta["model"]["face"]["test_flip"] = False
    meta["model"]["translator"]["loss"] = "mse"
    (run / "config.json").write_text(json.dumps(meta))
    state = torch.load(run / "training_state.pt", weights_only=True)
    del state["run"]
    torch.save(state, run / "training_state.pt")
    capsys.readouterr()
    assert train.main(["--output", str(run), "--resume", "--epochs", "2"]) == 0
    assert "resumed at epoch 2" in capsys.readouterr().out
    assert torch.load(run / "training_state.pt", weights_only=True)["epoch"] == 1


def test_resume_of_a_run_recorded_with_test_flip_keeps_its_mirror(tmp_path, capsys):
    """A run recorded before test-time views (``test_flip``, a yes or no) resumes with the views it meant."""
    run = tmp_path / "run"
    assert train.main([*QUICK, "--modalities", "face,text", "--output", str(run), "--epochs", "1",
                       "--test-views", "mirror"]) == 0
    state = torch.load(run / "training_state.pt", weights_only=True)
    recorded = json.loads(state["run"])
    assert recorded.pop("test_views") == "mirror"
    state["run"] = json.dumps({**recorded, "test_flip": True})
    torch.save(state, run / "training_state.pt")
    capsys.readouterr()
    assert train.main(["--output", str(run), "--resume", "--epochs", "2"]) == 0
    assert json.loads(torch.load(run / "training_state.pt", weights_only=True)["run"])["test_views"] == "mirror"
    assert json.loads((run / "config.json").read_text())["inference"] == {"test_views": "mirror"}


def test_resume_without_a_training_state_fails_before_any_work(tmp_path, capsys):
    assert train.main([*QUICK, "--output", str(tmp_path / "none"), "--resume"]) == 2
    assert "holds no training state" in _err(capsys)
    assert not (tmp_path / "none").exists()


# --- 2: interrupts keep work --------------------------------------------------------------------


def _wait_for_line(stream, needle: str, proc: subprocess.Popen, seconds: float = 240) -> list[str]:
    seen, deadline = [], time.time() + seconds
    while time.time() < deadline:
        line = stream.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} never appeared: {seen[-5:]}")


def test_sigint_finishes_and_renames_the_live_recording(trained_checkpoint, faces, tmp_path):
    out = tmp_path / "live" / "annotated.mp4"
    proc = subprocess.Popen([sys.executable, "infer.py", "--checkpoint", str(trained_checkpoint), "--webcam",
                             str(faces / "long.mp4"), "--every", "1", "--save-video", str(out)],
                            cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_interruptible)
    try:
        _wait_for_line(proc.stdout, "frame 3 ", proc)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "interrupted after" in stdout and f"annotated video written to {out}" in stdout
    frames = int(stdout.rsplit(" frames", 1)[0].split()[-1])
    assert 3 <= frames < 600  # the frames up to the signal are kept (the one being drawn may be dropped)
    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == frames
    assert [p.name for p in out.parent.iterdir()] == ["annotated.mp4"]  # no hidden temporary left


def test_sigterm_writes_the_batch_items_done(trained_checkpoint, tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    for i in range(4000):
        (folder / f"t{i:04d}.txt").write_text("what a wonderful surprise" if i % 2 else "leave me alone")
    out = tmp_path / "out" / "predictions"
    proc = subprocess.Popen([sys.executable, "infer.py", "--checkpoint", str(trained_checkpoint), "--batch",
                             str(folder), "--output", str(out), "--json"],
                            cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_line(proc.stdout, '"id": "t0002"', proc)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130
    lines = (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()
    done = len(lines)
    assert 3 <= done < 4000
    assert f"interrupted: {done} of 4000 items predicted" in stderr and f"{4000 - done} not predicted" in stderr
    assert len((tmp_path / "out" / "predictions.csv").read_text().splitlines()) == done + 1
    assert {p.name for p in out.parent.iterdir()} == {"predictions.csv", "predictions.jsonl"}


def test_sigint_writes_the_timeline_windows_finished(trained_checkpoint, tmp_path):
    video = tmp_path / "long.mp4"
    frames = np.full((1500, 240, 320, 3), 90, np.uint8)
    frames[:, 60:180, 100:220] = np.arange(120, dtype=np.uint8)[None, :, None, None]
    write_video(video, frames, fps=25)  # 60 s
    out = tmp_path / "timeline"
    proc = subprocess.Popen([sys.executable, "infer.py", "--checkpoint", str(trained_checkpoint), "--video",
                             str(video), "--window", "0.25", "--timeline-dir", str(out), "--json"],
                            cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_interruptible)
    try:
        _wait_for_line(proc.stderr, "Ctrl-C stops it", proc)
        time.sleep(3)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    written = json.loads((out / "timeline.json").read_text())
    total = int(stderr.split(" windows finished")[0].split(" of ")[-1])
    assert total == 479 and len(written["timeline"]) < total
    assert f"interrupted: {len(written['timeline'])} of {total} windows finished and written" in stderr
    assert all(row["end"] <= 60 for row in written["timeline"])
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


# --- 3: phone videos ----------------------------------------------------------------------------


def test_rotated_phone_video_is_decoded_upright_everywhere(trained_checkpoint, faces, capsys):
    ck = str(trained_checkpoint)
    haar = ["--face-detector", "haar"]  # upright faces only (BlazeFace also finds faces turned sideways)
    assert infer.main(["--checkpoint", ck, *haar, "--video", str(faces / "phone.mp4"), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)["face_frames"]
    assert found["searched"] > 0 and found["with_face"] == found["searched"]
    # The same pixels without the display matrix really are sideways: the detector needs the turn.
    assert infer.main(["--checkpoint", ck, *haar, "--video", str(faces / "sideways-no-matrix.mp4"), "--text", "hi",
                       "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["face_frames"]["with_face"] == 0
    assert infer.main(["--checkpoint", ck, *haar, "--video", str(faces / "phone.mp4"), "--window", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["timeline"]
    assert rows and all(r["face_frames"]["with_face"] == r["face_frames"]["searched"] > 0 for r in rows)
    # Training readers (manifest, RAVDESS, MELD clips) decode through the same path.
    from bridge.data.corpus import MediaLoader
    from bridge.data.sample import Sample

    sample, problems = MediaLoader()(Sample(id="p", label=0), {"video_path": str(faces / "phone.mp4")})
    assert problems == [] and sample.face is not None and len(sample.face) == 8


# --- 4: too little audio ------------------------------------------------------------------------


def test_too_short_or_silent_audio_counts_as_missing_and_says_why(trained_checkpoint, tmp_path, capsys):
    rate = 16_000
    t = np.arange(rate * 2) / rate
    clips = {"one-sample": np.array([0.3], np.float32), "short": (0.3 * np.sin(2 * np.pi * 200 * t[:800])),
             "silence": np.zeros(rate * 2, np.float32), "voice": 0.3 * np.sin(2 * np.pi * 200 * t)}
    for name, wave in clips.items():
        sf.write(tmp_path / f"{name}.wav", np.asarray(wave, np.float32), rate)
    ck = str(trained_checkpoint)
    for name, why in (("one-sample", "shorter than the 0.25 s minimum"), ("short", "0.05 s long"),
                      ("silence", "no voice activity")):
        assert infer.main(["--checkpoint", ck, "--audio", str(tmp_path / f"{name}.wav"), "--text", "so happy",
                           "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["observed"] == ["text"] and "audio" in result["reconstructed"]
        assert any(why in note for note in result["notes"]), result["notes"]
        assert infer.main(["--checkpoint", ck, "--audio", str(tmp_path / f"{name}.wav")]) == 2
        message = _err(capsys)
        assert why in message and "no other input" in message
    assert infer.main(["--checkpoint", ck, "--audio", str(tmp_path / "voice.wav"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["observed"] == ["audio"]


# --- 5: one run per folder ----------------------------------------------------------------------


def test_a_second_run_into_a_busy_folder_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "train.py", "--limit", "200", "--epochs", "50", "--batch-size", "8",
                             "--no-cache", "--output", str(run)], cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while not ((run / ".lock").is_file() and (run / ".lock").read_text().strip()) and time.time() < deadline:
            assert proc.poll() is None, "the first run ended early"
            time.sleep(0.1)
        assert train.main([*QUICK, "--epochs", "1", "--output", str(run)]) == 2
        assert f"is in use by another training run (process {proc.pid})" in _err(capsys)
    finally:
        proc.kill()
        proc.wait()
    # The lock dies with its holder: the folder is usable again.
    assert train.main([*QUICK, "--epochs", "1", "--output", str(run)]) == 0


def test_a_lock_says_who_holds_it_and_a_probe_never_makes_a_run_refuse_its_folder(tmp_path):
    import fcntl
    import threading

    from bridge.cli import RunLock

    folder = tmp_path / "run"
    with RunLock(folder) as lock:
        lock.note("face")
        assert RunLock.holder(folder) == (str(os.getpid()), "face")
    assert RunLock.holder(folder) is None and not folder.exists()  # nothing written: no folder left
    folder.mkdir()
    (folder / RunLock.NAME).write_text("999999 face")  # the lock file a killed run left
    assert RunLock.holder(folder) is None
    probe = open(folder / RunLock.NAME)  # a status probe at the moment a run takes the folder
    fcntl.flock(probe.fileno(), fcntl.LOCK_SH)
    threading.Timer(0.1, probe.close).start()
    with RunLock(folder):  # waits out the probe instead of refusing
        assert RunLock.holder(folder)[0] == str(os.getpid())


def test_a_replaced_model_never_keeps_the_previous_evaluation(trained_checkpoint, tmp_path, capsys):
    run = tmp_path / "run"
    assert train.main([*QUICK, "--epochs", "1", "--output", str(run)]) == 0
    assert evaluate.main(["--checkpoint", str(run), "--protocols", "patterns", "--limit", "20", "--no-cache"]) == 0
    assert (run / "eval-synthetic-test" / "results.json").is_file()
    assert train.main([*QUICK, "--epochs", "1", "--seed", "1", "--output", str(run)]) == 0
    assert not (run / "eval-synthetic-test").exists()


# --- 6: the preprocessing cache ---------------------------------------------------------------


def test_a_cache_save_interrupted_anywhere_never_mixes_items(tmp_path, monkeypatch):
    import csv
    import shutil

    import bridge.cache
    from bridge.config import create_config
    from bridge.data.manifest import read_manifest
    from bridge.preprocess import Preprocessor
    from bridge.train.trainer import ExampleDataset

    manifest = _manifest(tmp_path / "data", 12, 1)
    first = manifest.read_text().splitlines()
    # Later: the same items in the opposite order (each in another slot of the shard) and one text edited.
    header, *rows = first
    second = [header, *reversed(rows)]
    edited = next(i for i, row in enumerate(second) if ",train," in row)  # a training item: read, so preprocessed
    second[edited] = ",".join(next(csv.reader([second[edited]]))[:5]) + ',"an edited transcript"'
    pre, cache = Preprocessor(create_config("tiny")), tmp_path / "cache"
    load = lambda: read_manifest(manifest, "train", detect_faces=False)  # noqa: E731
    real_replace, real_save = os.replace, bridge.cache.save_file
    for crash in ("while writing", "before the rename"):
        shutil.rmtree(cache, ignore_errors=True)
        manifest.write_text("\n".join(first) + "\n")
        ExampleDataset(load(), pre, cache_dir=cache)
        manifest.write_text("\n".join(second) + "\n")

        def half_written(tensors, path, metadata=None):
            real_save(tensors, path, metadata=metadata)
            with open(path, "r+b") as f:
                f.truncate(Path(path).stat().st_size // 2)
            raise KeyboardInterrupt("killed while writing the shard")

        def no_rename(src, dst):
            raise KeyboardInterrupt("killed before the rename")

        if crash == "while writing":
            monkeypatch.setattr(bridge.cache, "save_file", half_written)
        else:
            monkeypatch.setattr(os, "replace", no_rename)
        with pytest.raises(KeyboardInterrupt):  # preprocesses the edited item, dies saving the shard
            ExampleDataset(load(), pre, cache_dir=cache)
        monkeypatch.setattr(os, "replace", real_replace)
        monkeypatch.setattr(bridge.cache, "save_file", real_save)
        assert not list(cache.rglob("*.tmp")), crash  # the half-written file went with the crash
        fresh = {e.id: e for e in ExampleDataset(load(), pre).examples}
        again = ExampleDataset(load(), pre, cache_dir=cache)
        assert len(again) == 12
        for ex in again.examples:
            for m, (x, _) in ex.inputs.items():
                assert torch.equal(x, fresh[ex.id].inputs[m][0]), f"{ex.id} got another item's {m.value}"


def test_cache_saves_progress_removes_stale_shards_and_covers_small_splits(tmp_path, monkeypatch, capsys):
    import bridge.cache
    from bridge.preprocess import Preprocessor

    manifest = _manifest(tmp_path / "data", 12, 4)
    cache = tmp_path / "cache"
    args = ["--data", f"manifest:{manifest}", "--epochs", "1", "--batch-size", "6", "--cache-dir", str(cache),
            "--no-face-detection"]
    # Killed during preprocessing: what was done is saved (progress every SAVE_EVERY_SECONDS).
    monkeypatch.setattr(bridge.cache, "SAVE_EVERY_SECONDS", 0.0)
    real_call, seen = Preprocessor.__call__, []

    def dies_at_the_eighth(self, sample):
        seen.append(sample.id)
        if len(seen) == 8:
            raise KeyboardInterrupt
        return real_call(self, sample)

    monkeypatch.setattr(Preprocessor, "__call__", dies_at_the_eighth)
    assert train.main([*args, "--output", str(tmp_path / "a")]) == 130
    monkeypatch.setattr(Preprocessor, "__call__", real_call)
    shard_dir = next(cache.rglob("*.safetensors")).parent
    stale = shard_dir / ".manifest-train.999999999.tmp"  # a killed run's temporary shard
    stale.write_bytes(b"partial")
    calls = []
    monkeypatch.setattr(Preprocessor, "__call__", lambda self, s: calls.append(s.id) or real_call(self, s))
    # --limit above the split's size: the split is used whole, and cached like any other.
    assert train.main([*args, "--limit", "1000", "--output", str(tmp_path / "b")]) == 0
    assert not stale.exists()
    assert len([c for c in calls if c in {f"s{i}" for i in range(12)}]) == 12 - 7  # 7 train items were saved
    shards = {p.name for p in shard_dir.glob("*.safetensors")}
    assert shards == {"manifest-train.safetensors", "manifest-val.safetensors"}
    assert not list(shard_dir.glob("*.json"))  # one file per shard: no separate index


# --- 7: counts, and pre-cropped faces -------------------------------------------------------------


def test_missing_counts_are_per_item_and_equal_on_a_warm_cache(tmp_path, capsys):
    manifest = _manifest(tmp_path / "data", 24, 6)
    args = ["--data", f"manifest:{manifest}", "--epochs", "1", "--batch-size", "12",
            "--cache-dir", str(tmp_path / "cache")]

    def train_line(out: str) -> str:
        return next(line for line in out.splitlines() if line.startswith("data train:"))

    assert train.main([*args, "--output", str(tmp_path / "cold")]) == 0
    cold = train_line(capsys.readouterr().out)
    missing = int(cold.split("face: no face detected")[0].split("(")[-1])
    assert 0 < missing <= 24  # the synthetic crops are too small for the detector: counted once each
    assert train.main([*args, "--output", str(tmp_path / "warm")]) == 0
    assert train_line(capsys.readouterr().out) == cold
    # Pre-cropped faces: no detection, so none is missing.
    assert train.main([*args, "--no-face-detection", "--output", str(tmp_path / "crops")]) == 0
    out = capsys.readouterr().out
    assert "no face detected" not in out and "[face, audio, text]" in out
    meta = json.loads((tmp_path / "crops" / "config.json").read_text())
    assert meta["data"]["face_detection"] is False
    # evaluate.py decodes the crops as training did (no detection), so it scores the kept epoch as training did
    assert evaluate.main(["--checkpoint", str(tmp_path / "crops"), "--split", "val", "--protocols", "patterns",
                          "--cache-dir", str(tmp_path / "cache"), "--output", str(tmp_path / "eval")]) == 0
    report = json.loads((tmp_path / "eval" / "results.json").read_text())
    scored = report["results"]["face+audio+text"]["reconstruct"]
    assert (scored["accuracy"], scored["macro_f1"]) == pytest.approx((meta["best"]["val"]["accuracy"],
                                                                      meta["best"]["val"]["macro_f1"]))
    assert train.main([*QUICK, "--no-face-detection", "--output", str(tmp_path / "x")]) == 2
    assert "--no-face-detection applies to manifest data" in _err(capsys)


# --- 8: outputs checked before work --------------------------------------------------------------


def test_unwritable_outputs_fail_before_any_work(trained_checkpoint, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cache = tmp_path / "cache"
    assert train.main(["--limit", "28", "--output", str(blocker / "run"), "--cache-dir", str(cache)]) == 2
    assert f"cannot write {blocker / 'run'} ({blocker}: Not a directory)" in _err(capsys)
    assert not cache.exists()  # nothing was preprocessed
    import bridge.eval.protocols

    def must_not_run(*a, **k):
        raise AssertionError("evaluated before finding the report folder unwritable")

    monkeypatch.setattr(bridge.eval.protocols, "evaluate_patterns", must_not_run)
    assert evaluate.main(["--checkpoint", str(trained_checkpoint), "--output", str(blocker / "report")]) == 2
    assert f"cannot write {blocker / 'report'} ({blocker}: Not a directory)" in _err(capsys)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folders_are_named_before_any_work(trained_checkpoint, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert train.main([*QUICK, "--output", str(locked / "run")]) == 2
        assert f"cannot write {locked / 'run'} ({locked}: Permission denied)" in _err(capsys)
    finally:
        locked.chmod(0o755)


# --- 9: shareable checkpoints ----------------------------------------------------------------------


def test_checkpoints_honour_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        assert train.main([*QUICK, "--epochs", "1", "--output", str(tmp_path / "run")]) == 0
    finally:
        os.umask(previous)
    run = tmp_path / "run"
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(run) == 0o755
    for name in ("model.safetensors", "config.json", "training_state.pt", "history.json", "curves.png"):
        assert mode(run / name) == 0o644, name


# --- 11: arguments before heavy imports -------------------------------------------------------------


@pytest.mark.parametrize("script, argv", [("infer", ["--help"]), ("train", ["--help"]), ("evaluate", ["--help"]),
                                          ("train", ["--lr", "-1"]), ("evaluate", ["--checkpoint", "x", "--limit", "0"]),
                                          ("infer", ["--checkpoint", "x", "--max-seconds", "-1"])])
def test_help_and_flag_errors_do_not_import_torch(script, argv):
    code = (f"import sys, {script}\n"
            f"try:\n    rc = {script}.main({argv!r})\nexcept SystemExit as e:\n    rc = e.code\n"
            "print(rc, 'torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60)
    rc, torch_loaded, transformers_loaded = out.stdout.split()[-3:]
    assert rc in ("0", "2") and torch_loaded == "False" and transformers_loaded == "False", out.stderr
