"""Bech32 (BIP 173) encoding, as age uses it for keys.

Unlike BIP 173, no 90-character limit applies (age's post-quantum keys are long), and the
checksum constant is plain Bech32's, not Bech32m's. Mixed-case strings are refused.
"""

from __future__ import annotations

from .errors import KeyFormatError

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_REV = {c: i for i, c in enumerate(_CHARSET)}
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _generator_xor(top: int) -> int:
    out = 0
    for i in range(5):
        if (top >> i) & 1:
            out ^= _GEN[i]
    return out


# The checksum step for each value of the top five bits, so each character costs one
# table look-up (post-quantum keys are about 2,000 characters long).
_STEP = [_generator_xor(top) for top in range(32)]


def _polymod(values: list[int]) -> int:
    chk = 1
    step = _STEP
    for v in values:
        chk = ((chk & 0x1FFFFFF) << 5 ^ v) ^ step[chk >> 25]
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _to_five_bits(data: bytes) -> list[int]:
    """8-bit bytes to padded 5-bit groups, through one big integer."""
    if not data:
        return []
    bits = len(data) * 8
    groups = -(-bits // 5)
    number = int.from_bytes(data, "big") << (groups * 5 - bits)
    text = format(number, "b").zfill(groups * 5)
    return [int(text[i : i + 5], 2) for i in range(0, groups * 5, 5)]


def _convert_bits(data: bytes | list[int], frombits: int, tobits: int, pad: bool) -> list[int]:
    acc = 0
    bits = 0
    out: list[int] = []
    maxv = (1 << tobits) - 1
    for value in data:
        acc = (acc << frombits) | value
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (tobits - bits)) & maxv)
    elif bits >= frombits or ((acc << (tobits - bits)) & maxv):
        raise KeyFormatError("bech32: invalid padding in data")
    return out


def encode(hrp: str, data: bytes) -> str:
    """Encode ``data`` under human-readable part ``hrp``; the case of ``hrp`` is kept."""
    lower = hrp.lower()
    values = _to_five_bits(bytes(data))
    checksum_in = _hrp_expand(lower) + values + [0] * 6
    mod = _polymod(checksum_in) ^ 1
    checksum = [(mod >> 5 * (5 - i)) & 31 for i in range(6)]
    text = lower + "1" + "".join(_CHARSET[v] for v in values + checksum)
    return text.upper() if hrp.isupper() else text


def decode(text: str) -> tuple[str, bytes]:
    """Return ``(hrp, data)``; ``hrp`` is returned in the case it was written in."""
    if text.lower() != text and text.upper() != text:
        raise KeyFormatError("bech32: mixed case")
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text):
        raise KeyFormatError("bech32: separator '1' missing or misplaced")
    hrp = text[:pos]
    if any(ord(c) < 33 or ord(c) > 126 for c in hrp):
        raise KeyFormatError("bech32: invalid character in human-readable part")
    lowered = text.lower()
    try:
        values = [_REV[c] for c in lowered[pos + 1 :]]
    except KeyError:
        raise KeyFormatError("bech32: invalid character in data part") from None
    if _polymod(_hrp_expand(hrp.lower()) + values) != 1:
        raise KeyFormatError("bech32: checksum mismatch")
    data = bytes(_convert_bits(values[:-6], 5, 8, False))
    return hrp, data
