"""Evaluate a bridge checkpoint on a corpus split under the robustness protocols, with missing

The command lives in :mod:`bridge.commands.evaluate` (also installed as ``bridge-evaluate``); see
``python evaluate.py --help``.
"""

import sys

from bridge.commands.evaluate import *  # noqa: F401,F403 (the script's names, for tests and notebooks)
from bridge.commands.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
