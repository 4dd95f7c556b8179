"""Backups as docs/deploy.md describes them, restored and opened: the database copy
(SQLite's online ``.backup``; PostgreSQL's ``pg_dump``/``pg_restore``) into a fresh place,
then the recovery key, kept offline, opens every item, ``testimony check`` passes, and the
witness's receipt still opens their testimony on the restored instance."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from store.blobs import read_item, unpad_document
from store.check import check
from store.db import Database
from store.instance import init
from store.models import SealedBlob, Statement

from .conftest import ROOT, make_settings
from .intake_helpers import jpeg, receipt_code, submit
from .servers import postgres_bin

STATEMENT = "Invented statement kept through a backup: the gate of the school was locked."


def _intake(settings):
    from intake import create_app

    app = create_app(settings)
    app.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    return app


def _send(settings) -> str:
    app = _intake(settings)
    try:
        response = submit(
            app.test_client(), statement=STATEMENT, files=[("invented.jpg", jpeg(color="purple"))]
        )
        assert response.status_code == 200
        return receipt_code(response)
    finally:
        app.extensions["testimony_db"].dispose()


def _opens(settings, recovery, code: str) -> None:
    """The restored copy: everything unseals with the recovery key, check passes, and the
    receipt opens the thread on the witness face."""
    db = Database(settings)
    try:
        with db.sessions() as session:
            report = check(session, recovery)
            assert report.ok, report.problems
            assert report.opened == report.items >= 5
            blob = session.get(SealedBlob, session.scalar(select(Statement.blob_id)))
            assert unpad_document(read_item(session, blob.id, recovery))["text"] == STATEMENT
    finally:
        db.dispose()
    app = _intake(settings)
    try:
        page = app.test_client().post("/en/receipt/", data={"receipt": code})
        assert page.status_code == 200 and "1 text from you" in page.get_data(as_text=True)
    finally:
        app.extensions["testimony_db"].dispose()


@pytest.mark.sqlite
def test_a_sqlite_backup_restores_and_opens_with_the_recovery_key(tmp_path):
    import crypto

    settings = make_settings(tmp_path / "live")
    created = init(settings, out=lambda *_: None)
    offline = tmp_path / "offline-recovery-key.txt"  # the copy kept on paper or a USB stick
    shutil.copy(created, offline)
    code = _send(settings)

    live = settings.instance_path / "testimony.sqlite3"
    copy = tmp_path / "backups" / "testimony.sqlite3"
    copy.parent.mkdir()
    if shutil.which("sqlite3"):  # the command docs/deploy.md gives
        subprocess.run(["sqlite3", str(live), ".backup '%s'" % copy], check=True, timeout=60)
    else:  # the same online backup API, from Python
        source, target = sqlite3.connect(live), sqlite3.connect(copy)
        with target:
            source.backup(target)
        source.close()
        target.close()

    restored = make_settings(tmp_path / "restored")
    restored.instance_path.mkdir(exist_ok=True)
    shutil.copy(copy, restored.instance_path / "testimony.sqlite3")
    init(restored, out=lambda *_: None)  # migrates if needed; makes no new recovery key
    assert not (restored.instance_path / "recovery-key.txt").exists()
    _opens(restored, crypto.parse_identities_file(offline.read_text()), code)


def test_a_postgresql_dump_restores_into_a_fresh_database(postgres_url, tmp_path):
    import crypto

    binaries = postgres_bin()
    if binaries is None or not (binaries / "pg_dump").exists():
        pytest.skip("pg_dump and pg_restore are not installed (apt-get install postgresql-client)")
    names = ["testimony_backup_%s" % uuid.uuid4().hex[:10] for _ in range(2)]
    server = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        for name in names:
            conn.execute(text('CREATE DATABASE "%s"' % name))
    urls = [make_url(postgres_url).set(database=n) for n in names]
    try:
        settings = make_settings(tmp_path / "live", urls[0].render_as_string(hide_password=False))
        created = init(settings, out=lambda *_: None)
        recovery = crypto.parse_identities_file(Path(created).read_text())
        code = _send(settings)

        # The nightly dump exactly as docs/deploy/testimony-backup.sh takes it.
        backups = tmp_path / "backups"
        env = {
            **os.environ,
            "TESTIMONY_DATABASE_URL": settings.database_url,
            "PATH": "%s:%s" % (binaries, os.environ.get("PATH", "/usr/bin:/bin")),
        }
        subprocess.run(
            ["sh", str(ROOT / "docs" / "deploy" / "testimony-backup.sh"), str(backups)],
            env=env,
            check=True,
            timeout=120,
        )
        [dump] = list(backups.glob("testimony-*.dump"))
        subprocess.run(
            ["sha256sum", "--check", "--quiet", dump.name + ".sha256"],
            cwd=backups,
            check=True,
            timeout=60,
        )
        target = urls[1].set(drivername="postgresql").render_as_string(hide_password=False)
        subprocess.run(
            [
                str(binaries / "pg_restore"),
                "--no-owner",
                "--exit-on-error",
                "--dbname",
                target,
                str(dump),
            ],
            check=True,
            timeout=120,
        )

        restored = make_settings(
            tmp_path / "restored", urls[1].render_as_string(hide_password=False)
        )
        init(restored, out=lambda *_: None)
        _opens(restored, recovery, code)
    finally:
        with server.connect() as conn:
            for name in names:
                conn.execute(text('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name))
        server.dispose()
