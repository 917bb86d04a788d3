"""Write a :class:`~bridge.data.sample.Sample` out as ordinary files (face PNG, voice WAV, text),
for demos and tests of the raw-file path of ``infer.py``."""

from __future__ import annotations

import wave
from pathlib import Path

import cv2
import numpy as np

from bridge.data.sample import Sample


def export_sample(sample: Sample, directory: str | Path) -> dict[str, Path]:
    """Write the sample's modalities to ``directory``; returns ``{"image"|"audio"|"text": path}``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    if sample.face is not None:
        paths["image"] = directory / "face.png"
        frame = sample.face[0]
        cv2.imwrite(str(paths["image"]), frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    if sample.audio is not None:
        paths["audio"] = directory / "voice.wav"
        with wave.open(str(paths["audio"]), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(sample.sample_rate)
            w.writeframes((np.clip(sample.audio, -1, 1) * 32767).astype("<i2").tobytes())
    if sample.text is not None:
        paths["text"] = directory / "text.txt"
        paths["text"].write_text(sample.text, encoding="utf-8")
    return paths


def main(argv: list[str] | None = None) -> int:
    """``python -m bridge.data.export DIR [--index I]``: a synthetic test sample as files."""
    import argparse

    from bridge.data.synthetic import SyntheticEmotions
    from bridge.modality import EMOTIONS

    p = argparse.ArgumentParser(prog="python -m bridge.data.export", description=main.__doc__)
    p.add_argument("directory")
    p.add_argument("--index", type=int, default=0)
    args = p.parse_args(argv)
    sample = SyntheticEmotions(args.index + 1, split="test", seed=0)[args.index]
    paths = export_sample(sample, args.directory)
    print(f"synthetic test sample {args.index} (true emotion: {EMOTIONS[sample.label]}): "
          + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
