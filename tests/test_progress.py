"""Progress of a file read in chunks: rows N of M in a log line per chunk (no terminal), and to a
worker's job row through ``report``."""

from __future__ import annotations

import logging

from ingest import progress
from ingest.readers import RowCount

log = logging.getLogger("test_progress")


def _steps(count, sizes, caplog, **kw):
    sent = []
    caplog.set_level(logging.INFO, logger="test_progress")
    with progress.reporting(lambda done, total: sent.append((done, total)), interval_s=0), \
            progress.RowsRead("f.fits", count, log, bar=False, **kw) as rows_read:
        first = 1
        for n in sizes:
            rows_read.step(first, n, ", 0 quarantined")
            first += n
    return [r.getMessage() for r in caplog.records], sent


def test_each_chunk_logs_its_rows_out_of_the_file_s_count(caplog):
    lines, sent = _steps(RowCount(2500), [1000, 1000, 500], caplog)
    assert lines == ["f.fits: rows 1-1,000 of 2,500 (40%) read, 0 quarantined",
                     "f.fits: rows 1,001-2,000 of 2,500 (80%) read, 0 quarantined",
                     "f.fits: rows 2,001-2,500 of 2,500 (100%) read, 0 quarantined"]
    assert sent == [(1000, 2500), (2000, 2500), (2500, 2500)]


def test_an_estimate_is_marked_and_grows_to_the_rows_read(caplog):
    lines, sent = _steps(RowCount(1800, exact=False), [1000, 1000], caplog)
    assert lines[0] == "f.fits: rows 1-1,000 of ~1,800 (56%) read, 0 quarantined"
    assert sent[-1] == (2000, 2000)


def test_a_slice_counts_out_of_max_rows_and_an_unknown_count_has_no_total(caplog):
    assert _steps(RowCount(10_000), [300, 200], caplog, max_rows=500)[1] == [(300, 500), (500, 500)]
    caplog.clear()
    lines, sent = _steps(None, [300], caplog)
    assert lines == ["f.fits: rows 1-300 read, 0 quarantined"] and sent == [(300, None)]


def test_an_estimate_gives_way_to_the_rows_read_at_the_end(caplog):
    """A text file's count is estimated from its bytes: a finished job read 500,000/501,344."""
    lines, sent = _steps(RowCount(2500, exact=False), [1000, 1000], caplog)
    assert sent[-2:] == [(2000, 2500), (2000, 2000)]
