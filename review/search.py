"""Full-text search over statements, unsealed in memory with the reviewer's unlocked
identity, per request; the caller records the search in the audit chain (without the
words searched for). There is no index at rest, and nothing unsealed is cached or
written anywhere."""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

import crypto
from store.blobs import open_sealed_document, read_sealed_many
from store.models import Statement


@dataclass
class SearchHit:
    testimony_id: int
    snippet: str


# Statements are unsealed on a pool of worker processes (one per core) once there are at
# least PARALLEL_FROM of them; fewer are quicker to unseal here. The pool is started on
# first use and kept: its workers hold no key between tasks, each task carries the
# reviewer's identity as a string and drops it when done, and nothing is written anywhere.
PARALLEL_FROM = 400
BATCH = 200  # statements per task
IN_FLIGHT = 3  # tasks queued per worker: bounds the ciphertext held in memory

_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()

# What unsealing one statement gave: skipped (no stanza for us), searched without a
# match, searched with a match (the snippet), or an error, raised only when the search
# reaches that statement in order, as if statements were unsealed one by one.
_UNREADABLE, _MISS, _HIT, _ERROR = range(4)


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _search_pool() -> ProcessPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            # forkserver: workers are forked from a clean server process, never from
            # this (threaded) one, and start with this module already imported.
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([__name__])
            _pool = ProcessPoolExecutor(_cores(), mp_context=context)
        return _pool


def _drop_pool() -> None:
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


def _match(
    identity: crypto.Identity, needle: str, sealed: bytes, first: int | None
) -> tuple[int, object]:
    try:
        text = str(open_sealed_document(sealed, identity, first).get("text", ""))
    except crypto.NoIdentityMatchError:
        return _UNREADABLE, None
    except Exception as exc:  # handed back: raised if the search gets this far
        return _ERROR, exc
    at = text.casefold().find(needle)
    if at < 0:
        return _MISS, None
    start = max(at - 80, 0)
    return _HIT, ("…" if start else "") + text[start : at + len(needle) + 80]


def _match_batch(
    identity_text: str, needle: str, batch: list[tuple[bytes, int | None]]
) -> list[tuple[int, object]]:
    """A pool task: unseal and search a batch of statements in memory."""
    identity = crypto.parse_identity(identity_text)
    return [_match(identity, needle, sealed, first) for sealed, first in batch]


Sealed = Generator[tuple[tuple[Any, ...], bytes, int | None]]


def _in_order(rows: Sealed) -> Sealed:
    """Statements newest testimony first and, within one, in the order received.

    The query reads them newest first throughout (an index scan, no sort of the
    ciphertext); each testimony's few statements are turned around here.
    """
    group: list[tuple[tuple[Any, ...], bytes, int | None]] = []
    for row in rows:
        if group and group[0][0][0] != row[0][0]:
            yield from reversed(group)
            group = []
        group.append(row)
    yield from reversed(group)


def _serial(
    rows: Sealed, identity: crypto.Identity, needle: str, skip: Callable[[int], bool]
) -> Generator[tuple[int, tuple[int, object]]]:
    for keys, sealed, first in rows:
        if not skip(keys[0]):
            yield keys[0], _match(identity, needle, sealed, first)


def _parallel(
    rows: Sealed, identity: crypto.Identity, needle: str, skip: Callable[[int], bool]
) -> Generator[tuple[int, tuple[int, object]]]:
    pool = _search_pool()
    text = str(identity)
    pending: deque[tuple[list[int], Future[list[tuple[int, object]]]]] = deque()
    most = IN_FLIGHT * _cores()

    def finished() -> Generator[tuple[int, tuple[int, object]]]:
        testimonies, future = pending.popleft()
        for testimony_id, outcome in zip(testimonies, future.result(), strict=True):
            if not skip(testimony_id):
                yield testimony_id, outcome

    try:
        testimonies: list[int] = []
        batch: list[tuple[bytes, int | None]] = []
        for keys, sealed, first in rows:
            testimonies.append(keys[0])
            batch.append((sealed, first))
            if len(batch) == BATCH:
                pending.append((testimonies, pool.submit(_match_batch, text, needle, batch)))
                testimonies, batch = [], []
                while len(pending) >= most:
                    yield from finished()
        if batch:
            pending.append((testimonies, pool.submit(_match_batch, text, needle, batch)))
        while pending:
            yield from finished()
    finally:
        for _testimonies, future in pending:
            future.cancel()


def search(
    session: Session, identity: crypto.Identity, query: str, limit: int = 200
) -> tuple[list[SearchHit], int]:
    """Case-insensitive search over statements, unsealed in memory.

    There is no index at rest: an index would be plaintext (or a fingerprint of it).
    Statements are read with one query and, when there are many, unsealed on all cores;
    the outcome is that of unsealing them one by one, newest testimony first: a hit per
    testimony (its first matching statement), statements the reviewer has no stanza in
    skipped. Returns the hits and how many statements were searched.
    """
    needle = query.casefold().strip()
    many = _cores() > 1 and (session.scalar(select(func.count(Statement.id))) or 0) >= PARALLEL_FROM
    try:
        return _search(session, identity, needle, limit, many)
    except BrokenProcessPool:
        _drop_pool()  # a worker died (killed, out of memory): search here instead
        return _search(session, identity, needle, limit, False)


def _search(
    session: Session,
    identity: crypto.Identity,
    needle: str,
    limit: int,
    parallel: bool,
) -> tuple[list[SearchHit], int]:
    hits: dict[int, SearchHit] = {}
    searched = 0
    rows = _in_order(
        read_sealed_many(
            session,
            Statement.blob_id,
            [Statement.testimony_id, Statement.id],
            order_by=[Statement.testimony_id.desc(), Statement.id.desc()],
            reader=identity,
        )
    )
    outcomes = (_parallel if parallel else _serial)(rows, identity, needle, hits.__contains__)
    try:
        for testimony_id, (kind, value) in outcomes:
            if kind == _UNREADABLE:
                continue
            if kind == _ERROR:
                assert isinstance(value, BaseException)
                raise value
            searched += 1
            if kind == _HIT:
                hits[testimony_id] = SearchHit(testimony_id, str(value))
                if len(hits) >= limit:
                    break
    finally:
        outcomes.close()  # cancels tasks not started yet
        rows.close()  # and closes the query
    return list(hits.values()), searched
