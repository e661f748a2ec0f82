"""The one command-line style of every tool in ``workflow_scripts``.

Each tool is ``python -m workflow_scripts.<package>.<module>`` with ``parse_args(argv)``,
``main(argv=None) -> int`` (the exit status) and ``if __name__ == "__main__":
sys.exit(main())``; ``main`` calls :func:`setup_logging` first, so every rule's log reads alike.
"""

from __future__ import annotations

import argparse
import logging

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: int = logging.INFO) -> None:
    """Log to stderr (the rule's ``log:`` file) in the one format. A no-op when logging is
    already set up (a test's log capture, a caller's own handlers)."""
    logging.basicConfig(level=level, format=LOG_FORMAT)


def run_cli(parser: argparse.ArgumentParser, argv=None, command=None) -> int:
    """Parse ``argv``, set up logging and run ``command(args)`` (default: the subcommand's
    ``func``); its return value, or 0 when it returns None, is the exit status."""
    args = parser.parse_args(argv)
    setup_logging()
    status = (command or args.func)(args)
    return 0 if status is None else int(status)
