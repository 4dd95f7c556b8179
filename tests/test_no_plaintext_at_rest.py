"""Invariants 1 and 6: nothing a witness sends reaches the disk in the clear (database,
its WAL, temporary files, logs), yet the original is all there, bit for bit, for whoever
holds a recipient key.

Temporary files are watched, not just listed: ``tempfile.TemporaryFile`` (which Werkzeug's
default upload spool and ours both use) normally has no name on disk, so a scan of the
folder would see nothing even if plaintext were written there. For the duration of a test
it is replaced by a named file that is kept, in a folder the test owns, so whatever any
code wrote to a temporary file is there to be scanned afterwards.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import secrets
import tempfile
from pathlib import Path

import pytest
from PIL import Image
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.formparser import default_stream_factory
from werkzeug.test import encode_multipart

MIB = 1024 * 1024
WINDOW = 12
CODE = re.compile(rb'<p class="code"[^>]*>\s*([0-9 ]{20,})\s*</p>')


# --- scanning ------------------------------------------------------------------------------


def _forms(text: str | bytes) -> dict[str, bytes]:
    if isinstance(text, bytes):
        return {"bytes": text}
    return {"utf-8": text.encode("utf-8"), "utf-16-le": text.encode("utf-16-le")}


def holds_piece(haystack: bytes, needle: bytes, least: int) -> bool:
    """Whether ``haystack`` holds any substring of ``needle`` at least ``least`` bytes long.

    Any such substring contains one of the needle's pieces of ``least // 2`` bytes that
    start at a multiple of that size; each place a piece occurs is extended both ways.
    """
    if len(needle) <= least:
        return needle in haystack
    step = least // 2
    for start in range(0, len(needle) - step + 1, step):
        piece = needle[start : start + step]
        at = haystack.find(piece)
        while at >= 0:
            left = 0
            while (
                left < start and left < at and haystack[at - left - 1] == needle[start - left - 1]
            ):
                left += 1
            right = 0
            while (
                start + step + right < len(needle)
                and at + step + right < len(haystack)
                and haystack[at + step + right] == needle[start + step + right]
            ):
                right += 1
            if left + step + right >= least:
                return True
            at = haystack.find(piece, at + 1)
    return False


def needles(
    canaries: dict[str, str | bytes], exact: dict[str, bytes] | None = None
) -> list[tuple[str, bytes, int]]:
    """(label, needle, shortest substring that counts): each canary (text in UTF-8 and
    UTF-16-LE, bytes as they are) found by any 12-byte piece of it, and ``exact`` byte
    strings found only whole."""
    found = [
        ("%s (%s)" % (label, encoding), data, WINDOW)
        for label, text in canaries.items()
        for encoding, data in _forms(text).items()
    ]
    found.extend((label, data, len(data)) for label, data in (exact or {}).items())
    return found


def files_under(*folders: Path, extra: list[Path] = ()) -> list[Path]:
    paths = {p for folder in folders if folder.exists() for p in folder.rglob("*") if p.is_file()}
    paths.update(p for p in extra if p.is_file())
    return sorted(paths)


def leaks(paths: list[Path], wanted: list[tuple[str, bytes, int]]) -> list[str]:
    """Which needles occur in which files (empty when nothing leaked)."""
    hits = []
    for path in paths:
        data = path.read_bytes()
        labels = sorted(
            {label for label, needle, least in wanted if holds_piece(data, needle, least)}
        )
        hits.extend("%s in %s" % (label, path.name) for label in labels)
    return hits


# --- temporary files that stay visible ------------------------------------------------------


class KeptTemporaryFiles:
    """Replaces ``tempfile.TemporaryFile`` with named files that are not deleted."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.created: list[Path] = []

    def __call__(
        self,
        mode: str = "w+b",
        buffering: int = -1,
        encoding=None,
        newline=None,
        suffix=None,
        prefix=None,
        dir=None,
        *,
        errors=None,
    ):  # noqa: A002
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - the caller closes it
            mode=mode,
            buffering=buffering,
            encoding=encoding,
            newline=newline,
            suffix=suffix,
            prefix=prefix or "kept-",
            dir=dir or str(self.folder),
            delete=False,
            errors=errors,
        )
        self.created.append(Path(handle.name))
        return handle


@pytest.fixture
def temp_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> KeptTemporaryFiles:
    folder = tmp_path / "tmp"
    folder.mkdir()
    kept = KeptTemporaryFiles(folder)
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setattr(tempfile, "TemporaryFile", kept)
    return kept


# --- invented evidence ----------------------------------------------------------------------


def canary_texts() -> dict[str, str]:
    tag = secrets.token_hex(8)
    return {
        "statement": "Жёлтая канарейка %s пела у моста через Чу, когда подъехали машины." % tag,
        "contact": "Телеграм: канарейка_%s, спросить Айгерим Выдуманову" % tag,
        "place_other": "Улица Канареечная %s, дом у старой мельницы" % tag,
        "when_approx": "в ночь канарейки %s, около трёх часов" % tag,
    }


def canary_photo() -> tuple[bytes, bytes, str]:
    """A JPEG with a random marker in a COM segment and a random camera model in EXIF."""
    marker = b"PHOTO-COM-" + secrets.token_hex(16).encode()
    model = "CanaryCam %s" % secrets.token_hex(8)
    exif = Image.Exif()
    exif[0x010F] = "Invented Optics"
    exif[0x0110] = model
    pixels = Image.frombytes("RGB", (48, 32), os.urandom(48 * 32 * 3))
    out = io.BytesIO()
    pixels.save(out, "JPEG", quality=90, comment=marker, exif=exif)
    photo = out.getvalue()
    assert marker in photo and model.encode() in photo
    return photo, marker, model


def canary_audio(size: int = 3 * MIB) -> tuple[bytes, bytes]:
    """An MP3-looking file (ID3 tag) of random bytes with a marker spread through it."""
    marker = b"AUDIO-" + secrets.token_hex(20).encode()
    body = bytearray(b"ID3" + marker + os.urandom(size - 3 - len(marker)))
    for offset in (MIB // 2, MIB + 12345, size - 2 * len(marker)):
        body[offset : offset + len(marker)] = marker
    return bytes(body), marker


def samples(data: bytes, count: int = 48, length: int = 16) -> list[bytes]:
    """Random windows of a random file: any plaintext copy of it contains them."""
    step = len(data) // count
    return [data[i * step + 7 : i * step + 7 + length] for i in range(count)]


def digests(label: str, data: bytes) -> dict[str, bytes]:
    digest = hashlib.sha256(data)
    return {
        "%s sha256 hex" % label: digest.hexdigest().encode(),
        "%s sha256 HEX" % label: digest.hexdigest().upper().encode(),
        "%s sha256 raw" % label: digest.digest(),
    }


def post_testimony(client, texts: dict[str, str], files: list[tuple[str, bytes, str]]):
    """POST the witness form with a body encoded in memory (the test client would spool
    a large body to a temporary file of its own otherwise)."""
    values = MultiDict(
        [
            ("statement", texts["statement"]),
            ("relation", "saw"),
            ("consent", "counts"),
            ("place", "other"),
            ("place_other", texts["place_other"]),
            ("when_approx", texts["when_approx"]),
            ("contact", texts["contact"]),
        ]
    )
    for name, content, mime in files:
        values.add("files", FileStorage(io.BytesIO(content), filename=name, content_type=mime))
    boundary, body = encode_multipart(values)
    return client.post(
        "/ru/testimony/", data=body, content_type="multipart/form-data; boundary=%s" % boundary
    )


# --- the tests ------------------------------------------------------------------------------


@pytest.mark.sqlite
def test_nothing_a_witness_sends_is_on_disk_in_the_clear(
    instance, intake_app, client, temp_folder, caplog
):
    from store.blobs import read_item, unpad_document
    from store.models import Attachment, Testimony

    settings, identity = instance
    texts = canary_texts()
    photo, photo_marker, exif_model = canary_photo()
    audio, audio_marker = canary_audio()
    caplog.set_level(logging.DEBUG)  # everything the server logs, at any level

    response = post_testimony(
        client,
        texts,
        [
            ("invented-photo.jpg", photo, "image/jpeg"),
            ("invented-voice.mp3", audio, "audio/mpeg"),
        ],
    )
    assert response.status_code == 200, response.data[:2000]
    assert CODE.search(response.data), "no receipt shown"
    # Our spool did run, and its temporary files are visible to the scan.
    assert len(temp_folder.created) >= 2

    wanted = needles(
        {
            **texts,
            "photo COM marker": photo_marker,
            "EXIF model": exif_model,
            "audio marker": audio_marker,
            **digests("photo", photo),
            **digests("audio", audio),
        },
        {"audio content %d" % i: s for i, s in enumerate(samples(audio))},
    )
    scanned = files_under(settings.instance_path, temp_folder.folder, extra=temp_folder.created)
    names = {p.name for p in scanned}
    assert "testimony.sqlite3" in names and "testimony.sqlite3-wal" in names, names
    assert sum(p.stat().st_size for p in scanned) > len(audio), "the upload went nowhere?"
    assert leaks(scanned, wanted) == []
    logged = caplog.text.encode("utf-8", "surrogateescape")
    assert not [label for label, needle, least in wanted if holds_piece(logged, needle, least)]

    # Control: the same scan does find a canary written into a scanned folder.
    control = temp_folder.folder / "control.bin"
    control.write_bytes(b"\x00junk" + texts["statement"].encode("utf-16-le")[20:44] + b"junk")
    control_hits = leaks(files_under(temp_folder.folder), wanted)
    assert "statement (utf-16-le) in control.bin" in control_hits
    control.write_bytes(b"x" + hashlib.sha256(photo).digest() + b"y")
    assert "photo sha256 raw (bytes) in control.bin" in leaks([control], wanted)
    control.write_bytes(b"x" + hashlib.sha256(audio).hexdigest()[30:44].encode() + b"y")
    assert "audio sha256 hex (bytes) in control.bin" in leaks([control], wanted)
    control.unlink()

    # And it is all there for the recovery key: sealed, not lost.
    db = intake_app.extensions["testimony_db"]
    with db.sessions() as session:
        testimony = session.query(Testimony).one()
        assert testimony.place == "other"

        def unseal(blob_id: int) -> bytes:
            return read_item(session, blob_id, [identity])

        details = unpad_document(unseal(testimony.details_blob_id))
        assert details["place_other"] == texts["place_other"]
        assert details["when_approx"] == texts["when_approx"]
        contact = unpad_document(unseal(testimony.contact_blob_id))
        assert contact["contact"] == texts["contact"]
        (statement,) = testimony.statements
        assert unpad_document(unseal(statement.blob_id))["text"] == texts["statement"]

        attachments = session.query(Attachment).order_by(Attachment.id).all()
        assert [a.kind for a in attachments] == ["image", "audio"]
        originals = [unseal(a.original_blob_id) for a in attachments]
        assert originals == [photo, audio]
        photo_meta = json.loads(unseal(attachments[0].metadata_blob_id))
        assert photo_meta["sha256"] == hashlib.sha256(photo).hexdigest()
        assert exif_model in str(photo_meta["exif"])
        audio_meta = json.loads(unseal(attachments[1].metadata_blob_id))
        assert audio_meta["sha256"] == hashlib.sha256(audio).hexdigest()
        working = unseal(attachments[0].working_blob_id)
        assert photo_marker not in working and exif_model.encode() not in working


class _PlainSpoolRequest:
    """Mixed into the intake's request class to restore Werkzeug's default spooling."""

    def _get_file_stream(
        self, total_content_length, content_type, filename=None, content_length=None
    ):
        return default_stream_factory(total_content_length, content_type, filename, content_length)


def test_the_scan_would_catch_werkzeugs_default_plaintext_spool(intake_app, client, temp_folder):
    """If the encrypted spool were removed, this scan would see the upload: the check
    above is not blind to the very leak it is there to catch."""
    intake_app.request_class = type(
        "PlainRequest", (_PlainSpoolRequest, intake_app.request_class), {}
    )
    texts = canary_texts()
    audio, marker = canary_audio(2 * MIB)
    post_testimony(client, texts, [("invented-voice.mp3", audio, "audio/mpeg")])
    hits = leaks(
        files_under(temp_folder.folder, extra=temp_folder.created),
        needles({"audio marker": marker, **digests("audio", audio)}),
    )
    assert any(hit.startswith("audio marker") for hit in hits), hits


def test_the_scanner_finds_every_piece_of_12_bytes_and_no_shorter():
    needle = bytes(b & 0x7F for b in os.urandom(61))
    for length in (11, 12, 13):
        for start in range(len(needle) - length + 1):
            filler = bytes(b | 0x80 for b in os.urandom(200))  # never matches the needle
            haystack = filler[:100] + needle[start : start + length] + filler[100:]
            assert holds_piece(haystack, needle, WINDOW) == (length >= WINDOW), (length, start)
    assert holds_piece(b"x" + needle + b"y", needle, WINDOW)
    assert not holds_piece(b"x" + needle[:-1] + b"y", needle, len(needle))


# --- the spool itself ----------------------------------------------------------------------


def test_spool_writes_only_ciphertext_and_reads_back_the_exact_bytes(temp_folder):
    from intake.spool import HEAD_BYTES, SealedSpool, UploadBudget

    plaintext, marker = canary_audio(2 * MIB + 777)
    budget = UploadBudget(per_file=10 * MIB, remaining=20 * MIB)
    spool = SealedSpool(budget)
    (on_disk,) = temp_folder.created
    pieces = [65536, 1, 4095, 300_000]
    offset = 0
    while offset < len(plaintext):
        size = pieces[offset % len(pieces)]
        assert spool.write(plaintext[offset : offset + size]) == len(
            plaintext[offset : offset + size]
        )
        offset += size
    assert spool.stored == spool.size == len(plaintext)
    assert not spool.too_large
    assert spool.head == plaintext[:HEAD_BYTES]
    assert spool.sha256 == hashlib.sha256(plaintext).hexdigest()
    assert budget.remaining == 20 * MIB - len(plaintext)

    spool.seek(0)
    disk = on_disk.read_bytes()
    assert len(disk) >= len(plaintext)  # the ciphertext is there ...
    wanted = needles(
        {"marker": marker, **digests("file", plaintext)},
        {"content %d" % i: s for i, s in enumerate(samples(plaintext))},
    )
    assert leaks([on_disk], wanted) == []  # ... and nothing of the plaintext
    assert spool.read() == plaintext
    spool.close()


def test_spool_refuses_bytes_over_the_per_file_cap(temp_folder):
    from intake.spool import SealedSpool, UploadBudget
    from intake.submission import UploadRefused, check_upload

    budget = UploadBudget(per_file=1 * MIB, remaining=5 * MIB)
    spool = SealedSpool(budget)
    (on_disk,) = temp_folder.created
    data, marker = canary_audio(MIB + MIB // 2)
    for offset in range(0, len(data), 65536):
        spool.write(data[offset : offset + 65536])
    assert spool.too_large
    assert spool.size == len(data)
    assert spool.stored <= MIB
    assert budget.remaining == 5 * MIB - spool.stored
    with pytest.raises(UploadRefused) as refused:
        check_upload(spool, "invented-voice.mp3", "audio/mpeg")
    assert refused.value.reason == "file_too_large"
    spool.seek(0)
    assert len(on_disk.read_bytes()) < len(data)  # what was beyond the cap is not kept
    assert spool.read() == data[: spool.stored]
    spool.close()

    # A second file that would overrun the whole submission is marked as well.
    budget = UploadBudget(per_file=2 * MIB, remaining=int(1.5 * MIB))
    first, second = SealedSpool(budget), SealedSpool(budget)
    first.write(b"\x00" * MIB)
    second.write(b"\x00" * MIB)
    assert not first.too_large and second.too_large and budget.exceeded_total


def test_a_file_over_the_cap_is_not_stored_and_the_text_comes_back(instance, temp_folder):
    from intake import create_app
    from store.models import Attachment, SealedBlob, Testimony

    settings, _identity = instance
    app = create_app(settings.with_changes(max_file_size=1 * MIB))
    app.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    try:
        texts = canary_texts()
        audio, _marker = canary_audio(MIB + 4096)
        response = post_testimony(
            app.test_client(), texts, [("invented-voice.mp3", audio, "audio/mpeg")]
        )
        assert response.status_code == 400
        assert not CODE.search(response.data)
        page = response.get_data(as_text=True)
        assert "invented-voice.mp3" in page
        assert texts["statement"] in page  # what the witness typed is kept in the form
        with app.extensions["testimony_db"].sessions() as session:
            for model in (Testimony, Attachment, SealedBlob):
                assert session.query(model).count() == 0
    finally:
        app.extensions["testimony_db"].dispose()
