"""The shipped model's figures on the test splits, per modality and fused, each from one evaluate.py command.

    python benchmarks/release.py                          # the full test splits (minutes on a CPU)
    python benchmarks/release.py --subset                 # the fixed subsets tests/test_release.py checks
    python benchmarks/release.py --write                  # both, stored in the release's figures.json
    python benchmarks/release.py --anchors                # the text rows' anchor: frozen MiniLM-L6 + LR

Every row is ``python evaluate.py --checkpoint RELEASE --data CORPUS --modalities M --protocols patterns``
(``--limit N`` for a subset: N evenly spaced test items, the same every run) run as a subprocess,
and the figure is read from the ``results.json`` it writes. The missing modalities of a row are
reconstructed by translation from the observed ones, as ``infer.py`` does for a user who has only
a face, a voice or a text. ``--write`` stores the figures and their commands in the release
folder's ``figures.json`` and re-seals its manifest; the model card's table is made from it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Row:
    """One figure of the model card: a corpus's test split seen through some modalities."""

    name: str
    data: str
    modalities: str
    metric: str  # headline: accuracy, macro_f1, weighted_f1 or uar
    target: str
    anchor: str
    subset: int | None  # test items in the CI subset (None: the whole test split)


ROWS = (
    Row("face", "fer2013", "face", "accuracy", ">= 68 % acc, >= 64 macro F1",
        "fer mini-Xception 65.6 % / 63.0", 500),
    Row("voice", "ravdess", "audio", "uar", ">= 65 UAR", "eGeMAPS + LR 50.4 (8 classes)", None),
    # the text anchors: `python benchmarks/release.py --anchors` (C chosen on validation by the row's metric)
    Row("text-meld", "meld", "text", "weighted_f1", ">= 61 wF1", "frozen MiniLM-L6 + LR 55.6", 500),
    Row("text-goemotions", "goemotions", "text", "macro_f1", "above frozen MiniLM-L6 + LR (51.0)",
        "frozen MiniLM-L6 + LR 51.0", 500),
    Row("fused", "paired", "face,audio,text", "macro_f1", ">= 76 macro F1", "`paired` recipe 76.4 +- 0.8", 500),
)
METRICS = ("accuracy", "macro_f1", "weighted_f1", "uar")


def command(row: Row, release: str, subset: bool) -> list[str]:
    argv = ["evaluate.py", "--checkpoint", release, "--data", row.data, "--modalities", row.modalities,
            "--protocols", "patterns"]
    if subset and row.subset is not None:
        argv += ["--limit", str(row.subset)]
    return argv


def score(row: Row, release: str, subset: bool) -> dict:
    """Run the row's evaluate.py command; its metrics for the observed pattern, missing ones reconstructed."""
    argv = command(row, release, subset)
    with tempfile.TemporaryDirectory() as out:
        start = time.time()
        done = subprocess.run([sys.executable, *argv, "--output", out], cwd=ROOT, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"benchmarks/release.py: {' '.join(argv)} failed:\n{done.stderr.strip()[-2000:]}")
        report = json.loads((Path(out) / "results.json").read_text(encoding="utf-8"))
    pattern = "+".join(report["modalities"])
    figures = report["results"][pattern]["reconstruct"]
    return {"row": row.name, "data": row.data, "observed": pattern, "n": report["n"], "metric": row.metric,
            **{m: round(100 * float(figures[m]), 2) for m in METRICS}, "target": row.target, "anchor": row.anchor,
            "command": "python " + " ".join(argv), "seconds": round(time.time() - start, 1)}


def table(rows: list[dict], title: str) -> str:
    lines = [f"### {title}", "", "| part | test data (n) | observed | accuracy | macro F1 | weighted F1 | UAR | target |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [f"**{r[m]:.1f}**" if m == r["metric"] else f"{r[m]:.1f}" for m in METRICS]
        lines.append(f"| {r['row']} | {r['data']} ({r['n']}) | {r['observed']} | {' | '.join(cells)} | {r['target']} |")
    return "\n".join(lines)


START, END = "<!-- figures: made by benchmarks/release.py --write -->", "<!-- end of figures -->"


def card_table(results: dict) -> str:
    """The model card's table: each full-test figure, its CI-subset twin, and the command."""
    subset = {r["row"]: r for r in results.get("subset", [])}
    lines = ["| part | test data (n) | observed | metric | test | target | anchor | CI subset (n) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results["test"]:
        s = subset.get(r["row"])
        small = f"{s[s['metric']]:.1f} ({s['n']})" if s else ""
        lines.append(f"| {r['row']} | {r['data']} ({r['n']}) | {r['observed']} | {r['metric'].replace('_', ' ')} | "
                     f"**{r[r['metric']]:.1f}** | {r['target']} | {r['anchor']} | {small} |")
    lines += ["", "Commands (add `--limit N` for the CI subset; other metrics are in `figures.json`):", ""]
    lines += [f"- {r['row']}: `{r['command']}`" for r in results["test"]]
    return "\n".join(lines)


def anchors(rows: list[Row], data_root: str | None, limit: int | None) -> list[dict]:
    """The text rows' anchor (frozen MiniLM-L6, mean-pooled, under a logistic regression whose C is
    chosen on validation by the row's metric), on the same test split as the row."""
    from bridge.baselines.text_lr import text_lr

    out = []
    for row in rows:
        if row.modalities != "text":
            continue
        start = time.time()
        got = text_lr(row.data, data_root, select=row.metric, limit=limit)
        out.append({"row": row.name, "data": row.data, "observed": "text", "n": got["n"]["test"], "metric": row.metric,
                    **{m: round(100 * float(got["test"][m]), 2) for m in METRICS}, "target": "frozen MiniLM-L6 + LR",
                    "C": got["C"], "val_by_C": got["val_by_C"], "seconds": round(time.time() - start, 1)})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--release", default="emotion7", help="a shipped release's name or a checkpoint directory")
    p.add_argument("--subset", action="store_true", help="only the fixed CI subsets")
    p.add_argument("--write", action="store_true", help="score both and store them in the release's figures.json")
    p.add_argument("--rows", default=",".join(r.name for r in ROWS))
    p.add_argument("--anchors", action="store_true",
                   help="instead: the text rows' anchor, frozen MiniLM-L6 + logistic regression (needs no release)")
    p.add_argument("--data-root", default=None, help="with --anchors (default: $BRIDGE_DATA_ROOT or ../shared/data)")
    p.add_argument("--limit", type=int, default=None, help="with --anchors: at most N samples per split (quick runs)")
    p.add_argument("--output", default=None, help="default: reports/release.json (--anchors: reports/release-anchors.json)")
    args = p.parse_args(argv)
    wanted = [r for r in ROWS if r.name in args.rows.split(",")]
    if args.anchors:
        try:
            got = anchors(wanted, args.data_root, args.limit)
        except (FileNotFoundError, ValueError) as e:
            raise SystemExit(f"benchmarks/release.py --anchors: {e}") from None
        print(table(got, "frozen MiniLM-L6 + logistic regression, test splits"))
        out = Path(args.output or "reports/release-anchors.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(got, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out}")
        return 0
    modes = ("test", "subset") if args.write else (("subset",) if args.subset else ("test",))
    results = {}
    for mode in modes:
        results[mode] = [score(r, args.release, mode == "subset") for r in wanted]
        print(table(results[mode], f"{args.release}: {'CI subsets' if mode == 'subset' else 'test splits'}"))
        print()
    out = Path(args.output or "reports/release.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"wrote {out}")
    if args.write:
        from bridge.release import locate, write_manifest

        folder = locate(args.release)
        (folder / "figures.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        card = folder / "MODEL_CARD.md"
        if card.is_file():  # the card's table between its markers is made from the figures
            text = card.read_text(encoding="utf-8")
            head, _, rest = text.partition(START)
            _, _, tail = rest.partition(END)
            card.write_text(head + START + "\n" + card_table(results) + "\n" + END + tail, encoding="utf-8")
        write_manifest(folder)
        print(f"wrote {folder / 'figures.json'} and re-sealed {folder / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
