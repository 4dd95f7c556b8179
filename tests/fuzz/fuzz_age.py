"""Fuzz the age reader: any bytes given to ``crypto.unseal_bytes`` (binary, armored or
detected), to the header parser, and to the key-string parsers, with fixed invented
identities that the seed corpus items are sealed to (so mutations reach the MAC check,
the stanza unwrapping and the payload).

The only acceptable failure is :class:`crypto.AgeError` (or ``KeyFormatError`` for keys);
anything else (an IndexError, a UnicodeDecodeError, a hang) is a bug a hostile file could
use to crash or stall a reviewer's page. Run by ``tests/test_adversarial_fuzz_harnesses.py``
for a few thousand inputs and by ``make fuzz`` for longer:

    python tests/fuzz/fuzz_age.py -max_total_time=60 NEW_CORPUS tests/fuzz/corpus/age
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports(include=["crypto"]):
    import crypto
    from crypto.format import Source, parse_header

# Invented keys made from fixed seeds: the corpus items are sealed to their recipients.
X25519 = crypto.X25519Identity(bytes(range(32)))
HYBRID = crypto.HybridIdentity(bytes(range(100, 132)))
IDENTITIES = [X25519, HYBRID]


def check(data: bytes) -> None:
    for armor in (False, True, None):
        try:
            crypto.unseal_bytes(data, IDENTITIES, armor=armor)
        except crypto.AgeError:
            pass
    try:
        parse_header(Source(io.BytesIO(data)))
    except crypto.AgeError:
        pass
    text = data[:4096].decode("utf-8", "replace")
    for parse in (crypto.parse_identity, crypto.parse_recipient):
        try:
            parse(text)
        except crypto.AgeError:
            pass


def main() -> None:
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
