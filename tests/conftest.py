"""Shared fixtures. External pieces (the testkit, the age tool, PostgreSQL, Redis) are
real; a test that needs one that is missing is skipped with the reason."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTKIT = Path(os.environ.get("TESTIMONY_TESTKIT", ROOT.parent / "shared" / "testkit"))


@pytest.fixture(scope="session")
def age_vectors_dir() -> Path:
    folder = TESTKIT / "age"
    if not folder.is_dir():
        pytest.skip("the C2SP age vectors are absent: %s (../shared/testkit not beside the repo)"
                    % folder)
    return folder


@pytest.fixture(scope="session")
def age_binary() -> str:
    path = shutil.which("age")
    if not path:
        pytest.skip("the reference `age` tool is not installed (apt-get install age)")
    return path


# --- instances and apps ------------------------------------------------------------------

FAST_ARGON2 = {"TESTIMONY_ARGON2_MEMORY_KIB": "1024", "TESTIMONY_ARGON2_TIME_COST": "1",
               "TESTIMONY_RECEIPT_ARGON2_MEMORY_KIB": "1024",
               "TESTIMONY_RECEIPT_ARGON2_TIME_COST": "1"}


def make_settings(instance: Path, database_url: str | None = None, **env: str):
    from store import settings as settings_module

    values = {"TESTIMONY_INSTANCE_PATH": str(instance), **FAST_ARGON2, **env}
    if database_url:
        values["TESTIMONY_DATABASE_URL"] = database_url
    return settings_module.load(values)


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
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL tests need a server "
                    "(.ci/run sets it to the local one)")
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.skip("TEST_REDIS_URL is not set: Redis tests need a server "
                    "(.ci/run sets it to the local one)")
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
