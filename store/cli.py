"""The ``testimony`` command's storage subcommands: ``init``, ``audit verify|anchor``,
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

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from . import anchors, audit, instance, ops
from . import settings as settings_module
from .db import Database

Command = Callable[[argparse.Namespace], int]


def _init(args: argparse.Namespace) -> int:
    settings = settings_module.load()
    instance.init(settings)
    print("Instance ready: %s" % settings.instance_path)
    return 0


def _trusted_anchor_key(settings: settings_module.Settings, pinned: str | None) -> Ed25519PublicKey:
    """The public key anchors must be signed by: the pinned one, else the instance's."""
    if pinned:
        return anchors.parse_public_key(pinned)
    key = anchors.load_key(settings.instance_path)
    if key is None:
        raise anchors.AnchorError(
            "no anchor key in %s: pass the public key with --anchor-key" % settings.instance_path
        )
    return key.public_key()


def _read_anchors(
    settings: settings_module.Settings, args: argparse.Namespace
) -> list[anchors.Anchor]:
    trusted = _trusted_anchor_key(settings, args.anchor_key)
    checked = []
    for path in args.anchor:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise anchors.AnchorError("anchor %s: cannot read it: %s" % (path, exc)) from None
        checked.append(anchors.read(text, path, trusted))
    return checked


def _audit_verify(args: argparse.Namespace) -> int:
    settings = settings_module.load()
    checked: list[anchors.Anchor] = []
    if args.anchor:
        try:
            checked = _read_anchors(settings, args)
        except anchors.AnchorError as exc:
            print(exc, file=sys.stderr)
            print("audit anchors REFUSED", file=sys.stderr)
            return 1
    db = Database(settings)
    try:
        with db.transaction() as session:
            report = audit.verify(session, checked)
    finally:
        db.dispose()
    for problem in report.problems:
        print(problem, file=sys.stderr)
    if report.ok:
        if checked:
            print(
                "audit chain intact: %d events; %d anchor(s) match (up to event %d)"
                % (report.events, len(checked), max(a.seq for a in checked))
            )
            return 0
        print("audit chain intact: %d events" % report.events)
        return 0
    print(
        "audit chain BROKEN: %d problem(s) in %d events" % (len(report.problems), report.events),
        file=sys.stderr,
    )
    return 1


def _audit_anchor(args: argparse.Namespace) -> int:
    settings = settings_module.load()
    try:
        key = anchors.ensure_key(settings.instance_path)
    except anchors.AnchorError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 1
    if args.public_key:
        print(anchors.public_key_text(key.public_key()))
        return 0
    if args.out and os.path.lexists(args.out):
        print("error: %s exists; not overwriting it" % args.out, file=sys.stderr)
        return 1
    db = Database(settings)
    try:
        with db.transaction() as session:
            head = audit.head(session)
            if head is None:
                print("error: the audit log is empty: nothing to anchor", file=sys.stderr)
                return 1
            seq, head_hash = head
            text = anchors.make(key, seq, head_hash, instance.today())
            # The anchor covers the head before it; its own event comes next in the chain.
            audit.append(
                session,
                "operator",
                audit.ANCHOR_ACTION,
                "audit_event:%d" % seq,
                {"seq": seq, "hash": head_hash},
            )
            if args.out:
                # Inside the transaction: no file, no event (and never over another file).
                fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
    except FileExistsError:
        print("error: %s exists; not overwriting it" % args.out, file=sys.stderr)
        return 1
    finally:
        db.dispose()
    if args.out:
        print("anchor of event %d written to %s: keep a copy off this server" % (seq, args.out))
    else:
        sys.stdout.write(text)
    return 0


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
    check = audit_sub.add_parser("verify", help="check the hash chain and say where it breaks")
    check.add_argument(
        "--anchor",
        action="append",
        default=[],
        metavar="FILE",
        help="also check that nothing at or before this signed anchor changed (repeatable)",
    )
    check.add_argument(
        "--anchor-key",
        metavar="PUBKEY",
        help="the anchor public key to trust (default: the instance's anchor key)",
    )
    check.set_defaults(handler=_audit_verify)
    anchor = audit_sub.add_parser(
        "anchor", help="write a signed checkpoint of the chain's head, to keep off the server"
    )
    anchor.add_argument("--out", metavar="FILE", help="write it here (never over a file)")
    anchor.add_argument(
        "--public-key", action="store_true", help="print the anchor public key and exit"
    )
    anchor.set_defaults(handler=_audit_anchor)
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
