"""Shared fixtures. External pieces (the testkit, the age tool, PostgreSQL, Redis) are
real; a test that needs one that is missing is skipped with the reason.

The suite runs on SQLite by default. With ``TESTIMONY_TEST_BACKEND=postgres`` (and
``TEST_DATABASE_URL`` naming a server), every instance :func:`make_settings` makes without
an explicit database gets its own schema in a database of this run's own
(``testimony_suite_PID``, dropped at the end): one schema per instance folder, so a test
with two instances has two databases, and the same folder opened twice is the same
database. Tests marked ``sqlite`` read SQLite's own files and keep SQLite; ``make test``
runs them, and the ``browser`` tests, in the first pass only. Modules in :data:`ONCE`
never open an instance database (or bring PostgreSQL servers of their own) and are not
run again on the second pass.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTKIT = Path(os.environ.get("TESTIMONY_TESTKIT", ROOT.parent / "shared" / "testkit"))


@pytest.fixture(scope="session")
def age_vectors_dir() -> Path:
    folder = TESTKIT / "age"
    if not folder.is_dir():
        pytest.skip(
            "the C2SP age vectors are absent: %s (../shared/testkit not beside the repo)" % folder
        )
    return folder


@pytest.fixture(scope="session")
def age_binary() -> str:
    path = shutil.which("age")
    if not path:
        pytest.skip("the reference `age` tool is not installed (apt-get install age)")
    return path


# --- instances and apps ------------------------------------------------------------------

FAST_ARGON2 = {
    "TESTIMONY_ARGON2_MEMORY_KIB": "1024",
    "TESTIMONY_ARGON2_TIME_COST": "1",
    "TESTIMONY_RECEIPT_ARGON2_MEMORY_KIB": "1024",
    "TESTIMONY_RECEIPT_ARGON2_TIME_COST": "1",
}


def make_settings(instance: Path, database_url: str | None = None, **env: str):
    from store import settings as settings_module

    values = {"TESTIMONY_INSTANCE_PATH": str(instance), **FAST_ARGON2, **env}
    database_url = database_url or instance_database_url(instance)
    if database_url:
        values["TESTIMONY_DATABASE_URL"] = database_url
    return settings_module.load(values)


# --- the PostgreSQL pass ----------------------------------------------------------------------

ONCE = {
    "test_age_vectors",
    "test_age_interop",
    "test_crypto_cli",
    "test_seal_properties",
    "test_hybrid",
    "test_soak",
}
_SUITE: dict[str, object] = {"force_sqlite": False, "base": None}


def on_postgres() -> bool:
    """Whether this run's instances live on PostgreSQL (the second pass of make test)."""
    return os.environ.get("TESTIMONY_TEST_BACKEND") == "postgres" and not _SUITE["force_sqlite"]


def _suite_database() -> str:
    """The URL of this run's own database, created on first use."""
    if _SUITE["base"] is None:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        server = os.environ.get("TEST_DATABASE_URL")
        if not server:
            raise RuntimeError("TESTIMONY_TEST_BACKEND=postgres needs TEST_DATABASE_URL")
        name = "testimony_suite_%d" % os.getpid()
        engine = create_engine(server, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            for (stale,) in conn.execute(
                text("SELECT datname FROM pg_database WHERE datname LIKE 'testimony_suite_%'")
            ):
                pid = int(stale.rsplit("_", 1)[1])
                if pid == os.getpid() or not _alive(pid):
                    conn.execute(text('DROP DATABASE "%s" WITH (FORCE)' % stale))
            conn.execute(text('CREATE DATABASE "%s"' % name))
        engine.dispose()
        _SUITE["base"] = make_url(server).set(database=name).render_as_string(hide_password=False)
    return str(_SUITE["base"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def instance_database_url(instance: Path) -> str | None:
    """On the PostgreSQL pass, the URL of ``instance``'s own schema (made if missing);
    otherwise None (SQLite in the instance folder)."""
    if not on_postgres():
        return None
    from sqlalchemy import create_engine, text

    schema = "i_" + hashlib.sha256(str(Path(instance).resolve()).encode()).hexdigest()[:24]
    base = _suite_database()
    engine = create_engine(base)
    with engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA IF NOT EXISTS %s" % schema))
    engine.dispose()
    return base + "?options=" + quote("-csearch_path=%s" % schema, safe="")


def database_env(instance: Path) -> dict[str, str]:
    """The environment a subprocess needs to open ``instance`` (its database URL on the
    PostgreSQL pass, nothing on SQLite)."""
    url = instance_database_url(instance)
    return {"TESTIMONY_DATABASE_URL": url} if url else {}


def table_rows(settings) -> dict[str, list[tuple]]:
    """Every row of every table, sorted: what the database holds, on either backend."""
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            names = inspect(conn).get_table_names()
            return {
                name: sorted(
                    (tuple(row) for row in conn.execute(text('SELECT * FROM "%s"' % name))),
                    key=repr,
                )
                for name in sorted(names)
            }
    finally:
        engine.dispose()


def database_bytes(settings) -> bytes:
    """What the database keeps, as bytes to search: SQLite's files (main, WAL, shared
    memory) as they are on disk; on PostgreSQL every value of every row."""
    if settings.is_sqlite:
        folder = Path(settings.instance_path)
        return b"".join(p.read_bytes() for p in sorted(folder.glob("testimony.sqlite3*")))
    out = []
    for rows in table_rows(settings).values():
        for row in rows:
            for value in row:
                if isinstance(value, (bytes, memoryview)):
                    out.append(bytes(value))
                elif value is not None:
                    out.append(str(value).encode("utf-8"))
    return b"\x00".join(out)


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "sqlite: reads SQLite's own files; keeps SQLite on the PostgreSQL pass"
    )


def pytest_collection_modifyitems(config, items) -> None:
    if os.environ.get("TESTIMONY_TEST_BACKEND") != "postgres":
        return
    kept, dropped = [], []
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        (dropped if module in ONCE else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(autouse=True)
def _backend_for_this_test(request):
    _SUITE["force_sqlite"] = request.node.get_closest_marker("sqlite") is not None
    yield
    _SUITE["force_sqlite"] = False


def pytest_sessionfinish(session, exitstatus) -> None:
    if _SUITE["base"] is None:
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = make_url(str(_SUITE["base"])).database
    engine = create_engine(os.environ["TEST_DATABASE_URL"], isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name))
    engine.dispose()


def reset_postgres(url: str) -> None:
    """Empty the test database: drop every table and the migration record."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip(
            "TEST_DATABASE_URL is not set: PostgreSQL tests need a server "
            "(.ci/run sets it to the local one)"
        )
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.skip(
            "TEST_REDIS_URL is not set: Redis tests need a server "
            "(.ci/run sets it to the local one)"
        )
    return url


@pytest.fixture
def instance(tmp_path: Path):
    """A fresh, initialised SQLite instance; yields (settings, recovery identity)."""
    import crypto
    from store import instance as instance_module

    settings = make_settings(tmp_path / "instance")
    created = instance_module.init(settings, out=lambda *_: None)
    identity = crypto.parse_identities_file(created.read_text())[0]
    return settings, identity


@pytest.fixture
def intake_app(instance):
    from intake import create_app

    settings, _identity = instance
    app = create_app(settings)
    app.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    yield app
    app.extensions["testimony_db"].dispose()


@pytest.fixture
def client(intake_app):
    return intake_app.test_client()
