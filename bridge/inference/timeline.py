"""Emotion over time: sliding windows over a video, smoothing over time, and the timeline as CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal


@dataclass
class TimelineRow:
    """One window's prediction.

    Args:
        start, end: the window in seconds from the start of the video.
        label: the most probable class; None when the window had no usable input.
        probabilities: class name -> probability (empty when ``label`` is None).
        observed: modalities found in the window and used.
        reconstructed: the model's other modalities, rebuilt by translation.
        face_frames: frames of the window searched for a face and frames with one (when faces
            were detected).
        notes: why an input of the window was not used (e.g. its sound is silent).
    """

    start: float
    end: float
    label: str | None
    probabilities: dict[str, float]
    observed: list[str]
    reconstructed: list[str]
    face_frames: dict[str, int] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def window_starts(duration: float, window: float, hop: float) -> list[float]:
    """Start times of the windows ``[s, s + window)`` that fit in ``duration`` seconds, ``hop`` apart.

    Raises:
        ValueError: a non-positive window or hop, or a window longer than the video.
    """
    if not window > 0 or not hop > 0:
        raise ValueError(f"--window and --hop must be positive seconds, got window={window:g}, hop={hop:g}")
    tolerance = 0.05  # container durations are rounded to a frame or an audio packet
    if window > duration + tolerance:
        raise ValueError(f"--window {window:g} s is longer than the video ({duration:.2f} s)")
    count = int((max(duration - window, 0.0) + tolerance) // hop) + 1
    return [round(i * hop, 6) for i in range(count)]


def timeline_csv(rows: Sequence[TimelineRow], labels: Sequence[str]) -> str:
    """One line per window: start, end, label, observed, reconstructed, face frames, one column per class."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["start", "end", "label", "observed", "reconstructed", "face_frames_searched",
                     "face_frames_with_face", *labels])
    for r in rows:
        faces = r.face_frames or {}
        writer.writerow([f"{r.start:.3f}", f"{r.end:.3f}", r.label or "", "+".join(r.observed),
                         "+".join(r.reconstructed), faces.get("searched", ""), faces.get("with_face", ""),
                         *(f"{r.probabilities[n]:.6f}" if n in r.probabilities else "" for n in labels)])
    return out.getvalue()


def timeline_json(rows: Sequence[TimelineRow], labels: Sequence[str], window: float, hop: float) -> str:
    """``{"labels", "window", "hop", "timeline": [row, ...]}`` as indented JSON."""
    return json.dumps({"labels": list(labels), "window": window, "hop": hop,
                       "timeline": [r.to_dict() for r in rows]}, indent=2)


@dataclass(frozen=True)
class Smoothing:
    """Smoothing of predictions over time (timeline windows, live updates).

    Args:
        kind: ``none``; ``ema``: exponential moving average of the probabilities; ``window``:
            the mean of the last few predictions.
        amount: ``ema``: weight of the newest prediction in (0, 1]; ``window``: how many predictions.
    """

    kind: Literal["none", "ema", "window"] = "none"
    amount: float = 1.0

    @classmethod
    def parse(cls, spec: str | None) -> "Smoothing":
        """``none``, ``ema:ALPHA`` (0 < ALPHA <= 1) or ``window:N`` (N >= 1).

        Raises:
            ValueError: any other spelling.
        """
        if spec is None or spec == "none":
            return cls()
        kind, _, value = spec.partition(":")
        try:
            amount = float(value)
        except ValueError:
            amount = float("nan")
        if kind == "ema" and 0 < amount <= 1:
            return cls("ema", amount)
        if kind == "window" and amount >= 1 and amount == int(amount):
            return cls("window", int(amount))
        raise ValueError(f"--smooth {spec!r}: give none, ema:ALPHA with 0 < ALPHA <= 1, or window:N with N >= 1")


class Smoother:
    """Feeds predictions through a :class:`Smoothing`, one at a time, in order."""

    def __init__(self, smoothing: Smoothing):
        self.smoothing = smoothing
        self._ema: dict[str, float] | None = None
        self._window: deque[dict[str, float]] = deque(maxlen=max(int(smoothing.amount), 1))

    def __call__(self, probabilities: dict[str, float]) -> dict[str, float]:
        s = self.smoothing
        if s.kind == "ema":
            if self._ema is None:
                self._ema = dict(probabilities)
            else:
                self._ema = {k: s.amount * p + (1 - s.amount) * self._ema[k] for k, p in probabilities.items()}
            return dict(self._ema)
        if s.kind == "window":
            self._window.append(dict(probabilities))
            return {k: sum(w[k] for w in self._window) / len(self._window) for k in probabilities}
        return dict(probabilities)


def smooth_rows(rows: Sequence[TimelineRow], smoothing: Smoothing) -> list[TimelineRow]:
    """The timeline with each window's probabilities smoothed over the windows before it (and its
    label the smoothed top class); windows without a prediction stay empty and are skipped."""
    smoother = Smoother(smoothing)
    out = []
    for r in rows:
        if r.label is None or smoothing.kind == "none":
            out.append(r)
            continue
        probs = smoother(r.probabilities)
        out.append(replace(r, probabilities=probs, label=max(probs, key=probs.get)))
    return out
