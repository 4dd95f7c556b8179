"""Sealing throughput: our age implementation against the reference `age` and gpg.

What it measures, in one run: a file of random bytes (256 MiB unless ``--size-mib`` says
otherwise) is sealed and unsealed by each tool, run as a child process:

* ours: ``python -m crypto encrypt -r RECIPIENT`` / ``python -m crypto decrypt -i KEY``
  (with this interpreter, so start-up and imports count),
* age: the reference ``age`` binary, ``age -r RECIPIENT`` / ``age -d -i KEY``,
* gpg: ``gpg --encrypt`` to a Curve25519 (cv25519) subkey made in a throw-away GNUPGHOME
  (batch mode, no passphrase, ``--trust-model always``) / ``gpg --decrypt``, with gpg's
  default options. Those compress with zlib, which costs gpg a lot on random bytes, so
* gpg-z0 is the same with ``--compress-algo none`` (what gpg costs without compression).

Each tool reads the input file and writes its output file (``-o``) in a temporary
directory that is removed at the end. Every unsealed output is hashed and compared with
the input; a mismatch or a failing tool ends the run with status 1. Seconds are the
wall-clock time of the child, best of ``--runs``: one round per run, taking the tools in
turn, each round starting with the next tool. MB/s is plaintext bytes (10^6) per second.
Peak RSS is the child's ``ru_maxrss`` from ``os.wait4``, the largest over the runs (for
gpg, without gpg-agent).

Targets for ours:

* at most 1.25x the age binary's time, sealing and unsealing (stretch: faster than age);
* at least 3x faster than gpg, sealing and unsealing (judged against gpg as invoked
  above; the ratio to gpg-z0 is printed beside it);
* peak RSS under 64 MiB, whatever the file size (the payload is streamed).

This is not a test: it prints the table, the ratios and which targets are met, and exits
with status 0 whatever the figures are. The machine should be otherwise idle.

    .venv/bin/python bench/seal.py [--size-mib 256] [--runs 3] [--tmpdir DIR]
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
DIRECTIONS = ("seal", "unseal")

AGE_RATIO_MAX = 1.25
GPG_SPEEDUP_MIN = 3.0
RSS_MAX_MIB = 64

# A child's ru_maxrss starts from the peak RSS of the process it was forked from (Linux
# carries the old address space's high-water mark across exec), so a tool spawned straight
# from this interpreter could never report less than this interpreter's own peak. Tools are
# therefore started by a small /bin/sh that forks them in the background and exits; as a
# "child subreaper", this process inherits the tool and reaps it itself with os.wait4.
_SPAWN = 'log=$1; shift; "$@" </dev/null >/dev/null 2>"$log" & echo $!'
_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed: %s" % os.strerror(ctypes.get_errno()))


def run(argv: list[str], log: Path, env: dict[str, str] | None) -> tuple[float, float]:
    """Run ``argv``; return (wall seconds, peak RSS MiB). Exit if it fails."""
    start = time.perf_counter()
    shell = subprocess.run(
        ["/bin/sh", "-c", _SPAWN, "sh", str(log), *argv],
        env=env,
        stdout=subprocess.PIPE,
        check=True,
    )
    _, status, usage = os.wait4(int(shell.stdout), 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit("%s failed (%d): %s" % (argv[0], code, log.read_text(errors="replace").strip()))
    return seconds, usage.ru_maxrss / 1024  # KiB on Linux


def reap_orphans(timeout: float) -> None:
    """Wait for descendants that were handed to this process (gpg-agent) to exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(-1, os.WNOHANG) == (0, 0):
                time.sleep(0.05)
        except ChildProcessError:
            return


def make_input(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        left = size
        while left:
            block = os.urandom(min(MiB, left))
            digest.update(block)
            out.write(block)
            left -= len(block)
    return digest.hexdigest()


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(MiB):
            digest.update(block)
    return digest.hexdigest()


def output(argv: list[str], env: dict[str, str] | None = None) -> str:
    return subprocess.run(argv, env=env, check=True, capture_output=True, text=True).stdout.strip()


class Tool:
    """One tool: the command lines that seal ``src`` into ``dst`` and unseal it back."""

    name = ""
    env: dict[str, str] | None = None

    def seal_argv(self, src: Path, dst: Path) -> list[str]:
        raise NotImplementedError

    def unseal_argv(self, src: Path, dst: Path) -> list[str]:
        raise NotImplementedError


class Ours(Tool):
    name = "ours"

    def __init__(self, work: Path) -> None:
        self.cmd = [sys.executable, "-m", "crypto"]
        self.env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.key = work / "ours-key.txt"
        output(self.cmd + ["keygen", "-o", str(self.key)], self.env)
        self.recipient = output(self.cmd + ["keygen", "-y", str(self.key)], self.env)

    def seal_argv(self, src: Path, dst: Path) -> list[str]:
        return self.cmd + ["encrypt", "-r", self.recipient, "-o", str(dst), str(src)]

    def unseal_argv(self, src: Path, dst: Path) -> list[str]:
        return self.cmd + ["decrypt", "-i", str(self.key), "-o", str(dst), str(src)]


class Age(Tool):
    name = "age"

    def __init__(self, work: Path) -> None:
        self.age = shutil.which("age") or "/usr/bin/age"
        keygen = shutil.which("age-keygen") or "/usr/bin/age-keygen"
        self.key = work / "age-key.txt"
        output([keygen, "-o", str(self.key)])
        self.recipient = output([keygen, "-y", str(self.key)])

    def seal_argv(self, src: Path, dst: Path) -> list[str]:
        return [self.age, "-r", self.recipient, "-o", str(dst), str(src)]

    def unseal_argv(self, src: Path, dst: Path) -> list[str]:
        return [self.age, "-d", "-i", str(self.key), "-o", str(dst), str(src)]


class GnuPGHome:
    """A throw-away GNUPGHOME holding an Ed25519 key with a Curve25519 encryption subkey."""

    def __init__(self, work: Path) -> None:
        self.gpg = shutil.which("gpg") or "/usr/bin/gpg"
        self.home = work / "gnupg"
        self.home.mkdir(mode=0o700)
        self.env = dict(os.environ, GNUPGHOME=str(self.home))
        quiet = [self.gpg, "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", ""]
        uid = "Sealing benchmark <bench@example.invalid>"
        output(quiet + ["--quick-generate-key", uid, "ed25519", "sign", "never"], self.env)
        listing = output([self.gpg, "--batch", "--with-colons", "--list-keys", uid], self.env)
        self.fpr = next(
            line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
        )
        output(quiet + ["--quick-add-key", self.fpr, "cv25519", "encr", "never"], self.env)

    def close(self) -> None:
        subprocess.run(
            ["gpgconf", "--homedir", str(self.home), "--kill", "all"],
            env=self.env,
            capture_output=True,
        )
        reap_orphans(5)  # gpg-agent detached from gpg, so it is now this process's child


class Gpg(Tool):
    def __init__(self, home: GnuPGHome, compress: bool) -> None:
        self.name = "gpg" if compress else "gpg-z0"
        self.env = home.env
        self.fpr = home.fpr
        self.base = [home.gpg, "--batch", "--yes", "--quiet", "--trust-model", "always"]
        self.options = [] if compress else ["--compress-algo", "none"]

    def seal_argv(self, src: Path, dst: Path) -> list[str]:
        return self.base + self.options + ["--encrypt", "-r", self.fpr, "-o", str(dst), str(src)]

    def unseal_argv(self, src: Path, dst: Path) -> list[str]:
        return self.base + ["--decrypt", "-o", str(dst), str(src)]


def measure(
    tools: list[Tool], work: Path, plain: Path, expected: str, runs: int
) -> dict[tuple[str, str], tuple[float, float]]:
    """(tool, direction) -> (best seconds, peak RSS MiB)."""
    results: dict[tuple[str, str], tuple[float, float]] = {}

    def record(key: tuple[str, str], seconds: float, rss: float) -> None:
        best, peak = results.get(key, (float("inf"), 0.0))
        results[key] = (min(best, seconds), max(peak, rss))

    for round_ in range(runs):
        # Each round starts with the next tool, so none always runs right after gpg.
        start = round_ % len(tools)
        for tool in tools[start:] + tools[:start]:
            sealed, opened = work / (tool.name + ".sealed"), work / (tool.name + ".opened")
            log = work / (tool.name + ".log")
            sealed.unlink(missing_ok=True)
            record((tool.name, "seal"), *run(tool.seal_argv(plain, sealed), log, tool.env))
            record((tool.name, "unseal"), *run(tool.unseal_argv(sealed, opened), log, tool.env))
            if file_hash(opened) != expected:
                sys.exit("%s: the unsealed output differs from the input" % tool.name)
            opened.unlink()
    return results


def report(results: dict[tuple[str, str], tuple[float, float]], size: int) -> None:
    print("%-7s %-7s %9s %9s %13s" % ("tool", "dir", "seconds", "MB/s", "peak RSS MiB"))
    for (name, direction), (seconds, rss) in results.items():
        print(
            "%-7s %-7s %9.3f %9.1f %13.1f" % (name, direction, seconds, size / 1e6 / seconds, rss)
        )
    print()

    def seconds(name: str, direction: str) -> float:
        return results[name, direction][0]

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    for direction in DIRECTIONS:
        ratio = seconds("ours", direction) / seconds("age", direction)
        print(
            "%-6s ours/age    %6.2fx  target <= %.2fx: %s; stretch < 1x: %s"
            % (direction, ratio, AGE_RATIO_MAX, verdict(ratio <= AGE_RATIO_MAX), verdict(ratio < 1))
        )
    for direction in DIRECTIONS:
        speedup = seconds("gpg", direction) / seconds("ours", direction)
        plain = seconds("gpg-z0", direction) / seconds("ours", direction)
        print(
            "%-6s gpg/ours    %6.2fx  target >= %.1fx: %s  (gpg-z0/ours %.2fx: %s)"
            % (
                direction,
                speedup,
                GPG_SPEEDUP_MIN,
                verdict(speedup >= GPG_SPEEDUP_MIN),
                plain,
                verdict(plain >= GPG_SPEEDUP_MIN),
            )
        )
    rss = max(results["ours", d][1] for d in DIRECTIONS)
    print(
        "ours   peak RSS %.1f MiB  target < %d MiB: %s"
        % (rss, RSS_MAX_MIB, verdict(rss < RSS_MAX_MIB))
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=256, help="input size (default 256)")
    parser.add_argument("--runs", type=int, default=3, help="best of N runs (default 3)")
    parser.add_argument("--tmpdir", help="where to make the temporary directory")
    args = parser.parse_args()
    size = args.size_mib * MiB
    load = os.getloadavg()[0]  # other work on the machine skews every figure
    become_subreaper()

    with tempfile.TemporaryDirectory(prefix="seal-bench-", dir=args.tmpdir) as tmp:
        work = Path(tmp)
        plain = work / "plain.bin"
        expected = make_input(plain, size)
        gnupg = GnuPGHome(work)
        try:
            tools = [Ours(work), Age(work), Gpg(gnupg, compress=True), Gpg(gnupg, compress=False)]
            results = measure(tools, work, plain, expected, args.runs)
        finally:
            gnupg.close()

    print(
        "%d MiB of random bytes, best of %d runs; Python %s, %d cores, load average %.2f "
        "before the run"
        % (args.size_mib, args.runs, sys.version.split()[0], os.cpu_count() or 0, load)
    )
    print("every unsealed output equals the input")
    print()
    report(results, size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
