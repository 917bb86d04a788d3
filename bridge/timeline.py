"""Emotion over time: sliding windows over a video, and the timeline as CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


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
