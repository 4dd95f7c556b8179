"""``testimony export``: build a signed, anonymized export on the command line, print
the export key, or check an export.

    testimony export --out DIR [--zip] [--k 5] [--incident SLUG ...]
                     [--granularity day|month] [--language en|ru] [--pdf] --identity FILE
    testimony export verify PATH [--public-key KEY]
    testimony export key

The identity file (a reviewer's key or the recovery key) opens the approved excerpts
and the export key; it never leaves this process.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import TextIO

from store import settings as settings_module
from store.db import Database
from store.ops import identity_files

from . import build, signing

ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # zip entries carry no time of their own


class ProgressBar:
    """A plain-text progress bar on stderr."""

    def __init__(self, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.stream = stream
        self.width = width

    def __call__(self, stage: str, done: int, total: int) -> None:
        share = done / total if total else 1.0
        filled = int(self.width * share)
        self.stream.write(
            "\r[%s%s] %3d%% %-9s %d/%d"
            % ("#" * filled, "." * (self.width - filled), 100 * share, stage, done, total)
        )
        self.stream.flush()

    def finish(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def chromium() -> str | None:
    for candidate in (
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


def print_pdf(html_path: Path) -> bytes | None:
    """report.pdf from report.html with headless chromium (no network, no profile kept)."""
    binary = chromium()
    if binary is None:
        print(
            "report.pdf not made: chromium is not installed (apt-get install chromium)",
            file=sys.stderr,
        )
        return None
    with tempfile.TemporaryDirectory() as profile:
        target = Path(profile) / "report.pdf"
        subprocess.run(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-pdf-header-footer",
                "--user-data-dir=%s" % profile,
                "--print-to-pdf=%s" % target,
                html_path.as_uri(),
            ],
            capture_output=True,
            timeout=120,
            check=False,
        )
        if not target.exists():
            print("report.pdf not made: chromium did not print it", file=sys.stderr)
            return None
        return target.read_bytes()


def _day_time(generated_on: str) -> float:
    text = generated_on if len(generated_on) == 10 else generated_on + "-01"
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def write(export: build.Export, out: Path, as_zip: bool) -> None:
    """Write the files; their times are the export's day (or month), not the second."""
    stamp = _day_time(export.generated_on)
    if as_zip:
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in export.files.items():
                archive.writestr(
                    zipfile.ZipInfo(name, ZIP_TIME), data, compress_type=zipfile.ZIP_DEFLATED
                )
        os.utime(out, (stamp, stamp))
        return
    out.mkdir(parents=True, exist_ok=True)
    for name, data in export.files.items():
        (out / name).write_bytes(data)
        os.utime(out / name, (stamp, stamp))


def _export(args: argparse.Namespace) -> int:
    if not args.out or not args.identity:
        print(
            "error: testimony export needs --out and --identity (or: export verify PATH)",
            file=sys.stderr,
        )
        return 2
    out = Path(args.out)
    if out.exists() and (args.zip or any(out.iterdir())):
        print(
            "error: %s exists and is not an empty folder; refusing to overwrite" % out,
            file=sys.stderr,
        )
        return 1
    identities = identity_files([args.identity])
    options = build.Options(
        k=args.k,
        incidents=args.incident or [],
        granularity=args.granularity,
        language=args.language,
    )
    progress = ProgressBar()
    pdf = None
    if args.pdf:

        def pdf(html: bytes) -> bytes | None:
            # chromium prints from a file: the report goes where the export goes anyway.
            with tempfile.TemporaryDirectory(dir=out.parent if args.zip else None) as temp:
                page = (out if not args.zip else Path(temp)) / "report.html"
                page.parent.mkdir(parents=True, exist_ok=True)
                page.write_bytes(html)
                return print_pdf(page)

    db = Database(settings_module.load())
    try:
        with db.transaction() as session:
            export = build.build(session, identities[0], options, "operator", progress, pdf)
    except (build.ExportError, signing.ExportKeyError) as exc:
        progress.finish()
        print("error: %s" % exc, file=sys.stderr)
        return 1
    finally:
        db.dispose()
    progress.finish()
    write(export, out, args.zip)
    print(
        "Export written to %s: %d files, %s testimonies counted, %d excerpts."
        % (
            out,
            len(export.files),
            export.testimonies if export.testimonies >= args.k else "fewer than %d" % args.k,
            export.excerpts,
        )
    )
    print("Manifest SHA-256: %s" % export.manifest_sha256)
    return 0


def _instance_key() -> str | None:
    try:
        db = Database(settings_module.load())
        try:
            with db.sessions() as session:
                return signing.instance_public_key(session)
        finally:
            db.dispose()
    except Exception:  # no instance here: checking an export elsewhere is fine
        return None


def _verify(args: argparse.Namespace) -> int:
    expected = args.public_key or _instance_key()
    result = signing.verify(Path(args.path), expected)
    for problem in result.problems:
        print(problem, file=sys.stderr)
    if not result.ok:
        print("export NOT verified: %d problem(s)" % len(result.problems), file=sys.stderr)
        return 1
    print("export verified: %d files match the signed manifest" % result.files)
    print(
        "signed with key %s (fingerprint %s)%s"
        % (
            result.public_key,
            signing.fingerprint(result.public_key or ""),
            ""
            if expected
            else "; no expected key given: compare the fingerprint with the "
            "organisation's published one",
        )
    )
    return 0


def _key(args: argparse.Namespace) -> int:
    key = _instance_key()
    if key is None:
        print("no export key yet: it is made by the first export", file=sys.stderr)
        return 1
    print("export public key (Ed25519, base64): %s" % key)
    print("fingerprint: %s" % signing.fingerprint(key))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("export", help="anonymized, signed summary exports")
    parser.add_argument("--out", metavar="DIR", help="folder to write (or the .zip with --zip)")
    parser.add_argument("--zip", action="store_true", help="write one ZIP file")
    parser.add_argument("--k", type=int, default=5, help="counts below k are suppressed")
    parser.add_argument(
        "--incident", nargs="+", metavar="SLUG", help="only testimonies about these incidents"
    )
    parser.add_argument(
        "--granularity",
        choices=build.GRANULARITIES,
        default="day",
        help="finest date in the export",
    )
    parser.add_argument("--language", choices=build.LANGUAGES, default="en")
    parser.add_argument("--pdf", action="store_true", help="also report.pdf (chromium)")
    parser.add_argument(
        "--identity", metavar="FILE", help="a reviewer's or the recovery identity file"
    )
    parser.set_defaults(handler=_export)
    commands = parser.add_subparsers(dest="export_command", metavar="verify|key")
    check = commands.add_parser("verify", help="check an export's signature and files")
    check.add_argument("path", metavar="PATH", help="the export folder or ZIP")
    check.add_argument(
        "--public-key",
        metavar="KEY",
        help="the organisation's export key (default: this instance's)",
    )
    check.set_defaults(handler=_verify)
    commands.add_parser("key", help="print the export public key to publish").set_defaults(
        handler=_key
    )
