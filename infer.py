"""Predict the emotion from any subset of a face (image or video), a voice and a text.

    python infer.py --checkpoint checkpoints/synthetic-tiny --image face.png --audio voice.wav --text "I made it!"
    python infer.py --checkpoint DIR --video clip.mp4 --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bridge.cli import run_cli


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="infer.py", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="checkpoint directory written by train.py")
    p.add_argument("--image", help="photo with a face (the largest face is used)")
    p.add_argument("--video", help="video: face frames, and its sound track unless --audio is given")
    p.add_argument("--audio", help="speech recording (wav, flac, mp3, ...)")
    p.add_argument("--text", help="transcript or message; @FILE reads it from a file")
    p.add_argument("--no-face-detection", action="store_true",
                   help="the image or video frames are already face crops (as FER-2013 images are)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--output", help="also write the JSON result to this file")
    p.add_argument("--device", default="cpu")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_cli("infer.py", lambda: _infer(args))


def _read_text(value: str | None) -> str | None:
    if value is None or not value.startswith("@"):
        return value
    path = Path(value[1:])
    if not path.is_file():
        raise FileNotFoundError(f"text file {path} does not exist")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"text file {path} is not valid UTF-8") from None


def render(prediction, width: int = 30) -> str:
    lines = [f"emotion: {prediction.label}"]
    for name, p in sorted(prediction.probabilities.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {name:<10} {p:6.1%}  {'#' * round(p * width)}")
    lines.append(f"observed: {', '.join(prediction.observed) or 'none'}")
    lines.append(f"reconstructed: {', '.join(prediction.reconstructed) or 'none'}")
    if prediction.face_frames:
        lines.append(f"face found in {prediction.face_frames['with_face']} of {prediction.face_frames['searched']} frames")
    lines += [f"note: {n}, so it was reconstructed from the other modalities" for n in prediction.notes]
    return "\n".join(lines)


def _infer(args: argparse.Namespace) -> int:
    from bridge.checkpoint import atomic_write_text
    from bridge.predictor import Predictor

    for flag in ("image", "video", "audio"):
        path = getattr(args, flag)
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"--{flag} {path} does not exist")
    text = _read_text(args.text)
    if not any(v is not None for v in (args.image, args.video, args.audio, text)):
        raise ValueError("no input given: pass at least one of --image, --video, --audio, --text")
    predictor = Predictor.from_pretrained(args.checkpoint, args.device, detect_faces=not args.no_face_detection)
    prediction = predictor.predict(image=args.image, audio=args.audio, text=text, video=args.video)
    payload = json.dumps(prediction.to_dict(), indent=2)
    if args.output:
        atomic_write_text(Path(args.output), payload + "\n")
    print(payload if args.json else render(prediction))
    return 0


if __name__ == "__main__":
    sys.exit(main())
