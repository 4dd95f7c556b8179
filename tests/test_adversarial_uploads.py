"""Hostile uploads: each is refused with a clear message in the witness's language (what
they typed kept, nothing stored), or stored inertly and served to reviewers only in a
form no browser will run: originals as attachments of type application/octet-stream under
a name the server makes up, working copies re-encoded by Pillow with nothing else in them.

Decompression bombs announce huge pictures in a few bytes; polyglots are files that are
two things at once (a photo that is also HTML, a PNG with a ZIP after it, a PDF that is
also a web page); file names try to climb folders or turn text around. Everything here is
invented.
"""

from __future__ import annotations

import hashlib
import html
import io
import os
import struct
import zipfile
import zlib

import pytest
from PIL import Image

from .adversarial_helpers import table_counts
from .intake_helpers import jpeg, receipt_code, submit
from .review_helpers import make_desk

KEPT = "Invented statement that must come back: Aisha Primerova crossed the bridge."


@pytest.fixture
def desk(tmp_path, monkeypatch):
    desk = make_desk(tmp_path, monkeypatch)
    desk.add_reviewer("alma", admin=True)
    yield desk
    desk.close()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body))
        + kind
        + body
        + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    )


def png_bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    """A PNG of under 100 bytes that announces 900 megapixels."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 4096))
        + _png_chunk(b"IEND", b"")
    )


def gif_bomb() -> bytes:
    """A GIF whose screen and single frame are 60000 x 60000 pixels."""
    return (
        b"GIF89a"
        + struct.pack("<HHBBB", 60_000, 60_000, 0, 0, 0)
        + b","
        + struct.pack("<HHHHB", 0, 0, 60_000, 60_000, 0)
        + b"\x02\x02\x4c\x01\x00;"
    )


def jpeg_bomb() -> bytes:
    """A small JPEG whose frame header is rewritten to 65000 x 65000 pixels."""
    data = bytearray(jpeg((16, 16)))
    at = data.index(b"\xff\xc0")
    data[at + 5 : at + 9] = struct.pack(">HH", 65_000, 65_000)
    return bytes(data)


def tiff_bomb() -> bytes:
    """A TIFF announcing 50000 x 50000 one-bit pixels with ten bytes of data."""
    entries = [
        (256, 4, 50_000),
        (257, 4, 50_000),
        (258, 3, 1),
        (259, 3, 1),
        (262, 3, 1),
        (273, 4, 8 + 2 + 9 * 12 + 4),
        (278, 4, 50_000),
        (279, 4, 10),
        (277, 3, 1),
    ]
    ifd = (
        struct.pack("<H", len(entries))
        + b"".join(
            struct.pack("<HHI", tag, kind, 1)
            + (struct.pack("<I", value) if kind == 4 else struct.pack("<HH", value, 0))
            for tag, kind, value in sorted(entries)
        )
        + struct.pack("<I", 0)
    )
    return b"II*\x00" + struct.pack("<I", 8) + ifd + bytes(10)


def zip_bomb() -> bytes:
    """Twenty MiB of zeros deflated into a few KiB."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("invented.txt", bytes(20 * 1024 * 1024))
    return out.getvalue()


SCRIPT = b"<html><body><script>document.title='injected'</script></body></html>"


def jpeg_html_polyglot() -> bytes:
    """A valid JPEG with HTML in a comment segment and after its end."""
    data = jpeg((64, 48))
    comment = b"\xff\xfe" + struct.pack(">H", len(SCRIPT) + 2) + SCRIPT
    return data[:2] + comment + data[2:] + SCRIPT


def png_zip_polyglot() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), "olive").save(out, "PNG")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("invented.html", SCRIPT)
    return out.getvalue() + archive.getvalue()


PDF_HTML = b"%PDF-1.4\n" + SCRIPT + b"\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
HEIC_HTML = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + SCRIPT
SVG = b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'><script>alert(2)</script></svg>"

REFUSED = [
    ("png bomb", "huge.png", "image/png", png_bomb(), "too big to open"),
    ("gif bomb", "huge.gif", "image/gif", gif_bomb(), "too big to open"),
    ("jpeg bomb", "huge.jpg", "image/jpeg", jpeg_bomb(), "too big to open"),
    ("tiff bomb", "huge.tif", "image/tiff", tiff_bomb(), "too big to open"),
    ("zip bomb", "photos.zip", "application/zip", zip_bomb(), "is not a photo"),
    ("gzip", "photo.jpg.gz", "application/gzip", b"\x1f\x8b\x08\x00" + bytes(40), "is not a photo"),
    ("svg with script", "map.png", "image/png", SVG, "is not a photo"),
    ("svg declared as svg", "map.svg", "image/svg+xml", SVG, "is not a photo"),
    ("html named as a photo", "photo.jpg", "image/jpeg", SCRIPT, "is not a photo"),
    ("zero bytes", "nothing.jpg", "image/jpeg", b"", "is empty"),
    ("truncated jpeg", "cut.jpg", "image/jpeg", jpeg((200, 150))[:300], "cannot be opened"),
    ("truncated png", "cut.png", "image/png", png_zip_polyglot()[:60], "cannot be opened"),
]


@pytest.mark.parametrize("what,name,declared,content,message", REFUSED, ids=[r[0] for r in REFUSED])
def test_a_hostile_file_is_refused_with_a_clear_message_and_nothing_stored(
    desk, what, name, declared, content, message
):
    before = table_counts(desk.db)
    client = desk.intake_app.test_client()
    response = client.post(
        "/en/testimony/",
        content_type="multipart/form-data",
        data={
            "statement": KEPT,
            "relation": "saw",
            "consent": "counts",
            "files": [(io.BytesIO(content), name, declared)],
        },
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400, what
    assert message in page and html.escape(name) in page, what
    assert KEPT in page and receipt_code(response) is None
    assert table_counts(desk.db) == before, what


def test_refusals_come_in_the_witness_language(desk):
    client = desk.intake_app.test_client()
    for lang in ("ru", "kk"):
        response = submit(client, lang=lang, files=[("huge.png", png_bomb())])
        page = response.get_data(as_text=True)
        assert response.status_code == 400 and "huge.png" in page
        assert "too big to open" not in page and '<html lang="%s"' % lang in page


STORED = [
    # (what, declared name, declared type, content, detected type, download extension)
    (
        "jpeg that is also html",
        "photo.jpg",
        "image/jpeg",
        jpeg_html_polyglot(),
        "image/jpeg",
        "jpg",
    ),
    ("png with a zip after it", "photo.png", "image/png", png_zip_polyglot(), "image/png", "png"),
    ("pdf that is also html", "report.pdf", "text/html", PDF_HTML, "application/pdf", "pdf"),
    ("heic header before html", "photo.heic", "text/html", HEIC_HTML, "image/heic", "bin"),
    ("photo declared as html", "index.html", "text/html", jpeg((30, 20)), "image/jpeg", "jpg"),
    (
        "path traversal",
        "../../../../etc/cron.d/invented.jpg",
        "image/jpeg",
        jpeg(),
        "image/jpeg",
        "jpg",
    ),
    (
        "windows traversal",
        "..\\..\\Windows\\invented.jpg",
        "image/jpeg",
        jpeg(),
        "image/jpeg",
        "jpg",
    ),
    (
        "bidi override",
        "photo\u202egpj.exe",
        "application/x-msdownload",
        jpeg(),
        "image/jpeg",
        "jpg",
    ),
    ("markup", "<img src=x onerror=alert(1)>.jpg", "image/jpeg", jpeg(), "image/jpeg", "jpg"),
]


def test_polyglots_and_hostile_names_are_stored_inertly_and_served_safely(desk, tmp_path):
    intake = desk.intake_app.test_client()
    listing_before = sorted(os.listdir(tmp_path)), sorted(os.listdir(os.getcwd()))
    response = intake.post(
        "/en/testimony/",
        content_type="multipart/form-data",
        data={
            "statement": KEPT,
            "relation": "saw",
            "consent": "counts",
            "files": [
                (io.BytesIO(content), name, declared)
                for _w, name, declared, content, _t, _e in STORED
            ],
        },
    )
    assert receipt_code(response), response.get_data(as_text=True)
    # No name was used as a path: nothing new appeared beside the instance or here.
    assert (sorted(os.listdir(tmp_path)), sorted(os.listdir(os.getcwd()))) == listing_before

    review = desk.logged_in(desk.people["alma"])
    page = review.get("/testimony/1").get_data(as_text=True)
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    for number, (what, name, _declared, content, detected, extension) in enumerate(STORED, 1):
        # Werkzeug keeps only the last part of a Windows path, as old browsers sent one.
        assert html.escape(name.rsplit("\\", 1)[-1]) in page, what
        original = review.post("/testimony/file/%d/original" % number)
        assert original.status_code == 200, what
        assert original.data == content, what  # evidence kept bit for bit
        assert original.headers["Content-Type"] == "application/octet-stream", what
        assert original.headers["X-Content-Type-Options"] == "nosniff", what
        assert original.headers["Content-Disposition"] == (
            "attachment; filename=testimony-file-%d.%s" % (number, extension)
        ), what
        assert "default-src 'none'" in original.headers["Content-Security-Policy"], what
        assert hashlib.sha256(content).hexdigest() in page, what

        shown = review.get("/testimony/file/%d/view" % number)
        if not detected.startswith("image/") or detected == "image/heic":
            assert shown.status_code == 404, what  # nothing to show but the download
            continue
        assert shown.status_code == 200, what
        assert shown.headers["X-Content-Type-Options"] == "nosniff", what
        assert shown.headers["Content-Type"] in ("image/jpeg", "image/png"), what
        picture = Image.open(io.BytesIO(shown.data))
        assert Image.MIME[picture.format] == shown.headers["Content-Type"], what
        for foreign in (b"<script", b"<html", b"PK\x03\x04"):
            assert foreign not in shown.data, what
        if picture.format == "JPEG":  # nothing after the end of the picture
            assert shown.data.endswith(b"\xff\xd9"), what


def test_originals_are_never_served_by_a_get_or_to_someone_logged_out(desk):
    submit(desk.intake_app.test_client(), files=[("photo.jpg", jpeg_html_polyglot())])
    anonymous = desk.review_app.test_client()
    assert anonymous.post("/testimony/file/1/original").status_code == 401
    review = desk.logged_in(desk.people["alma"])
    assert review.get("/testimony/file/1/original").status_code == 405
