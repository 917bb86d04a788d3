"""Training runs that benchmarks reuse: ``train.py ARGV --output DIR`` is run once, resumed when
interrupted, and skipped when the same command already finished there (the command is recorded
beside the folder, ``DIR.command.json``)."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Any


def given_flags(**values: Any) -> list[str]:
    """``--name value`` for each value that is set (not None, 0 or empty): ``data_root`` -> ``--data-root``."""
    return [token for name, value in values.items() if value
            for token in (f"--{name.replace('_', '-')}", str(value))]


def same_command(a: list[str], b: list[str]) -> bool:
    """Whether two train.py argument lists say the same thing, whatever the order of their options."""
    def options(argv: list[str]) -> list[tuple[str, ...]]:
        chunks: list[list[str]] = []
        for token in argv:
            if token.startswith("--") or not chunks:
                chunks.append([token])
            else:
                chunks[-1].append(token)
        return sorted(tuple(c) for c in chunks)

    return options(a) == options(b)


def command_record(directory: Path) -> Path:
    return directory.with_name(f"{directory.name}.command.json")  # beside it: train.py wants its own folder


def finished(directory: Path, argv: list[str]) -> bool:
    """Whether ``train.py ARGV --output DIRECTORY`` ran to its last epoch.

    Raises:
        ValueError: when the folder holds a run of other arguments.
    """
    record = command_record(directory)
    if not record.is_file() or not directory.is_dir():  # no run, or a command that failed before it began
        return False
    if not same_command(json.loads(record.read_text())["argv"], argv):
        raise ValueError(f"{directory} was trained with other arguments; pass --retrain or another --checkpoints")
    cycles = directory / "cycles.json"  # a run with warm restarts: finished when its last cycle is
    if cycles.is_file():
        return bool(json.loads(cycles.read_text()).get("finished"))
    config = json.loads((directory / "config.json").read_text()) if (directory / "config.json").is_file() else {}
    epochs = config.get("training", {}).get("epochs")
    history = directory / "history.json"
    return bool(history.is_file() and epochs and len(json.loads(history.read_text())) >= epochs)


def ensure_trained(directory: Path, argv: list[str], retrain: bool) -> dict[str, Any]:
    """Train with train.py into ``directory`` unless the same command already finished there."""
    from bridge.commands import train
    from bridge.checkpoint import STATE_FILE, atomic_write_text

    record = command_record(directory)
    if not retrain and finished(directory, argv):
        return {"trained": False, "seconds": json.loads(record.read_text()).get("seconds")}
    resume = not retrain and record.is_file() and any((directory / f).is_file() for f in (STATE_FILE, "cycles.json"))
    if retrain and directory.exists():
        import shutil

        shutil.rmtree(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(record, json.dumps({"argv": argv}))
    print(f"\n$ python train.py {shlex.join(argv + ['--output', str(directory)])}" + (" --resume" if resume else ""))
    history = directory / "history.json"  # epochs run before an interruption count by their own times
    done = json.loads(history.read_text()) if resume and history.is_file() else []
    before = sum(e.get("seconds", 0.0) for e in done)
    start = time.time()
    rc = train.main(argv + ["--output", str(directory)] + (["--resume"] if resume else []))
    if rc:
        raise ValueError(f"train.py failed (exit {rc}) for {directory}")
    seconds = round(before + time.time() - start, 1)
    atomic_write_text(record, json.dumps({"argv": argv, "seconds": seconds}))
    return {"trained": True, "seconds": seconds}
