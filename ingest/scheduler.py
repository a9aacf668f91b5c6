"""``healcat scheduler``: scan configured release sources now and then, queue ingest jobs for what is new.

A release source is either

- a directory of mapping files (``*.toml``), each release's data file beside it (the mapping's
  ``[release] file``, relative to the directory) or else where the mapping says (the data folder);
  a mapping of spectra or light curves reads the files its globs match (in the data folder, else
  beside it);
- a manifest file (TOML) listing releases::

      [[release]]
      mapping = "sdss_dr14_skyserver_10k"     # a shipped mapping's name, or a path relative to the manifest
      file = "incoming/sdss-2027-01.csv"      # optional, relative to the manifest (a catalogue mapping's only)
      version = "dr14-rerun-2027-01"          # optional: the release's, instead of the mapping's
      date = 2027-01-15                       # optional: the release's date (a TOML date), instead of the mapping's

A release file is new when no release and no earlier scan has its checksum (the sha256 of the
file and the mapping, as ``release.checksum``). A release whose files, mapping or manifest were modified less
than ``settle_s`` seconds ago (``HEALCAT_SCHEDULE_SETTLE_S``, default 60) may still be being
written: it waits for a later scan.
A copy that stalls longer than that would be queued half written: drop a release by copying it
under another name (hidden mappings, ``.name.toml``, are not read) and renaming it into place.
The job carries the checksum scanned, and the worker loads the file only if it still has it. The scan records it in ``scheduled_ingest``,
whose primary key is that checksum, in the transaction that queues its job: two schedulers
scanning at once queue it once. A mapping that cannot be read, a file that is missing or a
release already loaded from other content (a new one needs a new version) is skipped, and tried
again at the next scan; it is logged once (an error), and again only when the reason changes (each
later scan's skip is logged at DEBUG).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shlex
import socket
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from catalog import settings
from catalog.errors import ConfigurationError, IngestError
from catalog.models import Job, Release, ScheduledIngest
from ingest import queue
from ingest.load import input_file, load_policy, release_checksum
from ingest.mapping import Mapping, check_real_path, load_mapping
from ingest.perobject import files_checksum
from ingest.perobject_mapping import InputFiles, PerObjectMapping

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 300.0
DEFAULT_SETTLE_S = 60.0


@dataclass(frozen=True)
class Candidate:
    mapping: Path
    file: Path | None = None  # from a manifest; else the mapping's own file
    folder: Path | None = None  # a directory source: the mapping's file is looked for here first
    manifest: Path | None = None  # the manifest naming ``file``: its folder may hold it
    version: str | None = None  # from a manifest: the release's version, instead of the mapping's
    date: str | None = None  # from a manifest: the release's date (ISO), instead of the mapping's
    error: str | None = None  # a manifest entry that cannot be read: skipped saying why, the others queued
    entry: int | None = None  # from a manifest: the number of its [[release]] (1 for the first)

    def describe(self) -> str:
        """What a log line names: the mapping, or the manifest entry naming it (a manifest may name one mapping
        in many entries, each a release of its own)."""
        if self.manifest is None:
            return str(self.mapping)
        return f"release source {self.manifest} [[release]] number {self.entry}" + (
            f" (mapping {self.mapping})" if self.error is None else "")


def sources_from_env() -> list[Path]:
    """HEALCAT_RELEASE_SOURCES: directories and manifest files, separated by ':' (os.pathsep)."""
    return [Path(p) for p in os.environ.get("HEALCAT_RELEASE_SOURCES", "").split(os.pathsep) if p]


def interval_from_env() -> float:
    given = settings.from_env("HEALCAT_SCHEDULE_INTERVAL_S", 0.01, float, "seconds")
    return DEFAULT_INTERVAL_S if given is None else given


def settle_from_env() -> float:
    given = settings.from_env("HEALCAT_SCHEDULE_SETTLE_S", 0.0, float, "seconds")
    return DEFAULT_SETTLE_S if given is None else given


def check_sources(sources: list[Path]) -> None:
    """Each release source exists: a misspelt one would be scanned, and found empty, for ever."""
    missing = [str(s) for s in sources if not (s.is_dir() or s.is_file())]
    if missing:
        raise ConfigurationError(f"scheduler: no such directory or manifest file: {', '.join(missing)}")


def candidates(source: Path) -> list[Candidate]:
    """The releases a source offers, in a stable order; their paths absolute (a worker in another folder
    reads the job's paths)."""
    source = source.absolute()
    if source.is_dir():
        # not hidden files (an editor's or a copy's temporary names): a release is dropped by renaming
        return [Candidate(path, folder=source) for path in sorted(source.glob("*.toml")) if not path.name.startswith(".")]
    if not source.is_file():
        raise IngestError(f"release source {source}: no such directory or manifest file")
    try:
        entries = tomllib.loads(source.read_text()).get("release", [])
    except tomllib.TOMLDecodeError as exc:
        raise IngestError(f"release source {source}: not valid TOML: {exc}") from None
    found = []
    for i, entry in enumerate(entries, 1):
        try:
            found.append(_manifest_entry(source, i, entry))
        except IngestError as exc:  # this entry alone is skipped, saying why; the manifest's others are queued
            found.append(Candidate(source, manifest=source, error=str(exc), entry=i))
    return found


def _manifest_entry(source: Path, i: int, entry) -> Candidate:
    """A manifest's ``i``-th [[release]] as a candidate, else an IngestError naming the field (the scan's
    message names the manifest and the entry: :meth:`Candidate.describe`)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("mapping"), str):
        raise IngestError("it needs a string 'mapping'")
    mapping = Path(entry["mapping"])
    if mapping.suffix:
        mapping = source.parent / mapping
    if not isinstance(entry.get("version", ""), str):
        raise IngestError("version must be a string")
    if not isinstance(entry.get("file", ""), str):  # else dropped, and the mapping's own file queued
        raise IngestError(f"file must be a string (a path relative to the manifest), got {entry['file']!r}")
    date = entry.get("date")
    if date is not None and (not isinstance(date, dt.date) or isinstance(date, dt.datetime)):
        raise IngestError(f"date must be a TOML date such as 2017-07-31, got {date!r}")
    file = source.parent / entry["file"] if "file" in entry else None
    return Candidate(mapping, file, manifest=source, version=entry.get("version"),
                     date=date.isoformat() if date is not None else None, entry=i)


class Scheduler:
    def __init__(self, engine: sa.Engine, sources: list[Path], name: str | None = None,
                 settle_s: float | None = None):
        self.engine = engine
        self.sources = sources
        self.settle_s = settle_from_env() if settle_s is None else settle_s
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.stopping = threading.Event()
        self._checksums: dict[tuple, tuple[str, tuple[str, ...]]] = {}  # (mapping, its mtime_ns, files' (path, size, mtime_ns)) -> checksum
        self.skipped: dict[Path | Candidate, str] = {}  # a source or candidate the last scan skipped -> why
        self._cancelled: set[str] = set()  # checksums whose job was cancelled, said once

    def scan(self) -> list[int]:
        """One pass over every source; returns the ids of the jobs it queued."""
        queued, skipped = [], {}
        for source in self.sources:
            try:
                found = candidates(source)
            except IngestError as exc:
                self._skip(skipped, source, str(exc))
                continue
            for candidate in found:
                try:
                    job_id = self._schedule(candidate)
                except IngestError as exc:  # MappingError too: fix the file, the next scan finds it
                    self._skip(skipped, candidate, f"skipped {candidate.describe()}: {exc}")
                    continue
                except Exception as exc:  # one bad candidate never stops the scan, nor the scheduler
                    self._skip(skipped, candidate, f"skipped {candidate.describe()}: unexpected error {exc!r}",
                               exc_info=True)
                    continue
                if job_id is not None:
                    queued.append(job_id)
        self.skipped = skipped  # what is fixed, or gone, is logged afresh should it fail again
        return queued

    def _skip(self, skipped: dict[Path | Candidate, str], what: Path | Candidate, message: str,
              exc_info: bool = False) -> None:
        """Log why a source or a candidate is skipped: an error the first time, at DEBUG while the reason
        stays the same scan after scan (a refused mapping would fill the log every interval)."""
        level = logging.DEBUG if self.skipped.get(what) == message else logging.ERROR
        log.log(level, "%s", message, exc_info=exc_info)
        skipped[what] = message

    def _schedule(self, candidate: Candidate) -> int | None:
        if candidate.error is not None:
            raise IngestError(candidate.error)
        mapping = load_mapping(candidate.mapping, candidate.version, candidate.date)
        if isinstance(mapping, Mapping):
            file = candidate.file
            if candidate.folder is not None and (candidate.folder / mapping.file).is_file():
                file = candidate.folder / mapping.file
            if file is not None:  # really in the data folder, the mapping's or the manifest's (not a link out)
                check_real_path(file, mapping.path, *([candidate.manifest.parent] if candidate.manifest else []))
            path = input_file(mapping, file)
            found, paths, uri, args = path, [path], str(path), {"file": str(path)}
        else:  # spectra or light curves: the files its globs match now (none: MissingInputError)
            if candidate.file is not None:  # it was dropped, and every file the globs match queued in its place
                raise IngestError(f"the entry names file {candidate.file}, but a mapping of spectra or light curves "
                                  "reads the files its [series] (and [catalog]) globs match and takes no file: leave "
                                  "'file' out, or give the entry a mapping whose globs match the files to load")
            found = mapping.input_files()
            paths, uri, args = found.all(), mapping.source_uri, {}
        # The mapping and the manifest too: one still being written may be valid TOML that maps half the
        # columns, or lists an entry without the version or date that follow it (the mapping's would be queued).
        watched = {mapping.path: "its mapping", **({candidate.manifest: "its manifest"} if candidate.manifest else {})}
        newest = max([*watched, *paths], key=lambda p: p.stat().st_mtime)
        age_s = time.time() - newest.stat().st_mtime
        if age_s < self.settle_s:
            log.info("waiting for %s: %smodified %.0f s ago, maybe still being written (settle time %.0f s)",
                     uri, f"{watched[newest]} {newest} " if newest in watched else "", age_s, self.settle_s)
            return None
        checksum, older = self._checksum(found, mapping)
        with self.engine.begin() as conn:
            if conn.scalar(sa.select(sa.func.count()).where(Release.checksum.in_((checksum, *older)))):
                return None
            loaded = conn.scalar(sa.select(Release.checksum).where(Release.name == mapping.release_name))
            if loaded is not None:  # the worker would refuse it: say so here, not in a failed job
                raise IngestError(f"{uri}: release {mapping.release_name} is already loaded from different content "
                                  f"(sha256 {loaded[:12]}... vs {checksum[:12]}...); give the new release a new "
                                  f"version (in its mapping, or a manifest entry's version = \"...\")")
            claimed = conn.scalar(
                sa.dialects.postgresql.insert(ScheduledIngest)
                .values(checksum=checksum, mapping=str(mapping.path.resolve()), file=uri, scheduler=self.name)
                .on_conflict_do_nothing(index_elements=["checksum"])
                .returning(ScheduledIngest.checksum))
            given = {k: v for k, v in (("version", candidate.version), ("date", candidate.date)) if v is not None}
            policy = load_policy(mapping)
            if claimed is None:  # an earlier scan, or another scheduler, has it
                earlier = conn.execute(sa.select(ScheduledIngest.job_id, Job.status, Job.args)
                                       .outerjoin(Job, Job.job_id == ScheduledIngest.job_id)
                                       .where(ScheduledIngest.checksum == checksum).with_for_update(of=ScheduledIngest)
                                       ).one()
                if earlier.job_id is None and checksum not in self._cancelled:  # cancelled (its row went, so did its job_id)
                    self._cancelled.add(checksum)
                    log.warning("%s: queued before, and that job was cancelled: not queued again (%s queues it)",
                                uri, enqueue_command(mapping.path.resolve(), args.get("file"), **given))
                # a load the mapping's policy refused (too many rows rejected, a band not declared) is the same
                # release once the mapping allows it: its checksum leaves the policy out, so look at the job's
                if earlier.status != "failed" or earlier.args.get("policy", {}) == policy:
                    return None
                log.info("%s: job %d failed; its mapping's load policy has changed since (%s): queued again", uri,
                         earlier.job_id, ", ".join(f"{k} = {v!r}" for k, v in policy.items()) or "none set")
            job_id, _ = queue.enqueue(conn, "ingest", {"mapping": str(mapping.path.resolve()), **args, **given,
                                                       "checksum": checksum, "policy": policy})
            conn.execute(sa.update(ScheduledIngest).where(ScheduledIngest.checksum == checksum)
                         .values(job_id=job_id))
        log.info("queued job %d: ingest %s from %s", job_id, mapping.release_name, uri)
        return job_id

    def _checksum(self, found: Path | InputFiles, mapping: Mapping | PerObjectMapping) -> tuple[str, tuple[str, ...]]:
        """The release checksum a load would give these files (a catalogue's file, or a per-object
        release's), and those an older healcat gave the same (``perobject.hashed_files``), recomputed only
        when a file or the mapping has changed (size or modification time) or the release's version or
        date (a manifest's) has."""
        paths = [found] if isinstance(found, Path) else found.all()
        key = (str(mapping.path.resolve()), mapping.path.stat().st_mtime_ns, mapping.release_name, mapping.release_date,
               tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths))
        if key not in self._checksums:
            self._checksums[key] = ((release_checksum(found, mapping), ()) if isinstance(found, Path)
                                    else files_checksum(found, mapping))
        return self._checksums[key]

    def run(self, *, once: bool = False, interval_s: float = DEFAULT_INTERVAL_S) -> int:
        """Scan every ``interval_s`` seconds until stopped (or once). Returns the number of jobs queued."""
        n = 0
        while not self.stopping.is_set():
            n += len(self.scan())
            if once:
                break
            self.stopping.wait(interval_s)
        return n


def enqueue_command(mapping: Path, file: str | None = None, version: str | None = None,
                    date: str | None = None) -> str:
    """The ``healcat enqueue ingest`` command line that queues what a scan would have: the mapping with
    the file a manifest entry or directory gave, and the entry's version and date."""
    words = ["healcat", "enqueue", "ingest", str(mapping)]
    for flag, value in (("--file", file), ("--release-version", version), ("--release-date", date)):
        if value is not None:
            words += [flag, str(value)]
    return shlex.join(words)
