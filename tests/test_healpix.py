"""The HEALPix index and cone covers, in Python (healpy) and in SQL (PL/pgSQL), against astropy."""

from __future__ import annotations

import re

import astropy.units as u
import healpy
import numpy as np
import pytest
import sqlalchemy as sa
from astropy.coordinates import SkyCoord

from catalog import healpix

RNG = np.random.default_rng(20261124)


def random_sky(n: int) -> tuple[np.ndarray, np.ndarray]:
    ra = RNG.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(RNG.uniform(-1, 1, n)))
    return ra, dec


EDGE_RA = np.array([0.0, 359.9999999, 360.0 - 1e-12, 45.0, 90.0, 180.0, 270.0, 0.0, 123.4, 0.0])
EDGE_DEC = np.array([90.0, -90.0, 0.0, np.degrees(np.arcsin(2 / 3)), -np.degrees(np.arcsin(2 / 3)),
                     89.9999999, -89.9999999, 0.0, 41.8103148958, -41.8103148958])


def test_index_is_nested_order_29_and_hierarchical():
    ra, dec = random_sky(20_000)
    hpx = healpix.hpx_index(ra, dec)
    assert hpx.dtype == np.int64 and hpx.min() >= 0 and hpx.max() < healpix.NPIX
    for order in (0, 4, 12, 20):
        coarse = healpy.ang2pix(1 << order, ra, dec, nest=True, lonlat=True)
        np.testing.assert_array_equal(hpx >> (2 * (29 - order)), coarse)
    # The order-29 pixel centre is within a pixel radius (0.4 mas) of the position.
    lon, lat = healpy.pix2ang(1 << 29, hpx, nest=True, lonlat=True)
    sep = SkyCoord(ra * u.deg, dec * u.deg).separation(SkyCoord(lon * u.deg, lat * u.deg)).arcsec
    assert sep.max() <= healpy.max_pixrad(1 << 29, degrees=True) * 3600


def test_index_rejects_bad_positions_naming_the_first_by_index_and_value():
    with pytest.raises(ValueError, match=re.escape("dec_deg out of [-90, 90]: dec_deg[2] = 91.0")):
        healpix.hpx_index([10.0, 10.0, 10.0, 10.0], [0.0, 90.0, 91.0, -95.0])
    with pytest.raises(ValueError, match=re.escape("positions must be finite: ra_deg[1] = inf")):
        healpix.hpx_index([0.0, np.inf, np.nan], [0.0, 0.0, 0.0])  # infinity as given, not the NaN it wraps to
    with pytest.raises(ValueError, match=re.escape("positions must be finite: dec_deg[0, 1] = nan")):
        healpix.hpx_index(np.zeros((2, 2)), [[0.0, np.nan], [0.0, 0.0]])
    with pytest.raises(ValueError, match=re.escape("positions must be finite: dec_deg = -inf")):
        healpix.hpx_index(10.0, -np.inf)


def test_shard_is_order_4_pixel_and_gaia_ids_carry_theirs():
    ra, dec = random_sky(1000)
    np.testing.assert_array_equal(healpix.shard_of(healpix.hpx_index(ra, dec)),
                                  healpy.ang2pix(16, ra, dec, nest=True, lonlat=True))
    # Gaia DR3 4295806720 is in order-12 pixel 4295806720 >> 35 = 0, order-4 pixel 0;
    # a source_id whose order-12 pixel is the last one maps to the last order-4 pixel.
    last12 = 12 * 4**12 - 1
    assert healpix.gaia_shard([4295806720, (last12 << 35) + 1]).tolist() == [0, 12 * 4**4 - 1]


@pytest.mark.parametrize("radius_arcsec", [0.001, 1.0, 60.0, 1800.0, 7200.0, 36000.0, 90 * 3600.0])
def test_python_cover_contains_every_point_of_the_cone(radius_arcsec):
    centres_ra, centres_dec = random_sky(20)
    centres_ra = np.concatenate([centres_ra, [0.0, 359.99999, 10.0, 200.0]])
    centres_dec = np.concatenate([centres_dec, [0.0, 12.0, 90.0, -90.0]])
    for ra0, dec0 in zip(centres_ra, centres_dec):
        ranges = healpix.cone_ranges(ra0, dec0, radius_arcsec / 3600)
        assert np.all(ranges[1:, 0] > ranges[:-1, 1]), "ranges must be sorted, disjoint and merged"
        pts = _points_in_cone(ra0, dec0, radius_arcsec, 500)
        hpx = healpix.hpx_index(pts.ra.deg, pts.dec.deg)
        slot = np.searchsorted(ranges[:, 0], hpx, side="right") - 1
        assert np.all((slot >= 0) & (hpx < ranges[np.maximum(slot, 0), 1]))


def _points_in_cone(ra0, dec0, radius_arcsec, n):
    """Random points inside a cone, half of them within 0.1% of its edge."""
    centre = SkyCoord(ra0 * u.deg, dec0 * u.deg)
    frac = np.concatenate([np.sqrt(RNG.uniform(0, 1, n // 2)), RNG.uniform(0.999, 0.99999, n - n // 2)])
    return centre.directional_offset_by(RNG.uniform(0, 360, n) * u.deg, frac * radius_arcsec * u.arcsec)


def test_sql_index_agrees_with_healpy(conn):
    ra, dec = random_sky(5000)
    ra, dec = np.concatenate([ra, EDGE_RA]), np.concatenate([dec, EDGE_DEC])
    for order in (29, 10, 0):
        got = conn.execute(
            sa.text("SELECT healcat.hpx_ang2pix(:k, r, d) FROM unnest(CAST(:ra AS float8[]), CAST(:dec AS float8[]))"
                    " WITH ORDINALITY AS t(r, d, i) ORDER BY i"),
            {"k": order, "ra": ra.tolist(), "dec": dec.tolist()},
        ).scalars().all()
        np.testing.assert_array_equal(got, healpy.ang2pix(1 << order, ra % 360, dec, nest=True, lonlat=True))


@pytest.mark.parametrize("stop_order", [None, 0, 9, 14])
@pytest.mark.parametrize("radius_arcsec", [0.001, 1.0, 60.0, 1800.0, 7200.0, 90 * 3600.0])
def test_sql_cover_contains_every_point_of_the_cone(conn, radius_arcsec, stop_order):
    """Whatever the stop order (the 3-argument cover refines to r/4, cone_search stops where pixels hold about one source)."""
    cover = "healcat.hpx_cone_cover(:r, :d, :rad)" if stop_order is None else "healcat.hpx_cone_cover(:r, :d, :rad, :stop)"
    for ra0, dec0 in [(0.0, 0.0), (359.9999, -30.0), (120.5, 89.99), (33.0, -90.0), (250.0, 41.81), (45.0, 41.8103149)]:
        ranges = np.array(conn.execute(sa.text(f"SELECT lo, hi FROM {cover}"),
                                       {"r": ra0, "d": dec0, "rad": radius_arcsec / 3600, "stop": stop_order}).all(),
                          dtype=np.int64)
        assert len(ranges) and np.all(ranges[1:, 0] > ranges[:-1, 1]) and np.all(ranges[:, 1] > ranges[:, 0])
        pts = _points_in_cone(ra0, dec0, radius_arcsec, 400)
        hpx = healpix.hpx_index(pts.ra.deg, pts.dec.deg)
        slot = np.searchsorted(ranges[:, 0], hpx, side="right") - 1
        assert np.all((slot >= 0) & (hpx < ranges[np.maximum(slot, 0), 1]))


@pytest.mark.parametrize("radius_arcsec", [0.001, 1.0, 60.0])
def test_sql_cover_of_a_small_cone_is_its_seed_pixels_coalesced(conn, radius_arcsec):
    """When the seed pixels are within two orders of stop_order (cone_v3.sql's fast path), the cover is
    those pixels, sorted and adjacent ones merged: the ranges healpy's neighbours give (xmatch_cover),
    at the poles and the RA wrap too."""
    ra, dec = random_sky(30)
    ra, dec = np.concatenate([ra, EDGE_RA]), np.concatenate([dec, EDGE_DEC])
    k0 = conn.execute(sa.text("SELECT healcat.xmatch_order(:r)"), {"r": radius_arcsec}).scalar()
    seeds = healpix.xmatch_cover(healpix.hpx_index(ra, dec), k0)
    for i, (ra0, dec0) in enumerate(zip(ra, dec)):
        got = np.array(conn.execute(sa.text("SELECT lo, hi FROM healcat.hpx_cone_cover(:r, :d, :rad, :stop)"),
                                    {"r": ra0, "d": dec0, "rad": radius_arcsec / 3600, "stop": k0 + 2}).all())
        pix = seeds[i][seeds[i] >= 0]
        shift = 2 * (healpix.ORDER - k0)
        np.testing.assert_array_equal(got, healpix.merge_ranges(pix << shift, (pix + 1) << shift))
        assert np.all(got[1:, 0] > got[:-1, 1])


def test_sql_angular_distance_matches_astropy(conn):
    ra1, dec1 = random_sky(2000)
    ra2, dec2 = random_sky(2000)
    got = np.array(conn.execute(
        sa.text("SELECT healcat.angdist_deg(a, b, c, d) FROM unnest(CAST(:a AS float8[]), CAST(:b AS float8[]),"
                " CAST(:c AS float8[]), CAST(:d AS float8[])) WITH ORDINALITY AS t(a, b, c, d, i) ORDER BY i"),
        {"a": ra1.tolist(), "b": dec1.tolist(), "c": ra2.tolist(), "d": dec2.tolist()},
    ).scalars().all())
    expected = SkyCoord(ra1 * u.deg, dec1 * u.deg).separation(SkyCoord(ra2 * u.deg, dec2 * u.deg)).deg
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


def test_sql_pixel_centres_agree_with_healpy(conn):
    for order in (29, 12, 0):
        pix = RNG.integers(0, 12 * 4**order, 2000)
        got = np.array(conn.execute(
            sa.text("SELECT c.ra_deg, c.dec_deg FROM unnest(CAST(:p AS bigint[])) WITH ORDINALITY AS t(p, i), "
                    "healcat.hpx_pix2ang(:k, t.p) AS c ORDER BY t.i"), {"p": pix.tolist(), "k": order}).all())
        lon, lat = healpy.pix2ang(1 << order, pix, nest=True, lonlat=True)
        np.testing.assert_allclose(got[:, 1], lat, atol=1e-9)
        np.testing.assert_allclose((got[:, 0] - lon + 180) % 360 - 180, 0, atol=1e-9)


@pytest.mark.parametrize("call,message", [
    ("healcat.hpx_ang2pix(30, 10.0, 20.0)", "hpx_ang2pix: order must be in 0..29, got 30"),
    ("healcat.hpx_ang2pix(29, 10.0, 91.0)", "hpx_ang2pix: dec_deg must be in [-90, 90], got 91"),
    ("healcat.hpx_ang2pix(29, 'NaN', 0.0)", "hpx_ang2pix: ra_deg must be finite and within +-1e9, got NaN"),
    ("healcat.hpx_pix2ang(3, 768)", "hpx_pix2ang: ipix must be in [0, 12*4^3), got 768"),
    ("healcat.hpx_pix2ang(-1, 0)", "hpx_pix2ang: order must be in 0..29, got -1"),
    ("healcat.hpx_cone_cover(10.0, 95.0, 1.0)", "hpx_cone_cover: dec_deg must be in [-90, 90], got 95"),
    ("healcat.hpx_cone_cover(10.0, 0.0, -1.0)", "hpx_cone_cover: radius_deg must be >= 0, got -1"),
])
def test_sql_helpers_raise_invalid_parameter_value_naming_the_argument(conn, call, message):
    """22023, as every search and ML function raises for a bad argument (P0001 before migration 0052)."""
    with pytest.raises(sa.exc.DBAPIError) as raised, conn.begin_nested():
        conn.execute(sa.text(f"SELECT * FROM {call}"))
    assert raised.value.orig.sqlstate == "22023" and str(raised.value.orig).splitlines()[0] == message


def test_no_function_of_the_schema_raises_without_naming_its_sqlstate(conn):
    """Every RAISE EXCEPTION of healcat's functions names its condition (22023 for an argument), so a client
    can tell a bad argument from a failure; a bare one raises P0001."""
    from migrations.functions import bare_raises

    sources = conn.execute(sa.text("SELECT p.oid::regprocedure::text, p.prosrc FROM pg_proc AS p "
                                   "WHERE p.pronamespace = 'healcat'::regnamespace")).all()
    assert sum("RAISE EXCEPTION" in source for _, source in sources) > 20
    assert {name: bare_raises(source) for name, source in sources if bare_raises(source)} == {}


def test_the_errcode_rewrite_reads_each_form_of_raise_and_undoes_only_its_own_clauses():
    from migrations.functions import bare_raises, with_errcode

    source = ("RAISE EXCEPTION 'a; b %', x;\n"                   # a ';' in the format string
              "RAISE EXCEPTION 'errcode = % it''s', y;\n"        # the word in the message, a doubled quote
              "RAISE 'no level: an error';\n"
              "RAISE EXCEPTION USING MESSAGE = 'm';\n"
              "RAISE EXCEPTION 'h' USING HINT = 'see; this';\n"
              "RAISE EXCEPTION 'named' USING ERRCODE = 'data_exception';\n"
              "RAISE NOTICE 'not an error';\n")
    assert len(bare_raises(source)) == 5
    named = with_errcode(source, "invalid_parameter_value")
    assert bare_raises(named) == []
    assert "RAISE EXCEPTION 'h' USING HINT = 'see; this', ERRCODE = 'invalid_parameter_value';" in named
    assert "RAISE 'no level: an error' USING ERRCODE = 'invalid_parameter_value';" in named
    assert "USING ERRCODE = 'data_exception';" in named and "'not an error';" in named
    assert with_errcode(named, "invalid_parameter_value", undo=True) == source
