"""A full anonymized export of 100,000 testimonies: time and peak memory.

What it builds: a fresh instance in a temporary directory (``testimony init``: SQLite,
migrations, recovery key; hybrid post-quantum keys unless TESTIMONY_RECIPIENT_KEYS says
otherwise) with the Korday catalogue loaded, then ``--testimonies`` (default 100,000)
invented testimonies inserted with SQLAlchemy Core in batches (witness rows, testimony
rows spread over two years, places, relations, statuses and consents as a working desk
has them, one to three incident links each with a role and zero to three violation
tags; their sealed details are one shared invented blob, as counting never opens them),
and ``--excerpts`` (default 1,000) approved excerpts of invented text, each sealed with
:func:`store.blobs.seal_blob` to the instance's recipients.

What it measures: ``testimony export --out DIR --identity RECOVERY-KEY`` run as a child
process, exactly as an operator runs it (counting in SQL, suppression, unsealing every
excerpt, writing and signing every file), its wall time and its peak resident memory
(getrusage of the child). Then ``testimony export verify`` on the result, and, when
chromium is installed, the same export with ``--pdf`` (its time only: chromium's memory
is its own). Targets: under 30 s and under 500 MiB; the figures are printed with their
ratio to the targets.

This is not a test: it prints the figures and exits 0 whatever they are (1 only if the
export or its verification fails).

    .venv/bin/python bench/export.py [--testimonies 100000] [--excerpts 1000] [--tmpdir DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_SECONDS = 30.0
TARGET_MIB = 500.0
BATCH = 5000
PLACES = [
    "masanchi",
    "sortobe",
    "bular-batyr",
    "aukhatty",
    "korday",
    "otar",
    "korday-district",
    "other",
]
RELATIONS = ["saw", "happened_to_me", "happened_to_family", "heard"]
STATUSES = ["new", "in_review", "corroborated", "not_credible", "withdrawn"]
ROLES = ["eyewitness", "victim", "relative", "hearsay"]
WORDS = (
    "ночью люди огонь дома село полиция машины бежали река мост мечеть крики соседи "
    "утром дым дорога граница дети старики"
).split()


def populate(db, testimonies: int, excerpts: int, seed: int = 7) -> None:
    from store.blobs import seal_document
    from store.models import (
        Excerpt,
        Incident,
        Recipient,
        Testimony,
        TestimonyIncident,
        TestimonyViolation,
        ViolationType,
        Witness,
    )

    rnd = random.Random(seed)
    with db.transaction() as session:
        details = seal_document(session, {"text": "invented details"}).id
        incidents = list(session.scalars(select(Incident.id)))
        types = list(session.scalars(select(ViolationType.id)))
    start = dt.date(2020, 2, 7)
    place_weights = [30, 20, 15, 8, 10, 5, 7, 5]
    for first in range(0, testimonies, BATCH):
        count = min(BATCH, testimonies - first)
        replies, witnesses, rows, links, tags = [], [], [], [], []
        for n in range(first + 1, first + count + 1):
            day = start + dt.timedelta(days=int(rnd.expovariate(1 / 90)) % 730)
            replies.append(
                {
                    "public_key": "invented-reply-key-%d" % n,
                    "kind": "witness",
                    "label": "witness",
                    "active": True,
                    "created_on": day,
                }
            )
            witnesses.append({"id": n, "receipt_hash": "invented-%d" % n})
            rows.append(
                {
                    "id": n,
                    "witness_id": n,
                    "received_on": day,
                    "updated_on": day,
                    "status": rnd.choices(STATUSES, [30, 40, 20, 5, 5])[0],
                    "language": rnd.choice(["ru", "ru", "kk", "en"]),
                    "place": rnd.choices(PLACES, place_weights)[0],
                    "relation": rnd.choice(RELATIONS),
                    "consent": rnd.choice(["counts", "quotes"]),
                    "details_blob_id": details,
                }
            )
            for incident in rnd.sample(incidents[:20], rnd.randint(1, 3)):
                links.append(
                    {
                        "testimony_id": n,
                        "incident_id": incident,
                        "role": rnd.choices(ROLES, [40, 30, 15, 15])[0],
                        "confidence": "high",
                        "linked_on": day,
                    }
                )
            for kind in rnd.sample(types, rnd.randint(0, 3)):
                tags.append({"testimony_id": n, "violation_type_id": kind})
        with db.engine.begin() as conn:
            keys = conn.scalars(
                insert(Recipient).returning(Recipient.id, sort_by_parameter_order=True), replies
            )
            for witness, key in zip(witnesses, keys, strict=True):
                witness["reply_recipient_id"] = key
            conn.execute(insert(Witness), witnesses)
            conn.execute(insert(Testimony), rows)
            conn.execute(insert(TestimonyIncident), links)
            if tags:
                conn.execute(insert(TestimonyViolation), tags)
    quotable = list(range(2, testimonies + 1, 2))
    with db.transaction() as session:
        ids = set(session.scalars(select(Testimony.id).where(Testimony.consent == "quotes")))
        chosen = [t for t in quotable if t in ids][:excerpts] or sorted(ids)[:excerpts]
        for testimony_id in chosen:
            text = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(20, 120)))
            blob = seal_document(session, {"text": text, "overrides": []})
            session.add(
                Excerpt(
                    testimony_id=testimony_id,
                    blob_id=blob.id,
                    status="approved",
                    written_on=dt.date(2020, 6, 1),
                    approved_on=dt.date(2020, 6, 1),
                )
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--testimonies", type=int, default=100_000)
    parser.add_argument("--excerpts", type=int, default=1000)
    parser.add_argument("--tmpdir", default=None)
    args = parser.parse_args()

    fast = {
        "TESTIMONY_ARGON2_MEMORY_KIB": "1024",
        "TESTIMONY_ARGON2_TIME_COST": "1",
        "TESTIMONY_RECEIPT_ARGON2_MEMORY_KIB": "1024",
        "TESTIMONY_RECEIPT_ARGON2_TIME_COST": "1",
    }
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as temp:
        instance = Path(temp) / "instance"
        env = {**os.environ, **fast, "TESTIMONY_INSTANCE_PATH": str(instance)}
        env.pop("TESTIMONY_DATABASE_URL", None)
        os.environ.update({k: v for k, v in env.items() if k.startswith("TESTIMONY_")})
        from store import instance as instance_module
        from store import settings as settings_module
        from store.db import Database
        from store.incidents import load_file

        settings = settings_module.load()
        started = time.perf_counter()
        instance_module.init(settings, out=lambda *_: None)
        db = Database(settings)
        with db.transaction() as session:
            for name in ("violation-types.json", "korday-2020.json"):
                load_file(session, ROOT / "store" / "data" / name, "operator")
        populate(db, args.testimonies, args.excerpts)
        db.dispose()
        setup = time.perf_counter() - started
        print(
            "setup: %d testimonies, %d approved excerpts in %.1f s (SQLite, %s keys)"
            % (args.testimonies, args.excerpts, setup, settings.recipient_keys)
        )

        out = Path(temp) / "export"
        command = [
            sys.executable,
            "-m",
            "review.cli",
            "export",
            "--out",
            str(out),
            "--identity",
            str(instance / "recovery-key.txt"),
        ]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if done.returncode != 0:
            print(done.stdout + done.stderr, file=sys.stderr)
            return 1
        if peak_kib <= before:
            print("note: peak memory of an earlier child was higher; the figure is a bound")
        peak_mib = peak_kib / 1024
        summary = json.loads((out / "summary.json").read_text())
        sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir())}
        verified = subprocess.run(
            [sys.executable, "-m", "review.cli", "export", "verify", str(out)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        print("export: %.2f s wall, peak RSS %.0f MiB (child process)" % (seconds, peak_mib))
        print(
            "  time   %.2f s / target %.0f s = %.3f"
            % (seconds, TARGET_SECONDS, seconds / TARGET_SECONDS)
        )
        print(
            "  memory %.0f MiB / target %.0f MiB = %.3f"
            % (peak_mib, TARGET_MIB, peak_mib / TARGET_MIB)
        )
        print(
            "  counted %s testimonies, %d excerpts, %d tables; files: %s"
            % (
                summary["testimonies"],
                summary["excerpts"],
                len(summary["tables"]),
                ", ".join("%s %d KB" % (n, s // 1024) for n, s in sizes.items()),
            )
        )
        started = time.perf_counter()
        printed = subprocess.run(
            [*command[:5], str(out) + "-pdf", *command[6:], "--pdf"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        pdf_seconds = time.perf_counter() - started
        if (Path(str(out) + "-pdf") / "report.pdf").exists():
            print("  with --pdf (chromium prints report.pdf): %.2f s wall" % pdf_seconds)
        else:
            print("  report.pdf not made: %s" % printed.stderr.strip().splitlines()[-1:])
        print(
            "  verify: %s"
            % (verified.stdout.strip().splitlines() or verified.stderr.strip().splitlines())[0]
        )
        met = seconds < TARGET_SECONDS and peak_mib < TARGET_MIB
        print("targets %s" % ("met" if met else "NOT met"))
        return 0 if verified.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
