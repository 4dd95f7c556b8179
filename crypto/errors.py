"""The ways unsealing can fail, one class each, so callers can tell them apart.

Every class derives from :class:`AgeError`; messages say what failed.
"""

from __future__ import annotations


class AgeError(Exception):
    """Base class for every failure of this package."""


class HeaderError(AgeError):
    """The header is malformed, uses an unsupported version, or a stanza is invalid."""


class HeaderMACError(AgeError):
    """The header parsed but its MAC does not verify: it was altered or the key is wrong."""


class NoIdentityMatchError(AgeError):
    """None of the given identities can unwrap any recipient stanza of the file."""

    def __init__(self, message: str = "no identity matched any of the recipients") -> None:
        super().__init__(message)


class PayloadError(AgeError):
    """The encrypted payload is truncated, altered, or badly framed."""


class ArmorError(AgeError):
    """The ASCII armor around the file is malformed."""


class KeyFormatError(AgeError):
    """A recipient or identity string cannot be parsed."""


class MixedRecipientsError(AgeError, ValueError):
    """Post-quantum and classic recipients for one item: refused unless ``allow_mixed``.

    A file is only as strong as its weakest stanza: a quantum computer that unwraps the
    classic stanza gets the file key, and so the whole item. age refuses this too.
    """

    def __init__(
        self,
        message: str = (
            "incompatible recipients: can't mix post-quantum and classic recipients, "
            "or the file would be vulnerable to quantum computers"
        ),
    ) -> None:
        super().__init__(message)
