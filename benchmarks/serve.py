"""Serving speed of ``infer.py --serve``: one live stream, and ``POST /v1/predict`` under load.

    python benchmarks/serve.py --checkpoint DIR --duration 60       # the full run (about 4.5 min)
    python benchmarks/serve.py --checkpoint DIR                     # 10 s per phase (about 1 min)
    python benchmarks/serve.py --preset small --set audio.arch=whisper --set audio.weights=whisper-tiny.en \\
        --set audio.num_mel_bins=80 --set audio.max_frames=300      # a random-init model of that shape

The server is ``infer.py --serve`` itself, started as a subprocess on a free loopback port (never
anything else), pinned to ``--threads`` CPU cores with as many torch threads, and stopped at the
end. Without ``--checkpoint`` the shipped model is served; ``--preset`` serves a random-init model
of a preset instead (speed does not depend on the weights), saved as a checkpoint first.

Phases, each ``--duration`` seconds (the live one ``--live-duration``):

- live: one WebSocket client behaves as the page does: a 480x360 JPEG of skimage's astronaut
  (moving sideways) with one frame in flight and at most 20 frames a second, and the sound that
  elapsed since the last frame (speech-like, 16-bit PCM at 16 kHz) before each frame, so every
  update predicts from face and voice. Reported: updates per second, frame round trip p50/p95
  (send to answer), the share of updates with a face box, and errors;
- predict: ``--clients`` concurrent clients (default 1, 4, 16), each posting the astronaut photo
  (PNG, 512x512) to ``POST /v1/predict`` in a loop. Reported: requests per second, latency
  p50/p95 and errors (any status but 200, or a connection failure).

And the server's peak resident memory (VmHWM, Linux) after all phases. Prints a Markdown table
and writes JSON (default reports/serve.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from bridge.data.synthetic import speech_like

ROOT = Path(__file__).resolve().parents[1]

RATE = 16_000
FRAME_W, FRAME_H = 480, 360  # what the page sends
MIN_GAP_S = 0.050  # the page sends at most one frame per 50 ms


def live_frames(count: int = 20) -> list[bytes]:
    """JPEGs (quality 85, as the page) of the astronaut's face moving across a 480x360 frame."""
    from skimage.data import astronaut

    face = cv2.resize(astronaut()[0:300, 100:400], (220, 220), interpolation=cv2.INTER_AREA)
    out = []
    for k in range(count):
        frame = np.full((FRAME_H, FRAME_W, 3), 110, np.uint8)
        x = int(20 + 220 * (0.5 - 0.5 * np.cos(2 * np.pi * k / count)))
        frame[70:290, x:x + 220] = face
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
        out.append(jpeg.tobytes())
    return out


def percentiles(ms: list[float]) -> dict[str, float | None]:
    if not ms:
        return {"p50_ms": None, "p95_ms": None}
    return {"p50_ms": round(float(np.percentile(ms, 50)), 1), "p95_ms": round(float(np.percentile(ms, 95)), 1)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``infer.py --serve`` on loopback in a subprocess, pinned to ``threads`` cores."""

    def __init__(self, checkpoint: Path, threads: int, log: Path):
        self.port = free_port()
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
               "PYTHONUNBUFFERED": "1"}
        cores = sorted(os.sched_getaffinity(0))[:threads] if hasattr(os, "sched_getaffinity") else None
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "infer.py"), "--serve", "--checkpoint", str(checkpoint), "--host", "127.0.0.1",
             "--port", str(self.port)], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait(self, timeout: float = 300.0) -> dict:
        import httpx

        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with code {self.process.returncode} (log: {self.log.name})")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=2).json()
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"the server did not answer within {timeout:g} s (log: {self.log.name})")

    def peak_memory_mb(self) -> float | None:
        """VmHWM, the peak resident set size, from /proc (None where there is no /proc)."""
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
        except OSError:
            return None
        return None

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def run_live(url: str, seconds: float) -> dict:
    """One page-like live stream for ``seconds``: updates/s, round trip p50/p95, face share, errors."""
    from websockets.sync.client import connect

    frames, wave = live_frames(), speech_like(8.0)
    pcm = (np.clip(wave, -1, 1) * 32767).astype("<i2")
    rtts, faces, errors, sound_at = [], 0, 0, 0
    with connect(url.replace("http://", "ws://") + "/v1/live", max_size=2**22) as ws:
        ws.send(json.dumps({"sample_rate": RATE}))
        ws.send(b"A" + pcm[:RATE].tobytes())  # the first second of sound, as if the page had been listening
        sound_at = RATE
        start = last_sent = time.perf_counter()
        seq = 0
        while time.perf_counter() - start < seconds:
            now = time.perf_counter()
            if now - last_sent < MIN_GAP_S:
                time.sleep(MIN_GAP_S - (now - last_sent))
            elapsed = int((time.perf_counter() - last_sent) * RATE)  # the sound since the last frame
            chunk = np.take(pcm, range(sound_at, sound_at + elapsed), mode="wrap")
            sound_at += elapsed
            ws.send(b"A" + chunk.tobytes())
            seq += 1
            last_sent = time.perf_counter()
            ws.send(b"F" + struct.pack("<I", seq) + frames[seq % len(frames)])
            update = json.loads(ws.recv())
            rtts.append(1000 * (time.perf_counter() - last_sent))
            if "error" in update or update.get("seq") != seq or update.get("label") is None:
                errors += 1
            faces += update.get("box") is not None
        took = time.perf_counter() - start
    return {"seconds": round(took, 1), "updates": len(rtts), "updates_per_s": round(len(rtts) / took, 2),
            **percentiles(rtts), "with_face": round(faces / max(len(rtts), 1), 3), "errors": errors}


def run_predict(url: str, image: bytes, clients: int, seconds: float) -> dict:
    """``clients`` threads posting ``image`` for ``seconds``: requests/s, latency p50/p95, errors."""
    import httpx

    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client() -> None:
        with httpx.Client(timeout=120) as http:
            barrier.wait()
            while time.perf_counter() < deadline[0]:
                t = time.perf_counter()
                try:
                    ok = http.post(f"{url}/v1/predict", files={"image": ("face.png", image, "image/png")}).status_code == 200
                except httpx.HTTPError:
                    ok = False
                ms = 1000 * (time.perf_counter() - t)
                with lock:
                    if ok:
                        latencies.append(ms)
                    else:
                        errors[0] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for th in threads:
        th.start()
    deadline[0] = time.perf_counter() + seconds
    start = time.perf_counter()
    barrier.wait()
    for th in threads:
        th.join()
    took = time.perf_counter() - start  # includes the requests that were in flight at the deadline
    return {"clients": clients, "seconds": round(took, 1), "requests": len(latencies),
            "requests_per_s": round(len(latencies) / took, 2), **percentiles(latencies), "errors": errors[0]}


def random_checkpoint(preset: str, assignments: list[str], directory: Path) -> Path:
    """A random-init model of ``preset`` (with ``--set`` overrides) saved as a checkpoint."""
    import torch

    from bridge.checkpoint import save_checkpoint
    from bridge.config import create_config, override
    from bridge.model import BridgeModel
    from bridge.preprocess import Preprocessor

    torch.manual_seed(0)
    config = override(create_config(preset), assignments)
    model = BridgeModel(config)
    save_checkpoint(model, directory, {}, tokenizer=Preprocessor(config).tokenizer)
    return directory


def print_table(report: dict) -> None:
    live = report["live"]
    print(f"\nserving {report['model']} ({report['modalities']}), {report['threads']} CPU threads, "
          f"{report['duration_s']:g} s per phase; server peak memory {report['server_peak_memory_mb']} MB\n")
    print("| phase | clients | per second | p50 ms | p95 ms | errors |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| live stream (face + voice), updates | 1 | {live['updates_per_s']} | {live['p50_ms']} | "
          f"{live['p95_ms']} | {live['errors']} |")
    for row in report["predict"]:
        print(f"| POST /v1/predict (image), requests | {row['clients']} | {row['requests_per_s']} | {row['p50_ms']} | "
              f"{row['p95_ms']} | {row['errors']} |")


def main(argv: list[str] | None = None) -> int:
    from bridge.cli import run_cli

    p = argparse.ArgumentParser(prog="benchmarks/serve.py", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", help="checkpoint to serve (default: the shipped model)")
    p.add_argument("--preset", help="serve a random-init model of this preset instead (speed only)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="with --preset: config overrides")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per predict phase (the full run: 60)")
    p.add_argument("--live-duration", type=float, help="seconds of the live phase (default: --duration)")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16], help="concurrent clients per predict phase")
    p.add_argument("--threads", type=int, default=2, help="CPU cores (and torch threads) given to the server")
    p.add_argument("--output", default="reports/serve.json")
    args = p.parse_args(argv)
    return run_cli("benchmarks/serve.py", lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    from bridge.checkpoint import atomic_write_text
    from bridge.release import locate

    if args.duration <= 0 or (args.live_duration is not None and args.live_duration <= 0):
        raise ValueError("--duration and --live-duration must be positive seconds")
    if args.threads < 1 or any(c < 1 for c in args.clients):
        raise ValueError("--threads and --clients must be >= 1")
    if args.set and not args.preset:
        raise ValueError("--set needs --preset")
    with tempfile.TemporaryDirectory(prefix="bridge-serve-bench-") as tmp:
        tmp = Path(tmp)
        if args.preset:
            if args.checkpoint:
                raise ValueError("give --checkpoint or --preset, not both")
            checkpoint, name = random_checkpoint(args.preset, args.set, tmp / "model"), f"random-init {args.preset}"
        else:
            checkpoint = locate(args.checkpoint)  # None: the shipped model
            if not (checkpoint / "config.json").is_file():
                raise FileNotFoundError(f"no checkpoint at {checkpoint}: pass --checkpoint DIR or --preset NAME")
            name = checkpoint.name
        from skimage.data import astronaut

        image = cv2.imencode(".png", cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR))[1].tobytes()
        server = Server(checkpoint, args.threads, tmp / "server.log")
        try:
            health = server.wait()
            run_predict(server.url, image, 1, 1.0)  # warm-up: first calls build caches
            live = run_live(server.url, args.live_duration or args.duration)
            predict = [run_predict(server.url, image, c, args.duration) for c in args.clients]
            peak = server.peak_memory_mb()
        finally:
            server.stop()
    report = {"model": name, "modalities": " + ".join(health["modalities"]), "threads": args.threads,
              "duration_s": args.duration, "live": live, "predict": predict, "server_peak_memory_mb": peak,
              "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine(),
                          "cpus": os.cpu_count()}}
    print_table(report)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
