"""The instance's export key and the signed manifest of an export.

Threat: an export is published and then altered (a count changed, an excerpt edited) or
forged in the organisation's name. Guarantee: ``manifest.json`` lists the SHA-256 of
every file of the export and is signed with the instance's Ed25519 export key
(``manifest.sig``); :func:`verify` names every file that is missing, extra or changed,
and a signature that does not match.

The private key is made at the first export and kept only as a sealed item to the
active recipients, like testimony, so only someone holding a reviewer's or the
recovery identity can sign, and sharing (header rewrites) covers it like any other
item. Its public key is an instance value (not secret) and is written into every
manifest; publish it beside the exports so readers can check it is the organisation's.

Misuse: a signature only proves the manifest was made with this key; checking against
the key inside the manifest alone proves nothing about who made it. Pass the
organisation's published key to :func:`verify` whenever it is known.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy.orm import Session

import crypto
from store import audit
from store.anchors import public_key_text
from store.blobs import read_item, seal_data
from store.models import InstanceValue

KEY_VALUE = "export_key"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
FORMAT = "testimony-export-manifest/1"


class ExportKeyError(RuntimeError):
    """The export key cannot be opened with the identity at hand."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def fingerprint(public_key: str) -> str:
    """A short form to read aloud or print: SHA-256 of the raw key, 4-hex groups."""
    digest = hashlib.sha256(base64.b64decode(public_key)).hexdigest()[:32]
    return " ".join(digest[i : i + 4] for i in range(0, 32, 4))


def instance_public_key(session: Session) -> str | None:
    row = session.get(InstanceValue, KEY_VALUE)
    return json.loads(row.value)["public"] if row else None


def signing_key(session: Session, identity: crypto.Identity, actor: str) -> Ed25519PrivateKey:
    """The export key, made and sealed at first use."""
    row = session.get(InstanceValue, KEY_VALUE)
    if row is None:
        private = Ed25519PrivateKey.generate()
        raw = private.private_bytes_raw()
        blob = seal_data(session, json.dumps({"ed25519_private_key": _b64(raw)}).encode())
        public = public_key_text(private.public_key())
        session.add(
            InstanceValue(
                name=KEY_VALUE, value=json.dumps({"public": public, "blob": blob.id}).encode()
            )
        )
        session.flush()
        audit.append(session, actor, "export.key_create", "export_key", {"public_key": public})
        return private
    stored = json.loads(row.value)
    try:
        document = json.loads(read_item(session, stored["blob"], [identity]))
    except crypto.NoIdentityMatchError:
        raise ExportKeyError(
            "the export key is not shared with this identity: ask a reviewer who can read "
            "older testimony to share it, or use the recovery key"
        ) from None
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(document["ed25519_private_key"]))


def manifest(
    files: dict[str, bytes], key: Ed25519PrivateKey, generated_on: str
) -> tuple[bytes, bytes, str]:
    """manifest.json and manifest.sig for ``files``, and the manifest's SHA-256."""
    document = {
        "format": FORMAT,
        "generated_on": generated_on,
        "public_key": public_key_text(key.public_key()),
        "signature": "Ed25519 over the bytes of manifest.json, base64 in manifest.sig",
        "files": [
            {
                "name": name,
                "size": len(files[name]),
                "sha256": hashlib.sha256(files[name]).hexdigest(),
            }
            for name in sorted(files)
        ],
    }
    body = (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode()
    signature = (_b64(key.sign(body)) + "\n").encode("ascii")
    return body, signature, hashlib.sha256(body).hexdigest()


@dataclass
class Verification:
    public_key: str | None = None
    files: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def read_export(path: Path) -> dict[str, bytes]:
    """Every file of an export folder or ZIP (flat: exports have no subfolders)."""
    if path.is_dir():
        return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}
    with zipfile.ZipFile(path) as archive:
        return {
            info.filename: archive.read(info) for info in archive.infolist() if not info.is_dir()
        }


def verify(path: Path, expected_key: str | None = None) -> Verification:
    """Check an export (folder or ZIP): the signature, then every file against the
    manifest, naming each problem."""
    result = Verification()
    try:
        files = read_export(path)
    except (OSError, zipfile.BadZipFile) as exc:
        result.problems.append("cannot read %s: %s" % (path, exc))
        return result
    body = files.get(MANIFEST)
    if body is None:
        result.problems.append("%s is missing" % MANIFEST)
        return result
    try:
        document = json.loads(body)
        result.public_key = str(document["public_key"])
        listed = {str(e["name"]): str(e["sha256"]) for e in document["files"]}
    except (ValueError, KeyError, TypeError):
        result.problems.append("%s is not a manifest" % MANIFEST)
        return result
    if expected_key and expected_key != result.public_key:
        result.problems.append(
            "signed with another key (%s), not the expected one (%s)"
            % (fingerprint(result.public_key), fingerprint(expected_key))
        )
    signature = files.get(SIGNATURE)
    if signature is None:
        result.problems.append("%s is missing" % SIGNATURE)
    else:
        try:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(result.public_key))
            key.verify(base64.b64decode(signature.strip(), validate=True), body)
        except (InvalidSignature, ValueError):
            result.problems.append("bad signature: %s does not match %s" % (SIGNATURE, MANIFEST))
    for name, digest in sorted(listed.items()):
        if name not in files:
            result.problems.append("%s: listed in the manifest but missing" % name)
        elif hashlib.sha256(files[name]).hexdigest() != digest:
            result.problems.append("%s: changed (its SHA-256 differs from the manifest)" % name)
        else:
            result.files += 1
    for name in sorted(set(files) - set(listed) - {MANIFEST, SIGNATURE}):
        result.problems.append("%s: not listed in the manifest" % name)
    return result
