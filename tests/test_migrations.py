"""The schema: Alembic's head matches the models on SQLite and PostgreSQL, migrations go
up and down and up again, ``testimony init`` is idempotent and ``testimony audit verify``
catches an altered event."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from tests.conftest import FAST_ARGON2, database_env, make_settings, reset_postgres

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request, tmp_path):
    if request.param == "sqlite":
        yield make_settings(tmp_path / "instance")
        return
    url = request.getfixturevalue("postgres_url")
    reset_postgres(url)
    yield make_settings(tmp_path / "instance", url)
    reset_postgres(url)


def _tables(db) -> set[str]:
    return set(inspect(db.engine).get_table_names())


def test_head_matches_the_models(settings):
    from store.db import Database
    from store.instance import migrate
    from store.models import Base

    migrate(settings)
    db = Database(settings)
    try:
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
        assert differences == [], "the models differ from the migrations:\n%s" % "\n".join(
            map(repr, differences)
        )
        assert set(Base.metadata.tables) <= _tables(db)
    finally:
        db.dispose()


def test_upgrade_downgrade_upgrade(settings):
    from store.db import Database
    from store.instance import alembic_config
    from store.models import Base

    config = alembic_config(settings)
    settings.instance_path.mkdir(parents=True, exist_ok=True)
    db = Database(settings)
    try:
        command.upgrade(config, "head")
        tables = _tables(db)
        assert set(Base.metadata.tables) <= tables
        command.downgrade(config, "base")
        assert _tables(db) <= {"alembic_version"}
        command.upgrade(config, "head")
        assert _tables(db) == tables
        with db.engine.connect() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        assert [version] == ScriptDirectory.from_config(config).get_heads()
    finally:
        db.dispose()


def test_witness_reply_keys_become_recipients_and_back(settings):
    """0005 moves each witness's reply key into a ``witness`` recipient named by the
    witness's replies, and its downgrade puts the key back where it was."""
    from store.db import Database
    from store.instance import alembic_config

    config = alembic_config(settings)
    settings.instance_path.mkdir(parents=True, exist_ok=True)
    db = Database(settings)
    key = "age1invented0witness0reply0key"
    try:
        command.upgrade(config, "0004")
        with db.engine.begin() as conn:
            reviewer = conn.execute(
                text(
                    "INSERT INTO recipient (public_key, kind, label, active, created_on) "
                    "VALUES ('age1invented0reviewer', 'reviewer', 'r', true, '2026-01-02') "
                    "RETURNING id"
                )
            ).scalar_one()
            conn.execute(text("INSERT INTO sealed_blob VALUES (1, 'h', 0, 0)"))
            conn.execute(text("INSERT INTO blob_recipient VALUES (1, :r)"), {"r": reviewer})
            conn.execute(
                text(
                    "INSERT INTO witness (id, receipt_hash, reply_public_key) VALUES (1, 'x', :k)"
                ),
                {"k": key},
            )
            conn.execute(
                text(
                    "INSERT INTO testimony (id, witness_id, received_on, updated_on, status, "
                    "language, place, relation, consent, details_blob_id) VALUES "
                    "(1, 1, '2026-01-02', '2026-01-02', 'new', 'ru', 'masanchi', 'witness', "
                    "'counts', 1)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO message (id, testimony_id, sent_on, blob_id) "
                    "VALUES (1, 1, '2026-01-02', 1)"
                )
            )
        command.upgrade(config, "head")
        with db.engine.connect() as conn:
            reply = conn.execute(
                text(
                    "SELECT r.id, r.kind, r.public_key FROM witness w "
                    "JOIN recipient r ON r.id = w.reply_recipient_id"
                )
            ).one()
            assert (reply.kind, reply.public_key) == ("witness", key)
            named = conn.execute(
                text("SELECT recipient_id FROM blob_recipient WHERE blob_id = 1 ORDER BY 1")
            ).scalars()
            assert list(named) == [reviewer, reply.id]
        command.downgrade(config, "0004")
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT reply_public_key FROM witness")).scalar_one() == key
            kinds = conn.execute(text("SELECT kind FROM recipient")).scalars()
            assert list(kinds) == ["reviewer"]
            named = conn.execute(text("SELECT recipient_id FROM blob_recipient")).scalars()
            assert list(named) == [reviewer]
    finally:
        db.dispose()


# --- the command -----------------------------------------------------------------------------


def run_testimony(instance: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **FAST_ARGON2, "TESTIMONY_INSTANCE_PATH": str(instance)}
    env.pop("TESTIMONY_DATABASE_URL", None)
    env.update(database_env(instance))
    return subprocess.run(
        [sys.executable, "-m", "review.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_init_on_a_fresh_database_never_overwrites_an_old_recovery_key(tmp_path):
    # The database was lost or moved, but the old recovery key file is still there: it may
    # be the only key to older testimony, so init refuses instead of replacing it.
    instance = tmp_path / "instance"
    instance.mkdir()
    key_file = instance / "recovery-key.txt"
    key_file.write_text("# the only copy of an older key\n")
    result = run_testimony(instance, "init")
    assert result.returncode != 0
    assert "recovery-key.txt exists" in result.stderr and "Traceback" not in result.stderr
    assert key_file.read_text() == "# the only copy of an older key\n"
    assert "RECOVERY KEY" not in result.stdout


def test_init_twice_makes_one_recovery_key_and_audit_verify_catches_an_edit(tmp_path):
    from store import audit
    from store.db import Database

    instance = tmp_path / "instance"
    first = run_testimony(instance, "init")
    assert first.returncode == 0, first.stderr
    key_file = instance / "recovery-key.txt"
    assert "RECOVERY KEY" in first.stdout and str(key_file) in first.stdout
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key_text = key_file.read_text()
    assert "AGE-SECRET-KEY-" in key_text.upper()

    second = run_testimony(instance, "init")
    assert second.returncode == 0, second.stderr
    assert "RECOVERY KEY" not in second.stdout
    assert key_file.read_text() == key_text
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    db = Database(make_settings(instance))
    try:
        with db.engine.connect() as conn:
            recipients = conn.execute(text("SELECT kind, public_key FROM recipient")).all()
            salts = conn.execute(
                text("SELECT count(*) FROM instance_value WHERE name = 'receipt_salt'")
            ).scalar_one()
        assert len(recipients) == 1 and recipients[0].kind == "recovery"
        assert recipients[0].public_key in key_text
        assert salts == 1

        ok = run_testimony(instance, "audit", "verify")
        assert ok.returncode == 0, ok.stderr
        assert "intact" in ok.stdout

        # Two more events, then alter the middle one's details behind the chain's back.
        with db.transaction() as session:
            audit.append(session, "operator", "invented.check", "testimony:1", {"n": 1})
            audit.append(session, "operator", "invented.check", "testimony:2", {"n": 2})
        with db.engine.begin() as conn:
            conn.execute(
                text("UPDATE audit_event SET details = :d WHERE seq = 2"),
                {"d": json.dumps({"n": 99})},
            )
        broken = run_testimony(instance, "audit", "verify")
        assert broken.returncode != 0
        assert "event 2" in broken.stderr and "altered" in broken.stderr, broken.stderr
        assert "event 1" not in broken.stderr and "event 3:" not in broken.stderr
    finally:
        db.dispose()
