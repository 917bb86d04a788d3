"""The face detectors bridge offers, by name, in a module light enough for the scripts' argument
parsers (no torch or OpenCV import); :mod:`bridge.media.detectors` implements them."""

from __future__ import annotations

from typing import Literal

DetectorName = Literal["blazeface", "blazeface-short", "mtcnn", "haar"]
DETECTORS: tuple[str, ...] = ("blazeface", "blazeface-short", "mtcnn", "haar")
DEFAULT_DETECTOR: DetectorName = "blazeface"  # full-range BlazeFace: chosen by benchmarks/faces.py (docs/faces.md)
