"""catalog.objects: a source's predictions, light curve and spectra from Python, held to the files and to
an independent reading of the stored mixtures (scipy), not to the SQL the module runs."""

from __future__ import annotations

import io

import astropy.units as u
import numpy as np
import pytest
import sqlalchemy as sa
from astropy.io import fits
from astropy.table import MaskedColumn, Table
from scipy import optimize, stats

from catalog import cone_search, light_curve, predictions, source_id_of, spectra
from catalog.cli import main
from catalog.errors import QueryError
from conftest import GAIA_RELEASE, SDSS_RELEASE
from test_lightcurves import eros_curves
from test_spectra import LEGAC, PYQSOFIT


def _truncated(row, z_min: float = 0.0):
    """p(z) and its CDF as scipy reads the stored mixture, truncated at z_min and renormalised."""
    parts = [(w, stats.norm(m, s)) for w, m, s in zip(row["pdf_weights"], row["pdf_means"], row["pdf_sigmas"])]
    kept = sum(w * n.sf(z_min) for w, n in parts)
    pdf = lambda z: np.where(z < z_min, 0.0, sum(w * n.pdf(z) for w, n in parts) / kept)  # noqa: E731
    cdf = lambda z: (sum(w * (n.cdf(z) - n.cdf(z_min)) for w, n in parts) / kept)  # noqa: E731
    return pdf, cdf


def test_a_cones_photo_z_one_row_per_source_with_the_pdf_read_as_scipy_reads_it(engine, catalog):
    sources = cone_search(160.9415, 0.7968, radius_arcsec=1800.0, release=SDSS_RELEASE)
    grid = np.array([0.0, 0.05, 0.1, 0.2, 0.4])
    found = predictions(sources, pdf_at=grid)
    assert list(found["source_id"]) == list(sources["source_id"]) and len(found) > 20
    assert (found.meta["model"], found.meta["task"], found.meta["version"]) == ("photoz-sdss", "photoz", "current")
    assert found["value"].unit is None and found["pdf"].shape == (len(sources), len(grid))
    with engine.connect() as conn:
        stored = {r.source_id: r for r in conn.execute(sa.text(
            "SELECT source_id, value, uncertainty, value_p16, value_p84 FROM healcat.current_prediction "
            "WHERE model_name = 'photoz-sdss' AND source_id = ANY(:ids)"), {"ids": list(sources["source_id"])})}
        skipped = dict(conn.execute(sa.text(
            "SELECT k.source_id, k.reason FROM healcat.inference_skip k JOIN healcat.current_run c USING (run_id) "
            "WHERE c.model_name = 'photoz-sdss' AND k.source_id = ANY(:ids)"), {"ids": list(sources["source_id"])}).all())
    assert set(stored) | set(skipped) == set(sources["source_id"]) and stored and skipped
    for row in found:
        sid = int(row["source_id"])
        if sid in skipped:  # no value, the run's own reason
            assert row["reason"] == skipped[sid] and np.ma.is_masked(row["value"]) and row["pdf"].mask.all()
            continue
        assert np.ma.is_masked(row["reason"]) and (row["value"], row["uncertainty"]) == (stored[sid].value,
                                                                                         stored[sid].uncertainty)
        pdf, cdf = _truncated(row)
        assert np.asarray(row["pdf"]) == pytest.approx(pdf(grid), rel=1e-6, abs=1e-9)
        assert (row["value_p16"], row["value_p84"]) == (stored[sid].value_p16, stored[sid].value_p84)  # the run's
        assert row["value_p16"] < row["value"] < row["value_p84"]
        for q, z in ((0.16, row["value_p16"]), (0.5, row["value"]), (0.84, row["value_p84"])):
            assert optimize.brentq(lambda x: cdf(x) - q, 0.0, 10.0) == pytest.approx(z, abs=1e-5)
    written = io.StringIO()
    found.write(written, format="ascii.ecsv")  # masked cells and the 2-D columns survive a round trip
    back = Table.read(written.getvalue(), format="ascii.ecsv")
    assert list(back["reason"].mask) == list(found["reason"].mask) and back["pdf_means"].shape == found["pdf_means"].shape


def test_the_classifier_gives_a_probability_per_class_and_the_label_is_the_most_probable(catalog):
    found = predictions(cone_search(160.9415, 0.7968, radius_arcsec=1800.0, release=SDSS_RELEASE), "object-class-sdss")
    classes = [name for name in found.colnames if name.startswith("p_")]
    assert classes == ["p_GALAXY", "p_QSO", "p_STAR"] and "pdf_weights" not in found.colnames
    probabilities = np.array([found[name] for name in classes]).T
    assert probabilities.sum(axis=1) == pytest.approx(1.0, abs=1e-5)
    assert list(found["label"]) == [classes[i][2:] for i in probabilities.argmax(axis=1)]


def test_ids_without_a_prediction_each_get_a_row_saying_why(engine, catalog):
    galaxy = source_id_of("0275-51910-0435")
    with engine.connect() as conn:
        star = conn.scalar(sa.text("SELECT s.source_id FROM healcat.source s JOIN healcat.release r USING (release_id) "
                                   "WHERE r.name = :r ORDER BY s.source_id LIMIT 1"), {"r": GAIA_RELEASE})
        missing = conn.scalar(sa.text("SELECT max(source_id) + 1000 FROM healcat.source"))
    asked = MaskedColumn([galaxy, star, 0, missing, galaxy], mask=[False, False, True, False, False])
    found = predictions(asked, version="1")
    assert list(found["source_id"].filled(-1)) == [galaxy, star, -1, missing, galaxy]
    assert list(found["reason"].filled("")) == [
        "", f"model photoz-sdss version 1 has not finished a run on release {GAIA_RELEASE}",
        "no source_id (a masked or missing value)", "no source with this source_id", ""]
    assert found["value"][0] == found["value"][4] and found["release"][0] == SDSS_RELEASE
    assert predictions(star)["reason"][0] == f"model photoz-sdss has no current run on release {GAIA_RELEASE}"
    with engine.connect() as conn:  # a Gaia source_id from a table, an integer: its digits are the object id
        gaia_id = conn.scalar(sa.text("SELECT object_id FROM healcat.source WHERE source_id = :s"), {"s": star})
    assert gaia_id.isdigit() and source_id_of(int(gaia_id)) == source_id_of(np.int64(gaia_id)) == star
    with pytest.raises(QueryError, match="an object id is text .or an integer., not float"):
        source_id_of(float(gaia_id))
    assert len(predictions([])) == 0
    for model in ("photoz-sdss", "object-class-sdss"):  # the same columns whatever rows an answer holds
        full = predictions([galaxy], model).colnames
        assert predictions([star], model).colnames == predictions([], model).colnames == full
    assert {"pdf_weights", "p_QSO"} <= {*predictions([galaxy]).colnames, *predictions([galaxy], "object-class-sdss").colnames}
    star_row = predictions([star])
    assert star_row["pdf_weights"].shape == (1, 5) and star_row["pdf_weights"].mask.all()
    masked_row = Table({"source_id": asked})[2]  # a cross-match's unmatched row
    assert predictions(masked_row)["reason"][0] == "no source_id (a masked or missing value)"


def test_the_statement_timeout_is_a_query_error_saying_so(database_url, catalog):
    """The read-only role's statement_timeout cancelled predictions() with a bare OperationalError."""
    slow = sa.create_engine(database_url, connect_args={"options": "-c statement_timeout=300"}, poolclass=sa.pool.NullPool)
    ids = list(range(1, 20_000))  # the SDSS sample's ~5,000 galaxies among them: seconds of intervals
    with pytest.raises(QueryError, match="^predictions: cancelled by the server's statement_timeout"):
        predictions(ids, engine=slow)
    slow.dispose()


def test_a_statement_cancelled_by_another_session_is_a_query_error_saying_so(engine):
    """The watchdog's pg_cancel_backend reached the client as PostgreSQL's 'user request': the message
    blamed the statement_timeout, which the session may not even have."""
    from catalog.errors import query_error

    with engine.connect() as conn, pytest.raises(sa.exc.OperationalError, match="user request") as raised:
        conn.execute(sa.text("SELECT pg_cancel_backend(pg_backend_pid()), pg_sleep(5)"))
    error = query_error(raised.value, "cone")
    assert str(error).startswith("cone: cancelled by another session (healcat's watchdog cancels a read-only "
                                 "statement that runs past the role's limit")
    assert "statement_timeout" not in str(error)


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    ([[1.5]], {}, "source_ids must be integers"),
    (["7907"], {}, "source_ids must be integers"),
    ([[[1, 2]]], {}, "source_ids must be integers"),
    ([Table({"id": [1]})], {}, "needs a source_id column; it has id"),
    ([1], {"model": "photo-z"}, "no model named 'photo-z' (version current) (did you mean photoz-sdss?)"),
    ([1], {"model": "photoz"}, "did you mean photoz-sdss, the model of task photoz?"),
    ([1], {"version": "99"}, "model photoz-sdss has no version 99 (versions: 1)"),
    ([1], {"pdf_at": [0.1, np.nan]}, "pdf_at must be one or more finite numbers"),
    ([1], {"pdf_at": []}, "pdf_at must be one or more finite numbers"),
    ([1], {"pdf_at": ["z"]}, "pdf_at must be numbers"),
    ([1], {"pdf_at": [0.1] * u.deg}, "pdf_at must be in the model's unit (dimensionless), got deg"),
    ([1], {"version": 1}, "version must be text (a model's name, a version such as '1'), got 1"),
    ([[2**64]], {}, "source_ids must fit a bigint, got 18446744073709551616"),
    ([np.array([2**63], dtype=np.uint64)], {}, "source_ids must fit a bigint, got 9223372036854775808"),
])
def test_bad_arguments_are_errors_naming_them(catalog, args, kwargs, message):
    with pytest.raises(QueryError, match="^predictions: ") as raised:
        predictions(*args, **kwargs)
    assert message in str(raised.value)


def test_a_light_curve_is_the_files_points_in_its_units(per_object):
    source_id = source_id_of("135_9613")
    curve = light_curve(source_id)
    file = eros_curves("train")["135_9613"]
    for band, suffix in (("eros_b", "b"), ("eros_r", "r")):
        points = curve[curve["band"] == band]
        assert list(points["time_mjd"]) == pytest.approx([t + 49999.5 for t in file[f"time_points_{suffix}"]], abs=1e-9)
        assert list(points["mag"]) == list(np.float32(file[f"light_points_{suffix}"]))
        assert list(points["mag_err"]) == list(np.float32(file[f"error_points_{suffix}"]))
    assert len(curve) == len(file["time_points_b"]) + len(file["time_points_r"])
    assert (curve["time_mjd"].unit, curve["mag"].unit, curve["flux_ujy"].unit) == (u.d, u.mag, u.uJy)
    assert set(curve["mag_system"]) == {"Vega"} and curve["flux_ujy"].mask.all()  # EROS-2 gives magnitudes only
    assert set(curve["release"]) == {"eros2/lmc-ramp-variable-stars"} and curve.meta["source_id"] == source_id
    assert len(light_curve(source_id_of("0275-51910-0435"))) == 0  # an SDSS galaxy: no curve, the columns kept
    assert light_curve(source_id, release="eros2/lmc-ramp-variable-stars")["mag"].tolist() == curve["mag"].tolist()


def test_the_three_epochs_of_a_quasar_are_its_files_by_mjd(engine, per_object):
    found = spectra(source_id_of("1325-52762-0133"))
    assert [t.meta["mjd"] for t in found] == [52762.0, 56660.0, 57050.0]
    for table in found:
        with fits.open(PYQSOFIT / "RM017" / f"{table.meta['spectrum_name']}.fits") as hdul:
            coadd = hdul[1].data
            assert np.asarray(table["wavelength"]) == pytest.approx(10.0 ** coadd["loglam"].astype(np.float64), rel=1e-6)
            assert list(table["flux"]) == list(coadd["flux"].astype(np.float32))
            assert list(table["mask"]) == [int(m) for m in coadd["and_mask"]]
        assert table["wavelength"].unit == u.AA and table["flux"].unit == 1e-17 * u.erg / u.s / u.cm**2 / u.AA
        assert table["ivar"].unit == table["flux"].unit ** -2 and table.meta["vacuum"] is True
    with engine.connect() as conn:
        legac_source = conn.scalar(sa.text("SELECT source_id FROM healcat.spectrum WHERE spectrum_name = 'M19_56670'"))
    (legac,) = spectra(legac_source)
    with fits.open(LEGAC) as hdul:
        flux = hdul[1].data["FLUX"][0]
    assert legac.meta["vacuum"] is False and legac["flux"].unit == 1e-19 * u.erg / u.s / u.cm**2 / u.AA  # air, as its UCD
    assert np.array_equal(np.isnan(np.asarray(legac["flux"])), np.isnan(flux))  # no-data pixels stay NaN, ivar 0
    assert spectra(source_id_of("0275-51910-0435")) == []


@pytest.mark.parametrize("fn", [light_curve, spectra])
def test_a_missing_source_or_release_is_an_error_naming_it(per_object, fn):
    what = fn.__name__
    with pytest.raises(QueryError, match=f"^{what}: no source with source_id 987654321987$"):
        fn(987654321987)
    with pytest.raises(QueryError, match=f"^{what}: no release named 'no/such'$"):
        fn(source_id_of("135_9613"), release="no/such")
    with pytest.raises(QueryError, match=f"^{what}: source_id must be an integer"):
        fn("135_9613")
    with pytest.raises(QueryError, match=f"^{what}: release must be a release's name \\(text\\), got 5$"):
        fn(source_id_of("135_9613"), release=5)


def test_a_votable_of_pdfs_says_where_they_were_evaluated(catalog, capsys):
    """The pdf column's values are meaningless without the grid: ECSV kept meta['pdf_at'], but the
    VOTable left it out (only meta of one value became INFOs) while its description pointed at it."""
    from astropy.io.votable import parse

    assert main(["predictions", "--object-id", "0275-51910-0435", "--pdf-at", "0.1", "0.2", "--format", "votable"]) == 0
    vot = parse(io.BytesIO(capsys.readouterr().out.encode()))
    infos = {info.name: info.value for info in vot.resources[0].infos}
    assert [float(v) for v in infos["pdf_at"].split()] == [0.1, 0.2]
    assert vot.get_first_table().array["pdf"].shape[1] == 2


def test_the_command_line_gives_the_same_rows_one_value_a_csv_cell(catalog, capsys):
    galaxy, star = source_id_of("0275-51910-0435"), source_id_of("2389-54213-0339")
    assert main(["predictions", str(galaxy), "--object-id", "2389-54213-0339", "--pdf-at", "0.1", "0.2",
                 "--format", "csv"]) == 0
    back = Table.read(capsys.readouterr().out, format="ascii.csv")
    expected = predictions([galaxy, star], pdf_at=[0.1, 0.2])
    assert list(back["source_id"]) == [galaxy, star] and "pdf_means" not in back.colnames
    assert [back["pdf_0"][0], back["pdf_1"][0], back["pdf_means_4"][0]] == pytest.approx(
        [expected["pdf"][0, 0], expected["pdf"][0, 1], expected["pdf_means"][0, 4]], rel=1e-12)
    assert back["reason"][1] == expected["reason"][1] == "not a galaxy: spectrum says STAR"
    with pytest.raises(SystemExit):
        main(["predictions", "--model", "object-class-sdss"])
    assert "give one or more SOURCE_IDs and/or --object-id" in capsys.readouterr().err
