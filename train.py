"""Train a bridge model.

    python train.py                                 # embedded synthetic default, tiny preset
    python train.py --data mosi --preset small      # a real corpus under the data root
    python train.py --output checkpoints/run --resume
    python train.py --recipe recipes/mosi-text.json  # a published recipe (flags given after it win)
    python train.py --data meld --preset small --modalities text --set text.freeze=false --encoder-lr-scale 0.05
    python train.py --data paired --preset small --init-encoder face=checkpoints/fer2013-small --set face.freeze=true
    torchrun --nproc_per_node 4 train.py --data mosi --batch-size 128   # 4 processes (GPUs), 32 each
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bridge.cli import run_cli
from bridge.config import PRESETS
from bridge.distributed import World, launched_world, setup, teardown
from bridge.training import SELECT_KEYS, TrainConfig, Trainer, parse_mismatch


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _parser()
    first, _ = p.parse_known_args(argv)
    if first.recipe:
        p.set_defaults(**read_recipe(first.recipe, p))
    return p.parse_args(argv)


def read_recipe(path: str, parser: argparse.ArgumentParser) -> dict:
    """A recipe file's options (JSON: train.py's long option names, e.g. ``{"data": "mosi", "set": [...]}``).

    A relative path is looked up in the working directory, then beside train.py (``recipes/``).

    Raises:
        ValueError: an unreadable file or an option train.py does not have.
    """
    import json

    here = Path(__file__).resolve().parent
    if not Path(path).is_file() and (here / path).is_file():
        path = str(here / path)  # recipes/NAME.json from any working directory
    try:
        recipe = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"recipe {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"recipe {path} cannot be read: {e}") from None
    if not isinstance(recipe, dict):
        raise ValueError(f"recipe {path} must hold a JSON object of train.py options")
    recipe = {k.replace("-", "_"): v for k, v in recipe.items() if not k.startswith("_")}  # "_note": comments
    known = {a.dest for a in parser._actions} - {"help", "recipe"}
    unknown = sorted(set(recipe) - known)
    if unknown:
        raise ValueError(f"recipe {path}: train.py has no option {', '.join('--' + k.replace('_', '-') for k in unknown)}")
    for action in parser._actions:  # defaults skip argparse's checks: a bad value would surface epochs later
        if action.dest not in recipe:
            continue
        value, flag = recipe[action.dest], action.option_strings[-1]
        repeated = isinstance(action, argparse._AppendAction)
        if repeated != isinstance(value, list):
            raise ValueError(f"recipe {path}: {flag} takes {'a list' if repeated else 'one value'}, got {value!r}")
        bad = [v for v in (value if repeated else [value]) if action.choices is not None and v not in action.choices]
        if bad:
            raise ValueError(f"recipe {path}: {flag} {bad[0]!r} is not one of {', '.join(map(str, action.choices))}")
    return recipe


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train.py", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--recipe", default=None, metavar="FILE",
                   help="JSON file of these options (recipes/*.json); flags on the command line win")
    p.add_argument("--data", default="synthetic", help="corpus name (synthetic, fer2013, ravdess, ravdess8, meld, goemotions, "
                                                      "goemotions-original, mosi, paired, manifest:PATH)")
    p.add_argument("--data-root", default=None, help="data root (default: $BRIDGE_DATA_ROOT or ../shared/data)")
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS), help="model size")
    p.add_argument("--modalities", default=None, help="comma-separated subset of the corpus's modalities")
    p.add_argument("--output", default=None, help="checkpoint directory (default: checkpoints/DATA-PRESET)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a model config field, e.g. text.freeze=false, fusion.depth=3 (repeatable)")
    p.add_argument("--init-encoder", action="append", default=[], metavar="MODALITY=CHECKPOINT",
                   help="start that modality's encoder (and its latent summariser) from a trained bridge checkpoint, "
                        "e.g. face=checkpoints/fer2013-small; its encoder config comes along (repeatable)")
    p.add_argument("--mismatch", action="append", default=[], metavar="MODALITY=RATE",
                   help="in that share of training samples, take the modality from a sample of another label, so the "
                        "fusion learns how often an encoder that saw the training items is wrong on new ones "
                        "(e.g. audio=0.35; repeatable)")
    p.add_argument("--select", choices=list(SELECT_KEYS), default=TrainConfig.select,
                   help="keep the epoch with the best validation macro F1 on all modalities, or on the mean over "
                        "every modality pattern (each subset observed, the rest filled as in training)")
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size,
                   help="global batch per optimiser step: under torchrun each of N processes takes batch-size/N "
                        "(which must divide evenly)")
    p.add_argument("--lr", type=float, default=TrainConfig.lr)
    p.add_argument("--encoder-lr-scale", type=float, default=TrainConfig.encoder_lr_scale,
                   help="learning rate of pretrained encoders relative to --lr (fine-tuning)")
    p.add_argument("--weight-decay", type=float, default=TrainConfig.weight_decay)
    p.add_argument("--label-smoothing", type=float, default=TrainConfig.label_smoothing)
    p.add_argument("--modality-dropout", type=float, default=TrainConfig.modality_dropout,
                   help="chance of hiding each (sample, modality) from the fusion during training")
    p.add_argument("--unimodal-weight", type=float, default=TrainConfig.unimodal_weight,
                   help="weight of per-modality classification terms that keep every encoder learning")
    p.add_argument("--dropout-schedule", choices=["constant", "linear"], default=TrainConfig.dropout_schedule)
    p.add_argument("--fill", choices=["reconstruct", "zero"], default=TrainConfig.fill,
                   help="how missing modalities enter the fusion; 'zero' trains the no-translation baseline")
    p.add_argument("--augment", action="store_true",
                   help="augment face crops in training: flips, small rotations/shifts/zooms, random erasing")
    p.add_argument("--seed", type=int, default=TrainConfig.seed)
    p.add_argument("--deterministic", action="store_true", help="deterministic algorithms only (repeatable runs)")
    p.add_argument("--limit", type=int, default=None, help="at most this many samples per split (quick runs)")
    p.add_argument("--cache-dir", default=None,
                   help="preprocessing cache (default: $BRIDGE_CACHE_DIR or .cache/bridge)")
    p.add_argument("--no-cache", action="store_true", help="decode and preprocess without the cache")
    p.add_argument("--workers", type=int, default=TrainConfig.num_workers, help="DataLoader workers")
    p.add_argument("--device", default=TrainConfig.device,
                   help="auto, cpu, cuda, cuda:1, ...; under torchrun auto, cpu or cuda (process i: cuda:LOCAL_RANK)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output from its training state")
    return p


def main(argv: list[str] | None = None) -> int:
    """Train; under ``torchrun`` (WORLD_SIZE > 1) as one of several DistributedDataParallel processes."""
    world = launched_world()
    return run_cli("train.py", lambda: _train(parse_args(argv), world))


def _train(args: argparse.Namespace, world: World) -> int:
    if args.epochs < 1 or args.batch_size < 1:
        raise ValueError("--epochs and --batch-size must be at least 1")
    if args.batch_size % world.size:
        raise ValueError(f"--batch-size {args.batch_size} is the global batch and must be divisible by the "
                         f"{world.size} processes")
    device = setup(world, args.device)
    try:
        return _run(args, world, device)
    finally:
        teardown(world)


def _run(args: argparse.Namespace, world: World, device: str) -> int:
    from bridge.config import override
    from bridge.data.corpora import load_splits
    from bridge.data.corpus import attach_decoder
    from bridge.media.decoder import MediaDecoder
    from bridge.recipes import model_config_for
    from bridge.transfer import adopt_encoder_configs, parse_init_encoders

    say = print if world.is_main else lambda *_: None  # rank 0 speaks for the run
    if not 0 <= args.modality_dropout < 1:
        raise ValueError(f"--modality-dropout must be in [0, 1), got {args.modality_dropout}")
    splits = load_splits(args.data, args.data_root, seed=args.seed, limit=args.limit)
    sources = parse_init_encoders(args.init_encoder)
    model_config = override(adopt_encoder_configs(model_config_for(args.preset, splits, args.modalities), sources),
                            args.set)
    parse_mismatch(args.mismatch, model_config.modalities)  # a bad spec fails before any model is built
    attach_decoder(splits, MediaDecoder.from_config(model_config))  # decode media as the predictor will
    train_config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                               encoder_lr_scale=args.encoder_lr_scale,
                               weight_decay=args.weight_decay, label_smoothing=args.label_smoothing,
                               modality_dropout=args.modality_dropout, dropout_schedule=args.dropout_schedule,
                               unimodal_weight=args.unimodal_weight,
                               fill=args.fill, augment=args.augment, init_encoders=tuple(args.init_encoder),
                               mismatch=tuple(args.mismatch), select=args.select,
                               seed=args.seed, deterministic=args.deterministic,
                               num_workers=args.workers, device=device)
    output = Path(args.output or f"checkpoints/{args.data.split(':')[0]}-{args.preset}")
    if output.exists() and any(output.iterdir()) and not args.resume:
        if not (output / "config.json").is_file():
            raise ValueError(f"--output {output} exists and is not a bridge checkpoint; choose another directory")
    data_info = {**splits.info, "name": args.data, "corpus": splits.name, "data_root": args.data_root,
                 "limit": args.limit}
    trainer = Trainer(model_config, train_config, output, data_info, world)
    n_params = sum(p.numel() for p in trainer.model.parameters())
    procs = f" x {world.size} processes ({args.batch_size // world.size} samples each)" if world.distributed else ""
    say(f"bridge: training {args.preset} ({n_params / 1e6:.2f}M parameters) on {splits.name} "
        f"[{', '.join(m.value for m in model_config.modalities)}] "
        f"train {len(splits.train)} / val {len(splits.val)}, {train_config.epochs} epochs on {trainer.device}{procs}")
    for line in trainer.init_report:
        say(f"started {line}")
    from bridge.cache import default_cache_dir

    cache_dir = None if args.no_cache else (args.cache_dir or default_cache_dir())
    trainer.fit(splits.train, splits.val, resume=args.resume, cache_dir=cache_dir)
    from bridge.data.corpora import problems_report

    for line in problems_report(splits):
        say(f"data {line}")
    key = SELECT_KEYS[args.select]
    best = max(trainer.history, key=lambda r: r["val"][key])  # the first of equals, as the trainer keeps
    say(f"best epoch {best['epoch']}: val accuracy {best['val']['accuracy']:.3f}, "
        f"macro-F1 {best['val']['macro_f1']:.3f}"
        + (f" (mean over patterns {best['val'][key]:.3f})" if args.select == "patterns" else "")
        + f"; checkpoint in {output}/ (curves.png, history.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
