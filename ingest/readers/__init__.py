"""Readers turn a release file into astropy Tables in bounded chunks: a registry by format.

Every reader yields ``(first_row, Table)`` chunks of at most ``options.chunk_rows`` rows,
``first_row`` being the 1-based data row of the chunk's first row in the file, so that
memory stays bounded whatever the file's size and every error and every quarantined
row can name its place in the file. A file a reader cannot parse raises an
IngestError naming the file and what is wrong.

A format may also register a cheap row count (``count``), for the progress of a load: the count
its metadata records (Parquet footer, FITS ``NAXIS2``, HDF5 shape, the Gaia binary header), or for
plain text an estimate from the file's bytes.

| format | module | chunking | row count |
|---|---|---|---|
| csv, whitespace | text.py | pyarrow's streaming CSV reader / blocks split by pyarrow | estimated from the bytes |
| ecsv, votable | whole.py | whole file, then sliced (these formats have no streaming reader) | none |
| fits | fits.py | memory-mapped binary table, sliced | ``NAXIS2`` |
| parquet | parquet.py | pyarrow ``iter_batches`` | footer metadata |
| hdf5 | hdf5.py | h5py dataset slices (plain tables and pandas "fixed" frames) | dataset shape |
| gaia_catalog_bin | gaia_catalog_bin.py | fixed-width records | header |
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from astropy.table import Table

from catalog.errors import IngestError, MissingInputError

CHUNK_ROWS = 100_000
GZIP_MAGIC = b"\x1f\x8b"  # the first two bytes of every gzip file


@dataclass(frozen=True)
class ReadOptions:
    """How to read one file; set from the mapping's ``[release]`` section."""

    chunk_rows: int = CHUNK_ROWS
    hdu: int | str = 1  # fits: the binary table's HDU, by index or EXTNAME
    dataset: str = "data"  # hdf5: the table's dataset or pandas group
    header_comment: int = 0  # whitespace: which '#' comment line names the columns (-1: the last)
    delimiter: str | None = None  # whitespace: a delimiter other than blanks (e.g. ',' under a '#' header)
    text_columns: frozenset[str] = frozenset()  # read as text whatever they look like (exact ids)
    padded_text: bool = False  # csv, whitespace: integers with a cell written 0042 stay text (xmatch's input)
    null_values: tuple[str, ...] = ()  # cells that mean missing besides empty ones ("NULL"): csv, whitespace;
    # ecsv, votable: in a number column's cells that are no number


@dataclass(frozen=True)
class RowCount:
    """How many data rows a file has: exact where the format records it, else an estimate."""

    rows: int
    exact: bool = True


Chunks = Iterator[tuple[int, Table]]
Reader = Callable[[Path, ReadOptions], Chunks]
Counter = Callable[[Path, ReadOptions], "RowCount | None"]
READERS: dict[str, Reader] = {}
COUNTERS: dict[str, Counter] = {}


def register(*formats: str, count: Counter | None = None) -> Callable[[Reader], Reader]:
    def decorate(reader: Reader) -> Reader:
        for fmt in formats:
            READERS[fmt] = reader
            if count is not None:
                COUNTERS[fmt] = count
        return reader

    return decorate


def count_rows(path: Path, fmt: str, options: ReadOptions = ReadOptions()) -> RowCount | None:
    """The file's row count where its format gives it cheaply, for progress only: None for formats
    without one and for a file whose count cannot be read (its reader then says what is wrong)."""
    counter = COUNTERS.get(fmt)
    if counter is None:
        return None
    try:
        return counter(path, options)
    except (IngestError, OSError, ValueError, KeyError, IndexError):
        return None


def read(path: Path, fmt: str, options: ReadOptions = ReadOptions()) -> Chunks:
    """Chunks of the file's rows; a broken file fails with an IngestError naming it."""
    if fmt not in READERS:
        raise IngestError(f"{path}: no reader for format {fmt!r} (known: {', '.join(sorted(READERS))})")
    if not path.is_file():
        raise MissingInputError(f"{path}: no such file")
    return READERS[fmt](path, options)


#: Table.meta key of a chunk: how many '#' comment lines among the data rows the reader skipped for it (the
#: loader adds them to the release's row_counts under this name).
COMMENT_LINES_SKIPPED = "comment_lines_skipped"


def unique_names(path: Path, names: list[str]) -> list[str]:
    """The file's column names, unless one repeats: a table keeps one column per name, so a second
    one would silently replace the first."""
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise IngestError(f"{path}: column {', '.join(map(repr, repeated))} appears more than once in the header")
    return names


def is_gzip(path: Path) -> bool:
    """Whether the file is gzip-compressed, by its first bytes rather than its name: a gzipped table
    not named .gz is decompressed too, never read as its compressed bytes."""
    with path.open("rb") as fh:
        return fh.read(len(GZIP_MAGIC)) == GZIP_MAGIC


def open_file(path: Path, mode: str = "rb", **kwargs) -> IO:
    """The file opened as :func:`open` would (``mode`` and ``kwargs`` as its), decompressed where it is
    gzipped (:func:`is_gzip`)."""
    return (gzip.open if is_gzip(path) else open)(path, mode, **kwargs)


def sliced(table: Table, chunk_rows: int, first_row: int = 1) -> Chunks:
    """A table already in memory, in chunks (for formats that cannot be streamed)."""
    for start in range(0, len(table), chunk_rows):
        yield first_row + start, table[start:start + chunk_rows]


from ingest.readers import fits, gaia_catalog_bin, hdf5, parquet, text, whole  # noqa: E402,F401  (register)
