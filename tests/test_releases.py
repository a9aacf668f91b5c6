"""Release lifecycle: a new release supersedes the old one atomically, and its changes are recorded."""

from __future__ import annotations

import threading
import time

import astropy.units as u
import pytest
import sqlalchemy as sa
from astropy.coordinates import SkyCoord

from catalog.cli import main
from ingest.load import ingest_release
from tests.conftest import ADVISORY_WAIT, scratch_mapping, sdss_rows, sessions, spec_name, wait_until, write_csv

SCRATCH_CURRENT = sa.text(
    "SELECT r.name, count(*) AS n FROM healcat.current_source AS s JOIN healcat.release AS r USING (release_id) "
    "JOIN healcat.survey AS v USING (survey_id) WHERE v.name = 'scratch' GROUP BY r.name")


def _status(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text(
            "SELECT r.name, r.status FROM healcat.release AS r JOIN healcat.survey AS v USING (survey_id) "
            "WHERE v.name = 'scratch'")).all())


def _changes(engine, release: str) -> dict[str, set[tuple[str, str | None, str | None]]]:
    """change -> {(object_id, previous object_id, matched_by)}."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT c.change, n.object_id, o.object_id AS previous, c.matched_by "
            "FROM healcat.release_change AS c JOIN healcat.release AS r USING (release_id) "
            "LEFT JOIN healcat.source AS n ON c.change <> 'vanished' AND (n.shard, n.source_id) = (c.shard, c.source_id) "
            "LEFT JOIN healcat.source AS o ON (o.shard, o.source_id) = (c.previous_shard, c.previous_source_id) "
            "WHERE r.name = :name"), {"name": release}).all()
    out: dict[str, set] = {"new": set(), "changed": set(), "vanished": set()}
    for r in rows:
        out[r.change].add((r.object_id, r.previous, r.matched_by))
    return out


@pytest.fixture
def two_releases(engine, catalog, tmp_path, scratch_release):
    """scratch/v1: SDSS rows 0-99. scratch/v2: rows 20-119, row 30's redshift changed and row 40 under
    another plate number (a new id at the same position). Returns the rows."""
    rows = sdss_rows()[:120]
    coords = SkyCoord([float(r["ra"]) for r in rows] * u.deg, [float(r["dec"]) for r in rows] * u.deg)
    gone, arrived = coords[:20], coords[100:]
    assert gone[:, None].separation(arrived[None, :]).min() > 1 * u.arcsec, \
        "precondition: no vanished object sits within 1 arcsec of a new one (else they would be cross-identified)"
    write_csv(tmp_path / "v1.csv", rows[:100])
    v2 = [dict(r) for r in rows[20:120]]
    v2[10]["redshift"] = str(float(v2[10]["redshift"]) + 0.01)  # row 30
    v2[20]["plate"] = str(int(v2[20]["plate"]) + 9000)  # row 40
    write_csv(tmp_path / "v2.csv", v2)
    ingest_release(scratch_mapping(tmp_path, "v1"), engine, file=tmp_path / "v1.csv")
    ingest_release(scratch_mapping(tmp_path, "v2"), engine, file=tmp_path / "v2.csv")
    return rows, v2, tmp_path


def test_a_new_release_supersedes_the_old_one_and_records_what_changed(engine, two_releases):
    rows, v2, _ = two_releases
    assert _status(engine) == {"scratch/v1": "superseded", "scratch/v2": "published"}
    changes = _changes(engine, "scratch/v2")
    assert changes["new"] == {(spec_name(r), None, None) for r in rows[100:]}
    assert changes["vanished"] == {(None, spec_name(r), None) for r in rows[:20]}
    assert changes["changed"] == {(spec_name(rows[30]), spec_name(rows[30]), "object_id"),
                                  (spec_name(v2[20]), spec_name(rows[40]), "position")}
    with engine.connect() as conn:
        assert conn.execute(SCRATCH_CURRENT).all() == [("scratch/v2", 100)]
        previous = conn.scalar(sa.text("SELECT p.name FROM healcat.release r JOIN healcat.release p "
                                       "ON p.release_id = r.previous_release_id WHERE r.name = 'scratch/v2'"))
        assert previous == "scratch/v1"
        # The old release stays queryable by name, whole.
        assert conn.scalar(sa.text("SELECT count(*) FROM healcat.source JOIN healcat.release USING (release_id) "
                                   "WHERE name = 'scratch/v1'")) == 100
        z = conn.execute(sa.text(
            "SELECT r.name, z.z FROM healcat.spec_redshift z JOIN healcat.source s USING (shard, source_id) "
            "JOIN healcat.release r USING (release_id) WHERE s.object_id = :id AND r.name LIKE 'scratch/%' ORDER BY r.name"),
            {"id": spec_name(rows[30])}).all()
        assert [n for n, _ in z] == ["scratch/v1", "scratch/v2"] and z[1].z == pytest.approx(z[0].z + 0.01)
        current_z = conn.execute(sa.text(
            "SELECT z.z FROM healcat.current_spec_redshift z JOIN healcat.source s USING (shard, source_id) "
            "JOIN healcat.release r USING (release_id) WHERE s.object_id = :id AND r.name LIKE 'scratch/%'"),
            {"id": spec_name(rows[30])}).scalars().all()
        assert current_z == [z[1].z]
        n_mags = sum(1 for r in v2 for b in "ugriz" if r[b] not in ("", "-9999"))
        assert conn.scalar(sa.text(
            "SELECT count(*) FROM healcat.current_photometry p JOIN healcat.source s USING (shard, source_id) "
            "JOIN healcat.release r USING (release_id) WHERE r.name LIKE 'scratch/%'")) == n_mags
        # Other surveys' current releases are untouched.
        others = set(conn.execute(sa.text("SELECT name FROM healcat.current_release WHERE survey <> 'scratch'"))
                     .scalars())
        assert {"sdss/dr14-skyserver-10k", "gaia/dr3-bright-g10"} <= others
        assert others == set(conn.execute(sa.text(
            "SELECT name FROM healcat.release WHERE name NOT LIKE 'scratch/%' AND status = 'published'")).scalars())


def test_release_commands_list_show_and_diff(engine, two_releases, capsys):
    rows, v2, _ = two_releases
    assert main(["release", "list", "--survey", "scratch", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("release,survey,status,release_date,n_source,previous,n_new,n_changed,n_vanished")
    assert lines[1].startswith("scratch/v1,scratch,superseded,2017-07-31,100,,0,0,0,")
    assert lines[2].startswith("scratch/v2,scratch,published,2017-07-31,100,scratch/v1,20,2,20,")
    assert main(["release", "show", "scratch/v2"]) == 0
    out = capsys.readouterr().out
    assert "new 20, changed 2, vanished 20, unchanged 78" in out and "published" in out
    assert main(["release", "diff", "scratch/v2", "--change", "changed", "--fields", "--format", "csv"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("change,object_id,previous_object_id,matched_by,separation_arcsec,source_id,previous_source_id,"
                      "fields")
    assert len(out) == 3 and any(f"changed,{spec_name(v2[20])},{spec_name(rows[40])},position,0.0," in line
                                 and line.endswith(',"object_id, attrs.plate"') for line in out)
    assert any(line.startswith(f"changed,{spec_name(rows[30])},") and line.endswith(",spec_redshift") for line in out)
    assert main(["release", "diff", "no/such-release"]) == 1
    assert "no release named 'no/such-release'" in capsys.readouterr().err
    assert main(["release", "diff", "scratch/v1", "--format", "csv"]) == 0  # a first release: said, not a bare header
    out, err = capsys.readouterr()
    assert out.strip() == ("change,object_id,previous_object_id,matched_by,separation_arcsec,source_id,"
                           "previous_source_id")  # without --fields
    assert err.strip() == "scratch/v1 is its survey's first release: there is no previous release to diff against"


def test_an_older_release_loaded_later_is_superseded_at_once(engine, catalog, tmp_path, scratch_release):
    rows = sdss_rows()[:30]
    write_csv(tmp_path / "new.csv", rows[:20])
    write_csv(tmp_path / "old.csv", rows[10:])
    ingest_release(scratch_mapping(tmp_path, "new"), engine, file=tmp_path / "new.csv")
    old = scratch_mapping(tmp_path, "old")
    old.write_text(old.read_text().replace("date = 2017-07-31", "date = 2010-01-01"))
    ingest_release(old, engine, file=tmp_path / "old.csv")
    assert _status(engine) == {"scratch/new": "published", "scratch/old": "superseded"}
    with engine.connect() as conn:
        assert conn.execute(SCRATCH_CURRENT).all() == [("scratch/new", 20)]
    assert all(not c for c in _changes(engine, "scratch/old").values()), "nothing before it to compare with"
    # The newer release now follows it: compared with it anew (it had nothing before it when loaded).
    changes = _changes(engine, "scratch/new")
    assert {c[0] for c in changes["new"]} == {spec_name(r) for r in rows[:10]} and not changes["changed"]
    assert {c[1] for c in changes["vanished"]} == {spec_name(r) for r in rows[20:]}
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT p.name FROM healcat.release r JOIN healcat.release p "
                                   "ON p.release_id = r.previous_release_id WHERE r.name = 'scratch/new'")) == "scratch/old"


def test_ingesting_a_release_twice_changes_nothing(engine, two_releases):
    def snapshot():
        with engine.connect() as conn:
            return (conn.execute(sa.text("SELECT name, status, previous_release_id FROM healcat.release "
                                         "ORDER BY release_id")).all(),
                    conn.scalar(sa.text("SELECT count(*) FROM healcat.release_change")),
                    conn.scalar(sa.text("SELECT count(*) FROM healcat.source")))

    before = snapshot()
    folder = two_releases[2]
    assert ingest_release(folder / "scratch-v1.toml", engine, file=folder / "v1.csv").already_loaded
    assert snapshot() == before


def _previous(engine, release: str) -> str | None:
    with engine.connect() as conn:
        return conn.scalar(sa.text("SELECT p.name FROM healcat.release r JOIN healcat.release p "
                                   "ON p.release_id = r.previous_release_id WHERE r.name = :n"), {"n": release})


def test_a_withdrawn_release_leaves_its_survey_until_restored(engine, catalog, two_releases, capsys):
    from catalog import source_id_of
    from catalog.errors import QueryError
    from ingest.inference import run_model
    from ingest.registry import train
    from ingest.worker import run_infer, run_ingest

    rows, v2, folder = two_releases
    v2_changes = _changes(engine, "scratch/v2")
    assert main(["release", "withdraw", "scratch/v2", "--reason", "plate numbers off by 9000"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("scratch/v2: withdrawn; scratch/v1 is its survey's published release now; 2 infer jobs "
                          "queued on it"), "the current models (classifier, photo-z) queued on the release published now"
    with engine.connect() as conn:
        assert sorted(conn.execute(sa.text("SELECT args->>'model' FROM healcat.job WHERE kind = 'infer' AND "
                                           "args->>'release' = 'scratch/v1'")).scalars()) == \
            sorted([catalog["classifier"].name, catalog["model"].name])
    assert _status(engine) == {"scratch/v1": "published", "scratch/v2": "withdrawn"}
    with engine.connect() as conn:
        assert conn.execute(SCRATCH_CURRENT).all() == [("scratch/v1", 100)]
        assert conn.scalar(sa.text("SELECT count(*) FROM healcat.source JOIN healcat.release USING (release_id) "
                                   "WHERE name = 'scratch/v2'")) == 100, "its rows are kept, read by its name"
    assert _changes(engine, "scratch/v2") == v2_changes
    assert main(["release", "show", "scratch/v2"]) == 0
    assert ": plate numbers off by 9000" in capsys.readouterr().out
    assert main(["release", "withdraw", "scratch/v2", "--reason", "again"]) == 1
    assert "scratch/v2 was withdrawn already" in capsys.readouterr().err

    # Loading it again changes nothing, and queues no model run; no run or training reads it.
    again = run_ingest(engine, {"mapping": str(folder / "scratch-v2.toml"), "file": str(folder / "v2.csv")}, 0)
    assert again["already_loaded"] and again["status"] == "withdrawn" and again["queued_jobs"] == []
    with pytest.raises(QueryError, match="infer: release scratch/v2 was withdrawn at .* [(]plate numbers off by 9000[)]"):
        run_model(engine, catalog["classifier"].name, "scratch/v2")
    with pytest.raises(QueryError, match="train photoz: release scratch/v2 was withdrawn"):
        train(engine, "photoz", "scratch/v2")
    job = run_infer(engine, {"model": catalog["classifier"].name, "release": "scratch/v2"}, 0)  # queued before
    assert job["not_run"].startswith("release scratch/v2 was withdrawn") and job["queued_jobs"] == []
    moved = spec_name(v2[20])  # row 40 under another plate: only in v2
    with pytest.raises(QueryError, match=f"object_id '{moved}': only in withdrawn releases scratch/v2; name one"):
        source_id_of(moved)
    assert source_id_of(moved, release="scratch/v2") > 0

    # The next release follows the one before the withdrawn one.
    write_csv(folder / "v3.csv", rows[20:120])  # v2's rows without its two changes
    ingest_release(scratch_mapping(folder, "v3"), engine, file=folder / "v3.csv")
    assert _status(engine) == {"scratch/v1": "superseded", "scratch/v2": "withdrawn", "scratch/v3": "published"}
    assert _previous(engine, "scratch/v3") == "scratch/v1"
    changes = _changes(engine, "scratch/v3")
    assert (len(changes["new"]), len(changes["vanished"]), changes["changed"]) == (20, 20, set())

    # Restored between the two: superseded, its diff as it was, and v3 compared with it anew.
    assert main(["release", "restore", "scratch/v2"]) == 0
    assert capsys.readouterr().out.startswith("scratch/v2: restored, superseded; 2 infer jobs queued on it")
    assert _status(engine) == {"scratch/v1": "superseded", "scratch/v2": "superseded", "scratch/v3": "published"}
    assert _changes(engine, "scratch/v2") == v2_changes and _previous(engine, "scratch/v3") == "scratch/v2"
    changes = _changes(engine, "scratch/v3")
    assert (changes["new"], changes["vanished"]) == (set(), set())
    assert changes["changed"] == {(spec_name(rows[30]), spec_name(rows[30]), "object_id"),
                                  (spec_name(rows[40]), spec_name(v2[20]), "position")}
    assert main(["release", "restore", "scratch/v2"]) == 1
    assert "scratch/v2 is not withdrawn" in capsys.readouterr().err

    # The first release withdrawn: the one after it has nothing before it; the published one stays.
    assert main(["release", "withdraw", "scratch/v1", "--reason", "test"]) == 0
    assert capsys.readouterr().out.startswith("scratch/v1: withdrawn; scratch/v3 is its survey's published")
    assert _previous(engine, "scratch/v2") is None and all(not c for c in _changes(engine, "scratch/v2").values())
    assert main(["release", "list", "--survey", "scratch", "--format", "csv"]) == 0
    assert [line.split(",")[2] for line in capsys.readouterr().out.splitlines()[1:]] == \
        ["withdrawn", "superseded", "published"]
    assert main(["release", "withdraw", "scratch/v3", "--reason", " "]) == 1
    assert "say why" in capsys.readouterr().err


def test_one_published_release_per_survey_is_a_constraint(conn, catalog):
    with pytest.raises(sa.exc.IntegrityError, match="uq_release_published_survey"):
        conn.execute(sa.text(
            "INSERT INTO healcat.release (survey_id, name, version, source_uri, checksum, mapping, status) "
            "SELECT survey_id, 'sdss/dup', 'dup', 'x', 'x', '{}', 'published' FROM healcat.survey WHERE name = 'sdss'"))


def test_readers_see_the_old_release_or_the_new_one_never_half(engine, catalog, tmp_path, scratch_release):
    rows = sdss_rows()
    write_csv(tmp_path / "a.csv", rows[:40])
    write_csv(tmp_path / "b.csv", rows)
    ingest_release(scratch_mapping(tmp_path, "a"), engine, file=tmp_path / "a.csv")
    loader = threading.Thread(target=ingest_release, args=(scratch_mapping(tmp_path, "b"), engine),
                              kwargs={"file": tmp_path / "b.csv"})
    seen = []

    def look() -> tuple:
        observed = tuple(sorted(reader.execute(SCRATCH_CURRENT).all()))
        reader.commit()
        seen.append(observed)
        return observed

    with engine.connect() as reader, engine.connect() as publisher:
        # Another publisher of the survey holds its lock: the load stops with its rows copied, unpublished.
        publisher.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('publish:' || survey_id)) "
                                  "FROM healcat.survey WHERE name = 'scratch'"))
        loader.start()
        wait_until(lambda: sessions(engine, ADVISORY_WAIT) or not loader.is_alive(), "the load waits to publish")
        assert loader.is_alive()
        assert look() == (("scratch/a", 40),), "the rows copied are not seen before they are published"
        publisher.rollback()
        deadline = time.monotonic() + 120  # liveness
        while loader.is_alive():
            look()
            assert time.monotonic() < deadline
        loader.join()
        final = look()
    assert set(seen) <= {(("scratch/a", 40),), (("scratch/b", len(rows)),)}, "never half, never both"
    assert final == (("scratch/b", len(rows)),)
