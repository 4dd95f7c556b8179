"""The review desk end to end: testimony sent through the intake's test client is read,
sorted, answered and shared through the review face's test client, and the
``testimony reviewer`` commands are run as an operator would run them.

Each action is checked where it lands: in the audit chain, in the sealed rows, in what
the witness sees with the receipt. Everything here is invented."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import re
import subprocess
import sys

import pytest
from PIL import Image
from sqlalchemy import func, select, update

import crypto
from intake import submission
from store.blobs import header_of, read_item
from store.models import (
    AuditEvent,
    BlobChunk,
    BlobRecipient,
    Reviewer,
    ReviewSession,
    SealedBlob,
    Testimony,
)

from .conftest import FAST_ARGON2, ROOT, database_env
from .intake_helpers import receipt_code, submit
from .review_helpers import Person, make_desk, photo_with_exif

STATEMENT = (
    "Invented statement: on the night of the fire a grey Volga-sedan without plates "
    "drove twice past the Masanchi mosque, and two men filmed the crowd."
)
CONTACT = "Invented contact: ask for Aigerim at +7 700 000 0000"
NOTE = "Invented reviewer note: compare with the bridge photos, item 4417."
REPLY = "Invented question to the witness: which side of the mosque were you standing on?"
NOT_SHARED = "not shared with you yet"


@pytest.fixture
def desk(tmp_path, monkeypatch):
    desk = make_desk(tmp_path, monkeypatch)
    yield desk
    desk.close()


def _send(desk, statement: str = STATEMENT, lang: str = "en", **fields) -> str:
    """Submit through the intake's test client; return the receipt code."""
    response = submit(desk.intake_app.test_client(), lang=lang, statement=statement, **fields)
    assert response.status_code == 200, response.data
    code = receipt_code(response)
    assert code
    return code


def _witness_sees(desk, code: str) -> str:
    response = desk.intake_app.test_client().post("/en/receipt/", data={"receipt": code})
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _blobs(desk) -> list[int]:
    with desk.db.sessions() as session:
        return list(session.scalars(select(SealedBlob.id).order_by(SealedBlob.id)))


def _opens(desk, blob_id: int, identity) -> bool:
    with desk.db.sessions() as session:
        try:
            read_item(session, blob_id, [identity])
        except crypto.NoIdentityMatchError:
            return False
    return True


def _chunks(desk) -> dict[tuple[int, int], bytes]:
    with desk.db.sessions() as session:
        return {(c.blob_id, c.seq): c.data for c in session.scalars(select(BlobChunk))}


def _no_unsealing(monkeypatch) -> None:
    """Make any attempt to open a sealed item fail loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError("the inbox tried to unseal something")

    monkeypatch.setattr(crypto, "unseal", refuse)
    monkeypatch.setattr(crypto, "unseal_bytes", refuse)
    monkeypatch.setattr(crypto, "unwrap_file_key", refuse)


ROW = re.compile(r'<tr><td><a href="/testimony/(\d+)">\d+</a></td>(.*?)</tr>', re.S)


def _inbox_ids(page: str) -> list[int]:
    return [int(m.group(1)) for m in ROW.finditer(page)]


# --- one testimony, from the intake to the desk and back to the witness ---------------------


def test_a_testimony_is_read_sorted_and_answered_on_the_desk(desk, monkeypatch):
    alma, bolat = desk.add_reviewer("alma", admin=True), desk.add_reviewer("bolat")
    photo = photo_with_exif()
    code = _send(desk, contact=CONTACT, place="sortobe", files=[("bridge.jpg", photo)])
    client = desk.logged_in(alma)
    head = desk.audit_head()

    # The inbox counts without unsealing anything, and records nothing.
    with monkeypatch.context() as patch:
        _no_unsealing(patch)
        inbox = client.get("/")
    assert inbox.status_code == 200
    row = ROW.search(inbox.get_data(as_text=True))
    assert row and row.group(1) == "1"
    cells = re.findall(r"<td>(.*?)</td>", row.group(2))
    assert cells[3:8] == ["Sortobe", "en", "1", "1", "0"]  # place, language, texts, files, replies
    assert STATEMENT not in inbox.get_data(as_text=True)
    assert desk.audit_actions(head) == []

    # The testimony page: the statement and the photo's sealed capture metadata.
    page = client.get("/testimony/1").get_data(as_text=True)
    assert STATEMENT in page
    assert "43.208333, 75.100000" in page  # GPS from the sealed EXIF
    assert "TestCam Witness Phone 1" in page
    assert "2020:02:07 23:15:00" in page
    assert hashlib.sha256(photo).hexdigest() in page
    assert "bridge.jpg" in page
    assert CONTACT not in page  # only on request
    attachment = int(re.search(r'<img src="/testimony/file/(\d+)/view"', page).group(1))

    # The working copy: a real image, not cached, without any EXIF.
    working = client.get("/testimony/file/%d/view" % attachment)
    assert working.status_code == 200
    assert working.mimetype == "image/jpeg"
    assert "no-store" in working.headers["Cache-Control"]
    image = Image.open(io.BytesIO(working.data))
    assert image.size == (160, 120)
    assert not dict(image.getexif())
    assert b"Exif" not in working.data and b"TestCam" not in working.data
    assert working.data != photo

    # The original, bit for bit, only by POST.
    assert client.get("/testimony/file/%d/original" % attachment).status_code == 405
    original = client.post("/testimony/file/%d/original" % attachment)
    assert original.status_code == 200
    assert original.data == photo
    assert original.mimetype == "application/octet-stream"
    assert "attachment" in original.headers["Content-Disposition"]
    assert "no-store" in original.headers["Cache-Control"]

    # The contact, revealed on request.
    revealed = client.post("/testimony/1/contact")
    assert revealed.status_code == 200 and CONTACT in revealed.get_data(as_text=True)

    # Status, assignment, a note and a reply.
    assert client.post("/testimony/1/status", data={"status": "corroborated"}).status_code == 302
    assert client.post("/testimony/1/assign", data={"reviewer": str(bolat.id)}).status_code == 302
    assert client.post("/testimony/1/note", data={"note-text": NOTE}).status_code == 302
    assert client.post("/testimony/1/reply", data={"reply-text": REPLY}).status_code == 302
    with desk.db.sessions() as session:
        stored = session.get(Testimony, 1)
        assert (stored.status, stored.assigned_to) == ("corroborated", bolat.id)
    page = client.get("/testimony/1").get_data(as_text=True)
    assert NOTE in page and REPLY in page and "Corroborated" in page
    inbox = client.get("/?status=corroborated&assigned=%d" % bolat.id).get_data(as_text=True)
    assert _inbox_ids(inbox) == [1]

    # Notes and replies are sealed: not in any file of the database.
    at_rest = desk.database_bytes()
    for text in (NOTE, REPLY, CONTACT, STATEMENT):
        assert text.encode() not in at_rest
    # The witness reads the reply with the receipt code.
    assert REPLY in _witness_sees(desk, code)

    actions = desk.audit_actions(head)
    for action in (
        "testimony.unseal",
        "file.view",
        "file.download",
        "contact.reveal",
        "testimony.status",
        "testimony.assign",
        "note.add",
        "message.send",
    ):
        assert action in actions, action
    assert actions.index("contact.reveal") < actions.index("testimony.status")
    assert desk.audit_ok()


def test_search_finds_a_word_inside_a_statement_and_forgets_the_query(desk):
    alma = desk.add_reviewer("alma")
    _send(desk, statement="Invented: the school in Otar was closed for a week.")
    _send(desk)  # testimony 2: the grey Volga-sedan
    _send(desk, statement="Invented: nothing was seen from the road to Korday.")
    client = desk.logged_in(alma)
    head = desk.audit_head()
    for query in ("volga-sed", "VOLGA", "Masanchi MOSQUE"):
        page = client.get("/search/", query_string={"q": query}).get_data(as_text=True)
        assert re.findall(r'href="/testimony/(\d+)"', page.split("<main", 1)[1]) == ["2"], query
        assert "Volga-sedan" in page
    empty = client.get("/search/", query_string={"q": "helicopter"}).get_data(as_text=True)
    assert 'href="/testimony/' not in empty.split("<main", 1)[1]
    assert desk.audit_actions(head) == ["search"] * 4
    with desk.db.sessions() as session:
        recorded = " ".join(
            " ".join((e.actor, e.action, e.subject, e.details))
            for e in session.scalars(select(AuditEvent).where(AuditEvent.seq > head))
        )
    for query in ("volga", "masanchi", "mosque", "helicopter"):
        assert query not in recorded.casefold()
    assert b"helicopter" not in desk.database_bytes()
    assert desk.audit_ok()


def test_the_inbox_filters_and_pages_without_unsealing(desk, monkeypatch):
    alma = desk.add_reviewer("alma")
    db = desk.intake_app.extensions["testimony_db"]
    places, languages = ("masanchi", "sortobe", "otar"), ("ru", "kk", "en")
    for n in range(120):
        submission.receive(
            db,
            desk.settings,
            submission.Submission(
                statement="Invented statement number %d." % n,
                when_date=None,
                when_approx="",
                place=places[n % 3],
                place_other="",
                relation="saw",
                consent="counts",
                contact="",
                language=languages[n // 40],
            ),
        )
    old_day = dt.date(2024, 3, 1)
    with desk.db.transaction() as session:
        session.execute(update(Testimony).where(Testimony.id % 7 == 0).values(status="in_review"))
        session.execute(
            update(Testimony)
            .where(Testimony.id <= 10)
            .values(received_on=old_day, updated_on=old_day)
        )
    client = desk.logged_in(alma)
    head = desk.audit_head()
    _no_unsealing(monkeypatch)

    seen: list[int] = []
    for number, expected in ((1, 50), (2, 50), (3, 20)):
        page = client.get("/?page=%d" % number).get_data(as_text=True)
        ids = _inbox_ids(page)
        assert len(ids) == expected, number
        assert "<small>(120)</small>" in page
        assert "Page %d of 3" % number in page
        assert ('rel="next"' in page) == (number < 3)
        seen += ids
    assert sorted(seen) == list(range(1, 121))  # every testimony once, none twice
    assert seen[-10:] == list(range(10, 0, -1))  # the oldest come last

    def ids(**filters) -> set[int]:
        page = client.get("/", query_string=filters).get_data(as_text=True)
        assert "Page 2" not in page
        return set(_inbox_ids(page))

    assert ids(status="in_review") == {n for n in range(1, 121) if n % 7 == 0}
    assert ids(place="otar") == {n for n in range(1, 121) if (n - 1) % 3 == 2}
    assert ids(language="kk") == set(range(41, 81))
    assert ids(**{"from": "2024-03-01", "to": "2024-03-01"}) == set(range(1, 11))
    assert ids(to="2024-12-31", place="masanchi") == {1, 4, 7, 10}
    assert ids(status="withdrawn") == set()
    page = client.get("/?place=sortobe&page=1").get_data(as_text=True)
    assert "(40)" in page
    assert desk.audit_actions(head) == []


# --- sharing and disabling, on testimony sealed before the change ----------------------------


def test_sharing_and_disabling_rewrite_only_headers(desk):
    alma = desk.add_reviewer("alma", admin=True)
    code = _send(desk, contact=CONTACT, files=[("bridge.jpg", photo_with_exif())])
    alma_browser = desk.logged_in(alma)
    assert alma_browser.post("/testimony/1/reply", data={"reply-text": REPLY}).status_code == 302
    assert alma_browser.post("/testimony/1/note", data={"note-text": NOTE}).status_code == 302
    sealed_before = _blobs(desk)

    # Bolat joins later: the testimony is listed, but none of it opens for him.
    bolat = desk.add_reviewer("bolat")
    bolat_browser = desk.logged_in(bolat)
    assert _inbox_ids(bolat_browser.get("/").get_data(as_text=True)) == [1]
    page = bolat_browser.get("/testimony/1").get_data(as_text=True)
    assert NOT_SHARED in page and STATEMENT not in page and NOTE not in page
    assert not any(_opens(desk, b, bolat.identity) for b in sealed_before)
    chunks = _chunks(desk)

    # Alma shares what she can read, through the web page.
    shared = alma_browser.post("/reviewers/%d/grant" % bolat.id)
    assert shared.status_code == 302
    assert "bolat" in alma_browser.get(shared.location).get_data(as_text=True)
    page = bolat_browser.get("/testimony/1").get_data(as_text=True)
    assert NOT_SHARED not in page and STATEMENT in page and NOTE in page and REPLY in page
    assert all(_opens(desk, b, bolat.identity) for b in sealed_before)
    assert _chunks(desk) == chunks  # only headers were rewritten

    # A reviewer who is not an administrator cannot disable anyone.
    assert bolat_browser.post("/reviewers/%d/disable" % alma.id).status_code == 403
    with desk.db.sessions() as session:
        assert session.get(Reviewer, alma.id).active

    # The administrator disables Bolat: his sessions end and his key opens nothing.
    assert alma_browser.post("/reviewers/%d/disable" % bolat.id).status_code == 302
    response = bolat_browser.get("/testimony/1")
    assert response.status_code == 302 and response.location.startswith("/login")
    with desk.db.sessions() as session:
        assert (
            session.scalar(
                select(func.count())
                .select_from(ReviewSession)
                .where(ReviewSession.reviewer_id == bolat.id)
            )
            == 0
        )
        recipient_id = session.get(Reviewer, bolat.id).recipient_id
        assert (
            session.scalar(
                select(func.count())
                .select_from(BlobRecipient)
                .where(BlobRecipient.recipient_id == recipient_id)
            )
            == 0
        )
    assert desk.login(desk.review_app.test_client(), bolat).status_code == 401
    for blob in sealed_before:
        assert not _opens(desk, blob, bolat.identity), blob
        assert _opens(desk, blob, alma.identity), blob
        assert _opens(desk, blob, desk.recovery), blob
    assert _chunks(desk) == chunks
    assert alma_browser.get("/testimony/1").get_data(as_text=True).count(STATEMENT) == 1
    assert REPLY in _witness_sees(desk, code)  # the witness's own key was kept

    # New testimony is no longer sealed to Bolat.
    _send(desk, statement="Invented later statement about the Korday checkpoint.")
    new = [b for b in _blobs(desk) if b not in sealed_before]
    assert new
    for blob in new:
        assert not _opens(desk, blob, bolat.identity)
        assert _opens(desk, blob, alma.identity) and _opens(desk, blob, desk.recovery)
    actions = desk.audit_actions()
    assert "reviewer.grant" in actions and "reviewer.disable" in actions
    assert desk.audit_ok()


# --- the operator's commands ----------------------------------------------------------------


def _command(
    desk, *args: str, password: str | None = None, current: str | None = None
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESTIMONY_")}
    env.update(
        FAST_ARGON2,
        TESTIMONY_INSTANCE_PATH=str(desk.settings.instance_path),
        TESTIMONY_SCRYPT_WORK_FACTOR="4",
        **database_env(desk.settings.instance_path),
    )
    if password is not None:
        env["TESTIMONY_PASSWORD"] = password
    if current is not None:
        env["TESTIMONY_CURRENT_PASSWORD"] = current
    program = os.path.join(os.path.dirname(sys.executable), "testimony")
    return subprocess.run(
        [program, "reviewer", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def _stanzas(desk) -> dict[int, int]:
    with desk.db.sessions() as session:
        return {b.id: len(header_of(b).stanzas) for b in session.scalars(select(SealedBlob))}


def test_the_reviewer_commands(desk):
    recovery_file = str(desk.settings.instance_path / "recovery-key.txt")
    added = _command(desk, "add", "carla", "--admin", password="Invented admin pass 31 ok")
    assert added.returncode == 0, added.stderr
    assert re.search(r"otpauth://totp/Testimony:carla\?secret=[A-Z2-7]+", added.stdout)

    for weak, reason in (
        ("password123", "at least 12 characters"),
        ("Password12345!", "the password is too common"),
        ("dmitri-is-my-long-pass", "must not contain the reviewer's name"),
    ):
        refused = _command(desk, "add", "dmitri", password=weak)
        assert refused.returncode == 1, weak
        assert "error: " in refused.stderr and reason in refused.stderr, refused.stderr
        assert "otpauth" not in refused.stdout
    listed = _command(desk, "list").stdout
    assert re.search(r"^carla\s+admin\s+active", listed, re.M) and "dmitri" not in listed

    _send(desk)  # sealed to carla and the recovery key only
    password = "Invented reader pass 52 ok"
    added = _command(desk, "add", "erik", password=password)
    assert added.returncode == 0, added.stderr
    secret = re.search(r"TOTP secret: ([A-Z2-7]+)", added.stdout).group(1)
    with desk.db.sessions() as session:
        erik_id = session.scalar(select(Reviewer.id).where(Reviewer.name == "erik"))
    erik = Person("erik", password, erik_id, secret, identity=None)
    browser = desk.logged_in(erik)
    assert NOT_SHARED in browser.get("/testimony/1").get_data(as_text=True)

    before = _stanzas(desk)
    granted = _command(desk, "grant", "erik", "--identity", recovery_file)
    assert granted.returncode == 0, granted.stderr
    items = int(re.search(r"can now read (\d+) more items", granted.stdout).group(1))
    assert items == len(_blobs(desk)) == 2  # the details and the statement
    assert sum(_stanzas(desk).values()) == sum(before.values()) + items
    page = browser.get("/testimony/1").get_data(as_text=True)
    assert STATEMENT in page and NOT_SHARED not in page

    wrong = _command(
        desk,
        "password",
        "erik",
        password="Invented newer pass 88 ok",
        current="Invented not the password",
    )
    assert wrong.returncode == 1 and "current password is wrong" in wrong.stderr
    assert browser.get("/").status_code == 200
    changed = _command(
        desk, "password", "erik", password="Invented newer pass 88 ok", current=password
    )
    assert changed.returncode == 0, changed.stderr
    assert browser.get("/").status_code == 302  # the password change ended the session
    assert desk.login(browser, erik).status_code == 401
    assert desk.login(browser, erik, password="Invented newer pass 88 ok").status_code == 302
    assert STATEMENT in browser.get("/testimony/1").get_data(as_text=True)

    before = _stanzas(desk)
    disabled = _command(desk, "disable", "erik", "--identity", recovery_file)
    assert disabled.returncode == 0, disabled.stderr
    removed = int(re.search(r"removed from (\d+) items", disabled.stdout).group(1))
    assert removed == items
    after = _stanzas(desk)
    assert sum(after.values()) == sum(before.values()) - removed
    with desk.db.sessions() as session:
        recipient_id = session.scalar(select(Reviewer.recipient_id).where(Reviewer.id == erik_id))
        assert (
            session.scalar(
                select(func.count())
                .select_from(BlobRecipient)
                .where(BlobRecipient.recipient_id == recipient_id)
            )
            == 0
        )
    assert browser.get("/").status_code == 302
    with desk.db.sessions() as session:
        assert not session.get(Reviewer, erik_id).active
    for blob in _blobs(desk):
        assert _opens(desk, blob, desk.recovery)
    actions = desk.audit_actions()
    for action in ("reviewer.add", "reviewer.grant", "reviewer.password", "reviewer.disable"):
        assert action in actions
    assert desk.audit_ok()


def test_the_local_demo_reviewer_is_created_once_and_can_log_in(tmp_path):
    import re
    import subprocess
    import sys

    import pyotp

    from review import create_app
    from store.instance import init

    from .conftest import FAST_ARGON2, make_settings

    settings = make_settings(tmp_path / "instance", TESTIMONY_SCRYPT_WORK_FACTOR="4")
    init(settings, out=lambda *_: None)
    env = {
        **FAST_ARGON2,
        "TESTIMONY_INSTANCE_PATH": str(settings.instance_path),
        "TESTIMONY_SCRYPT_WORK_FACTOR": "4",
        "PATH": "/usr/bin:/bin",
        **database_env(settings.instance_path),
    }
    command = [sys.executable, "-m", "review.cli", "reviewer", "demo"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    assert first.returncode == 0, first.stderr
    assert "LOCAL DEMO ONLY" in first.stdout
    password = re.search(r"password: (\S+)", first.stdout).group(1)
    secret = re.search(r"TOTP secret: (\S+)", first.stdout).group(1)
    again = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    assert again.returncode == 0 and "LOCAL DEMO" not in again.stdout
    other = make_settings(tmp_path / "other")
    init(other, out=lambda *_: None)
    exposed = subprocess.run(
        command,
        env={
            **env,
            "TESTIMONY_BIND": "0.0.0.0",
            "TESTIMONY_INSTANCE_PATH": str(other.instance_path),
            **database_env(other.instance_path),
        },
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert exposed.returncode == 0 and "LOCAL DEMO" not in exposed.stdout
    assert "not bound to localhost" in exposed.stderr
    app = create_app(settings)
    app.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    response = app.test_client().post(
        "/login", data={"name": "demo", "password": password, "code": pyotp.TOTP(secret).now()}
    )
    assert response.status_code == 302


def test_sharing_reports_its_result_and_links_cannot_forge_one(tmp_path, monkeypatch):
    from .intake_helpers import receipt_code, submit
    from .review_helpers import make_desk

    desk = make_desk(tmp_path, monkeypatch)
    admin = desk.add_reviewer("asel", admin=True)
    assert receipt_code(submit(desk.intake_app.test_client()))
    newcomer = desk.add_reviewer("bakyt")
    client = desk.logged_in(admin)
    page = client.post("/reviewers/%d/grant" % newcomer.id, follow_redirects=True)
    assert "bakyt can now read 2 more sealed items." in page.data.decode()  # details, text
    forged = client.get("/reviewers/?result=Send+your+password+to+x").data.decode()
    assert "Send your password" not in forged
    desk.close()
