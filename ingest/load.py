"""Load a survey release: file -> mapping -> validation -> COPY -> publish, in one transaction.

Readers see the catalog before the release or with all of it, never half:
every row is written inside one transaction that also inserts the release
row. A release is identified by the sha256 of its file and its mapping, so
ingesting the same file again finds it and changes nothing; a second loader
racing on the same release waits on an advisory lock and then finds it too.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from psycopg.types.json import Jsonb

from catalog import healpix
from catalog.errors import IngestError
from catalog.models import Release, Survey
from ingest import progress, publish, readers
from ingest.copy import copy_rows
from ingest.mapping import MappedChunk, Mapping, apply, load_mapping
from ingest.validate import Rejected, validate

log = logging.getLogger(__name__)

GAIA_DR3 = "gaia_dr3"
SOURCE_COLUMNS = ("shard", "source_id", "release_id", "object_id", "ra", "dec", "hpx", "attrs")
SOURCE_TYPES = ("int2", "int8", "int4", "text", "float8", "float8", "int8", "jsonb")
PHOT_COLUMNS = ("shard", "source_id", "band", "mag", "mag_system")
PHOT_TYPES = ("int2", "int8", "text", "float4", "text")
SPEC_COLUMNS = ("shard", "source_id", "z", "z_err", "quality", "spec_class")
SPEC_TYPES = ("int2", "int8", "float8", "float8", "int4", "text")
XID_COLUMNS = ("shard", "source_id", "catalog", "xid")
XID_TYPES = ("int2", "int8", "text", "text")
QUARANTINE_COLUMNS = ("release_id", "file", "row_number", "column_name", "reason", "raw")
QUARANTINE_TYPES = ("int4", "text", "int8", "text", "text", "jsonb")


@dataclass
class LoadResult:
    release: str
    release_id: int
    already_loaded: bool
    row_counts: dict[str, int] = field(default_factory=dict)


def release_checksum(path: Path, mapping: Mapping) -> str:
    """sha256 over the input file's bytes and the mapping's canonical JSON."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    digest.update(json.dumps(mapping.raw, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def ingest_release(mapping: Mapping | str | Path, engine: sa.Engine, file: str | Path | None = None) -> LoadResult:
    """Ingest one release file through its mapping and publish it atomically (idempotent)."""
    if not isinstance(mapping, Mapping):
        mapping = load_mapping(mapping)
    path = mapping.input_path(file)
    if not path.is_file():
        raise IngestError(f"{path}: no such file (release {mapping.release_name})")
    checksum = release_checksum(path, mapping)
    with engine.begin() as conn:
        # Serialise loaders of the same release; the loser finds the winner's release below.
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(mapping.release_name))))
        done = conn.execute(sa.select(Release).where(Release.checksum == checksum)).first()
        if done is not None:
            return LoadResult(done.name, done.release_id, True, done.row_counts)
        clash = conn.scalar(sa.select(Release.checksum).where(Release.name == mapping.release_name))
        if clash is not None:
            raise IngestError(
                f"{path}: release {mapping.release_name} is already loaded from different content "
                f"(sha256 {clash[:12]}... vs {checksum[:12]}...); give the new release a new version"
            )
        release_id = _insert_release(conn, mapping, path, checksum)
        counts = _load_rows(conn.connection.driver_connection, mapping, path, release_id)
        publish.publish(conn, release_id)  # current or superseded, and release_change, in this transaction
        conn.execute(sa.update(Release).where(Release.release_id == release_id).values(row_counts=counts))
    log.info("published %s: %s", mapping.release_name, counts)
    return LoadResult(mapping.release_name, release_id, False, counts)


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


def _load_rows(pg, mapping: Mapping, path: Path, release_id: int) -> dict[str, int]:
    counts = {"rows_read": 0, "source": 0, "source_xid": 0, "photometry": 0, "spec_redshift": 0, "quarantine": 0}
    seen_ids: set[str] = set()
    first_rejects: list[Rejected] = []
    for first_row, table in readers.read(path, mapping.format):
        if first_row == 1:
            mapping.check_columns(table, path)
        chunk = apply(mapping, table, first_row)
        good, rejected = validate(mapping, chunk, seen_ids)
        counts["rows_read"] += len(table)
        progress.report(counts["rows_read"])
        counts["quarantine"] += _quarantine(pg, release_id, path, rejected)
        first_rejects += rejected[: 3 - len(first_rejects)]
        for table_name, n in _copy_chunk(pg, mapping, chunk, good, release_id).items():
            counts[table_name] += n
        log.info("%s: rows %d-%d read, %d quarantined", path.name, first_row, first_row + len(table) - 1,
                 len(rejected))
    if counts["rows_read"] == 0:
        raise IngestError(f"{path}: no data rows; an empty release is not published")
    if counts["source"] == 0:
        examples = "; ".join(f"row {r.row_number} column {r.column}: {r.reason}" for r in first_rejects)
        raise IngestError(f"{path}: all {counts['rows_read']} rows failed validation, nothing published ({examples})")
    return counts


def _new_source_ids(pg, n: int) -> np.ndarray:
    with pg.cursor() as cur:
        cur.execute(
            "SELECT nextval(pg_get_serial_sequence('healcat.source', 'source_id')) FROM generate_series(1, %s)",
            (n,),
        )
        return np.array([r[0] for r in cur.fetchall()], dtype=np.int64)


def _copy_chunk(pg, mapping: Mapping, chunk: MappedChunk, good: np.ndarray, release_id: int) -> dict[str, int]:
    idx = np.flatnonzero(good)
    source_id = _new_source_ids(pg, len(idx))
    if chunk.ra_deg is not None:
        ra = healpix.wrap_ra_deg(chunk.ra_deg[idx])
        dec = chunk.dec_deg[idx]
        hpx = healpix.hpx_index(ra, dec)
        shard = healpix.shard_of(hpx)
    else:
        ra = dec = hpx = [None] * len(idx)
        shard = _positionless_shard(chunk, idx)
    shard_l, sid_l = shard.tolist(), source_id.tolist()
    counts = {
        "source": copy_rows(
            pg, "source", SOURCE_COLUMNS, SOURCE_TYPES,
            zip(shard_l, sid_l, [release_id] * len(idx), chunk.object_id[idx],
                _tolist(ra), _tolist(dec), _tolist(hpx), (Jsonb(chunk.attrs[i]) for i in idx)),
        )
    }
    counts["photometry"] = copy_rows(
        pg, "photometry", PHOT_COLUMNS, PHOT_TYPES,
        (
            (shard_l[j], sid_l[j], band, float(mags[i]), mapping.mag_system)
            for band, mags in chunk.mags.items()
            for j, i in enumerate(idx)
            if np.isfinite(mags[i])
        ),
    )
    counts["source_xid"] = copy_rows(
        pg, "source_xid", XID_COLUMNS, XID_TYPES,
        (
            (shard_l[j], sid_l[j], catalog, ids[i])
            for catalog, ids in chunk.xids.items()
            for j, i in enumerate(idx)
            if ids[i] is not None
        ),
    )
    counts["spec_redshift"] = copy_rows(
        pg, "spec_redshift", SPEC_COLUMNS, SPEC_TYPES, _spec_rows(chunk, idx, shard_l, sid_l)
    )
    return counts


def _spec_rows(chunk: MappedChunk, idx: np.ndarray, shard: list[int], source_id: list[int]):
    """Spectroscopic rows for the good rows that have a redshift or a class."""
    if not chunk.spec:
        return
    n = len(chunk.object_id)
    z = chunk.spec.get("z", np.full(n, np.nan))
    z_err = chunk.spec.get("z_err", np.full(n, np.nan))
    quality = chunk.spec.get("quality", np.full(n, np.nan))
    cls = chunk.spec.get("spec_class", np.full(n, None, dtype=object))
    for j, i in enumerate(idx):
        if np.isfinite(z[i]) or cls[i] is not None:
            yield (shard[j], source_id[j], _finite(z[i]), _finite(z_err[i]),
                   int(quality[i]) if np.isfinite(quality[i]) else None, cls[i])


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _positionless_shard(chunk: MappedChunk, idx: np.ndarray) -> np.ndarray:
    """Rows without a position colocate by their Gaia DR3 id's HEALPix pixel where they have one."""
    gaia = chunk.xids.get(GAIA_DR3)
    if gaia is None:
        return np.full(len(idx), healpix.NO_SHARD)
    ids = np.array([int(gaia[i]) if gaia[i] is not None else -1 for i in idx], dtype=np.int64)
    return np.where(ids > 0, healpix.gaia_shard(np.maximum(ids, 0)), healpix.NO_SHARD)


def _tolist(values) -> list:
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


def _quarantine(pg, release_id: int, path: Path, rejected: list[Rejected]) -> int:
    return copy_rows(
        pg, "quarantine", QUARANTINE_COLUMNS, QUARANTINE_TYPES,
        ((release_id, str(path), r.row_number, r.column, r.reason, Jsonb(r.raw)) for r in rejected),
    )
