"""The soak (``bench/soak.py``, ``make soak``) in a bounded size: 200 submissions, 16
witnesses and two reviewers at once, 4 gunicorn workers per face on a PostgreSQL cluster
and a Redis server of the test's own, and one of each fault (a worker killed with SIGKILL
mid-upload, a busy worker killed, PostgreSQL restarted, Redis restarted).

Nothing acknowledged is lost, nothing is partial, no witness ever sees a 500, every 503
is the translated "try again" page, nothing but 200s (and reviewers' logins) outside the
faults, and ``testimony check`` passes with the recovery key."""

from __future__ import annotations

import pytest

from .servers import postgres_bin, redis_binary

pytestmark = pytest.mark.slow


@pytest.mark.skipif(
    postgres_bin() is None,
    reason="PostgreSQL server binaries (initdb, "
    "pg_ctl) are not installed: apt-get install postgresql",
)
@pytest.mark.skipif(redis_binary() is None, reason="redis-server is not installed")
def test_nothing_acknowledged_is_lost_under_load_and_faults(tmp_path):
    from bench import soak

    lines: list[str] = []
    result = soak.run(
        submissions=200,
        witnesses=16,
        reviewers=2,
        workers=4,
        faults=1,
        fast_kdf=True,
        work=tmp_path / "soak",
        out=lines.append,
    )
    soak.report(result, out=lines.append)
    summary = "\n".join(lines)
    assert [f.kind for f in result.faults] == [
        "worker killed mid-upload",
        "busy worker killed",
        "PostgreSQL restarted",
        "Redis restarted",
    ], summary
    assert "connection was cut" in result.faults[0].detail, summary
    assert result.acknowledged == result.found == 200, summary
    assert result.lost == [] and result.partial == [], summary
    assert result.statuses[500] == 0 and result.untranslated == 0, summary
    assert not result.outside and not result.review_outside, summary
    assert result.check_ok, summary
    assert result.sample_opened == result.sample > 0, summary
    pages = result.browsing.pages
    assert pages["inbox", 200] > 0 and pages["testimony", 200] > 0, summary
    assert result.ok, summary
