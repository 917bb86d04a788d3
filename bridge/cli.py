"""What the three scripts share: error reporting with exit code 2, and argument helpers."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Callable

EXIT_BAD_INPUT = 2


def run_cli(prog: str, body: Callable[[], int | None]) -> int:
    """Run a script body; bad input (ValueError, OSError) becomes one line on stderr and exit code 2.

    Set ``BRIDGE_DEBUG=1`` to see the full traceback instead.
    """
    try:
        return body() or 0
    except (ValueError, OSError) as e:
        if os.environ.get("BRIDGE_DEBUG"):
            traceback.print_exc()
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"{prog}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
