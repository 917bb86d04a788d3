"""Predict the emotion from any subset of a face (image or video), a voice and a text.

The command lives in :mod:`bridge.commands.infer` (also installed as ``bridge-infer``); see
``python infer.py --help``.
"""

import sys

from bridge.commands.infer import *  # noqa: F401,F403 (the script's names, for tests and notebooks)
from bridge.commands.infer import main

if __name__ == "__main__":
    sys.exit(main())
