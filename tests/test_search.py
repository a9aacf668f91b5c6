"""Cone searches are exact (checked against astropy by brute force) and the same from SQL, Python and CLI."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
import sqlalchemy as sa
from astropy.coordinates import SkyCoord
from astropy.io import ascii

from catalog.cli import main
from catalog.errors import QueryError
from catalog.search import cone_search, nearest, source_id_of
from tests.conftest import SDSS_RELEASE

EDGE_TOLERANCE_DEG = 1e-10  # points this close to the edge may fall either way in float64


@pytest.fixture(scope="module")
def sky(engine, catalog):
    with engine.connect() as conn:
        rows = np.array(conn.execute(sa.text("SELECT source_id, ra, dec FROM healcat.source WHERE hpx IS NOT NULL"))
                        .all(), dtype=object)
    return {"id": rows[:, 0].astype(np.int64), "coord": SkyCoord(rows[:, 1].astype(float) * u.deg,
                                                                 rows[:, 2].astype(float) * u.deg)}


def brute_force(sky, ra_deg, dec_deg, radius_arcsec):
    sep = sky["coord"].separation(SkyCoord(ra_deg * u.deg, dec_deg * u.deg)).deg
    radius = radius_arcsec / 3600
    inside = sep <= radius
    ambiguous = np.abs(sep - radius) < EDGE_TOLERANCE_DEG
    return set(sky["id"][inside & ~ambiguous]), set(sky["id"][ambiguous]), dict(zip(sky["id"][inside], sep[inside]))


def sql_cone(engine, ra, dec, radius_arcsec):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT * FROM healcat.cone_search(:ra, :dec, :r)"),
                            {"ra": ra, "dec": dec, "r": radius_arcsec}).all()


CONES = [
    # (ra_deg, dec_deg, radius_arcsec): around real SDSS galaxies, across RA = 0/360, over both poles
    (183.5313256941, 0.0896930301, 60.0),
    (160.941521316, 0.7967796443, 600.0),
    (0.0, 0.0, 7200.0),
    (359.5, -20.0, 3 * 3600.0),
    (0.3, 45.0, 5 * 3600.0),
    (12.0, 90.0, 4 * 3600.0),
    (250.0, -90.0, 4 * 3600.0),
    (77.0, 88.5, 2 * 3600.0),
    (200.0, -30.0, 60 * 3600.0),
    (40.0, 10.0, 90 * 3600.0),
]


@pytest.mark.parametrize("ra,dec,radius_arcsec", CONES)
def test_cone_is_exact_and_the_same_from_sql_and_python(engine, sky, ra, dec, radius_arcsec):
    expected, ambiguous, sep = brute_force(sky, ra, dec, radius_arcsec)
    sql_rows = sql_cone(engine, ra, dec, radius_arcsec)
    py_rows = cone_search(ra, dec, radius_arcsec)
    sql_ids = {r.source_id for r in sql_rows}
    assert sql_ids - ambiguous == expected, "SQL path: false positives or negatives"
    assert [r.source_id for r in sql_rows] == list(py_rows["source_id"])
    assert radius_arcsec < 7200 or len(expected) > 10, "a wide cone over the catalogue should find stars"
    dist = np.array([r.distance_arcsec for r in sql_rows])
    assert np.all(np.diff(dist) >= 0), "sorted by distance"
    np.testing.assert_allclose(dist, [sep[i] * 3600 for i in py_rows["source_id"]], rtol=0, atol=1e-6)
    assert py_rows["distance_arcsec"].unit == u.arcsec and py_rows["ra"].unit == u.deg
    assert py_rows["ra"].description == "right ascension (ICRS)" and py_rows.meta["frame"] == "ICRS"
    assert all(py_rows[name].description for name in py_rows.colnames)


def test_tiny_cone_finds_the_star_itself(engine, sky):
    star = int(len(sky["id"]) * 0.77)
    ra, dec = sky["coord"][star].ra.deg, sky["coord"][star].dec.deg
    rows = cone_search(ra, dec, 0.001)
    assert sky["id"][star] in set(rows["source_id"])
    assert all(d <= 0.001 for d in rows["distance_arcsec"])


def test_release_filter(engine, catalog):
    rows = cone_search(183.5313256941, 0.0896930301, 3600.0, release=SDSS_RELEASE)
    assert len(rows) > 0 and set(rows["release"]) == {SDSS_RELEASE}
    everything = cone_search(183.5313256941, 0.0896930301, 3600.0)
    assert len(everything) > len(rows), "the Gaia stars in the same cone are left out by the filter"
    with engine.connect() as conn:
        sql_rows = conn.execute(sa.text("SELECT source_id FROM healcat.cone_search(183.5313256941, 0.0896930301, "
                                        "3600.0, :r)"), {"r": SDSS_RELEASE}).scalars().all()
        assert sql_rows == list(rows["source_id"])
        with pytest.raises(sa.exc.DBAPIError, match="no release named 'nope'"):
            conn.execute(sa.text("SELECT * FROM healcat.cone_search(183.5, 0.09, 60.0, 'nope')")).all()
    with pytest.raises(QueryError, match="no release named 'nope'"):
        cone_search(183.5, 0.09, 60.0, release="nope")


@pytest.mark.parametrize("ra,same_as", [(360.0, 0.0), (-10.0, 350.0), (370.5, 10.5), (-1e-20, 0.0),
                                         (1_000_010.5, 290.5)])
def test_ra_is_taken_modulo_360_by_both_paths(engine, catalog, ra, same_as):
    expected = [r.source_id for r in sql_cone(engine, same_as, 5.0, 3 * 3600)]
    assert expected, "a 3 deg cone on the equator holds Gaia stars"
    assert [r.source_id for r in sql_cone(engine, ra, 5.0, 3 * 3600)] == expected
    assert list(cone_search(ra, 5.0, 3 * 3600)["source_id"]) == expected
    with engine.connect() as conn:
        nearest = [conn.execute(sa.text("SELECT source_id FROM healcat.nearest(:ra, 5.0, 3)"), {"ra": x}).scalars().all()
                   for x in (ra, same_as)]
    assert nearest[0] == nearest[1] == expected[:3]


@pytest.mark.parametrize("ra", [2e9, -1e300])
def test_an_ra_past_a_billion_degrees_is_an_error_on_both_paths(engine, catalog, ra):
    """Beyond, a float's RA has no degrees left to take modulo 360 (as healcat.hpx_ang2pix says)."""
    with pytest.raises(QueryError, match=r"cone: ra_deg must be in \[-1e\+09, 1e\+09\]"):
        cone_search(ra, 5.0, 60)
    for call in ("cone_search(:ra, 5.0, 60.0)", "nearest(:ra, 5.0, 3)"):
        with engine.connect() as conn, \
                pytest.raises(sa.exc.DBAPIError, match=r"ra_deg must be in \[-1000000000, 1000000000\]") as err:
            conn.execute(sa.text(f"SELECT * FROM healcat.{call}"), {"ra": ra}).all()
        assert err.value.orig.sqlstate == "22023"


def test_an_empty_answer_is_a_valid_table_in_every_format(catalog, capsys):
    empty = cone_search(0.0, -89.99, 1.0)
    assert len(empty) == 0 and empty["ra"].dtype == np.float64 and empty["source_id"].dtype == np.int64
    for fmt in ("votable", "ecsv", "csv", "table"):
        assert main(["cone", "0", "-89.99", "1", "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert "<VOTABLE" in out and "# - {name: ra, unit: deg, datatype: float64, description: right ascension (ICRS)}" in out
    assert "# meta: !!omap\n# - {frame: ICRS}" in out


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("args,message,sql_message", [
    ((NAN, 0.0, 60.0), "ra_deg must be a finite number", "ra_deg must be finite, got NaN"),
    ((INF, 0.0, 60.0), "ra_deg must be a finite number", "ra_deg must be finite, got Infinity"),
    ((-INF, 0.0, 60.0), "ra_deg must be a finite number", "ra_deg must be finite, got -Infinity"),
    ((10.0, 91.0, 60.0), r"dec_deg must be in \[-90, 90\]", r"dec_deg must be in \[-90, 90\], got 91"),
    ((10.0, NAN, 60.0), "dec_deg must be a finite number", r"dec_deg must be in \[-90, 90\], got NaN"),
    ((10.0, -INF, 60.0), "dec_deg must be a finite number", r"dec_deg must be in \[-90, 90\], got -Infinity"),
    ((10.0, 0.0, 0.0), r"radius_arcsec must be in \(0, 648000\]", r"radius_arcsec must be in \(0, 648000\], got 0"),
    ((10.0, 0.0, -1.0), r"radius_arcsec must be in \(0, 648000\]", r"radius_arcsec must be in \(0, 648000\], got -1"),
    ((10.0, 0.0, NAN), "radius_arcsec must be a finite number", r"radius_arcsec must be in \(0, 648000\], got NaN"),
    ((10.0, 0.0, INF), "radius_arcsec must be a finite number", r"must be in \(0, 648000\], got Infinity"),
    ((None, 0.0, 60.0), "ra_deg must not be NULL", r"must not be NULL \(got <NULL>, 0, 60\)"),
    ((10.0, None, 60.0), "dec_deg must not be NULL", r"must not be NULL \(got 10, <NULL>, 60\)"),
    ((10.0, 0.0, None), "radius_arcsec must not be NULL", r"must not be NULL \(got 10, 0, <NULL>\)"),
])
def test_bad_cones_are_errors_not_empty_results(engine, args, message, sql_message):
    with pytest.raises(QueryError, match=message):
        cone_search(*args)
    with pytest.raises(sa.exc.DBAPIError, match=sql_message) as err:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT * FROM healcat.cone_search(CAST(:ra AS float8), CAST(:dec AS float8), "
                                 "CAST(:r AS float8))"), dict(zip(("ra", "dec", "r"), args))).all()
    assert err.value.orig.sqlstate == "22023"


@pytest.mark.parametrize(("args", "message"), [
    ((160.9, 95.0, 1.0), r"dec_deg must be in \[-90, 90\], got 95.0"),
    ((160.9, 0.8, -1.0), r"radius_deg must be in \(0, 180\], got -1.0"),
    ((160.9, 0.8, NAN), "radius_deg must be a finite number"),
    ((INF, 0.8, 1.0), "ra_deg must be a finite number"),
])
def test_a_cone_made_directly_is_validated_too(args, message):
    from catalog.search import Cone

    with pytest.raises(QueryError, match=message):
        Cone(*args)
    assert Cone(370.0, 0.0, 1.0).ra_deg == 10.0


def test_astropy_angles_are_taken_as_crossmatch_takes_them(catalog):
    """cone_search(160.9415, 0.7968, 10 * u.arcmin) was 'radius_arcsec must be a number'."""
    from astropy.coordinates import Angle

    from catalog.search import nearest, polygon_search

    plain = cone_search(160.9415, 0.7968, 600.0)
    angles = cone_search(Angle("10h43m45.96s"), 0.7968 * u.deg, 10 * u.arcmin)
    assert len(plain) > 5 and list(angles["source_id"]) == list(plain["source_id"])
    assert list(nearest(160.9415 * u.deg, 0.7968 * u.deg, k=3)["source_id"]) == list(plain["source_id"][:3])
    square = [(160.5, 0.3), (161.5, 0.3), (161.5, 1.3), (160.5, 1.3)]
    assert len(polygon_search([(ra * u.deg, dec * u.deg) for ra, dec in square])) == len(polygon_search(square))
    with pytest.raises(QueryError, match="cone: radius_arcsec must be an angle, got 10.0 m"):
        cone_search(160.9415, 0.7968, 10 * u.m)


def test_a_skycoord_centre_in_any_frame_searches_its_icrs_position(sky):
    """cone_search, nearest, ellipse_search and a Cone filter take a SkyCoord as the centre (polygon_search
    took one already); a Galactic or FK5 J1975 centre is converted by astropy, and the answer is held to
    astropy's separations from that centre."""
    from astropy.coordinates import FK5, Galactic

    from catalog.search import Cone, ellipse_search

    star = int(len(sky["id"]) * 0.41)
    icrs = sky["coord"][star].spherical_offsets_by(30 * u.arcsec, -20 * u.arcsec)
    galactic, fk5 = icrs.transform_to(Galactic()), icrs.transform_to(FK5(equinox="J1975"))
    assert abs(fk5.ra.deg - icrs.ra.deg) > 0.1  # 25 years of precession: read as ICRS it would miss
    expected, ambiguous, _ = brute_force(sky, icrs.ra.deg, icrs.dec.deg, 300.0)
    assert sky["id"][star] in expected
    cartesian = SkyCoord(icrs.cartesian, frame="icrs", representation_type="cartesian")
    for centre in (icrs, galactic, fk5, cartesian):
        found = cone_search(centre, radius_arcsec=5 * u.arcmin)
        assert set(found["source_id"]) - ambiguous == expected
        assert list(nearest(centre, k=len(found))["source_id"]) == list(found["source_id"])
        assert Cone.from_arcsec(centre, radius_arcsec=300.0).ra_deg == pytest.approx(icrs.ra.deg, abs=1e-9)
        inner = set(ellipse_search(centre, semi_major_arcsec=300, semi_minor_arcsec=200)["source_id"])
        assert sky["id"][star] in inner and inner <= expected | ambiguous
    with pytest.raises(QueryError, match=r"cone: with a SkyCoord as the centre, dec_deg must be left out .* got 5"):
        cone_search(icrs, 5)
    with pytest.raises(QueryError, match=r"nearest: the centre must be one position, got a SkyCoord of shape \(3,\)"):
        nearest(sky["coord"][:3], k=2)
    with pytest.raises(QueryError, match="cone: radius_arcsec must not be NULL"):
        cone_search(icrs)


def test_hemisphere_and_sub_milliarcsec_cones_at_the_limits(engine, sky):
    """radius 90 deg (half the sky) and 0.001 arcsec, centred on a star: exact, both paths."""
    star = int(len(sky["id"]) * 0.13)
    ra, dec = sky["coord"][star].ra.deg, sky["coord"][star].dec.deg
    for radius_arcsec in (90 * 3600.0, 0.001):
        expected, ambiguous, _ = brute_force(sky, ra, dec, radius_arcsec)
        py = cone_search(ra, dec, radius_arcsec)
        assert set(py["source_id"]) - ambiguous == expected
        assert [r.source_id for r in sql_cone(engine, ra, dec, radius_arcsec)] == list(py["source_id"])
        assert sky["id"][star] in set(py["source_id"])
    assert len(py) >= 1 and len(cone_search(ra, dec, 90 * 3600.0)) > 200_000


def test_sql_and_python_paths_use_the_hpx_index(engine, catalog):
    from catalog.search import Cone

    with engine.connect() as conn:
        conn.exec_driver_sql("LOAD 'auto_explain'")
        conn.exec_driver_sql("SET auto_explain.log_min_duration = 0")
        conn.exec_driver_sql("SET auto_explain.log_nested_statements = on")
        conn.exec_driver_sql("SET auto_explain.log_level = notice")
        pg = conn.connection.driver_connection
        notices: list[str] = []
        pg.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        conn.execute(sa.text("SELECT * FROM healcat.cone_search(183.53, 0.09, 60.0)")).all()
        plans = "\n".join(notices)
        assert "Index Scan using ix_source_hpx" in plans or "Bitmap Index Scan on ix_source_hpx" in plans, plans
        assert "Seq Scan on source" not in plans
        conn.exec_driver_sql("SET auto_explain.log_min_duration = -1")
        statement, params = Cone.from_arcsec(183.53, 0.09, 60.0).sql()
        plan = "\n".join(r[0] for r in pg.execute("EXPLAIN " + statement, params))
        assert "ix_source_hpx" in plan and "Seq Scan on source" not in plan, plan


def test_cli_cone_gives_the_same_rows(capsys, catalog):
    assert main(["cone", "12h14m07.52s", "0.0896930301", "2arcmin", "--format", "csv"]) == 0
    out = ascii.read(capsys.readouterr().out, format="csv")
    expected = cone_search(183.5313256941, 0.0896930301, 120.0)
    assert list(out["source_id"]) == list(expected["source_id"])
    assert len(out) >= 1
    assert main(["cone", "10", "95", "60"]) == 1
    assert "dec_deg must be in [-90, 90], got 95.0" in capsys.readouterr().err


def test_sql_functions_work_whatever_the_callers_search_path(engine, catalog):
    with engine.connect() as conn:
        conn.exec_driver_sql("SET search_path = pg_catalog")
        n = conn.scalar(sa.text("SELECT count(*) FROM healcat.cone_search(160.9415, 0.7968, 600.0)"))
        sid = conn.scalar(sa.text("SELECT source_id FROM healcat.source WHERE object_id = '0275-51910-0435'"))
        similar_rows = conn.execute(sa.text("SELECT * FROM healcat.similar_sources(:s, 'photoz-sdss', 3)"),
                                    {"s": sid}).all()
    assert n >= 10 and len(similar_rows) == 3


def test_angular_distance_keeps_null_and_nan(conn):
    got = conn.execute(sa.text("SELECT healcat.angdist_deg(NULL, 15.5, 185.1, 15.5), "
                               "healcat.angdist_deg('NaN', 15.5, 185.1, 15.5)")).one()
    assert got[0] is None and np.isnan(got[1])


def test_shard_must_be_the_hpx_pixel(conn, catalog):
    with pytest.raises(sa.exc.IntegrityError, match="ck_source_shard_is_hpx_pixel"):
        conn.execute(sa.text("UPDATE healcat.source SET shard = shard + 1 WHERE source_id = "
                             "(SELECT min(source_id) FROM healcat.source WHERE hpx IS NOT NULL)"))


def test_a_never_analyzed_catalog_still_gets_a_fine_cover(engine, catalog):
    """reltuples -1 (loaded, not yet analyzed) was read as an empty catalog: a whole-sky cover."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        known = conn.scalar(sa.text("SELECT healcat.cover_stop_order()"))
        rows = conn.execute(sa.text("SELECT source_id FROM healcat.cone_search(183.53, 0.09, 600.0)")).scalars().all()
        try:
            conn.execute(sa.text("SELECT pg_clear_relation_stats('healcat', 'source')"))
            assert conn.scalar(sa.text("SELECT reltuples FROM pg_class WHERE oid = 'healcat.source'::regclass")) == -1
            unknown = conn.scalar(sa.text("SELECT healcat.cover_stop_order()"))
            again = conn.execute(sa.text("SELECT source_id FROM healcat.cone_search(183.53, 0.09, 600.0)")).scalars().all()
        finally:
            conn.execute(sa.text("ANALYZE healcat.source"))
    assert known >= 5 and abs(unknown - known) <= 1, (known, unknown)
    assert again == rows and len(rows) > 0


def test_an_empty_shell_of_the_table_still_gets_a_fine_cover(engine, catalog):
    """On Citus the coordinator's healcat.source is an empty shell: its statistics say 0 rows and 0 pages,
    which made every cover order 0 (one range over all 3,072 shards). The releases' counts size it."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        known = conn.scalar(sa.text("SELECT healcat.cover_stop_order()"))
        loaded = conn.scalar(sa.text("SELECT sum((row_counts ->> 'source')::bigint) FROM healcat.release"))
        ranges = conn.scalar(sa.text("SELECT count(*) FROM healcat.hpx_cone_cover(183.53, 0.09, 600.0 / 3600, "
                                     "healcat.cover_stop_order())"))
        try:
            conn.execute(sa.text("SELECT pg_restore_relation_stats('schemaname', 'healcat', 'relname', 'source', "
                                 "'relpages', 0::integer, 'reltuples', 0::real)"))
            shell = conn.scalar(sa.text("SELECT healcat.cover_stop_order()"))
            shell_ranges = conn.scalar(sa.text("SELECT count(*) FROM healcat.hpx_cone_cover(183.53, 0.09, "
                                               "600.0 / 3600, healcat.cover_stop_order())"))
        finally:
            conn.execute(sa.text("ANALYZE healcat.source"))
    assert loaded > 100_000 and known >= 7 and abs(shell - known) <= 1, (known, shell, loaded)
    assert shell_ranges <= 4 * ranges, "a fine cover: a few ranges in a few shards, not the whole sky"


def load_superseded(engine, folder, n=30):
    """The first n SDSS rows loaded twice under the survey 'scratch' (v1, then v2): scratch/v1 is superseded,
    and every object has a copy in it at the same position. Use with the scratch_release fixture."""
    from ingest.load import ingest_release
    from tests.conftest import scratch_mapping, sdss_rows, write_csv

    rows = sdss_rows()[:n]
    write_csv(folder / "rows.csv", rows)
    for version in ("v1", "v2"):
        ingest_release(scratch_mapping(folder, version), engine, file=folder / "rows.csv")
    with engine.connect() as conn:
        assert dict(conn.execute(sa.text("SELECT name, status FROM healcat.release WHERE name LIKE 'scratch/%'")).all()) \
            == {"scratch/v1": "superseded", "scratch/v2": "published"}
    return rows


def test_a_superseded_release_is_searched_only_by_name(engine, sky, tmp_path, scratch_release):
    """A superseded release's copy of each object came back beside the current one (twice in cone, in nearest)."""
    rows = load_superseded(engine, tmp_path)
    ra, dec = float(rows[0]["ra"]), float(rows[0]["dec"])
    published = sa.text("SELECT count(*) FROM healcat.source s JOIN healcat.release r USING (release_id) "
                        "WHERE r.status = 'published' AND healcat.angdist_deg(:ra, :dec, s.ra, s.dec) * 3600 <= :r")
    with engine.connect() as conn:
        sql = conn.execute(sa.text("SELECT * FROM healcat.cone_search(:ra, :dec, 600)"), {"ra": ra, "dec": dec}).all()
        near = conn.execute(sa.text("SELECT * FROM healcat.nearest(:ra, :dec, 3)"), {"ra": ra, "dec": dec}).all()
        old = conn.execute(sa.text("SELECT * FROM healcat.cone_search(:ra, :dec, 600, 'scratch/v1')"),
                           {"ra": ra, "dec": dec}).all()
        expected = conn.scalar(published, {"ra": ra, "dec": dec, "r": 600})
    python = cone_search(ra, dec, 600)
    assert [r.source_id for r in sql] == list(python["source_id"]) and len(sql) == expected
    assert "scratch/v1" not in {r.release for r in sql} and "scratch/v2" in {r.release for r in sql}
    assert [r.source_id for r in near] == list(nearest(ra, dec, 3)["source_id"])
    assert len({r.object_id for r in near if r.release.startswith("scratch")}) == \
        len([r for r in near if r.release.startswith("scratch")]), "the same object twice"
    assert "scratch/v1" not in {r.release for r in near}
    # astropy: the published sources within the cone, by position
    coords = SkyCoord([float(r["ra"]) for r in rows] * u.deg, [float(r["dec"]) for r in rows] * u.deg)
    inside = coords.separation(SkyCoord(ra * u.deg, dec * u.deg)).arcsec <= 600
    assert len(old) == inside.sum() and {r.release for r in old} == {"scratch/v1"}
    assert list(cone_search(ra, dec, 600, release="scratch/v1")["source_id"]) == [r.source_id for r in old]
    assert nearest(ra, dec, 1, release="scratch/v1")["release"][0] == "scratch/v1"


def test_an_object_at_its_own_reported_distance_is_in_the_cone(engine, sky):
    """The radius was compared in degrees (radius_arcsec / 3600) with a distance reported in arcsec: about
    one object in 30 was left out of a cone whose radius was its own distance_arcsec."""
    rng = np.random.default_rng(11)
    lost = []
    for star in rng.choice(len(sky["id"]), 12, replace=False):
        centre = sky["coord"][star].spherical_offsets_by(40 * u.arcsec, -25 * u.arcsec)
        ra, dec = float(centre.ra.deg), float(centre.dec.deg)
        around = cone_search(ra, dec, 3 * 3600.0)[:30]
        with engine.connect() as conn:
            for source_id, distance in zip(around["source_id"], around["distance_arcsec"]):
                r = float(distance)
                sql = conn.execute(sa.text("SELECT source_id FROM healcat.cone_search(:ra, :dec, :r)"),
                                   {"ra": ra, "dec": dec, "r": r}).scalars().all()
                if source_id not in sql or source_id not in set(cone_search(ra, dec, r)["source_id"]):
                    lost.append((ra, dec, int(source_id), r))
        # the same cone as astropy finds it (but for points within 1e-10 deg of the edge)
        expected, ambiguous, _ = brute_force(sky, ra, dec, float(around["distance_arcsec"][-1]))
        got = set(cone_search(ra, dec, float(around["distance_arcsec"][-1]))["source_id"])
        assert got - ambiguous == expected
    assert lost == []


def test_a_radius_whose_degrees_underflow_is_an_error_naming_it(engine, catalog):
    with pytest.raises(QueryError, match=r"radius_arcsec must be at least 1e-300.*got 5e-324"):
        cone_search(10, 10, 5e-324)
    with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError, match="radius_arcsec must be at least") as error:
        conn.execute(sa.text("SELECT * FROM healcat.cone_search(10, 10, CAST(:r AS float8))"), {"r": 5e-324}).all()
    assert error.value.orig.sqlstate == "22023"
    assert len(cone_search(10, 10, 1e-300)) == 0


def test_an_object_id_resolves_in_the_published_releases_first(engine, catalog, tmp_path, scratch_release):
    """`healcat similar --object-id` failed with 'in releases scratch/v1, scratch/v2; name one' though
    v1 was superseded: without a release named, an id resolves as the searches read, published first."""
    from ingest.load import ingest_release
    from tests.conftest import scratch_mapping, sdss_rows, spec_name, write_csv

    rows = sdss_rows()[:4]
    for row in rows[1:]:
        row["plate"] = "9999"  # ids no other release has; rows[0]'s is sdss/dr14-skyserver-10k's too
    ingest_release(scratch_mapping(tmp_path, "v1"), engine, file=write_csv(tmp_path / "v1.csv", rows))
    ingest_release(scratch_mapping(tmp_path, "v2"), engine, file=write_csv(tmp_path / "v2.csv", rows[:3]))
    shared, moved, dropped = spec_name(rows[0]), spec_name(rows[1]), spec_name(rows[3])
    with engine.connect() as conn:
        ids = {(r.object_id, r.name): r.source_id for r in conn.execute(sa.text(
            "SELECT s.object_id, r.name, s.source_id FROM healcat.source s JOIN healcat.release r USING (release_id) "
            "WHERE r.name LIKE 'scratch/%'")).all()}
    assert source_id_of(moved) == ids[(moved, "scratch/v2")], "the published release's, not 'name one'"
    assert source_id_of(moved, release="scratch/v1") == ids[(moved, "scratch/v1")]
    assert source_id_of(dropped) == ids[(dropped, "scratch/v1")], "only in a superseded release: that one"
    with pytest.raises(QueryError, match=f"in published releases scratch/v2, {SDSS_RELEASE}; name one"):
        source_id_of(shared)


def test_a_null_is_a_masked_cell_of_the_column_type_never_a_value():
    """catalog.search.results.masked_column, behind crossmatch_releases' unmatched rows: every column a
    MaskedColumn, also where nothing is missing (``.mask`` always answers)."""
    from catalog.search.results import masked_column

    ids = masked_column([7, None, 2**62], np.int64)
    assert ids.dtype == np.int64 and list(ids.mask) == [False, True, False] and ids[2] == 2**62
    names = masked_column([None, "a"], str)
    assert names.dtype.kind == "U" and list(names.mask) == [True, False] and names.filled("?").tolist() == ["?", "a"]
    sep = masked_column([0.5, 1.5], np.float64, u.arcsec)
    assert sep.unit == u.arcsec and not sep.mask.any() and list(sep) == [0.5, 1.5]
    assert len(masked_column([], np.float64)) == 0
