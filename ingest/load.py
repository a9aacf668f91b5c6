"""Load a survey release: file -> mapping -> validation -> COPY -> publish, in one transaction.

The file is read in chunks of bounded size (see :mod:`ingest.readers`); each chunk is
mapped, validated and COPYed before the next is read, so memory does not grow with the
file. Readers see the catalog before the release or with all of it, never half: every
row is written inside one transaction that also inserts the release row. A release is
identified by the sha256 of its file and its mapping, so ingesting the same file again
finds it and changes nothing; a second loader racing on the same release waits on an
advisory lock and then finds it too.

Rows with no position either make their own positionless source (colocated by the pixel
inside their Gaia DR3 id where they have one, else shard -1) or, when the mapping says
``join = CATALOG``, attach their per-object rows to the source that already carries that
external id in a published release of another survey (a positioned one first, then the oldest;
never a superseded release's, nor the survey's own previous release's, which this one replaces); a row whose id no source carries
gets a positionless source of its own (``on_missing = "create"``, the default) or goes to
quarantine (``on_missing = "quarantine"``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from catalog import healpix
from catalog.errors import ContentChanged, IngestError, MissingInputError
from catalog.models import TABLES, Release, Survey
from ingest import progress, publish, readers
from ingest.bands import check_new as check_new_bands
from ingest.copy import ParentChecksOff, copy_columns
from ingest.mapping import GAIA_DR3, MappedChunk, Mapping, apply, check_real_path, load_mapping, opened_path
from ingest.validate import Rejected, SeenIds, quarantined, validate

log = logging.getLogger(__name__)

COUNTED = ("rows_read", "source", "joined", "source_xid", "photometry", "spec_redshift", "rotation_period",
           "stellar_mass", "quarantine")
#: A release of more positions than this whose every RA lies in [0, 24] deg is probably in hours read as degrees:
#: its row_counts say so (RA_IN_HOURS_KEY: how many positions) and the load logs a warning.
RA_IN_HOURS_MIN_ROWS = 100
RA_IN_HOURS_KEY = "ra_all_within_24_deg"
#: row_counts key prefix: ``mag_err_not_stored:<column>`` is how many good rows' errors in it were NULL (0, 99, ...)
MAG_ERR_NOT_STORED = "mag_err_not_stored"


@dataclass
class LoadResult:
    release: str
    release_id: int
    already_loaded: bool
    row_counts: dict[str, int] = field(default_factory=dict)
    status: str = "published"  # or "superseded": older than the survey's published release (publish.publish)


def release_checksum(path: Path, mapping: Mapping) -> str:
    """sha256 over the input file's bytes and the mapping's canonical JSON."""
    return hashed_release(path, mapping)[0]


def hashed_release(path: Path, mapping: Mapping, confined: bool = False) -> tuple[str, tuple[int, ...]]:
    """:func:`release_checksum`, and the identity of the file it read (device, inode, size and
    modification time of the open file), for :func:`check_same_file` once the rows are read. With
    ``confined`` the file opened must really lie in the data folder or the mapping's (:func:`hash_file`)."""
    digest = hashlib.sha256()
    read = hash_file(digest, path, (mapping.path,) if confined else None)
    digest.update(mapping_json(mapping))
    return digest.hexdigest(), read


def hash_file(digest, path: Path, confined_to: tuple[Path, ...] | None = None) -> tuple[int, ...]:
    """Feed the file's bytes to ``digest``; returns the identity of the file read (device, inode, size,
    modification time), for :func:`check_same_file`. A file written to while it is read is an error.
    ``confined_to`` (a mapping's path, then more allowed folders): the file actually opened must really
    lie in them (``check_real_path`` of the descriptor: a link swapped in after the path was checked is
    refused, not read); the rows read later are of this file (``check_same_file``)."""
    with path.open("rb") as fh:
        if confined_to is not None:
            check_real_path(path, *confined_to, opened=opened_path(fh, path))
        before = _identity(os.fstat(fh.fileno()))
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
        read = _identity(os.fstat(fh.fileno()))
    if read != before:
        raise IngestError(f"{path}: changed while its checksum was computed (still being written?): not loaded")
    return read


#: Mapping keys that say whether a load may go ahead, not what it loads: not in a release's checksum, so
#: adding one to a mapping leaves the releases it loaded the same releases (idempotent).
POLICY_KEYS = (("release", "max_rejected_fraction"), ("photometry", "new_bands"))


def load_policy(mapping) -> dict[str, Any]:
    """The mapping's :data:`POLICY_KEYS` it sets, as ``{"section.key": value}``: what a scheduled job
    records, so that a load refused by them is queued again once the mapping changes them."""
    return {f"{section}.{key}": mapping.raw[section][key] for section, key in POLICY_KEYS
            if isinstance(mapping.raw.get(section), dict) and key in mapping.raw[section]}


def content(raw: dict[str, Any]) -> dict[str, Any]:
    """A mapping (its TOML as a dict, or a release's ``mapping`` JSON) without its :data:`POLICY_KEYS`."""
    return {section: ({k: v for k, v in keys.items() if (section, k) not in POLICY_KEYS} if isinstance(keys, dict)
                      else keys) for section, keys in raw.items()}


def mapping_json(mapping) -> bytes:
    """The mapping's canonical JSON, the part of a release checksum that is not the files' bytes
    (:data:`POLICY_KEYS` aside)."""
    return json.dumps(content(mapping.raw), sort_keys=True, default=str).encode()


def _identity(st: os.stat_result) -> tuple[int, ...]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def check_same_file(path: Path, hashed: tuple[int, ...]) -> None:
    """Fail unless ``path`` is still the file whose bytes were hashed, unchanged: the rows were read
    by opening it again, later (after waiting for another loader of the release), and a file renamed
    over it meanwhile, or written to, or removed, would have been stored under the checksum of other bytes."""
    try:
        now = _identity(path.stat())
    except FileNotFoundError:
        now = None
    if now != hashed:
        raise ContentChanged(f"{path}: {'removed' if now is None else 'replaced or changed'} while it was being "
                          f"loaded (after its checksum was computed): not loaded; load it again (the "
                          f"scheduler's next scan queues what it holds now)")


def ingest_release(mapping: Mapping | str | Path, engine: sa.Engine, file: str | Path | None = None, *,
                   checksum: str | None = None) -> LoadResult:
    """Ingest one release file through its mapping and publish it atomically (idempotent).

    ``checksum``: the release checksum the file had when the scheduler found it; a file that has
    changed since is not loaded (an IngestError: the scheduler queues its new content). A release
    loaded now has the tables it wrote analysed after its commit (:func:`analyze_written`)."""
    result = _ingest(load_mapping(mapping) if isinstance(mapping, (str, Path)) else mapping, engine, file, checksum)
    if not result.already_loaded:
        analyze_written(engine, result.row_counts)
    return result


def analyze_written(engine: sa.Engine, row_counts: dict[str, int]) -> None:
    """ANALYZE the tables a release wrote rows to, and release_change (publishing writes it), after its
    commit. Autovacuum would, a minute or so later; a query before then was planned without
    statistics: a box 358 deg wide over Gaia's fresh release took 25 s, 40 ms once analysed."""
    tables = sorted({table for table, n in row_counts.items() if n and table in TABLES} | {"release", "release_change"})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in tables:
            conn.exec_driver_sql(f"ANALYZE healcat.{table}")


def _ingest(mapping, engine: sa.Engine, file: str | Path | None, checksum: str | None) -> LoadResult:
    if not isinstance(mapping, Mapping):  # files per object (spectra, light curves)
        from ingest.perobject import ingest_per_object

        refuse_file(mapping, file)
        return ingest_per_object(mapping, engine, checksum=checksum)
    path = input_file(mapping, file)
    found, hashed = hashed_release(path, mapping, confined=file is None)  # a --file is the operator's
    check_unchanged(path, checksum, found, mapping=mapping.path)

    def load_rows(pg, release_id: int) -> dict[str, int]:
        check_new_bands(mapping.bands, mapping.new_bands, _loaded_bands(pg, release_id), str(mapping.path))
        counts = _load_rows(pg, mapping, path, release_id)
        check_same_file(path, hashed)  # before the commit: the rows read are the bytes hashed
        return counts

    return load_release(engine, mapping, path, found, load_rows)


def _loaded_bands(pg, release_id: int) -> set[str]:
    """The bands the catalog's other releases (withdrawn ones aside) were loaded with, by their mappings."""
    return {name for (name,) in pg.execute(
        "SELECT DISTINCT jsonb_object_keys(mapping->'photometry'->'bands') FROM healcat.release "
        "WHERE release_id <> %s AND status <> 'withdrawn' AND jsonb_typeof(mapping->'photometry'->'bands') = 'object'",
        (release_id,))}


def input_file(mapping: Mapping, file: str | Path | None = None) -> Path:
    """The file a catalogue mapping loads (``file``, else its own); MissingInputError if it is not there.
    Its own must really lie in the data folder or the mapping's folder (``check_real_path``: a link
    leading elsewhere is refused); ``file`` is the caller's (the command line's, the scheduler's)."""
    path = mapping.input_path(file)
    if file is None:
        check_real_path(path, mapping.path)
    if not path.is_file():
        raise MissingInputError(f"{path}: no such file (release {mapping.release_name})")
    return path


def refuse_file(mapping, file: str | Path | None) -> None:
    """A mapping of spectra or light curves reads the files its globs match: another file is an error."""
    if file is not None and not isinstance(mapping, Mapping):
        raise IngestError(f"{mapping.path}: a mapping of spectra or light curves reads the files its [series] "
                          f"(and [catalog]) globs match; it takes no --file ({file})")


def check_unchanged(path: Path | str, scanned: str | None, found: str, older: tuple[str, ...] = (), *,
                    mapping: Path) -> None:
    """Fail when the release's files or its mapping (the checksum covers both) are not what the scheduler
    scanned (still being written, replaced or edited); ``older``: the checksums an older healcat gave the
    same files (a job it queued)."""
    if scanned is not None and scanned not in (found, *older):
        raise ContentChanged(f"{path}, or its mapping {mapping}: changed since the scheduler found them (sha256 "
                             f"{scanned[:12]}... then, {found[:12]}... now): not loaded; the next scan queues what "
                             "they hold now")


#: Why a release's checksum differs when its mapping reads the same: the file, or what the checksum
#: covers (an older healcat's checksum of the same files and mapping can differ: a join file counted since).
_SAME_MAPPING = ("the same mapping, so other file bytes, or a checksum an older healcat computed otherwise "
                 "(`healcat release show` says when it was loaded)")


def load_release(engine: sa.Engine, mapping, path: Path, checksum: str,
                 load_rows: Callable[[Any, int], dict[str, int]], older: tuple[str, ...] = ()) -> LoadResult:
    """Insert the release and its rows (``load_rows(psycopg connection, release_id)`` -> counts) in one
    transaction, unless a release with this checksum is there already (or with one of ``older``: the
    checksum an older healcat gave the same content, ``perobject.hashed_files``)."""
    with engine.begin() as conn:
        # Serialise loaders of the same release; the loser finds the winner's release below.
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(mapping.release_name))))
        done = conn.execute(sa.select(Release).where(Release.checksum.in_((checksum, *older)))).first()
        if done is not None:
            if done.checksum != checksum:
                log.warning("%s: release %s was loaded by an older healcat, whose checksum did not cover its join "
                            "files: found by that checksum (its other files and mapping unchanged), a change to "
                            "the join files since is not seen; to load them, give the release a new version",
                            path, done.name)
            return LoadResult(done.name, done.release_id, True, done.row_counts, done.status)
        clash = conn.execute(sa.select(Release.checksum, Release.mapping).where(
            Release.name == mapping.release_name)).first()
        if clash is not None:
            differences = mapping_differences(content(clash.mapping),  # what it loads: no policy key changes it
                                              json.loads(json.dumps(content(mapping.raw), default=str)))
            raise IngestError(
                f"{path}: release {mapping.release_name} is already loaded from different content "
                f"(sha256 {clash.checksum[:12]}... vs {checksum[:12]}...: "
                f"{'; '.join(differences) if differences else _SAME_MAPPING}); "
                "give the new release a new version"
                + (" (or, to load the same release again, what it was loaded with)" if differences else "")
            )
        release_id = _insert_release(conn, mapping, path, checksum)
        counts = load_rows(conn.connection.driver_connection, release_id)
        # The counts first: the diff's fingerprints look at the per-release rows a release's counts say it wrote.
        conn.execute(sa.update(Release).where(Release.release_id == release_id).values(row_counts=counts))
        publish.publish(conn, release_id)  # current or superseded, and release_change, in this transaction
        status = conn.scalar(sa.select(Release.status).where(Release.release_id == release_id))
    log.info("%s %s: %s", "published" if status == "published" else "loaded, superseded at once (older than the "
             "survey's published release):", mapping.release_name, counts)
    return LoadResult(mapping.release_name, release_id, False, counts, status)


def mapping_differences(loaded: Any, now: Any, where: str = "") -> list[str]:
    """What differs between the mapping (JSON) a release was loaded with and the one given now, as
    ``key: value then, value now`` (dotted keys; ``release.date``, say, when a rerun left out the
    ``--release-date`` the first run gave)."""
    if isinstance(loaded, dict) and isinstance(now, dict):
        return [difference for key in sorted(set(loaded) | set(now), key=str)
                for difference in mapping_differences(loaded.get(key), now.get(key), f"{where}.{key}" if where else key)]
    if loaded == now:
        return []
    if isinstance(loaded, list) and isinstance(now, list):  # both cut at 60 characters would hide what changed
        return [f"{where or 'the mapping'}: {_list_change(loaded, now)}"]
    return [f"{where or 'the mapping'}: {_short(loaded)} then, {_short(now)} now"]


def _list_change(loaded: list, now: list, most: int = 5) -> str:
    """What a list lost and gained (``removed "A_V", added "B_V"``), each item as JSON; the same items
    in another order are said so."""
    def without(items: list, other: list) -> list:
        rest = Counter(json.dumps(item, sort_keys=True) for item in other)
        out = []
        for item in items:
            key = json.dumps(item, sort_keys=True)
            if rest[key]:
                rest[key] -= 1
            else:
                out.append(item)
        return out

    def listed(items: list) -> str:
        shown = ", ".join(_short(json.dumps(item)) for item in items[:most])
        return shown + (f" and {len(items) - most} more" if len(items) > most else "")

    removed, added = without(loaded, now), without(now, loaded)
    if not removed and not added:
        return f"the same items in another order ({_short(loaded)} then, {_short(now)} now)"
    return ", ".join(([f"removed {listed(removed)}"] if removed else []) + ([f"added {listed(added)}"] if added else []))


def _short(value: Any, most: int = 60) -> str:
    text = "(none)" if value is None else json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= most else text[:most - 3] + "..."


def _insert_release(conn: sa.Connection, mapping: Mapping, path: Path, checksum: str) -> int:
    survey = mapping.survey
    conn.execute(
        sa.dialects.postgresql.insert(Survey)
        .values(name=survey["name"], description=survey.get("description"), url=survey.get("url"))
        .on_conflict_do_nothing(index_elements=["name"])
    )
    survey_id = conn.scalar(sa.select(Survey.survey_id).where(Survey.name == survey["name"]))
    return conn.scalar(
        sa.insert(Release)
        .values(
            survey_id=survey_id, name=mapping.release_name, version=mapping.version,
            release_date=mapping.release_date, source_uri=str(path), checksum=checksum,
            mapping=json.loads(json.dumps(mapping.raw, default=str)), status="superseded",  # publish() decides
        )
        .returning(Release.release_id)
    )


def _chunks(mapping: Mapping, path: Path):
    """The reader's chunks, cut at ``max_rows`` when the mapping sets it."""
    left = mapping.max_rows
    for first_row, table in readers.read(path, mapping.format, mapping.read_options):
        if left is not None:
            table = table[:left]
            left -= len(table)
        yield first_row, table
        if left == 0:
            return


def _prefetched(mapping: Mapping, path: Path):
    """(first_row, table, mapped chunk) read and mapped one chunk ahead in a thread, so reading and
    mapping the next chunk overlap the server's work on this one (two cores busy, not one)."""
    ahead: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item) -> bool:
        """Hand an item over unless the consumer has gone (then False)."""
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for first_row, table in _chunks(mapping, path):
                if first_row == 1:
                    mapping.check_columns(table, path)
                if not put((first_row, table, apply(mapping, table, first_row))):
                    return
            put(None)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    thread = threading.Thread(target=produce, name=f"read {path.name}", daemon=True)
    thread.start()
    try:
        while (item := ahead.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _load_rows(pg, mapping: Mapping, path: Path, release_id: int) -> dict[str, int]:
    counts = dict.fromkeys(COUNTED, 0)
    seen_ids = SeenIds(None if mapping.join else lambda ids: _in_release(pg, release_id, ids))
    first_rejects: list[Rejected] = []
    rejected_by_column: Counter[str] = Counter()  # for the error when no row is good
    positioned, ra_max = 0, -np.inf  # the good rows' positions, to tell RA in hours read as degrees
    not_stored: dict[str, dict[str, int]] = {}  # magnitude error column -> why -> good rows whose error is NULL
    size = readers.count_rows(path, mapping.format, mapping.read_options)
    with progress.RowsRead(path.name, size, log, max_rows=mapping.max_rows) as rows_read:
        for first_row, table, chunk in _prefetched(mapping, path):
            good, rejected = validate(mapping, chunk, seen_ids)
            owner = _owners(pg, mapping, chunk, good, rejected, release_id)
            _age_conflicts(pg, mapping, chunk, good, rejected, release_id)
            counts["rows_read"] += len(table)
            if table.meta.get(readers.COMMENT_LINES_SKIPPED):  # whitespace files: '#' lines among the data rows
                counts[readers.COMMENT_LINES_SKIPPED] = counts.get(readers.COMMENT_LINES_SKIPPED, 0) \
                    + table.meta[readers.COMMENT_LINES_SKIPPED]
            counts["quarantine"] += _quarantine(pg, release_id, path, rejected)
            first_rejects += rejected[: 3 - len(first_rejects)]
            rejected_by_column.update(r.column for r in rejected)
            if chunk.ra_deg is not None and good.any():
                positioned += int(good.sum())
                ra_max = max(ra_max, float(np.max(chunk.ra_deg[good])))
            _count_errors_not_stored(chunk, good, counts, not_stored)
            for table_name, n in _copy_chunk(pg, mapping, chunk, good, owner, release_id).items():
                counts[table_name] += n
            rows_read.step(first_row, len(table), f", {len(rejected)} quarantined")
    if counts["rows_read"] == 0:
        raise IngestError(f"{path}: no data rows; an empty release is not published")
    if counts["source"] + counts["joined"] == 0 or \
            counts["quarantine"] > mapping.max_rejected_fraction * counts["rows_read"]:
        examples = "; ".join(f"row {r.row_number} column {r.column}: {r.reason}" for r in first_rejects)
        tally = ", ".join(f"{column} {n}" for column, n in rejected_by_column.most_common())
        if counts["source"] + counts["joined"] == 0:
            what = f"all {counts['rows_read']} rows failed validation"
        else:
            what = (f"{counts['quarantine']} of its {counts['rows_read']} rows "
                    f"({100 * counts['quarantine'] / counts['rows_read']:.3g}%) failed validation, more than mapping "
                    f"{mapping.path.name}'s max_rejected_fraction {mapping.max_rejected_fraction:g} allows (a unit "
                    "or column wrong throughout?; if the file is right, raise it in [release])")
        raise IngestError(f"{path}: {what}, nothing published (rows rejected by column: {tally}; the first: "
                          f"{examples})")
    for column, why in not_stored.items():
        log.info("%s: %s: %d magnitude errors not stored (NULL, their magnitudes kept): %s", path, column,
                 sum(why.values()), ", ".join(f"{n} {reason}" for reason, n in why.items()))
    if positioned > RA_IN_HOURS_MIN_ROWS and ra_max <= 24.0:
        counts[RA_IN_HOURS_KEY] = positioned
        log.warning("%s: every one of its %d positions has RA in [0, 24] deg (at most %.4g): hours read as degrees? "
                    "Mapping %s reads %s in %s", path, positioned, ra_max, mapping.path.name, mapping.ra.name,
                    mapping.ra.unit or "deg")
    return counts


def _count_errors_not_stored(chunk: MappedChunk, good: np.ndarray, counts: dict, not_stored: dict) -> None:
    """Good rows whose magnitude error is NULL, their magnitude kept (mapping._mag_errors), into
    ``counts`` as ``mag_err_not_stored:<column>`` (a flat int, as every row count is) and by why."""
    for column, reasons in chunk.errors_not_stored.items():
        for why, mask in reasons.items():
            if n := int((mask & good).sum()):
                key = f"{MAG_ERR_NOT_STORED}:{column}"
                counts[key] = counts.get(key, 0) + n
                not_stored.setdefault(column, {})[why] = not_stored.get(column, {}).get(why, 0) + n


def _owners(pg, mapping: Mapping, chunk: MappedChunk, good: np.ndarray, rejected: list[Rejected], release_id: int):
    """For a joining mapping, (shard, source_id) of the published source each good row attaches to
    (source_id -1 where none; those rows are quarantined when the mapping says so). None otherwise."""
    if mapping.join is None:
        return None
    ids = chunk.xids[mapping.join]
    idx = [i for i in np.flatnonzero(good) if ids[i] is not None]
    with pg.cursor() as cur:
        # Sources of published releases of other surveys: a superseded release's sources are history,
        # and this survey's own published release is the one this release replaces.
        cur.execute(
            "SELECT DISTINCT ON (x.xid) x.xid, x.shard, x.source_id FROM healcat.source_xid x "
            "JOIN healcat.source s ON s.shard = x.shard AND s.source_id = x.source_id "
            "JOIN healcat.release r ON r.release_id = s.release_id "
            "WHERE x.catalog = %s AND x.xid = ANY(%s) AND r.status = 'published' "
            "AND r.survey_id <> (SELECT survey_id FROM healcat.release WHERE release_id = %s) "
            "ORDER BY x.xid, s.hpx IS NULL, s.source_id",
            (mapping.join, [ids[i] for i in idx], release_id),
        )
        found = {xid: (shard, sid) for xid, shard, sid in cur.fetchall()}
    owner = np.full((len(good), 2), -1, dtype=np.int64)
    column = mapping.xids[mapping.join]
    for i in np.flatnonzero(good):
        if ids[i] in found:
            owner[i] = found[ids[i]]
        elif mapping.on_missing == "quarantine":
            good[i] = False
            why = (f"no source has {mapping.join} id {ids[i]!r}" if ids[i] is not None
                   else f"{column} is empty: no {mapping.join} id to join by")
            rejected.append(quarantined(chunk, i, column, why))
    rejected.sort(key=lambda r: r.row_number)
    return owner


def _clusters(mapping: Mapping, chunk: MappedChunk) -> tuple[np.ndarray, np.ndarray]:
    """Per row of the chunk, the cluster it names and its own cluster: the subgroup where it differs
    (None where the row names none)."""
    r = chunk.sections["rotation_period"]
    const = mapping.constants["rotation_period"].get("cluster_name")
    names = r["cluster"] if "cluster" in r else np.full(len(chunk.object_id), const, dtype=object)
    subgroups = r["subgroup"] if "subgroup" in r else np.full(len(chunk.object_id), None, dtype=object)
    own = np.array([s if s is not None and s != c else c for c, s in zip(names, subgroups)], dtype=object)
    return names, own


def _age_conflicts(pg, mapping: Mapping, chunk: MappedChunk, good: np.ndarray, rejected: list[Rejected],
                   release_id: int) -> None:
    """Quarantine the good rows that give their cluster another age than this release has given it,
    in an earlier chunk or an earlier row of this chunk: one release states one age per cluster. Another
    release may give another (a revised catalogue): each row keeps its release's own age
    (``rotation_period.cluster_age_myr``)."""
    if "cluster_age_myr" not in mapping.sections.get("rotation_period", {}):
        return
    column = mapping.sections["rotation_period"]["cluster_age_myr"]
    _, own = _clusters(mapping, chunk)
    ages = chunk.sections["rotation_period"]["cluster_age_myr"]
    rows = [i for i in np.flatnonzero(good) if own[i] is not None and np.isfinite(ages[i])]
    with pg.cursor() as cur:
        cur.execute("SELECT DISTINCT ON (c.name) c.name, rp.cluster_age_myr FROM healcat.rotation_period AS rp "
                    "JOIN healcat.cluster AS c USING (cluster_id) WHERE rp.release_id = %s AND c.name = ANY(%s) "
                    "AND rp.cluster_age_myr IS NOT NULL", (release_id, sorted({own[i] for i in rows})))
        stored = dict(cur.fetchall())
    known = dict(stored)
    for i in rows:
        name, age = own[i], float(ages[i])
        if name not in known:
            known[name] = age
        elif not np.isclose(age, known[name], rtol=1e-9, atol=0):
            good[i] = False
            source = "an earlier chunk of the file" if name in stored else "an earlier row of the file"
            rejected.append(quarantined(chunk, i, column, f"cluster {name} age {age} Myr differs from the "
                                                          f"{known[name]} Myr given by {source}"))
    rejected.sort(key=lambda r: r.row_number)


def _in_release(pg, release_id: int, object_ids: list[str]) -> set[str]:
    """Which of these object ids the release's sources already have (joined rows make no source: a
    joining mapping's duplicates are told by their 64-bit hash alone)."""
    with pg.cursor() as cur:
        cur.execute("SELECT object_id FROM healcat.source WHERE release_id = %s AND object_id = ANY(%s)",
                    (release_id, object_ids))
        return {r[0] for r in cur.fetchall()}


def _new_source_ids(pg, n: int) -> np.ndarray:
    """``n`` new source ids, ascending: one bytea of int8s (an int8[] would become n Python ints), from
    the sequence named as a parameter (nextval of a regclass computed per row costs 10x)."""
    with pg.cursor() as cur:
        cur.execute("SELECT pg_get_serial_sequence('healcat.source', 'source_id')")
        sequence = cur.fetchone()[0]
        cur.execute("SELECT string_agg(int8send(nextval(%s::regclass)), ''::bytea) FROM generate_series(1, %s)",
                    (sequence, n))
        return np.sort(np.frombuffer(cur.fetchone()[0] or b"", dtype=">i8").astype(np.int64))


def _copy_chunk(pg, mapping: Mapping, chunk: MappedChunk, good: np.ndarray, owner, release_id: int) -> dict[str, int]:
    """COPY the good rows: new sources with their photometry, redshifts and ids (foreign-key checks
    off, see :class:`ingest.copy.ParentChecksOff`: no other transaction can see, hence delete, the
    parents this one made), then the rows every good row (new or joined) gives to the
    per-release tables."""
    joined = np.zeros(len(good), dtype=bool) if owner is None else good & (owner[:, 1] >= 0)
    new = np.flatnonzero(good & ~joined)
    if chunk.ra_deg is not None:
        ra = healpix.wrap_ra_deg(chunk.ra_deg[new])
        dec = chunk.dec_deg[new]
        hpx = healpix.hpx_index(ra, dec)
        shard = healpix.shard_of(hpx)
        order = np.argsort(hpx, kind="stable")  # hpx order is shard order too (shard = hpx >> 50)
    else:
        ra = dec = np.full(len(new), np.nan)
        hpx = np.ma.masked_all(len(new), dtype=np.int64)
        shard = _positionless_shard(chunk, new)
        order = np.argsort(shard, kind="stable")
    # New sources in index order, their ids ascending in it: every btree led by shard or hpx (the
    # source's hpx index, the (shard, source_id, ...) keys of photometry, ids, redshifts) then takes
    # the chunk as one sweep from left to right instead of a random insertion point per row.
    new, ra, dec, hpx, shard = new[order], ra[order], dec[order], hpx[order], shard[order]
    source_id = _new_source_ids(pg, len(new))
    # A joining mapping's attrs describe its own rows (e.g. a period's quality flags): they go to its
    # per-release table, not to the sources it only finds or makes.
    with_attrs = mapping.attrs and mapping.join is None
    attrs = np.array([json.dumps(chunk.attrs[i]) for i in new], dtype=object) if with_attrs else "{}"
    with ParentChecksOff(pg):
        counts = {"source": copy_columns(pg, "source", [
            ("shard", "int2", shard), ("source_id", "int8", source_id),
            ("release_id", "int4", np.full(len(new), release_id)),
            ("object_id", "text", chunk.object_id[new]), ("ra", "float8", ra), ("dec", "float8", dec),
            ("hpx", "int8", hpx), ("attrs", "jsonb", attrs),
            *([(name, "float8", values[new]) for name, values in zip(
                ("pmra_masyr", "pmdec_masyr", "ref_epoch_yr"), chunk.proper_motion)] if chunk.proper_motion else [])])}
        counts["photometry"] = _copy_photometry(pg, mapping, chunk, new, shard, source_id)
        counts["source_xid"] = sum(
            _copy_where(pg, "source_xid", ids[new] != None, shard, source_id,  # noqa: E711 (elementwise)
                        [("catalog", "text", catalog), ("xid", "text", ids[new])])
            for catalog, ids in chunk.xids.items())
        if "spec_redshift" in chunk.sections:
            spec = chunk.sections["spec_redshift"]
            n = len(new)
            z = spec.get("z", np.full(len(good), np.nan))[new]
            cls = spec.get("spec_class", np.full(len(good), None, dtype=object))[new]
            keep = np.isfinite(z) | (cls != None)  # noqa: E711 (elementwise)
            counts["spec_redshift"] = _copy_where(pg, "spec_redshift", keep, shard, source_id, [
                ("z", "float8", z), ("z_err", "float8", spec.get("z_err", np.full(len(good), np.nan))[new]),
                ("quality", "int4", spec.get("quality", np.full(len(good), np.nan))[new]),
                ("spec_class", "text", cls)]) if n else 0
    counts["joined"] = int(joined.sum())
    # Per-release tables take every good row: new sources and joined ones.
    rows = np.concatenate([new, np.flatnonzero(joined)])
    all_shard = np.concatenate([shard, owner[joined, 0] if owner is not None else []]).astype(np.int64)
    all_sid = np.concatenate([source_id, owner[joined, 1] if owner is not None else []]).astype(np.int64)
    if "rotation_period" in chunk.sections:
        counts["rotation_period"] = _copy_rotation(pg, mapping, chunk, rows, all_shard, all_sid, release_id)
    if "stellar_mass" in chunk.sections:
        m = chunk.sections["stellar_mass"]
        nan = np.full(len(good), np.nan)
        counts["stellar_mass"] = copy_columns(pg, "stellar_mass", [
            ("shard", "int2", all_shard), ("source_id", "int8", all_sid),
            ("release_id", "int4", np.full(len(rows), release_id)),
            ("code", "text", mapping.constants["stellar_mass"]["code"]),
            *[(column, "float8", m.get(key, nan)[rows]) for key, column in (
                ("log_mass", "log_mass_msun"), ("log_mass_p16", "log_mass_p16_msun"),
                ("log_mass_p84", "log_mass_p84_msun"), ("log_sfr", "log_sfr_msun_yr"),
                ("log_sfr_p16", "log_sfr_p16_msun_yr"), ("log_sfr_p84", "log_sfr_p84_msun_yr"))]])
    return counts


def _copy_where(pg, table: str, keep: np.ndarray, shard, source_id, columns) -> int:
    keep = np.asarray(keep, dtype=bool)
    return copy_columns(pg, table, [("shard", "int2", shard[keep]), ("source_id", "int8", source_id[keep]),
                                    *[(name, t, v if isinstance(v, str) else v[keep]) for name, t, v in columns]])


def _copy_photometry(pg, mapping: Mapping, chunk: MappedChunk, new: np.ndarray, shard, source_id) -> int:
    """One row per (new source, band) with a magnitude or a flux, in one COPY in key order (by source
    as the sources come, then band name), so the primary key takes them as one sweep."""
    bands = sorted(chunk.phot)
    if not bands:
        return 0

    def stacked(name: str) -> np.ndarray:
        return np.stack([getattr(chunk.phot[b], name)[new] for b in bands], axis=1)

    mag, flux = stacked("mag"), stacked("flux_ujy")
    row, band = np.nonzero(np.isfinite(mag) | np.isfinite(flux))
    return copy_columns(pg, "photometry", [
        ("shard", "int2", shard[row]), ("source_id", "int8", source_id[row]),
        ("band", "text", np.char.encode(bands, "utf-8")[band]), ("mag", "float4", mag[row, band]),
        ("mag_err", "float4", stacked("mag_err")[row, band]), ("mag_system", "text", mapping.mag_system),
        ("flux_ujy", "float4", flux[row, band]), ("flux_err_ujy", "float4", stacked("flux_err_ujy")[row, band])])


def _copy_rotation(pg, mapping: Mapping, chunk: MappedChunk, rows: np.ndarray, shard, source_id,
                   release_id: int) -> int:
    r = chunk.sections["rotation_period"]
    nan = np.full(len(chunk.object_id), np.nan)
    names, own = _clusters(mapping, chunk)
    cluster_id = _cluster_ids(pg, names[rows], own[rows], r.get("cluster_age_myr", nan)[rows])
    with_attrs = mapping.attrs and mapping.join is not None
    attrs = np.array([json.dumps(chunk.attrs[i]) for i in rows], dtype=object) if with_attrs else "{}"
    return copy_columns(pg, "rotation_period", [
        ("shard", "int2", shard), ("source_id", "int8", source_id), ("release_id", "int4", np.full(len(rows), release_id)),
        ("period_day", "float8", r["period"][rows]), ("period_err_day", "float8", r.get("period_err", nan)[rows]),
        ("bp_rp_dered", "float4", r.get("bp_rp_dered", nan)[rows]), ("cluster_id", "int4", cluster_id),
        ("cluster_age_myr", "float8", r.get("cluster_age_myr", nan)[rows]),
        ("membership_prob", "float4", r.get("membership_prob", nan)[rows]),
        ("reference", "text", r["reference"][rows] if "reference" in r else np.full(len(rows), None, dtype=object)),
        ("attrs", "jsonb", attrs)])


def _cluster_ids(pg, names: np.ndarray, own: np.ndarray, ages: np.ndarray) -> np.ndarray:
    """cluster_id per row (NaN where the row names no cluster).

    A row whose subgroup differs from its cluster's name belongs to the subgroup (``own``): a cluster
    of its own, with the row's age, whose ``parent_id`` is the named cluster (an association of
    subgroups of different ages, so its own row holds no age). Clusters not yet known are added with
    the age given for them, and a known one without an age takes it: ``cluster.age_myr`` is the first
    age a release gave; each row keeps its own release's (``rotation_period.cluster_age_myr``).
    """
    known: dict[str, tuple[float | None, str | None]] = {}
    for name, parent, age in zip(own, names, ages):
        if name is not None and (name not in known or known[name][0] is None):
            known[name] = (float(age) if np.isfinite(age) else None, parent if parent != name else None)
    out = np.full(len(names), np.nan)
    if not known:
        return out
    parents = sorted({p for _, p in known.values() if p is not None})
    with pg.cursor() as cur:
        if parents:
            cur.execute("INSERT INTO healcat.cluster (name) SELECT unnest(%s::text[]) "
                        "ON CONFLICT (name) DO UPDATE SET age_myr = NULL", (parents,))
        cur.execute("""INSERT INTO healcat.cluster (name, age_myr, parent_id)
            SELECT u.name, u.age_myr, p.cluster_id
            FROM unnest(%s::text[], %s::float8[], %s::text[]) AS u(name, age_myr, parent)
            LEFT JOIN healcat.cluster AS p ON p.name = u.parent
            ON CONFLICT (name) DO UPDATE SET parent_id = coalesce(healcat.cluster.parent_id, EXCLUDED.parent_id),
                                             age_myr = coalesce(healcat.cluster.age_myr, EXCLUDED.age_myr)""",
                    (list(known), [a for a, _ in known.values()], [p for _, p in known.values()]))
        cur.execute("SELECT name, cluster_id FROM healcat.cluster WHERE name = ANY(%s)", (list(known),))
        ids = dict(cur.fetchall())
    for i, name in enumerate(own):
        if name is not None:
            out[i] = ids[name]
    return out


def _positionless_shard(chunk: MappedChunk, idx: np.ndarray) -> np.ndarray:
    """Rows without a position colocate by their Gaia DR3 id's HEALPix pixel where they have one."""
    gaia = chunk.xids.get(GAIA_DR3)
    if gaia is None:
        return np.full(len(idx), healpix.NO_SHARD, dtype=np.int64)
    ids = np.array([int(gaia[i]) if gaia[i] is not None else -1 for i in idx], dtype=np.int64)
    return np.where(ids > 0, healpix.gaia_shard(np.maximum(ids, 0)), healpix.NO_SHARD)


def _quarantine(pg, release_id: int, path: Path, rejected: list[Rejected]) -> int:
    n = len(rejected)
    return copy_columns(pg, "quarantine", [
        ("release_id", "int4", np.full(n, release_id)), ("file", "text", str(path)),
        ("row_number", "int8", np.array([r.row_number for r in rejected], dtype=np.int64)),
        ("column_name", "text", np.array([r.column for r in rejected], dtype=object)),
        ("reason", "text", np.array([r.reason for r in rejected], dtype=object)),
        ("raw", "jsonb", np.array([json.dumps(r.raw) for r in rejected], dtype=object))])
