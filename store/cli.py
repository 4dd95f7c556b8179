"""The ``testimony`` command's storage subcommands: ``init`` and ``audit verify``.

The review side adds its own (reviewers, sharing) in ``review.cli``, which is the entry
point; every administrative task has a subcommand.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from . import audit, instance
from . import settings as settings_module
from .db import Database

Command = Callable[[argparse.Namespace], int]


def _init(args: argparse.Namespace) -> int:
    settings = settings_module.load()
    instance.init(settings)
    print("Instance ready: %s" % settings.instance_path)
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    db = Database(settings_module.load())
    try:
        with db.transaction() as session:
            report = audit.verify(session)
    finally:
        db.dispose()
    for problem in report.problems:
        print(problem, file=sys.stderr)
    if report.ok:
        print("audit chain intact: %d events" % report.events)
        return 0
    print("audit chain BROKEN: %d problem(s) in %d events"
          % (len(report.problems), report.events), file=sys.stderr)
    return 1


def build_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    parser = argparse.ArgumentParser(
        prog="testimony",
        description="Administer a Testimony instance (settings come from TESTIMONY_* "
                    "environment variables).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("init", help="create or migrate the instance; first run makes the "
                   "recovery key").set_defaults(handler=_init)
    audit_parser = sub.add_parser("audit", help="the audit log")
    audit_sub = audit_parser.add_subparsers(dest="audit_command", required=True)
    audit_sub.add_parser("verify", help="check the hash chain and say where it breaks"
                         ).set_defaults(handler=_audit_verify)
    return parser, sub


def main(argv: Sequence[str] | None = None,
         extend: Callable[[argparse._SubParsersAction], None] | None = None) -> int:
    parser, sub = build_parser()
    if extend:
        extend(sub)
    args = parser.parse_args(argv)
    handler: Command = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
