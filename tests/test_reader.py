"""The read-only role healcat_reader: it reads and searches everything, writes nothing, and is timed out."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa
from astropy.table import Table

from catalog import cone_search, crossmatch, db
from catalog.cli import main
from tests.conftest import SDSS_RELEASE, across_a_migration


@pytest.fixture(scope="module")
def reader(database_url, catalog) -> sa.Engine:
    engine = sa.create_engine(db.reader_url(database_url))
    yield engine
    engine.dispose()


@pytest.mark.parametrize("statement", [
    "INSERT INTO healcat.survey (name) VALUES ('reader-was-here')",
    "UPDATE healcat.source SET ra = ra WHERE source_id = (SELECT min(source_id) FROM healcat.source)",
    "DELETE FROM healcat.photometry WHERE band = 'sdss_r'",
    "TRUNCATE healcat.quarantine",
    "CREATE TABLE healcat.reader_table (x int)",
    "CREATE FUNCTION healcat.reader_function() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    # the locks healcat's writers serialise on: a reader holding a release's stalled its load for ever
    "SELECT pg_advisory_lock(hashtext('sdss/dr14-skyserver-10k'))",
    "SELECT pg_try_advisory_xact_lock(1752457826, 1)",
    # large objects outlive the session, uncapped by temp_file_limit: a reader could fill the disk
    "SELECT lo_from_bytea(0, convert_to(repeat('x', 1024), 'UTF8'))",
    "SELECT lo_create(0)",
    "SELECT lo_creat(-1)",
])
def test_writes_are_refused(reader, statement):
    with reader.connect() as conn, pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
        conn.execute(sa.text(statement))


def test_reads_every_table_and_view(reader, engine):
    with engine.connect() as conn:
        relations = conn.execute(sa.text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'healcat' AND c.relkind IN ('r', 'v', 'p') ORDER BY 1")).scalars().all()
    assert {"source", "photometry", "current_prediction", "embedding", "job"} <= set(relations)
    with reader.connect() as conn:
        assert conn.scalar(sa.text("SELECT current_user")) == db.READER_ROLE
        for name in relations:
            conn.execute(sa.text(f'SELECT * FROM healcat."{name}" LIMIT 1')).all()


def test_tables_made_later_are_readable_too(reader, engine):
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE healcat.later_table (x int); INSERT INTO healcat.later_table VALUES (7)"))
    try:
        with reader.connect() as conn:
            assert conn.scalar(sa.text("SELECT x FROM healcat.later_table")) == 7
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE healcat.later_table"))


def test_statements_are_timed_out(reader):
    with reader.connect() as conn:
        assert conn.scalar(sa.text("SHOW statement_timeout")) == "1min", "the role's own timeout"
        conn.execute(sa.text("SET statement_timeout = '200ms'"))
        with pytest.raises(sa.exc.OperationalError, match="canceling statement due to statement timeout"):
            conn.execute(sa.text("SELECT pg_sleep(3)"))


def test_searches_work_through_the_reader(reader, engine):
    mine = cone_search(160.9415, 0.7968, 600.0, engine=reader)
    assert len(mine) > 0 and list(mine["source_id"]) == list(cone_search(160.9415, 0.7968, 600.0)["source_id"])
    with reader.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM healcat.cone_search(160.9415, 0.7968, 600.0)")) == len(mine)
        assert conn.scalar(sa.text("SELECT count(*) FROM healcat.xmatch_releases('sdss/dr14-skyserver-10k', "
                                   "'gaia/dr3-bright-g10', 60.0, 'all')")) > 0
    sdss = mine[mine["release"] == SDSS_RELEASE]  # one release: other releases may repeat a position exactly
    table = Table({"ra": np.array(sdss["ra"]), "dec": np.array(sdss["dec"])})
    matched = crossmatch(table, 0.01, release=SDSS_RELEASE, engine=reader)  # the upload goes to a temporary table
    assert len(sdss) > 0 and list(matched["source_id"]) == list(sdss["source_id"])


def test_db_url_reader(database_url, capsys):
    assert main(["db", "url", "--reader"]) == 0
    url = capsys.readouterr().out.strip()
    assert url.startswith(f"postgresql://{db.READER_ROLE}") and "healcat" in url
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT current_user")) == db.READER_ROLE
    engine.dispose()


def _role_settings(engine) -> dict[str, list[str]]:
    """The reader's defaults in pg_db_role_setting: role-wide ('') and per database (its name)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT coalesce(d.datname, ''), s.setconfig FROM pg_db_role_setting AS s "
            "LEFT JOIN pg_database AS d ON d.oid = s.setdatabase WHERE s.setrole = to_regrole(:r)"),
            {"r": db.READER_ROLE}).all()
    return {database: sorted(config) for database, config in rows}


def test_a_reader_cannot_lift_the_limits_of_other_readers_and_db_up_puts_its_role_back(reader, engine, database_url):
    expected = {"": ["idle_in_transaction_session_timeout=5min", "statement_timeout=60s", "temp_file_limit=2GB"]}
    assert _role_settings(engine) == expected
    try:
        with reader.begin() as conn:  # PostgreSQL lets a role change its own defaults
            conn.execute(sa.text("ALTER ROLE healcat_reader SET statement_timeout = 0"))
            conn.execute(sa.text("ALTER ROLE healcat_reader SET idle_in_transaction_session_timeout = 0"))
            conn.execute(sa.text("ALTER ROLE healcat_reader IN DATABASE healcat SET work_mem = '64GB'"))
        for statement in ["ALTER ROLE healcat_reader SET temp_file_limit = -1",  # superuser-only
                          "ALTER ROLE healcat_reader RESET temp_file_limit",
                          "ALTER ROLE healcat_reader CONNECTION LIMIT -1"]:  # a role cannot change its own
            with reader.connect() as conn, pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                conn.execute(sa.text(statement))
        with reader.begin() as conn:  # RESET ALL by the reader keeps what only a superuser may set
            conn.execute(sa.text("ALTER ROLE healcat_reader RESET ALL"))
            conn.execute(sa.text("ALTER ROLE healcat_reader SET statement_timeout = 0"))
        assert _role_settings(engine) == {"": ["statement_timeout=0", "temp_file_limit=2GB"],
                                          "healcat": ["work_mem=64GB"]}
        # every session healcat opens as the reader sets its own limits: the role's defaults lose
        fresh = sa.create_engine(db.reader_url(database_url))
        with fresh.connect() as conn:
            shown = {name: conn.scalar(sa.text(f"SHOW {name}")) for name in
                     ("statement_timeout", "idle_in_transaction_session_timeout", "work_mem", "temp_file_limit")}
        fresh.dispose()
        assert shown == {"statement_timeout": "1min", "idle_in_transaction_session_timeout": "5min",
                         "work_mem": "32MB", "temp_file_limit": "2GB"}
        with engine.connect() as conn:
            assert 0 < conn.scalar(sa.text("SELECT rolconnlimit FROM pg_roles WHERE rolname = :r"),
                                   {"r": db.READER_ROLE}) <= 40
        assert main(["db", "up"]) == 0  # and healcat db up puts the role back
        assert _role_settings(engine) == expected
    finally:
        db.assert_reader_role(database_url)


def test_db_up_gives_the_reader_its_password_again(reader, engine, database_url, monkeypatch):
    def stored() -> str | None:
        with engine.connect() as conn:
            return conn.scalar(sa.text("SELECT rolpassword FROM pg_authid WHERE rolname = :r"), {"r": db.READER_ROLE})

    password = "it's 100%: a :pw"  # quotes, % and : reach the server as they are
    try:
        with reader.begin() as conn:
            conn.execute(sa.text("ALTER ROLE healcat_reader PASSWORD 'mine-now'"))
        mine = stored()
        monkeypatch.setenv("HEALCAT_READER_PASSWORD", password)
        db.migrate(database_url)
        assert stored() not in (None, mine)
        with engine.connect() as conn:  # the stored SCRAM verifier is of HEALCAT_READER_PASSWORD
            salt, iterations = conn.execute(sa.text(
                "SELECT split_part(split_part(rolpassword, '$', 2), ':', 2), "
                "split_part(split_part(rolpassword, '$', 2), ':', 1)::int FROM pg_authid WHERE rolname = :r"),
                {"r": db.READER_ROLE}).one()
        import base64
        import hashlib
        import hmac

        salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), iterations)
        stored_key = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
        assert base64.b64encode(stored_key).decode() in stored()
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER ROLE healcat_reader PASSWORD NULL"))


def test_0044_takes_large_objects_from_readers_and_its_downgrade_gives_them_back(engine, database_url, catalog):
    may = ("SELECT p.oid::regprocedure::text, has_function_privilege('healcat_reader', p.oid, 'EXECUTE') "
           "FROM pg_proc AS p WHERE p.proname IN ('lo_creat', 'lo_create', 'lo_from_bytea') ORDER BY 1")
    before, upgraded, after = across_a_migration(engine, database_url, "0044", "0043", may)
    assert len(before) == 3 and after == before and all(row[1] for row in before)
    assert not any(row[1] for row in upgraded)
