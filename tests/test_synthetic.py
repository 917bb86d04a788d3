"""The synthetic default corpus: determinism, disjoint splits, types, balance, and that each
modality carries its emotion the way the module docstring says."""

from __future__ import annotations

import hashlib
import re
from collections import Counter

import cv2
import numpy as np
import pytest

from bridge.data.sample import Sample
from bridge.data.synthetic import SyntheticConfig, SyntheticEmotions, synthetic_splits
from bridge.modality import EMOTIONS, Modality

ANGRY, DISGUST, FEAR, HAPPY, NEUTRAL, SAD, SURPRISE = (
    EMOTIONS.index(e) for e in ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
)

# With 7 samples per speaker, each block of 7 indices is one person showing every emotion once.
BLOCKS = 40
# No pose, lighting, noise or jitter, full intensity, all modalities informative; short audio.
CLEAN = SyntheticConfig(
    samples_per_speaker=7,
    pose_jitter=0.0,
    lighting_jitter=0.0,
    face_noise=0.0,
    expression_noise=0.0,
    uninformative_prob=0.0,
    intensity_range=(1.0, 1.0),
    sample_rate=8_000,
    audio_seconds=0.5,
)


def by_emotion(dataset: SyntheticEmotions, labels: tuple[int, ...]) -> list[dict[int, Sample]]:
    """Blocks of one speaker: ``blocks[b][label]`` is that person's sample of ``label``."""
    assert dataset.config.samples_per_speaker == len(EMOTIONS)
    blocks: list[dict[int, Sample]] = [{} for _ in range(len(dataset) // len(EMOTIONS))]
    for i in range(len(blocks) * len(EMOTIONS)):
        if dataset.latents(i).label in labels:  # latents are cheap; only render what is asked for
            blocks[i // len(EMOTIONS)][dataset.latents(i).label] = dataset[i]
    return blocks


@pytest.fixture(scope="module")
def blocks() -> list[dict[int, Sample]]:
    dataset = SyntheticEmotions(BLOCKS * 7, "train", seed=1, config=SyntheticConfig(samples_per_speaker=7))
    return by_emotion(dataset, (ANGRY, NEUTRAL, SAD, SURPRISE))


@pytest.fixture(scope="module")
def clean_blocks() -> list[dict[int, Sample]]:
    dataset = SyntheticEmotions(8 * 7, "train", seed=2, config=CLEAN)
    return by_emotion(dataset, (ANGRY, DISGUST, FEAR, NEUTRAL, SURPRISE))


def digest(sample: Sample) -> str:
    return hashlib.sha1(sample.face.tobytes() + sample.audio.tobytes() + sample.text.encode()).hexdigest()


def region(face: np.ndarray, rows: tuple[float, float], cols: tuple[float, float]) -> np.ndarray:
    s = face.shape[-1]
    return face[..., int(rows[0] * s) : int(rows[1] * s), int(cols[0] * s) : int(cols[1] * s)].astype(np.float64)


def mouth_darkness(face: np.ndarray) -> float:
    """Mean darkness of the mouth area; an open mouth is filled dark."""
    return 255.0 - float(region(face, (0.62, 0.85), (0.3, 0.7)).mean())


def median_pitch(audio: np.ndarray, sr: int) -> float:
    """Median F0 of the voiced frames in semitones (re 1 Hz), by normalised autocorrelation."""
    frame = int(0.04 * sr)
    count = 1 + (len(audio) - frame) // (frame // 4)
    window = np.hanning(frame)
    frames = audio.astype(np.float64)[np.arange(frame)[None] + (frame // 4) * np.arange(count)[:, None]] * window
    ac = np.fft.irfft(np.abs(np.fft.rfft(frames, 2 * frame)) ** 2, 2 * frame)[:, :frame]
    ac /= np.fft.irfft(np.abs(np.fft.rfft(window, 2 * frame)) ** 2, 2 * frame)[:frame]
    lo, hi = sr // 400, sr // 70
    best = ac[:, lo:hi].max(axis=1, keepdims=True)
    lag = lo + (ac[:, lo:hi] >= 0.9 * best).argmax(axis=1)  # the shortest lag nearly as good as the best
    energy = (frames**2).mean(axis=1)
    voiced = (best[:, 0] > 0.4 * ac[:, 0]) & (energy > 0.2 * energy.max())
    return float(np.median(12.0 * np.log2(sr / lag[voiced])))


def level_db(audio: np.ndarray) -> float:
    return 10.0 * float(np.log10(np.mean(audio.astype(np.float64) ** 2)))


# --- contract ----------------------------------------------------------------------------


def test_same_seed_split_index_gives_identical_samples():
    a, b = SyntheticEmotions(30, "val", seed=3), SyntheticEmotions(30, "val", seed=3)
    for i in (0, 7, 29):
        first, again, other = a[i], a[i], b[i]
        for s in (again, other):
            assert np.array_equal(first.face, s.face) and np.array_equal(first.audio, s.audio)
            assert (first.text, first.label, first.id, first.group) == (s.text, s.label, s.id, s.group)


def test_different_seeds_give_different_samples():
    a, b = SyntheticEmotions(10, seed=0), SyntheticEmotions(10, seed=1)
    for i in range(5):
        assert not np.array_equal(a[i].face, b[i].face)
        assert not np.array_equal(a[i].audio, b[i].audio)
    assert [a[i].label for i in range(10)] != [b[i].label for i in range(10)]


def test_splits_share_no_sample_and_no_speaker():
    splits = synthetic_splits(train=49, val=49, test=49, seed=0)
    assert set(splits) == {"train", "val", "test"}
    digests, groups, ids = {}, {}, {}
    for name, ds in splits.items():
        assert len(ds) == 49 and ds.split == name
        samples = [ds[i] for i in range(len(ds))]
        digests[name] = {digest(s) for s in samples}
        groups[name] = {s.group for s in samples}
        ids[name] = {s.id for s in samples}
        assert len(digests[name]) == len(ds)
    for x, y in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not digests[x] & digests[y]
        assert not groups[x] & groups[y]
        assert not ids[x] & ids[y]


def test_sample_types_shapes_and_ranges():
    config = SyntheticConfig(face_size=32, num_frames=3, sample_rate=8_000, audio_seconds=1.0)
    ds = SyntheticEmotions(21, "test", seed=5, config=config)
    assert len(ds) == 21 and ds.label_names == EMOTIONS
    for i in range(0, 21, 4):
        s = ds[i]
        assert isinstance(s, Sample)
        assert s.face.dtype == np.uint8 and s.face.shape == (3, 32, 32)
        assert s.audio.dtype == np.float32 and s.audio.shape == (8_000,)
        assert np.isfinite(s.audio).all() and np.abs(s.audio).max() <= 1.0 and s.audio.std() > 1e-3
        assert s.sample_rate == 8_000
        assert isinstance(s.text, str) and len(s.text.split()) >= 3
        assert isinstance(s.label, int) and 0 <= s.label < len(EMOTIONS)
        assert s.id == f"synthetic-test-{i}" and s.split == "test"
        assert isinstance(s.group, str) and s.group
        assert s.features == {}
        assert all(s.has(m) for m in Modality)
    clip = ds[0].face
    assert not np.array_equal(clip[0], clip[-1])  # frames of a clip move


def test_default_sample_shape():
    s = SyntheticEmotions(1)[0]
    assert s.face.shape == (1, 48, 48) and s.audio.shape == (32_000,) and s.sample_rate == 16_000


def test_labels_are_balanced():
    ds = SyntheticEmotions(350, "train", seed=4)
    counts = Counter(ds.latents(i).label for i in range(len(ds)))
    assert set(counts) == set(range(len(EMOTIONS)))
    assert max(counts.values()) - min(counts.values()) <= 10
    assert all(ds[i].label == ds.latents(i).label for i in range(0, 350, 50))


def test_some_modality_always_carries_the_emotion():
    ds = SyntheticEmotions(700, seed=0, config=SyntheticConfig(uninformative_prob=0.9))
    informative = [ds.latents(i).informative for i in range(len(ds))]
    assert all(len(m) >= 1 for m in informative)
    assert sum(len(m) == 1 for m in informative) > 300  # with p = 0.9 most samples keep just one
    default = SyntheticEmotions(700, seed=0)
    hidden = sum(3 - len(default.latents(i).informative) for i in range(len(default)))
    assert 0.05 < hidden / (3 * len(default)) < 0.2  # about uninformative_prob = 0.12
    low, high = default.config.intensity_range
    assert all(low <= default.latents(i).intensity <= high for i in range(len(default)))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="face_size"):
        SyntheticConfig(face_size=8)
    with pytest.raises(ValueError, match="uninformative_prob"):
        SyntheticConfig(uninformative_prob=1.5)
    with pytest.raises(ValueError, match="intensity_range"):
        SyntheticConfig(intensity_range=(0.8, 0.2))
    with pytest.raises(ValueError, match="size"):
        SyntheticEmotions(-1)
    ds = SyntheticEmotions(5)
    with pytest.raises(IndexError):
        ds[5]
    with pytest.raises(IndexError):
        ds[-1]


# --- content -----------------------------------------------------------------------------


def test_open_mouths_for_surprise_and_fear(clean_blocks, blocks):
    for b in clean_blocks:  # same person, nothing else varies: strict in every block
        assert mouth_darkness(b[SURPRISE].face) > mouth_darkness(b[NEUTRAL].face) + 5
        assert mouth_darkness(b[FEAR].face) > mouth_darkness(b[NEUTRAL].face) + 5
    gap = [mouth_darkness(b[SURPRISE].face) - mouth_darkness(b[NEUTRAL].face) for b in blocks]
    assert np.mean(gap) > 4 and np.mean(np.array(gap) > 0) > 0.5  # under the default nuisances too


def test_disgust_wrinkles_the_nose_where_anger_does_not(clean_blocks):
    def bridge_darkness(face: np.ndarray) -> float:
        return 255.0 - float(region(face, (0.48, 0.6), (0.44, 0.56)).mean())

    for b in clean_blocks:
        assert bridge_darkness(b[DISGUST].face) > bridge_darkness(b[ANGRY].face) + 5


def test_faces_are_learnable_by_a_linear_classifier():
    def features(ds: SyntheticEmotions) -> tuple[np.ndarray, np.ndarray]:
        x = np.stack([cv2.resize(ds[i].face[0], (24, 24), interpolation=cv2.INTER_AREA) for i in range(len(ds))])
        x = x.reshape(len(ds), -1).astype(np.float64)
        x = (x - x.mean(axis=1, keepdims=True)) / (x.std(axis=1, keepdims=True) + 1e-6)
        return np.hstack([x, np.ones((len(ds), 1))]), np.array([ds.latents(i).label for i in range(len(ds))])

    short = SyntheticConfig(sample_rate=8_000, audio_seconds=0.5)  # faces do not depend on the audio settings
    x, y = features(SyntheticEmotions(350, "train", seed=0, config=short))
    x_test, y_test = features(SyntheticEmotions(140, "test", seed=0, config=short))
    targets = np.eye(len(EMOTIONS))[y]
    weights = np.linalg.solve(x.T @ x + 30.0 * np.eye(x.shape[1]), x.T @ targets)  # ridge regression
    accuracy = np.mean((x_test @ weights).argmax(axis=1) == y_test)
    assert accuracy > 0.3  # chance is 1/7


def test_voice_pitch_and_energy_follow_the_emotion(blocks):
    sr = 16_000
    rise = np.array([median_pitch(b[SURPRISE].audio, sr) - median_pitch(b[SAD].audio, sr) for b in blocks])
    assert np.median(rise) > 2.0 and np.mean(rise > 0) > 0.7  # semitones, same speaker
    louder = np.array([level_db(b[ANGRY].audio) - level_db(b[SAD].audio) for b in blocks])
    assert np.mean(louder) > 3.0 and np.mean(louder > 0) > 0.8


def test_intensity_is_shared_across_modalities():
    # Without jitter or nuisances, one person's surprise differs from their neutral by intensity alone.
    config = SyntheticConfig(
        samples_per_speaker=7,
        uninformative_prob=0.0,
        pose_jitter=0.0,
        lighting_jitter=0.0,
        face_noise=0.0,
        expression_noise=0.0,
        prosody_noise=0.0,
    )
    ds = SyntheticEmotions(BLOCKS * 7, seed=3, config=config)
    intensity, mouth, pitch = [], [], []
    for block in by_emotion(ds, (NEUTRAL, SURPRISE)):
        surprise, neutral = block[SURPRISE], block[NEUTRAL]
        intensity.append(ds.latents(int(surprise.id.rsplit("-", 1)[1])).intensity)
        skin = 255.0 - mouth_darkness(neutral.face)  # darkness scales with the skin tone
        mouth.append((mouth_darkness(surprise.face) - mouth_darkness(neutral.face)) / skin)
        pitch.append(median_pitch(surprise.audio, 16_000) - median_pitch(neutral.audio, 16_000))
    assert np.corrcoef(intensity, mouth)[0, 1] > 0.8
    assert np.corrcoef(intensity, pitch)[0, 1] > 0.5


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


ANGER_WORDS = {"angry", "furious", "livid", "enraged", "mad", "annoyed", "irritated", "frustrated", "cross", "unfair"}
JOY_WORDS = {"happy", "thrilled", "delighted", "overjoyed", "glad", "pleased", "excited", "love", "best", "smiling"}


def test_text_uses_emotion_vocabulary():
    ds = SyntheticEmotions(420, seed=0, config=SyntheticConfig(sample_rate=8_000, audio_seconds=0.5))
    texts = {label: [] for label in range(len(EMOTIONS))}
    for i in range(len(ds)):
        texts[ds.latents(i).label].append(words(ds[i].text))

    def share(label: int, vocabulary: set[str]) -> float:
        return float(np.mean([bool(w & vocabulary) for w in texts[label]]))

    others = [label for label in range(len(EMOTIONS)) if label not in (ANGRY, HAPPY)]
    assert share(ANGRY, ANGER_WORDS) > 0.2 and share(HAPPY, ANGER_WORDS) < 0.05
    assert share(HAPPY, JOY_WORDS) > 0.4 and share(ANGRY, JOY_WORDS) < 0.3  # only negated: "not happy about it"
    assert all(share(label, ANGER_WORDS | JOY_WORDS) < 0.05 for label in others)


def test_sad_and_fear_share_sentences_but_happy_does_not():
    config = SyntheticConfig(text_ambiguity=1.0, uninformative_prob=0.0, sample_rate=8_000, audio_seconds=0.5)
    ds = SyntheticEmotions(280, seed=0, config=config)
    texts = {label: set() for label in range(len(EMOTIONS))}
    for i in range(len(ds)):
        texts[ds.latents(i).label].add(ds[i].text.split(", ")[-1])  # drop a neutral opener
    assert texts[SAD] & texts[FEAR]
    assert not texts[HAPPY] & (texts[SAD] | texts[FEAR])
