"""Where the corpora live: a data root holding one folder per corpus.

The root is, in order: an explicit argument (a CLI's ``--data-root``), the environment
variable ``BRIDGE_DATA_ROOT``, or ``../shared/data`` beside the project root. Nothing is
read from the environment at import.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "BRIDGE_DATA_ROOT"
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the repository: parent of the bridge package

# Folder names tried, in order, under the data root for each corpus.
CORPUS_FOLDERS: dict[str, tuple[str, ...]] = {
    "fer2013": ("fer2013",),
    "ravdess": ("ravdess_speech_16k", "ravdess"),
    "meld": ("meld", "MELD.Raw"),
    "goemotions": ("goemotions",),
    "mosi": ("cmu_mosi", "mosi"),
}


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """The data root: ``explicit``, else ``$BRIDGE_DATA_ROOT``, else ``<project>/../shared/data``.

    The folder is not required to exist; :func:`require_corpus` says what is missing.
    """
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return PROJECT_ROOT.parent / "shared" / "data"


def require_corpus(name: str, root: str | os.PathLike | None = None) -> Path:
    """The folder of corpus ``name`` under the data root.

    Args:
        name: a corpus name (``"fer2013"``, ``"ravdess"``, ``"meld"``, ``"goemotions"``,
            ``"mosi"``) or any folder name under the root.
        root: the data root (resolved with :func:`data_root`).

    Raises:
        FileNotFoundError: naming the folder(s) looked for and how to point at the data.
    """
    root = data_root(root)
    candidates = CORPUS_FOLDERS.get(name, (name,))
    for folder in candidates:
        if (root / folder).is_dir():
            return root / folder
    looked = " or ".join(str(root / folder) for folder in candidates)
    raise FileNotFoundError(
        f"corpus {name!r} not found: no folder {looked} "
        f"(set {ENV_VAR} or pass the data root explicitly; see shared/data/README.md)"
    )
