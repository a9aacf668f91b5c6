"""A light-curve file's row of another length than its header (a last row cut mid-row by an
interrupted copy) is quarantined as such, naming the file, the row (and line) and the first column
it lacks; the file's other points load. astropy padded the short row with missing cells, which were
reported as a band '' the mapping does not name."""

from __future__ import annotations

import csv
import gzip
import io
import tarfile

import numpy as np
import sqlalchemy as sa

from conftest import per_object_mapping
from ingest.load import ingest_release
from ingest.mapping import data_dir
from ingest.readers.lightcurve import read_tar_table
from test_lightcurves import EROS, ZTF, _quarantine, _ztf_copy

CURVE = "time,mag,magerr,band\n58000.1,19.0,0.1,g\n58000.2,19.1,0.1,g\n"


def _cut(text: str, keep: int) -> tuple[str, list[str]]:
    """The text with its last line cut after ``keep`` characters, and that line's fields as written."""
    lines = text.rstrip("\n").split("\n")
    return "\n".join(lines[:-1] + [lines[-1][:keep]]), lines[-1][:keep].split(",")


def test_a_light_curve_cut_mid_row_quarantines_that_row_as_truncated(engine, tmp_path, scratch_release):
    real = (ZTF / "light-curves" / "ZTF17aadlxmv.csv").read_text()
    n_rows = len(real.rstrip("\n").split("\n")) - 1
    last = real.rstrip("\n").split("\n")[-1]
    cut, fields = _cut(real, last.index(",", last.index(",") + 1) - 3)  # inside the magnitude
    assert len(fields) == 2
    result = ingest_release(_ztf_copy(tmp_path, "truncated", {"ZTF17aadlxmv": cut}), engine)
    q = _quarantine(engine, result.release_id)
    assert [(r.file.rsplit("/", 1)[-1], r.row_number, r.column_name) for r in q] == [
        ("ZTF17aadlxmv.csv", n_rows, "magerr")]
    assert q[0].reason.startswith(f"data row {n_rows} (line {n_rows + 1}) is truncated: 2 of 4 fields, too few "
                                  "columns (magerr, band missing")
    assert "not one the mapping names" not in q[0].reason
    with engine.connect() as conn:
        raw = conn.scalar(sa.text("SELECT raw FROM healcat.quarantine WHERE release_id = :r"), {"r": result.release_id})
        points = conn.scalar(sa.text("SELECT sum(cardinality(time_mjd)) FROM healcat.light_curve WHERE release_id = :r"),
                             {"r": result.release_id})
    assert raw == {"object": "ZTF17aadlxmv", "fields": fields}  # kept as the file has it
    assert points == n_rows - 1 and result.row_counts["points"] == n_rows - 1  # the other rows load


def test_a_row_of_more_fields_than_the_header_is_quarantined_not_the_whole_file(engine, tmp_path, scratch_release):
    curve = "time,mag,magerr,band\n58000.1,19.0,0.1,g\n58000.2,19.1,0.1,g,x\n58000.3,19.2,0.1,g\n"
    result = ingest_release(_ztf_copy(tmp_path, "long-row", {"ZTFA": curve}), engine)
    q = _quarantine(engine, result.release_id)
    assert [(r.row_number, r.column_name) for r in q] == [(2, None)]
    assert q[0].reason.startswith("data row 2 (line 3) has 5 fields, more than the 4 columns (time, mag, magerr, band)")
    assert result.row_counts["points"] == 2


def test_a_json_arrays_row_cut_short_quarantines_its_object_as_truncated(engine, tmp_path, scratch_release):
    """The EROS-2 layout: one row per object; the row cut after its first cells."""
    (tmp_path / "test.csv").write_text("".join((EROS / "test.csv").read_text().splitlines(keepends=True)[:4]))
    with gzip.open(EROS / "test_varlength_features.csv.gz", "rt") as fh:
        reader = csv.reader(fh)
        header, rows = next(reader), [next(reader) for _ in range(3)]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *rows])
    cut = out.getvalue().rstrip("\n")
    cut = cut[: cut.rindex("\n") + 1 + len(",".join(rows[2][:2])) + 1 + 5]  # 5 characters into the third cell
    with gzip.open(tmp_path / "test_varlength_features.csv.gz", "wt") as fh:
        fh.write(cut)
    mapping = per_object_mapping(tmp_path, "eros2_lmc_ramp", "json-cut", {
        "catalog": [tmp_path / "test.csv"], "series": [tmp_path / "test_varlength_features.csv.gz"]})
    result = ingest_release(mapping, engine)
    q = _quarantine(engine, result.release_id)
    assert [(r.row_number, r.column_name) for r in q if r.row_number] == [(3, header[3])]
    assert "data row 3 (line 4) is truncated: 3 of" in q[-1].reason
    assert result.row_counts["light_curve"] == 4  # the other two objects' b and r curves


def test_a_tar_member_cut_mid_row_keeps_its_other_points(tmp_path):
    """Sesar et al.'s whitespace tables: loadtxt refused the whole member ('the number of columns changed')."""
    with tarfile.open(data_dir() / "astroml_s82_rrlyrae_linear/S82_RRLyr/table1.tar.gz") as archive:
        info = next(m for m in archive.getmembers() if m.isfile() and m.name.endswith(".dat"))
        text = archive.extractfile(info).read().decode()
    lines = text.rstrip("\n").split("\n")
    cut = "\n".join(lines[:-1] + [" ".join(lines[-1].split()[:5])]) + "\n"
    data = cut.encode()
    member = tarfile.TarInfo(info.name)
    member.size = len(data)
    with tarfile.open(tmp_path / "cut.tar.gz", "w:gz") as archive:
        archive.addfile(member, io.BytesIO(data))
    columns = ["ra", "dec", *(f"{k}_{b}" for b in "ugriz" for k in ("MJD", "mag", "err"))]
    (record,) = read_tar_table([tmp_path / "cut.tar.gz"], {"members": "*.dat", "columns": columns})
    assert not record.problems and len(record.arrays["ra"]) == len(lines) - 1
    assert np.array_equal(record.point_rows, np.arange(1, len(lines)))
    ((row, column, reason, raw),) = record.bad_rows
    assert (row, column) == (len(lines), "MJD_g") and "is truncated: 5 of 17 fields" in reason
    assert raw["fields"] == lines[-1].split()[:5]


def test_a_catalogue_row_cut_short_is_quarantined_and_its_curve_says_why(engine, tmp_path, scratch_release):
    """astropy padded the [catalog] row: one cut after its position loaded with its type, redshift and
    the rest missing, without a word."""
    mapping = _ztf_copy(tmp_path, "catalog-cut", {"ZTFA": CURVE, "ZTFB": CURVE})
    text = (tmp_path / "bts.csv").read_text().rstrip("\n")
    last = text.split("\n")[-1]
    (tmp_path / "bts.csv").write_text(text[: len(text) - len(last)] + ",".join(last.split(",")[:4])[:-2])
    result = ingest_release(mapping, engine)
    q = _quarantine(engine, result.release_id)
    assert [(r.file.rsplit("/", 1)[-1], r.row_number, r.column_name) for r in q] == [
        ("ZTFB.csv", 0, None), ("bts.csv", 2, "peakt")]
    assert q[1].reason.startswith("data row 2 (line 3) is truncated: 4 of 15 fields, too few columns (peakt, ")
    assert q[0].reason == "series of 'ZTFB': its catalogue row is quarantined"
    assert result.row_counts["source"] == 1 and result.row_counts["light_curve"] == 1


def test_a_duplicate_id_across_catalogue_files_names_the_file_and_row_it_repeats(engine, tmp_path, scratch_release):
    """The reason named the row's place in the files' rows put together ('row 3'), not its file's row."""
    mapping = _ztf_copy(tmp_path, "catalog-dup", {"ZTFA": CURVE, "ZTFB": CURVE})
    header, *rows = (tmp_path / "bts.csv").read_text().splitlines()
    (tmp_path / "bts2.csv").write_text("\n".join([header, rows[1]]) + "\n")  # ZTFB again, row 1 of another file
    mapping = per_object_mapping(tmp_path, "ztf_bts_snia", "catalog-dup", {
        "catalog": [tmp_path / "bts.csv", tmp_path / "bts2.csv"], "series": [tmp_path / "curves/*.csv"]})
    result = ingest_release(mapping, engine)
    (dup,) = [r for r in _quarantine(engine, result.release_id) if "duplicate" in r.reason]
    assert (dup.file.rsplit("/", 1)[-1], dup.row_number) == ("bts2.csv", 1)
    assert dup.reason.endswith(f"(repeats the object id of {tmp_path / 'bts.csv'} row 2)"), dup.reason
