"""Release files are confined to the data folder and the mapping's own folder by their real path: a
link inside either that leads elsewhere (to /etc, to another user's files) is refused, naming the
link and its target; links that stay inside are followed, and a data folder that is itself a link
(../shared -> /work/shared) is fine."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from catalog.errors import MappingError
from ingest.load import ingest_release
from ingest.scheduler import Scheduler
from test_ingest_traps import _mapping, _table
from test_lightcurves import _ztf_copy

CURVE = "time,mag,magerr,band\n58000.1,19.0,0.1,g\n58000.2,19.1,0.1,g\n"


def _secret(tmp_path: Path) -> Path:
    """A file outside the drop folder and the data folder, with rows the mapping would load."""
    (tmp_path / "outside").mkdir()
    secret = tmp_path / "outside" / "secret.csv"
    _table().write(secret, format="ascii.csv")
    return secret


def _releases(engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(sa.text("SELECT count(*) FROM healcat.release r JOIN healcat.survey s USING (survey_id) "
                                   "WHERE s.name = 'scratch'"))


def _jobs(engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(sa.text("SELECT count(*) FROM healcat.job"))


@pytest.mark.parametrize("via", ["file", "folder"])
def test_a_link_in_the_drop_folder_to_a_file_outside_is_refused(engine, tmp_path, scratch_release, caplog, via):
    secret = _secret(tmp_path)
    drop = tmp_path / "drop"
    drop.mkdir()
    if via == "file":
        (drop / "link.csv").symlink_to(secret)
        link, target, name = drop / "link.csv", secret, "link.csv"
    else:
        (drop / "sub").symlink_to(secret.parent, target_is_directory=True)
        link, target, name = drop / "sub", secret.parent, "sub/secret.csv"
    mapping = _mapping(drop, Path(name), "csv")
    with pytest.raises(MappingError, match="links are followed only within them") as refused:
        ingest_release(mapping, engine)
    assert f"the link {link} -> {target}" in str(refused.value) and str(secret) in str(refused.value)
    assert _releases(engine) == 0
    jobs = _jobs(engine)
    with caplog.at_level(logging.ERROR, logger="ingest.scheduler"):
        assert Scheduler(engine, [drop], settle_s=0).scan() == []
    assert f"the link {link} -> {target}" in caplog.text
    assert _jobs(engine) == jobs, "nothing queued"


def test_a_manifest_file_linking_out_of_its_folder_is_refused(engine, tmp_path, scratch_release, caplog):
    secret = _secret(tmp_path)
    source = tmp_path / "manifest"
    source.mkdir()
    mapping = _mapping(source, Path("data.csv"), "csv")
    (source / "incoming.csv").symlink_to(secret)
    (source / "releases.toml").write_text(f'[[release]]\nmapping = "{mapping.name}"\nfile = "incoming.csv"\n')
    jobs = _jobs(engine)
    with caplog.at_level(logging.ERROR, logger="ingest.scheduler"):
        assert Scheduler(engine, [source / "releases.toml"], settle_s=0).scan() == []
    assert f"the link {source / 'incoming.csv'} -> {secret}" in caplog.text
    assert _jobs(engine) == jobs, "nothing queued"
    os.remove(source / "incoming.csv")  # the manifest's own folder may hold the file
    _table().write(source / "incoming.csv", format="ascii.csv")
    assert len(Scheduler(engine, [source / "releases.toml"], settle_s=0).scan()) == 1
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM healcat.scheduled_ingest WHERE mapping = :m"), {"m": str(mapping.resolve())})


def test_links_within_the_folders_are_followed_and_the_data_folder_may_be_a_link(engine, tmp_path, scratch_release,
                                                                                monkeypatch):
    real = tmp_path / "real-data"
    (real / "store").mkdir(parents=True)
    _table().write(real / "store" / "rows.csv", format="ascii.csv")
    (real / "rows.csv").symlink_to(real / "store" / "rows.csv")  # a link within the data folder
    (tmp_path / "data").symlink_to(real, target_is_directory=True)  # as /tmp/shared -> /work/shared
    monkeypatch.setenv("HEALCAT_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "mappings").mkdir()
    mapping = _mapping(tmp_path / "mappings", Path("rows.csv"), "csv")  # relative: in the data folder
    assert ingest_release(mapping, engine).row_counts["source"] == 3
    (real / "out.csv").symlink_to(_secret(tmp_path))
    with pytest.raises(MappingError, match=f"the link {tmp_path / 'data' / 'out.csv'} -> "):
        ingest_release(_mapping(tmp_path / "mappings", Path("out.csv"), "csv"), engine)


def test_a_light_curve_linking_out_of_the_folders_is_refused(engine, tmp_path, scratch_release):
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "ZTFB.csv").write_text(CURVE)
    (tmp_path / "drop").mkdir()
    mapping = _ztf_copy(tmp_path / "drop", "linked", {"ZTFA": CURVE})
    curves = tmp_path / "drop" / "curves"
    (curves / "ZTFB.csv").symlink_to(tmp_path / "outside" / "ZTFB.csv")
    with pytest.raises(MappingError, match=f"the link {curves / 'ZTFB.csv'} -> {tmp_path / 'outside' / 'ZTFB.csv'}"):
        ingest_release(mapping, engine)
    assert _releases(engine) == 0
    (curves / "ZTFB.csv").unlink()
    (tmp_path / "drop" / "store").mkdir()
    (tmp_path / "drop" / "store" / "ZTFB.csv").write_text(CURVE)
    (curves / "ZTFB.csv").symlink_to(tmp_path / "drop" / "store" / "ZTFB.csv")  # within the mapping's folder
    assert ingest_release(mapping, engine).row_counts["series_read"] == 2


def test_a_link_swapped_in_after_the_path_was_checked_is_refused_where_it_is_opened(engine, tmp_path, scratch_release,
                                                                                    monkeypatch):
    """input_file checked the path's real path, then hash_file opened the path again: a link to a file outside,
    swapped in between, was read (and its rows loaded). The descriptor read is checked now."""
    import ingest.load

    secret = _secret(tmp_path)
    drop = tmp_path / "drop"
    drop.mkdir()
    _table().write(drop / "rows.csv", format="ascii.csv")
    mapping = _mapping(drop, Path("rows.csv"), "csv")
    checked = ingest.load.input_file

    def then_swapped(*args, **kwargs):  # the race: the path passes its check, then becomes a link out
        path = checked(*args, **kwargs)
        os.remove(path)
        path.symlink_to(secret)
        return path

    monkeypatch.setattr(ingest.load, "input_file", then_swapped)
    with pytest.raises(MappingError, match="links are followed only within them") as refused:
        ingest_release(mapping, engine)
    assert f"the link {drop / 'rows.csv'} -> {secret}" in str(refused.value)
    assert _releases(engine) == 0


def test_hash_file_refuses_a_descriptor_whose_real_path_lies_outside(tmp_path):
    """Whatever the path's text, the file opened is what is checked: /proc/self/fd/N's target on Linux."""
    import hashlib

    from ingest.load import hash_file
    from ingest.mapping import opened_path

    secret = _secret(tmp_path)
    (tmp_path / "drop").mkdir()
    (tmp_path / "drop" / "link.csv").symlink_to(secret)
    with open(tmp_path / "drop" / "link.csv", "rb") as fh:
        assert opened_path(fh, tmp_path / "drop" / "link.csv") == secret
    with pytest.raises(MappingError, match=f"{secret} lies outside"):
        hash_file(hashlib.sha256(), tmp_path / "drop" / "link.csv", (tmp_path / "drop" / "m.toml",))
    inside = tmp_path / "drop" / "rows.csv"
    _table().write(inside, format="ascii.csv")
    assert hash_file(hashlib.sha256(), inside, (tmp_path / "drop" / "m.toml",))[1] == inside.stat().st_ino


def test_a_light_curve_swapped_for_a_link_after_it_was_found_is_refused_where_it_is_opened(
        engine, tmp_path, scratch_release, monkeypatch):
    """The per-object files are checked when found (input_files), then opened to be hashed: a curve
    swapped for a link to a file outside in between was read. The descriptor hashed is checked now."""
    from ingest.perobject_mapping import PerObjectMapping

    secret = tmp_path / "outside" / "ZTFB.csv"
    secret.parent.mkdir()
    secret.write_text(CURVE)
    (tmp_path / "drop").mkdir()
    mapping = _ztf_copy(tmp_path / "drop", "swapped", {"ZTFA": CURVE, "ZTFB": CURVE})
    found = PerObjectMapping.input_files

    def then_swapped(self, *args, **kwargs):  # the race: the files pass their check, then one becomes a link out
        inputs = found(self, *args, **kwargs)
        curve = tmp_path / "drop" / "curves" / "ZTFB.csv"
        os.remove(curve)
        curve.symlink_to(secret)
        return inputs

    monkeypatch.setattr(PerObjectMapping, "input_files", then_swapped)
    with pytest.raises(MappingError, match=f"the link {tmp_path / 'drop' / 'curves' / 'ZTFB.csv'} -> {secret}"):
        ingest_release(mapping, engine)
    assert _releases(engine) == 0
