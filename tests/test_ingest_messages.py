"""What ingestion tells the operator about bad input: a spectrum file's warnings filter that made
every warning an error (and a psycopg ResourceWarning a traceback), an overflow warning of a sentinel
magnitude, quarantine examples that hid the object's id, a mapping difference cut where it changed,
"(and 0 more)", and a duplicate id's reason that did not name the row it repeats (from a newcomer's
review)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from ingest import readers
from ingest.load import ingest_release, mapping_differences
from ingest.mapping import AB_ZERO_POINT_UJY, apply, data_dir, load_mapping
from ingest.perobject_build import spectrum_row
from ingest.readers import sdss_spectrum
from ingest.readers.series import Record, read_series
from ingest.report import ReasonGroup, ReleaseReport, format_report, id_columns, release_report
from ingest.validate import SeenIds, validate

PYQSOFIT = data_dir() / "pyqsofit_sdss_spectra"
ROOT = Path(__file__).resolve().parents[1]


def _truncated(tmp_path: Path) -> Path:
    data = (PYQSOFIT / "spec-0266-51602-0107.fits").read_bytes()
    path = tmp_path / "spec-truncated.fits"
    path.write_bytes(data[: len(data) // 2])
    return path


# -- finding 1: only astropy's warnings make a spectrum file unreadable ------------------------------------

def test_a_warning_not_astropys_while_a_spectrum_is_read_does_not_make_it_unreadable(tmp_path):
    """A ResourceWarning raised meanwhile (the garbage collector finalising an unclosed connection) was
    turned into an error, and the good file quarantined as unreadable."""
    def parse(path, hdul):
        warnings.warn("something else's unclosed resource", ResourceWarning)
        return Record(path, 0, None, meta={"ok": True})

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        (record,) = sdss_spectrum._read(PYQSOFIT / "spec-0266-51602-0013.fits", parse)
    assert record.problems == [] and record.meta == {"ok": True}


def test_a_truncated_spectrum_file_is_still_unreadable_by_astropys_warning(tmp_path):
    (record,) = read_series([_truncated(tmp_path)], "sdss_spec", {})
    assert record.row == 0 and len(record.problems) == 1
    assert record.problems[0][1].startswith("unreadable file: ") and "truncated" in record.problems[0][1]


def test_reading_a_truncated_spectrum_leaves_no_error_filter_for_warnings_at_exit(tmp_path):
    """The review's traceback: a psycopg connection finalised at interpreter exit warns ResourceWarning;
    Python's C warnings code then still used the filter list of the last warning it looked up, the
    truncated file's inside ``simplefilter("error")``, so the warning became an 'Exception ignored'."""
    script = textwrap.dedent(f"""
        import warnings
        from pathlib import Path
        from ingest.readers.series import read_series

        class Unclosed:  # as psycopg's Connection.__del__ does
            def __del__(self):
                warnings.warn("unclosed at exit", ResourceWarning)

        keep = Unclosed()
        (record,) = read_series([Path({str(_truncated(tmp_path))!r})], "sdss_spec", {{}})
        assert record.problems, record
        print("read")
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "read", done.stderr
    assert "Exception ignored" not in done.stderr and "ResourceWarning" not in done.stderr, done.stderr


# -- finding 5: a sentinel magnitude overflows 10**(-0.4 mag) silently -------------------------------------

def _csv_mapping(tmp_path: Path, rows: str) -> Path:
    path = tmp_path / "cat.csv"
    path.write_text("id,ra,dec,u,u_err,name\n" + rows)
    mapping = tmp_path / "cat.toml"
    mapping.write_text(f'[survey]\nname = "scratch"\n[release]\nmax_rejected_fraction = 1.0\nversion = "review-fixes"\nfile = "{path}"\n'
                       f'format = "csv"\n[source]\nobject_id = "{{id}}"\nra = "ra"\ndec = "dec"\n'
                       'attrs = ["name"]\n'
                       '[photometry]\nsystem = "AB"\nbands = { sdss_u = { mag = "u", mag_err = "u_err" } }\n')
    return mapping


def _chunks(mapping_path: Path):
    mapping = load_mapping(mapping_path)
    for first, table in readers.read(mapping.input_path(), mapping.format, mapping.read_options):
        yield mapping, apply(mapping, table, first)


def test_a_sentinel_magnitude_gives_no_overflow_warning_and_is_quarantined(tmp_path):
    mapping = _csv_mapping(tmp_path, "1,10,5,-9999,0.1,a\n2,11,5,18.5,0.1,b\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # numpy's overflow warning fails the test
        ((m, chunk),) = list(_chunks(mapping))
    phot = chunk.phot["sdss_u"]
    assert np.isinf(phot.flux_ujy[0]) and phot.flux_ujy[1] == pytest.approx(AB_ZERO_POINT_UJY * 10 ** (-0.4 * 18.5))
    good, rejected = validate(m, chunk, SeenIds())
    assert good.tolist() == [False, True]
    assert [(r.row_number, r.column, r.reason) for r in rejected] == [
        (1, "u", "u -9999.0 mag is outside [-30.0, 50.0] (an unlisted sentinel?)")]


# -- finding 11: a duplicate id names the row it repeats; no "(and 0 more)" ----------------------------------

def test_a_duplicate_object_id_names_the_row_it_repeats_within_and_across_chunks(tmp_path):
    mapping = _csv_mapping(tmp_path, "1,10,5,18,0.1,a\n2,11,5,18,0.1,b\n1,12,5,18,0.1,c\n3,13,5,18,0.1,d\n")
    ((m, chunk),) = list(_chunks(mapping))
    seen = SeenIds()
    _, rejected = validate(m, chunk, seen)
    assert [(r.row_number, r.column, r.reason) for r in rejected] == [
        (3, "id", "duplicate object_id '1' within the release (repeats the object id of row 1)")]
    # a later chunk (rows 11..): its ids are found among the earlier chunks' by their hash, with their row
    later = apply(m, chunk.raw[[3, 1, 0]], first_row=11)
    _, rejected = validate(m, later, seen)
    assert [(r.row_number, r.reason) for r in rejected] == [
        (11, "duplicate object_id '3' within the release (repeats the object id of row 4)"),
        (12, "duplicate object_id '2' within the release (repeats the object id of row 2)"),
        (13, "duplicate object_id '1' within the release (repeats the object id of row 1)")]
    assert seen.earlier_rows(["1", "4", "4"]) == {0: 1, 2: None}  # row 1 had '1'; a '4' of rows not given


def test_seen_ids_keeps_the_earliest_row_through_merges():
    seen = SeenIds()
    for start in range(0, 40, 4):  # levels merge as they grow
        assert seen.earlier_rows([f"id{i}" for i in range(start, start + 4)], range(start + 1, start + 5)) == {}
    assert seen.earlier_rows(["id7", "new", "id0", "new"], [100, 101, 102, 103]) == {0: 8, 2: 1, 3: 101}
    assert seen.earlier_rows(["id39", "id40"]) == {0: 40}  # rows not given now: the earlier row still known


def test_seen_ids_name_the_row_that_is_in_the_release_not_one_rejected_after_validation():
    """Row 5 passed validation, then was rejected (a cluster-age conflict) and is not in the release;
    row 9's X is then no duplicate, and row 12's repeats row 9, not row 5."""
    in_release: set[str] = set()
    seen = SeenIds(confirm=lambda ids: {i for i in ids if i in in_release})
    assert seen.earlier_rows(["A", "X"], [4, 5]) == {}
    in_release.add("A")  # row 5 (X) rejected after validation: only A reached the release
    for k in range(6):  # more chunks: the levels merge past X's
        assert seen.earlier_rows([f"b{k}", f"c{k}"], [20 + 2 * k, 21 + 2 * k]) == {}
    assert seen.earlier_rows(["X", "A"], [9, 10]) == {1: 4}
    in_release.add("X")
    assert seen.earlier_rows(["X"], [12]) == {0: 9}


@pytest.mark.parametrize("bad, tail", [([20], ""), ([20, 30], " (and 1 more)")])
def test_a_non_increasing_wavelength_says_how_many_more_only_if_there_are_more(bad, tail):
    spec = load_mapping("sdss_spectra_pyqsofit").spectrum
    (record,) = read_series([PYQSOFIT / "spec-0266-51602-0013.fits"], "sdss_spec", {})
    loglam = np.array(record.arrays["loglam"], dtype=np.float64)
    for k in bad:
        loglam[k] = loglam[k - 2]
    record.arrays["loglam"] = loglam
    rejected = []
    assert spectrum_row(spec, record, lambda *args: rejected.append(args), {}) is None
    ((_, row, column, reason, raw),) = rejected
    assert (row, column, raw["pixel"]) == (0, "loglam", 20)
    assert reason == "spec-0266-51602-0013: wavelength does not increase at pixel 20" + tail


# -- finding 4: a changed list says what it lost and gained ---------------------------------------------------

def test_mapping_differences_of_two_lists_name_what_was_removed_and_added():
    attrs = ["IAUID", "peakt", "A_V", "duration", "rise_time_days", "fade_time_days", "classification"]
    assert mapping_differences({"source": {"attrs": attrs}},
                               {"source": {"attrs": [a for a in attrs if a != "A_V"]}}) == ['source.attrs: removed "A_V"']
    assert mapping_differences({"a": ["x", "y"]}, {"a": ["x", "z", "w"]}) == ['a: removed "y", added "z", "w"']
    assert mapping_differences({"a": [1, 2]}, {"a": [2, 1]}) == ["a: the same items in another order ([1, 2] then, [2, 1] now)"]
    assert mapping_differences({"a": list(range(10))}, {"a": []}) == ["a: removed 0, 1, 2, 3, 4 and 5 more"]
    # the other cases as they were
    assert mapping_differences({"z": "redshift"}, {"z": "redshfit"}) == ["z: redshift then, redshfit now"]
    assert mapping_differences({"a": "x" * 80}, {"a": None}) == [f"a: {'x' * 57}... then, (none) now"]


# -- finding 3: a quarantine example shows the failing column, then the object's id --------------------------

def test_id_columns_of_a_mapping_are_its_template_fields_then_its_xids():
    assert id_columns({"source": {"object_id": "{plate:04d}-{mjd:05d}-{fiberid:04d}"}, "xid": {"sdss": "objid"}}) == [
        "plate", "mjd", "fiberid", "objid", "object"]
    assert id_columns({"source": {"object_id": "{ZTFID}"}}) == ["ZTFID", "object"]
    assert id_columns({}) == ["object"]


def test_a_report_example_puts_the_failing_column_then_the_id_before_the_rest():
    raw = {"b": 55.3, "RA": "10:23:02.40", "Dec": "+33:60:00", "A_V": 0.035, "fade": 16.6, "rise": 11.4,
           "type": "SN Ia", "IAUID": "SN2018ccy", "peakt": 1.0, "ZTFID": "ZTF18abcdefg"}
    group = ReasonGroup("Dec", "Dec '...' is not a valid sexagesimal angle", 1,
                        [{"row_number": 34, "reason": "Dec '+33:60:00' is not ...", "raw": raw}])
    text = format_report(ReleaseReport("x/v1", "published", {}, [group], ["ZTFID", "object"]))
    example = text.splitlines()[-1]
    assert "[Dec=+33:60:00, ZTFID=ZTF18abcdefg, b=55.3, RA=10:23:02.40, A_V=0.035, " in example
    assert example.endswith(", ...]")
    # a duplicate's column names every id field: each comes first
    group = ReasonGroup("plate,mjd", "duplicate ...", 1, [{"row_number": 3, "reason": "dup", "raw": {
        "z": 1, "mjd": 51602, "aaa": 2, "plate": 266}}])
    text = format_report(ReleaseReport("x/v1", "published", {}, [group], ["plate", "mjd", "object"]))
    assert text.splitlines()[-1].endswith("[plate=266, mjd=51602, z=1, aaa=2]")


@pytest.fixture
def review_release(engine):
    yield "scratch/review-fixes"
    ours = "(SELECT release_id FROM healcat.release WHERE name = 'scratch/review-fixes')"
    with engine.begin() as conn:
        conn.execute(sa.text(f"DELETE FROM healcat.source WHERE release_id IN {ours}"))
        conn.execute(sa.text(f"DELETE FROM healcat.release WHERE release_id IN {ours}"))


def test_a_release_report_shows_the_objects_id_in_each_example(engine, tmp_path, review_release):
    wide = "".join(f",c{k}" for k in range(10))
    path = tmp_path / "wide.csv"
    rows = ["1,10,5,18,0.1,a", "2,11,95,18,0.1,b", "1,12,5,18,0.1,c", "3,13,5,18,0.1,d"]
    path.write_text("zz_id,ra,dec,u,u_err,name" + wide + "\n" + "".join(r + ",1" * 10 + "\n" for r in rows))
    mapping = tmp_path / "wide.toml"
    mapping.write_text(f'[survey]\nname = "scratch"\n[release]\nmax_rejected_fraction = 1.0\nversion = "review-fixes"\nfile = "{path}"\n'
                       'format = "csv"\n[source]\nobject_id = "{zz_id}"\nra = "ra"\ndec = "dec"\n'
                       'attrs = ["name"' + "".join(f', "c{k}"' for k in range(10)) + ']\n'
                       '[photometry]\nsystem = "AB"\nbands = { sdss_u = { mag = "u", mag_err = "u_err" } }\n')
    result = ingest_release(mapping, engine)
    assert result.release == review_release and result.row_counts["quarantine"] == 2
    report = release_report(engine, review_release)
    assert report.id_columns == ["zz_id", "object"]
    lines = format_report(report).splitlines()
    dec = next(line for line in lines if "row 2:" in line)
    assert "[dec=95, zz_id=2, " in dec
    dup = next(line for line in lines if "row 3:" in line)
    assert "duplicate object_id '1' within the release (repeats the object id of row 1)  [zz_id=1, " in dup
