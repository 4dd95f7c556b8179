"""The operator's production commands: ``testimony db roles``, ``testimony purge`` and
``testimony check`` (see :mod:`store.roles`, :mod:`store.retention`, :mod:`store.check`).

    testimony db roles [--apply] [--intake-role NAME] [--password-env VAR]
    testimony purge [--dry-run] [--testimony ID ...]
    testimony check [--identity FILE]

Each exits non-zero when it could not do its job, and ``check`` when it found a problem,
so they fit cron jobs and monitoring.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from sqlalchemy import text

import crypto

from . import settings as settings_module
from .db import Database


def _roles(args: argparse.Namespace) -> int:
    from .roles import RolePlan, check_name, intake_role_sql

    settings = settings_module.load()
    if settings.is_sqlite:
        print(
            "error: database roles are for PostgreSQL; this instance uses SQLite "
            "(set TESTIMONY_DATABASE_URL)",
            file=sys.stderr,
        )
        return 1
    try:
        role = check_name(args.intake_role)
    except ValueError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 1
    password = None
    if args.password_env:
        password = os.environ.get(args.password_env)
        if not password:
            print(
                "error: the environment variable %s is empty" % args.password_env, file=sys.stderr
            )
            return 1
    db = Database(settings)
    try:
        with db.engine.connect() as conn:
            database, schema = conn.execute(
                text("SELECT current_database(), current_schema()")
            ).one()
        plan = RolePlan(role=role, database=database, schema=schema, password=password)
        statements = intake_role_sql(plan)
        if not args.apply:
            print(
                "-- The intake's role for database %s, schema %s. Run as the owner (the "
                "role that runs `testimony init`),\n-- or run `testimony db roles "
                "--apply`. Apply again after every upgrade." % (database, schema)
            )
            if not password:
                print(
                    "-- No password is set here: use --password-env VAR, or "
                    "\\password %s in psql, or certificate authentication." % role
                )
            for statement in statements:
                print(statement + ";")
            return 0
        raw = db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            for statement in statements:
                cursor.execute(statement)  # no parameters: nothing in it is a placeholder
            raw.commit()
        finally:
            raw.close()
    finally:
        db.dispose()
    print(
        "Role %s can now add testimony to %s (schema %s), and read no reviewer table. "
        "Give the intake host:\n  TESTIMONY_DATABASE_URL=postgresql+psycopg://%s:…@HOST/%s"
        % (role, database, schema, role, database)
    )
    return 0


def _purge(args: argparse.Namespace) -> int:
    from .instance import today
    from .retention import purge

    settings = settings_module.load()
    if args.testimony is None and settings.retention_days <= 0:
        print(
            "Retention is off (TESTIMONY_RETENTION_DAYS is not set): nothing to do. "
            "To delete particular testimony, name it with --testimony ID."
        )
        return 0
    db = Database(settings)
    try:
        result = purge(db, settings, today(), dry_run=args.dry_run, requested=args.testimony)
    finally:
        db.dispose()
    listed = ", ".join(str(i) for i in result.testimonies) or "none"
    if args.dry_run:
        print("Would delete %d testimonies: %s" % (len(result.testimonies), listed))
        return 0
    if args.testimony is not None:
        missing = sorted(set(args.testimony) - set(result.testimonies))
        if missing:
            print("No testimony %s." % ", ".join(str(i) for i in missing), file=sys.stderr)
    print(
        "Deleted %d testimonies (%s) and %d sealed items; recorded in the audit log."
        % (len(result.testimonies), listed, result.blobs)
    )
    if result.testimonies and not settings.is_sqlite:
        print(
            "PostgreSQL: VACUUM done. The deleted rows' bytes may stay in table files "
            "until VACUUM FULL, and in WAL and backups until they expire (docs/deploy.md)."
        )
    return 0


def identity_files(paths: Sequence[str]) -> list[crypto.Identity]:
    """The identities in ``paths`` (as ``age -i`` reads them; ``-`` is standard input);
    a file that cannot be used ends the command with a one-line error, status 2."""
    identities: list[crypto.Identity] = []
    for path in paths:
        try:
            identities += crypto.read_identities(path)
        except (OSError, crypto.AgeError) as exc:
            print("error: cannot use identity file %s: %s" % (path, exc), file=sys.stderr)
            raise SystemExit(2) from None
    return identities


def _check(args: argparse.Namespace) -> int:
    from .check import check

    identities = identity_files(args.identity or [])
    db = Database(settings_module.load())
    try:
        with db.sessions() as session:
            report = check(session, identities)
    finally:
        db.dispose()
    for problem in report.problems:
        print(problem)
    opened = ", %d unsealed to the end" % report.opened if identities else ""
    if report.ok:
        print(
            "check passed: %d sealed items whole and sealed to current keys%s; audit "
            "chain intact (%d events)" % (report.items, opened, report.events)
        )
        return 0
    print(
        "check FAILED: %d problem(s) in %d sealed items and %d audit events"
        % (len(report.problems), report.items, report.events),
        file=sys.stderr,
    )
    return 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``db``, ``purge`` and ``check`` to the ``testimony`` command."""
    db = sub.add_parser("db", help="the database (PostgreSQL roles)")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    roles = db_sub.add_parser("roles", help="print (or apply) the SQL of the intake's limited role")
    roles.add_argument("--apply", action="store_true", help="run it (as the database owner)")
    roles.add_argument("--intake-role", default="testimony_intake", metavar="NAME")
    roles.add_argument(
        "--password-env",
        metavar="VAR",
        help="set the role's password from this environment variable",
    )
    roles.set_defaults(handler=_roles)

    purge = sub.add_parser(
        "purge",
        help="delete testimony past its retention period (TESTIMONY_RETENTION_DAYS), audited",
    )
    purge.add_argument("--dry-run", action="store_true", help="list, delete nothing")
    purge.add_argument(
        "--testimony",
        type=int,
        action="append",
        metavar="ID",
        help="delete this testimony now, whatever its status (repeatable)",
    )
    purge.set_defaults(handler=_purge)

    check = sub.add_parser(
        "check",
        help="every sealed item whole and sealed to current keys, no orphans, audit chain intact",
    )
    check.add_argument(
        "--identity",
        action="append",
        metavar="FILE",
        help="also unseal everything with this identity (repeatable)",
    )
    check.set_defaults(handler=_check)
