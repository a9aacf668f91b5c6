"""A throwaway PostgreSQL 15 + Q3C server for side-by-side benchmarks.

Q3C (Koposov & Bartunov 2006) is the usual PostgreSQL spatial index for astronomy catalogs. This
harness installs Debian's ``postgresql-15`` and ``postgresql-15-q3c`` when they are missing (as
root, with apt-get), initialises a cluster in ``q3c/`` under the benchmark catalog's home
(``sky10m.home()``: HEALCAT_HOME, default ``var/bench``; run as the ``postgres`` system user when we
are root: PostgreSQL refuses to run as root), listening only on a unix socket in that folder on port
``PORT`` (log in ``q3c/run/server.log``), loads rows the Q3C way (table ``bench.src(source_id, ra, dec)``, an index
on ``q3c_ang2ipix(ra, dec)``, CLUSTER on it, ANALYZE) and stops it when done::

    with Q3CServer(planner_settings) as q3c:
        q3c.load(source_id, ra_deg, dec_deg, tag="sky10m-v1")
        with psycopg.connect(q3c.url) as conn:
            conn.execute("SELECT count(*) FROM bench.src WHERE q3c_radial_query(ra, dec, %s, %s, %s)", ...)

A loaded table is kept (its ``tag`` is stored as the table's comment), so reruns start at once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql

from catalog.pgcopy import copy_columns
from benchmarks import sky10m

PG_VERSION = 15
PG_BIN = Path(f"/usr/lib/postgresql/{PG_VERSION}/bin")
Q3C_CONTROL = Path(f"/usr/share/postgresql/{PG_VERSION}/extension/q3c.control")
PACKAGES = (f"postgresql-{PG_VERSION}", f"postgresql-{PG_VERSION}-q3c")
PORT = 54415
DB_USER = "postgres"
DATABASE = "bench"


def install() -> None:
    """apt-get install PostgreSQL 15 and Q3C unless they are there already; without root, an error
    saying what to install (benchmarks needing Q3C call this first, before building anything)."""
    if (PG_BIN / "postgres").exists() and Q3C_CONTROL.exists():
        return
    if os.geteuid() != 0:
        raise RuntimeError(f"Q3C benchmark: install {' '.join(PACKAGES)} (needs root: apt-get install)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update", "-q"], check=True, env=env)
    subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-q", "--no-install-recommends",
                    *PACKAGES], check=True, env=env)


def _as_db_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", DB_USER, "--", *cmd] if os.geteuid() == 0 else cmd


class Q3CServer:
    """PostgreSQL 15 with Q3C in ``root`` (default: ``q3c`` in the benchmark catalog's home); a context
    manager that stops it."""

    def __init__(self, settings: dict[str, str] | None = None, root: Path | None = None):
        self.root = root or sky10m.home() / "q3c"
        self.pgdata = self.root / "pgdata"
        self.run_dir = self.root / "run"  # the socket and the server log, writable by the server
        self.settings = settings or {}

    @property
    def url(self) -> str:
        return f"postgresql://{DB_USER}@/{DATABASE}?host={self.run_dir}&port={PORT}"

    def _chown(self, *paths: Path) -> None:
        if os.geteuid() == 0:
            for p in paths:
                shutil.chown(p, DB_USER, DB_USER)

    def start(self) -> Q3CServer:
        install()
        self.root.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(exist_ok=True)
        self._chown(self.run_dir)
        if not (self.pgdata / "PG_VERSION").exists():
            self.pgdata.mkdir(mode=0o700, exist_ok=True)
            self._chown(self.pgdata)
            subprocess.run(_as_db_user([str(PG_BIN / "initdb"), "-D", str(self.pgdata), "-U", DB_USER,
                                        "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"]),
                           check=True, capture_output=True)
        options = [f"-p {PORT}", f"-k {self.run_dir}", "-c listen_addresses=''"]
        options += [f"-c {k}={v}" for k, v in self.settings.items()]
        subprocess.run(_as_db_user([str(PG_BIN / "pg_ctl"), "-D", str(self.pgdata), "-w", "-l",
                                    str(self.run_dir / "server.log"), "-o", " ".join(options), "start"]),
                       check=True, capture_output=True)
        with psycopg.connect(self.url.replace(f"/{DATABASE}?", "/postgres?"), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
                conn.execute(f"CREATE DATABASE {DATABASE}")
        return self

    def stop(self) -> None:
        if (self.pgdata / "postmaster.pid").exists():
            subprocess.run(_as_db_user([str(PG_BIN / "pg_ctl"), "-D", str(self.pgdata), "-w", "-m", "fast", "stop"]),
                           check=True, capture_output=True)

    def __enter__(self) -> Q3CServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def version(self) -> tuple[str, str]:
        """(PostgreSQL version, Q3C extension version)."""
        with psycopg.connect(self.url) as conn:
            pg = conn.execute("SHOW server_version").fetchone()[0]
            q3c = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'q3c'").fetchone()
        return pg, q3c[0] if q3c else "not installed"

    def load(self, source_id: np.ndarray, ra_deg: np.ndarray, dec_deg: np.ndarray, tag: str) -> None:
        """``bench.src`` with these rows, Q3C-indexed, clustered and analysed (kept if ``tag`` matches)."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            have = conn.execute("SELECT obj_description(to_regclass('bench.src'), 'pg_class')").fetchone()[0]
            if have == tag:
                return
            conn.execute("CREATE EXTENSION IF NOT EXISTS q3c")
            conn.execute("DROP SCHEMA IF EXISTS bench CASCADE")
            conn.execute("CREATE SCHEMA bench")
            conn.execute("CREATE TABLE bench.src (source_id bigint PRIMARY KEY, ra float8 NOT NULL, "
                         "dec float8 NOT NULL)")
            copy_columns(conn, "bench.src", ("source_id", "ra", "dec"),
                         (np.asarray(source_id, np.int64), np.asarray(ra_deg, np.float64),
                          np.asarray(dec_deg, np.float64)))
            conn.execute("SET maintenance_work_mem = '512MB'")
            conn.execute("CREATE INDEX src_q3c_idx ON bench.src (q3c_ang2ipix(ra, dec))")
            conn.execute("CLUSTER bench.src USING src_q3c_idx")
            conn.execute("ANALYZE bench.src")
            conn.execute(sql.SQL("COMMENT ON TABLE bench.src IS {}").format(sql.Literal(tag)))
