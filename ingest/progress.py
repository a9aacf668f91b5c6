"""Progress of the running job: long steps call ``report(done, total)``; a worker records it in its job row.

Outside a worker nobody listens and ``report`` costs a lookup. The worker installs a listener
with ``reporting(callback)`` around each job (see ingest/worker.py), which writes
``job.progress_done`` / ``progress_total`` at most every ``interval_s`` seconds.

A file read chunk by chunk shows its progress with :class:`RowsRead`: a bar with percent and ETA
on a terminal, a log line per chunk otherwise, and ``report`` calls either way.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingest.readers import RowCount

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


class RowsRead:
    """Rows of one file done so far out of its row count (``None``: unknown), or out of ``max_rows``
    where only that many are read. An estimated count (text files) is shown as ``~N`` and grows to
    the rows done if they pass it."""

    def __init__(self, label: str, count: RowCount | None, log: logging.Logger, *,
                 max_rows: int | None = None, bar: bool | None = None):
        self.label, self.log, self.done = label, log, 0
        self.total, self.exact = (count.rows, count.exact) if count is not None else (None, True)
        if max_rows is not None and self.total is not None and max_rows < self.total:
            self.total, self.exact = max_rows, True
        self.bar = None
        if sys.stderr.isatty() if bar is None else bar:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, unit=" rows", desc=label, leave=False)

    def __enter__(self) -> RowsRead:
        return self

    def __exit__(self, exc_type, *_) -> None:
        if exc_type is None and not self.exact and self.total != self.done:  # the estimate gives way to the count
            self.total = self.done
            report(self.done, self.total)
        if self.bar is not None:
            self.bar.close()

    def step(self, first_row: int, n_rows: int, note: str = "") -> None:
        """Rows ``first_row`` .. ``first_row + n_rows - 1`` of the file are done."""
        self.done += n_rows
        if self.total is not None and self.done > self.total:
            self.total = self.done
            if self.bar is not None:
                self.bar.total = self.total
        report(self.done, self.total)
        if self.bar is not None:
            self.bar.update(n_rows)
            return
        of = "" if self.total is None else f" of {'' if self.exact else '~'}{self.total:,d} ({self.done / self.total:.0%})"
        self.log.info("%s: rows %s-%s%s read%s", self.label, f"{first_row:,d}", f"{first_row + n_rows - 1:,d}", of, note)
