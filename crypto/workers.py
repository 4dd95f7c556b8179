"""The worker threads that seal and open STREAM batches in parallel (:mod:`crypto.stream`).

``cryptography`` releases the GIL while it encrypts or decrypts, so a few shared threads
(one per core, at most four) can work on the 1 MiB batches of a large payload while the
stream's own thread reads and writes. A :class:`Job` is run by whoever claims it first: a
worker, or the stream's thread when it needs the result before any worker started it, so
a stream never waits on a busy pool. The threads are started on first use, stopped at
exit (before the interpreter starts to freeze threads), and replaced in a forked child.
They hold nothing between jobs.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any

__all__ = ["WORKERS", "Job", "run_inline", "run_pooled"]


class Job:
    """One batch to seal or open. Whoever claims it first runs it: a worker thread, or
    the stream's own thread when it needs the result before any worker got to it."""

    __slots__ = ("_fn", "_args", "_claim", "_done", "_result", "_error")

    def __init__(self, fn: Callable[..., object], *args: object) -> None:
        self._fn, self._args = fn, args
        self._claim = threading.Lock()
        self._done = threading.Lock()
        self._done.acquire()
        self._result: Any = None
        self._error: BaseException | None = None

    def run(self) -> None:
        if not self._claim.acquire(blocking=False):
            return  # already run or running elsewhere
        try:
            self._result = self._fn(*self._args)
        except BaseException as exc:
            self._error = exc
        finally:
            self._args = ()
            self._done.release()

    def result(self) -> Any:
        self.run()
        with self._done:
            pass
        if self._error is not None:
            raise self._error
        return self._result


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


WORKERS = min(_cores(), 4)


class _Workers:
    """The shared worker threads: started on first use, stopped at exit (before the
    interpreter starts to freeze threads), and replaced in a forked child."""

    def __init__(self) -> None:
        self._queue: SimpleQueue[Job | None] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stopped = False

    def submit(self, job: Job) -> bool:
        """Queue ``job``; False once stopped (a queued job that no worker takes is still
        run by the stream that waits for it)."""
        if self._stopped:
            return False
        if len(self._threads) < WORKERS:
            with self._lock:
                while len(self._threads) < WORKERS and not self._stopped:
                    thread = threading.Thread(target=self._work, name="age-stream", daemon=True)
                    thread.start()
                    self._threads.append(thread)
        self._queue.put(job)
        return True

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            job.run()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            for _ in self._threads:
                self._queue.put(None)
            for thread in self._threads:
                thread.join()
            self._threads = []


_workers = _Workers()


def _stop_workers() -> None:
    _workers.stop()


def _forked() -> None:
    global _workers
    _workers = _Workers()  # the parent's threads do not exist here


atexit.register(_stop_workers)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def run_inline(fn: Callable[..., object], *args: object) -> Job:
    job = Job(fn, *args)
    job.run()
    return job


def run_pooled(fn: Callable[..., object], *args: object) -> Job:
    """Run ``fn(*args)`` on the worker threads; inline if there is a single core."""
    job = Job(fn, *args)
    if WORKERS < 2 or not _workers.submit(job):
        job.run()
    return job
