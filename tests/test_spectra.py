"""Spectra from SDSS spec files and an ESO Phase-3 (LEGA-C) file, against astropy.io.fits reading
the same files here; multi-epoch spectra of one object; matching to a DR14 source; a truncated file."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import astropy.units as u
import sqlalchemy as sa
from astropy.io import fits

from catalog.errors import IngestError
from conftest import per_object_mapping, scratch_mapping, sdss_rows, spec_name, write_csv
from ingest.load import ingest_release
from ingest.mapping import data_dir

PYQSOFIT = data_dir() / "pyqsofit_sdss_spectra"
LEGAC = data_dir() / "ppxf_sdss_spectra/legac_M19_56670_v3.0.fits"


@pytest.fixture
def other_survey(engine):
    """Removes, after the test, every release it committed under the survey 'scratch-spectra'."""
    yield "scratch-spectra"
    ours = ("(SELECT release_id FROM healcat.release r JOIN healcat.survey s USING (survey_id) "
            "WHERE s.name = 'scratch-spectra')")
    with engine.begin() as conn:
        conn.execute(sa.text(f"DELETE FROM healcat.source WHERE release_id IN {ours}"))
        conn.execute(sa.text(f"DELETE FROM healcat.release WHERE release_id IN {ours}"))


def _spectra_of(tmp_path, version: str, match: list[str], survey: str = "scratch-spectra"):
    """The pyqsofit mapping for the spec files in tmp_path, under ``survey``, matching ``match``."""
    mapping = per_object_mapping(tmp_path, "sdss_spectra_pyqsofit", version, {"series": [tmp_path / "spec-*.fits"]})
    text = mapping.read_text().replace('name = "scratch"', f'name = "{survey}"', 1)
    mapping.write_text(re.sub(r"^match_survey = .*$", "match_survey = " + json.dumps(match), text, flags=re.M))
    return mapping


def _spectrum(conn, name: str):
    return conn.execute(sa.text(
        "SELECT sp.*, s.object_id, s.ra AS src_ra FROM healcat.spectrum sp JOIN healcat.source s USING (shard, source_id) "
        "WHERE sp.spectrum_name = :n"), {"n": name}).one()


def test_sdss_spectra_are_the_files(engine, per_object):
    files = sorted(PYQSOFIT.glob("spec-*.fits")) + sorted((PYQSOFIT / "RM017").glob("spec-*.fits"))
    result = per_object["sdss_spectra_pyqsofit"]
    assert result.row_counts["spectrum"] == len(files) == 6
    with engine.connect() as conn:
        for path in files:
            with fits.open(path) as hdul:
                coadd, meta = hdul[1].data, hdul[2].data[0]
                row = _spectrum(conn, path.stem)
                assert len(row.wavelength) == len(coadd)
                assert row.wavelength == pytest.approx(10.0 ** coadd["loglam"].astype(np.float64), rel=1e-6)
                assert row.flux == list(coadd["flux"].astype(np.float32))
                assert row.ivar == list(coadd["ivar"].astype(np.float32))
                assert row.mask == [int(m) for m in coadd["and_mask"]]
                assert (row.mjd, row.vacuum, row.wavelength_unit) == (meta["MJD"], True, "Angstrom")
                assert row.src_ra == pytest.approx(float(hdul[2].data["PLUG_RA"][0]), abs=1 / 3600)  # epochs share the earliest one's position


def test_epochs_of_one_quasar_share_one_source(engine, per_object):
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT s.object_id, count(*), array_agg(sp.mjd ORDER BY sp.mjd) FROM healcat.spectrum sp "
            "JOIN healcat.source s USING (shard, source_id) WHERE sp.spectrum_name LIKE 'spec-1325-%' "
            "OR sp.spectrum_name LIKE 'spec-7338-%' GROUP BY 1")).all()
    assert [(r[0], r[1]) for r in rows] == [("1325-52762-0133", 3)]
    assert rows[0][2] == [52762.0, 56660.0, 57050.0]


def test_legac_spectrum_keeps_nodata_pixels_with_zero_ivar(engine, per_object):
    path = data_dir() / "ppxf_sdss_spectra/legac_M19_56670_v3.0.fits"
    with fits.open(path) as hdul:
        flux, err = hdul[1].data["FLUX"][0], hdul[1].data["ERR"][0]
    with engine.connect() as conn:
        row = _spectrum(conn, "M19_56670")
    assert len(row.flux) == len(flux) and u.Unit(row.ivar_unit) == u.Unit("1e-19 erg / (s cm2 Angstrom)") ** -2
    with fits.open(path) as hdul:  # ESO Phase 3's UCD for air wavelengths
        assert hdul[1].header["TUCD1"] == "em.wl;obs.atmos" and row.vacuum is False
    nan = np.isnan(np.array(row.flux, dtype=float))
    assert np.array_equal(nan, np.isnan(flux)) and all(np.array(row.ivar)[nan] == 0)
    good = err > 0
    assert np.allclose(np.array(row.ivar)[good], 1 / err[good] ** 2, rtol=1e-6)
    assert per_object["legac_dr3_spectra_ppxf"].row_counts["nodata_pixels"] == int(np.isnan(flux).sum())


def test_spectrum_pixels_view(engine, per_object):
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT pixel, wavelength, flux, ivar FROM healcat.spectrum_pixels "
            "WHERE spectrum_name = 'spec-0266-51602-0013' ORDER BY pixel")).all()
    with fits.open(PYQSOFIT / "spec-0266-51602-0013.fits") as hdul:
        coadd = hdul[1].data
    assert len(rows) == len(coadd) and rows[0].pixel == 1
    assert rows[10].flux == np.float32(coadd["flux"][10])


def test_a_spectrum_of_a_dr14_object_joins_its_source_and_a_truncated_file_is_quarantined(
        engine, catalog, per_object, tmp_path, scratch_release):
    with fits.open(PYQSOFIT / "spec-0266-51602-0013.fits") as hdul:
        hdul[2].data["MJD"][0], hdul[2].data["FIBERID"][0] = 51630, 359   # 0266-51630-0359 is in DR14
        hdul.writeto(tmp_path / "spec-0266-51630-0359.fits")
    data = (PYQSOFIT / "spec-0266-51602-0107.fits").read_bytes()
    (tmp_path / "spec-truncated.fits").write_bytes(data[: len(data) // 2])
    shutil.copy(PYQSOFIT / "spec-0332-52367-0639.fits", tmp_path)  # already loaded for its sdss source
    with fits.open(PYQSOFIT / "spec-0332-52367-0639.fits") as hdul:
        hdul[2].data["FIBERID"][0] = 1                                 # 0332-52367-0001: a new object
        hdul[2].data["PLUG_RA"][0] += 0.01
        hdul.writeto(tmp_path / "spec-0332-52367-0001.fits")
    mapping = per_object_mapping(tmp_path, "sdss_spectra_pyqsofit", "scratch-spectra",
                                 {"series": [tmp_path / "spec-*.fits"]})
    result = ingest_release(mapping, engine)
    with engine.connect() as conn:
        dr14 = conn.execute(sa.text(
            "SELECT r.name FROM healcat.spectrum sp JOIN healcat.source s USING (shard, source_id) "
            "JOIN healcat.release r ON r.release_id = s.release_id WHERE sp.release_id = :r "
            "AND sp.spectrum_name = 'spec-0266-51630-0359'"), {"r": result.release_id}).scalar_one()
        q = conn.execute(sa.text("SELECT file, row_number, reason FROM healcat.quarantine WHERE release_id = :r"),
                         {"r": result.release_id}).all()
    assert dr14 == "sdss/dr14-skyserver-10k" and result.row_counts["matched_existing_source"] == 2
    reasons = {f.rsplit("/", 1)[-1]: (n, why) for f, n, why in q}
    assert set(reasons) == {"spec-truncated.fits"}
    assert reasons["spec-truncated.fits"][0] == 0 and "unreadable file" in reasons["spec-truncated.fits"][1]
    # 0332-52367-0639 is also this release's reading: stored for the pyqsofit sample's source, beside that one's
    assert result.row_counts["spectrum"] == 3 and result.row_counts["source"] == 1
    with engine.connect() as conn:
        readings = conn.execute(sa.text(
            "SELECT r.name FROM healcat.spectrum sp JOIN healcat.release r USING (release_id) "
            "WHERE sp.spectrum_name = 'spec-0332-52367-0639' ORDER BY 1")).scalars().all()
        sources = conn.scalar(sa.text("SELECT count(DISTINCT (shard, source_id)) FROM healcat.spectrum "
                                      "WHERE spectrum_name = 'spec-0332-52367-0639'"))
    assert readings == ["scratch/scratch-spectra", "sdss-spectra/pyqsofit-sample"] and sources == 1
    assert ingest_release(mapping, engine).already_loaded


@pytest.mark.parametrize(("short", "column"), [("FLUX", "FLUX"), ("QUAL", "QUAL"), ("WAVE", "WAVE")])
def test_a_spectrum_whose_arrays_differ_in_length_is_rejected_naming_the_column(short, column):
    """Pixel by pixel its arrays would not belong together: rejected, not broadcast or stored misaligned."""
    from ingest.perobject_build import spectrum_row
    from ingest.perobject_mapping import SpectrumSpec
    from ingest.readers.series import Record

    spec = SpectrumSpec(name="obj{ID}", wavelength="WAVE", wavelength_log10=False, wavelength_unit="Angstrom",
                        vacuum=True, flux="FLUX", flux_unit="erg / (s cm2 Angstrom)", ivar="IVAR", ivar_from="ivar",
                        mask="QUAL", mjd=None)
    whole = {"WAVE": np.linspace(4000.0, 5000.0, 10), "FLUX": np.ones(10), "IVAR": np.ones(10), "QUAL": np.zeros(10)}
    arrays = {**whole, short: whole[short][:7]}
    rejected = []
    row = spectrum_row(spec, Record("f.fits", 0, None, {"ID": 1}, arrays), lambda *a: rejected.append(a), {})
    assert row is None
    (file, n, col, reason, _), = rejected
    assert (file, n, col) == ("f.fits", 0, column) and "obj1: arrays of different lengths" in reason
    assert f"{short} 7" in reason
    assert spectrum_row(spec, Record("f.fits", 0, None, {"ID": 1}, whole), lambda *a: rejected.append(a), {})


def test_a_new_version_of_a_spectra_release_loads_the_spectra_it_shares_with_the_last(
        engine, catalog, per_object, tmp_path, scratch_release):
    """Its own survey's earlier releases are versions it supersedes, not sources to attach to."""
    for fiber in (1, 2):
        with fits.open(PYQSOFIT / "spec-0332-52367-0639.fits") as hdul:
            hdul[2].data["FIBERID"][0] = fiber                         # 0332-52367-000N: new objects
            hdul[2].data["PLUG_RA"][0] += 0.01 * fiber
            hdul.writeto(tmp_path / f"spec-0332-52367-000{fiber}.fits")
    releases = []
    for k, (version, date) in enumerate((("shared-1", "2020-01-01"), ("shared-2", "2021-01-01"))):
        # ... and a spectrum of a DR14 object (0266-51630-0359), re-reduced in the second version
        with fits.open(PYQSOFIT / "spec-0266-51602-0013.fits") as hdul:
            hdul[2].data["MJD"][0], hdul[2].data["FIBERID"][0] = 51630, 359
            hdul[1].data["flux"] *= 1 + k
            hdul.writeto(tmp_path / "spec-0266-51630-0359.fits", overwrite=True)
        mapping = per_object_mapping(tmp_path, "sdss_spectra_pyqsofit", version,
                                     {"series": [tmp_path / "spec-0*.fits"]})
        mapping.write_text(mapping.read_text().replace('match_survey = ["sdss"', 'match_survey = ["scratch", "sdss"')
                           .replace(f'version = "{version}"', f'version = "{version}"\ndate = {date}'))
        releases.append(ingest_release(mapping, engine))
    assert [r.row_counts["spectrum"] for r in releases] == [3, 3]
    assert [r.row_counts["quarantine"] for r in releases] == [0, 0]
    with engine.connect() as conn:
        current = conn.execute(sa.text(
            "SELECT sp.spectrum_name FROM healcat.spectrum sp JOIN healcat.current_source s USING (shard, source_id) "
            "WHERE sp.release_id = :r ORDER BY 1"), {"r": releases[1].release_id}).scalars().all()
        dr14 = conn.execute(sa.text(
            "SELECT sp.release_id, sp.flux[100] AS flux, c.release_id IS NOT NULL AS current, r.name AS source_release "
            "FROM healcat.spectrum sp LEFT JOIN healcat.current_spectrum c USING (shard, source_id, spectrum_name, release_id) "
            "JOIN healcat.source s USING (shard, source_id) JOIN healcat.release r ON r.release_id = s.release_id "
            "WHERE sp.spectrum_name = 'spec-0266-51630-0359' ORDER BY sp.release_id")).all()
    assert current == ["spec-0266-51630-0359", "spec-0332-52367-0001", "spec-0332-52367-0002"]
    # both readings kept on the DR14 source; only the new version's is current
    assert [(r.release_id, r.current, r.source_release) for r in dr14] == [
        (releases[0].release_id, False, "sdss/dr14-skyserver-10k"), (releases[1].release_id, True, "sdss/dr14-skyserver-10k")]
    assert dr14[1].flux == pytest.approx(2 * dr14[0].flux, rel=1e-6)


def test_one_spectrum_named_twice_for_one_source_in_a_release_is_quarantined_naming_the_first(
        engine, catalog, tmp_path, scratch_release):
    """Two epochs within 1 arcsec share a source; a name template without the fibre names both alike."""
    for fiber in (1, 2):
        with fits.open(PYQSOFIT / "spec-0332-52367-0639.fits") as hdul:
            hdul[2].data["FIBERID"][0] = fiber
            hdul.writeto(tmp_path / f"spec-0332-52367-000{fiber}.fits")
    mapping = per_object_mapping(tmp_path, "sdss_spectra_pyqsofit", "named-twice",
                                 {"series": [tmp_path / "spec-0332-*.fits"]})
    mapping.write_text(mapping.read_text().replace('name = "spec-{PLATE:04d}-{MJD:05d}-{FIBERID:04d}"',
                                                   'name = "spec-{PLATE:04d}-{MJD:05d}"'))
    result = ingest_release(mapping, engine)
    assert result.row_counts["spectrum"] == 1 and result.row_counts["source"] == 1
    with engine.connect() as conn:
        (file, row, reason), = conn.execute(sa.text(
            "SELECT file, row_number, reason FROM healcat.quarantine WHERE release_id = :r"), {"r": result.release_id}).all()
    assert file.endswith("spec-0332-52367-0002.fits") and row == 0
    assert "spec-0332-52367 is already in this release for this source (file " in reason
    assert "spec-0332-52367-0001.fits, row 0)" in reason


def test_a_spectrum_joins_the_current_source_of_its_match_survey_never_a_superseded_one(
        engine, catalog, tmp_path, scratch_release, other_survey):
    """Two releases of one survey hold the object: the spectrum joins the published (current) one's
    source, as [source] join does; a superseded release's source is history, invisible to current_source.
    Where two current sources of the match surveys have the id, the spectrum is quarantined, naming both."""
    row = next(r for r in sdss_rows() if spec_name(r) == "0266-51630-0359")
    for version, date in (("v1", "2017-01-01"), ("v2", "2018-01-01")):
        mapping = scratch_mapping(tmp_path, version)
        mapping.write_text(mapping.read_text().replace("date = 2017-07-31", f"date = {date}"))
        ingest_release(mapping, engine, file=write_csv(tmp_path / f"{version}.csv", [row]))
    with fits.open(PYQSOFIT / "spec-0266-51602-0013.fits") as hdul:
        hdul[2].data["MJD"][0], hdul[2].data["FIBERID"][0] = 51630, 359
        hdul.writeto(tmp_path / "spec-0266-51630-0359.fits")
    result = ingest_release(_spectra_of(tmp_path, "current", ["scratch"]), engine)
    assert result.row_counts["matched_existing_source"] == 1 and result.row_counts["source"] == 0
    with engine.connect() as conn:
        joined = conn.execute(sa.text(
            "SELECT r.name, r.status FROM healcat.spectrum sp JOIN healcat.source s USING (shard, source_id) "
            "JOIN healcat.release r ON r.release_id = s.release_id WHERE sp.release_id = :r"),
            {"r": result.release_id}).all()
        current = conn.scalar(sa.text(
            "SELECT count(*) FROM healcat.current_spectrum sp JOIN healcat.current_source s USING (shard, source_id) "
            "WHERE sp.release_id = :r"), {"r": result.release_id})
    assert [tuple(j) for j in joined] == [("scratch/v2", "published")] and current == 1
    # DR14 has the object too: two current sources, neither chosen silently
    with pytest.raises(IngestError, match=r"object id '0266-51630-0359' names 2 current sources of the match_survey "
                                          r"surveys \(.*\): which one this spectrum is of is ambiguous") as error:
        ingest_release(_spectra_of(tmp_path, "both", ["scratch", "sdss"]), engine)
    assert "scratch/v2 source" in str(error.value) and "sdss/dr14-skyserver-10k source" in str(error.value)


def test_a_quarantined_spectrum_leaves_no_source_and_no_redshift(engine, catalog, tmp_path, scratch_release):
    """Its pixels are checked before its source is made: a rejected spectrum is not half loaded."""
    for fiber, damage in ((1, None), (2, "flux")):
        with fits.open(PYQSOFIT / "spec-0332-52367-0639.fits") as hdul:
            hdul[2].data["FIBERID"][0] = fiber
            hdul[2].data["PLUG_RA"][0] += 0.01 * fiber
            if damage:
                hdul[1].data[damage][5] = np.inf
            hdul.writeto(tmp_path / f"spec-0332-52367-000{fiber}.fits")
    mapping = per_object_mapping(tmp_path, "sdss_spectra_pyqsofit", "rejected", {"series": [tmp_path / "spec-*.fits"]})
    result = ingest_release(mapping, engine)
    assert (result.row_counts["spectrum"], result.row_counts["source"], result.row_counts["quarantine"]) == (1, 1, 1)
    with engine.connect() as conn:
        sources = conn.execute(sa.text(
            "SELECT s.object_id, z.z IS NOT NULL FROM healcat.source s LEFT JOIN healcat.spec_redshift z "
            "USING (shard, source_id) WHERE s.release_id = :r"), {"r": result.release_id}).all()
        reason = conn.scalar(sa.text("SELECT reason FROM healcat.quarantine WHERE release_id = :r"),
                             {"r": result.release_id})
    assert [tuple(s) for s in sources] == [("0332-52367-0001", True)]
    assert "flux is not finite where ivar > 0 at pixel 5" in reason


def _legac_copy(tmp_path, version: str, edit) -> tuple:
    """A copy of the LEGA-C spectrum changed by ``edit(hdul)``, and a mapping of it alone."""
    with fits.open(LEGAC) as hdul:
        edit(hdul)
        hdul.writeto(tmp_path / "legac_copy.fits")
    return per_object_mapping(tmp_path, "legac_dr3_spectra_ppxf", version, {"series": [tmp_path / "legac_copy.fits"]})


def _qual_as_float(hdul, pixel: int, value: float) -> None:
    """QUAL written as float4, one pixel ``value`` (a NaN, or past an int4)."""
    table = hdul[1].data
    qual = np.asarray(table["QUAL"][0], dtype=np.float32)
    qual[pixel] = value
    cols = [fits.Column(name=c.name, format=f"{len(qual)}{'E' if c.name == 'QUAL' else c.format[-1]}", unit=c.unit,
                        array=[qual if c.name == "QUAL" else table[c.name][0]]) for c in hdul[1].columns]
    hdul[1] = fits.BinTableHDU.from_columns(cols)


def _scaled(hdul, factor: float) -> None:
    hdul[1].data["FLUX"][0] *= factor
    hdul[1].data["ERR"][0] *= factor


def _tunit(column: int, unit: str):
    def edit(hdul):
        hdul[1].header[f"TUNIT{column}"] = unit
    return edit


@pytest.mark.parametrize(("edit", "column", "reason"), [
    # 1/ERR**2 ~ 1e41: stored as +inf in a float4 (4,086 of its pixels), with 0 quarantined
    (lambda h: _scaled(h, 1e-21), "ERR", r"ivar \d\.\d+e\+40 does not fit a float4 .* at pixel 723 \(and 4085 more\)"),
    (lambda h: _scaled(h, 1e40), "FLUX", r"flux 7\.81472e\+41 is past a float4 at pixel 723 \(and 4090 more\)"),
    (lambda h: h[1].data["ERR"][0].__imul__(1e200), "ERR", r"ivar 0 does not fit a float4 .* at pixel 723"),  # underflow
    # a NaN mask cast to int64 is INT64_MIN, stored as 0 (good) where the file says 1; 2**31 wraps
    (lambda h: _qual_as_float(h, 10, np.nan), "QUAL", r"mask nan is not an integer in \[-2147483648, 2147483647\] "
                                                      r"\(an int4\) at pixel 10"),
    (lambda h: _qual_as_float(h, 3, 2.0**32), "QUAL", r"mask 4294967296\.0 is not an integer .* at pixel 3"),
    # the file's own unit, where no conversion to the mapping's exists, refuses it
    (_tunit(3, "erg"), "ERR", r"the file gives ERR in 'erg', the mapping in 1e-19 erg / \(Angstrom s cm2\): "
                              r"not convertible"),
    (_tunit(1, "furlongs-ish"), "WAVE", r"the file gives WAVE the unit 'furlongs-ish', which astropy cannot parse"),
], ids=["ivar-float4", "flux-float4", "ivar-underflow", "mask-nan", "mask-int4", "unit-not-convertible", "unit-unparsable"])
def test_a_spectrum_value_its_column_cannot_hold_or_unit_it_cannot_convert_is_quarantined_naming_column_and_pixel(
        engine, tmp_path, scratch_release, edit, column, reason):
    """Values are checked as stored (float4, int4), not as float64: never narrowed to inf, 0 or a wrapped int."""
    mapping = _legac_copy(tmp_path, "bad-values", edit)
    with pytest.raises(IngestError, match=rf"legac_copy.fits row 0 column {column}: M19_56670: {reason}"):
        ingest_release(mapping, engine)


def test_a_wavelength_in_the_files_own_unit_is_converted_to_the_mappings(engine, tmp_path, scratch_release):
    """ESO Phase 3 products often give nm (TUNIT1): read as the mapping's Angstrom they were 10x short."""
    def to_nm(hdul):
        hdul[1].data["WAVE"][0] /= 10.0
        hdul[1].columns["WAVE"].unit = "nm"
    result = ingest_release(_legac_copy(tmp_path, "nm", to_nm), engine)
    with fits.open(LEGAC) as hdul:
        wave = hdul[1].data["WAVE"][0]
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT wavelength, wavelength_unit FROM healcat.spectrum WHERE release_id = :r"),
                           {"r": result.release_id}).one()
    assert row.wavelength_unit == "Angstrom" and result.row_counts["unit_converted"] == 1
    assert row.wavelength == pytest.approx(wave.astype(np.float64), rel=1e-6)


@pytest.mark.parametrize(("key", "value", "error"), [
    ("flux", '{ column = "FLUX", unit = "bogus-units" }', r"flux unit 'bogus-units' is not an astropy unit"),
    ("wavelength", '{ column = "WAVE", unit = "Jy" }', r"wavelength unit 'Jy' is not a length"),
])
def test_a_spectrum_mapping_unit_must_be_an_astropy_unit(tmp_path, key, value, error):
    from catalog.errors import MappingError
    from ingest.mapping import load_mapping

    mapping = per_object_mapping(tmp_path, "legac_dr3_spectra_ppxf", "units", {})
    mapping.write_text(re.sub(rf"^{key} = .*$", f"{key} = {value}", mapping.read_text(), flags=re.M))
    with pytest.raises(MappingError, match=rf"scratch-units.toml: \[spectrum\] {error}"):
        load_mapping(mapping)


def test_log10_wavelengths_read_as_wavelengths_are_quarantined(engine, tmp_path, scratch_release):
    """loglam (3.58...) taken for Angstrom: outside any spectrum's range, not stored as 3.58 Angstrom."""
    shutil.copy(PYQSOFIT / "spec-0332-52367-0639.fits", tmp_path)
    mapping = per_object_mapping(tmp_path, "sdss_spectra_pyqsofit", "loglam", {"series": [tmp_path / "spec-*.fits"]})
    mapping.write_text(mapping.read_text().replace("log10 = true", "log10 = false"))
    with pytest.raises(IngestError, match=r"column loglam: spec-0332-52367-0639: wavelength 3\.5\d+ Angstrom is "
                                          r"outside \[10, 1e\+07\] Angstrom \(another unit than the mapping says, or "
                                          r"log10 values\?\) at pixel 0"):
        ingest_release(mapping, engine)
