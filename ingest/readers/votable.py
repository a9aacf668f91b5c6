"""VOTable (astropy): parsed whole, as XML cannot be cut into rows without parsing it; then sliced."""

from __future__ import annotations

from pathlib import Path

from astropy.table import Table

from catalog.errors import IngestError
from ingest.readers import Chunks, ReadOptions, register, sliced


@register("votable")
def read_votable(path: Path, options: ReadOptions) -> Chunks:
    try:
        table = Table.read(path, format="votable")
    except Exception as exc:  # astropy raises many types for broken files
        raise IngestError(f"{path}: cannot be read as a VOTable: {exc}") from exc
    return sliced(table, options.chunk_rows)
