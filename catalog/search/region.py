"""What every region search shares: argument checks, and one fast way to run a region's SQL.

A region (Cone, Box, Ellipse, Polygon, Moc) is a validated value with ``.ranges()`` (the order-29
HEALPix ranges covering it, from catalog.healpix) and ``.sql()`` (a call of the region's
``healcat.<region>_in_ranges`` SQL function with those ranges as arrays). That SQL function is the
one definition of the region's rows: ``healcat.<region>_search`` calls it with the cover it
computes in PL/pgSQL, the Python API with healpy's. The statement text is fixed per region, so
psycopg prepares it on a connection's fifth call and later calls only bind and execute a generic
plan (one index range scan per range under LATERAL, whatever the arrays hold); the answer becomes an
astropy Table column by column.
"""

from __future__ import annotations

import atexit
import functools
import math
import os
import re
import threading
from collections.abc import Callable
from typing import Any

import astropy.units as u
import numpy as np
import psycopg
import sqlalchemy as sa
from astropy.coordinates import SkyCoord
from astropy.table import Table
from sqlalchemy.dialects import postgresql

from catalog import healpix
from catalog.db import libpq_url
from catalog.errors import ConfigurationError, QueryError, query_error
from catalog.search.cancel import cancellable
from catalog.search.results import table_from_columns


#: The unit an argument's name ends in: an astropy Quantity given for it is converted to it.
NAME_UNITS = {"_arcsec": u.arcsec, "_deg": u.deg}
#: Most rows a k-nearest search returns: nearest's k (healcat.nearest) and similar's (healcat.check_k).
MAX_K = 10_000


def checked(what: str, name: str, value, lo: float = -math.inf, hi: float = math.inf, lo_open: bool = False,
            hi_open: bool = False) -> float:
    """``value`` as a float in [lo, hi] (``lo_open``, ``hi_open``: excluding that end), else a QueryError
    naming it, as healcat.check_arg does. An astropy Quantity is converted to the unit ``name`` ends in
    (``radius_arcsec``: ``10 * u.arcmin`` is 600.0)."""
    if value is None:
        raise QueryError(f"{what}: {name} must not be NULL (None)")
    if isinstance(value, (bool, np.bool_)):  # float(True) is 1.0: a radius_arcsec=True was 1 arcsec
        raise QueryError(f"{what}: {name} must be a number, got {value!r}")
    if isinstance(value, u.Quantity):
        unit = next((unit for suffix, unit in NAME_UNITS.items() if name.endswith(suffix)), u.dimensionless_unscaled)
        try:
            value = value.to_value(unit)
        except u.UnitsError:
            kind = "a number" if unit is u.dimensionless_unscaled else "an angle"
            raise QueryError(f"{what}: {name} must be {kind}, got {value}") from None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise QueryError(f"{what}: {name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise QueryError(f"{what}: {name} must be a finite number, got {number}")
    if number < lo or number > hi or (lo_open and number == lo) or (hi_open and number == hi):
        shown = int(value) if isinstance(value, (int, np.integer)) else number  # k = 0, not 0.0
        raise QueryError(f"{what}: {name} must be in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}, "
                         f"got {shown}")
    return number


def checked_int(what: str, name: str, value, lo: float = -math.inf, hi: float = math.inf) -> int:
    """``value`` as an int in [lo, hi], else a QueryError naming it. Only an integer type passes, as a
    SQL function's integer argument takes it (2.5 is not rounded, True is not 1), and the bounds are
    compared exactly (``checked``'s float would overflow at 10**400 and round 2**63)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise QueryError(f"{what}: {name} must be an integer, got {value!r}")
    if value < lo or value > hi:
        bounds = f"at least {lo}" if hi == math.inf else f"in [{lo}, {hi}]"
        raise QueryError(f"{what}: {name} must be {bounds}, got {value}")
    return int(value)


#: Largest |RA| a search takes (modulo 360), as healcat.hpx_ang2pix: beyond, a float's RA has no degrees left.
MAX_ABS_RA_DEG = 1e9


def icrs_deg(what: str, coord: SkyCoord, named: str = "the SkyCoord") -> tuple[np.ndarray, np.ndarray]:
    """A SkyCoord's positions as ICRS (ra, dec) [deg], whatever its frame and representation (a cartesian
    one too), else a QueryError: a frame astropy cannot take to ICRS alone (AltAz without a location, ...)."""
    try:
        spherical = coord.icrs.spherical
    except Exception as exc:  # astropy raises its own kinds
        raise QueryError(f"{what}: {named} (frame {coord.frame.name}) cannot be converted to ICRS: {exc}") from None
    return spherical.lon.deg, spherical.lat.deg


def centre(what: str, ra_deg, dec_deg) -> tuple[float, float]:
    """A search's centre as ICRS (ra_deg modulo 360, dec_deg) [deg], else a QueryError naming the argument:
    ``ra_deg`` within +-MAX_ABS_RA_DEG and ``dec_deg`` in [-90, 90] (floats or astropy angles), or one
    scalar SkyCoord in any frame astropy converts to ICRS given as ``ra_deg`` with ``dec_deg`` left out."""
    if isinstance(ra_deg, SkyCoord):
        if dec_deg is not None:
            raise QueryError(f"{what}: with a SkyCoord as the centre, dec_deg must be left out (name the arguments "
                             f"after it, e.g. radius_arcsec=), got {dec_deg!r}")
        if not ra_deg.isscalar:
            raise QueryError(f"{what}: the centre must be one position, got a SkyCoord of shape {ra_deg.shape}")
        ra_deg, dec_deg = icrs_deg(what, ra_deg, "the SkyCoord centre")
    ra = checked(what, "ra_deg", ra_deg, -MAX_ABS_RA_DEG, MAX_ABS_RA_DEG)
    return float(healpix.wrap_ra_deg(ra)), checked(what, "dec_deg", dec_deg, -90.0, 90.0)


class Region:
    """A validated region: subclasses set ``what``, ``function`` and define ``ranges()`` and ``args()``."""

    what: str
    function: str

    def _check_centre(self) -> None:
        """``ra_deg`` and ``dec_deg`` as :func:`centre` checks them (a SkyCoord as ``ra_deg`` too)."""
        ra, dec = centre(self.what, self.ra_deg, self.dec_deg)
        object.__setattr__(self, "ra_deg", ra)
        object.__setattr__(self, "dec_deg", dec)

    def ranges(self) -> np.ndarray:
        raise NotImplementedError

    def args(self) -> tuple:
        raise NotImplementedError

    def sql(self) -> tuple[str, tuple]:
        """The parameterized call of ``healcat.<function>`` over this region's ranges (psycopg placeholders).
        The third parameter, release_id, is None (the published releases, ``healcat.release_scope``):
        :func:`run` binds a named release's id there."""
        ranges = self.ranges()
        args = self.args()
        text = (f"SELECT * FROM healcat.{self.function}(%s::bigint[], %s::bigint[], %s::integer"
                + ", %s" * len(args) + ")")
        return text, (ranges[:, 0].tolist(), ranges[:, 1].tolist(), None, *args)

    def source_ids(self) -> sa.Select:
        """``SELECT source_id`` of the region's sources in every release, to use inside a larger SQLAlchemy
        query that picks its releases itself, as similar's candidates (the same ``healcat.<function>`` call as
        :meth:`sql`, every value a bound parameter; release_id 0: every release, ``healcat.release_scope``)."""
        ranges = self.ranges()
        bigints = postgresql.ARRAY(sa.BigInteger)
        call = getattr(sa.func.healcat, self.function)(
            sa.bindparam(None, ranges[:, 0].tolist(), type_=bigints), sa.bindparam(None, ranges[:, 1].tolist(), type_=bigints),
            sa.cast(0, sa.Integer), *self.args()).table_valued("source_id")
        return sa.select(call.c.source_id)


class _Sessions(threading.local):
    """One autocommit psycopg connection per thread and database, kept for searches.

    A call then costs one round trip: no pool checkout ping, no transaction to roll back, and
    ``plan_cache_mode = force_generic_plan`` set once for the session (each statement's plan does not
    depend on its parameters; left to itself PostgreSQL plans the first calls anew, 1-2 ms each).
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.connections: dict[str, psycopg.Connection] = {}

    def get(self, engine: sa.Engine, fresh: bool = False) -> psycopg.Connection:
        if self.pid != os.getpid():  # a forked child never shares its parent's sockets
            self.pid, self.connections = os.getpid(), {}
        url = libpq_url(engine.url)
        conn = self.connections.get(url)
        if fresh or conn is None or conn.closed:
            if conn is not None:
                conn.close()
            try:
                conn = psycopg.connect(url, autocommit=True)
            except psycopg.ProgrammingError as exc:  # a malformed URL: libpq's message quotes it, password too
                message = re.sub(r'://([^:/@\s"]*):[^@\s"]*@', r"://\1:***@", str(exc))  # (percent-encoded there)
                raise ConfigurationError(f"the database URL {engine.url!r} is not one libpq reads: {message}") from None
            conn.execute("SET plan_cache_mode = force_generic_plan")
            self.connections[url] = conn
            _opened.append(conn)
        return conn


_sessions = _Sessions()
#: Every session opened, in any thread, closed when the interpreter exits.
_opened: list[psycopg.Connection] = []


@atexit.register
def _close_sessions() -> None:
    for conn in _opened:
        conn.close()


def run(engine: sa.Engine | None, what: str, statement: str, params: tuple, release: str | None = None,
        answer: Callable[[list[str], list[tuple]], Any] = table_from_columns) -> Any:
    """Execute a region's statement; SQL argument errors and the statement timeout become QueryError.

    ``release`` (a name) fills the statement's third parameter with its release_id; None leaves it NULL,
    the published releases (a superseded release is searched by name). ``answer`` makes the result of the
    column names and rows (default: a Table of a search's columns).
    """
    try:
        return _execute(_sessions.get(engine or _default_engine(*_configuration())), what, statement, params, release,
                        answer)
    except psycopg.OperationalError:  # the server stopped or dropped the session: once more, on a new one
        _default_engine.cache_clear()  # (which starts the embedded server again if it is the one used)
        return _execute(_sessions.get(engine or _default_engine(*_configuration()), fresh=True), what, statement,
                        params, release, answer)


def _configuration() -> tuple[str | None, str | None]:
    return os.environ.get("HEALCAT_HOME"), os.environ.get("HEALCAT_DATABASE_URL")


@functools.cache
def _default_engine(home: str | None, database_url: str | None) -> sa.Engine:
    """catalog.db.engine() once per configuration: it checks that the embedded server runs, tens of ms."""
    from catalog.db import engine

    return engine()


def _execute(conn: psycopg.Connection, what: str, statement: str, params: tuple, release: str | None,
             answer: Callable[[list[str], list[tuple]], Any]) -> Any:
    # Binary results: the server sends float8 and bigint as their bytes instead of formatting them as
    # text for the client to parse again (a third of a 2-degree cone's time at 10M sources).
    with cancellable(conn), conn.cursor(binary=True) as cursor:
        try:
            if release is not None:
                release_id = cursor.execute("SELECT healcat.release_id_of(%s, %s)", (what, release)).fetchone()[0]
                params = params[:2] + (release_id,) + params[3:]
            cursor.execute(statement, params)
        except psycopg.Error as exc:  # an argument check or the statement timeout: not retried
            if (error := query_error(exc, what)) is not None:
                raise error from None
            raise
        return answer([column.name for column in cursor.description], cursor.fetchall())


def search(region: Region, release: str | None, engine: sa.Engine | None) -> Table:
    """The region's sources as a Table (only ``release``'s, if given)."""
    statement, params = region.sql()
    return run(engine, region.what, statement, params, release)
