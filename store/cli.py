"""The ``testimony`` command's storage subcommands: ``init``, ``audit verify``,
``incidents import|export``, and the production ones in :mod:`store.ops` (``db roles``,
``purge``, ``check``).

The review side adds its own (reviewers, sharing) in ``review.cli``, which is the entry
point; every administrative task has a subcommand.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import audit, instance, ops
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
    print(
        "audit chain BROKEN: %d problem(s) in %d events" % (len(report.problems), report.events),
        file=sys.stderr,
    )
    return 1


def _incidents_import(args: argparse.Namespace) -> int:
    from .incidents import CatalogueError, load_file

    db = Database(settings_module.load())
    try:
        for path in args.files:
            with db.transaction() as session:
                result = load_file(session, path, "operator")
            print(
                "%s: created %s; updated %s"
                % (
                    path,
                    ", ".join("%d %s" % (n, k) for k, n in result.created.items()),
                    ", ".join("%d %s" % (n, k) for k, n in result.updated.items()),
                )
            )
    except CatalogueError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 1
    finally:
        db.dispose()
    return 0


def _incidents_export(args: argparse.Namespace) -> int:
    import json

    from .incidents import export_document

    db = Database(settings_module.load())
    try:
        with db.sessions() as session:
            text = json.dumps(export_document(session), ensure_ascii=False, indent=2) + "\n"
    finally:
        db.dispose()
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0


def build_parser() -> tuple[
    argparse.ArgumentParser, argparse._SubParsersAction[argparse.ArgumentParser]
]:
    parser = argparse.ArgumentParser(
        prog="testimony",
        description="Administer a Testimony instance (settings come from TESTIMONY_* "
        "environment variables).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser(
        "init", help="create or migrate the instance; first run makes the recovery key"
    ).set_defaults(handler=_init, needs_instance=False)
    audit_parser = sub.add_parser("audit", help="the audit log")
    audit_sub = audit_parser.add_subparsers(dest="audit_command", required=True)
    audit_sub.add_parser(
        "verify", help="check the hash chain and say where it breaks"
    ).set_defaults(handler=_audit_verify)
    incidents = sub.add_parser("incidents", help="the incident catalogue")
    incidents_sub = incidents.add_subparsers(dest="incidents_command", required=True)
    load = incidents_sub.add_parser(
        "import", help="create or update from catalogue files (idempotent)"
    )
    load.add_argument("files", nargs="+", metavar="FILE")
    load.set_defaults(handler=_incidents_import)
    dump = incidents_sub.add_parser("export", help="write the catalogue as JSON")
    dump.add_argument("--out", metavar="FILE")
    dump.set_defaults(handler=_incidents_export)
    ops.register(sub)
    # On SQLite it refuses (roles are PostgreSQL's) whether or not there is an instance.
    without_instance(sub, "db", "roles")
    return parser, sub


def without_instance(sub: argparse._SubParsersAction[argparse.ArgumentParser], *names: str) -> None:
    """Mark the subcommand ``names`` (e.g. "export", "verify") as one that works where no
    instance was initialised: every other command refuses to run there."""
    parser = sub.choices[names[0]]
    for name in names[1:]:
        nested = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = nested.choices[name]
    parser.set_defaults(needs_instance=False)


def missing_instance() -> str | None:
    """Why no command can run here (in one line), or None when the instance was
    initialised. Looking creates nothing: no secret key, no empty SQLite file."""
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    # A placeholder secret, so that settings.load does not write one into the folder.
    settings = settings_module.load({**os.environ, "TESTIMONY_SECRET_KEY": "unused"})
    missing = "no instance at %s: run `testimony init`" % settings.instance_path
    if settings.is_sqlite:
        database = make_url(settings.database_url).database or ""
        if database and database != ":memory:" and not Path(database).is_file():
            return missing
    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return missing
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return "cannot open the database of the instance at %s: %s" % (
            settings.instance_path,
            reason[0] if reason else type(exc).__name__,
        )
    finally:
        engine.dispose()
    return None


def main(
    argv: Sequence[str] | None = None,
    extend: Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None] | None = None,
) -> int:
    parser, sub = build_parser()
    if extend:
        extend(sub)
    args = parser.parse_args(argv)
    if getattr(args, "needs_instance", True):
        problem = missing_instance()
        if problem:
            print(problem, file=sys.stderr)
            return 1
    handler: Command = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
