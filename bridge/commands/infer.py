"""Predict the emotion from any subset of a face (image or video), a voice and a text.

    python infer.py --checkpoint checkpoints/synthetic-tiny --image face.png --audio voice.wav --text "I made it!"
    python infer.py --checkpoint DIR --video clip.mp4 --json
    python infer.py --checkpoint DIR --video clip.mp4 --window 2 --hop 1 --timeline-dir out/
    python infer.py --checkpoint DIR --webcam 0                      # live, in a window
    python infer.py --checkpoint DIR --webcam clip.mp4 --save-video annotated.mp4   # headless
    python infer.py --checkpoint DIR --webcam 0 --listen             # + the microphone (audio modality)
    python infer.py --checkpoint DIR --webcam clip.mp4 --listen --save-video annotated.mp4   # + its sound track
    python infer.py --checkpoint DIR --batch media/ --output predictions.csv   # + predictions.jsonl
    python infer.py --checkpoint DIR --batch manifest.csv --json                # JSON lines on stdout
    python infer.py --checkpoint DIR1 DIR2 DIR3 --image face.png --no-face-detection  # an ensemble
    python infer.py --serve                                          # web app + HTTP API on http://127.0.0.1:8000
    python infer.py --serve --checkpoint DIR --port 8080 --max-upload-mb 20 --max-seconds 60

The fields of ``--json`` (a prediction with its per-modality explanation, or a timeline) are
documented in docs/infer-json.md, as are the CSV and JSON lines of ``--batch``. ``--serve`` is
documented in docs/serve.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bridge.cli import EXIT_BAD_INPUT, EXIT_INTERRUPTED, check_writable, run_cli
from bridge.detector_names import DEFAULT_DETECTOR, DETECTORS
from bridge.views import TEST_VIEWS


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="infer.py", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=None, nargs="+",
                   help="checkpoint directory written by train.py, or a shipped release's name (default: the shipped "
                        "model, emotion7); several: an ensemble (their probabilities averaged)")
    p.add_argument("--image", help="photo with a face (the largest face is used)")
    p.add_argument("--video", help="video: face frames, and its sound track unless --audio is given")
    p.add_argument("--audio", help="speech recording (wav, flac, mp3, ...)")
    p.add_argument("--text", help="transcript or message; @FILE reads it from a file, @@ starts a literal '@'")
    p.add_argument("--text-file", metavar="FILE", help="read the transcript or message from this UTF-8 file")
    p.add_argument("--no-face-detection", action="store_true",
                   help="the image or video frames are already face crops (as FER-2013 images are)")
    p.add_argument("--face-detector", default=None, choices=DETECTORS,
                   help="face detector (docs/faces.md): blazeface (full range), blazeface-short, mtcnn, haar "
                        f"(default: the one that realigned the model's training crops, else {DEFAULT_DETECTOR})")
    p.add_argument("--face-index", type=int, default=0,
                   help="with several faces: 0 uses the largest, 1 the next largest, ...; a video follows that person")
    p.add_argument("--smooth", default="none", metavar="none|ema:ALPHA|window:N",
                   help="smooth predictions over time (timeline windows, --webcam updates): an exponential moving "
                        "average with weight ALPHA for the newest, or the mean of the last N")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON (docs/infer-json.md)")
    p.add_argument("--output", help="also write the JSON result to this file")
    p.add_argument("--window", type=float, help="with --video: a timeline of windows this many seconds long")
    p.add_argument("--hop", type=float, help="seconds between timeline windows (default: half the window)")
    p.add_argument("--timeline-dir", help="write timeline.csv, timeline.json and timeline.png here")
    p.add_argument("--webcam", nargs="?", const="0", metavar="INDEX|VIDEO",
                   help="live predictions on a camera (index, default 0) or a video file; q quits")
    p.add_argument("--every", type=int, default=10, help="with --webcam: predict every N frames")
    p.add_argument("--detect-every", type=int, default=1,
                   help="with --webcam: detect the face every N frames and hold its box between (1: every frame)")
    p.add_argument("--save-video", help="with --webcam: run headless and write the annotated video here")
    p.add_argument("--listen", nargs="?", const="default", metavar="DEVICE",
                   help="with --webcam: also predict from sound: the microphone for a camera (DEVICE: a sounddevice "
                        "input index or name; default input if omitted), or a video file's own sound track "
                        "(no DEVICE); needs sounddevice and, on Linux, PortAudio (libportaudio2)")
    p.add_argument("--batch", metavar="DIR_OR_MANIFEST",
                   help="one prediction per item of a folder (files sharing a stem form one item; .txt is text) "
                        "or a manifest .csv/.jsonl; a bad item gets an error instead of stopping the run")
    p.add_argument("--max-seconds", type=float,
                   help="refuse audio or sound tracks longer than this, before decoding (0: no limit; default 600, "
                        "with --serve 120 and videos too)")
    p.add_argument("--serve", action="store_true",
                   help="run the local web app (live camera and microphone, uploads) and HTTP API (docs/serve.md)")
    p.add_argument("--host", help="with --serve: address to bind (default 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, help="with --serve: port (default 8000)")
    p.add_argument("--max-upload-mb", type=float, help="with --serve: refuse larger requests (default 50)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--test-views", default="checkpoint", choices=["checkpoint", *TEST_VIEWS],
                   help="faces averaged over test-time views: single crops, with their mirror image, or ten crops "
                        "(five zoomed crops and their mirrors; docs/inference.md); checkpoint: as the run recorded")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_cli("infer.py", lambda: _infer(args))


def _read_text(value: str | None, file: str | None = None) -> str | None:
    """``--text`` (``@FILE`` reads a file, ``@@...`` is a literal ``@...``) or ``--text-file``."""
    if file is not None:
        if value is not None:
            raise ValueError("give --text or --text-file, not both")
        return read_text_file(file, "--text-file")
    if value is None or not value.startswith("@"):
        return value
    if value.startswith("@@"):
        return value[1:]
    return read_text_file(value[1:], "text file")


def read_text_file(name: str, flag: str) -> str:
    """A UTF-8 text file (a byte-order mark is dropped), with one-line errors naming it."""
    path = Path(name)
    if path.is_dir():
        raise IsADirectoryError(f"{flag} {path} is a folder, not a file")
    if not path.is_file():
        raise FileNotFoundError(f"{flag} {path} does not exist")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{flag} {path} is not valid UTF-8") from None


def render(prediction, width: int = 30) -> str:
    lines = [f"emotion: {prediction.label}"]
    for name, p in sorted(prediction.probabilities.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {name:<10} {p:6.1%}  {'#' * round(p * width)}")
    lines.append(f"observed: {', '.join(prediction.observed) or 'none'}")
    lines.append(f"reconstructed: {', '.join(prediction.reconstructed) or 'none'}")
    if prediction.face_frames:
        lines.append(f"face found in {prediction.face_frames['with_face']} of {prediction.face_frames['searched']} frames")
    if prediction.explanation:
        lines.append("per modality (alone = that modality only; left out = change in the top class):")
        for name, e in prediction.explanation.items():
            alone = f"alone: {e.alone_label:<10} {e.alone_probabilities[e.alone_label]:6.1%}"
            left_out = "" if e.top_change_without is None else (
                f"   left out: {prediction.label} {100 * e.top_change_without:+.1f} points")
            lines.append(f"  {name:<8} {alone}{left_out}")
    lines += [f"note: {n}, so it was reconstructed from the other modalities" for n in prediction.notes]
    return "\n".join(lines)


def render_timeline(rows, window: float, hop: float) -> str:
    lines = [f"timeline: {len(rows)} windows of {window:g} s, {hop:g} s apart",
             f"  {'start':>7} {'end':>7}  {'emotion':<10} {'p':>6}  {'observed':<18} face frames"]
    for r in rows:
        p = f"{r.probabilities[r.label]:6.1%}" if r.label else f"{'-':>6}"
        faces = f"{r.face_frames['with_face']}/{r.face_frames['searched']}" if r.face_frames else "-"
        lines.append(f"  {r.start:7.2f} {r.end:7.2f}  {r.label or '-':<10} {p}  {'+'.join(r.observed) or '-':<18} {faces}")
    return "\n".join(lines)


def _check_modes(args: argparse.Namespace) -> None:
    """Flags that only make sense together, and outputs that cannot be written, checked before anything is loaded."""
    if args.max_seconds is not None and args.max_seconds < 0:
        raise ValueError(f"--max-seconds must be at least 0 (0: no limit), got {args.max_seconds:g}")
    if args.every < 1:
        raise ValueError(f"--every must be at least 1, got {args.every}")
    serve_flags = ("host", "port", "max_upload_mb")
    if args.serve:
        for flag in ("image", "video", "audio", "text", "text_file", "json", "output", "window", "hop",
                     "timeline_dir", "webcam", "save_video", "listen", "batch"):
            if getattr(args, flag) not in (None, False):
                raise ValueError(f"--{flag.replace('_', '-')} cannot be used with --serve (the page and the API take "
                                 "the inputs)")
        return
    for flag in serve_flags:
        if getattr(args, flag) is not None:
            raise ValueError(f"--{flag.replace('_', '-')} needs --serve")
    for flag in ("output", "save_video"):
        if getattr(args, flag) is not None:
            check_writable(getattr(args, flag), f"--{flag.replace('_', '-')}", directory=False)
    if args.timeline_dir is not None:
        check_writable(args.timeline_dir, "--timeline-dir")
    if args.batch is not None:
        for flag in ("image", "video", "audio", "text", "text_file", "window", "hop", "timeline_dir", "webcam", "save_video",
                     "listen"):
            if getattr(args, flag) is not None:
                raise ValueError(f"--{flag.replace('_', '-')} cannot be used with --batch (give inputs in the folder "
                                 "or manifest)")
        return
    if args.webcam is not None:
        for flag in ("image", "video", "audio", "window", "output", "timeline_dir"):
            if getattr(args, flag) is not None:
                raise ValueError(f"--{flag.replace('_', '-')} cannot be used with --webcam")
        if args.listen not in (None, "default") and not args.webcam.isdigit():
            raise ValueError(f"--listen {args.listen}: a video file plays its own sound track; give --listen alone")
    else:
        for flag in ("save_video", "listen"):
            if getattr(args, flag) is not None:
                raise ValueError(f"--{flag.replace('_', '-')} needs --webcam")
    if args.window is None:
        for flag in ("hop", "timeline_dir"):
            if getattr(args, flag) is not None:
                raise ValueError(f"--{flag.replace('_', '-')} needs --window")
        return
    if args.video is None:
        raise ValueError("--window needs --video")
    if args.image is not None or args.audio is not None:
        raise ValueError("a timeline uses the video's frames and sound track: drop --image and --audio")
    hop = args.window / 2 if args.hop is None else args.hop
    if not args.window > 0 or not hop > 0:
        raise ValueError(f"--window and --hop must be positive seconds, got window={args.window:g}, hop={hop:g}")


def load_predictor(args: argparse.Namespace, detect_faces: bool | None = None):
    """The checkpoint's :class:`~bridge.inference.predictor.Predictor` with the command line's settings."""
    from bridge.inference.predictor import Predictor

    detect = not args.no_face_detection if detect_faces is None else detect_faces
    max_seconds = args.max_seconds if args.max_seconds is not None else SERVE_MAX_SECONDS if args.serve else 600.0
    return Predictor.from_pretrained(args.checkpoint, args.device, detect_faces=detect,
                                     max_seconds=max_seconds or None,
                                     test_views=None if args.test_views == "checkpoint" else args.test_views,
                                     face_detector=args.face_detector, face_index=args.face_index)


def _infer(args: argparse.Namespace) -> int:
    from bridge.inference.timeline import Smoothing

    _check_modes(args)  # flags are checked before torch is imported
    if args.face_index < 0:
        raise ValueError(f"--face-index must be >= 0 (0: the largest face), got {args.face_index}")
    smoothing = Smoothing.parse(args.smooth)
    if smoothing.kind != "none" and args.window is None and args.webcam is None:
        raise ValueError("--smooth needs --window (a timeline) or --webcam")
    if args.serve:
        return _serve(args)
    for flag in ("image", "video", "audio"):
        path = getattr(args, flag)
        if path is not None and Path(path).is_dir():
            raise IsADirectoryError(f"--{flag} {path} is a folder, not a file (for a folder of inputs use --batch)")
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"--{flag} {path} does not exist")
    text = _read_text(args.text, args.text_file)
    if args.batch is not None:
        return _batch(args)
    if args.webcam is not None:
        return _live(args, text)
    if args.window is not None:
        return _timeline(args, text)
    if not any(v is not None for v in (args.image, args.video, args.audio, text)):
        raise ValueError("no input given: pass at least one of --image, --video, --audio, --text")
    from bridge.checkpoint import atomic_write_text

    predictor = load_predictor(args)
    prediction = predictor.predict(image=args.image, audio=args.audio, text=text, video=args.video)
    payload = json.dumps(prediction.to_dict(), indent=2)
    if args.output:
        atomic_write_text(Path(args.output), payload + "\n")
    print(payload if args.json else render(prediction))
    return 0


def _timeline(args: argparse.Namespace, text: str | None) -> int:
    from bridge.checkpoint import atomic_write_text
    from bridge.plots import plot_timeline
    from bridge.inference.timeline import Smoothing, smooth_rows, timeline_csv, timeline_json

    from bridge.inference.predictor import TimelineInterrupted

    hop = args.window / 2 if args.hop is None else args.hop
    from bridge.inference.predictor import _video_duration
    from bridge.inference.timeline import window_starts

    windows = len(window_starts(_video_duration(args.video), args.window, hop))  # bad input fails before the notice
    predictor = load_predictor(args)
    print(f"infer.py: timeline of {args.video}, {windows} windows (Ctrl-C stops it and writes the windows finished)",
          file=sys.stderr, flush=True)
    interrupted = None
    try:
        rows = predictor.timeline(args.video, args.window, hop, text=text)
    except TimelineInterrupted as e:  # Ctrl-C or SIGTERM: keep the windows finished
        rows, interrupted = e.rows, e
    rows = smooth_rows(rows, Smoothing.parse(args.smooth))
    labels = predictor.config.labels
    payload = timeline_json(rows, labels, args.window, hop)
    if args.timeline_dir:
        out = Path(args.timeline_dir)
        if rows:
            plot_timeline(rows, labels, out / "timeline.png", title=Path(args.video).name)
        atomic_write_text(out / "timeline.csv", timeline_csv(rows, labels))
        atomic_write_text(out / "timeline.json", payload + "\n")
    if args.output:
        atomic_write_text(Path(args.output), payload + "\n")
    print(payload if args.json else render_timeline(rows, args.window, hop))
    if interrupted is not None:
        print(f"infer.py: interrupted: {len(rows)} of {interrupted.total} windows finished and written", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not any(r.label for r in rows):
        print(f"infer.py: error: no window of {args.video} had an input to predict from (no face found, no sound "
              "track, no text)", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def _batch(args: argparse.Namespace) -> int:
    """One prediction per item; an item that fails gets its error in the output, the run goes on."""
    from tqdm import tqdm

    from bridge.checkpoint import atomic_write_text
    from bridge.inference.items import find_items

    items, ignored = find_items(args.batch)
    outputs = None
    if args.output:  # check the destination before the slow part
        outputs = batch_outputs(Path(args.output))
        for path in outputs:
            if path.parent.exists() and not path.parent.is_dir():
                raise NotADirectoryError(f"--output: {path.parent} is not a folder")
    predictor = load_predictor(args)
    records, interrupted = [], False
    try:
        for item in tqdm(items, desc="infer", unit="item", disable=None, file=sys.stderr):
            records.append(batch_record(predictor, item))
            if args.json:
                print(json.dumps(records[-1]), flush=True)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: write the items done
        interrupted = True
    failed = sum(r["error"] is not None for r in records)
    if outputs is not None:
        csv_path, jsonl_path = outputs
        atomic_write_text(csv_path, batch_csv(records, predictor.config.labels))
        atomic_write_text(jsonl_path, "".join(json.dumps(r) + "\n" for r in records))
    if not args.json:
        print(render_batch(records))
    summary = f"{len(records)} items, {failed} failed" + (f", {ignored} files ignored" if ignored else "")
    if interrupted:
        summary = (f"interrupted: {len(records)} of {len(items)} items predicted ({failed} failed), "
                   f"{len(items) - len(records)} not predicted")
    if outputs is not None:
        summary += f"; wrote {outputs[0]} and {outputs[1]}"
    print(summary, file=sys.stderr)
    return EXIT_INTERRUPTED if interrupted else 0


def batch_outputs(output: Path) -> tuple[Path, Path]:
    """The CSV and JSON lines files of ``--output`` (``x.csv`` or ``x.jsonl`` names both; else ``x.csv``, ``x.jsonl``)."""
    base = output.with_suffix("") if output.suffix.lower() in (".csv", ".jsonl", ".json") else output
    return base.with_name(base.name + ".csv"), base.with_name(base.name + ".jsonl")


def batch_record(predictor, item) -> dict:
    """The JSON line of one item (docs/infer-json.md): its inputs, a prediction, or its error."""
    inputs = {("text_file" if k == "text" else k): str(v) for k, v in item.files.items()}
    if item.text is not None:
        inputs["text"] = item.text
    record = {"id": item.id, "inputs": inputs, "error": item.problem, "label": None, "probabilities": {},
              "observed": [], "reconstructed": [], "notes": [], "face_frames": None, "explanation": {}}
    if item.problem is not None:
        return record
    try:
        files = item.files
        prediction = predictor.predict(image=files.get("image"), audio=files.get("audio"), video=files.get("video"),
                                       text=item.read_text())
    except (ValueError, OSError, RuntimeError) as e:  # InputError and MediaError are ValueErrors
        record["error"] = " ".join(str(e).split()) or type(e).__name__
        return record
    record.update(prediction.to_dict())
    return record


def batch_csv(records: list[dict], labels) -> str:
    """One CSV row per item: inputs, label, one probability column per class, error."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "image", "video", "audio", "text_file", "text", "label", *(f"p_{n}" for n in labels), "observed",
                     "reconstructed", "face_frames_searched", "face_frames_with_face", "notes", "error"])
    for r in records:
        faces = r["face_frames"] or {}
        writer.writerow([r["id"], *(r["inputs"].get(k, "") for k in ("image", "video", "audio", "text_file", "text")),
                         r["label"] or "", *(f"{r['probabilities'][n]:.6f}" if r["probabilities"] else "" for n in labels),
                         "+".join(r["observed"]), "+".join(r["reconstructed"]), faces.get("searched", ""),
                         faces.get("with_face", ""), "; ".join(r["notes"]), r["error"] or ""])
    return out.getvalue()


def render_batch(records: list[dict]) -> str:
    width = max([len(r["id"]) for r in records] + [4])
    lines = [f"{'item':<{width}}  {'emotion':<10} {'p':>6}  {'observed':<16} error"]
    for r in records:
        p = f"{r['probabilities'][r['label']]:6.1%}" if r["label"] else f"{'-':>6}"
        lines.append(f"{r['id']:<{width}}  {r['label'] or '-':<10} {p}  {'+'.join(r['observed']) or '-':<16} "
                     f"{r['error'] or ''}".rstrip())
    return "\n".join(lines)


SERVE_MAX_SECONDS = 120.0  # --serve's default duration limit for uploaded audio and video


def _serve(args: argparse.Namespace) -> int:
    """The web app and HTTP API (bridge.serve) on one loaded model, until Ctrl-C."""
    import ipaddress

    from bridge.serve import ServeLimits, serve

    host = args.host or "127.0.0.1"
    port = 8000 if args.port is None else args.port
    if not 0 <= port <= 65535:
        raise ValueError(f"--port must be 0-65535, got {port}")
    upload_mb = 50.0 if args.max_upload_mb is None else args.max_upload_mb
    if not upload_mb > 0:
        raise ValueError(f"--max-upload-mb must be positive, got {upload_mb:g}")
    max_seconds = SERVE_MAX_SECONDS if args.max_seconds is None else args.max_seconds
    if max_seconds < 0:
        raise ValueError(f"--max-seconds must be >= 0 (0: no limit), got {max_seconds:g}")
    from bridge.release import locate

    # the shipped model without --checkpoint, a shipped release by name, or directories; as infer.py resolves them
    args = argparse.Namespace(**{**vars(args), "checkpoint": [str(locate(c)) for c in args.checkpoint or [None]]})
    predictor = load_predictor(args)
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        print(f"infer.py: warning: serving on {host}: anyone who can reach this port can use the model (there is no "
              "authentication), and browsers allow the camera only on https or localhost; an SSH tunnel "
              "(ssh -L 8000:127.0.0.1:8000 HOST) keeps it private", file=sys.stderr)
    print(f"bridge: serving {', '.join(args.checkpoint)} on http://{host}:{port}/ (API docs at /docs; Ctrl-C stops)",
          file=sys.stderr)
    limits = ServeLimits(max_upload_bytes=int(upload_mb * 2**20), max_seconds=max_seconds or None)
    serve(predictor, host, port, limits)
    return 0


def _live(args: argparse.Namespace, text: str | None) -> int:
    from bridge.inference.live import run_live
    from bridge.inference.timeline import Smoothing

    predictor = load_predictor(args, detect_faces=True)
    save = Path(args.save_video) if args.save_video else None
    frames = run_live(predictor, args.webcam, args.every, save, text=text, listen=args.listen,
                      smoothing=Smoothing.parse(args.smooth), detect_every=args.detect_every)
    print(f"{frames} frames" + (f", annotated video written to {save}" if save else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
