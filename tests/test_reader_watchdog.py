"""The watchdog: a reader that lifts its own timeouts (PostgreSQL lets any session) is still cut off."""

from __future__ import annotations

import threading

import psycopg
import pytest
import sqlalchemy as sa

from catalog import db
from catalog.service import make_server
from catalog.watchdog import Watchdog, may_signal, restore_role_defaults, role_defaults, sweep
from ingest import queue
from ingest.worker import Worker
from tests.conftest import wait_until

UNBOUNDED = ["SET statement_timeout = 0", "SET idle_in_transaction_session_timeout = 0", "SELECT pg_sleep(60)"]


@pytest.fixture(scope="module")
def reader(database_url) -> sa.Engine:
    engine = sa.create_engine(db.reader_url(database_url), poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


class Running:
    """``statements`` run one after another on a connection of ``engine`` in a thread; ``outcome``, once
    the thread ends, is the last one's result or the exception it raised."""

    def __init__(self, engine: sa.Engine, statements: list[str]) -> None:
        self.pid: int | None = None
        self.outcome: object = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(engine, statements), daemon=True)
        self._thread.start()
        assert self._started.wait(60), "the session connects"

    def _run(self, engine: sa.Engine, statements: list[str]) -> None:
        try:
            with engine.connect() as conn:
                self.pid = conn.scalar(sa.text("SELECT pg_backend_pid()"))
                self._started.set()
                for statement in statements:
                    self.outcome = conn.execute(sa.text(statement)).all() if statement.startswith("SELECT") else None
        except Exception as exc:
            self.outcome = exc
        finally:
            self._started.set()

    def result(self) -> object:
        self._thread.join(60)
        assert not self._thread.is_alive(), "the statement ended"
        return self.outcome


def _activity(engine: sa.Engine, pid: int) -> sa.Row | None:
    with engine.begin() as conn:  # a transaction each time: pg_stat_activity is a snapshot within one
        return conn.execute(sa.text(
            "SELECT state, query, extract(epoch FROM now() - query_start) AS running_s, "
            "extract(epoch FROM now() - state_change) AS in_state_s FROM pg_stat_activity WHERE pid = :pid"),
            {"pid": pid}).one_or_none()


def _sleeping_for(engine: sa.Engine, pid: int, seconds: float) -> bool:
    row = _activity(engine, pid)
    return row is not None and row.state == "active" and "pg_sleep" in row.query and row.running_s > seconds


def _cancelled(outcome: object) -> bool:
    return isinstance(outcome, sa.exc.OperationalError) and isinstance(outcome.orig, psycopg.errors.QueryCanceled)


def test_the_owner_may_signal_the_reader(engine, database_url, reader):
    with engine.connect() as conn:
        assert may_signal(conn)
        owner = conn.scalar(sa.text("SELECT current_user"))
    with reader.connect() as conn:  # the reader sees no other role's queries: it may not
        assert not may_signal(conn, owner) and not may_signal(conn, "no such role")


def test_a_reader_that_lifted_its_timeout_is_cancelled_and_no_other_role(engine, reader):
    unbounded = Running(reader, UNBOUNDED)
    other = Running(engine, UNBOUNDED)  # the owner's session: the same statement, not the watchdog's to end
    try:
        wait_until(lambda: _sleeping_for(engine, unbounded.pid, 2.0) and _sleeping_for(engine, other.pid, 2.0),
                  "both statements run past the limit")
        with engine.begin() as conn:
            overdue = sweep(conn, statement_s=1.0, idle_s=1.0, grace_s=60.0)
        assert [(o.pid, o.role, o.action, o.signalled) for o in overdue] == [
            (unbounded.pid, db.READER_ROLE, "cancel", True)]
        assert overdue[0].seconds > 1.0 and "pg_sleep(60)" in overdue[0].query
        assert _cancelled(unbounded.result())
        assert _sleeping_for(engine, other.pid, 2.0), "the owner's statement runs on"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_cancel_backend(:pid)"), {"pid": other.pid})
    assert _cancelled(other.result())  # by the test's own cancel, just now


def test_a_statement_still_running_after_the_grace_ends_with_its_session(engine, reader):
    unbounded = Running(reader, UNBOUNDED)
    wait_until(lambda: _sleeping_for(engine, unbounded.pid, 2.0), "the statement runs past limit and grace")
    with engine.begin() as conn:
        overdue = sweep(conn, statement_s=0.5, idle_s=1.0, grace_s=1.0)
    assert [(o.pid, o.action, o.signalled) for o in overdue] == [(unbounded.pid, "terminate", True)]
    outcome = unbounded.result()
    assert isinstance(outcome, sa.exc.OperationalError) and not _cancelled(outcome)
    wait_until(lambda: _activity(engine, unbounded.pid) is None, "the session is gone")


def test_a_reader_idle_in_a_transaction_past_the_limit_is_terminated(engine, reader, caplog):
    with reader.connect() as conn:
        conn.execute(sa.text("SET idle_in_transaction_session_timeout = 0"))
        pid = conn.scalar(sa.text("SELECT pg_backend_pid()"))  # and the transaction stays open
        wait_until(lambda: (row := _activity(engine, pid)) and row.state == "idle in transaction"
                  and row.in_state_s > 1.5, "the transaction sits idle past the limit")
        with engine.begin() as owner:
            assert sweep(owner, statement_s=1.0, idle_s=60.0) == [], "not yet past the idle limit"
            overdue = sweep(owner, statement_s=60.0, idle_s=1.0)
        assert [(o.pid, o.state, o.action, o.signalled) for o in overdue] == [
            (pid, "idle in transaction", "terminate", True)]
        assert f"terminated session {pid} of {db.READER_ROLE}" in caplog.text
        assert "idle in a transaction for" in caplog.text
        wait_until(lambda: _activity(engine, pid) is None, "the session is gone")
        with pytest.raises(sa.exc.OperationalError):
            conn.execute(sa.text("SELECT 1"))


def test_a_transaction_open_past_its_limit_is_terminated_however_busy(engine, reader, caplog):
    """A REPEATABLE READ transaction kept alive by a statement every few minutes was never idle long
    enough to be ended: it held back VACUUM and made CREATE INDEX CONCURRENTLY wait for ever."""
    with reader.connect() as conn:
        conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        pid = conn.scalar(sa.text("SELECT pg_backend_pid()"))
        conn.execute(sa.text("SELECT pg_sleep(1.5)"))  # busy all along: never idle past any limit
        with engine.begin() as owner:
            assert sweep(owner, statement_s=60.0, idle_s=60.0, transaction_s=60.0) == []
            overdue = sweep(owner, statement_s=60.0, idle_s=60.0, transaction_s=1.0)
        assert [(o.pid, o.exceeded, o.action, o.signalled) for o in overdue] == [(pid, "transaction", "terminate", True)]
        assert overdue[0].seconds > 1.5 and "in a transaction open for" in caplog.text
        wait_until(lambda: _activity(engine, pid) is None, "the session is gone")
        with pytest.raises(sa.exc.OperationalError):
            conn.execute(sa.text("SELECT 1"))


def test_defaults_a_reader_gave_its_own_role_are_put_back_and_its_sessions_ended(engine, database_url, reader,
                                                                                 caplog):
    """A role may ALTER its own defaults: index scans off for every later session of the shared role,
    healcat serve's included (whose sessions another reader may end, to make them reconnect)."""
    with engine.begin() as owner:
        assert role_defaults(owner) == {}, "db up leaves the defaults healcat gives (db.READER_ROLE_DEFAULTS)"
    try:
        with reader.begin() as conn:
            conn.execute(sa.text("ALTER ROLE healcat_reader SET enable_indexscan = off"))
        tainted = reader.connect()
        assert tainted.scalar(sa.text("SHOW enable_indexscan")) == "off"
        pid = tainted.scalar(sa.text("SELECT pg_backend_pid()"))
        tainted.commit()
        with engine.connect() as owner:
            assert role_defaults(owner) == {db.READER_ROLE: ("enable_indexscan=off", *db.READER_ROLE_DEFAULTS)}
            assert restore_role_defaults(owner) == ([db.READER_ROLE], {})
            assert role_defaults(owner) == {} and restore_role_defaults(owner) == ([], {})
        wait_until(lambda: _activity(engine, pid) is None, "the session that started with them is ended")
        tainted.invalidate()
        with reader.connect() as conn:
            assert conn.scalar(sa.text("SHOW enable_indexscan")) == "on"
        # what differs, not healcat's own defaults beside it
        assert "role healcat_reader held defaults other than healcat's (enable_indexscan=off): put back" in caplog.text
    finally:
        db.assert_reader_role(database_url)


def test_the_watchdog_thread_puts_a_role_s_defaults_back(engine, database_url, reader):
    def held() -> dict:
        with engine.connect() as conn:
            return role_defaults(conn)

    try:
        with reader.begin() as conn:
            conn.execute(sa.text("ALTER ROLE healcat_reader SET enable_seqscan = off"))
        assert held() == {db.READER_ROLE: ("enable_seqscan=off", *db.READER_ROLE_DEFAULTS)}
        with Watchdog(engine, interval_s=0.1):
            wait_until(lambda: held() == {}, "the watchdog puts the defaults back")
    finally:
        db.assert_reader_role(database_url)


def test_workers_run_the_watchdog(engine, reader):
    """A real Worker.run against the session's database: it must claim nothing, as a job another test left
    queued (a long infer job) would outlast the join below. Such a job is queued here, and the queue emptied
    (as the scratch_release fixture does) before the worker starts."""
    with engine.begin() as conn:
        queue.enqueue(conn, "ingest", {"mapping": "/nonexistent/left-by-another-test.toml"})
        conn.execute(sa.text("DELETE FROM healcat.job"))
    worker = Worker(engine, name="test-watchdog")
    worker.watchdog = Watchdog(engine, statement_s=1.0, interval_s=0.2)
    thread = threading.Thread(target=worker.run, kwargs={"poll_s": 0.1})
    thread.start()
    try:
        assert _cancelled(Running(reader, UNBOUNDED).result())
    finally:
        worker.stopping.set()
        thread.join(60)
    assert not thread.is_alive() and worker.done == 0
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM healcat.job WHERE worker = 'test-watchdog'")) == 0


def test_the_service_runs_the_watchdog(engine, reader):
    server = make_server(reader, port=0, threads=1, watchdog=Watchdog(engine, statement_s=1.0, interval_s=0.2))
    try:
        assert _cancelled(Running(reader, UNBOUNDED).result())
    finally:
        server.server_close()
    unbounded = Running(reader, UNBOUNDED)  # and the closed server's watchdog has stopped
    try:
        wait_until(lambda: _sleeping_for(engine, unbounded.pid, 2.0), "the statement runs on")
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_cancel_backend(:pid)"), {"pid": unbounded.pid})
        unbounded.result()


def test_a_watchdog_whose_role_may_not_signal_says_so_and_stops(engine, reader, caplog):
    with engine.connect() as conn:
        owner = conn.scalar(sa.text("SELECT current_user"))
    watchdog = Watchdog(reader, role=owner, interval_s=0.1).start()  # the reader watching the owner
    try:
        wait_until(lambda: not watchdog._thread.is_alive(), "the watchdog stops")
    finally:
        watchdog.stop()
    assert f"the role {db.READER_ROLE} may not see and signal the sessions of {owner}" in caplog.text
