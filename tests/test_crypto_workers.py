"""The STREAM worker threads live in crypto.workers; crypto.stream only uses them."""

from __future__ import annotations

import os
import threading

import crypto
import crypto.stream
import crypto.workers
from crypto import X25519Identity


def test_stream_uses_the_workers_module() -> None:
    assert crypto.stream.run_pooled is crypto.workers.run_pooled
    assert crypto.stream.run_inline is crypto.workers.run_inline
    assert crypto.stream.Job is crypto.workers.Job
    # No second pool left behind in stream.py.
    assert not hasattr(crypto.stream, "_Workers")
    assert not hasattr(crypto.stream, "_workers")


def test_a_job_runs_once_whoever_claims_it() -> None:
    calls: list[int] = []
    job = crypto.workers.Job(lambda n: calls.append(n) or n * 2, 21)
    job.run()
    job.run()
    assert job.result() == 42
    assert calls == [21]


def test_a_failing_job_raises_at_its_result() -> None:
    def boom() -> None:
        raise ValueError("batch failed")

    job = crypto.workers.run_pooled(boom)
    try:
        job.result()
    except ValueError as exc:
        assert str(exc) == "batch failed"
    else:
        raise AssertionError("the job's error was lost")


def test_large_payloads_are_sealed_by_the_shared_workers() -> None:
    identity = X25519Identity.generate()
    data = os.urandom(12 * 1024 * 1024)
    sealed = crypto.seal_bytes(data, [identity.recipient])
    assert crypto.unseal_bytes(sealed, [identity]) == data
    names = {t.name for t in threading.enumerate()}
    if crypto.workers.WORKERS >= 2:
        assert "age-stream" in names
        assert sum(1 for t in threading.enumerate() if t.name == "age-stream") <= 4
