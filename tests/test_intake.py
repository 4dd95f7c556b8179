"""The witness face, as a witness meets it: pages, languages, errors that keep what was
typed, uploads judged by content, receipts, follow-up and replies, strict headers."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image
from sqlalchemy import func, select, update

from intake import create_app
from store import audit
from store.blobs import read_item, seal_data, unpad_document
from store.models import Attachment, Message, Recipient, SealedBlob, Statement, Testimony
from store.web import SECURITY_HEADERS

from .conftest import database_bytes
from .intake_helpers import form, jpeg, receipt_code, submit


def _db(app):
    return app.extensions["testimony_db"]


def _count(app, model) -> int:
    with _db(app).sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_root_redirects_to_the_browsers_language(client):
    assert client.get("/", headers={"Accept-Language": "kk,ru;q=0.5"}).location == "/kk/"
    assert client.get("/", headers={"Accept-Language": "en-GB"}).location == "/en/"
    assert client.get("/", headers={"Accept-Language": "de"}).location == "/ru/"


@pytest.mark.parametrize("lang", ["ru", "kk", "en"])
def test_every_page_is_in_the_chosen_language_with_links_to_the_others(client, lang):
    for path in ("/%s/", "/%s/testimony/", "/%s/receipt/"):
        page = client.get(path % lang)
        assert page.status_code == 200
        html = page.data.decode()
        assert '<html lang="%s">' % lang in html
        for other in {"ru", "kk", "en"} - {lang}:
            assert 'href="%s"' % (path % other) in html


def test_pages_in_russian_and_kazakh_are_translated(client):
    english = client.get("/en/testimony/").data.decode()
    assert "What happened?" in english
    for lang in ("ru", "kk"):
        html = client.get("/%s/testimony/" % lang).data.decode()
        assert "What happened?" not in html
        assert "Send testimony" not in html


def test_unknown_language_is_not_found(client):
    assert client.get("/de/testimony/").status_code == 404


def test_a_statement_gets_a_receipt_and_is_sealed_for_reviewers(intake_app, client, instance):
    _settings, recovery = instance
    response = submit(client, statement="Invented account: the road to Sortobe was closed.")
    assert response.status_code == 200
    code = receipt_code(response)
    assert code and re.fullmatch(r"\d{4}( \d{4}){4}", code)
    with _db(intake_app).sessions() as session:
        testimony = session.scalars(select(Testimony)).one()
        assert (testimony.place, testimony.relation, testimony.consent, testimony.language) == (
            "masanchi",
            "saw",
            "counts",
            "ru",
        )
        blob = session.get(SealedBlob, testimony.statements[0].blob_id)
        document = unpad_document(read_item(session, blob.id, [recovery]))
        assert document["text"] == "Invented account: the road to Sortobe was closed."


def test_receipts_are_different_every_time(client):
    codes = {receipt_code(submit(client)) for _ in range(3)}
    assert len(codes) == 3


def test_statements_are_padded_so_length_reveals_only_a_bucket(intake_app, client):
    submit(client, statement="short")
    submit(client, statement="a much longer invented statement " * 20)
    with _db(intake_app).sessions() as session:
        sizes = {
            b.payload_size
            for b in session.scalars(
                select(SealedBlob).join(Statement, Statement.blob_id == SealedBlob.id)
            )
        }
    assert len(sizes) == 1


def test_missing_answers_are_explained_and_typed_text_is_kept(client):
    response = submit(
        client,
        lang="en",
        relation="",
        consent="",
        statement="Kept words 123",
        contact="invented contact",
    )
    html = response.data.decode()
    assert response.status_code == 400
    assert 'class="summary"' in html and "Please choose one answer." in html
    assert "Kept words 123" in html and "invented contact" in html


def test_errors_come_in_the_witness_language(client):
    html = submit(client, lang="ru", relation="", statement="").data.decode()
    assert "Please choose one answer." not in html
    assert "Please write what happened" not in html
    assert 'class="error"' in html


def test_an_audio_recording_can_replace_the_written_statement(client):
    audio = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x00" * 2048
    response = submit(client, statement="", files=[("voice.mp3", audio)])
    assert receipt_code(response)
    refused = submit(client, lang="en", statement="")
    assert refused.status_code == 400
    assert "attach an audio recording" in refused.data.decode()


def test_statement_longer_than_the_limit_is_refused_but_kept(client):
    response = submit(client, lang="en", statement="ж" * 100_001)
    assert response.status_code == 400
    assert "ж" * 1000 in response.data.decode()


@pytest.mark.parametrize("text", ["bad \x00 byte", "bell \x07", "replacement \ufffd char"])
def test_unreadable_text_is_refused_with_a_message(client, text):
    response = submit(client, lang="en", statement=text)
    assert response.status_code == 400
    assert (
        "could not be read" in response.data.decode()
        or "hidden characters" in response.data.decode()
    )


def test_invalid_utf8_in_a_field_is_a_clear_4xx(client):
    body = (
        b'--b\r\nContent-Disposition: form-data; name="statement"\r\n\r\n'
        b'caf\xc3\x28 \xff\xfe\r\n--b\r\nContent-Disposition: form-data; name="relation"'
        b'\r\n\r\nsaw\r\n--b\r\nContent-Disposition: form-data; name="consent"\r\n\r\n'
        b"counts\r\n--b--\r\n"
    )
    response = client.post(
        "/en/testimony/", data=body, content_type="multipart/form-data; boundary=b"
    )
    assert response.status_code == 400
    assert "could not be read" in response.data.decode()


def test_truncated_multipart_body_is_a_4xx_page_not_a_crash(client):
    body = (
        b'--b\r\nContent-Disposition: form-data; name="statement"\r\n\r\nhalf a '
        b'statement\r\n--b\r\nContent-Disposition: form-data; name="files"; '
        b'filename="a.jpg"\r\n\r\n\xff\xd8\xff\xe0 truncated'
    )
    response = client.post(
        "/ru/testimony/", data=body, content_type="multipart/form-data; boundary=b"
    )
    assert 400 <= response.status_code < 500
    assert '<html lang="ru">' in response.data.decode()


def test_honeypot_filled_is_refused_without_storing(intake_app, client):
    response = submit(client, lang="en", website="http://spam.example")
    assert response.status_code == 400
    assert receipt_code(response) is None
    assert _count(intake_app, Testimony) == 0


@pytest.mark.parametrize(
    "name,content,message",
    [
        (
            "drawing.svg",
            b"<svg xmlns='http://www.w3.org/2000/svg'><script>x</script></svg>",
            "is not a photo, audio, video or PDF",
        ),
        ("page.jpg", b"<html><body>not an image</body></html>", "is not a photo"),
        ("empty.jpg", b"", "is empty"),
        ("broken.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 50, "cannot be opened"),
    ],
)
def test_bad_files_are_refused_by_content_with_the_text_kept(
    intake_app, client, name, content, message
):
    response = submit(client, lang="en", statement="Kept statement 42", files=[(name, content)])
    html = response.data.decode()
    assert response.status_code == 400
    assert message in html and name in html
    assert "Kept statement 42" in html
    assert _count(intake_app, Testimony) == 0


def test_a_decompression_bomb_is_refused(client):
    out = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(out, "PNG")
    response = submit(client, lang="en", files=[("bomb.png", out.getvalue())])
    assert response.status_code == 400
    assert "too big to open" in response.data.decode()


def test_a_file_declared_as_photo_but_really_pdf_is_stored_as_pdf(intake_app, client, instance):
    _settings, recovery = instance
    pdf = b"%PDF-1.4\n% invented document\n%%EOF\n"
    assert receipt_code(submit(client, files=[("photo.jpg", pdf)]))
    with _db(intake_app).sessions() as session:
        attachment = session.scalars(select(Attachment)).one()
        assert attachment.kind == "pdf"
        meta = read_item(session, attachment.metadata_blob_id, [recovery])
        assert b'"declared_name": "photo.jpg"' in meta
        assert b'"detected_type": "application/pdf"' in meta


def test_photo_original_kept_exactly_with_exif_sealed_and_a_stripped_working_copy(
    intake_app, client, instance
):
    _settings, recovery = instance
    exif = Image.Exif()
    exif[0x010F] = "InventedMaker"
    exif[0x0110] = "Model 7"
    gps = {1: "N", 2: (43.0, 29.0, 30.0), 3: "E", 4: (74.0, 30.0, 0.0)}
    exif[0x8825] = gps
    exif.get_ifd(0x8769)[0x9003] = "2020:02:07 22:15:00"
    original = jpeg((640, 480), exif=exif)
    assert receipt_code(submit(client, files=[("IMG_0001.jpg", original)]))
    with _db(intake_app).sessions() as session:
        attachment = session.scalars(select(Attachment)).one()
        kept = read_item(session, attachment.original_blob_id, [recovery])
        working = read_item(session, attachment.working_blob_id, [recovery])
        meta = read_item(session, attachment.metadata_blob_id, [recovery])
    import hashlib
    import json

    assert kept == original
    described = json.loads(meta)
    assert described["sha256"] == hashlib.sha256(original).hexdigest()
    assert described["exif"]["device"] == "InventedMaker Model 7"
    assert described["exif"]["captured"] == "2020:02:07 22:15:00"
    assert described["exif"]["gps"]["lat"] == pytest.approx(43.4916667, abs=1e-5)
    assert described["exif"]["gps"]["lon"] == pytest.approx(74.5, abs=1e-5)
    shown = Image.open(io.BytesIO(working))
    assert shown.size == (640, 480)
    assert not shown.getexif() and b"InventedMaker" not in working


def test_too_large_file_is_refused_with_a_clear_message(instance, tmp_path):
    settings, _ = instance
    app = create_app(settings.with_changes(max_file_size=64 * 1024))
    app.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    big = b"ID3" + b"\x00" * (200 * 1024)
    response = submit(
        app.test_client(), lang="en", statement="Typed words stay", files=[("long.mp3", big)]
    )
    html = response.data.decode()
    assert response.status_code == 400
    assert "is too large" in html and "Typed words stay" in html


def test_all_files_together_over_the_cap_are_refused(instance):
    settings, _ = instance
    app = create_app(settings.with_changes(max_submission_size=100 * 1024))
    app.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    chunk = b"ID3" + b"\x00" * (60 * 1024)
    response = submit(app.test_client(), lang="en", files=[("a.mp3", chunk), ("b.mp3", chunk)])
    assert response.status_code == 400
    assert "All files together are too large" in response.data.decode()


def test_a_body_over_the_hard_ceiling_gets_a_translated_413_page(instance):
    settings, _ = instance
    app = create_app(settings.with_changes(max_submission_size=1024))
    app.config.update(TESTING=True, WTF_CSRF_ENABLED=False, MAX_CONTENT_LENGTH=4096)
    response = submit(app.test_client(), lang="kk", files=[("a.mp3", b"ID3" + bytes(8192))])
    assert response.status_code == 413
    assert '<html lang="kk">' in response.data.decode()
    assert "This is too large to send" not in response.data.decode()


def test_without_any_active_recipient_the_intake_refuses(intake_app, client):
    with _db(intake_app).transaction() as session:
        session.execute(update(Recipient).values(active=False))
    page = client.get("/en/testimony/")
    assert page.status_code == 503 and "Not open yet" in page.data.decode()
    response = submit(client, lang="en")
    assert response.status_code == 503
    assert receipt_code(response) is None
    assert _count(intake_app, Testimony) == 0


def test_an_expired_form_comes_back_with_everything_typed(instance):
    settings, _ = instance
    app = create_app(settings)
    app.config.update(TESTING=True)  # CSRF on: no token in the post, as after expiry
    response = submit(
        app.test_client(),
        lang="en",
        statement="My long statement is safe",
        contact="invented contact 77",
        when_approx="that night",
    )
    html = response.data.decode()
    assert response.status_code == 400
    assert "open for a long time" in html
    for typed in ("My long statement is safe", "invented contact 77", "that night"):
        assert typed in html
    assert 'name="csrf_token"' in html


def test_csrf_token_from_the_form_is_accepted(instance):
    settings, _ = instance
    app = create_app(settings)
    app.config.update(TESTING=True)
    client = app.test_client()
    token = re.search(
        r'name="csrf_token" type="hidden" value="([^"]+)"',
        client.get("/en/testimony/").data.decode(),
    ).group(1)
    assert receipt_code(submit(client, lang="en", csrf_token=token))


def test_receipt_opens_follow_up_and_adds_statement_and_files(intake_app, client, instance):
    _settings, recovery = instance
    code = receipt_code(submit(client))
    page = client.post("/en/receipt/", data={"receipt": code.replace(" ", "-")})
    assert page.status_code == 200
    assert "1 text from you" in page.data.decode() and "No messages yet" in page.data.decode()
    added = client.post(
        "/en/receipt/add",
        data={
            "receipt": code,
            "statement": "Invented addition: a second car was burned.",
            "files": [(io.BytesIO(jpeg()), "more.jpg")],
        },
        content_type="multipart/form-data",
    )
    html = added.data.decode()
    assert added.status_code == 200 and "What you added was received" in html
    assert "2 texts from you" in html and "1 file" in html
    with _db(intake_app).sessions() as session:
        testimony = session.scalars(select(Testimony)).one()
        texts = [
            unpad_document(read_item(session, s.blob_id, [recovery]))["text"]
            for s in testimony.statements
        ]
    assert texts[1] == "Invented addition: a second car was burned."


def test_wrong_or_malformed_receipts_get_the_same_answer(client):
    wrong = client.post("/en/receipt/", data={"receipt": "1234 5678 9012 3456 7890"})
    malformed = client.post("/en/receipt/", data={"receipt": "hello"})
    assert wrong.status_code == malformed.status_code == 404
    message = "We could not open a testimony with this code"
    assert message in wrong.data.decode() and message in malformed.data.decode()


def test_reviewer_replies_are_readable_only_with_the_receipt(intake_app, client):
    code = receipt_code(submit(client))
    with _db(intake_app).transaction() as session:
        testimony = session.scalars(select(Testimony)).one()
        blob = seal_data(
            session,
            b'{"text": "Invented question: which street?"}',
            readers=[testimony.witness.reply_recipient],
        )
        session.add(
            Message(testimony_id=testimony.id, sent_on=testimony.received_on, blob_id=blob.id)
        )
    page = client.post("/en/receipt/", data={"receipt": code}).data.decode()
    assert "Invented question: which street?" in page
    other = receipt_code(submit(client))
    assert (
        "Invented question"
        not in client.post("/en/receipt/", data={"receipt": other}).data.decode()
    )


def test_submissions_are_in_the_audit_chain_with_only_the_day(intake_app, client):
    submit(client)
    with _db(intake_app).sessions() as session:
        report = audit.verify(session)
        from store.models import AuditEvent

        received = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "testimony.received")
        ).one()
    assert report.ok and report.events == 2
    assert (received.at.hour, received.at.minute, received.at.second) == (0, 0, 0)


def test_global_submission_budget_engages_with_a_translated_page(instance):
    settings, _ = instance
    app = create_app(settings.with_changes(submissions_per_hour=2))
    app.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    client = app.test_client()
    assert receipt_code(submit(client, lang="kk"))
    assert receipt_code(submit(client, lang="kk"))
    third = submit(client, lang="kk")
    assert third.status_code == 429
    assert '<html lang="kk">' in third.data.decode() and receipt_code(third) is None


def test_per_receipt_budget_for_additions(instance):
    settings, _ = instance
    app = create_app(settings.with_changes(follow_ups_per_hour=1))
    app.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    client = app.test_client()
    code = receipt_code(submit(client))
    add = {"receipt": code, "statement": "one more"}
    assert client.post("/en/receipt/add", data=add).status_code == 200
    assert client.post("/en/receipt/add", data=add).status_code == 429
    other = receipt_code(submit(client))
    assert client.post("/en/receipt/add", data={**add, "receipt": other}).status_code == 200


def test_per_client_budgets_are_settings(instance):
    from store import settings as settings_module

    defaults = settings_module.load({"TESTIMONY_INSTANCE_PATH": str(instance[0].instance_path)})
    assert (
        defaults.submissions_per_client_hour,
        defaults.additions_per_client_hour,
        defaults.lookups_per_hour,
        defaults.lookups_per_client_hour,
        defaults.logins_per_client_minute,
        defaults.logins_per_client_hour,
    ) == (30, 30, 600, 20, 10, 60)
    chosen = settings_module.load(
        {
            "TESTIMONY_INSTANCE_PATH": str(instance[0].instance_path),
            "TESTIMONY_LOOKUPS_PER_CLIENT_HOUR": "7",
            "TESTIMONY_LOGINS_PER_CLIENT_MINUTE": "3",
        }
    )
    assert (chosen.lookups_per_client_hour, chosen.logins_per_client_minute) == (7, 3)

    settings, _ = instance
    app = create_app(
        settings.with_changes(submissions_per_client_hour=1, lookups_per_client_hour=2)
    )
    app.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    client = app.test_client()
    assert receipt_code(submit(client))
    assert submit(client).status_code == 429
    lookup = {"receipt": "0" * 20}
    assert client.post("/en/receipt/", data=lookup).status_code == 404
    assert client.post("/en/receipt/", data=lookup).status_code == 404
    assert client.post("/en/receipt/", data=lookup).status_code == 429


def test_rate_limits_work_with_redis_storage(instance, redis_url):
    import uuid

    settings, _ = instance
    app = create_app(
        settings.with_changes(
            submissions_per_hour=1,
            limiter_storage_uri=redis_url,
            limiter_prefix="test-%s" % uuid.uuid4().hex,
        )
    )
    app.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    client = app.test_client()
    assert receipt_code(submit(client))
    assert submit(client).status_code == 429


def test_every_page_sends_the_strict_headers(client):
    for path in ("/", "/ru/", "/en/testimony/", "/kk/receipt/", "/nope", "/static/style.css"):
        response = client.get(path)
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (path, name)
    post = submit(client)
    assert post.headers["Cache-Control"] == "no-store"
    assert "unsafe-inline" not in SECURITY_HEADERS["Content-Security-Policy"]


def test_pages_load_nothing_from_other_sites(client):
    for path in ("/ru/", "/ru/testimony/", "/ru/receipt/"):
        html = client.get(path).data.decode()
        assert not re.search(r'(src|href)="(https?:)?//', html)
        assert "<script" not in html


def test_no_address_or_user_agent_is_logged_or_stored(intake_app, client, caplog):
    caplog.set_level("DEBUG")
    submit(client, environ_base={"REMOTE_ADDR": "203.0.113.77"}) if False else None
    response = client.post(
        "/ru/testimony/",
        data=form(),
        environ_base={"REMOTE_ADDR": "203.0.113.77"},
        headers={"User-Agent": "InventedBrowser/9.9"},
    )
    assert receipt_code(response)
    assert "203.0.113.77" not in caplog.text and "InventedBrowser" not in caplog.text
    settings = intake_app.config["TESTIMONY_SETTINGS"]
    stored = [database_bytes(settings)] + [
        p.read_bytes() for p in settings.instance_path.iterdir() if p.is_file()
    ]
    for data in stored:
        assert b"203.0.113.77" not in data and b"InventedBrowser" not in data


def test_receipts_keep_working_when_the_receipt_cost_setting_changes(instance):
    """The receipt Argon2id cost is fixed when the instance is created: a later change
    of the setting must not make earlier receipts unrecognisable."""
    settings, _ = instance
    first = create_app(settings)
    first.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    code = receipt_code(submit(first.test_client()))
    changed = create_app(
        settings.with_changes(receipt_argon2_memory_kib=2048, receipt_argon2_time_cost=2)
    )
    changed.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    page = changed.test_client().post("/en/receipt/", data={"receipt": code})
    assert page.status_code == 200 and "1 text from you" in page.data.decode()


def test_a_large_png_that_would_decode_at_full_size_is_refused(client):
    out = io.BytesIO()
    Image.new("1", (4500, 4500)).save(out, "PNG")  # 20 MP, a few KB compressed
    response = submit(client, lang="en", files=[("screen.png", out.getvalue())])
    assert response.status_code == 400
    assert "too big to open" in response.data.decode()
