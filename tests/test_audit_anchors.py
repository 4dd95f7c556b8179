"""Signed anchors of the audit chain: ``testimony audit anchor`` writes one, ``testimony
audit verify --anchor`` catches a chain that was cut back, edited or reordered and then
recomputed by whoever could write the database (the hashes here are recomputed with
the very function the chain uses), refuses forged anchors, and lets events be appended
after an anchor. The review face reminds administrators to take one."""

from __future__ import annotations

import base64
import datetime as dt
import json
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, text

from store import anchors, audit
from store.db import Database
from store.models import AuditEvent
from tests.conftest import make_settings
from tests.review_helpers import make_desk
from tests.test_migrations import run_testimony


@pytest.fixture
def instance(tmp_path):
    instance = tmp_path / "instance"
    done = run_testimony(instance, "init")
    assert done.returncode == 0, done.stderr
    return instance


@pytest.fixture
def db(instance):
    db = Database(make_settings(instance))
    yield db
    db.dispose()


def _append(db, *names: str) -> None:
    with db.transaction() as session:
        for name in names:
            audit.append(session, "operator", "invented.check", name, {"name": name})


def _anchor(instance, out) -> dict:
    done = run_testimony(instance, "audit", "anchor", "--out", str(out))
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


def _verify(instance, *anchor_files, key: str | None = None):
    args = ["audit", "verify"]
    for path in anchor_files:
        args += ["--anchor", str(path)]
    if key:
        args += ["--anchor-key", key]
    return run_testimony(instance, *args)


def _recompute(db) -> None:
    """What a database writer would do to hide a change: renumber the events 1, 2, … and
    recompute every link and hash with the chain's own function."""
    with db.transaction() as session:
        events = list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
        prev = audit.GENESIS
        for number, event in enumerate(events, start=1):
            event.seq = number
            event.prev_hash = prev
            event.hash = audit._digest(
                prev, number, event.at, event.actor, event.action, event.subject, event.details
            )
            prev = event.hash
            session.flush()
    with db.transaction() as session:
        assert audit.verify(session).ok  # the chain alone no longer shows anything


def _anchored_chain(instance, db, tmp_path, count: int = 5) -> list:
    """Anchors taken one after another: anchor n covers event n (its own event is n+1)."""
    files = []
    for n in range(1, count + 1):
        path = tmp_path / ("anchor-%d.json" % n)
        assert _anchor(instance, path)["seq"] == n
        files.append(path)
    return files


def test_an_anchor_is_small_signed_json_and_an_untouched_chain_passes(instance, db, tmp_path):
    _append(db, "testimony:1", "testimony:2")
    out = tmp_path / "anchor.json"
    fields = _anchor(instance, out)
    assert set(fields) == {"format", "seq", "hash", "day", "public_key", "signature"}
    assert fields["format"] == "testimony-anchor/1"
    assert fields["day"] == dt.datetime.now(dt.UTC).date().isoformat()
    with db.sessions() as session:
        head = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
    # The anchor covers the head before it; the anchoring is the next event.
    assert head.action == "audit.anchor" and head.seq == fields["seq"] + 1 == 4
    assert json.loads(head.details) == {"seq": 3, "hash": fields["hash"]}
    assert head.prev_hash == fields["hash"]

    key_file = instance / "anchor-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    public = run_testimony(instance, "audit", "anchor", "--public-key")
    assert public.returncode == 0 and public.stdout.strip() == fields["public_key"]
    assert fields["public_key"] not in key_file.read_text().splitlines()[-1]

    # Anyone can check the signature with nothing but the file.
    signed = anchors.canonical(fields)
    anchors.parse_public_key(fields["public_key"]).verify(
        base64.b64decode(fields["signature"]), signed
    )

    ok = _verify(instance, out)
    assert ok.returncode == 0, ok.stderr
    assert "1 anchor(s) match" in ok.stdout
    # Events after the anchor are allowed.
    _append(db, "testimony:3", "testimony:4")
    again = _verify(instance, out)
    assert again.returncode == 0, again.stderr
    # Without --anchor, verify is unchanged.
    plain = _verify(instance)
    assert plain.returncode == 0 and plain.stdout.strip() == "audit chain intact: 6 events"


def test_anchor_refuses_an_existing_file_and_prints_to_stdout_without_out(instance, db, tmp_path):
    taken = tmp_path / "taken.json"
    taken.write_text("keep me\n")
    done = run_testimony(instance, "audit", "anchor", "--out", str(taken))
    assert done.returncode != 0 and "exists" in done.stderr and "Traceback" not in done.stderr
    assert taken.read_text() == "keep me\n"
    with db.sessions() as session:
        assert audit.last_anchor_day(session) is None  # no event without a file
    printed = run_testimony(instance, "audit", "anchor")
    assert printed.returncode == 0, printed.stderr
    path = tmp_path / "printed.json"
    path.write_text(printed.stdout)
    assert json.loads(printed.stdout)["seq"] == 1
    assert _verify(instance, path).returncode == 0


def test_cutting_back_the_last_events_before_an_anchor_and_recomputing_is_named(
    instance, db, tmp_path
):
    files = _anchored_chain(instance, db, tmp_path)
    _append(db, "testimony:after")
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_event WHERE seq IN (4, 5)"))
    _recompute(db)
    done = _verify(instance, *files)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("event 4: first bad event: anchor %s" % files[3]), done.stderr
    assert "Traceback" not in done.stderr
    # The anchors before the cut still pass.
    assert _verify(instance, *files[:3]).returncode == 0


def test_cutting_off_the_end_is_named_without_any_recomputing(instance, db, tmp_path):
    files = _anchored_chain(instance, db, tmp_path, count=3)
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_event WHERE seq >= 3"))
    assert _verify(instance).returncode == 0  # the chain alone looks whole
    done = _verify(instance, *files)
    assert done.returncode == 1
    assert done.stderr.startswith(
        "event 3: first bad event: anchor %s: event 3 is missing" % (files[2])
    ), done.stderr


def test_an_edited_event_is_named_recomputed_or_not(instance, db, tmp_path):
    files = _anchored_chain(instance, db, tmp_path)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_event SET subject = 'testimony:99' WHERE seq = 3"))
    edited = _verify(instance, *files)
    assert edited.returncode == 1
    assert edited.stderr.startswith("event 3: contents were altered"), edited.stderr
    _recompute(db)
    recomputed = _verify(instance, *files)
    assert recomputed.returncode == 1
    assert recomputed.stderr.startswith("event 3: first bad event: anchor %s" % files[2])
    # One line per problem: every later anchor fails too, with the range it bounds.
    assert len(recomputed.stderr.strip().splitlines()) == 1 + 3  # anchors 3, 4, 5 + summary


def test_a_reordered_chain_is_named(instance, db, tmp_path):
    files = _anchored_chain(instance, db, tmp_path)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_event SET seq = -1 WHERE seq = 2"))
        conn.execute(text("UPDATE audit_event SET seq = 2 WHERE seq = 3"))
        conn.execute(text("UPDATE audit_event SET seq = 3 WHERE seq = -1"))
    swapped = _verify(instance, *files)
    assert swapped.returncode == 1 and swapped.stderr.startswith("event 2: ")
    _recompute(db)
    done = _verify(instance, *files)
    assert done.returncode == 1
    assert done.stderr.startswith("event 2: first bad event: anchor %s" % files[1]), done.stderr


def test_forged_anchors_are_refused(instance, db, tmp_path):
    (good,) = _anchored_chain(instance, db, tmp_path, count=1)
    fields = json.loads(good.read_text())

    def forged(name: str, **changes) -> str:
        path = tmp_path / name
        path.write_text(json.dumps({**fields, **changes}))
        return str(path)

    stranger = Ed25519PrivateKey.generate()
    other = json.loads(anchors.make(stranger, fields["seq"], fields["hash"], dt.date.today()))
    cases = {
        forged("seq.json", seq=2): "bad signature",
        forged("hash.json", hash="0" * 64): "bad signature",
        forged("day.json", day="2020-02-07"): "bad signature",
        forged("stranger.json", **other): "signed by key",
        forged("posing.json", signature=other["signature"]): "bad signature",
        forged("format.json", format="other/1"): "not a testimony-anchor/1 file",
    }
    for path, reason in cases.items():
        done = _verify(instance, good, path)
        assert done.returncode == 1, path
        assert reason in done.stderr and path in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert _verify(instance, good).returncode == 0


def test_verify_from_a_backup_with_only_the_pinned_key(instance, db, tmp_path):
    (good,) = _anchored_chain(instance, db, tmp_path, count=1)
    public = json.loads(good.read_text())["public_key"]
    (instance / "anchor-key").rename(tmp_path / "anchor-key.elsewhere")
    unpinned = _verify(instance, good)
    assert unpinned.returncode == 1 and "--anchor-key" in unpinned.stderr
    pinned = _verify(instance, good, key=public)
    assert pinned.returncode == 0, pinned.stderr
    wrong = anchors.public_key_text(Ed25519PrivateKey.generate().public_key())
    refused = _verify(instance, good, key=wrong)
    assert refused.returncode == 1 and "signed by key" in refused.stderr


def test_the_reviewers_page_reminds_admins_to_anchor(tmp_path, monkeypatch):
    desk = make_desk(tmp_path, monkeypatch, TESTIMONY_ANCHOR_REMIND_DAYS="7")
    try:
        admin = desk.add_reviewer("Invented Admin", admin=True)
        plain = desk.add_reviewer("Invented Reviewer")
        client = desk.logged_in(admin)
        page = client.get("/reviewers/").get_data(as_text=True)
        assert "No audit anchor was ever taken." in page
        assert "Run `testimony audit anchor`" in page
        other = desk.logged_in(plain).get("/reviewers/").get_data(as_text=True)
        assert "audit anchor" not in other

        with desk.db.transaction() as session:
            event = audit.append(session, "operator", "audit.anchor", "", {"seq": 1})
            event.at = event.at - dt.timedelta(days=10)
        page = client.get("/reviewers/").get_data(as_text=True)
        assert "Last audit anchor: 10 days ago." in page
        assert "Run `testimony audit anchor`" in page

        with desk.db.transaction() as session:
            audit.append(session, "operator", "audit.anchor", "", {"seq": 2})
        page = client.get("/reviewers/").get_data(as_text=True)
        assert "Last audit anchor: 0 days ago." in page
        assert "Run `testimony audit anchor`" not in page
    finally:
        desk.close()


def test_the_reminder_can_be_turned_off(tmp_path, monkeypatch):
    desk = make_desk(tmp_path, monkeypatch, TESTIMONY_ANCHOR_REMIND_DAYS="0")
    try:
        admin = desk.add_reviewer("Invented Admin", admin=True)
        page = desk.logged_in(admin).get("/reviewers/").get_data(as_text=True)
        assert "No audit anchor was ever taken." in page
        assert "Run `testimony audit anchor`" not in page
    finally:
        desk.close()
