"""Preprocessing throughput on real files: decode, face detection, filterbank, cache hit.

    python benchmarks/preprocess.py                 # RAVDESS + FER-2013 from the data root
    python benchmarks/preprocess.py --files 100 --json reports/preprocess.json

Prints a table of files per second for each stage and writes JSON. Stages:
- decode audio: RAVDESS FLAC -> 16 kHz mono float (bridge.media.load_audio);
- decode image: FER-2013 PNG -> array (bridge.media.load_image);
- decode video: a 3 s 640x480 mp4 written from a real FER-2013 face and a RAVDESS clip,
  8 frames sampled (bridge.media.read_video_frames);
- detect face: Haar cascade + crop on those 640x480 frames (per frame);
- filterbank: waveform -> normalised log-mel (bridge.preprocess.Preprocessor.audio);
- cache miss / hit: a manifest corpus of those files through ExampleDataset, cold and warm.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


from bridge.config import create_config
from bridge.data.paths import data_root
from bridge.media import (FaceDetector, face_track, load_audio, load_image, read_video_frames,
                          write_video)
from bridge.preprocess import Preprocessor


def rate(fn, items) -> tuple[float, float]:
    start = time.perf_counter()
    for item in items:
        fn(item)
    seconds = time.perf_counter() - start
    return len(items) / seconds, seconds


def face_clip(path: Path, face: np.ndarray, wave: np.ndarray, seconds: float = 3.0, fps: int = 25) -> None:
    """A 640x480 clip of a real face (scaled to 200 px, drifting sideways) with a real voice."""
    import cv2

    big = cv2.resize(face, (200, 200), interpolation=cv2.INTER_CUBIC)
    frames = np.full((int(seconds * fps), 480, 640, 3), 60, np.uint8)
    for i, frame in enumerate(frames):
        x = 200 + int(20 * np.sin(i / 10))
        frame[140:340, x:x + 200] = big[..., None]
    write_video(path, frames, fps, wave[: int(seconds * 16000)], 16000)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", default=None)
    p.add_argument("--files", type=int, default=60, help="files per stage")
    p.add_argument("--json", default="reports/benchmarks/preprocess.json")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    root = data_root(args.data_root)
    flacs = sorted((root / "ravdess_speech_16k").rglob("*.flac"))[:: 24][: args.files]
    pngs = sorted((root / "fer2013" / "test" / "happy").glob("*.png"))[: args.files]
    if not flacs or not pngs:
        print(f"no RAVDESS/FER-2013 files under {root}", file=sys.stderr)
        return 2
    pre = Preprocessor(create_config("tiny"))
    rows = []
    r, s = rate(load_audio, flacs)
    rows.append(("decode audio (RAVDESS flac)", len(flacs), r, s))
    waves = [load_audio(f) for f in flacs]
    r, s = rate(load_image, pngs)
    rows.append(("decode image (FER-2013 png)", len(pngs), r, s))
    r, s = rate(lambda w: pre.audio(w, 16000, pre.config.audio), waves)
    rows.append(("filterbank (kaldi fbank, 64 mel)", len(waves), r, s))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        videos = []
        for i in range(max(2, args.files // 10)):
            videos.append(tmp / f"clip{i}.mp4")
            image = load_image(pngs[i])
            face_clip(videos[-1], image[..., 0] if image.ndim == 3 else image, waves[i])
        r, s = rate(lambda v: read_video_frames(v, num_frames=8), videos)
        rows.append(("decode video (3 s 640x480 mp4, 8 frames)", len(videos), r, s))
        frames = np.concatenate([read_video_frames(v, num_frames=8)[0] for v in videos])
        detector = FaceDetector()
        found = []
        r, s = rate(lambda f: found.append(bool(face_track(f[None], detector)[1][0])), list(frames))
        rows.append((f"detect face (per 640x480 frame; found in {sum(found)}/{len(found)})", len(frames), r, s))
        # Cache: a manifest of real files through the same ExampleDataset training uses.
        from bridge.data.manifest import read_manifest
        from bridge.dataset import ExampleDataset

        lines = ["id,label,split,video,audio"]
        for i, v in enumerate(videos):
            lines.append(f"v{i},happy,train,{v},{flacs[i]}")
        (tmp / "manifest.csv").write_text("\n".join(lines) + "\n")
        cache = tmp / "cache"
        corpus = read_manifest(tmp / "manifest.csv", "train")
        r, s = rate(lambda _: ExampleDataset(corpus, pre, cache_dir=cache), [0])
        rows.append(("cache miss (video + audio item, end to end)", len(videos), len(videos) / s, s))
        r, s = rate(lambda _: ExampleDataset(read_manifest(tmp / "manifest.csv", "train"), pre, cache_dir=cache), [0])
        rows.append(("cache hit (same items)", len(videos), len(videos) / s, s))
    print(f"{'stage':<58} {'files':>6} {'files/s':>9} {'seconds':>8}")
    for name, n, r, s in rows:
        print(f"{name:<58} {n:>6} {r:>9.1f} {s:>8.2f}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "torch_threads": 2,
                               "stages": [{"stage": n, "files": f, "files_per_second": r, "seconds": s}
                                          for n, f, r, s in rows]}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
