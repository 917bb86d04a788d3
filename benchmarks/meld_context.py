"""Does a MELD utterance's dialogue context lift MiniLM-L6's emotion figure? Each row fine-tunes
MiniLM-L6 (its top layers, as the shipped text part does) on MELD's training utterances, with the
previous K utterances of the same dialogue or without them, and scores MELD test by weighted F1.

    python benchmarks/meld_context.py                                  # context 0 and 3, seeds 0-2 (a GPU: minutes)
    python benchmarks/meld_context.py --limit 320 --epochs 1 --seeds 0 # a quick look on a CPU

With context, the utterance is the tokenizer's first segment and ``Speaker: utterance`` for each
earlier turn, nearest first, the second (cut first when too long); the sentence vector is the mean
over the utterance's own tokens (with [CLS] and its [SEP]), so the context reaches it only through
attention. Without context, the utterance alone. The epoch kept is the one with the best MELD dev weighted F1.

This is a probe of the text encoder, not bridge's training path: a mean-pooled MiniLM-L6 under one
linear layer, trained in its own loop (AdamW, one-cycle learning rate, bf16 autocast on a GPU).
Prints a table and writes JSON (``--output``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmarks/meld_context.py", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-root", default=None, help="holds meld/ (default: $BRIDGE_DATA_ROOT or ../shared/data)")
    p.add_argument("--weights", default="minilm-l6", help="the encoder: minilm-l6 (packaged), a local folder or a hub name")
    p.add_argument("--context", default="0,3", help="comma-separated numbers of earlier turns, one row each")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    p.add_argument("--tune-layers", type=int, default=3, help="top encoder layers fine-tuned (the rest frozen)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=4e-5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-tokens", type=int, default=192, help="tokens per input with context (64 without)")
    p.add_argument("--limit", type=int, default=None, help="at most this many utterances per split (quick runs)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when there is one)")
    p.add_argument("--output", default="reports/meld-context.json")
    return p.parse_args(argv)


def numbers(text: str, flag: str) -> list[int]:
    """``"0,3"`` -> ``[0, 3]``; anything else is a ``ValueError`` naming ``flag``."""
    try:
        values = [int(x) for x in text.split(",")]
    except ValueError:
        raise ValueError(f"{flag} takes comma-separated whole numbers, e.g. 0,3; got {text!r}") from None
    if any(v < 0 for v in values):
        raise ValueError(f"{flag} takes numbers >= 0, got {text!r}")
    return values


def with_context(corpus, turns: int) -> list[tuple[str, str | None, int]]:
    """``(utterance, earlier turns or None, label)`` per sample of a MELD corpus."""
    said: dict[tuple[int, int], str] = {}
    for sample, info in zip(corpus.stubs, corpus.meta):
        said[info["dialogue_id"], info["utterance_id"]] = f"{sample.group or 'someone'}: {sample.text}"
    rows = []
    for sample, info in zip(corpus.stubs, corpus.meta):
        d, u = info["dialogue_id"], info["utterance_id"]
        before = [said[d, j] for j in range(u - 1, u - 1 - turns, -1) if (d, j) in said]  # nearest first
        rows.append((sample.text, " | ".join(before) if turns else None, sample.label))
    return rows


class Probe(nn.Module):
    """MiniLM-L6 mean-pooled over the utterance's tokens, then one linear layer."""

    def __init__(self, path: str, classes: int, tune_layers: int):
        super().__init__()
        from transformers import AutoModel

        self.encoder = AutoModel.from_pretrained(path, add_pooling_layer=False).float()  # stored weights may be half
        layers = self.encoder.encoder.layer
        for i, layer in enumerate(layers):
            layer.requires_grad_(i >= len(layers) - tune_layers)
        self.encoder.embeddings.requires_grad_(tune_layers >= len(layers))
        self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(self.encoder.config.hidden_size, classes))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.encoder(**batch).last_hidden_state
        mask = batch["attention_mask"] * (batch["token_type_ids"] == 0)  # the utterance's own tokens
        mask = mask.unsqueeze(-1).to(hidden.dtype)
        return self.head((hidden * mask).sum(1) / mask.sum(1).clamp(min=1))


def run(splits: dict[str, list], path: str, labels: list[str], args: argparse.Namespace, turns: int, seed: int,
        device: str) -> dict[str, Any]:
    """Train one probe; the dev-best epoch's dev and test weighted F1."""
    from tqdm import tqdm
    from transformers import AutoTokenizer

    from bridge.eval.metrics import classification_report

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = Probe(path, len(labels), args.tune_layers).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    train = splits["train"]
    steps = args.epochs * -(-len(train) // args.batch_size)
    # one-cycle: a tenth of the steps warming up (at least two); a quick look of a few steps keeps the rate
    sched = (torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=max(0.1, 2 / steps))
             if steps >= 5 else torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0))
    amp = dict(device_type="cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda"))

    def encode(rows):
        if turns:
            enc = tokenizer([r[0] for r in rows], [r[1] or "" for r in rows], padding=True,
                            truncation="only_second", max_length=args.max_tokens, return_tensors="pt")
        else:
            enc = tokenizer([r[0] for r in rows], padding=True, truncation=True, max_length=64, return_tensors="pt")
        return {k: v.to(device) for k, v in enc.items()}

    @torch.no_grad()
    def score(rows) -> float:
        model.eval()
        pred = []
        for i in range(0, len(rows), 256):
            with torch.autocast(**amp):
                pred.append(model(encode(rows[i:i + 256])).argmax(-1).cpu())
        model.train()
        return classification_report([r[2] for r in rows], torch.cat(pred).numpy(), labels)["weighted_f1"]

    best: dict[str, Any] = {"dev": -1.0}
    start = time.perf_counter()
    # from_pretrained leaves the encoder in eval mode, so its dropout is off in the first epoch and on
    # from the first scoring's model.train(); the figures in docs/experiments.md were made so, every row alike
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(train))
        for i in tqdm(range(0, len(train), args.batch_size), desc=f"context {turns} seed {seed} epoch {epoch}",
                      leave=False):
            rows = [train[j] for j in order[i:i + args.batch_size]]
            with torch.autocast(**amp):
                loss = nn.functional.cross_entropy(model(encode(rows)), torch.tensor([r[2] for r in rows], device=device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        dev = score(splits["val"])
        if dev > best["dev"]:
            best = {"dev": dev, "test": score(splits["test"]), "epoch": epoch}
    return {"context": turns, "seed": seed, **best, "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from bridge.cli import run_cli

    return run_cli("benchmarks/meld_context.py", lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    from bridge.data.meld import read_meld
    from bridge.data.paths import require_corpus
    from bridge.tokenizer import resolve_pretrained

    contexts, seeds = numbers(args.context, "--context"), numbers(args.seeds, "--seeds")  # before any reading
    folder = require_corpus("meld", args.data_root)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    corpora = {split: read_meld(folder, split) for split in ("train", "val", "test")}
    labels = list(corpora["train"].label_names)
    path = resolve_pretrained(args.weights)
    rows = []
    for turns in contexts:
        splits = {s: with_context(c, turns)[:args.limit] for s, c in corpora.items()}
        for seed in seeds:
            rows.append(run(splits, path, labels, args, turns, seed, device))
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in rows[-1].items()}), flush=True)
    summary = []
    print(f"\nMELD, MiniLM-L6 top {args.tune_layers} layers tuned, {args.epochs} epochs, weighted F1 % "
          f"(mean ± std over seeds {args.seeds})")
    print(f"{'earlier turns':<14} {'dev':>12} {'test':>12}")
    for turns in dict.fromkeys(r["context"] for r in rows):
        mine = [r for r in rows if r["context"] == turns]
        dev, test = (100 * np.array([r[k] for r in mine]) for k in ("dev", "test"))
        summary.append({"context": turns, "dev_mean": dev.mean(), "dev_std": dev.std(), "test_mean": test.mean(),
                        "test_std": test.std(), "seeds": len(mine)})
        print(f"{turns:<14} {dev.mean():>6.1f} ± {dev.std():.1f} {test.mean():>6.1f} ± {test.std():.1f}")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"settings": {k: v for k, v in vars(args).items() if k != "output"}, "device": device,
                               "n": {s: min(len(c), args.limit or len(c)) for s, c in corpora.items()}, "runs": rows,
                               "summary": summary}, indent=2, default=float))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
