"""The embedded synthetic default corpus: instance-aligned face, voice and text, made on the fly.

What it is for: unit tests, the CPU quick start (``python train.py`` with no ``--data``) and
demos. It is a controlled toy whose difficulty is set by hand, so a number measured on it
says nothing about emotion recognition: never report accuracy on it. Nothing is downloaded
or written; every sample is a pure function of ``(seed, split, index)`` and the config.

Generative story, per sample:

1. **Latents.** A label (stratified: every block of seven consecutive indices holds each
   emotion once, in a seeded order), an *intensity* in ``config.intensity_range`` shared by
   all three modalities (stronger expression, more extreme prosody, stronger words), and an
   identity: ``config.samples_per_speaker`` consecutive indices share one synthetic person
   (``Sample.group``), whose face shape, skin tone, eye spacing, base pitch and timbre are
   drawn once. Identities never cross splits. With probability ``config.uninformative_prob``
   per modality, a modality is *uninformative*: a neutral face, neutral prosody or a generic
   sentence. Never all three for one sample, so every sample stays decidable from some
   modality.
2. **Face** (grayscale, drawn with OpenCV): a parametric expression (brow height and inner
   angle, eye openness, mouth curvature, opening and width, upper-lip raise, nose wrinkle,
   mouth asymmetry) equal to neutral plus intensity times an emotion prototype plus jitter,
   on an identity (face shape, hairline, skin and hair tone, eye spacing, a resting mouth
   curve), under a pose (rotation, shift, scale), a background gradient, directional
   lighting, brightness/contrast and Gaussian noise. With ``num_frames > 1`` the expression
   ramps from onset to apex while the head drifts slightly.
3. **Voice**: a sawtooth glottal source following a pitch contour (speaker base pitch plus
   an emotion's level, range, slope, bounce and tremor), gated by a syllable-like envelope
   at the emotion's speaking rate, mixed with breath noise, shaped by the speaker's three
   formants and an emotion-dependent spectral tilt (vocal tension), scaled to the emotion's
   energy, plus white background noise at a random SNR.
4. **Text**: an emotion template with slots (who, what, when), intensity-graded vocabulary
   ("annoyed" → "furious"), hedges at low intensity, occasional negation ("I'm not happy
   about it") and neutral openers.

Each modality alone is informative but confuses DIFFERENT pairs of emotions, so fusion
matters (label names as in ``bridge.modality.EMOTIONS``):

- face: fear ↔ surprise (raised brows, wide eyes, open mouth) and angry ↔ disgust (lowered
  brows, narrowed eyes; disgust only adds a faint nose wrinkle and raised upper lip);
- voice: happy ↔ surprise (high, wide, rising pitch, loud), angry ↔ fear (loud, fast,
  raised pitch) and sad ↔ neutral (low, flat, quiet-ish);
- text: sad ↔ fear and surprise ↔ neutral (with probability ``config.text_ambiguity`` the
  sentence comes from a pool shared by the pair: "I couldn't sleep at all last night",
  "Oh, so the meeting is on Tuesday now"), and angry ↔ disgust mildly.

Each strongly confused pair is told apart by the other two modalities; angry ↔ disgust,
confused by the face and mildly by the text, leans on the voice. With logistic regression
(HOG of the face; pitch, energy and rate statistics plus a mean log-mel spectrum of the
voice; bag of words) on the default config, each modality alone scores about 50-70 % and
the three concatenated about 90 % (chance is 1/7).
"""

from __future__ import annotations

import functools
import math
import operator
import zlib
from dataclasses import dataclass

import cv2
import numpy as np
import scipy.signal
import torch

from bridge.data.sample import Sample
from bridge.modality import EMOTIONS, Modality


@dataclass(frozen=True)
class SyntheticConfig:
    """How samples look and how hard they are.

    Args:
        face_size: side of the square grayscale face crop, in pixels.
        num_frames: face frames per sample; more than one gives a short clip in which the
            expression ramps up and the head drifts slightly.
        sample_rate: audio sampling rate in Hz.
        audio_seconds: length of every waveform in seconds.
        intensity_range: range of the per-sample emotion intensity shared by all modalities.
        uninformative_prob: chance, per modality, that it shows no emotion (never all three).
        samples_per_speaker: consecutive indices that share one synthetic identity (group).
        expression_noise: standard deviation of the jitter on face expression parameters.
        pose_jitter: scale of head rotation, shift and scale changes (0 = frontal, centred).
        lighting_jitter: scale of directional lighting, contrast and brightness changes (0 = none).
        face_noise: standard deviation of Gaussian pixel noise, in grey levels.
        prosody_noise: scale of the jitter on prosody parameters (pitch level, range, rate...).
        audio_snr_db: range of the speech-to-background-noise ratio in dB.
        text_ambiguity: chance that a sentence of a text-confusable emotion comes from the
            pool it shares with its partner (sad/fear, surprise/neutral).
    """

    face_size: int = 48  # side of the square grayscale face crop
    num_frames: int = 1  # face frames per sample; > 1 gives expression onset and head drift
    sample_rate: int = 16_000  # Hz; formants reach 3.4 kHz, so at least 8 kHz
    audio_seconds: float = 2.0  # fixed waveform length
    intensity_range: tuple[float, float] = (0.4, 1.0)  # shared emotion intensity; low ends look neutral
    uninformative_prob: float = 0.12  # per modality: neutral face / flat prosody / generic sentence
    samples_per_speaker: int = 20  # consecutive indices sharing one identity (face and voice)
    expression_noise: float = 0.2  # jitter of face expression parameters, in prototype units
    pose_jitter: float = 1.0  # multiplies the std of rotation (3°), shift (1.8 %) and scale (3 %)
    lighting_jitter: float = 1.0  # scales light gradient (to 50 %), contrast (0.7-1.2), brightness (std 12)
    face_noise: float = 5.0  # pixel noise std in grey levels
    prosody_noise: float = 1.0  # multiplies per-parameter prosody jitter
    audio_snr_db: tuple[float, float] = (8.0, 30.0)  # background noise level range
    text_ambiguity: float = 0.6  # chance a sad/fear or surprise/neutral sentence is shared by the pair

    def __post_init__(self) -> None:
        if self.face_size < 16:
            raise ValueError(f"face_size must be at least 16, got {self.face_size}")
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be at least 1, got {self.num_frames}")
        if self.sample_rate < 8_000:
            raise ValueError(f"sample_rate must be at least 8000 Hz, got {self.sample_rate}")
        if not self.audio_seconds >= 0.5:
            raise ValueError(f"audio_seconds must be at least 0.5, got {self.audio_seconds}")
        if self.samples_per_speaker < 1:
            raise ValueError(f"samples_per_speaker must be at least 1, got {self.samples_per_speaker}")
        for name in ("uninformative_prob", "text_ambiguity"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        low, high = self.intensity_range
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"intensity_range must satisfy 0 <= low <= high <= 1, got {self.intensity_range}")
        low, high = self.audio_snr_db
        if not low <= high:
            raise ValueError(f"audio_snr_db must be (low, high), got {self.audio_snr_db}")
        for name in ("expression_noise", "pose_jitter", "lighting_jitter", "face_noise", "prosody_noise"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}")


@dataclass(frozen=True)
class SyntheticLatents:
    """The hidden variables behind one sample, for analysis and tests.

    Args:
        label: index into ``EMOTIONS``.
        intensity: emotion strength in [0, 1], shared by the three modalities.
        informative: the modalities that show the emotion (the others look neutral).
        speaker: index of the synthetic identity within the split.
    """

    label: int
    intensity: float
    informative: frozenset[Modality]
    speaker: int


class SyntheticEmotions(torch.utils.data.Dataset):
    """A synthetic tri-modal emotion corpus of ``size`` samples for one split.

    Samples are generated on access, deterministically from ``(seed, split, index)``;
    different splits (and different seeds) draw independent samples and identities.

    Args:
        size: number of samples.
        split: split name, e.g. ``"train"``, ``"val"`` or ``"test"``; part of every sample's seed.
        seed: corpus seed.
        config: how samples look and how hard they are.
    """

    def __init__(self, size: int, split: str = "train", seed: int = 0, config: SyntheticConfig = SyntheticConfig()):
        if size < 0:
            raise ValueError(f"size must be non-negative, got {size}")
        if not split:
            raise ValueError("split must be a non-empty string")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        self.size = int(size)
        self.split = split
        self.seed = int(seed)
        self.config = config
        self._split_code = zlib.crc32(split.encode("utf-8"))

    def __len__(self) -> int:
        return self.size

    @property
    def label_names(self) -> tuple[str, ...]:
        """The emotion names that labels index."""
        return EMOTIONS

    def __getitem__(self, index: int) -> Sample:
        index = self._check_index(index)
        latents = self._latents(index)
        who = self._identity(latents.speaker)
        shown = {m: (EMOTIONS[latents.label], latents.intensity) for m in latents.informative}
        neutral = ("neutral", 0.0)  # what an uninformative face or voice shows
        return Sample(
            id=f"synthetic-{self.split}-{index}",
            label=latents.label,
            face=_render_face(self._rng(_STREAM_FACE, index), who, *shown.get(Modality.FACE, neutral), self.config),
            audio=_render_voice(self._rng(_STREAM_VOICE, index), who, *shown.get(Modality.AUDIO, neutral), self.config),
            sample_rate=self.config.sample_rate,
            text=_render_text(self._rng(_STREAM_TEXT, index), *shown.get(Modality.TEXT, (None, 0.0)), self.config),
            group=f"synthetic-{self.split}-speaker{latents.speaker}",
            split=self.split,
        )

    def latents(self, index: int) -> SyntheticLatents:
        """The hidden label, intensity, informative modalities and identity of sample ``index``."""
        return self._latents(self._check_index(index))

    def _check_index(self, index: int) -> int:
        index = operator.index(index)
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} out of range for {self.size} samples")
        return index

    def _rng(self, stream: int, key: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self._split_code, stream, key])

    def _latents(self, index: int) -> SyntheticLatents:
        block, offset = divmod(index, len(EMOTIONS))
        label = int(self._rng(_STREAM_LABEL, block).permutation(len(EMOTIONS))[offset])
        rng = self._rng(_STREAM_LATENT, index)
        intensity = float(rng.uniform(*self.config.intensity_range))
        hidden = rng.random(3) < self.config.uninformative_prob  # face, audio, text
        if hidden.all():
            hidden[rng.integers(3)] = False
        informative = frozenset(m for m, h in zip((Modality.FACE, Modality.AUDIO, Modality.TEXT), hidden) if not h)
        return SyntheticLatents(label, intensity, informative, index // self.config.samples_per_speaker)

    def _identity(self, speaker: int) -> _Identity:
        return _Identity.draw(self._rng(_STREAM_SPEAKER, speaker))


def synthetic_splits(
    train: int = 1400,
    val: int = 300,
    test: int = 300,
    seed: int = 0,
    config: SyntheticConfig = SyntheticConfig(),
) -> dict[str, SyntheticEmotions]:
    """The synthetic corpus as ``{"train", "val", "test"}`` datasets with disjoint samples and identities.

    Args:
        train: number of training samples.
        val: number of validation samples.
        test: number of test samples.
        seed: corpus seed.
        config: how samples look and how hard they are.
    """
    sizes = {"train": train, "val": val, "test": test}
    return {split: SyntheticEmotions(size, split=split, seed=seed, config=config) for split, size in sizes.items()}


# Independent random streams per purpose; the key after the stream is a block, speaker or index.
_STREAM_LABEL, _STREAM_LATENT, _STREAM_SPEAKER, _STREAM_FACE, _STREAM_VOICE, _STREAM_TEXT = range(6)


def _table(rows: dict[str, list[float]]) -> np.ndarray:
    """Per-emotion parameter rows, stacked in ``EMOTIONS`` order: ``(len(EMOTIONS), p)``."""
    return np.array([rows[name] for name in EMOTIONS], dtype=np.float64)


@dataclass(frozen=True)
class _Identity:
    """One synthetic person: face geometry and tones, voice pitch and timbre."""

    face_width: float  # relative face ellipse width
    face_height: float  # relative face ellipse height
    hairline: float  # how far the hair comes down the forehead (0..1 of the upper half)
    skin: float  # grey level of the skin
    hair: float  # grey level of hair and brows
    eye_spacing: float  # horizontal eye offset from the centre, fraction of the crop
    eye_height: float  # vertical eye position, fraction of the crop
    mouth_height: float  # vertical mouth position, fraction of the crop
    resting_curve: float  # a naturally up- or down-turned mouth, in expression units
    base_f0: float  # Hz, the speaker's neutral pitch
    formants: tuple[float, float, float]  # Hz, F1-F3 of the speaker's (single) vowel colour
    bandwidths: tuple[float, float, float]  # Hz, formant bandwidths (how sharp the timbre is)
    rate_scale: float  # the speaker's habitual speaking-rate multiplier
    gain_db: float  # recording level of this speaker

    @staticmethod
    def draw(rng: np.random.Generator) -> _Identity:
        u = rng.random(14)
        tract = 0.88 + 0.24 * u[10]  # vocal tract scaling of the formants
        return _Identity(
            face_width=0.86 + 0.22 * u[0],
            face_height=0.90 + 0.16 * u[1],
            hairline=0.15 + 0.45 * u[2],
            skin=110.0 + 110.0 * u[3],
            hair=20.0 + 110.0 * u[4],
            eye_spacing=0.105 + 0.035 * u[5],
            eye_height=0.43 + 0.04 * u[6],
            mouth_height=0.70 + 0.04 * u[7],
            resting_curve=-0.2 + 0.4 * u[8],
            base_f0=95.0 * (230.0 / 95.0) ** u[9],
            formants=(tract * (550 + 200 * u[11]), tract * (1300 + 600 * u[12]), tract * (2500 + 400 * u[13])),
            bandwidths=tuple(float(b) * (0.7 + 0.6 * rng.random()) for b in (80.0, 110.0, 160.0)),
            rate_scale=0.87 + 0.26 * rng.random(),
            gain_db=float(rng.uniform(-3.0, 3.0)),
        )


# ---------------------------------------------------------------------------------------------
# Face

# Expression parameters, as offsets from neutral at full intensity:
# brow_raise, brow_inner (inner ends up), eye_open, mouth_curve (corners up), mouth_open,
# mouth_width, upper_lip (raised), nose_wrinkle, asymmetry (one corner up).
_FACE_PROTOTYPES = _table(
    {
        "angry": [-0.8, -0.8, -0.45, -0.30, 0.00, -0.15, 0.00, 0.00, 0.00],  # brows down and in, pressed lips
        "disgust": [-0.7, -0.7, -0.45, -0.40, 0.10, -0.10, 0.45, 0.70, 0.35],  # as angry + wrinkle, lip raise
        "fear": [0.8, 0.4, 0.70, -0.20, 0.70, 0.10, 0.00, 0.00, 0.00],  # brows up, inner ends too; stretched mouth
        "happy": [0.1, 0.0, -0.20, 1.00, 0.35, 0.35, 0.00, 0.00, 0.00],  # smile; raised cheeks narrow the eyes
        "neutral": [0.0, 0.0, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00],
        "sad": [-0.1, 0.9, -0.30, -0.90, 0.00, -0.10, 0.00, 0.00, 0.00],  # inner brows up, mouth corners down
        "surprise": [1.0, 0.1, 0.80, 0.00, 0.90, -0.10, 0.00, 0.00, 0.00],  # brows up, wide eyes, dropped jaw
    }
)
_SHIFT = 4  # sub-pixel bits for OpenCV drawing
_ONE = 1 << _SHIFT


def _render_face(
    rng: np.random.Generator, who: _Identity, emotion: str, intensity: float, config: SyntheticConfig
) -> np.ndarray:
    """Grayscale face frames ``(t, s, s)`` uint8 showing ``emotion`` at ``intensity``."""
    s, frames = config.face_size, config.num_frames
    prototype = _FACE_PROTOTYPES[EMOTIONS.index(emotion)]
    expression = intensity * prototype + config.expression_noise * math.sqrt(intensity) * rng.normal(size=9)
    expression += 0.15 * config.expression_noise * rng.normal(size=9)  # everyone twitches a little
    expression[3] += who.resting_curve
    expression[7] = max(expression[7], 0.0)  # no negative wrinkles
    pose = rng.normal(size=4) * config.pose_jitter * np.array([3.0, 0.018 * s, 0.018 * s, 0.03])  # deg, px, px, log
    drift = rng.normal(size=4) * config.pose_jitter * np.array([2.0, 0.01 * s, 0.01 * s, 0.01])  # over a clip
    background, tilt = rng.uniform(30.0, 220.0), rng.normal(size=2) * 40.0
    lighting = config.lighting_jitter
    gradient, direction = lighting * rng.uniform(0.0, 0.5), rng.uniform(0.0, 2 * math.pi)
    contrast, brightness = 1.0 + lighting * rng.uniform(-0.3, 0.2), lighting * rng.normal(0.0, 12.0)
    noise_std = config.face_noise * rng.uniform(0.5, 1.5)

    grid = np.linspace(-1.0, 1.0, s, dtype=np.float32)  # (s,)
    canvas = np.clip(background + tilt[0] * grid[None, :] + tilt[1] * grid[:, None], 0, 255).astype(np.uint8)
    shade = 1.0 + gradient * (math.cos(direction) * grid[None, :] + math.sin(direction) * grid[:, None])  # (s, s)
    gain, offset = contrast * shade, brightness + (1.0 - contrast) * 128.0
    out = np.empty((frames, s, s), dtype=np.uint8)  # (t, h, w)
    for t in range(frames):
        progress = t / (frames - 1) if frames > 1 else 1.0
        img = canvas.copy()
        _draw_face(img, who, (0.55 + 0.45 * progress) * expression if frames > 1 else expression)  # onset to apex
        angle, dx, dy, log_scale = pose + (progress - 0.5) * drift if frames > 1 else pose
        matrix = cv2.getRotationMatrix2D((s / 2, s / 2), float(angle), math.exp(log_scale))
        matrix[:, 2] += (dx, dy)
        img = cv2.warpAffine(img, matrix, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        frame = img.astype(np.float32) * gain + offset
        frame += _noise(rng, s * s).reshape(s, s) * np.float32(noise_std)
        out[t] = np.clip(frame, 0, 255)
    return out


def _draw_face(img: np.ndarray, who: _Identity, e: np.ndarray) -> None:
    """Draw a frontal face with expression ``e`` (see ``_FACE_PROTOTYPES``) onto ``img`` in place."""
    s = img.shape[0]
    brow_raise, brow_inner, eye_open, curve, mouth_open, mouth_width, upper_lip, wrinkle, asym = e

    def pt(x: float, y: float) -> tuple[int, int]:
        return int(round(x * s * _ONE)), int(round(y * s * _ONE))

    def size(a: float, b: float) -> tuple[int, int]:
        return max(int(round(a * s * _ONE)), 1), max(int(round(b * s * _ONE)), 1)

    aa = cv2.LINE_AA
    cx, cy = 0.5, 0.54
    ax, ay = 0.30 * who.face_width, 0.38 * who.face_height
    skin, hair = who.skin, who.hair
    stroke = max(1, round(s / 40))

    cv2.ellipse(img, pt(cx, cy), size(ax, ay), 0, 0, 360, skin, -1, aa, _SHIFT)
    top = cy - ay
    hair_axes = size(ax * 1.04, ay * (0.35 + 0.3 * who.hairline))
    cv2.ellipse(img, pt(cx, top + who.hairline * ay * 0.6), hair_axes, 0, 180, 360, hair, -1, aa, _SHIFT)

    # Eyes: sclera, iris. Openness scales the height.
    ey = who.eye_height
    eye_h = max(0.034 * (1.0 + 0.9 * eye_open), 0.006)
    for side in (-1, 1):
        ex = cx + side * who.eye_spacing
        cv2.ellipse(img, pt(ex, ey), size(0.065, eye_h), 0, 0, 360, min(skin + 70, 250), -1, aa, _SHIFT)
        cv2.ellipse(img, pt(ex, ey), size(0.026, min(0.026, eye_h)), 0, 0, 360, 25, -1, aa, _SHIFT)
        # Brows: raise moves both ends up; inner raise tilts them (sad/fear up, angry down and in).
        outer_y = ey - 0.085 - 0.05 * brow_raise
        inner_y = outer_y - 0.045 * brow_inner
        inner_x = cx + side * (0.045 + 0.015 * min(brow_inner, 0.0))
        cv2.line(img, pt(inner_x, inner_y), pt(ex + side * 0.075, outer_y), hair, stroke, aa, _SHIFT)

    # Nose, with wrinkles across the bridge for disgust.
    ny = 0.61
    nose = skin * 0.72
    cv2.line(img, pt(cx, ey + 0.04), pt(cx + 0.01, ny), nose, 1, aa, _SHIFT)
    cv2.line(img, pt(cx - 0.035, ny), pt(cx + 0.035, ny), nose, 1, aa, _SHIFT)
    if wrinkle > 0.05:
        dark = skin * (1.0 - 0.5 * min(wrinkle, 1.5))
        for k in range(3):
            y = ey + 0.045 + 0.03 * k
            cv2.line(img, pt(cx - 0.05, y), pt(cx + 0.05, y), dark, 1, aa, _SHIFT)

    # Mouth: two quadratic curves between the corners; an open mouth is filled dark.
    my = who.mouth_height
    half = 0.10 * max(1.0 + 0.5 * mouth_width, 0.3)
    left_y = my - 0.04 * curve - 0.03 * asym
    right_y = my - 0.04 * curve
    open_h = 0.14 * max(mouth_open, 0.0)
    upper_mid = my - 0.025 * max(upper_lip, 0.0) - 0.3 * open_h
    lower_mid = my + 0.7 * open_h
    k = np.linspace(0.0, 1.0, 9)[:, None]
    left, right = np.array([cx - half, left_y]), np.array([cx + half, right_y])

    def bezier(mid_y: float) -> np.ndarray:
        control = np.array([cx, 2 * mid_y - 0.5 * (left_y + right_y)])
        pts = (1 - k) ** 2 * left + 2 * k * (1 - k) * control + k**2 * right  # (9, 2)
        return np.round(pts * s * _ONE).astype(np.int32)

    lips = skin * 0.55
    upper = bezier(upper_mid)
    if open_h > 0.006:
        lower = bezier(lower_mid)
        outline = np.concatenate([upper, lower[::-1]])
        cv2.fillPoly(img, [outline], 35, aa, _SHIFT)
        cv2.polylines(img, [outline], True, lips, 1, aa, _SHIFT)
    else:
        cv2.polylines(img, [upper], False, lips, stroke, aa, _SHIFT)


# ---------------------------------------------------------------------------------------------
# Voice

# Prosody per emotion at full intensity: level (semitones over the speaker's base), range
# (semitones), slope (-1 falling .. 1 rising), bounce (syllable-rate pitch swings), tremor
# (semitones at ~6.5 Hz), energy (dB), rate (syllables/s), breath (noise share), tension
# (flatter spectral tilt).
_VOICE_PROTOTYPES = _table(
    {
        "angry": [2.5, 5.0, -0.8, 0.2, 0.2, 7.0, 5.6, 0.05, 1.2],  # loud, fast, falling, tense
        "disgust": [-2.5, 5.0, -1.0, 0.0, 0.0, 1.0, 2.5, 0.25, 0.3],  # low, slow, drawn-out fall
        "fear": [3.5, 4.0, -0.1, 0.2, 1.0, 5.5, 6.0, 0.35, 0.7],  # near angry, but trembling and breathy
        "happy": [4.5, 7.0, 0.3, 1.0, 0.0, 3.5, 4.6, 0.10, 0.3],  # high, wide, bouncy
        "neutral": [0.0, 2.5, -0.2, 0.2, 0.0, 0.0, 4.0, 0.12, 0.0],
        "sad": [-1.0, 1.6, -0.3, 0.1, 0.0, -3.0, 3.4, 0.25, -0.4],  # a bit lower, flatter, slower, softer
        "surprise": [5.5, 8.0, 0.9, 0.6, 0.0, 4.0, 4.4, 0.15, 0.4],  # high, wide, rising
    }
)
_VOICE_NEUTRAL = _VOICE_PROTOTYPES[EMOTIONS.index("neutral")]
_VOICE_JITTER = 0.6 * np.array([1.0, 1.2, 0.3, 0.2, 0.15, 1.5, 0.4, 0.06, 0.3])  # per-sample std per parameter


def _render_voice(
    rng: np.random.Generator, who: _Identity, emotion: str, intensity: float, config: SyntheticConfig
) -> np.ndarray:
    """A mono float32 waveform ``(n,)`` in [-1, 1] of ``who`` speaking with ``emotion`` at ``intensity``."""
    sr = config.sample_rate
    n = int(round(sr * config.audio_seconds))
    prosody = _VOICE_NEUTRAL + intensity * (_VOICE_PROTOTYPES[EMOTIONS.index(emotion)] - _VOICE_NEUTRAL)
    prosody = prosody + config.prosody_noise * _VOICE_JITTER * rng.normal(size=9)
    level, span, slope, bounce, tremor, energy_db, rate, breath, tension = prosody
    span, tremor, breath = max(span, 0.3), max(tremor, 0.0), float(np.clip(breath, 0.0, 0.6))
    tension = float(np.clip(tension, -0.9, 1.5))
    rate = max(rate * who.rate_scale, 1.5)

    # Syllable envelope and pitch contour at a control rate of about 100 Hz.
    hop = sr // 100
    fps = sr / hop
    m = -(-n // hop) + 1  # control points; the last one closes the final hop
    seconds = n / sr
    t = np.arange(m) / fps  # (m,)
    count = int(seconds * rate * 1.3) + 2  # more syllables than fit; the late ones are dropped
    gaps = rng.uniform(0.8, 1.2, count) / rate + (rng.random(count) < 0.1) * rng.uniform(0.15, 0.3, count)
    onsets = rng.uniform(0.05, 0.2) + np.concatenate([[0.0], np.cumsum(gaps[:-1])])  # (k,)
    durations = 0.8 / rate * rng.uniform(0.75, 1.25, count)  # (k,)
    amplitudes = rng.uniform(0.55, 1.0, count)  # (k,)
    keep = onsets < max(seconds - 0.15, onsets[0] + 1e-3)
    onsets, durations, amplitudes = onsets[keep], durations[keep], amplitudes[keep]
    u = (t[None, :] - onsets[:, None]) / durations[:, None]  # (k, m)
    inside = (u > 0.0) & (u < 1.0)
    env = (amplitudes[:, None] * inside * np.sin(np.pi * np.clip(u, 0.0, 1.0))).max(axis=0)  # (m,)
    start, end = onsets[0], onsets[-1] + durations[-1]
    u = np.clip((t - start) / max(end - start, 1e-3), 0.0, 1.0)
    phases = rng.uniform(0, 2 * math.pi, size=2)
    semitones = level + span * (slope * (u - 0.5) + 0.5 * bounce * np.sin(math.pi * rate * t + phases[0]))
    semitones += tremor * np.sin(2 * math.pi * 6.5 * t + phases[1]) + 0.5 * tremor * rng.standard_normal(m)
    semitones += 0.15 * rng.standard_normal(m)  # micro-jitter
    f0 = np.clip(who.base_f0 * 2.0 ** (semitones / 12.0), 60.0, 600.0)

    # To audio rate: pitch constant within a hop (phase stays continuous), envelope linear.
    frac = np.arange(hop, dtype=np.float32) / hop  # (hop,)
    step = f0[:-1] * (hop / sr)  # cycles per hop
    start_phase = (rng.random() + np.cumsum(step) - step) % 1.0
    phase = step.astype(np.float32)[:, None] * frac  # (m - 1, hop)
    phase += start_phase.astype(np.float32)[:, None]
    phase -= np.floor(phase) + 0.5
    source = phase.ravel()[:n]  # zero-mean sawtooth: glottal pulses
    source += breath * _noise(rng, n)
    gate = np.diff(env).astype(np.float32)[:, None] * frac  # (m - 1, hop)
    gate += env[:-1, None].astype(np.float32)
    source *= gate.ravel()[:n]

    # Source-filter: lip radiation (a zero at DC) with a tension-dependent tilt (one pole in [0.5, 1)),
    # then the speaker's formant resonators, as second-order sections.
    sections = [[1.0, -1.0, 0.0, 1.0, -(0.8 - 0.2 * tension), 0.0]]
    for centre, width in zip(who.formants, who.bandwidths):
        r = math.exp(-math.pi * width / sr)
        sections.append([1.0, 0.0, 0.0, 1.0, -2.0 * r * math.cos(2 * math.pi * centre / sr), r * r])
    speech = scipy.signal.sosfilt(np.array(sections, dtype=np.float32), source)  # (n,) float32

    rms = math.sqrt(float(np.mean(np.square(speech)))) + 1e-12
    target = 0.045 * 10.0 ** ((energy_db + who.gain_db + rng.uniform(-1.5, 1.5)) / 20.0)  # RMS; peaks stay below 1
    snr = rng.uniform(*config.audio_snr_db)
    speech *= target / rms
    speech += _noise(rng, n) * np.float32(target * 10.0 ** (-snr / 20.0))
    return np.clip(speech, -1.0, 1.0, out=speech)


@functools.cache
def _noise_bank() -> np.ndarray:
    """A fixed table of Gaussian noise; slicing it is far cheaper than drawing fresh noise."""
    return np.random.default_rng(0x5EED).standard_normal(1 << 18).astype(np.float32)


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` samples of unit Gaussian noise: a random stretch of the bank, randomly signed."""
    bank = _noise_bank()
    if n > bank.size // 2:
        return rng.standard_normal(n, dtype=np.float32)
    offset = int(rng.integers(bank.size - n))
    return bank[offset : offset + n] * np.float32(1.0 if rng.random() < 0.5 else -1.0)


# ---------------------------------------------------------------------------------------------
# Text

_WHO = ("my boss", "my brother", "the landlord", "my neighbour", "the teacher", "my sister", "the airline", "my mum")
_WHAT = ("the project", "the trip", "dinner", "the results", "the interview", "the weekend", "the party", "the flat")
_WHEN = ("today", "this morning", "last night", "again", "yesterday", "at work", "on the phone", "after lunch")
_OPENERS = ("", "", "", "Well, ", "So, ", "Honestly, ", "You know, ", "Um, ", "Listen, ", "Okay, ")
_HEDGES = ("I guess ", "Maybe it's just me, but ", "Kind of weird, but ", "To be fair, ", "I suppose ")
_INTENSIFIERS = ("really ", "so ", "absolutely ", "completely ")

# Per emotion: templates, then mild and strong words for the {adj} slot.
_TEXT = {
    "angry": (
        (
            "I can't believe {who} did that to me {when}",
            "I am {very}{adj} about {what}",
            "{who} ruined {what} and I am {adj}",
            "Don't you dare talk to me like that again",
            "Stop lying to me about {what}, I've had enough",
            "This is {very}unfair, {who} never listens and I'm {adj}",
        ),
        ("annoyed", "irritated", "frustrated", "cross"),
        ("furious", "livid", "enraged", "angry", "mad"),
    ),
    "disgust": (
        (
            "That is {very}{adj}",
            "{what} smelled {very}{adj}",
            "Ugh, I feel sick just looking at {what}",
            "{who} left rotten food everywhere {when}, {adj}",
            "Nobody can eat that, it's {adj}",
            "{who} served something {adj} at {what}",
        ),
        ("gross", "unpleasant", "nasty", "icky"),
        ("disgusting", "revolting", "repulsive", "vile", "nauseating"),
    ),
    "fear": (
        (
            "I'm {very}{adj} that something bad will happen",
            "Someone was following me {when}",
            "Please don't leave me alone in the dark",
            "I heard a noise downstairs and I'm {adj}",
            "What if {who} finds out about {what}?",
            "My hands are shaking, I'm {adj}",
        ),
        ("nervous", "uneasy", "worried", "tense"),
        ("terrified", "scared", "afraid", "panicking", "frightened"),
    ),
    "happy": (
        (
            "I'm {very}{adj} about {what}",
            "{what} went {very}well, I love it",
            "We won, this is the best day ever",
            "Thank you so much, this made my day",
            "{who} gave me a gift {when} and I'm {adj}",
            "I can't stop smiling since {what}",
        ),
        ("glad", "pleased", "content", "cheerful"),
        ("thrilled", "delighted", "overjoyed", "happy", "excited"),
    ),
    "neutral": (
        (
            "{what} is scheduled for next week",
            "I'll send you the notes about {what} later",
            "{who} said the report is ready",
            "Nothing special happened {when}",
            "We can talk about {what} tomorrow",
            "The bus arrives at eight",
        ),
        ("",),
        ("",),
    ),
    "sad": (
        (
            "I miss {who} so much",
            "I feel {very}{adj} since {what} ended",
            "Nobody came to {what}",
            "I lost my job and I'm {adj}",
            "I've been crying {when}",
            "Everything feels empty without {who}",
        ),
        ("down", "blue", "disappointed", "low"),
        ("heartbroken", "miserable", "devastated", "sad", "depressed"),
    ),
    "surprise": (
        (
            "Wow, I did not expect {what} at all",
            "No way, {who} actually came {when}",
            "What? {what} is already finished",
            "I'm {very}{adj} that {who} said yes",
            "Really? You're kidding me",
            "Whoa, that came out of nowhere",
        ),
        ("surprised", "puzzled", "taken aback", "curious"),
        ("amazed", "astonished", "shocked", "stunned", "speechless"),
    ),
}
# Sentences shared by a text-confusable pair; which member said it is not in the words.
_SHARED = {
    frozenset(("sad", "fear")): (
        "I can't stop thinking about what happened",
        "I don't know what I'm going to do now",
        "I couldn't sleep at all last night",
        "I just want someone to be here with me",
        "Everything feels so uncertain lately",
        "I keep getting this heavy feeling in my chest",
        "I don't want to be alone tonight",
    ),
    frozenset(("surprise", "neutral")): (
        "Oh, so the meeting is on Tuesday now",
        "They moved the office to the third floor",
        "Huh, the store closes at six today",
        "So that's how it works",
        "I see, the package came early",
        "Wait, the train leaves from platform two",
        "Oh, {who} is coming {when}",
    ),
    frozenset(("angry", "disgust")): (
        "I can't stand it anymore",
        "That is just unacceptable",
        "I don't even want to look at {who}",
    ),
}
_PARTNER = {member: other for pair in _SHARED for member, other in (tuple(pair), tuple(pair)[::-1])}
_WEAK_PAIR = frozenset(("angry", "disgust"))  # shares sentences at a third of the rate of the others
_GENERIC = (
    "Okay, I'll send the file later",
    "We met at the station around noon",
    "The meeting is on Thursday",
    "I had a sandwich for lunch",
    "{who} called {when} about {what}",
    "Let me check the calendar first",
    "It's about twenty minutes by bus",
    "I read the email {when}",
)
# Negated words of the opposite tone: more noise for a bag of words.
_NEGATIONS = {
    "angry": "and I'm not happy about it",
    "disgust": "and it's not nice at all",
    "sad": "and I'm not okay",
    "fear": "and I'm not calm at all",
    "happy": "and I'm not worried anymore",
}


def _render_text(rng: np.random.Generator, emotion: str | None, intensity: float, config: SyntheticConfig) -> str:
    """A sentence expressing ``emotion`` at ``intensity``; a generic statement when ``emotion`` is None."""

    def pick(options: tuple[str, ...]) -> str:
        return options[int(rng.integers(len(options)))]

    slots = {"who": pick(_WHO), "what": pick(_WHAT), "when": pick(_WHEN)}
    if emotion is None:
        return _sentence(pick(_OPENERS), pick(_GENERIC).format(**slots), ".")
    pair = frozenset((emotion, _PARTNER.get(emotion)))
    if pair in _SHARED and rng.random() < config.text_ambiguity * (0.35 if pair == _WEAK_PAIR else 1.0):
        return _sentence(pick(_OPENERS), pick(_SHARED[pair]).format(**slots), ".")

    templates, mild, strong = _TEXT[emotion]
    strong_word = rng.random() < intensity
    slots["adj"] = pick(strong if strong_word else mild)
    slots["very"] = pick(_INTENSIFIERS) if rng.random() < intensity - 0.4 else ""
    template = pick(templates)
    core = template.format(**slots)
    hedge = "{adj}" in template and intensity < 0.55 and rng.random() < 0.5  # only feelings get hedged
    opener = pick(_HEDGES) if hedge else pick(_OPENERS)
    if emotion in _NEGATIONS and rng.random() < 0.15:
        core = f"{core} {_NEGATIONS[emotion]}"
    exclaim = emotion != "neutral" and rng.random() < intensity - 0.5
    return _sentence(opener, core, "!" if exclaim else ".")


def _sentence(opener: str, core: str, end: str) -> str:
    """Join an opener and a core clause, fix capitals, end with punctuation."""
    if any(word[-1] in ",?" for word in core.split(" ", 2)[:2]):  # starts with an interjection
        opener = ""
    if opener and not core.startswith("I ") and not core.startswith("I'"):
        core = core[0].lower() + core[1:]
    text = opener + core
    text = text[0].upper() + text[1:]
    return text if text[-1] in "?!." else text + end


def speech_like(seconds: float, rate: int = 16_000, seed: int = 0) -> np.ndarray:
    """A voiced, syllable-modulated harmonic signal with a gliding pitch, plus a little noise: a
    stand-in voice for benchmarks that needs no corpus."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    pitch = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = np.clip(np.sin(2 * np.pi * 3.5 * t), 0, None) ** 0.5
    return (0.2 * voice * envelope + 0.005 * rng.standard_normal(len(t))).astype(np.float32)
