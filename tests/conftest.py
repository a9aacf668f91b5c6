"""The test database: one embedded PostgreSQL per session, migrated once, loaded once.

Every test gets real PostgreSQL with pgvector. Read-only tests share the
session's catalog (SDSS DR14 sample, Gaia DR3 bright stars, the photo-z model
and its outputs); tests that write use ``conn`` (a transaction rolled back at
the end) or clean up what they committed.
"""

from __future__ import annotations

import csv
import os
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from catalog import db
from ingest.mapping import data_dir

SDSS = "sdss_dr14_skyserver_10k"
SDSS_RELEASE = "sdss/dr14-skyserver-10k"
GAIA = "gaia_dr3_bright"
GAIA_RELEASE = "gaia/dr3-bright-g10"


@pytest.fixture(scope="session")
def healcat_home(tmp_path_factory) -> Path:
    """A fresh HEALCAT_HOME for the session: its own embedded server and model weights."""
    home = tmp_path_factory.mktemp("healcat_home")
    previous = {k: os.environ.get(k) for k in ("HEALCAT_HOME", "HEALCAT_DATABASE_URL")}
    os.environ["HEALCAT_HOME"] = str(home)
    os.environ.pop("HEALCAT_DATABASE_URL", None)
    assert data_dir().is_dir(), f"survey data not found at {data_dir()}; set HEALCAT_DATA_DIR"
    yield home
    db.EmbeddedServer(home).stop()
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def database_url(healcat_home) -> sa.URL:
    url = db.EmbeddedServer(healcat_home).start()
    db.migrate(url)
    return url


@pytest.fixture(scope="session")
def engine(database_url) -> sa.Engine:
    engine = db.engine()
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def catalog(engine) -> dict:
    """The loaded catalog: both releases ingested, the object classifier and photo-z trained and run
    (photo-z runs the classifier first; committed once)."""
    from ingest.inference import run_model
    from ingest.load import ingest_release
    from ingest.registry import train

    sdss = ingest_release(SDSS, engine)
    gaia = ingest_release(GAIA, engine)
    classifier = train(engine, "object_class", SDSS_RELEASE)
    model = train(engine, "photoz", SDSS_RELEASE)
    run = run_model(engine, model.name, SDSS_RELEASE)
    return {"sdss": sdss, "gaia": gaia, "model": model, "run": run, "classifier": classifier}


@pytest.fixture
def conn(engine):
    """A connection inside a transaction that is rolled back after the test."""
    with engine.connect() as connection:
        transaction = connection.begin()
        yield connection
        transaction.rollback()


def sdss_rows() -> list[dict[str, str]]:
    """The SDSS sample's rows as text, as csv.DictReader reads them."""
    from ingest.mapping import load_mapping

    with load_mapping(SDSS).input_path().open() as fh:
        return list(csv.DictReader(fh))


def spec_name(row: dict[str, str]) -> str:
    """The exact object id the SDSS mapping builds: PLATE-MJD-FIBER."""
    return f"{int(row['plate']):04d}-{int(row['mjd']):05d}-{int(row['fiberid']):04d}"


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def scratch_mapping(folder: Path, version: str, max_rejected_fraction: float | None = 1.0) -> Path:
    """The SDSS mapping under the survey 'scratch' and a new version, for tests that load files: small
    files of trap rows, so any fraction of them may be rejected (None: the default, 5%)."""
    from ingest.mapping import load_mapping

    text = load_mapping(SDSS).path.read_text().replace('name = "sdss"', 'name = "scratch"')
    text = text.replace('version = "dr14-skyserver-10k"', f'version = "{version}"')
    if max_rejected_fraction is not None:
        text = text.replace("[release]\n", f"[release]\nmax_rejected_fraction = {max_rejected_fraction}\n", 1)
    path = folder / f"scratch-{version}.toml"
    path.write_text(text)
    return path


@pytest.fixture
def scratch_release(engine):
    """Removes, after the test, every release it committed under the survey 'scratch', and all jobs."""
    yield
    scratch = "(SELECT release_id FROM healcat.release r JOIN healcat.survey s USING (survey_id) WHERE s.name = 'scratch')"
    with engine.begin() as conn:
        conn.execute(sa.text(f"DELETE FROM healcat.source WHERE release_id IN {scratch}"))
        conn.execute(sa.text(f"DELETE FROM healcat.inference_run WHERE release_id IN {scratch}"))
        conn.execute(sa.text(f"DELETE FROM healcat.release WHERE release_id IN {scratch}"))
        conn.execute(sa.text("DELETE FROM healcat.job"))


PER_OBJECT = ("eros2_lmc_ramp", "sdss_s82_rrlyrae", "ztf_bts_snia", "sdss_spectra_pyqsofit", "sdss_dr18_spectra_ppxf",
              "legac_dr3_spectra_ppxf")


@pytest.fixture(scope="session")
def per_object(engine) -> dict:
    """The per-object releases (light curves, spectra) ingested once, committed: mapping -> LoadResult."""
    from ingest.load import ingest_release

    return {name: ingest_release(name, engine) for name in PER_OBJECT}


def per_object_mapping(folder: Path, name: str, version: str, files: dict[str, list[Path]]) -> Path:
    """A shipped per-object mapping under the survey 'scratch', a new version, and other files
    (section -> absolute paths), for tests that load broken copies."""
    import tomllib

    from ingest.mapping import MAPPINGS_DIR

    text = (MAPPINGS_DIR / f"{name}.toml").read_text()
    raw = tomllib.loads(text)
    text = text.replace(f'name = "{raw["survey"]["name"]}"', 'name = "scratch"', 1)
    text = text.replace(f'version = "{raw["release"]["version"]}"', f'version = "{version}"', 1)
    lines, section = text.splitlines(), None
    for i, line in enumerate(lines):
        section = line.strip("[]") if line.startswith("[") else section
        if section in files and line.startswith("files ="):
            lines[i] = "files = [" + ", ".join(f'"{p}"' for p in files[section]) + "]"
    path = folder / f"scratch-{version}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def gaia_slice(folder: Path, n: int, version: str) -> tuple[Path, Path]:
    """The first n Gaia DR3 bright stars as a file of the same format, and a mapping for it under the
    survey 'scratch' and the given version."""
    import numpy as np

    from ingest.mapping import load_mapping

    gaia = load_mapping(GAIA)
    data = gaia.input_path().read_bytes()
    path = folder / f"gaia{n}.bin"
    path.write_bytes(data[:8] + np.array([n], "<u8").tobytes() + data[16:16 + 36 * n])
    mapping = folder / f"gaia-{version}.toml"
    mapping.write_text(gaia.path.read_text().replace('name = "gaia"', 'name = "scratch"')
                       .replace('"dr3-bright-g10"', f'"{version}"'))
    return mapping, path


def wait_until(condition, what: str, timeout_s: float = 60.0, poll_s: float = 0.05):
    """Call ``condition`` until it returns something true, and return that; fail saying ``what`` was
    awaited after ``timeout_s`` (a bound on liveness, never a check of speed)."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, f"waited {timeout_s} s for: {what}"
        time.sleep(poll_s)
    return value


def sessions(engine: sa.Engine, where: str, **params) -> list[int]:
    """The pids of this database's other sessions matching ``where`` (SQL over pg_stat_activity, with
    bound ``params``), in a transaction of their own: pg_stat_activity is a snapshot within one."""
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                    f"AND pid <> pg_backend_pid() AND ({where})"), params).scalars().all()


#: Sessions waiting on an advisory lock (healcat's writers serialise on them).
ADVISORY_WAIT = "wait_event_type = 'Lock' AND query LIKE '%pg_advisory%lock%'"


def kill_while_copying(engine, argv: list[str], app: str) -> None:
    """Run ``healcat ARGV`` in a process (PGAPPNAME=app) and SIGKILL it once its session is copying rows."""
    import signal
    import subprocess
    import sys

    env = {**os.environ, "HEALCAT_DATABASE_URL": db.libpq_url(engine.url), "PGAPPNAME": app}
    process = subprocess.Popen([sys.executable, "-m", "catalog.cli", *argv], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: sessions(engine, "application_name = :app AND query LIKE 'COPY %'", app=app),
                   f"healcat {' '.join(argv)} starts copying", timeout_s=120, poll_s=0.02)
        assert process.poll() is None, "the process must still be running when it is killed"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()


#: Every healcat function as a migration leaves it: signature, definition, comment, ACL, settings.
FUNCTIONS = """
    SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid), obj_description(p.oid, 'pg_proc'),
           p.proacl::text, p.proconfig::text
    FROM pg_proc p WHERE p.pronamespace = 'healcat'::regnamespace ORDER BY 1"""


@contextmanager
def scratch_database(engine, database_url: sa.URL, name: str):
    """A scratch database ``name`` on the test server (its URL and an engine on it), dropped afterwards."""
    url = database_url.set(database=name)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    other = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        yield url, other
    finally:
        other.dispose()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        # Roles are the server's: a downgrade there below 0032 reset the read-only role's defaults for
        # every database, and the next watchdog would end the readers' sessions putting them back.
        db.assert_reader_role(database_url)


def across_a_migration(engine, database_url: sa.URL, revision: str, down_to: str,
                       query: str = FUNCTIONS) -> tuple[list, list, list]:
    """``query``'s rows in a scratch database migrated to ``down_to``, then upgraded to ``revision``,
    then downgraded to ``down_to`` again: (before, upgraded, after). A downgrade that restores what the
    migration replaced gives after == before."""
    from alembic import command

    with scratch_database(engine, database_url, f"healcat_across_{revision}") as (url, scratch):
        states = []
        for step in (lambda: db.migrate(url, down_to), lambda: db.migrate(url, revision),
                     lambda: command.downgrade(db.alembic_config(url), down_to)):
            step()
            with scratch.connect() as conn:
                states.append(conn.execute(sa.text(query)).all())
        return tuple(states)
