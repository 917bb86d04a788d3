"""The one error media I/O raises for a bad file."""

from __future__ import annotations

import os
from pathlib import Path


class MediaError(ValueError):
    """A media file cannot be used: unreadable, truncated, zero-length, no video or audio
    stream, unsupported format, too long or too large.

    The message is one line naming the file and the problem, e.g.
    ``"clip.mp4: no audio stream"``.

    Args:
        path: the offending file.
        problem: what is wrong with it, short and lower case.
    """

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = Path(path)
        self.problem = " ".join(str(problem).split())  # one line, whatever the cause said
        super().__init__(f"{self.path}: {self.problem}")

    def __reduce__(self):  # picklable across DataLoader workers
        return type(self), (self.path, self.problem)


class MediaTooLarge(MediaError):
    """A media file over a limit: longer than allowed, or an image of too many pixels (the web
    app answers it with 413, not 422). The problem starts with ``too long`` or ``too large``."""


def check_file(path: str | os.PathLike) -> Path:
    """``path`` as a ``Path`` if it is a non-empty regular file, else :class:`MediaError`."""
    path = Path(path)
    if not path.exists():
        raise MediaError(path, "file not found")
    if not path.is_file():
        raise MediaError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise MediaError(path, "zero-length file")
    return path
