"""Anonymized exports end to end: what an organisation publishes never re-identifies a
witness (invariant 7).

A testimony with a unique place, month and role never shows up as a count below k, and
its words never appear in any exported file unless a reviewer made them an approved
excerpt; excerpts are possible only with the witness's consent to quotes and are
approved only once every personal-data finding is masked or kept with a reason
(audited without the words); the export is signed and ``testimony export verify`` names
a changed byte or a bad signature; the export page is for administrators only.
Every person, statement and number here is invented.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import subprocess
import sys
import zipfile

import jsonschema
import pytest
from sqlalchemy import select

from review.export import build, excerpts, signing
from store.models import AuditEvent, Excerpt, Testimony

from .conftest import FAST_ARGON2, ROOT, database_env
from .export_helpers import add_testimonies, background, load_catalogue, numbers
from .intake_helpers import receipt_code, submit
from .review_helpers import csrf_token, make_desk

CANARY_WORDS = ("Zhyrgalbek-canary", "Квазимодо-канарейка")
CANARY = (
    "Invented canary statement: %s saw the smoke over the mill from the roof, and "
    "%s counted the trucks." % CANARY_WORDS
)
QUOTE = (
    "Ночью пришли люди в масках. Мой сосед Хасан Ванахунов-тест звонил мне с номера "
    "+7 701 123 45 67, но связи не было."
)


@pytest.fixture
def desk(tmp_path, monkeypatch):
    desk = make_desk(tmp_path, monkeypatch)
    desk.admin = desk.add_reviewer("ivan-testov", admin=True)
    desk.other = desk.add_reviewer("aisha-primerova")
    load_catalogue(desk.db)
    yield desk
    desk.close()


def _send(desk, statement: str, **fields) -> tuple[int, str]:
    response = submit(desk.intake_app.test_client(), lang="ru", statement=statement, **fields)
    assert response.status_code == 200, response.data
    code = receipt_code(response)
    with desk.db.sessions() as session:
        newest = session.scalar(select(Testimony.id).order_by(Testimony.id.desc()).limit(1))
    return newest, code


def _export(desk, **options) -> dict[str, bytes]:
    with desk.db.transaction() as session:
        made = build.build(
            session, desk.admin.identity, build.Options(**options), "reviewer:ivan-testov"
        )
    return made.files


def _all_text(files: dict[str, bytes]) -> str:
    return "\n".join(data.decode("utf-8", "replace") for data in files.values())


def _excerpt(desk, client, testimony_id: int, text: str) -> int:
    response = client.post("/testimony/%d/excerpts/new" % testimony_id, data={"text": text})
    assert response.status_code == 302, response.data
    return int(response.headers["Location"].rstrip("/").split("/")[-1])


def _status(desk, excerpt_id: int) -> str:
    with desk.db.sessions() as session:
        return session.get(Excerpt, excerpt_id).status


# --- the canary ---------------------------------------------------------------------------


def test_a_unique_witness_never_shows_as_a_small_count_and_their_words_stay_home(desk):
    background(desk.db)
    canary_id, receipt = _send(
        desk, CANARY, place="otar", relation="happened_to_family", consent="quotes"
    )
    with desk.db.transaction() as session:
        from store.models import Incident, TestimonyIncident

        incident = session.scalar(
            select(Incident).where(Incident.slug == "2020-02-07-attack-on-masanchi")
        )
        session.add(
            TestimonyIncident(
                testimony_id=canary_id,
                incident_id=incident.id,
                role="relative",
                confidence="high",
                linked_on=dt.date.today(),
            )
        )

    files = _export(desk, granularity="month")
    summary = json.loads(files["summary.json"])
    jsonschema.validate(summary, json.loads(build.SCHEMA.read_text()))
    small = [
        (where, cell) for where, cell in numbers(summary) if isinstance(cell, int) and 0 < cell < 5
    ]
    assert small == []
    # Otar (one testimony) is only ever "fewer than 5", and so is its month.
    by_place = next(t for t in summary["tables"] if t["id"] == "by_place")
    otar = [c["code"] for c in by_place["rows"]["categories"]].index("otar")
    assert by_place["cells"][otar] == {"fewer_than": 5}
    roles = next(t for t in summary["tables"] if t["id"] == "incident_by_role")
    relative = [c["code"] for c in roles["columns"]["categories"]].index("relative")
    assert all(
        not isinstance(row[relative], int) or row[relative] == 0 or row[relative] >= 5
        for row in roles["cells"]
    )
    # Withdrawn testimonies are not counted: 44 of the 47 background ones, and the canary.
    assert summary["testimonies"] == 45

    text = _all_text(files)
    for secret in (
        *CANARY_WORDS,
        receipt,
        receipt.replace(" ", ""),
        "ivan-testov",
        "aisha-primerova",
        "invented details",
    ):
        assert secret not in text, secret
    # With month granularity no full date appears at all, not even the export's own day
    # (incident short names, public catalogue codes, begin with their date).
    assert not re.search(r"\b\d{4}-\d{2}-\d{2}\b(?!-[a-z])", text)
    assert summary["generated_on"] == dt.date.today().isoformat()[:7]

    # A reviewer makes the canary's words an approved excerpt: now, and only now, they
    # appear, in the excerpt files only.
    client = desk.logged_in(desk.admin)
    excerpt_id = _excerpt(desk, client, canary_id, CANARY)
    with desk.db.sessions() as session:
        found = excerpts.read(session, session.get(Excerpt, excerpt_id), desk.admin.identity)
        keys = [f.key for f in found.unresolved]
    for key in keys:  # the invented words look like names: kept, with a reason
        client.post("/excerpts/%d/keep" % excerpt_id, data={"key": key, "reason": "invented"})
    assert client.post("/excerpts/%d/approve" % excerpt_id).status_code == 302
    assert _status(desk, excerpt_id) == "approved"
    files = _export(desk, granularity="month")
    assert CANARY_WORDS[0] in files["excerpts.csv"].decode()
    assert CANARY_WORDS[0] in files["report.html"].decode()
    assert CANARY_WORDS[0] not in files["summary.json"].decode() + files["summary.csv"].decode()
    row = files["excerpts.csv"].decode().splitlines()[1]
    assert row.startswith("E1,ru,2020-02-07-attack-on-masanchi,")  # a fresh id


# --- excerpts -----------------------------------------------------------------------------


def test_no_excerpt_without_consent_to_quotes(desk):
    testimony_id, _code = _send(desk, QUOTE, consent="counts")
    client = desk.logged_in(desk.admin)
    page = client.get("/testimony/%d/excerpts/new" % testimony_id)
    assert page.status_code == 302
    refused = client.post("/testimony/%d/excerpts/new" % testimony_id, data={"text": "x"})
    assert refused.status_code == 302
    with desk.db.sessions() as session:
        assert session.scalar(select(Excerpt.id)) is None
    shown = client.get("/testimony/%d" % testimony_id).get_data(as_text=True)
    assert "did not agree to be quoted" in shown


def test_findings_block_approval_until_masked_or_kept_with_an_audited_reason(desk):
    testimony_id, _code = _send(desk, QUOTE, consent="quotes")
    client = desk.logged_in(desk.other)  # any reviewer may make and approve excerpts
    excerpt_id = _excerpt(desk, client, testimony_id, QUOTE)
    page = client.get("/excerpts/%d" % excerpt_id).get_data(as_text=True)
    assert "Хасан Ванахунов" in page and "+7 701 123 45 67" in page
    assert "2 findings are left" in page

    before = desk.audit_head()
    refused = client.post("/excerpts/%d/approve" % excerpt_id, follow_redirects=True)
    assert "Mask or keep" in refused.get_data(as_text=True)
    assert _status(desk, excerpt_id) == "draft"

    phone = "phone:+7 701 123 45 67"
    assert client.post("/excerpts/%d/mask" % excerpt_id, data={"key": phone}).status_code == 302
    reason = "Invented reason: the neighbour asked to be named"
    name_key = "name:" + "хасан ванахунов-тест"
    kept = client.post("/excerpts/%d/keep" % excerpt_id, data={"key": name_key, "reason": reason})
    assert kept.status_code == 302
    page = client.get("/excerpts/%d" % excerpt_id).get_data(as_text=True)
    assert "[телефон]" in page and "+7 701" not in page and reason in page
    assert client.post("/excerpts/%d/approve" % excerpt_id).status_code == 302
    assert _status(desk, excerpt_id) == "approved"

    with desk.db.sessions() as session:
        events = list(session.scalars(select(AuditEvent).where(AuditEvent.seq > before)))
    actions = [e.action for e in events]
    assert "excerpt.mask" in actions and "excerpt.override" in actions
    assert "excerpt.approve" in actions
    override = next(e for e in events if e.action == "excerpt.override")
    assert json.loads(override.details)["kind"] == "name"
    everything = " ".join(e.details + e.subject for e in events)
    for secret in ("Ванахунов", "701 123", "neighbour", "масках"):
        assert secret not in everything
    # Sealed at rest like a note: neither the excerpt nor the reason is in the database.
    stored = desk.database_bytes()
    for secret in ("Ванахунов".encode(), b"neighbour", "[телефон]".encode()):
        assert secret not in stored

    # Editing an approved excerpt makes it a draft again.
    client.post("/excerpts/%d/text" % excerpt_id, data={"text": "Ночью пришли люди."})
    assert _status(desk, excerpt_id) == "draft"
    assert desk.audit_ok()


def test_csv_cells_cannot_run_as_formulas():
    assert build.safe_cell('=HYPERLINK("x")') == '\'=HYPERLINK("x")'
    for start in "+-@\t\r":
        assert build.safe_cell(start + "1") == "'" + start + "1"
    assert build.safe_cell("Ночью") == "Ночью"
    data = build.excerpts_csv(
        [{"id": "E1", "language": "ru", "incidents": [], "text": "=1+2"}]
    ).decode()
    assert "'=1+2" in data


# --- the export page ------------------------------------------------------------------------


def test_the_export_page_is_for_administrators_and_sends_a_signed_zip(desk):
    add_testimonies(
        desk.db,
        12,
        "masanchi",
        "saw",
        dt.date(2020, 2, 10),
        "2020-02-07-attack-on-masanchi",
        tags=("arson",),
    )
    other = desk.logged_in(desk.other)
    assert other.get("/export/").status_code == 403
    assert other.post("/export/", data={"k": "5"}).status_code == 403
    assert "/export/" not in other.get("/").get_data(as_text=True)

    admin = desk.logged_in(desk.admin)
    assert 'href="/export/"' in admin.get("/").get_data(as_text=True)
    assert admin.get("/export/").status_code == 200
    assert admin.post("/export/", data={"k": "2"}).status_code == 400
    before = desk.audit_head()
    response = admin.post("/export/", data={"k": "5", "granularity": "month", "language": "ru"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    assert set(archive.namelist()) == {
        "summary.json",
        "summary.csv",
        "excerpts.csv",
        "report.html",
        "manifest.json",
        "manifest.sig",
    }
    assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in archive.infolist())
    assert (
        "менее 5" in archive.read("report.html").decode()
        or "Документированные" in archive.read("report.html").decode()
    )
    with desk.db.sessions() as session:
        key = signing.instance_public_key(session)
        event = session.scalar(
            select(AuditEvent).where(AuditEvent.seq > before, AuditEvent.action == "export.create")
        )
    details = json.loads(event.details)
    assert details["k"] == 5 and details["granularity"] == "month"
    assert len(details["manifest_sha256"]) == 64
    target = desk.settings.instance_path.parent / "from-page.zip"
    target.write_bytes(response.data)
    assert signing.verify(target, key).ok


# --- the command line -----------------------------------------------------------------------


def _testimony(desk, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **FAST_ARGON2, "TESTIMONY_INSTANCE_PATH": str(desk.settings.instance_path)}
    env.pop("TESTIMONY_DATABASE_URL", None)
    env.update(database_env(desk.settings.instance_path))
    return subprocess.run(
        [sys.executable, "-m", "review.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_posts_without_a_csrf_token_are_refused_before_any_view_runs(desk):
    """CSRFProtect checks every POST of the review face: a reviewer action, an excerpt
    action and the export action are refused without the token, and nothing changes."""
    desk.review_app.config["WTF_CSRF_ENABLED"] = True
    testimony_id, _code = _send(desk, QUOTE, consent="quotes")
    admin = desk.logged_in(desk.admin)
    token = csrf_token(admin.get("/testimony/%d" % testimony_id))
    made = admin.post(
        "/testimony/%d/excerpts/new" % testimony_id, data={"text": QUOTE, "csrf_token": token}
    )
    assert made.status_code == 302
    excerpt_id = int(made.headers["Location"].rstrip("/").split("/")[-1])
    before = desk.dump()
    for path, data in (
        ("/testimony/%d/contact" % testimony_id, {}),
        ("/testimony/%d/excerpts/new" % testimony_id, {"text": QUOTE}),
        ("/excerpts/%d/approve" % excerpt_id, {}),
        ("/excerpts/%d/delete" % excerpt_id, {}),
        ("/export/", {"k": "5"}),
    ):
        for extra in ({}, {"csrf_token": "forged"}):
            response = admin.post(path, data={**data, **extra})
            assert response.status_code == 400, (path, extra, response.status_code)
    assert desk.dump() == before
    response = admin.post("/export/", data={"k": "5", "csrf_token": token})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/zip"


def test_a_reviewer_who_is_not_an_administrator_cannot_export(desk):
    """The admin mark on the export view is the one check, and it holds with a good
    CSRF token too."""
    desk.review_app.config["WTF_CSRF_ENABLED"] = True
    other = desk.logged_in(desk.other)
    token = csrf_token(other.get("/"))
    before = desk.dump()
    assert other.get("/export/").status_code == 403
    response = other.post("/export/", data={"k": "5", "csrf_token": token})
    assert response.status_code == 403
    assert response.headers["Content-Type"].startswith("text/html")
    assert desk.dump() == before


def test_command_line_export_and_verify_catch_a_changed_byte_and_a_bad_signature(desk):
    background(desk.db)
    recovery = str(desk.settings.instance_path / "recovery-key.txt")
    out = desk.settings.instance_path.parent / "export"
    made = _testimony(
        desk,
        "export",
        "--out",
        str(out),
        "--identity",
        recovery,
        "--incident",
        "2020-02-07-attack-on-masanchi",
    )
    assert made.returncode == 0, made.stderr
    assert "100%" in made.stderr  # the progress bar
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            "summary.json",
            "summary.csv",
            "excerpts.csv",
            "report.html",
            "manifest.json",
            "manifest.sig",
        ]
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scope"]["incidents"] == ["2020-02-07-attack-on-masanchi"]
    assert summary["testimonies"] == 31  # only those about that incident
    # File times say the day, not the second.
    assert all(p.stat().st_mtime % 86400 == 0 for p in out.iterdir())

    ok = _testimony(desk, "export", "verify", str(out))
    assert ok.returncode == 0, ok.stderr
    assert "export verified: 4 files" in ok.stdout

    original = (out / "summary.csv").read_bytes()
    changed = bytearray(original)
    changed[-3] ^= 0x01
    (out / "summary.csv").write_bytes(bytes(changed))
    broken = _testimony(desk, "export", "verify", str(out))
    assert broken.returncode != 0
    assert "summary.csv: changed" in broken.stderr
    (out / "summary.csv").write_bytes(original)

    signature = (out / "manifest.sig").read_text()
    (out / "manifest.sig").write_text(("A" if signature[0] != "A" else "B") + signature[1:])
    forged = _testimony(desk, "export", "verify", str(out))
    assert forged.returncode != 0 and "bad signature" in forged.stderr
    (out / "manifest.sig").write_text(signature)

    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"] = [f for f in manifest["files"] if f["name"] != "excerpts.csv"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    rewritten = _testimony(desk, "export", "verify", str(out))
    assert rewritten.returncode != 0 and "bad signature" in rewritten.stderr
    assert "excerpts.csv: not listed" in rewritten.stderr

    zipped = desk.settings.instance_path.parent / "export.zip"
    made = _testimony(
        desk,
        "export",
        "--out",
        str(zipped),
        "--zip",
        "--granularity",
        "month",
        "--identity",
        recovery,
    )
    assert made.returncode == 0, made.stderr
    assert _testimony(desk, "export", "verify", str(zipped)).returncode == 0
    key = _testimony(desk, "export", "key")
    assert key.returncode == 0 and signing.fingerprint(manifest["public_key"]) in key.stdout
    other_key = _testimony(desk, "export", "verify", str(zipped), "--public-key", "A" * 43 + "=")
    assert other_key.returncode != 0 and "another key" in other_key.stderr

    refused = _testimony(
        desk, "export", "--out", str(out) + "-k2", "--k", "2", "--identity", recovery
    )
    assert refused.returncode != 0 and "k must be" in refused.stderr
    unknown = _testimony(
        desk, "export", "--out", str(out) + "-x", "--incident", "no-such", "--identity", recovery
    )
    assert unknown.returncode != 0 and "no-such" in unknown.stderr
