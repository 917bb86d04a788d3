"""Validation curves of finished or running training runs, side by side or one after another.

    python benchmarks/curves.py checkpoints/release/face checkpoints/release/face-restart1 --chain \\
        --labels "40 epochs,restart" --plot docs/results/fer2013/validation.png

Reads each run's ``history.json`` (train.py writes it after every epoch, so a run still
training can be read too), prints a table per run (epochs, the best epoch on the run's
selection score, validation accuracy and macro F1 there and at the last epoch, training time),
writes JSON and, with ``--plot``, a figure of validation accuracy and macro F1 per epoch.
``--chain`` places each run after the one before it on the epoch axis, for a run that started
from the previous one's checkpoint (``train.py --restarts``, e.g. ``recipes/fer2013-chain.json``, keeps them in ``RUN/cycles/K``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

from bridge.checkpoint import atomic_write_text
from bridge.cli import run_cli

METRICS = ("accuracy", "macro_f1")


def read_history(run: Path) -> list[dict[str, Any]]:
    """A run folder's ``history.json`` (or that file itself).

    Raises:
        FileNotFoundError: no history there (not a train.py run, or no epoch finished yet).
        ValueError: the file is not a train.py history.
    """
    path = run / "history.json" if run.is_dir() else run
    if not path.is_file():
        raise FileNotFoundError(f"{run}: no history.json (not a train.py run folder, or no epoch has finished)")
    try:
        history = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e})") from None
    if not isinstance(history, list) or not history or not all(
            isinstance(r, dict) and "epoch" in r and all(m in r.get("val", {}) for m in METRICS) for r in history):
        raise ValueError(f"{path}: not a train.py history (expected a list of epochs with validation scores)")
    return history


def summarise(label: str, run: Path, history: list[dict[str, Any]], offset: int) -> dict[str, Any]:
    """The run's best epoch on its selection score (mean over patterns where recorded) and its last."""
    key = "macro_f1_patterns" if all("macro_f1_patterns" in r["val"] for r in history) else "macro_f1"
    best = max(history, key=lambda r: r["val"][key])

    def at(row: dict[str, Any]) -> dict[str, Any]:
        return {"epoch": row["epoch"], **{m: row["val"][m] for m in METRICS}}

    return {"label": label, "run": str(run), "epochs": len(history), "offset": offset, "select": key,
            "best": at(best), "last": at(history[-1]), "seconds": round(sum(r.get("seconds", 0.0) for r in history), 1),
            "curve": [{"epoch": offset + r["epoch"], **{m: r["val"][m] for m in METRICS}} for r in history]}


def plot(summaries: list[dict[str, Any]], path: Path) -> None:
    from bridge.plots import plt, save_figure

    fig, axes = plt.subplots(1, len(METRICS), figsize=(11, 3.6))
    for i, s in enumerate(summaries):
        epochs = [p["epoch"] for p in s["curve"]]
        for ax, metric in zip(axes, METRICS):
            ax.plot(epochs, [100 * p[metric] for p in s["curve"]], "o-", ms=3, color=f"C{i}", label=s["label"])
            best = s["best"]
            ax.plot([s["offset"] + best["epoch"]], [100 * best[metric]], "*", ms=12, color=f"C{i}")
    for ax, metric in zip(axes, METRICS):
        ax.set_title(f"validation {metric.replace('_', ' ').replace('f1', 'F1')} (%), * kept epoch")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmarks/curves.py", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="train.py output folders (or their history.json)")
    p.add_argument("--labels", default=None, help="comma-separated, one per run (default: the folder names)")
    p.add_argument("--chain", action="store_true",
                   help="each run's epochs follow the previous run's (it started from that run's checkpoint)")
    p.add_argument("--plot", type=Path, default=None, help="write the figure here (PNG)")
    p.add_argument("--output", type=Path, default=ROOT / "reports" / "curves.json")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    labels = args.labels.split(",") if args.labels else [r.name if r.name != "seed0" else r.parent.name
                                                           for r in args.runs]
    if len(labels) != len(args.runs):
        raise ValueError(f"--labels names {len(labels)} runs, but {len(args.runs)} were given")
    summaries, offset = [], 0
    for label, run_dir in zip(labels, args.runs):
        history = read_history(run_dir)
        summaries.append(summarise(label.strip(), run_dir, history, offset))
        if args.chain:
            offset += history[-1]["epoch"]
    print(f"{'run':<24} {'epochs':>6} {'best (epoch)':>14} {'val acc':>8} {'val F1':>7} "
          f"{'last acc':>9} {'last F1':>8} {'train':>8}")
    for s in summaries:
        b, last = s["best"], s["last"]
        print(f"{s['label']:<24} {s['epochs']:>6} {s['offset'] + b['epoch']:>14} {100 * b['accuracy']:>8.1f} "
              f"{100 * b['macro_f1']:>7.1f} {100 * last['accuracy']:>9.1f} {100 * last['macro_f1']:>8.1f} "
              f"{s['seconds'] / 60:>6.1f} m")
    atomic_write_text(args.output, json.dumps({"chain": args.chain, "runs": summaries}, indent=2))
    print(f"wrote {args.output}")
    if args.plot:
        plot(summaries, args.plot)
        print(f"wrote {args.plot}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_cli("benchmarks/curves.py", lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
