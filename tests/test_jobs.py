"""Workers and the scheduler as they run in production: real processes, races, SIGKILL."""

from __future__ import annotations

import logging
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from catalog import db
from catalog.cli import main
from catalog.errors import IngestError
from ingest import queue
from ingest.load import ingest_release, release_checksum
from ingest.mapping import data_dir, load_mapping
from ingest.scheduler import Scheduler, candidates
from ingest.worker import Worker
from tests.conftest import (
    ADVISORY_WAIT, SDSS, gaia_slice, kill_while_copying, per_object_mapping, scratch_mapping, sdss_rows, sessions,
    wait_until, write_csv,
)

# What a release holds, independent of the source_ids it was given: ordered rows, hashed.
SOURCE_CHECKSUM = sa.text("""
SELECT count(*), md5(string_agg(row(s.object_id, s.shard, s.ra, s.dec, s.hpx, s.attrs)::text, ',' ORDER BY s.object_id))
FROM healcat.source s JOIN healcat.release r USING (release_id) WHERE r.name = :name""")
PHOTOMETRY_CHECKSUM = sa.text("""
SELECT count(*), md5(string_agg(row(s.object_id, p.band, p.mag, p.mag_err, p.mag_system)::text, ','
                                ORDER BY s.object_id, p.band))
FROM healcat.photometry p JOIN healcat.source s USING (shard, source_id) JOIN healcat.release r USING (release_id)
WHERE r.name = :name""")


def _jobs(engine, kind: str | None = None):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT * FROM healcat.job WHERE CAST(:kind AS text) IS NULL OR kind = :kind ORDER BY job_id"),
                            {"kind": kind}).all()


def test_a_worker_killed_mid_load_leaves_the_tables_of_an_uninterrupted_run(engine, catalog, tmp_path,
                                                                           scratch_release):
    n = 100_000
    ref_mapping, path = gaia_slice(tmp_path, n, "reference")
    killed_mapping, _ = gaia_slice(tmp_path, n, "killed")
    ingest_release(ref_mapping, engine, file=path)  # the uninterrupted run
    with engine.begin() as conn:
        job_id, _ = queue.enqueue(conn, "ingest", {"mapping": str(killed_mapping), "file": str(path)})

    app = f"healcat-worker-kill-{os.getpid()}"
    kill_while_copying(engine, ["worker", "--poll", "0.2"], app)
    (job,) = _jobs(engine, "ingest")
    assert job.status == "running", "a SIGKILLed worker records nothing"

    # A new worker finds the orphan once the server has noticed the dead session, and runs it.
    env = {**os.environ, "HEALCAT_DATABASE_URL": db.libpq_url(engine.url)}
    restarted = subprocess.run([sys.executable, "-m", "catalog.cli", "worker", "--once", "--poll", "0.2"],
                               env=env, capture_output=True, text=True, timeout=300)
    assert restarted.returncode == 0, restarted.stderr
    def done() -> bool:  # the server may notice the dead session late
        Worker(engine, name="test").run(once=True)
        return _jobs(engine, "ingest")[0].status == "done"

    wait_until(done, "a worker runs the dead worker's job", poll_s=0.1)

    (job,) = _jobs(engine, "ingest")
    assert (job.job_id, job.status, job.attempts) == (job_id, "done", 2) and not job.result["already_loaded"]
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM healcat.release WHERE name = 'scratch/killed'")) == 1
        for query in (SOURCE_CHECKSUM, PHOTOMETRY_CHECKSUM):
            reference = conn.execute(query, {"name": "scratch/reference"}).one()
            assert conn.execute(query, {"name": "scratch/killed"}).one() == reference
            assert reference[0] > 0.99 * n
        # Same content as the release before it: nothing new, changed or vanished.
        assert conn.scalar(sa.text("SELECT count(*) FROM healcat.release_change c JOIN healcat.release r "
                                   "USING (release_id) WHERE r.name = 'scratch/killed'")) == 0
    assert [j.kind for j in _jobs(engine)] == ["ingest", "index"], "no inference applies to Gaia stars"


def test_two_workers_racing_run_each_job_once(engine, catalog, tmp_path, scratch_release):
    write_csv(tmp_path / "race.csv", sdss_rows()[:30])
    with engine.begin() as conn:
        queue.enqueue(conn, "ingest", {"mapping": str(scratch_mapping(tmp_path, "race")),
                                       "file": str(tmp_path / "race.csv")})
    start = threading.Barrier(2)
    done = []

    def work(name):
        start.wait()
        done.append(Worker(engine, name=name).run(once=True))

    threads = [threading.Thread(target=work, args=(f"racer-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    jobs = _jobs(engine)
    states = [(j.kind, j.status, j.attempts) for j in jobs]  # ingest, the classifier and photo-z, their index
    assert states[:3] == [("ingest", "done", 1), ("infer", "done", 1), ("infer", "done", 1)]
    assert set(states[3:]) == {("index", "done", 1)}, "each infer job queues the index job unless one waits"
    assert sum(done) == len(jobs), "each job was run by exactly one worker"
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM healcat.source JOIN healcat.release USING (release_id) "
                                   "WHERE name = 'scratch/race'")) == 30


def test_scheduler_queues_each_new_release_once_even_with_two_running(engine, catalog, tmp_path, scratch_release):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    write_csv(incoming / "v1.csv", sdss_rows()[:25])
    mapping = scratch_mapping(incoming, "sched1")
    mapping.write_text(mapping.read_text().replace(load_mapping(SDSS).file, "v1.csv"))
    schedulers = [Scheduler(engine, [incoming], name=f"scheduler-{i}", settle_s=0) for i in range(2)]
    start = threading.Barrier(2)
    queued = []

    def scan(s):
        start.wait()
        queued.extend(s.scan())

    threads = [threading.Thread(target=scan, args=(s,)) for s in schedulers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(queued) == 1 and [j.kind for j in _jobs(engine)] == ["ingest"]
    (job,) = _jobs(engine)
    assert job.args == {"mapping": str(mapping.resolve()), "file": str(incoming / "v1.csv"),
                        "checksum": release_checksum(incoming / "v1.csv", load_mapping(mapping)),
                        "policy": {"release.max_rejected_fraction": 1.0}}  # scratch_mapping's
    assert schedulers[0].scan() == [], "already scheduled"
    Worker(engine, name="test").run(once=True)
    with engine.begin() as conn:  # even with its record gone, a loaded release is not queued again
        conn.execute(sa.text("DELETE FROM healcat.scheduled_ingest"))
    assert schedulers[1].scan() == []

    # A manifest naming a second release of the survey: found, queued, loaded, current.
    write_csv(incoming / "v2.csv", sdss_rows()[10:30])
    manifest = tmp_path / "releases.toml"
    manifest.write_text(f'[[release]]\nmapping = "{scratch_mapping(tmp_path, "sched2").name}"\n'
                        f'file = "incoming/v2.csv"\n')
    assert main(["scheduler", "--source", str(manifest), "--source", str(incoming), "--once", "--settle", "0"]) == 0
    assert main(["worker", "--once", "--poll", "0.1"]) == 0
    with engine.connect() as conn:
        current = conn.execute(sa.text("SELECT name, row_counts->>'source' FROM healcat.current_release "
                                       "WHERE survey = 'scratch'")).all()
        scheduled = conn.scalar(sa.text("SELECT count(*) FROM healcat.scheduled_ingest"))
    assert current == [("scratch/sched2", "20")] and scheduled == 1


def test_ingest_and_the_scheduler_find_one_file_and_queue_it_by_its_absolute_path(engine, catalog, tmp_path,
                                                                                   scratch_release, monkeypatch):
    """A folder's mapping with its file beside it, where the data folder has a file of the same relative name:
    the scheduler read the one beside, `healcat ingest` the data folder's, and whichever ran first published
    its file under the release's name (the other failed). And a manifest named by a relative path queued its
    file relative to the scheduler's folder: a worker elsewhere could not find it, and release.source_uri
    said a path that meant nothing later."""
    drop = tmp_path / "drop"
    drop.mkdir()
    mapping = scratch_mapping(drop, "beside")
    beside = drop / load_mapping(mapping).file  # the data folder's relative name, 20 rows here
    beside.parent.mkdir()
    write_csv(beside, sdss_rows()[:20])
    assert (data_dir() / load_mapping(mapping).file).is_file()
    assert load_mapping(mapping).input_path() == beside
    monkeypatch.chdir(tmp_path)
    manifest = Path("releases.toml")
    manifest.write_text('[[release]]\nmapping = "drop/scratch-beside.toml"\n')
    assert [c.mapping.is_absolute() for c in candidates(manifest)] == [True]
    (job_id,) = Scheduler(engine, [manifest], settle_s=0).scan()
    with engine.connect() as conn:
        args = conn.scalar(sa.text("SELECT args FROM healcat.job WHERE job_id = :j"), {"j": job_id})
    assert (args["file"], args["mapping"]) == (str(beside), str(mapping.absolute()))
    monkeypatch.chdir(tmp_path / "drop")  # the worker elsewhere
    assert Worker(engine, name="test").run(once=True) >= 1
    with engine.connect() as conn:
        uri, sources = conn.execute(sa.text("SELECT source_uri, row_counts->>'source' FROM healcat.release "
                                            "WHERE name = 'scratch/beside'")).one()
    assert (uri, sources) == (str(beside), "20")
    assert ingest_release(Path("scratch-beside.toml"), engine).already_loaded  # `healcat ingest` finds the same


def test_a_manifest_written_just_now_waits_for_the_settle_time(engine, catalog, tmp_path, scratch_release, caplog):
    """The settle time looked at the mapping and the files, not the manifest: one saved in place and read
    half written could queue an entry without the version or date written after it."""
    drop = tmp_path / "drop"
    drop.mkdir()
    mapping = scratch_mapping(drop, "settle")
    mapping.write_text(mapping.read_text().replace(load_mapping(SDSS).file, "settle.csv"))
    write_csv(drop / "settle.csv", sdss_rows()[:20])
    settled = time.time() - 120
    for path in (mapping, drop / "settle.csv"):
        os.utime(path, (settled, settled))
    manifest = tmp_path / "releases.toml"
    manifest.write_text(f'[[release]]\nmapping = "drop/{mapping.name}"\nfile = "drop/settle.csv"\n')
    scheduler = Scheduler(engine, [manifest], settle_s=60)
    with caplog.at_level(logging.INFO, logger="ingest.scheduler"):
        assert scheduler.scan() == []
    assert f"its manifest {manifest} modified" in caplog.text
    os.utime(manifest, (settled, settled))
    assert len(scheduler.scan()) == 1


def test_a_load_its_policy_refused_is_queued_again_once_the_mapping_allows_it(engine, catalog, tmp_path,
                                                                              scratch_release):
    """Too many rows rejected: the job fails. Allowing them in the mapping leaves the release's checksum
    as it was (policy, not content), so the scan found the row it had claimed and queued nothing."""
    drop = tmp_path / "drop"
    drop.mkdir()
    rows = sdss_rows()[:20]
    rows[0]["g"] = rows[1]["g"] = "-9999.5"  # 2 of 20 rejected: 10%
    mapping = scratch_mapping(drop, "policy", max_rejected_fraction=None)
    mapping.write_text(mapping.read_text().replace(load_mapping(SDSS).file, "policy.csv"))
    write_csv(drop / "policy.csv", rows)
    scheduler = Scheduler(engine, [drop], settle_s=0)
    (first,) = scheduler.scan()
    Worker(engine, name="test").run(once=True)
    assert scheduler.scan() == []  # failed, and nothing changed: not queued again
    mapping.write_text(mapping.read_text().replace("[release]\n", "[release]\nmax_rejected_fraction = 0.2\n", 1))
    os.utime(mapping, (time.time() - 60, time.time() - 60))  # settled
    (again,) = scheduler.scan()
    assert again != first and scheduler.scan() == []
    Worker(engine, name="test").run(once=True)
    with engine.connect() as conn:
        status = dict(conn.execute(sa.text("SELECT job_id, status FROM healcat.job WHERE job_id IN (:a, :b)"),
                                   {"a": first, "b": again}).all())
        counts = conn.scalar(sa.text("SELECT row_counts FROM healcat.release WHERE name = 'scratch/policy'"))
    assert status == {first: "failed", again: "done"} and (counts["source"], counts["quarantine"]) == (18, 2)


def test_a_manifest_entry_whose_file_is_no_text_is_refused_naming_it(tmp_path):
    """file = ["a.csv"] was dropped without a word, and the mapping's own file queued in its place."""
    manifest = tmp_path / "releases.toml"
    entry = '[[release]]\nmapping = "sdss_dr14_skyserver_10k"\nversion = "v{n}"\nfile = {file}\n'
    manifest.write_text(entry.format(n=1, file='"a.csv"'))
    (candidate,) = candidates(manifest)
    assert (candidate.file, candidate.version) == (tmp_path / "a.csv", "v1")
    manifest.write_text(entry.format(n=1, file='"a.csv"') + entry.format(n=2, file='["b.csv"]')
                        + entry.format(n=3, file='"c.csv"'))
    first, second, third = candidates(manifest)  # the bad entry alone is skipped (the scan logs why)
    assert (first.file, first.error, third.file, third.version) == (tmp_path / "a.csv", None, tmp_path / "c.csv", "v3")
    assert second.error == "file must be a string (a path relative to the manifest), got ['b.csv']"
    assert (second.describe(), third.describe()) == (f"release source {manifest} [[release]] number 2",
                                                     f"release source {manifest} [[release]] number 3 (mapping "
                                                     "sdss_dr14_skyserver_10k)")


def test_scheduler_skips_what_it_cannot_read_and_says_why(engine, catalog, tmp_path, scratch_release, caplog,
                                                          capsys):
    (tmp_path / "broken.toml").write_text("[survey\nname = ")
    (tmp_path / ".half-copied.toml").write_text("[survey\nna")  # hidden: a copy not yet renamed into place
    missing = scratch_mapping(tmp_path, "nofile")
    missing.write_text(missing.read_text().replace(load_mapping(SDSS).file, "not-here.csv"))
    (tmp_path / "sentinel.toml").write_text(load_mapping(SDSS).path.read_text().replace("[-9999.0]", '["n/a"]'))
    assert Scheduler(engine, [tmp_path, tmp_path / "no-such-manifest.toml"]).scan() == []
    text = caplog.text
    assert "broken.toml: not valid TOML" in text
    assert (f"not-here.csv: no such file beside the mapping ({tmp_path}) or in the data folder ({data_dir()})"
            in text), "every place searched"
    assert "no-such-manifest.toml: no such directory or manifest file" in text
    assert "sentinel.toml: [photometry] sentinels: 'n/a' is not a number" in text
    assert "half-copied" not in text
    assert _jobs(engine) == []
    # Run once (by cron, a monitor), a scan that skipped anything fails, saying how much: it said
    # "0 ingest jobs queued" and exited 0.
    assert main(["scheduler", "--once", "--settle", "0", "--source", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert "0 ingest jobs queued" in out and "healcat: error: scheduler: 3 skipped, mappings or sources" in err

    # A mapping of light curves beside them: its files are those its globs match, the job has no 'file'.
    light_curves = per_object_mapping(tmp_path, "ztf_bts_snia", "sched-lc", {})
    scheduler = Scheduler(engine, [tmp_path], settle_s=0)  # the mapping was written just now
    try:
        (job_id,) = scheduler.scan()
        (job,) = _jobs(engine)
        assert job.job_id == job_id and set(job.args) == {"mapping", "checksum", "policy"}
        assert job.args["mapping"] == str(light_curves.resolve())
        assert scheduler.scan() == [], "already scheduled"
        # Cancelled by the operator: not queued again, and said once (later scans passed it over silently).
        assert main(["jobs", "--cancel", str(job_id)]) == 0
        caplog.clear()
        assert scheduler.scan() == [] and scheduler.scan() == []
        said = [r.getMessage() for r in caplog.records if "that job was cancelled" in r.getMessage()]
        assert len(said) == 1 and f"healcat enqueue ingest {light_curves}" in said[0], said
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM healcat.scheduled_ingest WHERE mapping = :m"),
                         {"m": str(light_curves.resolve())})


def test_scheduler_logs_a_skipped_mapping_once_until_its_reason_changes(engine, catalog, tmp_path, scratch_release,
                                                                       caplog):
    """A refused mapping was logged as an error at every scan (every 10 s); now once, each later scan's
    skip at DEBUG, and again as an error when the reason changes or it fails anew after a fix."""
    caplog.set_level(logging.DEBUG, logger="ingest.scheduler")
    mapping = scratch_mapping(tmp_path, "refused")
    mapping.write_text(mapping.read_text().replace(load_mapping(SDSS).file, "notyet.csv"))
    scheduler = Scheduler(engine, [tmp_path, tmp_path / "gone.toml"], settle_s=0)

    def skips() -> list[tuple[int, str]]:
        found = [(r.levelno, r.getMessage().split(":")[0]) for r in caplog.records if r.levelno != logging.INFO]
        caplog.clear()
        return found

    refused, gone = (logging.ERROR, f"skipped {mapping}"), (logging.ERROR, f"release source {tmp_path / 'gone.toml'}")
    assert scheduler.scan() == [] and skips() == [refused, gone]
    assert scheduler.scan() == [] and scheduler.scan() == []
    assert skips() == [(logging.DEBUG, refused[1]), (logging.DEBUG, gone[1])] * 2
    mapping.write_text(mapping.read_text().replace("notyet.csv", "still-not.csv"))  # another reason
    assert scheduler.scan() == [] and skips() == [refused, (logging.DEBUG, gone[1])]
    write_csv(tmp_path / "still-not.csv", sdss_rows()[:5])
    (job_id,) = scheduler.scan()
    assert skips() == [(logging.DEBUG, gone[1])]
    os.remove(tmp_path / "still-not.csv")  # fixed, then failing again: an error again
    assert scheduler.scan() == [] and skips() == [refused, (logging.DEBUG, gone[1])]


def test_a_manifest_entry_gives_a_new_release_of_a_shipped_mapping_its_version(engine, catalog, tmp_path,
                                                                                scratch_release, caplog):
    """README's manifest example, a shipped mapping with a new file, could only fail: queued, then refused
    by the worker ("already loaded from different content ... give the new release a new version"),
    as a manifest could not set the version. Now an entry may; without one the scan refuses it."""
    write_csv(tmp_path / "v1.csv", sdss_rows()[:10])
    mapping = scratch_mapping(tmp_path, "shipped")
    mapping.write_text(mapping.read_text().replace(load_mapping(SDSS).file, "v1.csv"))
    ingest_release(mapping, engine)
    (tmp_path / "incoming").mkdir()
    write_csv(tmp_path / "incoming" / "rerun.csv", sdss_rows()[10:30])
    manifest = tmp_path / "releases.toml"
    entry = f'[[release]]\nmapping = "{mapping.name}"\nfile = "incoming/rerun.csv"\n'
    manifest.write_text(entry)
    scheduler = Scheduler(engine, [manifest], settle_s=0)  # one, as a running scheduler: its checksums cached
    assert scheduler.scan() == [] and _jobs(engine) == []
    assert ("incoming/rerun.csv: release scratch/shipped is already loaded from different content" in caplog.text
            and 'a manifest entry\'s version = "..."' in caplog.text)
    # the line names the manifest's entry, not only the mapping (another entry may name it with its own version)
    assert f"skipped release source {manifest} [[release]] number 1 (mapping {mapping}): " in caplog.text

    manifest.write_text(entry + 'version = "shipped-rerun"\n')  # the checksum cached without it was kept
    (job_id,) = scheduler.scan()
    (job,) = _jobs(engine)
    assert job.args["version"] == "shipped-rerun"
    assert job.args["checksum"] == release_checksum(tmp_path / "incoming" / "rerun.csv",
                                                    load_mapping(mapping, "shipped-rerun"))
    assert Worker(engine, name="test").run(once=True) >= 1
    assert next(j for j in _jobs(engine) if j.job_id == job_id).status == "done"
    with engine.connect() as conn:
        current = conn.execute(sa.text("SELECT name, version, row_counts->>'source' FROM healcat.current_release "
                                       "WHERE survey = 'scratch'")).all()
    assert current == [("scratch/shipped-rerun", "shipped-rerun", "20")]
    manifest.write_text(entry + "version = 2\n")
    caplog.clear()
    assert Scheduler(engine, [manifest], settle_s=0).scan() == []
    assert "[[release]] number 1: version must be a string" in caplog.text
    for bad in ("", "a/b"):  # a release named 'scratch/' or 'scratch/a/b'
        manifest.write_text(entry + f'version = "{bad}"\n')
        caplog.clear()
        assert Scheduler(engine, [manifest], settle_s=0).scan() == []
        assert f"must be a non-empty text without '/' (the release is named survey/version), got {bad!r}" in caplog.text


def test_a_manifest_entry_giving_a_mapping_of_spectra_a_file_is_refused_naming_it(engine, tmp_path, scratch_release,
                                                                                   caplog):
    """The entry's file was dropped without a word and every spectrum the mapping's globs match queued under
    the entry's version in its place (`healcat ingest --file` refuses the same)."""
    one = tmp_path / "spec-0266-51602-0013.fits"
    one.write_bytes((data_dir() / "pyqsofit_sdss_spectra" / one.name).read_bytes())
    manifest = tmp_path / "releases.toml"
    manifest.write_text(f'[[release]]\nmapping = "sdss_spectra_pyqsofit"\nfile = "{one.name}"\nversion = "one"\n')
    assert Scheduler(engine, [manifest], settle_s=0).scan() == []
    assert _jobs(engine) == []
    assert (f"skipped release source {manifest} [[release]] number 1 (mapping sdss_spectra_pyqsofit): the entry "
            f"names file {one}, but a mapping of spectra or light curves reads the files its [series] (and [catalog]) "
            "globs match and takes no file" in caplog.text)


def test_a_release_date_from_a_manifest_or_the_command_line_places_a_re_release(engine, catalog, tmp_path,
                                                                              scratch_release, caplog, capsys):
    """A re-release through the same mapping took the mapping's date, so one meant to be older (a rerun
    of an earlier reduction) could not be placed before the published one: an entry's date (or
    --release-date) is the release's, part of its checksum."""
    write_csv(tmp_path / "v1.csv", sdss_rows()[:10])
    mapping = scratch_mapping(tmp_path, "dated")
    mapping.write_text(mapping.read_text().replace(load_mapping(SDSS).file, "v1.csv"))
    ingest_release(mapping, engine)  # the mapping's date, 2017-07-31
    write_csv(tmp_path / "rerun.csv", sdss_rows()[10:20])
    manifest = tmp_path / "releases.toml"
    entry = f'[[release]]\nmapping = "{mapping.name}"\nfile = "rerun.csv"\nversion = "rerun"\n'
    manifest.write_text(entry + "date = 2016-01-15\n")
    (job_id,) = Scheduler(engine, [manifest], settle_s=0).scan()
    (job,) = _jobs(engine)
    assert (job.args["version"], job.args["date"]) == ("rerun", "2016-01-15")
    assert job.args["checksum"] == release_checksum(tmp_path / "rerun.csv", load_mapping(mapping, "rerun", "2016-01-15"))
    # Cancelled by the operator: the next scan's hint is a command that queues this release again (it
    # named the mapping alone, which queued the mapping's own file under its own version and date).
    assert main(["jobs", "--cancel", str(job_id)]) == 0
    caplog.clear()
    assert Scheduler(engine, [manifest], settle_s=0).scan() == []
    (said,) = [r.getMessage() for r in caplog.records if "that job was cancelled" in r.getMessage()]
    command = shlex.split(said[said.index("(healcat enqueue ") + 1:said.rindex(" queues it)")])
    assert command == ["healcat", "enqueue", "ingest", str(mapping.resolve()), "--file", job.args["file"],
                       "--release-version", "rerun", "--release-date", "2016-01-15"], said
    assert main(command[1:]) == 0
    (job,) = _jobs(engine)
    job_id = job.job_id
    assert Worker(engine, name="test").run(once=True) >= 1
    done = next(j for j in _jobs(engine) if j.job_id == job_id)
    assert (done.status, done.result["status"]) == ("done", "superseded"), "older than the published release"
    with engine.connect() as conn:
        dates = dict(conn.execute(sa.text("SELECT r.version, r.release_date::text FROM healcat.release AS r "
                                          "JOIN healcat.survey AS s USING (survey_id) WHERE s.name = 'scratch'")).all())
    assert dates == {"dated": "2017-07-31", "rerun": "2016-01-15"}
    write_csv(tmp_path / "newer.csv", sdss_rows()[20:30])  # and from the command line, a newer one: current
    assert main(["ingest", str(mapping), "--file", str(tmp_path / "newer.csv"), "--release-version", "newer",
                 "--release-date", "2018-03-01"]) == 0
    assert "scratch/newer: published" in capsys.readouterr().out
    assert main(["ingest", str(mapping), "--release-version", "bad", "--release-date", "March 2018"]) == 1
    assert "a release date given instead of the mapping's must be a date such as 2017-07-31, got 'March 2018'" \
        in capsys.readouterr().err
    manifest.write_text(entry + 'date = "2016-01-15"\n')
    caplog.clear()
    assert Scheduler(engine, [manifest], settle_s=0).scan() == []
    assert "[[release]] number 1: date must be a TOML date such as 2017-07-31, got '2016-01-15'" in caplog.text


def test_scheduler_waits_for_a_file_to_settle_and_loads_only_what_it_scanned(engine, catalog, tmp_path,
                                                                             scratch_release, caplog):
    """A file modified within the settle time may still be being written: not queued yet. A file
    changed after its scan is not loaded (the next scan queues its new content)."""
    caplog.set_level(logging.INFO)
    csv = write_csv(tmp_path / "growing.csv", sdss_rows()[:10])
    mapping = scratch_mapping(tmp_path, "growing")
    mapping.write_text(mapping.read_text().replace(load_mapping(SDSS).file, "growing.csv"))
    scheduler = Scheduler(engine, [tmp_path], settle_s=60)
    assert scheduler.scan() == [] and _jobs(engine) == []
    assert re.search(f"waiting for {re.escape(str(csv))}: (its mapping .* )?modified [01] s ago, "
                     "maybe still being written "
                     r"\(settle time 60 s\)", caplog.text)
    old = time.time() - 120
    os.utime(csv, (old, old))
    caplog.clear()
    assert scheduler.scan() == [], "the mapping was written just now: it may be half written still"
    assert f"waiting for {csv}: its mapping {mapping} modified" in caplog.text
    os.utime(mapping, (old, old))
    (job_id,) = scheduler.scan()
    write_csv(csv, sdss_rows()[:20])  # the writer was not done after all
    assert Worker(engine, name="test").run(once=True) == 1
    (job,) = _jobs(engine)  # ended, loading nothing: not a failure an operator must clear (it stayed in failed_job)
    assert (job.job_id, job.status, job.attempts, job.error) == (job_id, "done", 1, None)
    assert "growing.csv, or its mapping " in job.result["not_loaded"]
    assert ": changed since the scheduler found them" in job.result["not_loaded"]
    assert job.result["queued_jobs"] == []
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM healcat.release WHERE name = 'scratch/growing'")) == 0
    # the file put back as it was scanned: that content is queued again (its scan's record went with the
    # job; it stayed, and the content was never queued again, nor said so: also after a touch while loading)
    write_csv(csv, sdss_rows()[:10])
    os.utime(csv, (old, old))
    (again,) = scheduler.scan()
    assert Worker(engine, name="test").run(once=True) >= 1
    assert next(j for j in _jobs(engine) if j.job_id == again).result["row_counts"]["source"] == 10


def test_failed_jobs_view_and_jobs_listing_with_progress(engine, catalog, tmp_path, scratch_release, capsys):
    write_csv(tmp_path / "p.csv", sdss_rows()[:12])
    with engine.begin() as conn:
        queue.enqueue(conn, "ingest", {"mapping": str(scratch_mapping(tmp_path, "p")), "file": str(tmp_path / "p.csv")})
        bad, _ = queue.enqueue(conn, "infer", {"model": "no-such-model", "release": "scratch/p"})
        conn.execute(sa.text("UPDATE healcat.job SET run_after = now() + interval '1 hour' WHERE job_id = :j"),
                     {"j": bad})
    Worker(engine, name="test").run(once=True)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE healcat.job SET run_after = now() WHERE job_id = :j"), {"j": bad})
    Worker(engine, name="test").run(once=True)
    with engine.connect() as conn:
        failed = conn.execute(sa.text("SELECT job_id, kind, attempts, error FROM healcat.failed_job")).all()
    assert [(f.job_id, f.kind, f.attempts) for f in failed] == [(bad, "infer", 1)]
    assert "no model named 'no-such-model'" in failed[0].error
    assert main(["jobs", "--all", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "job_id,kind,status,attempts,progress,args,run_after,started,elapsed,worker,parent,error"
    ingest_line = next(line for line in lines if ",ingest,done," in line)
    assert ",1/5,12/12 (100%)," in ingest_line, "attempts, and rows done out of the file's"
    assert any(",index,done," in line and "/" in line.split(",")[4] for line in lines)
    assert any(line.startswith(f"{bad},infer,failed,1/5,") and "no model named" in line for line in lines)
    from astropy.io import ascii

    listing = ascii.read("\n".join(lines), format="csv")
    parents = {str(r["kind"]): r["parent"] for r in listing}
    assert parents["ingest"] is np.ma.masked, "no parent: an empty cell, not 0"
    assert parents["index"] is not np.ma.masked and int(parents["index"]) > 0
    ingest = next(r for r in listing if r["kind"] == "ingest")
    assert ingest["run_after"] is np.ma.masked and re.fullmatch(r"0:00:\d\d", str(ingest["elapsed"]))
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", str(ingest["started"]))

    # A running job: when it started and for how long; one whose worker's session is gone says so.
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE healcat.job SET status = 'running', started_at = now() - interval '75 s', "
                             "worker = 'vm:1', finished_at = NULL, progress_done = NULL WHERE job_id = :j"), {"j": bad})
    assert main(["jobs", "--format", "csv"]) == 0
    (running,) = ascii.read(capsys.readouterr().out, format="csv")
    assert (running["status"], running["run_after"], running["worker"]) == ("running", np.ma.masked, "vm:1 (gone)")
    assert re.fullmatch(r"0:01:1[5-9]", str(running["elapsed"]))
    # A table for a terminal: the args cut to a width (a scheduler job's are two paths and a checksum).
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE healcat.job SET args = jsonb_set(args, '{checksum}', to_jsonb(repeat('a', 64))) "
                             "WHERE job_id = :j"), {"j": bad})
    assert main(["jobs"]) == 0
    table = capsys.readouterr().out
    assert "a" * 64 not in table and " ... " in table and max(map(len, table.splitlines())) < 250


def test_a_worker_pool_runs_separate_releases_in_parallel_processes(engine, catalog, tmp_path, scratch_release):
    for i in range(2):
        mapping, path = gaia_slice(tmp_path, 3_000 + i, f"pool{i}")
        with engine.begin() as conn:
            queue.enqueue(conn, "ingest", {"mapping": str(mapping), "file": str(path)})
    env = {**os.environ, "HEALCAT_DATABASE_URL": db.libpq_url(engine.url)}
    run = subprocess.run([sys.executable, "-m", "catalog.cli", "worker", "--concurrency", "2", "--once",
                          "--poll", "0.1"], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "2 workers stopped (exit codes [0, 0])" in run.stdout, run.stderr
    jobs = _jobs(engine)
    assert sorted((j.kind, j.status, j.attempts) for j in jobs) == [("index", "done", 1)] * 2 + [("ingest", "done", 1)] * 2


def _members(pool_pid: int) -> set[int]:
    """The worker processes of a pool that are up (their SIGTERM handler set: a member still importing dies
    of the pool's SIGTERM): its children started by multiprocessing's spawn, not its resource tracker."""
    found = set()
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            status = Path(f"/proc/{entry}/status").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError):  # gone meanwhile
            continue
        caught = int(re.search(r"^SigCgt:\s*([0-9a-f]+)", status, re.M).group(1), 16)
        if int(stat.rsplit(")", 1)[1].split()[1]) == pool_pid and b"spawn_main" in cmdline and caught >> 14 & 1:
            found.add(int(entry))
    return found


def test_a_pool_member_killed_is_replaced_and_a_failed_once_run_exits_non_zero(engine, database_url, catalog, capsys,
                                                                              tmp_path, scratch_release):
    """A member the kernel's OOM killer (or kill -9) ended left the pool one process short for good, with
    nothing said; and `worker --once` exited 0 when its jobs had failed, so cron never heard of them."""
    env = {**os.environ, "HEALCAT_DATABASE_URL": db.libpq_url(engine.url)}
    pool = subprocess.Popen([sys.executable, "-m", "catalog.cli", "worker", "--concurrency", "2", "--poll", "0.2"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = wait_until(lambda: m if len(m := _members(pool.pid)) == 2 else None, "two pool members", 120, poll_s=0.5)
        killed = min(first)
        os.kill(killed, 9)
        after = wait_until(lambda: m if len(m := _members(pool.pid)) == 2 and killed not in m else None,
                           "a member in the killed one's place", 120, poll_s=0.5)
        assert len(after & first) == 1
    finally:
        pool.terminate()
        out, err = pool.communicate(timeout=120)
    assert pool.returncode == 0 and "3 workers stopped (exit codes [-9, 0, 0])" in out, err
    assert re.search(r"worker-\d was killed \(signal 9\); starting another in its place", err)
    # --once with a job that fails: the exit status says so
    mapping, _ = gaia_slice(tmp_path, 50, "fails")
    with engine.begin() as conn:
        queue.enqueue(conn, "ingest", {"mapping": str(mapping), "file": str(tmp_path / "no-such.bin")})
    assert main(["worker", "--once", "--poll", "0.1"]) == 1
    assert re.search(r"healcat: error: worker \S+: 1 job failed \(`healcat jobs` lists them\)", capsys.readouterr().err)


def test_a_file_replaced_while_its_loader_waits_is_not_stored_under_the_checksum_scanned(engine, catalog, tmp_path,
                                                                                       scratch_release):
    """The file was hashed, then opened again to read its rows after the wait for another loader of
    the release: a file renamed over it meanwhile (README's way to drop a release) was loaded under
    the checksum of the file scanned, which the scheduler then took for loaded."""
    csv = write_csv(tmp_path / "drop.csv", sdss_rows()[:10])
    mapping = load_mapping(scratch_mapping(tmp_path, "swapped"))
    scanned = release_checksum(csv, mapping)
    holder = engine.connect()  # another loader of the release holds its lock
    holder.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('scratch/swapped'))"))
    outcome = []

    def load():
        try:
            outcome.append(ingest_release(mapping, engine, file=csv, checksum=scanned))
        except Exception as exc:
            outcome.append(exc)

    loader = threading.Thread(target=load)
    loader.start()
    try:
        wait_until(lambda: sessions(engine, ADVISORY_WAIT) or not loader.is_alive(), "the load waits for the lock")
        assert loader.is_alive(), outcome
        write_csv(tmp_path / ".drop.csv", sdss_rows()[:20])
        os.replace(tmp_path / ".drop.csv", csv)  # the next release's file, renamed into place
    finally:
        holder.rollback()
        holder.close()
        loader.join(120)
    (error,) = outcome
    assert isinstance(error, IngestError) and "drop.csv: replaced or changed while it was being loaded" in str(error)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM healcat.release WHERE name = 'scratch/swapped'")) == 0
    assert ingest_release(mapping, engine, file=csv).row_counts["source"] == 20, "what the file holds now loads"


def test_the_server_ends_the_statement_of_a_process_killed_while_it_runs(engine):
    """A SIGKILLed worker's statement (a release's diff: minutes on a large release) ran on in the server
    until it next wrote to the dead socket, holding the release's locks while the requeued job waited:
    healcat's sessions have the server check for their client while a statement runs."""
    app = f"healcat-killed-statement-{os.getpid()}"
    env = {**os.environ, "HEALCAT_DATABASE_URL": db.libpq_url(engine.url), "PGAPPNAME": app}
    script = ("import sqlalchemy as sa\nfrom catalog import db\n"
              "with db.engine().connect() as conn:\n    conn.execute(sa.text('SELECT pg_sleep(600)'))")
    process = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        wait_until(lambda: sessions(engine, "application_name = :a AND state = 'active' AND query LIKE '%pg_sleep%'",
                                    a=app), "the statement runs", timeout_s=120)
        process.kill()
    finally:
        process.wait()
    # far less than the 600 s the statement would run on (the check comes every CLIENT_CHECK_INTERVAL_S)
    wait_until(lambda: not sessions(engine, "application_name = :a", a=app), "the server ends it", timeout_s=90)
