"""Training-step time of a face encoder on CPU, with its convolutional stem's weights (and so
its activations) in PyTorch's default contiguous layout and in channels-last, each in float32 and
under bfloat16 autocast (``train.py --precision``).

    python benchmarks/train_step.py                   # recipes/fer2013-chain.json's encoder, 2 threads
    python benchmarks/train_step.py --set face.stem=conv      # the same encoder with the GroupNorm conv stem
    python benchmarks/train_step.py --recipe recipes/fer2013.json --batch-size 64 --threads 4
    python benchmarks/train_step.py --precisions float32     # the layouts only
    python benchmarks/train_step.py --quick --output /tmp/step.json   # seconds; what the test runs

The encoder is the one the recipe builds (preset and ``--set`` overrides, 48x48 grey crops for
FER-2013), random-init; one step is forward, a squared-mean loss, backward and an AdamW update on
a batch of one-frame crops, timed after warm-up steps, the configurations taking turns (under
bfloat16 the forward and loss run under ``torch.autocast``, as the trainer runs them). bridge's
face encoder keeps the VGG-style ``cnn`` stem channels-last and the GroupNorm ``conv`` stem
contiguous (``bridge/encoders/face.py``); this is the measurement behind that choice. Prints a
table and writes JSON (default reports/train_step.json); it reports times and never judges them.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from bridge.config import create_config, override
from bridge.encoders.face import FaceEncoder
from bridge.train.config import TrainConfig

LAYOUTS = {"contiguous": torch.contiguous_format, "channels-last": torch.channels_last}


class Stepper:
    """One training step of ``encoder`` on a fixed random batch of one-frame crops, its forward
    under bfloat16 autocast when ``precision`` says so."""

    def __init__(self, encoder: FaceEncoder, batch: int, size: int, channels: int, precision: str = "float32"):
        self.encoder = encoder
        self.autocast = precision == "bfloat16"
        self.frames = torch.randn(batch, 1, channels, size, size, generator=torch.Generator().manual_seed(0))
        self.mask = torch.ones(batch, 1, dtype=torch.bool)
        self.opt = torch.optim.AdamW(encoder.parameters(), lr=1e-4)

    def __call__(self) -> float:
        """Milliseconds of one forward, backward and update."""
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            tokens, _ = self.encoder(self.frames, self.mask)
            loss = tokens.float().pow(2).mean()
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return (time.perf_counter() - start) * 1e3


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--recipe", default="recipes/fer2013-chain.json", help="the recipe whose face encoder is timed")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a model override after the recipe's, as train.py --set (repeatable)")
    p.add_argument("--batch-size", type=int, default=None, help="default: the recipe's, else train.py's")
    p.add_argument("--precisions", default="float32,bfloat16",
                   help="comma-separated arithmetic of the forward: float32, bfloat16 (autocast)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--repeats", type=int, default=None, help="timed steps per layout (default 20, --quick 2)")
    p.add_argument("--quick", action="store_true", help="two steps each: checks the benchmark runs")
    p.add_argument("--output", default="reports/train_step.json")
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error("--threads must be at least 1")
    precisions = [x.strip() for x in args.precisions.split(",") if x.strip()]
    if not precisions or set(precisions) - {"float32", "bfloat16"}:
        p.error(f"--precisions {args.precisions}: choose from float32, bfloat16")
    recipe_path = Path(args.recipe)
    if not recipe_path.is_file() and (Path(__file__).resolve().parents[1] / recipe_path).is_file():
        recipe_path = Path(__file__).resolve().parents[1] / recipe_path
    try:
        recipe = json.loads(recipe_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        p.error(f"--recipe {args.recipe}: not a readable recipe ({e})")
    try:
        cfg = override(create_config(recipe.get("preset", "tiny")), [*recipe.get("set", []), *args.set]).face
    except ValueError as e:
        p.error(str(e))
    if cfg is None or cfg.stem == "patch":
        p.error(f"--recipe {args.recipe}: its model has no face encoder with a convolutional stem")
    if recipe.get("data") == "fer2013":  # FER-2013's 48x48 grey crops, as the corpus reader gives them
        cfg = replace(cfg, img_size=48, in_chans=1)
    batch = args.batch_size or recipe.get("batch_size", TrainConfig.batch_size)
    repeats, warmup = args.repeats or (2 if args.quick else 20), 1 if args.quick else 3
    torch.set_num_threads(args.threads)
    steppers = {}
    for precision in precisions:
        for name, layout in LAYOUTS.items():
            torch.manual_seed(0)
            encoder = FaceEncoder(cfg, load_weights=False)
            encoder.vit.patch_embed.proj.to(memory_format=layout)
            steppers[name, precision] = Stepper(encoder, batch, cfg.img_size, cfg.in_chans, precision)
    times: dict[tuple[str, str], list[float]] = {key: [] for key in steppers}
    for i in range(warmup + repeats):  # the configurations take turns, so a drift in the machine's speed hits all
        for name, step in steppers.items():
            ms = step()
            if i >= warmup:
                times[name].append(ms)
    rows = []
    for (name, precision), ms in times.items():
        ms = np.asarray(ms)
        rows.append({"layout": name, "precision": precision, "ms_p50": float(np.median(ms)),
                     "ms_mean": float(ms.mean()), "samples_per_s": batch / (float(np.median(ms)) / 1e3)})
    base = rows[0]["ms_p50"]
    print(f"face encoder training step: {recipe_path.name}, stem {cfg.stem}, {cfg.img_size}x{cfg.img_size}x"
          f"{cfg.in_chans}, batch {batch}, {args.threads} threads, {repeats} steps\n")
    print(f"{'stem layout':<16} {'precision':<10} {'p50 ms':>8} {'mean ms':>8} {'samples/s':>10} "
          f"{'vs first row':>13}")
    for r in rows:
        r["speedup"] = base / r["ms_p50"]
        print(f"{r['layout']:<16} {r['precision']:<10} {r['ms_p50']:>8.1f} {r['ms_mean']:>8.1f} "
              f"{r['samples_per_s']:>10.0f} {r['speedup']:>12.2f}x")
    report = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
              "threads": args.threads, "precisions": precisions, "recipe": recipe_path.name, "set": args.set,
              "batch_size": batch, "repeats": repeats, "quick": args.quick, "face": asdict(cfg), "rows": rows}
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
