"""One decoder for training and inference: the same video and image through a corpus reader
(the training path) and through the predictor (the inference path) give identical tensors."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest
import torch

from bridge.cache import _describe
from bridge.config import create_config, override
from bridge.data.corpus import MediaLoader, attach_decoder
from bridge.data.manifest import read_manifest
from bridge.media import write_video
from bridge.media.decoder import FaceDecoding, MediaDecoder
from bridge.modality import Modality
from bridge.model import BridgeModel
from bridge.inference.predictor import Predictor
from bridge.preprocess import Preprocessor

RATE = 16_000


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A 1 s 640x480 clip of a real face drifting and turning, with a sound track, and a photo."""
    from skimage.data import astronaut

    root = tmp_path_factory.mktemp("decoder")
    photo = cv2.resize(astronaut(), (300, 300), interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(10):
        frame = np.full((480, 640, 3), 60, np.uint8)
        matrix = cv2.getRotationMatrix2D((150, 150), 2.0 * i - 8, 1.0)
        matrix[:, 2] += (100 + 12 * i, 80)
        mask = cv2.warpAffine(np.ones((300, 300), np.float32), matrix, (640, 480))[..., None]
        frame = (frame * (1 - mask) + cv2.warpAffine(photo, matrix, (640, 480)) * mask).astype(np.uint8)
        frames.append(frame)
    t = np.arange(RATE) / RATE
    voice = (0.2 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    write_video(root / "clip.mp4", np.stack(frames), fps=10, audio=voice, sample_rate=RATE)
    cv2.imwrite(str(root / "photo.png"), cv2.cvtColor(frames[3], cv2.COLOR_RGB2BGR))
    with (root / "manifest.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "label", "split", "image", "video"])
        writer.writeheader()
        writer.writerow({"id": "clip", "label": "happy", "split": "train", "video": "clip.mp4"})
        writer.writerow({"id": "photo", "label": "happy", "split": "train", "image": "photo.png"})
    return root


@pytest.mark.parametrize("settings", [[], ["face.img_size=64", "face.in_chans=3", "face.num_frames=6",
                                           "face.margin=0.3", "audio.sample_rate=8000"]])
def test_training_and_inference_decode_identical_tensors(media, settings):
    config = override(create_config("tiny"), settings)
    pre = Preprocessor(config)
    corpus = read_manifest(media / "manifest.csv", "train")  # the reader's own defaults: 48 px grey, 8 frames
    assert attach_decoder(corpus, MediaDecoder.from_config(config)) == 1  # what train.py and evaluate.py do
    predictor = Predictor(BridgeModel(config), pre)
    clip_train, photo_train = pre(corpus[0]), pre(corpus[1])
    clip_infer = pre(predictor.sample(video=media / "clip.mp4")[0])
    photo_infer = pre(predictor.sample(image=media / "photo.png")[0])
    face, audio = Modality.FACE, Modality.AUDIO
    assert clip_train.inputs[face][0].shape[0] >= 4  # the face was found in the frames
    size = config.face.img_size
    assert clip_train.inputs[face][0].shape[1:] == (config.face.in_chans, size, size)
    for train, infer in ((clip_train, clip_infer), (photo_train, photo_infer)):
        assert set(train.inputs) == set(infer.inputs)
        for m in train.inputs:
            for a, b in zip(train.inputs[m], infer.inputs[m]):
                assert torch.equal(a, b), m
    assert audio in clip_train.inputs and face in photo_train.inputs


def test_a_label_paired_corpus_decodes_its_voices_with_the_models_decoder():
    from bridge.data.corpus import Corpus
    from bridge.data.paired import compose_paired
    from bridge.data.sample import Sample
    from bridge.modality import EMOTIONS

    def corpus(name: str, loader=None) -> Corpus:
        stubs = [Sample(id=f"{name}/{i}", label=i % 7, split="train") for i in range(14)]
        return Corpus(name, "train", EMOTIONS, stubs, loader, [{} for _ in stubs] if loader else None)

    from bridge.data.splits import Splits

    voices = MediaLoader()  # the reader's own decoder, as read_ravdess makes it
    paired = compose_paired(corpus("faces"), corpus("voices", voices), corpus("texts"), split="train")
    splits = Splits("paired", paired, [], [], EMOTIONS, {})  # as train.py and evaluate.py hand it over
    decoder = MediaDecoder.from_config(override(create_config("tiny"), ["audio.sample_rate=8000"]))
    assert attach_decoder(splits, decoder) == 1 and voices.decoder is decoder and voices.sample_rate == 8000


def test_a_preprocessing_setting_changes_the_cache_key():
    loader = MediaLoader()
    before = _describe(loader)
    loader.use(MediaDecoder.from_config(override(create_config("tiny"), ["face.img_size=64"])))
    after = _describe(loader)
    assert before != after and after["face_size"] == 64 and after["decoder"]["MediaDecoder"]["faces"]["size"] == 64
    other = MediaLoader()
    other.use(MediaDecoder(FaceDecoding(size=64, detector="haar")))
    assert _describe(other) != after  # the detector is part of the key
    geometry = after["decoder"]["MediaDecoder"]["alignment"]["blazeface"]
    assert set(geometry) == {"side", "eye_x", "eye_y"}  # so is the crop geometry of aligned faces
    crops = MediaLoader(detect_faces=False)
    assert _describe(crops)["decoder"]["MediaDecoder"]["alignment"] is None  # faces not found: no geometry


def test_decoder_follows_the_model_config():
    config = override(create_config("tiny"), ["face.img_size=56", "face.in_chans=3", "face.num_frames=3",
                                              "face.margin=0.25"])
    d = MediaDecoder.from_config(config, detector="haar", face_index=1)
    assert (d.faces.size, d.faces.grayscale, d.faces.num_frames, d.faces.margin) == (56, False, 8, 0.25)
    assert (d.faces.detector, d.faces.face_index, d.sample_rate) == ("haar", 1, config.audio.sample_rate)
    assert MediaDecoder.from_config(override(config, ["face.num_frames=6"])).faces.num_frames == 12


@pytest.fixture(scope="module")
def fer_folder(tmp_path_factory):
    """A FER-2013-style folder with one real face crop (the astronaut's, 48x48 grey) in train."""
    from skimage.data import astronaut

    root = tmp_path_factory.mktemp("fer2013")
    face = cv2.cvtColor(astronaut()[62:174, 168:280], cv2.COLOR_RGB2GRAY)  # her face, a FER-like tight crop
    (root / "train" / "happy").mkdir(parents=True)
    (root / "test").mkdir()
    cv2.imwrite(str(root / "train" / "happy" / "0.png"), cv2.resize(face, (48, 48), interpolation=cv2.INTER_AREA))
    return root


def test_a_realigning_model_reads_corpus_crops_as_it_reads_them_at_inference(fer_folder):
    from bridge.data.fer2013 import read_fer2013

    config = override(create_config("tiny"), ["face.realign=blazeface"])
    pre = Preprocessor(config)
    corpus = read_fer2013(fer_folder, "train")  # eager, as train.py reads it
    original = corpus[0].face
    assert not corpus.lazy
    assert attach_decoder(corpus, MediaDecoder.from_config(config)) == 1 and corpus.lazy
    trained = corpus[0].face
    assert trained.shape == original.shape == (1, 48, 48)
    assert np.abs(trained.astype(float) - original).mean() > 2  # found again and re-cropped, not as given
    predictor = Predictor(BridgeModel(config), pre, detect_faces=False)  # infer.py --no-detect on the crop
    inferred = pre(predictor.sample(image=fer_folder / "train" / "happy" / "0.png")[0]).inputs[Modality.FACE]
    for a, b in zip(pre(corpus[0]).inputs[Modality.FACE], inferred):
        assert torch.equal(a, b)
    plain = read_fer2013(fer_folder, "train")  # a model that takes crops as given leaves the corpus as it is
    assert attach_decoder(plain, MediaDecoder.from_config(create_config("tiny"))) == 0 and not plain.lazy


def test_realigning_needs_a_detector_with_eye_points():
    with pytest.raises(ValueError, match="realign"):
        override(create_config("tiny"), ["face.realign=haar"])
    blank = MediaDecoder(FaceDecoding(detect=False, realign="blazeface"))
    assert blank.whole(np.full((48, 48), 128, np.uint8)).shape == (48, 48)  # no face found: the crop as given


def test_a_realigning_model_finds_faces_with_its_realigning_detector_unless_told_otherwise():
    config = override(create_config("tiny"), ["face.realign=mtcnn"])
    assert MediaDecoder.from_config(config).faces.detector == "mtcnn"  # its crops were placed by MTCNN's eyes
    assert MediaDecoder.from_config(config, detector="haar").faces.detector == "haar"
    assert MediaDecoder.from_config(create_config("tiny")).faces.detector == "blazeface"
    predictor = Predictor(BridgeModel(config), Preprocessor(config))
    assert predictor.decoder.faces.detector == "mtcnn"


def _zoomed(crop: np.ndarray, scale: float, geometry) -> np.ndarray:
    """The part of an eyes-level crop that a crop ``scale`` times as wide shows, resized back."""
    side = crop.shape[0]
    x0, y0 = (1 - scale) * geometry.eye_x * side, (1 - scale) * geometry.eye_y * side
    matrix = np.array([[scale, 0, x0], [0, scale, y0]], np.float64)
    return cv2.warpAffine(crop, matrix, (side, side), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)


def test_crop_scale_crops_tighter_about_the_eyes_for_found_and_realigned_faces():
    from skimage.data import astronaut

    from bridge.media.align import FER_GEOMETRY

    photo = astronaut()
    crops = {}
    for scale in (1.0, 0.8):
        found = MediaDecoder(FaceDecoding(size=160, detector="mtcnn", crop_scale=scale))
        face = found.image_face(photo)[0][0]
        tight = cv2.cvtColor(photo[62:174, 168:280], cv2.COLOR_RGB2GRAY)
        realigned = MediaDecoder(FaceDecoding(size=160, detect=False, realign="mtcnn", crop_scale=scale)).whole(tight)
        crops[scale] = face, realigned
    for before, after in zip(crops[1.0], crops[0.8]):
        inner = slice(8, -8)  # away from the resampled edge
        assert np.abs(after.astype(float) - before).mean() > 10  # a different framing ...
        zoomed = _zoomed(before, 0.8, FER_GEOMETRY["mtcnn"])  # ... that is the scale-1 crop's centre about the eyes
        assert np.abs(after[inner, inner].astype(float) - zoomed[inner, inner]).mean() < 3
    with pytest.raises(ValueError, match="crop_scale"):
        FaceDecoding(crop_scale=0)


def test_crop_scale_is_recorded_only_where_set():
    from bridge.checkpoint import preprocessing_settings

    assert "crop_scale" not in preprocessing_settings(create_config("tiny"))["face"]
    config = override(create_config("tiny"), ["face.realign=mtcnn", "face.crop_scale=0.8"])
    assert preprocessing_settings(config)["face"]["crop_scale"] == 0.8
    assert MediaDecoder.from_config(config).faces.crop_scale == 0.8


class _Leaning:
    """Finds the bright square of an image and puts its eyes 10 px either side of its centre,
    2 px too far right in whatever image it is shown (a detector's one-sided lean)."""

    name = "mtcnn"

    def __init__(self):
        self.calls = 0

    def detect_faces(self, image):
        from bridge.media.detectors import Face
        from bridge.media.faces import Box

        self.calls += 1
        ys, xs = np.nonzero(image > 128)
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        eyes = np.array([[cx - 10 + 2, cy], [cx + 10 + 2, cy]])
        return [Face(Box(int(x0), int(y0), int(x1 - x0), int(y1 - y0)), 0.9, eyes, eyes, self.name)]


def test_mirror_eyes_cancels_a_detector_that_leans_one_way():
    from bridge.media.detectors import Face, MirrorEyes

    image = np.zeros((120, 200), np.uint8)
    image[30:90, 40:100] = 255  # a square centred at x 70, y 60
    plain = _Leaning().detect_faces(image)[0]
    assert plain.eyes[:, 0].tolist() == [62.0, 82.0]
    leaning = _Leaning()
    face = MirrorEyes(leaning).detect_faces(image)[0]
    assert leaning.calls == 2  # the image and its mirror
    assert np.allclose(face.eyes, [[60.0, 60.0], [80.0, 60.0]])  # image-left eye first, the lean gone
    assert face.box == plain.box and np.array_equal(face.points, plain.points)

    class NoEyes(_Leaning):
        def detect_faces(self, image):
            return [Face(f.box, f.score) for f in super().detect_faces(image)]

    haar_like = NoEyes()
    assert MirrorEyes(haar_like).detect_faces(image)[0].eyes is None and haar_like.calls == 1


def test_mirror_eyes_is_one_setting_for_found_faces_and_realigned_crops_and_recorded_only_where_set():
    from bridge.checkpoint import preprocessing_settings
    from bridge.media.detectors import MirrorEyes

    assert "mirror_eyes" not in preprocessing_settings(create_config("tiny"))["face"]
    config = override(create_config("tiny"), ["face.realign=mtcnn", "face.mirror_eyes=true"])
    assert preprocessing_settings(config)["face"]["mirror_eyes"] is True
    decoder = MediaDecoder.from_config(config)
    assert decoder.faces.mirror_eyes and isinstance(decoder.detector, MirrorEyes)
    assert decoder.detector.name == "mtcnn"
    decoder.whole(np.full((48, 48), 128, np.uint8))  # builds the realigner
    assert isinstance(decoder._realigner, MirrorEyes)
    assert not isinstance(MediaDecoder.from_config(create_config("tiny")).detector, MirrorEyes)
    assert _describe(decoder.faces) != _describe(MediaDecoder.from_config(
        override(create_config("tiny"), ["face.realign=mtcnn"])).faces)  # a new cache key


def test_onet_eyes_place_one_face_alike_in_a_crop_and_in_a_frame():
    """FER-2013's way in (a face crop upscaled and framed by its repeated edge, as realign_crop does) and a
    frame's (the same crop pasted small into a scene) give MTCNN's eyes apart; O-Net's passes on a box
    drawn from the eyes bring them together."""
    from skimage.data import astronaut

    from bridge.media.align import REALIGN_SIDE
    from bridge.media.detectors import MTCNNDetector, OnetEyes, create_detector

    pytest.importorskip("facenet_pytorch")
    face = cv2.cvtColor(astronaut()[20:220, 150:350], cv2.COLOR_RGB2GRAY)  # her face, about 200 px
    crop = cv2.resize(face, (48, 48), interpolation=cv2.INTER_AREA)  # a FER-2013-like crop
    big = cv2.resize(crop, (REALIGN_SIDE, REALIGN_SIDE), interpolation=cv2.INTER_CUBIC)
    pad = REALIGN_SIDE // 2
    canvas = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    frame = np.full((480, 640), 90, np.uint8)
    frame[150:246, 300:396] = cv2.resize(crop, (96, 96), interpolation=cv2.INTER_LINEAR)

    def eyes_in_crop(detector) -> dict[str, np.ndarray]:
        """Each context's eyes in units of the 48-px crop's side."""
        (a,), (b,) = detector.detect_faces(canvas)[:1], detector.detect_faces(frame)[:1]
        return {"crop": (a.eyes - pad) / REALIGN_SIDE, "frame": (b.eyes - (300, 150)) / 96}

    mtcnn = create_detector("mtcnn")
    plain, refined = eyes_in_crop(mtcnn), eyes_in_crop(OnetEyes(mtcnn, passes=3))
    apart = {name: float(np.abs(e["crop"] - e["frame"]).max()) for name, e in (("plain", plain), ("refined", refined))}
    assert apart["refined"] < apart["plain"] / 2, apart
    assert np.abs(refined["crop"] - plain["crop"]).max() < 0.05  # the same eyes, placed again, not elsewhere
    with pytest.raises(ValueError, match="passes"):
        OnetEyes(mtcnn, passes=0)
    assert isinstance(mtcnn, MTCNNDetector)


def test_refine_eyes_is_one_setting_for_found_faces_and_realigned_crops_and_recorded_only_where_set():
    from bridge.checkpoint import preprocessing_settings
    from bridge.media.detectors import MirrorEyes, OnetEyes

    pytest.importorskip("facenet_pytorch")
    assert "refine_eyes" not in preprocessing_settings(create_config("tiny"))["face"]
    config = override(create_config("tiny"), ["face.realign=mtcnn", "face.refine_eyes=3", "face.mirror_eyes=true"])
    assert preprocessing_settings(config)["face"]["refine_eyes"] == 3
    decoder = MediaDecoder.from_config(config)
    assert isinstance(decoder.detector, MirrorEyes) and isinstance(decoder.detector.detector, OnetEyes)
    assert decoder.detector.detector.passes == 3 and decoder.detector.name == "mtcnn"
    decoder.whole(np.full((48, 48), 128, np.uint8))  # builds the realigner
    assert isinstance(decoder._realigner.detector, OnetEyes)
    assert _describe(decoder.faces) != _describe(MediaDecoder.from_config(
        override(create_config("tiny"), ["face.realign=mtcnn", "face.mirror_eyes=true"])).faces)  # a new cache key
    with pytest.raises(ValueError, match="refine_eyes"):
        FaceDecoding(refine_eyes=-1)
