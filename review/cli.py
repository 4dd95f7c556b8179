"""Entry point of the ``testimony`` command: storage commands plus reviewer administration.

testimony reviewer add NAME [--admin]       password from a prompt or TESTIMONY_PASSWORD
testimony reviewer list
testimony reviewer password NAME            current and new password from prompts
testimony reviewer disable NAME [--identity FILE]
testimony reviewer grant NAME --identity FILE
testimony reviewer key-file NAME [-o FILE]  the stored identity, sealed to the password
testimony reviewer demo                     local demo account (localhost only)
testimony keys upgrade --identity FILE      post-quantum recovery key (reviewers: at login)
testimony export --out DIR --identity FILE  anonymized, signed export (see review.export.cli)
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

import crypto
from store import audit
from store import cli as store_cli
from store import settings as settings_module
from store.db import Database
from store.models import Reviewer
from store.ops import identity_files

from . import accounts, sharing
from .export import cli as export_cli


def _database() -> tuple[settings_module.Settings, Database]:
    settings = settings_module.load()
    return settings, Database(settings)


def _password(prompt: str, confirm: bool = True) -> str:
    from_env = os.environ.get("TESTIMONY_PASSWORD")
    if from_env:
        return from_env
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("Repeat: ") != first:
        raise SystemExit("error: the passwords do not match")
    return first


def _find(session: Session, name: str) -> Reviewer:
    person = session.scalar(select(Reviewer).where(Reviewer.name == name))
    if person is None:
        raise SystemExit("error: no reviewer named %r" % name)
    return person


def _print_totp(created: accounts.NewReviewer) -> None:
    print("TOTP secret: %s" % created.totp_secret)
    print("Provisioning URI: %s" % created.provisioning_uri)
    try:
        import qrcode

        code = qrcode.QRCode(border=1)
        code.add_data(created.provisioning_uri)
        code.print_ascii(invert=True)
    except ImportError:
        pass


def _add(args: argparse.Namespace) -> int:
    settings, db = _database()
    password = _password("Password for %s: " % args.name)
    try:
        with db.transaction() as session:
            created = accounts.create_reviewer(
                session, settings, args.name, password, is_admin=args.admin
            )
    except ValueError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 1
    print("Reviewer %s created%s." % (args.name, " (administrator)" if args.admin else ""))
    _print_totp(created)
    print(
        "Older testimony is not shared with %s yet: a reviewer can share it on the "
        "Reviewers page, or run: testimony reviewer grant %s --identity RECOVERY-KEY-FILE"
        % (args.name, args.name)
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    _settings, db = _database()
    with db.sessions() as session:
        for person in session.scalars(select(Reviewer).order_by(Reviewer.name)):
            print(
                "%-24s %-6s %-9s since %s"
                % (
                    person.name,
                    "admin" if person.is_admin else "",
                    "active" if person.active else "disabled",
                    person.created_on.isoformat(),
                )
            )
    return 0


def _change_password(args: argparse.Namespace) -> int:
    settings, db = _database()
    current = (
        getpass.getpass("Current password: ")
        if not os.environ.get("TESTIMONY_CURRENT_PASSWORD")
        else os.environ["TESTIMONY_CURRENT_PASSWORD"]
    )
    new = _password("New password: ")
    try:
        with db.transaction() as session:
            accounts.change_password(
                session, settings, _find(session, args.name), current, new, actor="operator"
            )
    except ValueError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 1
    print("Password changed; every session of %s has ended." % args.name)
    return 0


def _disable(args: argparse.Namespace) -> int:
    _settings, db = _database()
    identities = identity_files([args.identity]) if args.identity else []
    with db.transaction() as session:
        done = sharing.disable(session, identities, _find(session, args.name), "operator")
    print(
        "%s disabled: no longer sealed to, sessions ended, removed from %d items."
        % (args.name, done.changed)
    )
    if done.skipped:
        print(
            "%d items still name %s: run again with --identity RECOVERY-KEY-FILE to remove "
            "them." % (done.skipped, args.name),
            file=sys.stderr,
        )
        return 1 if args.identity else 0
    return 0


def _grant(args: argparse.Namespace) -> int:
    _settings, db = _database()
    identities = identity_files([args.identity])
    with db.transaction() as session:
        person = _find(session, args.name)
        if not person.active:
            raise SystemExit("error: %s is disabled" % args.name)
        done = sharing.grant(session, identities, person, "operator")
    print("%s can now read %d more items." % (args.name, done.changed))
    if done.skipped:
        print("%d items could not be opened with that identity." % done.skipped, file=sys.stderr)
        return 1
    return 0


def _key_file(args: argparse.Namespace) -> int:
    """The reviewer's identity exactly as stored: an age file sealed to their password.

    ``age -d key.age > key.txt`` (the passphrase is the reviewer's password) gives an
    identity file for ``age -d -i key.txt``. Nothing is decrypted here.
    """
    _settings, db = _database()
    to_stdout = args.output in (None, "-")
    if to_stdout and sys.stdout.isatty():
        print(
            "error: refusing to write a binary age file to a terminal: use -o FILE",
            file=sys.stderr,
        )
        return 1
    target = "standard output" if to_stdout else args.output
    written = False
    try:
        with db.transaction() as session:
            person = _find(session, args.name)
            sealed = bytes(person.identity_sealed)
            audit.append(session, "operator", "reviewer.key_file", "reviewer:%s" % args.name, {})
            # Inside the transaction: a file that cannot be written leaves no audit event.
            if to_stdout:
                sys.stdout.buffer.write(sealed)
                sys.stdout.buffer.flush()
            else:
                crypto.write_secret_file(args.output, sealed)
                written = True
    except BaseException as exc:
        if written:  # the audit event did not commit: no key file without one
            os.unlink(args.output)
        if isinstance(exc, FileExistsError):
            print("error: %s exists; refusing to overwrite it" % args.output, file=sys.stderr)
            return 1
        if isinstance(exc, OSError):
            print("error: cannot write %s: %s" % (target, exc.strerror), file=sys.stderr)
            return 1
        raise
    if not to_stdout:
        print(
            "Identity of %s written to %s, sealed to their password: "
            "age -d %s > key.txt" % (args.name, args.output, args.output),
            file=sys.stderr,
        )
    return 0


def _demo(args: argparse.Namespace) -> int:
    """A demo reviewer for a local trial, printed in the clear: never on a real server."""
    settings, db = _database()
    bind = os.environ.get("TESTIMONY_BIND", "127.0.0.1")
    if bind not in ("127.0.0.1", "localhost", "::1"):
        print("No demo reviewer: the service is not bound to localhost.", file=sys.stderr)
        return 0
    with db.transaction() as session:
        if session.scalar(select(func.count()).select_from(Reviewer)):
            return 0
        import secrets

        password = secrets.token_urlsafe(15)
        created = accounts.create_reviewer(session, settings, "demo", password, is_admin=True)
    print("=" * 72)
    print("LOCAL DEMO ONLY: a reviewer account for trying Testimony on this machine.")
    print("  review face: http://127.0.0.1:8081/   name: demo   password: %s" % password)
    _print_totp(created)
    print("Add the secret to an authenticator app, or get a code with:")
    print(
        "  .venv/bin/python -c \"import pyotp; print(pyotp.TOTP('%s').now())\""
        % created.totp_secret
    )
    print("=" * 72)
    return 0


def _keys_upgrade(args: argparse.Namespace) -> int:
    """Move the recovery key to a hybrid post-quantum key; reviewers follow at login."""
    settings, db = _database()
    old = identity_files([args.identity])
    new = crypto.HybridIdentity.generate()
    out = args.out or str(settings.instance_path / "recovery-key-pq.txt")
    if os.path.exists(out):
        raise SystemExit("error: %s exists; refusing to overwrite a key" % out)
    crypto.write_secret_file(out, crypto.identity_file_text(new, new.recipient))
    try:
        with db.transaction() as session:
            added, dropped = sharing.upgrade_recovery_key(session, old, new, "operator")
            if added.skipped:
                raise SystemExit(
                    "error: %d items cannot be opened with %s; nothing changed"
                    % (added.skipped, args.identity)
                )
    except BaseException:
        os.unlink(out)
        raise
    print("New post-quantum recovery key written to %s: move it offline now." % out)
    print(
        "Added to %d items; the old recovery key was dropped from %d items."
        % (added.changed, dropped.changed)
    )
    with db.sessions() as session:
        waiting = [
            r.name
            for r in session.scalars(select(Reviewer).where(Reviewer.active.is_(True)))
            if not crypto.is_post_quantum(r.recipient.public_key)
        ]
    if waiting:
        print(
            "Reviewers whose keys become post-quantum at their next login: %s" % ", ".join(waiting)
        )
    return 0


def _review_commands(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("keys", help="the instance's key types")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    upgrade = keys_sub.add_parser(
        "upgrade",
        help="replace the X25519 recovery key with a hybrid post-quantum one, by header rewrite",
    )
    upgrade.add_argument(
        "--identity", metavar="FILE", required=True, help="the current recovery key file"
    )
    upgrade.add_argument("--out", metavar="FILE", help="where to write the new recovery key")
    upgrade.set_defaults(handler=_keys_upgrade)

    parser = sub.add_parser("reviewer", help="reviewer accounts and sharing")
    commands = parser.add_subparsers(dest="reviewer_command", required=True)
    add = commands.add_parser("add", help="create a reviewer with a new key")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true")
    add.set_defaults(handler=_add)
    commands.add_parser("list", help="list reviewers").set_defaults(handler=_list)
    password = commands.add_parser("password", help="change a reviewer's password")
    password.add_argument("name")
    password.set_defaults(handler=_change_password)
    disable = commands.add_parser("disable", help="disable a reviewer and drop their stanzas")
    disable.add_argument("name")
    disable.add_argument(
        "--identity", metavar="FILE", help="an identity that opens everything (the recovery key)"
    )
    disable.set_defaults(handler=_disable)
    grant = commands.add_parser("grant", help="share all testimony with a reviewer")
    grant.add_argument("name")
    grant.add_argument("--identity", metavar="FILE", required=True)
    grant.set_defaults(handler=_grant)
    key_file = commands.add_parser(
        "key-file",
        help="write a reviewer's identity as stored: an age file sealed to their password",
    )
    key_file.add_argument("name")
    key_file.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="a new file (mode 0600; an existing one is refused); '-' or none: stdout",
    )
    key_file.set_defaults(handler=_key_file)
    commands.add_parser("demo", help="create the local demo reviewer if none exists").set_defaults(
        handler=_demo
    )
    export_cli.register(sub)
    # Checking an export made elsewhere needs no instance here.
    store_cli.without_instance(sub, "export", "verify")


def main(argv: Sequence[str] | None = None) -> int:
    return store_cli.main(argv, extend=_review_commands)


if __name__ == "__main__":
    sys.exit(main())
