"""Light curves from per-object files: counts and values against the files parsed here
independently (csv, gzip, json, tarfile of the standard library), labels, quarantine, idempotence."""

from __future__ import annotations

import csv
import gzip
import json
from collections import Counter

import numpy as np
import pytest
import sqlalchemy as sa
from astropy.coordinates import Angle

from catalog.errors import IngestError
from conftest import per_object_mapping
from ingest.load import ingest_release
from ingest.mapping import data_dir, load_mapping

EROS = data_dir() / "ramp_eros_variable_stars"


def eros_catalog() -> dict[str, dict[str, str]]:
    rows = {}
    for split in ("train", "test"):
        with (EROS / f"{split}.csv").open() as fh:
            for row in csv.DictReader(fh):
                rows[row["Unnamed: 0"]] = {**row, "split": split}
    return rows


def eros_curves(split: str) -> dict[str, dict[str, list[float]]]:
    with gzip.open(EROS / f"{split}_varlength_features.csv.gz", "rt") as fh:
        return {row[""]: {k: json.loads(v) for k, v in row.items() if k} for row in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def eros(per_object):
    return per_object["eros2_lmc_ramp"]


def test_eros_counts_match_the_files(engine, eros):
    catalog = eros_catalog()
    curves = {**eros_curves("train"), **eros_curves("test")}
    n_points = sum(len(c[f"time_points_{b}"]) for c in curves.values() for b in "br")
    with engine.connect() as conn:
        got = conn.execute(sa.text(
            "SELECT count(DISTINCT lc.source_id), count(*), sum(cardinality(lc.time_mjd)) FROM healcat.light_curve lc "
            "WHERE lc.release_id = :r"), {"r": eros.release_id}).one()
        labels = Counter(tuple(r) for r in conn.execute(sa.text(
            "SELECT label, split FROM healcat.label WHERE taxonomy = 'eros2_ramp_type' AND release_id = :r"),
            {"r": eros.release_id}))
    assert tuple(got) == (len(catalog), 2 * len(curves), n_points)
    assert labels == Counter((str(int(float(r["type"]))), r["split"]) for r in catalog.values())
    assert eros.row_counts["quarantine"] == 0 and eros.row_counts["source"] == len(catalog)


def test_eros_values_are_the_files(engine, eros):
    star = "271_4304"
    row, curve = eros_catalog()[star], eros_curves("train")[star]
    with engine.connect() as conn:
        src = conn.execute(sa.text("SELECT ra, dec, source_id, shard FROM healcat.source WHERE object_id = :o "
                                   "AND release_id = :r"), {"o": star, "r": eros.release_id}).one()
        lc = conn.execute(sa.text("SELECT time_mjd, mag, mag_err, mag_system, time_scale FROM healcat.light_curve "
                                  "WHERE source_id = :s AND shard = :h AND band = 'eros_r'"),
                          {"s": src.source_id, "h": src.shard}).one()
    ra = Angle(f"{row['asc_d'][:-2]}h{row['asc_m'][:-2]}m{row['asc_s']}s").deg
    dec = Angle(f"{row['dec_d'][:-2]}d{row['dec_m'][:-2]}m{row['dec_s']}s").deg
    assert (src.ra, src.dec) == pytest.approx((ra, dec), abs=1e-9)
    assert lc.time_mjd == pytest.approx([t + 49999.5 for t in curve["time_points_r"]], abs=1e-9)
    assert lc.mag == list(np.float32(curve["light_points_r"]))
    assert lc.mag_err == list(np.float32(curve["error_points_r"]))
    assert (lc.mag_system, lc.time_scale) == ("Vega", "unknown")


def test_light_curve_points_view_unnests_in_order(engine, eros):
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT p.point, p.time_mjd, p.mag, p.mag_err, p.band FROM healcat.light_curve_points p "
            "JOIN healcat.source s USING (shard, source_id) WHERE s.object_id = '135_9613' AND p.band = 'eros_b' "
            "ORDER BY p.point")).all()
    curve = eros_curves("train")["135_9613"]
    assert [r.point for r in rows] == list(range(1, len(curve["time_points_b"]) + 1))
    assert [r.mag for r in rows] == list(np.float32(curve["light_points_b"]))
    assert {r.band for r in rows} == {"eros_b"}


def test_eros_ingest_is_idempotent(engine, eros):
    again = ingest_release("eros2_lmc_ramp", engine)
    assert again.already_loaded and again.release_id == eros.release_id and again.row_counts == eros.row_counts


def _broken_eros(tmp_path) -> tuple:
    """The first six test stars with five kinds of damage to their curves."""
    with (EROS / "test.csv").open() as fh:
        lines = fh.readlines()[:7]
    (tmp_path / "test.csv").write_text("".join(lines))
    with gzip.open(EROS / "test_varlength_features.csv.gz", "rt") as fh:
        reader = csv.reader(fh)
        header, rows = next(reader), [next(reader) for _ in range(6)]
    col = {name: j for j, name in enumerate(header)}

    def edit(i: int, name: str, change) -> None:
        values = json.loads(rows[i][col[name]])
        rows[i][col[name]] = json.dumps(change(values))

    edit(0, "light_points_b", lambda v: v[:3] + [float("nan")] + v[4:])        # one non-finite point
    edit(1, "time_points_r", lambda v: [v[1], v[0]] + v[2:])                   # unsorted times
    edit(2, "time_points_b", lambda v: v[:1] + v[:1] + v[2:])                  # duplicate time
    for name in ("time_points_r", "light_points_r", "error_points_r"):         # empty curve
        edit(3, name, lambda v: [])
    rows[4][col["error_points_b"]] = "[0.1, oops"                              # unreadable cell
    with gzip.open(tmp_path / "test_varlength_features.csv.gz", "wt", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    return rows, col


def test_broken_curves_are_quarantined_with_file_row_column(engine, tmp_path, scratch_release):
    rows, col = _broken_eros(tmp_path)
    mapping = per_object_mapping(tmp_path, "eros2_lmc_ramp", "broken", {
        "catalog": [tmp_path / "test.csv"], "series": [tmp_path / "test_varlength_features.csv.gz"]})
    result = ingest_release(mapping, engine)
    with engine.connect() as conn:
        q = conn.execute(sa.text("SELECT file, row_number, column_name, reason FROM healcat.quarantine "
                                 "WHERE release_id = :r ORDER BY row_number, column_name"),
                         {"r": result.release_id}).all()
        bands = conn.execute(sa.text(
            "SELECT s.object_id, lc.band, cardinality(lc.time_mjd) FROM healcat.light_curve lc "
            "JOIN healcat.source s USING (shard, source_id) WHERE lc.release_id = :r ORDER BY 1, 2"),
            {"r": result.release_id}).all()
    series = str(tmp_path / "test_varlength_features.csv.gz")
    by_row = {(r.row_number, r.column_name): r for r in q}
    assert {r.file for r in q} == {series}
    assert "not finite" in by_row[(1, "light_points_b")].reason
    assert (2, "time_points_r") not in by_row  # out of order: sorted, not dropped
    assert "eros_b point 1: duplicate time" in by_row[(3, "time_points_b")].reason  # that point only
    assert "(point 0 has it; kept)" in by_row[(3, "time_points_b")].reason
    assert "empty light curve" in by_row[(4, "light_points_r")].reason
    assert "not a JSON list" in by_row[(5, "error_points_b")].reason
    assert len(q) == 4
    kept = {(o, b): n for o, b, n in bands}
    first = rows[0][0]
    assert kept[(first, "eros_b")] == len(json.loads(rows[0][col["time_points_b"]])) - 1  # the NaN point only
    assert kept[(rows[1][0], "eros_r")] == len(json.loads(rows[1][col["time_points_r"]]))  # every point, in order
    assert kept[(rows[2][0], "eros_b")] == len(json.loads(rows[2][col["time_points_b"]])) - 1  # all but the repeat
    assert not any(o == rows[4][0] for o, _ in kept)  # the unreadable record: no curve at all
    assert len(kept) == 2 * 6 - 3
    assert result.row_counts["source"] == 6
    assert result.row_counts["curves_sorted"] == 1 and result.row_counts["duplicate_epochs"] == 1
    with engine.connect() as conn:
        times = conn.scalar(sa.text("SELECT lc.time_mjd FROM healcat.light_curve lc JOIN healcat.source s "
                                    "USING (shard, source_id) WHERE lc.release_id = :r AND s.object_id = :o "
                                    "AND lc.band = 'eros_r'"), {"r": result.release_id, "o": rows[1][0]})
    assert times == sorted(times) and len(set(times)) == len(times)


def test_a_release_whose_series_all_fail_publishes_nothing(engine, tmp_path, scratch_release):
    (tmp_path / "test.csv").write_text("".join((EROS / "test.csv").read_text().splitlines(keepends=True)[:3]))
    (tmp_path / "broken.csv.gz").write_bytes(b"\x1f\x8b not really gzip")
    mapping = per_object_mapping(tmp_path, "eros2_lmc_ramp", "all-broken", {
        "catalog": [tmp_path / "test.csv"], "series": [tmp_path / "broken.csv.gz"]})
    with pytest.raises(IngestError, match="broken.csv.gz"):
        ingest_release(mapping, engine)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM healcat.release WHERE name = 'scratch/all-broken'")) == 0


def _release_stats(engine, release_id: int):
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT count(*) AS curves, sum(cardinality(time_mjd)) AS points FROM healcat.light_curve "
            "WHERE release_id = :r"), {"r": release_id}).one()


def test_s82_rrlyrae_counts_and_quarantine_match_the_files(engine, per_object):
    import tarfile

    result = per_object["sdss_s82_rrlyrae"]
    good = dup = bad_points = 0
    with tarfile.open(data_dir() / "astroml_s82_rrlyrae_linear/S82_RRLyr/table1.tar.gz") as tar:
        for member in tar.getmembers():
            if not member.name.endswith(".dat"):
                continue
            rows = [list(map(float, line.split())) for line in tar.extractfile(member).read().decode().splitlines()]
            for k in range(5):
                points = [(r[2 + 3 * k], r[3 + 3 * k]) for r in rows if r[3 + 3 * k] != -99.99]
                valid = [t for t, m in points if m < 50]
                bad_points += len(points) - len(valid)
                dup += len(valid) - len(set(valid))  # a repeated epoch: that point quarantined, the curve kept
                good += len(set(valid))
    stats = _release_stats(engine, result.release_id)
    assert (stats.curves, stats.points) == (483 * 5, good)
    assert result.row_counts["quarantine"] == dup + bad_points and dup == result.row_counts["duplicate_epochs"] == 8
    with engine.connect() as conn:
        labels = dict(conn.execute(sa.text("SELECT label, count(*) FROM healcat.label WHERE release_id = :r GROUP BY 1"),
                                   {"r": result.release_id}).all())
    with gzip.open(data_dir() / "astroml_s82_rrlyrae_linear/S82_RRLyr/table2.dat.gz", "rt") as fh:
        types = Counter(line.split()[1] for line in fh if not line.startswith("#"))
    assert labels == dict(types)


def test_ztf_bts_counts_match_the_files(engine, per_object):
    result = per_object["ztf_bts_snia"]
    folder = data_dir() / "ztf_bts_snia_lightcurves"
    curves = Counter()
    for path in (folder / "light-curves").glob("*.csv"):
        with path.open() as fh:
            for row in csv.DictReader(fh):
                curves[(path.stem, row["band"])] += 1
    lines = [line for line in (folder / "bts.csv").read_text().splitlines() if line.strip()]  # it opens with a blank line
    n_bts = sum(1 for _ in csv.DictReader(lines))
    stats = _release_stats(engine, result.release_id)
    mapped = {k: n for k, n in curves.items() if k[1] in ("g", "R")}
    assert (stats.curves, stats.points) == (len(mapped), sum(mapped.values()))
    assert result.row_counts["source"] == n_bts
    assert result.row_counts["quarantine"] == sum(n for k, n in curves.items() if k[1] not in ("g", "R")) == 1
    with engine.connect() as conn:
        t = conn.execute(sa.text(
            "SELECT p.time_mjd, p.mag, p.mag_err FROM healcat.light_curve_points p JOIN healcat.source s "
            "USING (shard, source_id) WHERE s.object_id = 'ZTF20aadvunl' AND p.band = 'ztf_r' ORDER BY p.point LIMIT 1"
        )).one()
    assert tuple(t) == (58852.42908560019, np.float32(20.51930046081543), np.float32(0.2458830028772354))


def test_a_light_curve_mapping_names_its_time_scale_and_takes_no_other_file(tmp_path, engine, scratch_release):
    from catalog.errors import MappingError

    mapping = per_object_mapping(tmp_path, "ztf_bts_snia", "time-scale", {})
    mapping.write_text(mapping.read_text().replace('time_scale = "utc"', 'time_scale = "banana"'))
    with pytest.raises(MappingError, match="time_scale must be one of utc, tai, tt, tdb, .*got 'banana'"):
        load_mapping(mapping)
    mapping.write_text(mapping.read_text().replace('time_scale = "banana"', 'time_scale = "utc"\nsentinels = ["-"]'))
    with pytest.raises(MappingError, match=r"time-scale.toml: \[light_curve\] sentinels: '-' is not a number$"):
        load_mapping(mapping)
    with pytest.raises(IngestError, match="reads the files its \\[series\\] \\(and \\[catalog\\]\\) globs match; "
                                          "it takes no --file"):
        ingest_release("ztf_bts_snia", engine, file=tmp_path / "other.csv")


def test_a_changed_light_curve_changes_its_objects_fingerprint(conn, eros):
    """Release diffs compare fingerprints: an object whose light curve changed is 'changed'."""
    lc = conn.execute(sa.text("SELECT lc.shard, lc.source_id, lc.band FROM healcat.light_curve lc "
                              "JOIN healcat.source s USING (shard, source_id) WHERE lc.release_id = s.release_id "
                              "ORDER BY lc.source_id LIMIT 1")).one()
    fingerprint = sa.text("SELECT healcat.source_fingerprint(CAST(:s AS smallint), :i)")
    before = conn.scalar(fingerprint, {"s": lc.shard, "i": lc.source_id})
    assert conn.scalar(fingerprint, {"s": lc.shard, "i": lc.source_id}) == before, "a function of the data only"
    conn.execute(sa.text("UPDATE healcat.light_curve SET mag[1] = mag[1] + 0.01 WHERE shard = :s AND source_id = :i "
                         "AND band = :b"), {"s": lc.shard, "i": lc.source_id, "b": lc.band})
    assert conn.scalar(fingerprint, {"s": lc.shard, "i": lc.source_id}) != before


def test_a_per_object_load_reports_its_files_done(engine, tmp_path, scratch_release):
    """A job loading light curves shows files done out of all of them, as a table load shows rows."""
    from ingest import progress

    mapping = per_object_mapping(tmp_path, "ztf_bts_snia", "progress", {})
    sent = []
    with progress.reporting(lambda done, total: sent.append((done, total)), interval_s=0):
        ingest_release(mapping, engine)
    n_files = len(load_mapping(mapping).series.paths())
    assert sent[-1] == (n_files, n_files) and n_files > 1
    assert [d for d, _ in sent] == sorted(d for d, _ in sent), "never backwards"


ZTF = data_dir() / "ztf_bts_snia_lightcurves"


def _ztf_copy(tmp_path, version: str, curves: dict[str, str]):
    """A BTS catalogue of the objects ``curves`` names (the first BTS row's values under each id) and
    one curve file per object (name -> CSV text), with a mapping of them."""
    lines = [line for line in (ZTF / "bts.csv").read_text().splitlines() if line.strip()]
    first = lines[1].split(",", 1)[1]
    (tmp_path / "bts.csv").write_text("\n".join([lines[0]] + [f"{name},{first}" for name in curves]) + "\n")
    (tmp_path / "curves").mkdir()
    for name, text in curves.items():
        (tmp_path / "curves" / f"{name}.csv").write_text(text)
    return per_object_mapping(tmp_path, "ztf_bts_snia", version, {
        "catalog": [tmp_path / "bts.csv"], "series": [tmp_path / "curves/*.csv"]})


def _quarantine(engine, release_id: int) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT file, row_number, column_name, reason FROM healcat.quarantine "
                                    "WHERE release_id = :r ORDER BY row_number"), {"r": release_id}).all()


def test_a_point_error_that_is_zero_or_past_a_float4_is_quarantined(engine, tmp_path, scratch_release):
    """1e300 was stored as inf (a float4), and 0 weighs a point infinitely: both are quarantined, named."""
    header = "time,mag,magerr,band\n"
    mapping = _ztf_copy(tmp_path, "errors", {"ZTFA": header + "58000.1,19.0,1e300,g\n58000.2,19.1,0.0,g\n"
                                                      "58000.3,19.2,0.1,g\n"})
    result = ingest_release(mapping, engine)
    q = _quarantine(engine, result.release_id)
    assert [(r.row_number, r.column_name) for r in q] == [(1, "magerr"), (2, "magerr")]
    assert "ztf_g point 0: mag error 1e+300 is past a float4" in q[0].reason
    assert "ztf_g point 1: mag error 0.0 is not positive" in q[1].reason
    with engine.connect() as conn:
        errors = conn.scalar(sa.text("SELECT mag_err FROM healcat.light_curve WHERE release_id = :r"),
                             {"r": result.release_id})
    assert errors == [pytest.approx(0.1)]


def test_object_ids_keep_their_leading_zeros(engine, tmp_path, scratch_release):
    """An all-digit id column was guessed int64: '0042' became the source '42', and 0042.csv matched nothing."""
    curve = "time,mag,magerr,band\n58000.1,19.0,0.1,g\n"
    result = ingest_release(_ztf_copy(tmp_path, "zeros", {"0042": curve, "0043": curve}), engine)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT s.object_id, count(lc.band) FROM healcat.source s LEFT JOIN healcat.light_curve lc "
            "USING (shard, source_id) WHERE s.release_id = :r GROUP BY 1 ORDER BY 1"), {"r": result.release_id}).all()
    assert [tuple(r) for r in rows] == [("0042", 1), ("0043", 1)] and result.row_counts["quarantine"] == 0


@pytest.mark.parametrize(("second", "error"), [
    ("time,mag,band\n58000.1,19.0,g\n", r"ZTFB.csv: mapping scratch-columns.toml uses columns not in the file: magerr"),
    ("time,mag,magerr,band,flux\n58000.1,19.0,0.1,g,3.0\n",
     r"ZTFB.csv: columns flux are neither mapped nor listed under \[ignore\]"),
], ids=["missing", "extra"])
def test_every_series_file_has_the_mappings_columns(engine, tmp_path, scratch_release, second, error):
    """Only the first file was checked: a later one without magerr crashed with a bare KeyError, and an
    extra column in one was silently not stored."""
    from catalog.errors import MappingError

    mapping = _ztf_copy(tmp_path, "columns", {"ZTFA": "time,mag,magerr,band\n58000.1,19.0,0.1,g\n", "ZTFB": second})
    with pytest.raises(MappingError, match=error):
        ingest_release(mapping, engine)


def test_the_current_views_show_one_release_of_a_survey_with_two(engine, tmp_path, scratch_release):
    """The README's light-curve queries returned every point and label twice once a survey had two
    releases: the superseded one's and the current one's."""
    curve = "time,mag,magerr,band\n58000.1,19.0,0.1,g\n58000.2,19.1,0.1,g\n"
    releases = []
    for version, date in (("lc-v1", "2020-01-01"), ("lc-v2", "2021-01-01")):
        folder = tmp_path / version
        folder.mkdir()
        mapping = _ztf_copy(folder, version, {"ZTFM": curve})
        mapping.write_text(mapping.read_text().replace(f'version = "{version}"', f'version = "{version}"\ndate = {date}'))
        releases.append(ingest_release(mapping, engine).release_id)
    with engine.connect() as conn:
        points = conn.execute(sa.text(
            "SELECT p.band, p.time_mjd, p.mag, p.release_id FROM healcat.light_curve_points p "
            "JOIN healcat.current_source s USING (shard, source_id) WHERE s.object_id = 'ZTFM' ORDER BY p.time_mjd")).all()
        curves = conn.execute(sa.text(
            "SELECT lc.release_id, l.label FROM healcat.current_light_curve lc JOIN healcat.source s "
            "USING (shard, source_id) JOIN healcat.current_label l USING (shard, source_id) "
            "WHERE s.object_id = 'ZTFM'")).all()
        stored = conn.scalar(sa.text("SELECT count(*) FROM healcat.light_curve lc JOIN healcat.source s "
                                     "USING (shard, source_id) WHERE s.object_id = 'ZTFM'"))
    assert [(p.time_mjd, p.release_id) for p in points] == [(58000.1, releases[1]), (58000.2, releases[1])]
    assert [tuple(c) for c in curves] == [(releases[1], "SN Ia")] and stored == 2  # the old release's stays


def test_a_text_magnitude_is_reported_as_the_file_has_it(engine, tmp_path, scratch_release):
    """'abc' in a mag column was quarantined as 'mag nan is not finite', the text lost."""
    mapping = _ztf_copy(tmp_path, "text", {"ZTFA": "time,mag,magerr,band\n58000.1,abc,0.1,g\n58000.2,19.1,0.1,g\n"})
    q = _quarantine(engine, ingest_release(mapping, engine).release_id)
    assert [(r.row_number, r.column_name) for r in q] == [(1, "mag")]
    assert q[0].reason == "ztf_g point 0: mag 'abc' is not a number"


def test_json_cells_must_be_flat_lists_of_numbers_and_a_truncated_gzip_says_so(engine, tmp_path, scratch_release):
    """A nested list was flattened (4 times from [[1,2],[3,4]]), a scalar became a 1-point curve, true
    became 1.0; a truncated .csv.gz was quarantined as 'chr() arg not in range(0x110000)'."""
    (tmp_path / "test.csv").write_text("".join((EROS / "test.csv").read_text().splitlines(keepends=True)[:5]))
    with gzip.open(EROS / "test_varlength_features.csv.gz", "rt") as fh:
        reader = csv.reader(fh)
        header, rows = next(reader), [next(reader) for _ in range(4)]
    col = {name: j for j, name in enumerate(header)}
    n = len(json.loads(rows[0][col["time_points_b"]]))
    rows[0][col["time_points_b"]] = json.dumps([[t] for t in json.loads(rows[0][col["time_points_b"]])])
    rows[1][col["light_points_b"]] = "7.5"
    rows[2][col["error_points_b"]] = json.dumps([True] * n)
    with gzip.open(tmp_path / "test_varlength_features.csv.gz", "wt", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    data = gzip.compress((EROS / "test.csv").read_bytes())
    (tmp_path / "truncated.csv.gz").write_bytes(data[: len(data) // 2])
    mapping = per_object_mapping(tmp_path, "eros2_lmc_ramp", "json", {
        "catalog": [tmp_path / "test.csv"],
        "series": [tmp_path / "test_varlength_features.csv.gz", tmp_path / "truncated.csv.gz"]})
    q = {(r.file.rsplit("/", 1)[-1], r.row_number, r.column_name): r.reason
         for r in _quarantine(engine, ingest_release(mapping, engine).release_id)}
    assert "holds [" in q[("test_varlength_features.csv.gz", 1, "time_points_b")]
    assert "a JSON float, not a list" in q[("test_varlength_features.csv.gz", 2, "light_points_b")]
    assert "holds true, not a number" in q[("test_varlength_features.csv.gz", 3, "error_points_b")]
    assert "the gzip file is truncated or corrupt" in q[("truncated.csv.gz", 0, None)]
