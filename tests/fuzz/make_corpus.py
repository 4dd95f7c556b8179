"""Write the seed corpus for the fuzz harnesses (run once; the files are checked in).

    python tests/fuzz/make_corpus.py

Every seed is small and invented: items sealed to the harness's fixed test keys, and
tiny files of each accepted upload type plus some that must be refused.
"""

from __future__ import annotations

import io
import struct
import sys
import zlib
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

import crypto  # noqa: E402

X25519 = crypto.X25519Identity(bytes(range(32)))
HYBRID = crypto.HybridIdentity(bytes(range(100, 132)))
TEXT = b"Invented statement for the fuzzer: Ivan Testov saw a grey van."


def age_seeds() -> dict[str, bytes]:
    x, h = X25519.recipient, HYBRID.recipient
    return {
        "x25519.age": crypto.seal_bytes(TEXT, [x]),
        "x25519-armored.age": crypto.seal_bytes(TEXT, [x], armor=True),
        "hybrid.age": crypto.seal_bytes(TEXT, [h]),
        "both.age": crypto.seal_bytes(TEXT, [x, h]),
        "empty.age": crypto.seal_bytes(b"", [x]),
        "scrypt.age": crypto.seal_bytes(TEXT, [crypto.ScryptRecipient("invented", work_factor=2)]),
        "identity.txt": str(X25519).encode(),
        "recipient.txt": str(h).encode(),
    }


def _image(fmt: str, mode: str = "RGB", size: tuple[int, int] = (16, 12), **kw) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, "teal" if mode in ("RGB", "RGBA") else 1).save(out, fmt, **kw)
    return out.getvalue()


def _exif_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "InventedCam"
    exif[0x0112] = 6  # rotated
    exif.get_ifd(0x8769)[0x9003] = "2020:02:07 23:15:00"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (43.0, 12.0, 30.0), "E", (75.0, 6.0, 0.0)
    return _image("JPEG", exif=exif)


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG header announcing a huge picture, with one tiny compressed row."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def upload_seeds() -> dict[str, bytes]:
    return {
        "photo.jpg": _exif_jpeg(),
        "alpha.png": _image("PNG", "RGBA"),
        "palette.gif": _image("GIF", "P"),
        "photo.webp": _image("WEBP"),
        "photo.tif": _image("TIFF"),
        "bw.bmp": _image("BMP", "1"),
        "bomb.png": _png_claiming(30_000, 30_000),
        "doc.pdf": b"%PDF-1.4\n1 0 obj << >> endobj\n%%EOF\n",
        "voice.mp3": b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(64),
        "voice.ogg": b"OggS\x00\x02" + bytes(58),
        "voice.wav": b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(40),
        "voice.amr": b"#!AMR\n" + bytes(32),
        "voice.flac": b"fLaC" + bytes(60),
        "clip.webm": b"\x1a\x45\xdf\xa3" + bytes(60),
        "clip.mp4": b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(40),
        "photo.heic": b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(40),
        "drawing.svg": b"<svg xmlns='http://www.w3.org/2000/svg'><script>1</script></svg>",
        "page.html": b"<!doctype html><script>alert(1)</script>",
        "archive.zip": b"PK\x03\x04\x14\x00" + bytes(40),
    }


def main() -> None:
    for folder, seeds in (("age", age_seeds()), ("uploads", upload_seeds())):
        target = HERE / "corpus" / folder
        target.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (target / name).write_bytes(data)


if __name__ == "__main__":
    main()
