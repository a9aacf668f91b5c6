"""Formats astropy parses only whole, then sliced into chunks: ECSV (its YAML header carries the
types of every column) and VOTable (XML, which cannot be cut into rows without parsing it).

A number column with a cell that is no number ('17.x'; in a VOTable a float or an integer column
written as TABLEDATA) is left text, the cells as the file writes them, as the text readers leave such
a column (:func:`ingest.readers.arrow.typed`): the mapping then quarantines that row naming the column
and the text, and the file's other rows load. Such a cell listed in the mapping's ``null_values`` is
missing instead."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
from astropy.io import ascii
from astropy.io.votable import converters, parse
from astropy.io.votable.exceptions import VOWarning, parse_vowarning
from astropy.io.votable.tree import Field
from astropy.table import Column, MaskedColumn, Table
from astropy.utils.xml import iterparser

from catalog.errors import IngestError
from ingest.readers import Chunks, ReadOptions, register, sliced

log = logging.getLogger(__name__)

#: The end of astropy's error for a VOTable cell its column's type cannot hold: "... (in row 1, col 'id')"
CELL_FAULT = re.compile(r"\(in row \d+, col '(.*)'\)$")


@register("ecsv")
def read_ecsv(path: Path, options: ReadOptions) -> Chunks:
    # an empty cell is a missing value, as astropy.io.ascii.read has it (the fill ascii.read adds by default:
    # without it, a masked number made its whole column text, and its 'nan' cells quarantined rows)
    reader = ascii.get_reader(ascii.Ecsv, fill_values=[("", "0")])
    try:
        try:
            table = reader.read(str(path))
        except ValueError:  # "column 'g' failed to convert": a number column with a cell that is no number
            unreadable = [col for col in getattr(reader, "cols", []) if _unreadable(col)]
            if not unreadable:
                raise
            floats = {col.name for col in unreadable if np.dtype(col.dtype).kind == "f"}
            for col in unreadable:
                col.dtype = "str"
            table = reader.outputter(reader.cols, reader.meta)
            for col in unreadable:  # a float column's 'nan' is missing still, as where every cell is a number
                texts = list(np.ma.filled(table[col.name], ""))
                _as_text(table, col.name, [("" if t.strip().lower() == "nan" and col.name in floats else t)
                                           for t in texts], options)
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
    first ten of them), and fails the file on an integer cell that is no number ('2x'). A file read
    strictly without a fault is taken as it is; otherwise it is read again tolerantly
    (:func:`_read_tolerantly`; ``verify="ignore"``: no warnings, which this must not catch, as it runs
    in the loader's read-ahead thread and catching warnings is not thread-safe) and its cells once more
    to find each cell that is no number. The strict read's fault is logged unless it is one of those."""
    try:
        try:
            return sliced(Table.read(path, format="votable", verify="exception"), options.chunk_rows)
        except (VOWarning, ValueError) as exc:  # a warning raised, or a cell's ValueError (W30's, strictly)
            fault = exc
        table, left_out = _read_tolerantly(path)
    except Exception as exc:  # astropy raises many types for broken files
        raise IngestError(f"{path}: cannot be read as a VOTable: {exc}") from exc
    made_text = _unreadable_cells(path, table, left_out, options)
    if _position(fault) not in made_text:
        log.warning("%s: read tolerantly: not a strictly valid VOTable (the first fault: %s)", path, fault)
    elif (other := _other_fault(path, set(made_text.values()))) is not None:  # else hidden behind the first
        log.warning("%s: read tolerantly: besides its cells that are no number, not a strictly valid VOTable "
                    "(the first other fault: %s)", path, other)
    return sliced(table, options.chunk_rows)


def _other_fault(path: Path, made_text: set[str]) -> Exception | None:
    """The strict read's first fault in the columns other than ``made_text`` (an integer astropy clamped
    to its type's range, say), None if there is none."""
    kept = [field.ID for field in _fields(path) if field.ID not in made_text]
    if not kept:
        return None
    try:
        Table.read(path, format="votable", verify="exception", columns=kept)
    except (VOWarning, ValueError) as exc:
        return exc
    return None


def _read_tolerantly(path: Path) -> tuple[Table, dict[int, tuple[Field, ValueError]]]:
    """The file read with ``verify="ignore"``. A cell of an integer column that is no integer ('2x')
    makes astropy raise even so, naming the column: that column is left out (``columns=``) and the file
    read again, until no such column is left. Returned with the table: the columns left out, by their
    place among the TABLE's FIELDs, each with the fault that named it."""
    fields: list[Field] = []
    left_out: dict[int, tuple[Field, ValueError]] = {}
    while True:
        try:
            kept = [field.ID for i, field in enumerate(fields) if i not in left_out] or None
            return Table.read(path, format="votable", verify="ignore", columns=kept), left_out
        except ValueError as exc:
            named = CELL_FAULT.search(str(exc))
            if named is None:
                raise
            fields = fields or _fields(path)
            i = next((i for i, field in enumerate(fields) if field.ID == named[1]), None)
            if i is None or i in left_out or not isinstance(fields[i].converter, converters.Integer):
                raise
            left_out[i] = fields[i], exc


def _fields(path: Path) -> list[Field]:
    """The first TABLE's FIELDs, with the IDs astropy names its columns by. Read with the first column's
    cells alone: ``invalid="mask"`` masks those that are no number (and would shift the cells after such
    a cell into the wrong columns, were there more)."""
    return parse(str(path), verify="ignore", columns=[0], invalid="mask").get_first_table().all_fields


def _unreadable_cells(path: Path, table: Table, left_out: dict[int, tuple[Field, ValueError]],
                      options: ReadOptions) -> dict[tuple[int, int], str]:
    """Make text (:func:`_as_text`) the float columns of ``table`` (the file's first TABLE) with a cell
    astropy masked as no number, and put back in their places as text the integer columns
    :func:`_read_tolerantly` left out; where the cells astropy could not read are in the file (line,
    column), each with its column's name, to tell whether the strict read's fault is one of them."""
    places = [i for i in range(len(table.columns) + len(left_out)) if i not in left_out]  # each column's FIELD
    floats = {places[k] for k, col in enumerate(table.itercols()) if col.dtype.kind == "f" and col.ndim == 1}
    masks = {places[k]: np.ma.getmaskarray(col) for k, col in enumerate(table.itercols())}
    bad: dict[int, dict[int, str]] = {}  # float column's FIELD -> row -> the cell's text
    left_texts: dict[int, list[str]] = {i: [] for i in left_out}  # left-out column's FIELD -> its cells' texts
    left_cells = set()  # (FIELD, where in the file) of the left-out columns' cells
    found = {}
    row = column = -1
    with iterparser.get_xml_iterator(str(path)) as events:
        for start, tag, data, pos in events:
            if tag == "TR" and start:
                row, column = row + 1, 0
            elif tag == "TD" and not start:
                if column in left_texts:
                    left_texts[column].append(data.strip())
                    left_cells.add((column, pos))
                elif column in floats and row < len(table) and masks[column][row] and _no_number(data):
                    bad.setdefault(column, {})[row] = data.strip()
                    found[pos] = table.columns[places.index(column)].name
                column += 1
            elif tag == "TABLE" and not start:
                break
    for i, (field, fault) in left_out.items():
        if (i, _position(fault)) not in left_cells:  # not at a TD of that column of the first TABLE: a fault as before
            raise IngestError(f"{path}: cannot be read as a VOTable: {fault}")
        found[_position(fault)] = field.ID
    if row + 1 != len(table):  # astropy read another TABLE than the first (one in a nested RESOURCE)
        if any(masks[i].any() for i in floats):
            raise IngestError(f"{path}: its first TABLE has {row + 1} rows but astropy read a table of {len(table)}: "
                              "number cells it read as missing cannot be told from cells that are no number")
        return {}
    for column, cells in bad.items():
        col = table.columns[places.index(column)]
        texts = ["" if masked else repr(float(value)) for value, masked in zip(col.data, masks[column])]
        for i, text in cells.items():
            texts[i] = text
        _as_text(table, col.name, texts, options)
    for i, (field, _) in sorted(left_out.items()):
        null = "" if field.values.null is None else str(field.values.null)  # the FIELD's VALUES null: missing
        placed = Column(left_texts[i], name=field.ID)
        field.to_table_column(placed)  # its unit, description and meta (UCD) as astropy gives them
        table.add_column(placed, index=i)
        _as_text(table, field.ID, ["" if text == null else text for text in left_texts[i]], options)
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
