"""Formats astropy parses only whole, then sliced into chunks: ECSV (its YAML header carries the
types of every column) and VOTable (XML, which cannot be cut into rows without parsing it)."""

from __future__ import annotations

from pathlib import Path

from astropy.table import Table

from catalog.errors import IngestError
from ingest.readers import Chunks, Reader, ReadOptions, register, sliced


def _whole(astropy_format: str, label: str) -> Reader:
    def read(path: Path, options: ReadOptions) -> Chunks:
        try:
            table = Table.read(path, format=astropy_format)
        except Exception as exc:  # astropy raises many types for broken files
            raise IngestError(f"{path}: cannot be read as {label}: {exc}") from exc
        return sliced(table, options.chunk_rows)

    return read


register("ecsv")(_whole("ascii.ecsv", "ECSV"))
register("votable")(_whole("votable", "a VOTable"))
