"""Declarative survey mappings: a TOML file per release says which input column feeds what.

A mapping is read once into a :class:`Mapping`, checked against the input's
columns (every column is mapped, listed under ``[ignore]`` with a reason, or the
release fails with the column's name), and applied to astropy Tables to give
the columns of healcat's tables in healcat's units (ICRS degrees, magnitudes
with their system). See ``ingest/mappings/*.toml`` and the README.
"""

from __future__ import annotations

import datetime as dt
import os
import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle
from astropy.table import Table

from catalog.errors import MappingError

if TYPE_CHECKING:
    from ingest.perobject_mapping import PerObjectMapping

MAPPINGS_DIR = Path(__file__).parent / "mappings"
MAG_SYSTEMS = ("AB", "Vega")
POSITION_UNITS = {"deg": u.deg, "hourangle": u.hourangle, "rad": u.rad}
SPEC_KEYS = {"z", "z_err", "quality", "spec_class"}
#: Sections that make a mapping one of per-object files (ingest/perobject_mapping.py).
PER_OBJECT_SECTIONS = {"light_curve", "spectrum"}


def data_dir() -> Path:
    """Where relative release files are found: HEALCAT_DATA_DIR, else ../shared/data beside the checkout."""
    env = os.environ.get("HEALCAT_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclass(frozen=True)
class Column:
    """One input column and the unit its values are in."""

    name: str
    unit: str | None = None

    @classmethod
    def parse(cls, spec: str | dict[str, Any], where: str) -> Column:
        if isinstance(spec, str):
            return cls(spec)
        if isinstance(spec, dict) and isinstance(spec.get("column"), str):
            return cls(spec["column"], spec.get("unit"))
        raise MappingError(f"{where}: expected a column name or {{ column = ..., unit = ... }}, got {spec!r}")


@dataclass(frozen=True)
class Mapping:
    path: Path
    survey: dict[str, str]
    version: str
    release_date: dt.date | None
    file: str
    format: str
    object_id: str
    ra: Column | None
    dec: Column | None
    attrs: tuple[str, ...]
    mag_system: str | None
    sentinels: tuple[float, ...]
    bands: dict[str, str]
    spec_redshift: dict[str, str]
    spec_sentinels: tuple[float, ...]
    xids: dict[str, str]
    ignore: dict[str, str]
    raw: dict[str, Any] = field(repr=False)

    @property
    def release_name(self) -> str:
        return f"{self.survey['name']}/{self.version}"

    @property
    def object_id_fields(self) -> list[str]:
        return [name for _, name, _, _ in string.Formatter().parse(self.object_id) if name]

    def input_path(self, override: Path | str | None = None) -> Path:
        """The file to read: ``override`` (relative to the working directory), else the mapping's own
        ``file`` (relative to the data folder)."""
        if override:
            return Path(override).resolve()
        path = Path(self.file)
        return path if path.is_absolute() else data_dir() / path

    def used_columns(self) -> set[str]:
        cols = set(self.object_id_fields)
        cols |= {c.name for c in (self.ra, self.dec) if c}
        cols |= set(self.attrs) | set(self.bands.values()) | set(self.spec_redshift.values())
        cols |= set(self.xids.values())
        return cols

    def check_columns(self, table: Table, file: Path) -> None:
        """Fail, naming the file and the columns, unless the input has exactly what is mapped or ignored."""
        present = set(table.colnames)
        missing = sorted(self.used_columns() - present)
        if missing:
            raise MappingError(f"{file}: mapping {self.path.name} uses columns not in the file: {', '.join(missing)}")
        unmapped = sorted(present - self.used_columns() - set(self.ignore))
        if unmapped:
            raise MappingError(
                f"{file}: columns {', '.join(unmapped)} are neither mapped nor listed under [ignore] "
                f"in {self.path.name}"
            )


def load_mapping(path: Path | str) -> Mapping | PerObjectMapping:
    """Read and check a mapping file; a bare name means ``ingest/mappings/NAME.toml``."""
    path = Path(path)
    if not path.suffix:
        path = MAPPINGS_DIR / f"{path}.toml"
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise MappingError(f"no mapping file {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{path}: not valid TOML: {exc}") from None
    if PER_OBJECT_SECTIONS & raw.keys():  # spectra and light curves: files per object
        from ingest.perobject_mapping import parse_per_object

        return parse_per_object(path, raw)
    return parse_mapping(path, raw)


def parse_mapping(path: Path, raw: dict[str, Any]) -> Mapping:
    """Check a catalogue mapping's sections (read from ``path``) and build the :class:`Mapping`."""

    def section(name: str, required: bool = True) -> dict[str, Any]:
        if name not in raw and required:
            raise MappingError(f"{path}: missing [{name}]")
        return raw.get(name, {})

    survey, release, source = section("survey"), section("release"), section("source")
    phot = section("photometry", required=False)
    for key, sec, sec_name in (("name", survey, "survey"), ("version", release, "release"),
                               ("file", release, "release"), ("format", release, "release"),
                               ("object_id", source, "source")):
        if not isinstance(sec.get(key), str):
            raise MappingError(f"{path}: [{sec_name}] needs a string {key!r}")
    if ("ra" in source) != ("dec" in source):
        raise MappingError(f"{path}: [source] maps one of ra/dec without the other")
    ra = Column.parse(source["ra"], f"{path} [source] ra") if "ra" in source else None
    dec = Column.parse(source["dec"], f"{path} [source] dec") if "dec" in source else None
    for col in (ra, dec):
        if col and (col.unit or "deg") not in POSITION_UNITS:
            raise MappingError(f"{path}: position unit {col.unit!r} is not one of {', '.join(POSITION_UNITS)}")
    if phot and phot.get("system") not in MAG_SYSTEMS:
        raise MappingError(f"{path}: [photometry] system must be one of {MAG_SYSTEMS}, got {phot.get('system')!r}")
    date = release.get("date")
    if date is not None and not isinstance(date, dt.date):
        raise MappingError(f"{path}: [release] date must be a TOML date such as 2017-07-31, got {date!r}")
    spec = dict(section("spec_redshift", required=False))
    spec_sentinels = tuple(float(x) for x in spec.pop("sentinels", ()))
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise MappingError(f"{path}: [spec_redshift] knows {', '.join(sorted(SPEC_KEYS))}, not {', '.join(unknown)}")
    return Mapping(
        path=path,
        survey={k: str(v) for k, v in survey.items()},
        version=release["version"],
        release_date=date,
        file=release["file"],
        format=release["format"],
        object_id=source["object_id"],
        ra=ra,
        dec=dec,
        attrs=tuple(source.get("attrs", ())),
        mag_system=phot.get("system"),
        sentinels=tuple(float(x) for x in phot.get("sentinels", ())),
        bands=dict(phot.get("bands", {})),
        spec_redshift=spec,
        spec_sentinels=spec_sentinels,
        xids=dict(section("xid", required=False)),
        ignore=dict(section("ignore", required=False)),
        raw=raw,
    )


#: Problems found while reading cells: row index in the chunk -> (column, reason); the first wins.
Problems = dict[int, tuple[str | None, str]]


def _parse_cells(column, parse, problems: Problems, name: str, expected: str) -> np.ndarray:
    """Floats from a column of text, cell by cell: empty cells are NaN (missing); a cell ``parse``
    rejects is NaN and a problem naming the column, the text and what was ``expected``."""
    out = np.full(len(column), np.nan)
    for i, value in enumerate(column):
        text = "" if value is np.ma.masked else str(value).strip()
        if not text:
            continue
        try:
            out[i] = parse(text)
        except (ValueError, TypeError, u.UnitsError):
            problems.setdefault(i, (name, f"{name} {text!r} is not {expected}"))
    return out


def _numeric(column) -> np.ndarray | None:
    """The column as float64 with masked cells NaN, if its type is numeric."""
    if column.dtype.kind not in "iufb":
        return None
    return np.ma.filled(np.ma.asarray(column, dtype=np.float64), np.nan)


def _degrees(table: Table, col: Column, problems: Problems) -> np.ndarray:
    """Angles in degrees from numbers in the column's unit or sexagesimal strings ('12:30:49.4', '12h30m49s')."""
    unit = POSITION_UNITS[col.unit or "deg"]
    values = _numeric(table[col.name])
    if values is not None:
        return values * unit.to(u.deg)

    def angle(text: str) -> float:
        try:
            return float(text) * unit.to(u.deg)
        except ValueError:
            return Angle(text, unit=unit).deg

    return _parse_cells(table[col.name], angle, problems, col.name, f"an angle in {unit}")


def _floats(table: Table, name: str, problems: Problems, sentinels: tuple[float, ...] = ()) -> np.ndarray:
    """Numbers from a column; empty cells and sentinel values are NaN (missing), text that is no number a problem."""
    values = _numeric(table[name])
    if values is None:
        values = _parse_cells(table[name], float, problems, name, "a number")
    if sentinels:
        values[np.isin(values, sentinels)] = np.nan
    return values


def _texts(table: Table, name: str) -> np.ndarray:
    return np.array([str(v).strip() or None if v is not np.ma.masked else None for v in table[name]], dtype=object)


@dataclass
class MappedChunk:
    """A chunk of input rows in healcat's columns and units, before validation."""

    row_number: np.ndarray  # 1-based data row in the file
    object_id: np.ndarray
    ra_deg: np.ndarray | None
    dec_deg: np.ndarray | None
    attrs: list[dict[str, Any]]
    mags: dict[str, np.ndarray]  # band -> magnitude in the mapping's system, NaN if missing
    spec: dict[str, np.ndarray]  # z, z_err, quality, spec_class -> values (NaN / None if missing)
    xids: dict[str, np.ndarray]  # catalog -> identifier text, None where absent
    problems: Problems  # cells that could not be read
    raw: Table  # the input rows, for quarantine


def apply(mapping: Mapping, table: Table, first_row: int = 1) -> MappedChunk:
    """Map an input Table (a chunk starting at data row ``first_row``) to healcat's columns."""
    n = len(table)
    problems: Problems = {}
    names = sorted(set(mapping.object_id_fields) | set(mapping.attrs))  # the only per-row work
    rows = [dict(zip(names, r)) for r in table.iterrows(*names)] if n else []
    object_id = np.full(n, None, dtype=object)
    for i, row in enumerate(rows):
        object_id[i], column, reason = _format_id(mapping.object_id, row)
        if reason:
            problems.setdefault(i, (column, reason))
    spec = {}
    for key, name in mapping.spec_redshift.items():
        spec[key] = (_texts(table, name) if key == "spec_class"
                     else _floats(table, name, problems, mapping.spec_sentinels))
    return MappedChunk(
        row_number=np.arange(first_row, first_row + n),
        object_id=object_id,
        ra_deg=_degrees(table, mapping.ra, problems) if mapping.ra else None,
        dec_deg=_degrees(table, mapping.dec, problems) if mapping.dec else None,
        attrs=[{k: json_scalar(r[k]) for k in mapping.attrs} for r in rows],
        mags={band: _floats(table, col, problems, mapping.sentinels) for band, col in mapping.bands.items()},
        spec=spec,
        xids={catalog: _identifiers(table[col]) for catalog, col in mapping.xids.items()},
        problems=problems,
        raw=table,
    )


def _identifiers(column) -> np.ndarray:
    """External ids as exact text; masked, empty and non-positive integer ids (e.g. Gaia rows that
    carry -HIP numbers) are absent."""
    out = np.full(len(column), None, dtype=object)
    for i, value in enumerate(column):
        if value is np.ma.masked:
            continue
        if isinstance(value, (int, np.integer)):
            if value > 0:
                out[i] = str(int(value))
        elif str(value).strip():
            out[i] = str(value).strip()
    return out


def _format_id(template: str, row: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(object id, None, None) from the template, or (None, the offending column, why)."""
    fields = [(name, spec) for _, name, spec, _ in string.Formatter().parse(template) if name]
    for name, spec in fields:
        value = row[name]
        if value is np.ma.masked or not str(value).strip():
            return None, name, f"object_id: {name} is empty"
        try:
            format(_number(value) if spec else value, spec or "")
        except (ValueError, TypeError) as exc:
            return None, name, f"object_id template {template!r}: {name}={str(value)!r} does not fit {{:{spec}}} ({exc})"
    try:
        return template.format_map(row), None, None
    except (ValueError, TypeError):  # e.g. "{plate:04d}" over a column that one bad cell made text
        return template.format_map({**row, **{name: _number(row[name]) for name, _ in fields}}), None, None


def _number(value: Any) -> Any:
    """Text that spells an integer or a float, as that number; anything else unchanged."""
    if isinstance(value, (str, np.str_)):
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
    return value


def json_scalar(value: Any) -> Any:
    """A numpy/astropy scalar as a JSON value (NaN and masked become null)."""
    if value is np.ma.masked:
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, bytes):
        return value.decode()
    return value if isinstance(value, (int, str, type(None))) else str(value)
