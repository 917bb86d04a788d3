"""What the three scripts share: error reporting with exit code 2, SIGTERM handled as Ctrl-C,
output checks made before any work, and the lock on a training run's folder.

Nothing here imports torch: the scripts parse and check their arguments first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Callable, Iterator

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


def first_line(error: BaseException, limit: int | None = None) -> str:
    """An error's message as one line: its first line (at most ``limit`` characters), or the
    exception's type name when the message is empty (``KeyError()``, a bare ``OSError``)."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line[:limit] if limit else line


def run_cli(prog: str, body: Callable[[], int | None]) -> int:
    """Run a script body; bad input (ValueError, OSError) becomes one line on stderr and exit code 2.

    SIGTERM is handled like Ctrl-C (SIGINT): both raise :class:`KeyboardInterrupt` in the body,
    which finishes what it can (an annotated video, the items of a batch done so far) before
    it returns; an interrupt nobody handles prints ``PROG: interrupted`` and exits 130.
    Set ``BRIDGE_DEBUG=1`` to see the full traceback instead.
    """
    with _sigterm_as_interrupt():
        try:
            return body() or 0
        except (ValueError, OSError) as e:
            if os.environ.get("BRIDGE_DEBUG"):
                traceback.print_exc()
            print(f"{prog}: error: {first_line(e)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except KeyboardInterrupt:
            print(f"{prog}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt (main thread only; restored after)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def check_writable(path: str | os.PathLike, what: str, directory: bool = True) -> None:
    """Refuse, before any work, an output that cannot be written, naming the user's path.

    Nothing is created: the path itself when it exists, else its nearest existing ancestor,
    must be a folder this process may write into (for a file output, ``path`` must not be a folder).

    Args:
        path: the output folder (``directory``) or file.
        what: how the user named it, e.g. ``"--output"``.

    Raises:
        OSError: ``"cannot write PATH (why)"``, as a failed write would say, but before any work.
    """
    path = Path(path)
    if path.exists():
        if directory and not path.is_dir():
            raise OSError(f"cannot write {path} (Not a directory: {what} names a file)")
        if not directory and path.is_dir():
            raise OSError(f"cannot write {path} (Is a directory)")
    folder = path if directory else path.parent
    probe = folder if folder != Path("") else Path(".")
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise OSError(f"cannot write {path} ({probe}: Not a directory)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OSError(f"cannot write {path} ({probe}: Permission denied)")


class RunLock:
    """An exclusive lock on a run folder (``.lock`` inside it, ``flock``), held while a run writes there.

    The lock file names the holder's process id (then, after :meth:`note`, what it is doing), so
    a second run into the same folder is refused with a message naming it, and :meth:`holder`
    tells who holds a folder. The operating system releases the lock when the holder exits,
    however it exits, so a killed run never leaves a stale lock behind.

    Args:
        folder: the run folder (created if needed).
        what: how the user named it, for the message.
        kind: what holds such a folder, for the message ("training run", "release build").

    Raises:
        OSError: the folder is locked by another process, or cannot be written.
    """

    NAME = ".lock"
    WAIT = 0.5  # seconds a run tries for the lock before it says who holds it (a status probe holds it an instant)

    def __init__(self, folder: str | os.PathLike, what: str = "--output", kind: str = "training run"):
        self.path = Path(folder) / self.NAME
        self._file = None
        self._created = not Path(folder).exists()  # a run that fails before writing leaves no folder behind
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
            f = open(self.path, "a+", encoding="utf-8")
        except OSError as e:
            raise OSError(f"cannot write {what} {folder} ({e.strerror or e})") from None
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            self._file = f
            return
        if not _try_flock(f, fcntl.LOCK_EX, self.WAIT):
            f.seek(0)
            holder = (f.read().split() or ["unknown"])[0]
            f.close()
            raise OSError(f"{what} {folder} is in use by another {kind} (process {holder}); wait for it "
                          f"to finish or choose another {what}") from None
        self._file = f
        self.note("")

    def note(self, doing: str) -> None:
        """Say in the lock file what the holder is doing now (one word, after its process id)."""
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()
            self._file.write(f"{os.getpid()} {doing}".strip())
            self._file.flush()

    @classmethod
    def holder(cls, folder: str | os.PathLike) -> tuple[str, str] | None:
        """``(process id, what it is doing)`` of the process that holds ``folder``'s lock, or None
        when none does (no lock file, or the one a killed run left). Without ``flock`` (not
        POSIX), None. The probe holds a shared lock for an instant; a run that takes the lock
        meanwhile waits for it (:data:`WAIT`)."""
        try:
            f = open(Path(folder) / cls.NAME, encoding="utf-8")
        except OSError:
            return None
        with f:
            try:
                import fcntl
            except ImportError:
                return None
            if not _try_flock(f, fcntl.LOCK_SH):  # a held lock refuses it; a free one is released at once
                words = f.read().split()
                return (words[0] if words else "unknown"), " ".join(words[1:])
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
            return None

    def release(self) -> None:
        if self._file is not None:
            self.path.unlink(missing_ok=True)  # while still held: no lock file is left in a finished run's folder
            self._file.close()  # closing releases the flock
            self._file = None
            folder = self.path.parent
            if self._created and not any(folder.iterdir()):  # nothing was written: no folder either
                folder.rmdir()

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _try_flock(f, kind: int, wait: float = 0.0) -> bool:
    """Take ``flock`` ``kind`` on ``f`` without blocking, trying again for ``wait`` seconds."""
    import fcntl
    import time

    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(f.fileno(), kind | fcntl.LOCK_NB)
            return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
