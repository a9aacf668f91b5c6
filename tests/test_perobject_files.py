"""A per-object release (light curves, spectra) reads many files: each is hashed into the release's
checksum, and each must still be the file hashed, unchanged, when the release is committed (as a
catalogue's file must: ``ingest.load.check_same_file``)."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os

import pytest
import sqlalchemy as sa

from catalog.errors import IngestError, MappingError, MissingInputError
from ingest import perobject
from ingest.load import ingest_release
from ingest.mapping import data_dir, load_mapping
from ingest.scheduler import Scheduler
from ingest.worker import Worker
from test_lightcurves import _ztf_copy
from conftest import per_object_mapping

CURVE = "time,mag,magerr,band\n58000.1,19.0,0.1,g\n58000.2,19.1,0.1,g\n"


def _replace(path):
    (path.parent / f".{path.name}").write_text(CURVE + "58000.3,19.2,0.1,g\n")
    os.replace(path.parent / f".{path.name}", path)  # the next release's file, renamed into place


def _append(path):
    with path.open("a") as fh:
        fh.write("58000.3,19.2,0.1,g\n")


@pytest.mark.parametrize("change", [_replace, _append, os.remove], ids=["replaced", "written-to", "removed"])
@pytest.mark.parametrize("which", ["curves/ZTFB.csv", "bts.csv"], ids=["series", "catalog"])
def test_a_file_changed_while_a_per_object_release_loads_is_not_stored(engine, tmp_path, scratch_release,
                                                                       monkeypatch, change, which):
    """The files were hashed, then read again file by file: one replaced, written to or removed
    meanwhile was stored under the checksum of other bytes (or of a file no longer read)."""
    mapping = _ztf_copy(tmp_path, "changed", {"ZTFA": CURVE, "ZTFB": CURVE})
    read_series = perobject.read_series

    def changing(paths, fmt, options):  # after the checksum, before the series are read
        change(tmp_path / which)
        return read_series(paths, fmt, options)

    monkeypatch.setattr(perobject, "read_series", changing)
    with pytest.raises(IngestError, match="while it was being loaded") as refused:
        ingest_release(mapping, engine)
    assert f"{tmp_path / which}: " in str(refused.value)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM healcat.release WHERE name = 'scratch/changed'")) == 0


def test_the_files_read_are_the_files_hashed(engine, tmp_path, scratch_release, monkeypatch):
    """The series glob was matched again to read the files: a curve dropped meanwhile was loaded,
    though the release's checksum did not cover it."""
    mapping = _ztf_copy(tmp_path, "added", {"ZTFA": CURVE})
    found = load_mapping(mapping).input_files()
    read_table = perobject.read_table

    def adding(path, fmt, text):  # after the checksum, before the series are read
        (tmp_path / "curves" / "ZTFC.csv").write_text(CURVE)
        return read_table(path, fmt, text)

    monkeypatch.setattr(perobject, "read_table", adding)
    result = ingest_release(mapping, engine)
    assert result.row_counts["series_read"] == 1
    with engine.connect() as conn:
        checksum = conn.scalar(sa.text("SELECT checksum FROM healcat.release WHERE release_id = :r"),
                               {"r": result.release_id})
    assert checksum == perobject.files_checksum(found, load_mapping(mapping))[0]


def test_a_joined_catalogue_file_is_part_of_the_release(tmp_path):
    """sdss_s82_rrlyrae joins table3.dat.gz to its catalogue: that file was read but neither hashed
    nor checked."""
    inputs = load_mapping("sdss_s82_rrlyrae").input_files()
    assert [p.name for paths in inputs.joins for p in paths] == ["table3.dat.gz"]
    assert set(inputs.all()) >= {*inputs.catalog, *inputs.joins[0], *inputs.series}


def test_a_release_loaded_before_join_files_were_hashed_is_the_same_release(engine, tmp_path, scratch_release,
                                                                           caplog):
    """healcat before 2026-12-05 left sdss_s82_rrlyrae's join file out of the checksum: after an
    upgrade the same files and mapping were "already loaded from different content", the scheduler
    logged that error at every scan (`scheduler --once` exited 1) and a rerun of the ingest failed."""
    mapping_path = per_object_mapping(tmp_path, "sdss_s82_rrlyrae", "older", {})
    first = ingest_release(mapping_path, engine)
    mapping = load_mapping(mapping_path)
    inputs = mapping.input_files()
    digest = hashlib.sha256()  # the older checksum, as healcat computed it then: no join file
    for path in sorted(inputs.catalog + inputs.series, key=str):
        digest.update(str(path.relative_to(data_dir())).encode() + b"\0" + path.read_bytes())
    digest.update(json.dumps(mapping.raw, sort_keys=True, default=str).encode())
    checksum, older = perobject.files_checksum(inputs, mapping)
    assert older == (digest.hexdigest(),) and checksum != older[0]
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE healcat.release SET checksum = :c WHERE release_id = :r"),
                     {"c": older[0], "r": first.release_id})
    with caplog.at_level(logging.WARNING, logger="ingest.load"):
        again = ingest_release(mapping_path, engine)
    assert (again.already_loaded, again.release_id) == (True, first.release_id)
    assert "loaded by an older healcat, whose checksum did not cover its join files" in caplog.text
    # a job the older scheduler queued carries the older checksum: the same files, not "changed since"
    queued = ingest_release(mapping_path, engine, checksum=older[0])
    assert (queued.already_loaded, queued.release_id) == (True, first.release_id)
    caplog.clear()
    scheduler = Scheduler(engine, [tmp_path], settle_s=0)
    with caplog.at_level(logging.ERROR, logger="ingest.scheduler"):
        assert scheduler.scan() == []
    assert scheduler.skipped == {} and not [r for r in caplog.records if r.levelno >= logging.ERROR]

    # Other catalogue bytes are another release still: the older checksum covers the catalogue.
    text = mapping_path.read_text().replace('"astroml_s82_rrlyrae_linear/S82_RRLyr/table2.dat.gz"',
                                            f'"{tmp_path / "table2.dat"}"')
    lines = gzip.decompress((data_dir() / "astroml_s82_rrlyrae_linear/S82_RRLyr/table2.dat.gz").read_bytes())
    (tmp_path / "table2.dat").write_bytes(lines.rsplit(b"\n", 2)[0] + b"\n")  # the last star left out
    mapping_path.write_text(text)
    with pytest.raises(IngestError, match="release scratch/older is already loaded from different content"):
        ingest_release(mapping_path, engine)


def test_a_join_file_that_cannot_be_read_is_named(engine, tmp_path, scratch_release):
    """A [catalog] join file was read outside the check that names a catalogue file (and first
    read once more, for its column names): a broken one failed with the reader's bare error."""
    shipped = load_mapping("sdss_s82_rrlyrae")
    join_file = tmp_path / "table3.dat"
    join_file.write_text("# id ra dec\n1 2.5\n")  # a row of two fields under three names
    text = shipped.path.read_text().replace('name = "sdss-s82-rrlyrae"', 'name = "scratch"', 1)
    text = text.replace('version = "sesar2010"', 'version = "broken-join"', 1)
    text = text.replace('"astroml_s82_rrlyrae_linear/S82_RRLyr/table3.dat.gz"', f'"{join_file}"')
    mapping = tmp_path / "scratch-broken-join.toml"
    mapping.write_text(text)
    with pytest.raises(MappingError, match=f"^{join_file}: cannot be read as ascii.commented_header: "):
        ingest_release(mapping, engine)


def test_a_per_object_mapping_reads_its_files_beside_it(engine, tmp_path, scratch_release):
    """A light-curve mapping in a watched folder with its files beside it (files = ["ztfcopy/bts.csv"]) was
    skipped, "no file matches /work/shared/data/ztfcopy/bts.csv", and `healcat ingest` failed the same:
    only the data folder was searched, where a catalogue mapping's file is looked for beside it too."""
    (tmp_path / "ztfcopy").mkdir()
    os.remove(_ztf_copy(tmp_path / "ztfcopy", "absolute", {"ZTFA": CURVE}))
    mapping = per_object_mapping(tmp_path, "ztf_bts_snia", "beside", {"catalog": ["ztfcopy/bts.csv"],
                                                                      "series": ["ztfcopy/curves/*.csv"]})
    inputs = load_mapping(mapping).input_files()
    assert (inputs.catalog, inputs.series) == ([tmp_path / "ztfcopy/bts.csv"], [tmp_path / "ztfcopy/curves/ZTFA.csv"])
    try:
        (job_id,) = Scheduler(engine, [tmp_path], settle_s=0).scan()
        assert Worker(engine, name="test").run(once=True) >= 1
        with engine.connect() as conn:
            job = conn.execute(sa.text("SELECT status, result FROM healcat.job WHERE job_id = :j"), {"j": job_id}).one()
        assert (job.status, job.result["release"], job.result["row_counts"]["series_read"]) == (
            "done", "scratch/beside", 1)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM healcat.scheduled_ingest WHERE mapping = :m"), {"m": str(mapping)})


def test_a_per_object_file_found_nowhere_names_every_place_searched(tmp_path):
    mapping = per_object_mapping(tmp_path, "ztf_bts_snia", "notyet", {"catalog": ["ztfcopy/notyet.csv"]})
    with pytest.raises(MissingInputError) as missing:
        load_mapping(mapping).input_files()
    assert str(missing.value) == (f"ztfcopy/notyet.csv: no file matches beside the mapping ({tmp_path}) or in the "
                                  f"data folder ({data_dir()})")


def test_a_per_object_file_beside_the_mapping_stays_confined(tmp_path):
    """Found beside the mapping, a file still may not climb out of its folder, nor be a link leading out."""
    outside, drop = tmp_path / "outside", tmp_path / "drop"
    outside.mkdir(), drop.mkdir()
    os.remove(_ztf_copy(outside, "outside", {"ZTFA": CURVE}))
    climbing = per_object_mapping(drop, "ztf_bts_snia", "climbing", {"catalog": ["../outside/bts.csv"]})
    with pytest.raises(MappingError, match="lies outside the data folder"):
        load_mapping(climbing)
    (drop / "linked").symlink_to(outside, target_is_directory=True)
    linked = per_object_mapping(drop, "ztf_bts_snia", "linked", {"catalog": ["linked/bts.csv"]})
    with pytest.raises(MappingError, match=f"the link {drop / 'linked'} -> {outside}.*links are followed only"):
        load_mapping(linked).input_files()
