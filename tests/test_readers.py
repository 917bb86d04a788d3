"""Corpus readers, label mappings, label-paired composition and the registry.

Real-data tests read the corpora under the data root (``$BRIDGE_DATA_ROOT`` or
``../shared/data``) and skip, saying where they looked, when it is absent. They list whole
corpora but decode only a few media files, to stay quick.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf

from bridge.data.corpus import Corpus, carve_stratified
from bridge.data.fer2013 import read_fer2013
from bridge.data.goemotions import read_goemotions
from bridge.data.labels import LabelError, label_names, map_label
from bridge.data.manifest import read_manifest
from bridge.data.meld import fix_mojibake, parse_time, read_meld
from bridge.data.mosi import MosiAlignmentError, read_mosi
from bridge.data.paired import compose_paired
from bridge.data.paths import ENV_VAR, data_root, require_corpus
from bridge.data.ravdess import parse_ravdess_name, read_ravdess
from bridge.data.registry import CORPORA, load_corpus, load_corpus_splits, load_splits
from bridge.data.sample import Sample
from bridge.media import write_video as media_write_video
from bridge.modality import EMOTIONS, Modality

# --- helpers -----------------------------------------------------------------------------


def real(name: str) -> Path:
    """The folder of a real corpus, or skip saying where it was looked for."""
    try:
        return require_corpus(name)
    except FileNotFoundError as e:
        pytest.skip(f"real data absent: {e}")


def write_video(path: Path, frames: np.ndarray, fps: int = 10, audio: np.ndarray | None = None,
                sr: int = 16_000) -> Path:
    return media_write_video(path, frames, fps, audio, sr)


@pytest.fixture(scope="module")
def face_frames() -> np.ndarray:
    """Four frames of a real photograph with a face (skimage's astronaut), 200x200."""
    from skimage.data import astronaut

    image = cv2.resize(astronaut(), (200, 200), interpolation=cv2.INTER_AREA)
    return np.stack([np.roll(image, shift, axis=1) for shift in (0, 2, 4, 6)])


def tone(seconds: float = 1.0, sr: int = 16_000) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


# --- labels ------------------------------------------------------------------------------


def test_label_mappings():
    idx = EMOTIONS.index
    folders = ("angry", "disgusted", "fearful", "happy", "neutral", "sad", "surprised")
    assert [map_label("fer2013", n) for n in folders] == list(range(7))
    assert map_label("ravdess", "02") == map_label("ravdess", 1) == idx("neutral")  # calm folded into neutral
    canonical = ("neutral", "neutral", "happy", "sad", "angry", "fear", "disgust", "surprise")
    assert [map_label("ravdess", f"{c:02d}") for c in range(1, 9)] == [idx(n) for n in canonical]
    native = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
    assert label_names("ravdess-native8") == native
    assert [map_label("ravdess-native8", f"{c:02d}") for c in range(1, 9)] == list(range(8))
    meld = {"joy": "happy", "anger": "angry", "sadness": "sad", "surprise": "surprise", "fear": "fear",
            "disgust": "disgust", "neutral": "neutral"}  # fmt: skip
    assert all(map_label("meld", raw) == idx(name) for raw, name in meld.items())
    assert map_label("meld", " Joy ") == idx("happy")
    ekman = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
    by_name = [map_label("goemotions", n) for n in ekman]
    assert by_name == [map_label("goemotions", i) for i in range(7)] == list(range(7))
    assert len(label_names("goemotions-original")) == 28 and map_label("goemotions-original", 27) == 27
    assert label_names("mosi") == ("negative", "positive")
    assert map_label("mosi", 1.0) == map_label("mosi", "positive") == 1 and map_label("mosi", np.int64(0)) == 0
    assert map_label("canonical", "happiness") == idx("happy")
    for corpus, raw in [("fer2013", "contempt"), ("ravdess", "09"), ("meld", "calm"), ("mosi", 2), ("goemotions", 7)]:
        with pytest.raises(LabelError, match=f"unknown {corpus} label"):
            map_label(corpus, raw)
    with pytest.raises(KeyError, match="no label space"):
        map_label("iemocap", "happy")


def test_ravdess_file_names():
    name = parse_ravdess_name("01-01-06-02-02-01-12.mp4")
    assert (name.modality, name.vocal_channel) == ("audio-video", "speech")
    assert (name.emotion, name.intensity) == ("fearful", "strong")
    assert (name.statement, name.repetition, name.actor, name.sex) == ("Dogs are sitting by the door", 1, 12, "female")
    assert parse_ravdess_name("03-02-01-01-01-02-07.wav").sex == "male"
    assert name.recording == parse_ravdess_name("03-01-06-02-02-01-12.flac").recording
    for bad in ("01-01-09-01-01-01-01.wav", "04-01-01-01-01-01-01.wav", "notes.wav", "01-01-01-01-01-01.wav"):
        with pytest.raises(ValueError):
            parse_ravdess_name(bad)


def test_meld_text_repairs():
    assert fix_mojibake("You\x92re here\x85") == "You’re here…"
    assert fix_mojibake("itâ€™s fine") == "it’s fine"
    assert fix_mojibake(" café — “hi” ") == "café — “hi”"  # real non-ASCII text is left alone
    assert parse_time("00:16:16,059") == pytest.approx(976.059) and parse_time("junk") is None


# --- paths and registry ------------------------------------------------------------------


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert data_root("/explicit") == Path("/explicit")
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv(ENV_VAR)
    assert data_root().parts[-2:] == ("shared", "data")
    with pytest.raises(FileNotFoundError, match="fer2013"):
        require_corpus("fer2013", tmp_path)
    with pytest.raises(FileNotFoundError, match="ravdess_speech_16k"):
        load_corpus("ravdess", tmp_path, "train")


def test_registry_names():
    names = {"fer2013", "ravdess", "ravdess8", "meld", "goemotions", "goemotions-original", "meld+goemotions", "mosi",
             "paired", "paired+goemotions", "paired+text", "paired+text+voice",
             "manifest"}
    assert set(CORPORA) == names
    with pytest.raises(KeyError, match="unknown corpus"):
        load_corpus("iemocap")


# --- FER-2013 ----------------------------------------------------------------------------

FER_TRAIN = {"angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215, "neutral": 4965, "sad": 4830, "surprise": 3171}
FER_TEST = {"angry": 958, "disgust": 111, "fear": 1024, "happy": 1774, "neutral": 1233, "sad": 1247, "surprise": 831}


def test_fer2013_real():
    root = real("fer2013")
    train = read_fer2013(root, "train", lazy=True)  # listing only; decoding is checked on test
    assert len(train) == 28_709 and train.label_counts() == FER_TRAIN and train.lazy
    assert train[0].face.shape == (1, 48, 48)
    test = read_fer2013(root, "test")
    assert len(test) == 7_178 and test.label_counts() == FER_TEST and not test.skipped
    sample = test[100]
    assert sample.face.shape == (1, 48, 48) and sample.face.dtype == np.uint8 and sample.split == "test"
    assert test.label_names == EMOTIONS


def test_fer2013_val_carve_out():
    root = real("fer2013")
    train = read_fer2013(root, "train", lazy=True, val_fraction=0.1, seed=3)
    val = read_fer2013(root, "val", lazy=True, val_fraction=0.1, seed=3)
    assert len(train) + len(val) == 28_709 and not set(train.ids) & set(val.ids)
    assert abs(val.label_counts()["disgust"] - 44) <= 1  # stratified: 10 % of every class
    assert read_fer2013(root, "val", lazy=True, val_fraction=0.1, seed=3).ids == val.ids
    labels = np.concatenate([train.labels, val.labels])
    assert (carve_stratified(labels, 0.1, 3) != carve_stratified(labels, 0.1, 4)).any()  # the seed matters
    with pytest.raises(ValueError, match="val_fraction"):
        read_fer2013(root, "val")


def test_fer2013_bad_files_skipped(tmp_path):
    for name, label in [("happy", 0), ("sad", 1)]:
        (tmp_path / "test" / name).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(tmp_path / "test" / name / f"im{i}.png"), np.full((48, 48), 40 * (i + label), np.uint8))
    (tmp_path / "test" / "happy" / "im3.png").write_bytes(b"")
    (tmp_path / "test" / "sad" / "im3.png").write_text("not a png")
    (tmp_path / "test" / "sad" / "notes.txt").write_text("hello")
    corpus = read_fer2013(tmp_path, "test")
    assert len(corpus) == 6 and corpus.skipped == {"unreadable image": 2, "not an image file": 1}
    lazy = read_fer2013(tmp_path, "test", lazy=True)
    loaded = [lazy[i] for i in range(len(lazy))]
    assert sum(s.face is None for s in loaded) == 2 and lazy.missing == {"face: unreadable image": 2}


# --- RAVDESS -----------------------------------------------------------------------------


def test_ravdess_real_splits():
    root = real("ravdess")
    train, test = read_ravdess(root, "train"), read_ravdess(root, "test")
    assert len(train) + len(test) == 1_440 and (len(train), len(test)) == (1_200, 240)
    actors = lambda c: {m["actor"] for m in c.meta}  # noqa: E731
    assert actors(train) == set(range(1, 21)) and actors(test) == {21, 22, 23, 24}
    assert len(actors(train) | actors(test)) == 24
    assert not {"actor21", "actor22", "actor23", "actor24"} & set(train.groups)
    assert train.label_counts()["neutral"] == 240 and train.label_counts()["happy"] == 160  # calm folded in
    native = [read_ravdess(root, s, label_set="native8") for s in ("train", "test")]
    assert sum(c.label_counts()["calm"] for c in native) == 192
    assert sum(c.label_counts()["neutral"] for c in native) == 96
    dropped = read_ravdess(root, "train", calm="drop")
    assert len(dropped) == 1_040 and dropped.skipped == {"calm dropped": 160}
    # decode a few: 16 kHz mono float32 speech of 3 to 6 s
    for i in (0, 500, 1_199):
        sample = train[i]
        assert sample.audio.dtype == np.float32 and sample.sample_rate == 16_000 and sample.face is None
        assert 3 * 16_000 <= len(sample.audio) <= 6 * 16_000 and np.abs(sample.audio).max() <= 1.0
        assert sample.label == map_label("ravdess", train.meta[i]["emotion"])


def test_ravdess_val_actors():
    root = real("ravdess")
    train = read_ravdess(root, "train", val_actors=(19, 20))
    val = read_ravdess(root, "val", val_actors=(19, 20))
    assert (len(train), len(val)) == (1_080, 120) and set(val.groups) == {"actor19", "actor20"}
    assert not set(train.groups) & set(val.groups)
    with pytest.raises(ValueError, match="val_actors"):
        read_ravdess(root, "val")
    with pytest.raises(ValueError, match="both"):
        read_ravdess(root, "train", val_actors=(21,))


def test_ravdess_video_files(tmp_path, face_frames):
    """Audio-video, video-only and audio-only files of one recording become one sample."""
    actor = tmp_path / "Actor_02"
    actor.mkdir()
    write_video(actor / "01-01-03-01-01-01-02.mp4", face_frames, audio=tone(0.4))
    write_video(actor / "02-01-03-01-01-01-02.mp4", face_frames)
    sf.write(actor / "03-01-03-01-01-01-02.wav", tone(1.0, 48_000), 48_000)
    write_video(actor / "02-01-05-02-01-02-02.mp4", face_frames)  # video only
    write_video(actor / "01-01-04-01-02-01-02.mp4", face_frames, audio=tone(0.4))  # audio from the video
    (actor / "03-01-05-01-01-01-02.wav").write_bytes(b"")  # zero-length
    (actor / "03-01-99-01-01-01-02.wav").write_bytes(b"RIFF")  # bad emotion code
    (actor / "readme.txt").write_text("hi")
    corpus = read_ravdess(tmp_path, "train", face_frames=3)
    assert len(corpus) == 3
    assert corpus.skipped == {"zero-length file": 1, "bad file name": 1, "not a media file": 1}
    by_emotion = {m["emotion"]: i for i, m in enumerate(corpus.meta)}
    happy = corpus[by_emotion["happy"]]  # wav + both videos: audio from the 48 kHz wav, faces from the AV file
    assert happy.audio.shape == (16_000,) and happy.face.shape[1:] == (48, 48) and 1 <= len(happy.face) <= 3
    assert corpus.meta[by_emotion["happy"]]["video_path"].endswith("01-01-03-01-01-01-02.mp4")
    angry = corpus[by_emotion["angry"]]
    assert angry.audio is None and angry.face is not None
    sad = corpus[by_emotion["sad"]]
    assert abs(len(sad.audio) - 6_400) <= 2_048 and sad.face is not None
    audio_only = read_ravdess(tmp_path, "train", modalities="audio")
    assert len(audio_only) == 2 and audio_only[0].face is None  # the video-only recording has nothing to give


# --- MELD --------------------------------------------------------------------------------


def test_meld_real():
    root = real("meld")
    sizes = {split: len(read_meld(root, split)) for split in ("train", "val", "test")}
    assert sizes == {"train": 9_989, "val": 1_109, "test": 2_610}
    train = read_meld(root, "train")
    assert train.label_counts() == {"angry": 1_109, "disgust": 271, "fear": 268, "happy": 1_743, "neutral": 4_710,
                                    "sad": 683, "surprise": 1_205}  # fmt: skip
    assert not train.skipped and not train.lazy
    first = train[0]
    assert first.id == "meld/train/dia0_utt0" and first.group == "Chandler" and "company’s" in first.text
    assert train.meta[0]["start"] == pytest.approx(976.059) and train.meta[0]["end"] == pytest.approx(981.731)
    assert not any(ch in s.text for s in train for ch in "\x92\x85â€")  # no mojibake left
    dev = read_meld(root, "dev")
    assert dev.split == "val" and len(dev) == 1_109
    sentiment = read_meld(root, "test", target="sentiment")
    assert sentiment.label_names == ("negative", "neutral", "positive") and len(sentiment) == 2_610


def test_meld_clips(tmp_path, face_frames):
    root = tmp_path / "meld"
    root.mkdir()
    rows = [
        ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID", "Season", "Episode",
         "StartTime", "EndTime"],
        ["1", "Oh my God, it’s you!", "Rachel", "surprise", "positive", "0", "0", "1", "1", "00:00:01,000",
         "00:00:02,500"],
        ["2", "Yeah\x92 hi\x85", "Ross", "joy", "positive", "0", "1", "1", "1", "00:00:03,000", "00:00:04,000"],
        ["3", "Whatever.", "Monica", "contempt", "negative", "0", "2", "1", "1", "00:00:05,000", "00:00:06,000"],
    ]  # fmt: skip
    with (root / "test_sent_emo.csv").open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    clips = tmp_path / "clips" / "output_repeated_splits_test"
    clips.mkdir(parents=True)
    write_video(clips / "dia0_utt0.mp4", face_frames, audio=tone(0.4))
    corpus = read_meld(root, "test", clip_dir=tmp_path / "clips", face_frames=2)
    assert len(corpus) == 2 and corpus.skipped == {"unknown emotion label": 1}
    assert corpus.missing == {"clip not found (face and audio missing)": 1} and corpus.lazy
    with_clip, without = corpus[0], corpus[1]
    assert with_clip.face is not None and with_clip.face.shape[1:] == (48, 48) and with_clip.audio is not None
    assert with_clip.text == "Oh my God, it’s you!" and with_clip.label == EMOTIONS.index("surprise")
    assert without.face is None and without.audio is None and without.text == "Yeah’ hi…"


# --- GoEmotions --------------------------------------------------------------------------


def test_goemotions_real():
    root = real("goemotions")
    dropped = {s: read_goemotions(root, s) for s in ("train", "val", "test")}
    # before dropping multi-label comments: the published split sizes
    before = {s: len(c) + c.skipped["multi-label"] for s, c in dropped.items()}
    assert before == {"train": 43_410, "val": 5_426, "test": 5_427}
    assert {s: c.skipped["multi-label"] for s, c in dropped.items()} == {"train": 3_855, "val": 480, "test": 459}
    assert {s: len(c) for s, c in dropped.items()} == {"train": 39_555, "val": 4_946, "test": 4_968}
    test = dropped["test"]
    assert test.label_names == EMOTIONS and all(len(m["labels"]) == 1 for m in test.meta)
    assert test.label_counts()["happy"] == 1_863
    first = read_goemotions(root, "test", multi_label="first")
    assert len(first) == 5_427 and not first.skipped
    original = load_corpus("goemotions-original", None, "test")
    assert len(original.label_names) == 28 and len(original) == 4_590 and original.skipped["multi-label"] == 837


def test_goemotions_multi_label_policy(tmp_path):
    (tmp_path / "ekman").mkdir()
    lines = ["I love it\t3\ta1", "so angry and sad\t0,5\ta2", "meh\t4\ta3", "broken line", "bad id\t9\ta5"]
    (tmp_path / "ekman" / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    drop = read_goemotions(tmp_path, "test")
    assert [s.text for s in drop] == ["I love it", "meh"]
    assert drop.skipped == {"multi-label": 1, "malformed line": 1, "bad label id": 1}
    first = read_goemotions(tmp_path, "test", multi_label="first")
    assert [s.label for s in first] == [EMOTIONS.index("happy"), EMOTIONS.index("angry"), EMOTIONS.index("neutral")]
    assert first.meta[1]["labels"] == ["anger", "sadness"]


# --- CMU-MOSI ----------------------------------------------------------------------------


def test_mosi_real():
    root = real("mosi")
    train, test = read_mosi(root, "train"), read_mosi(root, "test")  # alignment is verified on read
    assert (len(train), len(test)) == (1_447, 752)
    assert train.label_counts() == {"negative": 738, "positive": 709}
    assert test.label_counts() == {"negative": 285, "positive": 467}
    sample = train[0]
    assert {m: f.shape for m, f in sample.features.items()} == {Modality.AUDIO: (1, 73), Modality.FACE: (1, 100),
                                                                 Modality.TEXT: (1, 100)}  # fmt: skip
    assert all(f.dtype == np.float32 for f in sample.features.values()) and sample.text
    assert not set(train.groups) & set(test.groups)  # speaker-independent: no video in both
    assert (len(set(train.groups)), len(set(test.groups))) == (62, 31)
    fit = read_mosi(root, "train", val_fraction=0.15, seed=1)
    val = read_mosi(root, "val", val_fraction=0.15, seed=1)
    assert len(fit) + len(val) == 1_447 and not set(fit.groups) & set(val.groups)
    assert 0.1 < len(val) / 1_447 < 0.3


def test_mosi_misalignment_detected(tmp_path):
    root = real("mosi")
    copy = tmp_path / "mosi"
    shutil.copytree(root, copy)
    video = copy / "video" / "video_test0.csv"
    rows = list(csv.reader(video.open(newline="")))
    rows[10][-1] = "0" if rows[10][-1] == "1" else "1"
    with video.open("w", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL).writerows(rows)
    with pytest.raises(MosiAlignmentError, match="video_test0.csv row 11"):
        read_mosi(copy, "test")
    read_mosi(copy, "train")  # the other split is untouched
    index = copy / "text_train.csv"
    rows = list(csv.reader(index.open(newline="")))
    rows[0], rows[1] = rows[1], rows[0]
    with index.open("w", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL).writerows(rows)
    with pytest.raises(MosiAlignmentError, match="text_train.csv"):
        read_mosi(copy, "train")


# --- manifest ----------------------------------------------------------------------------


@pytest.fixture()
def manifest_dir(tmp_path, face_frames) -> Path:
    media = tmp_path / "media"
    media.mkdir()
    cv2.imwrite(str(media / "face.png"), cv2.cvtColor(face_frames[0], cv2.COLOR_RGB2BGR))
    sf.write(media / "voice.wav", np.stack([tone(0.5, 44_100)] * 2, axis=1), 44_100)
    write_video(media / "clip.mp4", face_frames, audio=tone(0.4))
    return tmp_path


def write_manifest(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "label", "split", "image", "video", "audio", "text", "speaker"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_manifest(manifest_dir):
    rows = [
        {"id": "a", "label": "happy", "split": "train", "image": "media/face.png", "text": "what a day"},
        {"id": "b", "label": "Anger", "split": "train", "audio": "media/voice.wav", "speaker": "s1"},
        {"id": "c", "label": "sad", "split": "train", "video": "media/clip.mp4"},
        {"id": "d", "label": "fear", "split": "train", "audio": "media/gone.wav"},  # missing file
        {"id": "e", "label": "neutral", "split": "test", "text": "ok"},
    ]
    path = write_manifest(manifest_dir / "manifest.csv", rows)
    train = read_manifest(path, "train")
    assert len(train) == 3 and train.skipped == {"missing or empty file": 1}
    assert [s.label for s in train.stubs] == [EMOTIONS.index(n) for n in ("happy", "angry", "sad")]
    image, voice, clip = train[0], train[1], train[2]
    assert image.face.shape == (1, 48, 48) and image.text == "what a day" and image.audio is None
    assert voice.audio.shape == (8_000,) and voice.group == "s1" and voice.face is None
    assert clip.face.shape[1:] == (48, 48) and clip.audio is not None
    test = load_corpus("manifest", manifest_dir, "test")  # a folder holding manifest.csv
    assert test.ids == ["e"] and test[0].text == "ok"
    assert len(read_manifest(path, "all")) == 4


def test_manifest_errors(manifest_dir):
    path = write_manifest(manifest_dir / "bad.csv", [
        {"id": "a", "label": "happy", "split": "train", "text": "fine"},
        {"id": "b", "label": "bored", "split": "train", "text": "hmm"},
    ])  # fmt: skip
    with pytest.raises(LabelError, match=r"bad.csv row 3 \(id 'b'\): unknown label 'bored'"):
        read_manifest(path, "train")
    jsonl = manifest_dir / "own.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in [
        {"id": "x", "label": "yes", "text": "sure"}, {"id": "y", "label": "no", "text": "nope"},
    ]))  # fmt: skip
    corpus = read_manifest(jsonl, "all", label_names=["no", "yes"])
    assert corpus.label_names == ("no", "yes") and [s.label for s in corpus] == [1, 0]
    with pytest.raises(ValueError, match="no split column"):
        read_manifest(jsonl, "train", label_names=["no", "yes"])


# --- label-paired composition ------------------------------------------------------------


def toy(name: str, split: str, labels: list[int], modality: Modality) -> Corpus:
    stubs = []
    for i, label in enumerate(labels):
        media = {
            Modality.FACE: {"face": np.full((1, 48, 48), label, np.uint8)},
            Modality.AUDIO: {"audio": np.full(160, label / 10, np.float32)},
            Modality.TEXT: {"text": f"{name} {label}"},
        }[modality]
        stubs.append(Sample(id=f"{name}/{split}/{i}", label=label, split=split, group=f"{name}-g{i % 3}", **media))
    return Corpus(name, split, EMOTIONS, stubs)


def test_samples_alone_join_the_training_split_with_their_own_labels():
    from bridge.data.paired import add_alone

    paired = compose_paired(toy("faces", "train", [0, 1, 2, 3], Modality.FACE),
                            toy("voices", "train", [0, 1, 2, 3], Modality.AUDIO),
                            toy("texts", "train", [0, 1, 2, 3], Modality.TEXT), seed=0)
    texts = Corpus("meld+goemotions", "train", EMOTIONS,
                   toy("meld", "train", [4, 4, 4, 4, 5, 5], Modality.TEXT).stubs
                   + toy("goemotions", "train", [3, 3, 3, 6, 6, 6, 6, 6], Modality.TEXT).stubs)
    joined = add_alone(paired, "text", texts, share=1.5, seed=0)  # 6 more: 3 from each part
    assert len(joined) == 10 and joined.split == "train" and "label-paired" in joined.name
    assert [s.id for s in joined.stubs[:4]] == paired.ids
    added = [joined[i] for i in range(4, 10)]
    assert [s.id.split("/")[3] for s in added] == ["meld"] * 3 + ["goemotions"] * 3
    for sample in added:
        assert sample.face is None and sample.audio is None
        assert sample.text == f"{sample.id.split('/')[3]} {sample.label}"  # its own label
    assert joined[0].face is not None and joined[0].audio is not None
    assert add_alone(paired, "text", texts, 1.5, seed=0).ids == joined.ids  # seeded
    with pytest.raises(ValueError, match="at least 0"):
        add_alone(paired, "text", texts, -1)

    # voices alone on top: a quota above the source repeats every item, then a remainder
    voices = toy("ravdess", "train", [1, 5, 6], Modality.AUDIO)
    both = add_alone(joined, Modality.AUDIO, voices, share=0.8, seed=0)  # 8 more from 3 voices
    assert len(both) == 18 and both.ids[:10] == joined.ids and "voices alone" in both.name
    extra = [both[i] for i in range(10, 18)]
    assert sorted(Counter(s.id.split("~")[0] for s in extra).values()) == [2, 3, 3]
    assert len(set(s.id for s in extra)) == 8  # repeats get their own ids
    for sample in extra:
        assert sample.text is None and sample.face is None and sample.audio is not None
        assert sample.audio[0] == pytest.approx(sample.label / 10)  # its own label's clip
    assert both[4].text is not None and both[0].face is not None  # earlier samples untouched


def test_paired_composition():
    faces = toy("faces", "train", [0, 0, 1, 1, 2, 3, 3, 3], Modality.FACE)
    voices = toy("voices", "train", [0, 1, 1, 3], Modality.AUDIO)  # no label 2
    texts = toy("texts", "train", [0, 1, 2, 3, 3], Modality.TEXT)
    paired = compose_paired(faces, voices, texts, seed=0)
    assert "label-paired" in paired.name and "label-paired" in paired.description
    assert len(paired) == 7 and paired.skipped == {"no audio item labelled fear": 1}
    for i, sample in enumerate(paired):
        assert sample.face is not None and sample.audio is not None and sample.text is not None
        sources = paired.meta[i]
        assert faces.stubs[sources["face"]].label == voices.stubs[sources["audio"]].label == sample.label
        assert texts.stubs[sources["text"]].label == sample.label and sample.split == "train"
    again = compose_paired(faces, voices, texts, seed=0)
    assert again.ids == paired.ids and again.meta == paired.meta
    other = compose_paired(faces, voices, texts, seed=1)
    assert other.ids != paired.ids  # a different pairing
    # partners are used evenly: three anchors labelled 3 over voices [3] and texts [3, 3]
    threes = [m for m, s in zip(paired.meta, paired.stubs) if s.label == 3]
    assert Counter(m["text"] for m in threes).most_common(1)[0][1] == 2
    by_voice = compose_paired(faces, voices, texts, anchor="audio")
    assert len(by_voice) == 4 and sorted(by_voice.labels.tolist()) == [0, 1, 1, 3]
    assert len(compose_paired(faces, voices, texts, max_samples=3)) == 3


def test_paired_never_mixes_splits():
    faces = toy("faces", "train", [0, 1], Modality.FACE)
    voices = toy("voices", "test", [0, 1], Modality.AUDIO)
    texts = toy("texts", "train", [0, 1], Modality.TEXT)
    with pytest.raises(ValueError, match="split"):
        compose_paired(faces, voices, texts)
    with pytest.raises(ValueError, match="split"):
        compose_paired(faces, toy("voices", "train", [0, 1], Modality.AUDIO), texts, split="test")
    mixed = [Sample(id="a", label=0, audio=np.zeros(10, np.float32), split="train"),
             Sample(id="b", label=1, audio=np.zeros(10, np.float32), split="test")]  # fmt: skip
    with pytest.raises(ValueError, match="mixes"):
        compose_paired(faces, mixed, texts)


def test_paired_real():
    real("fer2013"), real("ravdess"), real("meld")
    splits = load_corpus_splits("paired", None, fer2013={"lazy": True})
    test = splits.test
    assert len(test) == 7_178 and test.label_counts() == FER_TEST and "label-paired" in test.name
    assert splits.name == test.name and splits.labels == EMOTIONS
    assert all(m["audio_id"].split("-")[-1] in {"21", "22", "23", "24"} for m in test.meta)  # test actors only
    assert all(m["text_id"].startswith("meld/test/") and m["face_id"].startswith("fer2013/test/") for m in test.meta)
    sample = test[0]
    assert sample.face.shape == (1, 48, 48) and sample.audio.dtype == np.float32 and sample.text
    assert not {m["face_id"] for m in splits.train.meta} & {m["face_id"] for m in splits.val.meta}
    assert not {m["audio_id"] for m in splits.train.meta} & {m["audio_id"] for m in splits.val.meta}
    assert all(m["text_id"].startswith("meld/val/") for m in splits.val.meta)


def test_paired_with_both_text_registers_real():
    """``paired+goemotions``: the same faces and voices, texts from MELD and GoEmotions, split by split."""
    real("fer2013"), real("ravdess"), real("meld"), real("goemotions")
    test = load_corpus("paired+goemotions", None, "test", fer2013={"lazy": True})
    assert len(test) == 7_178 and test.label_counts() == FER_TEST
    assert {m["text_id"].split("/")[0] for m in test.meta} == {"meld", "goemotions"}
    assert all(m["text_id"].startswith(("meld/test/", "goemotions/")) for m in test.meta)
    with pytest.raises(ValueError, match="text source"):
        load_corpus("paired", None, "test", text="iemocap")


def test_load_splits_carves_validation():
    real("ravdess")
    parts = load_splits("ravdess")
    assert {k: len(v) for k, v in parts.items()} == {"train": 1_080, "val": 120, "test": 240}
    assert not set(parts["train"].groups) & (set(parts["val"].groups) | set(parts["test"].groups))
