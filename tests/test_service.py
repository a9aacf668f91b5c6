"""healcat serve: a VO client (pyvo) runs a Simple Cone Search and a similarity search over HTTP."""

from __future__ import annotations

import io
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from unittest.mock import ANY

import numpy as np
import pytest
import pyvo
import sqlalchemy as sa
from astropy.coordinates import SkyCoord
from astropy.io.votable import parse, parse_single_table

from catalog import cone_search, db
from catalog.search.region import run
from catalog.search.similar import similar
from catalog.service import make_server, warn_of_connection_limit
from catalog.watchdog import Elsewhere
from tests.conftest import GAIA_RELEASE, SDSS_RELEASE, wait_until

CENTRE = (161.080928, 0.677356)  # the demo's galaxy 0274-51913-0630


@pytest.fixture(scope="module")
def service(database_url, catalog):
    """The service on a free port, as the read-only role, answering on two threads, with no watchdog.
    The watchdog puts back defaults a reader gave the role, ending the role's sessions, at a sweep that
    may come at any moment: a test that changes them (the service's own limits, below) would see its
    sessions ended, and the module's service, running all along, its pooled sessions (its next search
    failed, 500). The watchdog's own tests are in test_reader_watchdog.py."""
    reader = sa.create_engine(db.reader_url(database_url))
    server = make_server(reader, port=0, threads=2, watchdog=Elsewhere())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://{}:{}".format(*server.server_address[:2])
    server.shutdown()
    server.server_close()
    reader.dispose()


def _request(url: str, method: str = "GET", data: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body (urllib sends data as application/x-www-form-urlencoded unless told)."""
    request = urllib.request.Request(url, data, headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _get(url: str) -> tuple[int, bytes]:
    status, _, body = _request(url)
    return status, body


def _infos(body: bytes) -> dict[str, str]:
    return {info.name: info.value for info in parse(io.BytesIO(body)).resources[0].infos}


def test_a_vo_client_cone_search_matches_astropy(service, engine):
    results = pyvo.dal.SCSService(f"{service}/scs").search(pos=CENTRE, radius=0.2)
    table = results.to_table()
    # pyvo found the id and position columns by their SCS UCDs
    assert [r.id for r in results][:3] == list(table["source_id"][:3])
    assert results[0].pos.ra.deg == pytest.approx(table["ra"][0]) and results[0].pos.dec.deg == pytest.approx(table["dec"][0])
    with engine.connect() as conn:
        everything = conn.execute(sa.text("SELECT source_id, ra, dec FROM healcat.source WHERE ra IS NOT NULL")).all()
    ids, ra, dec = (np.array(c) for c in zip(*everything))
    sep = SkyCoord(ra, dec, unit="deg").separation(SkyCoord(*CENTRE, unit="deg")).deg
    inside = ids[sep <= 0.2]
    # the id as text, as SCS wants the ID_MAIN column
    assert len(inside) > 10 and sorted(int(i) for i in table["source_id"]) == sorted(inside)
    assert list(table["distance_arcsec"]) == sorted(table["distance_arcsec"])  # nearest first
    assert table["ra"].unit == "deg" and table["distance_arcsec"].unit == "arcsec"
    # the same rows as the Python API
    assert [int(i) for i in table["source_id"]] == list(cone_search(*CENTRE, 0.2 * 3600)["source_id"])


def test_verbosity_release_maxrec_and_the_metadata_query(service):
    status, body = _get(f"{service}/scs?ra={CENTRE[0]}&dec={CENTRE[1]}&sr=0.2&VERB=1&release={SDSS_RELEASE}")
    table = parse_single_table(io.BytesIO(body)).to_table()
    assert status == 200 and table.colnames == ["source_id", "ra", "dec"] and len(table) > 10
    capped = pyvo.dal.SCSService(f"{service}/scs").search(pos=CENTRE, radius=0.2, maxrec=3)
    status = {info.name: info.value for info in capped.votable.resources[0].infos}["QUERY_STATUS"]
    assert len(capped) == 3 and status == "OVERFLOW"
    assert list(capped.to_table()["source_id"]) == list(table["source_id"][:3])
    meta = pyvo.dal.SCSService(f"{service}/scs").search(pos=CENTRE, radius=0)
    assert len(meta) == 0 and "distance_arcsec" in meta.fieldnames
    assert {info.name: info.value for info in meta.votable.resources[0].infos}["QUERY_STATUS"] == "OK"
    status, body = _get(f"{service}/scs?RA={CENTRE[0]}&DEC={CENTRE[1]}&SR=0.2&MAXREC=0")  # rows to be had: DALI
    assert status == 200 and _infos(body)["QUERY_STATUS"] == "OVERFLOW" and len(parse_single_table(
        io.BytesIO(body)).to_table()) == 0


def test_an_answer_names_the_releases_and_model_version_it_read(service, engine, monkeypatch):
    from catalog import service as served

    with engine.connect() as conn:
        published = conn.scalars(sa.text("SELECT name FROM healcat.current_release ORDER BY name")).all()
        version = conn.scalar(sa.text("SELECT version FROM healcat.current_model WHERE name = 'photoz-sdss'"))
    statements = []
    monkeypatch.setattr(served, "run", lambda *args, **kwargs: statements.append(args[2]) or run(*args, **kwargs))
    # the rows and the releases they came from in one statement (one snapshot: they were two), an empty cone too
    for cone, rows in ((f"RA={CENTRE[0]}&DEC={CENTRE[1]}&SR=0.2", True), ("RA=1&DEC=-89.5&SR=0.001", False)):
        status, body = _get(f"{service}/scs?{cone}")
        assert status == 200 and _infos(body)["releases"] == ", ".join(published)
        assert (len(parse_single_table(io.BytesIO(body)).to_table()) > 0) == rows
    assert len(statements) == 2
    monkeypatch.undo()
    assert _infos(_get(f"{service}/scs?RA={CENTRE[0]}&DEC={CENTRE[1]}&SR=0.2&RELEASE={SDSS_RELEASE}")[1])[
        "releases"] == SDSS_RELEASE
    source = int(cone_search(*CENTRE, 1.0)["source_id"][0])
    status, body = _get(f"{service}/similar?source_id={source}&k=5&maxrec=2&release={SDSS_RELEASE}")
    infos, table = _infos(body), parse_single_table(io.BytesIO(body)).to_table()
    assert status == 200 and (infos["model"], infos["model_version"], infos["releases"]) == (
        "photoz-sdss", version, SDSS_RELEASE)
    assert infos["QUERY_STATUS"] == "OVERFLOW" and list(table["source_id"]) == list(similar(source, k=2)["source_id"])
    # a release the model has not run on: an error VOTable saying so (it was an empty answer), strictly valid
    status, body = _get(f"{service}/similar?source_id={source}&k=3&release={GAIA_RELEASE}")
    votable = parse(io.BytesIO(body), verify="exception")
    infos = {info.name: info.value for info in votable.resources[0].infos}
    assert status == 400 and infos["QUERY_STATUS"] == "ERROR"
    assert f"photoz-sdss version {version} has no finished run on release {GAIA_RELEASE}" in infos["Error"]
    status, body = _get(f"{service}/scs?RA={CENTRE[0]}&DEC={CENTRE[1]}&SR=0.01&"
                        "RESPONSEFORMAT=application/x-votable%2Bxml;serialization=TABLEDATA")  # DALI's MIME parameters
    assert status == 200 and _infos(body)["QUERY_STATUS"] == "OK"


def test_a_cone_without_maxrec_gets_the_default_rows(service, monkeypatch):
    """A whole-sky cone of 100,000 rows held the service's threads for a minute: the default is less."""
    from catalog import service as module

    monkeypatch.setattr(module, "DEFAULT_ROWS", 3)
    status, body = _get(f"{service}/scs?RA={CENTRE[0]}&DEC={CENTRE[1]}&SR=0.2")
    assert status == 200 and _infos(body)["QUERY_STATUS"] == "OVERFLOW"
    assert len(parse_single_table(io.BytesIO(body)).to_table()) == 3
    status, body = _get(f"{service}/scs?RA={CENTRE[0]}&DEC={CENTRE[1]}&SR=0.2&MAXREC=5")
    assert len(parse_single_table(io.BytesIO(body)).to_table()) == 5


@pytest.mark.parametrize("maxrec", ["1000000000000", "9223372036854775808", "99999999999999999999", "9" * 5000])
def test_a_maxrec_above_the_limit_gets_the_limit(service, monkeypatch, maxrec):
    """DALI lets a service hold MAXREC to its own limit: a larger one was a 400 (TOPCAT may ask for
    millions), and past 64 bits still was."""
    from catalog import service as module

    monkeypatch.setattr(module, "MAX_ROWS", 4)
    status, body = _get(f"{service}/scs?RA={CENTRE[0]}&DEC={CENTRE[1]}&SR=0.2&MAXREC={maxrec}")
    votable = parse(io.BytesIO(body))
    infos = {info.name: info.value for info in votable.resources[0].infos}
    assert status == 200 and infos["QUERY_STATUS"] == "OVERFLOW"
    assert len(votable.get_first_table().to_table()) == 4


@pytest.mark.parametrize(("query", "message"), [
    ("RA=161&DEC=0.7", "SR is required"),
    ("RA=161&DEC=91&SR=1", "DEC must be in [-90, 90] degrees, got 91"),  # the protocol's names, not Cone's
    ("RA=2e9&DEC=0.7&SR=1", "RA must be in [0, 360] degrees"),
    ("RA=-0.5&DEC=0.7&SR=1", "RA must be in [0, 360] degrees, got -0.5"),  # SCS: an error, not taken modulo 360
    ("RA=360.5&DEC=0.7&SR=1", "RA must be in [0, 360] degrees, got 360.5"),
    ("RA=360.0001&DEC=0.7&SR=1", "RA must be in [0, 360] degrees, got 360.0001"),  # as written: was 360
    ("RA=161&DEC=90.0000001&SR=1", "DEC must be in [-90, 90] degrees, got 90.0000001"),
    ("RA=161&DEC=0.7&SR=180.00001", "SR must be in [0, 180] degrees, got 180.00001"),
    ("RA=161&DEC=0.7&SR=1&RESPONSEFORMAT=csv", "RESPONSEFORMAT 'csv' is not served: the answers are VOTables"),
    ("RA=1_6_1&DEC=0.7&SR=1", "RA must be a number, got '1_6_1'"),  # Python's float() read 161
    ("RA=\u0661\u0666\u0661&DEC=0.7&SR=1", "RA must be a number, got '\u0661\u0666\u0661'"),  # Arabic-Indic 161
    ("RA=0x10&DEC=0.7&SR=1", "RA must be a number, got '0x10'"),
    ("RA=inf&DEC=0.7&SR=1", "RA must be a finite number"),
    ("RA=161&DEC=1e999&SR=1", "DEC must be a finite number, got '1e999'"),
    ("RA=161&DEC=0.7&SR=1&MAXREC=-1", "MAXREC must be a whole number in [0, "),
    ("RA=161&DEC=0.7&SR=1&MAXREC=1.5", "MAXREC must be a whole number in [0, "),
    ("RA=161&DEC=0.7&SR=1&MAXREC=1_0", "MAXREC must be a whole number in [0, "),
    ("RA=161&DEC=0.7&SR=1&VERB=\u0662", "VERB must be a whole number in [1, 3]"),  # Arabic-Indic 2
    ("RA=161&DEC=0.7&SR=200", "SR must be in [0, 180] degrees"),
    ("RA=161&DEC=0.7&SR=1e-320", "SR must be 0 (the columns only) or at least"),  # was a 500: healpy's cover overflowed
    ("RA=abc&DEC=0.7&SR=1", "RA must be a number, got 'abc'"),
    ("RA=nan&DEC=0.7&SR=1", "RA must be a finite number"),
    ("RA=1&RA=2&DEC=0.7&SR=1", "RA is given 2 times"),
    ("RA=161&DEC=0.7&SR=1&VERB=7", "VERB must be a whole number in [1, 3]"),
    ("RA=161&DEC=0.7&SR=1&RELEASE=x'); DROP TABLE healcat.source; --", "no release named"),
])
def test_a_bad_request_is_an_error_votable_a_vo_client_reads(service, query, message):
    status, body = _get(f"{service}/scs?{urllib.request.quote(query, safe='=&')}")
    infos = _infos(body)
    assert status == 400 and infos["QUERY_STATUS"] == "ERROR" and message in infos["Error"]
    with pytest.raises((pyvo.dal.DALQueryError, pyvo.dal.DALServiceError), match="no release named 'nope'"):
        pyvo.dal.SCSService(f"{service}/scs").search(pos=CENTRE, radius=0.1, release="nope")


@pytest.mark.parametrize("path, version", [("scs?RA=1&DEC=91&SR=1", "1.1"), ("scs/?SR=1", "1.1"),
                                           ("similar?SOURCE_ID=x", "1.4"), ("nowhere", "1.4")])
def test_an_error_votable_has_the_version_of_the_paths_answers(service, path, version):
    """An SCS client gets its errors as it gets its answers, VOTable 1.1 (SCS 1.03's): they were 1.4 on
    every path; a method http.server refuses (PUT) answers in the path's version too."""
    if path != "nowhere":  # (a path not served is a 404 whose text lists those that are)
        status, body = _get(f"{service}/{path}")
        assert status == 400 and _infos(body)["QUERY_STATUS"] == "ERROR"
        assert parse(io.BytesIO(body), verify="exception").version == version
    status, _, body = _request(f"{service}/{path}", "PUT", b"")
    assert status == 501 and parse(io.BytesIO(body), verify="exception").version == version


def test_similarity_search_over_http_is_the_python_api(service, catalog):
    source = int(cone_search(*CENTRE, 1.0)["source_id"][0])
    status, body = _get(f"{service}/similar?source_id={source}&k=5")
    table = parse_single_table(io.BytesIO(body)).to_table()
    expected = similar(source, k=5)
    assert status == 200 and list(table["source_id"]) == list(expected["source_id"])
    assert np.allclose(table["distance"], expected["distance"])
    status, body = _get(f"{service}/similar?source_id={source}&model=nope")
    assert status == 400 and b"nope" in body


def test_the_index_and_an_unknown_path(service):
    status, body = _get(f"{service}/")
    assert status == 200 and b"/scs?RA=" in body and b"/similar?SOURCE_ID=" in body
    status, body = _get(f"{service}/tap/sync")
    assert status == 404 and b"no such service: /tap/sync" in body


@pytest.fixture
def small_service(database_url, catalog, monkeypatch):
    """A service of one thread, quick to drop silent clients (2 s) and slow ones (3 s for the request
    line and headers, as the environment says), with room for two waiting connections."""
    reader = sa.create_engine(db.reader_url(database_url))
    monkeypatch.setenv("HEALCAT_SERVE_HEADER_TIMEOUT_S", "3")
    server = make_server(reader, port=0, threads=1, timeout=2.0, queued=2)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    reader.dispose()


def _silent(server, n: int) -> list[socket.socket]:
    """n connections that never send a byte, once the server has taken them."""
    sockets = [socket.create_connection(server.server_address[:2]) for _ in range(n)]
    wait_until(lambda: server.connections == n, f"the service takes {n} connections")
    return sockets


def _scs(server, query: str = "RA=161.08&DEC=0.68&SR=0.05"):
    return _get("http://{}:{}/scs?{}".format(*server.server_address[:2], query))


def test_silent_connections_are_dropped_and_do_not_stall_the_service(small_service):
    silent = _silent(small_service, 2)  # the thread and one waiting place
    try:
        status, body = _scs(small_service)  # once the silent ones have timed out, after 2 s each
        assert status == 200
        assert all(s.recv(1) == b"" for s in silent)  # closed by the server
    finally:
        for s in silent:
            s.close()


def test_a_client_dripping_its_request_is_cut_off_and_others_are_answered(small_service):
    """A byte every 0.5 s never tripped the 2 s wait for a client's next bytes: a client dripping its
    headers held the only thread for ever, and every other request waited behind it."""
    ended = threading.Event()

    def drip(client: socket.socket) -> None:
        client.sendall(b"GET /scs?RA=161.08&DEC=0.68&SR=0.05 HTTP/1.0\r\n")
        client.settimeout(0.5)
        deadline = time.monotonic() + 60  # liveness: long past the 3 s the server allows
        while time.monotonic() < deadline:
            try:
                client.sendall(b"X")  # a header that never ends
                client.recv(1)  # b"" (closed) or a byte of an answer: the server is done with it
            except TimeoutError:
                continue
            except OSError:  # reset: the server closed it while bytes were on their way
                pass
            ended.set()
            return

    with socket.create_connection(small_service.server_address[:2]) as client:
        dripping = threading.Thread(target=drip, args=(client,))
        dripping.start()
        wait_until(lambda: small_service.connections == 1, "it holds the service's one thread")
        status, body = _scs(small_service)
        dripping.join(60)
    assert ended.is_set(), "the server closed the dripping connection"
    assert status == 200 and len(parse_single_table(io.BytesIO(body)).to_table()) > 0


def _waiting_on_lock(engine: sa.Engine) -> list[int]:
    """The reader role's sessions whose statement waits for a lock."""
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT pid FROM pg_stat_activity WHERE usename = :r AND wait_event_type = 'Lock'"),
                            {"r": db.READER_ROLE}).scalars().all()


def test_the_search_of_a_client_that_hangs_up_is_cancelled(small_service, engine, caplog):
    """A search held up (here by a lock on the sources) ran on after its client had gone, up to the
    statement timeout, holding the service's thread; now it is cancelled within a poll or two, while
    a client that stays is answered once the search can run."""
    request = b"GET /scs?RA=161.08&DEC=0.68&SR=0.05 HTTP/1.0\r\n\r\n"
    caplog.set_level(logging.INFO, logger="catalog.service")
    with engine.connect() as locker:
        locker.execute(sa.text("LOCK TABLE healcat.source IN ACCESS EXCLUSIVE MODE"))
        with socket.create_connection(small_service.server_address[:2]) as staying:
            staying.sendall(request)
            wait_until(lambda: _waiting_on_lock(engine), "the search waits for the lock")
            looks = small_service.departures.looks
            wait_until(lambda: small_service.departures.looks > looks + 3, "several polls of the connections")
            assert _waiting_on_lock(engine), "a client still there is not cancelled"
            locker.rollback()
            staying.settimeout(60)
            answer = b"".join(iter(lambda: staying.recv(65536), b""))
        assert answer.startswith(b"HTTP/1.0 200") and b"<TR>" in answer
        locker.execute(sa.text("LOCK TABLE healcat.source IN ACCESS EXCLUSIVE MODE"))
        with socket.create_connection(small_service.server_address[:2]) as leaving:
            leaving.sendall(request)
            wait_until(lambda: _waiting_on_lock(engine), "the search waits for the lock")
        wait_until(lambda: not _waiting_on_lock(engine), "the search of the client that left is cancelled", 10.0)
        locker.rollback()  # only now could the search have gone on
    assert any("hung up before its answer: its search was cancelled" in r.getMessage() for r in caplog.records)
    status, body = _scs(small_service)
    assert status == 200 and len(parse_single_table(io.BytesIO(body)).to_table()) > 0, "the thread is free again"


def _split_answer(received: bytes) -> tuple[bytes, bytes, int]:
    """An HTTP answer's head, its body as received and the length its Content-Length says."""
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    return head, body, length


def test_a_large_answer_reaches_a_client_reading_slowly_but_steadily(database_url, catalog):
    """A client reading 64 KiB every 0.1 s takes over 10 s for an 8 MB answer, several times the
    service's 2 s timeout, and gets it whole. (Sent in one sendall, the timeout bounded the whole
    answer: the connection was cut once the kernel's buffers, a few MB, stopped taking it. Each
    64 KiB piece now has its own 2 s: only a reader stalled that long would miss one.)"""
    reader = sa.create_engine(db.reader_url(database_url))
    server = make_server(reader, port=0, threads=1, timeout=2.0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with socket.create_connection(server.server_address[:2]) as client:
            client.sendall(b"GET /scs?RA=270&DEC=-30&SR=25&VERB=3&MAXREC=100000 HTTP/1.0\r\n\r\n")  # Gaia toward the bulge
            client.settimeout(60)  # liveness
            received, pauses = bytearray(), 0
            while chunk := client.recv(64 * 1024):
                received += chunk
                time.sleep(0.1)
                pauses += 1
    finally:
        server.shutdown()
        server.server_close()
        reader.dispose()
    head, body, length = _split_answer(received)
    assert head.startswith(b"HTTP/1.0 200") and length > 7_000_000  # more than the kernel buffers take
    assert pauses * 0.1 > 3 * 2.0  # what the test is about: a read far longer than the service's timeout
    assert len(body) == length  # whole, not cut at the first timeout
    assert len(parse_single_table(io.BytesIO(body)).to_table()) > 10_000


def test_a_client_reading_slower_than_the_least_rate_is_cut_off(database_url, catalog, caplog):
    """Each 64 KiB piece within the timeout let a client reading 16 KB/s hold a thread for 40 minutes
    over a 26 MB answer (four held the service): the whole answer must now go at the least rate on
    average (here 2 MiB/s, so the 8 MB answer has 5 + 4 s; each 64 KiB piece is taken well within 5 s)."""
    reader = sa.create_engine(db.reader_url(database_url))
    server = make_server(reader, port=0, threads=1, timeout=5.0, min_send_kibs=2048)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    caplog.set_level(logging.INFO, logger="catalog.service")
    try:
        with socket.socket() as client:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # the kernel holds little for it
            client.connect(server.server_address[:2])
            client.sendall(b"GET /scs?RA=270&DEC=-30&SR=25&VERB=3&MAXREC=100000 HTTP/1.0\r\n\r\n")
            client.settimeout(60)  # liveness
            received = bytearray()
            try:
                while chunk := client.recv(64 * 1024):  # 256 KiB/s
                    received += chunk
                    time.sleep(0.25)
            except ConnectionResetError:  # closed with bytes unread
                pass
        status, _ = _scs(server)  # the thread is free again
    finally:
        server.shutdown()
        server.server_close()
        reader.dispose()
    head, body, length = _split_answer(received)
    assert head.startswith(b"HTTP/1.0 200") and len(body) < length
    assert any("slower than 2048 KiB/s on average" in r.getMessage() for r in caplog.records)
    assert status == 200


def test_a_number_that_cannot_match_is_refused_without_backtracking():
    """The number pattern's two digit runs could split a long number anywhere: failing to match 30,000
    digits and an 'x' took 16 s under the interpreter lock, every thread of the service stopped. (A
    liveness bound: the old pattern takes minutes on these 100,000 digits.)"""
    from catalog.errors import QueryError
    from catalog.service import Params

    errors = []
    checking = threading.Thread(target=lambda: errors.append(pytest.raises(
        QueryError, Params("RA=" + "1" * 100_000 + "x").number, "RA")), daemon=True)
    checking.start()
    checking.join(60)
    assert not checking.is_alive() and "RA must be a number" in str(errors[0].value)


def test_the_log_escapes_control_characters_and_the_server_names_no_python(service, caplog):
    """A raw ESC or CR in a request line reached the operator's terminal (it can erase a line and
    print a forged one); the Server header named the Python version."""
    host, port = service.removeprefix("http://").split(":")
    caplog.set_level(logging.INFO, logger="catalog.service")
    with socket.create_connection((host, int(port))) as client:
        client.sendall(b"GET /nowhere\x1b[2K\rFORGED HTTP/1.0\r\n\r\n")
        answer = b"".join(iter(lambda: client.recv(65536), b""))
    assert answer.startswith(b"HTTP/1.0 400")  # the CR splits the request line: four words
    said = [r.getMessage() for r in caplog.records if "FORGED" in r.getMessage()]
    assert said and not any("\x1b" in m or "\r" in m for m in said)
    assert any("/nowhere\\x1b[2K\\x0dFORGED" in m for m in said)
    _, headers, _ = _request(f"{service}/")
    assert headers["Server"] == "healcat"


def test_a_bad_header_timeout_in_the_environment_is_refused(database_url, monkeypatch):
    from catalog.errors import ConfigurationError

    monkeypatch.setenv("HEALCAT_SERVE_HEADER_TIMEOUT_S", "0")
    with pytest.raises(ConfigurationError, match="HEALCAT_SERVE_HEADER_TIMEOUT_S='0'"):
        make_server(sa.create_engine(db.reader_url(database_url)), port=0)


def test_a_full_queue_is_answered_503_at_once(small_service):
    silent = _silent(small_service, 3)  # the thread and both waiting places
    try:
        with socket.create_connection(small_service.server_address[:2], timeout=5) as client:
            client.sendall(b"GET /scs?RA=1&DEC=2&SR=0.1 HTTP/1.0\r\n\r\n")
            answer = b"".join(iter(lambda: client.recv(65536), b""))
        assert answer.startswith(b"HTTP/1.0 503") and b"the service is busy" in answer
    finally:
        for s in silent:
            s.close()
    wait_until(lambda: small_service.connections == 0, "the service lets the closed connections go")
    status, _ = _scs(small_service)
    assert status == 200


@pytest.mark.parametrize("query", ["scs?RA=1&DEC=2&SR=1&RELEASE=%00", "similar?SOURCE_ID=1&VERSION=%00",
                                   "scs?RA=1&DEC=2&SR=1&RELEASE=a%1Bb", "scs?RA=1&DEC=2&SR=1&X%00=1"])
def test_control_characters_in_a_parameter_are_a_bad_request(service, query):
    status, body = _get(f"{service}/{query}")
    infos = {info.name: info.value for info in parse(io.BytesIO(body)).resources[0].infos}
    assert status == 400 and "must not hold control characters" in infos["Error"]


def test_the_service_sets_its_own_limits_whatever_the_role_defaults_say(database_url, catalog):
    reader = sa.create_engine(db.reader_url(database_url))
    server = make_server(reader, port=0, threads=1, watchdog=Elsewhere())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with reader.begin() as conn:  # a reader makes every reader session time out at once
            conn.execute(sa.text("ALTER ROLE healcat_reader SET statement_timeout = '1ms'"))
            conn.execute(sa.text("ALTER ROLE healcat_reader SET work_mem = '64GB'"))
        status, body = _scs(server, "RA=161.08&DEC=0.68&SR=0.5")
        assert status == 200 and len(parse_single_table(io.BytesIO(body)).to_table()) > 0
        with reader.connect() as conn:
            assert conn.scalar(sa.text("SHOW statement_timeout")) == "1min"
            assert conn.scalar(sa.text("SHOW work_mem")) == "32MB"
    finally:
        server.shutdown()
        server.server_close()
        reader.dispose()
        db.assert_reader_role(database_url)


def test_numbers_in_any_decimal_form_are_the_same_search(service):
    """Sign, point, exponent and either case of e: what the protocols allow, read as written."""
    _, plain = _get(f"{service}/scs?RA={CENTRE[0]}&DEC={CENTRE[1]}&SR=0.2")
    status, body = _get(f"{service}/scs?RA=%2B1.61080928E2&DEC=.677356&SR=2e-1")
    assert status == 200 and body == plain and len(parse_single_table(io.BytesIO(body)).to_table()) > 10
    status, body = _get(f"{service}/scs?RA=360&DEC=0&SR=0.1")  # both ends of [0, 360] are RA
    assert status == 200 and _infos(body)["QUERY_STATUS"] == "OK"


@pytest.mark.parametrize("answer", ["cone", "metadata", "empty", "similar"])
def test_every_answer_is_a_valid_votable_with_its_fields_described(service, answer):
    """Strictly parsed: the answers said VOTable 1.4, where SCS's UCD1 words (ID_MAIN, ...) are invalid;
    /scs now says 1.1 (SCS 1.03's version) and keeps them, /similar says 1.4 with UCD1+ words."""
    query = {"cone": f"scs?RA={CENTRE[0]}&DEC={CENTRE[1]}&SR=0.2&VERB=3",
             "metadata": f"scs?RA={CENTRE[0]}&DEC={CENTRE[1]}&SR=0",
             "empty": "scs?RA=1&DEC=-89.5&SR=0.001",
             "similar": f"similar?SOURCE_ID={int(cone_search(*CENTRE, 60)['source_id'][0])}&K=5"}[answer]
    status, body = _get(f"{service}/{query}")
    votable = parse(io.BytesIO(body), verify="exception")
    element = votable.get_first_table()
    fields = {field.name: field for field in element.fields}
    assert status == 200 and votable.version == ("1.4" if answer == "similar" else "1.1")
    assert len(element.array) > 10 if answer == "cone" else len(element.array) == {"similar": 5}.get(answer, 0)
    assert all(field.description for field in fields.values())
    # text of any length: the metadata query's and an empty answer's columns said arraysize="1"
    assert fields["release"].datatype == fields["object_id"].datatype == "unicodeChar"
    assert fields["release"].arraysize == fields["object_id"].arraysize == "*"
    [coosys] = votable.resources[0].coordinate_systems
    assert coosys.system == "ICRS" and fields["ra"].ref == fields["dec"].ref == coosys.ID
    if answer == "similar":
        assert fields["source_id"].datatype == "long" and fields["source_id"].ucd == "meta.id;meta.main"
        assert fields["ra"].ucd == "pos.eq.ra;meta.main" and fields["distance"].unit is None
    else:  # SCS 1.03: exactly one FIELD with ucd ID_MAIN, "with an array character type"
        assert [name for name, field in fields.items() if field.ucd == "ID_MAIN"] == ["source_id"]
        assert fields["source_id"].datatype == "char" and fields["source_id"].arraysize == "*"
        assert [fields[name].ucd for name in ("ra", "dec", "release", "object_id", "distance_arcsec")] == [
            "POS_EQ_RA_MAIN", "POS_EQ_DEC_MAIN", "ID_CATALOG", "ID_ALTERNATIVE", "POS_ANG_DIST_GENERAL"]
        assert fields["distance_arcsec"].unit == "arcsec" and fields["ra"].unit == "deg"


def test_head_and_post_answer_as_get_and_other_methods_get_an_error_votable(service):
    query = f"RA={CENTRE[0]}&DEC={CENTRE[1]}&SR=0.1"
    status, headers, body = _request(f"{service}/scs?{query}")
    assert status == 200 and len(parse_single_table(io.BytesIO(body)).to_table()) > 0
    # HEAD: the GET's status and headers, no body (it was 501 and an HTML page)
    assert _request(f"{service}/scs?{query}", "HEAD") == (200, headers | {"Date": ANY}, b"")
    # POST, form-encoded (DALI): the same answer, the parameters in the body or some in the URL too
    assert _request(f"{service}/scs", "POST", query.encode())[::2] == (200, body)
    assert _request(f"{service}/scs?RA={CENTRE[0]}", "POST", f"DEC={CENTRE[1]}&SR=0.1".encode())[::2] == (200, body)
    status, _, answer = _request(f"{service}/scs?RA=1", "POST", b"RA=2&DEC=0&SR=1")
    assert status == 400 and "RA is given 2 times" in _infos(answer)["Error"]
    status, _, answer = _request(f"{service}/scs", "POST", b'{"RA": 1}', {"Content-Type": "application/json"})
    assert status == 415 and "application/x-www-form-urlencoded" in _infos(answer)["Error"]
    status, headers, answer = _request(f"{service}/scs?{query}", "PUT", b"")
    infos = _infos(answer)
    assert status == 501 and headers["Content-Type"].startswith("text/xml")
    assert infos["QUERY_STATUS"] == "ERROR" and "'PUT'" in infos["Error"]


def test_a_page_of_another_origin_may_read_the_answers(service):
    """Aladin Lite and other browser clients query from their own sites: without CORS headers the
    browser kept every answer from them (and a POST's preflight got an error VOTable)."""
    origin = {"Origin": "https://aladin.cds.unistra.fr"}
    for path in (f"scs?RA={CENTRE[0]}&DEC={CENTRE[1]}&SR=0.1", "scs?SR=-1", "nowhere"):
        status, headers, _ = _request(f"{service}/{path}", headers=origin)
        assert headers["Access-Control-Allow-Origin"] == "*", (path, status)
    status, headers, body = _request(f"{service}/scs", "OPTIONS", headers={
        **origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "Content-Type"})
    assert (status, body) == (204, b"")
    assert headers["Access-Control-Allow-Origin"] == "*" and "POST" in headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in headers["Access-Control-Allow-Headers"]


@pytest.fixture
def one_thread(database_url, catalog):
    """A service on one thread (requests answered in turn), as the reader role with its limits as they
    are when the test asks for it (``db.READER_SESSION``)."""
    reader = sa.create_engine(db.reader_url(database_url))
    server = make_server(reader, port=0, threads=1)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield "http://{}:{}".format(*server.server_address[:2])
    server.shutdown()
    server.server_close()
    reader.dispose()


def test_a_client_that_hangs_up_is_one_log_line_not_a_traceback(one_thread, capsys, caplog):
    """Each printed a BrokenPipeError or ConnectionResetError traceback ('Exception occurred during
    processing of request'). A client gone while its search runs has the search cancelled (below), one
    gone while its answer is sent is found then: one line either way."""
    host, port = one_thread.removeprefix("http://").split(":")
    with caplog.at_level(logging.INFO, logger="catalog.service"):
        for _ in range(3):  # the whole sky: far more than the kernel's buffers take before the client is gone
            with socket.create_connection((host, int(port))) as client:
                client.sendall(b"GET /scs?RA=161&DEC=0&SR=180 HTTP/1.0\r\n\r\n")
        status, _ = _get(f"{one_thread}/scs?RA=161.08&DEC=0.68&SR=0.05")  # answered after the three
    left = [record for record in caplog.records if "left before its answer was sent" in record.getMessage()
            or "hung up before its answer: its search was cancelled" in record.getMessage()]
    assert status == 200 and len(left) == 3
    assert all("127.0.0.1" in r.getMessage() and "GET /scs?RA=161&DEC=0&SR=180 HTTP/1.0" in r.getMessage()
               and r.levelno == logging.WARNING and not r.exc_info for r in left)
    assert "Traceback" not in capsys.readouterr().err


@pytest.fixture
def short_statement_timeout(monkeypatch):
    monkeypatch.setitem(db.READER_SESSION, "statement_timeout", "300ms")


def test_a_statement_timeout_is_503_with_retry_after_not_a_bad_request(short_statement_timeout, one_thread,
                                                                       engine):
    """The server's limit, not the client's mistake: it was a 400 telling the user to narrow the search."""
    source = int(cone_search(*CENTRE, 60)["source_id"][0])
    with engine.connect() as owner:  # the searches wait on the lock until their statement timeout
        owner.execute(sa.text("LOCK TABLE healcat.source IN ACCESS EXCLUSIVE MODE"))
        answers = [_request(f"{one_thread}/{query}") for query in
                   (f"scs?RA={CENTRE[0]}&DEC={CENTRE[1]}&SR=0.1", f"similar?SOURCE_ID={source}")]
        owner.rollback()
    for status, headers, body in answers:
        infos = _infos(body)
        assert status == 503 and int(headers["Retry-After"]) > 0 and infos["QUERY_STATUS"] == "ERROR"
        assert "did not finish within the service's statement timeout (300ms)" in infos["Error"]
    assert _get(f"{one_thread}/scs?RA={CENTRE[0]}&DEC={CENTRE[1]}&SR=0.1")[0] == 200  # the lock gone


@pytest.fixture
def reader_connection_limit(engine):
    """Sets healcat_reader's connection limit (ALTER ROLE ... CONNECTION LIMIT), restored after."""
    def limit(n: int) -> None:
        with engine.begin() as conn:
            conn.execute(sa.text(f"ALTER ROLE {db.READER_ROLE} CONNECTION LIMIT {int(n)}"))

    with engine.connect() as conn:
        before = conn.scalar(sa.text("SELECT rolconnlimit FROM pg_roles WHERE rolname = :r"), {"r": db.READER_ROLE})
    yield limit
    limit(before)


def test_serve_warns_when_its_threads_are_more_than_the_role_may_connect(database_url, reader_connection_limit,
                                                                         caplog):
    reader = sa.create_engine(db.reader_url(database_url))
    try:
        with reader.connect() as conn, caplog.at_level(logging.WARNING, logger="catalog.service"):
            reader_connection_limit(-1)  # none
            warn_of_connection_limit(conn, 10_000)
            reader_connection_limit(200)
            warn_of_connection_limit(conn, 200)
            assert not caplog.records
            warn_of_connection_limit(conn, 201)
    finally:
        reader.dispose()
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert f"201 threads, but role {db.READER_ROLE} may open 200 connections" in record.getMessage()


def test_no_reader_connection_free_is_503_with_retry_after(reader_connection_limit, one_thread):
    """PostgreSQL's 'too many connections for role' (SQLSTATE 53300) was a 500 'internal error'."""
    reader_connection_limit(0)  # the service's thread has no session yet: its first is refused
    for query in (f"scs?RA={CENTRE[0]}&DEC={CENTRE[1]}&SR=0.1", "similar?SOURCE_ID=1"):
        status, headers, body = _request(f"{one_thread}/{query}")
        infos = _infos(body)
        assert status == 503 and int(headers["Retry-After"]) > 0 and infos["QUERY_STATUS"] == "ERROR"
        assert "no database connection free (the reader role's connection limit" in infos["Error"]


def test_a_cancel_for_a_request_that_ended_never_reaches_the_thread_s_next_one(engine, database_url):
    """The poller saw a client gone, the handler's search ended, and the same thread's next search
    (another client's) got the cancel (review): a cancel belongs to the request it was meant for."""
    import psycopg

    from catalog.search.cancel import cancellable
    from catalog.service import Departures

    departures, a, b = Departures(), socket.socketpair(), socket.socketpair()
    session = psycopg.connect(db.libpq_url(database_url), autocommit=True)

    def sleeping() -> bool:
        with engine.connect() as conn:
            return conn.scalar(sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p AND state = 'active' "
                                       "AND query LIKE 'SELECT pg_sleep%'"), {"p": session.info.backend_pid}) == 1

    def request_running() -> tuple[threading.Thread, dict]:
        """A request whose search runs (a 3 s statement), watched."""
        outcome, started = {}, threading.Event()

        def request() -> None:
            with departures.watching(b[0]) as gone, cancellable(session):
                outcome["watch"] = next(w for w in departures._watches if w.sock is b[0])
                started.set()
                try:
                    session.execute("SELECT pg_sleep(3)")
                    outcome["result"] = "finished"
                except psycopg.errors.QueryCanceled:
                    outcome["result"] = "cancelled"
                outcome["gone"] = gone()

        thread = threading.Thread(target=request)
        thread.start()
        assert started.wait(30)
        wait_until(sleeping, "the request's statement runs")
        return thread, outcome

    try:
        with departures.watching(a[0]) as gone_a:
            ended = next(iter(departures._watches))
        assert not departures._watches and not gone_a(), "a request done is watched no longer"
        thread, outcome = request_running()
        departures._cancel(ended)  # the earlier request's cancel, late: no effect on this one
        thread.join(30)
        assert (outcome["result"], outcome["gone"]) == ("finished", False)
        thread, outcome = request_running()
        departures._cancel(outcome["watch"])  # its own: cancelled at once
        thread.join(30)
        assert (outcome["result"], outcome["gone"]) == ("cancelled", True)
    finally:
        session.close()
        for pair in (a, b):
            for end in pair:
                end.close()
