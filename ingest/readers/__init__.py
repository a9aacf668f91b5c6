"""Readers turn a release file into astropy Tables: a registry by format, not an if-chain.

Each reader yields ``(first_row, Table)`` chunks, ``first_row`` being the 1-based
data row of the chunk's first row in the file, so that every error and every
quarantined row can name its place in the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from astropy.table import Table

from catalog.errors import IngestError

Reader = Callable[[Path], Iterator[tuple[int, Table]]]
READERS: dict[str, Reader] = {}


def register(*formats: str) -> Callable[[Reader], Reader]:
    def decorate(reader: Reader) -> Reader:
        for fmt in formats:
            READERS[fmt] = reader
        return reader

    return decorate


def read(path: Path, fmt: str) -> Iterator[tuple[int, Table]]:
    """Chunks of the file's rows; a broken file fails with an IngestError naming it."""
    if fmt not in READERS:
        raise IngestError(f"{path}: no reader for format {fmt!r} (known: {', '.join(sorted(READERS))})")
    if not path.is_file():
        raise IngestError(f"{path}: no such file")
    return READERS[fmt](path)


def _whole_file(astropy_format: str) -> Reader:
    def reader(path: Path) -> Iterator[tuple[int, Table]]:
        try:
            table = Table.read(path, format=astropy_format)
        except Exception as exc:  # astropy raises many types for broken files
            raise IngestError(f"{path}: cannot be read as {astropy_format}: {exc}") from exc
        yield 1, table

    return reader


register("csv")(_whole_file("ascii.csv"))
register("ecsv")(_whole_file("ascii.ecsv"))
register("fits")(_whole_file("fits"))
register("votable")(_whole_file("votable"))

from ingest.readers import gaia_catalog_bin  # noqa: E402,F401  (registers its format)
