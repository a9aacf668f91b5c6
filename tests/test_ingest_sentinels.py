"""'No data' values a mapping does not declare (-9999, -99, 1e20): each was stored as a
measurement, one corrupting the shared cluster table. Each now quarantines its row, naming the column and the
value, unless the mapping declares it (then it is a missing value, as declared)."""

from __future__ import annotations

import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
import sqlalchemy as sa
from astropy.table import Column

from ingest import cells
from ingest.load import ingest_release

HEADER = "id,ra,dec,pmra,pmdec,prot,e_prot,bprp0,age,pmem,cl,z,z_err,zq,logm,logsfr\n"
GOOD = "10.0,20.0,1.0,2.0,5,0.1,0.8,125,0.9,scratch-Pleiades,0.1,0.01,3,10.0,0.5"


def _write(tmp_path: Path, name: str, rows: str, body: str, release: str = "") -> Path:
    """A CSV file and its mapping under the survey 'scratch' (version ``name``)."""
    (tmp_path / f"{name}.csv").write_text(rows)
    path = tmp_path / f"{name}.toml"
    path.write_text(f'[survey]\nname = "scratch"\n[release]\nmax_rejected_fraction = 1.0\nversion = "{name}"\nfile = "{tmp_path / name}.csv"\n'
                    f'format = "csv"\n{release}\n[source]\nobject_id = "{{id}}"\nra = "ra"\ndec = "dec"\n{body}')
    return path


def _quarantine(engine, release_id: int) -> list[tuple[int, str, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT row_number, column_name, reason FROM healcat.quarantine WHERE release_id = :r ORDER BY row_number"),
            {"r": release_id})]


@pytest.fixture
def scratch_clusters(engine, scratch_release):
    """The clusters 'scratch-*' the test's releases made, removed with those releases' periods after it."""
    yield
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM healcat.rotation_period WHERE release_id IN (SELECT release_id FROM "
                             "healcat.release JOIN healcat.survey USING (survey_id) WHERE survey.name = 'scratch')"))
        conn.execute(sa.text("DELETE FROM healcat.cluster WHERE name LIKE 'scratch-%'"))


SECTIONS = ('pmra = "pmra"\npmdec = "pmdec"\nref_epoch = 2016.0\n'
            '[rotation_period]\nperiod = "prot"\nperiod_err = "e_prot"\nbp_rp_dered = "bprp0"\n'
            'cluster_age_myr = "age"\nmembership_prob = "pmem"\ncluster = "cl"\n'
            '[spec_redshift]\nz = "z"\nz_err = "z_err"\nquality = "zq"\n'
            '[stellar_mass]\ncode = "test"\nlog_mass = "logm"\nlog_sfr = "logsfr"\n')


def test_undeclared_sentinels_in_non_magnitude_columns_are_quarantined_and_leave_the_cluster_age_alone(
        engine, tmp_path, scratch_clusters):
    """The first row's age -9999 became the Pleiades' age, and every correct row after it was quarantined as
    differing from it; each other sentinel was stored as a value."""
    def row(i: int, column: str, value: str) -> str:
        cells = dict(zip(HEADER.strip().split(",")[1:], GOOD.split(",")))
        cells[column] = value
        return f"{i}," + ",".join(cells.values()) + "\n"

    bad = [("age", "-9999"), ("pmra", "-9999"), ("pmdec", "1e20"), ("e_prot", "-9999"), ("bprp0", "-9999"),
           ("z_err", "-9999"), ("zq", "-9999"), ("logsfr", "-99"), ("pmra", "25000")]
    rows = HEADER + "".join(row(i, c, v) for i, (c, v) in enumerate(bad, 1)) + row(10, "age", "125") \
        + row(11, "e_prot", "0")
    load = ingest_release(_write(tmp_path, "s01", rows, SECTIONS, release="chunk_rows = 2"), engine)
    assert [(n, c) for n, c, _ in _quarantine(engine, load.release_id)] == [(i, c) for i, (c, _) in enumerate(bad, 1)]
    reasons = [r for _, _, r in _quarantine(engine, load.release_id)]
    assert reasons[:2] == ["age -9999.0 is outside (0.0, 14000.0] [Myr]",
                           "pmra -9999 is a common 'no data' value, not a proper motion (leave the cell empty)"]
    assert reasons[6] == ("zq -9999 is a common 'no data' value, not a measurement (list it under [spec_redshift] "
                          "sentinels if it means none)")
    assert reasons[7] == "logsfr -99.0 is outside [-10.0, 5.0] [log10 Msun/yr]"
    assert reasons[8].startswith("pmra 25000 mas/yr is outside [-20000, 20000] mas/yr")
    assert (load.row_counts["rotation_period"], load.row_counts["quarantine"]) == (2, 9)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT age_myr FROM healcat.cluster WHERE name = 'scratch-Pleiades'")) == 125.0


def test_the_current_views_show_the_periods_and_masses_of_the_published_release_alone(
        engine, tmp_path, scratch_clusters):
    """A query over rotation_period or stellar_mass returned a star's period and a galaxy's mass twice once
    their survey had two releases: the superseded one's and the current one's."""
    loads = [ingest_release(_write(tmp_path, version, HEADER + f"1,{GOOD}\n".replace(",5,0.1,", f",{period},0.1,"),
                                   SECTIONS, release=f"date = {date}"), engine)
             for version, date, period in (("views-v1", "2020-01-01", 5), ("views-v2", "2021-01-01", 6))]
    with engine.connect() as conn:
        current = conn.execute(sa.text(
            "SELECT rp.release_id, rp.period_day, m.release_id, m.log_mass_msun FROM healcat.current_rotation_period rp "
            "JOIN healcat.current_stellar_mass m USING (shard, source_id) JOIN healcat.source s "
            "USING (shard, source_id) WHERE s.object_id = '1' AND s.release_id = ANY(:r)"),
            {"r": [load.release_id for load in loads]}).all()
        stored = conn.execute(sa.text(
            "SELECT count(*) FROM healcat.rotation_period WHERE release_id = ANY(:r)"),
            {"r": [load.release_id for load in loads]}).scalar()
    assert [tuple(c) for c in current] == [(loads[1].release_id, 6.0, loads[1].release_id, 10.0)]
    assert stored == 2  # the old release's stays


def test_a_declared_section_sentinel_is_missing_not_quarantined(engine, tmp_path, scratch_clusters):
    rows = HEADER + f"1,{GOOD}\n".replace(",3,10.0", ",-9999,10.0")
    body = SECTIONS.replace('quality = "zq"\n', 'quality = "zq"\nsentinels = [-9999.0]\n')
    load = ingest_release(_write(tmp_path, "s02", rows.replace("scratch-Pleiades", "scratch-P2"), body), engine)
    assert load.row_counts["quarantine"] == 0
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT quality FROM healcat.spec_redshift JOIN healcat.source "
                                   "USING (shard, source_id) WHERE release_id = :r"), {"r": load.release_id}) is None


def test_values_a_measurement_takes_are_no_common_sentinel(engine, tmp_path, scratch_clusters):
    """+99 and +-999 were common 'no data' values: a proper motion of 99 mas/yr, a redshift quality of 99 and a
    flux of 99 nanomaggies (mag 17.5) quarantined their rows. Only -99 ... -99999 and |v| >= 1e20 are."""
    rows = (HEADER + f"1,{GOOD}\n".replace("10.0,20.0,1.0,2.0", "10.0,20.0,99,999").replace(",3,10.0", ",99,10.0")
            + f"2,{GOOD}\n".replace("10.0,20.0,1.0,2.0", "11.0,20.0,-999,2.0")
            + f"3,{GOOD}\n".replace("10.0,20.0,1.0,2.0", "12.0,20.0,-1e21,2.0"))
    load = ingest_release(_write(tmp_path, "s99", rows, SECTIONS), engine)
    assert [(n, c) for n, c, _ in _quarantine(engine, load.release_id)] == [(2, "pmra"), (3, "pmra")]
    with engine.connect() as conn:
        got = dict(conn.execute(sa.text("SELECT object_id, pmra_masyr FROM healcat.source WHERE release_id = :r"),
                                {"r": load.release_id}).all())
        quality = conn.execute(sa.text("SELECT z.quality FROM healcat.spec_redshift z JOIN healcat.source s USING "
                                       "(shard, source_id) WHERE s.release_id = :r AND s.object_id = '1'"),
                               {"r": load.release_id}).scalar_one()
    assert got == {"1": pytest.approx(99.0)} and quality == 99


PHOT = ('[photometry]\nsystem = "AB"\nsentinels = [-9999.0]\n{extra}\n[photometry.bands]\n'
        'sdss_r = {{ mag = "r", mag_err = "r_err" }}\n'
        'sdss_g = {{ flux = "flux_g", flux_err = "flux_g_err", unit = "nanomaggy" }}\n')


def _photometry(engine, release_id: int) -> dict[tuple[str, str], tuple]:
    with engine.connect() as conn:
        return {(oid, band): (mag, err, flux) for oid, band, mag, err, flux in conn.execute(sa.text(
            "SELECT s.object_id, p.band, p.mag, p.mag_err, p.flux_ujy FROM healcat.photometry p JOIN healcat.source s "
            "USING (shard, source_id) WHERE s.release_id = :r"), {"r": release_id})}


def test_flux_sentinels_are_quarantined_not_stored_as_magnitudes_or_fluxes(engine, tmp_path, scratch_release):
    """1e20 nanomaggy became mag -27.5 (inside [-30, 50]), -99 was stored as -359 uJy, a 1e20 error as itself."""
    rows = ("id,ra,dec,r,r_err,flux_g,flux_g_err\n"
            "1,10,5,16.0,0.02,1e20,1.5\n"      # mag -27.5
            "2,11,5,16.0,0.02,-99,1.5\n"       # a sentinel, either sign
            "3,12,5,16.0,0.02,41.0,1e20\n"     # its error
            "4,13,5,16.0,0.02,1e-20,1.5\n"     # mag 72.5: noise, no magnitude (as a flux <= 0), the flux kept
            "5,14,5,16.0,0.02,41.0,2e13\n"     # an error past the flux of a mag -5 source (3.6e11 uJy)
            "6,15,5,16.0,0.02,-9999,1.5\n"     # the listed sentinel: no flux
            "7,16,5,16.0,0.02,-5.2,1.5\n"     # a negative flux: a measurement, kept
            "8,17,5,16.0,0.02,99,999\n")       # 99 nanomaggies is mag 17.5, its error 999 a real one: kept
    load = ingest_release(_write(tmp_path, "c07", rows, PHOT.format(extra="")), engine)
    assert _quarantine(engine, load.release_id) == [
        (1, "flux_g", "flux_g 1e+20 nanomaggy gives mag -27.5, outside [-5, 40] (an unlisted sentinel? list it under "
                      "[photometry] sentinels)"),
        (2, "flux_g", "flux_g -99 nanomaggy is a common 'no data' value (an unlisted sentinel? list it under "
                      "[photometry] sentinels)"),
        (3, "flux_g_err", "flux_g_err 1e+20 nanomaggy is a common 'no data' value (an unlisted sentinel? list it "
                          "under [photometry] sentinels)"),
        (5, "flux_g_err", "flux_g_err 2e+13 nanomaggy is an error larger than the flux of a mag -5 source (3.63e+11 "
                          "uJy) (an unlisted sentinel? list it under [photometry] sentinels)")]
    phot = _photometry(engine, load.release_id)
    assert ("6", "sdss_g") not in phot and phot["7", "sdss_g"][2] == pytest.approx(-5.2 * 3.630781)
    assert phot["4", "sdss_g"][0] is None and phot["4", "sdss_g"][2] == pytest.approx(1e-20 * 3.630781)
    assert phot["8", "sdss_g"][2] == pytest.approx(99 * 3.630781) and phot["8", "sdss_g"][0] == pytest.approx(17.51, abs=0.01)
    # declared, the same values are no flux: the row loads with its r band
    declared = PHOT.format(extra="").replace("sentinels = [-9999.0]", "sentinels = [-9999.0, -99.0, 1e20]")
    load = ingest_release(_write(tmp_path, "c07b", rows, declared), engine)
    assert [n for n, _, _ in _quarantine(engine, load.release_id)] == [5]
    phot = _photometry(engine, load.release_id)
    assert ("1", "sdss_g") not in phot and ("1", "sdss_r") in phot and phot["3", "sdss_g"][2] is not None


def test_a_flux_s_inverse_variance_gives_its_error_and_a_transmission_the_de_reddened_one(engine, tmp_path,
                                                                                          scratch_release):
    """Legacy Surveys and SDSS give a flux's inverse variance, not its error, and the PICZL files a
    de-reddened flux beside the observed flux's ivar and the transmission: no mapping could say so,
    and those errors were left in the file."""
    rows = ("id,ra,dec,r,r_err,flux_g,ivar_g,mw_g\n"
            "1,10,5,16.0,0.02,40.0,4.0,0.8\n"     # error 1/sqrt(4) = 0.5 observed, 0.625 de-reddened
            "2,11,5,16.0,0.02,0.0,0.0,0.8\n"      # ivar 0: no error measured (the flux kept, as any)
            "3,12,5,16.0,0.02,40.0,-1.0,0.8\n"    # a negative inverse variance
            "4,13,5,16.0,0.02,40.0,4.0,0.0\n"     # no transmission
            "5,14,5,16.0,0.02,40.0,4.0,1.5\n"     # nor this
            "6,15,5,16.0,0.02,40.0,inf,0.8\n"     # an infinite ivar was an error of 0
            "7,16,5,16.0,0.02,40.0,1e30,0.8\n"    # and 1e30 one of 1e-15
            "8,17,5,16.0,0.02,40.0,4.0,\n"        # the transmission missing where there is an error
            "9,18,5,16.0,0.02,40.0,0.0,\n"        # and where there is none: the flux alone
            "10,19,5,16.0,0.02,,4.0,0.0\n")       # no flux: its ivar and transmission are not used
    bands = ('[photometry]\nsystem = "AB"\n[photometry.bands]\nsdss_r = {{ mag = "r", mag_err = "r_err" }}\n'
             'ls10_g = {{ flux = "flux_g", flux_ivar = "ivar_g", {extra}unit = "nanomaggy" }}\n')
    load = ingest_release(_write(tmp_path, "ivar", rows, bands.format(extra='transmission = "mw_g", ')), engine)
    hint = "sentinel? list it under [photometry] sentinels)"
    assert _quarantine(engine, load.release_id) == [
        (3, "ivar_g", f"ivar_g -1.0 is a negative inverse variance (a {hint}"),
        (4, "mw_g", "mw_g 0.0 is not a transmission in (0, 1]"),
        (5, "mw_g", "mw_g 1.5 is not a transmission in (0, 1]"),
        (6, "ivar_g", f"ivar_g inf is a common 'no data' value (an unlisted {hint}"),
        (7, "ivar_g", f"ivar_g 1e+30 is a common 'no data' value (an unlisted {hint}"),
        (8, "mw_g", "mw_g is missing: the error of the de-reddened flux_g needs it")]
    phot = _photometry(engine, load.release_id)
    mag, mag_err, flux = phot["1", "ls10_g"]
    assert flux == pytest.approx(40.0 * 3.630781) and mag == pytest.approx(22.5 - 2.5 * np.log10(40.0), abs=1e-5)
    assert mag_err == pytest.approx(2.5 / np.log(10) * 0.625 / 40.0, rel=1e-6)  # its S/N is the observed flux's
    assert phot["2", "ls10_g"] == (None, None, 0.0)
    assert phot["9", "ls10_g"][1] is None and phot["9", "ls10_g"][2] == pytest.approx(40.0 * 3.630781)
    assert ("10", "ls10_g") not in phot and ("10", "sdss_r") in phot
    with engine.connect() as conn:
        err = conn.scalar(sa.text("SELECT p.flux_err_ujy FROM healcat.photometry p JOIN healcat.source s USING "
                                  "(shard, source_id) WHERE s.release_id = :r AND s.object_id = '1' AND band = 'ls10_g'"),
                          {"r": load.release_id})
    assert err == pytest.approx(0.625 * 3.630781, rel=1e-6)
    # without a transmission the error is the inverse variance's alone
    observed = "\n".join(row.rsplit(",", 1)[0] for row in rows.splitlines()) + "\n"  # the transmission left out
    load = ingest_release(_write(tmp_path, "ivar-observed", observed, bands.format(extra="")), engine)
    assert [n for n, _, _ in _quarantine(engine, load.release_id)] == [3, 6, 7]
    assert _photometry(engine, load.release_id)["4", "ls10_g"][1] == pytest.approx(2.5 / np.log(10) * 0.5 / 40.0, rel=1e-6)


def test_an_error_divided_by_a_transmission_is_named_so(engine, tmp_path, scratch_release):
    """A flux_err of 1e20 beside a transmission was reported as `e 1.11111e+20 nanomaggy`, a value the
    file does not hold, under the column's name."""
    rows = "id,ra,dec,flux_g,e,mw_g\n1,10,5,40.0,0.5,0.9\n2,11,5,40.0,1e20,0.9\n"
    load = ingest_release(_write(tmp_path, "err-t", rows, '[photometry]\nsystem = "AB"\n[photometry.bands]\n'
                                 'ls10_g = { flux = "flux_g", flux_err = "e", transmission = "mw_g", unit = "nanomaggy" }\n'),
                          engine)
    assert [(n, c, r.split(" nanomaggy")[0]) for n, c, r in _quarantine(engine, load.release_id)] == [
        (2, "e", "e/mw_g 1.11111e+20")]


@pytest.mark.parametrize("band, message", [
    ('{ flux = "f", flux_err = "e", flux_ivar = "i", unit = "nanomaggy" }', r"\(flux_err\) or its inverse variance"),
    ('{ flux = "f", transmission = "t", unit = "nanomaggy" }', "it needs flux_err or flux_ivar"),
    ('{ mag = "m", flux_ivar = "i" }', "needs a magnitude column or"),
])
def test_a_flux_error_is_given_one_way(tmp_path, band, message):
    from catalog.errors import MappingError
    from ingest.mapping import load_mapping

    path = _write(tmp_path, "bad", "id,ra,dec,m,f,e,i,t\n", f'[photometry]\nsystem = "AB"\n[photometry.bands]\nx = {band}\n')
    with pytest.raises(MappingError, match=message):
        load_mapping(path)


def test_magnitude_errors_that_measure_nothing_are_null_with_the_magnitude_kept(engine, tmp_path, scratch_release,
                                                                                caplog):
    """An error of 0 (bright stars rounded to 0.00), 99 or 1e20 ('no error'), or past max_mag_err (faint forced
    photometry) quarantined the whole row, every band and the position with it: now the error is NULL, the
    magnitude kept, and counted per column; a negative error still quarantines its row."""
    rows = ("id,ra,dec,r,r_err,flux_g,flux_g_err\n"
            "1,10,5,16.0,99,41.0,1.5\n2,11,5,16.0,1e20,41.0,1.5\n3,12,5,16.0,0,41.0,1.5\n"
            "4,13,5,30.8,7.5,41.0,1.5\n5,14,5,16.0,0.02,41.0,1.5\n6,15,5,16.0,-0.5,41.0,1.5\n"
            "7,16,5,16.0,-99,41.0,1.5\n")
    with caplog.at_level("INFO", logger="ingest.load"):
        load = ingest_release(_write(tmp_path, "c06", rows, PHOT.format(extra="")), engine)
    assert _quarantine(engine, load.release_id) == [
        (6, "r_err", "r_err -0.5 is a negative error (a sentinel? list it under [photometry] sentinels)")]
    assert load.row_counts["mag_err_not_stored:r_err"] == 5 and load.row_counts["source"] == 6
    # the quarantined row is kept as the file had it: the NULLs and NaNs written for storing were
    # written into the table the row's raw JSON comes from (r_err "nan" for the file's -0.5)
    with engine.connect() as conn:
        raw = conn.scalar(sa.text("SELECT raw FROM healcat.quarantine WHERE release_id = :r"), {"r": load.release_id})
    assert float(raw["r_err"]) == -0.5 and float(raw["r"]) == 16.0
    phot = _photometry(engine, load.release_id)
    assert [phot[str(i), "sdss_r"][:2] for i in (1, 2, 3, 4, 7)] == [(16.0, None)] * 3 + [(30.8, None), (16.0, None)]
    assert phot["5", "sdss_r"][1] == pytest.approx(0.02) and phot["1", "sdss_g"][2] == pytest.approx(41.0 * 3.630781)
    assert ("r_err: 5 magnitude errors not stored (NULL, their magnitudes kept): 1 0 (rounded, or not measured), "
            "2 a common 'no data' value, 2 above max_mag_err (5 mag)") in caplog.text
    # declared: 0 and 99 mean "no error measured"; errors up to 10 mag are kept
    extra = "error_sentinels = [0.0, 99.0]\nmax_mag_err = 10.0"
    load = ingest_release(_write(tmp_path, "c06b", rows, PHOT.format(extra=extra)), engine)
    assert load.row_counts["quarantine"] == 1 and load.row_counts["mag_err_not_stored:r_err"] == 4
    phot = _photometry(engine, load.release_id)
    assert [phot[str(i), "sdss_r"][:2] for i in (1, 2, 3)] == [(16.0, None)] * 3
    assert phot["4", "sdss_r"][1] == pytest.approx(7.5)


@pytest.mark.parametrize("fmt", ["fits", "parquet", "csv"])
def test_sentinels_and_limits_match_a_float32_column_as_it_holds_them(engine, tmp_path, scratch_release, fmt):
    """A mapping's 99.99 never equalled a float32 column's 99.99 (99.98999786...: FITS 'E', Parquet floats), so
    the declared sentinel's row was quarantined as out of range, a declared error sentinel as a negative error,
    a magnitude at missing_above kept, and an error at max_mag_err dropped: each now reads as in a CSV. (1e39,
    which no float32 holds, overflowed to inf with a warning.)"""
    from astropy.table import Table

    table = Table({"id": np.arange(1, 7), "ra": np.arange(10.0, 16.0), "dec": np.full(6, 5.0),
                   "r": np.array([18.5, 99.99, 19.0, 20.0, 88.88, 21.0], dtype=np.float32),
                   "r_err": np.array([0.05, 0.05, -0.1, 0.3, 0.05, 0.31], dtype=np.float32)})
    path = tmp_path / f"f32.{fmt}"
    table.write(path, **({"format": "ascii.csv", "formats": {"r": "%g", "r_err": "%g"}} if fmt == "csv" else {}))
    mapping = tmp_path / "f32.toml"
    mapping.write_text(f'[survey]\nname = "scratch"\n[release]\nmax_rejected_fraction = 1.0\nversion = "f32-{fmt}"\n'
                       f'file = "{path}"\nformat = "{fmt}"\n[source]\nobject_id = "{{id}}"\nra = "ra"\ndec = "dec"\n'
                       '[photometry]\nsystem = "AB"\nsentinels = [99.99, 1e39]\nerror_sentinels = [-0.1]\n'
                       'missing_above = 88.88\nmax_mag_err = 0.3\n[photometry.bands]\n'
                       'sdss_r = { mag = "r", mag_err = "r_err" }\n')
    load = ingest_release(mapping, engine)
    assert _quarantine(engine, load.release_id) == [] and load.row_counts["source"] == 6
    phot = {oid: (mag, err) for (oid, _), (mag, err, _) in _photometry(engine, load.release_id).items()}
    assert sorted(phot) == ["1", "3", "4", "6"]  # 2: the sentinel, 5: at missing_above
    assert phot["3"] == (pytest.approx(19.0), None) and phot["6"] == (pytest.approx(21.0), None)  # declared; above 0.3
    assert phot["4"][1] == pytest.approx(0.3) and phot["1"][1] == pytest.approx(0.05)


ATTRS_IN_EVERY_FORMAT = {
    "1": {"name": "a", "x": 1.5, "code": "007"}, "2": {"name": "b", "x": None, "code": 16.62},
    "3": {"name": None, "x": None, "code": None}, "4": {"name": "c", "x": 2, "code": "x"},
    "5": {"name": "d", "x": None, "code": None}, "6": {"name": "e", "x": 3.25, "code": None}}


@pytest.mark.parametrize("fmt", ["csv", "ecsv", "fits", "votable", "parquet", "parquet-binary", "hdf5"])
def test_attrs_are_the_same_whatever_the_format(engine, tmp_path, scratch_release, fmt):
    """The same table's attrs differed by format: empty text was null from CSV and Parquet, '' from the others;
    blanks around text kept by some readers; an infinity null from a typed column, and 'inf' (or 'nan') from a
    CSV chunk that one 'nan' cell left text, so one file's column held both; and text read as bytes (HDF5, a
    Parquet binary column) kept '16.62' and 'nan' as text where the other formats store 16.62 and null. Text
    is stripped, empty text, NaN and infinities are null, in every format and chunk."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from astropy.table import Table

    table = Table({"id": np.arange(1, 7), "ra": np.arange(10.0, 16.0), "dec": np.full(6, 5.0),
                   "name": ["a", "  b  ", "", "c", "d", "e"],
                   "x": [1.5, np.inf, np.nan, 2.0, -np.inf, 3.25],  # rows 1-3 one chunk (its 'nan' makes it text)
                   "code": ["007", " 16.62", "nan", "x", "Inf", "1e999"]})
    path = tmp_path / f"attrs.{ {'hdf5': 'h5', 'parquet-binary': 'parquet'}.get(fmt, fmt) }"
    if fmt == "parquet-binary":
        arrow = pa.table({c: table[c].tolist() for c in table.colnames})
        pq.write_table(arrow.set_column(5, "code", arrow["code"].cast(pa.binary())), path)
    else:
        table.write(path, **{"csv": {"format": "ascii.csv"}, "ecsv": {"format": "ascii.ecsv"}, "votable":
                             {"format": "votable"}, "hdf5": {"path": "data", "serialize_meta": False}}.get(fmt, {}))
    mapping = tmp_path / "attrs.toml"
    mapping.write_text(f'[survey]\nname = "scratch"\n[release]\nversion = "attrs-{fmt}"\nfile = "{path}"\n'
                       f'format = "{fmt.split("-")[0]}"\nchunk_rows = 3\n[source]\nobject_id = "{{id}}"\nra = "ra"\n'
                       'dec = "dec"\nattrs = ["name", "x", "code"]\n')
    load = ingest_release(mapping, engine)
    assert _quarantine(engine, load.release_id) == []
    with engine.connect() as conn:
        attrs = dict(conn.execute(sa.text("SELECT object_id, attrs FROM healcat.source WHERE release_id = :r"),
                                  {"r": load.release_id}).all())
    assert attrs == ATTRS_IN_EVERY_FORMAT


@pytest.mark.parametrize("fmt", ["csv", "ecsv", "fits", "votable", "parquet", "hdf5"])
def test_a_float32_attr_is_the_number_the_file_wrote(engine, tmp_path, scratch_release, fmt):
    """A float32 column's attrs (FITS 'E', VizieR's RRLyrae.fit: Ar 0.077, F6.3) were stored as the float64 it
    widens to, {"Ar": 0.07699999958276749}, where the same table as CSV gives 0.077: a survey's release in
    another format had every object 'changed' (attrs.Ar). Now the shortest decimal that gives the float32 back."""
    from astropy.table import Table

    values = [0.077, 17.204, 1.1e-05, -0.5]
    table = Table({"id": np.arange(1, 5), "ra": np.arange(10.0, 14.0), "dec": np.full(4, 5.0),
                   "f": np.array(values, dtype=np.float32)})
    path = tmp_path / f"f32attrs.{'h5' if fmt == 'hdf5' else fmt}"
    table.write(path, **{"csv": {"format": "ascii.csv", "formats": {"f": "%g"}}, "ecsv": {"format": "ascii.ecsv"},
                         "votable": {"format": "votable"}, "hdf5": {"path": "data", "serialize_meta": False}}.get(fmt, {}))
    mapping = tmp_path / "f32attrs.toml"
    mapping.write_text(f'[survey]\nname = "scratch"\n[release]\nversion = "f32attrs-{fmt}"\nfile = "{path}"\n'
                       f'format = "{fmt}"\n[source]\nobject_id = "{{id}}"\nra = "ra"\ndec = "dec"\nattrs = ["f"]\n')
    load = ingest_release(mapping, engine)
    with engine.connect() as conn:
        attrs = dict(conn.execute(sa.text("SELECT object_id, attrs->'f' FROM healcat.source WHERE release_id = :r"),
                                  {"r": load.release_id}).all())
    assert attrs == {str(i): v for i, v in enumerate(values, 1)}


@pytest.mark.parametrize("fmt", ["parquet", "hdf5"])
def test_bytes_that_are_no_text_quarantine_their_row_naming_the_column(engine, tmp_path, scratch_release, fmt):
    """A Parquet binary or HDF5 cell that is no UTF-8, or holds a NUL, was stored with U+FFFD in its place,
    where the CSV reader refuses such a cell and a text column's NUL quarantines its row."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from astropy.table import Table

    codes = [b"caf\xe9", b"a\x00b", b"ok"]
    path = tmp_path / f"bytes.{'h5' if fmt == 'hdf5' else fmt}"
    columns = {"id": [1, 2, 3], "ra": [10.0, 11.0, 12.0], "dec": [5.0, 5.0, 5.0]}
    if fmt == "parquet":
        pq.write_table(pa.table({**columns, "code": pa.array(codes, type=pa.binary())}), path)
    else:
        Table({**columns, "code": np.array(codes, dtype="S4")}).write(path, path="data", serialize_meta=False)
    mapping = tmp_path / "bytes.toml"
    mapping.write_text(f'[survey]\nname = "scratch"\n[release]\nversion = "bytes-{fmt}"\nfile = "{path}"\n'
                       f'format = "{fmt}"\nmax_rejected_fraction = 1.0\n[source]\nobject_id = "{{id}}"\nra = "ra"\n'
                       'dec = "dec"\nattrs = ["code"]\n')
    load = ingest_release(mapping, engine)
    assert _quarantine(engine, load.release_id) == [
        (1, "code", "code b'caf\\xe9' is not UTF-8 text (unexpected end of data at byte 3)"),
        (2, "code", "code b'a\\x00b' holds a NUL character, which text cannot hold")]
    assert load.row_counts["source"] == 1


def test_an_attr_cell_is_stored_as_every_format_reads_it():
    assert [cells.attr_value(v, numeric=True) for v in ("16.62", " 7 ", "NaN", "-inf", "+Infinity", "\u0131nf", ">25.1",
                                                         " ", b" 16.62", np.bytes_(b"nan"), "1e999")] \
        == [16.62, 7, None, None, None, "\u0131nf", ">25.1", None, 16.62, None, None]
    assert [cells.attr_value(v, numeric=False) for v in ("16.62", "  a b ", "", np.str_("nan"), np.float32(np.inf),
                                                          b"x ")] \
        == ["16.62", "a b", None, "nan", None, "x"]  # a column read as text (an id template field, an xid)


@pytest.mark.parametrize("template", ["{id}", "sdss-{id}", "{id}-{n}"])
def test_float_formatted_ids_read_the_same_alone_or_in_a_template(engine, tmp_path, scratch_release, template):
    """'sdss-{id}' stored 'sdss-1.23764870457714E+018', 'sdss-1.5e3', 'sdss-3306549220491.0' where '{id}' alone
    quarantined or normalised them; '1237648704577142784.0' (past 2**53, a printed float) was taken as exact,
    as was a Gaia id '5853498713190525696.0'."""
    rows = ("id,n,ra,dec,gaia\n1.23764870457714E+018,1,10,5,\n1237648704577142784.0,2,11,5,\n3306549220491.0,3,12,5,\n"
            "1.5e3,4,13,5,\n3306549220512,5,14,5,5853498713190525696.0\n324516660594,6,15,5,5853498713190525696\n")
    body = '[xid]\ngaia_dr3 = "gaia"\n[ignore]\nn = "a number"\n' if "{n}" not in template else '[xid]\ngaia_dr3 = "gaia"\n'
    path = _write(tmp_path, "floatid", rows, body)
    path.write_text(path.read_text().replace('object_id = "{id}"', f'object_id = "{template}"'))
    load = ingest_release(path, engine)
    assert _quarantine(engine, load.release_id) == [
        (1, "id", "id 1.23764870457714E+018 is a float that is not an exact integer id"),
        (2, "id", "id 1237648704577142784.0 is a float that is not an exact integer id (past 2**53 a float may have "
                  "lost digits)"),
        (5, "gaia", "gaia 5853498713190525696.0 is a float that is not an exact integer id (past 2**53 a float may "
                    "have lost digits)")]
    with engine.connect() as conn:
        ids = conn.scalars(sa.text("SELECT object_id FROM healcat.source WHERE release_id = :r"),
                           {"r": load.release_id}).all()
    expected = {"3306549220491": 3, "1500": 4, "324516660594": 6}
    assert sorted(ids) == sorted(template.replace("{id}", i).replace("{n}", str(n)) for i, n in expected.items())


@pytest.mark.parametrize(("unit", "expected_deg"), [("deg", None), ("dms", 12.239889), ("hourangle", 183.598333)])
def test_sexagesimal_ra_in_a_column_called_deg_is_quarantined_unless_the_unit_is_said(
        engine, tmp_path, scratch_release, unit, expected_deg):
    """'12:14:23.6' was read as 12 deg 14' (12.24 deg) where RA means hours; '12h14m23.6s' says its unit."""
    rows = "id,ra,dec\n1,12:14:23.6,0.1\n2,12 14  07.5,0.1\n3,12h14m23.6s,0.1\n4,12.5,0.1\n"
    path = _write(tmp_path, f"sexa-{unit}", rows, "")
    path.write_text(path.read_text().replace('ra = "ra"', f'ra = {{ column = "ra", unit = "{unit}" }}'))
    load = ingest_release(path, engine)
    quarantined = _quarantine(engine, load.release_id)
    with engine.connect() as conn:
        ra = dict(conn.execute(sa.text("SELECT object_id, ra FROM healcat.source WHERE release_id = :r"),
                               {"r": load.release_id}).all())
    if expected_deg is None:
        hint = "which for RA conventionally means hours, but the mapping says deg: say unit = \"hourangle\" (hours) " \
               "or \"dms\" (degrees)"
        assert quarantined == [(1, "ra", f"ra '12:14:23.6' is sexagesimal, {hint}"),
                               (2, "ra", f"ra '12 14  07.5' is sexagesimal, {hint}")]
        assert ra["3"] == pytest.approx(183.598333) and ra["4"] == 12.5
    else:
        assert quarantined == [] and ra["1"] == pytest.approx(expected_deg)


def test_sexagesimal_fields_out_of_range_are_quarantined_not_carried(engine, tmp_path, scratch_release):
    """astropy reads '+33:60:00' as 34 deg and '23:59:60' as 24 h (360 deg), with only a warning."""
    rows = "id,ra,dec\n1,08:29:47.59,+33:60:00\n2,23:59:60,-00:30:00\n3,24:00:00.1,+10:00:00\n4,08:29:47.59,+33:54:22.8\n"
    path = _write(tmp_path, "sexa-range", rows, "")
    path.write_text(path.read_text().replace('ra = "ra"', 'ra = { column = "ra", unit = "hourangle" }'))
    load = ingest_release(path, engine)
    assert [(n, c, r.split(" (")[0]) for n, c, r in _quarantine(engine, load.release_id)] == [
        (1, "dec", "dec '+33:60:00' is not a valid sexagesimal angle in deg"),
        (2, "ra", "ra '23:59:60' is not a valid sexagesimal angle in hourangle"),
        (3, "ra", "ra '24:00:00.1' is not a valid sexagesimal angle in hourangle")]
    assert load.row_counts["source"] == 1


def test_sexagesimal_cells_are_checked_without_touching_the_process_warning_filters(monkeypatch):
    """The cells are read in the loader's read-ahead thread: warnings.catch_warnings per cell saved and restored
    the process-wide filters (another thread could be left with 'error' installed, or lose its own). Out-of-range
    fields are found before astropy's Angle sees them, so it never warns, and no filter is touched."""
    entered, catch_warnings = [], warnings.catch_warnings

    def counted(*args, **kwargs):
        entered.append(args)
        return catch_warnings(*args, **kwargs)

    filters = list(warnings.filters)
    problems = {}
    with monkeypatch.context() as patch:
        patch.setattr(warnings, "catch_warnings", counted)
        ra = cells.degrees(Column(["08:29:47.59", "23:59:60", "24:00:00.1", "12h60m", "23h59m59.5s"]), u.hourangle,
                           problems, "ra")
        dec = cells.degrees(Column(["+33:60:00", "-10d59m60s", "+33:54:22.8", "-00 30 00"]), u.deg, problems, "dec")
    assert entered == [] and warnings.filters == filters
    assert {i: why.split(" (")[0] for i, (_, why) in problems.items()} == {
        1: "ra '23:59:60' is not a valid sexagesimal angle in hourangle",
        2: "ra '24:00:00.1' is not a valid sexagesimal angle in hourangle",
        3: "ra '12h60m' is not a valid sexagesimal angle in hourangle",
        0: "dec '+33:60:00' is not a valid sexagesimal angle in deg"}
    assert ra[0] == pytest.approx(127.448292) and ra[4] == pytest.approx(359.997917)
    assert dec[2] == pytest.approx(33.906333) and dec[3] == pytest.approx(-0.5) and np.isnan(dec[1])


@pytest.mark.parametrize(("n", "ra_max", "flagged"), [(101, 23.9, True), (100, 23.9, False), (101, 25.0, False)])
def test_a_release_whose_every_ra_is_below_24_deg_says_so(engine, tmp_path, scratch_release, caplog, n, ra_max,
                                                         flagged):
    """RA in hours read as degrees: every position in [0, 24] deg, which no all-sky catalogue of 100 rows has."""
    ras = [ra_max * i / (n - 1) for i in range(n)]
    rows = "id,ra,dec\n" + "".join(f"{i},{ra},1.0\n" for i, ra in enumerate(ras, 1))
    load = ingest_release(_write(tmp_path, f"hours-{n}-{ra_max}", rows, ""), engine)
    assert load.row_counts.get("ra_all_within_24_deg") == (n if flagged else None)
    assert ("every one of its 101 positions has RA in [0, 24] deg" in caplog.text) == flagged
    with engine.connect() as conn:
        stored = conn.scalar(sa.text("SELECT row_counts FROM healcat.release WHERE release_id = :r"),
                             {"r": load.release_id})
    assert stored.get("ra_all_within_24_deg") == (n if flagged else None)


def test_shortest_decimals_are_the_numbers_str_writes():
    """``cells.shortest_decimals`` (vectorized) gives, for every float16 and for float32s of every exponent,
    the float64 of the decimal ``str`` writes for it (numpy's shortest round-trip): ties, powers of two (whose
    lower neighbour is nearer), the largest, the subnormals, and numbers past its powers of ten done one by one."""
    every16 = np.arange(2**16, dtype=np.uint16).view(np.float16)
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**32, 300_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    every16, bits = every16[~np.isnan(every16)], bits[~np.isnan(bits)]  # NaN payloads: a cast warns (NaN below)
    edges = np.array([0.077, 17.204, 1.1e-05, -0.5, 1200, 343126.125, 2.0**-6, 3.4028235e38, 1e-45, 1e-40, 1e22, 1e23,
                      -0.0, 0.0, np.nan, np.inf, -np.inf], dtype=np.float32)
    powers = (2.0 ** np.arange(-149, 128)).astype(np.float32)
    runs = np.arange(0x3F7F0000, 0x3F810000, dtype=np.uint32).view(np.float32)  # every float32 around 1
    for values in (every16, bits, edges, powers, runs, -runs):
        got = cells.shortest_decimals(values.astype(np.float64), values.dtype)
        want = values.astype(str).astype(np.float64)
        assert np.array_equal(got, want, equal_nan=True), values[got != want][:5]
        assert np.array_equal(got.astype(values.dtype), values, equal_nan=True)  # each gives its float back
    assert cells.shortest_decimals(np.array([0.07699999958276749]), np.dtype(">f4"))[0] == 0.077  # FITS 'E'
    plain = np.array([0.07699999958276749, 1.5])
    assert cells.shortest_decimals(plain, np.dtype(np.float64)) is plain and cells.shortest_decimals(
        plain, np.dtype(np.int32)) is plain
