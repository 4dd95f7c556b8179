"""Creating and migrating an instance, and its first-run keys.

``testimony init`` is idempotent: it migrates the database to the newest schema and, on
first run only, generates the organisation's recovery key. The recovery identity is
written once into the instance folder for the operator to move offline; its public key
becomes a permanent recipient, so no forgotten password can lose evidence.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import select
from sqlalchemy.orm import Session

import crypto

from . import audit
from .db import Database
from .models import InstanceValue, Recipient
from .receipts import ReceiptKdf
from .settings import Settings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
RECOVERY_FILE = "recovery-key.txt"


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    config.attributes["settings"] = settings
    return config


def migrate(settings: Settings, revision: str = "head") -> None:
    settings.instance_path.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(settings), revision)


def instance_value(session: Session, name: str, make: bytes | None = None) -> bytes:
    row = session.get(InstanceValue, name)
    if row is None:
        if make is None:
            raise LookupError("instance value %r is missing: run `testimony init`" % name)
        row = InstanceValue(name=name, value=make)
        session.add(row)
        session.flush()
    return row.value


def new_identity(settings: Settings) -> crypto.X25519Identity | crypto.HybridIdentity:
    """A new reviewer or recovery identity of the instance's configured type."""
    if settings.recipient_keys == "pq":
        return crypto.HybridIdentity.generate()
    return crypto.X25519Identity.generate()


def _pin_receipt_cost(session: Session, settings: Settings) -> None:
    """Record the receipt Argon2id cost once. Instances that already hold receipts made
    before it was recorded used the password cost of the time."""
    from .models import Witness

    if session.get(InstanceValue, "receipt_kdf") is not None:
        return
    if session.scalar(select(Witness.id).limit(1)) is not None:
        cost = (settings.argon2_memory_kib, settings.argon2_time_cost)
    else:
        cost = (settings.receipt_argon2_memory_kib, settings.receipt_argon2_time_cost)
    instance_value(
        session,
        "receipt_kdf",
        make=json.dumps({"memory_kib": cost[0], "time_cost": cost[1]}).encode(),
    )


def receipt_kdf(session: Session) -> ReceiptKdf:
    """The instance's receipt salt and Argon2id cost (see :class:`ReceiptKdf`)."""
    cost = json.loads(instance_value(session, "receipt_kdf"))
    return ReceiptKdf(
        salt=instance_value(session, "receipt_salt"),
        memory_kib=int(cost["memory_kib"]),
        time_cost=int(cost["time_cost"]),
    )


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def init(settings: Settings, out: Callable[[str], object] = print) -> Path | None:
    """Migrate, and on first run create the recovery key. Returns its path if created."""
    migrate(settings)
    db = Database(settings)
    created: Path | None = None
    try:
        with db.transaction() as session:
            instance_value(session, "receipt_salt", make=os.urandom(16))
            _pin_receipt_cost(session, settings)
            has_recovery = session.scalars(
                select(Recipient).where(Recipient.kind == "recovery")
            ).first()
            if not has_recovery:
                identity = new_identity(settings)
                created = settings.instance_path / RECOVERY_FILE
                try:
                    crypto.write_secret_file(
                        str(created), crypto.identity_file_text(identity, identity.recipient)
                    )
                except FileExistsError:
                    created = None
                    raise SystemExit(
                        "error: %s exists but the database has no recovery key; move that "
                        "file somewhere safe (it may be the only key to older testimony) "
                        "and run init again" % (settings.instance_path / RECOVERY_FILE)
                    ) from None
                recipient = Recipient(
                    public_key=str(identity.recipient),
                    kind="recovery",
                    label="organisation recovery key",
                    active=True,
                    created_on=today(),
                )
                session.add(recipient)
                session.flush()
                audit.append(
                    session,
                    "operator",
                    "recipient.add",
                    "recipient:%d" % recipient.id,
                    {"kind": "recovery", "public_key": str(identity.recipient)},
                )
    finally:
        db.dispose()
    if created:
        bar = "!" * 78
        out(bar)
        out("The organisation's RECOVERY KEY was written to:\n    %s" % created)
        out("Every testimony is sealed to it. Copy it to offline storage (paper, an")
        out("encrypted USB stick kept apart), then DELETE it from this server:")
        out("    shred -u %s" % created)
        out("Whoever holds this file can read all testimony. Without it, testimony whose")
        out("reviewers forgot their passwords is lost.")
        out(bar)
    return created
