"""Every setting of Testimony, read from the environment in one place.

| variable | default |
|---|---|
| TESTIMONY_INSTANCE_PATH | ./instance |
| TESTIMONY_DATABASE_URL | SQLite (WAL) at INSTANCE/testimony.sqlite3 |
| TESTIMONY_LIMITER_STORAGE_URI | memory:// |
| TESTIMONY_LIMITER_PREFIX | testimony (rate-limit and session keys in Redis start with it) |
| TESTIMONY_SESSION_STORAGE_URI | the database, or redis://… (reviewers' sealed sessions) |
| TESTIMONY_SECRET_KEY | generated once into INSTANCE/secret_key |
| TESTIMONY_MAX_FILE_MIB | 50 |
| TESTIMONY_MAX_SUBMISSION_MIB | 200 |
| TESTIMONY_SUBMISSIONS_PER_HOUR | 600 (global budget over all witnesses) |
| TESTIMONY_FOLLOW_UPS_PER_HOUR | 30 (per receipt) |
| TESTIMONY_SUBMISSIONS_PER_CLIENT_HOUR | 30 (per client: hashed address, or Tor circuit) |
| TESTIMONY_ADDITIONS_PER_CLIENT_HOUR | 30 (additions to a testimony, per client) |
| TESTIMONY_LOOKUPS_PER_HOUR | 600 (receipt look-ups, global budget over all witnesses) |
| TESTIMONY_LOOKUPS_PER_CLIENT_HOUR | 20 (receipt look-ups, per client) |
| TESTIMONY_LOGINS_PER_CLIENT_MINUTE / _HOUR | 10 / 60 (reviewer login attempts, per client) |
| TESTIMONY_ARGON2_MEMORY_KIB / _TIME_COST | 65536 / 3 (reviewer passwords) |
| TESTIMONY_RECEIPT_ARGON2_MEMORY_KIB / _TIME_COST | 19456 / 2 (receipts; fixed at creation) |
| TESTIMONY_PAGE_TITLE | "Notes" (neutral title shown in browser history) |
| TESTIMONY_SCRYPT_WORK_FACTOR | 18 (reviewer keys sealed to passwords) |
| TESTIMONY_REVIEW_IDLE_MINUTES / _SESSION_HOURS | 30 / 12 |
| TESTIMONY_COOKIE_SECURE | off (set to 1 when served over HTTPS) |
| TESTIMONY_TRUSTED_PROXIES | 0 (1 behind the nginx of docs/deploy: rate limits then key on the
  X-Forwarded-For it sets, for the intake Tor's circuit id) |
| TESTIMONY_RECIPIENT_KEYS | pq (hybrid ML-KEM-768 + X25519 keys), or x25519 |
| TESTIMONY_RETENTION_DAYS | 0: off (else days in a final status before `testimony purge`) |
| TESTIMONY_RETENTION_STATUSES | withdrawn,not_credible (the final statuses) |
| TESTIMONY_ANCHOR_REMIND_DAYS | 7 (remind admins when the last audit anchor is older; 0: off) |

With ``pq``, new reviewer, recovery and witness reply keys are post-quantum hybrids
(opened offline with age 1.3 or newer, or ``python -m crypto``); ``x25519`` makes keys
that older age tools open too.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


def _int(env: dict[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise SystemExit("%s must be an integer, not %r" % (name, value)) from None


@dataclass(frozen=True)
class Settings:
    instance_path: Path
    database_url: str
    limiter_storage_uri: str = "memory://"
    limiter_prefix: str = "testimony"
    secret_key: bytes = field(default=b"", repr=False)
    max_file_size: int = 50 * MIB
    max_submission_size: int = 200 * MIB
    submissions_per_hour: int = 600
    follow_ups_per_hour: int = 30
    submissions_per_client_hour: int = 30
    additions_per_client_hour: int = 30
    lookups_per_hour: int = 600
    lookups_per_client_hour: int = 20
    logins_per_client_minute: int = 10
    logins_per_client_hour: int = 60
    argon2_memory_kib: int = 65536
    argon2_time_cost: int = 3
    receipt_argon2_memory_kib: int = 19456
    receipt_argon2_time_cost: int = 2
    page_title: str = "Notes"
    recipient_keys: str = "pq"
    cookie_secure: bool = False
    scrypt_work_factor: int = 18
    review_idle_minutes: int = 30
    review_session_hours: int = 12
    session_storage_uri: str = ""
    trusted_proxies: int = 0
    retention_days: int = 0
    retention_statuses: tuple[str, ...] = ("withdrawn", "not_credible")
    anchor_remind_days: int = 7

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def with_changes(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def _secret_key(instance: Path, env: dict[str, str]) -> bytes:
    if env.get("TESTIMONY_SECRET_KEY"):
        return env["TESTIMONY_SECRET_KEY"].encode()
    path = instance / "secret_key"
    if not path.exists():
        instance.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def _session_storage(env: dict[str, str]) -> str:
    uri = env.get("TESTIMONY_SESSION_STORAGE_URI", "")
    if uri and not uri.startswith(("redis://", "rediss://", "unix://")):
        raise SystemExit(
            "TESTIMONY_SESSION_STORAGE_URI must be empty (the database) or a redis:// address"
        )
    return uri


def _retention_statuses(env: dict[str, str]) -> tuple[str, ...]:
    from .vocabulary import STATUSES

    raw = env.get("TESTIMONY_RETENTION_STATUSES") or "withdrawn,not_credible"
    chosen = tuple(s.strip() for s in raw.split(",") if s.strip())
    unknown = [s for s in chosen if s not in STATUSES]
    if unknown or not chosen:
        raise SystemExit(
            "TESTIMONY_RETENTION_STATUSES must list statuses among %s, not %r"
            % (", ".join(STATUSES), raw)
        )
    return chosen


def load(env: dict[str, str] | None = None) -> Settings:
    """Settings from ``env`` (default: the process environment)."""
    env = dict(os.environ if env is None else env)
    instance = Path(env.get("TESTIMONY_INSTANCE_PATH") or "instance").resolve()
    database_url = env.get("TESTIMONY_DATABASE_URL") or "sqlite:///%s" % (
        instance / "testimony.sqlite3"
    )
    keys = env.get("TESTIMONY_RECIPIENT_KEYS", "pq")
    if keys not in ("x25519", "pq"):
        raise SystemExit("TESTIMONY_RECIPIENT_KEYS must be 'x25519' or 'pq'")
    return Settings(
        instance_path=instance,
        database_url=database_url,
        limiter_storage_uri=env.get("TESTIMONY_LIMITER_STORAGE_URI") or "memory://",
        limiter_prefix=env.get("TESTIMONY_LIMITER_PREFIX") or "testimony",
        secret_key=_secret_key(instance, env),
        max_file_size=_int(env, "TESTIMONY_MAX_FILE_MIB", 50) * MIB,
        max_submission_size=_int(env, "TESTIMONY_MAX_SUBMISSION_MIB", 200) * MIB,
        submissions_per_hour=_int(env, "TESTIMONY_SUBMISSIONS_PER_HOUR", 600),
        follow_ups_per_hour=_int(env, "TESTIMONY_FOLLOW_UPS_PER_HOUR", 30),
        submissions_per_client_hour=_int(env, "TESTIMONY_SUBMISSIONS_PER_CLIENT_HOUR", 30),
        additions_per_client_hour=_int(env, "TESTIMONY_ADDITIONS_PER_CLIENT_HOUR", 30),
        lookups_per_hour=_int(env, "TESTIMONY_LOOKUPS_PER_HOUR", 600),
        lookups_per_client_hour=_int(env, "TESTIMONY_LOOKUPS_PER_CLIENT_HOUR", 20),
        logins_per_client_minute=_int(env, "TESTIMONY_LOGINS_PER_CLIENT_MINUTE", 10),
        logins_per_client_hour=_int(env, "TESTIMONY_LOGINS_PER_CLIENT_HOUR", 60),
        argon2_memory_kib=_int(env, "TESTIMONY_ARGON2_MEMORY_KIB", 65536),
        argon2_time_cost=_int(env, "TESTIMONY_ARGON2_TIME_COST", 3),
        receipt_argon2_memory_kib=_int(env, "TESTIMONY_RECEIPT_ARGON2_MEMORY_KIB", 19456),
        receipt_argon2_time_cost=_int(env, "TESTIMONY_RECEIPT_ARGON2_TIME_COST", 2),
        page_title=env.get("TESTIMONY_PAGE_TITLE") or "Notes",
        recipient_keys=keys,
        cookie_secure=env.get("TESTIMONY_COOKIE_SECURE", "") in ("1", "true", "yes"),
        scrypt_work_factor=_int(env, "TESTIMONY_SCRYPT_WORK_FACTOR", 18),
        review_idle_minutes=_int(env, "TESTIMONY_REVIEW_IDLE_MINUTES", 30),
        review_session_hours=_int(env, "TESTIMONY_REVIEW_SESSION_HOURS", 12),
        session_storage_uri=_session_storage(env),
        trusted_proxies=_int(env, "TESTIMONY_TRUSTED_PROXIES", 0),
        retention_days=_int(env, "TESTIMONY_RETENTION_DAYS", 0),
        retention_statuses=_retention_statuses(env),
        anchor_remind_days=_int(env, "TESTIMONY_ANCHOR_REMIND_DAYS", 7),
    )
