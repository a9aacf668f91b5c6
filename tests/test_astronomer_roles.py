"""Astronomers' own read-only roles (`healcat db reader add`): the shared reader's privileges and
limits, and sessions of one astronomer cannot end another's (as sessions of one shared role can)."""

from __future__ import annotations

import signal as signals
import threading
import urllib.request

import pytest
import sqlalchemy as sa

from catalog import db
from catalog.cli import main
from catalog.watchdog import may_signal, sweep
from tests.conftest import across_a_migration, wait_until
from tests.test_reader_watchdog import UNBOUNDED, Running, _cancelled, _sleeping_for

ALICE, BOB = "astro_alice", "astro_bob"


@pytest.fixture(scope="module")
def astronomers(database_url, catalog):
    for name in (ALICE, BOB):
        db.add_astronomer(database_url, name)
    engines = {name: sa.create_engine(db.reader_url(database_url, name), poolclass=sa.pool.NullPool)
               for name in (ALICE, BOB)}
    yield engines
    for name, engine in engines.items():
        engine.dispose()
        db.drop_astronomer(database_url, name)


def _settings(engine: sa.Engine, role: str) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.scalar(sa.text("SELECT setconfig FROM pg_db_role_setting WHERE setdatabase = 0 AND "
                                          "setrole = to_regrole(:r)"), {"r": role}) or [])


def test_an_astronomer_reads_and_searches_writes_nothing_and_has_the_limits(astronomers, engine):
    alice = astronomers[ALICE]
    with alice.connect() as conn:
        assert conn.scalar(sa.text("SELECT current_user")) == ALICE
        assert conn.scalar(sa.text("SHOW statement_timeout")) == "1min"
        assert conn.scalar(sa.text("SELECT count(*) FROM healcat.cone_search(160.9415, 0.7968, 600.0)")) > 0
    for statement in ["INSERT INTO healcat.survey (name) VALUES ('alice-was-here')",
                      "CREATE TABLE healcat.alice_table (x int)",
                      "SELECT pg_advisory_lock(1)",
                      "SET ROLE healcat_reader",  # inherits its privileges, may not become it
                      "SELECT healcat.assert_reader_role()"]:
        with alice.connect() as conn, pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            conn.execute(sa.text(statement))
    assert _settings(engine, ALICE) == ["idle_in_transaction_session_timeout=5min", "statement_timeout=60s",
                                        "temp_file_limit=2GB"]
    with engine.connect() as conn:
        assert 0 < conn.scalar(sa.text("SELECT rolconnlimit FROM pg_roles WHERE rolname = :r"), {"r": ALICE}) <= 10


def test_one_astronomer_cannot_end_another_s_session(astronomers, engine):
    bob = Running(astronomers[BOB], ["SELECT pg_sleep(60)"])
    try:
        wait_until(lambda: _sleeping_for(engine, bob.pid, 0.5), "bob's statement runs")
        for signal in ("pg_cancel_backend", "pg_terminate_backend"):
            with astronomers[ALICE].connect() as conn, pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                conn.execute(sa.text(f"SELECT {signal}(:pid)"), {"pid": bob.pid})
        assert _sleeping_for(engine, bob.pid, 0.5), "bob's statement runs on"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_cancel_backend(:pid)"), {"pid": bob.pid})
    assert _cancelled(bob.result())


def test_db_up_puts_back_what_an_astronomer_changed_of_their_role(astronomers, engine, database_url):
    with astronomers[ALICE].begin() as conn:
        conn.execute(sa.text(f"ALTER ROLE {ALICE} SET statement_timeout = 0"))
    assert "statement_timeout=0" in _settings(engine, ALICE)
    assert main(["db", "up"]) == 0
    assert "statement_timeout=60s" in _settings(engine, ALICE)


def test_the_watchdog_ends_an_astronomer_s_unbounded_statement(astronomers, engine):
    with engine.connect() as conn:
        assert may_signal(conn)
    unbounded = Running(astronomers[ALICE], UNBOUNDED)
    try:
        wait_until(lambda: _sleeping_for(engine, unbounded.pid, 2.0), "alice's statement runs past the limit")
        with engine.begin() as conn:
            overdue = sweep(conn, statement_s=1.0, idle_s=1.0, grace_s=60.0)
        assert [(o.pid, o.role, o.action, o.signalled) for o in overdue] == [(unbounded.pid, ALICE, "cancel", True)]
        assert _cancelled(unbounded.result())
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_cancel_backend(:pid)"), {"pid": unbounded.pid})



def test_only_the_membership_db_reader_add_grants_makes_an_astronomer(astronomers, engine, database_url):
    """On PostgreSQL 16+ the CREATEROLE owner that creates healcat_astronomers holds ADMIN OPTION on it
    (and, with createrole_self_grant set, is a member): it was taken for an astronomer, given the
    reader's 60 s statement timeout by every `db up` and swept by the watchdog. Nor is a superuser
    made a member one."""
    others = {"astro_admin": "LOGIN", "astro_super": "LOGIN SUPERUSER"}
    with engine.begin() as conn:
        for name, attributes in others.items():
            conn.exec_driver_sql(f"CREATE ROLE {name} {attributes}")
        conn.exec_driver_sql("GRANT healcat_astronomers TO astro_admin WITH ADMIN OPTION, INHERIT TRUE, SET FALSE")
        conn.exec_driver_sql("GRANT healcat_astronomers TO astro_super WITH INHERIT TRUE, SET FALSE")
    admin = sa.create_engine(database_url.set(username="astro_admin", password=None), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            assert [db.is_astronomer(conn, n) for n in (*others, ALICE)] == [False, False, True]
            listed = {row.name for row in db.astronomers(conn)}
        assert {ALICE, BOB} <= listed and not listed & set(others)
        db.assert_reader_role(database_url)
        assert [_settings(engine, name) for name in others] == [[], []], "no reader's limits for them"
        long_one = Running(admin, UNBOUNDED)
        try:
            wait_until(lambda: _sleeping_for(engine, long_one.pid, 1.5), "the owner-like role's statement runs")
            with engine.begin() as conn:
                overdue = sweep(conn, statement_s=1.0, idle_s=1.0, grace_s=60.0)
            assert long_one.pid not in [o.pid for o in overdue], "the watchdog leaves it alone"
        finally:
            with engine.begin() as conn:
                conn.execute(sa.text("SELECT pg_cancel_backend(:pid)"), {"pid": long_one.pid})
            long_one.result()
    finally:
        admin.dispose()
        with engine.begin() as conn:
            for name in others:
                conn.exec_driver_sql(f"DROP ROLE {name}")


@pytest.mark.parametrize("revision, down_to", [("0043", "0042"), ("0048", "0047")])
def test_a_downgrade_restores_the_reader_function(engine, database_url, catalog, revision, down_to):
    before, upgraded, after = across_a_migration(engine, database_url, revision, down_to)
    assert after == before and [a[0] for a, b in zip(before, upgraded) if a != b] == ["healcat.assert_reader_role()"]


def test_reader_commands(astronomers, engine, capsys):
    assert main(["db", "reader", "list"]) == 0
    listed = capsys.readouterr().out
    assert ALICE in listed and BOB in listed
    assert main(["db", "url", "--reader", ALICE]) == 0
    assert f"postgresql://{ALICE}@" in capsys.readouterr().out
    for argv, message in [(["db", "reader", "add", "postgres"], "exists and is not an astronomer's"),
                          (["db", "reader", "add", db.READER_ROLE], "cannot be an astronomer's role name"),
                          (["db", "reader", "drop", "postgres"], "is not an astronomer's role"),
                          (["db", "reader", "drop", "nobody"], "'nobody' is no role (dropped already?)"),
                          (["db", "reader", "add"], "list, add NAME or drop NAME"),
                          (["db", "reader", "add", "carol", "--password-env", "HEALCAT_NO_SUCH_VARIABLE"],
                           "that variable is not set"),
                          (["db", "url", "extra"], "names and --password-env are for")]:
        assert main(argv) == 1, argv
        assert message in capsys.readouterr().err
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT to_regrole('carol')")) is None
    # the hint quotes a name the shell would split or run ('$(...)'): it is printed to be pasted
    name = "dr $(x) o'brien"
    try:
        assert main(["db", "reader", "add", name]) == 0
        hint = capsys.readouterr().out
        assert "psql \"$(healcat db url --reader 'dr $(x) o'\"'\"'brien')\"" in hint
        assert main(["db", "url", "--reader", name]) == 0
    finally:
        assert main(["db", "reader", "drop", name]) == 0


def test_dropping_an_astronomer_ends_their_sessions(database_url, engine, catalog):
    db.add_astronomer(database_url, "astro_carol")
    carol = sa.create_engine(db.reader_url(database_url, "astro_carol"), poolclass=sa.pool.NullPool)
    session = Running(carol, ["SELECT pg_sleep(60)"])
    wait_until(lambda: _sleeping_for(engine, session.pid, 0.2), "carol's statement runs")
    assert db.drop_astronomer(database_url, "astro_carol") == 1
    assert isinstance(session.result(), sa.exc.OperationalError)
    carol.dispose()
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT to_regrole('astro_carol')")) is None


def test_serve_runs_as_a_role_of_its_own_that_astronomers_cannot_signal(astronomers, engine, monkeypatch, capsys):
    """`healcat serve --reader ROLE`: the service's sessions are the role's, and another
    astronomer's session may not cancel or end them (it may the shared role's); a role healcat did
    not make read-only (the owner's) is refused before anything is served."""
    with engine.connect() as conn:
        owner = conn.scalar(sa.text("SELECT current_user"))
    for role, why in ((owner, "not a read-only role of healcat's"), ("astro_nobody", "no such role")):
        assert main(["serve", "--port", "0", "--reader", role]) == 1
        assert f"serve: --reader {role}: {why}" in capsys.readouterr().err
    seen = {}

    def signal_its_sessions():  # the service's pooled session, idle after the answer
        with engine.connect() as conn:
            seen["sessions"] = conn.execute(sa.text(
                "SELECT pid FROM pg_stat_activity WHERE usename = :r AND backend_type = 'client backend'"),
                {"r": BOB}).scalars().all()
        for pid in seen["sessions"]:
            for signal in ("pg_cancel_backend", "pg_terminate_backend"):
                with astronomers[ALICE].connect() as conn:
                    try:
                        conn.execute(sa.text(f"SELECT {signal}(:pid)"), {"pid": pid})
                    except sa.exc.ProgrammingError as e:
                        seen.setdefault("refused", []).append(str(e.orig).splitlines()[0])

    seen["status"], seen["body"], _ = _serve_once(monkeypatch, ["--reader", BOB], signal_its_sessions)
    assert seen["status"] == 200 and b"<TR>" in seen["body"]
    assert seen["sessions"], "the service's session is the role's"
    assert len(seen.get("refused", [])) == 2 * len(seen["sessions"])
    assert all("permission denied" in message for message in seen["refused"])


def _serve_once(monkeypatch, argv: list[str], then=lambda: None) -> tuple[int, bytes, dict]:
    """`healcat serve --port 0 ARGV` for one cone search: a client asks the real server once, calls
    ``then()``, and stops it. Returns the answer's status and body, and make_server's keywords."""
    from catalog import service

    seen, make_server = {}, service.make_server

    def answer_then_stop(*args, **kwargs):
        server = make_server(*args, **kwargs)
        seen["kwargs"] = kwargs

        def client():
            try:
                url = "http://{}:{}/scs?RA=160.9415&DEC=0.7968&SR=0.2".format(*server.server_address[:2])
                with urllib.request.urlopen(url, timeout=60) as response:
                    seen["status"], seen["body"] = response.status, response.read()
                then()
            finally:
                server.shutdown()

        threading.Thread(target=client).start()
        return server

    monkeypatch.setattr(service, "make_server", answer_then_stop)
    sigterm = signals.getsignal(signals.SIGTERM)
    try:
        assert main(["serve", "--port", "0", *argv]) == 0
    finally:
        signals.signal(signals.SIGTERM, sigterm)
    return seen["status"], seen["body"], seen["kwargs"]


def test_serve_needs_only_the_read_only_role_s_url(engine, database_url, catalog, monkeypatch, capsys):
    """docker-compose's vo service, the one open to the network, held the owner's URL and password:
    serve's watchdog sweeps as the owner. `--no-watchdog` (the workers sweep) serves with
    HEALCAT_DATABASE_URL the read-only role's, no watchdog started, every session the reader's."""
    from catalog import watchdog

    monkeypatch.setenv("HEALCAT_DATABASE_URL", db.libpq_url(db.without_password(database_url)._replace(
        username=db.READER_ROLE)))
    monkeypatch.setattr(watchdog.Watchdog, "start", lambda self: pytest.fail("a watchdog started"))
    assert main(["serve", "--port", "0"]) == 1  # a watchdog as the reader would sweep nothing: said, not started
    assert "serve with --no-watchdog" in capsys.readouterr().err
    sessions = []
    with engine.connect() as conn:
        before = conn.scalar(sa.text("SELECT clock_timestamp()"))

    def its_sessions():  # those begun since (an earlier test's service's may linger)
        with engine.connect() as conn:
            sessions.extend(conn.execute(sa.text(
                "SELECT usename FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> "
                "pg_backend_pid() AND backend_start > :t"), {"t": before}).scalars())

    status, body, kwargs = _serve_once(monkeypatch, ["--no-watchdog"], its_sessions)
    assert status == 200 and body.count(b"<TR>") > 1
    assert isinstance(kwargs["watchdog"], watchdog.Elsewhere)
    assert sessions and set(sessions) == {db.READER_ROLE}


def test_the_service_s_transactions_are_read_only_whatever_its_role_may(database_url):
    """A backstop under the role's privileges: serve's sessions start read-only transactions."""
    service = sa.create_engine(db.reader_url(database_url, read_only=True), poolclass=sa.pool.NullPool)
    try:
        with service.connect() as conn:
            assert conn.scalar(sa.text("SHOW default_transaction_read_only")) == "on"
            assert conn.scalar(sa.text("SHOW statement_timeout")) == "1min"
    finally:
        service.dispose()
