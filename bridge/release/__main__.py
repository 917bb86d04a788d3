"""``python -m bridge.release``: the command line of :mod:`bridge.commands.release`."""

from bridge.commands.release import main

raise SystemExit(main())
