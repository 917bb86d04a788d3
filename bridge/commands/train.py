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

import json
import os

from bridge.cli import RunLock, check_writable, first_line, run_cli
from bridge.config import PRESETS
from bridge.train.config import SELECT_KEYS, TrainConfig
from bridge.views import TEST_VIEWS

# Settings a resumed run keeps from its start (recorded in its training state and config.json);
# --epochs may change (the schedule then spans the new count); the rest (output, cache, workers,
# device) only say where and how fast to run.
RESTORED = ("recipe", "data", "data_root", "preset", "modalities", "set", "init_encoder", "mismatch", "select",
            "batch_size", "lr", "encoder_lr_scale", "weight_decay", "label_smoothing", "modality_dropout",
            "unimodal_weight", "translation_weight", "cycle_weight", "translation_loss", "distill_weight",
            "distill_temperature", "dropout_schedule", "fill",
            "augment", "augment_zoom", "augment_shift", "augment_surround", "consistency_weight", "balance_parts",
            "part_share", "test_views", "precision", "seed", "deterministic", "limit", "no_face_detection")
CYCLES_FILE = "cycles.json"  # a run with warm restarts: its plan, and each finished cycle's best epoch
# flags that belong to the whole cycled run, not to one cycle's train.py call
_CYCLE_FLAGS = {"--output": True, "--resume": False, "--restarts": True, "--restart-epochs": True,
                "--restart-lr": True}
# flags that only say where and how fast to run; a resumed cycled run takes them from the new command line
_SPEED_FLAGS = {"--data-root": True, "--cache-dir": True, "--no-cache": False, "--workers": True, "--device": True,
                "--memo-mb": True}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options: the command line's, over a ``--recipe``'s, over the defaults.

    The repeatable options (``--set FIELD=VALUE``, ``--init-encoder MODALITY=...``,
    ``--mismatch MODALITY=...``) are merged key by key: the recipe's entries, less those whose key
    the command line gives again, then the command line's."""
    p = _parser()
    first, _ = p.parse_known_args(argv)
    recipe = read_recipe(first.recipe, p) if first.recipe else {}
    p.set_defaults(**{k: v for k, v in recipe.items() if not isinstance(v, list)})
    args = p.parse_args(argv)
    for dest, entries in recipe.items():
        if isinstance(entries, list):
            given = getattr(args, dest)
            again = {_entry_key(e) for e in given}
            setattr(args, dest, [e for e in entries if _entry_key(e) not in again] + given)
    return args


def _zoom_range(text: str) -> tuple[float, float]:
    """``"0.9,1.1"`` -> ``(0.9, 1.1)``, a positive range (a recipe gives the same string)."""
    try:
        low, high = (float(x) for x in text.split(","))
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH zoom factors, e.g. 0.9,1.1; got {text!r}") from None
    if not 0 < low <= high:
        raise argparse.ArgumentTypeError(f"zoom factors must satisfy 0 < LOW <= HIGH; got {text!r}")
    return low, high


def _chance(text: str) -> float:
    """``"0.5"`` -> ``0.5``, a probability."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a chance between 0 and 1; got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a chance must lie between 0 and 1; got {text!r}")
    return value


def _entry_key(entry: str) -> str:
    """``"face=auto"`` -> ``"face"``: what a repeatable option's entry sets."""
    return entry.partition("=")[0].strip()


def given_flags(argv: list[str] | None) -> set[str]:
    """The options the command line itself sets (not defaults, not a recipe's values)."""
    p = _parser()
    for action in p.options:
        action.default = argparse.SUPPRESS
        action.required = False
    return set(vars(p.parse_args(argv)))


class _Parser(argparse.ArgumentParser):
    """argparse's parser, keeping the options it was given in ``options`` (argparse keeps them only
    privately), so a recipe's values can be checked against them."""

    def __init__(self, *args, **kwargs):
        self.options: list[argparse.Action] = []
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        self.options.append(action)
        return action


def read_recipe(path: str, parser: _Parser) -> dict:
    """A recipe file's options (JSON: train.py's long option names, e.g. ``{"data": "mosi", "set": [...]}``).

    A relative path is looked up in the working directory, then beside train.py (``recipes/``).

    Raises:
        ValueError: an unreadable file or an option train.py does not have.
    """
    import json

    here = Path(__file__).resolve().parents[2]  # the repository, which holds recipes/
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
    known = {a.dest for a in parser.options} - {"help", "recipe"}
    unknown = sorted(set(recipe) - known)
    if unknown:
        raise ValueError(f"recipe {path}: train.py has no option {', '.join('--' + k.replace('_', '-') for k in unknown)}")
    for action in parser.options:  # defaults skip argparse's checks: a bad value would surface epochs later
        if action.dest not in recipe:
            continue
        value, flag = recipe[action.dest], action.option_strings[-1]
        repeated = isinstance(action.default, list)  # the repeatable options (action="append", default=[])
        if repeated != isinstance(value, list):
            raise ValueError(f"recipe {path}: {flag} takes {'a list' if repeated else 'one value'}, got {value!r}")
        bad = [v for v in (value if repeated else [value]) if action.choices is not None and v not in action.choices]
        if bad:
            raise ValueError(f"recipe {path}: {flag} {bad[0]!r} is not one of {', '.join(map(str, action.choices))}")
    return recipe


def _parser() -> _Parser:
    p = _Parser(prog="train.py", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--recipe", default=None, metavar="FILE",
                   help="JSON file of these options (recipes/*.json); flags on the command line win")
    p.add_argument("--data", default="synthetic", help="corpus name (synthetic, fer2013, ravdess, ravdess8, meld, goemotions, "
                                                      "goemotions-original, meld+goemotions, mosi, paired, "
                                                      "manifest:PATH)")
    p.add_argument("--data-root", default=None, help="data root (default: $BRIDGE_DATA_ROOT or ../shared/data)")
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS), help="model size")
    p.add_argument("--modalities", default=None, help="comma-separated subset of the corpus's modalities")
    p.add_argument("--output", default=None, help="checkpoint directory (default: checkpoints/DATA-PRESET)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a model config field, e.g. text.freeze=false, fusion.depth=3 (repeatable)")
    p.add_argument("--init-encoder", action="append", default=[], metavar="MODALITY=CHECKPOINT",
                   help="start that modality's encoder (and its latent summariser) from a trained bridge checkpoint, "
                        "e.g. face=checkpoints/fer2013-small, or from a recipe's run, e.g. face=recipe:recipes/fer2013.json "
                        "(trained first into checkpoints/recipes/fer2013 unless finished); its encoder config comes "
                        "along (repeatable)")
    p.add_argument("--mismatch", action="append", default=[], metavar="MODALITY=RATE",
                   help="in that share of training samples, take the modality from a sample of another label, so the "
                        "fusion learns how often an encoder that saw the training items is wrong on new ones "
                        "(e.g. audio=0.35; repeatable); MODALITY=auto measures it on that modality's --init-encoder "
                        "source: 1 - validation UAR / training UAR on its own corpus (MODALITY=auto:CORPUS: on "
                        "that corpus)")
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
    p.add_argument("--translation-weight", type=float, default=TrainConfig.translation_weight,
                   help="weight of the translation terms (each translation pulled toward its target latent)")
    p.add_argument("--cycle-weight", type=float, default=TrainConfig.cycle_weight,
                   help="weight of source -> target -> source reconstruction terms (0 disables)")
    p.add_argument("--translation-loss", choices=["mse", "cosine", "infonce"], default=TrainConfig.translation_loss,
                   help="how a translation is pulled toward its target latent: a distance (mse, cosine) or "
                        "contrastive, picking its own sample's target among the batch's (infonce)")
    p.add_argument("--distill-weight", type=float, default=TrainConfig.distill_weight,
                   help="weight of distillation: the fusion's prediction with dropped modalities reconstructed "
                        "matches its prediction from every real modality (0 disables)")
    p.add_argument("--distill-temperature", type=float, default=TrainConfig.distill_temperature,
                   help="softmax temperature of the distillation term")
    p.add_argument("--dropout-schedule", choices=["constant", "linear"], default=TrainConfig.dropout_schedule)
    p.add_argument("--fill", choices=["reconstruct", "zero"], default=TrainConfig.fill,
                   help="how missing modalities enter the fusion; 'zero' trains the no-translation baseline")
    p.add_argument("--test-views", choices=TEST_VIEWS, default=TrainConfig.test_views,
                   help="validate with each face averaged over these test-time views (single crops, with their "
                        "mirror image, or ten crops: five zoomed crops and their mirrors), and have infer.py and "
                        "evaluate.py do so by default with the checkpoint; training sees single crops")
    p.add_argument("--augment", action="store_true",
                   help="augment in training: face crops (flips, small rotations/shifts/zooms, random erasing) and "
                        "audio (level, noise, tempo)")
    p.add_argument("--augment-zoom", type=_zoom_range, default=TrainConfig.augment_zoom, metavar="LOW,HIGH",
                   help="with --augment: face zoom factors drawn from this range, above 1 zooming in "
                        f"(default {','.join(map(str, TrainConfig.augment_zoom))})")
    p.add_argument("--augment-shift", type=float, default=TrainConfig.augment_shift, metavar="FRACTION",
                   help="with --augment: face shifts drawn from [-FRACTION, FRACTION] of the side, on each axis "
                        f"(default {TrainConfig.augment_shift})")
    p.add_argument("--augment-surround", type=_chance, default=TrainConfig.augment_surround, metavar="P",
                   help="with --augment: chance that what a face's warp brings in from beyond the crop's edge shows "
                        "the batch's next face there (a stand-in for a frame's surroundings) instead of the edge's "
                        f"pixels repeated (default {TrainConfig.augment_surround})")
    p.add_argument("--consistency-weight", type=float, default=TrainConfig.consistency_weight, metavar="W",
                   help="with --augment: also classify a second augmented view of each face and add W times the "
                        "symmetric KL divergence between the two predictions (view consistency; 0 disables; a "
                        "second forward and backward per step)")
    p.add_argument("--precision", choices=["float32", "bfloat16"], default=TrainConfig.precision,
                   help="arithmetic of the training forward: bfloat16 autocasts it (weights, optimiser, validation "
                        "and checkpoints stay float32); about 1.1x faster per FER-2013 epoch on a CPU with AVX-512 BF16 "
                        "(docs/benchmarks.md)")
    p.add_argument("--balance-parts", action="store_true",
                   help="a joined corpus (e.g. meld+goemotions): each epoch draws as many training items from every "
                        "part as the smallest part has, afresh per epoch")
    p.add_argument("--part-share", action="append", default=[], metavar="PART=SHARE",
                   help="with --balance-parts: draw SHARE times as many items from PART as the smallest part has "
                        "(e.g. goemotions=0.5; repeatable; a part not named draws 1x)")
    p.add_argument("--seed", type=int, default=TrainConfig.seed)
    p.add_argument("--deterministic", action="store_true", help="deterministic algorithms only (repeatable runs)")
    p.add_argument("--limit", type=int, default=None, help="at most this many samples per split (quick runs)")
    p.add_argument("--cache-dir", default=None,
                   help="preprocessing cache (default: $BRIDGE_CACHE_DIR or .cache/bridge)")
    p.add_argument("--no-cache", action="store_true", help="decode and preprocess without the cache")
    p.add_argument("--workers", type=int, default=TrainConfig.num_workers, help="DataLoader workers")
    p.add_argument("--memo-mb", type=float, default=TrainConfig.memo_mb,
                   help="megabytes of frozen encoders' outputs kept for later epochs and validation (0: none)")
    p.add_argument("--device", default=TrainConfig.device,
                   help="auto, cpu, cuda, cuda:1, ...; under torchrun auto, cpu or cuda (process i: cuda:LOCAL_RANK)")
    p.add_argument("--no-face-detection", action="store_true",
                   help="the data's images and video frames are already face crops (as infer.py "
                        "--no-face-detection): resize them instead of detecting a face (manifest data)")
    p.add_argument("--restarts", type=int, default=0,
                   help="warm restarts after the first cycle: each trains --restart-epochs more epochs with a fresh "
                        "warm-up and cosine decay peaking at --restart-lr, every encoder and summariser starting from "
                        "the previous cycle's kept checkpoint; cycle K is kept in OUTPUT/cycles/K, OUTPUT holds the last")
    p.add_argument("--restart-epochs", type=int, default=30, help="epochs of each warm-restart cycle")
    p.add_argument("--restart-lr", type=float, default=None, help="peak learning rate of each warm-restart cycle "
                                                                  "(default: 0.3 x --lr)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --output with the settings it was started with (data, model, "
                        "recipe, seed, schedule); only --epochs may change")
    return p


def main(argv: list[str] | None = None) -> int:
    """Train; under ``torchrun`` (WORLD_SIZE > 1) as one of several DistributedDataParallel processes."""
    return run_cli("train.py", lambda: _main(argv))


def _main(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = check_args(parse_args(argv))  # flags are checked before torch is imported
    output = Path(args.output or f"checkpoints/{args.data.split(':')[0]}-{args.preset}")
    check_writable(output, "--output")
    if args.restarts or (args.resume and (output / CYCLES_FILE).is_file()):
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ValueError("--restarts runs its cycles in one process; under torchrun, train each cycle as its "
                             "own run (--init-encoder MODALITY=PREVIOUS_CYCLE --lr ... --epochs ...)")
        return _cycles(argv, args, output)
    rank0 = int(os.environ.get("RANK", "0")) == 0
    if args.resume:
        args, finished = resume_args(args, given_flags(argv), output, say=print if rank0 else lambda *_: None)
        if finished:
            return 0
    elif output.exists() and any(p.name != RunLock.NAME for p in output.iterdir()) \
            and not (output / "config.json").is_file():
        raise ValueError(f"--output {output} exists and is not a bridge checkpoint; choose another directory")
    from bridge.train.distributed import launched_world

    world = launched_world()
    if args.batch_size % world.size:
        raise ValueError(f"--batch-size {args.batch_size} is the global batch and must be divisible by the "
                         f"{world.size} processes")
    return _train(args, world, output)


def check_args(args: argparse.Namespace) -> argparse.Namespace:
    """One-line errors for values no run can use, before anything is imported or read."""
    if args.epochs < 1 or args.batch_size < 1:
        raise ValueError("--epochs and --batch-size must be at least 1")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be at least 1 sample per split, got {args.limit}")
    for flag in ("lr", "weight_decay", "encoder_lr_scale", "label_smoothing", "unimodal_weight", "distill_weight"):
        value = getattr(args, flag)
        if not value >= 0 or (flag == "lr" and value == 0):
            bound = "positive" if flag == "lr" else "at least 0"
            raise ValueError(f"--{flag.replace('_', '-')} must be {bound}, got {value:g}")
    if not args.distill_temperature > 0:
        raise ValueError(f"--distill-temperature must be positive, got {args.distill_temperature:g}")
    if not 0 <= args.modality_dropout < 1:
        raise ValueError(f"--modality-dropout must be in [0, 1), got {args.modality_dropout}")
    if args.label_smoothing >= 1:
        raise ValueError(f"--label-smoothing must be below 1, got {args.label_smoothing:g}")
    if args.workers < 0:
        raise ValueError(f"--workers must be at least 0, got {args.workers}")
    if args.memo_mb < 0:
        raise ValueError(f"--memo-mb must be at least 0, got {args.memo_mb}")
    if args.restarts < 0 or args.restart_epochs < 1 or (args.restart_lr is not None and not args.restart_lr > 0):
        raise ValueError("--restarts must be at least 0, --restart-epochs at least 1 and --restart-lr positive")
    if args.restarts and args.init_encoder:
        raise ValueError("--restarts starts every encoder of a cycle from the cycle before; --init-encoder would "
                         "name a second source (train the first cycle with it, then restart from that run)")
    return args


def _flag(name: str, value) -> str:
    flag = f"--{name.replace('_', '-')}"
    if isinstance(value, bool):
        return flag if value else f"no {flag}"
    if isinstance(value, (list, tuple)):
        return " ".join(f"{flag} {v}" for v in value) if value else f"no {flag}"
    return f"no {flag}" if value is None else f"{flag} {value}"


def recorded_run(output: Path) -> tuple[dict, int, dict]:
    """The settings a run in ``output`` was started with, the epochs it finished, and its config.json.

    Raises:
        ValueError: no training state to resume, or an unreadable one.
    """
    from bridge.checkpoint import STATE_FILE, migrate  # torch: not before the arguments are checked

    meta: dict = {}
    if (output / "config.json").is_file():
        try:
            meta = json.loads((output / "config.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"cannot resume: {output / 'config.json'} is unreadable ({e})") from None
        meta = migrate(meta)  # a run started before run-time settings left the model config
    path = output / STATE_FILE
    if not path.is_file():
        raise ValueError(f"cannot resume: {output} holds no training state ({STATE_FILE}); "
                         "train without --resume to start a run there")
    import pickle

    import torch

    try:  # weights_only: plain tensors and containers only; a pickle that would run code is refused
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        done = int(state["epoch"]) + 1
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"cannot resume from {path}: not a loadable bridge training state "
                         f"({first_line(e, 120)})") from None
    if "run" in state:
        run = json.loads(state["run"])
    else:  # a state written before runs recorded their settings: what config.json says
        training, data = meta.get("training", {}), meta.get("data", {})
        names = {"init_encoders": "init_encoder", "num_workers": None, "device": None}
        run = {names.get(k, k): list(v) if isinstance(v, (list, tuple)) else v
               for k, v in training.items() if names.get(k, k) and names.get(k, k) in RESTORED + ("epochs",)}
        run.update({k: data[k] for k in ("data_root", "limit") if k in data})
        if "name" in data:
            run["data"] = data["name"]
    if "test_flip" in run:  # recorded before test-time views: a yes or no for the mirror image
        flip = run.pop("test_flip")
        run.setdefault("test_views", "mirror" if flip else "single")
    return run, done, meta


def resume_args(args: argparse.Namespace, given: set[str], output: Path, say=print) -> tuple[argparse.Namespace, bool]:
    """The run's recorded settings, with this command line's --epochs, output and speed flags.

    Returns:
        the arguments to continue with, and whether the run has already finished (nothing to do).

    Raises:
        ValueError: a flag that contradicts the recorded run (naming both values), or fewer
            --epochs than the run has already trained.
    """
    run, done, meta = recorded_run(output)
    if "data_root" in given and run.get("data_root") != args.data_root:  # the same corpus, moved: say so
        say(f"bridge: reading the data from --data-root {args.data_root} (the run was started with "
            f"{_flag('data_root', run.get('data_root'))})")
        run = {**run, "data_root": args.data_root}
    for name in RESTORED:
        if name in given and name in run and _norm(getattr(args, name)) != _norm(run[name]):
            raise ValueError(f"{_flag(name, getattr(args, name))} contradicts the run in {output}, started with "
                             f"{_flag(name, run[name])}: --resume continues a run as it was started (drop the flag, "
                             f"or train into another --output)")
    restored = {k: v for k, v in run.items() if k in RESTORED and hasattr(args, k)}
    if "recipe" in given and "recipe" not in run:  # a run from before recipes were recorded
        restored.pop("recipe", None)
    recorded_epochs = int(run.get("epochs", args.epochs))
    epochs = args.epochs if "epochs" in given else recorded_epochs
    new = argparse.Namespace(**{**vars(args), **restored, "epochs": epochs})
    new.model_config = meta.get("model")  # the exact model the run built
    best = meta.get("best", {})
    best_text = (f" (best epoch {best['epoch']}: val macro-F1 {best['val']['macro_f1']:.3f})"
                 if "epoch" in best and "macro_f1" in best.get("val", {}) else "")
    if epochs < done:
        raise ValueError(f"--epochs {epochs}: the run in {output} has already trained {done} epochs")
    if epochs == done:
        say(f"bridge: the run in {output} already finished its {done} epochs{best_text}; nothing to do "
            f"(pass --epochs N, more than {done}, to train it further)")
        return new, True
    if epochs != recorded_epochs:
        say(f"bridge: resuming with --epochs {epochs} (the run was started with {recorded_epochs}): training goes on "
            f"to epoch {epochs} and the learning-rate schedule now decays over {epochs} epochs")
    return new, False


def _strip(argv: list[str], flags: dict[str, bool], keep: bool = False) -> list[str]:
    """``argv`` without (or, with ``keep``, only) ``flags`` (``--flag value``, ``--flag=value`` or a switch;
    the dict says whether each takes a value)."""
    out, i = [], 0
    while i < len(argv):
        name = argv[i].split("=", 1)[0]
        width = 2 if flags.get(name) and "=" not in argv[i] else 1
        if (name in flags) == keep:
            out += argv[i:i + width]
        i += width if name in flags else 1
    return out


def _cycles(argv: list[str], args: argparse.Namespace, output: Path) -> int:
    """Train a run with warm restarts: cycle 1 as asked, then ``--restarts`` cycles of ``--restart-epochs``,
    each starting every encoder and summariser from the cycle before (``--init-encoder``) under a fresh
    warm-up and cosine decay. Each cycle is an ordinary run in ``OUTPUT/cycles/K`` (resumable as one);
    ``OUTPUT/cycles.json`` keeps the plan, so ``--output OUTPUT --resume`` alone continues the first
    unfinished cycle; the last cycle's checkpoint is copied into ``OUTPUT`` when it finishes.
    """
    from bridge.checkpoint import atomic_write_text

    plan_path = output / CYCLES_FILE
    if args.resume:
        if not plan_path.is_file():
            raise ValueError(f"cannot resume: {output} holds no run with warm restarts ({CYCLES_FILE}); "
                             "train without --resume to start one there")
        plan = json.loads(plan_path.read_text(encoding="utf-8"))
        speed = _strip(argv, _SPEED_FLAGS, keep=True)  # where and how fast, from this command line
        base = _strip(plan["argv"], _SPEED_FLAGS) + speed
        if plan.get("finished"):
            print(f"bridge: the run in {output} already finished its {plan['restarts'] + 1} cycles; nothing to do")
            return 0
    else:
        if plan_path.is_file():
            raise ValueError(f"--output {output} holds a run with warm restarts; pass --resume to continue it, "
                             "or train into another --output")
        if output.exists() and any(p.name not in (RunLock.NAME, "cycles") for p in output.iterdir()) \
                and not (output / "config.json").is_file():
            raise ValueError(f"--output {output} exists and is not a bridge checkpoint; choose another directory")
        base = _strip(argv, _CYCLE_FLAGS)
        plan = {"argv": base, "restarts": args.restarts, "restart_epochs": args.restart_epochs,
                "restart_lr": args.restart_lr if args.restart_lr is not None else round(0.3 * args.lr, 10),
                "cycles": [], "finished": False}
        output.mkdir(parents=True, exist_ok=True)
        atomic_write_text(plan_path, json.dumps(plan, indent=2))
    lock = RunLock(output)  # one cycled run at a time writes the plan
    try:
        return _run_cycles(base, plan, plan_path, output)
    finally:
        lock.release()


def _run_cycles(base: list[str], plan: dict, plan_path: Path, output: Path) -> int:
    import shutil

    from bridge.checkpoint import STATE_FILE, atomic_write_text, read_meta
    from bridge.config import BridgeConfig

    total = plan["restarts"] + 1
    plan["cycles"] = []
    for k in range(1, total + 1):
        folder = output / "cycles" / str(k)
        cycle = base + ["--restarts", "0", "--output", str(folder)]
        if k > 1:
            previous = output / "cycles" / str(k - 1)
            modalities = BridgeConfig.from_dict(read_meta(previous)["model"]).modalities
            cycle += ["--epochs", str(plan["restart_epochs"]), "--lr", str(plan["restart_lr"])]
            cycle += [a for m in modalities for a in ("--init-encoder", f"{m.value}={previous}")]
        epochs = plan["restart_epochs"] if k > 1 else parse_args(cycle).epochs
        history = folder / "history.json"
        done = len(json.loads(history.read_text(encoding="utf-8"))) if history.is_file() else 0
        if done < epochs:
            resume = (folder / STATE_FILE).is_file()
            print(f"bridge: cycle {k} of {total}: {'resuming' if resume else 'training'} in {folder}", flush=True)
            code = _main(cycle + (["--resume"] if resume else []))
            if code:
                return code
        best = read_meta(folder).get("best", {})
        plan["cycles"].append({"cycle": k, "folder": f"cycles/{k}", "epochs": epochs, **best})
        atomic_write_text(plan_path, json.dumps(plan, indent=2))
    last = output / "cycles" / str(total)
    for item in last.iterdir():  # the last cycle's checkpoint is the run's
        if item.name in (STATE_FILE, RunLock.NAME):
            continue
        if item.is_dir():
            shutil.copytree(item, output / item.name, dirs_exist_ok=True)
        else:
            shutil.copy2(item, output / item.name)
    plan["finished"] = True
    atomic_write_text(plan_path, json.dumps(plan, indent=2))
    scores = ", ".join(f"{c['val']['macro_f1']:.3f}" for c in plan["cycles"] if "macro_f1" in c.get("val", {}))
    print(f"bridge: {total} cycles finished (best validation macro-F1 per cycle: {scores}); "
          f"the last cycle's checkpoint is in {output}/")
    return 0


def _norm(value):
    """Recorded values come back from JSON: lists for tuples, and numbers compare as numbers."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def train_config_from(args: argparse.Namespace, init_encoders: list[str], device: str) -> TrainConfig:
    """The :class:`TrainConfig` of train.py's arguments: each field from the option of its name
    (``--workers`` sets ``num_workers``), a new option reaching the trainer by being named like its
    field; ``init_encoders`` (recipe sources trained) and ``device`` come resolved."""
    from dataclasses import fields

    resolved = {"num_workers": args.workers, "init_encoders": tuple(init_encoders), "device": device,
                "mismatch": tuple(args.mismatch), "part_share": tuple(args.part_share),
                "augment_zoom": tuple(args.augment_zoom)}  # a resumed run restores it as a list
    return TrainConfig(**{f.name: resolved[f.name] if f.name in resolved else getattr(args, f.name)
                          for f in fields(TrainConfig) if f.name in resolved or hasattr(args, f.name)})


def _train(args: argparse.Namespace, world, output: Path) -> int:
    from bridge.train.distributed import setup, teardown

    device = setup(world, args.device)
    try:
        return _run(args, world, device, output)
    finally:
        teardown(world)


def _run(args: argparse.Namespace, world, device: str, output: Path) -> int:
    from bridge.config import BridgeConfig, override
    from bridge.data.corpora import load_splits
    from bridge.data.corpus import attach_decoder
    from bridge.dataset import part_draw
    from bridge.media.decoder import MediaDecoder
    from bridge.recipes import model_config_for
    from bridge.train.mismatch import auto_modalities, parse_mismatch, resolve_auto
    from bridge.runtime import use_deterministic_algorithms
    from bridge.train.trainer import Trainer
    from bridge.train.transfer import adopt_encoder_configs, parse_init_encoders, train_recipe_sources

    say = print if world.is_main else lambda *_: None  # rank 0 speaks for the run
    auto_modalities(args.mismatch, parse_init_encoders(args.init_encoder))  # before any source is trained
    init_encoders = train_recipe_sources(args.init_encoder, args.data_root, main)  # recipe:X sources trained first
    sources = parse_init_encoders(init_encoders)
    # measured once, on a fresh run; the run records the numbers, so a resumed one keeps them
    args.mismatch = resolve_auto(args.mismatch, sources, args.data_root, say)
    options = {"detect_faces": False} if args.no_face_detection else {}
    splits = load_splits(args.data, args.data_root, seed=args.seed, limit=args.limit, **options)
    part_draw(splits.train, args.balance_parts, args.part_share)  # a bad draw fails before preprocessing
    recorded = getattr(args, "model_config", None)
    if recorded:  # --resume: the model the run built, whatever the presets have become since
        model_config = BridgeConfig.from_dict(recorded)
    else:
        model_config = override(adopt_encoder_configs(model_config_for(args.preset, splits, args.modalities), sources),
                                args.set)
    parse_mismatch(args.mismatch, model_config.modalities)  # a bad spec fails before any model is built
    # decode media as the predictor will (pre-cropped faces: as infer.py --no-face-detection does)
    attach_decoder(splits, MediaDecoder.from_config(model_config, detect_faces=not args.no_face_detection))
    train_config = train_config_from(args, init_encoders, device)
    if train_config.deterministic:
        use_deterministic_algorithms()  # process-wide: the script's choice, not the trainer's
    data_info = {**splits.info, "name": args.data, "corpus": splits.name, "data_root": args.data_root,
                 "limit": args.limit, **({"face_detection": False} if args.no_face_detection else {})}
    lock = RunLock(output) if world.is_main else None  # one run at a time writes into a run folder
    try:
        trainer = Trainer(model_config, train_config, output, data_info, world)
        trainer.run_settings = {k: getattr(args, k) for k in (*RESTORED, "epochs")}
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
    finally:
        if lock is not None:
            lock.release()
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
