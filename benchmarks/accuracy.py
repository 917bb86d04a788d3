"""Accuracy on real corpora: each recipe trained by train.py (or reused), scored on its test
split, against the anchors measured on the same split (../shared/data/README.md).

    python benchmarks/accuracy.py                       # every row, 3 seeds each
    python benchmarks/accuracy.py --rows mosi,mosi-av   # some rows
    python benchmarks/accuracy.py --rows meld-text --seeds 1

A row trains ``python train.py ARGS --seed S --output checkpoints/accuracy/RUN/seedS`` for each
seed (RUN names the command) unless that command already finished there (an interrupted run resumes), then evaluates
the test split on the row's modality pattern. Hyperparameters come from validation data only;
the test split is read once per figure. Rows sharing a training command with
``benchmarks/robustness.py`` (``mosi``, ``paired-small``) share its checkpoints. The FER-2013
chain is one recipe with warm restarts (``recipes/fer2013-chain.json``): row ``fer2013-restartK`` runs
it with ``--restarts K`` (its folder keeps every cycle under ``cycles/``); ``paired``'s recipe names
its encoders' recipes itself, which train.py trains first when missing. An ensemble row averages the
probabilities of other rows' runs (``bridge.ensemble``): ``fer2013-snapshots`` the first three FER-2013
cycles of each seed, ``mosi-seeds`` and ``mosi-av-seeds`` the ``mosi`` row's seeds 0 to 2 (one
figure); members are trained first when missing.

Prints the table and writes ``reports/accuracy.json`` (corpus, split, seeds, metric, figure,
preset, training time, hardware, command).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]

from bridge.cli import run_cli


@dataclass(frozen=True)
class Row:
    """One line of the table: a recipe (train.py arguments), what to score, and the bar to clear."""

    corpus: str
    train: tuple[str, ...]  # train.py arguments but --seed and --output
    pattern: str  # the observed modalities at test, e.g. "face+audio"
    metric: str  # headline metric
    target: float | str  # a number, or "best single + 10"
    anchors: str
    also: tuple[str, ...] = ()  # more metrics to print
    zero_fill: bool = False  # also score the same model with missing modalities zero-filled
    limit: int | None = None  # samples per split (the same --limit as training)
    shared: str | None = None  # checkpoint folder shared with benchmarks/robustness.py, {seed} filled in
    views: str = "single"  # test-time views of faces to score with (bridge.views); beyond single, also without
    split_note: str = field(default="")
    # rows whose runs are averaged (train is then unused): "row" is its run of each seed, "row@S" its
    # seed-S run (a row of such members alone is one figure: an ensemble of seeds)
    ensemble: tuple[str, ...] = ()


def fer_row(argv: tuple[str, ...], split_note: str, ensemble: tuple[str, ...] = ()) -> Row:
    """A FER-2013 face-alone row: train.py ``argv`` (or an ensemble of rows), scored with and without
    mirror averaging."""
    return Row("fer2013", argv, "face", "accuracy", 0.68, "mini-Xception 65.6 %, reference-paper CNN 63.2 %",
               also=("macro_f1",), views="mirror", split_note=split_note, ensemble=ensemble)


FER = ("--recipe", "recipes/fer2013.json")
FER_CHAIN = ("--recipe", "recipes/fer2013-chain.json")  # 40 epochs, then --restarts cycles of 30
FER_GPU = ("--recipe", "recipes/fer2013-chain-gpu.json")  # the same chain at batch 256: --train-args '--device cuda'


MOSI = ("--recipe", "recipes/mosi.json")
PAIRED = ("--data", "paired", "--preset", "small", "--epochs", "6", "--limit", "1000")
ROWS: dict[str, Row] = {
    "mosi": Row("mosi", MOSI, "face+audio+text", "accuracy", 0.82,
                "LR 75.0 %, MLP 76.4 %, frozen MiniLM + LR 78.6 %", also=("weighted_f1",),
                split_note="standard 1,447 / 752"),
    "mosi-av": Row("mosi", MOSI, "face+audio", "weighted_f1", 0.60, "LR / MLP on audio+video 55.2 / 56.0 wF1",
                   also=("accuracy",), zero_fill=True, split_note="text missing at test, reconstructed"),
    "mosi-text": Row("mosi", ("--recipe", "recipes/mosi-text.json"), "text", "accuracy", 0.786,
                     "frozen MiniLM + LR 78.6 % (the target here: beat it by fine-tuning)", also=("weighted_f1",),
                     split_note="transcripts alone"),
    "fer2013": fer_row(FER, "test 7,178"),
    "fer2013-long": fer_row(FER + ("--epochs", "30"), "test 7,178, 30 epochs"),
    "fer2013-40": fer_row(FER_CHAIN + ("--restarts", "0"), "test 7,178, 40 epochs"),
    "fer2013-restart": fer_row(FER_CHAIN + ("--restarts", "1"), "test 7,178, 40 + 30 epochs"),
    "fer2013-restart2": fer_row(FER_CHAIN + ("--restarts", "2"), "test 7,178, 40 + 30 + 30 epochs"),
    "fer2013-restart3": fer_row(FER_CHAIN + ("--restarts", "3"), "test 7,178, 40 + 30 + 30 + 30 epochs"),
    "fer2013-restart4": fer_row(FER_CHAIN, "test 7,178, 40 + 30 + 30 + 30 + 30 epochs"),
    "fer2013-gpu2": fer_row(FER_GPU + ("--restarts", "2"), "test 7,178, batch 256, 40 + 30 + 30 epochs"),
    "fer2013-gpu": fer_row(FER_GPU, "test 7,178, batch 256, 40 + 30 + 30 + 30 epochs"),
    "fer2013-snapshots": fer_row((), "test 7,178, the three cycles' checkpoints averaged",
                                 ensemble=("fer2013-40", "fer2013-restart", "fer2013-restart2")),
    "mosi-seeds": Row("mosi", (), "face+audio+text", "accuracy", 0.82,
                      "LR 75.0 %, MLP 76.4 %, frozen MiniLM + LR 78.6 %", also=("weighted_f1",),
                      split_note="standard 1,447 / 752, the mosi row's three seeds averaged",
                      ensemble=("mosi@0", "mosi@1", "mosi@2")),
    "mosi-av-seeds": Row("mosi", (), "face+audio", "weighted_f1", 0.60, "LR / MLP on audio+video 55.2 / 56.0 wF1",
                         also=("accuracy",), zero_fill=True,
                         split_note="text missing at test, reconstructed; the three seeds averaged",
                         ensemble=("mosi@0", "mosi@1", "mosi@2")),
    "ravdess": Row("ravdess8", ("--recipe", "recipes/ravdess8-whisper.json"),
                   "audio", "uar", 0.60, "eGeMAPS + LR 50.4 % UAR", also=("accuracy",),
                   split_note="actors 21-24, 8 classes"),
    "meld-text": Row("meld", ("--recipe", "recipes/meld-text.json"),
                     "text", "weighted_f1", 0.60, "TF-IDF + LR 46.6, frozen MiniLM + LR 55.7",
                     also=("accuracy",), split_note="test 2,610"),
    "paired-small": Row("paired", PAIRED, "face+audio+text", "macro_f1", "best single + 10",
                        "best single modality of the same model", also=("accuracy",), limit=1000,
                        shared="robustness/paired-small/seed{seed}/bridge",
                        split_note="label-paired, 1,000 evenly spaced test samples"),
    "paired": Row("paired", ("--recipe", "recipes/paired.json"), "face+audio+text", "macro_f1", "best single + 10",
                  "best single modality of the same model", also=("accuracy",),
                  split_note="label-paired, all 7,178 test faces"),  # the recipe names its encoders' recipes
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmarks/accuracy.py", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, from {', '.join(ROWS)}")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--data-root", default=None)
    p.add_argument("--checkpoints", default=str(ROOT / "checkpoints"), help="runs go to CHECKPOINTS/accuracy/ROW/")
    p.add_argument("--output", default=str(ROOT / "reports" / "accuracy.json"))
    p.add_argument("--train-args", default="", help="more train.py arguments for every row (e.g. '--device cuda')")
    p.add_argument("--limit", type=int, default=None, help="override every row's --limit (smoke runs)")
    p.add_argument("--epochs", type=int, default=None, help="override every row's --epochs (smoke runs)")
    p.add_argument("--preset", default=None, help="override every row's --preset (smoke runs)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-train", action="store_true",
                   help="score only the seeds already trained (a row with none is listed as not trained)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_cli("benchmarks/accuracy.py", lambda: run(args))


def recipe(row: Row, args: argparse.Namespace) -> list[str]:
    argv = list(row.train)
    for flag, value in (("--limit", args.limit), ("--epochs", args.epochs), ("--preset", args.preset)):
        if value is not None:
            if flag in argv:
                argv[argv.index(flag) + 1] = str(value)
            else:
                argv += [flag, str(value)]
    if args.data_root:
        argv += ["--data-root", args.data_root]
    import shlex

    return argv + shlex.split(args.train_args)


def member(spec: str) -> tuple[str, int | None]:
    """An ensemble member: ``"mosi@1"`` -> ``("mosi", 1)``, ``"fer2013-40"`` -> ``("fer2013-40", None)``."""
    name, _, seed = spec.partition("@")
    if name not in ROWS or (seed and not seed.isdigit()):
        raise ValueError(f"ensemble member {spec!r} is not ROW or ROW@SEED (rows: {', '.join(ROWS)})")
    return name, int(seed) if seed else None


def commands(name: str, args: argparse.Namespace) -> tuple[list[str], list[str], bool]:
    """A row's train.py arguments to run, the same naming its run folder, and whether its runs are
    the ones it shares with benchmarks/robustness.py."""
    row = ROWS[name]
    argv = recipe(row, args)
    shared = row.shared is not None and argv == list(row.train)  # overrides: a run of its own
    return argv, argv, shared


def train_options(argv: list[str]) -> argparse.Namespace:
    """What train.py makes of ``argv`` (recipe files read)."""
    from bridge.commands import train

    return train.parse_args(argv)


def run_name(argv: list[str]) -> str:
    """A folder name per training command (rows with the same command share their runs)."""
    import hashlib

    value = {flag: argv[i + 1] for i, flag in enumerate(argv[:-1]) if flag in ("--data", "--preset", "--recipe")}
    digest = hashlib.sha1(" ".join(sorted(argv)).encode()).hexdigest()[:8]
    if "--recipe" in value:  # the file's content counts too: an edited recipe is a new run
        text = (ROOT / value["--recipe"]).read_text(encoding="utf-8")
        digest = hashlib.sha1((digest + text).encode()).hexdigest()[:8]
        return f"{Path(value['--recipe']).stem}-{digest}"
    return f"{value.get('--data', 'data')}-{value.get('--preset', 'preset')}-{digest}"


def score(directories: list[Path], row: Row, args: argparse.Namespace, seed: int,
          limit: int | None) -> dict[str, Any]:
    """The test-split reports of the row's pattern (and of each single modality), per fill; for a
    row with test-time ``views`` of faces, with faces averaged over those views, and the same
    with single crops (``results_without_flip``). Several directories are scored as an ensemble, which also reports
    validation accuracy and macro F1 of the ensemble and of its best member (``validation``) when
    every member was trained on the same split."""
    from bridge.commands.evaluate import other_splits

    from bridge.cache import default_cache_dir
    from bridge.checkpoint import tokenizer_dir
    from bridge.data.corpora import load_splits
    from bridge.data.corpus import attach_decoder
    from bridge.ensemble import load_models
    from bridge.eval.protocols import evaluate_patterns
    from bridge.modality import parse_modalities
    from bridge.media.decoder import MediaDecoder
    from bridge.preprocess import Preprocessor
    from bridge.dataset import ExampleDataset, make_loader
    from bridge.runtime import pick_device

    device = pick_device(args.device)
    model, metas = load_models(directories, device)
    splits = load_splits(row.corpus, args.data_root, seed=seed, limit=limit)
    if tuple(splits.labels) != tuple(model.config.labels):
        raise ValueError(f"{directories[0]} was trained on other labels than {row.corpus}")
    attach_decoder(splits, MediaDecoder.from_config(model.config))  # decode media as in training and inference
    preprocessor = Preprocessor(model.config, tokenizer_dir(directories[0]))
    modalities = parse_modalities(row.pattern.replace("+", ","))

    def loader(split: str):
        dataset = ExampleDataset(splits.split(split), preprocessor, f"preprocess {split}", default_cache_dir())
        return make_loader(dataset, 64, False, 0, 0), len(dataset)

    def patterns(scored, data, views: str = row.views) -> dict[str, Any]:
        return evaluate_patterns(scored, data, device, ("reconstruct", "zero"), progress=False, modalities=modalities,
                                 views=views)

    test, n = loader("test")
    out: dict[str, Any] = {"n": n}
    if len(directories) > 1 and not other_splits(directories, metas):  # validation: ensemble against members
        val, _ = loader("val")
        reports = [patterns(m, val)[row.pattern]["reconstruct"] for m in (model, *model.members)]
        best = max(reports[1:], key=lambda r: r["macro_f1"])
        out["validation"] = {f"val {k}": reports[0][k] for k in ("accuracy", "macro_f1")}
        out["validation"].update({f"val {k} best member": best[k] for k in ("accuracy", "macro_f1")})
    if row.views != "single":
        out["results_without_flip"] = patterns(model, test, views="single")
    out["results"] = patterns(model, test)
    return out


def run(args: argparse.Namespace) -> int:
    from bridge.train.runs import ensure_trained, finished

    from bridge.checkpoint import atomic_write_text

    names = [n.strip() for n in args.rows.split(",") if n.strip()]
    unknown = [n for n in names if n not in ROWS]
    if unknown or not names:
        raise ValueError(f"unknown row {', '.join(unknown) or '(none)'} (choose from {', '.join(ROWS)})")
    if args.seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {args.seeds}")
    hardware = (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
                f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'}")
    table = []
    for name in names:
        row = ROWS[name]
        limit = args.limit if args.limit is not None else row.limit
        members = [member(m) for m in row.ensemble] if row.ensemble else [(name, None)]
        runs = [commands(m, args) for m, _ in members]  # (argv, name_argv, shared)
        runs_argv, seed_names = [argv for argv, _, _ in runs], ["S" if s is None else s for _, s in members]
        figures: dict[str, list[float]] = {}
        seconds = []
        for seed in range(1 if all(s is not None for _, s in members) else args.seeds):
            seeds = [seed if s is None else s for _, s in members]
            directories = [Path(args.checkpoints) / (ROWS[m].shared.format(seed=s) if shared else
                                                     f"accuracy/{run_name(name_argv)}/seed{s}")
                           for (m, _), s, (_, name_argv, shared) in zip(members, seeds, runs)]
            if args.no_train and not all(finished(d, argv + ["--seed", str(s)])
                                         for d, s, (argv, _, _) in zip(directories, seeds, runs)):
                continue
            spent = [ensure_trained(d, argv + ["--seed", str(s)], False)["seconds"]
                     for d, s, (argv, _, _) in zip(directories, seeds, runs)]
            seconds.append(None if None in spent else sum(spent))  # None: a run that did not record it
            scored = score(directories, row, args, seed, limit)
            rec = scored["results"][row.pattern]["reconstruct"]
            for metric in (row.metric, *row.also):
                figures.setdefault(metric, []).append(rec[metric])
            if row.views != "single":  # single crops too, as most published FER figures are
                figures.setdefault(f"{row.metric} without flip", []).append(
                    scored["results_without_flip"][row.pattern]["reconstruct"][row.metric])
            for key, value in scored.get("validation", {}).items():
                figures.setdefault(key, []).append(value)
            if row.zero_fill:
                figures.setdefault(f"{row.metric} zero-fill", []).append(
                    scored["results"][row.pattern]["zero"][row.metric])
            if row.target == "best single + 10":
                singles = {p: r["reconstruct"][row.metric] for p, r in scored["results"].items() if "+" not in p}
                figures.setdefault("best single", []).append(max(singles.values()))
                for pattern, value in singles.items():
                    figures.setdefault(f"{pattern} alone", []).append(value)
        if not seconds:
            print(f"| {name} | not trained: " + "; ".join(f"python train.py {' '.join(argv)} --seed {s}"
                                                       for argv, s in zip(runs_argv, seed_names)) + " |")
            continue
        mean = float(np.mean(figures[row.metric]))
        target = (float(np.mean(figures["best single"])) + 0.10 if row.target == "best single + 10"
                  else float(row.target))
        entry = {"row": name, "corpus": row.corpus, "split": "test", "split_note": row.split_note,
                 "pattern": row.pattern, "metric": row.metric, "seeds": len(seconds), "n": scored["n"],
                 "figures": {k: {"mean": float(np.mean(v)), "std": float(np.std(v)), "values": v}
                             for k, v in figures.items()},
                 "target": target, "target_rule": row.target, "met": bool(mean >= target - 1e-9 and (
                     not row.zero_fill or mean > np.mean(figures[f"{row.metric} zero-fill"]))),
                 "anchors": row.anchors, "test_views": row.views, "preset": train_options(runs[0][0]).preset,
                 "command": "; ".join(f"python train.py {' '.join(name_argv)} --seed {s}"
                                      for (_, name_argv, _), s in zip(runs, seed_names)),
                 **({"ensemble": list(row.ensemble)} if row.ensemble else {}),
                 "train_seconds": seconds, "hardware": hardware}
        table.append(entry)
        print(render([entry], header=len(table) == 1))
    atomic_write_text(Path(args.output), json.dumps({"rows": table}, indent=2))
    print(f"\nwrote {args.output}")
    return 0


def render(entries: list[dict[str, Any]], header: bool = True) -> str:
    lines = []
    if header:
        lines += ["| row | pattern | metric | bridge (mean ± std, seeds) | target | met | anchors |",
                  "|---|---|---|---|---|---|---|"]
    for e in entries:
        f = e["figures"]
        head = f[e["metric"]]
        cell = f"{100 * head['mean']:.1f} ± {100 * head['std']:.1f} ({e['seeds']})"
        extra = [f"{k.replace('_', ' ')} {100 * v['mean']:.1f}" for k, v in f.items() if k != e["metric"]]
        if extra:
            cell += "; " + ", ".join(extra)
        lines.append(f"| {e['row']} ({e['split_note']}) | {e['pattern']} | {e['metric'].replace('_', ' ')} | {cell} | "
                     f"{100 * e['target']:.1f} | {'yes' if e['met'] else 'no'} | {e['anchors']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
