"""The read-only role's limits, enforced from outside its sessions.

Every session healcat opens as ``healcat_reader`` sets a statement timeout and an idle-in-transaction
timeout (:data:`catalog.db.READER_SESSION`), but PostgreSQL lets any session ``SET statement_timeout
= 0`` (there is no forced setting), so a reader with psql could run a statement for ever or hold a
transaction open (which holds back VACUUM and makes ``CREATE INDEX CONCURRENTLY`` wait). The watchdog
sweeps ``pg_stat_activity`` now and then, as the owner, and ends what the role's sessions run past
its limits: a statement running longer than ``statement_s`` is cancelled (``pg_cancel_backend``, the
client sees SQLSTATE 57014 as from its own timeout); one still running ``grace_s`` later (a cancel
it did not heed) ends with its session (``pg_terminate_backend``), as does a transaction idle
longer than ``idle_s``. Each is logged: the session, its client, how long, what it ran.

It runs as a thread in every ``healcat worker`` and in ``healcat serve`` (:class:`Watchdog`), each
sweeping every :data:`INTERVAL_S` (one query; several sweepers at once are harmless). The sweeping
role must see the reader's queries and signal its sessions: a superuser (the embedded server's and
docker-compose's owner are), a member of both ``pg_signal_backend`` and ``pg_read_all_stats``, or,
while no astronomer has a role of their own (``healcat db reader add``), a member of
``healcat_reader``; without that the watchdog says so once and stops. The astronomers' roles
(members of ``healcat_astronomers``) are swept as the shared role is.
"""

from __future__ import annotations

import logging
import threading
from typing import NamedTuple

import sqlalchemy as sa

from catalog import db
from catalog.errors import first_line

log = logging.getLogger(__name__)

#: Seconds between two sweeps.
INTERVAL_S = 5.0
#: Seconds a cancelled statement may go on running before its session is terminated.
GRACE_S = 10.0

_RUNNING = "a.state IN ('active', 'fastpath function call')"
_IDLE_IN_TRANSACTION = "a.state LIKE 'idle in transaction%'"
# One statement: the client sessions of the role and of the astronomers' roles past a limit, each
# signalled as its row is read (only those the sweeper may signal: see may_signal).
_SWEEP = sa.text(f"""
    SELECT a.pid, a.usename AS role, a.application_name, host(a.client_addr) AS client, a.state, t.seconds,
           o.action, left(a.query, 300) AS query,
           CASE o.action WHEN 'cancel' THEN pg_cancel_backend(a.pid) ELSE pg_terminate_backend(a.pid) END AS signalled
    FROM pg_stat_activity AS a
    CROSS JOIN LATERAL (SELECT extract(epoch FROM now() - CASE WHEN {_IDLE_IN_TRANSACTION} THEN a.state_change
                                                               ELSE a.query_start END)::float8 AS seconds) AS t
    CROSS JOIN LATERAL (SELECT CASE WHEN {_RUNNING} AND t.seconds > :statement_s + :grace_s THEN 'terminate'
                                    WHEN {_RUNNING} AND t.seconds > :statement_s THEN 'cancel'
                                    WHEN {_IDLE_IN_TRANSACTION} AND t.seconds > :idle_s THEN 'terminate'
                               END AS action) AS o
    WHERE (a.usename = :role OR a.usesysid IN (SELECT m.member FROM pg_auth_members AS m JOIN pg_roles AS r
                                               ON r.oid = m.member WHERE {db.ASTRONOMER_MEMBERSHIP}))
      AND a.backend_type = 'client backend' AND a.pid <> pg_backend_pid() AND o.action IS NOT NULL
      AND (pg_has_role('pg_signal_backend', 'USAGE') OR pg_has_role(a.usesysid, 'USAGE'))""")
# Whether the connected role sees the queries of the role's and the astronomers' sessions and may
# signal them: a member of the role may signal its sessions, not those of the astronomers' own roles.
_MAY_SIGNAL = sa.text(f"""
    SELECT pg_has_role('pg_signal_backend', 'USAGE') AND pg_has_role('pg_read_all_stats', 'USAGE')
           OR coalesce((SELECT pg_has_role(oid, 'USAGE') FROM pg_roles WHERE rolname = :role), false)
              AND NOT EXISTS (SELECT 1 FROM pg_auth_members AS m JOIN pg_roles AS r ON r.oid = m.member
                              WHERE {db.ASTRONOMER_MEMBERSHIP})""")


class Overdue(NamedTuple):
    """A session the sweep signalled: ``action`` is ``cancel`` or ``terminate``; ``seconds``, how long
    its statement had run (or its transaction sat idle); ``signalled``, whether the server found it."""
    pid: int
    role: str
    application_name: str | None
    client: str | None
    state: str
    seconds: float
    action: str
    query: str | None
    signalled: bool


def sweep(conn: sa.Connection, role: str = db.READER_ROLE, statement_s: float = db.READER_STATEMENT_S,
          idle_s: float = db.READER_IDLE_IN_TRANSACTION_S, grace_s: float = GRACE_S) -> list[Overdue]:
    """Cancel the statements of the sessions of ``role`` and of the astronomers' own roles (members of
    :data:`catalog.db.ASTRONOMERS_ROLE`) running longer than ``statement_s``, terminate those still
    running ``grace_s`` later and those idle in a transaction longer than ``idle_s``; log and return
    them. ``conn``'s role must see and signal them (:func:`may_signal`); sessions it may not signal
    are left alone."""
    overdue = [Overdue(*row) for row in conn.execute(_SWEEP, {"role": role, "astronomers": db.ASTRONOMERS_ROLE,
                                                              "statement_s": statement_s, "idle_s": idle_s,
                                                              "grace_s": grace_s})]
    for o in overdue:
        idle = o.state.startswith("idle")
        log.warning("watchdog: %s session %d of %s (%s, from %s): %s for %.0f s, past its limit of %g s: %s",
                    "cancelled the statement of" if o.action == "cancel" else "terminated", o.pid, o.role,
                    o.application_name or "no application name", o.client or "the local socket",
                    "idle in a transaction" if idle else "running", o.seconds, idle_s if idle else statement_s,
                    " ".join((o.query or "").split()))
    return overdue


def may_signal(conn: sa.Connection, role: str = db.READER_ROLE) -> bool:
    """Whether ``conn``'s role can see the statements of ``role`` and the astronomers' roles, and signal
    their sessions."""
    return bool(conn.scalar(_MAY_SIGNAL, {"role": role, "astronomers": db.ASTRONOMERS_ROLE}))


class Watchdog:
    """:func:`sweep` every ``interval_s`` on a thread, with connections of ``engine`` (the owner's), from
    :meth:`start` (or entering a ``with`` block) to :meth:`stop`; it may be started again after."""

    def __init__(self, engine: sa.Engine, *, role: str = db.READER_ROLE, statement_s: float = db.READER_STATEMENT_S,
                 idle_s: float = db.READER_IDLE_IN_TRANSACTION_S, grace_s: float = GRACE_S,
                 interval_s: float = INTERVAL_S) -> None:
        self.engine, self.interval_s = engine, interval_s
        self.limits = {"role": role, "statement_s": statement_s, "idle_s": idle_s, "grace_s": grace_s}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Watchdog:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="healcat-watchdog", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sweeping (after the sweep under way, if any)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> Watchdog:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    def _run(self) -> None:
        allowed, failing = None, False
        while True:
            try:
                with self.engine.begin() as conn:
                    if allowed is None:
                        allowed = may_signal(conn, self.limits["role"])
                        if not allowed:
                            log.warning("watchdog: the role %s may not see and signal the sessions of %s and the "
                                        "astronomers' roles, so nothing ends a statement of theirs that lifted its "
                                        "timeout: make it a superuser, or a member of pg_signal_backend and "
                                        "pg_read_all_stats (or of %s, while there is no astronomer's role)",
                                        conn.scalar(sa.text("SELECT current_user")), self.limits["role"],
                                        self.limits["role"])
                            return
                    sweep(conn, **self.limits)
                failing = False
            except Exception as exc:  # the database away (a restart): the next sweep tries again
                if not failing:
                    log.warning("watchdog: a sweep failed (%s); trying again every %g s", first_line(exc),
                                self.interval_s)
                failing = True
            if self._stop.wait(self.interval_s):
                return
