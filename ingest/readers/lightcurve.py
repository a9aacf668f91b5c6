"""Light-curve file layouts, one series reader each (see ``ingest/readers/series.py``).

- ``json_arrays_csv``: a CSV (gzip allowed) with one row per object and JSON lists as cells,
  e.g. the RAMP EROS-2 ``*_varlength_features.csv.gz`` (option ``key``: the object column).
- ``tar_table``: a tar archive of whitespace tables without a header, one member per object
  named after it, e.g. Sesar et al. (2010) ``table1.tar.gz`` (options ``members``: a glob of the
  member names; ``columns``: the names of the columns).
- ``csv_per_object``: one CSV per object named after it, e.g. the ZTF BTS ``light-curves/*.csv``.

A row with fewer or more fields than the header (or the mapping's ``columns``), such as a last row
cut mid-row, is set apart with its reason (``Record.bad_rows``, or the object's ``problems`` where
the row is the object): the readers padded a short row with missing cells or refused the file.
"""

from __future__ import annotations

import csv
import fnmatch
import gzip
import io
import json
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from astropy.io import ascii
from astropy.table import Table

from catalog.errors import MappingError
from ingest.readers import is_gzip, open_file
from ingest.readers.series import Record, field_count_problem, register_series, unreadable


def _columns(table: Table) -> dict[str, np.ndarray]:
    """A table's columns as arrays: numbers as float64 with masked cells NaN, text as str."""
    out = {}
    for name in table.colnames:
        col = table[name]
        if col.dtype.kind in "iuf":
            out[name] = np.ma.filled(np.ma.asarray(col, dtype=np.float64), np.nan)
        else:
            out[name] = np.ma.filled(np.ma.asarray(col).astype(str), "")
    return out


@dataclass
class CsvRows:
    """A CSV file's table of the rows with as many fields as its header, the data row of each, and
    the rows of another length: (data row, column, reason, the row's fields)."""

    table: Table
    rows: np.ndarray
    malformed: list[tuple[int, str | None, str, list[str]]]


def read_csv_rows(path: Path, converters: dict | None = None) -> CsvRows:
    """A CSV file (gzip too) read by astropy (``converters`` as astropy's), the rows of another length
    than the header (a last row cut short) set apart, named: astropy padded a short row with missing
    cells and read on."""
    names, rows, malformed = _split_rows(path)
    # only where rows were set apart is the file read again, from its good rows
    source = path if not malformed else _csv_text([names, *(fields for _, _, fields in rows)])
    table = Table.read(source, format="ascii.csv", converters=converters or {})
    return CsvRows(table, np.array([row for row, _, _ in rows], dtype=np.int64), malformed)


def _csv_tables(paths: list[Path], text: str | None = None) -> Iterator[tuple[Path, CsvRows | Record]]:
    """Each CSV file's :class:`CsvRows` (columns guessed, except ``text``: every column read as text
    when it is "*"), or the unreadable record that quarantines it."""
    converters = {text: [ascii.convert_numpy(str)]} if text else {}
    for path in paths:
        try:
            read = read_csv_rows(path, converters)
        except Exception as exc:  # astropy raises many types for broken files
            read = unreadable(path, _gzip_damage(path) or exc)
        yield path, read


def _split_rows(path: Path) -> tuple[list[str], list[tuple[int, int, list[str]]], list]:
    """The header, the data rows (data row, line, fields) with as many fields as it, and the others
    (data row, column, reason, fields), as Python's csv module splits them (blank lines are no rows,
    as for astropy)."""
    names, good, malformed = None, [], []
    with open_file(path, "rt", newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        row = 0
        for fields in reader:
            if not "".join(fields).strip() and len(fields) < 2:  # blank (astropy skips it too)
                continue
            if names is None:
                names = fields
                continue
            row += 1
            problem = field_count_problem(names, len(fields), row, reader.line_num, ",".join(fields))
            if problem is None:
                good.append((row, reader.line_num, fields))
            else:
                malformed.append((row, *problem, fields))
    return names or [], good, malformed


def _csv_text(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def _gzip_damage(path: Path) -> Exception | None:
    """Why a gzip file cannot be decompressed (truncated, corrupt), where it cannot: astropy reading
    a truncated .csv.gz said only "chr() arg not in range(0x110000)"."""
    try:
        if not is_gzip(path):
            return None
        with gzip.open(path) as fh:
            while fh.read(1 << 20):
                pass
    except (OSError, EOFError, zlib.error) as exc:
        return type(exc)(f"the gzip file is truncated or corrupt: {exc}")
    return None


@register_series("json_arrays_csv")
def read_json_arrays_csv(paths: list[Path], options: dict[str, Any]) -> Iterator[Record]:
    key = options.get("key")
    if not isinstance(key, str):
        raise MappingError("[series] format json_arrays_csv needs key = the column naming the object")
    for path, read in _csv_tables(paths, "*"):  # JSON texts, and the key as text: '0042' stays '0042'
        if isinstance(read, Record):
            yield read
            continue
        table = read.table
        if key not in table.colnames:
            raise MappingError(f"{path}: no key column {key!r} (columns: {', '.join(table.colnames)})")
        at = table.colnames.index(key)
        for n, column, reason, fields in read.malformed:  # the row is the object's: it is quarantined
            yield Record(path, n, fields[at] if at < len(fields) else None, problems=[(column, reason)])
        for row, n in zip(table, read.rows):
            record = Record(path, int(n), str(row[key]))
            for name in table.colnames:
                if name == key:
                    continue
                try:
                    values = json.loads(str(row[name]))
                    # a flat list of numbers (null: a missing point): not a scalar, a nested list
                    # (it was flattened), text or booleans (true became 1.0)
                    if not isinstance(values, list):
                        raise ValueError(f"a JSON {type(values).__name__}, not a list")
                    odd = [v for v in values if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)))]
                    if odd:
                        raise ValueError(f"holds {json.dumps(odd[0])}, not a number")
                    record.arrays[name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
                except (ValueError, TypeError) as exc:
                    record.problems.append((name, f"{name} is not a JSON list of numbers: {exc}"))
            yield record


@register_series("tar_table")
def read_tar_table(paths: list[Path], options: dict[str, Any]) -> Iterator[Record]:
    members, columns = options.get("members", "*"), options.get("columns")
    if not (isinstance(columns, list) and columns):
        raise MappingError("[series] format tar_table needs columns = the names of the members' columns")
    for path in paths:
        try:
            archive = tarfile.open(path)
            infos = [m for m in archive.getmembers() if m.isfile() and fnmatch.fnmatch(m.name, members)]
        except (tarfile.TarError, OSError, EOFError) as exc:
            yield unreadable(path, exc)
            continue
        with archive:
            for info in infos:
                where, key = f"{path}:{info.name}", PurePosixPath(info.name).stem
                try:
                    rows, malformed = _whitespace_rows(archive.extractfile(info).read().decode(), columns)
                    if malformed and not rows:  # not a row of the mapping's columns: the member is unreadable
                        raise ValueError(malformed[0][2])
                    data = np.loadtxt([line for _, line in rows], ndmin=2).reshape(-1, len(columns))
                except (ValueError, OSError, EOFError, tarfile.TarError) as exc:
                    yield unreadable(where, exc)
                    continue
                yield Record(where, 0, key, arrays={c: data[:, j] for j, c in enumerate(columns)},
                             point_rows=np.array([n for n, _ in rows], dtype=np.int64),
                             bad_rows=[(n, column, reason, {"object": key, "fields": fields})
                                       for n, column, reason, fields in malformed])


def _whitespace_rows(text: str, names: list[str]) -> tuple[list[tuple[int, str]], list]:
    """The data lines of a whitespace table without a header (blank and '#' lines are none, as for
    numpy's loadtxt) with as many fields as ``names``: (data row, line); and the others (data row,
    column, reason, fields)."""
    rows, malformed = [], []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        n = len(rows) + len(malformed) + 1
        problem = field_count_problem(names, len(fields), n, number, line.strip())
        if problem is None:
            rows.append((n, line))
        else:
            malformed.append((n, *problem, fields))
    return rows, malformed


@register_series("csv_per_object")
def read_csv_per_object(paths: list[Path], options: dict[str, Any]) -> Iterator[Record]:
    for path, read in _csv_tables(paths):
        if isinstance(read, Record):
            yield read
            continue
        yield Record(path, 0, path.stem, arrays=_columns(read.table), point_rows=read.rows,
                     bad_rows=[(n, column, reason, {"object": path.stem, "fields": fields})
                               for n, column, reason, fields in read.malformed])
