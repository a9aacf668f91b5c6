"""The read-only role's limits, enforced from outside its sessions.

Every session healcat opens as ``healcat_reader`` sets a statement timeout and an idle-in-transaction
timeout (:data:`catalog.db.READER_SESSION`), but PostgreSQL lets any session ``SET statement_timeout
= 0`` (there is no forced setting), so a reader with psql could run a statement for ever or hold a
transaction open (which holds back VACUUM and makes ``CREATE INDEX CONCURRENTLY`` wait). The watchdog
sweeps ``pg_stat_activity`` now and then, as the owner, and ends what the role's sessions run past
its limits: a statement running longer than ``statement_s`` is cancelled (``pg_cancel_backend``, the
client sees SQLSTATE 57014 as from its own timeout); one still running ``grace_s`` later (a cancel
it did not heed) ends with its session (``pg_terminate_backend``), as does a transaction idle
longer than ``idle_s`` or open longer than ``transaction_s`` however busy. Each is logged: the
session, its client, how long, what it ran.

A role may also change its own defaults (``ALTER ROLE healcat_reader SET enable_indexscan = off``
reaches every later session of the role, ``healcat serve``'s too, which another reader may end
with ``pg_terminate_backend`` to make them reconnect). Each sweep compares the read-only roles'
defaults with :data:`catalog.db.READER_ROLE_DEFAULTS`; a role that holds others is put back
(``healcat.assert_reader_role()``) and its sessions, which may have started with them, are ended
(:func:`restore_role_defaults`).

It runs as a thread in every ``healcat worker`` and in ``healcat serve`` (:class:`Watchdog`; not in
``serve --no-watchdog``, :class:`Elsewhere`, which needs no owner's URL), each
sweeping every :data:`INTERVAL_S` (two queries; several sweepers at once are harmless: two putting a
role's defaults back at the same moment may fail one, logged, which the next sweep finds done). The sweeping
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
_READERS = f"""(SELECT r.oid FROM pg_roles AS r WHERE r.rolname = :role
                UNION ALL SELECT m.member FROM pg_auth_members AS m JOIN pg_roles AS r ON r.oid = m.member
                          WHERE {db.ASTRONOMER_MEMBERSHIP})"""
_SWEEP = sa.text(f"""
    SELECT a.pid, a.usename AS role, a.application_name, host(a.client_addr) AS client, a.state,
           CASE o.exceeded WHEN 'statement' THEN t.statement_s WHEN 'idle' THEN t.idle_s ELSE t.transaction_s END,
           o.action, left(a.query, 300) AS query,
           CASE o.action WHEN 'cancel' THEN pg_cancel_backend(a.pid) ELSE pg_terminate_backend(a.pid) END AS signalled,
           o.exceeded
    FROM pg_stat_activity AS a
    CROSS JOIN LATERAL (SELECT extract(epoch FROM now() - a.query_start)::float8 AS statement_s,
                               extract(epoch FROM now() - a.state_change)::float8 AS idle_s,
                               coalesce(extract(epoch FROM now() - a.xact_start)::float8, 0) AS transaction_s) AS t
    CROSS JOIN LATERAL (SELECT CASE WHEN {_RUNNING} AND t.statement_s > :statement_s THEN 'statement'
                                    WHEN {_IDLE_IN_TRANSACTION} AND t.idle_s > :idle_s THEN 'idle'
                                    WHEN t.transaction_s > :transaction_s THEN 'transaction'
                               END AS exceeded) AS e
    CROSS JOIN LATERAL (SELECT e.exceeded, CASE WHEN e.exceeded = 'statement' AND t.statement_s <= :statement_s + :grace_s
                                                THEN 'cancel' WHEN e.exceeded IS NOT NULL THEN 'terminate'
                                           END AS action) AS o
    WHERE a.usesysid IN {_READERS}
      AND a.backend_type = 'client backend' AND a.pid <> pg_backend_pid() AND o.action IS NOT NULL
      AND (pg_has_role('pg_signal_backend', 'USAGE') OR pg_has_role(a.usesysid, 'USAGE'))""")
# The read-only login roles' defaults, sorted (those of this database too: ALTER ROLE ... IN DATABASE),
# the roles healcat.assert_reader_role() sets (a group that cannot log in has no sessions to reach).
_ROLE_DEFAULTS = sa.text(f"""
    SELECT r.rolname, coalesce(array_agg(c COLLATE "C" ORDER BY c COLLATE "C") FILTER (WHERE c IS NOT NULL),
                               '{{}}') AS defaults
    FROM pg_roles AS r
    LEFT JOIN pg_db_role_setting AS s ON s.setrole = r.oid
         AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
    LEFT JOIN LATERAL unnest(s.setconfig) AS c ON true
    WHERE r.oid IN {_READERS} AND r.rolcanlogin
    GROUP BY r.rolname ORDER BY r.rolname""")
_END_SESSIONS = sa.text("""
    SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
    WHERE usename = :name AND backend_type = 'client backend' AND pid <> pg_backend_pid()""")
# Whether the connected role sees the queries of the role's and the astronomers' sessions and may
# signal them: a member of the role may signal its sessions, not those of the astronomers' own roles.
_MAY_SIGNAL = sa.text(f"""
    SELECT pg_has_role('pg_signal_backend', 'USAGE') AND pg_has_role('pg_read_all_stats', 'USAGE')
           OR coalesce((SELECT pg_has_role(oid, 'USAGE') FROM pg_roles WHERE rolname = :role), false)
              AND NOT EXISTS (SELECT 1 FROM pg_auth_members AS m JOIN pg_roles AS r ON r.oid = m.member
                              WHERE {db.ASTRONOMER_MEMBERSHIP})""")


class Overdue(NamedTuple):
    """A session the sweep signalled: ``action`` is ``cancel`` or ``terminate``; ``exceeded``, the limit
    (``statement``, ``idle``: in a transaction, ``transaction``: open); ``seconds``, how long its statement
    had run, its transaction sat idle or had been open; ``signalled``, whether the server found it."""
    pid: int
    role: str
    application_name: str | None
    client: str | None
    state: str
    seconds: float
    action: str
    query: str | None
    signalled: bool
    exceeded: str


def sweep(conn: sa.Connection, role: str = db.READER_ROLE, statement_s: float = db.READER_STATEMENT_S,
          idle_s: float = db.READER_IDLE_IN_TRANSACTION_S, grace_s: float = GRACE_S,
          transaction_s: float = db.READER_TRANSACTION_S) -> list[Overdue]:
    """Cancel the statements of the sessions of ``role`` and of the astronomers' own roles (members of
    :data:`catalog.db.ASTRONOMERS_ROLE`) running longer than ``statement_s``, terminate those still
    running ``grace_s`` later, those idle in a transaction longer than ``idle_s`` and those whose
    transaction has been open longer than ``transaction_s``; log and return them. ``conn``'s role must
    see and signal them (:func:`may_signal`); sessions it may not signal are left alone."""
    limits = {"statement": statement_s, "idle": idle_s, "transaction": transaction_s}
    overdue = [Overdue(*row) for row in conn.execute(_SWEEP, {"role": role, "astronomers": db.ASTRONOMERS_ROLE,
                                                              "grace_s": grace_s, **{f"{k}_s": v for k, v in
                                                                                     limits.items()}})]
    said = {"statement": "running", "idle": "idle in a transaction", "transaction": "in a transaction open"}
    for o in overdue:
        log.warning("watchdog: %s session %d of %s (%s, from %s): %s for %.0f s, past its limit of %g s: %s",
                    "cancelled the statement of" if o.action == "cancel" else "terminated", o.pid, o.role,
                    o.application_name or "no application name", o.client or "the local socket",
                    said[o.exceeded], o.seconds, limits[o.exceeded], " ".join((o.query or "").split()))
    return overdue


def role_defaults(conn: sa.Connection, role: str = db.READER_ROLE) -> dict[str, tuple[str, ...]]:
    """The defaults (``name=value``, sorted) of ``role`` and of each astronomer's own role that holds
    others than :data:`catalog.db.READER_ROLE_DEFAULTS`."""
    return {name: tuple(defaults) for name, defaults in conn.execute(
        _ROLE_DEFAULTS, {"role": role, "astronomers": db.ASTRONOMERS_ROLE}) if tuple(defaults) != db.READER_ROLE_DEFAULTS}


def restore_role_defaults(conn: sa.Connection, role: str = db.READER_ROLE,
                          stuck: dict[str, tuple[str, ...]] | None = None) -> tuple[list[str], dict[str, tuple[str, ...]]]:
    """Put back the defaults of the read-only roles that hold others (:func:`role_defaults`) with
    ``healcat.assert_reader_role()``, and end the sessions of each role put back: any may have started
    with what a reader set (the reader's own too). Returns the roles put back and those ``conn``'s role
    may not alter, with their defaults (they stay; nothing is ended). Roles in ``stuck`` (an earlier
    call's answer) still holding the same defaults are not tried again. Commits ``conn`` (not in a
    ``begin()`` block): the defaults are put back before any session is ended, so one that connects
    again at once has them."""
    changed = role_defaults(conn, role)
    if not changed or all((stuck or {}).get(name) == defaults for name, defaults in changed.items()):
        return [], changed
    conn.execute(sa.text("SELECT healcat.assert_reader_role()"))  # a warning, no error, where it may not
    conn.commit()
    stuck = role_defaults(conn, role)
    restored = [name for name in changed if name not in stuck]
    for name in restored:
        ended = conn.scalar(_END_SESSIONS, {"name": name})
        log.warning("watchdog: role %s held defaults other than healcat's (%s): put back, and its %d "
                    "session(s) ended (they may have started with them)", name, _unlike_ours(changed[name]), ended)
    conn.commit()
    return restored, stuck


def _unlike_ours(defaults: tuple[str, ...]) -> str:
    """How a role's ``defaults`` differ from :data:`catalog.db.READER_ROLE_DEFAULTS`: those added or changed,
    and those gone (the log listed every one, healcat's own among them)."""
    added = [d for d in defaults if d not in db.READER_ROLE_DEFAULTS]
    gone = [d for d in db.READER_ROLE_DEFAULTS if d not in defaults]
    return "; ".join(filter(None, (", ".join(added), "without " + ", ".join(gone) if gone else "")))


def may_signal(conn: sa.Connection, role: str = db.READER_ROLE) -> bool:
    """Whether ``conn``'s role can see the statements of ``role`` and the astronomers' roles, and signal
    their sessions."""
    return bool(conn.scalar(_MAY_SIGNAL, {"role": role, "astronomers": db.ASTRONOMERS_ROLE}))


class Watchdog:
    """:func:`sweep` every ``interval_s`` on a thread, with connections of ``engine`` (the owner's), from
    :meth:`start` (or entering a ``with`` block) to :meth:`stop`; it may be started again after."""

    def __init__(self, engine: sa.Engine, *, role: str = db.READER_ROLE, statement_s: float = db.READER_STATEMENT_S,
                 idle_s: float = db.READER_IDLE_IN_TRANSACTION_S, grace_s: float = GRACE_S,
                 transaction_s: float = db.READER_TRANSACTION_S, interval_s: float = INTERVAL_S) -> None:
        self.engine, self.interval_s = engine, interval_s
        self.limits = {"role": role, "statement_s": statement_s, "idle_s": idle_s, "grace_s": grace_s,
                       "transaction_s": transaction_s}
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
        allowed, failing, stuck = None, False, {}
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
                with self.engine.connect() as conn:  # its own transactions: a role it may not alter fails alone
                    _, now_stuck = restore_role_defaults(conn, self.limits["role"], stuck)
                    for name in now_stuck.keys() - stuck.keys():
                        log.warning("watchdog: role %s holds defaults healcat did not give it, and %s may not put "
                                    "them back: an administrator can run SELECT healcat.assert_reader_role()",
                                    name, conn.scalar(sa.text("SELECT current_user")))
                    stuck = now_stuck
                failing = False
            except Exception as exc:  # the database away (a restart): the next sweep tries again
                if not failing:
                    log.warning("watchdog: a sweep failed (%s); trying again every %g s", first_line(exc),
                                self.interval_s)
                failing = True
            if self._stop.wait(self.interval_s):
                return


class Elsewhere:
    """A service's watchdog that sweeps nothing, for ``healcat serve --no-watchdog``: the readers are
    swept by another process's watchdog (docker-compose's workers), so the service needs no owner's URL,
    only the read-only role's."""

    def start(self) -> Elsewhere:
        return self

    def stop(self) -> None:
        pass
