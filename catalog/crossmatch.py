"""Positional cross-match: an astropy Table, or one release, against the catalog.

A table's positions are validated here (finite, RA in [0, 360] deg, Dec in [-90, 90] deg;
each bad value named by row and column), optionally moved to another epoch by their proper
motions (astropy ``SkyCoord.apply_space_motion``), given their order-29 HEALPix index
(:func:`catalog.healpix.hpx_index`) and loaded into a temporary table with binary COPY. The
SQL function ``healcat.xmatch_table`` then joins them to ``source`` on HEALPix pixels and
rechecks the exact distance; ``healcat.xmatch_releases`` does the same for two releases already
in the catalog. (Migrations have redefined both several times, from SQL files of several names:
the definition in force is the database's, ``pg_get_functiondef``, not any one file's.)

Modes: ``best`` gives exactly one row per input row (the nearest source within the radius, or
masked match columns); ``all`` gives every pair within the radius.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import astropy.units as u
import numpy as np
import psycopg
import sqlalchemy as sa
from astropy.coordinates import SkyCoord
from astropy.table import MaskedColumn, Table

from catalog import healpix
from catalog.errors import QueryError, query_error
from catalog.pgcopy import copy_columns, fetch_columns
from catalog.search.cone import checked_radius_arcsec
from catalog.search.region import icrs_deg
from catalog.search.results import COLUMNS, masked_column

log = logging.getLogger(__name__)

MODES = ("best", "all")
MAX_RADIUS_ARCSEC = 1800.0
#: The catalog's columns in the answer, with their units, after the input's own columns.
MATCH_COLUMNS = {"source_id": None, "release": None, "object_id": None, "match_ra": u.deg, "match_dec": u.deg,
                 "separation_arcsec": u.arcsec}
#: ... and what each is (the Table's descriptions, which ECSV and VOTable keep): a search's columns' own
#: (``results.COLUMNS``), said of the matched source.
MATCH_DESCRIPTIONS = {
    "input_row": "the input row (1-based) this match is for",
    **{name: f"{COLUMNS[name][2]} (the matched source)" for name in ("source_id", "release", "object_id")},
    "match_ra": f"{COLUMNS['ra'][2]} of the matched source, at the match's epoch",
    "match_dec": f"{COLUMNS['dec'][2]} of the matched source, at the match's epoch",
    "separation_arcsec": "angular distance between the input position and the matched source",
    "xmatch_problem": "why the row's position was not matched (empty where it was)",
}
RA_NAMES = ("ra", "ra_deg", "raj2000", "ra_icrs")
DEC_NAMES = ("dec", "dec_deg", "dej2000", "decj2000", "de_icrs", "dec_icrs")
_TEMP_TABLE = "healcat_xmatch_input"
#: The epochs a position may be moved from or to, Julian years (as healcat.check_epoch): inside ERFA's
#: dates (its calendar ends at -4799), and far past any proper motion's use.
EPOCH_RANGE_JYEAR = (-4700.0, 10000.0)
#: Names of Galactic longitude and latitude columns (a column's UCD pos.galactic.lon/lat says the same).
GLON_NAMES = ("glon", "lii", "gal_l")
GLAT_NAMES = ("glat", "bii", "gal_b")


@dataclass(frozen=True)
class Problem:
    """One bad input value: 1-based row, column, what is wrong."""

    row: int
    column: str
    reason: str


@dataclass(frozen=True)
class Positions:
    """Validated input positions: ICRS degrees of the good rows, and the problems of the others."""

    ra_deg: np.ndarray
    dec_deg: np.ndarray
    good: np.ndarray  # bool, one per input row
    problems: list[Problem]

    @classmethod
    def from_table(cls, table: Table, ra_col: str, dec_col: str) -> Positions:
        """The positions in ``ra_col``, ``dec_col``: ICRS unless the columns declare another frame (a
        VOTable's COOSYS, see :func:`declare_votable_frames`; a UCD pos.galactic.*, or Galactic names such
        as glon/glat), which is converted to ICRS by astropy, or refused. A SkyCoord column given as
        ``ra_col`` is converted from its own frame."""
        if isinstance(table[ra_col], SkyCoord):
            return cls.from_skycoord(table, ra_col)
        ra, ra_bad, ra_text = _column_in(table, ra_col, u.deg, "an angle")
        dec, dec_bad, dec_text = _column_in(table, dec_col, u.deg, "an angle")
        problems: list[Problem] = []
        checks = [
            (ra_col, ra_text, "not a number in degrees"),
            (ra_col, ra_bad & ~ra_text, "missing or not a finite number"),
            (ra_col, ~ra_bad & ((ra < 0) | (ra > 360)), "RA outside [0, 360] deg"),
            (dec_col, dec_text, "not a number in degrees"),
            (dec_col, dec_bad & ~dec_text, "missing or not a finite number"),
            (dec_col, ~dec_bad & (np.abs(dec) > 90), "Dec outside [-90, 90] deg"),
        ]
        bad = np.zeros(len(table), dtype=bool)
        for column, mask, why in checks:
            for i in np.flatnonzero(mask):
                value = table[column][i]
                problems.append(Problem(int(i) + 1, column, f"{why}: {value}"))
            bad |= mask
        problems.sort(key=lambda p: p.row)
        ra, dec = np.where(bad, 0.0, ra), np.where(bad, 0.0, dec)
        frame = _frame_of(table, ra_col, dec_col)
        if frame is not None:
            icrs = SkyCoord(ra * u.deg, dec * u.deg, frame=frame).icrs
            log.info("xmatch: columns %s, %s converted from %s to ICRS", ra_col, dec_col, frame.name)
            ra, dec = np.where(bad, 0.0, icrs.ra.deg), np.where(bad, 0.0, icrs.dec.deg)
        return cls(ra, dec, ~bad, problems)

    @classmethod
    def from_skycoord(cls, table: Table, name: str) -> Positions:
        """The positions of a SkyCoord column, converted to ICRS from its frame."""
        ra, dec = (np.asarray(a, np.float64) for a in icrs_deg("xmatch", table[name], f"column {name!r} (SkyCoord)"))
        bad = ~(np.isfinite(ra) & np.isfinite(dec))
        problems = [Problem(int(i) + 1, name, f"missing or not a finite number: {table[name][i]}")
                    for i in np.flatnonzero(bad)]
        return cls(np.where(bad, 0.0, ra), np.where(bad, 0.0, dec), ~bad, problems)

    def moved(self, pm_ra_cosdec_mas_yr, pm_dec_mas_yr, epoch_jyear, to_epoch_jyear: float) -> Positions:
        """The positions at ``to_epoch_jyear``, moved by their proper motions [mas/yr, RA's times cos Dec]."""
        from astropy.time import Time
        from erfa import ErfaError, ErfaWarning

        pmra = np.nan_to_num(np.asarray(pm_ra_cosdec_mas_yr, dtype=np.float64))  # no proper motion: not moved
        pmdec = np.nan_to_num(np.asarray(pm_dec_mas_yr, dtype=np.float64))
        coord = SkyCoord(ra=self.ra_deg * u.deg, dec=self.dec_deg * u.deg, pm_ra_cosdec=pmra * u.mas / u.yr,
                         pm_dec=pmdec * u.mas / u.yr, obstime=Time(epoch_jyear, format="jyear"))
        with warnings.catch_warnings():  # no parallax: ERFA puts the stars far away, which is what is meant
            warnings.filterwarnings("ignore", message=".*distance overridden.*", category=ErfaWarning)
            try:
                moved = coord.apply_space_motion(new_obstime=Time(to_epoch_jyear, format="jyear"))
            except ErfaError as exc:  # epochs are checked first: a date ERFA refuses all the same
                raise QueryError(f"xmatch: proper motions from epoch {epoch_jyear} to {to_epoch_jyear} cannot be "
                                 f"applied ({exc}); the epochs accepted are Julian years "
                                 f"[{EPOCH_RANGE_JYEAR[0]:g}, {EPOCH_RANGE_JYEAR[1]:g}]") from None
        return Positions(moved.ra.deg, moved.dec.deg, self.good, self.problems)


#: VOTable COOSYS systems converted to ICRS: astropy frame, default equinox.
_COOSYS_FRAMES = {"icrs": (None, None), "eq_fk5": ("fk5", "J2000"), "fk5": ("fk5", "J2000"),
                  "eq_fk4": ("fk4", "B1950"), "fk4": ("fk4", "B1950"), "galactic": ("galactic", None),
                  "supergalactic": ("supergalactic", None)}


def declare_votable_frames(table: Table, path) -> Table:
    """Record on ``table``'s columns (``meta['coosys']``: system, equinox, epoch) the coordinate system
    the VOTable at ``path`` declares for them: a FIELD's ``ref`` to a COOSYS, or the file's only COOSYS
    for a FIELD with a pos.eq UCD and no ref. astropy's table reader drops the COOSYS."""
    import xml.etree.ElementTree as ET

    systems, fields = {}, []
    for _, element in ET.iterparse(str(path), events=("end",)):
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "COOSYS":
            systems[element.get("ID")] = {k: element.get(k) for k in ("system", "equinox", "epoch")}
        elif tag == "FIELD":
            fields.append((element.get("name"), element.get("ref"), element.get("ucd") or ""))
        elif tag in ("DATA", "TABLEDATA", "BINARY", "BINARY2", "FITS"):
            break  # the header is read: the rows are not needed
    only = next(iter(systems.values())) if len(systems) == 1 else None
    for name, ref, ucd in fields:
        coosys = systems.get(ref) if ref is not None else (only if ucd.lower().startswith("pos.eq") else None)
        if coosys is not None and name in table.colnames:
            table[name].meta["coosys"] = coosys
    return table


def _frame_of(table: Table, ra_col: str, dec_col: str):
    """The astropy frame ``ra_col``, ``dec_col`` are in, None for ICRS; a frame not converted is an error
    naming it."""
    from astropy.coordinates import FK4, FK5, Galactic, Supergalactic
    from astropy.time import Time

    metas = [_meta(table, c) for c in (ra_col, dec_col)]
    ucds = [_ucd(table, c) for c in (ra_col, dec_col)]
    galactic = [ucd.startswith("pos.galactic") or c.lower() in names
                for ucd, c, names in zip(ucds, (ra_col, dec_col), (GLON_NAMES, GLAT_NAMES))]
    if any(galactic):
        if not all(galactic):
            raise QueryError(f"xmatch: columns {ra_col!r} and {dec_col!r} are not one frame: one is Galactic "
                             f"(UCD or name), the other not")
        return Galactic()
    if any(ucd.startswith(("pos.ecliptic", "pos.supergalactic", "pos.bodyrc", "pos.az")) for ucd in ucds):
        raise QueryError(f"xmatch: columns {ra_col!r}, {dec_col!r} are not equatorial (UCD {ucds[0]}): healcat "
                         f"matches ICRS RA/Dec")
    coosys = [m.get("coosys") for m in metas]
    if coosys[0] != coosys[1]:
        raise QueryError(f"xmatch: columns {ra_col!r} and {dec_col!r} declare different coordinate systems "
                         f"({coosys[0]} and {coosys[1]})")
    if coosys[0] is None:
        return None
    system = str(coosys[0].get("system") or "ICRS")
    if system.lower() not in _COOSYS_FRAMES:
        raise QueryError(f"xmatch: columns {ra_col!r}, {dec_col!r} are in the coordinate system {system} "
                         f"(COOSYS), which healcat does not convert: give ICRS, FK5, FK4 or Galactic positions")
    frame, default_equinox = _COOSYS_FRAMES[system.lower()]
    equinox = coosys[0].get("equinox") or default_equinox
    try:
        if frame == "fk5":
            return FK5(equinox=Time(equinox))
        if frame == "fk4":  # without an epoch, positions of the equinox's epoch (astropy's default)
            return FK4(equinox=Time(equinox), obstime=Time(coosys[0].get("epoch") or equinox))
    except ValueError:
        raise QueryError(f"xmatch: columns {ra_col!r}, {dec_col!r}: the coordinate system {system} has an "
                         f"equinox or epoch astropy cannot read ({equinox}, {coosys[0].get('epoch')})") from None
    return {None: None, "galactic": Galactic(), "supergalactic": Supergalactic()}[frame]


def _column_in(table: Table, name: str, unit: u.UnitBase, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A column as float64 in ``unit`` (converted from its own astropy unit, if it has one: a bare
    number is taken to be in ``unit``), where it is missing or not finite, and where it holds text
    that is no number (as :func:`_numbers`). A unit that is not ``what`` is an error naming the column."""
    data, bad, text = _numbers(table, name)
    own = getattr(table[name], "unit", None)
    if own is not None and own != u.dimensionless_unscaled:
        try:
            data = (data * own).to_value(unit)
        except (u.UnitsError, ValueError, TypeError):
            raise QueryError(f"xmatch: column {name!r} is in {own}, not {what} ({unit})") from None
    return data, bad | ~np.isfinite(data), text


def _numbers(table: Table, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A column as float64 (an astropy Quantity's bare values), where a cell is missing or not a
    finite number, and where it holds text that is no number: a column read as text because one
    cell is not a number ('12.5d') keeps its other cells, each checked."""
    column = table[name]
    if isinstance(column, u.Quantity):  # a QTable's column (masked or not): its numbers, without the unit
        values = np.ma.MaskedArray(getattr(column, "unmasked", column).value, mask=getattr(column, "mask", False))
    else:
        values = np.ma.asarray(column)
    if values.dtype.kind == "b":
        raise QueryError(f"xmatch: column {name!r} holds booleans, not numbers")
    if values.dtype.kind in "fiu":
        data = np.ma.filled(values.astype(np.float64), np.nan)
        return data, ~np.isfinite(data), np.zeros(len(data), dtype=bool)
    cells = np.ma.filled(values.astype(object), None)
    data = np.array([_number_or_nan(x) for x in cells], dtype=np.float64)
    text = np.array([x is not None and str(x).strip() != "" for x in cells]) & np.isnan(data)
    return data, ~np.isfinite(data), text


def _number_or_nan(cell) -> float:
    try:
        return float(cell)
    except (TypeError, ValueError):
        return np.nan


def position_columns(table: Table, ra_col: str | None = None, dec_col: str | None = None) -> tuple[str, str]:
    """The input's position columns: (RA, Dec), (Galactic longitude, latitude), or a SkyCoord column twice.

    Those named, else found: an RA and a Dec column by name (RA_NAMES, DEC_NAMES, any case), else the
    table's only SkyCoord column, else a Galactic pair (a UCD pos.galactic.lon/lat, else GLON_NAMES,
    GLAT_NAMES, any case). A table with both an RA/Dec pair and a Galactic one is matched on RA/Dec. A
    column named alone is paired with one of its own frame (``ra_col='glon'``: a Galactic latitude).
    A pair found half is an error naming the half missing."""
    for given in (ra_col, dec_col):
        if given is not None and given not in table.colnames:
            raise QueryError(f"xmatch: no column {given!r} in the input (columns: {', '.join(table.colnames)})")
    if ra_col is not None and isinstance(table[ra_col], SkyCoord):
        return ra_col, ra_col
    named = ra_col if ra_col is not None else dec_col
    coords = [name for name in table.colnames if isinstance(table[name], SkyCoord)]
    if named is None or not _galactic(table, named):
        ra = ra_col if ra_col is not None else _found(table, RA_NAMES)
        if ra is None and len(coords) == 1:
            return coords[0], coords[0]
        if ra is not None:
            dec = dec_col if dec_col is not None else _found(table, DEC_NAMES)
            if dec is None:
                raise QueryError(f"xmatch: no Dec column found for the RA column {ra!r} (tried "
                                 f"{', '.join(DEC_NAMES)}); name it with dec_col (healcat xmatch --dec-col)")
            return ra, dec
        if named is not None:
            raise QueryError(f"xmatch: no RA column found for the Dec column {dec_col!r} (tried "
                             f"{', '.join(RA_NAMES)}); name it with ra_col (healcat xmatch --ra-col)")
    lon = ra_col if ra_col is not None else _found(table, GLON_NAMES, "lon")
    lat = dec_col if dec_col is not None else _found(table, GLAT_NAMES, "lat")
    if lon is None and lat is None:
        raise QueryError(f"xmatch: no RA column found (tried {', '.join(RA_NAMES)}) and no Galactic columns (tried "
                         f"{', '.join(GLON_NAMES)} with {', '.join(GLAT_NAMES)}, or the UCDs pos.galactic.lon, "
                         f"pos.galactic.lat); name them with ra_col, dec_col (healcat xmatch --ra-col, --dec-col)"
                         + (f"; or name one of the SkyCoord columns {', '.join(coords)} as ra_col" if coords else ""))
    if lon is None:
        raise QueryError(f"xmatch: Galactic latitude column {lat!r} but no Galactic longitude column (tried "
                         f"{', '.join(GLON_NAMES)}, or the UCD pos.galactic.lon); name it with ra_col (healcat "
                         "xmatch --ra-col)")
    if lat is None:
        raise QueryError(f"xmatch: Galactic longitude column {lon!r} but no Galactic latitude column (tried "
                         f"{', '.join(GLAT_NAMES)}, or the UCD pos.galactic.lat); name it with dec_col (healcat "
                         "xmatch --dec-col)")
    return lon, lat


def _found(table: Table, names: tuple[str, ...], galactic_axis: str | None = None) -> str | None:
    """The first column (not a SkyCoord) with the UCD pos.galactic.``galactic_axis`` ('lon', 'lat'), if given,
    else the first named one of ``names`` (any case); None if none."""
    columns = [name for name in table.colnames if not isinstance(table[name], SkyCoord)]
    by_ucd = [name for name in columns
              if galactic_axis is not None and _ucd(table, name).startswith(f"pos.galactic.{galactic_axis}")]
    return next(iter(by_ucd), None) or next((name for name in columns if name.lower() in names), None)


def _galactic(table: Table, name: str) -> bool:
    """Whether column ``name`` is a Galactic coordinate: by its UCD (pos.galactic.*), or its name."""
    return _ucd(table, name).startswith("pos.galactic") or name.lower() in GLON_NAMES + GLAT_NAMES


def _ucd(table: Table, name: str) -> str:
    """Column ``name``'s UCD, lower case ('' if none)."""
    return str(_meta(table, name).get("ucd", "")).lower()


def _meta(table: Table, name: str) -> dict:
    """Column ``name``'s meta: a Column's, a QTable Quantity's (which has no ``meta`` of its own), {} if none."""
    return table[name].info.meta or {}


def upload_input(pg, ra_deg: np.ndarray, dec_deg: np.ndarray, rows: np.ndarray,
                 radius_arcsec: float | None) -> None:
    """Positions [deg] into the temporary table healcat.xmatch_table reads (row_id, ra, dec, hpx, pix0..pix3).

    One binary COPY, in hpx order (the order the catalog is probed in); the probe pixels for
    ``radius_arcsec`` (``healcat.xmatch_order`` and ``healcat.xmatch_probe_order``) are computed
    here with healpy (with ``None``, no pixels: the SQL function computes them). The table is
    dropped when the transaction ends.
    """
    ra = healpix.wrap_ra_deg(ra_deg)
    hpx = healpix.hpx_index(ra, dec_deg)
    by_hpx = np.argsort(hpx, kind="stable")
    names = ["row_id", "ra", "dec", "hpx"]
    columns = [rows.astype(np.int64)[by_hpx], ra[by_hpx], np.asarray(dec_deg, np.float64)[by_hpx], hpx[by_hpx]]
    if radius_arcsec is not None:
        order, probe_order = pg.execute("SELECT healcat.xmatch_order(%s), healcat.xmatch_probe_order(%s)",
                                        (radius_arcsec, radius_arcsec)).fetchone()
        names += ["pix0", "pix1", "pix2", "pix3"]
        columns += list(healpix.xmatch_probe_cover(hpx[by_hpx], order, probe_order).T)
    types = ", ".join(f"{n} {'float8' if n in ('ra', 'dec') else 'bigint'}" for n in names)
    pg.execute(f"CREATE TEMPORARY TABLE {_TEMP_TABLE} ({types}) ON COMMIT DROP")
    copy_columns(pg, f"pg_temp.{_TEMP_TABLE}", names, columns)
    pg.execute(f"ANALYZE {_TEMP_TABLE}")


def _sql_error(exc: sa.exc.DBAPIError | psycopg.Error) -> Exception:
    if getattr(getattr(exc, "orig", exc), "sqlstate", None) == "54000":  # program_limit_exceeded: one 1 GB value
        return QueryError("xmatch: the answer is too large to return in one piece (PostgreSQL's 1 GB limit on a "
                          "value, about 19 million pairs): use a smaller radius, mode 'best', or split the input")
    return query_error(exc, "xmatch") or exc


def _check(radius_arcsec: float | u.Quantity, mode: str) -> float:
    """The radius in arcsec (an astropy angle is converted), checked with the mode."""
    if mode not in MODES:
        raise QueryError(f"xmatch: mode must be 'best' or 'all', got {mode!r}")
    return checked_radius_arcsec("xmatch", radius_arcsec, MAX_RADIUS_ARCSEC)


def _epoch(name: str, epoch_jyear) -> float | None:
    """``epoch_jyear`` as a finite Julian year in EPOCH_RANGE_JYEAR (as healcat.check_epoch), or None: a
    number (2016.0), an astropy Time (its ``jyear``) or a Quantity in years (2016 * u.yr); else a
    QueryError naming ``name``."""
    from astropy.time import Time

    if epoch_jyear is None:
        return None
    try:
        if (isinstance(epoch_jyear, (bool, np.bool_, str)) or getattr(epoch_jyear, "shape", ()) != ()
                or (isinstance(epoch_jyear, u.Quantity) and epoch_jyear.unit != u.yr)):  # 57000 d is no year
            raise TypeError
        year = float(epoch_jyear.jyear if isinstance(epoch_jyear, Time) else
                     epoch_jyear.value if isinstance(epoch_jyear, u.Quantity) else epoch_jyear)
    except (TypeError, ValueError):
        raise QueryError(f"xmatch: {name} must be one Julian year (2016.0, an astropy Time or a Quantity in "
                         f"years), got {epoch_jyear!r}") from None
    if not np.isfinite(year):
        raise QueryError(f"xmatch: {name}: the epoch must be a finite Julian year, got {year}")
    lo, hi = EPOCH_RANGE_JYEAR
    if not lo <= year <= hi:
        raise QueryError(f"xmatch: {name}: the epoch {year} is outside the epochs accepted, Julian years "
                         f"[{lo:g}, {hi:g}]")
    return year


def _as_table(table) -> Table:
    """The input as an astropy Table: a Table (or QTable) as it is; a SkyCoord (one column, ``coord``), a
    pandas DataFrame, a dict of columns or a numpy structured array converted; else a QueryError."""
    if isinstance(table, Table):
        return table
    try:
        if isinstance(table, SkyCoord):
            return Table({"coord": table.reshape(1) if table.isscalar else table})
        if hasattr(table, "columns") and hasattr(table, "index") and hasattr(table, "rename"):  # pandas (not imported)
            # names as text (read_csv(header=None) numbers them); a named index is data (often the object id)
            return Table.from_pandas(table.rename(columns=str), index=table.index.name is not None)
        if isinstance(table, dict) or (isinstance(table, np.ndarray) and table.dtype.names):
            return Table(table)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise QueryError(f"xmatch: the input cannot be read as a table: {exc}") from None
    raise QueryError("xmatch: the input must be an astropy Table (or a SkyCoord, a pandas DataFrame, a dict of "
                     f"columns or a numpy structured array), got {type(table).__name__}")


def crossmatch(
    table: Table,
    radius_arcsec: float,
    *,
    release: str | None = None,
    mode: str = "best",
    ra_col: str | None = None,
    dec_col: str | None = None,
    pm_cols: tuple[str, str] | None = None,
    epoch_jyear: float | str | None = None,
    to_epoch_jyear: float | None = None,
    at_epoch_jyear: float | None = None,
    keep_bad: bool = False,
    engine: sa.Engine | None = None,
) -> Table:
    """Match the rows of ``table`` with the catalog's sources (of ``release``, if named) within ``radius_arcsec``.

    Positions are ICRS degrees in ``ra_col``/``dec_col`` (found if not given: RA/Dec by name, else a
    SkyCoord column, else Galactic longitude/latitude, by UCD or name; see :func:`position_columns`), and proper
    motions mas/yr, unless a column carries an astropy unit (a Quantity column, or a ``unit``). With
    ``pm_cols`` (proper motions in RA*cos(Dec) and Dec [mas/yr]), ``epoch_jyear`` (the input's
    epoch, a Julian year or a column of them) and ``to_epoch_jyear`` (the catalog's, e.g. 2016.0
    for Gaia DR3), positions are moved to the catalog's epoch first. With ``at_epoch_jyear`` the
    match is made at that epoch: the catalog's sources with proper motions are moved to it from
    their reference epochs (match_ra, match_dec are then their positions at it), and the input's
    positions are taken to be at it (or moved to it, when ``pm_cols`` is given without
    ``to_epoch_jyear``). A row with a bad position is
    an error naming its row and column, unless ``keep_bad``: then it is kept unmatched, with the
    reason in ``xmatch_problem``. The answer has the input's columns (a name the answer needs
    gets ``_input`` appended), ``input_row`` (1-based), source_id, release, object_id,
    match_ra, match_dec [deg] and separation_arcsec [arcsec].
    """
    from catalog.db import engine as default_engine

    radius_arcsec = _check(radius_arcsec, mode)
    table = _as_table(table)
    at_epoch_jyear, to_epoch_jyear = _epoch("at_epoch_jyear", at_epoch_jyear), _epoch("to_epoch_jyear", to_epoch_jyear)
    if not isinstance(epoch_jyear, str):  # (a column's name: its values are checked per row)
        epoch_jyear = _epoch("epoch_jyear", epoch_jyear)
    if pm_cols is None and (epoch_jyear is not None or to_epoch_jyear is not None):
        raise QueryError("xmatch: the input's epoch and the epoch to move to (epoch_jyear, to_epoch_jyear; on the "
                         "command line --epoch, --to-epoch) move positions by their proper motions: give the proper "
                         "motions' columns too (pm_cols=(PMRA, PMDEC); --pm-cols PMRA PMDEC)")
    ra_col, dec_col = position_columns(table, ra_col, dec_col)
    if isinstance(table[ra_col], SkyCoord) and "s" in table[ra_col].data.differentials and pm_cols is None:
        raise QueryError(f"xmatch: the SkyCoord {ra_col!r} carries proper motions, which a cross-match reads from "
                         "columns, not applied here: give them as columns with pm_cols=(PMRA, PMDEC) and the input's "
                         "epoch_jyear, or a SkyCoord without them (its positions at the epoch matched)")
    positions = Positions.from_table(table, ra_col, dec_col)
    if at_epoch_jyear is not None and to_epoch_jyear is not None and to_epoch_jyear != at_epoch_jyear:
        raise QueryError(f"xmatch: the input moved to {to_epoch_jyear} (to_epoch_jyear, --to-epoch) and the catalog "
                         f"to {at_epoch_jyear} (at_epoch_jyear, --at-epoch) would be compared at two epochs: give "
                         "at_epoch_jyear (--at-epoch) alone (the input is moved to it too)")
    motion = None
    if pm_cols is not None:
        to_epoch_jyear = at_epoch_jyear if to_epoch_jyear is None else to_epoch_jyear
        if epoch_jyear is None or to_epoch_jyear is None:
            raise QueryError("xmatch: proper motions need the input's epoch and the epoch to move them to "
                             "(epoch_jyear and to_epoch_jyear or at_epoch_jyear; --epoch and --to-epoch or --at-epoch)")
        for name in (*pm_cols, *([epoch_jyear] if isinstance(epoch_jyear, str) else [])):
            if name not in table.colnames:
                raise QueryError(f"xmatch: no column {name!r} (proper motions, or the epoch as a Julian year "
                                 f"such as 2000.0, or a column of them); the input has {', '.join(table.colnames)}")
        motion = _motions(table, pm_cols, epoch_jyear, positions)
    bad_rows = len({p.row for p in positions.problems})
    if positions.problems and not keep_bad:
        shown = "; ".join(f"row {p.row} column {p.column}: {p.reason}" for p in positions.problems[:5])
        more = f" (and {len(positions.problems) - 5} more values)" if len(positions.problems) > 5 else ""
        raise QueryError(f"xmatch: bad positions in {bad_rows} {'row' if bad_rows == 1 else 'rows'}: {shown}{more}")
    if motion is not None:
        positions = positions.moved(*motion, to_epoch_jyear)
    matched = _match(engine or default_engine(), positions, radius_arcsec, release, mode, at_epoch_jyear)
    if positions.problems:
        log.warning("xmatch: %d %s with bad positions kept unmatched (first: row %d column %s: %s)",
                    bad_rows, "row" if bad_rows == 1 else "rows", positions.problems[0].row, positions.problems[0].column,
                    positions.problems[0].reason)
    return _answer(table, matched, positions, keep_bad)


def _motions(table: Table, pm_cols: tuple[str, str], epoch_jyear: float | str,
             positions: Positions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pm RA*cos(Dec), pm Dec [mas/yr], epoch [Julian year]) per row, the rows whose cells cannot be
    used added to ``positions``' problems (and made bad): an epoch cell missing, not finite or not a
    number (a masked cell held 0, and moved its star by 2,000 years), or a proper motion that is
    text. A missing proper motion is no motion: the row stays where it is, one of its two components
    missing too (the row moved along the other alone, as if the missing one were 0)."""
    found, pm, missing = [], [], np.zeros(len(table), dtype=bool)
    for name in pm_cols:
        values, bad, text = _column_in(table, name, u.mas / u.yr, "a proper motion")
        found += [(i, name, "a proper motion that is not a number") for i in np.flatnonzero(text & positions.good)]
        pm.append(values)
        missing |= bad
    for values in pm:
        values[missing] = 0.0
    if isinstance(epoch_jyear, str):
        epoch, epoch_bad, _ = _numbers(table, epoch_jyear)
        found += [(i, epoch_jyear, "epoch missing or not a finite number") for i in np.flatnonzero(epoch_bad & positions.good)]
        lo, hi = EPOCH_RANGE_JYEAR
        found += [(i, epoch_jyear, f"epoch outside the Julian years accepted, [{lo:g}, {hi:g}]")
                  for i in np.flatnonzero(~epoch_bad & ((epoch < lo) | (epoch > hi)) & positions.good)]
    else:
        epoch = np.full(len(table), float(epoch_jyear))
    for i, column, why in found:
        positions.problems.append(Problem(int(i) + 1, column, f"{why}: {table[column][i]}"))
        positions.good[i] = False
    positions.problems.sort(key=lambda p: p.row)
    return pm[0], pm[1], np.where(positions.good, epoch, 2000.0)


def _match(engine: sa.Engine, positions: Positions, radius_arcsec: float, release: str | None,
           mode: str, at_epoch_jyear: float | None) -> list[np.ndarray]:
    """Upload the good positions and run healcat.xmatch_table: its rows as columns (row_id, source_id or
    -1, release, object_id, ra, dec, separation_arcsec; '' and NaN where a row has no match).

    The rows come back as one value per column (catalog.pgcopy.fetch_columns), not as a million
    Python tuples parsed from text (1M pairs: ~5 s of the call).
    """
    rows = np.flatnonzero(positions.good) + 1
    with engine.connect() as conn:
        pg = conn.connection.driver_connection
        try:
            with conn.begin():
                # at an epoch, the radius is padded by the proper motions: SQL computes the cover
                upload_input(pg, positions.ra_deg[rows - 1], positions.dec_deg[rows - 1], rows,
                             radius_arcsec if at_epoch_jyear is None else None)
                return fetch_columns(
                    pg, "SELECT * FROM healcat.xmatch_table(%s, %s, %s, %s, %s) AS m CROSS JOIN LATERAL (SELECT "
                    "coalesce(m.source_id, -1) AS source, coalesce(m.release, '') AS release_name, coalesce(m.object_id, "
                    "'') AS object, coalesce(m.ra, 'NaN') AS match_ra, coalesce(m.dec, 'NaN') AS match_dec, "
                    "coalesce(m.separation_arcsec, 'NaN') AS separation) AS c",
                    (_TEMP_TABLE, radius_arcsec, release, mode, at_epoch_jyear),
                    [("row_id", "int64"), ("source", "int64"), ("release_name", "str"), ("object", "str"),
                     ("match_ra", "float64"), ("match_dec", "float64"), ("separation", "float64")])
        except (sa.exc.DBAPIError, psycopg.Error) as exc:
            raise _sql_error(exc) from None


def _answer(table: Table, columns: list[np.ndarray], positions: Positions, keep_bad: bool) -> Table:
    """The input's rows (repeated per pair in 'all' mode; in 'best' mode, every row once) beside their
    matches (``columns``: as :func:`_match` returns them)."""
    bad = np.flatnonzero(~positions.good) + 1
    if keep_bad and len(bad):  # unmatched, beside the others in input order
        filler = (bad, -1, "", "", np.nan, np.nan, np.nan)
        columns = [np.concatenate([c, np.full(len(bad), f, dtype=c.dtype) if i else f]).astype(c.dtype)
                   for i, (c, f) in enumerate(zip(columns, filler))]
        order = np.argsort(columns[0], kind="stable")
        columns = [c[order] for c in columns]
    row = columns[0]
    answer = table[row - 1] if len(row) else table[:0]
    for name in list(answer.colnames):
        if name in MATCH_COLUMNS or name in ("input_row", "xmatch_problem"):  # e.g. an earlier match's
            answer.rename_column(name, next(f"{name}_input{n or ''}" for n in range(len(answer.colnames) + 1)
                                            if f"{name}_input{n or ''}" not in answer.colnames))
    answer["input_row"] = row
    answer["input_row"].description = MATCH_DESCRIPTIONS["input_row"]
    missing = columns[1] < 0
    for (name, unit), values in zip(MATCH_COLUMNS.items(), columns[1:]):
        answer.add_column(MaskedColumn(values, mask=missing, unit=unit, description=MATCH_DESCRIPTIONS[name], copy=False),
                          name=name, copy=False)
    if keep_bad:
        reasons: dict[int, str] = {}
        for p in positions.problems:  # every reason of a row, in column order
            reasons[p.row] = "; ".join(filter(None, [reasons.get(p.row), f"column {p.column}: {p.reason}"]))
        answer["xmatch_problem"] = np.array([reasons.get(int(r), "") for r in row], dtype=str)
        answer["xmatch_problem"].description = MATCH_DESCRIPTIONS["xmatch_problem"]
    return answer


def crossmatch_releases(
    release_a: str, release_b: str, radius_arcsec: float, *, mode: str = "best", at_epoch_jyear: float | None = None,
    engine: sa.Engine | None = None
) -> Table:
    """Match every positioned source of ``release_a`` with those of ``release_b`` within ``radius_arcsec``
    (at ``at_epoch_jyear``, if given: both releases' sources moved to it by their proper motions).

    Columns: source_id_a, object_id_a, ra_a, dec_a, source_id_b, object_id_b, ra_b, dec_b [deg],
    separation_arcsec; 'best' mode masks the _b columns of sources with no match.
    """
    from catalog.db import engine as default_engine

    radius_arcsec = _check(radius_arcsec, mode)
    at_epoch_jyear = _epoch("at_epoch_jyear", at_epoch_jyear)
    with (engine or default_engine()).connect() as conn:
        try:
            result = conn.execute(sa.text("SELECT * FROM healcat.xmatch_releases(:a, :b, :r, :mode, :epoch)"),
                                  {"a": release_a, "b": release_b, "r": float(radius_arcsec), "mode": mode,
                                   "epoch": at_epoch_jyear})
            rows, names = result.fetchall(), list(result.keys())
        except sa.exc.DBAPIError as exc:
            raise _sql_error(exc) from None
    answer = Table()
    for i, name in enumerate(names):
        kind = str if name.startswith("object_id") else np.int64 if name.startswith("source_id") else np.float64
        unit = u.arcsec if name == "separation_arcsec" else u.deg if name[:3] in ("ra_", "dec") else None
        answer[name] = masked_column([r[i] for r in rows], kind, unit)  # None: no match
        base, side = name[:-2], name[-1]
        epoch = ", at the match's epoch" if unit == u.deg else ""
        answer[name].description = ("angular distance between sources A and B" if name == "separation_arcsec" else
                                    f"{COLUMNS[base][2]}{epoch}, release {side.upper()} (release_{side})")
    return answer
