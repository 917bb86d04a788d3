"""Inference speed of the tiny and small presets on CPU, beside the reference paper's facial CNN.

    python benchmarks/speed.py                          # tiny + small, 2 threads, ~3 min
    python benchmarks/speed.py --threads 4 --output reports/speed-4t.json
    python benchmarks/speed.py --quick --output /tmp/speed.json   # seconds; what the test runs

Models are random-init (speed does not depend on the weights; small's MiniLM-L6 text encoder
is the packaged pretrained one), saved as checkpoints and loaded through ``bridge.Predictor``,
the API behind ``infer.py``. Prints tables and writes JSON (default reports/speed.json):

- latency: p50/p95 ms of ``Predictor.predict`` per input kind, files included (decode, face
  detection, preprocessing, encoding, fusion and the per-modality explanation): a face photo
  (skimage's astronaut, PNG), 3 s of speech-like audio (WAV), one sentence, a 3 s 640x480 mp4
  with a face and a voice, and that mp4 together with the sentence (end to end);
- throughput: samples/s of the model forward alone at batch sizes 1, 8, 32 on preprocessed
  face + audio + text inputs;
- face path: frames/s of detection + crop + face encoder per 640x480 frame, of the encoder
  alone (one frame per call, and a clip's frames in one call), and the same for the reference
  paper's CNN (bridge/baselines/reference_cnn.py) as the per-face baseline;
- start-up: wall-clock seconds of whole ``infer.py`` processes, as a user runs them: ``--help``
  (arguments are parsed before torch is imported) and one face photo predicted with the first
  preset's checkpoint (interpreter start, imports, checkpoint load, prediction, exit);
- live face path: frames/s of the whole per-frame face path on the 640x480 clip (decode, detect
  and track, align and crop, preprocess, encode) with the default BlazeFace detector and with
  Haar, for bridge's face encoding (its latent and translations; with BlazeFace also over the
  ``mirror`` and ``crops`` test-time views) and for the reference CNN; and the 3 s clip with face and voice
  end to end (``Predictor.predict(video=...)``) with each detector;
- stages: FLOPs of each model stage for one face + audio + text sample
  (torch.utils.flop_counter), its measured time, and the achieved GFLOP/s as a share of this
  machine's float32 matrix-multiply rate, measured here with the same thread count (before and
  after the presets; the better of the two).
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch


from bridge.baselines.reference_cnn import ReferenceCNN
from bridge.batch import Batch
from bridge.config import create_config
from bridge.data.synthetic import speech_like
from bridge.media import FaceDetector, read_video_frames, write_video
from bridge.modality import Modality
from bridge.model import BridgeModel
from bridge.inference.predictor import Predictor
from bridge.preprocess import Preprocessor, collate

SENTENCE = "I can't believe we actually won the whole thing, this is the best day of my life!"
SECONDS, FPS, RATE = 3.0, 25, 16_000


def timings(fn: Callable[[], object], repeats: int, warmup: int = 1) -> np.ndarray:
    """Milliseconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1e3)
    return np.asarray(out)


def summary(ms: np.ndarray) -> dict[str, float]:
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)), "runs": int(len(ms))}


def flops(fn: Callable[[], object], module: torch.nn.Module) -> int:
    """FLOPs of one call of ``fn`` (a multiply-add counts 2), which runs ``module``.

    ``module``'s parameters stop requiring grad meanwhile: FlopCounterMode's module tracker hooks
    every tensor that requires grad, which fails on views made under inference mode.
    """
    from torch.utils.flop_counter import FlopCounterMode

    params = [p for p in module.parameters() if p.requires_grad]
    try:
        for p in params:
            p.requires_grad_(False)
        with FlopCounterMode(display=False) as counter:
            fn()
    finally:
        for p in params:
            p.requires_grad_(True)
    return int(counter.get_total_flops())


def matmul_gflops(n: int, repeats: int) -> float:
    """Best float32 ``(n, n) @ (n, n)`` rate in GFLOP/s with the current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = timings(lambda: a @ b, repeats).min() / 1e3
    return 2 * n ** 3 / best / 1e9


def write_inputs(directory: Path) -> dict[str, Path]:
    """The astronaut photo (PNG), 3 s of speech-like audio (WAV) and a 3 s 640x480 mp4 of the
    astronaut's face drifting sideways, with that audio as its sound track."""
    import soundfile as sf
    from skimage.data import astronaut

    photo = astronaut()  # (512, 512, 3) RGB, a smiling face
    cv2.imwrite(str(directory / "face.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    wave = speech_like(SECONDS)
    sf.write(directory / "voice.wav", wave, RATE)
    small = cv2.resize(photo, (400, 400), interpolation=cv2.INTER_AREA)  # a ~70 px face
    frames = np.full((int(SECONDS * FPS), 480, 640, 3), 60, np.uint8)  # (t, h, w, 3)
    for i, frame in enumerate(frames):
        x = 120 + int(20 * np.sin(i / 10))
        frame[40:440, x:x + 400] = small
    write_video(directory / "clip.mp4", frames, FPS, wave, RATE)
    return {"image": directory / "face.png", "audio": directory / "voice.wav", "video": directory / "clip.mp4"}


def build_predictor(preset: str, directory: Path) -> Predictor:
    """A random-init model of ``preset``, saved as a checkpoint and loaded back as a Predictor."""
    from bridge.checkpoint import save_checkpoint

    torch.manual_seed(0)
    config = create_config(preset)
    model = BridgeModel(config)
    save_checkpoint(model, directory, {}, tokenizer=Preprocessor(config).tokenizer)
    return Predictor.from_pretrained(directory)


def latency(predictor: Predictor, files: dict[str, Path], repeats: int) -> dict[str, dict]:
    kinds = {
        "image": dict(image=files["image"]),
        "audio": dict(audio=files["audio"]),
        "text": dict(text=SENTENCE),
        "video": dict(video=files["video"]),
        "end_to_end": dict(video=files["video"], text=SENTENCE),
    }
    out = {}
    for kind, inputs in kinds.items():
        observed = predictor.predict(**inputs).observed  # also the warm-up call
        out[kind] = {**summary(timings(lambda: predictor.predict(**inputs), repeats, warmup=0)), "observed": observed}
    return out


def clip_example(predictor: Predictor, files: dict[str, Path]):
    """The preprocessed face + audio + text example of the end-to-end input."""
    sample, _ = predictor.sample(video=files["video"], text=SENTENCE)
    return predictor.preprocessor(sample)


@torch.inference_mode()
def throughput(model: BridgeModel, example, batch_sizes: list[int], samples: int) -> list[dict]:
    out = []
    for b in batch_sizes:
        batch = collate([example] * b)
        ms = timings(lambda: model(batch), max(2, samples // b))
        out.append({"batch_size": b, "samples_per_s": b / (np.median(ms) / 1e3), "ms_per_batch": float(np.median(ms))})
    return out


@torch.inference_mode()
def face_path(predictor: Predictor, files: dict[str, Path], cnn: ReferenceCNN, repeats: int,
              max_frames: int | None = None) -> list[dict]:
    """Frames/s of Haar detect + crop + encoder per frame (the reference paper's path), and of the encoders alone."""
    cfg = predictor.config.face
    frames, _ = read_video_frames(files["video"], num_frames=cfg.sampled_frames)  # (t, 480, 640, 3)
    frames = frames[:max_frames]
    detector = FaceDetector()
    size = cfg.img_size or 224
    encoder, summariser = predictor.model.encoders["face"], predictor.model.summarisers["face"]
    pre = predictor.preprocessor

    def bridge_face(x: torch.Tensor) -> torch.Tensor:  # x: (b, t, c, s, s)
        mask = torch.ones(x.shape[:2], dtype=torch.bool)
        return summariser(*encoder(x, mask))

    def cnn_input(crop: np.ndarray) -> torch.Tensor:  # the paper's preprocessing: gray 48x48 in [0, 1]
        crop = cv2.resize(crop, (48, 48), interpolation=cv2.INTER_AREA) if crop.shape[0] != 48 else crop
        return torch.from_numpy(crop).float().div_(255.0)[None, None]  # (1, 1, 48, 48)

    def per_frame(model_step: Callable[[np.ndarray], object], crop_size: int) -> None:
        for frame in frames:
            crop = detector.crop_largest(frame, cfg.margin, crop_size, grayscale=True)
            if crop is not None:
                model_step(crop)

    crops = [c for c in (detector.crop_largest(f, cfg.margin, size) for f in frames) if c is not None]
    if not crops:
        raise RuntimeError("the face detector found no face in the benchmark clip")
    one = pre.face(crops[0][None], cfg)[0][None]  # (1, 1, c, s, s)
    clip = pre.face(np.stack(crops), cfg)[0][None]  # (1, t, c, s, s), t <= num_frames
    face48 = cnn_input(crops[0] if size == 48 else detector.crop_largest(frames[0], cfg.margin, 48))
    faces48 = face48.expand(clip.shape[1], -1, -1, -1).contiguous()  # (t, 1, 48, 48)
    n, t = len(frames), clip.shape[1]
    rows = []

    def add(model: str, stage: str, ms: np.ndarray, frames_per_call: int, gflop: float | None) -> None:
        rows.append({"model": model, "stage": stage, "frames_per_s": frames_per_call / (np.median(ms) / 1e3),
                     "ms_per_frame": float(np.median(ms)) / frames_per_call, "gflop_per_frame": gflop})

    bridge_gflop = flops(lambda: bridge_face(one), predictor.model) / 1e9
    cnn_gflop = flops(lambda: cnn(face48), cnn) / 1e9
    add("bridge", "Haar detect + crop + encoder, per frame",
        timings(lambda: per_frame(lambda c: bridge_face(pre.face(c[None], cfg)[0][None]), size), max(1, repeats // 4)),
        n, bridge_gflop)
    add("bridge", "encoder alone, 1 frame per call", timings(lambda: bridge_face(one), repeats), 1, bridge_gflop)
    add("bridge", f"encoder alone, {t} frames in one call", timings(lambda: bridge_face(clip), repeats), t,
        bridge_gflop)
    add("reference CNN", "Haar detect + crop + CNN, per frame",
        timings(lambda: per_frame(lambda c: cnn(cnn_input(c)), 48), max(1, repeats // 4)), n, cnn_gflop)
    add("reference CNN", "CNN alone, 1 face per call", timings(lambda: cnn(face48), repeats), 1, cnn_gflop)
    add("reference CNN", f"CNN alone, {t} faces in one call", timings(lambda: cnn(faces48), repeats), t, cnn_gflop)
    return rows


@torch.inference_mode()
def live_path(directory: Path, files: dict[str, Path], cnn: ReferenceCNN, repeats: int,
              detectors: tuple[str, ...] = ("blazeface", "haar"), max_frames: int | None = None
              ) -> tuple[list[dict], list[dict]]:
    """The live face path per 640x480 frame of the clip, for each detector and for bridge's face
    encoder and the reference CNN: decode (FFmpeg), detect and track, align and crop, preprocess
    and encode, as ``infer.py --webcam`` does for a frame it predicts from. Also the 3 s clip with
    face and voice end to end (``Predictor.predict(video=...)``) per detector.

    Returns:
        live rows (frames/s, ms/frame) and end-to-end rows (p50/p95 ms).
    """
    from bridge.media.decoder import FaceDecoding, MediaDecoder
    from bridge.media.video import iter_video_frames

    live, clip = [], []
    for name in detectors:
        predictor = Predictor.from_pretrained(directory, face_detector=name)
        cfg, pre = predictor.config.face, predictor.preprocessor
        cnn_decoder = MediaDecoder(FaceDecoding(size=48, grayscale=True, margin=cfg.margin, detector=name))
        cnn_decoder.detector = predictor.detector

        def bridge_step(crop: np.ndarray, views: str = "single") -> None:
            x = pre.face(crop[None], cfg)[0][None]  # (1, 1, c, s, s)
            one = torch.ones(1, dtype=torch.bool)
            face = Modality.FACE
            predictor.model.encode(Batch({face: x}, {face: torch.ones(x.shape[:2], dtype=torch.bool)}, {face: one}),
                                   views)

        def cnn_step(crop: np.ndarray) -> None:  # the paper's preprocessing: gray 48x48 in [0, 1]
            cnn(torch.from_numpy(crop).float().div_(255.0)[None, None])

        # bridge's face latent (and its translations) over each test-time views setting: the shipped
        # model records mirror; crops are ten encodings a frame (bridge.views)
        views = ("single", "mirror", "crops") if name == detectors[0] else ("single",)
        steps = [("bridge" if v == "single" else f"bridge, {v} views", functools.partial(bridge_step, views=v),
                  predictor.decoder) for v in views]
        for model, step, decoder in (*steps, ("reference CNN", cnn_step, cnn_decoder)):
            counts = {}

            def run() -> None:
                tracker = decoder.tracker()
                n = found = 0
                for _, frame in iter_video_frames(files["video"]):
                    face = tracker.update(frame)
                    if face is not None:
                        step(decoder.crop(frame, face))
                        found += 1
                    n += 1
                    if max_frames is not None and n >= max_frames:
                        break
                counts.update(frames=n, with_face=found)

            ms = float(np.median(timings(run, max(1, repeats // 10))))
            live.append({"detector": name, "model": model, **counts, "frames_per_s": counts["frames"] / (ms / 1e3),
                         "ms_per_frame": ms / counts["frames"]})
        observed = predictor.predict(video=files["video"]).observed
        clip.append({"detector": name, **summary(timings(lambda: predictor.predict(video=files["video"]), repeats,
                                                         warmup=0)), "observed": observed})
    return live, clip


@torch.inference_mode()
def stages(model: BridgeModel, example, repeats: int, matmul_rate: float) -> list[dict]:
    """FLOPs, time and achieved rate of each stage for one face + audio + text sample."""
    batch = collate([example])
    present = {m: batch.present[m] for m in model.modalities}
    encoded = model.encode(batch)
    latents, translations = encoded.latents, encoded.translations
    steps: dict[str, Callable[[], object]] = {}
    for m in model.modalities:
        def encode(m: Modality = m):
            tokens, mask = model.encoders[m.value](batch.inputs[m], batch.masks[m])
            return model.summarisers[m.value](tokens, mask)

        steps[f"{m.value} encoder"] = encode
    steps["translators"] = lambda: model.translate(latents)
    steps["fusion + head"] = lambda: model.classify(model.fuse(latents, model.reconstruct(translations, present, 1),
                                                               present))
    steps["whole forward"] = lambda: model(batch)
    rows = []
    for name, fn in steps.items():
        gflop = flops(fn, model) / 1e9
        ms = float(np.median(timings(fn, repeats)))
        rate = gflop / (ms / 1e3)
        rows.append({"stage": name, "gflop": gflop, "ms": ms, "gflop_per_s": rate, "share_of_matmul": rate / matmul_rate})
    return rows


def startup(checkpoint: Path, image: Path, threads: int, repeats: int) -> dict[str, dict]:
    """Seconds (median and max over ``repeats`` runs) of ``infer.py --help`` and of a one-image
    prediction, each a fresh process."""
    import os
    import subprocess

    script = Path(__file__).resolve().parents[1] / "infer.py"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    commands = {"infer.py --help": [str(script), "--help"],
                "infer.py --image (one prediction)": [str(script), "--checkpoint", str(checkpoint),
                                                      "--image", str(image), "--json"]}
    out = {}
    for name, argv in commands.items():
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, *argv], check=True, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            seconds.append(time.perf_counter() - start)
        out[name] = {"median_s": float(np.median(seconds)), "max_s": float(np.max(seconds)), "runs": repeats}
    return out


def print_tables(report: dict) -> None:
    print(f"torch {report['torch']}, {report['threads']} threads, float32 matmul "
          f"{report['matmul_gflop_per_s']:.1f} GFLOP/s (n={report['matmul_n']})")
    if "startup" in report:
        print(f"{'start-up (whole process)':<40} {'median s':>9} {'max s':>9}")
        for name, v in report["startup"].items():
            print(f"{name:<40} {v['median_s']:>9.2f} {v['max_s']:>9.2f}")
    for preset, r in report["presets"].items():
        print(f"\n== {preset}: {r['parameters'] / 1e6:.2f}M parameters ==")
        print(f"{'latency (Predictor.predict)':<30} {'p50 ms':>9} {'p95 ms':>9}  observed")
        for kind, v in r["latency"].items():
            print(f"{kind:<30} {v['p50_ms']:>9.1f} {v['p95_ms']:>9.1f}  {'+'.join(v['observed'])}")
        print(f"{'forward throughput, batch':<30} {'samples/s':>9} {'ms/batch':>9}")
        for v in r["throughput"]:
            print(f"{v['batch_size']:<30} {v['samples_per_s']:>9.1f} {v['ms_per_batch']:>9.1f}")
        print(f"{'face path':<52} {'frames/s':>9} {'ms/frame':>9} {'GFLOP/frame':>12}")
        for v in r["face_path"]:
            print(f"{v['model'] + ': ' + v['stage']:<52} {v['frames_per_s']:>9.1f} {v['ms_per_frame']:>9.2f} "
                  f"{v['gflop_per_frame']:>12.4f}")
        print(f"{'live face path (decode+detect+align+crop+encode)':<52} {'frames/s':>9} {'ms/frame':>9} {'faces':>7}")
        for v in r["live_face_path"]:
            print(f"{v['model'] + ' + ' + v['detector']:<52} {v['frames_per_s']:>9.1f} {v['ms_per_frame']:>9.2f} "
                  f"{v['with_face']:>3}/{v['frames']:<3}")
        print(f"{'3 s clip, face + voice, end to end':<52} {'p50 ms':>9} {'p95 ms':>9}  observed")
        for v in r["clip_face_voice"]:
            print(f"{'detector ' + v['detector']:<52} {v['p50_ms']:>9.1f} {v['p95_ms']:>9.1f}  {'+'.join(v['observed'])}")
        print(f"{'stage (one face+audio+text sample)':<36} {'GFLOP':>8} {'ms':>8} {'GFLOP/s':>8} {'of matmul':>9}")
        for v in r["stages"]:
            print(f"{v['stage']:<36} {v['gflop']:>8.3f} {v['ms']:>8.2f} {v['gflop_per_s']:>8.1f} "
                  f"{v['share_of_matmul']:>9.1%}")


def main(argv: list[str] | None = None) -> int:
    # Every call encodes its inputs: a model outside training has no frozen-encoder memo (bridge.freeze).
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--presets", nargs="+", default=None, help="default: tiny small (--quick: tiny)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--repeats", type=int, default=None, help="timed calls per latency (default 20, --quick 2)")
    p.add_argument("--quick", action="store_true", help="a few calls each, tiny only: checks the benchmark runs")
    p.add_argument("--output", default="reports/speed.json")
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error("--threads must be at least 1")
    presets = args.presets or (["tiny"] if args.quick else ["tiny", "small"])
    repeats = args.repeats or (2 if args.quick else 20)
    batch_sizes = [1, 2] if args.quick else [1, 8, 32]
    matmul_n = 256 if args.quick else 2048
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)  # the face detector's pool
    torch.manual_seed(0)
    report = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
              "threads": args.threads, "quick": args.quick, "matmul_n": matmul_n,
              "matmul_gflop_per_s": matmul_gflops(matmul_n, 3 if args.quick else 5), "presets": {}}
    cnn = ReferenceCNN().eval()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = write_inputs(tmp)
        for preset in presets:
            start = time.perf_counter()
            predictor = build_predictor(preset, tmp / preset)
            example = clip_example(predictor, files)
            model = predictor.model
            live, clip = live_path(tmp / preset, files, cnn, repeats, max_frames=3 if args.quick else None)
            report["presets"][preset] = {
                "parameters": sum(p.numel() for p in model.parameters()),
                "latency": latency(predictor, files, repeats),
                "throughput": throughput(model, example, batch_sizes, 2 * repeats),
                "face_path": face_path(predictor, files, cnn, repeats, 2 if args.quick else None),
                "stages": stages(model, example, repeats, report["matmul_gflop_per_s"]),
                "live_face_path": live,
                "clip_face_voice": clip,
            }
            print(f"[{preset}: {time.perf_counter() - start:.0f} s]", file=sys.stderr)
        report["startup"] = startup(tmp / presets[0], files["image"], args.threads, 1 if args.quick else 5)
    # The matmul rate again, now the machine is warm; the better of the two is the reference.
    report["matmul_gflop_per_s"] = max(report["matmul_gflop_per_s"], matmul_gflops(matmul_n, 3 if args.quick else 5))
    for r in report["presets"].values():
        for row in r["stages"]:
            row["share_of_matmul"] = row["gflop_per_s"] / report["matmul_gflop_per_s"]
    report["reference_cnn"] = {"parameters": sum(p.numel() for p in cnn.parameters()),
                               "gflop_per_face": flops(lambda: cnn(torch.zeros(1, 1, 48, 48)), cnn) / 1e9}
    print_tables(report)
    print(f"\nreference CNN (paper): {report['reference_cnn']['parameters'] / 1e6:.2f}M parameters, "
          f"{report['reference_cnn']['gflop_per_face']:.4f} GFLOP per face")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
