"""``healcat serve``'s Simple Cone Search (/scs) at MAXREC=100,000 against the plain cone statement.

The /scs answer takes a cone's rows and the releases it read from one statement
(:data:`catalog.service.SCS_STATEMENT`); the baseline is the same cone's rows through the plain cone
statement (:meth:`catalog.search.cone.Cone.sql` and ``LIMIT``, as ``nearest()`` runs it: no releases,
no join, no second sort). Both fetch MAXREC + 1 rows (the service asks one more to see an overflow), as
the read-only role on its own sessions (the service's work_mem and timeouts), binary, on the sky of
benchmarks/sky10m.py (the benchmark catalog, as the cone benchmark's: HEALCAT_HOME, default var/bench).

Timed per cone, in each round, in turn (the order swapped every round): the plain statement's rows
fetched (the baseline); SCS_STATEMENT's rows fetched; ``service.cone()``, the /scs search to its
astropy Table (SCS_STATEMENT and its rows split from the releases); the whole HTTP answer, a GET of
/scs from the service on a local port (the VOTable written and read whole). Printed: medians over
cones and rounds (and the range), each against the baseline. Checked, failing loudly: every answer's
rows are the baseline's, in its order (all columns; the HTTP answer's source_ids, parsed in the first
round), the answer says OVERFLOW and names the sky's release.

The cones: ``BENCH_SCS_CENTRES`` seeded random centres (default 3), each with the radius whose cone
holds CONE_FILL x MAXREC sources (found on the sky's arrays); ``BENCH_SCS_ROUNDS`` rounds (default 5);
``BENCH_SCS_MAXREC`` (default and most: the service's MAX_ROWS, 100,000) for a small sky.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import platform
import threading
import time
import urllib.parse
import urllib.request

import numpy as np
import psycopg
import sqlalchemy as sa
from astropy.io.votable import parse

from benchmarks import sky10m
from benchmarks.bench_cone import _plan_nodes, prepare
from catalog.healpix import angdist_deg
from catalog.settings import from_env

N_CENTRES = from_env("BENCH_SCS_CENTRES", 1, int, "cones") or 3
ROUNDS = from_env("BENCH_SCS_ROUNDS", 1, int, "rounds") or 5
MAXREC = from_env("BENCH_SCS_MAXREC", 1, int, "rows") or 100_000
#: Each cone holds this many times MAXREC sources (the answer is cut there: OVERFLOW, as a client asking
#: for the service's most rows gets).
CONE_FILL = 1.25
SEED = 1207
#: The paths whose answer is cut to MAXREC rows (the statements fetch MAXREC + 1).
CUT = ("service.cone()", "HTTP /scs answer")


def cones(s: sky10m.Sky, n: int, rows: int) -> list[tuple[float, float, float]]:
    """``n`` seeded random centres (RA, Dec, SR in degrees), each SR the radius holding ``rows`` sources of
    the sky (its rows-th nearest source's distance, and a hair: the exact recheck is in the database)."""
    rng = np.random.default_rng(SEED)
    ra0 = rng.uniform(0, 360, n)
    dec0 = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    return [(float(r), float(d), float(np.partition(angdist_deg(r, d, s.ra, s.dec), rows - 1)[rows - 1]) + 1e-9)
            for r, d in zip(ra0, dec0)]


def _median(xs: list[float]) -> str:
    return f"{np.median(xs):8.1f} ({min(xs):.0f}-{max(xs):.0f})"


def main() -> None:
    from astropy.table import Table

    from catalog import db
    from catalog.search.cone import Cone
    from catalog.search.region import run
    from catalog.service import MAX_ROWS, Params, cone, make_server, scs_statement
    from catalog.watchdog import Elsewhere

    if MAXREC > MAX_ROWS:
        raise SystemExit(f"BENCH_SCS_MAXREC={MAXREC}: the service answers at most {MAX_ROWS} rows")
    _engine, url, s, _ids = prepare()
    rows_in_cone = int(MAXREC * CONE_FILL)
    if len(s) < rows_in_cone:
        raise SystemExit(f"the sky holds {len(s)} sources, a cone must hold {rows_in_cone} (BENCH_SCS_MAXREC={MAXREC})")
    centres = cones(s, N_CENTRES, rows_in_cone)
    reader = sa.create_engine(db.reader_url())  # the service's role and session limits (work_mem 32MB)
    server = make_server(reader, port=0, threads=1, watchdog=Elsewhere())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = "http://{}:{}/scs".format(*server.server_address[:2])

    def plain_statement(ra, dec, sr) -> tuple[str, tuple]:  # the baseline: the cone statement and a LIMIT
        statement, args = Cone(ra, dec, sr).sql()
        return statement + " LIMIT %s", (*args, MAXREC + 1)

    def plain(ra, dec, sr):
        return run(reader, "cone", *plain_statement(ra, dec, sr), None, answer=lambda n, r: (n, r))

    def scs_rows(ra, dec, sr):
        return run(reader, "cone", *scs_statement(Cone(ra, dec, sr), None, MAXREC + 1), None,
                   answer=lambda n, r: (n, r))

    def query(ra, dec, sr):
        return urllib.parse.urlencode({"RA": repr(ra), "DEC": repr(dec), "SR": repr(sr), "MAXREC": MAXREC})

    def scs_table(ra, dec, sr):
        return cone(Params(query(ra, dec, sr)), reader)

    def http(ra, dec, sr):
        with urllib.request.urlopen(f"{base}?{query(ra, dec, sr)}", timeout=120) as response:
            return response.read()

    def plain_table(ra, dec, sr):  # as cone_search() makes its Table
        return run(reader, "cone", *plain_statement(ra, dec, sr), None), []

    paths = {"plain cone statement": plain, "SCS_STATEMENT": scs_rows, "plain, as a Table": plain_table,
             "service.cone()": scs_table, "HTTP /scs answer": http}
    checked = {"plain cone statement": _rows, "SCS_STATEMENT": _rows, "plain, as a Table": _table,
               "service.cone()": _table, "HTTP /scs answer": _votable}
    times: dict[str, list[float]] = {name: [] for name in paths}
    try:
        with psycopg.connect(url) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
        print(f"\nscs, {dt.date.today()}: {len(s):,} sources (benchmarks/sky10m.py), {N_CENTRES} cones of "
              f"{rows_in_cone:,} sources, MAXREC={MAXREC:,}, {ROUNDS} rounds; PostgreSQL {version} as the "
              f"service's reader; {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
        want = {}
        for i, (ra, dec, sr) in enumerate(centres):
            names, rows = plain(ra, dec, sr)  # warm
            if len(rows) != MAXREC + 1:
                raise AssertionError(f"cone {i} ({ra}, {dec}, SR={sr}) gives {len(rows)} rows, not MAXREC + 1")
            want[i] = Table(rows=rows, names=names)
            print(f"  cone {i}: RA {ra:.3f} Dec {dec:.3f} SR {sr:.3f} deg")
        for round_ in range(ROUNDS):
            order = list(paths) if round_ % 2 == 0 else list(reversed(paths))
            for i, (ra, dec, sr) in enumerate(centres):
                for name in order:
                    t0 = time.perf_counter()
                    answer = paths[name](ra, dec, sr)
                    times[name].append((time.perf_counter() - t0) * 1000)
                    if name != "HTTP /scs answer" or round_ == 0:  # parsing 100,000 rows' XML: seconds
                        cut = want[i][:MAXREC] if name in CUT else want[i]
                        _check(f"cone {i}, {name}", checked[name](answer), cut)
            print(f"  round {round_ + 1}, median of the cones: " +
                  ", ".join(f"{n} {np.median(times[n][-N_CENTRES:]):.0f} ms" for n in paths), flush=True)
        print(f"{'path':>22} | {'ms, median (range)':>22} | {'/ baseline':>10}")
        baseline = float(np.median(times["plain cone statement"]))
        for name, xs in times.items():
            print(f"{name:>22} | {_median(xs):>22} | {np.median(xs) / baseline:>9.2f}x")
        with psycopg.connect(db.libpq_url(db.reader_url())) as conn:
            ra, dec, sr = centres[0]
            for name, (text, params) in (("plain", plain_statement(ra, dec, sr)),
                                         ("SCS", scs_statement(Cone(ra, dec, sr), None, MAXREC + 1))):
                plan = [r[0] for r in conn.execute("EXPLAIN (ANALYZE, COSTS ON) " + text, params)]
                print(f"  {name} plan (cone 0): {_plan_nodes(plan)}")
                for line in plan:
                    if "Sort Method" in line or "Execution Time" in line:
                        print(f"    {line.strip()}")
    finally:
        server.shutdown()
        server.server_close()
        reader.dispose()


def _rows(answer) -> tuple[dict[str, np.ndarray], dict[str, str] | None]:
    """A statement's (names, rows) as columns; SCS_STATEMENT's releases column as the INFOs it makes."""
    names, rows = answer
    infos = None
    if names[-1] == "releases":  # SCS_STATEMENT: the releases on every row (the cone holds more than MAXREC)
        infos = {"QUERY_STATUS": "OVERFLOW", "releases": rows[0][-1]}
        names = names[:-1]  # the columns below are the names'
    return {n: np.asarray([r[k] for r in rows]) for k, n in enumerate(names)}, infos


def _table(answer) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """service.cone()'s (Table, INFOs) as columns and INFOs (None: none, the plain statement's Table)."""
    table, infos = answer
    return {n: np.asarray(table[n]) for n in table.colnames}, {info.name: info.value for info in infos} or None


def _votable(answer: bytes) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The HTTP answer's source_ids (text in SCS's VOTable) as integers, and its INFOs."""
    votable = parse(io.BytesIO(answer))
    ids = np.asarray(votable.get_first_table().array["source_id"]).astype(np.int64)
    return {"source_id": ids}, {info.name: info.value for info in votable.resources[0].infos}


def _check(where: str, answer: tuple[dict[str, np.ndarray], dict[str, str] | None], want) -> None:
    """The answer's columns must be the baseline's (``want``, an astropy Table), in its order; the /scs
    answers say OVERFLOW and name the sky's release."""
    cols, infos = answer
    for column, got in cols.items():
        expected = np.asarray(want[column])
        if len(got) != len(expected) or not np.array_equal(got, expected):
            n = min(len(got), len(expected))
            raise AssertionError(f"{where}: {column} is not the plain statement's ({len(got)} rows, the baseline "
                                 f"{len(expected)}; first rows differing {np.flatnonzero(got[:n] != expected[:n])[:5]})")
    if infos is not None and (infos.get("QUERY_STATUS") != "OVERFLOW" or infos.get("releases") != sky10m.RELEASE):
        raise AssertionError(f"{where}: INFOs {infos}, not OVERFLOW and {sky10m.RELEASE}")


if __name__ == "__main__":
    main()
