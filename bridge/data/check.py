"""Check a data root: which supported corpora are there, how many items each split lists, and what is missing.

    python -m bridge.data.check                   # the default root ($BRIDGE_DATA_ROOT or ../shared/data)
    python -m bridge.data.check --data-root /data/emotion

Each corpus is listed with its own reader (no media are decoded), so a folder that is present but
laid out wrongly is reported with the reader's reason. Exit code 0 when every corpus is usable,
1 otherwise. docs/data.md says where to get each corpus and how to lay it out.
"""

from __future__ import annotations

import argparse
import sys

from bridge.cli import first_line

CHECKED = ("fer2013", "ravdess", "meld", "goemotions", "mosi")
NEEDED_BY = {"fer2013": "face recipes, paired, the shipped model's face", "ravdess": "voice recipes, paired",
             "meld": "text recipes, paired", "goemotions": "the shipped model's text", "mosi": "mosi recipes"}


def check(root: str | None = None) -> list[dict]:
    """One entry per corpus: its folder, item counts per split, or the reason it cannot be used."""
    from bridge.data.paths import CORPUS_FOLDERS, data_root
    from bridge.data.registry import load_corpus_splits

    rows = []
    for name in CHECKED:
        row = {"corpus": name, "used_by": NEEDED_BY[name],
               "looked_for": [str(data_root(root) / f) for f in CORPUS_FOLDERS[name]]}
        try:
            splits = load_corpus_splits(name, root)
            row["counts"] = {s: len(getattr(splits, s)) for s in ("train", "val", "test")}
            row["ok"] = all(row["counts"].values())
            if not row["ok"]:
                row["problem"] = "a split lists no items"
        except (OSError, ValueError, KeyError) as e:
            row["ok"], row["problem"] = False, first_line(e)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bridge.data.check", description=__doc__.split("\n")[0])
    p.add_argument("--data-root", default=None, help="data root (default: $BRIDGE_DATA_ROOT or ../shared/data)")
    args = p.parse_args(argv)
    from bridge.data.paths import data_root

    print(f"data root: {data_root(args.data_root)}")
    rows = check(args.data_root)
    for r in rows:
        if r["ok"]:
            c = r["counts"]
            print(f"  ok       {r['corpus']:<11} train {c['train']:>6}  val {c['val']:>6}  test {c['test']:>6}")
        else:
            print(f"  MISSING  {r['corpus']:<11} {r['problem']}  (needed for: {r['used_by']})")
    missing = [r["corpus"] for r in rows if not r["ok"]]
    print(f"{len(rows) - len(missing)} of {len(rows)} corpora usable"
          + (f"; see docs/data.md to get {', '.join(missing)}" if missing else ""))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
