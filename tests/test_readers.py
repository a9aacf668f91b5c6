"""Readers: every format comes back in bounded chunks that add up to the file, numbered by file row;
broken files fail with an IngestError naming the file and what is wrong. Cell conversions
(exact ids, flux units) are checked against independent computations."""

from __future__ import annotations

import gzip
import re

import astropy.units as u
import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from astropy.table import MaskedColumn, Table, vstack

from catalog.errors import IngestError
from ingest import cells, readers
from ingest.load import ingest_release
from ingest.mapping import Band, load_mapping
from ingest.readers import ReadOptions
from tests.conftest import scratch_mapping

N = 23
SMALL = ReadOptions(chunk_rows=7)


def _sample() -> Table:
    rng = np.random.default_rng(3)
    return Table({"id": np.arange(5290646440127895936, 5290646440127895936 + N, dtype=np.int64),
                  "ra": rng.uniform(0, 360, N), "mag": rng.normal(20, 1, N).astype(np.float32),
                  "name": [f"obj{i}" for i in range(N)]})


def _read_all(path, fmt, options=SMALL):
    chunks = list(readers.read(path, fmt, options))
    return [first for first, _ in chunks], [len(t) for _, t in chunks], vstack([t for _, t in chunks])


def _write(tmp_path, fmt: str):
    t = _sample()
    if fmt == "csv":
        t.write(tmp_path / "t.csv", format="ascii.csv")
        return tmp_path / "t.csv"
    if fmt == "ecsv":
        t.write(tmp_path / "t.ecsv", format="ascii.ecsv")
        return tmp_path / "t.ecsv"
    if fmt == "fits":
        t.write(tmp_path / "t.fits")
        return tmp_path / "t.fits"
    if fmt == "votable":
        t.write(tmp_path / "t.xml", format="votable")
        return tmp_path / "t.xml"
    if fmt == "parquet":
        pq.write_table(pa.table({c: np.asarray(t[c]) for c in t.colnames}), tmp_path / "t.parquet", row_group_size=5)
        return tmp_path / "t.parquet"
    if fmt == "hdf5":
        with h5py.File(tmp_path / "t.h5", "w") as fh:
            fh["data"] = np.array(list(zip(t["id"], t["ra"], t["mag"])),
                                  dtype=[("id", "i8"), ("ra", "f8"), ("mag", "f4")])
        return tmp_path / "t.h5"
    path = tmp_path / "t.dat.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("# a comment\n# id ra mag name\n")
        for row in t:
            fh.write(f"  {row['id']}  {float(row['ra'])!r}  {row['mag']}  {row['name']}\n")
    return path


@pytest.mark.parametrize("fmt", ["csv", "ecsv", "fits", "votable", "parquet", "hdf5", "whitespace"])
def test_every_format_reads_in_numbered_chunks_that_add_up_to_the_file(tmp_path, fmt):
    path = _write(tmp_path, fmt)
    options = ReadOptions(chunk_rows=7, header_comment=-1, text_columns=frozenset({"id"}) if fmt == "csv" else frozenset())
    firsts, sizes, table = _read_all(path, fmt, options)
    assert firsts == [1, 8, 15, 22] and sizes == [7, 7, 7, 2]
    expected = _sample()
    assert [str(v) for v in table["id"]] == [str(v) for v in expected["id"]]  # every digit of a 19-digit id
    np.testing.assert_allclose(np.asarray(table["ra"], dtype=float), expected["ra"], rtol=1e-15)
    np.testing.assert_allclose(np.asarray(table["mag"], dtype=float), expected["mag"], rtol=1e-6)


@pytest.mark.parametrize("fmt", ["csv", "fits", "parquet", "hdf5", "whitespace", "ecsv"])
def test_row_counts_for_progress_agree_with_the_rows_read(tmp_path, fmt):
    path = _write(tmp_path, fmt)
    count = readers.count_rows(path, fmt, ReadOptions(header_comment=-1))
    if fmt in ("whitespace", "ecsv"):  # gzipped text, and a format parsed whole: no cheap count
        assert count is None
        return
    assert count.exact and count.rows == N == len(_read_all(path, fmt)[2])


@pytest.mark.parametrize("fmt", ["whitespace", "csv"])
def test_a_gzipped_table_not_named_gz_is_decompressed(tmp_path, fmt):
    """gzip is told by the file's first bytes, not its name (a download saved as t.dat)."""
    written = _write(tmp_path, fmt)
    path = tmp_path / "t.dat"
    path.write_bytes(gzip.compress(written.read_bytes()) if fmt == "csv" else written.read_bytes())
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    options = ReadOptions(chunk_rows=7, header_comment=-1, text_columns=frozenset({"id"}))
    firsts, sizes, table = _read_all(path, fmt, options)
    assert firsts == [1, 8, 15, 22] and sizes == [7, 7, 7, 2]
    assert list(table["name"]) == list(_sample()["name"])
    assert readers.count_rows(path, fmt, options) is None, "no estimate from compressed bytes"


def test_a_large_csv_gets_a_row_estimate_from_its_bytes(tmp_path):
    rng = np.random.default_rng(5)
    n = 60_000  # ~2 MB: larger than the sample, so estimated
    path = tmp_path / "big.csv"
    path.write_text("id,ra,mag\n" + "".join(f"{i},{ra!r},{mag:.3f}\n" for i, (ra, mag) in
                                            enumerate(zip(rng.uniform(0, 360, n), rng.normal(20, 1, n)))))
    count = readers.count_rows(path, "csv")
    assert not count.exact and abs(count.rows - n) < 0.02 * n
    assert readers.count_rows(tmp_path / "missing.csv", "csv") is None, "no count, the reader will say why"


def test_pandas_fixed_frame_in_hdf5_is_read_by_blocks(tmp_path):
    values = np.arange(30.0).reshape(10, 3)
    with h5py.File(tmp_path / "p.h5", "w") as fh:
        fh["data/block0_items"] = np.array([b"mag", b"color", b"specz"])
        fh["data/block0_values"] = values
    firsts, sizes, table = _read_all(tmp_path / "p.h5", "hdf5", ReadOptions(chunk_rows=4))
    assert firsts == [1, 5, 9] and table.colnames == ["mag", "color", "specz"]
    np.testing.assert_array_equal(table["specz"], values[:, 2])


def test_a_stray_word_in_a_later_csv_chunk_leaves_that_column_text_in_that_chunk_only(tmp_path):
    lines = ["id,mag"] + [f"{i},{20 + i / 10}" for i in range(10)]
    lines[7] = "6,bright"  # data row 7: the second chunk
    (tmp_path / "w.csv").write_text("\n".join(lines) + "\n")
    chunks = list(readers.read(tmp_path / "w.csv", "csv", ReadOptions(chunk_rows=4)))
    assert [t["mag"].dtype.kind for _, t in chunks] == ["f", "U", "f"]
    assert chunks[1][1]["mag"][2] == "bright" and chunks[1][0] == 5


@pytest.mark.parametrize("fmt", ["ecsv", "votable"])
def test_a_cell_that_is_no_number_leaves_its_column_text_for_the_mapping_to_quarantine_its_row(tmp_path, fmt, caplog):
    """A VOTable's '17.x' in a float column was read as missing without a word (astropy's W30 warning,
    ignored); an ECSV's failed the whole file naming no row. Twelve of them: astropy warns of the first ten."""
    t = _sample()
    t["mag"][2:14] = 42.125  # data rows 3 to 14, made '17.x'
    t["mag"][15] = 43.125  # made 'NULL', which the mapping lists as missing
    t["mag"] = MaskedColumn(t["mag"], mask=np.arange(N) == 16)  # an empty cell
    path = tmp_path / ("t.xml" if fmt == "votable" else "t.ecsv")
    t.write(path, format="votable" if fmt == "votable" else "ascii.ecsv")
    path.write_text(re.sub(r"\b43\.125\b", "NULL", re.sub(r"\b42\.125\b", "17.x", path.read_text())))
    problems, values = {}, []
    for first, chunk in readers.read(path, fmt, ReadOptions(chunk_rows=7, null_values=("NULL",))):
        found = {}
        values.append(cells.floats(chunk["mag"], found, "mag"))
        problems.update({first + i: why for i, why in found.items()})
    assert problems == {row: ("mag", "mag '17.x' is not a number") for row in range(3, 15)}
    values = np.concatenate(values)
    missing = np.isin(np.arange(N), np.r_[2:14, 15, 16])
    assert np.isnan(values[missing]).all()
    np.testing.assert_array_equal(values[~missing].astype(np.float32), _sample()["mag"][~missing])  # the file's floats
    assert "read tolerantly" not in caplog.text  # each is its row's problem now, not a fault of the file


def test_an_ecsv_s_masked_cells_are_missing_and_its_columns_keep_their_types(tmp_path):
    """An astropy-written ECSV with a masked number was read as if its empty cell were no number: the column
    became text, so its 'nan' cells quarantined their rows, where a file without a masked cell read them as
    missing (as FITS, VOTable, Parquet and HDF5 do), and its masked strings came back as ''."""
    t = _sample()
    t["mag"] = MaskedColumn(t["mag"], mask=np.arange(N) == 4)
    t["mag"][6] = np.nan
    t["name"] = MaskedColumn(t["name"], mask=np.arange(N) == 8)
    t.write(tmp_path / "t.ecsv", format="ascii.ecsv")
    table = vstack([chunk for _, chunk in readers.read(tmp_path / "t.ecsv", "ecsv", SMALL)])
    assert table["mag"].dtype.kind == "f" and table["name"].dtype.kind == "U"
    problems = {}
    values = cells.floats(table["mag"], problems, "mag")
    assert problems == {} and np.flatnonzero(np.isnan(values)).tolist() == [4, 6]
    assert table["name"][8] is np.ma.masked and cells.texts(table["name"])[8] is None
    np.testing.assert_array_equal(np.delete(values, [4, 6]).astype(np.float32), np.delete(_sample()["mag"], [4, 6]))
    # a cell that is no number makes the column text (its row quarantined): its 'nan' is missing still
    path = tmp_path / "t.ecsv"
    path.write_text(re.sub(r"^(\S+ \S+ )\S+( obj10)$", r"\g<1>17.x\g<2>", path.read_text(), flags=re.M))
    table = vstack([chunk for _, chunk in readers.read(path, "ecsv", SMALL)])
    problems = {}
    values = cells.floats(table["mag"], problems, "mag")
    assert table["mag"].dtype.kind == "U" and problems == {10: ("mag", "mag '17.x' is not a number")}
    assert np.flatnonzero(np.isnan(values)).tolist() == [4, 6, 10]


def test_a_cell_that_is_no_integer_leaves_its_votable_column_text_and_the_others_numbers(tmp_path, caplog):
    """A VOTable's '2x' in an integer column failed the whole file (astropy raises on it even with
    verify="ignore"). Now each such column is text in its place, as a float column with '17.x' is, its
    unit, description and UCD kept; the file's other columns are the numbers they were."""
    t = _sample()
    t["plate"] = np.arange(266, 266 + N, dtype=np.int16)  # short
    t["flag"] = np.arange(N, dtype=np.uint8)  # unsignedByte, all good
    t["n"] = MaskedColumn(np.arange(1000, 1000 + N, dtype=np.int32), mask=np.arange(N) == 4)  # int, an empty cell
    t["plate"].unit, t["plate"].description, t["plate"].meta["ucd"] = "ct", "spectroscopic plate", "meta.id.part"
    t["id"][9] = 4241  # data row 10, made '4x2'
    t["plate"][1] = 4242  # data row 2, made '26x'
    t["n"][19] = 4243  # data row 20, made 'NULL', which the mapping lists as missing
    t["mag"][6] = 42.125  # data row 7, made '17.x'
    path = tmp_path / "t.xml"
    t.write(path, format="votable")
    text = path.read_text()
    for written, made in [("4241", "4x2"), ("4242", "26x"), ("4243", "NULL"), ("42.125", "17.x")]:
        text, n = re.subn(rf"<TD>{written}</TD>", f"<TD>{made}</TD>", text)
        assert n == 1
    path.write_text(text)
    firsts, sizes, table = _read_all(path, "votable", ReadOptions(chunk_rows=7, null_values=("NULL",)))
    assert firsts == [1, 8, 15, 22] and sizes == [7, 7, 7, 2]
    assert table.colnames == ["id", "ra", "mag", "name", "plate", "flag", "n"]
    assert [table[c].dtype.kind for c in table.colnames] == ["U", "f", "U", "U", "U", "u", "U"]
    expected = _sample()
    assert list(table["id"]) == [str(v) if i != 9 else "4x2" for i, v in enumerate(expected["id"])]  # every digit
    assert list(table["plate"]) == [str(266 + i) if i != 1 else "26x" for i in range(N)]
    assert table["mag"][6] == "17.x" and list(table["flag"]) == list(range(N))
    np.testing.assert_allclose(np.asarray(table["ra"]), expected["ra"], rtol=1e-15)
    assert list(np.ma.getmaskarray(table["n"]).nonzero()[0]) == [4, 19]  # the empty cell and 'NULL': missing
    assert list(table["n"][:4]) == ["1000", "1001", "1002", "1003"]
    plate = table["plate"]
    assert (plate.unit, plate.description, plate.meta["ucd"]) == (u.ct, "spectroscopic plate", "meta.id.part")
    problems = {}
    values = cells.floats(table["plate"], problems, "plate")
    assert values[0] == 266 and np.isnan(values[1]) and problems == {1: ("plate", "plate '26x' is not a number")}
    assert "read tolerantly" not in caplog.text  # each is its row's problem now, not a fault of the file


def test_a_votable_integer_cell_that_cannot_be_kept_as_text_fails_the_file_naming_row_and_column(tmp_path):
    """An array of integers cannot be a text column: its bad element fails the file as before."""
    t = Table({"id": np.arange(3), "ra": [1.0, 2.0, 3.0], "flux": np.arange(6).reshape(3, 2)})
    t.write(tmp_path / "a.xml", format="votable")
    path = tmp_path / "a.xml"
    path.write_text(path.read_text().replace("<TD>2 3</TD>", "<TD>2 3x</TD>"))
    with pytest.raises(IngestError, match=r"a.xml: cannot be read as a VOTable: .*a.xml:\d+:\d+: ValueError: "
                                          r"invalid literal for int\(\) with base 10: '3x' \(in row 1, col 'flux'\)"):
        list(readers.read(path, "votable"))


def test_a_cell_that_is_no_integer_in_a_votable_quarantines_its_row_and_the_rest_load(engine, tmp_path,
                                                                                      scratch_release):
    """The SDSS sample as a VOTable with '26x' for a plate and '5l922' for an mjd (integer columns, parts
    of the object id) and '17.x' for a g magnitude: the file failed whole; now those rows are quarantined
    naming the column and the text, and the other rows load."""
    sample = Table.read(load_mapping("sdss_dr14_skyserver_10k").input_path(), format="ascii.csv")[:20]
    sample["plate"][1] = 987654  # data row 2, made '26x'
    sample["g"][3] = 42.125  # data row 4, made '17.x'
    sample["mjd"][6] = 987655  # data row 7, made '5l922'
    path = tmp_path / "sdss.xml"
    sample.write(path, format="votable")
    text = path.read_text()
    for written, made in [("987654", "26x"), ("42.125", "17.x"), ("987655", "5l922")]:
        text, n = re.subn(rf"<TD>{written}</TD>", f"<TD>{made}</TD>", text)
        assert n == 1
    path.write_text(text)
    mapping = scratch_mapping(tmp_path, "votable-int")
    mapping.write_text(mapping.read_text().replace('format = "csv"', 'format = "votable"'))
    load = ingest_release(mapping, engine, file=path)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT row_number, column_name, reason, raw FROM healcat.quarantine "
                                    "WHERE release_id = :r ORDER BY row_number"), {"r": load.release_id}).all()
    assert [(row, column, raw[column]) for row, column, _, raw in rows] == [
        (2, "plate", "26x"), (4, "g", "17.x"), (7, "mjd", "5l922")]
    template = "object_id template '{plate:04d}-{mjd:05d}-{fiberid:04d}'"
    assert rows[0].reason == f"{template}: plate='26x' does not fit {{:04d}} (not a number)"
    assert rows[2].reason == f"{template}: mjd='5l922' does not fit {{:05d}} (not a number)"
    # a fractional cell says so (it said "Unknown format code 'd' for object of type 'float'")
    assert cells.format_id("{fiberid:04d}", {"fiberid": "23.5"}) == (
        None, "fiberid", "object_id template '{fiberid:04d}': fiberid='23.5' does not fit {:04d} (not a whole number)")
    assert cells.format_id("{fiberid:04d}", {"fiberid": 23.0}) == ("0023", None, None)
    assert (load.row_counts["source"], load.row_counts["quarantine"]) == (17, 3)
    with engine.connect() as conn:
        ids = conn.execute(sa.text("SELECT object_id FROM healcat.source WHERE release_id = :r ORDER BY object_id"),
                           {"r": load.release_id}).scalars().all()
    assert ids == sorted(f"{p:04d}-{m:05d}-{f:04d}" for i, (p, m, f) in enumerate(sample["plate", "mjd", "fiberid"])
                         if i not in (1, 3, 6))  # the other rows' ids from the plates and mjds the file has


def test_a_votables_other_warnings_are_logged(tmp_path, caplog):
    path = _write(tmp_path, "votable")
    path.write_text(path.read_text().replace('<FIELD ID="id"', '<FIELD ID="id" colour="blue"'))
    _read_all(path, "votable")
    assert re.search(r"t.xml: read tolerantly: not a strictly valid VOTable \(the first fault: .*t.xml:7:3: W48: "
                     "Unknown attribute 'colour' on FIELD", caplog.text)


def test_broken_files_fail_naming_the_file_and_the_fault(tmp_path):
    fits_path = _write(tmp_path, "fits")
    data = fits_path.read_bytes()
    cut = tmp_path / "cut.fits"
    cut.write_bytes(data[: len(data) - 2880])
    with pytest.raises(IngestError, match=r"cut.fits: truncated: .*actual file length \(5760\)"):
        list(readers.read(cut, "fits"))
    with pytest.raises(IngestError, match=r"t.fits: no HDU 'SPECOBJ' \(the file has 0:PRIMARY, 1:"):
        list(readers.read(fits_path, "fits", ReadOptions(hdu="SPECOBJ")))
    with pytest.raises(IngestError, match="t.fits: HDU 0 is a PrimaryHDU, not a table"):
        list(readers.read(fits_path, "fits", ReadOptions(hdu=0)))
    (tmp_path / "junk.fits").write_bytes(b"not a fits file at all" * 200)
    with pytest.raises(IngestError, match="junk.fits: "):
        list(readers.read(tmp_path / "junk.fits", "fits"))
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 but not really")
    with pytest.raises(IngestError, match="junk.parquet: not a Parquet file"):
        list(readers.read(tmp_path / "junk.parquet", "parquet"))
    h5 = _write(tmp_path, "hdf5")
    with pytest.raises(IngestError, match=r"t.h5: no dataset or group 'catalog' \(top level: data\)"):
        list(readers.read(h5, "hdf5", ReadOptions(dataset="catalog")))
    (tmp_path / "ragged.dat").write_text("# a b c\n1 2 3\n4 5\n")
    with pytest.raises(IngestError, match="ragged.dat: not a whitespace table with columns a b c"):
        list(readers.read(tmp_path / "ragged.dat", "whitespace"))
    with pytest.raises(IngestError, match=r"ragged.dat: no '#' header line number 3 \(found 1\)"):
        list(readers.read(tmp_path / "ragged.dat", "whitespace", ReadOptions(header_comment=3)))
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(IngestError, match="ragged.csv: cannot be read as CSV: data row 2 has 3 fields, not 2: .3,4,5."):
        list(readers.read(tmp_path / "ragged.csv", "csv"))
    with pytest.raises(IngestError, match="ragged.dat: .* data row 2 has 2 fields, not 3: '4 5'"):
        list(readers.read(tmp_path / "ragged.dat", "whitespace"))
    (tmp_path / "twice.csv").write_text("id,r,ra,r\n1,18,10,25\n")
    with pytest.raises(IngestError, match="twice.csv: column 'r' appears more than once in the header"):
        list(readers.read(tmp_path / "twice.csv", "csv"))
    (tmp_path / "twice.dat").write_text("# id r r\n1 18 25\n")
    with pytest.raises(IngestError, match="twice.dat: column 'r' appears more than once"):
        list(readers.read(tmp_path / "twice.dat", "whitespace"))


def test_whitespace_tables_keep_text_columns_exact_and_type_the_rest(tmp_path):
    """Ids in text_columns keep every character ('007' is not '7'); other columns become integers or
    floats where every cell of the chunk is one; comment and blank lines are not rows."""
    path = tmp_path / "ids.dat"
    path.write_text("# id n x flag\n007 1 1.5 a\n\n# a note\n7 2 nan b\n  0012\t3  -2e3 c\n")
    (first, table), = readers.read(path, "whitespace", ReadOptions(text_columns=frozenset({"id"})))
    assert first == 1 and [str(v) for v in table["id"]] == ["007", "7", "0012"]
    assert table["n"].dtype.kind == "i" and list(table["n"]) == [1, 2, 3]
    assert list(table["x"]) == ["1.5", "nan", "-2e3"]  # text spelling NaN leaves it text, for the mapping to judge
    assert [str(v) for v in table["flag"]] == ["a", "b", "c"]
    path.write_text('# id name mag\n1 "NGC 104" 12.5\n2 "M4"\t5.6\n3 plain 7\n')
    (_, table), = readers.read(path, "whitespace", ReadOptions(text_columns=frozenset({"id"})))
    assert list(table["name"]) == ["NGC 104", "M4", "plain"] and list(table["mag"]) == [12.5, 5.6, 7.0]


def test_a_tab_delimited_table_keeps_its_empty_end_cells_and_quoted_fields(tmp_path):
    """delimiter = "\\t" (a TSV, VizieR's): a row whose last (or first) cell is empty lost that field to the
    trimming of line ends, and a quoted field anywhere in a block made its tabs spaces, every line one field:
    either failed the whole file as ragged ('data row 1 has 3 fields, not 4')."""
    path = tmp_path / "cells.tsv"
    path.write_text('# id\tra\tdec\tname\r\n1\t10.0\t5.0\t\r\n \t\t\r\n2\t11.0\t5.0\t"NGC 104"\r\n\t12.0\t5.0\tM31\r\n',
                    newline="")
    (first, table), = readers.read(path, "whitespace", ReadOptions(delimiter="\t"))
    assert first == 1 and len(table) == 3  # the line of blanks and tabs alone is no row, as a blank line
    assert list(table["ra"]) == [10.0, 11.0, 12.0] and list(table["id"].mask) == [False, False, True]
    assert list(table["name"].filled("")) == ["", "NGC 104", "M31"] and list(table["name"].mask) == [True, False, False]


@pytest.mark.parametrize("fmt, header", [("csv", "id,fiberid\n"), ("whitespace", "# id fiberid\n")])
def test_a_text_file_cut_inside_its_last_line_is_refused_naming_the_row(tmp_path, fmt, header):
    """A copy cut inside its last field (fiberid 233 -> 23) has every field: it loaded with a warning in the
    log alone (a scheduled load: a worker's log), publishing 23. A file ending without a newline is now
    refused, naming the row; one ending with one (\\n or \\r\\n) is read, as is a gzipped one (its end is
    not read apart)."""
    sep = "," if fmt == "csv" else " "
    whole = header + "".join(f"{i}{sep}{230 + i}\r\n" for i in range(1, 4))
    path = tmp_path / f"cut.{fmt}"
    path.write_text(whole, newline="")
    assert [row for _, t in readers.read(path, fmt) for row in t["fiberid"]] == [231, 232, 233]
    path.write_text(whole[:-3], newline="")  # the last row's \r\n and one digit gone
    with pytest.raises(IngestError, match=re.escape(f"{path}: the file does not end with a newline, so its last row "
                                                    "(data row 3) may have been cut short")):
        list(readers.read(path, fmt))
    zipped = tmp_path / f"cut.{fmt}.gz"
    zipped.write_bytes(gzip.compress(whole[:-3].encode()))
    assert [row for _, t in readers.read(zipped, fmt) for row in t["fiberid"]] == [231, 232, 23]


def test_float_formatted_ids_are_exact_or_a_problem_for_their_row():
    problems = {}
    ids = cells.identifiers(np.array([26618.0, 20.0, 1.5, 2.0**60, np.nan]), problems, "ID")
    assert ids.tolist() == ["26618", "20", None, None, None]
    assert sorted(problems) == [2, 3] and "not an exact integer id" in problems[3][1]
    text = cells.identifiers(np.array(["20.0000000", "+7", " NGC6715 ", "5290646440127895936", "1e3"]), {}, "ID")
    assert text.tolist() == ["20", "7", "NGC6715", "5290646440127895936", "1000"]
    problems = {}  # a float printed with an exponent past 2**53 may have lost digits
    text = cells.identifiers(np.array(["5.853498713190526e+18", "4295806720", "abc", "-3", str(2**63)]),
                             problems, "gaia", integer=True)
    assert text.tolist() == [None, "4295806720", None, None, None]  # -3: absent (Gaia's -HIP numbers)
    assert {i: p[1] for i, p in problems.items()} == {
        0: "gaia 5.853498713190526e+18 is a float that is not an exact integer id",
        2: "gaia 'abc' is not a 64-bit integer id", 4: f"gaia '{2**63}' is not a 64-bit integer id"}


@pytest.mark.parametrize(("spec", "mag_ab"), [
    ({"flux": "f", "unit": "nanomaggy"}, 22.5),  # SDSS/Legacy Surveys: m = 22.5 - 2.5 log10(nanomaggies)
    ({"flux": "f", "unit": "Jy"}, (1 * u.Jy).to(u.ABmag, u.spectral_density(1 * u.um)).value),
    ({"flux": "f", "unit": "uJy"}, 23.9),
    ({"flux": "f", "zp_ab": 25.0}, 25.0),  # EAZY catalogues: m = 25 - 2.5 log10(flux)
])
def test_a_flux_of_one_unit_has_the_ab_magnitude_astropy_gives(spec, mag_ab):
    band = Band.parse("x", spec, "test")
    got = (band.to_ujy * u.uJy).to(u.ABmag, u.spectral_density(1 * u.um)).value
    assert got == pytest.approx(mag_ab, abs=1e-4 if spec.get("unit") == "uJy" else 1e-9)


def test_the_nan_hint_is_for_nan_alone():
    """'17.x' was told 'a NaN is no measurement: leave the cell empty ...', a hint for 'nan' cells."""
    problems = {}
    values = cells.floats(np.array(["18.5", "17.x", "nan", ""]), problems, "g")
    assert values[0] == 18.5 and np.isnan(values[1:]).all()
    assert problems == {1: ("g", "g '17.x' is not a number"),
                        2: ("g", f"g 'nan' is not a number ({cells.NAN_HINT})")}


def test_a_votable_fault_behind_a_cell_that_is_no_number_is_still_logged(tmp_path, caplog):
    """With '2x' in one integer column the strict read's first fault was that cell, and an integer of
    another column beyond its type (astropy clamps it, W51) loaded with no word said (review)."""
    path = tmp_path / "clamped.xml"
    path.write_text(
        '<?xml version="1.0"?>\n<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE><TABLE>\n'
        '<FIELD name="a" datatype="int"/><FIELD name="b" datatype="int"/><FIELD name="ra" datatype="double"/>\n'
        '<DATA><TABLEDATA>\n<TR><TD>2x</TD><TD>1</TD><TD>10.5</TD></TR>\n'
        '<TR><TD>3</TD><TD>99999999999</TD><TD>11.5</TD></TR>\n</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>\n')
    (_, table), = readers.read(path, "votable", ReadOptions())
    assert list(table["a"]) == ["2x", "3"]
    assert "besides its cells that are no number" in caplog.text and "W51" in caplog.text
