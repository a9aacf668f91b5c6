"""Every shipped catalogue mapping ingested into the test catalog: row counts against the files,
quarantine counts and reasons for each file's known traps, joins by external id, and values
checked against the raw files parsed independently here (csv, gzip, h5py, astropy.io.fits)."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import math

import astropy.units as u
import h5py
import numpy as np
import pytest
import sqlalchemy as sa
from astropy.coordinates import SkyCoord
from astropy.io import fits

from catalog import cli
from catalog.errors import MappingError
from ingest.load import ingest_release
from ingest.mapping import MAPPINGS_DIR, data_dir, load_mapping
from tests.conftest import GAIA, GAIA_RELEASE, PER_OBJECT

HSC_ROWS = 20_000  # the RAIL HSC file has 429,235 rows; the tests load a slice (max_rows)
CATALOGUES = sorted(p.stem for p in MAPPINGS_DIR.glob("*.toml")
                    if p.stem not in (GAIA, "sdss_dr14_skyserver_10k", "rail_hsc_pdr2_specz_grid", *PER_OBJECT))
# Photometry before the SED codes' outputs that join it by CANDELS ID.
CATALOGUES.sort(key=lambda name: ("prospector" in name or "sed3fit" in name, name))


@pytest.fixture(scope="session")
def catalogues(engine, catalog) -> dict:
    """Every catalogue mapping ingested (committed once, after the Gaia stars that chronoflow joins)."""
    loaded = {name: ingest_release(name, engine) for name in CATALOGUES}
    hsc = load_mapping("rail_hsc_pdr2_specz_grid")
    loaded["rail_hsc_pdr2_specz_grid"] = ingest_release(dataclasses.replace(hsc, max_rows=HSC_ROWS), engine)
    return loaded


def _csv(folder_file: str) -> list[dict[str, str]]:
    with (data_dir() / folder_file).open(newline="") as fh:
        return list(csv.DictReader(line for line in fh if line.strip()))  # bts.csv starts with a blank line


def _rows(path, comment: int = -1) -> tuple[list[str], list[list[str]]]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as fh:
        lines = [line for line in fh if line.strip()]
    header = [line for line in lines if line.startswith("#")][comment].lstrip("#").replace(",", " ").split()
    return header, [line.split() for line in lines if not line.startswith("#")]


def _quarantine(engine, release_id: int) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT row_number, column_name, reason FROM healcat.quarantine "
                                    "WHERE release_id = :r ORDER BY row_number"), {"r": release_id}).all()


def test_every_file_row_is_loaded_or_quarantined(catalogues):
    for name, result in catalogues.items():
        counts = result.row_counts
        assert counts["rows_read"] == counts["source"] + counts["joined"] + counts["quarantine"], name
        assert counts["source"] + counts["joined"] > 0, name


def test_rows_read_match_the_files(catalogues):
    expected = {
        "chronoflow_prot": len(_csv("chronoflow_prot/prot_catalogue.csv")),
        "ghost_gwgc_galaxies": len(_csv("ghost_gwgc_galaxies/gwgc_good.csv")),
        "kepler_mcquillan_tgas_prot": len(_csv("kepler_mcquillan_tgas_prot/1473873638462A.csv")),
        "ztf_bts": len(_csv("ztf_bts_snia_lightcurves/bts.csv")),
        "gyrointerp_praesepe": len(_csv("gyrointerp_cluster_prot/interim/praesepe_rampalli2021/praesepe.csv")),
        "linear_periodic_variables": len(_rows(data_dir() / "astroml_s82_rrlyrae_linear/LINEARattributesFinalApr2013.dat.gz")[1]),
        "linear_targets": len(_rows(data_dir() / "astroml_s82_rrlyrae_linear/allLINEARfinal_targets.dat.gz")[1]),
        "eazy_hdfn_fs99": len(_rows(data_dir() / "eazy_hdfn_fs99/hdfn_fs99_eazy.cat", 0)[1]),
        "candels_goodss_z1": len(_rows(data_dir() / "candels_goodss_sedfit_comparison/catalogs/CANDELS_GDSS_workshop_z1.dat", 0)[1]),
        "astroml_s82_rrlyrae": len(fits.getdata(data_dir() / "astroml_s82_rrlyrae_linear/RRLyrae.fit", 1)),
        "piczl_ls10_demo_train": len(fits.getdata(data_dir() / "piczl_ls10_demo/train_demo_catalog.fits", 1)),
        "rail_hsc_pdr2_specz_grid": HSC_ROWS,
    }
    assert {k: catalogues[k].row_counts["rows_read"] for k in expected} == expected


def test_known_traps_are_quarantined_with_their_reasons(engine, catalogues):
    # Duplicate ids: the second row of each pair is quarantined, the first kept.
    for name, column, n_dups in [("ghost_gwgc_galaxies", "NED_name", 2), ("kepler_mcquillan_tgas_prot", "KIC", 4),
                                 ("gyrointerp_groupx", "dr3_source_id", 7)]:
        file = load_mapping(name).input_path().relative_to(data_dir())
        values = [r[column] for r in _csv(str(file))]
        assert len(values) - len(set(values)) == n_dups
        q = _quarantine(engine, catalogues[name].release_id)
        assert len(q) == n_dups and all("duplicate object_id" in r.reason for r in q), name
    rows = _csv("gyrointerp_cluster_prot/interim/ruprecht147/Curtis_2020_rup147_X_GDR3_supplemented.csv")
    no_period = sum(r["Prot"] == "" for r in rows)
    not_positive = sum(r["Prot"] != "" and float(r["Prot"]) < 1e-3 for r in rows)
    q = _quarantine(engine, catalogues["gyrointerp_ruprecht147"].release_id)
    assert sum(r.reason == "Prot is missing" for r in q) == no_period == 285
    assert sum("is outside [0.001, 10000.0] [d]" in r.reason for r in q) == not_positive
    assert all(r.column_name == "Prot" for r in q if "duplicate" not in r.reason)


def test_release_report_counts_quarantine_by_reason(catalogues, capsys):
    assert cli.main(["release", "report", "gyrointerp-ruprecht147/0.7", "--examples", "1"]) == 0
    out = capsys.readouterr().out
    assert "285  Prot: Prot is missing" in out
    assert "Prot: Prot ... is outside [0.001, 10000.0] [d]" in out
    assert "row 1: Prot is missing" in out  # the first example row, with its raw values
    assert cli.main(["release", "report", "no/such-release"]) == 1
    assert "no release 'no/such-release'" in capsys.readouterr().err
    assert cli.main(["release", "report", "gyrointerp-ruprecht147/0.7", "--examples", "0"]) == 0
    out = capsys.readouterr().out  # the counts without examples (it said 'quarantined: 0')
    assert "285  Prot: Prot is missing" in out and "row 1:" not in out and "quarantined: 0" not in out


def test_withdrawing_gaia_counts_the_chronoflow_periods_joined_to_its_stars(engine, catalogues):
    """Those periods are no current view's once their base release is withdrawn: `withdraw` says so."""
    from ingest.publish import withdraw

    with engine.connect() as conn:
        done = withdraw(conn, GAIA_RELEASE, "a test, rolled back")
        conn.rollback()
    assert (done.status, done.published, done.queued) == ("withdrawn", None, [])
    assert done.joined["chronoflow/2025-prot-catalogue"] == catalogues["chronoflow_prot"].row_counts["joined"] > 0


def test_chronoflow_periods_join_gaia_stars_by_id_and_the_rest_get_positionless_sources(engine, catalogues):
    rows = _csv("chronoflow_prot/prot_catalogue.csv")
    data = load_mapping(GAIA).input_path().read_bytes()
    gaia_ids = {str(i) for i in np.frombuffer(data[16:], dtype=np.dtype([("id", "<i8"), ("rest", "V28")]))["id"]}
    in_gaia = {r["GaiaDR3_ID"] for r in rows} & gaia_ids
    counts = catalogues["chronoflow_prot"].row_counts
    assert counts["joined"] == len(in_gaia) and counts["source"] == len(rows) - len(in_gaia)
    assert counts["rotation_period"] == len(rows)
    probe = rows[1]
    with engine.connect() as conn:
        got = conn.execute(sa.text(
            "SELECT p.period_day, p.bp_rp_dered, p.membership_prob, p.reference, c.name, c.age_myr, s.shard, "
            "p.attrs->>'dustmap' AS dustmap FROM healcat.source_xid x "
            "JOIN healcat.rotation_period p USING (shard, source_id) JOIN healcat.cluster c USING (cluster_id) "
            "JOIN healcat.source s USING (shard, source_id) "
            "WHERE x.catalog = 'gaia_dr3' AND x.xid = :id AND p.release_id = :r"),
            {"id": probe["GaiaDR3_ID"], "r": catalogues["chronoflow_prot"].release_id}).one()
        joined = conn.scalar(sa.text(
            "SELECT count(*) FROM healcat.rotation_period p JOIN healcat.source s USING (shard, source_id) "
            "WHERE p.release_id = :r AND s.hpx IS NOT NULL"), {"r": catalogues["chronoflow_prot"].release_id})
    assert got.period_day == float(probe["Prot"]) and got.bp_rp_dered == pytest.approx(float(probe["BPRP_0"]), rel=1e-6)
    assert got.membership_prob == pytest.approx(float(probe["mem_prob_source"]), rel=1e-6)
    assert (got.reference, got.name, got.age_myr, got.dustmap) == (
        probe["Prot_source"], probe["subgroup"], float(probe["fiducial_age_Myr"]), probe["dustmap"])
    assert got.shard == int(probe["GaiaDR3_ID"]) >> 51  # the order-4 pixel inside the Gaia id
    assert joined == len(in_gaia)  # the joined periods sit on the positioned Gaia stars


def test_candels_magnitudes_and_sed_masses_join_by_candels_id(engine, catalogues):
    header, rows = _rows(data_dir() / "candels_goodss_sedfit_comparison/catalogs/CANDELS_GDSS_workshop_z1.dat", 0)
    bands = [h for h in header[2:-2] if not h.startswith("e")]
    measured = sum(float(r[header.index(b)]) < 90 for r in rows for b in bands)
    assert catalogues["candels_goodss_z1"].row_counts["photometry"] == measured  # 98.9x flags: no row
    probe = rows[2]
    with (data_dir() / "candels_goodss_sedfit_comparison/code_outputs/prospector_output_z1.dat").open() as fh:
        prospector = {line.split(",")[0]: line.split(",") for line in fh if not line.startswith("#")}
    with engine.connect() as conn:
        got = conn.execute(sa.text(
            "SELECT p.mag, p.mag_err, p.flux_ujy, m.log_mass_msun, m.code FROM healcat.source_xid x "
            "JOIN healcat.photometry p USING (shard, source_id) JOIN healcat.stellar_mass m USING (shard, source_id) "
            "WHERE x.catalog = 'candels_goodss' AND x.xid = :id AND p.band = 'candels_acs_f435w' AND m.code = 'prospector'"),
            {"id": probe[0]}).one()
    mag = float(probe[header.index("ACS_F435W")])
    assert got.mag == pytest.approx(mag, abs=1e-5) and got.mag_err == pytest.approx(float(probe[header.index("eACS_F435W")]))
    assert got.flux_ujy == pytest.approx((mag * u.ABmag).to(u.uJy, u.spectral_density(1 * u.um)).value, rel=1e-6)
    assert got.log_mass_msun == float(prospector[probe[0]][1])
    assert catalogues["candels_prospector_z1"].row_counts["joined"] == len(rows)
    # SED3FIT's failed fits (every parameter at its grid's corner, Mstar 7.002) are quarantined, not masses
    sed_header, sed_rows = _rows(data_dir() / "candels_goodss_sedfit_comparison/code_outputs/"
                                 "RIVERSIDE_z1_SED3FIT_RESULTS_8_2.dat", 0)
    failed = [n for n, r in enumerate(sed_rows, 1) if float(r[sed_header.index("Mstar50")]) == 7.002]
    assert len(failed) == 8 and catalogues["candels_sed3fit_z1"].row_counts["joined"] == len(sed_rows) - 8
    assert [(q.row_number, q.column_name, q.reason) for q in _quarantine(engine, catalogues["candels_sed3fit_z1"].release_id)] \
        == [(n, "Mstar50", "Mstar50 is missing (empty, or a [stellar_mass] sentinel: 7.002)") for n in failed]
    assert all(catalogues[name].row_counts["source"] == 0 for name in ("candels_prospector_z1", "candels_sed3fit_z1"))


def test_eazy_fluxes_with_zero_point_25_become_ab_magnitudes(engine, catalogues):
    header, rows = _rows(data_dir() / "eazy_hdfn_fs99/hdfn_fs99_eazy.cat", 0)
    negative = next(r for r in rows if float(r[header.index("f_irimk")]) <= 0)
    with engine.connect() as conn:
        def band(object_id):
            return conn.execute(sa.text(
                "SELECT p.mag, p.flux_ujy, p.flux_err_ujy FROM healcat.source s JOIN healcat.photometry p "
                "USING (shard, source_id) JOIN healcat.release r USING (release_id) "
                "WHERE r.name = 'hdfn-fs99/eazy-demo' AND s.object_id = :o AND p.band = 'kpno_irim_k'"), {"o": object_id}).one()
        first, neg = band(rows[0][0]), band(negative[0])
        n_spec = conn.scalar(sa.text("SELECT count(*) FROM healcat.spec_redshift z JOIN healcat.source s "
                                     "USING (shard, source_id) WHERE s.release_id = :r"),
                             {"r": catalogues["eazy_hdfn_fs99"].release_id})
    f = float(rows[0][header.index("f_irimk")])
    assert first.mag == pytest.approx(25 - 2.5 * math.log10(f), abs=1e-5)
    assert neg.mag is None and neg.flux_ujy < 0  # a negative flux is kept, with no magnitude
    assert n_spec == sum(float(r[-1]) > 0 for r in rows) == 114  # z_spec = -1: no spectrum


def test_positions_in_hours_sexagesimal_and_fits_columns_agree_with_astropy(engine, catalogues):
    bts = _csv("ztf_bts_snia_lightcurves/bts.csv")[0]
    lin = fits.getdata(data_dir() / "astroml_s82_rrlyrae_linear/RRLyrae.fit", 1)[0]
    piczl = fits.getdata(data_dir() / "piczl_ls10_demo/train_demo_catalog.fits", 1)[0]
    with engine.connect() as conn:
        def source(release, object_id):
            return conn.execute(sa.text(
                "SELECT s.ra, s.dec, s.source_id, s.shard FROM healcat.source s JOIN healcat.release r "
                "USING (release_id) WHERE r.name = :r AND s.object_id = :o"), {"r": release, "o": object_id}).one()
        ztf = source("ztf-bts-catalogue/snia-light-curve-test-data", bts["ZTFID"])
        rr = source("sdss-s82-rrlyrae-catalogue/sesar2010", str(lin["__SIG2010_"]))
        pz = source("piczl-train/ls10-demo", piczl["FULLID"].strip())
        g, g_flux, g_err = conn.execute(sa.text(
            "SELECT mag, flux_ujy, flux_err_ujy FROM healcat.photometry WHERE shard = :s AND source_id = :i "
            "AND band = 'ls10_g_dered'"), {"s": pz.shard, "i": pz.source_id}).one()
        # every band's error from the observed flux's inverse variance and the transmission: its S/N the file's
        snr = dict(conn.execute(sa.text(
            "SELECT p.band, p.flux_ujy / p.flux_err_ujy FROM healcat.photometry p JOIN healcat.source s USING "
            "(shard, source_id) JOIN healcat.release r USING (release_id) WHERE r.name = 'piczl-train/ls10-demo' "
            "AND s.object_id = :o"), {"o": piczl["FULLID"].strip()}).all())
    c = SkyCoord(bts["RA"], bts["Dec"], unit=(u.hourangle, u.deg))
    assert ztf.ra == pytest.approx(c.ra.deg, abs=1e-9) and ztf.dec == pytest.approx(c.dec.deg, abs=1e-9)
    assert (rr.ra, rr.dec) == (pytest.approx(lin["RAJ2000"]), pytest.approx(lin["DEJ2000"]))
    assert g == pytest.approx(22.5 - 2.5 * math.log10(piczl["dered_flux_g"]), abs=1e-5)  # nanomaggies
    assert g_flux == pytest.approx(piczl["dered_flux_g"] * 3.630781, rel=1e-6)
    assert g_err == pytest.approx(3.630781 / (math.sqrt(piczl["flux_ivar_g"]) * piczl["mw_transmission_g"]), rel=1e-6)
    bands = ("g", "r", "i", "z", "w1", "w2", "w3", "w4")
    assert snr == pytest.approx({f"{'wise' if b[0] == 'w' else 'ls10'}_{b}_dered": float(piczl[f"snr_{b}"])
                                 for b in bands}, rel=1e-5)


def test_rail_hsc_rows_are_named_by_their_row_number(engine, catalogues):
    with h5py.File(data_dir() / "rail_hsc_pdr2_specz_grid/hsc_ratios_and_specz.hdf5") as fh:
        values = fh["data/block0_values"][:HSC_ROWS]
    with engine.connect() as conn:
        got = conn.execute(sa.text(
            "SELECT s.object_id::int AS row, p.mag, z.z, (s.attrs->>'color')::float8 AS color FROM healcat.source s "
            "JOIN healcat.photometry p USING (shard, source_id) JOIN healcat.spec_redshift z USING (shard, source_id) "
            "WHERE s.release_id = :r ORDER BY 1"), {"r": catalogues["rail_hsc_pdr2_specz_grid"].release_id}).all()
    assert [g.row for g in got] == list(range(1, HSC_ROWS + 1))
    np.testing.assert_allclose([g.mag for g in got], values[:, 0], rtol=1e-6)
    np.testing.assert_array_equal([g.z for g in got], values[:, 2])
    np.testing.assert_array_equal([g.color for g in got], values[:, 1])


def test_a_joining_row_whose_id_no_source_has_is_quarantined(engine, catalogues, tmp_path, scratch_release):
    text = load_mapping("candels_prospector_z1").path.read_text().replace('name = "candels-sedfit-prospector-z1"',
                                                                          'name = "scratch"')
    (tmp_path / "m.toml").write_text(text.replace("[release]\n", "[release]\nmax_rejected_fraction = 1.0\n", 1))
    (tmp_path / "p.dat").write_text("#objname,logmass,logmass_errup,logmass_errdown,logsfr,logsfr_errup,"
                                    "logsfr_errdown,av,av_errup,av_errdown\n"
                                    "21,10.10,0.07,0.12,0.55,0.42,0.59,1.05,0.28,0.22\n"
                                    "999999,9.5,0.1,0.1,0.5,0.1,0.1,1.0,0.1,0.1\n"
                                    "25.5,9.5,0.1,0.1,0.5,0.1,0.1,1.0,0.1,0.1\n")
    result = ingest_release(tmp_path / "m.toml", engine, file=tmp_path / "p.dat")
    assert (result.row_counts["joined"], result.row_counts["quarantine"], result.row_counts["source"]) == (1, 2, 0)
    q = _quarantine(engine, result.release_id)
    assert [(r.row_number, r.column_name) for r in q] == [(2, "objname"), (3, "objname")]
    assert q[0].reason == "no source has candels_goodss id '999999'"
    assert "25.5 is a float that is not an exact integer id" in q[1].reason


def test_mapping_faults_name_the_file_and_the_column(tmp_path, engine, scratch_release):
    rr = load_mapping("astroml_s82_rrlyrae")
    text = rr.path.read_text().replace('name = "sdss-s82-rrlyrae-catalogue"', 'name = "scratch"')
    (tmp_path / "a.toml").write_text(text.replace('"Dist", "Vmag"]', '"Dist", "Vmag", "Bmag"]'))
    with pytest.raises(MappingError, match=r"RRLyrae.fit: mapping a.toml uses columns not in the file: Bmag"):
        ingest_release(tmp_path / "a.toml", engine)
    (tmp_path / "b.toml").write_text(text.replace('column = "RAJ2000", unit = "deg"', 'column = "RAJ2000", unit = "hourangle"'))
    with pytest.raises(MappingError, match="column RAJ2000 is in deg by the file's own header, but mapping b.toml says hourangle"):
        ingest_release(tmp_path / "b.toml", engine)
    (tmp_path / "c.toml").write_text(load_mapping("eazy_hdfn_fs99").path.read_text().replace('system = "AB"', 'system = "Vega"'))
    with pytest.raises(MappingError, match="fluxes give AB magnitudes"):
        load_mapping(tmp_path / "c.toml")
    (tmp_path / "d.toml").write_text(load_mapping("candels_prospector_z1").path.read_text().replace('candels_goodss = "objname"', ''))
    with pytest.raises(MappingError, match="join = 'candels_goodss' needs that catalog's id column under"):
        load_mapping(tmp_path / "d.toml")
