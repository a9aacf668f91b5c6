"""`healcat export-hats`: a release written as a HATS catalog, read back with hats (the format's reference
implementation) and held to the database: every row, every magnitude, every partition, and cones."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import astropy.units as u
import hats
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from astropy.coordinates import SkyCoord
from hats.io.validation import is_valid_catalog
from hats.pixel_math import compute_spatial_index, generate_alignment, spatial_index_to_healpix

from catalog import healpix
from catalog.cli import main
from catalog.errors import HealcatError, QueryError
from catalog.hats_export import export_hats
from catalog.search import cone_search
from ingest.tasks import all_tasks
from tests.conftest import GAIA_RELEASE, SDSS_RELEASE

#: Small enough that the 10,000 SDSS sources (a few stripes of sky) fall into dozens of partitions of
#: several orders.
THRESHOLD = 400


def _read_all(path: Path):
    """Every row of an export, with each partition's (order, pixel) beside it (hats reads each file; a plain
    pandas frame, as nested-pandas 0.7 warns on pandas 3.1's deprecations)."""
    catalog = hats.read_hats(path)
    frames = []
    for pixel in catalog.get_healpix_pixels():
        frame = pd.DataFrame(catalog.read_pixel_to_pandas(pixel))
        frames.append(frame.assign(norder=pixel.order, npix=pixel.pixel))
    return catalog, pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def sdss_export(catalog, engine, tmp_path_factory):
    path = tmp_path_factory.mktemp("hats") / "sdss"
    result = export_hats(SDSS_RELEASE, path, max_rows_per_partition=THRESHOLD, engine=engine)
    return result, *_read_all(path)


def _database_rows(engine, release: str) -> dict[int, tuple]:
    """source_id -> (object_id, ra, dec, hpx, {band: mag}) of a release, straight from the tables (NULL
    magnitudes are no entry)."""
    with engine.connect() as conn:
        sources = conn.execute(sa.text(
            "SELECT s.source_id, s.object_id, s.ra, s.dec, s.hpx FROM healcat.source s JOIN healcat.release r "
            "USING (release_id) WHERE r.name = :name"), {"name": release}).all()
        mags = conn.execute(sa.text(
            "SELECT p.source_id, p.band, p.mag FROM healcat.photometry p JOIN healcat.source s USING (shard, source_id) "
            "JOIN healcat.release r USING (release_id) WHERE r.name = :name AND p.mag IS NOT NULL"), {"name": release}).all()
    bands: dict[int, dict] = {}
    for source_id, band, mag in mags:  # a real comes as its shortest decimal: the float32 it stands for
        bands.setdefault(source_id, {})[band] = float(np.float32(mag))
    return {s.source_id: (s.object_id, s.ra, s.dec, s.hpx, bands.get(s.source_id, {})) for s in sources}


def _exported_rows(frame) -> dict[int, tuple]:
    """The same from an export's rows (a missing magnitude is no entry, as in the database)."""
    mags = {c[:-len("_mag")]: frame[c].to_numpy(dtype=float, na_value=np.nan) for c in frame.columns if c.endswith("_mag")}
    columns = [frame[c].tolist() for c in ("source_id", "object_id", "ra", "dec", "_healpix_29")]
    return {source_id: (object_id, ra, dec, hpx, {band: float(m[i]) for band, m in mags.items() if not np.isnan(m[i])})
            for i, (source_id, object_id, ra, dec, hpx) in enumerate(zip(*columns))}


def test_partitioning_is_hats_imports(seed=7):
    """catalog.healpix.adaptive_partitions on sparse counts gives hats' generate_alignment's pixels."""
    rng = np.random.default_rng(seed)
    for _ in range(25):
        order = int(rng.integers(0, 5))
        histogram = np.zeros(12 * 4**order, dtype=np.int64)
        occupied = rng.integers(0, len(histogram), size=int(rng.integers(1, 400)))
        np.add.at(histogram, occupied, rng.integers(1, 40, size=len(occupied)))
        threshold = int(rng.integers(histogram.max(), 20 * histogram.max() + 1))
        expected = {tuple(map(int, a)) for a in generate_alignment(histogram, highest_order=order, threshold=threshold)
                    if a is not None}
        pixels = np.flatnonzero(histogram)
        got = healpix.adaptive_partitions(pixels, histogram[pixels], order, threshold)
        assert {tuple(map(int, row)) for row in got} == expected
        ranges = healpix.pixel_ranges(got[:, 0], got[:, 1])
        assert (ranges[1:, 0] >= ranges[:-1, 1]).all(), "partitions come in nested order, disjoint"


def test_export_is_a_valid_hats_catalog_of_several_orders(sdss_export, engine):
    result, catalog, frame = sdss_export
    assert is_valid_catalog(result.path, strict=True)
    for name in ("partition_info.csv", "properties", "point_map.fits", "dataset/_metadata", "dataset/_common_metadata"):
        assert (result.path / name).is_file(), name
    with engine.connect() as conn:
        n_sources = conn.scalar(sa.text("SELECT count(*) FROM healcat.source s JOIN healcat.release r USING (release_id) "
                                        "WHERE r.name = :name"), {"name": SDSS_RELEASE})
    assert n_sources == 10_000
    assert len(frame) == catalog.catalog_info.total_rows == result.n_rows == n_sources
    assert catalog.catalog_info.healpix_column == "_healpix_29" and catalog.catalog_info.healpix_order == 29
    assert catalog.catalog_info.healcat_release == SDSS_RELEASE
    pixels = catalog.get_healpix_pixels()
    assert len(pixels) == len(result.partitions) >= 10
    # the deepest partition's order, as hats-import and lsdb's to_hats write it
    assert f"hats_order={max(p.order for p in pixels)}\n" in (result.path / "properties").read_text()
    # the threshold, as hats-import writes its pixel_threshold (not the largest partition's rows)
    assert catalog.catalog_info.hats_max_rows == THRESHOLD > result.partitions[:, 2].max()
    assert len({p.order for p in pixels}) >= 3, "adaptive: pixels of several orders"
    for pixel in pixels:  # each file where HATS puts it: Dir is Npix rounded down to 10,000
        assert (result.path / f"dataset/Norder={pixel.order}/Dir={pixel.pixel // 10000 * 10000}/"
                              f"Npix={pixel.pixel}.parquet").is_file()


def test_each_partition_holds_its_pixel_and_no_parent_would_have_fit(sdss_export):
    _, _, frame = sdss_export
    hpx = frame["_healpix_29"].to_numpy(dtype=np.int64)
    for (order, pixel), rows in frame.groupby(["norder", "npix"]):
        inside = spatial_index_to_healpix(rows["_healpix_29"].to_numpy(dtype=np.int64), target_order=order)
        assert (inside == pixel).all(), f"a row of Norder={order}/Npix={pixel} lies outside it"
        assert (np.diff(rows["_healpix_29"].to_numpy(dtype=np.int64)) >= 0).all(), "rows sorted by _healpix_29"
        assert len(rows) <= THRESHOLD
        if order > 0:  # merged up as far as the threshold allows: the parent holds more
            parent = spatial_index_to_healpix(hpx, target_order=order - 1) == pixel >> 2
            assert parent.sum() > THRESHOLD, f"Norder={order}/Npix={pixel} could have merged into its parent"
    # _healpix_29 is HATS's own index of (ra, dec) (hats computes it with cdshealpix, not healcat's healpy)
    assert (compute_spatial_index(frame["ra"].to_numpy(float), frame["dec"].to_numpy(float)) == hpx).all()


def test_rows_and_magnitudes_are_the_databases(sdss_export, engine):
    _, _, frame = sdss_export
    exported = _exported_rows(frame)
    assert len(exported) == len(frame), "each source once"
    database = _database_rows(engine, SDSS_RELEASE)
    assert exported == database
    assert all(len(row[4]) == 5 for row in exported.values()), "u, g, r, i, z"


def test_units_and_the_photo_z_come_along(sdss_export, engine):
    result, catalog, frame = sdss_export
    schema = pq.read_schema(result.path / "dataset" / "_common_metadata")
    assert schema.field("sdss_r_mag").metadata[b"unit"] == b"mag"
    assert b"(AB)" in schema.field("sdss_r_mag").metadata[b"description"]
    assert schema.field("sdss_r_flux_ujy").metadata[b"unit"] == b"uJy"
    assert schema.field("ra").metadata[b"unit"] == b"deg"
    assert "sdss_r_mag_err" not in schema.names, "a column the release never fills is left out"
    with engine.connect() as conn:
        photoz = dict(conn.execute(sa.text(
            "SELECT p.source_id, p.value FROM healcat.current_prediction p JOIN healcat.source s USING (shard, source_id) "
            "JOIN healcat.release r USING (release_id) WHERE r.name = :name AND p.task = 'photoz'"),
            {"name": SDSS_RELEASE}).all())
    assert photoz, "the session's photo-z run"
    values = frame.set_index("source_id")["photoz_sdss_value"]
    assert int(values.notna().sum()) == len(photoz)
    assert all(values[source_id] == value for source_id, value in photoz.items())
    assert b"photometric redshift" in schema.field("photoz_sdss_value").metadata[b"description"]
    assert b"probability of the label" in schema.field("object_class_sdss_value").metadata[b"description"]


def _assert_units_parse(path: Path) -> set[str]:
    """Every field's unit in an export is one astropy parses strictly (lsdb and astropy readers do); the
    units, for a look."""
    schema = pq.read_schema(path / "dataset" / "_common_metadata")
    units = {f.name: f.metadata[b"unit"].decode() for f in schema if f.metadata and b"unit" in f.metadata}
    for name, unit in units.items():
        u.Unit(unit, parse_strict="raise")  # raises ValueError naming the unit
        assert unit, f"{name}: an empty unit is written as none"
    for f in schema:
        assert f.metadata and f.metadata.get(b"description"), f"{f.name} has a description"
    return set(units.values())


def test_every_unit_parses_with_astropy(sdss_export):
    result, _, frame = sdss_export
    assert _assert_units_parse(result.path) == {"deg", "mag", "uJy"}
    schema = pq.read_schema(result.path / "dataset" / "_common_metadata")
    for name in ("photoz_sdss_value", "object_class_sdss_value", "z_spec"):  # dimensionless: no unit
        assert b"unit" not in (schema.field(name).metadata or {}), name
    # every task's unit, as the export writes it for the task's models (astropy's string; "" dimensionless)
    for name, task in all_tasks().items():
        u.Unit(task.unit, parse_strict="raise")
        u.Unit(task.spread_unit(), parse_strict="raise")
        assert task.value_description, f"{name} says what its prediction.value is"


def _spec_redshift_rows(engine, release: str) -> dict[int, tuple]:
    with engine.connect() as conn:
        return {r.source_id: (r.z, r.z_err, r.quality, r.spec_class) for r in conn.execute(sa.text(
            "SELECT z.source_id, z.z, z.z_err, z.quality, z.spec_class FROM healcat.spec_redshift z "
            "JOIN healcat.source s USING (shard, source_id) JOIN healcat.release r USING (release_id) "
            "WHERE r.name = :name"), {"name": release})}


def test_the_spectroscopic_redshift_comes_beside_the_photo_z(sdss_export, engine):
    """z_spec, z_spec_err, z_spec_quality and spec_class: spec_redshift's row of each source (one at most,
    its key is the source's), NULL where there is none; the values are the database's."""
    result, _, frame = sdss_export
    database = _spec_redshift_rows(engine, SDSS_RELEASE)
    assert len(database) == 10_000, "the session's SDSS release: a spectrum for each source"
    schema = pq.read_schema(result.path / "dataset" / "_common_metadata")
    names = schema.names
    assert names.index("z_spec") < names.index("photoz_sdss_value"), "beside the photo-z"
    assert str(schema.field("z_spec").type) == "double" and str(schema.field("spec_class").type) == "string"
    assert b"spectroscopic redshift" in schema.field("z_spec").metadata[b"description"]
    columns = [c for c in ("z_spec", "z_spec_err", "z_spec_quality", "spec_class") if c in frame.columns]
    filled = [c for i, c in enumerate(("z_spec", "z_spec_err", "z_spec_quality", "spec_class"))
              if any(row[i] is not None for row in database.values())]
    assert columns == filled, "the columns the release fills once at least"
    assert {"z_spec", "spec_class"} <= set(columns)
    exported = frame.set_index("source_id")[columns]
    assert len(exported) == 10_000
    fields = dict(zip(("z_spec", "z_spec_err", "z_spec_quality", "spec_class"), range(4)))

    def value(x):
        return None if x is None or x is pd.NA or (isinstance(x, float) and np.isnan(x)) else x

    some = sorted(database)[::97] + sorted(database)[-3:]
    for source_id in some:  # a hundred sources, field by field against SQL
        row = database[source_id]
        for c in columns:
            assert value(exported.at[source_id, c]) == row[fields[c]], (source_id, c)
    # and every row: the same z and class as the database
    z = exported["z_spec"].to_numpy(dtype=float, na_value=np.nan)
    want = np.array([np.nan if database[i][0] is None else database[i][0] for i in exported.index])
    assert np.array_equal(z, want, equal_nan=True)
    assert [value(c) for c in exported["spec_class"]] == [database[i][3] for i in exported.index]


@pytest.mark.parametrize("at, radius_arcsec", [(None, 600.0), (0.1, 60.0), (0.5, 1800.0), (0.9, 7200.0)])
def test_a_cone_on_the_export_is_healcats_cone(sdss_export, engine, at, radius_arcsec):
    """hats' pixel filter and an exact astropy separation over the files, against healcat's cone search
    and astropy by brute force over the release's rows in the database. Centres: the README's, and
    0.01 deg off sources a tenth, half and nine tenths of the way along the sky (in hpx order)."""
    result, catalog, frame = sdss_export
    ra, dec = (160.9415, 0.7968) if at is None else (frame["ra"].iloc[int(at * len(frame))] + 0.01,
                                                      frame["dec"].iloc[int(at * len(frame))])
    near = catalog.filter_by_cone(ra, dec, radius_arcsec)
    assert 0 < len(near.get_healpix_pixels()) < len(catalog.get_healpix_pixels()), "the filter prunes"
    centre = SkyCoord(ra * u.deg, dec * u.deg)
    found = set()
    for pixel in near.get_healpix_pixels():
        rows = pd.DataFrame(catalog.read_pixel_to_pandas(pixel))
        inside = centre.separation(SkyCoord(rows["ra"].to_numpy(float) * u.deg, rows["dec"].to_numpy(float) * u.deg))
        found |= set(rows["source_id"][inside <= radius_arcsec * u.arcsec])
    healcat = set(cone_search(ra, dec, radius_arcsec, release=SDSS_RELEASE, engine=engine)["source_id"])
    database = _database_rows(engine, SDSS_RELEASE)
    ids = np.array(list(database))
    positions = SkyCoord([database[i][1] for i in ids] * u.deg, [database[i][2] for i in ids] * u.deg)
    brute = set(ids[centre.separation(positions) <= radius_arcsec * u.arcsec])
    assert found == healcat == brute
    assert found, "a cone with sources in it"


def test_small_batches_write_the_same_files(sdss_export, engine, tmp_path, caplog):
    """Batches far smaller than a partition (and not dividing it) split partitions across fetches. Beside
    the work folder an export killed earlier left (named by this process id, as under `docker compose run`
    every export's is the same: the export failed with FileExistsError), said in a warning."""
    result, _, frame = sdss_export
    (tmp_path / f".b.partial-{os.getpid()}").mkdir()
    export_hats(SDSS_RELEASE, tmp_path / "b", max_rows_per_partition=THRESHOLD, engine=engine, batch_rows=37)
    _, again = _read_all(tmp_path / "b")
    assert again.equals(frame)
    assert f".b.partial-{os.getpid()} left by exports that did not finish (killed): delete it" in caplog.text


def test_gaia_in_vega_with_its_own_bands(catalog, engine, tmp_path):
    result = export_hats(GAIA_RELEASE, tmp_path / "gaia", max_rows_per_partition=60_000, highest_order=6, engine=engine)
    catalog_, frame = _read_all(tmp_path / "gaia")
    assert is_valid_catalog(tmp_path / "gaia")
    with engine.connect() as conn:
        n_sources = conn.scalar(sa.text("SELECT count(*) FROM healcat.source s JOIN healcat.release r USING (release_id) "
                                        "WHERE r.name = :name"), {"name": GAIA_RELEASE})
    assert len(frame) == result.n_rows == n_sources > 400_000
    assert result.partitions[:, 2].max() <= 60_000
    assert {c for c in frame.columns if c.endswith("_mag")} == {"gaia_g_mag", "gaia_bp_mag", "gaia_rp_mag"}
    schema = pq.read_schema(tmp_path / "gaia" / "dataset" / "_common_metadata")
    assert b"(Vega)" in schema.field("gaia_g_mag").metadata[b"description"]
    assert not any(c.startswith("photoz") for c in frame.columns), "no model ran on Gaia"
    assert not {"z_spec", "spec_class"} & set(frame.columns), "Gaia's release has no spectroscopic redshift"
    assert _spec_redshift_rows(engine, GAIA_RELEASE) == {}
    _assert_units_parse(tmp_path / "gaia")
    sample = frame.sample(500, random_state=1)
    database = _database_rows(engine, GAIA_RELEASE)
    assert _exported_rows(sample) == {i: database[i] for i in sample["source_id"]}


def test_an_unknown_release_is_named_and_nothing_is_written(catalog, engine, tmp_path):
    with pytest.raises(QueryError, match=re.escape("no release named 'sdss/dr99'")):
        export_hats("sdss/dr99", tmp_path / "out", engine=engine)
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == [], "no half-written folder beside it"


def test_a_folder_not_empty_is_refused_and_left_alone(catalog, engine, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(HealcatError, match=re.escape(f"{tmp_path / 'out'} is not empty")):
        export_hats(SDSS_RELEASE, tmp_path / "out", engine=engine)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(HealcatError, match="is not a folder"):
        export_hats(SDSS_RELEASE, tmp_path / "file", engine=engine)


@pytest.mark.parametrize("option, value, message", [
    ("max_rows_per_partition", 0, "export-hats: max_rows_per_partition must be at least 1, got 0"),
    ("highest_order", 30, "export-hats: highest_order must be in [0, 29], got 30"),
    ("highest_order", 3.5, "export-hats: highest_order must be an integer, got 3.5"),
    ("batch_rows", True, "export-hats: batch_rows must be an integer, got True")])
def test_options_out_of_range_are_named(tmp_path, option, value, message):
    with pytest.raises(HealcatError, match=re.escape(message)):
        export_hats(SDSS_RELEASE, tmp_path / "out", **{option: value})
    assert list(tmp_path.iterdir()) == []


def test_a_pixel_over_the_threshold_names_it_and_the_way_out(catalog, engine, tmp_path):
    with pytest.raises(HealcatError, match=r"order-3 pixel \d+ alone holds \d+ rows, more than 5.*--highest-order"):
        export_hats(SDSS_RELEASE, tmp_path / "out", max_rows_per_partition=5, highest_order=3, engine=engine)
    assert list(tmp_path.iterdir()) == []


def test_a_release_of_positionless_sources_has_nothing_to_place(catalog, engine, tmp_path):
    """ChronoFlow's stars not in the Gaia sample become sources with no position (tests/test_catalogues.py):
    none can go in a HEALPix partition, and the error counts them."""
    from ingest.load import ingest_release

    loaded = ingest_release("chronoflow_prot", engine)  # as test_catalogues' session fixture: idempotent
    with pytest.raises(HealcatError, match=rf"{re.escape(loaded.release)} has no sources with a position "
                                           rf"\({loaded.row_counts['source']} without\)"):
        export_hats(loaded.release, tmp_path / "out", engine=engine)
    assert list(tmp_path.iterdir()) == []


def test_the_command_line_exports_and_a_second_run_is_refused(catalog, tmp_path, capsys):
    argv = ["export-hats", "--release", SDSS_RELEASE, str(tmp_path / "sdss"), "--max-rows-per-partition", "2000"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / 'sdss'}: 10000 rows of {SDSS_RELEASE} in " in out and "at most " in out
    assert hats.read_hats(tmp_path / "sdss").catalog_info.hats_max_rows == 2000  # the threshold, as hats-import
    assert main(argv) == 1
    assert capsys.readouterr().err.strip() == (f"healcat: error: export-hats: {tmp_path / 'sdss'} is not empty; name a "
                                               "new or empty folder (nothing is overwritten)")


def test_the_readme_command_exports_into_an_empty_folder(catalog, tmp_path, capsys, monkeypatch):
    """The README's command line, run in an empty folder; run again, it is refused (exit 1, one line)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    line = next(line for line in readme.splitlines() if line.startswith("$ healcat -v export-hats"))
    monkeypatch.chdir(tmp_path)
    argv = shlex.split(line[2:].split("#")[0])[1:]
    assert main(argv) == 0
    out_dir = argv[argv.index("export-hats") + 3]  # export-hats --release NAME OUT_DIR
    assert f"of {SDSS_RELEASE} in " in capsys.readouterr().out
    assert hats.read_hats(tmp_path / out_dir).catalog_info.total_rows == 10_000
    assert main(argv) == 1
    assert f"{tmp_path / out_dir} is not empty" in capsys.readouterr().err
