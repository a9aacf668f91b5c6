"""Which database session each thread's search runs its statements on, so that another thread may
cancel them: ``healcat serve`` does when the client that asked has hung up (:mod:`catalog.service`).

A search names its psycopg connection for as long as its statements run (:func:`cancellable`);
:func:`cancel` sends PostgreSQL a cancel request for the session of a thread's search (psycopg's
``cancel_safe``, which it documents as callable from another thread), holding that search's own
lock, which the search's end waits for: a cancel never reaches a session the search has let go (a
pooled one another thread's search may have taken), and the other threads' searches never wait for
it. The server cancels only a running statement: a request that comes between two of a search's
statements, or after its last, is ignored.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg


@dataclass(eq=False)
class _Search:
    conn: psycopg.Connection
    running: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)


_lock = threading.Lock()  # over _searches alone: never held while a cancel request is on its way
_searches: dict[int, _Search] = {}  # thread ident -> the search it runs


@contextmanager
def cancellable(conn: psycopg.Connection) -> Iterator[None]:
    """While inside, :func:`cancel` of this thread cancels ``conn``'s running statement (a search
    inside another: the inner one's, then the outer one's again)."""
    ident, search = threading.get_ident(), _Search(conn)
    with _lock:
        outer, _searches[ident] = _searches.get(ident), search
    try:
        yield
    finally:
        with search.lock:  # a cancel on its way to this session arrives first
            search.running = False
        with _lock:
            if outer is None:
                del _searches[ident]
            else:
                _searches[ident] = outer


def cancel(thread_ident: int, timeout_s: float = 5.0) -> bool:
    """Cancel the statement that the search of thread ``thread_ident`` runs; False if it runs none."""
    with _lock:
        search = _searches.get(thread_ident)
    if search is None:
        return False
    with search.lock:
        if not search.running:
            return False
        search.conn.cancel_safe(timeout=timeout_s)
        return True
