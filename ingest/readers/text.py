"""Text tables: CSV (pyarrow's streaming reader), whitespace tables with '#' headers (astropy's
chunked fast reader, gzip too; the header line's names may be separated by blanks or commas)."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
from astropy.io import ascii

from catalog.errors import IngestError
from ingest.readers import Chunks, ReadOptions, register, sliced
from ingest.readers.arrow import to_table, typed

BLOCK_BYTES = 8 << 20  # pyarrow's read block; chunks are re-cut to chunk_rows


@register("csv")
def read_csv(path: Path, options: ReadOptions) -> Chunks:
    """Every cell is read as text, then each column of a chunk becomes integers or floats where
    all its cells are (so a stray word quarantines one row instead of failing the file, and ids
    in ``text_columns`` keep every digit)."""
    try:
        names = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES)).schema.names
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES),
            convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                 strings_can_be_null=True),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise IngestError(f"{path}: cannot be read as CSV: {exc}") from exc
    first = 1
    pending: list[pa.RecordBatch] = []
    try:
        for batch in reader:
            pending.append(batch)
            rows = sum(len(b) for b in pending)
            while rows >= options.chunk_rows:
                table = pa.Table.from_batches(pending).combine_chunks()
                head, rest = table.slice(0, options.chunk_rows), table.slice(options.chunk_rows)
                yield first, to_table(typed(head.to_batches()[0], options.text_columns))
                first += len(head)
                pending, rows = rest.to_batches(), len(rest)
    except pa.ArrowInvalid as exc:
        raise IngestError(f"{path}: malformed CSV after data row {first - 1}: {exc}") from exc
    table = pa.Table.from_batches(pending, schema=reader.schema).combine_chunks()
    if len(table):
        yield first, to_table(typed(table.to_batches()[0], options.text_columns))


def _comment_names(path: Path, index: int) -> list[str]:
    """Column names from the file's '#' comment lines (the ``index``-th of them)."""
    opener = gzip.open if path.suffix == ".gz" else open
    comments = []
    with opener(path, "rt") as fh:
        for line in fh:
            if not line.strip():
                continue
            if not line.startswith("#"):
                break
            comments.append([n for n in re.split(r"[\s,]+", line.lstrip("#")) if n])
    comments = [c for c in comments if c]
    try:
        return comments[index]
    except IndexError:
        raise IngestError(f"{path}: no '#' header line number {index} (found {len(comments)})") from None


@register("whitespace")
def read_whitespace(path: Path, options: ReadOptions) -> Chunks:
    names = _comment_names(path, options.header_comment)
    first = 1
    try:
        chunks = ascii.read(path, format="no_header", names=names, comment="#", guess=False,
                            delimiter=options.delimiter or " ",
                            fast_reader={"chunk_size": 32 << 20, "chunk_generator": True})
        for chunk in chunks:
            for start, table in sliced(chunk, options.chunk_rows, first):
                yield start, table
            first += len(chunk)
    except (ascii.InconsistentTableError, ValueError) as exc:
        raise IngestError(f"{path}: not a whitespace table with columns {' '.join(names)} "
                          f"(after data row {first - 1}): {exc}") from exc
