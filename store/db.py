"""Engine and sessions. SQLite gets WAL, foreign keys, secure_delete (so deleted rows are
overwritten, not left in free pages) and a busy timeout on every connection."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from .settings import Settings

if TYPE_CHECKING:
    from .receipts import ReceiptKdf


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in (
        "journal_mode=WAL",
        "foreign_keys=ON",
        "secure_delete=ON",
        "busy_timeout=30000",
        "synchronous=FULL",
    ):
        cursor.execute("PRAGMA " + pragma)
    cursor.close()


def make_engine(settings: Settings) -> Engine:
    if settings.is_sqlite:
        settings.instance_path.mkdir(parents=True, exist_ok=True)
        engine = create_engine(settings.database_url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(settings.database_url, pool_pre_ping=True)


class Database:
    """One engine and its session factory for an app or a command. Every session carries
    the instance's settings in ``session.info["settings"]``, so code that holds only a
    session (ending a reviewer's sessions when they are disabled) reaches the same
    stores as the app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings)
        self.sessions = sessionmaker(
            self.engine, expire_on_commit=False, info={"settings": settings}
        )
        # The instance's receipt derivation, read once by the intake: it never changes.
        self.receipt_kdf: ReceiptKdf | None = None

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits at the end of the block, or not at all."""
        with self.sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
