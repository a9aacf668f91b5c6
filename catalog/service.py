"""``healcat serve``: the catalog to VO clients over HTTP (TOPCAT, Aladin, pyvo).

- ``GET /scs?RA=&DEC=&SR=`` — IVOA Simple Cone Search 1.03: the sources within ``SR`` degrees of
  (``RA``, ``DEC``), ICRS degrees, nearest first, as a VOTable whose id and position columns carry
  the UCDs the standard names (``ID_MAIN``, ``POS_EQ_RA_MAIN``, ``POS_EQ_DEC_MAIN``). ``VERB=1`` gives
  those three columns, 2 (default) and 3 every column of a cone search (release, object id,
  ``distance_arcsec``); ``RELEASE=name`` searches one release, a superseded one too (default: the
  published releases, as ``healcat.cone_search``); ``MAXREC`` caps the rows (default and most :data:`MAX_ROWS`; a larger one gets it): an answer cut
  there says ``QUERY_STATUS`` = ``OVERFLOW``. ``SR=0`` is the standard's metadata query: the columns,
  no rows.
- ``GET /similar?SOURCE_ID=&K=&MODEL=&RELEASE=&VERSION=`` — the ``K`` sources most like one in a
  model's embedding space (:func:`catalog.search.similar.similar`), as a VOTable.
- ``GET /`` — what is served, as text.

Read-only by construction: every query runs as ``healcat_reader`` (SELECT and EXECUTE only, under its
statement timeout) through the same validated searches as the Python API. Parameter names are
case-insensitive (IVOA DALI). A bad request is a VOTable whose ``INFO`` ``QUERY_STATUS`` is ``ERROR``
(DALI) and whose ``INFO`` ``Error`` (SCS 1.03) says why, with HTTP 400; nothing else than a search
error reaches a client (a server fault is logged, and the client gets 500 and no traceback); a
parameter holding a control character (a NUL, which PostgreSQL text cannot hold) is such an error.
Requests are served by a fixed pool of threads, each with its own database session. A connection that
sends nothing for :data:`REQUEST_TIMEOUT` seconds is closed (idle connections held every thread, and
the service stalled), as is one whose request line and headers have not all come within
:data:`HEADER_TIMEOUT` seconds (a client sending a byte now and then never tripped the first, and held
a thread for ever), and at most :data:`QUEUED_PER_THREAD` connections per thread wait for one: the
next ones get HTTP 503 at once. The sessions set their own statement timeout and memory when they
connect (:data:`catalog.db.READER_SESSION`), whatever a reader made its role's defaults. While it
serves, a watchdog thread (:mod:`catalog.watchdog`) ends any reader's statement or transaction that
outlasts those limits, the service's or another client's that lifted its own timeout.
"""

from __future__ import annotations

import io
import logging
import math
import socket
import threading
import time
import unicodedata
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer

import sqlalchemy as sa
from astropy.io.votable.tree import Info, Resource, VOTableFile
from astropy.table import Table
from astropy.io.votable import from_table

from catalog import db, settings
from catalog.errors import HealcatError, QueryError
from catalog.search.cone import MAX_ABS_RA_DEG, MIN_RADIUS_ARCSEC, Cone
from catalog.search.region import run
from catalog.watchdog import Watchdog

log = logging.getLogger(__name__)

#: Most rows one answer holds (a client asks for fewer with MAXREC).
MAX_ROWS = 100_000
#: SCS 1.03's UCD1 words for the columns a client must find (pyvo's SCSRecord reads them).
SCS_UCDS = {"source_id": "ID_MAIN", "ra": "POS_EQ_RA_MAIN", "dec": "POS_EQ_DEC_MAIN"}
VOTABLE = "text/xml;content=x-votable"
#: Seconds a connection may wait for a client's next bytes (request line, headers) before it is closed.
REQUEST_TIMEOUT = 10.0
#: Seconds a client has to send its whole request line and headers, however it spaces its bytes
#: (``HEALCAT_SERVE_HEADER_TIMEOUT_S`` sets another).
HEADER_TIMEOUT = 10.0
#: Bytes of an answer sent per call, each within the connection's timeout (a client reading 64 KiB
#: per REQUEST_TIMEOUT, 6.4 KiB/s, gets any answer whole).
SEND_CHUNK = 64 * 1024
#: Connections that may wait for a free thread, per thread; more are answered 503 at once.
QUEUED_PER_THREAD = 8

INDEX = """healcat: a sky catalog (ICRS degrees)
GET /scs?RA=<deg>&DEC=<deg>&SR=<deg>[&VERB=1|2|3][&RELEASE=<name>][&MAXREC=<n>]
    IVOA Simple Cone Search 1.03: sources within SR of (RA, DEC), nearest first (VOTable)
GET /similar?SOURCE_ID=<id>[&K=10][&MODEL=photoz-sdss][&VERSION=<v>][&RELEASE=<name>]
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
            try:
                value = float(text)
            except ValueError:
                raise QueryError(f"{name} must be a number, got {text!r}") from None
            if not math.isfinite(value):
                raise QueryError(f"{name} must be a finite number, got {text!r}")
            return value
        return self._parsed(name, default, parse)

    def integer(self, name: str, default: int | None, lo: int, hi: int) -> int:
        def parse(text: str) -> int:
            try:
                value = int(text)
            except ValueError:
                value = None
            if value is None or not lo <= value <= hi:
                raise QueryError(f"{name} must be a whole number in [{lo}, {hi}], got {text!r}")
            return value
        return self._parsed(name, default, parse)


def cone(params: Params, engine: sa.Engine) -> tuple[Table, list[Info]]:
    """SCS: the cone's sources, at most MAXREC of them (nearest first, ties by source_id)."""
    ra, dec, sr = params.number("RA"), params.number("DEC"), params.number("SR")
    verb = params.integer("VERB", 2, 1, 3)
    # a larger MAXREC gets the service's limit, as DALI lets a service do (an answer cut there says OVERFLOW)
    maxrec = min(params.integer("MAXREC", MAX_ROWS, 0, 2**63 - 1), MAX_ROWS)
    # the protocol's names in the errors (Cone's would say dec_deg, radius_deg)
    if not -MAX_ABS_RA_DEG <= ra <= MAX_ABS_RA_DEG:
        raise QueryError(f"RA must be in [0, 360] degrees (larger or negative values are taken modulo 360, up to "
                         f"{MAX_ABS_RA_DEG:g}), got {ra:g}")
    if not -90 <= dec <= 90:
        raise QueryError(f"DEC must be in [-90, 90] degrees, got {dec:g}")
    if not 0 <= sr <= 180:
        raise QueryError(f"SR must be in [0, 180] degrees, got {sr:g}")
    if 0 < sr < MIN_RADIUS_ARCSEC / 3600.0:
        raise QueryError(f"SR must be 0 (the columns only) or at least {MIN_RADIUS_ARCSEC / 3600.0:g} degrees, got {sr:g}")
    if sr == 0:  # the standard's metadata query: the columns, no rows
        maxrec, sr = 0, 1e-9
    statement, args = Cone(ra, dec, sr).sql()
    table = run(engine, "cone", f"SELECT * FROM ({statement}) AS hit ORDER BY distance_arcsec, source_id LIMIT %s",
                (*args, maxrec + 1), params.text("RELEASE"))
    infos = [Info(name="QUERY_STATUS", value="OVERFLOW" if len(table) > maxrec and maxrec else "OK")]
    if verb == 1:
        table = table[["source_id", "ra", "dec"]]
    return table[:maxrec], infos


def similar_sources(params: Params, engine: sa.Engine) -> tuple[Table, list[Info]]:
    from catalog.search.similar import similar

    table = similar(params.integer("SOURCE_ID", None, 1, 2**63 - 1), model=params.text("MODEL", "photoz-sdss"), k=params.integer("K", 10, 1, 10_000),
                    version=params.text("VERSION"), release=params.text("RELEASE"), engine=engine)
    return table, [Info(name="QUERY_STATUS", value="OK")]


ROUTES: dict[str, Callable[[Params, sa.Engine], tuple[Table, list[Info]]]] = {
    "/scs": cone, "/similar": similar_sources}


def votable(table: Table, infos: list[Info]) -> bytes:
    """A result table as VOTable bytes, with SCS's UCDs on the id and position columns."""
    vot = from_table(table)
    resource = vot.resources[0]
    resource.type = "results"
    for field in resource.tables[0].fields:
        field.ucd = SCS_UCDS.get(field.name, field.ucd)
    resource.infos.extend(infos)
    out = io.BytesIO()
    vot.to_xml(out)
    return out.getvalue()


def error_votable(message: str) -> bytes:
    """An error as SCS 1.03 and DALI say: a VOTable with INFO Error and INFO QUERY_STATUS = ERROR."""
    vot = VOTableFile()
    resource = Resource(type="results")
    vot.resources.append(resource)
    resource.infos.extend([Info(name="QUERY_STATUS", value="ERROR"), Info(name="Error", value=message)])
    out = io.BytesIO()
    vot.to_xml(out)
    return out.getvalue()


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


def handler(engine: sa.Engine, request_timeout: float = REQUEST_TIMEOUT,
            header_timeout: float = HEADER_TIMEOUT) -> type[BaseHTTPRequestHandler]:
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

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            url = urllib.parse.urlsplit(self.path)
            path = url.path.rstrip("/") or "/"
            if path == "/":
                return self._send(HTTPStatus.OK, "text/plain; charset=utf-8", INDEX.encode())
            route = ROUTES.get(path)
            if route is None:
                return self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8",
                                  f"no such service: {url.path}\n\n{INDEX}".encode())
            try:
                body = votable(*route(Params(url.query), engine))
            except (QueryError, HealcatError) as exc:
                return self._send(HTTPStatus.BAD_REQUEST, VOTABLE, error_votable(str(exc)))
            except Exception:  # a fault of the server's: logged here, not shown to the client
                log.exception("%s failed", self.path)
                return self._send(HTTPStatus.INTERNAL_SERVER_ERROR, VOTABLE, error_votable("internal error"))
            self._send(HTTPStatus.OK, VOTABLE, body)

        def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            # In pieces: the socket's timeout bounds each send, and one sendall of a whole 100,000-row
            # answer had REQUEST_TIMEOUT for all of it, cutting off a client that reads steadily but
            # slowly (10 MB over a 1 MB/s link); now it must take SEND_CHUNK bytes per timeout.
            view = memoryview(body)
            for start in range(0, len(body), SEND_CHUNK):
                self.wfile.write(view[start:start + SEND_CHUNK])

        def log_message(self, fmt: str, *args) -> None:
            log.info("%s %s", self.address_string(), fmt % args)

    return Handler


class PooledHTTPServer(HTTPServer):
    """An HTTP server answering on a fixed pool of threads: each keeps one database session (the
    searches' per-thread sessions), so the server holds at most ``threads`` connections. At most
    ``queued`` accepted connections wait for a thread; the next ones are answered 503 and closed.
    ``watchdog`` sweeps until :meth:`server_close`."""

    def __init__(self, address: tuple[str, int], handler_class, threads: int, queued: int,
                 watchdog: Watchdog) -> None:
        super().__init__(address, handler_class)
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="healcat-serve")
        self.most = threads + queued
        self.room = threading.BoundedSemaphore(self.most)  # for connections answered or waiting
        self.watchdog = watchdog.start()

    def process_request(self, request, client_address) -> None:
        if not self.room.acquire(blocking=False):
            return self._busy(request, client_address)
        self.pool.submit(self._answer, request, client_address)

    def _busy(self, request, client_address) -> None:
        log.warning("%s: 503, %d connections answered or waiting already", client_address[0], self.most)
        body = error_votable("the service is busy: try again shortly")
        try:
            request.settimeout(1.0)  # a new socket's send buffer takes this at once; never wait on a client
            request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: " + VOTABLE.encode()
                            + b"\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: "
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
            self.room.release()

    def server_close(self) -> None:
        super().server_close()
        self.pool.shutdown(wait=True)
        self.watchdog.stop()


def make_server(engine: sa.Engine, host: str = "127.0.0.1", port: int = 8008, threads: int = 4,
                timeout: float = REQUEST_TIMEOUT, queued: int | None = None, watchdog: Watchdog | None = None,
                header_timeout: float | None = None) -> PooledHTTPServer:
    """The service on ``host``:``port`` (port 0: any free one; ``server.server_address`` says which),
    ``engine`` as the read-only role (:func:`catalog.db.reader_url`); ``timeout``: seconds a client may
    stay silent; ``header_timeout``: seconds it has to send its request line and headers (default
    ``HEALCAT_SERVE_HEADER_TIMEOUT_S``, else :data:`HEADER_TIMEOUT`); ``queued``: connections that may
    wait for a thread (default :data:`QUEUED_PER_THREAD` per thread); ``watchdog``: what ends readers'
    statements past their limits while it serves (default: the reader's limits, swept as the configured
    database's owner)."""
    queued = QUEUED_PER_THREAD * threads if queued is None else queued
    if header_timeout is None:
        header_timeout = settings.from_env("HEALCAT_SERVE_HEADER_TIMEOUT_S", 0.1, float, "seconds") or HEADER_TIMEOUT
    watchdog = Watchdog(db.engine()) if watchdog is None else watchdog
    return PooledHTTPServer((host, port), handler(engine, timeout, header_timeout), threads, queued, watchdog)
