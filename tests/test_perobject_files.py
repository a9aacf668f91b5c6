"""A per-object release (light curves, spectra) reads many files: each is hashed into the release's
checksum, and each must still be the file hashed, unchanged, when the release is committed (as a
catalogue's file must: ``ingest.load.check_same_file``)."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from catalog.errors import IngestError
from ingest import perobject
from ingest.load import ingest_release
from ingest.mapping import load_mapping
from test_lightcurves import _ztf_copy

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
    found = load_mapping(mapping).input_paths()
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
    assert checksum == perobject.files_checksum(found, load_mapping(mapping))


def test_a_joined_catalogue_file_is_part_of_the_release(tmp_path):
    """sdss_s82_rrlyrae joins table3.dat.gz to its catalogue: that file was read but neither hashed
    nor checked."""
    inputs = load_mapping("sdss_s82_rrlyrae").input_files()
    assert [p.name for paths in inputs.joins for p in paths] == ["table3.dat.gz"]
    assert set(inputs.all()) >= {*inputs.catalog, *inputs.joins[0], *inputs.series}
