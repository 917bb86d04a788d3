"""Translation objectives ablated on one recipe: each row trains with train.py (the same recipe and
seeds, only the objective differs) and is scored on validation and test under the field's protocol.

    python benchmarks/translation.py --recipe recipes/mosi-frozen.json --seeds 2
    python benchmarks/translation.py --recipe recipes/mosi-frozen.json --seed-values 0 --rows mse,infonce
    python benchmarks/translation.py --data synthetic --limit 120 --epochs 1 --seeds 1   # a quick look

A row names its objective with ``+``-joined parts: the translation loss first (``mse``, ``cosine``
or ``infonce``), then any of ``cycle`` (``--cycle-weight 1``), ``distill`` (``--distill-weight 1``)
and ``confidence`` (the model's confidence gate, ``--set fusion.confidence=true``). Every row
spells out every objective flag, so a later change of train.py's defaults cannot change a row.

Per run and split it reports, under :func:`bridge.eval.protocols.evaluate_field` (3 mask draws):
accuracy and weighted F1 with all modalities, weighted F1 with no text, the fixed and random
averages, and reconstruct − zero-fill with the same weights (mean over the fixed missing
patterns, and the worst pattern). Rows are then mean ± std over training seeds; the selection
score is the validation mean of the fixed and random averages (weighted F1).

Finished runs and evaluations are reused (``--checkpoints``), so ``--seed-values S`` per process
runs seeds in parallel and a last run over all seeds only aggregates. Writes ``results.json`` and
``results.md`` to ``--output``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from bridge.cli import run_cli

DISTANCES = ("mse", "cosine", "infonce")
PARTS = {"cycle": ["--cycle-weight", "1"], "distill": ["--distill-weight", "1"],
         "confidence": ["--set", "fusion.confidence=true"]}
DEFAULT_ROWS = "mse,mse+cycle,infonce,mse+distill,infonce+distill"
# figure key -> (what the table calls it, where it is in an evaluation)
FIGURES = {
    "all_accuracy": "all three, accuracy",
    "all_wf1": "all three, wF1",
    "no_text": "no text, wF1",
    "fixed": "fixed average, wF1",
    "random": "random average, wF1",
    "gain": "reconstruct − zero-fill, wF1",
    "worst": "worst pattern, reconstruct − zero-fill",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmarks/translation.py", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--recipe", default=None, help="train.py --recipe every row starts from")
    p.add_argument("--data", default=None, help="train.py --data (when no recipe; default: the recipe's)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--rows", default=DEFAULT_ROWS, help="comma-separated objectives (see the module docstring)")
    p.add_argument("--seeds", type=int, default=2, help="training seeds 0..N-1")
    p.add_argument("--seed-values", default=None, help="comma-separated training seeds instead of 0..N-1")
    p.add_argument("--draws", type=int, default=3, help="random mask draws of the field's random protocol")
    p.add_argument("--epochs", type=int, default=None, help="train.py --epochs (default: the recipe's)")
    p.add_argument("--limit", type=int, default=None, help="at most this many samples per split")
    p.add_argument("--train-args", default="", help="more train.py arguments, the same for every row")
    p.add_argument("--checkpoints", default=None, help="default: checkpoints/translation/RECIPE-OR-DATA")
    p.add_argument("--output", default=None, help="report folder (default: reports/translation-RECIPE-OR-DATA)")
    p.add_argument("--batch-size", type=int, default=64, help="evaluation batch size")
    p.add_argument("--device", default="auto")
    p.add_argument("--retrain", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_cli("benchmarks/translation.py", lambda: run(args))


def row_flags(row: str) -> list[str]:
    """``"infonce+distill"`` -> every objective flag of train.py, spelled out.

    Raises:
        ValueError: an unknown part, or a row that does not start with a translation loss.
    """
    parts = [p.strip() for p in row.split("+")]
    if not parts or parts[0] not in DISTANCES:
        raise ValueError(f"row {row!r} must start with a translation loss ({', '.join(DISTANCES)})")
    unknown = sorted(set(parts[1:]) - set(PARTS))
    if unknown:
        raise ValueError(f"row {row!r}: unknown part {', '.join(unknown)} (choose from {', '.join(PARTS)})")
    flags = ["--translation-loss", parts[0], "--translation-weight", "1", "--cycle-weight", "0",
             "--distill-weight", "0", "--distill-temperature", "2"]
    for part in parts[1:]:
        key, value = PARTS[part]
        if key in flags and key != "--set":
            flags[flags.index(key) + 1] = value
        else:
            flags += [key, value]
    return flags


def train_argv(args: argparse.Namespace, row: str, seed: int) -> list[str]:
    from bridge.train.runs import given_flags

    argv = given_flags(recipe=args.recipe, data=args.data, data_root=args.data_root, epochs=args.epochs,
                       limit=args.limit)
    return argv + ["--seed", str(seed)] + row_flags(row) + shlex.split(args.train_args)


def evaluate_run(args: argparse.Namespace, directory: Path, seed: int) -> dict[str, Any]:
    """The field's protocol on the validation and test splits the run was trained with."""
    from bridge.cache import default_cache_dir
    from bridge.checkpoint import tokenizer_dir
    from bridge.data.corpora import load_splits
    from bridge.data.corpus import attach_decoder
    from bridge.dataset import ExampleDataset, make_loader
    from bridge.encoders.memo import TokenStateMemo
    from bridge.eval.protocols import evaluate_field
    from bridge.freeze import memoise_frozen
    from bridge.media.decoder import MediaDecoder
    from bridge.model import load_checkpoint
    from bridge.preprocess import Preprocessor
    from bridge.runtime import pick_device

    device = pick_device(args.device)
    model, meta = load_checkpoint(directory, device)
    memoise_frozen(model, TokenStateMemo.megabytes(1024))  # a frozen encoder runs once per sample, not per protocol
    data = meta.get("data", {})
    splits = load_splits(data.get("name"), args.data_root or data.get("data_root"), seed=seed, limit=data.get("limit"))
    attach_decoder(splits, MediaDecoder.from_config(model.config))
    preprocessor = Preprocessor(model.config, tokenizer_dir(directory))
    out: dict[str, Any] = {}
    for split in ("val", "test"):
        dataset = ExampleDataset(splits.split(split), preprocessor, f"preprocess {split}", default_cache_dir())
        loader = make_loader(dataset, args.batch_size, False, 0, 0)
        out[split] = evaluate_field(model, loader, device, seeds=args.draws, progress=False)
        out[split]["n"] = len(dataset)
    return out


def figures(evaluation: dict[str, Any]) -> dict[str, float]:
    """One run's figures on one split (fractions)."""
    rec = evaluation["results"]["reconstruct"]["summary"]
    gain = evaluation["reconstruct_minus_zero"]["weighted_f1"]
    return {"all_accuracy": rec["all"]["accuracy"]["mean"], "all_wf1": rec["all"]["weighted_f1"]["mean"],
            "no_text": rec["no_text"]["weighted_f1"]["mean"] if "no_text" in rec else float("nan"),
            "fixed": rec["fixed_average"]["weighted_f1"]["mean"],
            "random": rec["random_average"]["weighted_f1"]["mean"], "gain": gain["mean"], "worst": gain["worst"]}


def summarise(per_run: dict[str, dict[int, dict[str, Any]]]) -> dict[str, Any]:
    """Per row and split, mean ± std over seeds of every figure, and the selection score."""
    out: dict[str, Any] = {}
    for row, by_seed in per_run.items():
        out[row] = {}
        for split in ("val", "test"):
            runs = [figures(e[split]) for e in by_seed.values()]
            out[row][split] = {k: {"mean": float(np.mean([r[k] for r in runs])),
                                   "std": float(np.std([r[k] for r in runs])),
                                   "values": [r[k] for r in runs]} for k in FIGURES}
        val = out[row]["val"]
        out[row]["selection_score"] = (val["fixed"]["mean"] + val["random"]["mean"]) / 2
    return out


def markdown(report: dict[str, Any]) -> str:
    s = report["summary"]
    chosen = max(s, key=lambda r: s[r]["selection_score"])
    lines = [f"# Translation objectives: {report['setting']}", "",
             f"Training seeds {', '.join(map(str, report['seed_values']))}; mean ± std over seeds, %; "
             f"{report['draws']} mask draws for the random protocol. Selection score: the validation mean of the "
             f"fixed and random averages (weighted F1). Best on validation: **{chosen}**.", ""]
    for split in ("val", "test"):
        sizes = report["n"][split]
        size = f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]}–{sizes[-1]} by seed"
        lines += [f"## {'Validation' if split == 'val' else 'Test'} (n={size})", "",
                  "| objective | " + " | ".join(FIGURES.values()) + (" | selection score |" if split == "val" else " |"),
                  "|---" * (len(FIGURES) + 1 + (split == "val")) + "|"]
        for row, by in s.items():
            cells = [f"{100 * by[split][k]['mean']:.1f} ± {100 * by[split][k]['std']:.1f}" for k in FIGURES]
            if split == "val":
                cells.append(f"{100 * by['selection_score']:.1f}")
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["Training commands (per seed S):", ""]
    lines += [f"    python train.py {c}" for c in report["train_commands"]]
    lines += ["", f"Made by: `{report['command']}`; training {report['seconds']['train'] / 60:.0f} min and "
                  f"evaluation {report['seconds']['evaluate'] / 60:.0f} min, summed over the runs.", ""]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from bridge.checkpoint import atomic_write_text
    from bridge.commands.evaluate import checkpoint_hash
    from bridge.train.runs import ensure_trained

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from robustness import parse_seeds

    if not args.recipe and not args.data:
        raise ValueError("give --recipe or --data")
    if args.draws < 1:
        raise ValueError(f"--draws must be at least 1, got {args.draws}")
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    if not rows:
        raise ValueError("no --rows given")
    for row in rows:
        row_flags(row)  # a bad row fails before anything trains
    seeds = parse_seeds(args.seed_values, args.seeds)
    tag = Path(args.recipe).stem if args.recipe else args.data.split(":")[0]
    ckpts = Path(args.checkpoints or ROOT / "checkpoints" / "translation" / tag)
    out = Path(args.output or ROOT / "reports" / f"translation-{tag}")
    per_run: dict[str, dict[int, dict[str, Any]]] = {}
    seconds = {"train": 0.0, "evaluate": 0.0}
    n: dict[str, set[int]] = {"val": set(), "test": set()}  # validation is carved per seed: sizes differ
    for seed in seeds:
        for row in rows:
            directory = ckpts / row / f"seed{seed}"
            trained = ensure_trained(directory, train_argv(args, row, seed), args.retrain)
            seconds["train"] += trained["seconds"] or 0.0
            key = hashlib.sha256(json.dumps([checkpoint_hash(directory), args.draws, args.batch_size]).encode()
                                 ).hexdigest()[:16]
            cached = directory.with_name(f"{directory.name}.field-{key}.json")
            if cached.is_file():
                evaluation = json.loads(cached.read_text())
            else:
                print(f"evaluating {row}, seed {seed}")
                t = time.time()
                evaluation = evaluate_run(args, directory, seed)
                evaluation["seconds"] = round(time.time() - t, 1)
                atomic_write_text(cached, json.dumps(evaluation))
            seconds["evaluate"] += evaluation.get("seconds", 0.0)
            per_run.setdefault(row, {})[seed] = evaluation
            for split in ("val", "test"):
                n[split].add(evaluation[split]["n"])
    report = {"setting": f"{args.recipe or args.data}" + (f", {args.epochs} epochs" if args.epochs else "")
              + (f", limit {args.limit}" if args.limit else ""),
              "seed_values": seeds, "draws": args.draws, "n": {k: sorted(v) for k, v in n.items()}, "rows": rows,
              "row_flags": {r: row_flags(r) for r in rows},
              "train_commands": [shlex.join(train_argv(args, r, 0)).replace("--seed 0", "--seed S")
                                 + f" --output .../{r}/seedS" for r in rows],
              "command": "python benchmarks/translation.py " + shlex.join(sys.argv[1:] if Path(sys.argv[0]).name
                                                                          == "translation.py" else []),
              "seconds": seconds, "summary": summarise(per_run),
              "per_run": {r: {str(s): e for s, e in by.items()} for r, by in per_run.items()}}
    atomic_write_text(out / "results.json", json.dumps(report, indent=2))
    md = markdown(report)
    atomic_write_text(out / "results.md", md)
    print(md)
    print(f"wrote {out}/results.json, results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
