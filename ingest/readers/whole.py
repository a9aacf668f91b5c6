"""Formats astropy parses only whole, then sliced into chunks: ECSV (its YAML header carries the
types of every column) and VOTable (XML, which cannot be cut into rows without parsing it).

A number column with a cell that is no number ('17.x') is left text, the cells as the file writes
them, as the text readers leave such a column (:func:`ingest.readers.arrow.typed`): the mapping then
quarantines that row naming the column and the text, and the file's other rows load. Such a cell
listed in the mapping's ``null_values`` is missing instead."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from astropy.io import ascii
from astropy.io.votable.exceptions import VOWarning, parse_vowarning
from astropy.table import MaskedColumn, Table
from astropy.utils.xml import iterparser

from catalog.errors import IngestError
from ingest.readers import Chunks, ReadOptions, register, sliced

log = logging.getLogger(__name__)


@register("ecsv")
def read_ecsv(path: Path, options: ReadOptions) -> Chunks:
    reader = ascii.get_reader(ascii.Ecsv)
    try:
        try:
            table = reader.read(str(path))
        except ValueError:  # "column 'g' failed to convert": a number column with a cell that is no number
            unreadable = [col for col in getattr(reader, "cols", []) if _unreadable(col)]
            if not unreadable:
                raise
            for col in unreadable:
                col.dtype = "str"
            table = reader.outputter(reader.cols, reader.meta)
            for col in unreadable:
                _as_text(table, col.name, list(np.ma.filled(table[col.name], "")), options)
    except Exception as exc:  # astropy raises many types for broken files
        raise IngestError(f"{path}: cannot be read as ECSV: {exc}") from exc
    return sliced(table, options.chunk_rows)


def _unreadable(col) -> bool:
    """Whether an ECSV column of numbers (one per cell) has a cell its declared type cannot hold."""
    if col.shape or col.subtype or np.dtype(col.dtype).kind not in "iuf":
        return False
    convert, _ = ascii.convert_numpy(col.dtype)
    try:
        convert(col.str_vals)
    except (ValueError, OverflowError):
        return True
    return False


@register("votable")
def read_votable(path: Path, options: ReadOptions) -> Chunks:
    """astropy reads a float cell that is no number as missing, with only a warning (W30, and only the
    first ten of them). A file read strictly without a fault is taken as it is; otherwise it is read
    again tolerantly (``verify="ignore"``: no warnings, which this must not catch, as it runs in the
    loader's read-ahead thread and catching warnings is not thread-safe) and its cells once more to
    find each cell that is no number. The strict read's fault is logged unless it is one of those."""
    try:
        try:
            return sliced(Table.read(path, format="votable", verify="exception"), options.chunk_rows)
        except (VOWarning, ValueError) as exc:  # a warning raised, or a cell's ValueError (W30's, strictly)
            fault = exc
        table = Table.read(path, format="votable", verify="ignore")
    except Exception as exc:  # astropy raises many types for broken files
        raise IngestError(f"{path}: cannot be read as a VOTable: {exc}") from exc
    if _position(fault) not in _unreadable_floats(path, table, options):
        log.warning("%s: read tolerantly: not a strictly valid VOTable (the first fault: %s)", path, fault)
    return sliced(table, options.chunk_rows)


def _unreadable_floats(path: Path, table: Table, options: ReadOptions) -> set[tuple[int, int]]:
    """Float columns of ``table`` (the file's first TABLE) with a cell astropy masked as no number made
    text (:func:`_as_text`); where those cells are in the file (line, column), to tell whether the
    strict read's fault is one of them."""
    floats = {i for i, col in enumerate(table.itercols()) if col.dtype.kind == "f" and col.ndim == 1}
    masks = [np.ma.getmaskarray(col) for col in table.itercols()]
    bad: dict[int, dict[int, str]] = {}  # column index -> row -> the cell's text
    found = set()
    row = column = -1
    with iterparser.get_xml_iterator(str(path)) as events:
        for start, tag, data, pos in events:
            if tag == "TR" and start:
                row, column = row + 1, 0
            elif tag == "TD" and not start:
                if column in floats and row < len(table) and masks[column][row] and _no_number(data):
                    bad.setdefault(column, {})[row] = data.strip()
                    found.add(pos)
                column += 1
            elif tag == "TABLE" and not start:
                break
    if row + 1 != len(table):  # astropy read another TABLE than the first (one in a nested RESOURCE)
        if any(masks[i].any() for i in floats):
            raise IngestError(f"{path}: its first TABLE has {row + 1} rows but astropy read a table of {len(table)}: "
                              "number cells it read as missing cannot be told from cells that are no number")
        return set()
    for column, cells in bad.items():
        col = table.columns[column]
        texts = ["" if masked else repr(float(value)) for value, masked in zip(col.data, masks[column])]
        for i, text in cells.items():
            texts[i] = text
        _as_text(table, col.name, texts, options)
    return found


def _no_number(text: str) -> bool:
    """What astropy reads as a missing float with a W30 warning: text that is there but no number."""
    try:
        float(text)
    except ValueError:
        return bool(text.strip())
    return False


def _position(fault: Exception) -> tuple[int, int] | None:
    """Where in the file astropy says a fault is (line, column), None if it does not say."""
    where = parse_vowarning(str(fault))
    return (where["nline"], where["nchar"]) if where.get("nline") is not None else None


def _as_text(table: Table, name: str, texts: list[str], options: ReadOptions) -> None:
    """Column ``name`` as ``texts``, its unit, description and meta (a VOTable's UCD) kept; empty cells
    and the mapping's ``null_values`` missing."""
    old = table[name]
    missing = [t.strip() in ("", *options.null_values) for t in texts]
    table[name] = MaskedColumn(np.array(texts, dtype=str), mask=missing, unit=old.unit, description=old.description,
                               meta=old.meta)
