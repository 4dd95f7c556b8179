"""Small builders shared by the intake tests: invented form data and files."""

from __future__ import annotations

import io
import re

from PIL import Image

CODE = re.compile(rb'<p class="code"[^>]*>([0-9 ]+)</p>')


def jpeg(size: tuple[int, int] = (120, 90), color: str = "teal", exif=None) -> bytes:
    out = io.BytesIO()
    image = Image.new("RGB", size, color)
    if exif is not None:
        image.save(out, "JPEG", exif=exif)
    else:
        image.save(out, "JPEG")
    return out.getvalue()


def form(**overrides):
    data = {
        "statement": "Invented statement for a test: people gathered near the bridge.",
        "relation": "saw",
        "consent": "counts",
        "place": "masanchi",
    }
    data.update(overrides)
    return data


def submit(client, lang: str = "ru", files=(), **fields):
    data = form(**fields)
    if files:
        data["files"] = [(io.BytesIO(content), name) for name, content in files]
    return client.post("/%s/testimony/" % lang, data=data, content_type="multipart/form-data")


def receipt_code(response) -> str | None:
    match = CODE.search(response.data)
    return match.group(1).decode() if match else None
