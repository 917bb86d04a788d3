"""The shipped model: a release folder that holds a bridge checkpoint small enough for the repository,
hash-checked at load.

A release folder (``bridge/pretrained/<name>/``) is a checkpoint (``config.json``, ``model.safetensors``,
the tokenizer) plus ``manifest.json`` and ``MODEL_CARD.md``:

- ``model.safetensors`` stores, in float16, every tensor that training produced. Encoder tensors
  that equal the frozen pretrained weights a pip package ships (Whisper tiny.en, MiniLM-L6) are
  not stored: the manifest names each such source by package and SHA-256, and loading rebuilds the
  encoder from it, checks its hash, then lays the stored tensors over it.
- ``manifest.json`` holds the SHA-256 and size of every file in the folder. Any missing, altered or
  extra weight file is refused with a one-line :class:`ReleaseError` before anything is built.

``python -m bridge.release pack CHECKPOINT --name NAME`` writes a release folder from a checkpoint
(``python -m bridge.release build`` trains one first);
:func:`locate` turns ``None``, a release name or a directory into the folder to load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bridge.checkpoint import CheckpointError
from bridge.manifest import (MANIFEST, ReleaseError, inherited_prefixes, is_release, pretrained_sources,  # noqa: F401
                             sha256, verify, write_manifest)

RELEASES = Path(__file__).resolve().parent / "pretrained"
DEFAULT_RELEASE = "emotion7"  # the model infer.py, evaluate.py, Predictor and the web app use by default
CARD = "MODEL_CARD.md"


def release_names() -> list[str]:
    """The releases shipped in this copy of bridge."""
    return sorted(p.name for p in RELEASES.iterdir() if (p / MANIFEST).is_file()) if RELEASES.is_dir() else []


def locate(name_or_path: str | Path | None = None) -> Path:
    """The directory to load: the default release for None, a shipped release by name, else the path.

    Raises:
        ReleaseError: a name that is neither a directory nor a shipped release.
    """
    if name_or_path is None:
        name_or_path = DEFAULT_RELEASE
    path = Path(name_or_path)
    if path.exists():
        return path
    if len(path.parts) == 1 and (RELEASES / path.name / MANIFEST).is_file():
        return RELEASES / path.name
    if str(name_or_path) == DEFAULT_RELEASE:
        raise ReleaseError(f"the shipped model {DEFAULT_RELEASE} is not in this copy of bridge ({RELEASES}); "
                           "build it with `python -m bridge.release build`, or pass --checkpoint DIR")
    if len(path.parts) == 1 and not path.suffix:
        shipped = ", ".join(release_names()) or "none"
        raise ReleaseError(f"{name_or_path} is neither a checkpoint directory nor a shipped release "
                           f"(shipped: {shipped})")
    raise CheckpointError(f"checkpoint directory {path} does not exist")


# --- pack ---------------------------------------------------------------------------------------

def pack(checkpoint: Path, output: Path, name: str, card: str | None = None) -> dict[str, Any]:
    """Write a release folder from a checkpoint directory; returns the manifest.

    Tensors under a pretrained encoder that equal the packaged weights are left out; every other
    floating tensor is stored in float16.
    """
    import shutil

    import torch
    from safetensors.torch import save_file

    from bridge.checkpoint import CONFIG_FILE, TOKENIZER_DIR, WEIGHTS_FILE, atomic_write_text, umask
    from bridge.model import BridgeModel, load_checkpoint

    checkpoint, output = Path(checkpoint), Path(output)
    model, meta = load_checkpoint(checkpoint)
    sources = pretrained_sources(model.config)
    prefixes = inherited_prefixes(model.config)
    reference = BridgeModel(model.config, load_weights=True).state_dict() if prefixes else {}
    stored, inherited = {}, []
    for key, tensor in model.state_dict().items():
        if any(key.startswith(p) for p in prefixes) and key in reference and torch.equal(reference[key], tensor):
            inherited.append(key)
            continue
        tensor = tensor.detach().cpu().contiguous()
        stored[key] = tensor.half() if tensor.is_floating_point() else tensor
    if output.exists():
        if not (is_release(output) or not any(output.iterdir())):
            raise ValueError(f"{output} exists and is not a release folder; choose another --output")
        shutil.rmtree(output)
    output.mkdir(parents=True)
    save_file(stored, str(output / WEIGHTS_FILE))
    os.chmod(output / WEIGHTS_FILE, 0o666 & ~umask())  # readable by all, as the umask allows
    for item in checkpoint.iterdir():  # the saved encoder architectures and the tokenizer
        if item.is_dir() and (item.name == TOKENIZER_DIR or item.name.endswith("_encoder")):
            shutil.copytree(item, output / item.name)
    release = {"name": name, "source_checkpoint_sha256": sha256(checkpoint / WEIGHTS_FILE),
               "stored_dtype": "float16", "inherited_tensors": len(inherited),
               "pretrained": {m: {k: v for k, v in s.items() if k != "path"} | {"sha256": sha256(Path(s["path"]))}
                              for m, s in sources.items()}}
    keep = dict(meta)
    for section in ("data", "run"):  # where the corpora were on the training machine
        if isinstance(keep.get(section), dict):
            keep[section] = {**keep[section], "data_root": None}
    atomic_write_text(output / CONFIG_FILE, json.dumps({**keep, "release": release}, indent=2))
    if card is not None:
        atomic_write_text(output / CARD, card)
    return write_manifest(output)


# --- build ------------------------------------------------------------------------------------------

def read_release_recipe(path: Path) -> dict[str, Any]:
    """``recipes/release/emotion7.json``: the release name and its stages, each a train.py recipe.

    Raises:
        ValueError: an unreadable file, a stage without a name or recipe, or an ``init`` naming a later stage.
    """
    here = Path(__file__).resolve().parents[1]
    if not Path(path).is_file() and (here / path).is_file():
        path = here / path  # recipes/NAME.json from any working directory
    try:
        recipe = json.loads(Path(path).read_text(encoding="utf-8"))
        stages = recipe["stages"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"release recipe {path} cannot be read: {e}") from None
    seen: set[str] = set()
    for stage in stages:
        if not isinstance(stage, dict) or not stage.get("name") or not stage.get("recipe"):
            raise ValueError(f"release recipe {path}: every stage needs a name and a recipe, got {stage!r}")
        for modality, source in stage.get("init", {}).items():
            if source not in seen:
                raise ValueError(f"release recipe {path}: stage {stage['name']} starts {modality} from "
                                 f"{source!r}, which is not an earlier stage")
        try:
            spec = json.loads(stage_recipe(stage).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ValueError(f"release recipe {path}: stage {stage['name']}'s recipe cannot be read ({e})") from None
        # the build and status count epochs from the recipe itself, so it states its whole schedule
        unnamed = [k for k in ("epochs", *(("restart_epochs",) if spec.get("restarts") else ()))
                   if not isinstance(spec.get(k), int) or spec[k] < 1]
        if unnamed:
            raise ValueError(f"release recipe {path}: stage {stage['name']}'s recipe {stage['recipe']} must name its "
                             f"{' and '.join(unnamed)} (a positive number)")
        seen.add(stage["name"])
    return recipe


def stage_recipe(stage: dict[str, Any]) -> Path:
    """A release stage's train.py recipe: its path as given, else relative to the repository."""
    given = Path(stage["recipe"])
    return given if given.is_file() else Path(__file__).resolve().parents[1] / given


BUILD_PID = "build.pid"  # in the checkpoints folder while a build runs there: its process id, then the stage it trains


def running_build(checkpoints: Path) -> int | None:
    """The process id of a build running in ``checkpoints`` (another process than this one), or None."""
    try:
        pid = int((Path(checkpoints) / BUILD_PID).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)  # no signal: is it alive?
    except ProcessLookupError:
        return None  # a build that was killed: its stages resume
    except PermissionError:
        pass  # alive, another user's
    cmdline = Path(f"/proc/{pid}/cmdline")  # where there is /proc: not a later process that got the same id
    command = cmdline.read_bytes() if cmdline.is_file() else b""
    return None if command and b"bridge.release" not in command else pid


def build(recipe_path: Path, checkpoints: Path, data_root: str | None = None, pack_release: bool = True,
          stages: list[str] | None = None) -> Path:
    """Train every stage of a release recipe that is not finished, in order, then pack the last one.

    One build at a time per checkpoints folder: its process id is in ``BUILD_PID`` while it runs.

    Args:
        stages: train only these stages (by name, in the recipe's order); the stages they start from
            must be finished. The release is packed only when every stage is.

    Returns:
        the last stage's checkpoint directory.

    Raises:
        ValueError: another build is running in ``checkpoints``; an unknown stage name; a stage that
            starts from an unfinished one; a stage failed.
    """
    pid = running_build(checkpoints)
    if pid is not None:
        raise ValueError(f"a release build is already running in {checkpoints} (process {pid}); "
                         "`python -m bridge.release status` follows it")
    checkpoints = Path(checkpoints)
    checkpoints.mkdir(parents=True, exist_ok=True)
    lock = checkpoints / BUILD_PID
    lock.write_text(f"{os.getpid()}\n")
    try:
        return _build(recipe_path, checkpoints, data_root, pack_release, stages)
    finally:
        lock.unlink(missing_ok=True)


def _build(recipe_path: Path, checkpoints: Path, data_root: str | None, pack_release: bool,
           only: list[str] | None) -> Path:
    import subprocess
    import sys

    from bridge.checkpoint import run_state

    recipe = read_release_recipe(recipe_path)
    root = Path(__file__).resolve().parents[1]
    names = [stage["name"] for stage in recipe["stages"]]
    unknown = sorted(set(only or ()) - set(names))
    if unknown:
        raise ValueError(f"no stage {', '.join(map(repr, unknown))} in {recipe_path}; its stages: {', '.join(names)}")
    last, states = None, {}
    for stage in recipe["stages"]:
        output = checkpoints / stage["name"]
        recipe_file = stage_recipe(stage)
        state = states[stage["name"]] = run_state(output, recipe_file)
        last = output
        if state == "finished":
            print(f"release stage {stage['name']}: finished, in {output}")
            continue
        if only is not None and stage["name"] not in only:
            print(f"release stage {stage['name']}: {state}, not trained now (--stages)")
            continue
        waiting = [src for src in stage.get("init", {}).values() if states.get(src) != "finished"]
        if waiting:
            raise ValueError(f"release stage {stage['name']} starts from stage {', '.join(waiting)}, which is not "
                             "finished; build it first")
        (checkpoints / BUILD_PID).write_text(f"{os.getpid()}\n{stage['name']}\n")
        argv = [sys.executable, "-m", "bridge.commands.train", "--recipe", str(recipe_file), "--output", str(output)]
        argv += [a for m, src in stage.get("init", {}).items() for a in ("--init-encoder", f"{m}={checkpoints / src}")]
        argv += ["--data-root", data_root] if data_root else []
        argv += ["--resume"] if state == "interrupted" else []
        print(f"release stage {stage['name']}: {'resuming' if state == 'interrupted' else 'training'} "
              f"(train.py {' '.join(argv[3:])})", flush=True)
        done = subprocess.run(argv)
        if done.returncode:
            raise ValueError(f"release stage {stage['name']} failed (train.py exit {done.returncode}); "
                             "run the same command again to resume it")
        states[stage["name"]] = run_state(output, recipe_file)
    if pack_release and last is not None and all(state == "finished" for state in states.values()):
        output = RELEASES / recipe.get("name", DEFAULT_RELEASE)
        card_path = Path(recipe["card"]) if "card" in recipe else None
        if card_path is not None and not card_path.is_file():
            card_path = root / card_path
        card = card_path.read_text(encoding="utf-8") if card_path is not None else None
        pack(last, output, recipe.get("name", DEFAULT_RELEASE), card)
        print(f"packed {last} into {output}")
    return last


def stage_progress(output: Path, recipe: Path) -> dict[str, Any]:
    """How far one stage of a release build is: its state (:func:`~bridge.checkpoint.run_state`),
    epochs done out of the recipe's (every cycle's, for warm restarts), the cycle in progress, and
    the best validation macro F1 so far."""
    from bridge.checkpoint import run_state

    spec = json.loads(Path(recipe).read_text(encoding="utf-8"))
    restarts = int(spec.get("restarts") or 0)
    total = int(spec.get("epochs") or 0) + restarts * int(spec.get("restart_epochs") or 0)
    folders = ([Path(output) / "cycles" / str(k) for k in range(1, restarts + 2)] if restarts else [Path(output)])
    histories = [json.loads((f / "history.json").read_text(encoding="utf-8")) if (f / "history.json").is_file()
                 else [] for f in folders]
    scores = [e["val"]["macro_f1"] for h in histories for e in h if "macro_f1" in e.get("val", {})]
    started = [k for k, h in enumerate(histories, 1) if h]
    return {"state": run_state(output, recipe), "epochs_done": sum(len(h) for h in histories), "epochs": total,
            "cycle": (started[-1] if started else 1) if restarts else None, "cycles": restarts + 1 if restarts else None,
            "best_val_macro_f1": max(scores) if scores else None}


def status(recipe_path: Path, checkpoints: Path) -> list[str]:
    """One line per stage of a release build: where it stands (``python -m bridge.release status``)."""
    recipe = read_release_recipe(recipe_path)
    pid = running_build(checkpoints)
    try:  # the stage the running build names (it may end between these two reads)
        lock = (Path(checkpoints) / BUILD_PID).read_text().split() if pid is not None else []
    except OSError:
        lock, pid = [], None
    training = lock[1] if len(lock) > 1 else None
    lines = []
    for stage in recipe["stages"]:
        p = stage_progress(checkpoints / stage["name"], stage_recipe(stage))
        # the running build's stage: the one it names, else (an older build) the first unfinished one
        if pid is not None and p["state"] != "finished" and training in (None, stage["name"]):
            p["state"], pid = f"training (build process {pid})", None
        cycle = f", cycle {p['cycle']} of {p['cycles']}" if p["cycles"] and p["state"] not in ("finished", "new") else ""
        best = f", best validation macro F1 {100 * p['best_val_macro_f1']:.1f}" if p["best_val_macro_f1"] is not None else ""
        lines.append(f"{stage['name']}: {p['state']}, {p['epochs_done']} of {p['epochs']} epochs{cycle}{best}")
    shipped = RELEASES / recipe.get("name", DEFAULT_RELEASE) / MANIFEST
    lines.append(f"release {recipe.get('name', DEFAULT_RELEASE)}: {'packed' if shipped.is_file() else 'not packed'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    import argparse

    from bridge.cli import run_cli

    p = argparse.ArgumentParser(prog="python -m bridge.release",
                                description="Build, pack, follow or check a release folder.")
    sub = p.add_subparsers(dest="command", required=True)
    pk = sub.add_parser("pack", help="write a release folder from a checkpoint")
    pk.add_argument("checkpoint")
    pk.add_argument("--name", default=DEFAULT_RELEASE)
    pk.add_argument("--output", default=None, help="default: bridge/pretrained/NAME")
    pk.add_argument("--card", default=None, help="a model card (Markdown) to include")
    bd = sub.add_parser("build", help="train every stage of a release recipe (resumably), then pack it")
    bd.add_argument("--recipe", default="recipes/release/emotion7.json")
    bd.add_argument("--checkpoints", default="checkpoints/release", help="where the stages are trained")
    bd.add_argument("--data-root", default=None, help="data root (default: $BRIDGE_DATA_ROOT or ../shared/data)")
    bd.add_argument("--no-pack", action="store_true", help="train only")
    bd.add_argument("--stages", nargs="+", default=None, metavar="STAGE",
                    help="train only these stages (the stages they start from must be finished); "
                         "the release is packed once every stage is")
    st = sub.add_parser("status", help="how far each stage of a release build is")
    st.add_argument("--recipe", default="recipes/release/emotion7.json")
    st.add_argument("--checkpoints", default="checkpoints/release", help="where the stages are trained")
    ck = sub.add_parser("verify", help="check a release folder against its manifest")
    ck.add_argument("release", nargs="?", default=DEFAULT_RELEASE)
    args = p.parse_args(argv)

    def body() -> int:
        if args.command == "build":
            build(Path(args.recipe), Path(args.checkpoints), args.data_root, not args.no_pack, args.stages)
        elif args.command == "status":
            print("\n".join(status(Path(args.recipe), Path(args.checkpoints))))
        elif args.command == "pack":
            output = Path(args.output) if args.output else RELEASES / args.name
            card = Path(args.card).read_text(encoding="utf-8") if args.card else None
            manifest = pack(Path(args.checkpoint), output, args.name, card)
            size = sum(f["bytes"] for f in manifest["files"].values())
            print(f"packed {args.checkpoint} into {output}: {len(manifest['files'])} files, {size / 1e6:.1f} MB")
        else:
            folder = locate(args.release)
            verify(folder)
            print(f"{folder}: every file matches {MANIFEST}")
        return 0

    return run_cli("bridge.release", body)


if __name__ == "__main__":
    raise SystemExit(main())
