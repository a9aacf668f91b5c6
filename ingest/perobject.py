"""Load a release of per-object files (light curves, spectra) through its mapping, atomically.

file set -> series readers -> mapping -> validation -> COPY -> publish, in one transaction
(``ingest.load.load_release``). The release is named by the sha256 of every input file (its name
and bytes) and the mapping, so ingesting the same set again changes nothing.

Objects become sources as catalogue rows do (``ingest.mapping.apply``, ``ingest.validate``),
from a ``[catalog]`` file (light curves) or from each spectrum's own scalars (spectra). A
spectrum whose object id names an existing source of a ``match_survey`` (e.g. SDSS
PLATE-MJD-FIBER) joins that source; spectra of one release within ``group_within_arcsec`` of
each other (epochs of one object) share one source. A spectrum is one release's reading (keyed
with ``release_id``): a new version of a sample, or another sample holding the same spectrum,
stores it again for the same source, and ``healcat.current_spectrum`` shows published ones.

Validation keeps everything: a light-curve point with a non-finite value (text quoted as the file
has it), a magnitude outside [-30, 50], an error that is not positive or is past a float4, a point repeating an earlier point's time (the first is kept), a
point of a band the mapping does not name, a curve with no points, a spectrum with no pixels, non-finite or
non-increasing wavelengths, wavelengths outside [10, 1e7] Angstrom, flux/ivar a float4 cannot
hold, a mask an int4 cannot, a file unit (FITS TUNIT) not convertible to the mapping's, a spectrum
whose id names two current sources of the match surveys, a row with fewer or more fields than its
file's header (a last row cut short: padded with missing cells, it was reported as a bad band) and
an unreadable file each become a quarantine row with the file, the row (or 0 for a whole file), the
column and the reason. A
curve whose times are out of order is sorted (``curves_sorted`` counts them).
Sentinel magnitudes the mapping lists are missing measurements, counted, not errors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import ascii
from astropy.table import Table, join, vstack

from catalog.errors import IngestError, MappingError
from ingest import progress
from ingest.cells import json_scalar
from ingest.copy import copy_rows
from ingest.load import (LoadResult, _copy_chunk, _quarantine, check_same_file, check_unchanged, hash_file, load_release,
                         mapping_json)
from ingest.mapping import MappedChunk, apply, data_dir
from ingest.perobject_build import curve_rows, group_by_position, spectrum_row
from ingest.perobject_mapping import InputFiles, PerObjectMapping
from ingest.readers.lightcurve import CsvRows, read_csv_rows
from ingest.readers.series import Record, read_series
from ingest.validate import Rejected, SeenIds, validate

LC_COLUMNS = ("shard", "source_id", "band", "release_id", "time_mjd", "time_scale", "time_origin",
              "mag", "mag_err", "mag_system")
LC_TYPES = ("int2", "int8", "text", "int4", "float8[]", "text", "text", "float4[]", "float4[]", "text")
SPECTRUM_COLUMNS = ("shard", "source_id", "spectrum_name", "release_id", "wavelength", "wavelength_unit", "vacuum",
                    "flux", "flux_unit", "ivar", "ivar_unit", "mask", "mjd", "file")
SPECTRUM_TYPES = ("int2", "int8", "text", "int4", "float4[]", "text", "bool", "float4[]", "text", "float4[]", "text",
                  "int4[]", "float8", "text")
LABEL_COLUMNS = ("shard", "source_id", "taxonomy", "label", "split", "release_id")
LABEL_TYPES = ("int2", "int8", "text", "text", "text", "int4")


def files_checksum(inputs: InputFiles, mapping: PerObjectMapping) -> tuple[str, tuple[str, ...]]:
    """sha256 over each input file's name and bytes (in name order) and the mapping's canonical JSON;
    and the checksums an older healcat gave the same files (:func:`hashed_files`)."""
    checksum, older, _ = hashed_files(inputs, mapping)
    return checksum, older


def hashed_files(inputs: InputFiles, mapping: PerObjectMapping
                 ) -> tuple[str, tuple[str, ...], dict[Path, tuple[int, ...]]]:
    """:func:`files_checksum`, and the identity of each file it read (``ingest.load.hash_file``), for
    ``check_same_file`` once the release's rows are read. Each file opened must really lie in the data
    folder or the mapping's (its descriptor's real path: a link swapped in after the paths were found
    is refused, not read).

    ``older``: healcat before 2026-12-05 left the [catalog] join files out of the checksum (it read
    them unhashed), so a release with join files loaded then carries that checksum; its catalogue,
    series and mapping unchanged are the same release (``load_release``, the scheduler), not one
    "loaded from different content". Empty without join files (both checksums are the same)."""
    digest = hashlib.sha256()
    joined = {path for paths in inputs.joins for path in paths}
    before = hashlib.sha256() if joined else None
    hashed = {}
    for path in sorted(inputs.all(), key=str):
        into = _Digests(digest) if path in joined or before is None else _Digests(digest, before)
        into.update(_relative(path).encode() + b"\0")
        hashed[path] = hash_file(into, path, (mapping.path,))
    for d in (digest, before) if before is not None else (digest,):
        d.update(mapping_json(mapping))
    return digest.hexdigest(), (before.hexdigest(),) if before is not None else (), hashed


class _Digests:
    """Feeds the same bytes to several hashes (one read of a file for the checksum and the older one)."""

    def __init__(self, *digests) -> None:
        self.digests = digests

    def update(self, data: bytes) -> None:
        for digest in self.digests:
            digest.update(data)


def ingest_per_object(mapping: PerObjectMapping, engine, *, checksum: str | None = None) -> LoadResult:
    """Load a mapping's per-object files as one release (``checksum``: as for ingest_release).

    The files are found once and read as found: each is checked, before the commit, to be the file
    hashed, unchanged (one replaced, written to or removed meanwhile fails the load, naming it)."""
    inputs = mapping.input_files()
    uri = mapping.source_uri
    load = _load_light_curves if mapping.light_curve else _load_spectra
    found, older, hashed = hashed_files(inputs, mapping)
    check_unchanged(uri, checksum, found, older, mapping=mapping.path)

    def load_rows(pg, release_id: int) -> dict[str, int]:
        counts = load(pg, mapping, inputs, release_id)
        for path, identity in hashed.items():  # before the commit: the rows read are the bytes hashed
            check_same_file(path, identity)
        return counts

    return load_release(engine, mapping, uri, found, load_rows, older)


def _series(mapping: PerObjectMapping, paths: list[Path]) -> Iterator[Record]:
    """The records of the series files, reporting the files done so far out of all of them
    (a job's progress; an archive counts as one file)."""
    done: set[str] = set()
    for record in read_series(paths, mapping.series.format, mapping.series.options):
        done.add(str(record.file).split(":", 1)[0])
        progress.report(len(done), len(paths))
        yield record


def _relative(path: Path | str) -> str:
    """A file's name relative to the data folder where it lies there (quarantine and spectrum.file)."""
    try:
        return str(Path(path).relative_to(data_dir()))
    except ValueError:
        return str(path)


class _Quarantine:
    """Rejected input collected for one COPY into healcat.quarantine."""

    def __init__(self) -> None:
        self.rows: list[Rejected] = []
        self.files: list[str] = []

    def add(self, file: Path | str, row: int, column: str | None, reason: str, raw: dict) -> None:
        self.rows.append(Rejected(row, column, reason, raw))
        self.files.append(_relative(file))

    def add_record(self, record: Record) -> None:
        """What the reader could not read of a record: the whole (its problems) or some rows."""
        for column, reason in record.problems:
            self.add(record.file, record.row, column, reason, {"object": record.key})
        for row, column, reason, raw in record.bad_rows:
            self.add(record.file, row, column, reason, raw)

    def nothing_loaded(self, what: str, read: int) -> IngestError:
        """The error of a release in which nothing passed: publish nothing, name the first problems."""
        examples = "; ".join(f"{f} row {r.row_number} column {r.column}: {r.reason}"
                             for r, f in list(zip(self.rows, self.files))[:3])
        return IngestError(f"no {what} passed validation ({read} read), nothing published ({examples})")

    def write(self, pg, release_id: int) -> int:
        n = 0
        for file in dict.fromkeys(self.files):
            n += _quarantine(pg, release_id, file, [r for r, f in zip(self.rows, self.files) if f == file])
        return n


# --- light curves ------------------------------------------------------------


def _catalog_table(mapping: PerObjectMapping, inputs: InputFiles,
                   quarantine: _Quarantine) -> tuple[Table, set[str]]:
    """The [catalog] files stacked (with their file name and row) and joined to its join files by key;
    and the keys of the rows set apart as malformed (fewer or more fields than the header: quarantined)."""
    cat = mapping.catalog
    joins = []  # (join entry, a join file's table): read first, as their columns count as the catalogue's
    for extra, paths in zip(cat.options.get("join", []), inputs.joins):
        for path in paths:
            read = _read_catalog_file(path, extra.get("format", cat.format), {extra["key"]})
            if read.malformed:  # its columns would be missing from a catalogue row, without a word
                raise MappingError(f"{path}: [catalog] join file: {read.malformed[0][2]}")
            joins.append((extra, read.table))
    joined_columns = {c for extra, other in joins for c in other.colnames if c != extra["key"]}
    text = (set(mapping.source.read_options.text_columns) - {"key"}) | {cat.options["key"]}
    tables, malformed = [], set()
    for path in inputs.catalog:
        read = _read_catalog_file(path, cat.format, text)
        table = read.table
        mapping.check_columns(set(table.colnames) | joined_columns, _catalog_used(mapping), path)
        at = table.colnames.index(cat.options["key"])
        for n, column, reason, fields in read.malformed:
            quarantine.add(path, n, column, reason, {"fields": fields})
            malformed.update(fields[at:at + 1])
        table["_file"] = _relative(path)
        table["_row"] = read.rows
        tables.append(table)
    table = vstack(tables, join_type="exact") if len(tables) > 1 else tables[0]
    for extra, other in joins:
        if extra["key"] != cat.options["key"]:
            other.rename_column(extra["key"], cat.options["key"])
        table = join(table, other, keys=cat.options["key"], join_type="left")
    table.sort(["_file", "_row"])
    table["key"] = [str(v) for v in table[cat.options["key"]]]
    for name, parts in mapping.sexagesimal.items():
        table[name] = _sexagesimal(*(np.ma.filled(np.ma.asarray(table[c], dtype=np.float64), np.nan) for c in parts))
    return table, malformed


def _read_catalog_file(path: Path, fmt: str, text: set[str]) -> CsvRows:
    """A [catalog] file or one of its join files (:func:`read_table`); one that cannot be read fails naming it."""
    try:
        return read_table(path, fmt, text)
    except Exception as exc:  # astropy raises many types for broken files
        raise MappingError(f"{path}: cannot be read as {fmt}: {exc}") from exc


def read_table(path: Path, fmt: str, text: set[str]) -> CsvRows:
    """A table file read by astropy, the ``text`` columns (ids) as text: guessed as numbers, an
    all-digit column of ids lost its leading zeros ('0042' became '42', and matched no '0042.csv').
    A CSV's rows of another length than its header are set apart (astropy padded a short one)."""
    converters = {c: [ascii.convert_numpy(str)] for c in text}
    if fmt == "ascii.csv":
        return read_csv_rows(path, converters)
    table = Table.read(path, format=fmt, **({"converters": converters} if fmt.startswith("ascii") else {}))
    return CsvRows(table, np.arange(1, len(table) + 1), [])


def _sexagesimal(d: np.ndarray, m: np.ndarray, s: np.ndarray) -> list[str]:
    """'-70:13:58.78' from (-70, 13, 58.78): the sign of the first part (even -0) applies to all;
    a missing part leaves the cell empty (a missing position)."""
    return ["" if np.isnan([a, b, c]).any() else f"{'-' if np.signbit(a) else ''}{abs(a):.0f}:{b:.0f}:{float(c)!r}"
            for a, b, c in zip(d, m, s)]


def _catalog_used(mapping: PerObjectMapping) -> set[str]:
    return mapping.scalar_columns() | {mapping.catalog.options["key"]}


def _place(table: Table, i: int) -> str:
    """Row ``i`` of a table of several files' rows, as its file and row there."""
    return f"{table['_file'][i]} row {table['_row'][i]}"


def _new_sources(pg, mapping: PerObjectMapping, table: Table, chunk: MappedChunk, quarantine: _Quarantine,
                 release_id: int, keep: np.ndarray | None = None
                 ) -> tuple[dict[str, tuple[int, int]], dict[str, int], np.ndarray]:
    """Sources for the rows of ``table`` (those in ``keep``) that pass validation; ``chunk`` is
    ``table`` mapped (``apply(mapping.source, table)``, which the caller needs too).

    Returns object_id -> (shard, source_id), the row counts written, and the mask of good rows.
    """
    good, rejected = validate(mapping.source, chunk, SeenIds(), row_name=lambda n: _place(table, n - 1))
    for r in rejected:
        i = r.row_number - 1
        quarantine.add(table["_file"][i], int(table["_row"][i]), r.column, r.reason, r.raw)
    written = good if keep is None else good & keep
    counts = _copy_chunk(pg, mapping.source, chunk, written, None, release_id)  # None: no joins, all new
    with pg.cursor() as cur:
        cur.execute("SELECT object_id, shard, source_id FROM healcat.source WHERE release_id = %s", (release_id,))
        ids = {oid: (shard, sid) for oid, shard, sid in cur.fetchall()}
    return ids, counts, good


def _labels(mapping: PerObjectMapping, table: Table, good: np.ndarray, ids: dict, release_id: int):
    spec = mapping.label
    for i in np.flatnonzero(good):
        value = json_scalar(table[spec.column][i])
        if value is None or str(value).strip() == "":
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        shard, sid = ids[table["object_id"][i]]
        yield (shard, sid, spec.taxonomy, str(value).strip(),
               spec.split_by_file.get(Path(table["_file"][i]).name), release_id)


def _load_light_curves(pg, mapping: PerObjectMapping, inputs: InputFiles, release_id: int) -> dict[str, int]:
    quarantine = _Quarantine()
    table, malformed = _catalog_table(mapping, inputs, quarantine)
    chunk = apply(mapping.source, table)
    ids, counts, good = _new_sources(pg, mapping, table, chunk, quarantine, release_id)
    table["object_id"] = chunk.object_id
    by_key = {table["key"][i]: table["object_id"][i] for i in np.flatnonzero(good)}
    rejected_keys = {table["key"][i] for i in np.flatnonzero(~good)} | malformed
    if mapping.label:
        counts["label"] = copy_rows(pg, "label", LABEL_COLUMNS, LABEL_TYPES,
                                    _labels(mapping, table, good, ids, release_id))
    lc = mapping.light_curve
    stats = {"series_read": 0, "light_curve": 0, "points": 0, "sentinel_points": 0}
    seen: set[str] = set()
    rows = []
    key = {mapping.series.options["key"]} if "key" in mapping.series.options else set()
    checked: set[frozenset[str]] = set()  # column sets found fine: every file's are checked, not the first's
    for record in _series(mapping, inputs.series):
        stats["series_read"] += 1
        quarantine.add_record(record)
        if record.problems:
            continue
        if (columns := frozenset(record.arrays) | key) not in checked:
            mapping.check_columns(set(columns), lc.columns() | key, record.file)
            checked.add(columns)
        raw = {"object": record.key}
        if record.key in seen:
            quarantine.add(record.file, record.row, None, f"a second series for object {record.key!r}", raw)
            continue
        seen.add(record.key)
        if record.key not in by_key:
            why = ("its catalogue row is quarantined" if record.key in rejected_keys
                   else "no catalogue row names this object")
            quarantine.add(record.file, record.row, None, f"series of {record.key!r}: {why}", raw)
            continue
        shard, sid = ids[by_key[record.key]]
        for row in curve_rows(lc, record, quarantine.add, stats):
            rows.append((shard, sid, row["band"], release_id, row["time_mjd"], lc.time_scale, lc.time_origin,
                         row["mag"], row["mag_err"], lc.mag_system))
    if not rows:
        raise quarantine.nothing_loaded("light curve", stats["series_read"])
    stats["light_curve"] = copy_rows(pg, "light_curve", LC_COLUMNS, LC_TYPES, rows)
    stats["objects_without_series"] = len(set(by_key) - seen)
    counts["quarantine"] = quarantine.write(pg, release_id)
    return {**counts, **stats}


# --- spectra -----------------------------------------------------------------


def _load_spectra(pg, mapping: PerObjectMapping, inputs: InputFiles, release_id: int) -> dict[str, int]:
    quarantine = _Quarantine()
    spec = mapping.spectrum
    records, metas = [], []
    scalars = sorted(mapping.scalar_columns())
    unread = 0
    for record in _series(mapping, inputs.series):
        quarantine.add_record(record)
        if record.problems:
            unread += 1
            continue
        mapping.check_columns(set(record.meta), set(scalars), record.file)
        mapping.check_columns(set(record.arrays), spec.columns(), record.file)
        records.append(record)
        metas.append([record.meta[c] for c in scalars])
    counts = {"spectra_read": len(records) + unread, "spectrum": 0}
    if not records:
        raise quarantine.nothing_loaded("spectrum", counts["spectra_read"])
    table = Table(rows=metas, names=scalars)
    table["_file"] = [_relative(r.file) for r in records]
    table["_row"] = [r.row for r in records]
    chunk = apply(mapping.source, table)
    good, _ = validate(mapping.source, chunk, SeenIds())
    matched, ambiguous = _matches(pg, mapping, [chunk.object_id[i] for i in np.flatnonzero(good)])
    built: list[dict | None] = [None] * len(records)
    for i in np.flatnonzero(good):
        oid = chunk.object_id[i]
        if oid in ambiguous:
            quarantine.add(records[i].file, records[i].row, None, f"object id {oid!r} names {len(ambiguous[oid])} "
                           f"current sources of the match_survey surveys ({', '.join(ambiguous[oid])}): "
                           "which one this spectrum is of is ambiguous", {"object": oid})
        else:  # the pixels are checked before any source is made for it: a rejected spectrum leaves none
            built[i] = spectrum_row(spec, records[i], quarantine.add, counts)
        good[i] = built[i] is not None
    groups = group_by_position(chunk.ra_deg, chunk.dec_deg, good, mapping.group_within_arcsec)
    first = {}  # group -> representative row: the earliest spectrum
    order = np.argsort([r.meta.get(spec.mjd, 0) if spec.mjd else 0 for r in records], kind="stable")
    for i in order:
        if good[i]:
            first.setdefault(groups[i], i)
    group_source = {g: matched[chunk.object_id[i]] for i in np.flatnonzero(good) for g in [groups[i]]
                    if chunk.object_id[i] in matched}
    keep = np.zeros(len(records), dtype=bool)
    keep[[i for g, i in first.items() if g not in group_source]] = True
    ids, new_counts, _ = _new_sources(pg, mapping, table, chunk, quarantine, release_id, keep)
    counts |= new_counts
    for g, i in first.items():
        if g not in group_source:
            group_source[g] = ids[chunk.object_id[i]]
    counts["matched_existing_source"] = sum(1 for i in np.flatnonzero(good) if chunk.object_id[i] in matched)
    ivar_unit = (u.Unit(spec.flux_unit) ** -2).to_string()  # one astropy parses back
    rows, named = [], {}  # (shard, source_id, name) -> the record that gave it first
    for i in np.flatnonzero(good):
        row = built[i]
        shard, sid = group_source[groups[i]]
        if (earlier := named.setdefault((shard, sid, row["name"]), i)) != i:
            quarantine.add(records[i].file, records[i].row, None, f"{row['name']} is already in this release "
                           f"for this source (file {records[earlier].file}, row {records[earlier].row})",
                           {"object": row["name"]})
            continue
        rows.append((shard, sid, row["name"], release_id, row["wavelength"], spec.wavelength_unit, spec.vacuum,
                     row["flux"], spec.flux_unit, row["ivar"], ivar_unit, row["mask"],
                     row["mjd"], _relative(records[i].file)))
    if not rows:
        raise quarantine.nothing_loaded("spectrum", counts["spectra_read"])
    counts["spectrum"] = copy_rows(pg, "spectrum", SPECTRUM_COLUMNS, SPECTRUM_TYPES, rows)
    counts["quarantine"] = quarantine.write(pg, release_id)
    return counts


def _matches(pg, mapping: PerObjectMapping,
             object_ids: list[str]) -> tuple[dict[str, tuple[int, int]], dict[str, list[str]]]:
    """Current sources of the ``match_survey`` surveys named by these object ids: object_id ->
    (shard, source_id), and object_id -> the releases of its sources where it names more than one.

    Only sources of published releases, as ``[source] join`` finds them: a superseded release's
    sources are history, and a spectrum attached to one is invisible to current_source. Never the
    mapping's own survey: its earlier releases are versions this one supersedes, whose sources it
    does not share."""
    if not mapping.match_surveys or not object_ids:
        return {}, {}
    with pg.cursor() as cur:
        cur.execute(
            "SELECT s.object_id, s.shard, s.source_id, r.name FROM healcat.source AS s "
            "JOIN healcat.release AS r USING (release_id) JOIN healcat.survey AS v USING (survey_id) "
            "WHERE v.name = ANY(%s) AND v.name <> %s AND s.object_id = ANY(%s) AND r.status = 'published' "
            "ORDER BY s.source_id",
            (list(mapping.match_surveys), mapping.survey["name"], object_ids),
        )
        found: dict[str, list[tuple[int, int, str]]] = {}
        for oid, shard, sid, release in cur.fetchall():
            found.setdefault(oid, []).append((shard, sid, release))
    matched = {oid: (s[0][0], s[0][1]) for oid, s in found.items() if len(s) == 1}
    ambiguous = {oid: [f"{r} source {sid}" for _, sid, r in s] for oid, s in found.items() if len(s) > 1}
    return matched, ambiguous
