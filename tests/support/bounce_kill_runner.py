"""`syncd bounces check` in its own process with the kill tests' checkpoints armed.

    python -m tests.support.bounce_kill_runner --config CONFIG.toml bounces check

The real command line (``syncd.shell.cli.main``) with ``SYNCD_KILL_AT=NAME[:N]`` /
``SYNCD_PAUSE_AT`` honoured as in ``tests.support.kill_runner`` (production leaves the hook unset).
"""

from __future__ import annotations

import sys

from syncd.shell.cli import main
from tests.support.kill_runner import install_hooks

if __name__ == "__main__":
    install_hooks()
    main(sys.argv[1:])
