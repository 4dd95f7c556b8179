"""Alembic environment: the URL and models come from store.settings and store.models."""

from __future__ import annotations

from alembic import context

from store import settings as settings_module
from store.db import make_engine
from store.models import Base

config = context.config
settings = config.attributes.get("settings") or settings_module.load()


def run_offline() -> None:
    context.configure(
        url=settings.database_url,
        target_metadata=Base.metadata,
        literal_binds=True,
        render_as_batch=settings.is_sqlite,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(settings)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=sqlite,
        compare_type=True,
    )
    if not sqlite:
        with context.begin_transaction():
            context.run_migrations()
        return
    # A batch migration rebuilds a table (copy, drop, rename); SQLite would refuse the
    # drop of a table other rows refer to. Foreign keys are checked once at the end
    # instead, inside the migration's transaction (the pragma only takes effect outside
    # one).
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    connection.commit()  # end the transaction the pragma began, so the migration has its own
    try:
        with context.begin_transaction():
            context.run_migrations()
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                raise RuntimeError("the migration breaks foreign keys: %r" % broken[:5])
    finally:
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
