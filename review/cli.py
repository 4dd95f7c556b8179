"""Entry point of the ``testimony`` command: storage commands plus the review side's."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from store import cli as store_cli


def _review_commands(sub: argparse._SubParsersAction) -> None:
    """Reviewer administration is added here by the review desk."""


def main(argv: Sequence[str] | None = None) -> int:
    return store_cli.main(argv, extend=_review_commands)


if __name__ == "__main__":
    sys.exit(main())
