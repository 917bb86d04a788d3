"""bridge against its baselines under missing and noisy modalities, all trained by train.py on
the same data and splits, in one command.

    python benchmarks/robustness.py --data mosi --preset small             # 3 training seeds
    python benchmarks/robustness.py --data paired --preset small --limit 3000
    python benchmarks/robustness.py --data synthetic --epochs 2 --seeds 1  # a quick look

For every training seed it trains with ``train.py`` (or reuses a finished run, or resumes an
interrupted one, under ``--checkpoints``):

- **bridge**: translation on (``--fill reconstruct``), evaluated with missing modalities
  reconstructed and, with the same weights, zero-filled;
- **early fusion**: the same architecture trained with ``--fill zero``, no translation;
- **unimodal** models, one per modality (``--modalities M``); a sample without that modality
  gets the training label prior;
- **late fusion**: the mean of the unimodal models' probabilities over the modalities a sample
  has (:mod:`bridge.baselines.late_fusion`).

Then every system runs evaluate.py's protocols on the test split: fixed modality patterns, the
sample-level missing rate η, noise per modality and on all at once, and the field's protocol
(CyIN, IMDer: weighted F1 averaged over the fixed missing patterns and over η = 0.1 … 0.7, text
only, no text; bridge, bridge zero-filled, early and late fusion). Seed ``s`` trains the
models and draws the masks and the noise. Summaries are mean ± std over seeds, the area under
each curve, and effective robustness against late fusion (MultiBench). On corpora shipped as
feature vectors (CMU-MOSI) a logistic regression on the concatenated features of each pattern
is added (scikit-learn, deterministic).

Writes ``results.json`` (every figure, the protocol, corpus, split, seeds, checkpoint hashes),
``results.md``, ``patterns.png``, ``missing.png``, ``noise.png`` and confusion matrices to
``--output``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]

from bridge.cli import run_cli
from bridge.modality import Modality
from bridge.train.runs import command_record, ensure_trained, finished, same_command  # noqa: F401 (tests use them here)

HEADLINE = {"mosi": "weighted_f1"}  # binary and imbalanced at test: weighted F1, as the field reports it
BRIDGE, BRIDGE_ZERO, EARLY, LATE = "bridge", "bridge, zero-filled", "early fusion (zero-fill)", "late fusion"
LR = "logistic regression"
FILL_GAIN = "bridge, reconstruct − zero-fill"  # mean over the field's fixed patterns, the same weights


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from bridge.commands.evaluate import PROTOCOLS

    p = argparse.ArgumentParser(prog="benchmarks/robustness.py", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default="mosi", help="corpus, as train.py --data")
    p.add_argument("--data-root", default=None)
    p.add_argument("--preset", default="small")
    p.add_argument("--seeds", type=int, default=3, help="training seeds 0..N-1 (each also draws the masks and noise)")
    p.add_argument("--seed-values", default=None,
                   help="comma-separated seeds instead of 0..N-1 (e.g. one per process; a later run over all "
                        "of them reuses their models and evaluations)")
    p.add_argument("--epochs", type=int, default=None, help="train.py --epochs (default: train.py's)")
    p.add_argument("--limit", type=int, default=None, help="at most this many samples per split")
    p.add_argument("--train-args", default="", help="more train.py arguments, e.g. '--lr 5e-4'")
    p.add_argument("--checkpoints", default=None, help="default: checkpoints/robustness/DATA-PRESET")
    p.add_argument("--output", default=None, help="report folder (default: reports/robustness-DATA-PRESET)")
    p.add_argument("--protocols", default=",".join(PROTOCOLS))
    p.add_argument("--etas", default=",".join(f"{i / 10:g}" for i in range(8)))
    p.add_argument("--noise-levels", default=",".join(f"{i / 10:g}" for i in range(10)))
    p.add_argument("--metric", default=None, help="headline metric (default: weighted_f1 on mosi, else macro_f1)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--retrain", action="store_true", help="train again even where a finished run exists")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_cli("benchmarks/robustness.py", lambda: run(args))


# --- training ---------------------------------------------------------------------------------------
def train_argv(args: argparse.Namespace, seed: int, system: str, modality: str | None = None) -> list[str]:
    from bridge.train.runs import given_flags

    argv = ["--data", args.data, "--preset", args.preset, "--seed", str(seed)]
    argv += given_flags(data_root=args.data_root, epochs=args.epochs, limit=args.limit)
    if system == "zero":
        argv += ["--fill", "zero"]
    extra = shlex.split(args.train_args)
    if modality:
        argv += ["--modalities", modality, "--modality-dropout", "0"]  # nothing to drop with one modality
        extra = own_modality_flags(extra, modality)
    return argv + extra


PER_MODALITY_FLAGS = ("--mismatch", "--init-encoder", "--set")  # values MODALITY=... (--set: MODALITY.FIELD=...)
MODALITY_NAMES = tuple(m.value for m in Modality)


def own_modality_flags(argv: list[str], modality: str) -> list[str]:
    """``argv`` without the ``--mismatch``, ``--init-encoder`` and ``--set MODALITY.FIELD=`` of
    modalities other than ``modality``: a unimodal model trains on the same samples as bridge,
    that modality swapped in the same share, its encoder configured alike and started from the
    same source (the others are not in it; ``--set fusion.depth=2`` and the like stay); and
    ``--test-views`` only for the face."""
    out, i = [], 0
    while i < len(argv):
        flag, value = argv[i], None
        if flag == "--test-views" or flag.startswith("--test-views="):  # faces' views: the face model's alone
            width = 1 if "=" in flag else 2
            out += argv[i:i + width] if modality == Modality.FACE.value else []
            i += width
            continue
        if flag in PER_MODALITY_FLAGS and i + 1 < len(argv):
            value, i = argv[i + 1], i + 2
        elif flag.split("=", 1)[0] in PER_MODALITY_FLAGS and "=" in flag:
            flag, value = flag.split("=", 1)
            i += 1
        else:
            out.append(flag)
            i += 1
            continue
        owner = value.split("=", 1)[0].split(".", 1)[0]
        if owner == modality or (flag == "--set" and owner not in MODALITY_NAMES):
            out += [flag, value]
    return out


# --- evaluation --------------------------------------------------------------------------------------
def logistic_regression(splits, patterns, labels) -> dict[str, dict[str, Any]]:
    """Per pattern, LR on the train split's concatenated feature vectors, scored on test."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from bridge.eval.metrics import classification_report

    def matrix(split, pattern):
        samples = [split[i] for i in range(len(split))]
        if not all(m in s.features for s in samples for m in pattern):
            return None, None
        rows = [np.concatenate([np.asarray(s.features[m], dtype=np.float64).reshape(-1) for m in pattern])
                for s in samples]
        return np.stack(rows), np.array([s.label for s in samples])

    out = {}
    for pattern in patterns:
        x, y = matrix(splits.train, pattern)
        if x is None:
            continue
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)
        xt, yt = matrix(splits.test, pattern)
        if xt is None:
            continue
        out["+".join(m.value for m in pattern)] = classification_report(yt, clf.predict(xt), labels)
    return out


def evaluate_seed(args, seed: int, dirs: dict[str, Path], protocol: dict[str, Any]) -> dict[str, Any]:
    """Every system's patterns, missing-rate and noise results for one training seed."""
    from bridge.baselines.late_fusion import LateFusion
    from bridge.cache import default_cache_dir
    from bridge.checkpoint import tokenizer_dir
    from bridge.model import load_checkpoint
    from bridge.data.corpora import load_splits
    from bridge.data.corpus import attach_decoder
    from bridge.media.decoder import MediaDecoder
    from bridge.eval.protocols import evaluate_field, evaluate_patterns, evaluate_robustness, subsets
    from bridge.modality import Modality
    from bridge.preprocess import Preprocessor
    from bridge.eval.robustness import noise_context
    from bridge.dataset import ExampleDataset, make_loader
    from bridge.runtime import pick_device

    device = pick_device(args.device)
    splits = load_splits(args.data, args.data_root, seed=seed, limit=args.limit)
    bridge_model = load_checkpoint(dirs["bridge"], device)[0]
    modalities = bridge_model.modalities
    attach_decoder(splits, MediaDecoder.from_config(bridge_model.config))  # decode media as in training and inference
    preprocessor = Preprocessor(bridge_model.config, tokenizer_dir(dirs["bridge"]))
    dataset = ExampleDataset(splits.test, preprocessor, "preprocess test", default_cache_dir())
    loader = make_loader(dataset, args.batch_size, False, 0, 0)
    counts = np.bincount([splits.train[i].label for i in range(len(splits.train))], minlength=len(splits.labels))
    prior = torch.tensor(counts, dtype=torch.float32)
    unimodal = {}
    for m in modalities:
        member = load_checkpoint(dirs[m.value], device)[0]
        if member.config.encoders[m] != bridge_model.config.encoders[m]:
            raise ValueError(f"the unimodal {m.value} model preprocesses differently from bridge")
        unimodal[m] = member
    systems = [(BRIDGE, bridge_model, {"reconstruct": BRIDGE, "zero": BRIDGE_ZERO}),
               (EARLY, load_checkpoint(dirs["zero"], device)[0], {"zero": EARLY}),
               (LATE, LateFusion(list(unimodal.values()), prior).to(device), {"reconstruct": LATE})]
    systems += [(f"{m.value} alone", LateFusion([unimodal[m]], prior).to(device), {"reconstruct": f"{m.value} alone"})
                for m in modalities]
    out: dict[str, Any] = {"n": len(dataset), "skipped": dataset.skipped, "patterns": {}, "missing": {}, "noise": {},
                           "field": {}}
    for title, system, names in systems:
        fills = tuple(names)
        print(f"seed {seed}: evaluating {title}")
        if "patterns" in protocol["protocols"]:
            for pattern, by_fill in evaluate_patterns(system, loader, device, fills, progress=False).items():
                for fill, report in by_fill.items():
                    out["patterns"].setdefault(pattern, {})[names[fill]] = report
        if protocol["etas"] or protocol["noise_levels"]:
            context = noise_context(system, preprocessor) if protocol["noise_levels"] else None
            rob = evaluate_robustness(system, loader, device, protocol["etas"], protocol["noise_levels"], 1, context,
                                      fills, progress=False, first_seed=seed)
            for fill, name in names.items():
                if "missing" in rob:
                    out["missing"][name] = {k: v["mean"] for k, v in rob["missing"]["results"][fill].items()}
                if "noise" in rob:
                    for target, by_fill in rob["noise"]["results"].items():
                        out["noise"].setdefault(target, {})[name] = {k: v["mean"] for k, v in by_fill[fill].items()}
        if "field" in protocol["protocols"] and len(system.modalities) > 1:
            field = evaluate_field(system, loader, device, seeds=1, fills=fills, first_seed=seed, progress=False)
            for fill, name in names.items():
                out["field"][name] = {key: {k: v["mean"] for k, v in by.items()}
                                      for key, by in field["results"][fill]["summary"].items()}
            if "reconstruct_minus_zero" in field:
                out["field"][FILL_GAIN] = {"fixed_gain": {k: v["mean"] for k, v in field["reconstruct_minus_zero"].items()}}
    probe = [splits.train[i] for i in range(min(32, len(splits.train)))]
    if all(m in s.features for s in probe for m in modalities):  # a feature corpus
        lr = logistic_regression(splits, subsets(tuple(m for m in Modality if m in modalities)),
                                 bridge_model.config.labels)
        for pattern, report in lr.items():
            out["patterns"].setdefault(pattern, {})[LR] = report
    return out


# --- summaries ----------------------------------------------------------------------------------------
METRICS = ("accuracy", "macro_f1", "weighted_f1", "uar")


def _stat(values: list[float]) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "values": [float(v) for v in values]}


def summarise(per_seed: list[dict[str, Any]], levels: dict[str, tuple[float, ...]]) -> dict[str, Any]:
    """Mean ± std over seeds of every figure, areas under the curves and effective robustness."""
    from bridge.eval.robustness import area_under_curve, effective_robustness

    summary: dict[str, Any] = {"patterns": {}, "missing": {}, "noise": {}, "field": {}}
    for name, by in per_seed[0].get("field", {}).items():  # name -> figure -> metric
        summary["field"][name] = {key: {k: _stat([s["field"][name][key][k] for s in per_seed]) for k in by[key]}
                                  for key in by}
    for pattern in per_seed[0]["patterns"]:
        for name in per_seed[0]["patterns"][pattern]:
            summary["patterns"].setdefault(pattern, {})[name] = {
                k: _stat([s["patterns"][pattern][name][k] for s in per_seed]) for k in METRICS}

    def curves(get, grid) -> dict[str, Any]:
        out = {}
        for metric in METRICS:
            runs = np.array([get(s)[metric] for s in per_seed])  # (seeds, levels)
            entry = {"mean": runs.mean(0).tolist(), "std": runs.std(0).tolist()}
            if len(grid) >= 2:
                entry["auc"] = _stat([area_under_curve(grid, r) for r in runs])
            out[metric] = entry
        return out

    def robustness(get, get_late, grid) -> dict[str, Any]:
        entry = curves(get, grid)
        for metric in METRICS:
            entry[metric]["effective_robustness"] = _stat(
                [effective_robustness(get(s)[metric], get_late(s)[metric]) for s in per_seed])
        return entry

    etas, noise = levels["missing"], levels["noise"]
    for name in per_seed[0]["missing"]:
        summary["missing"][name] = robustness(lambda s: s["missing"][name], lambda s: s["missing"][LATE], etas)
    for target in per_seed[0]["noise"]:
        for name in per_seed[0]["noise"][target]:
            get = (lambda s, t=target, n=name: s["noise"][t][n])
            late_target = target if LATE in per_seed[0]["noise"][target] else "all"
            summary["noise"].setdefault(target, {})[name] = robustness(
                get, lambda s, t=late_target: s["noise"][t][LATE], noise)
    return summary


def _pm(stat: dict[str, float], scale: float = 100.0) -> str:
    return f"{scale * stat['mean']:.1f} ± {scale * stat['std']:.1f}"


def markdown(report: dict[str, Any]) -> str:
    s, metric = report["summary"], report["metric"]
    from bridge.eval.robustness_plots import METRIC_NAMES

    mname = METRIC_NAMES[metric]
    names = list(dict.fromkeys(n for by in s["patterns"].values() for n in by))
    lines = [f"# Robustness: {report['corpus']} {report['split']} (n={report['n']}), preset {report['preset']}",
             "", f"{report['seeds']} training seeds ({', '.join(map(str, report['seed_values']))}); "
             f"mean ± std over seeds; seed s trains every model and draws the masks and noise. "
             f"Metric: {mname} (%); accuracy in results.json.", ""]
    if s["patterns"]:
        lines += [f"## Fixed patterns: {mname}", "", "| observed | " + " | ".join(names) + " |",
                  "|---" * (len(names) + 1) + "|"]
        for pattern, by in s["patterns"].items():
            lines.append(f"| {pattern} | " + " | ".join(_pm(by[n][metric]) if n in by else "—" for n in names) + " |")
        lines += ["", "## Fixed patterns: accuracy", "", "| observed | " + " | ".join(names) + " |",
                  "|---" * (len(names) + 1) + "|"]
        for pattern, by in s["patterns"].items():
            lines.append(f"| {pattern} | " + " | ".join(_pm(by[n]["accuracy"]) if n in by else "—"
                                                       for n in names) + " |")
    if s.get("field"):
        from bridge.eval.protocols import FIELD_FIGURES

        names = [n for n in s["field"] if n != FILL_GAIN]
        lines += ["", "## The field's protocol (CyIN, IMDer): weighted F1", "",
                  "Fixed: the mean over the patterns with one modality or more present and one or more missing; "
                  "random: the mean over η = 0.1 … 0.7, each (sample, modality) dropped with probability η, one kept "
                  "(seed s draws the masks).", "", "| figure | " + " | ".join(names) + " |",
                  "|---" * (len(names) + 1) + "|"]
        for key, title in FIELD_FIGURES.items():
            if key in s["field"][names[0]]:
                lines.append(f"| {title} | " + " | ".join(_pm(s["field"][n][key]["weighted_f1"]) if key in s["field"][n]
                                                         else "—" for n in names) + " |")
        if FILL_GAIN in s["field"]:
            lines.append(f"| {FILL_GAIN} (mean over the fixed patterns) | "
                         + _pm(s["field"][FILL_GAIN]["fixed_gain"]["weighted_f1"]) + " |" + " —|" * (len(names) - 1))
    if s["missing"]:
        names = list(s["missing"])
        lines += ["", f"## Missing rate η: {mname}", "", "| η | " + " | ".join(names) + " |",
                  "|---" * (len(names) + 1) + "|"]
        for j, eta in enumerate(report["levels"]["missing"]):
            lines.append(f"| {eta:g} | " + " | ".join(
                f"{100 * s['missing'][n][metric]['mean'][j]:.1f} ± {100 * s['missing'][n][metric]['std'][j]:.1f}"
                for n in names) + " |")
        if len(report["levels"]["missing"]) >= 2:
            lines.append("| **AUC** | " + " | ".join(_pm(s["missing"][n][metric]["auc"]) for n in names) + " |")
        lines.append("| **effective robustness vs late fusion** | " + " | ".join(
            _pm(s["missing"][n][metric]["effective_robustness"]) for n in names) + " |")
    if s["noise"]:
        names = list(dict.fromkeys(n for by in s["noise"].values() for n in by))
        auc = len(report["levels"]["noise"]) >= 2
        lines += ["", f"## Noise: {'area under the ' + mname + ' curve' if auc else mname} "
                      f"(effective robustness vs late fusion)", "",
                  "Effective robustness (MultiBench): the system's gain over the late-fusion curve shifted to the "
                  "system's clean score, summed over the levels, in points.", "",
                  "| noise on | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for target, by in s["noise"].items():
            cells = []
            for n in names:
                if n not in by:
                    cells.append("—")
                    continue
                head = _pm(by[n][metric]["auc"]) if auc else _pm({"mean": by[n][metric]["mean"][0],
                                                                  "std": by[n][metric]["std"][0]})
                cells.append(f"{head} ({_pm(by[n][metric]['effective_robustness'])})")
            lines.append(f"| {target} | " + " | ".join(cells) + " |")
    lines += ["", "Training commands (per seed S):", ""]
    lines += [f"    python train.py {c}" for c in report["train_commands"]]
    train_s = sum(v for v in report["seconds"]["train"].values() if v)
    eval_s = sum(v for v in report["seconds"]["evaluate"] if v)
    lines += ["", f"Made by: `{report['command']}` ({report['hardware']}); training took {train_s / 60:.0f} min "
                  f"and evaluation {eval_s / 60:.0f} min, summed over the runs (per run in results.json).", ""]
    return "\n".join(lines)


def plots(report: dict[str, Any], out: Path, confusion: dict[str, Any], labels) -> list[str]:
    from bridge.plots import plot_confusion, plot_patterns
    from bridge.eval.robustness_plots import plot_missing, plot_noise

    s, metric, written = report["summary"], report["metric"], []
    if s["patterns"]:
        means = {p: {n: {metric: v[metric]["mean"]} for n, v in by.items()} for p, by in s["patterns"].items()}
        errors = {p: {n: v[metric]["std"] for n, v in by.items()} for p, by in s["patterns"].items()}
        plot_patterns(means, out / "patterns.png", metric, errors)
        written.append("patterns.png")
    if s["missing"]:
        plot_missing({"levels": report["levels"]["missing"], "seeds": report["seeds"], "results": s["missing"]},
                     out / "missing.png", metric)
        written.append("missing.png")
    if s["noise"]:
        plot_noise({"levels": report["levels"]["noise"], "seeds": report["seeds"], "results": s["noise"]},
                   out / "noise.png", metric)
        written.append("noise.png")
    for name, matrix in confusion.items():
        file = "confusion-" + re.sub(r"[^a-z0-9]+", "-", name.split(",")[0].lower()).strip("-") + ".png"
        plot_confusion(matrix, labels, out / file,
                       f"{report['corpus']} test, all modalities: {name} (seed {report['seed_values'][0]})")
        written.append(file)
    return written


def run(args: argparse.Namespace) -> int:
    from bridge.commands.evaluate import checkpoint_hash, parse_levels, parse_protocols

    from bridge.checkpoint import atomic_write_text
    from bridge.modality import pattern_name

    seeds = parse_seeds(args.seed_values, args.seeds)
    protocols = parse_protocols(args.protocols)
    protocol = {"protocols": protocols,
                "etas": parse_levels(args.etas, "missing rate", True) if "missing" in protocols else (),
                "noise_levels": parse_levels(args.noise_levels, "noise level", False) if "noise" in protocols else ()}
    metric = args.metric or HEADLINE.get(args.data, "macro_f1")
    if metric not in METRICS:
        raise ValueError(f"--metric must be one of {', '.join(METRICS)}")
    tag = f"{args.data.split(':')[0]}-{args.preset}"
    ckpts = Path(args.checkpoints or ROOT / "checkpoints" / "robustness" / tag)
    out = Path(args.output or ROOT / "reports" / f"robustness-{tag}")
    start = time.time()
    train_seconds, per_seed, hashes, confusion = {}, [], {}, {}
    for seed in seeds:
        base = ckpts / f"seed{seed}"
        dirs = {"bridge": base / "bridge", "zero": base / "early-fusion-zero"}
        ensure = {"bridge": train_argv(args, seed, "bridge"), "zero": train_argv(args, seed, "zero")}
        for name in ("bridge", "zero"):
            train_seconds[f"{name}/seed{seed}"] = ensure_trained(dirs[name], ensure[name], args.retrain)["seconds"]
        for m in saved_config(dirs["bridge"]).modalities:
            dirs[m.value] = base / f"unimodal-{m.value}"
            argv = train_argv(args, seed, "unimodal", m.value)
            train_seconds[f"{m.value}/seed{seed}"] = ensure_trained(dirs[m.value], argv, args.retrain)["seconds"]
        hashes[f"seed{seed}"] = {k: checkpoint_hash(d) for k, d in dirs.items()}
        # The evaluation of these models under this protocol is kept beside them and reused.
        key = hashlib.sha256(json.dumps([hashes[f"seed{seed}"], protocol, args.limit, args.batch_size],
                                        sort_keys=True).encode()).hexdigest()[:16]
        cached = base / f"evaluation-{key}.json"
        if cached.is_file():
            result = json.loads(cached.read_text())
        else:
            t = time.time()
            result = evaluate_seed(args, seed, dirs, protocol)
            result["seconds"] = round(time.time() - t, 1)
            atomic_write_text(cached, json.dumps(result))
        per_seed.append(result)
        if seed == seeds[0]:
            full = pattern_name(tuple(saved_config(dirs["bridge"]).modalities))
            confusion = {n: r["confusion"] for n, r in result["patterns"].get(full, {}).items()
                         if n in (BRIDGE, LATE, EARLY)}
    config = saved_config(ckpts / f"seed{seeds[0]}" / "bridge")
    levels = {"missing": list(protocol["etas"]), "noise": list(protocol["noise_levels"])}
    report = {"corpus": args.data, "split": "test", "n": per_seed[0]["n"], "preset": args.preset,
              "labels": list(config.labels), "metric": metric, "seeds": len(seeds),
              "seed_values": seeds, "levels": levels, "protocols": list(protocols),
              "protocol": "patterns: fixed modality subsets; missing: each (sample, modality) dropped with "
                          "probability eta, one kept; noise: input corruption per modality and on all at once; "
                          "field: weighted F1 averaged over the fixed patterns with one or more missing and over eta "
                          "0.1-0.7 (CyIN, IMDer), text only, no text; "
                          "seed s trains the models and draws the masks and noise",
              "systems": {BRIDGE: "translation on, missing modalities reconstructed",
                          BRIDGE_ZERO: "the bridge weights, missing modalities zero-filled at test",
                          EARLY: "trained with --fill zero (no translation), zero-filled",
                          LATE: "mean of the unimodal models' probabilities over present modalities",
                          "M alone": "unimodal model; the training label prior when M is missing",
                          LR: "scikit-learn LR on the concatenated features of the pattern (feature corpora)"},
              "train_commands": [shlex.join(train_argv(args, 0, "bridge")).replace("--seed 0", "--seed S")
                                 + " --output .../bridge",
                                 shlex.join(train_argv(args, 0, "zero")).replace("--seed 0", "--seed S")
                                 + " --output .../early-fusion-zero"]
                                + [shlex.join(train_argv(args, 0, "unimodal", m.value)).replace("--seed 0", "--seed S")
                                   + f" --output .../unimodal-{m.value}" for m in config.modalities],
              "checkpoints": str(ckpts), "checkpoint_sha256": hashes,
              "command": "python benchmarks/robustness.py " + shlex.join(sys.argv[1:] if argv_is_cli() else []),
              "hardware": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
                          f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'}",
              "seconds": {"train": train_seconds, "evaluate": [r["seconds"] for r in per_seed],
                          "total": round(time.time() - start, 1)},
              "summary": summarise(per_seed, levels), "per_seed": per_seed}
    figures = plots(report, out, confusion, config.labels)
    atomic_write_text(out / "results.json", json.dumps(report, indent=2))
    md = markdown(report)
    atomic_write_text(out / "results.md", md)
    print(md)
    print(f"wrote {out}/results.json, results.md, {', '.join(figures)}")
    return 0


def parse_seeds(values: str | None, count: int) -> list[int]:
    """``--seed-values 2,5`` or ``--seeds 3`` -> the training seeds."""
    if values:
        try:
            seeds = sorted({int(v) for v in values.split(",") if v.strip()})
        except ValueError:
            raise ValueError(f"--seed-values must be comma-separated integers, got {values!r}") from None
        if not seeds or seeds[0] < 0:
            raise ValueError("--seed-values must name non-negative seeds")
        return seeds
    if count < 1:
        raise ValueError(f"--seeds must be at least 1, got {count}")
    return list(range(count))


def saved_config(directory: Path):
    from bridge.checkpoint import read_meta
    from bridge.config import BridgeConfig

    return BridgeConfig.from_dict(read_meta(directory)["model"])


def argv_is_cli() -> bool:
    return Path(sys.argv[0]).name == "robustness.py"


if __name__ == "__main__":
    sys.exit(main())
