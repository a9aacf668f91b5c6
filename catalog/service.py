"""``healcat serve``: the catalog to VO clients over HTTP (TOPCAT, Aladin, pyvo).

- ``GET /scs?RA=&DEC=&SR=`` — IVOA Simple Cone Search 1.03: the sources within ``SR`` degrees of
  (``RA``, ``DEC``), ICRS degrees (``RA`` in [0, 360], ``DEC`` in [-90, 90]: the standard makes other
  values an error), nearest first, as a VOTable 1.1 (the version SCS 1.03 names; 1.4 no longer allows the
  UCD1 words the standard and its clients look for) whose id and position columns carry the UCDs the
  standard names (``ID_MAIN``, a text column as it asks, ``POS_EQ_RA_MAIN``, ``POS_EQ_DEC_MAIN``).
  ``VERB=1`` gives those three columns, 2 (default) and 3 every column of a cone search (release,
  object id, ``distance_arcsec``); ``RELEASE=name`` searches one release, a superseded one too (default:
  the published releases, as ``healcat.cone_search``); ``MAXREC`` caps the rows (default
  :data:`DEFAULT_ROWS`, most :data:`MAX_ROWS`; a larger one, however large, gets that): an answer cut
  there, or ``MAXREC=0`` with sources in the cone, says ``QUERY_STATUS`` = ``OVERFLOW``. ``SR=0`` is the
  standard's metadata query: the columns, no rows.
- ``GET /similar?SOURCE_ID=&K=&MODEL=&RELEASE=&VERSION=&MAXREC=`` — the ``K`` sources most like one in a
  model's embedding space (:func:`catalog.search.similar.similar`), as a VOTable 1.4 (UCD1+ words), with
  ``INFO`` ``model`` and ``model_version`` (the version it read).

Each answer names the releases it read in an ``INFO`` ``releases`` (the one named, or those published
then): a new release or model version changes what the same URL answers. ``RESPONSEFORMAT`` (DALI),
where given, must name a VOTable, the only format served.
- ``GET /`` — what is served, as text.

Every FIELD has a description, text columns any length (``arraysize="*"``), and RA and Dec refer to a
``COOSYS`` (ICRS). ``HEAD`` answers a GET's headers; ``POST`` takes the parameters form-encoded in the
body (``application/x-www-form-urlencoded``, as DALI lets a client send them) and answers as GET; ``OPTIONS``
answers a browser's CORS preflight, and every answer allows any origin (Aladin Lite queries from its own
site); any other method is an error VOTable. Numbers are plain ASCII decimals (sign, digits, point, ``e`` exponent):
Python's wider syntax (``1_6_1``, other scripts' digits) is refused, as are NaN and infinities.

Read-only by construction: every query runs as ``healcat_reader`` (SELECT and EXECUTE only, under its
statement timeout) through the same validated searches as the Python API. Parameter names are
case-insensitive (IVOA DALI). A bad request is a VOTable whose ``INFO`` ``QUERY_STATUS`` is ``ERROR``
(DALI) and whose ``INFO`` ``Error`` (SCS 1.03) says why, with HTTP 400; a search the server could not
finish, under its statement timeout or for want of a database connection (the reader role's connection
limit), is such a VOTable with HTTP 503 and ``Retry-After``; nothing else than a search error reaches a
client (a server fault is logged, and the client gets 500 and no traceback); a parameter holding a
control character (a NUL, which PostgreSQL text cannot hold) is a bad request. A client that hangs up
while its search runs has the search cancelled (:class:`Departures`); one that hangs up before its
answer is sent is one logged line, not a traceback.
Requests are served by a fixed pool of threads, each with its own database session. A connection that
sends nothing for :data:`REQUEST_TIMEOUT` seconds is closed (idle connections held every thread, and
the service stalled), as is one whose request line and headers (and a POST's body) have not all come
within :data:`HEADER_TIMEOUT` seconds (a client sending a byte now and then never tripped the first, and
held a thread for ever), and at most :data:`QUEUED_PER_THREAD` connections per thread wait for one: the
next ones get HTTP 503 at once. The sessions set their own statement timeout and memory when they
connect (:data:`catalog.db.READER_SESSION`), whatever a reader made its role's defaults. While it
serves, a watchdog thread (:mod:`catalog.watchdog`) ends any reader's statement or transaction that
outlasts those limits, the service's or another client's that lifted its own timeout.
"""

from __future__ import annotations

import decimal
import io
import logging
import math
import re
import select
import socket
import threading
import time
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer

import psycopg
import sqlalchemy as sa
from astropy.io.votable.tree import CooSys, Field, Info, Resource, TableElement, VOTableFile
from astropy.table import Table

from catalog import db, settings
from catalog.errors import HealcatError, QueryError, first_line
from catalog.search.cancel import cancel
from catalog.search.cone import MIN_RADIUS_ARCSEC, Cone
from catalog.search.region import MAX_K, run
from catalog.search.results import COLUMNS, table_from_columns
from catalog.watchdog import Elsewhere, Watchdog

log = logging.getLogger(__name__)

#: Most rows one answer holds (a client asks for fewer with MAXREC).
MAX_ROWS = 100_000
#: Rows of a cone answer whose request gives no MAXREC (an answer cut there says OVERFLOW). A whole-sky
#: cone of MAX_ROWS took 11-16 s, a third of it astropy writing the XML under the interpreter lock, and
#: five of them at once held a 0.1-degree cone behind them for a minute.
DEFAULT_ROWS = 10_000
#: RESPONSEFORMAT values (DALI) answered: a VOTable is the only format served.
VOTABLE_FORMATS = ("votable", "application/x-votable+xml", "text/xml")
#: What each column of an answer is, for its FIELD: a description, its UCD1 word (the /scs answer:
#: SCS 1.03 names ID_MAIN, POS_EQ_RA_MAIN and POS_EQ_DEC_MAIN, which pyvo's SCSRecord looks up) and its
#: UCD1+ one (the /similar answer, VOTable 1.4); None where no word says what it is (a cosine distance in
#: a model's embedding space is no quantity of either vocabulary).
FIELDS = {
    "source_id": (COLUMNS["source_id"][2], "ID_MAIN", "meta.id;meta.main"),
    "release": (COLUMNS["release"][2], "ID_CATALOG", "meta.dataset"),
    "object_id": (COLUMNS["object_id"][2], "ID_ALTERNATIVE", "meta.id"),
    "ra": (COLUMNS["ra"][2], "POS_EQ_RA_MAIN", "pos.eq.ra;meta.main"),
    "dec": (COLUMNS["dec"][2], "POS_EQ_DEC_MAIN", "pos.eq.dec;meta.main"),
    "distance_arcsec": ("angular distance from the cone's centre (RA, DEC)", "POS_ANG_DIST_GENERAL",
                        "pos.angDistance"),
    "distance": ("cosine distance from SOURCE_ID in MODEL's embedding space (0: alike, 2: opposite)", None,
                 None),
}
#: VOTable datatypes of the columns' numpy kinds (text: any length).
DATATYPES = {"f": ("double", None), "i": ("long", None), "U": ("unicodeChar", "*")}
VOTABLE = "text/xml;content=x-votable"
#: A number as the protocols write one: ASCII digits, an optional sign, point and exponent (Python's
#: float() took more: '1_6_1' as 161, other scripts' digits). Each text matches one way only: with two
#: digit runs that could split a number anywhere ('[0-9]+\.?[0-9]*'), a failed match of a long one
#: backtracked quadratically under the interpreter lock (30,000 digits and an 'x' froze every thread
#: of the service for 16 s).
DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
INTEGER = re.compile(r"[+-]?[0-9]+")
#: Seconds a client answered 503 (statement timeout, no database connection free) is told to wait.
RETRY_AFTER_S = 10
#: ... and when every thread is busy and its queue full (a moment: the queue drains at once).
BUSY_RETRY_AFTER_S = 1
#: Most bytes of a POST's form-encoded parameters.
MAX_FORM_BYTES = 64 * 1024
#: Seconds a connection may wait for a client's next bytes (request line, headers) before it is closed.
REQUEST_TIMEOUT = 10.0
#: Seconds a client has to send its whole request line and headers, however it spaces its bytes
#: (``HEALCAT_SERVE_HEADER_TIMEOUT_S`` sets another).
HEADER_TIMEOUT = 10.0
#: Bytes of an answer sent per call, each within the connection's timeout (a client reading 64 KiB
#: per REQUEST_TIMEOUT, 6.4 KiB/s, gets any answer whole).
SEND_CHUNK = 64 * 1024
#: The slowest a client may read an answer on average [KiB/s, 1 Mbit/s]: the whole answer must be sent
#: within the connection's timeout plus its size at this rate (``HEALCAT_SERVE_MIN_SEND_KIBS`` sets
#: another). With only the per-piece timeout, four clients reading a 26 MB answer at 16 KB/s held
#: every thread for 40 minutes.
MIN_SEND_KIBS = 128.0
#: Every answer may be read by a page of any origin (CORS: Aladin Lite and other browser clients ask
#: from their own sites; the service is read-only public data, with no cookies or credentials).
CORS = (("Access-Control-Allow-Origin", "*"),)
#: Seconds between two looks at whether the clients whose searches run are still there (:class:`Departures`).
DEPARTURE_POLL_S = 0.2
#: Connections that may wait for a free thread, per thread; more are answered 503 at once.
QUEUED_PER_THREAD = 8
#: Control characters as escapes, for logging what a client sent (as http.server's own log_message
#: does: a raw ESC or CR in a request line rewrote the operator's terminal, forging log lines).
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


def printable(text: str) -> str:
    """``text`` from a client, fit for a log line: its control characters escaped."""
    return text.translate(_CONTROL)

INDEX = """healcat: a sky catalog (ICRS degrees)
GET /scs?RA=<deg>&DEC=<deg>&SR=<deg>[&VERB=1|2|3][&RELEASE=<name>][&MAXREC=<n>]
    IVOA Simple Cone Search 1.03: sources within SR of (RA, DEC), nearest first (VOTable;
    MAXREC default 10000, at most 100000)
GET /similar?SOURCE_ID=<id>[&K=10][&MODEL=photoz-sdss][&VERSION=<v>][&RELEASE=<name>][&MAXREC=<n>]
    the K sources most like SOURCE_ID in MODEL's embedding space (VOTable)
"""


class Params:
    """A request's query parameters, names case-insensitive; each read once, checked, named in errors."""

    def __init__(self, query: str) -> None:
        self.values: dict[str, list[str]] = {}
        for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
            if bad := next((c for c in name + value if unicodedata.category(c) == "Cc"), None):
                raise QueryError(f"{name!r}: parameters must not hold control characters, got {bad!r}")
            self.values.setdefault(name.upper(), []).append(value)

    def text(self, name: str, default: str | None = None) -> str | None:
        values = self.values.get(name, [])
        if len(values) > 1:
            raise QueryError(f"{name} is given {len(values)} times")
        return values[0].strip() if values and values[0].strip() else default

    def _parsed(self, name: str, default, parse: Callable[[str], object]):
        """The parameter as ``parse`` reads its text; ``default`` when it is absent (None: required)."""
        text = self.text(name)
        if text is None:
            if default is None:
                raise QueryError(f"{name} is required")
            return default
        return parse(text)

    def number(self, name: str, default: float | None = None) -> float:
        def parse(text: str) -> float:
            if DECIMAL.fullmatch(text) is None:
                finite = text.lstrip("+-").lower() not in ("nan", "inf", "infinity")
                raise QueryError(f"{name} must be a {'' if finite else 'finite '}number, got {text!r}")
            value = float(text)
            if not math.isfinite(value):  # beyond float's range: 1e999
                raise QueryError(f"{name} must be a finite number, got {text!r}")
            return value
        return self._parsed(name, default, parse)

    def integer(self, name: str, default: int | None, lo: int, hi: int, cap: bool = False) -> int:
        """A whole number in [lo, hi]; ``cap``: a larger one, however many digits, is taken as ``hi``
        (Decimal reads any length; int() refuses over 4,300 digits)."""
        def parse(text: str) -> int:
            value = decimal.Decimal(text) if INTEGER.fullmatch(text) else None
            if value is not None and cap:
                value = min(value, hi)
            if value is None or not lo <= value <= hi:
                raise QueryError(f"{name} must be a whole number in [{lo}, {hi}], got {text!r}")
            return int(value)
        return self._parsed(name, default, parse)


#: A cone's rows, nearest first, and the releases it read (the one named, or those published) in the same
#: statement, so in one snapshot: a release published meanwhile is in both or in neither (they were two
#: statements). Where the cone holds no source, one row of NULLs carries the releases. One ORDER BY, over
#: the join, with the LIMIT (the order SQL guarantees): the cone ordered and cut before the join, then
#: ordered again after it, sorted the rows twice where the plain cone statement sorts them once, 1.29x its
#: time at MAXREC=100,000, now 1.14x (benchmarks/README.md, "scs").
SCS_STATEMENT = ("SELECT hit.*, scope.releases FROM ({cone}) AS hit RIGHT JOIN (SELECT coalesce(%s::text, "
                 "(SELECT string_agg(name, ', ' ORDER BY name) FROM healcat.current_release)) AS releases) AS scope "
                 "ON true ORDER BY hit.distance_arcsec, hit.source_id LIMIT %s")


def scs_statement(cone: Cone, release: str | None, limit: int) -> tuple[str, tuple]:
    """:data:`SCS_STATEMENT` over ``cone`` and its parameters: ``release`` a name or None (the published
    releases), at most ``limit`` rows."""
    statement, args = cone.sql()
    return SCS_STATEMENT.format(cone=statement), (*args, release, limit)


def _hits_and_releases(names: list[str], rows: list[tuple]) -> tuple[Table, str | None]:
    """:data:`SCS_STATEMENT`'s rows as the cone's Table and the releases it read: the releases column is
    left out by the names (``table_from_columns`` pairs columns with names), not cut from every row
    (100,000 tuples copied under the interpreter lock); the one row of an empty cone is NULLs."""
    hits = rows if rows[0][names.index("source_id")] is not None else []
    return table_from_columns(names[:-1], hits), rows[0][-1]


def cone(params: Params, engine: sa.Engine) -> tuple[Table, list[Info]]:
    """SCS: the cone's sources, at most MAXREC of them (nearest first, ties by source_id)."""
    ra, dec, sr = params.number("RA"), params.number("DEC"), params.number("SR")
    verb = params.integer("VERB", 2, 1, 3)
    # a larger MAXREC gets the service's limit, as DALI lets a service do (an answer cut there says OVERFLOW)
    maxrec = params.integer("MAXREC", DEFAULT_ROWS, 0, MAX_ROWS, cap=True)
    # the protocol's names in the errors (Cone's would say dec_deg, radius_deg), each value as the client
    # wrote it (RA=360.0001 printed as 360 looked in range); SCS 1.03 makes an RA out of range an error
    # (Cone takes it modulo 360, as the Python API does)
    if not 0 <= ra <= 360:
        raise QueryError(f"RA must be in [0, 360] degrees, got {params.text('RA')}")
    if not -90 <= dec <= 90:
        raise QueryError(f"DEC must be in [-90, 90] degrees, got {params.text('DEC')}")
    if not 0 <= sr <= 180:
        raise QueryError(f"SR must be in [0, 180] degrees, got {params.text('SR')}")
    if 0 < sr < MIN_RADIUS_ARCSEC / 3600.0:
        raise QueryError(f"SR must be 0 (the columns only) or at least {MIN_RADIUS_ARCSEC / 3600.0:g} degrees, "
                         f"got {params.text('SR')}")
    metadata = sr == 0  # the standard's metadata query: the columns, no rows
    if metadata:
        maxrec, sr = 0, 1e-9
    release = params.text("RELEASE")
    table, releases = run(engine, "cone", *scs_statement(Cone(ra, dec, sr), release, maxrec + 1), release,
                          answer=_hits_and_releases)
    # MAXREC=0 with sources in the cone: OVERFLOW, as DALI says (no rows, and more than that to be had)
    infos = [Info(name="QUERY_STATUS", value="OVERFLOW" if len(table) > maxrec and not metadata else "OK"),
             Info(name="releases", value=releases or "")]
    if verb == 1:
        table = table[["source_id", "ra", "dec"]]
    return table[:maxrec], infos


def similar_sources(params: Params, engine: sa.Engine) -> tuple[Table, list[Info]]:
    from catalog.search.similar import DEFAULT_MODEL, similar

    source_id = params.integer("SOURCE_ID", None, 1, 2**63 - 1)
    model, release, version = params.text("MODEL", DEFAULT_MODEL), params.text("RELEASE"), params.text("VERSION")
    k = params.integer("K", 10, 1, MAX_K)
    maxrec = params.integer("MAXREC", MAX_K, 0, MAX_K, cap=True)
    # the version and releases it read come with its rows, from the same statement (one snapshot)
    table = similar(source_id, model=model, k=k, version=version, release=release, engine=engine)
    return table[:maxrec], [Info(name="QUERY_STATUS", value="OVERFLOW" if len(table) > maxrec else "OK"),
                            *(Info(name=name, value=table.meta[name]) for name in ("model", "model_version", "releases"))]


def _votable_format(params: Params) -> None:
    """DALI's RESPONSEFORMAT: absent or a VOTable's name, else an error (it was answered as a VOTable)."""
    wanted = params.text("RESPONSEFORMAT")  # a MIME type's parameters (;serialization=TABLEDATA) aside
    if wanted is not None and wanted.split(";")[0].strip().lower() not in VOTABLE_FORMATS:
        raise QueryError(f"RESPONSEFORMAT {wanted!r} is not served: the answers are VOTables "
                         f"(RESPONSEFORMAT={VOTABLE_FORMATS[0]} or absent)")


#: Each path's search, and whether it answers in SCS 1.03's form (:func:`votable`).
ROUTES: dict[str, tuple[Callable[[Params, sa.Engine], tuple[Table, list[Info]]], bool]] = {
    "/scs": (cone, True), "/similar": (similar_sources, False)}


def route(path: str) -> str:
    """A request's path as :data:`ROUTES` names it (``/scs/`` is ``/scs``; the index ``/``)."""
    return path.rstrip("/") or "/"


def votable(table: Table, infos: list[Info], scs: bool) -> bytes:
    """A result table as VOTable bytes: each FIELD described (:data:`FIELDS`), text of any length
    (``arraysize="*"``: an empty answer's and the metadata query's columns too), RA and Dec referring to
    an ICRS ``COOSYS`` (no epoch: the releases' positions are at their surveys' own epochs).

    ``scs``: as SCS 1.03 says, VOTable 1.1, UCD1 words (VOTable 1.4 allows UCD1+ only, and a strict
    reader refused ID_MAIN; SCS clients look up the UCD1 words) and the id as text (the standard wants
    the ID_MAIN column a char array); else VOTable 1.4 with UCD1+ words.
    """
    vot = VOTableFile(version="1.1" if scs else "1.4")
    resource = Resource(type="results")
    vot.resources.append(resource)
    resource.infos.extend(infos)
    resource.coordinate_systems.append(CooSys(ID="icrs", system="ICRS"))
    element = TableElement(vot)
    resource.tables.append(element)
    for name in table.colnames:
        column = table[name]
        description, ucd1, ucd1plus = FIELDS[name]
        datatype, arraysize = ("char", "*") if scs and name == "source_id" else DATATYPES[column.dtype.kind]
        field = Field(vot, name=name, datatype=datatype, arraysize=arraysize, ucd=ucd1 if scs else ucd1plus,
                      unit=None if column.unit is None else column.unit.to_string(),
                      ref="icrs" if name in ("ra", "dec") else None)
        field.description = description
        element.fields.append(field)
    element.create_arrays(len(table))
    for name, field in zip(table.colnames, element.fields):
        element.array[name] = table[name].astype(str) if field.datatype == "char" else table[name]
    out = io.BytesIO()
    vot.to_xml(out)
    return out.getvalue()


def error_votable(message: str, scs: bool) -> bytes:
    """An error as SCS 1.03 and DALI say: a VOTable with INFO Error and INFO QUERY_STATUS = ERROR, in the
    version the path's answers have (``scs``: 1.1, as :func:`votable`; it was 1.4 on every path)."""
    vot = VOTableFile(version="1.1" if scs else "1.4")
    resource = Resource(type="results")
    vot.resources.append(resource)
    resource.infos.extend([Info(name="QUERY_STATUS", value="ERROR"), Info(name="Error", value=message)])
    out = io.BytesIO()
    vot.to_xml(out)
    return out.getvalue()


TIMED_OUT = ("the query did not finish within the service's statement timeout ({}): a large region, a busy "
             "server, or a wait for a lock a change to the schema holds; narrow the search (a smaller SR, one "
             "RELEASE, a lower MAXREC or K) or retry later")
NO_CONNECTION = ("the service has no database connection free (the reader role's connection limit is "
                 "reached: too many requests at once); retry later")
#: The server's messages for SQLSTATE 53300 (too_many_connections); psycopg gives a connection it could
#: not open no SQLSTATE, only the message.
TOO_MANY_CONNECTIONS = ("too many connections", "too many clients", "remaining connection slots are reserved")


def _causes(exc: BaseException):
    """``exc`` and the errors it was raised from or while handling: a search's QueryError is raised
    ``from None`` over the database's error, which hides that from a traceback but keeps it."""
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def _timed_out(exc: BaseException) -> bool:
    """Whether the search was cancelled by the statement timeout (SQLSTATE 57014: the session's own, or
    the watchdog's cancel, which reads the same)."""
    return any(getattr(cause, "sqlstate", None) == "57014" for cause in _causes(exc))


def _no_connection_free(exc: BaseException) -> bool:
    """Whether the database refused a connection for too many (the role's limit, or the server's)."""
    return any(getattr(cause, "sqlstate", None) == "53300" or (
        isinstance(cause, psycopg.OperationalError) and any(text in str(cause) for text in TOO_MANY_CONNECTIONS))
        for cause in _causes(exc))


def warn_of_connection_limit(conn: sa.Connection, threads: int) -> None:
    """Log a warning when ``threads`` are more than the connections ``conn``'s role may open at once
    (``pg_roles.rolconnlimit``; -1: no limit): each thread holds a session of its own, and the requests
    on the threads past the limit are answered 503."""
    role, limit = conn.execute(sa.text("SELECT rolname, rolconnlimit FROM pg_roles WHERE rolname = current_user")).one()
    if 0 <= limit < threads:
        log.warning("%d threads, but role %s may open %d connections (its rolconnlimit, other clients' "
                    "included): requests on the threads past it will be answered 503; serve with --threads "
                    "%d or fewer, or raise the limit (ALTER ROLE %s CONNECTION LIMIT n)",
                    threads, role, limit, limit, role)


class _Deadline(io.RawIOBase):
    """A connection's incoming bytes, each read waiting at most ``per_read_s`` and no later than
    ``deadline`` (``time.monotonic()``; None: none): TimeoutError after it, which http.server answers
    by closing the connection."""

    def __init__(self, sock: socket.socket, per_read_s: float, deadline: float | None) -> None:
        self.sock, self.per_read_s, self.deadline = sock, per_read_s, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the request line and headers did not all come in time")
            self.sock.settimeout(min(left, self.per_read_s))
        return self.sock.recv_into(buffer)


def handler(engine: sa.Engine, request_timeout: float = REQUEST_TIMEOUT, header_timeout: float = HEADER_TIMEOUT,
            min_send_kibs: float = MIN_SEND_KIBS) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "healcat"
        timeout = request_timeout  # the socket's: a silent client's readline() gives up (http.server then closes)

        def setup(self) -> None:
            super().setup()
            self.rfile.close()  # the socket's own reader: the request comes through one with a deadline
            self.rfile = io.BufferedReader(_Deadline(self.connection, self.timeout,
                                                     time.monotonic() + header_timeout))

        def parse_request(self) -> bool:
            try:
                return super().parse_request()  # the request line is in; this reads the headers
            finally:  # the answer is written under the socket's timeout alone
                self.rfile.raw.deadline = None
                self.connection.settimeout(self.timeout)

        def handle(self) -> None:
            try:
                super().handle()
            except ConnectionError as exc:  # a client that hung up: not the server's fault, no traceback
                log.warning("%s: the client left before its answer was sent (%s): %s", self.address_string(),
                            printable(getattr(self, "requestline", "")) or "no request line yet", type(exc).__name__)

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self._serve()

        def do_HEAD(self) -> None:  # noqa: N802 (http.server's name)
            self._serve()  # a GET's status and headers; _send leaves the body out

        def do_OPTIONS(self) -> None:  # noqa: N802 (http.server's name)
            """A browser's preflight (CORS) before a cross-origin POST: what it may send."""
            self.send_response(HTTPStatus.NO_CONTENT)
            for name, value in (*CORS, ("Access-Control-Allow-Methods", "GET, HEAD, POST, OPTIONS"),
                                ("Access-Control-Allow-Headers", "Content-Type"), ("Access-Control-Max-Age", "86400"),
                                ("Content-Length", "0")):
                self.send_header(name, value)
            self.end_headers()

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            # DALI lets a client send the parameters form-encoded in the body
            if (form := self._form()) is not None:
                self._serve(form)

        def _form(self) -> str | None:
            """A POST's form-encoded parameters, read within ``header_timeout`` (as the headers: a
            client dripping its body held a thread); None once an error is answered."""
            kind = self.headers.get_content_type()
            if kind != "application/x-www-form-urlencoded":
                self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                            f"POST parameters must be application/x-www-form-urlencoded, got {kind}")
                return None
            length = self.headers.get("Content-Length", "")
            if not (length.isascii() and length.isdigit()) or self.headers.get("Transfer-Encoding"):
                self._error(HTTPStatus.LENGTH_REQUIRED, "a POST must give its body's Content-Length")
                return None
            if int(length) > MAX_FORM_BYTES:
                self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                            f"a POST's parameters may take {MAX_FORM_BYTES} bytes, got {length}")
                return None
            self.rfile.raw.deadline = time.monotonic() + header_timeout
            try:
                form = self.rfile.read(int(length))
            finally:
                self.rfile.raw.deadline = None
            if len(form) < int(length):  # the client closed its side early
                self._error(HTTPStatus.BAD_REQUEST, f"the body ended after {len(form)} of {length} bytes")
                return None
            return form.decode("iso-8859-1")  # as http.server reads the request line: the same parameters

        def _serve(self, form: str = "") -> None:
            """Answer the path's search, its parameters in the query string and ``form`` (a POST's)."""
            url = urllib.parse.urlsplit(self.path)
            path = route(url.path)
            if path == "/":
                return self._send(HTTPStatus.OK, "text/plain; charset=utf-8", INDEX.encode())
            if path not in ROUTES:
                return self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8",
                                  f"no such service: {url.path}\n\n{INDEX}".encode())
            search, scs, left = *ROUTES[path], False
            try:
                with self.server.departures.watching(self.connection) as gone:
                    try:
                        params = Params("&".join(filter(None, (url.query, form))))
                        _votable_format(params)  # every route answers a VOTable
                        body = votable(*search(params, engine), scs)
                    finally:
                        left = gone()
            except Exception as exc:
                return self._failed(exc, left)
            self._send(HTTPStatus.OK, VOTABLE, body)

        def _failed(self, exc: Exception, left: bool) -> None:
            """Answer a search that raised ``exc``; ``left``: it was cancelled for a client that hung up."""
            if left:  # no one to answer
                log.warning("%s: the client hung up before its answer: its search was cancelled (%s)",
                            self.address_string(), printable(self.requestline))
                self.close_connection = True
                return None
            if isinstance(exc, (QueryError, HealcatError)):
                if _timed_out(exc):  # the server's limit, not the client's mistake
                    log.warning("%s: 503, the statement timeout ended it", printable(self.path))
                    return self._error(HTTPStatus.SERVICE_UNAVAILABLE, TIMED_OUT.format(
                        db.READER_SESSION["statement_timeout"]), retry=True)
                return self._error(HTTPStatus.BAD_REQUEST, str(exc))
            if _no_connection_free(exc):
                log.warning("%s: 503, no database connection free: %s", printable(self.path), first_line(exc))
                return self._error(HTTPStatus.SERVICE_UNAVAILABLE, NO_CONNECTION, retry=True)
            log.error("%s failed", printable(self.path), exc_info=exc)  # a fault of the server's: logged, not shown to the client
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """http.server's own errors (a method other than GET, HEAD and POST; a malformed request)
            as error VOTables, as the searches' are (it wrote an HTML page)."""
            self.log_error("code %d, message %s", code, message)
            self.close_connection = True
            self._error(HTTPStatus(code), message or HTTPStatus(code).phrase)

        def _error(self, status: HTTPStatus, message: str, retry: bool = False) -> None:
            """An error VOTable, in the version of the path's answers (a path not served: 1.4); ``retry``: with
            ``Retry-After`` (the server's state, not the request)."""
            # http.server's own errors may come before the request line is read: no path then
            scs = ROUTES.get(route(urllib.parse.urlsplit(getattr(self, "path", "")).path), (None, False))[1]
            self._send(status, VOTABLE, error_votable(message, scs), (("Retry-After", str(RETRY_AFTER_S)),) if retry else ())

        def _send(self, status: HTTPStatus, content_type: str, body: bytes,
                  headers: tuple[tuple[str, str], ...] = ()) -> None:
            self.send_response(status)
            for name, value in (("Content-Type", content_type), ("Content-Length", str(len(body))), *CORS, *headers):
                self.send_header(name, value)
            self.end_headers()
            if self.command == "HEAD":
                return
            # In pieces: the socket's timeout bounds each send, and one sendall of a whole 100,000-row
            # answer had REQUEST_TIMEOUT for all of it, cutting off a client that reads steadily but
            # slowly (10 MB over a 1 MB/s link); now it must take SEND_CHUNK bytes per timeout, and
            # the whole answer at min_send_kibs on average.
            view = memoryview(body)
            deadline = time.monotonic() + self.timeout + len(body) / (min_send_kibs * 1024)
            for start in range(0, len(body), SEND_CHUNK):
                wait = min(self.timeout, deadline - time.monotonic())
                try:
                    if wait <= 0:
                        raise TimeoutError
                    self.connection.settimeout(wait)
                    self.wfile.write(view[start:start + SEND_CHUNK])
                except TimeoutError:  # http.server closes the connection, logging why
                    if wait == self.timeout:  # a piece not taken within the connection's timeout
                        raise
                    raise TimeoutError(f"the client took {start} of {len(body)} bytes, slower than "
                                       f"{min_send_kibs:g} KiB/s on average") from None

        def version_string(self) -> str:
            return self.server_version  # not Python's version (http.server's Server header names it)

        def log_message(self, fmt: str, *args) -> None:
            log.info("%s %s", self.address_string(), printable(fmt % args))

        def log_error(self, fmt: str, *args) -> None:  # a client cut off (too slow), a malformed request
            log.warning("%s %s", self.address_string(), printable(fmt % args))

    return Handler


@dataclass(eq=False)
class _Watch:
    """One request's search, watched for its client hanging up (:class:`Departures`)."""

    sock: socket.socket
    ident: int  # the handler's thread
    lock: threading.Lock = field(default_factory=threading.Lock)  # held while a cancel is on its way
    watching: bool = True  # False once the handler is done: no cancel after that
    gone: bool = False  # its client hung up: the search is cancelled
    sent: bool = False  # bytes wait on the connection (the next request): its client is there


#: poll() events of a connection whose client hung up or may have: Linux reports the peer's
#: shutdown (POLLRDHUP) without a read; elsewhere readable bytes are peeked at.
_DEPARTED = select.POLLIN | getattr(select, "POLLRDHUP", 0)


class Departures:
    """Cancels the search of a client that hangs up before its answer (its statement would run on, up
    to the statement timeout, holding a thread and a database session for no one).

    A handler watches its connection for the time its search runs (:meth:`watching`); one thread
    polls the connections watched every ``poll_s``, and one whose client has shut its side
    (POLLRDHUP, POLLHUP; elsewhere than Linux, readable with no bytes to peek at) has its search
    cancelled (:func:`catalog.search.cancel.cancel`), as nginx drops a request whose client has gone.
    A client that half-closes its side after sending its request (``shutdown(SHUT_WR)``; HTTP clients
    do not) looks the same and is cancelled too. A connection with bytes waiting (the next request,
    pipelined) is left alone. A cancel is sent under its request's own lock, which the handler takes
    when it stops watching: none reaches the thread's next request, and no other request waits for it."""

    def __init__(self, poll_s: float = DEPARTURE_POLL_S) -> None:
        self.poll_s = poll_s
        self.looks = 0  # polls made so far
        self._watches: set[_Watch] = set()
        self._lock, self._stop = threading.Lock(), threading.Event()  # the lock over _watches alone
        self._thread = threading.Thread(target=self._run, name="healcat-serve-departures", daemon=True)

    def start(self) -> Departures:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    @contextmanager
    def watching(self, connection: socket.socket) -> Iterator[Callable[[], bool]]:
        """Watch ``connection`` while inside; yields whether its client has hung up (and the search was cancelled)."""
        watch = _Watch(connection, threading.get_ident())
        with self._lock:
            self._watches.add(watch)
        try:
            yield lambda: watch.gone
        finally:
            with watch.lock:  # a cancel on its way arrives first; none is sent after
                watch.watching = False
            with self._lock:
                self._watches.discard(watch)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._look()
                self.looks += 1
            except Exception:  # never let the thread die: departures would go unseen from then on
                log.exception("looking for clients that hung up failed; looking again")
                self._stop.wait(self.poll_s)

    def _look(self) -> None:
        """One poll of the connections watched (at most ``poll_s``), then a cancel for each whose client left."""
        with self._lock:
            watches = [watch for watch in self._watches if not watch.sent]
        poller, polled = select.poll(), {}
        for watch in watches:
            if not watch.gone and (fd := watch.sock.fileno()) >= 0:
                poller.register(fd, _DEPARTED)
                polled[fd] = watch
        events = poller.poll(self.poll_s * 1000) if polled else []
        for fd, event in events:
            watch = polled[fd]
            if event & select.POLLNVAL:  # closed since: its handler is done with it
                continue
            if event & ~select.POLLIN or self._closed(watch.sock):  # shut (RDHUP), hung up (HUP), reset (ERR)
                self._cancel(watch)
            else:
                watch.sent = True
        gone = [watch for watch in watches if watch.gone]
        for watch in gone:  # again: a cancel between two statements of a search is ignored
            self._cancel(watch)
        if gone or not polled:
            self._stop.wait(self.poll_s)

    @staticmethod
    def _closed(sock: socket.socket) -> bool:
        """Readable, and no bytes to read: the client has shut its side (where poll() cannot say so)."""
        try:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, TimeoutError):  # read meanwhile: nothing says it left
            return False
        except OSError:  # reset by the client
            return True

    @staticmethod
    def _cancel(watch: _Watch) -> None:
        with watch.lock:
            if not watch.watching:
                return
            first, watch.gone = not watch.gone, True
            try:
                cancelled = cancel(watch.ident)
            except psycopg.Error as exc:
                log.warning("could not cancel the search of a client that hung up: %s", first_line(exc))
                return
        if first and cancelled:
            log.info("a client hung up before its answer: its search is cancelled")


class PooledHTTPServer(HTTPServer):
    """An HTTP server answering on a fixed pool of threads: each keeps one database session (the
    searches' per-thread sessions), so the server holds at most ``threads`` connections. At most
    ``queued`` accepted connections wait for a thread; the next ones are answered 503 and closed.
    ``watchdog`` sweeps until :meth:`server_close`."""

    def __init__(self, address: tuple[str, int], handler_class, threads: int, queued: int,
                 watchdog: Watchdog | Elsewhere) -> None:
        super().__init__(address, handler_class)
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="healcat-serve")
        self.most = threads + queued
        self.connections = 0  # answered or waiting for a thread
        self._counting = threading.Lock()
        self.watchdog = watchdog.start()
        self.departures = Departures().start()

    def process_request(self, request, client_address) -> None:
        with self._counting:
            room = self.connections < self.most
            self.connections += room
        if not room:
            return self._busy(request, client_address)
        try:
            self.pool.submit(self._answer, request, client_address)
        except BaseException:  # shutting down: no thread will answer it, nor give its place back
            with self._counting:
                self.connections -= 1
            raise

    def _busy(self, request, client_address) -> None:
        log.warning("%s: 503, %d connections answered or waiting already", client_address[0], self.most)
        body = error_votable("the service is busy: try again shortly", scs=False)  # the request is not read
        try:
            request.settimeout(1.0)  # a new socket's send buffer takes this at once; never wait on a client
            request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: " + VOTABLE.encode()
                            + f"\r\nRetry-After: {BUSY_RETRY_AFTER_S}\r\nConnection: close\r\n".encode()
                            + "".join(f"{name}: {value}\r\n" for name, value in CORS).encode() + b"Content-Length: "
                            + str(len(body)).encode() + b"\r\n\r\n" + body)
            request.setblocking(False)
            request.recv(65536)  # what the request sent already: closing on unread bytes resets the answer
        except OSError:
            pass
        finally:
            self.shutdown_request(request)

    def _answer(self, request, client_address) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._counting:
                self.connections -= 1

    def server_close(self) -> None:
        super().server_close()
        self.pool.shutdown(wait=True)
        self.watchdog.stop()
        self.departures.stop()


def make_server(engine: sa.Engine, host: str = "127.0.0.1", port: int = 8008, threads: int = 4,
                timeout: float = REQUEST_TIMEOUT, queued: int | None = None, watchdog: Watchdog | Elsewhere | None = None,
                header_timeout: float | None = None, min_send_kibs: float | None = None) -> PooledHTTPServer:
    """The service on ``host``:``port`` (port 0: any free one; ``server.server_address`` says which),
    ``engine`` as the read-only role (:func:`catalog.db.reader_url`); ``timeout``: seconds a client may
    stay silent; ``header_timeout``: seconds it has to send its request line and headers (default
    ``HEALCAT_SERVE_HEADER_TIMEOUT_S``, else :data:`HEADER_TIMEOUT`); ``min_send_kibs``: the slowest a
    client may read an answer on average (default ``HEALCAT_SERVE_MIN_SEND_KIBS``, else
    :data:`MIN_SEND_KIBS`); ``queued``: connections that may
    wait for a thread (default :data:`QUEUED_PER_THREAD` per thread); ``watchdog``: what ends readers'
    statements past their limits while it serves (default: the reader's limits, swept as the configured
    database's owner; :class:`catalog.watchdog.Elsewhere` where another process sweeps)."""
    queued = QUEUED_PER_THREAD * threads if queued is None else queued
    if header_timeout is None:
        header_timeout = settings.from_env("HEALCAT_SERVE_HEADER_TIMEOUT_S", 0.1, float, "seconds") or HEADER_TIMEOUT
    if min_send_kibs is None:
        min_send_kibs = settings.from_env("HEALCAT_SERVE_MIN_SEND_KIBS", 0.1, float, "KiB/s") or MIN_SEND_KIBS
    watchdog = Watchdog(db.engine()) if watchdog is None else watchdog
    return PooledHTTPServer((host, port), handler(engine, timeout, header_timeout, min_send_kibs), threads, queued,
                            watchdog)
