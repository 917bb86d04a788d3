"""Building a release: train every stage of a release recipe, resumably, then pack the last one
(:func:`bridge.release.pack`). ``python -m bridge.release build`` and ``status`` run this.

A release recipe (``recipes/release/emotion7.json``) names the release and its stages in order;
each stage is a train.py recipe trained into ``CHECKPOINTS/STAGE``, and may start encoders from
earlier stages (``"init": {"face": "face"}``). A stage is trained by ``train.py`` in its own
process, so a build that is stopped resumes each stage where its training state is.

One build at a time per checkpoints folder: a build holds that folder's run lock
(:class:`bridge.cli.RunLock`), which names the stage it is on; each stage's own folder is locked by
the train.py run that trains it. :func:`status` reads both locks.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import bridge.release as release
from bridge.cli import RunLock

REPOSITORY = Path(__file__).resolve().parents[2]


def read_release_recipe(path: Path) -> dict[str, Any]:
    """``recipes/release/emotion7.json``: the release name and its stages, each a train.py recipe.

    Raises:
        ValueError: an unreadable file, a stage without a name or recipe, an ``init`` naming a later
            stage, or a stage recipe that does not state its whole schedule.
    """
    if not Path(path).is_file() and (REPOSITORY / path).is_file():
        path = REPOSITORY / path  # recipes/NAME.json from any working directory
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
    return given if given.is_file() else REPOSITORY / given


def build(recipe_path: Path, checkpoints: Path, data_root: str | None = None, pack_release: bool = True,
          stages: list[str] | None = None) -> Path:
    """Train every stage of a release recipe that is not finished, in order, then pack the last one
    into ``bridge/pretrained/NAME``.

    Args:
        stages: train only these stages (by name, in the recipe's order); the stages they start from
            must be finished. The release is packed only when every stage is.

    Returns:
        the last stage's checkpoint directory.

    Raises:
        OSError: another build is running in ``checkpoints``.
        ValueError: an unknown stage name; a stage that starts from an unfinished one; a stage failed.
    """
    try:
        lock = RunLock(checkpoints, "--checkpoints", kind="release build")
    except OSError as e:
        raise OSError(f"{e}; `python -m bridge.release status` follows it") from None
    with lock:
        return _build(recipe_path, Path(checkpoints), data_root, pack_release, stages, lock)


def _build(recipe_path: Path, checkpoints: Path, data_root: str | None, pack_release: bool,
           only: list[str] | None, lock: RunLock) -> Path:
    import subprocess
    import sys

    from bridge.checkpoint import run_state

    recipe = read_release_recipe(recipe_path)
    names = [stage["name"] for stage in recipe["stages"]]
    unknown = sorted(set(only or ()) - set(names))
    if unknown:
        raise ValueError(f"no stage {', '.join(map(repr, unknown))} in {recipe_path}; its stages: {', '.join(names)}")
    pending = [s for s in recipe["stages"] if (only is None or s["name"] in only)
               and run_state(checkpoints / s["name"], stage_recipe(s)) != "finished"]
    check_data(pending, data_root)  # every corpus is there before the first stage trains for hours
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
        lock.note(stage["name"])
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
        name = recipe.get("name", release.DEFAULT_RELEASE)
        card_path = Path(recipe["card"]) if "card" in recipe else None
        if card_path is not None and not card_path.is_file():
            card_path = REPOSITORY / card_path
        card = card_path.read_text(encoding="utf-8") if card_path is not None else None
        release.pack(last, release.RELEASES / name, name, card)
        print(f"packed {last} into {release.RELEASES / name}")
    return last


def check_data(stages: list[dict[str, Any]], data_root: str | None) -> None:
    """Raise FileNotFoundError naming every corpus folder the stages' recipes read that is missing
    under the data root (one line, before anything trains)."""
    from bridge.data.paths import data_root as resolve_root
    from bridge.data.paths import require_corpus
    from bridge.data.registry import CORPORA

    missing: dict[str, list[str]] = {}
    for stage in stages:
        data = json.loads(stage_recipe(stage).read_text(encoding="utf-8")).get("data", "synthetic")
        for folder in CORPORA[data].folders if data in CORPORA else ():
            try:
                require_corpus(folder, data_root)
            except FileNotFoundError:
                missing.setdefault(folder, []).append(stage["name"])
    if missing:
        needs = "; ".join(f"{folder} (stage {', '.join(names)})" for folder, names in missing.items())
        raise FileNotFoundError(f"the release build needs corpora that are not under {resolve_root(data_root)}: "
                                f"{needs}; see docs/data.md, or pass --data-root DIR")


def stage_progress(output: Path, recipe: Path) -> dict[str, Any]:
    """How far one stage of a release build is: its state (:func:`~bridge.checkpoint.run_state`),
    epochs done out of the recipe's (every cycle's, for warm restarts), the cycle in progress, the
    best validation macro F1 so far, and the median wall time of its last five epochs."""
    from bridge.checkpoint import run_state

    spec = json.loads(Path(recipe).read_text(encoding="utf-8"))
    restarts = int(spec.get("restarts") or 0)
    total = int(spec.get("epochs") or 0) + restarts * int(spec.get("restart_epochs") or 0)
    folders = ([Path(output) / "cycles" / str(k) for k in range(1, restarts + 2)] if restarts else [Path(output)])
    histories = [json.loads((f / "history.json").read_text(encoding="utf-8")) if (f / "history.json").is_file()
                 else [] for f in folders]
    scores = [e["val"]["macro_f1"] for h in histories for e in h if "macro_f1" in e.get("val", {})]
    started = [k for k, h in enumerate(histories, 1) if h]
    recent = [e["seconds"] for h in histories for e in h if isinstance(e.get("seconds"), (int, float))][-5:]
    return {"state": run_state(output, recipe), "epochs_done": sum(len(h) for h in histories), "epochs": total,
            "cycle": (started[-1] if started else 1) if restarts else None, "cycles": restarts + 1 if restarts else None,
            "best_val_macro_f1": max(scores) if scores else None,
            "seconds_per_epoch": float(statistics.median(recent)) if recent else None}


def status(recipe_path: Path, checkpoints: Path) -> list[str]:
    """One line per stage of a release build: where it stands (``python -m bridge.release status``).

    A stage whose folder a train.py run holds is training; the stage a running build names but
    whose run has not yet taken its folder (it is measuring its ``--mismatch auto`` rates, or
    starting) is starting."""
    recipe = read_release_recipe(recipe_path)
    builder = RunLock.holder(checkpoints)
    lines = []
    for stage in recipe["stages"]:
        p = stage_progress(checkpoints / stage["name"], stage_recipe(stage))
        trainer = RunLock.holder(checkpoints / stage["name"])
        if trainer is not None:
            p["state"] = f"training (process {trainer[0]})"
        elif builder is not None and builder[1] == stage["name"] and p["state"] != "finished":
            p["state"] = f"starting (build process {builder[0]})"
        cycle = (f", cycle {p['cycle']} of {p['cycles']}"
                 if p["cycles"] and p["state"] not in ("finished", "new") else "")
        best = (f", best validation macro F1 {100 * p['best_val_macro_f1']:.1f}"
                if p["best_val_macro_f1"] is not None else "")
        left = ""
        if p["state"] not in ("finished", "new") and p["seconds_per_epoch"] and p["epochs"] > p["epochs_done"]:
            left = (f"; about {_duration((p['epochs'] - p['epochs_done']) * p['seconds_per_epoch'])} of training "
                    "left at its last epochs' pace")
        lines.append(f"{stage['name']}: {p['state']}, {p['epochs_done']} of {p['epochs']} epochs{cycle}{best}{left}")
    name = recipe.get("name", release.DEFAULT_RELEASE)
    packed = (release.RELEASES / name / release.MANIFEST).is_file()
    lines.append(f"release {name}: {'packed' if packed else 'not packed'}")
    return lines


def _duration(seconds: float) -> str:
    """``"5 h 20 min"``, ``"12 min"``."""
    minutes = max(1, round(seconds / 60))
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"
