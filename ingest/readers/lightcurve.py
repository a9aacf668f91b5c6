"""Light-curve file layouts, one series reader each (see ``ingest/readers/series.py``).

- ``json_arrays_csv``: a CSV (gzip allowed) with one row per object and JSON lists as cells,
  e.g. the RAMP EROS-2 ``*_varlength_features.csv.gz`` (option ``key``: the object column).
- ``tar_table``: a tar archive of whitespace tables without a header, one member per object
  named after it, e.g. Sesar et al. (2010) ``table1.tar.gz`` (options ``members``: a glob of the
  member names; ``columns``: the names of the columns).
- ``csv_per_object``: one CSV per object named after it, e.g. the ZTF BTS ``light-curves/*.csv``.
"""

from __future__ import annotations

import fnmatch
import gzip
import json
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from astropy.io import ascii
from astropy.table import Table

from catalog.errors import MappingError
from ingest.readers.series import Record, register_series, unreadable


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


def _csv_tables(paths: list[Path], text: str | None = None) -> Iterator[tuple[Path, Table | Record]]:
    """Each CSV file as a Table (columns guessed, except ``text``: every column read as text when
    it is "*"), or as the unreadable record that quarantines it."""
    converters = {text: [ascii.convert_numpy(str)]} if text else {}
    for path in paths:
        try:
            yield path, Table.read(path, format="ascii.csv", converters=converters)
        except Exception as exc:  # astropy raises many types for broken files
            yield path, unreadable(path, _gzip_damage(path) or exc)


def _gzip_damage(path: Path) -> Exception | None:
    """Why a gzip file cannot be decompressed (truncated, corrupt), where it cannot: astropy reading
    a truncated .csv.gz said only "chr() arg not in range(0x110000)"."""
    try:
        with path.open("rb") as fh:
            if fh.read(2) != b"\x1f\x8b":
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
    for path, table in _csv_tables(paths, "*"):  # JSON texts, and the key as text: '0042' stays '0042'
        if isinstance(table, Record):
            yield table
            continue
        if key not in table.colnames:
            raise MappingError(f"{path}: no key column {key!r} (columns: {', '.join(table.colnames)})")
        for i, row in enumerate(table):
            record = Record(path, i + 1, str(row[key]))
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
                where = f"{path}:{info.name}"
                try:
                    data = np.loadtxt(archive.extractfile(info), ndmin=2)
                    if data.size and data.shape[1] != len(columns):
                        raise ValueError(f"{data.shape[1]} columns, the mapping names {len(columns)}")
                except (ValueError, OSError, EOFError, tarfile.TarError) as exc:
                    yield unreadable(where, exc)
                    continue
                data = data.reshape(-1, len(columns))
                yield Record(where, 0, PurePosixPath(info.name).stem,
                             arrays={c: data[:, j] for j, c in enumerate(columns)},
                             point_rows=np.arange(1, len(data) + 1))


@register_series("csv_per_object")
def read_csv_per_object(paths: list[Path], options: dict[str, Any]) -> Iterator[Record]:
    for path, table in _csv_tables(paths):
        if isinstance(table, Record):
            yield table
            continue
        yield Record(path, 0, path.stem, arrays=_columns(table), point_rows=np.arange(1, len(table) + 1))
