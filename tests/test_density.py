"""Sky density per HEALPix pixel straight from SQL, and the skymap PNG that draws it."""

from __future__ import annotations

import healpy
import numpy as np
import pytest
import sqlalchemy as sa
from matplotlib.image import imread

from catalog.cli import main
from catalog.errors import QueryError
from catalog.search import box_search, density_of, sky_density
from catalog.skymap import EMPTY_RGBA, OUTSIDE_RGBA, counts_image
from tests.conftest import SDSS_RELEASE


@pytest.fixture(scope="module")
def positions(engine, catalog):
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT hpx, r.name, ra, dec FROM healcat.source "
                                    "JOIN healcat.release r USING (release_id) WHERE hpx IS NOT NULL")).all()
    return (np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1] for r in rows]),
            np.array([(r[2], r[3]) for r in rows], dtype=np.float64))


@pytest.mark.parametrize("order", [0, 3, 8, 29])
def test_density_counts_every_positioned_source_once(engine, positions, order):
    hpx, _, radec = positions
    pixels = healpy.ang2pix(1 << order, radec[:, 0], radec[:, 1], nest=True, lonlat=True)  # from the positions
    pix, n = np.unique(pixels, return_counts=True)
    got = sky_density(order)
    assert list(got["pix"]) == list(pix) and list(got["n"]) == list(n)
    with engine.connect() as conn:
        sql = conn.execute(sa.text("SELECT * FROM healcat.sky_density(:o)"), {"o": order}).all()
    assert [tuple(r) for r in sql] == list(zip(pix, n))
    assert int(got["n"].sum()) == len(hpx)


def test_density_of_one_release_and_of_a_search(engine, positions):
    hpx, release, _ = positions
    pix, n = np.unique(hpx[release == SDSS_RELEASE] >> 42, return_counts=True)
    got = sky_density(8, release=SDSS_RELEASE)
    assert list(got["pix"]) == list(pix) and list(got["n"]) == list(n)
    box = box_search(350.0, 10.0, -5.0, 5.0)
    with engine.connect() as conn:
        sql = conn.execute(sa.text("SELECT healcat.hpx_ang2pix(5, ra, dec) AS pix, count(*) AS n "
                                   "FROM healcat.box_search(350, 10, -5, 5) GROUP BY 1 ORDER BY 1")).all()
    assert [tuple(r) for r in sql] == list(zip(*density_of(box, 5).columns.values()))
    with pytest.raises(QueryError, match=r"sky_density: order must be in \[0, 29\], got 30"):
        sky_density(30)
    for order in (2.5, True, "3"):  # healcat.sky_density takes an integer: no rounding, no bool
        with pytest.raises(QueryError, match="sky_density: order must be an integer, got "):
            sky_density(order)
        with pytest.raises(QueryError, match="sky_density: order must be an integer, got "):
            density_of(box, order)
    with pytest.raises(sa.exc.DBAPIError, match=r"sky_density: order must be in \[0, 29\], got -1"):
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT * FROM healcat.sky_density(-1)")).all()


def test_a_density_table_says_its_order(catalog, tmp_path):
    """A pixel number means nothing without its order: sky_density's Table kept it nowhere, so a saved
    one (ECSV) could not be read back as a map."""
    from astropy.table import Table

    got = sky_density(5)
    assert got.meta["order"] == 5
    got.write(tmp_path / "density.ecsv")
    assert Table.read(tmp_path / "density.ecsv").meta["order"] == 5
    of_box = density_of(box_search(350.0, 10.0, -5.0, 5.0), 7)
    assert of_box.meta["order"] == 7 and of_box["pix"].description == got["pix"].description


def _coloured(png: np.ndarray) -> np.ndarray:
    """Image pixels drawn in a colour of the scale (not empty sky, not outside it)."""
    rgb = png[..., :3]
    return ~(np.all(np.isclose(rgb, EMPTY_RGBA[:3], atol=2 / 255), axis=-1)
             | np.all(np.isclose(rgb, OUTSIDE_RGBA[:3], atol=2 / 255), axis=-1))


def test_skymap_png_shows_the_sql_counts(tmp_path, catalog, capsys):
    path = tmp_path / "sky.png"
    assert main(["skymap", "--order", "3", "--width", "400", str(path)]) == 0
    assert "in 768 order-3 pixels" in capsys.readouterr().out
    png = imread(path)
    assert png.shape[:2] == (200, 400)
    density = sky_density(3)
    image = counts_image(density, 3, 400)
    assert np.array_equal(_coloured(png), np.nan_to_num(image) > 0), "coloured exactly where sources are"
    from catalog.healpix import mollweide_pixels

    shown = mollweide_pixels(3, 400)
    assert set(np.unique(shown[shown >= 0])) == set(range(768)), "every order-3 pixel is drawn"
    assert set(np.unique(shown[np.nan_to_num(image) > 0])) == set(density["pix"])


def test_skymap_of_a_search_colours_only_its_pixels(tmp_path, catalog, capsys):
    path = tmp_path / "box.png"
    assert main(["skymap", "--order", "4", "--width", "600", str(path), "box", "350", "10", "-5", "5"]) == 0
    png = imread(path)
    assert png.shape[:2] == (300, 600)
    density = density_of(box_search(350.0, 10.0, -5.0, 5.0), 4)
    from catalog.healpix import mollweide_pixels

    shown = mollweide_pixels(4, 600)
    coloured = set(np.unique(shown[_coloured(png)]))
    assert coloured == set(density["pix"]) & set(np.unique(shown[shown >= 0])) and len(coloured) > 5
    assert main(["skymap", str(tmp_path / "x.png"), "jobs"]) == 1
    assert "'jobs' is not a search" in capsys.readouterr().err
    assert main(["skymap", str(tmp_path / "x.png"), "--order", "4"]) == 1
    assert "options go before the PNG's name (--order came after it)" in capsys.readouterr().err
    assert main(["skymap", "--order", "11", str(tmp_path / "x.png")]) == 1
    assert "--order must be 0 to 10" in capsys.readouterr().err
    assert main(["skymap", str(tmp_path / "no" / "such" / "x.png")]) == 1
    assert "skymap: no folder" in capsys.readouterr().err


def test_skymap_has_north_up_and_ra_growing_to_the_left(tmp_path, catalog):
    """Every pixel a box at Dec 70..80 colours lies, by healpy's inverse Mollweide projection of its place
    in the PNG (row 0 the top), near the box: not mirrored to the south nor in RA."""
    path = tmp_path / "north.png"
    assert main(["skymap", "--order", "4", "--width", "400", str(path), "box", "100", "140", "70", "80"]) == 0
    rows, cols = np.nonzero(_coloured(imread(path)))
    assert len(rows) > 10
    from healpy.projector import MollweideProj

    # the plane of healpy's Mollweide projection: x in [-2, 2] (east, RA 180, at x = -2), y in [-1, 1] up
    x, y = 2.0 * (cols - 199.5) / 199.5, (99.5 - rows) / 99.5
    lon, lat = MollweideProj(xsize=400).xy2ang(x, y, lonlat=True)
    assert np.all(lat > 60) and np.all(lat < 88), "north is up"
    assert np.all((np.mod(lon, 360) > 80) & (np.mod(lon, 360) < 160)), "RA as on the sky"


def test_density_counts_the_published_releases_unless_one_is_named(engine, tmp_path, scratch_release):
    """A superseded release was counted beside its successor: every re-released object twice."""
    import healpy

    from tests.test_search import load_superseded

    rows = load_superseded(engine, tmp_path)
    with engine.connect() as conn:
        published = conn.execute(sa.text("SELECT s.ra, s.dec FROM healcat.source s JOIN healcat.release r "
                                         "USING (release_id) WHERE r.status = 'published' AND s.hpx IS NOT NULL")).all()
    ra, dec = np.array(published, dtype=float).T
    pix, n = np.unique(healpy.ang2pix(2 ** 3, ra, dec, nest=True, lonlat=True), return_counts=True)
    for got in (sky_density(3), None):
        if got is None:
            with engine.connect() as conn:
                got = dict(zip(("pix", "n"), zip(*conn.execute(sa.text("SELECT * FROM healcat.sky_density(3)")).all())))
        assert list(got["pix"]) == list(pix) and list(got["n"]) == list(n)
    old = sky_density(3, release="scratch/v1")
    assert int(old["n"].sum()) == len(rows)
    ra, dec = np.array([[float(r["ra"]), float(r["dec"])] for r in rows]).T
    assert list(old["pix"]) == sorted(set(healpy.ang2pix(8, ra, dec, nest=True, lonlat=True)))
