"""Text tables: CSV (pyarrow's streaming reader), whitespace tables with '#' headers (split by pyarrow
in C block by block, quoted fields by Python's csv module; the header line's names may be separated
by blanks or commas). Either may be gzipped, whatever the file's name (:func:`ingest.readers.is_gzip`)."""

from __future__ import annotations

import csv
import functools
import logging
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from astropy.table import Table

from catalog.errors import IngestError, MissingInputError
from ingest.readers import (COMMENT_LINES_SKIPPED, Chunks, ReadOptions, RowCount, is_gzip, open_file, register, sliced,
                            unique_names)
from ingest.readers.arrow import to_table, typed

BLOCK_BYTES = 8 << 20  # pyarrow's read block; chunks are re-cut to chunk_rows
UTF8_BOM = b"\xef\xbb\xbf"  # some editors begin a UTF-8 file with it: not part of its first line
log = logging.getLogger(__name__)
SAMPLE_BYTES = 1 << 20  # read at the start and the middle of a text file to estimate its row count
_BLANKS = " \t\r\v\f"  # trimmed from a whitespace table's line ends (a delimiter among them aside)


def estimate_rows(path: Path, options: ReadOptions, header_lines: int = 0) -> RowCount | None:
    """Data lines of a plain-text table (not gzipped: None): counted when the file is shorter than a
    sample, else its bytes after the header over the mean length of the data lines sampled at its
    start and its middle. Blank and '#' lines are not data; neither are the first ``header_lines``."""
    if is_gzip(path):
        return None
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(SAMPLE_BYTES)
        whole = len(head) == size
        lines = head.split(b"\n") if whole else head.split(b"\n")[:-1]  # the last one may be cut
        data_at = [i for i, line in enumerate(lines) if _is_data(line)][header_lines:]
        prefix = sum(len(line) + 1 for line in lines[:data_at[0]]) if data_at else 0
        data = [lines[i] for i in data_at]
        if whole:
            return RowCount(len(data))
        fh.seek(size // 2)
        data += [line for line in fh.read(SAMPLE_BYTES).split(b"\n")[1:-1] if _is_data(line)]
    if not data:
        return None
    mean_bytes = sum(len(line) + 1 for line in data) / len(data)
    return RowCount(round((size - prefix) / mean_bytes), exact=False)


def _is_data(line: bytes) -> bool:
    return bool(line.strip()) and not line.startswith(b"#")


@register("csv", count=functools.partial(estimate_rows, header_lines=1))
def read_csv(path: Path, options: ReadOptions) -> Chunks:
    """Empty cells and the mapping's ``null_values`` are missing; any other text ('NA', 'null') is
    text. Every cell is read as text, then each column of a chunk becomes integers or floats where
    all its cells are (so a stray word quarantines one row instead of failing the file, and ids
    in ``text_columns`` keep every digit)."""
    _refuse_utf16(path)
    try:
        names = unique_names(path, pacsv.open_csv(_csv_input(path),
                                                  read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES)).schema.names)
        reader = pacsv.open_csv(
            _csv_input(path),
            read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES),
            # bytes, not text: a cell that is not UTF-8 is then found and named (by _text), not a whole column
            convert_options=pacsv.ConvertOptions(column_types={n: pa.binary() for n in names},
                                                 null_values=["", *options.null_values], strings_can_be_null=True),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise IngestError(f"{path}: cannot be read as CSV: {_ragged_row(path, exc) or exc}") from exc
    first = 1
    pending: list[pa.RecordBatch] = []
    try:
        for batch in reader:
            pending.append(batch)
            rows = sum(len(b) for b in pending)
            while rows >= options.chunk_rows:
                table = pa.Table.from_batches(pending).combine_chunks()
                head, rest = table.slice(0, options.chunk_rows), table.slice(options.chunk_rows)
                yield first, to_table(typed(_text(path, head, first), options.text_columns, options.padded_text))
                first += len(head)
                pending, rows = rest.to_batches(), len(rest)
    except pa.ArrowInvalid as exc:
        raise IngestError(f"{path}: malformed CSV: {_ragged_row(path, exc) or f'after data row {first - 1}: {exc}'}") \
            from exc
    table = pa.Table.from_batches(pending, schema=reader.schema).combine_chunks()
    if len(table):
        yield first, to_table(typed(_text(path, table, first), options.text_columns, options.padded_text))
    _refuse_if_unterminated(path, first + len(table) - 1)


def _refuse_utf16(path: Path) -> None:
    """Refuse a UTF-16 (or UTF-32) text file, saying so: read as UTF-8 its NUL bytes made a CSV's header one
    field and failed at its end ('data row 10001 has 1 fields, not 15: \\x00')."""
    with open_file(path) as fh:
        first_line = fh.read(4096).split(b"\n", 1)[0]
    # without a byte order mark: a NUL beside each ASCII character of the header (a NUL in a UTF-8 cell
    # quarantines its row instead)
    if first_line.startswith((b"\xff\xfe", b"\xfe\xff")) or 3 * first_line.count(b"\x00") > len(first_line):
        bom = {b"\xff\xfe": " (little-endian byte order mark)", b"\xfe\xff": " (big-endian byte order mark)"}.get(
            first_line[:2], " (a NUL byte beside each character of its first line)")
        raise IngestError(f"{path}: the file is UTF-16 or UTF-32 text{bom}, not UTF-8: convert it, e.g. "
                          f"iconv -f UTF-16 -t UTF-8 {path.name} > {path.stem}-utf8{path.suffix}")


def _refuse_if_unterminated(path: Path, last_row: int) -> None:
    """Refuse a plain (not gzipped) text file of several lines that does not end with a newline: a copy cut
    short inside its last line reads as a whole row with its last cell cut (fiberid 975 read as 97: a field
    fewer fails the file, a digit fewer does not), and the release would publish that row as it stands.
    It was a warning in the log that a scheduled load left in a worker's log alone. The load stops before
    anything is published; a whole file is one newline (``echo >> FILE``) from loading."""
    if last_row < 1 or is_gzip(path):
        return
    with path.open("rb") as fh:
        fh.seek(-1, 2)
        if fh.read(1) in (b"\n", b"\r"):
            return
    raise IngestError(f"{path}: the file does not end with a newline, so its last row (data row {last_row}) may "
                      "have been cut short in a copy, inside its last field; copy the file again, or if it is whole, "
                      "end it with a newline (echo >> FILE) and ingest it again")


def _csv_input(path: Path) -> pa.NativeFile:
    """The file for pyarrow, decompressed where it is gzipped by its content (:func:`ingest.readers.is_gzip`):
    pyarrow given a path goes by its name alone."""
    return pa.input_stream(str(path), compression="gzip" if is_gzip(path) else None)


def _ragged_row(path: Path, exc: pa.ArrowInvalid) -> str | None:
    """Which data row pyarrow's 'Expected N columns, got M' (which names none) is about: the first one
    of another length, found again by Python's csv module. None for other errors."""
    expected = re.search(r"Expected (\d+) columns, got \d+", str(exc))
    if expected is None:
        return None
    with open_file(path, "rt", newline="", encoding="utf-8", errors="replace") as fh:
        rows = (row for row in csv.reader(fh) if row)  # pyarrow skips blank lines too
        next(rows, None)  # the header
        for n, row in enumerate(rows, 1):
            if len(row) != int(expected[1]):
                return f"data row {n} has {len(row)} fields, not {expected[1]}: {','.join(row)[:200]!r}"
    return None


def _text(path: Path, table: pa.Table, first: int) -> pa.RecordBatch:
    """The chunk's cells (bytes) as text; a cell that is not UTF-8 fails, naming its row and column."""
    columns = []
    for name, column in zip(table.column_names, table.columns):
        try:
            columns.append(column.cast(pa.string()))
        except pa.ArrowInvalid:
            row, cell = next((i, v) for i, v in enumerate(column.to_pylist()) if v is not None and not _utf8(v))
            raise IngestError(f"{path}: data row {first + row} column {name}: {cell[:200]!r} is not UTF-8 text") \
                from None
    return pa.RecordBatch.from_arrays([c.combine_chunks() for c in columns], names=table.column_names)


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _comment_names(path: Path, index: int) -> list[str]:
    """Column names from the file's '#' comment lines (the ``index``-th of them)."""
    comments = []
    with open_file(path) as fh:  # bytes: only the header lines need be text here
        for number, raw in enumerate(fh, 1):
            if number == 1:
                raw = raw.removeprefix(UTF8_BOM)
            if not raw.strip():
                continue
            if not raw.startswith(b"#"):
                break
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise IngestError(f"{path}: line {number} of the '#' header is not UTF-8 text: {raw[:200]!r}") from None
            comments.append([n for n in re.split(r"[\s,]+", line.lstrip("#")) if n])
    comments = [c for c in comments if c]
    try:
        return comments[index]
    except IndexError:
        raise IngestError(f"{path}: no '#' header line number {index} (found {len(comments)})") from None


@register("whitespace", count=estimate_rows)
def read_whitespace(path: Path, options: ReadOptions) -> Chunks:
    """Fields split on blanks (or ``options.delimiter``) in C by pyarrow, block by block; blank and
    '#' lines are not data. Every field starts as text and becomes numbers as in :func:`read_csv`,
    so ``text_columns`` keep every character ('007' stays '007')."""
    _refuse_utf16(path)
    names = unique_names(path, _comment_names(path, options.header_comment))
    first = 1
    try:
        with open_file(path) as fh:
            block = fh.read(BLOCK_BYTES).removeprefix(UTF8_BOM)
            while block:
                block += fh.readline()  # end on a line's end
                table = _whitespace_block(path, block, names, options, first)
                comments = table.meta.pop(COMMENT_LINES_SKIPPED)
                if comments:
                    log.warning("%s: %d '#' line(s) among data rows %d to %d skipped as comments, not data", path,
                                comments, first, first + len(table) - 1)
                for n, (start, chunk) in enumerate(sliced(table, options.chunk_rows, first)):
                    chunk.meta[COMMENT_LINES_SKIPPED] = comments if n == 0 else 0
                    yield start, chunk
                    first += len(chunk)
                block = fh.read(BLOCK_BYTES)
        _refuse_if_unterminated(path, first - 1)
    except EOFError as exc:  # a gzip stream cut short: the same every time
        raise IngestError(f"{path}: cannot be read (after data row {first - 1}): {exc}") from exc
    except OSError as exc:  # an I/O error may pass: the job is retried
        raise MissingInputError(f"{path}: cannot be read (after data row {first - 1}): {exc}") from exc


def _whitespace_block(path: Path, block: bytes, names: list[str], options: ReadOptions, first: int) -> Table:
    """A block of whole lines as a Table of the data rows in it (the first being data row ``first``)."""
    try:
        text = pa.array([block], pa.binary()).cast(pa.string())
    except pa.ArrowInvalid:
        lines = block.split(b"\n")  # a block of whole lines: one of them is not UTF-8
        bad = next(i for i, line in enumerate(lines) if not _utf8(line))
        row = first + sum(_is_data(line.strip()) for line in lines[:bad])
        if not _is_data(lines[bad].strip()):  # a comment among the data
            raise IngestError(f"{path}: a comment line after data row {row - 1} is not UTF-8 text") from None
        raise IngestError(f"{path}: data row {row} is not UTF-8 text: {lines[bad].strip()[:200]!r}") from None
    lines = pc.split_pattern(text, "\n").flatten()
    blank = pc.equal(pc.utf8_trim_whitespace(lines), "")
    # A line's end blanks go, but not a blank delimiter (a tab): its first or last cell empty, "1\t10.0\t5.0\t"
    # lost a field, and the whole file failed as ragged
    kept = "".join(c for c in _BLANKS if c not in (options.delimiter or ""))
    lines = pc.utf8_trim(lines, characters=kept).filter(pc.invert(blank))
    comment = pc.starts_with(lines, "#").to_numpy(zero_copy_only=False)
    data_at = np.flatnonzero(~comment)
    # '#' lines after the file's first data row: comments among the data (or rows commented out), counted
    if first > 1:  # the file's first data row was in an earlier block
        data_from = 0
    else:
        data_from = int(data_at[0]) if len(data_at) else len(comment)
    comments_among_data = int(comment[data_from:].sum())
    lines = lines.filter(pa.array(~comment))
    if pc.any(pc.match_substring(lines, '"')).as_py():  # quoted fields ("NGC 104"): Python's csv splits them
        fields = pa.array([[f.strip() for f in row] for row in csv.reader(
            # blanks are split on as spaces; a delimiter (a tab: a TSV) stays what it is (made a space, every
            # line of a TSV with a quote in it was one field, and the file failed)
            (line if options.delimiter else line.replace("\t", " ") for line in lines.to_pylist()),
            delimiter=options.delimiter or " ", skipinitialspace=True)], pa.list_(pa.string()))
    elif options.delimiter:
        fields = pc.split_pattern(lines, options.delimiter)
        fields = pa.ListArray.from_arrays(fields.offsets, pc.utf8_trim_whitespace(fields.flatten()))
    else:
        fields = pc.utf8_split_whitespace(lines)
    counts = pc.list_value_length(fields).to_numpy(zero_copy_only=False)
    ragged = np.flatnonzero(counts != len(names))
    if len(ragged):
        i = int(ragged[0])
        raise IngestError(f"{path}: not a whitespace table with columns {' '.join(names)}: data row {first + i} "
                          f"has {counts[i]} fields, not {len(names)}: {lines[i].as_py()[:200]!r}")
    columns = [pc.list_element(fields, j) for j in range(len(names))]
    nulls = pa.array(["", *options.null_values], pa.string())  # empty cells and the mapping's null_values: missing
    columns = [pc.if_else(pc.is_in(c, value_set=nulls), pa.scalar(None, pa.string()), c) for c in columns]
    table = to_table(typed(pa.RecordBatch.from_arrays(columns, names=names), options.text_columns, options.padded_text))
    table.meta[COMMENT_LINES_SKIPPED] = comments_among_data
    return table
