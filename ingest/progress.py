"""Progress of the running job: long steps call ``report(done, total)``; a worker records it in its job row.

Outside a worker nobody listens and ``report`` costs a lookup. The worker installs a listener
with ``reporting(callback)`` around each job (see ingest/worker.py), which writes
``job.progress_done`` / ``progress_total`` at most every ``interval_s`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

Listener = Callable[[int, "int | None"], None]
_listener: ContextVar[Listener | None] = ContextVar("healcat_progress", default=None)


def report(done: int, total: int | None = None) -> None:
    """Rows (or steps) done so far, out of ``total`` when known."""
    listener = _listener.get()
    if listener is not None:
        listener(done, total)


@contextmanager
def reporting(callback: Listener, *, interval_s: float = 1.0) -> Iterator[None]:
    """Send ``report`` calls made inside the block to ``callback``, at most every ``interval_s`` seconds
    (the last one is always sent, when the block ends)."""
    last_sent = [float("-inf")]
    pending: list[tuple[int, int | None]] = []

    def throttled(done: int, total: int | None) -> None:
        pending[:] = [(done, total)]
        now = time.monotonic()
        if now - last_sent[0] >= interval_s:
            last_sent[0] = now
            callback(*pending.pop())

    token = _listener.set(throttled)
    try:
        yield
    finally:
        _listener.reset(token)
        if pending:
            callback(*pending.pop())
