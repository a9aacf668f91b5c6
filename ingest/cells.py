"""Reading cells of an input column as healcat's values: numbers, angles, exact identifiers.

Each helper works on a whole column (fast for typed columns) and falls back to cell by
cell for text, recording a problem (column, reason) for each cell it cannot read so that
the row is quarantined instead of the release failing.
"""

from __future__ import annotations

import functools
import re
import string
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle

#: Problems found while reading cells: row index in the chunk -> (column, reason); the first wins.
Problems = dict[int, tuple[str | None, str]]

EXACT_FLOAT_INT = 2**53  # floats hold every integer below this exactly
INT64_MAX = 2**63 - 1
#: Values files write for "no data" that no measurement takes (with any value of magnitude COMMON_SENTINEL_ABOVE
#: or more): quarantined where no range catches them, unless the mapping lists them as sentinels. Not +99 or
#: +-999: a proper motion of 99 mas/yr, a flux of 99 nanomaggies (mag 17.5) or a quality of 99 is ordinary.
COMMON_SENTINELS = (-99.0, -999.0, -9999.0, -99999.0)
COMMON_SENTINEL_ABOVE = 1e20  # |v| >= 1e20: 1e20, 1e30, -1e20 and infinities
#: Sexagesimal with only colons or blanks between its fields ('12:14:23.6', '12 14 07.5'): no h/d to say its unit
_BARE_SEXAGESIMAL = re.compile(r"^[+-]?\d+(?:(?::|\s+)\d+(?:\.\d*)?){1,2}$")
#: Sexagesimal fields as astropy's Angle reads them, separated by ':', blanks or h/d/m/s letters ('12:14:23.6',
#: '12 14 07.5', '12h14m23.6s', '+33d54m22.8s', '23:59'): its fields are checked before Angle sees the text, as
#: astropy reads '+33:60:00' as 34 deg and '23:59:60' as 24 h with only a warning (no catch_warnings: that swaps
#: the process's warning filters, and the cells are read in the loader's read-ahead thread)
_SEXAGESIMAL_FIELDS = re.compile(r"^[+-]?\s*(\d+(?:\.\d*)?)\s*(?:[:hHdD\u00b0]\s*|\s+)(\d+(?:\.\d*)?)\s*"
                                 r"(?:(?:[:mM'\u2032]\s*|\s+)(\d+(?:\.\d*)?)\s*)?[mMsS'\"\u2032\u2033]?$")
NAN_HINT = "a NaN is no measurement: leave the cell empty or list it under [release] null_values"
_INTEGRAL_TEXT = re.compile(r"^[+-]?\d+(\.0*)?$")
_FLOAT_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")  # '25.5', '1.237e18': a float, printed
_POW10 = 10.0 ** np.arange(23)  # each exact in a float64
_BLOCK = 16_384  # numbers at a time through shortest_decimals


class CellError(ValueError):
    """A cell ``parse`` rejects with a reason of its own, recorded as it is."""


def parse_cells(column, parse, problems: Problems, name: str, expected: str) -> np.ndarray:
    """Floats from a column of text, cell by cell: empty cells are NaN (missing); a cell ``parse``
    rejects is NaN and a problem naming the column, the text and what was ``expected`` (or the
    :class:`CellError`'s own reason)."""
    out = np.full(len(column), np.nan)
    for i, value in enumerate(column):
        text = "" if value is np.ma.masked else str(value).strip()
        if not text:
            continue
        try:
            out[i] = parse(text)
        except CellError as exc:
            problems.setdefault(i, (name, str(exc)))
        except (ValueError, TypeError, u.UnitsError):
            problems.setdefault(i, (name, f"{name} {text!r} is not {expected}"))
    return out


def numeric(column) -> np.ndarray | None:
    """The column as float64 with masked cells NaN, if its type is numeric: always a copy (a float64
    column without a mask came back as a view, and the NaNs its callers write for sentinels and errors
    not stored went into the table a quarantined row's raw JSON is taken from)."""
    if column.dtype.kind not in "iufb" or column.ndim != 1:
        return None
    return np.array(np.ma.filled(np.ma.asarray(column, dtype=np.float64), np.nan), dtype=np.float64)


def degrees(column, unit: u.UnitBase, problems: Problems, name: str, bare_sexagesimal: bool = True) -> np.ndarray:
    """Angles in degrees from numbers in ``unit`` or sexagesimal strings ('12:30:49.4', '12h30m49s').

    A sexagesimal field out of range ('+33:60:00', '23:59:60') is a problem, not the next degree or hour.
    Without ``bare_sexagesimal`` (an RA column the mapping calls deg without saying dms), sexagesimal
    with only colons or blanks ('12:14:23.6', conventionally hours) is a problem too."""
    values = numeric(column)
    if values is not None:
        return shortest_decimals(values, column.dtype) * unit.to(u.deg)

    def angle(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            pass
        else:
            if np.isnan(value):  # was 'missing': the text is there, and says no number
                raise CellError(f"{name} {text!r} is not a number ({NAN_HINT})")
            return value * unit.to(u.deg)
        if not bare_sexagesimal and _BARE_SEXAGESIMAL.match(text):
            raise CellError(f"{name} {text!r} is sexagesimal, which for RA conventionally means hours, but the mapping "
                            "says deg: say unit = \"hourangle\" (hours) or \"dms\" (degrees)")
        if why := _illegal_sexagesimal(text, unit):
            raise CellError(f"{name} {text!r} is not a valid sexagesimal angle in {unit} ({why})")
        return Angle(text, unit=unit).deg

    return parse_cells(column, angle, problems, name, f"an angle in {unit}")


def _illegal_sexagesimal(text: str, unit: u.UnitBase) -> str | None:
    """Why sexagesimal ``text`` is out of range (minutes or seconds not below 60; hours not below 24 where the
    unit or an 'h' says hours), or None: astropy would carry it into the next degree or hour with a warning.
    Degrees are left to the range checks (Dec within [-90, 90])."""
    fields = _SEXAGESIMAL_FIELDS.match(text)
    if fields is None:
        return None
    first, minutes, seconds = (float(f) if f else None for f in fields.groups())
    if (unit == u.hourangle or "h" in text.lower()) and first >= 24:
        return f"hours {fields[1]} must be below 24"
    if minutes >= 60:
        return f"minutes {fields[2]} must be below 60"
    if seconds is not None and seconds >= 60:
        return f"seconds {fields[3]} must be below 60"
    return None


def floats(column, problems: Problems, name: str, sentinels: tuple[float, ...] = ()) -> np.ndarray:
    """Numbers from a column; empty cells and sentinel values are NaN (missing), text that is no number a problem.
    A float32 column's numbers are the decimals a text format writes for them (:func:`shortest_decimals`)."""
    values = numeric(column)
    if values is None:
        values = parse_cells(column, functools.partial(_not_nan, name), problems, name, "a number")
    values = shortest_decimals(values, column.dtype)
    if sentinels:
        values[np.isin(values, in_precision(sentinels, column))] = np.nan
    return values


def shortest_decimals(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Each float32 (or float16) of ``values`` (float64 as a ``dtype`` column widens them) as the float64 nearest the
    shortest decimal that gives it back, the one ``str`` writes: 0.077 for the float32 0.077 (not 0.07699999958276749),
    so a FITS 'E' or Parquet float column holds the numbers the same table written as CSV gives. Other dtypes as
    they are. Vectorized: per element, a bisection over the number of significant digits (a decimal of d digits
    that gives the float back means one of d+1 digits does), trying the two d-digit decimals around it (the nearer
    first, a tie to even, as ``str`` writes); a number beyond 1e22 or below 1e-14 goes through ``str``. In blocks of
    :data:`_BLOCK` numbers, whose temporaries stay in the CPU's cache (2-3x faster than the whole column at once:
    ``python -m benchmarks floats``)."""
    if dtype.kind != "f" or dtype.itemsize > 4:
        return values
    out = np.empty_like(values)
    for start in range(0, len(values), _BLOCK):
        out[start:start + _BLOCK] = _shortest_block(values[start:start + _BLOCK], dtype)
    return out


def _shortest_block(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    a = np.abs(values)
    top = np.finfo(dtype).precision + 3  # 9 significant digits give back every float32 (5: every float16)
    with np.errstate(divide="ignore", invalid="ignore"):
        e = np.floor(np.log10(a))
    exact = np.isfinite(e) & (e >= top - 23) & (e <= 22)  # each candidate's power of ten exact in a float64
    e = np.where(exact, e, 0).astype(np.int64)
    a = np.where(exact, a, 1.0)
    target = a.astype(dtype)

    def rounded(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # a to d significant digits, and whether it gives a back
        k = d - 1 - e
        p, up = _POW10[np.abs(k)], k >= 0
        y = np.where(up, a * p, a / p)
        below = np.floor(y)
        (c0, h0), (c1, h1) = ((c, c.astype(dtype) == target) for c in (np.where(up, q / p, q * p) for q in (below, below + 1)))
        nearer_below = (y - below < 0.5) | ((y - below == 0.5) & (below % 2 == 0))
        return np.where(h0 & h1, np.where(nearer_below, c0, c1), np.where(h0, c0, c1)), h0 | h1

    lo, hi = np.ones(len(a), np.int64), np.full(len(a), top)
    with np.errstate(over="ignore"):
        while (lo < hi).any():
            mid = (lo + hi) // 2
            gives_back = rounded(mid)[1]
            hi, lo = np.where(gives_back, mid, hi), np.where(gives_back, lo, mid + 1)
        out = np.where(exact, np.copysign(rounded(lo)[0], values), values)
    for i in np.flatnonzero(~exact & np.isfinite(values) & (values != 0)):
        out[i] = float(str(dtype.type(values[i])))
    return out


def in_precision(numbers, column) -> np.ndarray:
    """A mapping's sentinels or limits as ``column``'s numbers read (:func:`floats`): through its own floats, then
    as the decimal a text format writes (:func:`shortest_decimals`). 99.99 in a float32 column (FITS 'E', a Parquet
    or HDF5 float) reads as 99.99; 99.9999999, which a float32 holds as 100, reads as 100 (and a sentinel of 100
    in the mapping equals it, as the file's cell does)."""
    numbers = np.asarray(numbers, dtype=np.float64)
    if column.dtype.kind != "f":
        return numbers
    top = np.finfo(column.dtype).max
    held = np.abs(numbers) <= top  # 1e39: no float32 holds it, nor equals it
    within = np.clip(np.where(held, numbers, 0.0), -top, top).astype(column.dtype).astype(np.float64)
    return np.where(held, shortest_decimals(within, column.dtype), numbers)


def sentinel_like(values: np.ndarray) -> np.ndarray:
    """Where ``values`` equal one of the :data:`COMMON_SENTINELS` or reach :data:`COMMON_SENTINEL_ABOVE` in
    magnitude (a mapping's own sentinels are NaN by now)."""
    with np.errstate(invalid="ignore"):
        return np.isin(values, COMMON_SENTINELS) | (np.abs(values) >= COMMON_SENTINEL_ABOVE)


def _not_nan(name: str, text: str) -> float:
    """The number ``text`` says; 'nan' is no number either, with the hint for it (a ValueError for text
    that is no number at all: :func:`parse_cells` says so)."""
    value = float(text)
    if np.isnan(value):
        raise CellError(f"{name} {text!r} is not a number ({NAN_HINT})")
    return value


def nul_problems(column, problems: Problems, name: str) -> None:
    """A text cell holding a NUL character is a problem for its row: PostgreSQL text cannot store it;
    so is a cell of bytes (HDF5, a Parquet binary column) that is no UTF-8 text (it was stored with
    U+FFFD in place of its bytes, where the CSV reader refuses such a cell)."""
    data = np.ma.getdata(column)
    if len(data) == 0:
        return
    if column.dtype.kind in "US":  # in C: a zero code point (byte) before the cell's end (numpy pads with zeros)
        data = np.ascontiguousarray(data)
        codes = data.view(np.uint32 if column.dtype.kind == "U" else np.uint8).reshape(len(data), -1)
        inside = np.arange(codes.shape[1]) < np.strings.str_len(data)[:, None]
        rows = {int(i): None for i in np.flatnonzero(((codes == 0) & inside).any(axis=1))}
        if column.dtype.kind == "S":
            try:
                np.strings.decode(data, "utf-8")
            except UnicodeDecodeError:
                rows |= {i: why for i, why in enumerate(map(_utf8_problem, data)) if why}
    elif column.dtype.kind == "O":
        rows = {i: why for i, (value, why) in enumerate(zip(data, map(_utf8_problem, data)))
                if why or (isinstance(value, (str, bytes)) and ("\x00" if isinstance(value, str) else b"\x00") in value)}
    else:
        return
    masked = np.ma.getmaskarray(column)
    for i, not_utf8 in rows.items():
        if not masked[i]:
            shown = bytes(data[i]) if isinstance(data[i], bytes) else str(data[i])
            problems.setdefault(i, (name, f"{name} {not_utf8}" if not_utf8 else
                                    f"{name} {shown!r} holds a NUL character, which text cannot hold"))


def _utf8_problem(value) -> str | None:
    """Why bytes are no UTF-8 text, or None."""
    if isinstance(value, bytes):
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"{bytes(value[:200])!r} is not UTF-8 text ({exc.reason} at byte {exc.start})"
    return None


def texts(column) -> np.ndarray:
    return np.array([str(v).strip() or None if v is not np.ma.masked else None for v in column], dtype=object)


def identifiers(column, problems: Problems, name: str, integer: bool = False) -> np.ndarray:
    """External ids as exact text (see :func:`id_texts`); non-positive integer ids (e.g. Gaia rows
    that carry -HIP numbers) are absent. With ``integer`` (catalogs whose ids are 64-bit integers,
    such as Gaia's source_id) an id that is not one is a problem for its row."""
    out = id_texts(column, problems, name, empty_is_problem=False)
    if column.dtype.kind in "iuf":
        values = np.ma.filled(np.ma.asarray(column, dtype=np.float64), np.nan)
        with np.errstate(invalid="ignore"):
            out[~(values > 0)] = None
    elif integer:
        for i, text in enumerate(out):
            if text is None:
                continue
            whole = text.isascii() and text.removeprefix("-").isdigit()
            if not (whole and int(text) <= INT64_MAX):
                problems.setdefault(i, (name, f"{name} {text!r} is not a 64-bit integer id"))
            if not (whole and 0 < int(text) <= INT64_MAX):  # non-positive: absent, as in a numeric column
                out[i] = None
    return out


def id_texts(column, problems: Problems, name: str, empty_is_problem: bool = True) -> np.ndarray:
    """Identifiers as exact text. Integers are written in full; a float-formatted id ('26618.0',
    20.0) is its integer when that is exact; a fractional one, or a float past 2**53 that may have
    lost digits, is a problem for its row, as is an empty cell when ``empty_is_problem``."""
    n = len(column)
    kind = column.dtype.kind
    mask = np.ma.getmaskarray(column) if np.ma.isMaskedArray(column) else np.zeros(n, dtype=bool)
    data = np.ma.getdata(column)
    if kind in "iu":
        out = np.asarray(data).astype(str).astype(object)
    else:
        out = np.full(n, None, dtype=object)
        for i, value in enumerate(data):
            if mask[i]:
                continue
            if kind == "f":
                if not np.isfinite(value):
                    mask[i] = True
                else:
                    out[i] = _exact_integer(float(value), repr(float(value)), problems, i, name)
            else:
                text = str(value).strip()
                if _float_past_exact(text):  # '1237648704577142784.0': a float printed, maybe digits lost
                    problems.setdefault(i, (name, f"{name} {text} is a float that is not an exact integer id "
                                                  f"(past 2**53 a float may have lost digits)"))
                    continue
                if _INTEGRAL_TEXT.match(text):
                    text = text.split(".")[0].lstrip("+")
                elif _FLOAT_TEXT.match(text):  # a number printed as a float: its integer, if exact
                    text = _exact_integer(float(text), text, problems, i, name)
                    if text is None:
                        continue
                out[i] = text or None
                mask[i] = not text
    out[mask] = None
    if empty_is_problem:
        for i in np.flatnonzero(mask):
            problems.setdefault(int(i), (name, f"object_id: {name} is empty"))
    return out


def _float_past_exact(text: str) -> bool:
    """Text of an integer with a fractional part ('1237648704577142784.0') past 2**53: a float was printed,
    and its digits may not be the id's."""
    return "." in text and bool(_INTEGRAL_TEXT.match(text)) and abs(int(text.split(".")[0])) >= EXACT_FLOAT_INT


def _exact_integer(value: float, shown: str, problems: Problems, i: int, name: str) -> str | None:
    """The integer a float id stands for, as text; None and a problem for row ``i`` when the float is
    fractional or past 2**53 (where it may have lost digits)."""
    if value != np.floor(value) or abs(value) >= EXACT_FLOAT_INT:
        problems.setdefault(i, (name, f"{name} {shown} is a float that is not an exact integer id"))
        return None
    return str(int(value))


def format_id(template: str, row: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(object id, None, None) from the template, or (None, the offending column, why)."""
    fields = [(name, spec) for _, name, spec, _ in string.Formatter().parse(template) if name]
    for name, spec in fields:
        value = row[name]
        if value is np.ma.masked or not str(value).strip():
            return None, name, f"object_id: {name} is empty"
        try:
            format(number(value) if spec else value, spec or "")
        except (ValueError, TypeError) as exc:
            as_number = number(value)
            why = ("not a number" if isinstance(as_number, str) else
                   "not a whole number" if spec and spec[-1] in "bdoxXn" and not isinstance(as_number, int) else str(exc))
            return None, name, f"object_id template {template!r}: {name}={str(value)!r} does not fit {{:{spec}}} ({why})"
    try:
        return template.format_map(row), None, None
    except (ValueError, TypeError):  # e.g. "{plate:04d}" over a column that one bad cell made text
        return template.format_map({**row, **{name: number(row[name]) for name, _ in fields}}), None, None


def number(value: Any) -> Any:
    """Text that spells an integer or a float, as that number, and a whole float as its integer (a
    chunk whose column holds one '266.0' reads every cell as a float); anything else unchanged."""
    if isinstance(value, (str, np.str_)):
        if _INTEGRAL_TEXT.match(value.strip()) and not _float_past_exact(value.strip()):  # '266' or '266.0'
            return int(value.strip().split(".")[0])
        try:
            value = float(value)
        except ValueError:
            return value
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer() \
            and abs(value) < EXACT_FLOAT_INT:  # past 2**53 a float may have lost digits: no id made of it
        return int(value)
    return value


_NUMBER_TEXT = re.compile(r"[+-]?(?:0|[1-9][0-9]*)(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?")


def number_in_text(value: Any) -> Any:
    """An attr cell of a column one stray word left text in a chunk: text written as a plain decimal
    number, as that number (:func:`number`); anything else, '007', '1_000', 'NaN', 'inf' among it,
    stays the text it is."""
    if isinstance(value, (str, np.str_)) and _NUMBER_TEXT.fullmatch(value.strip()):
        return number(value)
    return value


#: Text that pyarrow's cast to float reads as NaN or an infinity (signed, in any case).
_NON_FINITE_TEXT = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE | re.ASCII)


def attr_value(value: Any, numeric: bool) -> Any:
    """A cell of an attr column as the JSON value stored in ``attrs``, alike from every format: text
    (bytes decoded: HDF5, a Parquet binary column) without its surrounding blanks (FITS pads a cell,
    CSV keeps what it was given), empty text null, as an empty CSV cell or a Parquet null is (FITS,
    VOTable, HDF5 and ECSV give ''), and NaN and infinities null (JSON has neither). ``numeric``: a
    column the reader gave as text that the mapping does not read as text (any attr column but an
    [xid] column or an object_id field without a format spec): its text written as a plain decimal
    number is that number (:func:`number_in_text`), and its text spelling NaN or an infinity is null,
    as a chunk whose cells are all numbers reads them (one 'nan' cell leaves a CSV chunk's column text).
    A float32 or float16 cell (FITS 'E', a VOTable, ECSV, Parquet or HDF5 float) is the shortest decimal that
    gives it back (0.077, as a text format writes and reads it), not the float64 it widens to (0.07699999958276749)."""
    if isinstance(value, (np.float32, np.float16)) and np.isfinite(value):
        return float(str(value))
    value = json_scalar(value)
    if not isinstance(value, str):
        return value
    text = value.strip()
    if numeric:
        if _NON_FINITE_TEXT.fullmatch(text):
            return None
        value = json_scalar(number_in_text(text))
        if not isinstance(value, str):
            return value
    return text or None


def json_scalar(value: Any, raw: bool = False) -> Any:
    """A numpy/astropy cell as a JSON value (masked becomes null, arrays lists); NaN and infinities
    become null, or with ``raw`` (a quarantined row as the file had it) their text: 'nan', 'inf', '-inf'."""
    if value is np.ma.masked:
        return None
    if isinstance(value, np.ndarray):
        return [json_scalar(v, raw) for v in value.tolist()]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else (str(float(value)) if raw else None)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, str):  # jsonb cannot hold NUL either: shown as U+FFFD in a quarantined row's raw cells
        return value.replace("\x00", "\ufffd")
    return value if isinstance(value, (int, type(None))) else str(value)
