"""``python -m crypto``: the age and age-keygen command lines, for reviewers offline.

    python -m crypto keygen [--pq] [-o FILE]
    python -m crypto keygen -y FILE
    python -m crypto encrypt (-r RECIPIENT… | -R FILE… | -p) [-a] [-o OUT] [IN]
    python -m crypto decrypt -i FILE… [-o OUT] [IN]

An identity file (``-i``, ``keygen -y``) may be ``-`` for standard input, when the input
is not read from there too.

On any failure the exit status is 1 and one line on stderr says why. A passphrase is read
from the terminal, or from the environment variable named by ``--passphrase-env`` for
scripts. ``-o FILE`` replaces FILE as age does (``keygen -o`` never does), but only once
the command succeeded: a failed decryption leaves no partial output behind, and an earlier
FILE as it was. ``-o /dev/null`` (or a FIFO) is written to directly.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import BinaryIO

from . import (
    AgeError,
    HybridIdentity,
    KeyFormatError,
    ScryptIdentity,
    ScryptRecipient,
    X25519Identity,
    parse_recipient,
    parse_recipients_file,
    read_identities,
    seal,
    unseal,
)
from .armor import ArmorReader, is_armored
from .format import Readable, Source, Writable
from .keys import Identity, Recipient, identity_file_text, write_secret_file
from .stream import StreamReader

_BLOCK = 1024 * 1024


class _Failure(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m crypto", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    keygen = sub.add_parser("keygen", help="generate an identity (like age-keygen)")
    keygen.add_argument("-o", "--output", metavar="FILE")
    keygen.add_argument(
        "--pq",
        action="store_true",
        help="a hybrid post-quantum identity (ML-KEM-768 + X25519, age1pq1…)",
    )
    keygen.add_argument(
        "-y", dest="convert", metavar="FILE", help="print the recipient of the identity file FILE"
    )

    enc = sub.add_parser("encrypt", help="seal to recipients or a passphrase")
    enc.add_argument("-r", "--recipient", action="append", default=[])
    enc.add_argument("-R", "--recipients-file", action="append", default=[])
    enc.add_argument("-p", "--passphrase", action="store_true")
    enc.add_argument("-a", "--armor", action="store_true")
    enc.add_argument("-o", "--output", metavar="OUT")
    enc.add_argument("--passphrase-env", metavar="VAR", help=argparse.SUPPRESS)
    enc.add_argument("input", nargs="?")

    dec = sub.add_parser("decrypt", help="open a sealed file")
    dec.add_argument("-i", "--identity", action="append", default=[])
    dec.add_argument("-o", "--output", metavar="OUT")
    dec.add_argument("--passphrase-env", metavar="VAR", help=argparse.SUPPRESS)
    dec.add_argument("input", nargs="?")
    return parser


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise _Failure("cannot read %s: %s" % (path, exc.strerror)) from None


def _passphrase(env: str | None, confirm: bool) -> str:
    if env:
        value = os.environ.get(env)
        if not value:
            raise _Failure("environment variable %s is empty" % env)
        return value
    # getpass falls back to standard input without a terminal, which would take the
    # passphrase from the very data being sealed: insist on the terminal.
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
    except OSError:
        raise _Failure(
            "no terminal to read a passphrase from (for scripts: --passphrase-env VAR)"
        ) from None
    try:
        first = getpass.getpass("Passphrase: ")
        if confirm and getpass.getpass("Confirm passphrase: ") != first:
            raise _Failure("passphrases do not match")
    except (EOFError, OSError):
        raise _Failure("no terminal to read a passphrase from") from None
    if not first:
        raise _Failure("empty passphrase")
    return first


def _copy(src: Readable, dst: Writable) -> None:
    if isinstance(src, StreamReader):
        src.copy_to(dst)  # hands out authenticated plaintext without another copy
        return
    while True:
        block = src.read(_BLOCK)
        if not block:
            return
        dst.write(block)


def _identities(path: str, stdin: BinaryIO) -> list[Identity]:
    try:
        return read_identities(path, stdin=stdin)
    except OSError as exc:
        raise _Failure("cannot read %s: %s" % (path, exc.strerror)) from None


def _keygen(args: argparse.Namespace, stdin: BinaryIO) -> None:
    if args.convert:
        for found in _identities(args.convert, stdin):
            print(found.recipient)
        return
    identity: HybridIdentity | X25519Identity = (
        HybridIdentity.generate() if args.pq else X25519Identity.generate()
    )
    text = identity_file_text(identity, identity.recipient)
    if args.output:
        try:
            write_secret_file(args.output, text)
        except FileExistsError:
            raise _Failure("%s exists; refusing to overwrite an identity" % args.output) from None
        except OSError as exc:
            raise _Failure("cannot write %s: %s" % (args.output, exc.strerror)) from None
        print("Public key: %s" % identity.recipient, file=sys.stderr)
    else:
        sys.stdout.write(text)


def _encrypt(args: argparse.Namespace, stdin: BinaryIO, stdout: BinaryIO) -> None:
    recipients: list[Recipient] = []
    for text in args.recipient:
        try:
            recipients.append(parse_recipient(text))
        except KeyFormatError as exc:
            # The text itself is not echoed: it may be a secret key given by mistake.
            raise _Failure("invalid recipient (-r): %s" % exc) from None
    for path in args.recipients_file:
        recipients.extend(parse_recipients_file(_read_text(path)))
    if args.passphrase:
        if recipients:
            raise _Failure("-p cannot be combined with -r or -R")
        recipients = [ScryptRecipient(_passphrase(args.passphrase_env, confirm=True))]
    if not recipients:
        raise _Failure("missing recipients: use -r, -R or -p")
    if not args.armor and not args.output and stdout.isatty():
        raise _Failure("refusing to write binary output to a terminal; use -a or -o")
    _with_files(args, stdin, stdout, lambda src, dst: _seal(src, dst, recipients, args.armor))


def _seal(src: BinaryIO, dst: BinaryIO, recipients: list[Recipient], armor: bool) -> None:
    with seal(dst, recipients, armor=armor) as writer:
        _copy(src, writer)


def _decrypt(args: argparse.Namespace, stdin: BinaryIO, stdout: BinaryIO) -> None:
    identities: list[Identity] = []
    from_stdin = args.identity.count("-") + (not args.input or args.input == "-")
    if "-" in args.identity and from_stdin > 1:
        raise _Failure("standard input is used for multiple purposes")
    for path in args.identity:
        identities.extend(_identities(path, stdin))

    def run(src: BinaryIO, dst: BinaryIO) -> None:
        source = Source(src)
        found = identities
        if not found:
            # Without -i the file must be passphrase-sealed, as with age.
            if is_armored(source.peek(64)):
                source = Source(ArmorReader(source))
            start = source.peek(256)
            if b"\n-> scrypt " not in start:
                raise _Failure("missing identity: use -i (or a passphrase-sealed file)")
            found = [ScryptIdentity(_passphrase(args.passphrase_env, confirm=False))]
        _copy(unseal(source, found), dst)

    _with_files(args, stdin, stdout, run)


Work = Callable[[BinaryIO, BinaryIO], None]


def _with_files(args: argparse.Namespace, stdin: BinaryIO, stdout: BinaryIO, work: Work) -> None:
    src = stdin
    output = args.output if args.output and args.output != "-" else None
    if output and args.input and args.input != "-":
        if os.path.abspath(args.input) == os.path.abspath(output):
            raise _Failure("input and output file are the same: %r" % output)
    if args.input and args.input != "-":
        try:
            src = open(args.input, "rb")
        except OSError as exc:
            raise _Failure("cannot open %s: %s" % (args.input, exc.strerror)) from None
    try:
        if output is None:
            work(src, stdout)
            stdout.flush()
        else:
            _write_output(output, lambda dst: work(src, dst))
    finally:
        if src is not stdin:
            src.close()


def _mode_for(existing: int | None) -> int:
    """The permission bits of an output: those of the file it replaces, or 0666 less the
    umask for a new one (what ``age -o`` leaves)."""
    if existing is not None:
        return stat.S_IMODE(existing)
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _write_output(path: str, work: Callable[[BinaryIO], None]) -> None:
    """Run ``work`` on the output ``path``, replacing what was there, as age does.

    A regular file (or a new name) is written to a temporary file (mode 0600 while it is
    written) in the same folder and renamed over ``path`` only once ``work`` succeeded: a
    failure keeps the old content, and nobody ever sees half an output. The result has
    the permissions age leaves: those of the file it replaces, or for a new file 0666
    less the umask. Anything else that exists already
    (``/dev/null``, a FIFO, a terminal) is written to directly. A symbolic link is
    followed, so the file it points to is replaced, not the link.
    """
    target = os.path.realpath(path)
    try:
        existing: int | None = os.stat(target).st_mode
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise _Failure("cannot create %s: %s" % (path, exc.strerror)) from None
    if existing is not None and not stat.S_ISREG(existing):
        try:
            dst = open(target, "wb")
        except OSError as exc:
            raise _Failure("cannot create %s: %s" % (path, exc.strerror)) from None
        with dst:
            work(dst)
        return
    folder, name = os.path.split(target)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".%s." % name, suffix=".part")
    except OSError as exc:
        raise _Failure("cannot create %s: %s" % (path, exc.strerror)) from None
    try:
        with os.fdopen(fd, "wb") as dst:
            work(dst)
            dst.flush()
            os.fsync(dst.fileno())
            os.fchmod(dst.fileno(), _mode_for(existing))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def main(
    argv: Sequence[str] | None = None, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None
) -> int:
    args = _parser().parse_args(argv)
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    try:
        if args.command == "keygen":
            _keygen(args, stdin)
        elif args.command == "encrypt":
            _encrypt(args, stdin, stdout)
        else:
            _decrypt(args, stdin, stdout)
    except (_Failure, AgeError, ValueError) as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 1
    except OSError as exc:
        print("error: %s" % (exc.strerror or exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
