"""Box, polygon, ellipse, MOC and nearest-neighbour searches: exact against brute-force geometry with
astropy on the 492k real positions of the session catalog, and the same rows from SQL, Python and CLI."""

from __future__ import annotations

import json
import re

import astropy.units as u
import numpy as np
import pytest
import sqlalchemy as sa
from astropy.coordinates import Angle, SkyCoord
from astropy.io import ascii
from mocpy import MOC

from catalog.cli import main
from catalog.errors import QueryError
from catalog.search import box_search, cone_search, ellipse_search, moc_search, nearest, polygon_search
from catalog.search.region import checked_int
from tests.conftest import GAIA_RELEASE

EDGE_DEG = 1e-9  # stars this close to a region's boundary may fall either way in float64


@pytest.fixture(scope="module")
def sky(engine, catalog):
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT source_id, ra, dec FROM healcat.source WHERE hpx IS NOT NULL")).all()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    coord = SkyCoord([r[1] for r in rows] * u.deg, [r[2] for r in rows] * u.deg)
    return {"id": ids, "coord": coord, "xyz": coord.cartesian.xyz.value.T}


def sql_rows(engine, call: str, params: dict) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT * FROM healcat.{call}"), params).all()


def check_exact(sky, inside: np.ndarray, ambiguous: np.ndarray, sql: list, py) -> None:
    """SQL and Python give the same rows in the same order, and exactly the brute-force set."""
    assert [r.source_id for r in sql] == list(py["source_id"]), "SQL and Python paths differ"
    got = set(py["source_id"])
    expected, edge = set(sky["id"][inside & ~ambiguous]), set(sky["id"][ambiguous])
    assert got - edge == expected, f"false positives {sorted(got - edge - expected)[:5]}, " \
                                   f"false negatives {sorted(expected - got)[:5]}"
    assert len(edge) <= 2, "test regions are chosen with no star on their boundary"
    assert py["ra"].unit == u.deg and py["dec"].unit == u.deg


def star(sky, fraction: float) -> tuple[float, float]:
    c = sky["coord"][int(len(sky["id"]) * fraction)]
    return float(c.ra.deg), float(c.dec.deg)


# --- box -------------------------------------------------------------------------


def brute_box(sky, ra_min, ra_max, dec_min, dec_max):
    ra, dec = sky["coord"].ra.deg, sky["coord"].dec.deg
    lo, hi = Angle(ra_min * u.deg).wrap_at(360 * u.deg).deg, Angle(ra_max * u.deg).wrap_at(360 * u.deg).deg
    in_ra = np.ones(len(ra), bool) if ra_max - ra_min >= 360 else (
        (ra >= lo) & (ra <= hi) if lo <= hi else (ra >= lo) | (ra <= hi)) | (np.abs(dec) == 90)  # a pole: every RA
    inside = in_ra & (dec >= dec_min) & (dec <= dec_max)
    near = np.minimum.reduce([np.abs(dec - dec_min), np.abs(dec - dec_max),
                              np.abs(Angle((ra - lo) * u.deg).wrap_at(180 * u.deg).deg),
                              np.abs(Angle((ra - hi) * u.deg).wrap_at(180 * u.deg).deg)])
    return inside, near < EDGE_DEG if ra_max - ra_min < 360 else np.minimum(np.abs(dec - dec_min),
                                                                             np.abs(dec - dec_max)) < EDGE_DEG


BOXES = [
    (350.0, 10.0, -5.0, 5.0),          # across RA = 0/360
    (-10.0, 10.0, 20.0, 30.0),         # the same wrap written with a negative ra_min
    (0.0, 360.0, 80.0, 90.0),          # the north polar cap
    (100.0, 260.0, -90.0, -75.0),      # touching the south pole
    (30.0, 200.0, -60.0, 70.0),        # a large part of the sky
    (183.4, 183.7, -0.1, 0.3),         # around SDSS galaxies
    (10.0, 10.5, -60.0, 60.0),         # tall and narrow: cut along Dec too
    (0.0, 1.0, -89.0, 89.0),
    (-720.0, 1e9 - 0.5, 20.0, 20.5),   # far RA bounds, within +-1e9
]


@pytest.mark.parametrize("box", BOXES)
def test_box_is_exact_and_the_same_from_sql_and_python(engine, sky, box):
    inside, ambiguous = brute_box(sky, *box)
    sql = sql_rows(engine, "box_search(:a, :b, :c, :d)", dict(zip("abcd", box)))
    py = box_search(*box)
    check_exact(sky, inside, ambiguous, sql, py)
    assert inside.sum() > 0
    d = np.array(py["distance_arcsec"])
    assert np.all(np.diff(d) >= 0), "nearest the box's centre first"


def test_a_tall_narrow_box_scans_a_small_part_of_the_sky(conn):
    """Cut along Dec as well as RA, box(10, 10.001, -60, 60) is covered by a sliver, not one cone of 60 deg
    (47% of the sky), in SQL and in Python, and each cover holds every point of the box."""
    from catalog.healpix import NPIX, box_ranges, hpx_index

    box = (10.0, 10.001, -60.0, 60.0)
    py = box_ranges(*box)
    lo, hi = conn.execute(sa.text("SELECT lo, hi FROM healcat.box_cover(:a, :b, :c, :d)"), dict(zip("abcd", box))).one()
    rng = np.random.default_rng(7)
    dec = np.degrees(np.arcsin(rng.uniform(*np.sin(np.radians([-60, 60])), 10000)))  # uniform on the sphere
    points = hpx_index(rng.uniform(10.0, 10.001, 10000), dec)
    for ranges in (py, np.column_stack([lo, hi])):
        assert (ranges[:, 1] - ranges[:, 0]).sum() / NPIX < 0.01  # was 0.47
        inside = (points[:, None] >= ranges[:, 0]) & (points[:, None] < ranges[:, 1])
        assert inside.any(axis=1).all()


def test_a_box_reaching_a_pole_holds_it_whatever_the_stored_ra(conn):
    """At Dec 90 every RA is the same point: a source stored as (0, 90) is in box(120, 130, 89.8, 90)."""
    from catalog.healpix import hpx_index, shard_of

    release_id = conn.execute(sa.text("SELECT release_id FROM healcat.release ORDER BY release_id LIMIT 1")).scalar()
    for i, (ra, dec) in enumerate([(0.0, 90.0), (123.0, 90.0), (300.0, -90.0)]):
        hpx = int(hpx_index(ra, dec))
        conn.execute(sa.text("INSERT INTO healcat.source (source_id, shard, release_id, object_id, ra, dec, hpx, "
                             "attrs) VALUES (:id, :shard, :rel, :oid, :ra, :dec, :hpx, '{}')"),
                     {"id": -1 - i, "shard": int(shard_of(hpx)), "rel": release_id, "oid": f"pole-{i}", "ra": ra,
                      "dec": dec, "hpx": hpx})
    north = conn.execute(sa.text("SELECT source_id FROM healcat.box_search(120, 130, 89.8, 90)")).scalars().all()
    assert {-1, -2} <= set(north) and -3 not in north
    south = conn.execute(sa.text("SELECT source_id FROM healcat.box_search(10, 20, -90, -89.9)")).scalars().all()
    assert -3 in south and -1 not in south


def test_tiny_box_around_a_star(engine, sky):
    ra, dec = star(sky, 0.31)
    box = (ra - 1e-4, ra + 1e-4, dec - 1e-4, dec + 1e-4)  # 0.36 arcsec
    inside, ambiguous = brute_box(sky, *box)
    check_exact(sky, inside, ambiguous, sql_rows(engine, "box_search(:a, :b, :c, :d)", dict(zip("abcd", box))),
                box_search(*box))
    assert sky["id"][int(len(sky["id"]) * 0.31)] in set(box_search(*box)["source_id"])


# --- ellipse ---------------------------------------------------------------------


def brute_ellipse(sky, ra, dec, a_arcsec, b_arcsec, pa_deg):
    """Points whose separations to the two foci (placed with astropy) sum to at most 2a."""
    a, b = np.radians(a_arcsec / 3600), np.radians(b_arcsec / 3600)
    c = np.degrees(np.arccos(np.clip(np.cos(a) / np.cos(b), -1, 1))) if a_arcsec > 60 else \
        np.degrees(np.sqrt(a * a - b * b))  # flat-sky limit for tiny ellipses (the arccos loses all digits)
    centre = SkyCoord(ra * u.deg, dec * u.deg)
    f1 = centre.directional_offset_by(pa_deg * u.deg, c * u.deg)
    f2 = centre.directional_offset_by((pa_deg + 180) * u.deg, c * u.deg)
    total = sky["coord"].separation(f1).deg + sky["coord"].separation(f2).deg
    return total <= 2 * a_arcsec / 3600, np.abs(total - 2 * a_arcsec / 3600) < EDGE_DEG


ELLIPSES = [
    (10.0, 20.0, 3600.0, 1800.0, 30.0),
    (45.0, 89.0, 3 * 3600.0, 3600.0, 100.0),     # over the north pole
    (0.0, -89.95, 5 * 3600.0, 2 * 3600.0, 45.0),  # over the south pole
    (359.8, -10.0, 7200.0, 2000.0, 75.0),        # across RA = 0/360
    (200.0, -30.0, 60 * 3600.0, 30 * 3600.0, 10.0),  # a quarter of the sky
    (120.0, 5.0, 20 * 3600.0, 20 * 3600.0, 0.0),     # a circle
]


@pytest.mark.parametrize("ellipse", ELLIPSES)
def test_ellipse_is_exact_and_the_same_from_sql_and_python(engine, sky, ellipse):
    inside, ambiguous = brute_ellipse(sky, *ellipse)
    sql = sql_rows(engine, "ellipse_search(:a, :b, :c, :d, :e)", dict(zip("abcde", ellipse)))
    py = ellipse_search(*ellipse)
    check_exact(sky, inside, ambiguous, sql, py)
    assert inside.sum() > 0


def test_tiny_ellipse_around_a_star(engine, sky):
    ra, dec = star(sky, 0.52)
    ellipse = (ra + 0.1 / 3600, dec, 0.5, 0.2, 90.0)  # the star 0.1 arcsec west of the centre, inside
    inside, ambiguous = brute_ellipse(sky, *ellipse)
    py = ellipse_search(*ellipse)
    check_exact(sky, inside, ambiguous, sql_rows(engine, "ellipse_search(:a, :b, :c, :d, :e)",
                                                 dict(zip("abcde", ellipse))), py)
    assert sky["id"][int(len(sky["id"]) * 0.52)] in set(py["source_id"])
    rotated = ellipse_search(ra + 0.1 / 3600, dec, 0.5, 0.001, 0.0)  # the same star is now off the minor axis
    assert sky["id"][int(len(sky["id"]) * 0.52)] not in set(rotated["source_id"])


def test_a_circle_through_a_source_at_its_reported_distance_holds_it_as_the_cone_does(engine, catalog):
    """An ellipse with both semi-axes the distance a search reported for a source (a circle) left it out,
    the sum of its focal distances 1 ulp over 2a (the review's 593.3925485483893 arcsec), while the cone
    of that radius found it: the edge is now the cone's, a few ulps wide."""
    found = cone_search(160.9415, 0.7968, 600.0)
    assert len(found) >= 10
    for row in found:
        radius = float(row["distance_arcsec"])
        for pa in (0.0, 37.0):
            py = ellipse_search(160.9415, 0.7968, radius, radius, pa)
            sql = sql_rows(engine, "ellipse_search(160.9415, 0.7968, :r, :r, :pa)", {"r": radius, "pa": pa})
            assert row["source_id"] in set(py["source_id"]) and row["source_id"] in {r[0] for r in sql}, (radius, pa)
            assert set(py["source_id"]) == set(cone_search(160.9415, 0.7968, radius)["source_id"])


# --- polygon ---------------------------------------------------------------------


def brute_polygon(sky, vertices):
    """Winding number on the sphere from unit vectors (astropy's), on the side of the vertices' mean."""
    v = SkyCoord([p[0] for p in vertices] * u.deg, [p[1] for p in vertices] * u.deg).cartesian.xyz.value.T
    centre = v.mean(axis=0) / np.linalg.norm(v.mean(axis=0))
    near = sky["xyz"] @ centre > np.min(v @ centre) - 0.02  # beyond the farthest vertex + ~1 deg: outside
    p = sky["xyz"][near]
    a, b = v, np.roll(v, -1, axis=0)
    total = np.zeros(len(p))
    edge = np.full(len(p), np.inf)
    for ai, bi in zip(a, b):
        cross = np.cross(ai, bi)
        total += np.arctan2(p @ cross, ai @ bi - (p @ ai) * (p @ bi))
        # distance to the edge's great circle, where the point lies between the edge's ends
        between = (np.cross(ai, p) @ cross > 0) & (np.cross(p, bi) @ cross > 0)
        gc = np.abs(np.degrees(np.arcsin(np.clip(p @ (cross / np.linalg.norm(cross)), -1, 1))))
        edge = np.minimum(edge, np.where(between, gc, np.inf))
    inside, ambiguous = np.zeros(len(near), bool), np.zeros(len(near), bool)
    inside[near], ambiguous[near] = (np.abs(total) > np.pi) & (p @ centre > 0), edge < EDGE_DEG
    return inside, ambiguous


def star_polygon(ra0, dec0, n, r1_deg, r2_deg):
    """A concave star: n vertices alternating between two radii about a centre (via astropy offsets)."""
    centre = SkyCoord(ra0 * u.deg, dec0 * u.deg)
    pa = np.arange(n) * 360.0 / n
    r = np.where(np.arange(n) % 2 == 0, r1_deg, r2_deg)
    pts = centre.directional_offset_by(pa * u.deg, r * u.deg)
    return [(float(a), float(d)) for a, d in zip(pts.ra.deg, pts.dec.deg)]


POLYGONS = {
    "square": [(10.0, 0.0), (20.0, 0.0), (20.0, 10.0), (10.0, 10.0)],
    "square, clockwise": [(10.0, 10.0), (20.0, 10.0), (20.0, 0.0), (10.0, 0.0)],
    "across RA 0": [(350.0, -5.0), (10.0, -5.0), (10.0, 5.0), (350.0, 5.0)],
    "around the north pole": [(float(ra), 80.0) for ra in range(0, 360, 60)],
    "over the south pole": [(0.0, -70.0), (120.0, -75.0), (240.0, -70.0)],
    "concave L": [(100.0, 10.0), (110.0, 10.0), (110.0, 14.0), (104.0, 14.0), (104.0, 20.0), (100.0, 20.0)],
    "300-vertex star": star_polygon(250.0, 40.0, 300, 5.0, 3.0),
    "300-vertex star, reversed": star_polygon(250.0, 40.0, 300, 5.0, 3.0)[::-1],
    "quarter sky": [(0.0, -40.0), (90.0, -40.0), (90.0, 40.0), (0.0, 40.0)],
    "closed ring": [(10.0, 0.0), (20.0, 0.0), (20.0, 10.0), (10.0, 10.0), (10.0, 0.0)],
    "thin diagonal sliver": [(0.5, 0.5), (20.0, 20.0), (20.05, 20.0), (0.55, 0.5)],
    "1000-vertex star": star_polygon(120.0, -30.0, 1000, 8.0, 6.0),
}


@pytest.mark.parametrize("name", POLYGONS)
def test_polygon_is_exact_and_the_same_from_sql_and_python(engine, sky, name):
    vertices = POLYGONS[name]
    ring = vertices[:-1] if name == "closed ring" else vertices
    inside, ambiguous = brute_polygon(sky, ring)
    sql = sql_rows(engine, "polygon_search(:v)", {"v": [list(v) for v in vertices]})
    py = polygon_search(vertices)
    check_exact(sky, inside, ambiguous, sql, py)
    assert inside.sum() > 0


def test_a_thin_polygon_scans_a_small_part_of_the_sky(conn):
    """Covered by cones over the tangent-plane cells it meets, not by its bounding cone (14 deg here), in
    SQL and in Python; each cover holds random points of the polygon (brute force, astropy)."""
    from catalog.healpix import NPIX, hpx_index
    from catalog.search import Polygon

    vertices = POLYGONS["thin diagonal sliver"]
    p = conn.execute(sa.text("SELECT * FROM healcat.polygon_prepare(:v)"), {"v": [list(v) for v in vertices]}).one()
    lo, hi = conn.execute(sa.text("SELECT lo, hi FROM healcat.polygon_cover(:f, :x, :y)"),
                          {"f": p.frame, "x": p.xs, "y": p.ys}).one()
    rng = np.random.default_rng(3)
    coord = SkyCoord(rng.uniform(0.0, 21.0, 400000) * u.deg,
                     np.degrees(np.arcsin(rng.uniform(0.0, np.sin(np.radians(21.0)), 400000))) * u.deg)
    inside, _ = brute_polygon({"xyz": coord.cartesian.xyz.value.T}, vertices)
    points = hpx_index(coord.ra.deg[inside], coord.dec.deg[inside])
    assert len(points) > 100
    for ranges in (Polygon(tuple(vertices)).ranges(), np.column_stack([lo, hi])):
        assert (ranges[:, 1] - ranges[:, 0]).sum() / NPIX < 0.004  # its bounding cone: 0.015
        assert ((points[:, None] >= ranges[:, 0]) & (points[:, None] < ranges[:, 1])).any(axis=1).all()


def test_polygon_winding_order_does_not_matter(catalog):
    forward = polygon_search(POLYGONS["concave L"])
    assert list(polygon_search(POLYGONS["concave L"][::-1])["source_id"]) == list(forward["source_id"])
    flat = [x for v in POLYGONS["square"] for x in v]
    assert len(polygon_search(POLYGONS["square"])) > 0
    with pytest.raises(QueryError, match=r"must be \(ra_deg, dec_deg\) pairs"):
        polygon_search(flat)


def test_tiny_polygon_around_a_star(engine, sky):
    ra, dec = star(sky, 0.66)
    d = 0.3 / 3600
    vertices = [(ra - d, dec - d), (ra + d, dec - d), (ra, dec + d)]
    inside, ambiguous = brute_polygon(sky, vertices)
    py = polygon_search(vertices)
    check_exact(sky, inside, ambiguous, sql_rows(engine, "polygon_search(:v)", {"v": [list(v) for v in vertices]}),
                py)
    assert sky["id"][int(len(sky["id"]) * 0.66)] in set(py["source_id"])


@pytest.mark.parametrize("vertices,message", [
    ([(0.0, 0.0), (10.0, 10.0), (10.0, 0.0), (0.0, 10.0)], "self-intersecting, edge 1"),
    ([(0.0, 0.0), (10.0, 0.0), (20.0, 0.0)], "degenerate, it encloses no area"),
    ([(0.0, 0.0), (10.0, 0.0), (10.0, 0.0), (5.0, 5.0)], "vertices 2 and 3 are the same point"),
    ([(0.0, 0.0), (10.0, 0.0)], "needs at least 3 vertices, got 2"),
    ([(0.0, 0.0), (120.0, 0.0), (240.0, 0.0)], "surround no centre"),
    ([(0.0, -60.0), (180.0, -60.0), (90.0, 60.0)], "must lie within 89 deg"),
    ([(0.0, 0.0), (10.0, float("nan")), (5.0, 5.0)], "vertex 2 dec_deg must be a finite number"),
    ([(0.0, 0.0), (10.0, 95.0), (5.0, 5.0)], r"vertex 2 dec_deg must be in \[-90, 90\]"),
    ([(0.0, 0.0), (1e300, 10.0), (5.0, 5.0)], r"vertex 2 ra_deg must be in \[-1"),
    # a 1000-vertex star whose last spike crosses its first edge (found among the edges of one slab)
    (star_polygon(120.0, -30.0, 1000, 8.0, 6.0)[:-1] + [(120.0, -21.0), (121.0, -30.0)], "self-intersecting"),
])
def test_bad_polygons_are_errors_from_sql_and_python(engine, vertices, message):
    from catalog.search import Polygon

    with pytest.raises(QueryError, match=message):
        polygon_search(vertices)
    if not any(w in message for w in ("self-intersecting", "degenerate", "same point")):
        # what Python checks it checks when a Polygon is constructed (healcat.polygon_prepare finds the rest)
        with pytest.raises(QueryError, match=message):
            Polygon(tuple(vertices))
    with pytest.raises(sa.exc.DBAPIError, match=message) as err:
        sql_rows(engine, "polygon_search(:v)", {"v": [list(v) for v in vertices]})
    assert err.value.orig.sqlstate == "22023"


# --- MOC -------------------------------------------------------------------------


MOCS = [
    "3/1-3 5 4/40-43",
    '{"3": [1, 2, 3, 5], "4": [40, 41, 42, 43]}',
    "8/" + " ".join(str(p) for p in range(700000, 700040)) + " 12/3000000-3000300",
    "8/" + " ".join(str(p) for p in range(100000, 101401, 2)),  # 4.9 KB, longer than a file name may be
    "3/1,2,3,5 4/40,41,42,43",                                   # MOC 1.0's commas
    '\n{"3": [1, 2, 3, 5]}\n',                                     # read from a file: blank lines around it
]


@pytest.mark.parametrize("text", MOCS)
def test_moc_is_exact_and_the_same_from_sql_and_python(engine, sky, text):
    moc = MOC.from_json(json.loads(text)) if text.strip().startswith("{") else MOC.from_str(text.replace(",", " "))
    inside = moc.contains_lonlat(sky["coord"].ra, sky["coord"].dec)  # mocpy's own cell test, not our parser
    sql = sql_rows(engine, "moc_search(:m)", {"m": text})
    py = moc_search(text)
    check_exact(sky, inside, np.zeros(len(inside), bool), sql, py)
    assert inside.sum() > 0 and list(py["source_id"]) == sorted(py["source_id"])


def test_moc_from_a_fits_file_covers_the_cone_it_was_made_from(engine, sky, tmp_path):
    """A MOC of a 2 deg cone over the north pole, written as FITS: every star of the cone is found."""
    moc = MOC.from_cone(lon=0 * u.deg, lat=89.5 * u.deg, radius=2 * u.deg, max_depth=10)
    path = tmp_path / "footprint.fits"
    moc.save(str(path), format="fits")
    found = set(moc_search(str(path))["source_id"])
    sep = sky["coord"].separation(SkyCoord(0 * u.deg, 89.5 * u.deg)).deg
    assert set(sky["id"][sep < 2 - 1e-6]) <= found
    assert found == set(sky["id"][moc.contains_lonlat(sky["coord"].ra, sky["coord"].dec)])
    sql = sql_rows(engine, "moc_search(:m)", {"m": moc.to_string(format="ascii")})
    assert [r.source_id for r in sql] == sorted(found)


def test_overlapping_cells_are_their_union(engine, catalog):
    union = moc_search("10/0-200")
    assert len(union) > 0
    assert list(moc_search("10/0-100 10/50-200")["source_id"]) == list(union["source_id"])
    assert [r.source_id for r in sql_rows(engine, "moc_search(:m)", {"m": "10/0-100 10/50-200"})] == \
        list(union["source_id"])


@pytest.mark.parametrize("text,message", [
    ("hello", "moc: cannot read 'hello' \\(expected"),
    ("30/1", "moc: order must be in 0..29, got 30 in '30/1'"),
    ("99999999999/1", "moc: order must be in 0..29, got 99999999999 in '99999999999/1'"),
    ("1/48", r"moc: cells '1/48' are not pixels of order 1 \(0..47\)"),
    ("4/99999999999999999999999", r"moc: cells '4/99999999999999999999999' are not pixels of order 4 \(0..3071\)"),
    ("3/5-1", r"moc: cells '3/5-1' are not pixels of order 3 \(0..767\)"),
    ("8/" + "1" * 5000, r"moc: cells '8/1{78}\.\.\.' are not pixels of order 8"),  # the input shortened
    ("5 3/1", "moc: '5' comes before any order/"),
    ("", "moc: the MOC must not be NULL or empty"),
    ("{}", "moc: the MOC covers no cells"),
    ("{", "moc: not valid JSON: {"),
    ('{"4": ["1-3"]}', r"moc: a JSON MOC maps orders to lists of pixels \(integers from 0\); order '4' holds "
                       "something else"),
    ('{"4": [1e3]}', "moc: a JSON MOC maps orders to lists of pixels"),
    ('{"3": [1, -1]}', "moc: a JSON MOC maps orders to lists of pixels"),
    ('{"3": [1, 1.5]}', "moc: a JSON MOC maps orders to lists of pixels"),
    ('{"3": {"5": 7}}', "moc: a JSON MOC maps orders to lists of pixels"),  # an object is no list
    ('{"3": {}}', "moc: a JSON MOC maps orders to lists of pixels"),
    ("\t", "moc: the MOC must not be NULL or empty"),  # every kind of blank, on both paths
    ('{"3": [1], "x": [2]}', "moc: a JSON MOC maps orders to lists of pixels"),
    ('{"3": [1], "30": [5]}', "moc: order must be in 0..29, got 30"),
    ('{"3": [768]}', r"moc: cells '3/768' are not pixels of order 3"),
])
def test_bad_mocs_are_the_same_errors_from_sql_and_python(engine, catalog, text, message):
    """One grammar (catalog.healpix.moc_text_ranges and healcat.moc_ranges): the same one-line error naming
    what is wrong, never the whole of a long input."""
    with pytest.raises(sa.exc.DBAPIError, match=message) as err:
        sql_rows(engine, "moc_search(:m)", {"m": text})
    assert err.value.orig.sqlstate == "22023"
    sql_message = err.value.orig.diag.message_primary
    with pytest.raises(QueryError, match=message) as py_err:
        moc_search(text)
    assert str(py_err.value) == sql_message and len(sql_message) < 200


# --- nearest neighbours ----------------------------------------------------------


@pytest.mark.parametrize("ra,dec,k", [(10.0, 20.0, 5), (0.0, 90.0, 3), (359.99, -89.9, 10), (183.53, 0.09, 50),
                                      (77.0, -33.0, 1)])
def test_nearest_is_the_k_smallest_separations(engine, sky, ra, dec, k):
    sep = sky["coord"].separation(SkyCoord(ra * u.deg, dec * u.deg)).arcsec
    order = np.lexsort((sky["id"], sep))[:k]
    py = nearest(ra, dec, k)
    assert list(py["source_id"]) == list(sky["id"][order])
    np.testing.assert_allclose(py["distance_arcsec"], sep[order], rtol=0, atol=1e-6)
    sql = sql_rows(engine, "nearest(:ra, :dec, :k)", {"ra": ra, "dec": dec, "k": k})
    assert [r.source_id for r in sql] == list(py["source_id"])


def test_nearest_in_one_release_and_bad_k(engine, catalog):
    got = nearest(183.5313, 0.0897, 4, release=GAIA_RELEASE)
    assert len(got) == 4 and set(got["release"]) == {GAIA_RELEASE}
    for k in (0, 10001):
        with pytest.raises(QueryError, match=r"nearest: k must be in \[1, 10000\]"):
            nearest(10.0, 10.0, k)
        with pytest.raises(sa.exc.DBAPIError, match=r"nearest: k must be in \[1, 10000\]"):
            sql_rows(engine, "nearest(10, 10, :k)", {"k": k})
    with pytest.raises(QueryError, match="k must be an integer"):
        nearest(10.0, 10.0, 2.5)


# --- argument errors -------------------------------------------------------------


def test_an_integer_argument_is_an_integer_type_compared_exactly():
    """catalog.search.region.checked_int, behind nearest's and similar's k, sky_density's order and the HATS
    export's options: no float conversion, which overflows at 10**400 and rounds 2**63 - 1 up."""
    assert checked_int("t", "n", np.int64(2**63 - 1), 1, 2**63 - 1) == 2**63 - 1
    assert type(checked_int("t", "n", np.int32(7), 0, 29)) is int
    with pytest.raises(QueryError, match=r"^t: n must be in \[1, 2\], got 1" + "0" * 400 + "$"):
        checked_int("t", "n", 10**400, 1, 2)
    with pytest.raises(QueryError, match=r"^t: n must be in \[1, 9223372036854775806\], got 9223372036854775807$"):
        checked_int("t", "n", 2**63 - 1, 1, 2**63 - 2)
    with pytest.raises(QueryError, match="^t: n must be at least 1, got 0$"):
        checked_int("t", "n", 0, 1)
    for value, shown in ((2.0, "2.0"), (True, "True"), ("3", "'3'"), (None, "None"),
                         (np.float64(1), "np.float64(1.0)")):
        with pytest.raises(QueryError, match=f"^t: n must be an integer, got {re.escape(shown)}$"):
            checked_int("t", "n", value, 0, 29)


@pytest.mark.parametrize("call,args,message", [
    ("box_search", (350.0, 10.0, 5.0, -5.0), "dec_min_deg must be below dec_max_deg"),
    ("box_search", (370.0, 10.0, -5.0, 5.0), "are the same RA"),
    ("box_search", (float("nan"), 10.0, -5.0, 5.0), "ra_min_deg must be a finite number"),
    ("box_search", (0.0, 10.0, -95.0, 5.0), r"dec_min_deg must be in \[-90, 90\]"),
    ("box_search", (0.0, float("inf"), -5.0, 5.0), "ra_max_deg must be a finite number"),
    ("ellipse_search", (10.0, 0.0, 60.0, 90.0, 0.0), r"semi_minor_arcsec must be in \(0, 60\]"),
    ("ellipse_search", (10.0, 0.0, 91 * 3600.0, 60.0, 0.0), r"semi_major_arcsec must be in \(0, 324000\)"),
    ("ellipse_search", (1e300, 0.0, 60.0, 30.0, 0.0), r"ellipse: ra_deg must be in \[-1"),
    ("box_search", (1e300, 10.0, -5.0, 5.0), r"box: ra_min_deg must be in \[-1"),
    ("box_search", (0.0, -2e9, -5.0, 5.0), r"box: ra_max_deg must be in \[-1"),
    ("nearest", (10.0, 95.0, 3), r"nearest: dec_deg must be in \[-90, 90\]"),
    ("nearest", (2e9, 0.0, 3), r"nearest: ra_deg must be in \[-1"),
    # at 90 deg the foci are antipodal: every point of the sky would be inside
    ("ellipse_search", (0.0, 0.0, 90 * 3600.0, 1000.0, 0.0), r"semi_major_arcsec must be in \(0, 324000\)"),
    ("ellipse_search", (10.0, 0.0, 60.0, 30.0, float("nan")), "pa_deg must be a finite number"),
    ("ellipse_search", (10.0, None, 60.0, 30.0, 0.0), "dec_deg must not be NULL"),
])
def test_bad_regions_are_errors_naming_the_argument(engine, catalog, call, args, message):
    import catalog as api

    with pytest.raises(QueryError, match=message):
        getattr(api, call)(*args)
    placeholders = ", ".join(f"CAST(:a{i} AS {'integer' if isinstance(a, int) else 'float8'})"
                             for i, a in enumerate(args))
    with pytest.raises(sa.exc.DBAPIError, match=message) as err:
        sql_rows(engine, f"{call}({placeholders})", {f"a{i}": a for i, a in enumerate(args)})
    assert err.value.orig.sqlstate == "22023"


def test_far_ra_is_modulo_360_in_sql_and_python(engine, catalog):
    ellipse = (183.53 + 360 * 2_000_000, 0.09, 1800.0, 900.0, 30.0)
    py = ellipse_search(*ellipse)
    assert len(py) > 0 and list(py["source_id"]) == list(ellipse_search(183.53, 0.09, 1800.0, 900.0, 30.0)["source_id"])
    sql = sql_rows(engine, "ellipse_search(:a, :b, :c, :d, :e)", dict(zip("abcde", ellipse)))
    assert [r.source_id for r in sql] == list(py["source_id"])


def test_arguments_are_numbers_and_regions_validate_when_constructed(catalog):
    from catalog.search import Box, Polygon

    assert list(box_search("183", 184, -0.5, 0.5)["source_id"]) == list(box_search(183, 184, -0.5, 0.5)["source_id"])
    with pytest.raises(QueryError, match="box: ra_min_deg must be a number, got 'x'"):
        Box("x", 10, 0, 1)
    from catalog.search import Cone

    for flag in (True, np.True_):  # float(True) is 1.0: radius_arcsec=True searched 1 arcsec
        with pytest.raises(QueryError, match="cone: radius_arcsec must be a number, got (np.)?True"):
            Cone.from_arcsec(10.0, 0.0, flag)
    with pytest.raises(QueryError, match="polygon: needs at least 3 vertices, got 2"):
        Polygon(((0.0, 0.0), (10.0, 0.0)))
    with pytest.raises(QueryError, match=r"polygon: vertex 2 dec_deg must be in \[-90, 90\]"):
        Polygon(((0.0, 0.0), (10.0, 95.0), (5.0, 5.0)))


def test_release_filter_and_unknown_release(engine, catalog):
    rows = box_search(183.0, 184.0, -0.5, 0.5, release="sdss/dr14-skyserver-10k")
    assert len(rows) > 0 and set(rows["release"]) == {"sdss/dr14-skyserver-10k"}
    assert len(box_search(183.0, 184.0, -0.5, 0.5)) > len(rows)
    with pytest.raises(QueryError, match="ellipse: no release named 'nope'"):
        ellipse_search(10.0, 10.0, 60.0, 30.0, 0.0, release="nope")
    with pytest.raises(sa.exc.DBAPIError, match="polygon: no release named 'nope'"):
        sql_rows(engine, "polygon_search(ARRAY[[10,0],[20,0],[15,10]], 'nope')", {})


def test_region_searches_use_the_hpx_index_in_a_generic_plan(engine, catalog):
    """The Python path's prepared statement keeps per-range index scans whatever the ranges are."""
    from catalog.search import Box, Cone, Ellipse

    with engine.connect() as conn:
        for setting in ("LOAD 'auto_explain'", "SET auto_explain.log_min_duration = 0",
                        "SET auto_explain.log_level = notice", "SET plan_cache_mode = force_generic_plan"):
            conn.exec_driver_sql(setting)
        pg = conn.connection.driver_connection
        notices: list[str] = []
        pg.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        for region in (Cone.from_arcsec(183.53, 0.09, 1.0), Cone.from_arcsec(10, 10, 7200.0),
                       Box(350.0, 10.0, -5.0, 5.0), Ellipse(10.0, 20.0, 3600.0, 1800.0, 30.0)):
            statement, params = region.sql()
            notices.clear()
            pg.execute(statement, params, prepare=True).fetchall()
            pg.execute("SELECT 1")  # the plan's notice arrives with the next message
            plan = "\n".join(notices)
            assert "Index Cond: ((hpx >= c.lo) AND (hpx < c.hi))" in plan, plan
            assert "Seq Scan on source" not in plan and "pk_source" not in plan, plan


# --- command line ----------------------------------------------------------------


@pytest.mark.parametrize("argv,expected", [
    (["box", "350", "10", "-5", "5"], lambda: box_search(350, 10, -5, 5)),
    (["polygon", "10,0", "20,0", "20,10", "10,10"], lambda: polygon_search(POLYGONS["square"])),
    (["ellipse", "10", "20", "1deg", "30arcmin", "30"], lambda: ellipse_search(10, 20, 3600, 1800, 30)),
    (["moc", "3/1-3 5 4/40-43"], lambda: moc_search("3/1-3 5 4/40-43")),
    (["nearest", "0h40m", "20", "-k", "5"], lambda: nearest(10, 20, 5)),
])
def test_cli_gives_the_same_rows(catalog, capsys, argv, expected):
    assert main(argv + ["--format", "csv"]) == 0
    out = ascii.read(capsys.readouterr().out, format="csv")
    assert list(out["source_id"]) == list(expected()["source_id"]) and len(out) > 0


def test_cli_reads_a_long_ascii_moc(catalog, capsys):
    """A MOC's text longer than a file name may be (4.9 KB) is read as a MOC, not looked up as a file."""
    text = "8/" + " ".join(str(p) for p in range(100000, 101401, 2))
    assert main(["moc", text, "--format", "csv"]) == 0
    out = ascii.read(capsys.readouterr().out, format="csv")
    assert len(out) > 0 and list(out["source_id"]) == list(moc_search(text)["source_id"])


def test_cli_errors_name_the_argument(catalog, capsys):
    assert main(["box", "10", "20", "5", "-5"]) == 1
    assert "box: dec_min_deg must be below dec_max_deg, got 5.0 and -5.0" in capsys.readouterr().err
    assert main(["box", "10", "20", "-1e-3", "-.5"]) == 1, "-1e-3 and -.5 are numbers, not options"
    assert "box: dec_min_deg must be below dec_max_deg, got -0.001 and -0.5" in capsys.readouterr().err
    assert main(["polygon", "0,0", "10,10", "10,0", "0,10"]) == 1
    assert "self-intersecting" in capsys.readouterr().err


def test_cli_box_notes_an_ra_range_through_zero_that_may_be_swapped(catalog, capsys):
    """`box 162 160 0.6 0.7` (RA_MIN and RA_MAX swapped) searched 358 deg of RA without a word."""
    assert main(["box", "162", "160", "0.6", "0.7", "--format", "csv"]) == 0
    assert "spans 358 deg (through RA 0); for the 2 deg between them give RA_MIN 160 and RA_MAX 162" in \
        capsys.readouterr().err
    for ra_min, ra_max in (("160", "162"), ("359", "1")):  # narrow; through 0 on purpose
        assert main(["box", ra_min, ra_max, "0.6", "0.7", "--format", "csv"]) == 0
        assert "note:" not in capsys.readouterr().err


def test_regions_leave_out_a_superseded_release_unless_named(engine, tmp_path, scratch_release):
    """Every region searched every release: a superseded release's copy of each object came back too.
    A region used as similar's filter still holds every release (similar picks its releases itself)."""
    from catalog.search import Cone
    from tests.test_search import load_superseded

    rows = load_superseded(engine, tmp_path)
    coords = SkyCoord([float(r["ra"]) for r in rows] * u.deg, [float(r["dec"]) for r in rows] * u.deg)
    ra, dec = float(coords[0].ra.deg), float(coords[0].dec.deg)
    box = (ra - 0.5, ra + 0.5, dec - 0.5, dec + 0.5)
    vertices = [[ra - 0.5, dec - 0.5], [ra + 0.5, dec - 0.5], [ra + 0.5, dec + 0.5], [ra - 0.5, dec + 0.5]]
    moc = MOC.from_cone(lon=ra * u.deg, lat=dec * u.deg, radius=0.5 * u.deg, max_depth=12).to_string()
    inside_box = ((np.abs(coords.ra.deg - ra) <= 0.5) & (np.abs(coords.dec.deg - dec) <= 0.5)).sum()  # by position
    searches = [(box_search, box, "box_search(:a0, :a1, :a2, :a3, :rel)"),
                (ellipse_search, (ra, dec, 1800.0, 900.0, 30.0), "ellipse_search(:a0, :a1, :a2, :a3, :a4, :rel)"),
                (polygon_search, (vertices,), "polygon_search(:a0, :rel)"),
                (moc_search, (moc,), "moc_search(:a0, :rel)")]
    with engine.connect() as conn:
        for python, args, call in searches:
            named = {f"a{i}": a for i, a in enumerate(args)}
            for release in (None, "scratch/v1"):
                sql = conn.execute(sa.text(f"SELECT source_id, release FROM healcat.{call}"), {**named, "rel": release}).all()
                found = python(*args, release=release)
                assert [r.source_id for r in sql] == list(found["source_id"]), (call, release)
                releases = {r.release for r in sql}
                if release is None:
                    assert "scratch/v2" in releases and "scratch/v1" not in releases, call
                else:
                    assert releases == {"scratch/v1"}, call
        assert len(box_search(*box, release="scratch/v1")) == inside_box
        every = conn.execute(Cone(ra, dec, 0.5).source_ids()).scalars().all()
        releases = conn.execute(sa.text("SELECT DISTINCT r.name FROM healcat.source s JOIN healcat.release r "
                                        "USING (release_id) WHERE s.source_id = ANY(:ids)"), {"ids": every}).scalars()
        assert {"scratch/v1", "scratch/v2"} <= set(releases)


# --- tiny but valid arguments --------------------------------------------------------------------


def test_tiny_angles_are_answers_not_underflow_errors(conn, catalog):
    """PostgreSQL raises on a float8 product that underflows: the haversine's squares failed for
    positions within ~1e-154 deg of each other in RA or Dec ('value out of range: underflow')."""
    from catalog.healpix import hpx_index, shard_of

    assert conn.scalar(sa.text("SELECT healcat.angdist_deg(0, 0, 0, 1e-170)")) == 0
    assert conn.scalar(sa.text("SELECT healcat.angdist_deg(0, 0, 0, 1e-130)")) == pytest.approx(1e-130, rel=1e-12)
    assert conn.scalar(sa.text("SELECT healcat.angdist_deg(10, 20, 10.5, 20.5)")) == pytest.approx(
        SkyCoord(10, 20, unit="deg").separation(SkyCoord(10.5, 20.5, unit="deg")).deg, rel=1e-12)
    release_id = conn.execute(sa.text("SELECT release_id FROM healcat.release WHERE status = 'published' "
                                      "ORDER BY release_id LIMIT 1")).scalar()
    for i, (ra, dec) in enumerate([(0.0, 0.0), (1e-200, 0.0), (0.0, 1e-170)]):
        hpx = int(hpx_index(ra, dec))
        conn.execute(sa.text("INSERT INTO healcat.source (source_id, shard, release_id, object_id, ra, dec, hpx, "
                             "attrs) VALUES (:id, :shard, :rel, :oid, :ra, :dec, :hpx, '{}')"),
                     {"id": -1 - i, "shard": int(shard_of(hpx)), "rel": release_id, "oid": f"tiny-{i}", "ra": ra,
                      "dec": dec, "hpx": hpx})
    tiny = {-1, -2, -3}
    for call in ["cone_search(1e-200, 0, 1)", "cone_search(0, 1e-170, 1)", "nearest(0, 1e-170, 3)",
                 "nearest(1e-200, 1e-170, 3)", "ellipse_search(0, 1e-170, 10, 5, 0)",
                 "ellipse_search(1e-170, 1e-170, 10, 5, 1e-170)", "ellipse_search(0, 0, 1e-300, 1e-300, 0)",
                 "polygon_search('{{-1, 1e-170}, {1, -1}, {1, 1}}')",
                 "polygon_search('{{1e-200, -1}, {1, 1e-170}, {1e-300, 1}, {-1, 1e-250}}')"]:
        rows = conn.execute(sa.text(f"SELECT source_id, distance_arcsec FROM healcat.{call}")).all()
        assert {r.source_id for r in rows} & tiny == tiny, call
        if not call.startswith("polygon"):  # (a polygon's distances are from its vertices' mean direction)
            assert all(r.distance_arcsec == 0 for r in rows if r.source_id in tiny), call
    box = conn.execute(sa.text("SELECT source_id FROM healcat.box_search(0, 1e-300, 0, 1)")).scalars().all()
    assert tiny - {-2} <= set(box) and -2 not in box  # RA 1e-200 is beyond 1e-300


@pytest.mark.parametrize("call,message", [
    ("ellipse_search(0, 0, 1e-320, 1e-320, 0)", r"ellipse: semi_minor_arcsec must be at least 1e-300, got 1e-320"),
    ("ellipse_search(0, 0, 1, 1e-310, 0)", r"ellipse: semi_minor_arcsec must be at least 1e-300, got 1e-310"),
    ("box_search(0, 1e-320, 0, 1)",
     r"box: ra_min_deg to ra_max_deg must be at least 2.77778e-304 deg wide \(smaller underflows\), got 0(\.0)? to 1e-320"),
    ("box_search(0, 1, 0, 1e-320)",
     r"box: dec_min_deg to dec_max_deg must be at least 2.77778e-304 deg high \(smaller underflows\), got 0(\.0)? to 1e-320"),
])
def test_regions_too_small_to_compute_are_errors_naming_the_argument(engine, catalog, call, message):
    """They failed with 'value out of range: underflow' (or overflow), no argument named (SQLSTATE 22003);
    in Python an OverflowError (the box's cover) or nothing (the ellipse): now the same error as SQL's."""
    import catalog as api

    with pytest.raises(sa.exc.DBAPIError, match=message) as err:
        sql_rows(engine, call, {})
    assert err.value.orig.sqlstate == "22023"
    with pytest.raises(QueryError, match=message):
        eval(call, {"ellipse_search": api.ellipse_search, "box_search": api.box_search})  # noqa: S307


def test_wrap_ra_keeps_nan_and_tiny_values(conn):
    """NaN sorts above every number in PostgreSQL: 'NaN' >= 360 was true and NaN came back as 0."""
    got = conn.execute(sa.text("SELECT healcat.wrap_ra_deg('NaN')::text, healcat.wrap_ra_deg('Infinity')::text, "
                               "healcat.wrap_ra_deg(1e-322), healcat.wrap_ra_deg(-1e-322), healcat.wrap_ra_deg(-1e-20), "
                               "healcat.wrap_ra_deg(-10), healcat.wrap_ra_deg(725), healcat.wrap_ra_deg(359.5), "
                               "healcat.wrap_ra_deg('-0')::text")).one()
    assert tuple(got) == ("NaN", "NaN", 1e-322, 0.0, 0.0, 350.0, 5.0, 359.5, "0")  # not "-0", as Python's
