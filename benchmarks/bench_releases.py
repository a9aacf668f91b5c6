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
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import sqlalchemy as sa

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


def main() -> None:
    os.environ.setdefault("HEALCAT_HOME", str(Path(__file__).resolve().parents[1] / "var" / "bench" / "releases"))
    from catalog import db

    db.migrate(db.database_url())
    with db.engine().connect() as conn:
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


if __name__ == "__main__":
    main()
