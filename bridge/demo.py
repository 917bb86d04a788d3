"""``python -m bridge.demo``: a model on real inputs that need no corpus (the end of ``make demo``).

    python -m bridge.demo                         # the shipped model
    python -m bridge.demo --checkpoint DIR        # any checkpoint with raw face, voice or text
    python -m bridge.demo --output demo-inputs/   # keep the inputs it writes

It writes a real photo (scikit-image's astronaut), a sentence, and a 3 s video of the photo
drifting across a 640x480 frame whose sound track is the sentence spoken by espeak-ng (when it
is installed; else the clip is silent), then predicts from the photo, the sentence, the clip,
and the clip with the sentence, and prints for each the emotion, its probability, and which
modalities were observed and which reconstructed by translation.

``--if-shipped``: without ``--checkpoint`` and with no shipped model in this copy of bridge, say
so and how to build it, and exit 0 (``make demo`` uses it); otherwise that is an error (exit 2).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SENTENCE = "I can't believe it, we actually won the whole thing!"
RATE = 16_000
SPOKEN, SILENT = "clip (frames + speech)", "clip (frames, silent)"
NO_SPEECH = "espeak-ng is not installed, so the clip is silent (apt-get install espeak-ng to give it a voice)"


def write_inputs(folder: Path, seconds: float = 3.0, fps: int = 10) -> dict[str, Path]:
    """The demo's photo (``photo.png``), sentence (``sentence.txt``) and clip (``clip.mp4``) in ``folder``."""
    import cv2
    import numpy as np
    from skimage.data import astronaut

    from bridge.media import write_video

    folder.mkdir(parents=True, exist_ok=True)
    photo = astronaut()  # (512, 512, 3) RGB, a real photo with a face
    cv2.imwrite(str(folder / "photo.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    (folder / "sentence.txt").write_text(SENTENCE + "\n", encoding="utf-8")
    face = cv2.resize(photo, (360, 360), interpolation=cv2.INTER_AREA)
    frames = []
    for k in range(int(seconds * fps)):
        frame = np.full((480, 640, 3), 96, np.uint8)
        x = int(40 + 200 * k / max(int(seconds * fps) - 1, 1))  # the face drifts left to right
        frame[60:420, x:x + 360] = face
        frames.append(frame)
    write_video(folder / "clip.mp4", np.stack(frames), fps=fps, audio=_speech(SENTENCE, seconds), sample_rate=RATE)
    return {"photo": folder / "photo.png", "sentence": folder / "sentence.txt", "clip": folder / "clip.mp4"}


def _speech(text: str, seconds: float):
    """``text`` spoken by espeak-ng at 16 kHz, cut or padded to ``seconds``; None without espeak-ng."""
    import numpy as np

    from bridge.media import load_audio

    if shutil.which("espeak-ng") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, capture_output=True)
        voice = load_audio(wav, RATE)
    out = np.zeros(int(seconds * RATE), np.float32)
    out[:min(len(voice), len(out))] = voice[:len(out)]
    return out


def run(checkpoint: str | None, folder: Path) -> list[dict]:
    """Predict from each demo input; returns one row per prediction."""
    from bridge.inference.predictor import Predictor

    predictor = Predictor.from_pretrained(checkpoint)
    files = write_inputs(folder)
    text = files["sentence"].read_text(encoding="utf-8").strip()
    have = {m.value for m in predictor.config.modalities}
    clip = SPOKEN if shutil.which("espeak-ng") else SILENT
    asks = [("photo", {"image": files["photo"]}, "face"), ("sentence", {"text": text}, "text"),
            (clip, {"video": files["clip"]}, "face"),
            ("clip + sentence", {"video": files["clip"], "text": text}, "face")]
    rows = []
    for name, inputs, needs in asks:
        if needs not in have:
            continue
        p = predictor.predict(**inputs)
        rows.append({"input": name, "label": p.label, "probability": p.probabilities[p.label],
                     "observed": p.observed, "reconstructed": p.reconstructed, "notes": p.notes})
    return rows


def print_rows(rows: list[dict], source: str) -> None:
    print(f"\nbridge demo: {source}")
    print(f"{'input':<24} {'emotion':<9} {'p':>5}  {'observed':<18} reconstructed")
    for r in rows:
        print(f"{r['input']:<24} {r['label']:<9} {r['probability']:>5.2f}  {'+'.join(r['observed']) or '-':<18} "
              f"{'+'.join(r['reconstructed']) or '-'}")
        for note in r["notes"]:
            print(f"{'':<24} note: {note}")
    if any(r["input"] == SILENT for r in rows):
        print(f"\n{NO_SPEECH}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bridge.demo", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=None, help="a checkpoint directory (default: the shipped model)")
    p.add_argument("--output", default=None, help="folder for the inputs it writes (default: a temporary one)")
    p.add_argument("--if-shipped", action="store_true",
                   help="without --checkpoint and no shipped model: say so and exit 0")
    args = p.parse_args(argv)
    from bridge.cli import run_cli

    def body() -> int:
        from bridge.release import ReleaseError, locate

        if args.checkpoint is None:
            try:
                locate(None)
            except ReleaseError as e:
                if not args.if_shipped:
                    raise
                print(f"bridge demo: skipped: {e}")
                return 0
        with tempfile.TemporaryDirectory(prefix="bridge-demo-") as tmp:
            folder = Path(args.output) if args.output else Path(tmp)
            rows = run(args.checkpoint, folder)
        print_rows(rows, f"checkpoint {args.checkpoint}" if args.checkpoint else "the shipped model")
        return 0

    return run_cli("bridge.demo", body)


if __name__ == "__main__":
    sys.exit(main())
