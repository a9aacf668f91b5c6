"""healcat's exceptions: one root, each message says what was wrong and with which value."""

import psycopg


class HealcatError(Exception):
    """Root of every error healcat raises on purpose."""


class ConfigurationError(HealcatError):
    """The environment (database URL, home folder) is not usable."""


class QueryError(HealcatError, ValueError):
    """A search was asked with arguments that have no answer (NaN, out of range, unknown id)."""


def query_error(exc: BaseException, what: str) -> QueryError | None:
    """The QueryError a database error (psycopg's, or SQLAlchemy's wrapping it) stands for, else None:
    SQLSTATE 22023 is an argument check of healcat's SQL functions (its message says which), 57014 a
    statement cancelled: by the server's statement_timeout (the read-only role has one), or by another
    session (healcat's watchdog, past the role's limit; an administrator), which PostgreSQL reports as
    a "user request"."""
    orig = getattr(exc, "orig", exc)
    state = getattr(orig, "sqlstate", None)
    if state == "22023":  # invalid_parameter_value
        return QueryError(str(orig).splitlines()[0])
    if state == "57014":  # query_canceled
        by = ("by another session (healcat's watchdog cancels a read-only statement that runs past the role's "
              "limit; or an administrator)" if "user request" in str(orig)
              else "by the server's statement_timeout")
        return QueryError(f"{what}: cancelled {by}; narrow the search (a smaller region or radius, one release, "
                          "fewer rows) or use a role with a longer timeout")
    return None


class IngestError(HealcatError):
    """A release cannot be ingested; the message names the file and what is wrong. The same input
    fails the same way every time, so a job that raises one is not retried (but see
    :class:`MissingInputError`)."""


class MissingInputError(IngestError):
    """A release's input file is not there, or could not be read (an I/O error): a job retries it, as
    the file may still be arriving or the disk come back."""


class ContentChanged(IngestError):
    """A release's files are not what was hashed (by the scheduler's scan, or before the load): still
    being written, or replaced. Nothing is loaded; the scheduler's next scan queues what they hold now,
    so its job ends without loading rather than failing (nothing for an operator to clear)."""


class MappingError(IngestError):
    """A survey mapping file is malformed or refers to columns the input does not have."""


def first_line(exc: BaseException) -> str:
    """The first line of an error's message; for a database error psycopg's own (SQLAlchemy's
    wrapping adds the statement and its parameters)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class SessionLost(Exception):
    """Work stopped because the database session it depended on is gone: a worker's job once its session,
    and the job's lock with it, went (ingest.worker.JobLost). Not a HealcatError: nothing was wrong with
    the work, and it is to run again (:func:`lost_connection` recognises it)."""


def lost_connection(exc: BaseException) -> bool:
    """Whether an error means the server could not be reached or the session was lost (a psycopg error,
    or SQLAlchemy's wrapping one: with no SQLSTATE, the connection failed or broke; 08: connection
    exception; 28: login refused; 3D: no such database; 57P01-03: the server shut down or is starting;
    57P05 and 25P03: the server ended a session idle longer than its ``idle_session_timeout`` or
    ``idle_in_transaction_session_timeout``), rather than a statement failing (a timeout, a deadlock, a
    full disk) or any other exception (a bug, bad input); or :class:`SessionLost`."""
    if isinstance(exc, SessionLost):
        return True
    orig = getattr(exc, "orig", exc)
    if not isinstance(orig, psycopg.Error):
        return False
    state = orig.sqlstate
    if state is None:  # raised by psycopg itself: a broken connection, or a misuse (a bug)
        return isinstance(orig, (psycopg.OperationalError, psycopg.InterfaceError))
    return state[:2] in ("08", "28", "3D") or state in ("57P01", "57P02", "57P03", "57P05", "25P03")
