"""Photos: checked, their capture metadata read, and a stripped working copy made.

The original is kept bit for bit elsewhere (sealed); this module never changes it. It
decodes the image under a pixel limit (a small file can expand to gigabytes: a
decompression bomb), reads EXIF capture time, GPS position and device into a dict that is
sealed beside the original, and makes a working copy for reviewers to look at: upright,
at most 2000 pixels on its long side, re-encoded with no metadata at all.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, SupportsFloat, SupportsIndex

from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 50_000_000  # JPEG: decoded at a reduced scale for the working copy
# Other formats decode at full size (4 bytes a pixel and two working copies): a lower cap
# keeps one upload's memory near 200 MiB however small the compressed file is.
MAX_PIXELS_FULL_DECODE = 16_000_000
WORKING_SIDE = 2000
_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825


class ImageRefused(ValueError):
    """The file claims to be an image but cannot be used; ``reason`` is a message key."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class ProcessedImage:
    width: int
    height: int
    exif: dict[str, object]
    working_copy: bytes | None
    working_mime: str | None


def _rational(value: object) -> float:
    if isinstance(value, tuple) and len(value) == 2:
        return float(Fraction(int(value[0]), int(value[1]) or 1))
    if isinstance(value, SupportsFloat | SupportsIndex | str | bytes):
        return float(value)
    raise TypeError("not a number: %r" % (value,))


def _coordinate(parts: Any, ref: object) -> float | None:
    try:
        degrees, minutes, seconds = (_rational(p) for p in parts)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    value = degrees + minutes / 60 + seconds / 3600
    if str(ref).strip().upper() in ("S", "W"):
        value = -value
    return round(value, 7)


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if value is None:
        return None
    text = str(value).strip("\x00 ").strip()
    return text[:200] or None


def read_exif(image: Image.Image) -> dict[str, object]:
    """Capture time, GPS coordinates and device from an image's EXIF, where present."""
    try:
        exif = image.getexif()
    except Exception:  # noqa: BLE001 - malformed EXIF must not refuse the photo
        return {}
    out: dict[str, object] = {}
    try:
        detail = exif.get_ifd(_EXIF_IFD)
    except Exception:  # noqa: BLE001
        detail = {}
    captured = _text(detail.get(0x9003) or detail.get(0x9004) or exif.get(0x0132))
    if captured:
        out["captured"] = captured
    offset = _text(detail.get(0x9011))
    if offset:
        out["captured_utc_offset"] = offset
    device = " ".join(filter(None, (_text(exif.get(0x010F)), _text(exif.get(0x0110)))))
    if device:
        out["device"] = device
    software = _text(exif.get(0x0131))
    if software:
        out["software"] = software
    try:
        gps = exif.get_ifd(_GPS_IFD)
    except Exception:  # noqa: BLE001
        gps = {}
    if gps:
        lat = _coordinate(gps.get(2), gps.get(1))
        lon = _coordinate(gps.get(4), gps.get(3))
        if lat is not None and lon is not None:
            position = {"lat": lat, "lon": lon}
            out["gps"] = position
            altitude = gps.get(6)
            if altitude is not None:
                try:
                    position["altitude_m"] = round(_rational(altitude), 1)
                except (TypeError, ValueError, ZeroDivisionError):
                    pass
    return out


def process(data: bytes) -> ProcessedImage:
    """Check and describe an image; raise :class:`ImageRefused` if it is unusable."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            limit = MAX_PIXELS if image.format == "JPEG" else MAX_PIXELS_FULL_DECODE
            if width * height > limit:
                raise ImageRefused("image_too_many_pixels")
            exif = read_exif(image)
            if image.format == "JPEG":
                # Ask for the working copy's own shape, so a 4000 x 3000 photo decodes
                # at half scale (a square request would force the full decode).
                factor = min(WORKING_SIDE / max(width, height), 1.0)
                image.draft("RGB", (max(1, int(width * factor)), max(1, int(height * factor))))
            image.load()
        except ImageRefused:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageRefused("image_too_many_pixels") from None
        except (
            UnidentifiedImageError,
            OSError,
            SyntaxError,
            ValueError,
            EOFError,
            IndexError,
            TypeError,
            KeyError,
            ZeroDivisionError,
            MemoryError,
        ):
            raise ImageRefused("image_corrupt") from None
    working, mime = _working_copy(image)
    return ProcessedImage(
        width=width, height=height, exif=exif, working_copy=working, working_mime=mime
    )


def _working_copy(image: Image.Image) -> tuple[bytes | None, str | None]:
    try:
        upright = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001
        upright = image
    upright.thumbnail((WORKING_SIDE, WORKING_SIDE))
    has_alpha = upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info
    out = io.BytesIO()
    clean = upright.convert("RGBA" if has_alpha else "RGB")
    # Pillow would write the JPEG comment (COM) or the ICC profile back from ``info``.
    clean.info = {}
    if has_alpha:
        clean.save(out, "PNG", optimize=False)
        return out.getvalue(), "image/png"
    clean.save(out, "JPEG", quality=85)
    return out.getvalue(), "image/jpeg"
