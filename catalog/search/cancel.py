"""Which database session each thread's search runs its statements on, so that another thread may
cancel them: ``healcat serve`` does when the client that asked has hung up (:mod:`catalog.service`).

A search names its psycopg connection for as long as its statements run (:func:`cancellable`);
:func:`cancel` sends PostgreSQL a cancel request for the session of a thread's search, under a lock
that the search's end waits for, so it never reaches a session the search has let go (a pooled one
another thread's search may have taken). The server cancels only a running statement: a request
that comes between two of a search's statements, or after its last, is ignored.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

_lock = threading.Lock()
_sessions: dict[int, psycopg.Connection] = {}  # thread ident -> the session its search runs on


@contextmanager
def cancellable(conn: psycopg.Connection) -> Iterator[None]:
    """While inside, :func:`cancel` of this thread cancels ``conn``'s running statement (a search
    inside another: the inner one's, then the outer one's again)."""
    ident = threading.get_ident()
    with _lock:
        outer, _sessions[ident] = _sessions.get(ident), conn
    try:
        yield
    finally:
        with _lock:
            if outer is None:
                del _sessions[ident]
            else:
                _sessions[ident] = outer


def cancel(thread_ident: int, timeout_s: float = 5.0) -> bool:
    """Cancel the statement that the search of thread ``thread_ident`` runs; False if it runs none."""
    with _lock:
        conn = _sessions.get(thread_ident)
        if conn is None:
            return False
        conn.cancel_safe(timeout=timeout_s)
        return True
