"""Train a bridge model.

The command lives in :mod:`bridge.commands.train` (also installed as ``bridge-train``); see
``python train.py --help``.
"""

import sys

from bridge.commands.train import *  # noqa: F401,F403 (the script's names, for tests and notebooks)
from bridge.commands.train import main

if __name__ == "__main__":
    sys.exit(main())
