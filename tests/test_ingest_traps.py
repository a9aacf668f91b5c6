"""Inputs that used to load wrong values without a word: units a file spells its own way, null
markers of each format, infinities, text that only looks missing; each must load right or fail
(or quarantine its row) naming the file, the row and the column."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from astropy.io import fits
from astropy.table import MaskedColumn, Table, vstack

from catalog.errors import IngestError, MappingError
from ingest import readers
from ingest.load import ingest_release
from ingest.mapping import apply, data_dir, load_mapping
from ingest.report import format_report, release_report
from ingest.tasks import gyro_age
from ingest.tasks.gyro_age import GyroAge
from ingest.validate import SeenIds, validate
from tests.conftest import scratch_mapping

RA_DEG = [10.0, 150.0, 345.0]


def _table() -> Table:
    return Table({"id": np.array([1, 2, 3], dtype=np.int64), "ra": RA_DEG, "dec": [-5.0, 20.0, 60.0],
                  "mag": [18.5, 19.0, 20.5], "plate": np.array([266, 267, 268], dtype=np.int32),
                  "name": ["a", "b", "c"]})


def _mapping(tmp_path: Path, file: Path, fmt: str, ra_unit: str = "deg", release: str = "",
             bands: str = 'sdss_r = "mag"', ignore: str = 'plate = "test"\nname = "test"') -> Path:
    path = tmp_path / f"{file.stem}.toml"
    path.write_text(f'[survey]\nname = "scratch"\n[release]\nmax_rejected_fraction = 1.0\nversion = "{file.name}"\nfile = "{file}"\n'
                    f'format = "{fmt}"\n{release}\n[source]\nobject_id = "{{id}}"\n'
                    f'ra = {{ column = "ra", unit = "{ra_unit}" }}\ndec = "dec"\n'
                    f'[photometry]\nsystem = "AB"\nbands = {{ {bands} }}\n[ignore]\n{ignore}\n')
    return path


def _mapped(mapping_path: Path):
    """The file's rows as the loader sees them: read, checked against the mapping, mapped."""
    mapping = load_mapping(mapping_path)
    path = mapping.input_path()
    chunks = []
    for first, table in readers.read(path, mapping.format, mapping.read_options):
        mapping.check_columns(table, path)
        chunks.append((table, apply(mapping, table, first)))
    return chunks


def _fits_with_ra_unit(tmp_path: Path, unit: str) -> Path:
    table = _table()
    table["ra"] = table["ra"] / 15.0
    path = tmp_path / "hours.fits"
    table.write(path)
    with fits.open(path, mode="update") as hdul:
        hdul[1].header[f"TUNIT{hdul[1].columns.names.index('ra') + 1}"] = unit
    return path


@pytest.mark.parametrize("unit", ["hours", "hr", "HOURS", "hourangle", "hms", "h", "H"])
def test_ra_in_hours_spelled_any_common_way_is_refused_as_degrees_and_read_as_hours(tmp_path, unit):
    path = _fits_with_ra_unit(tmp_path, unit)
    with pytest.raises(MappingError, match=rf"hours.fits: column ra is in '?{unit}'? by the file's own header, "
                                           r"but mapping .* says deg"):
        _mapped(_mapping(tmp_path, path, "fits"))
    (_, chunk), = _mapped(_mapping(tmp_path, path, "fits", ra_unit="hourangle"))
    np.testing.assert_allclose(chunk.ra_deg, RA_DEG)


@pytest.mark.parametrize("unit", ["degrees", "DEG", "degree"])
def test_degrees_spelled_any_common_way_agree_with_a_mapping_in_degrees(tmp_path, unit):
    path = _fits_with_ra_unit(tmp_path, unit)
    with pytest.raises(MappingError, match=rf"column ra is in {unit} by the file's own header, but mapping .* says "
                                           "hourangle"):
        _mapped(_mapping(tmp_path, path, "fits", ra_unit="hourangle"))
    (_, chunk), = _mapped(_mapping(tmp_path, path, "fits"))
    np.testing.assert_allclose(chunk.ra_deg, np.array(RA_DEG) / 15)


def test_an_unknown_unit_on_a_position_column_is_an_error_naming_file_column_and_unit(tmp_path):
    fits_path = _fits_with_ra_unit(tmp_path, "furlongs")
    with pytest.raises(MappingError, match=r"hours.fits: column ra is in 'furlongs' by the file's own header, "
                                           "a unit healcat does not know"):
        _mapped(_mapping(tmp_path, fits_path, "fits"))
    table = _table()
    table["ra"].unit = "furlongs"
    table.write(tmp_path / "t.ecsv", format="ascii.ecsv")
    with pytest.raises(MappingError, match=r"t.ecsv: column ra is in 'furlongs' .* a unit healcat does not know"):
        _mapped(_mapping(tmp_path, tmp_path / "t.ecsv", "ecsv"))


def test_fits_null_integers_are_missing_not_values(tmp_path):
    table = _table()
    table["plate"] = MaskedColumn(table["plate"], mask=[False, True, False])
    path = tmp_path / "nulls.fits"
    table.write(path)
    assert fits.getheader(path, 1)[f"TNULL{table.colnames.index('plate') + 1}"] == 999999
    (raw, _), = _mapped(_mapping(tmp_path, path, "fits"))
    assert raw["plate"].mask.tolist() == [False, True, False]
    assert raw["plate"][0] == 266


def test_a_fits_text_cell_that_is_not_ascii_names_its_row_and_column(tmp_path):
    table = _table()
    table["name"] = np.array([b"a", b"b\xc9", b"c"])
    path = tmp_path / "latin.fits"
    table.write(path)
    with pytest.raises(IngestError, match=r"latin.fits: data row 2 column name: b'b\\xc9' is not ASCII"):
        list(readers.read(path, "fits"))


def test_a_fits_file_cut_inside_its_table_header_says_truncated(tmp_path):
    path = tmp_path / "t.fits"
    _table().write(path)
    cut = tmp_path / "cut.fits"
    cut.write_bytes(path.read_bytes()[:2880 + 1000])
    with pytest.raises(IngestError, match="cut.fits: truncated: .*Header size is not multiple of 2880"):
        list(readers.read(cut, "fits"))
    assert readers.count_rows(cut, "fits") is None


def test_parquet_written_by_astropy_keeps_its_masks_and_units(tmp_path):
    table = _table()
    table["ra"] = MaskedColumn(np.array(RA_DEG) / 15, mask=[False, False, True], unit="hourangle")
    table["plate"] = MaskedColumn(table["plate"], mask=[True, False, False])
    path = tmp_path / "astropy.parquet"
    table.write(path)
    assert "ra.mask" in pq.read_schema(path).names
    with pytest.raises(MappingError, match="astropy.parquet: column ra is in hourangle .* mapping .* says deg"):
        _mapped(_mapping(tmp_path, path, "parquet"))
    (raw, chunk), = _mapped(_mapping(tmp_path, path, "parquet", ra_unit="hourangle"))
    assert raw.colnames == table.colnames
    assert raw["plate"].mask.tolist() == [True, False, False]
    np.testing.assert_allclose(chunk.ra_deg, [RA_DEG[0], RA_DEG[1], np.nan])


def test_parquet_with_an_astropy_column_it_cannot_read_says_which(tmp_path):
    from astropy.time import Time

    table = _table()
    table["t"] = Time([60000.0, 60001.0, 60002.0], format="mjd")
    table.write(tmp_path / "time.parquet")
    with pytest.raises(IngestError, match="time.parquet: column t is astropy's serialized astropy.time.core.Time"):
        list(readers.read(tmp_path / "time.parquet", "parquet"))


def _validated(mapping_path: Path):
    """(good mask, rejected rows) of a one-chunk file."""
    (_, chunk), = _mapped(mapping_path)
    return validate(load_mapping(mapping_path), chunk, SeenIds())


@pytest.mark.parametrize("missing_above", ["", "missing_above = 99"])
def test_an_infinite_magnitude_either_way_is_quarantined_not_dropped(tmp_path, missing_above):
    path = tmp_path / "inf.csv"
    path.write_text("id,ra,dec,mag\n1,10,5,inf\n2,11,5,-inf\n3,12,5,+inf\n4,13,5,99\n5,14,5,18.2\n")
    mapping = _mapping(tmp_path, path, "csv", ignore="")
    mapping.write_text(mapping.read_text().replace('system = "AB"', f'system = "AB"\n{missing_above}'))
    good, rejected = _validated(mapping)
    assert [(r.row_number, r.column) for r in rejected if "inf" in r.reason] == [(1, "mag"), (2, "mag"), (3, "mag")]
    assert [r.raw["mag"] for r in rejected][:3] == ["inf", "-inf", "inf"]  # the raw row as read, not null
    assert good.tolist() == [False, False, False, bool(missing_above), True]


@pytest.mark.parametrize(("fmt", "name"), [("csv", "t.csv"), ("whitespace", "t.dat")])
def test_text_that_looks_missing_is_text_unless_the_mapping_says_it_means_missing(tmp_path, fmt, name):
    """CSV and whitespace tables agree: only empty cells and the mapping's null_values are missing."""
    words = ["NA", "N/A", "null", "NULL", "NaN", "nan", "-nan", "x"]
    sep = "," if fmt == "csv" else " "
    path = tmp_path / name
    path.write_text(("" if fmt == "csv" else "# ") + sep.join(["id", "ra", "dec", "mag", "name"]) + "\n"
                    + "".join(f"{i},{10 + i},5,18,{w}\n".replace(",", sep) for i, w in enumerate(words)))
    raw = vstack([t for t, _ in _mapped(_mapping(tmp_path, path, fmt, ignore='name = "test"'))])
    assert list(raw["name"]) == words
    mapping = _mapping(tmp_path, path, fmt, ignore='name = "test"', release='null_values = ["NULL", "N/A"]')
    raw = vstack([t for t, _ in _mapped(mapping)])
    assert raw["name"].mask.tolist() == [w in ("NULL", "N/A") for w in words]


def test_null_values_must_be_a_list_of_texts(tmp_path):
    mapping = _mapping(tmp_path, tmp_path / "t.csv", "csv", release="null_values = \"NULL\"")
    with pytest.raises(MappingError, match=r"null_values must be a list of texts that mean missing .*got 'NULL'"):
        load_mapping(mapping)


@pytest.fixture
def joiner(engine, scratch_release):
    """The survey 'scratch-joiner' (rows that join another survey's sources by id), removed after the test."""
    yield "scratch-joiner"
    with engine.begin() as conn:
        ids = conn.scalars(sa.text("SELECT release_id FROM healcat.release JOIN healcat.survey USING (survey_id) "
                                   "WHERE survey.name = 'scratch-joiner'")).all()
        conn.execute(sa.text("DELETE FROM healcat.source WHERE release_id = ANY(:ids)"), {"ids": ids})
        conn.execute(sa.text("DELETE FROM healcat.release WHERE release_id = ANY(:ids)"), {"ids": ids})
        conn.execute(sa.text("DELETE FROM healcat.cluster WHERE name LIKE 'scratch-%'"))


def _release(tmp_path: Path, survey: str, version: str, date: str, rows: str, joining: bool,
             rotation: str = "") -> Path:
    """A CSV release dated ``date``: positioned sources carrying Gaia DR3 ids, or periods joining them
    (``rotation``: more keys of [rotation_period])."""
    file = tmp_path / f"{survey}-{version}.csv"
    file.write_text(rows)
    source = (f'join = "gaia_dr3"\n[rotation_period]\nperiod = "prot"\n{rotation}\n' if joining
              else 'ra = "ra"\ndec = "dec"\n')
    path = tmp_path / f"{survey}-{version}.toml"
    path.write_text(f'[survey]\nname = "{survey}"\n[release]\nmax_rejected_fraction = 1.0\nversion = "{version}"\ndate = {date}\nfile = "{file}"\n'
                    f'format = "csv"\n[xid]\ngaia_dr3 = "gaia"\n[source]\nobject_id = "{{gaia}}"\n{source}')
    return path


def test_a_joining_release_attaches_to_published_sources_of_other_surveys_only(engine, tmp_path, joiner):
    """Stars 11 and 12 are in the first release of 'scratch', only 11 in its second (the first is then
    superseded). Periods of 11, 12 and 13 attach to the published source of 11 and get sources of their
    own for 12 and 13; the joiner's second version does the same, not attaching to its first's sources."""
    for version, date, rows in (("v1", "2024-01-01", "gaia,ra,dec\n11,10,5\n12,11,5\n"),
                                ("v2", "2024-06-01", "gaia,ra,dec\n11,10,5\n")):
        ingest_release(_release(tmp_path, "scratch", version, date, rows, joining=False), engine)
    periods = "gaia,prot\n11,3.5\n12,4.5\n13,5.5\n"
    loads = [ingest_release(_release(tmp_path, joiner, version, date, periods, joining=True), engine)
             for version, date in (("v1", "2025-01-01"), ("v2", "2025-06-01"))]
    with engine.connect() as conn:
        for load in loads:
            assert (load.row_counts["joined"], load.row_counts["source"]) == (1, 2)
            owners = conn.execute(sa.text(
                "SELECT x.xid, r.name FROM healcat.rotation_period p JOIN healcat.source s USING (shard, source_id) "
                "JOIN healcat.release r ON r.release_id = s.release_id JOIN healcat.source_xid x "
                "ON x.shard = s.shard AND x.source_id = s.source_id WHERE p.release_id = :r ORDER BY x.xid"),
                {"r": load.release_id}).all()
            assert owners == [("11", "scratch/v2"), ("12", load.release), ("13", load.release)]
        changes = conn.execute(sa.text("SELECT change, count(*) FROM healcat.release_change WHERE release_id = :r "
                                       "GROUP BY change"), {"r": loads[1].release_id}).all()
    assert changes == []  # the same stars: nothing new, changed or vanished


def test_a_cluster_age_is_each_releases_own_and_one_release_disagreeing_is_quarantined(engine, tmp_path, joiner):
    """A cluster stored without an age takes the first one given; a later release may revise it (its
    rows keep its age: they were quarantined as 'differs from the ... Myr stored'); rows of one
    release giving their cluster different ages are quarantined."""
    def load(version: str, rows: str, rotation: str):
        return ingest_release(_release(tmp_path, joiner, version, f"2025-01-0{version[1]}", rows, joining=True,
                                       rotation=rotation), engine)

    load("v1", "gaia,prot\n21,3\n22,4\n", 'cluster_name = "scratch-Rup"')  # gyrointerp: no age
    with_ages = 'cluster = "cl"\ncluster_age_myr = "age"'
    v2 = load("v2", "gaia,prot,cl,age\n21,3,scratch-Rup,2700\n22,4,scratch-Rup,2700\n23,5,scratch-Rup,2500\n"
                    "24,6,scratch-B,50\n25,7,scratch-B,60\n28,8,scratch-Rup,2600\n", with_ages)
    v3 = load("v3", "gaia,prot,cl,age\n26,3,scratch-Rup,3000\n27,4,scratch-B,50\n", with_ages)
    with engine.connect() as conn:
        ages = dict(conn.execute(sa.text("SELECT name, age_myr FROM healcat.cluster WHERE name LIKE 'scratch-%'")).all())
        quarantine = conn.execute(sa.text("SELECT release_id, row_number, column_name, reason FROM healcat.quarantine "
                                          "WHERE release_id IN (:v2, :v3) ORDER BY release_id, row_number"),
                                  {"v2": v2.release_id, "v3": v3.release_id}).all()
        own = conn.execute(sa.text(
            "SELECT rp.release_id, c.name, rp.cluster_age_myr FROM healcat.rotation_period rp JOIN healcat.cluster c "
            "USING (cluster_id) WHERE rp.release_id IN (:v2, :v3) GROUP BY 1, 2, 3 ORDER BY 1, 2"),
            {"v2": v2.release_id, "v3": v3.release_id}).all()
        # gyrochronology trains on the age its release gives
        with conn.connection.driver_connection.cursor() as cur:  # the ChronoFlow quality flags: none here
            cur.execute(GyroAge.training_query.replace(gyro_age._CUTS, "true"), {"release_id": v3.release_id})
            training = [(name, age) for _, _, _, _, age, name, _ in cur.fetchall()]
    assert ages == {"scratch-Rup": 2700.0, "scratch-B": 50.0}  # the first age given
    assert quarantine == [
        (v2.release_id, 3, "age", "cluster scratch-Rup age 2500.0 Myr differs from the 2700.0 Myr given by an "
                                  "earlier row of the file"),
        (v2.release_id, 5, "age", "cluster scratch-B age 60.0 Myr differs from the 50.0 Myr given by an earlier "
                                  "row of the file"),
        (v2.release_id, 6, "age", "cluster scratch-Rup age 2600.0 Myr differs from the 2700.0 Myr given by an "
                                  "earlier row of the file")]
    assert own == [(v2.release_id, "scratch-B", 50.0), (v2.release_id, "scratch-Rup", 2700.0),
                   (v3.release_id, "scratch-B", 50.0), (v3.release_id, "scratch-Rup", 3000.0)]
    assert sorted(training) == [("scratch-B", 50.0), ("scratch-Rup", 3000.0)]
    assert (v2.row_counts["rotation_period"], v3.row_counts["rotation_period"]) == (3, 2)
    report = format_report(release_report(engine, v2.release, examples=1))
    # grouped with the ages blanked; the example shows the offending column's cell first, then the id's (the
    # joining release's xid column)
    assert ("2  age: cluster scratch-Rup age ... Myr differs from the ... Myr given by an earlier row of the file\n"
            "              row 3: cluster scratch-Rup age 2500.0 Myr differs from the 2700.0 Myr given by an earlier row "
            "of the file  [age=2500, gaia=23, cl=scratch-Rup, prot=5]") in report


def test_text_that_is_not_utf8_names_its_row_and_column(tmp_path):
    (tmp_path / "latin.csv").write_bytes(b"id,ra,name\n1,10,a\n2,11,b\xc9\n")
    with pytest.raises(IngestError, match=r"latin.csv: data row 2 column name: b'b\\xc9' is not UTF-8 text"):
        list(readers.read(tmp_path / "latin.csv", "csv"))
    (tmp_path / "latin.dat").write_bytes(b"# id ra name\n1 10 a\n\n# a note\n2 11 b\xc9\n")
    with pytest.raises(IngestError, match=r"latin.dat: data row 2 is not UTF-8 text: b'2 11 b\\xc9'"):
        list(readers.read(tmp_path / "latin.dat", "whitespace"))
    (tmp_path / "comment.dat").write_bytes(b"# id ra name\n1 10 a\n# caf\xe9 note\n2 11 b\n")
    with pytest.raises(IngestError, match=r"comment.dat: a comment line after data row 1 is not UTF-8 text"):
        list(readers.read(tmp_path / "comment.dat", "whitespace"))  # not a StopIteration turned RuntimeError
    (tmp_path / "header.dat").write_bytes(b"# a note \xc9\n# id ra\n1 10\n")
    with pytest.raises(IngestError, match=r"header.dat: line 1 of the '#' header is not UTF-8 text"):
        list(readers.read(tmp_path / "header.dat", "whitespace", readers.ReadOptions(header_comment=1)))


@pytest.mark.parametrize(("encoding", "why"), [("utf-16", "little-endian byte order mark"),
                                               ("utf-16-be", "a NUL byte beside each character of its first line"),
                                               ("utf-32", "little-endian byte order mark")])
@pytest.mark.parametrize("fmt", ["csv", "whitespace"])
def test_a_utf16_text_file_is_named_so(tmp_path, encoding, why, fmt):
    """Read as UTF-8, a UTF-16 CSV failed at its end: 'data row 10001 has 1 fields, not 15: \\x00'."""
    text = "id,ra,dec\n1,10.0,5.0\n2,11.0,5.0\n" if fmt == "csv" else "# id ra dec\n1 10.0 5.0\n"
    (tmp_path / "wide.txt").write_bytes(text.encode(encoding))
    with pytest.raises(IngestError, match=rf"wide.txt: the file is UTF-16 or UTF-32 text \({why}\), not UTF-8: "
                                          r"convert it, e.g. iconv -f UTF-16 -t UTF-8 wide.txt > wide-utf8.txt"):
        list(readers.read(tmp_path / "wide.txt", fmt))


@pytest.mark.parametrize("rows", [3, 1_000_000])  # a later block of pyarrow's (8 MiB)
def test_a_csv_row_of_another_length_is_named_by_its_data_row(tmp_path, rows):
    """In the first block pyarrow reads or in a later one, blank lines not counted."""
    lines = ["id,ra"] + [f"{i},{i % 360}" for i in range(rows)] + ["", "7,8,9", "10,11"]
    (tmp_path / "ragged.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(IngestError, match=rf"ragged.csv: .*data row {rows + 1} has 3 fields, not 2: '7,8,9'"):
        list(readers.read(tmp_path / "ragged.csv", "csv"))


@pytest.mark.parametrize(("option", "value", "shown"), [
    ("chunk_rows", "0", "0"), ("chunk_rows", "-5", "-5"), ("chunk_rows", '"10"', "'10'"), ("hdu", "1.5", "1.5"),
    ("header_comment", '"x"', "'x'"), ("delimiter", "1", "1")])
def test_a_read_option_of_the_wrong_kind_is_a_mapping_error(tmp_path, option, value, shown):
    mapping = _mapping(tmp_path, tmp_path / "t.fits", "fits", release=f"{option} = {value}")
    with pytest.raises(MappingError, match=rf"t.toml: \[release\] {option} must be .*, got {shown}$"):
        load_mapping(mapping)


def test_values_a_float4_cannot_hold_are_quarantined_not_stored_as_infinities(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("id,ra,dec,f,fe,mag,me,p,c\n"
                    "1,10,5,-1e39,1,18,0.1,3,0.5\n"      # -3.6e39 uJy
                    "2,11,5,100,1e39,18,0.1,3,0.5\n"      # its error
                    "3,12,5,100,1,18,1e39,3,0.5\n"        # a magnitude error
                    "4,13,5,100,1,18,inf,3,0.5\n"
                    "5,14,5,100,1,18,0.1,3,-5e38\n"       # a colour
                    "6,15,5,100,1,18,0.1,3,0.5\n")
    mapping = _mapping(tmp_path, path, "csv", ignore="",
                       bands='u = { flux = "f", flux_err = "fe", unit = "nanomaggy" }, r = { mag = "mag", mag_err = "me" }')
    mapping.write_text(mapping.read_text() + '[rotation_period]\nperiod = "p"\nbp_rp_dered = "c"\n')
    good, rejected = _validated(mapping)
    assert good.tolist() == [False, False, True, True, False, True]  # rows 3, 4: the error NULL, the magnitude kept
    assert [(r.row_number, r.column, r.reason) for r in rejected] == [
        (1, "f", "f -1e+39 nanomaggy is a common 'no data' value (an unlisted sentinel? list it under [photometry] "
                 "sentinels)"),  # |v| >= 1e20: no flux a survey measures
        (2, "fe", "fe 1e+39 nanomaggy is a common 'no data' value (an unlisted sentinel? list it under "
                  "[photometry] sentinels)"),
        (5, "c", "c -5e+38 is outside [-2.0, 10.0] [mag]")]  # a colour's range keeps it within a float4


def test_a_negative_error_beside_a_measurement_is_quarantined_unless_a_listed_sentinel(tmp_path):
    """It was 'no error', silently; without a measurement it means nothing and stays missing."""
    path = tmp_path / "negerr.csv"
    path.write_text("id,ra,dec,f,fe,mag,me\n"
                    "1,10,5,100,-1,18,0.1\n"        # a negative flux error
                    "2,11,5,100,1,18,-0.05\n"       # a negative magnitude error
                    "3,12,5,100,1,,-0.05\n"         # ... with no magnitude: nothing to be the error of
                    "4,13,5,100,1,18,-99\n"         # a listed sentinel: no error
                    "5,14,5,100,1,18,0.1\n")
    mapping = _mapping(tmp_path, path, "csv", ignore="",
                       bands='u = { flux = "f", flux_err = "fe", unit = "nanomaggy" }, r = { mag = "mag", mag_err = "me" }')
    mapping.write_text(mapping.read_text().replace('system = "AB"', 'system = "AB"\nsentinels = [-99.0]'))
    good, rejected = _validated(mapping)
    assert good.tolist() == [False, False, True, True, True]
    assert [(r.row_number, r.column, r.reason.split(" (")[0]) for r in rejected] == [
        (1, "fe", "fe -1 is a negative error"), (2, "me", "me -0.05 is a negative error")]
    (_, chunk), = _mapped(mapping)
    assert np.isnan(chunk.phot["r"].mag_err[3]) and chunk.phot["r"].mag_err[4] == pytest.approx(0.1)


def test_your_mapping_reads_your_file_beside_it(tmp_path):
    """A relative file is looked for in the data folder, then beside the mapping (a newcomer's CSV next
    to their mapping was 'no such file' under ../shared/data)."""
    (tmp_path / "mine.csv").write_text("id,ra,dec,mag\n1,10,5,18\n")
    mapping = _mapping(tmp_path, tmp_path / "mine.csv", "csv", ignore="")
    mapping.write_text(mapping.read_text().replace(f'file = "{tmp_path / "mine.csv"}"', 'file = "mine.csv"'))
    loaded = load_mapping(mapping)
    assert loaded.file == "mine.csv" and loaded.input_path() == tmp_path / "mine.csv"
    (chunk_table, chunk), = _mapped(mapping)
    assert list(chunk.object_id) == ["1"]
    # a shipped mapping's file is the data folder's
    sdss = load_mapping("sdss_dr14_skyserver_10k")
    assert sdss.input_path() == data_dir() / sdss.file


def test_an_attr_keeps_its_numbers_numbers_in_a_chunk_a_stray_word_made_text(tmp_path):
    path = tmp_path / "attrs.csv"
    path.write_text("id,ra,dec,mag,zz\n1,10,5,18,3.004\n2,11,5,18,7\n3,12,5,18,3.004\n4,13,5,18,bright\n")
    mapping = _mapping(tmp_path, path, "csv", ignore="", release="chunk_rows = 2")
    mapping.write_text(mapping.read_text().replace('dec = "dec"', 'dec = "dec"\nattrs = ["zz"]'))
    chunks = _mapped(mapping)
    assert [t["zz"].dtype.kind for t, _ in chunks] == ["f", "U"]
    assert [a["zz"] for _, chunk in chunks for a in chunk.attrs] == [3.004, 7, 3.004, "bright"]


def test_a_text_attr_keeps_text_that_only_looks_like_a_number(tmp_path):
    """Only plain decimals are numbers again: a code '007', '1_000' (Python's float reads it) stays the
    text the file has. 'NaN' and 'inf' are null, as in a chunk whose cells are all numbers (JSON has
    neither): before, one column of a file held null in one chunk and 'inf' in another."""
    path = tmp_path / "codes.csv"
    path.write_text("id,ra,dec,mag,code\n1,10,5,18,007\n2,11,5,18,1_000\n3,12,5,18,NaN\n4,13,5,18,inf\n"
                    "5,14,5,18,1.10\n6,15,5,18,A12\n")
    mapping = _mapping(tmp_path, path, "csv", ignore="")
    mapping.write_text(mapping.read_text().replace('dec = "dec"', 'dec = "dec"\nattrs = ["code"]'))
    assert [a["code"] for _, chunk in _mapped(mapping) for a in chunk.attrs] == ["007", "1_000", None, None, 1.1, "A12"]


@pytest.mark.parametrize(("fmt", "name"), [("csv", "t.csv"), ("whitespace", "t.dat")])
def test_nan_text_in_a_numeric_column_is_quarantined_unless_the_mapping_says_it_means_missing(tmp_path, fmt, name):
    sep = "," if fmt == "csv" else " "
    path = tmp_path / name
    path.write_text(("" if fmt == "csv" else "# ") + sep.join(["id", "ra", "dec", "mag"]) + "\n"
                    + "".join(f"{i},{10 + i},5,{m}\n".replace(",", sep) for i, m in enumerate(["nan", "18", "-nan"], 1)))
    good, rejected = _validated(_mapping(tmp_path, path, fmt, ignore=""))
    assert good.tolist() == [False, True, False]
    assert [(r.row_number, r.column, r.reason.split(" (")[0]) for r in rejected] == [
        (1, "mag", "mag 'nan' is not a number"), (3, "mag", "mag '-nan' is not a number")]
    good, rejected = _validated(_mapping(tmp_path, path, fmt, ignore="", release='null_values = ["nan", "-nan"]'))
    assert good.all() and not rejected


@pytest.mark.parametrize("where", ["../outside/secret.csv", "inside/../../outside/secret.csv", "absolute"])
def test_a_mapping_file_outside_the_data_folder_and_its_own_folder_is_refused(engine, tmp_path, where, caplog):
    """Whoever may drop a mapping could have the workers read any file (its parse results land in
    healcat.job and the quarantine, which every reader may select)."""
    from ingest.scheduler import Scheduler

    drop, outside = tmp_path / "drop", tmp_path / "outside"
    drop.mkdir(), outside.mkdir()
    secret = outside / "secret.csv"
    secret.write_text("id,ra,dec,mag,plate,name\n1,10.0,-5.0,18.5,266,a\n")
    file = secret if where == "absolute" else Path(where)
    mapping = _mapping(drop, file, "csv")
    with pytest.raises(MappingError, match="lies outside the data folder") as refused:
        load_mapping(mapping)
    assert str(mapping) in str(refused.value) and repr(str(file)) in str(refused.value)
    with pytest.raises(MappingError, match="lies outside"):
        ingest_release(mapping, engine)
    with engine.connect() as conn:
        jobs = conn.scalar(sa.text("SELECT count(*) FROM healcat.job"))
    assert Scheduler(engine, [drop], settle_s=0).scan() == []
    assert "lies outside the data folder" in caplog.text
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM healcat.job")) == jobs, "nothing queued"


def test_a_mapping_file_in_the_data_folder_or_beside_the_mapping_is_read(tmp_path):
    beside = tmp_path / "beside.csv"
    _table().write(beside, format="ascii.csv")
    assert load_mapping(_mapping(tmp_path, beside, "csv")).input_path() == beside  # absolute, in its own folder
    (tmp_path / "sub").mkdir()
    assert load_mapping(_mapping(tmp_path / "sub", Path("a/../b.csv"), "csv")).file == "a/../b.csv"  # stays inside
    sdss = load_mapping("sdss_dr14_skyserver_10k")
    assert sdss.input_path().is_file()  # relative to the data folder


def test_parquet_from_astropy_with_a_masked_column_that_masks_no_cell_loads(engine, tmp_path, scratch_release):
    """astropy writes such a column as its data alone (no NAME.mask): it was refused as a serialized column
    healcat does not read."""
    table = _table()
    table["mag"] = MaskedColumn(table["mag"], mask=[False, False, False])
    table["plate"] = MaskedColumn(table["plate"], mask=[False, True, False])
    path = tmp_path / "unmasked.parquet"
    table.write(path)
    assert "mag.mask" not in pq.read_schema(path).names and "plate.mask" in pq.read_schema(path).names
    load = ingest_release(_mapping(tmp_path, path, "parquet"), engine)
    assert (load.row_counts["source"], load.row_counts["photometry"]) == (3, 3)
    (raw, _), = _mapped(_mapping(tmp_path, path, "parquet"))
    assert raw["plate"].mask.tolist() == [False, True, False]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_whitespace_file_beginning_with_a_utf8_bom_loads(engine, tmp_path, scratch_release, newline):
    """'\\ufeff# id ra ...' was no '#' header line, and the file was refused."""
    path = tmp_path / f"bom{len(newline)}.dat"
    path.write_bytes(b"\xef\xbb\xbf" + newline.join(["# id ra dec mag", "1 10 5 18.5", "2 11 5 19.0", ""]).encode())
    load = ingest_release(_mapping(tmp_path, path, "whitespace", ignore=""), engine)
    assert (load.row_counts["rows_read"], load.row_counts["source"], load.row_counts["quarantine"]) == (2, 2, 0)


def test_comment_lines_among_whitespace_data_are_counted_in_row_counts_and_logged(engine, tmp_path, scratch_release,
                                                                                 caplog):
    """A '#' line among the data rows (a row commented out) vanished without a count; the header's do not count."""
    path = tmp_path / "commented.dat"
    path.write_text("# id ra dec mag\n# a note\n1 10 5 18.5\n# 2 11 5 19.0\n3 12 5 19.5\n\n# end\n4 13 5 20.0\n")
    load = ingest_release(_mapping(tmp_path, path, "whitespace", ignore="", release="chunk_rows = 2"), engine)
    assert (load.row_counts["rows_read"], load.row_counts["comment_lines_skipped"]) == (3, 2)
    assert "commented.dat: 2 '#' line(s) among data rows 1 to 3 skipped as comments, not data" in caplog.text
    with engine.connect() as conn:
        stored = conn.scalar(sa.text("SELECT row_counts FROM healcat.release WHERE release_id = :r"),
                             {"r": load.release_id})
    assert stored["comment_lines_skipped"] == 2
    clean = tmp_path / "clean.dat"
    clean.write_text("# id ra dec mag\n# a note\n1 10 5 18.5\n")
    assert "comment_lines_skipped" not in ingest_release(_mapping(tmp_path, clean, "whitespace", ignore=""),
                                                         engine).row_counts


def test_a_repeated_header_and_a_nan_position_are_reported_as_what_they_are(engine, tmp_path, scratch_release):
    """A header repeated mid-file (files concatenated) was 'mag 'mag' is not a number (a NaN is no measurement
    ...)', and RA 'NaN' was 'ra is missing', like an empty cell."""
    path = tmp_path / "cat.csv"
    path.write_text("id,ra,dec,mag\n1,10,5,18.5\nid,ra,dec,mag\n2,NaN,5,19.0\n3,,5,19.0\n4,12,nan,19.5\n5,13,5,20\n")
    load = ingest_release(_mapping(tmp_path, path, "csv", ignore=""), engine)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT row_number, column_name, reason FROM healcat.quarantine "
                                    "WHERE release_id = :r ORDER BY row_number"), {"r": load.release_id}).all()
    nan = "is not a number (a NaN is no measurement: leave the cell empty or list it under [release] null_values)"
    assert [tuple(r) for r in rows] == [
        (2, "id", "the row repeats the header (id,ra,dec,mag): a second header mid-file, not data"),
        (3, "ra", f"ra 'NaN' {nan}"), (4, "ra", "ra is missing"), (5, "dec", f"dec 'nan' {nan}")]
    assert load.row_counts["source"] == 2


@pytest.mark.parametrize("fmt", ["votable", "ecsv"])
def test_a_cell_that_is_no_number_in_a_votable_or_ecsv_quarantines_its_row(engine, tmp_path, scratch_release, fmt):
    """The SDSS sample as a VOTable with '17.x' for a g magnitude was published with that magnitude missing,
    no word said; as an ECSV the whole file failed, naming no row."""
    sample = Table.read(load_mapping("sdss_dr14_skyserver_10k").input_path(), format="ascii.csv")[:20]
    sample["g"][1] = 42.125  # data row 2, made '17.x'
    sample["g"] = MaskedColumn(sample["g"], mask=np.arange(20) == 4)  # data row 5: an empty cell, a missing g
    path = tmp_path / ("sdss.xml" if fmt == "votable" else "sdss.ecsv")
    sample.write(path, format="votable" if fmt == "votable" else "ascii.ecsv")
    text, n = re.subn(r"\b42\.125\b", "17.x", path.read_text())
    path.write_text(text)
    mapping = scratch_mapping(tmp_path, fmt)
    mapping.write_text(mapping.read_text().replace('format = "csv"', f'format = "{fmt}"'))
    load = ingest_release(mapping, engine, file=path)
    with engine.connect() as conn:
        (row, column, reason, raw), = conn.execute(sa.text(
            "SELECT row_number, column_name, reason, raw FROM healcat.quarantine WHERE release_id = :r"),
            {"r": load.release_id}).all()
    assert n == 1 and (row, column, raw["g"]) == (2, "g", "17.x")
    assert reason == "g '17.x' is not a number"  # the hint for NaN is for 'nan' alone
    assert (load.row_counts["source"], load.row_counts["quarantine"]) == (19, 1)
    assert load.row_counts["photometry"] == 19 * 5 - 1  # row 5's g: missing, not a row of its own
