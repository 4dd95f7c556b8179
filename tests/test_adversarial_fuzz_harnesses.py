"""The atheris harnesses in tests/fuzz, run for a bounded number of inputs.

Each harness runs in its own process (libFuzzer owns the process it runs in) from its
checked-in seed corpus, with new inputs written to a temporary folder, never into the
corpus. A crash, a hang past the timeout or a memory blow-up makes libFuzzer exit
non-zero and this test fail with its report. ``FUZZ_RUNS`` multiplies the number of
inputs; ``make fuzz`` runs each harness for ``FUZZ_SECONDS`` instead.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

FUZZ = ROOT / "tests" / "fuzz"
SCALE = float(os.environ.get("FUZZ_RUNS", "1"))
HARNESSES = {  # harness: (corpus folder, inputs in the normal suite)
    "fuzz_age.py": ("age", 6000),
    "fuzz_uploads.py": ("uploads", 3000),
}


def _run(harness: str, corpus: str, runs: int, tmp_path: Path) -> subprocess.CompletedProcess:
    fresh = tmp_path / "new-inputs"
    fresh.mkdir()
    return subprocess.run(
        [
            sys.executable,
            str(FUZZ / harness),
            "-runs=%d" % runs,
            "-timeout=20",
            "-rss_limit_mb=2048",
            "-seed=%d" % (os.getpid() % 100_000 + 1),
            "-artifact_prefix=%s/" % tmp_path,
            str(fresh),
            str(FUZZ / "corpus" / corpus),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_every_harness_is_run_here():
    assert sorted(p.name for p in FUZZ.glob("fuzz_*.py")) == sorted(HARNESSES)
    for _harness, (corpus, _runs) in HARNESSES.items():
        seeds = list((FUZZ / "corpus" / corpus).iterdir())
        assert len(seeds) >= 5 and all(p.stat().st_size <= 8192 for p in seeds)


@pytest.mark.parametrize("harness", sorted(HARNESSES))
def test_the_harness_finds_no_crash(harness, tmp_path):
    pytest.importorskip("atheris", reason="atheris is not installed (pip install -e '.[test]')")
    corpus, runs = HARNESSES[harness]
    runs = max(int(runs * SCALE), 1)
    result = _run(harness, corpus, runs, tmp_path)
    report = (result.stdout + result.stderr)[-6000:]
    crashes = sorted(
        p.name
        for p in tmp_path.iterdir()
        if p.name.startswith(("crash-", "timeout-", "oom-", "leak-"))
    )
    assert result.returncode == 0 and not crashes, "%s: %s\n%s" % (harness, crashes, report)
    done = re.search(r"Done (\d+) runs", result.stderr)
    assert done and int(done.group(1)) >= runs, report  # it really ran that many


def test_a_crash_in_a_harness_fails_the_run(tmp_path):
    """The runner above can fail: a harness whose target raises is reported."""
    pytest.importorskip("atheris", reason="atheris is not installed (pip install -e '.[test]')")
    broken = tmp_path / "fuzz_broken.py"
    broken.write_text(
        "import sys, atheris\n"
        "def check(data):\n"
        "    if data[:1] == b'!':\n"
        "        raise IndexError('found')\n"
        "atheris.Setup(sys.argv, check)\natheris.Fuzz()\n"
    )
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "one").write_bytes(b"!")
    result = subprocess.run(
        [sys.executable, str(broken), "-runs=10", "-artifact_prefix=%s/" % tmp_path, str(seeds)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "IndexError" in result.stdout + result.stderr
    assert any(p.name.startswith("crash-") for p in tmp_path.iterdir())
