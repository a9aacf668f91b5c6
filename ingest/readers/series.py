"""Readers of per-object files (light curves, spectra): a registry by format, like ``ingest.readers``.

A series reader takes the files of a ``[series]`` section and yields one :class:`Record` per
object (or per spectrum): the object's key, the scalars the file carries about it, and its
per-point arrays. A file that cannot be read yields a record with a problem instead of
stopping the release, so that the other files load and this one is quarantined by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from catalog.errors import IngestError


@dataclass
class Record:
    file: Path | str  # the file, or "archive:member" inside an archive
    row: int  # 1-based data row of the object in the file; 0 when the file is the object (or unreadable)
    key: str | None  # the object's name in a [catalog]; None when the file carries its own scalars
    meta: dict[str, Any] = field(default_factory=dict)  # scalars read with the series (spectrum headers)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # per-point columns
    point_rows: np.ndarray | None = None  # 1-based file row of each point, where points are rows
    problems: list[tuple[str | None, str]] = field(default_factory=list)  # (column, reason): quarantine it
    units: dict[str, str] = field(default_factory=dict)  # a column's unit as the file gives it (FITS TUNIT)
    #: (file row, column, reason, raw) of rows the file has but that are no points (a row cut short, or
    #: of more fields than the header): each is quarantined, the record's other points load
    bad_rows: list[tuple[int, str | None, str, dict]] = field(default_factory=list)

    def where(self, index: int) -> int:
        """The row number to report for point ``index``."""
        return int(self.point_rows[index]) if self.point_rows is not None else self.row


SeriesReader = Callable[[list[Path], dict[str, Any]], Iterator[Record]]
SERIES_READERS: dict[str, SeriesReader] = {}


def register_series(*formats: str) -> Callable[[SeriesReader], SeriesReader]:
    def decorate(reader: SeriesReader) -> SeriesReader:
        for fmt in formats:
            SERIES_READERS[fmt] = reader
        return reader

    return decorate


def read_series(paths: list[Path], fmt: str, options: dict[str, Any]) -> Iterator[Record]:
    from ingest.readers import lightcurve, sdss_spectrum  # noqa: F401  (register their formats)

    if fmt not in SERIES_READERS:
        raise IngestError(f"no series reader for format {fmt!r} (known: {', '.join(sorted(SERIES_READERS))})")
    return SERIES_READERS[fmt](paths, options)


def field_count_problem(names: list[str], n_fields: int, row: int, line: int,
                        text: str) -> tuple[str | None, str] | None:
    """(column, reason) for data row ``row`` (file line ``line``, reading ``text``) whose ``n_fields``
    are fewer or more than the columns ``names``, else None: astropy pads a short row with missing
    cells, which were then reported as bad values (a band '' the mapping does not name)."""
    if n_fields == len(names):
        return None
    where = f"data row {row} (line {line})"
    if n_fields < len(names):
        missing = names[n_fields:]
        return missing[0], (f"{where} is truncated: {n_fields} of {len(names)} fields, too few columns "
                            f"({', '.join(missing)} missing; the file cut short?): {text[:200]!r}")
    return None, f"{where} has {n_fields} fields, more than the {len(names)} columns ({', '.join(names)}): {text[:200]!r}"


def unreadable(file: Path | str, exc: BaseException) -> Record:
    """The record of a file that could not be read: quarantined with the reason, row 0."""
    return Record(file, 0, None, problems=[(None, f"unreadable file: {type(exc).__name__}: {exc}")])
