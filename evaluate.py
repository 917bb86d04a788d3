"""Evaluate a bridge checkpoint on a corpus split, for every modality pattern, with missing
modalities reconstructed and zero-filled.

    python evaluate.py --checkpoint checkpoints/synthetic-tiny
    python evaluate.py --checkpoint checkpoints/mosi-small --data mosi --split test --json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from bridge.cli import run_cli


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="evaluate.py", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="checkpoint directory written by train.py")
    p.add_argument("--data", default=None, help="corpus (default: the one the checkpoint was trained on)")
    p.add_argument("--data-root", default=None, help="data root (default: $BRIDGE_DATA_ROOT or ../shared/data)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--limit", type=int, default=None, help="at most this many samples")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--output", default=None, help="report directory (default: CHECKPOINT/eval-DATA-SPLIT)")
    p.add_argument("--device", default="auto")
    p.add_argument("--cache-dir", default=None,
                   help="preprocessing cache (default: $BRIDGE_CACHE_DIR or .cache/bridge)")
    p.add_argument("--no-cache", action="store_true", help="decode and preprocess without the cache")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_cli("evaluate.py", lambda: _evaluate(args))


def checkpoint_hash(directory: Path) -> str:
    h = hashlib.sha256()
    with open(directory / "model.safetensors", "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def markdown_table(results: dict[str, dict[str, Any]], title: str) -> str:
    lines = [f"## {title}", "", "| observed modalities | fill | accuracy | macro F1 | weighted F1 | UAR |",
             "|---|---|---|---|---|---|"]
    for pattern, by_fill in results.items():
        for fill, r in by_fill.items():
            lines.append(f"| {pattern} | {fill} | {100 * r['accuracy']:.1f} | {100 * r['macro_f1']:.1f} | "
                         f"{100 * r['weighted_f1']:.1f} | {100 * r['uar']:.1f} |")
    return "\n".join(lines) + "\n"


def per_class_table(report: dict[str, Any]) -> str:
    lines = ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for name, r in report["per_class"].items():
        lines.append(f"| {name} | {100 * r['precision']:.1f} | {100 * r['recall']:.1f} | {100 * r['f1']:.1f} | "
                     f"{r['support']} |")
    return "\n".join(lines) + "\n"


def _evaluate(args: argparse.Namespace) -> int:
    from bridge.checkpoint import load_checkpoint, tokenizer_dir
    from bridge.data.corpora import load_splits
    from bridge.evaluation import evaluate_patterns
    from bridge.modality import pattern_name
    from bridge.plots import plot_confusion, plot_patterns
    from bridge.preprocess import Preprocessor
    from bridge.recipes import corpus_modalities
    from bridge.training import ExampleDataset, make_loader, pick_device
    from bridge.checkpoint import atomic_write_text

    ckpt = Path(args.checkpoint)
    device = pick_device(args.device)
    model, meta = load_checkpoint(ckpt, device)
    data_meta = meta.get("data", {})
    data = args.data or data_meta.get("name") or "synthetic"
    seed = meta.get("training", {}).get("seed", 0)
    splits = load_splits(data, args.data_root or data_meta.get("data_root"), seed=seed, limit=args.limit)
    if tuple(splits.labels) != tuple(model.config.labels):
        raise ValueError(f"label mismatch: {data} has labels {list(splits.labels)}, "
                         f"the checkpoint {list(model.config.labels)}")
    samples = splits.split(args.split)
    available = corpus_modalities(samples)
    shared = [m for m in model.modalities if m in available]
    if not shared:
        raise ValueError(f"{data} carries none of the checkpoint's modalities "
                         f"({', '.join(m.value for m in model.modalities)})")
    preprocessor = Preprocessor(model.config, tokenizer_dir(ckpt))
    from bridge.cache import default_cache_dir

    cache_dir = None if args.no_cache else (args.cache_dir or default_cache_dir())
    dataset = ExampleDataset(samples, preprocessor, f"preprocess {args.split}", cache_dir)
    if not len(dataset):
        raise ValueError(f"no usable samples in {data} {args.split}")
    start = time.time()
    results = evaluate_patterns(model, make_loader(dataset, args.batch_size, False, 0, 0), device)
    seconds = time.time() - start
    full = pattern_name(tuple(model.modalities))
    out_dir = Path(args.output or ckpt / f"eval-{splits.name}-{args.split}")
    report = {"checkpoint": str(ckpt), "checkpoint_sha256": checkpoint_hash(ckpt), "data": splits.name,
              "split": args.split, "n": len(dataset), "skipped": dataset.skipped, "labels": list(model.config.labels),
              "protocol": "fixed modality patterns; missing modalities reconstructed by translation or zero-filled",
              "seconds": round(seconds, 2), "results": results}
    title = f"{splits.name} {args.split} (n={len(dataset)}), checkpoint {ckpt}"
    md = markdown_table(results, title)
    if full in results:
        md += f"\n### Per class, {full}, reconstruct\n\n" + per_class_table(results[full]["reconstruct"])
    atomic_write_text(out_dir / "results.json", json.dumps(report, indent=2))
    atomic_write_text(out_dir / "results.md", md)
    if full in results:
        plot_confusion(results[full]["reconstruct"]["confusion"], model.config.labels, out_dir / "confusion.png",
                       f"{splits.name} {args.split}: {full}")
    plot_patterns(results, out_dir / "patterns.png")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(md)
        print(f"wrote {out_dir}/results.json, results.md, confusion.png, patterns.png ({seconds:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
