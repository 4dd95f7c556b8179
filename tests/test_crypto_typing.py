"""crypto type-checks under ``mypy --strict`` with no unexplained ``type: ignore``, and
its writers and readers take any buffer, as the ``io`` classes they extend do."""

from __future__ import annotations

import array
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

import crypto
from crypto import X25519Identity
from crypto.armor import ArmorReader, ArmorWriter

from .conftest import ROOT

CRYPTO = Path(ROOT) / "crypto"


def test_mypy_strict_is_clean() -> None:
    pytest.importorskip("mypy")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir=/dev/null", "crypto"],
        capture_output=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout.decode(errors="replace")


def test_every_type_ignore_says_why() -> None:
    for path in sorted(CRYPTO.glob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "type: ignore" not in line:
                continue
            assert re.search(r"# type: ignore\[[a-z-]+(, [a-z-]+)*\]\s+#\s*\S", line), (
                "%s:%d: a type: ignore without a code and a reason" % (path.name, number)
            )


def test_writers_and_readers_take_any_buffer() -> None:
    identity = X25519Identity.generate()
    words = array.array("I", range(50_000))  # items of 4 bytes, not 1
    data = words.tobytes()
    for armor in (False, True):
        out = io.BytesIO()
        with crypto.seal(out, [identity.recipient], armor=armor) as writer:
            assert writer.write(memoryview(words)) == len(data)
            assert writer.write(bytearray(b"tail")) == 4
        assert crypto.unseal_bytes(out.getvalue(), [identity]) == data + b"tail"
        reader = crypto.unseal(io.BytesIO(out.getvalue()), [identity])
        target = array.array("I", bytes(4 * 1000))
        assert reader.readinto(memoryview(target)) == 4000
        assert target.tobytes() == data[:4000]
    armored = io.BytesIO()
    writer = ArmorWriter(armored)
    assert writer.write(memoryview(words)) == len(data)
    writer.close()
    back = ArmorReader(io.BytesIO(armored.getvalue()))
    target = array.array("I", bytes(400))
    view = memoryview(target).cast("B")
    got = back.readinto(memoryview(target))  # items of 4 bytes here too
    while 0 < got < 400:  # a raw reader may return less than asked (one armor line)
        got += back.readinto(view[got:])
    assert got == 400
    assert view.tobytes() == data[:400]
