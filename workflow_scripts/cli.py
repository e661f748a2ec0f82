"""The one command-line style of every tool in ``workflow_scripts``.

Each tool is ``python -m workflow_scripts.<package>.<module>`` with ``parse_args(argv)``,
``main(argv=None) -> int`` (the exit status) and ``if __name__ == "__main__":
sys.exit(main())``; ``main`` calls :func:`setup_logging` first, so every rule's log reads alike.
"""

from __future__ import annotations

import logging

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: int = logging.INFO) -> None:
    """Log to stderr (the rule's ``log:`` file) in the one format. A no-op when logging is
    already set up (a test's log capture, a caller's own handlers)."""
    logging.basicConfig(level=level, format=LOG_FORMAT)
