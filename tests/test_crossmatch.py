"""Cross-matches are exact: held to astropy's match_coordinates_sky and search_around_sky on real data."""

from __future__ import annotations

import math
import re

import astropy.units as u
import healpy
import numpy as np
import pytest
import sqlalchemy as sa
from astropy.coordinates import SkyCoord, match_coordinates_sky, search_around_sky
from astropy.io import ascii
from astropy.table import QTable, Table
from astropy.time import Time

from catalog import crossmatch, crossmatch_releases, healpix
from catalog.cli import main
from catalog.errors import QueryError
from tests.conftest import GAIA_RELEASE, SDSS_RELEASE

EDGE_TOLERANCE_ARCSEC = 1e-6  # pairs this close to the radius may fall either way in float64


def _release(engine, name: str) -> dict:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT s.source_id, s.ra, s.dec FROM healcat.source s JOIN healcat.release r "
                                    "USING (release_id) WHERE r.name = :n AND s.hpx IS NOT NULL ORDER BY 1"),
                            {"n": name}).all()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    return {"id": ids, "coord": SkyCoord([r[1] for r in rows] * u.deg, [r[2] for r in rows] * u.deg)}


@pytest.fixture(scope="module")
def gaia(engine, catalog):
    return _release(engine, GAIA_RELEASE)


@pytest.fixture(scope="module")
def sdss(engine, catalog):
    return _release(engine, SDSS_RELEASE)


def expected_pairs(coords: SkyCoord, cat: dict, radius_arcsec: float) -> tuple[set, set]:
    """Pairs (1-based input row, source_id) within the radius, and those too close to the edge to call."""
    i, j, sep, _ = search_around_sky(coords, cat["coord"], (radius_arcsec + 2 * EDGE_TOLERANCE_ARCSEC) * u.arcsec)
    pairs = list(zip((i + 1).tolist(), cat["id"][j].tolist()))
    edge = np.abs(sep.arcsec - radius_arcsec) < EDGE_TOLERANCE_ARCSEC
    certain = {p for p, s, e in zip(pairs, sep.arcsec, edge) if s <= radius_arcsec and not e}
    return certain, {p for p, e in zip(pairs, edge) if e}


def jittered(cat: dict, n: int, scatter_arcsec: float, seed: int, where=None) -> SkyCoord:
    """Positions of n catalog stars (those matching ``where``), each moved by a random offset."""
    rng = np.random.default_rng(seed)
    pool = np.flatnonzero(where(cat["coord"])) if where is not None else np.arange(len(cat["id"]))
    stars = cat["coord"][rng.choice(pool, size=min(n, len(pool)), replace=False)]
    return stars.directional_offset_by(rng.uniform(0, 360, len(stars)) * u.deg,
                                       np.abs(rng.normal(0, scatter_arcsec, len(stars))) * u.arcsec)


def at_edges(coord: SkyCoord) -> np.ndarray:
    """Near RA = 0/360 or a pole: where cross-matches go wrong."""
    return (coord.ra.deg < 1) | (coord.ra.deg > 359) | (np.abs(coord.dec.deg) > 87)


# --- the HEALPix cover -------------------------------------------------------------------------------


def test_xmatch_order_is_the_finest_that_holds_the_radius(engine):
    with engine.connect() as conn:
        for radius_arcsec in (0.01, 0.1, 1.0, 3.7, 60.0, 300.0, 1800.0):
            k = conn.scalar(sa.text("SELECT healcat.xmatch_order(:r)"), {"r": radius_arcsec})
            resol_arcsec = [math.degrees(healpy.nside2resol(1 << j)) * 3600 for j in range(30)]
            assert 4 <= k <= 28
            assert radius_arcsec <= 0.3 * resol_arcsec[k + 1]
            assert k == 28 or radius_arcsec > 0.3 * resol_arcsec[k + 2] or k == 4


def _hard_positions(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ra, dec, hpx) of n seeded positions, a fifth in the polar caps, a fifth along the cap/belt
    boundary (|dec| = 41.81 deg) and a fifteenth on face boundaries in RA; the rest uniform."""
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    k = n // 5
    dec[:k] = rng.choice([-1, 1], k) * (90 - rng.uniform(0, 2, k))  # polar caps
    dec[k:2 * k] = rng.choice([-1, 1], k) * (41.8103149 + rng.normal(0, 0.5, k))  # cap/belt boundary
    ra[2 * k:2 * k + n // 15] = rng.choice([0.0, 45.0, 90.0, 359.9999], n // 15)  # face boundaries
    return ra, dec, healpix.hpx_index(ra, dec)


def test_cover_is_the_same_in_sql_and_python_and_holds_the_disk(engine):
    ra, dec, hpx = _hard_positions(7, 1500)
    with engine.connect() as conn:
        for order in (4, 9, 14, 18, 28):
            rows = conn.execute(sa.text(
                "SELECT u.i, array_agg(c.pix) FROM unnest(CAST(:h AS bigint[])) WITH ORDINALITY AS u(h, i) "
                "CROSS JOIN LATERAL healcat.hpx_xmatch_cover(:k, u.h) AS c GROUP BY u.i ORDER BY u.i"),
                {"h": hpx.tolist(), "k": order}).all()
            python = healpix.xmatch_cover(hpx, order)
            nside = 1 << (order + 1)
            radius_rad = 0.3 * healpy.nside2resol(nside)
            for i, (_, sql_cover) in enumerate(rows):
                cover = set(python[i][python[i] >= 0].tolist())
                assert sorted(sql_cover) == sorted(cover), f"order {order}, point {i}: SQL and Python covers differ"
                if order <= 18:  # healpy's query_disc is reliable to there
                    disc = healpy.query_disc(nside, healpy.ang2vec(ra[i], dec[i], lonlat=True), radius_rad,
                                             inclusive=True, nest=True, fact=16)
                    assert set((disc >> 2).tolist()) <= cover, f"order {order}, point {i}: disk leaves the cover"


@pytest.mark.parametrize("radius_arcsec", [0.5, 1.0, 60.0, 1800.0])
def test_probe_cover_is_the_same_in_sql_and_python_holds_the_disk_and_is_small(engine, radius_arcsec):
    """The probe pixels (for small radii the cover's parents two orders up) hold every pixel query_disc finds."""
    ra, dec, hpx = _hard_positions(11, 1200)
    with engine.connect() as conn:
        order, probe = conn.execute(sa.text("SELECT healcat.xmatch_order(:r), healcat.xmatch_probe_order(:r)"),
                                    {"r": radius_arcsec}).one()
        rows = conn.execute(sa.text(
            "SELECT u.i, array_agg(c.pix) FROM unnest(CAST(:h AS bigint[])) WITH ORDINALITY AS u(h, i) "
            "CROSS JOIN LATERAL healcat.hpx_xmatch_probe_cover(:k, :p, u.h) AS c GROUP BY u.i ORDER BY u.i"),
            {"h": hpx.tolist(), "k": order, "p": probe}).all()
    assert probe == (order - 2 if order - 2 >= 11 else order)
    python = healpix.xmatch_probe_cover(hpx, order, probe)
    fine = min(order + 2, 18)  # healpy's query_disc is reliable to order 18
    sizes = []
    for i, (_, sql_cover) in enumerate(rows):
        cover = set(python[i][python[i] >= 0].tolist())
        assert sorted(sql_cover) == sorted(cover), f"point {i}: SQL and Python probe covers differ"
        assert python[i][0] == hpx[i] >> (2 * (29 - probe)), "the point's own pixel comes first"
        disc = healpy.query_disc(1 << fine, healpy.ang2vec(ra[i], dec[i], lonlat=True),
                                 math.radians(radius_arcsec / 3600.0), inclusive=True, nest=True, fact=16)
        assert set((disc >> (2 * (fine - probe))).tolist()) <= cover, f"point {i}: the disk leaves the cover"
        sizes.append(len(cover))
    if probe < order:  # 9 in 16 points need one probe pixel (a 2x2 order-k block in a 4x4 one)
        assert np.mean(sizes[500:]) < 1.75, "most points need one probe pixel"


# --- two releases in the catalog ---------------------------------------------------------------------


@pytest.mark.parametrize("radius_arcsec", [1.0, 60.0, 600.0])
def test_releases_match_exactly(engine, sdss, gaia, radius_arcsec):
    pairs, ambiguous = expected_pairs(sdss["coord"], gaia, radius_arcsec)
    everything = crossmatch_releases(SDSS_RELEASE, GAIA_RELEASE, radius_arcsec, mode="all")
    row_of = {int(source_id): i + 1 for i, source_id in enumerate(sdss["id"])}
    got = {(row_of[int(a)], int(b)) for a, b in zip(everything["source_id_a"], everything["source_id_b"])}
    assert len(got) == len(everything), "no pair twice"
    assert got - ambiguous == pairs
    assert radius_arcsec < 60 or len(pairs) > 10, "SDSS fields hold Gaia bright stars"

    best = crossmatch_releases(SDSS_RELEASE, GAIA_RELEASE, radius_arcsec)
    assert list(best["source_id_a"]) == list(sdss["id"]), "best: one row per SDSS source"
    idx, sep, _ = match_coordinates_sky(sdss["coord"], gaia["coord"])
    matched = sep.arcsec <= radius_arcsec
    clear = np.abs(sep.arcsec - radius_arcsec) > EDGE_TOLERANCE_ARCSEC
    assert np.array_equal(~best["source_id_b"].mask[clear], matched[clear])
    assert np.array_equal(best["source_id_b"][matched & clear], gaia["id"][idx[matched & clear]])
    np.testing.assert_allclose(best["separation_arcsec"][matched & clear], sep.arcsec[matched & clear], atol=1e-6)


def test_release_with_itself_finds_every_source_at_zero(engine, sdss):
    best = crossmatch_releases(SDSS_RELEASE, SDSS_RELEASE, 0.1)
    assert len(best) == len(sdss["id"]) and not best["source_id_b"].mask.any()
    assert np.all(best["separation_arcsec"] < 1e-6)


# --- a table against the catalog ---------------------------------------------------------------------


@pytest.mark.parametrize("radius_arcsec,scatter_arcsec", [(0.1, 0.05), (1.0, 0.5), (60.0, 30.0), (300.0, 120.0)])
def test_table_matches_exactly(engine, gaia, radius_arcsec, scatter_arcsec):
    anywhere = jittered(gaia, 300, scatter_arcsec, seed=int(radius_arcsec * 10))
    edges = jittered(gaia, 200, scatter_arcsec, seed=1, where=at_edges)  # RA = 0/360 and the poles
    coords = SkyCoord(np.concatenate([anywhere.ra.deg, edges.ra.deg]) * u.deg,
                      np.concatenate([anywhere.dec.deg, edges.dec.deg]) * u.deg)
    table = Table({"name": [f"star{i}" for i in range(len(coords))], "ra": coords.ra.deg, "dec": coords.dec.deg})

    best = crossmatch(table, radius_arcsec, release=GAIA_RELEASE)
    assert list(best["input_row"]) == list(range(1, len(table) + 1)) and list(best["name"]) == list(table["name"])
    idx, sep, _ = match_coordinates_sky(coords, gaia["coord"])
    matched = sep.arcsec <= radius_arcsec
    clear = np.abs(sep.arcsec - radius_arcsec) > EDGE_TOLERANCE_ARCSEC
    assert matched.sum() > len(table) / 3, "jittered stars are found"
    assert np.array_equal(~best["source_id"].mask[clear], matched[clear])
    assert np.array_equal(best["source_id"][matched & clear], gaia["id"][idx[matched & clear]])
    np.testing.assert_allclose(best["separation_arcsec"][matched & clear], sep.arcsec[matched & clear], atol=1e-6)
    assert set(best["release"][~best["source_id"].mask]) == {GAIA_RELEASE}

    everything = crossmatch(table, radius_arcsec, release=GAIA_RELEASE, mode="all")
    pairs, ambiguous = expected_pairs(coords, gaia, radius_arcsec)
    got = set(zip(everything["input_row"].tolist(), everything["source_id"].tolist()))
    assert len(got) == len(everything) and got - ambiguous == pairs
    assert np.all(everything["name"] == table["name"][everything["input_row"] - 1])


def test_sql_cover_and_python_cover_give_the_same_matches(engine, gaia):
    coords = jittered(gaia, 400, 0.5, seed=3)
    table = Table({"ra": coords.ra.deg, "dec": coords.dec.deg})
    python = crossmatch(table, 2.0, mode="all")
    with engine.connect() as conn:
        conn.execute(sa.text("CREATE TEMPORARY TABLE xin AS SELECT u.i AS row_id, u.ra, u.dec, "
                             "healcat.hpx_ang2pix(29, u.ra, u.dec) AS hpx "
                             "FROM unnest(CAST(:ra AS float8[]), CAST(:dec AS float8[])) WITH ORDINALITY AS u(ra, dec, i)"),
                     {"ra": coords.ra.deg.tolist(), "dec": coords.dec.deg.tolist()})
        sql = conn.execute(sa.text("SELECT row_id, source_id, separation_arcsec FROM healcat.xmatch_table('xin', 2.0, "
                                   "NULL, 'all')")).all()
        best = conn.execute(sa.text("SELECT count(*), count(source_id) FROM healcat.xmatch_table('xin', 2.0)")).one()
    assert [(r.row_id, r.source_id) for r in sql] == list(zip(python["input_row"], python["source_id"]))
    assert best[0] == len(table) and best[1] == len(set(python["input_row"]))


def test_sql_crossmatch_names_the_columns_its_input_table_lacks(conn, gaia):
    conn.execute(sa.text("CREATE TEMPORARY TABLE mine AS SELECT g AS row_id, 10.0::float8 AS ra, 0.0::float8 AS dec "
                         "FROM generate_series(1, 5) AS g"))
    with pytest.raises(sa.exc.DBAPIError, match=r"xmatch: table mine needs the columns row_id bigint, .* it lacks or "
                                                r"mistypes row_id bigint, hpx bigint") as err:
        conn.execute(sa.text("SELECT * FROM healcat.xmatch_table('mine', 600)")).all()
    assert err.value.orig.sqlstate == "22023"


def test_proper_motions_move_the_input_to_the_catalog_epoch(engine, gaia):

    rng = np.random.default_rng(5)
    now = gaia["coord"][rng.choice(len(gaia["id"]), 200, replace=False)]
    pmra, pmdec = rng.normal(0, 800, 200), rng.normal(0, 800, 200)  # mas/yr: tens of arcsec over 16 years
    moving = SkyCoord(ra=now.ra, dec=now.dec, pm_ra_cosdec=pmra * u.mas / u.yr, pm_dec=pmdec * u.mas / u.yr,
                      obstime=Time(2016.0, format="jyear"))
    import warnings

    from erfa import ErfaWarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ErfaWarning)
        then = moving.apply_space_motion(new_obstime=Time(2000.0, format="jyear"))
    # The input carries its own epoch's proper motions (their RA/Dec components turn as a star moves).
    table = Table({"ra": then.ra.deg, "dec": then.dec.deg, "pmra": then.pm_ra_cosdec.to_value(u.mas / u.yr),
                   "pmdec": then.pm_dec.to_value(u.mas / u.yr)})
    stale = crossmatch(table, 1.0, release=GAIA_RELEASE)
    moved = crossmatch(table, 1.0, release=GAIA_RELEASE, pm_cols=("pmra", "pmdec"), epoch_jyear=2000.0,
                       to_epoch_jyear=2016.0)
    assert (~moved["source_id"].mask).sum() == 200 and np.all(moved["separation_arcsec"] < 0.01)
    assert (~stale["source_id"].mask).sum() < 20, "without the proper motions the stars are elsewhere"
    as_objects = crossmatch(table, 1.0, release=GAIA_RELEASE, pm_cols=("pmra", "pmdec"),
                            epoch_jyear=Time(2000.0, format="jyear"), to_epoch_jyear=2016.0 * u.yr)
    assert list(as_objects["source_id"]) == list(moved["source_id"])  # a Time and a Quantity, as their years
    with pytest.raises(QueryError, match="epoch"):
        crossmatch(table, 1.0, pm_cols=("pmra", "pmdec"))
    with pytest.raises(QueryError, match="no column 'pmRA' .*; the input has ra, dec, pmra, pmdec"):
        crossmatch(table, 1.0, pm_cols=("pmRA", "pmdec"), epoch_jyear=2000.0, to_epoch_jyear=2016.0)
    with pytest.raises(QueryError, match="no column 'J2000' \\(proper motions, or the epoch as a Julian year"):
        crossmatch(table, 1.0, pm_cols=("pmra", "pmdec"), epoch_jyear="J2000", to_epoch_jyear=2016.0)
    with pytest.raises(QueryError, match="the epoch must be a finite Julian year, got nan"):
        crossmatch(table, 1.0, pm_cols=("pmra", "pmdec"), epoch_jyear=float("nan"), to_epoch_jyear=2016.0)


# --- bad input and arguments -------------------------------------------------------------------------


def test_bad_positions_are_named_or_kept_with_the_reason(engine, catalog):
    table = Table({"id": [1, 2, 3, 4, 5], "RAJ2000": [160.941521316, -3.0, 10.0, np.nan, 360.0],
                   "DEJ2000": [0.7967796443, 0.0, 91.0, 1.0, 0.0]})
    with pytest.raises(QueryError, match=r"bad positions in 3 rows: row 2 column RAJ2000: RA outside \[0, 360\] deg: -3.0; "
                                         r"row 3 column DEJ2000: Dec outside \[-90, 90\] deg: 91.0; row 4 column "
                                         r"RAJ2000: missing or not a finite number: nan"):
        crossmatch(table, 1.0)
    kept = crossmatch(table, 1.0, keep_bad=True)
    assert list(kept["id"]) == [1, 2, 3, 4, 5] and list(kept["input_row"]) == [1, 2, 3, 4, 5]
    assert list(kept["source_id"].mask) == [False, True, True, True, True]
    assert kept["object_id"][0] == "0275-51910-0435" and kept["xmatch_problem"][0] == ""
    assert "Dec outside" in kept["xmatch_problem"][2] and kept["xmatch_problem"][4] == ""


@pytest.mark.parametrize("kwargs,message", [
    ({"radius_arcsec": 0.0}, r"radius_arcsec must be in \(0, 1800\]"),
    ({"radius_arcsec": 3600.0}, r"radius_arcsec must be in \(0, 1800\]"),
    ({"radius_arcsec": float("nan")}, r"radius_arcsec must be a finite number, got nan"),
    ({"radius_arcsec": 1.0, "mode": "nearest"}, "mode must be 'best' or 'all'"),
    ({"radius_arcsec": 1.0, "release": "nope"}, "no release named 'nope'"),
    ({"radius_arcsec": 1.0, "at_epoch_jyear": 2000.0 * u.m}, r"at_epoch_jyear must be one Julian year .* got "),
    ({"radius_arcsec": 1.0, "at_epoch_jyear": "J2000"}, "at_epoch_jyear must be one Julian year"),
    ({"radius_arcsec": 1.0, "at_epoch_jyear": 57000.0 * u.d}, "at_epoch_jyear must be one Julian year"),
    ({"radius_arcsec": 1.0, "at_epoch_jyear": float("nan")}, "at_epoch_jyear: the epoch must be a finite Julian year"),
    ({"radius_arcsec": 1.0, "at_epoch_jyear": np.array([2000.0, 2010.0])}, "at_epoch_jyear must be one Julian year"),
    ({"radius_arcsec": 1.0, "at_epoch_jyear": 1e6 * u.yr}, "the epoch 1000000.0 is outside the epochs accepted"),
    ({"radius_arcsec": 1.0, "epoch_jyear": 2000.0}, r"\(epoch_jyear, to_epoch_jyear; on the command line --epoch, "
                                                    r"--to-epoch\) .* \(pm_cols=\(PMRA, PMDEC\); --pm-cols PMRA PMDEC\)"),
])
def test_bad_arguments_are_errors(engine, catalog, kwargs, message):
    table = Table({"ra": [10.0], "dec": [10.0]})
    with pytest.raises(QueryError, match=message):
        crossmatch(table, **kwargs)


def test_a_skycoord_dataframe_dict_or_structured_array_is_read_as_a_table(engine, gaia):
    """Each gave "AttributeError: ... has no attribute 'colnames'"."""
    coords = jittered(gaia, 40, 0.2, seed=11)
    table = Table({"ra": coords.ra.deg, "dec": coords.dec.deg})
    expected = list(crossmatch(table, 1.0, release=GAIA_RELEASE)["source_id"])
    assert np.sum(~np.asarray(crossmatch(table, 1.0, release=GAIA_RELEASE)["source_id"].mask)) > 30
    for given in (coords, table.to_pandas(), {"ra": list(coords.ra.deg), "dec": list(coords.dec.deg)},
                  table.as_array()):
        assert list(crossmatch(given, 1.0, release=GAIA_RELEASE)["source_id"]) == expected, type(given)
    assert list(crossmatch(coords[0], 1.0, release=GAIA_RELEASE)["source_id"]) == expected[:1]
    moving = SkyCoord(coords.ra, coords.dec, pm_ra_cosdec=np.full(len(coords), 100.0) * u.mas / u.yr,
                      pm_dec=np.zeros(len(coords)) * u.mas / u.yr)
    with pytest.raises(QueryError, match="the SkyCoord 'coord' carries proper motions, which a cross-match reads"):
        crossmatch(moving, 1.0, release=GAIA_RELEASE)
    with pytest.raises(QueryError, match=r"the input must be an astropy Table \(or a SkyCoord, .*\), got list"):
        crossmatch([(10.0, 20.0)], 1.0)
    with pytest.raises(QueryError, match="the input cannot be read as a table"):
        crossmatch({"ra": [10.0, 11.0], "dec": [20.0]}, 1.0)


@pytest.mark.parametrize("call,message", [
    ("healcat.xmatch_releases('sdss/dr14-skyserver-10k', 'nope', 1.0)", "no release named 'nope'"),
    ("healcat.xmatch_releases('sdss/dr14-skyserver-10k', 'gaia/dr3-bright-g10', -1.0)", "radius_arcsec must be"),
    ("healcat.xmatch_releases('sdss/dr14-skyserver-10k', 'gaia/dr3-bright-g10', 1.0, 'any')", "mode must be"),
])
def test_sql_rejects_bad_arguments(engine, catalog, call, message):
    with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError, match=message):
        conn.execute(sa.text(f"SELECT * FROM {call}")).all()


def test_epoch_and_proper_motion_cells_that_cannot_be_used_are_named(engine, catalog):
    """A masked epoch cell held 0 (the star moved by 2,000 years, silently); a text one was a bare
    ValueError. A missing proper motion is no motion."""
    from astropy.table import MaskedColumn

    table = Table({"ra": [160.941521316, 160.941521316, 160.941521316, 160.941521316],
                   "dec": [0.7967796443] * 4,
                   "pmra": ["10", "", "fast", "0"], "pmdec": [5.0, 5.0, 5.0, 5.0],
                   "ep": MaskedColumn([2016.0, 2016.0, 2016.0, 0.0], mask=[False, False, False, True])})
    with pytest.raises(QueryError, match=r"bad positions in 2 rows: row 3 column pmra: a proper motion that is not a number: "
                                         r"fast; row 4 column ep: epoch missing or not a finite number"):
        crossmatch(table, 1.0, pm_cols=("pmra", "pmdec"), epoch_jyear="ep", to_epoch_jyear=2016.0)
    kept = crossmatch(table, 1.0, pm_cols=("pmra", "pmdec"), epoch_jyear="ep", to_epoch_jyear=2016.0, keep_bad=True)
    assert list(kept["source_id"].mask) == [False, False, True, True]  # row 2: no pm, not moved, matched
    assert "epoch missing" in kept["xmatch_problem"][3]


def test_a_row_with_half_a_proper_motion_stays_where_it_is(engine, catalog):
    """A row with pmdec but no pmra was moved along Dec alone (its pmra taken as 0): 16 years at
    100 mas/yr put the demo's galaxy 1.6 arcsec off, unmatched at 1 arcsec. Like a row with no proper
    motion, it stays where it is."""
    from astropy.table import MaskedColumn

    table = Table({"ra": [160.941521316] * 2, "dec": [0.7967796443] * 2,
                   "pmra": MaskedColumn([0.0, 0.0], mask=[True, False]), "pmdec": [100.0, 0.0]})
    moved = crossmatch(table, 1.0, pm_cols=("pmra", "pmdec"), epoch_jyear=2000.0, to_epoch_jyear=2016.0)
    assert not moved["source_id"].mask.any()
    assert moved["source_id"][0] == moved["source_id"][1] and moved["separation_arcsec"][0] < 1e-3


def test_a_radius_with_a_unit_and_a_third_match_of_a_matched_table(engine, catalog):
    table = Table({"ra": [160.941521316], "dec": [0.7967796443]})
    once = crossmatch(table, 1.0)
    assert list(crossmatch(table, 1 * u.arcsec)["source_id"]) == list(once["source_id"])
    with pytest.raises(QueryError, match="xmatch: radius_arcsec must be an angle, got 1.0 m"):
        crossmatch(table, 1 * u.m)
    thrice = crossmatch(crossmatch(once, 1.0), 1.0)  # each earlier match's columns get a free name
    assert {"source_id", "source_id_input", "source_id_input1", "input_row_input1"} <= set(thrice.colnames)


def test_a_statement_timeout_is_a_query_error_on_the_python_path(database_url, catalog):
    from catalog import db

    impatient = sa.create_engine(db.reader_url(database_url))
    impatient.connect().close()  # SQLAlchemy's first-connect queries run without the timeout
    sa.event.listen(impatient, "checkout", lambda dbapi, *_: dbapi.execute("SET statement_timeout = 1"))
    try:
        table = Table({"ra": np.linspace(0, 359, 2000), "dec": np.linspace(-80, 80, 2000)})
        with pytest.raises(QueryError, match="xmatch: cancelled by the server's statement_timeout"):
            crossmatch(table, 1800.0, mode="all", engine=impatient)
    finally:
        impatient.dispose()


# --- the command line --------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix,fmt", [(".csv", "ascii.csv"), (".ecsv", "ascii.ecsv"), (".fits", "fits"),
                                        (".xml", "votable")])
def test_cli_reads_every_format_and_gives_the_python_answer(tmp_path, engine, sdss, suffix, fmt, capsys):
    coords = sdss["coord"][:50]
    table = Table({"objname": [f"o{i}" for i in range(50)], "ra_deg": coords.ra.deg, "dec_deg": coords.dec.deg})
    path = tmp_path / f"input{suffix}"
    table.write(path, format=fmt)
    assert main(["xmatch", str(path), "--radius", "1arcmin", "--mode", "all", "--format", "ecsv"]) == 0
    out = Table.read(capsys.readouterr().out, format="ascii.ecsv")
    expected = crossmatch(table, 60.0, mode="all")
    assert list(out["source_id"]) == list(expected["source_id"]) and len(out) >= 50
    assert list(out["objname"]) == list(expected["objname"])


def test_cli_names_the_file_row_and_column_of_a_bad_value(tmp_path, catalog, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("name,ra,dec\na,10.0,5.0\nb,10.0,95.0\n")
    assert main(["xmatch", str(path), "--radius", "1"]) == 1
    assert f"{path}: xmatch: bad positions in 1 row: row 2 column dec: Dec outside [-90, 90] deg: 95.0" in \
        capsys.readouterr().err
    assert main(["xmatch", str(path), "--radius", "1", "--keep-bad", "--format", "csv"]) == 0
    assert "Dec outside" in capsys.readouterr().out


def test_cli_releases(catalog, capsys):
    assert main(["xmatch-releases", SDSS_RELEASE, GAIA_RELEASE, "--radius", "1arcmin", "--mode", "all",
                 "--format", "csv"]) == 0
    out = Table.read(capsys.readouterr().out, format="ascii.csv")
    assert len(out) > 0 and np.all(out["separation_arcsec"] <= 60.0)


def test_real_proper_motions_bring_kepler_stars_onto_gaia_dr3(engine, gaia):
    """Gaia DR1 TGAS positions of Kepler stars at J2000 and their proper motions, moved to Gaia DR3's epoch."""
    from ingest.mapping import data_dir

    table = Table.read(data_dir() / "kepler_mcquillan_tgas_prot" / "1473873638462A.csv", format="ascii.csv")
    table = table[table["phot_g_mean_mag"] < 9.5]  # bright enough to be in the G < 10 release
    kwargs = dict(release=GAIA_RELEASE, ra_col="ra_ep2000", dec_col="dec_ep2000")
    moved = crossmatch(table, 0.1, pm_cols=("pmra", "pmdec"), epoch_jyear=2000.0, to_epoch_jyear=2016.0, **kwargs)
    stale = crossmatch(table, 0.1, **kwargs)
    found = ~moved["source_id"].mask
    assert len(table) > 20 and found.all(), "every bright TGAS star is a Gaia DR3 star at 2016.0"
    assert np.median(moved["separation_arcsec"].filled(np.nan)) < 0.01, "within milliarcseconds once moved"
    assert (~stale["source_id"].mask).sum() < len(table) / 4, "16 years of proper motion move most by > 0.1 arcsec"


def test_quantity_columns_and_proper_motions_in_any_angular_rate(engine, gaia):
    """A QTable's Quantity columns failed (degrees times degrees); proper motions in arcsec/yr were
    read as mas/yr, moving each star a thousandth of the way (no match, silently)."""
    from astropy.table import QTable

    from ingest.mapping import data_dir

    one = crossmatch(QTable({"ra": [160.9415] * u.deg, "dec": [0.7968] * u.deg}), 1.0)
    assert list(one["object_id"]) == ["0275-51910-0435"]
    table = Table.read(data_dir() / "kepler_mcquillan_tgas_prot" / "1473873638462A.csv", format="ascii.csv")
    table = table[table["phot_g_mean_mag"] < 9.5]
    kwargs = dict(release=GAIA_RELEASE, pm_cols=("pmra", "pmdec"), epoch_jyear=2000.0, to_epoch_jyear=2016.0)
    in_mas = crossmatch(Table({"ra": table["ra_ep2000"], "dec": table["dec_ep2000"], "pmra": table["pmra"],
                               "pmdec": table["pmdec"]}), 0.1, **kwargs)
    assert (~in_mas["source_id"].mask).all()
    units = QTable({"ra": np.asarray(table["ra_ep2000"]) / 15 * u.hourangle, "dec": np.asarray(table["dec_ep2000"]) * u.deg,
                    "pmra": np.asarray(table["pmra"]) / 1000 * u.arcsec / u.yr,
                    "pmdec": np.asarray(table["pmdec"]) * u.mas / u.yr})
    assert list(crossmatch(units, 0.1, **kwargs)["source_id"]) == list(in_mas["source_id"])
    in_column_units = Table(units)  # plain columns with a unit attribute
    assert list(crossmatch(in_column_units, 0.1, **kwargs)["source_id"]) == list(in_mas["source_id"])
    units["pmdec"] = np.asarray(table["pmdec"]) * u.km / u.s
    with pytest.raises(QueryError, match=r"column 'pmdec' is in km / s, not a proper motion \(mas / yr\)"):
        crossmatch(units, 0.1, **kwargs)
    with pytest.raises(QueryError, match=r"column 'dec' is in m, not an angle \(deg\)"):
        crossmatch(QTable({"ra": [10.0] * u.deg, "dec": [10.0] * u.m}), 1.0)


def test_a_row_with_two_bad_values_is_one_row_with_both_reasons(engine, catalog, caplog):
    table = Table({"ra": [160.941521316, -3.0, np.nan], "dec": [0.7967796443, 95.0, 0.0]})
    with pytest.raises(QueryError, match=r"bad positions in 2 rows: row 2 column ra: RA outside \[0, 360\] deg: -3.0; "
                                         r"row 2 column dec: Dec outside \[-90, 90\] deg: 95.0; row 3 column ra"):
        crossmatch(table, 1.0)
    kept = crossmatch(table, 1.0, keep_bad=True)
    assert list(kept["xmatch_problem"]) == [
        "", "column ra: RA outside [0, 360] deg: -3.0; column dec: Dec outside [-90, 90] deg: 95.0",
        "column ra: missing or not a finite number: nan"]
    assert "xmatch: 2 rows with bad positions kept unmatched" in caplog.text


# --- catalog-side proper motions: a match at an epoch ---------------------------------------------------

KEPLER = "kepler_mcquillan_tgas_prot"
MOVED_TOLERANCE_ARCSEC = 1e-5  # healcat.pm_propagate against astropy's apply_space_motion


@pytest.fixture(scope="module")
def kepler(engine, catalog):
    """The Kepler x TGAS release (proper motions at ref_epoch 2015.0), and its file's rows by object_id."""
    from ingest.load import ingest_release
    from ingest.mapping import data_dir

    result = ingest_release(KEPLER, engine)
    table = Table.read(data_dir() / KEPLER / "1473873638462A.csv", format="ascii.csv")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT source_id, object_id, ra, dec, pmra_masyr, pmdec_masyr, ref_epoch_yr "
                                    "FROM healcat.source WHERE release_id = :r ORDER BY source_id"),
                            {"r": result.release_id}).all()
    return result.release, table, rows


def _moved(ra, dec, pmra, pmdec, from_jyear, to_jyear) -> SkyCoord:
    import warnings

    from erfa import ErfaWarning

    c = SkyCoord(ra=np.asarray(ra) * u.deg, dec=np.asarray(dec) * u.deg, pm_ra_cosdec=np.asarray(pmra) * u.mas / u.yr,
                 pm_dec=np.asarray(pmdec) * u.mas / u.yr, obstime=Time(from_jyear, format="jyear"))
    with warnings.catch_warnings():  # no parallax: ERFA puts the stars far away
        warnings.simplefilter("ignore", ErfaWarning)
        return c.apply_space_motion(new_obstime=Time(to_jyear, format="jyear"))


def test_ingest_keeps_the_proper_motions_and_their_epoch(engine, kepler):
    release, table, rows = kepler
    by_kic = {}
    for i, k in enumerate(table["KIC"]):  # a KIC star's second TGAS match is quarantined
        by_kic.setdefault(f"KIC {k}", i)
    assert len(rows) > 1000
    for r in rows:
        i = by_kic[r.object_id]
        assert (r.pmra_masyr, r.pmdec_masyr, r.ref_epoch_yr) == (table["pmra"][i], table["pmdec"][i], 2015.0)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM healcat.source s JOIN healcat.release r USING (release_id) "
                                   "WHERE r.name = :n AND s.pmra_masyr IS NOT NULL"), {"n": GAIA_RELEASE}) == 0


def test_catalog_proper_motions_move_sources_to_the_epoch(engine, kepler):
    """The 40 fastest TGAS stars (up to 213 mas/yr) seen at 1985.0: found at their 1985 positions only at that epoch."""
    release, _, rows = kepler
    fast = sorted(rows, key=lambda r: -math.hypot(r.pmra_masyr, r.pmdec_masyr))[:40]
    then = _moved([r.ra for r in fast], [r.dec for r in fast], [r.pmra_masyr for r in fast],
                  [r.pmdec_masyr for r in fast], 2015.0, 1985.0)
    table = Table({"ra": then.ra.deg, "dec": then.dec.deg})
    at = crossmatch(table, 0.05, release=release, at_epoch_jyear=1985.0)
    assert list(at["source_id"]) == [r.source_id for r in fast], "every star found, itself"
    assert np.all(at["separation_arcsec"] < MOVED_TOLERANCE_ARCSEC)
    got = SkyCoord(at["match_ra"], at["match_dec"])
    assert np.all(got.separation(then).arcsec < MOVED_TOLERANCE_ARCSEC), "match_ra/dec are the positions at 1985.0"
    stale = crossmatch(table, 0.05, release=release)
    assert stale["source_id"].mask.all(), "30 years of at least 50 mas/yr: all 1.5 arcsec or more from 2015.0"
    # The input at 1985.0 with its motions: moved to 1985.0 (no motion) and matched there, with --to-epoch
    # equal to --at-epoch or without it; a --to-epoch other than --at-epoch compared two epochs (356 of
    # the README's 1,303 Kepler stars matched instead of 1,301).
    table["pmra"], table["pmdec"] = [r.pmra_masyr for r in fast], [r.pmdec_masyr for r in fast]
    for to_epoch in (None, 1985.0):
        same = crossmatch(table, 0.05, release=release, pm_cols=("pmra", "pmdec"), epoch_jyear=1985.0,
                          to_epoch_jyear=to_epoch, at_epoch_jyear=1985.0)
        assert list(same["source_id"]) == [r.source_id for r in fast]
    with pytest.raises(QueryError, match="two epochs"):
        crossmatch(table, 0.05, release=release, pm_cols=("pmra", "pmdec"), epoch_jyear=1985.0,
                   to_epoch_jyear=2015.0, at_epoch_jyear=1985.0)

    everything = crossmatch(table, 1.0, release=release, mode="all", at_epoch_jyear=1985.0)
    all_moved = _moved([r.ra for r in rows], [r.dec for r in rows], [r.pmra_masyr for r in rows],
                       [r.pmdec_masyr for r in rows], 2015.0, 1985.0)
    ids = np.array([r.source_id for r in rows])
    pairs, ambiguous = expected_pairs(then, {"id": ids, "coord": all_moved}, 1.0)
    got_pairs = set(zip(everything["input_row"].tolist(), everything["source_id"].tolist()))
    assert got_pairs - ambiguous == pairs


def test_the_pad_at_an_epoch_is_over_the_releases_a_cross_match_reads(conn, kepler):
    """With no release named a cross-match reads the published releases, but its pad took every
    release's fastest star: one of a superseded release widened every search (or refused the epoch)."""
    release, _, _ = kepler
    n = {"n": release}
    # one Kepler star made the fastest of the catalog (rolled back after the test), then its release superseded
    conn.execute(sa.text("UPDATE healcat.source SET pmra_masyr = 50000 WHERE source_id = (SELECT min(source_id) "
                         "FROM healcat.source JOIN healcat.release USING (release_id) WHERE name = :n "
                         "AND pmra_masyr IS NOT NULL)"), n)
    own = conn.scalar(sa.text("SELECT healcat.xmatch_pm_pad_arcsec(release_id, 1985.0) FROM healcat.release "
                              "WHERE name = :n"), n)
    assert own > 1000  # 50 arcsec/yr for 30 years
    conn.execute(sa.text("UPDATE healcat.release SET status = 'superseded' WHERE name = :n"), n)
    published = conn.scalar(sa.text(
        "SELECT coalesce(max(sqrt(s.pmra_masyr ^ 2 + s.pmdec_masyr ^ 2) * abs(1985.0 - s.ref_epoch_yr)) / 1000.0, 0) "
        "FROM healcat.source AS s JOIN healcat.release AS r USING (release_id) "
        "WHERE r.status = 'published' AND s.pmra_masyr IS NOT NULL"))
    assert conn.scalar(sa.text("SELECT healcat.xmatch_pm_pad_arcsec(NULL, 1985.0)")) == pytest.approx(published,
                                                                                                       rel=1e-12)
    assert published < own


def test_the_pad_is_the_largest_motion_and_bounds_the_radius(engine, kepler):
    release, table, rows = kepler
    with engine.connect() as conn:
        rel = conn.scalar(sa.text("SELECT release_id FROM healcat.release WHERE name = :n"), {"n": release})
        pad = conn.scalar(sa.text("SELECT healcat.xmatch_pm_pad_arcsec(:r, 1985.0)"), {"r": rel})
    fastest = np.max(np.hypot(np.asarray(table["pmra"], float), np.asarray(table["pmdec"], float)))
    assert pad == pytest.approx(fastest * 30 / 1000, rel=1e-12)
    # 1800 arcsec (the largest radius) at an epoch: every mover matched apart, no pad (refused before 0041)
    widest = crossmatch(Table({"ra": [rows[0].ra], "dec": [rows[0].dec]}), 1800.0, release=release,
                        at_epoch_jyear=1985.0, mode="all")
    assert len(widest) > 0 and np.all(widest["separation_arcsec"] <= 1800.0)
    with pytest.raises(QueryError, match="finite Julian year"):
        crossmatch(Table({"ra": [10.0], "dec": [20.0]}), 1.0, release=release, at_epoch_jyear=float("nan"))


def test_fast_movers_are_matched_apart_and_no_longer_widen_every_search(conn, kepler):
    """At an epoch the search around every input row was padded by the fastest star's displacement: one
    star at 50 arcsec/yr, 30 years away, made a 1 arcsec match search 1,501 arcsec around every row, and a
    400 arcsec match was refused (beyond 1,800). Stars moving further than the slow pad (the radius, at
    least 10 arcsec) are now moved and matched apart: the answers are astropy's, in both SQL routes."""
    release, _, rows = kepler
    fast = rows[len(rows) // 2].source_id
    conn.execute(sa.text("UPDATE healcat.source SET pmra_masyr = 50000 WHERE source_id = :s"), {"s": fast})
    pmra = [50000.0 if r.source_id == fast else r.pmra_masyr for r in rows]
    then = _moved([r.ra for r in rows], [r.dec for r in rows], pmra, [r.pmdec_masyr for r in rows], 2015.0, 1985.0)
    ids = np.array([r.source_id for r in rows])
    rel = conn.scalar(sa.text("SELECT release_id FROM healcat.release WHERE name = :n"), {"n": release})
    pad = conn.scalar(sa.text("SELECT healcat.xmatch_pm_pad_arcsec(:r, 1985.0)"), {"r": rel})
    assert pad == pytest.approx(math.hypot(50000.0, rows[len(rows) // 2].pmdec_masyr) * 30 / 1000, rel=1e-12)
    assert [conn.scalar(sa.text("SELECT healcat.xmatch_slow_pad_arcsec(:r, :p)"), {"r": r, "p": p})
            for r, p in ((1.0, pad), (400.0, pad), (1.0, 4.0), (1795.0, pad), (1800.0, 6.0))] == [
        10.0, 400.0, 4.0, pytest.approx(5.0 - 1e-6, abs=1e-9), 0.0]  # within the cover's 1800 arcsec

    # the input: every star where it was in 1985 (row i + 1 is rows[i])
    conn.execute(sa.text("CREATE TEMP TABLE mine (row_id bigint, ra float8, dec float8, hpx bigint)"))
    conn.execute(sa.text("INSERT INTO mine VALUES (:i, :ra, :dec, :hpx)"),
                 [{"i": i + 1, "ra": float(c.ra.deg), "dec": float(c.dec.deg), "hpx": int(h)}
                  for i, (c, h) in enumerate(zip(then, healpix.hpx_index(then.ra.deg, then.dec.deg)))])
    for radius in (1.0, 400.0):  # 400: refused before (400 + 1,500 arcsec)
        got = conn.execute(sa.text("SELECT row_id, source_id, ra, dec FROM healcat.xmatch_table('mine', :r, :n, "
                                   "'all', 1985.0)"), {"r": radius, "n": release}).all()
        pairs, ambiguous = expected_pairs(then, {"id": ids, "coord": then}, radius)
        assert {(g.row_id, g.source_id) for g in got} - ambiguous == pairs
        mine = [g for g in got if g.source_id == fast]
        assert len(mine) >= 1 and all(SkyCoord(g.ra * u.deg, g.dec * u.deg).separation(then[list(ids).index(fast)])
                                      .arcsec < MOVED_TOLERANCE_ARCSEC for g in mine), "the fast star at 1985.0"
    # no release named: the published ones (Kepler's pairs as above; other releases' stars may join them)
    unnamed = conn.execute(sa.text("SELECT row_id, source_id FROM healcat.xmatch_table('mine', 1.0, NULL, 'all', "
                                   "1985.0)")).all()
    pairs, ambiguous = expected_pairs(then, {"id": ids, "coord": then}, 1.0)
    assert {(g.row_id, g.source_id) for g in unnamed if g.source_id in set(ids.tolist())} - ambiguous == pairs
    best = conn.execute(sa.text("SELECT source_id_a, source_id_b, separation_arcsec FROM "
                                "healcat.xmatch_releases(:n, :n, 1.0, 'best', 1985.0)"), {"n": release}).all()
    at = {i: k for k, i in enumerate(ids.tolist())}
    assert [b.source_id_a for b in best] == ids.tolist()
    matched = then[[at[b.source_id_b] for b in best]]
    assert np.all(matched.separation(then).arcsec < MOVED_TOLERANCE_ARCSEC), "itself, or a star at its position"
    assert max(b.separation_arcsec for b in best) < MOVED_TOLERANCE_ARCSEC
    assert [b.source_id_b for b in best if b.source_id_a == fast] == [fast]


def test_releases_at_gaias_epoch_bring_tgas_onto_gaia_dr3(engine, kepler, gaia):
    """TGAS (2015.0) against Gaia DR3 (2016.0, no proper motions stored) at 0.02 arcsec: a year of motion decides."""
    release, _, rows = kepler
    radius_arcsec = 0.02
    stale = crossmatch_releases(release, GAIA_RELEASE, radius_arcsec)
    moved = crossmatch_releases(release, GAIA_RELEASE, radius_arcsec, at_epoch_jyear=2016.0)
    assert list(moved["source_id_a"]) == [r.source_id for r in rows]
    expected = _moved([r.ra for r in rows], [r.dec for r in rows], [r.pmra_masyr for r in rows],
                      [r.pmdec_masyr for r in rows], 2015.0, 2016.0)
    got = SkyCoord(moved["ra_a"], moved["dec_a"])
    assert np.all(got.separation(expected).arcsec < MOVED_TOLERANCE_ARCSEC), "ra_a/dec_a are at 2016.0"
    idx, sep, _ = match_coordinates_sky(expected, gaia["coord"])
    clear = np.abs(sep.arcsec - radius_arcsec) > 1e-4  # the propagation's own tolerance, with room
    matched = sep.arcsec <= radius_arcsec
    assert np.array_equal(~moved["source_id_b"].mask[clear], matched[clear])
    assert np.array_equal(moved["source_id_b"][matched & clear], gaia["id"][idx[matched & clear]])
    found, found_stale = ~moved["source_id_b"].mask, ~stale["source_id_b"].mask
    assert found.sum() > 10 and (found & ~found_stale).sum() > 0, "some stars are found only at Gaia's epoch"


def test_fetch_columns_returns_every_value_as_stored(conn):
    """The cross-match's answer comes back one aggregated value per column: numbers bit for bit, text
    with backslashes, newlines and non-ASCII intact, rows in the query's order; a NULL is an error."""
    from catalog.pgcopy import fetch_columns

    pg = conn.connection.driver_connection
    words = ["Gaia DR3 1", "a\\b", "two\nlines", "", "Hα \\n", "tab\there"]
    numbers = [np.pi, -0.0, np.nan, 1e-300, -np.inf, 2.5]
    query = ("SELECT t.k, t.w, t.x FROM unnest(%s::int8[], %s::text[], %s::float8[]) WITH ORDINALITY AS t(k, w, x, i) "
             "ORDER BY t.i DESC")
    ids = [2**62 + i for i in range(len(words))]
    k, w, x = fetch_columns(pg, query, (ids, words, numbers), [("k", "int64"), ("w", "str"), ("x", "float64")])
    assert k.tolist() == ids[::-1] and w.tolist() == words[::-1]
    np.testing.assert_array_equal(x, np.array(numbers[::-1]))
    assert np.signbit(x[-2]) and x.dtype == np.float64 and k.dtype == np.int64
    empty = fetch_columns(pg, query + " LIMIT 0", (ids, words, numbers), [("k", "int64"), ("w", "str")])
    assert [len(a) for a in empty] == [0, 0]
    with pytest.raises(ValueError, match="column w has NULLs"):
        fetch_columns(pg, query, (ids, [None] + words[1:], numbers), [("k", "int64"), ("w", "str")])


def test_cli_reads_a_column_of_numbers_then_text_and_a_word_among_positions(tmp_path, catalog, capsys):
    """Ids 12345 in one chunk, J1234+56 in the next (text files are typed per chunk: they did not
    stack); an RA cell '12.5d' made the whole column text and the message named no row."""
    from catalog.cli import _stacked

    stacked = _stacked([Table({"name": [12345, 2], "ra": [1.0, 2.0]}), Table({"name": ["J1234+56"], "ra": [3.0]})])
    assert list(stacked["name"]) == ["12345", "2", "J1234+56"] and stacked["ra"].dtype.kind == "f"
    path = tmp_path / "mixed.csv"
    path.write_text("name,ra,dec\n" + "".join(f"{i},10.0,5.0\n" for i in range(3)) + "J1234+56,12.5d,5.0\n")
    assert main(["xmatch", str(path), "--radius", "1"]) == 1
    assert "row 4 column ra: not a number in degrees: 12.5d" in capsys.readouterr().err
    assert main(["xmatch", str(path), "--radius", "1", "--keep-bad", "--format", "csv"]) == 0
    out = Table.read(capsys.readouterr().out, format="ascii.csv")
    assert [str(n) for n in out["name"]] == ["0", "1", "2", "J1234+56"] and "12.5d" in out["xmatch_problem"][3]
    empty = tmp_path / "empty.csv"  # a header, no rows: an IndexError traceback
    empty.write_text("name,ra,dec\n")
    assert main(["xmatch", str(empty), "--radius", "1"]) == 1
    assert f"{empty}: no data rows: nothing to cross-match" in capsys.readouterr().err


def test_cli_keeps_zero_padded_ids_as_written(tmp_path, sdss, capsys):
    """An id column 0042, 1007 was read as the integers 42, 1007: its digits are its value. Integers
    with no leading zero stay integers, as do -7 and 0."""
    (a, b), path = sdss["coord"][:2], tmp_path / "padded.csv"
    path.write_text("id,n,ra,dec\n" + "".join(f"{i},{n},{float(c.ra.deg)!r},{float(c.dec.deg)!r}\n"
                                             for i, n, c in (("0042", 0, a), ("1007", -7, b))))
    assert main(["xmatch", str(path), "--radius", "1", "--format", "ecsv"]) == 0
    out = Table.read(capsys.readouterr().out, format="ascii.ecsv")
    assert list(out["id"]) == ["0042", "1007"] and out["n"].dtype.kind == "i" and list(out["n"]) == [0, -7]


def test_sql_crossmatch_refuses_an_input_whose_row_ids_repeat(conn, catalog):
    """'best' mode keeps one match per row_id: two rows sharing one got the same (wrong) match."""
    conn.execute(sa.text("CREATE TEMP TABLE mine (row_id bigint, ra float8, dec float8, hpx bigint)"))
    conn.execute(sa.text("INSERT INTO mine SELECT i, ra, dec, healcat.hpx_ang2pix(29, ra, dec) FROM (VALUES "
                         "(1, 160.9415, 0.7968), (1, 30.81, 12.78), (2, 10.0, 10.0)) AS v(i, ra, dec)"))
    with pytest.raises(sa.exc.DBAPIError, match="the row_id of table mine must name each row once: row_id 1 is on "
                                                "2 rows"):
        with conn.begin_nested():
            conn.execute(sa.text("SELECT * FROM healcat.xmatch_table('mine', 1.0)")).all()
    conn.execute(sa.text("UPDATE mine SET row_id = NULL WHERE ra > 100"))
    with pytest.raises(sa.exc.DBAPIError, match="1 rows have none"):
        with conn.begin_nested():
            conn.execute(sa.text("SELECT * FROM healcat.xmatch_table('mine', 1.0)")).all()


def test_sql_crossmatch_trusts_a_key_on_row_id_and_nothing_weaker(conn, catalog):
    """A table keyed on row_id (a primary key, or a unique index on it with row_id NOT NULL) skips the
    pass counting its row_ids; a unique key that lets NULLs in, covers more columns, is partial or
    deferrable (repeats allowed until commit) does not, and its repeats are still refused."""
    values = "(1, 160.9415, 0.7968), (2, 30.81, 12.78), (3, 10.0, 10.0)"

    def table(name: str, columns: str, *extra: str) -> None:
        conn.execute(sa.text(f"CREATE TEMP TABLE {name} ({columns}, ra float8, dec float8, hpx bigint)"))
        for statement in extra:
            conn.execute(sa.text(statement))
        conn.execute(sa.text(f"INSERT INTO {name} SELECT i, ra, dec, healcat.hpx_ang2pix(29, ra, dec) "
                             f"FROM (VALUES {values}) AS v(i, ra, dec)"))

    def pairs(name: str) -> list:
        return conn.execute(sa.text(f"SELECT row_id, source_id FROM healcat.xmatch_table('{name}', 1.0) "
                                    "ORDER BY row_id")).all()

    table("plain", "row_id bigint")
    table("keyed", "row_id bigint PRIMARY KEY")
    assert pairs("keyed") == pairs("plain") and len(pairs("plain")) == 3
    def scans(name: str) -> int:  # the table's scans by check_xmatch_input (this transaction's count)
        count = f"SELECT seq_scan + coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables WHERE relname = '{name}'"
        before = conn.execute(sa.text(count)).scalar()
        conn.execute(sa.text(f"SELECT healcat.check_xmatch_input('{name}')"))
        return conn.execute(sa.text(count)).scalar() - before

    # unkeyed: the row_ids' pass, the positions' and the sample's; keyed, the row_ids' is skipped
    assert scans("plain") == 3 and scans("keyed") == 2

    weaker = {  # (columns, index, the repeats or NULLs it lets in, the error)
        "nullable": ("row_id bigint", "CREATE UNIQUE INDEX ON nullable (row_id)",
                     "UPDATE nullable SET row_id = NULL WHERE row_id > 1", "2 rows have none"),
        "wider": ("row_id bigint NOT NULL, part int DEFAULT 0", "CREATE UNIQUE INDEX ON wider (row_id, part)",
                  "UPDATE wider SET part = row_id, row_id = 1", "row_id 1 is on 3 rows"),
        "partial": ("row_id bigint NOT NULL", "CREATE UNIQUE INDEX ON partial (row_id) WHERE row_id > 5",
                    "UPDATE partial SET row_id = 1", "row_id 1 is on 3 rows"),
        "deferred": ("row_id bigint NOT NULL UNIQUE DEFERRABLE INITIALLY DEFERRED", "SELECT 1",
                     "UPDATE deferred SET row_id = 1", "row_id 1 is on 3 rows")}
    for name, (columns, index, update, error) in weaker.items():
        table(name, columns, index)
        conn.execute(sa.text(update))
        with pytest.raises(sa.exc.DBAPIError, match=f"the row_id of table {name} must name each row once: {error}"):
            with conn.begin_nested():
                pairs(name)


def test_an_answer_over_postgresqls_value_limit_is_a_query_error():
    """~19M pairs exceed the 1 GB a value may hold (fetch_columns aggregates each column): measured
    with 1,600 rows at the pole and 30 arcmin (34M pairs), too slow to repeat here."""
    import psycopg

    from catalog.crossmatch import _sql_error

    error = _sql_error(psycopg.errors.ProgramLimitExceeded("string buffer exceeds maximum allowed length"))
    assert isinstance(error, QueryError) and "use a smaller radius, mode 'best', or split the input" in str(error)


# --- what a review of the spatial answers found --------------------------------------------------------

def test_a_best_match_comes_from_the_published_release_not_the_superseded_copy(engine, tmp_path, scratch_release):
    """Both copies of an object sit at the same separation; the tie went to the superseded one's lower source_id."""
    from tests.test_search import load_superseded

    rows = load_superseded(engine, tmp_path, n=20)
    coords = SkyCoord([float(r["ra"]) for r in rows] * u.deg, [float(r["dec"]) for r in rows] * u.deg)
    table = Table({"ra": coords.ra.deg + 0.2 / 3600, "dec": coords.dec.deg})
    best = crossmatch(table, 60.0)
    assert "scratch/v1" not in set(best["release"])
    everything = crossmatch(table, 60.0, mode="all")
    assert "scratch/v1" not in set(everything["release"]) and "scratch/v2" in set(everything["release"])
    old = crossmatch(table, 60.0, release="scratch/v1")
    assert set(old["release"]) == {"scratch/v1"}
    expected = coords.separation(SkyCoord(table["ra"] * u.deg, table["dec"] * u.deg)).arcsec  # astropy
    np.testing.assert_allclose(old["separation_arcsec"], expected, rtol=0, atol=1e-6)


def test_a_match_at_its_own_reported_separation_is_found(engine, gaia):
    """The radius was compared in degrees, the separation reported in arcsec: about one match in 30 was lost
    with its own separation_arcsec as the radius."""
    coords = jittered(gaia, 300, 0.7, seed=21)
    table = Table({"ra": coords.ra.deg, "dec": coords.dec.deg})
    first = crossmatch(table, 2.0, release=GAIA_RELEASE)
    matched = ~first["source_id"].mask
    lost = []
    for row in np.flatnonzero(matched)[:300]:
        again = crossmatch(table[row:row + 1], float(first["separation_arcsec"][row]), release=GAIA_RELEASE)
        if again["source_id"].mask[0] or again["source_id"][0] != first["source_id"][row]:
            lost.append((float(table["ra"][row]), float(table["dec"][row]), float(first["separation_arcsec"][row])))
    assert matched.sum() > 200 and lost == []
    _, _, sep, _ = search_around_sky(coords[matched], gaia["coord"], 2 * u.arcsec)  # astropy: the same separations
    np.testing.assert_allclose(np.sort(first["separation_arcsec"][matched]), np.sort(sep.arcsec), rtol=0, atol=1e-6)


def _gaia_stars(gaia, n=6):
    return gaia["coord"][np.random.default_rng(5).choice(len(gaia["id"]), n, replace=False)]


def test_a_votable_in_fk4_is_converted_to_icrs(tmp_path, engine, gaia, capsys):
    """A COOSYS FK4/B1950 VOTable was matched as ICRS: every row 20 arcmin off, unmatched, without a word."""
    from astropy.coordinates import FK4

    stars = _gaia_stars(gaia)
    fk4 = stars.transform_to(FK4(equinox="B1950"))
    rows = "".join(f"<TR><TD>{i}</TD><TD>{float(c.ra.deg)!r}</TD><TD>{float(c.dec.deg)!r}</TD></TR>" for i, c in enumerate(fk4))
    path = tmp_path / "fk4.xml"
    path.write_text(f'''<?xml version="1.0"?>
<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">
<RESOURCE><COOSYS ID="B1950" system="FK4" equinox="B1950" epoch="B1950"/>
<TABLE><FIELD name="id" datatype="int"/>
<FIELD name="RA" datatype="double" unit="deg" ucd="pos.eq.ra;meta.main" ref="B1950"/>
<FIELD name="DEC" datatype="double" unit="deg" ucd="pos.eq.dec;meta.main" ref="B1950"/>
<DATA><TABLEDATA>{rows}</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>''')
    assert main(["xmatch", str(path), "--radius", "0.01", "--release", GAIA_RELEASE, "--format", "csv"]) == 0
    answer = ascii.read(capsys.readouterr().out, format="csv")
    idx, sep, _ = match_coordinates_sky(stars, gaia["coord"])  # astropy: each star is its own match
    assert list(answer["source_id"]) == list(gaia["id"][idx]) and np.all(answer["separation_arcsec"] < 0.01)
    path.write_text(path.read_text().replace('system="FK4"', 'system="ecl_FK5"'))
    assert main(["xmatch", str(path), "--radius", "0.01"]) != 0
    err = capsys.readouterr().err
    assert str(path) in err and "ecl_FK5" in err


def test_galactic_columns_and_skycoord_columns_are_converted(engine, gaia):
    """glon/glat were taken for RA/Dec; a SkyCoord column was 'no RA column found'."""
    stars = _gaia_stars(gaia)
    expected = list(gaia["id"][match_coordinates_sky(stars, gaia["coord"])[0]])
    galactic = stars.galactic
    by_name = crossmatch(Table({"glon": galactic.l.deg, "glat": galactic.b.deg}), 0.01, release=GAIA_RELEASE,
                         ra_col="glon", dec_col="glat")
    assert list(by_name["source_id"]) == expected
    by_ucd = Table({"lon": galactic.l.deg, "lat": galactic.b.deg})
    by_ucd["lon"].meta["ucd"], by_ucd["lat"].meta["ucd"] = "pos.galactic.lon", "pos.galactic.lat"
    assert list(crossmatch(by_ucd, 0.01, release=GAIA_RELEASE, ra_col="lon", dec_col="lat")["source_id"]) == expected
    coord = Table({"id": np.arange(len(stars)), "where": galactic})
    assert list(crossmatch(coord, 0.01, release=GAIA_RELEASE)["source_id"]) == expected
    assert list(crossmatch(coord, 0.01, release=GAIA_RELEASE, ra_col="where")["source_id"]) == expected



def _galactic_tables(galactic: SkyCoord) -> dict[str, Table]:
    """The same Galactic positions [deg] under each way of saying they are Galactic, no column named."""
    l_deg, b_deg = galactic.l.deg, galactic.b.deg
    by_ucd = Table({"id": np.arange(len(galactic)), "x": l_deg, "y": b_deg})
    by_ucd["x"].meta["ucd"], by_ucd["y"].meta["ucd"] = "pos.galactic.lon", "pos.galactic.lat;meta.main"
    q_by_ucd = QTable({"lat_here": b_deg * u.deg, "lon_here": l_deg * u.deg})  # a Quantity has no .meta: info.meta
    q_by_ucd["lat_here"].info.meta = {"ucd": "POS.GALACTIC.LAT"}
    q_by_ucd["lon_here"].info.meta = {"ucd": "pos.galactic.lon"}
    return {"glon/glat": Table({"glon": l_deg, "glat": b_deg}),
            "QTable GLON/GLAT": QTable({"GLON": l_deg * u.deg, "GLAT": b_deg * u.deg}),
            "LII/BII": Table({"BII": b_deg, "LII": l_deg}),
            "gal_l/gal_b": Table({"gal_l": l_deg, "gal_b": b_deg}),
            "UCDs": by_ucd, "QTable UCDs": q_by_ucd}


def test_galactic_columns_are_found_by_name_or_ucd(engine, gaia):
    """Galactic columns were converted only when named (ra_col='glon'): found, they were 'no RA column found'."""
    stars = _gaia_stars(gaia)
    icrs = stars.galactic.icrs  # what astropy makes of the Galactic positions
    expected = list(crossmatch(Table({"ra": icrs.ra.deg, "dec": icrs.dec.deg}), 0.01,
                               release=GAIA_RELEASE)["source_id"])
    assert expected == list(gaia["id"][match_coordinates_sky(stars, gaia["coord"])[0]])
    for how, table in _galactic_tables(stars.galactic).items():
        answer = crossmatch(table, 0.01, release=GAIA_RELEASE)
        assert list(answer["source_id"]) == expected, how
        assert np.all(u.Quantity(answer["separation_arcsec"], u.arcsec) < 0.01 * u.arcsec), how
        assert answer.colnames[:len(table.colnames)] == table.colnames, how
    table = _galactic_tables(stars.galactic)["glon/glat"]  # one of the pair named: the other is its partner
    assert list(crossmatch(table, 0.01, release=GAIA_RELEASE, ra_col="glon")["source_id"]) == expected
    assert list(crossmatch(table, 0.01, release=GAIA_RELEASE, dec_col="glat")["source_id"]) == expected


def test_ra_dec_win_over_galactic_columns(engine, gaia):
    """A table with RA/Dec and Galactic columns (Gaia's ra, dec, l, b) is matched on RA/Dec."""
    stars = _gaia_stars(gaia)
    others = stars[::-1].galactic  # other stars in every row
    by_ra_dec = list(gaia["id"][match_coordinates_sky(stars, gaia["coord"])[0]])
    by_galactic = list(gaia["id"][match_coordinates_sky(others, gaia["coord"])[0]])
    assert all(a != b for a, b in zip(by_ra_dec, by_galactic))
    for galactic in _galactic_tables(others).values():
        both = galactic.copy()
        both["RA"], both["Dec"] = stars.ra.deg, stars.dec.deg
        assert list(crossmatch(both, 0.01, release=GAIA_RELEASE)["source_id"]) == by_ra_dec
        both.remove_columns(["RA", "Dec"])
        assert list(crossmatch(both, 0.01, release=GAIA_RELEASE)["source_id"]) == by_galactic


def test_half_a_galactic_pair_is_an_error_naming_the_missing_column(engine, catalog, capsys, tmp_path):
    with pytest.raises(QueryError, match=r"Galactic longitude column 'glon' but no Galactic latitude column \(tried "
                                         r"glat, bii, gal_b, or the UCD pos.galactic.lat\); .*--dec-col"):
        crossmatch(Table({"glon": [248.255]}), 1.0)
    half = Table({"b": [49.614], "mag": [12.0]})
    half["b"].meta["ucd"] = "pos.galactic.lat"
    with pytest.raises(QueryError, match=r"Galactic latitude column 'b' but no Galactic longitude column \(tried "
                                         r"glon, lii, gal_l, or the UCD pos.galactic.lon\); .*--ra-col"):
        crossmatch(half, 1.0)
    with pytest.raises(QueryError, match=r"no RA column found \(tried ra, .*\) and no Galactic columns \(tried glon, "
                                         r"lii, gal_l with glat, bii, gal_b, .*\); name them with ra_col, dec_col "
                                         r"\(healcat xmatch --ra-col, --dec-col\)"):
        crossmatch(Table({"x": [1.0], "y": [2.0]}), 1.0)
    path = tmp_path / "half.csv"  # healcat xmatch FILE finds its columns the same way
    Table({"GLON": [248.255]}).write(path)
    assert main(["xmatch", str(path), "--radius", "1"]) != 0
    err = capsys.readouterr().err
    assert str(path) in err and "'GLON' but no Galactic latitude column" in err


def test_healcat_xmatch_finds_galactic_columns(engine, gaia, capsys, tmp_path):
    stars = _gaia_stars(gaia)
    path = tmp_path / "galactic.csv"
    Table({"id": np.arange(len(stars)), "lii": stars.galactic.l.deg, "bii": stars.galactic.b.deg}).write(path)
    assert main(["xmatch", str(path), "--radius", "0.01", "--release", GAIA_RELEASE, "--format", "csv"]) == 0
    answer = ascii.read(capsys.readouterr().out, format="csv")
    assert list(answer["source_id"]) == list(gaia["id"][match_coordinates_sky(stars, gaia["coord"])[0]])

def test_epochs_without_proper_motions_are_an_error(engine, catalog, capsys, tmp_path):
    table = Table({"ra": [160.941521316], "dec": [0.7967796443]})
    for kwargs in ({"epoch_jyear": 2000.0}, {"to_epoch_jyear": 2016.0}, {"epoch_jyear": 2000.0, "to_epoch_jyear": 2016.0}):
        with pytest.raises(QueryError, match="--pm-cols"):
            crossmatch(table, 1.0, **kwargs)
    path = tmp_path / "one.csv"
    table.write(path)
    assert main(["xmatch", str(path), "--radius", "1", "--epoch", "2000", "--to-epoch", "2015"]) != 0
    assert "--pm-cols" in capsys.readouterr().err


def test_an_epoch_erfa_cannot_take_is_named_with_the_range(engine, catalog):
    table = Table({"ra": [160.941521316, 10.0], "dec": [0.7967796443, 10.0], "pmra": [1.0, 1.0],
                   "pmdec": [1.0, 1.0], "epoch": [2015.0, -5000.0]})
    with pytest.raises(QueryError, match=r"epoch -5000.0 is outside .*\[-4700, 10000\]"):
        crossmatch(table, 1.0, pm_cols=("pmra", "pmdec"), epoch_jyear=2015.0, to_epoch_jyear=-5000.0)
    with pytest.raises(QueryError, match=r"row 2 column epoch: epoch outside .*\[-4700, 10000\]"):
        crossmatch(table, 1.0, pm_cols=("pmra", "pmdec"), epoch_jyear="epoch", to_epoch_jyear=2016.0)
    with pytest.raises(QueryError, match=r"epoch -5000.0 is outside"):
        crossmatch(table, 1.0, at_epoch_jyear=-5000.0)
    with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError, match=r"outside .*\[-4700, 10000\]") as error:
        conn.execute(sa.text(f"SELECT * FROM healcat.xmatch_releases('{SDSS_RELEASE}', '{GAIA_RELEASE}', 1.0, "
                             "'best', -5000)")).all()
    assert error.value.orig.sqlstate == "22023"
    with pytest.raises(QueryError, match=r"radius_arcsec must be at least 1e-300"):
        crossmatch(table[:1], 5e-324)


def test_releases_at_an_epoch_compute_each_moved_rows_pixel_once(engine, kepler, gaia):
    """At an epoch release_a's hpx was an expression the planner inlined into the probe cover's join:
    hpx_ang2pix ran dozens of times per row (138 s against 9 s without an epoch for Gaia x Kepler).
    Counted, not timed: the transaction's calls of the function (track_functions)."""
    release, _, rows = kepler
    without = crossmatch_releases(release, GAIA_RELEASE, 1.0)
    with engine.connect() as conn:
        conn.execute(sa.text("SET LOCAL track_functions = 'pl'"))
        moved = conn.execute(sa.text("SELECT source_id_a FROM healcat.xmatch_releases(:a, :b, 1.0, 'best', 2015.0)"),
                             {"a": release, "b": GAIA_RELEASE}).scalars().all()  # Kepler's own epoch: none moves
        calls = conn.scalar(sa.text("SELECT pg_stat_get_xact_function_calls("
                                    "'healcat.hpx_ang2pix(int, float8, float8)'::regprocedure)"))
    assert moved == list(without["source_id_a"]) == [r.source_id for r in rows]
    assert 0 < calls <= 2 * len(rows), (calls, len(rows))  # STRICT: rows with a NULL argument are no call


@pytest.mark.parametrize("row,column,got", [
    ("(1, 400, 0, healcat.hpx_ang2pix(29, 400, 0))", "ra", "400"),  # was matched as RA 40
    ("(1, 'NaN', 0, 0)", "ra", "NaN"),
    ("(1, NULL, 0, 0)", "ra", "NULL"),
    ("(1, 40, 95, 0)", "dec", "95"),
    ("(1, 40, NULL, 0)", "dec", "NULL"),
    ("(1, 40, 0, healcat.hpx_ang2pix(29, 40, 0) + 1)", "hpx", None),
    ("(1, 40, 0, NULL)", "hpx", "NULL"),
])
def test_sql_crossmatch_refuses_bad_positions_naming_the_row_and_column(conn, catalog, row, column, got):
    """As the Python route does: RA 400 was matched like RA 40, and a NaN, Dec 95, NULL or an hpx
    that disagrees with (ra, dec) came back unmatched without a word."""
    conn.execute(sa.text("CREATE TEMP TABLE mine (row_id bigint, ra float8, dec float8, hpx bigint)"))
    conn.execute(sa.text(f"INSERT INTO mine VALUES (2, 40, 0, healcat.hpx_ang2pix(29, 40, 0)), {row}, "
                         "(3, 500, 0, healcat.hpx_ang2pix(29, 500, 0))"))
    expected = conn.scalar(sa.text("SELECT healcat.hpx_ang2pix(29, 40, 0)"))
    got = got or str(expected + 1)
    what = {"ra": r"column ra must be a finite RA in \[0, 360\] deg", "dec": r"column dec must be a finite Dec in "
            r"\[-90, 90\] deg", "hpx": rf"column hpx must be healcat.hpx_ang2pix\(29, ra, dec\), {expected}"}[column]
    with pytest.raises(sa.exc.DBAPIError) as err:
        with conn.begin_nested():
            conn.execute(sa.text("SELECT * FROM healcat.xmatch_table('mine', 1800)")).all()
    assert err.value.orig.sqlstate == "22023"
    assert re.fullmatch(rf"xmatch: table mine, row_id 1: {what}, got {got}", err.value.orig.diag.message_primary)
    conn.execute(sa.text("DELETE FROM mine WHERE row_id <> 2"))
    assert len(conn.execute(sa.text("SELECT * FROM healcat.xmatch_table('mine', 1800)")).all()) == 1
    # RA 360 is RA 0, as the Python route takes it
    conn.execute(sa.text("INSERT INTO mine VALUES (4, 360, 0, healcat.hpx_ang2pix(29, 0, 0))"))
    assert len(conn.execute(sa.text("SELECT * FROM healcat.xmatch_table('mine', 1800)")).all()) == 2


@pytest.mark.parametrize("args,message", [
    ("'NaN', 0, 1, 1, 10", "ra must be a finite number, got NaN"),  # was RA 0
    ("10, 0, 'NaN', 1, 10", "pmra_masyr must be a finite number, got NaN"),  # was RA 0
    ("10, 0, 1, '-Infinity', 10", "pmdec_masyr must be a finite number, got -Infinity"),
    ("10, 0, 1, 1, 'Infinity'", "dt_yr must be a finite number, got Infinity"),
    ("0, 95, 1000, 0, 10", r"dec must be in \[-90, 90\], got 95"),  # was moved as a position
    ("0, 'NaN', NULL, NULL, NULL", "dec must be a finite number, got NaN"),
])
def test_pm_propagate_refuses_non_finite_arguments_and_dec_beyond_the_poles(conn, args, message):
    with pytest.raises(sa.exc.DBAPIError, match=f"pm_propagate: {message}") as err:
        with conn.begin_nested():
            conn.execute(sa.text(f"SELECT * FROM healcat.pm_propagate({args})")).all()
    assert err.value.orig.sqlstate == "22023"
    # from a table's rows as well (inlined: the test is part of the caller's query)
    with pytest.raises(sa.exc.DBAPIError, match=f"pm_propagate: {message}"):
        with conn.begin_nested():
            conn.execute(sa.text(f"SELECT m.* FROM (VALUES ({args})) AS v(a, b, c, d, e) CROSS JOIN LATERAL "
                                 "healcat.pm_propagate(v.a::float8, v.b::float8, v.c::float8, v.d::float8, v.e::float8) AS m"
                                 )).all()


def test_pm_propagate_leaves_a_position_without_proper_motions_where_it_is(conn):
    for args in ("10.5, -20.25, NULL, NULL, 30", "10.5, -20.25, 5, 5, NULL", "10.5, -20.25, 5, 5, 0"):
        assert tuple(conn.execute(sa.text(f"SELECT * FROM healcat.pm_propagate({args})")).one()) == (10.5, -20.25)
    assert tuple(conn.execute(sa.text("SELECT * FROM healcat.pm_propagate(NULL, NULL, 1, 1, 1)")).one()) == (None, None)
    assert conn.scalar(sa.text("SELECT healcat.wrap_ra_deg('NaN')::text")) == "NaN"  # was 0
