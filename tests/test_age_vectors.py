"""Every C2SP age test vector gives exactly the expected outcome and released plaintext."""

from __future__ import annotations

import hashlib
import io
import zlib
from pathlib import Path

import pytest

import crypto
from crypto import (
    ArmorError,
    HeaderError,
    HeaderMACError,
    NoIdentityMatchError,
    PayloadError,
    ScryptIdentity,
)

from .conftest import TESTKIT

OUTCOMES = [
    (HeaderMACError, "HMAC failure"),
    (HeaderError, "header failure"),
    (NoIdentityMatchError, "no match"),
    (PayloadError, "payload failure"),
    (ArmorError, "armor failure"),
]


def _names() -> list[str]:
    folder = TESTKIT / "age"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _load(path: Path) -> tuple[dict[str, list[str]], bytes]:
    raw = path.read_bytes()
    head, body = raw.split(b"\n\n", 1)
    meta: dict[str, list[str]] = {}
    for line in head.decode().splitlines():
        key, value = line.split(": ", 1)
        meta.setdefault(key, []).append(value)
    if meta.get("compressed") == ["zlib"]:
        body = zlib.decompress(body)
    return meta, body


def _identities(meta: dict[str, list[str]]) -> list[crypto.Identity]:
    identities: list[crypto.Identity] = []
    for text in meta.get("identity", []):
        identities.append(crypto.parse_identity(text))
    identities.extend(ScryptIdentity(p) for p in meta.get("passphrase", []))
    return identities


def test_vectors_are_present(age_vectors_dir: Path) -> None:
    assert len(list(age_vectors_dir.iterdir())) >= 100


@pytest.mark.parametrize("name", _names() or ["(testkit absent)"])
def test_vector(name: str, age_vectors_dir: Path) -> None:
    meta, body = _load(age_vectors_dir / name)
    identities = _identities(meta)
    released = hashlib.sha256()
    outcome = "success"
    try:
        reader = crypto.unseal(io.BytesIO(body), identities, armor=meta.get("armored") == ["yes"])
        while block := reader.read(4096):
            released.update(block)
    except crypto.AgeError as exc:
        outcome = next(label for kind, label in OUTCOMES if isinstance(exc, kind))
        assert str(exc), "every failure says what failed"
    assert outcome == meta["expect"][0]
    if "payload" in meta:
        assert released.hexdigest() == meta["payload"][0]
