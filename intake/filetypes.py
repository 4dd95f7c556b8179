"""What an upload is, decided from its first bytes, never from its name or declared type.

Accepted: photos (JPEG, PNG, GIF, WebP, HEIC/HEIF, TIFF), audio (MP3, M4A/AAC, Ogg/Opus,
WAV, AMR, FLAC, 3GPP audio), video (MP4, MOV, 3GP, WebM/Matroska, AVI) and PDF.
Everything else, including SVG, HTML and archives, is refused.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FileType:
    kind: str  # image | audio | video | pdf
    mime: str
    extension: str


_FTYP_BRANDS = {
    b"heic": FileType("image", "image/heic", "heic"),
    b"heix": FileType("image", "image/heic", "heic"),
    b"mif1": FileType("image", "image/heif", "heif"),
    b"msf1": FileType("image", "image/heif", "heif"),
    b"avif": FileType("image", "image/avif", "avif"),
    b"M4A ": FileType("audio", "audio/mp4", "m4a"),
    b"M4B ": FileType("audio", "audio/mp4", "m4a"),
    b"qt  ": FileType("video", "video/quicktime", "mov"),
    b"3gp4": FileType("video", "video/3gpp", "3gp"),
    b"3gp5": FileType("video", "video/3gpp", "3gp"),
    b"3gp6": FileType("video", "video/3gpp", "3gp"),
    b"3g2a": FileType("video", "video/3gpp2", "3g2"),
}
_MP4 = FileType("video", "video/mp4", "mp4")


def detect(head: bytes) -> FileType | None:
    """The type of a file starting with ``head`` (at least its first 64 bytes), or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return FileType("image", "image/jpeg", "jpg")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return FileType("image", "image/png", "png")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return FileType("image", "image/gif", "gif")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return FileType("image", "image/webp", "webp")
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return FileType("image", "image/tiff", "tif")
    if head.startswith(b"%PDF-"):
        return FileType("pdf", "application/pdf", "pdf")
    if head[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(head[8:12], _MP4)
    if head.startswith(b"ID3") or (
        len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06 != 0
    ):
        return FileType("audio", "audio/mpeg", "mp3")
    if head.startswith(b"OggS"):
        return FileType("audio", "audio/ogg", "ogg")
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return FileType("audio", "audio/wav", "wav")
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return FileType("video", "video/x-msvideo", "avi")
    if head.startswith(b"#!AMR"):
        return FileType("audio", "audio/amr", "amr")
    if head.startswith(b"fLaC"):
        return FileType("audio", "audio/flac", "flac")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return FileType("video", "video/webm", "webm")
    return None
