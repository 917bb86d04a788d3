"""Evaluate a bridge checkpoint on a corpus split under the robustness protocols, with missing
modalities reconstructed and zero-filled.

Protocols: ``patterns`` (every non-empty subset of the modalities), ``missing`` (each
(sample, modality) dropped with probability η, mean ± std over seeds), ``noise`` (input noise
per modality and on all at once, see bridge/eval/robustness.py), and ``field``, the published
methods' protocol on CMU-MOSI (CyIN, IMDer): weighted F1 averaged over the fixed missing
patterns and over missing rates η = 0.1 … 0.7, text only and no text (not run by default).

    python evaluate.py --checkpoint checkpoints/synthetic-tiny
    python evaluate.py --checkpoint checkpoints/mosi-small --data mosi --split test --json
    python evaluate.py --checkpoint checkpoints/synthetic-tiny --protocols missing --etas 0,0.5 --seeds 5
    python evaluate.py --checkpoint checkpoints/fer2013-small --protocols patterns --test-views crops
    python evaluate.py --checkpoint checkpoints/mosi-small --data mosi --protocols field   # beside CyIN / IMDer
    python evaluate.py --checkpoint RUN/cycle1 RUN/cycle2 RUN/cycle3 --output reports/ensemble  # averaged
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.cli import check_writable, run_cli
from bridge.views import TEST_VIEWS


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="evaluate.py", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", default=None, nargs="+",
                   help="checkpoint directory written by train.py, or a shipped release's name (default: the shipped "
                        "model, emotion7); several: an ensemble (their probabilities averaged)")
    p.add_argument("--data", default=None, help="corpus (default: the one the checkpoint was trained on)")
    p.add_argument("--data-root", default=None, help="data root (default: $BRIDGE_DATA_ROOT or ../shared/data)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--limit", type=int, default=None, help="at most this many samples")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--output", default=None,
                   help="report directory (default: CHECKPOINT/eval-DATA-SPLIT; an ensemble: the first's "
                        "eval-DATA-SPLIT-ensemble-HASH)")
    p.add_argument("--device", default="auto")
    p.add_argument("--cache-dir", default=None,
                   help="preprocessing cache (default: $BRIDGE_CACHE_DIR or .cache/bridge)")
    p.add_argument("--no-cache", action="store_true", help="decode and preprocess without the cache")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.add_argument("--modalities", default=None,
                   help="comma-separated modalities that may be observed (default: all the checkpoint's)")
    p.add_argument("--protocols", default=",".join(DEFAULT_PROTOCOLS),
                   help=f"comma-separated, from {', '.join(PROTOCOLS)} (field: the published methods' fixed and random "
                        "missing-modality averages, η 0.1-0.7 whatever --etas says)")
    p.add_argument("--etas", default=",".join(f"{i / 10:g}" for i in range(8)),
                   help="missing rates η in [0, 1) for the missing protocol")
    p.add_argument("--noise-levels", default=",".join(f"{i / 10:g}" for i in range(10)),
                   help="noise levels in [0, 1] for the noise protocol")
    p.add_argument("--seeds", type=int, default=3, help="random draws of the masks and noise (mean ± std)")
    p.add_argument("--test-views", default="checkpoint", choices=["checkpoint", *TEST_VIEWS],
                   help="faces averaged over test-time views: single crops, with their mirror image, or ten crops "
                        "(five zoomed crops and their mirrors; docs/inference.md); checkpoint: as the run recorded")
    return p.parse_args(argv)


PROTOCOLS = ("patterns", "missing", "noise", "field")
DEFAULT_PROTOCOLS = ("patterns", "missing", "noise")


def parse_protocols(spec: str) -> tuple[str, ...]:
    """``"missing,patterns"`` -> ``("patterns", "missing")``; raises ValueError on an unknown name."""
    names = {n.strip() for n in spec.split(",") if n.strip()}
    unknown = sorted(names - set(PROTOCOLS))
    if unknown:
        raise ValueError(f"unknown protocol {', '.join(unknown)} (choose from {', '.join(PROTOCOLS)})")
    if not names:
        raise ValueError("no protocol given")
    return tuple(p for p in PROTOCOLS if p in names)


def parse_levels(spec: str, name: str, upper_open: bool) -> tuple[float, ...]:
    """``"0,0.1,0.5"`` -> sorted distinct levels in [0, 1) or [0, 1]; raises ValueError on bad input."""
    try:
        levels = sorted({float(v) for v in spec.split(",") if v.strip()})
    except ValueError:
        raise ValueError(f"{name} must be comma-separated numbers, got {spec!r}") from None
    if not levels:
        raise ValueError(f"no {name} given")
    for v in levels:
        if not (0 <= v < 1 if upper_open else 0 <= v <= 1):
            raise ValueError(f"{name} {v:g} is outside {'[0, 1)' if upper_open else '[0, 1]'}")
    return tuple(levels)


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


def curve_table(levels: list[float], by_fill: dict[str, dict[str, Any]], level_name: str, title: str) -> str:
    """Macro F1 and accuracy (mean ± std over seeds) per level and fill, then the areas under the curves."""
    fills = list(by_fill)
    head = " | ".join(f"{f} macro F1 | {f} accuracy" for f in fills)
    lines = [f"### {title}", "", f"| {level_name} | {head} |", "|---" * (1 + 2 * len(fills)) + "|"]
    for j, level in enumerate(levels):
        cells = []
        for f in fills:
            for metric in ("macro_f1", "accuracy"):
                c = by_fill[f][metric]
                cells.append(f"{100 * c['mean'][j]:.1f} ± {100 * c['std'][j]:.1f}")
        lines.append(f"| {level:g} | " + " | ".join(cells) + " |")
    if "auc" in by_fill[fills[0]]["macro_f1"]:
        cells = [f"{100 * by_fill[f][m]['auc']['mean']:.1f} ± {100 * by_fill[f][m]['auc']['std']:.1f}"
                 for f in fills for m in ("macro_f1", "accuracy")]
        lines.append("| **AUC** | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def robustness_markdown(robustness: dict[str, Any], title: str) -> str:
    md = ""
    if "missing" in robustness:
        r = robustness["missing"]
        md += (f"\n## {title}: missing rate η (each sample keeps one modality), {r['seeds']} seeds\n\n"
               + curve_table(r["levels"], r["results"], "η", "all modalities, randomly missing"))
    if "noise" in robustness:
        r = robustness["noise"]
        md += f"\n## {title}: input noise, {r['seeds']} seeds\n"
        for target, by_fill in r["results"].items():
            md += "\n" + curve_table(r["levels"], by_fill, "noise level", f"noise on {target}")
    return md


def field_markdown(field: dict[str, Any], title: str) -> str:
    """The field's protocol (:func:`bridge.eval.protocols.evaluate_field`): its figures per fill, then
    per pattern and per missing rate (weighted F1, %)."""
    from bridge.eval.protocols import FIELD_FIGURES

    fills = list(field["results"])
    names = {"reconstruct": "reconstruct", "zero": "zero-fill"}
    first = field["results"][fills[0]]
    etas = field["etas"]
    what = {"fixed_average": f"fixed average ({len(field['patterns'])} patterns: {', '.join(field['patterns'])})",
            "random_average": f"random average (η {etas[0]:g}–{etas[-1]:g}, {field['seeds']} draws)" if etas else "",
            "text_only": "text only", "no_text": f"no text ({first['named'].get('no_text', '')})",
            "all": f"all modalities ({first['named'].get('all', '')})"}
    lines = [f"\n## {title}: the field's protocol (CyIN, IMDer), weighted F1\n",
             "| figure | " + " | ".join(names.get(f, f) for f in fills) + " |", "|---" * (1 + len(fills)) + "|"]
    for key in FIELD_FIGURES:
        if key not in first["summary"]:
            continue
        cells = []
        for f in fills:
            stat = field["results"][f]["summary"][key]["weighted_f1"]
            cells.append(f"{100 * stat['mean']:.1f}" + (f" ± {100 * stat['std']:.1f}" if key == "random_average" else ""))
        lines.append(f"| {what[key]} | " + " | ".join(cells) + " |")
    if "reconstruct_minus_zero" in field:
        gain = field["reconstruct_minus_zero"]["weighted_f1"]
        lines.append(f"| reconstruct − zero-fill, mean over the fixed patterns | {100 * gain['mean']:+.1f} "
                     f"(worst: {gain['worst_pattern']} {100 * gain['worst']:+.1f}) | |")
    lines += ["", "| observed (fixed pattern) | " + " | ".join(names.get(f, f) for f in fills) + " |",
              "|---" * (1 + len(fills)) + "|"]
    for pattern in field["patterns"]:
        lines.append(f"| {pattern} | " + " | ".join(
            f"{100 * field['results'][f]['fixed'][pattern]['weighted_f1']:.1f}" for f in fills) + " |")
    if etas:
        lines += ["", "| η | " + " | ".join(names.get(f, f) for f in fills) + " |", "|---" * (1 + len(fills)) + "|"]
        for j, eta in enumerate(etas):
            lines.append(f"| {eta:g} | " + " | ".join(
                f"{100 * field['results'][f]['random']['weighted_f1']['mean'][j]:.1f} ± "
                f"{100 * field['results'][f]['random']['weighted_f1']['std'][j]:.1f}" for f in fills) + " |")
    return "\n".join(lines) + "\n"


def evaluated_modalities(spec: str | None, model_modalities, available, data: str):
    """The modalities to evaluate: ``--modalities`` or the checkpoint's, each in the checkpoint and the corpus.

    Raises:
        ValueError: a requested modality the checkpoint lacks, or one the corpus lacks.
    """
    from bridge.modality import parse_modalities

    wanted = parse_modalities(spec) if spec else tuple(model_modalities)
    names = lambda ms: ", ".join(m.value for m in ms) or "none"  # noqa: E731
    lacking = [m for m in wanted if m not in model_modalities]
    if lacking:
        raise ValueError(f"the checkpoint has no {names(lacking)} (it has {names(model_modalities)})")
    lacking = [m for m in wanted if m not in available]
    if lacking:
        have = [m for m in wanted if m in available]
        hint = f"; evaluate the rest with --modalities {','.join(m.value for m in have)}" if have else ""
        raise ValueError(f"{data} has no {names(lacking)} (it has {names(available)}){hint}")
    return tuple(m for m in model_modalities if m in wanted)


def other_splits(ckpts: list[Path], metas: list[dict]) -> list[str]:
    """The ensemble members (after the first) trained on another split of the data than the first
    (corpus, split options such as the seed, or limit): one member's validation samples may then
    be another's training samples; only the test split is shared."""
    def key(meta: dict) -> str:
        data = meta.get("data", {})
        return json.dumps([data.get("name"), data.get("options"), data.get("limit")], sort_keys=True)

    return [str(c) for c, m in zip(ckpts[1:], metas[1:]) if key(m) != key(metas[0])]


def check_member_splits(ckpts: list[Path], metas: list[dict], split: str) -> None:
    """Raises ValueError when :func:`other_splits` names a member."""
    differ = other_splits(ckpts, metas)
    if differ:
        raise ValueError(f"{', '.join(differ)} were trained on another split of the data than {ckpts[0]} "
                         f"(corpus, split options or limit): their {split} samples may overlap a member's "
                         "training samples; evaluate the ensemble on --split test")


def check_args(args: argparse.Namespace) -> None:
    """One-line errors for values no evaluation can use, and an unwritable report folder,
    before torch is imported or a checkpoint read."""
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be at least 1 sample, got {args.limit}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {args.seeds}")
    from bridge.release import locate

    checkpoints = [locate(c) for c in (args.checkpoint or [None])]  # None: the shipped model
    for c in checkpoints:
        if not Path(c).is_dir():
            raise FileNotFoundError(f"--checkpoint {c} is not a folder")
    if args.output is not None:
        check_writable(args.output, "--output")
    else:  # the default report folder goes inside the (first) checkpoint, or reports/ for a release
        try:
            check_writable(report_root(checkpoints[0]), "the report folder")
        except OSError as e:
            raise OSError(f"{e}; pass --output DIR to write the report elsewhere") from None


def report_root(checkpoint: Path) -> Path:
    """Where reports go by default: inside a checkpoint, or ``reports/NAME`` for a sealed release."""
    from bridge.release import is_release

    return Path("reports") / checkpoint.name if is_release(checkpoint) else checkpoint


@dataclass
class Evaluation:
    """What one run of evaluate.py scores: a model (or an ensemble) and one split, decoded and
    preprocessed as in training."""

    checkpoints: list[Path]
    metas: list[dict[str, Any]]
    model: Any  # BridgeModel, or an ensemble of them
    device: Any
    data: str  # the corpus's name as its reader gives it
    split: str
    dataset: Any  # ExampleDataset
    preprocessor: Any
    modalities: tuple  # the modalities that may be observed
    views: str  # the test-time views of faces (bridge.views)


@dataclass
class Scores:
    """The protocols' results (each empty when not run) and how long they took."""

    patterns: dict[str, Any]
    robustness: dict[str, Any]
    field: dict[str, Any]
    seconds: float


PROTOCOL_TEXT = ("patterns: fixed modality subsets; missing: each (sample, modality) dropped with probability eta, "
                 "one kept; noise: input corruption per modality and on all; field: weighted F1 averaged over the "
                 "fixed patterns with one modality or more missing and over eta 0.1-0.7 (CyIN, IMDer), text only, "
                 "no text; missing modalities reconstructed by translation or zero-filled")


def _evaluate(args: argparse.Namespace) -> int:
    check_args(args)
    protocols = parse_protocols(args.protocols)
    etas = parse_levels(args.etas, "missing rate", upper_open=True) if "missing" in protocols else ()
    levels = parse_levels(args.noise_levels, "noise level", upper_open=False) if "noise" in protocols else ()
    run = prepare(args, check_field="field" in protocols)
    scores = score(run, protocols, etas, levels, args.seeds, args.batch_size)
    write_report(run, scores, protocols, args.output, args.json)
    return 0


def prepare(args: argparse.Namespace, check_field: bool = False) -> Evaluation:
    """Load the checkpoint(s) and the split, decoded by the model's own decoder and preprocessed
    (through the cache) as in training. ``check_field``: refuse now what the field protocol cannot score.

    Raises:
        ValueError: labels or modalities the checkpoint and the corpus do not share; validation
            scores of an ensemble whose members split the data differently; no usable sample.
    """
    from bridge.cache import default_cache_dir
    from bridge.checkpoint import tokenizer_dir
    from bridge.data.corpora import load_splits
    from bridge.data.corpus import attach_decoder
    from bridge.dataset import ExampleDataset
    from bridge.ensemble import load_models
    from bridge.eval.protocols import field_patterns
    from bridge.media.decoder import MediaDecoder
    from bridge.preprocess import Preprocessor
    from bridge.recipes import corpus_modalities
    from bridge.release import locate
    from bridge.runtime import pick_device
    from bridge.views import checkpoint_views, require_face_views

    ckpts = [locate(c) for c in (args.checkpoint or [None])]
    device = pick_device(args.device)
    model, metas = load_models(ckpts, device)
    meta = metas[0]
    views = checkpoint_views(meta) if args.test_views == "checkpoint" else args.test_views
    require_face_views(model.config, views)
    data_meta = meta.get("data", {})
    data = args.data or data_meta.get("name") or "synthetic"
    if args.split != "test":
        check_member_splits(ckpts, metas, args.split)
    # a model trained on a manifest's ready-made face crops (train.py --no-face-detection) meets them so here too
    detect = not (data.startswith("manifest:") and data_meta.get("face_detection") is False)
    splits = load_splits(data, args.data_root or data_meta.get("data_root"),
                         seed=meta.get("training", {}).get("seed", 0), limit=args.limit, detect_faces=detect)
    attach_decoder(splits, MediaDecoder.from_config(model.config, detect_faces=detect))  # as in training
    if tuple(splits.labels) != tuple(model.config.labels):
        raise ValueError(f"label mismatch: {data} has labels {list(splits.labels)}, "
                         f"the checkpoint {list(model.config.labels)}")
    samples = splits.split(args.split)
    modalities = evaluated_modalities(args.modalities, model.modalities, corpus_modalities(samples), data)
    if check_field:
        field_patterns(modalities)  # one modality: a one-line error before anything is encoded
    preprocessor = Preprocessor(model.config, tokenizer_dir(ckpts[0]))
    cache_dir = None if args.no_cache else (args.cache_dir or default_cache_dir())
    dataset = ExampleDataset(samples, preprocessor, f"preprocess {args.split}", cache_dir)
    if not len(dataset):
        raise ValueError(f"no usable samples in {data} {args.split}")
    return Evaluation(ckpts, metas, model, device, splits.name, args.split, dataset, preprocessor, modalities,
                      views)


def score(run: Evaluation, protocols: tuple[str, ...], etas: tuple[float, ...], levels: tuple[float, ...],
          seeds: int, batch_size: int) -> Scores:
    """Run the protocols on the prepared split."""
    from bridge.dataset import make_loader
    from bridge.eval.protocols import evaluate_field, evaluate_patterns, evaluate_robustness
    from bridge.eval.robustness import noise_context

    loader = make_loader(run.dataset, batch_size, False, 0, 0)
    shared = {"modalities": run.modalities, "views": run.views}
    start = time.time()
    patterns = evaluate_patterns(run.model, loader, run.device, **shared) if "patterns" in protocols else {}
    robustness = {}
    if etas or levels:
        context = noise_context(run.model, run.preprocessor) if levels else None
        robustness = evaluate_robustness(run.model, loader, run.device, etas, levels, seeds, context, **shared)
    field = evaluate_field(run.model, loader, run.device, seeds, **shared) if "field" in protocols else {}
    return Scores(patterns, robustness, field, time.time() - start)


def write_report(run: Evaluation, scores: Scores, protocols: tuple[str, ...], output: str | None,
                 as_json: bool) -> Path:
    """Write results.json, results.md and the figures; print the Markdown (or the JSON). Returns the
    report folder: ``output``, else the default under the (first) checkpoint."""
    from bridge.checkpoint import atomic_write_text
    from bridge.eval.robustness_plots import plot_missing, plot_noise
    from bridge.modality import pattern_name
    from bridge.plots import plot_confusion, plot_patterns

    ckpts, labels = run.checkpoints, run.model.config.labels
    hashes = [checkpoint_hash(c) for c in ckpts]
    suffix = "" if len(ckpts) == 1 else "-ensemble-" + hashlib.sha256("".join(hashes).encode()).hexdigest()[:8]
    out_dir = Path(output or report_root(ckpts[0]) / f"eval-{run.data}-{run.split}{suffix}")
    members = {} if len(ckpts) == 1 else {"ensemble": [{"checkpoint": str(c), "checkpoint_sha256": h}
                                                       for c, h in zip(ckpts, hashes)]}
    report = {"checkpoint": str(ckpts[0]), "checkpoint_sha256": hashes[0], **members, "data": run.data,
              "split": run.split, "n": len(run.dataset), "modalities": [m.value for m in run.modalities],
              "skipped": run.dataset.skipped, "labels": list(labels), "test_views": run.views,
              "protocols": list(protocols), "protocol": PROTOCOL_TEXT, "seconds": round(scores.seconds, 2),
              "results": scores.patterns, "robustness": scores.robustness,
              **({"field": scores.field} if scores.field else {})}
    what = (f"checkpoint {ckpts[0]}" if len(ckpts) == 1 else
            f"ensemble of {len(ckpts)} checkpoints ({', '.join(map(str, ckpts))})")
    title = f"{run.data} {run.split} (n={len(run.dataset)}), {what}"
    md, figures = "", []
    if scores.patterns:
        md = markdown_table(scores.patterns, title)
        full = pattern_name(run.modalities)
        if full in scores.patterns:
            md += f"\n### Per class, {full}, reconstruct\n\n" + per_class_table(scores.patterns[full]["reconstruct"])
            plot_confusion(scores.patterns[full]["reconstruct"]["confusion"], labels, out_dir / "confusion.png",
                           f"{run.data} {run.split}: {full}")
            figures.append("confusion.png")
        plot_patterns(scores.patterns, out_dir / "patterns.png")
        figures.append("patterns.png")
    md += robustness_markdown(scores.robustness, title)
    if scores.field:
        md += field_markdown(scores.field, title)
    if "missing" in scores.robustness:
        plot_missing(scores.robustness["missing"], out_dir / "missing.png")
        figures.append("missing.png")
    if "noise" in scores.robustness:
        plot_noise(scores.robustness["noise"], out_dir / "noise.png")
        figures.append("noise.png")
    atomic_write_text(out_dir / "results.json", json.dumps(report, indent=2))
    atomic_write_text(out_dir / "results.md", md)
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        print(md)
        print(f"wrote {out_dir}/results.json, results.md, {', '.join(figures)} ({scores.seconds:.1f}s)")
    return out_dir


if __name__ == "__main__":
    sys.exit(main())
