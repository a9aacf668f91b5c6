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
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle
from astropy.table import Table

from catalog.errors import MappingError

MAPPINGS_DIR = Path(__file__).parent / "mappings"
MAG_SYSTEMS = ("AB", "Vega")
POSITION_UNITS = {"deg": u.deg, "hourangle": u.hourangle, "rad": u.rad}


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
    xids: dict[str, str]
    ignore: dict[str, str]
    raw: dict[str, Any] = field(repr=False)

    @property
    def release_name(self) -> str:
        return f"{self.survey['name']}/{self.version}"

    def input_path(self, override: Path | str | None = None) -> Path:
        path = Path(override) if override else Path(self.file)
        return path if path.is_absolute() else data_dir() / path

    def used_columns(self) -> set[str]:
        cols = {name for _, name, _, _ in string.Formatter().parse(self.object_id) if name}
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


def load_mapping(path: Path | str) -> Mapping:
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
    return Mapping(
        path=path,
        survey={k: str(v) for k, v in survey.items()},
        version=release["version"],
        release_date=date if isinstance(date, dt.date) else None,
        file=release["file"],
        format=release["format"],
        object_id=source["object_id"],
        ra=ra,
        dec=dec,
        attrs=tuple(source.get("attrs", ())),
        mag_system=phot.get("system"),
        sentinels=tuple(float(x) for x in phot.get("sentinels", ())),
        bands=dict(phot.get("bands", {})),
        spec_redshift=dict(section("spec_redshift", required=False)),
        xids=dict(section("xid", required=False)),
        ignore=dict(section("ignore", required=False)),
        raw=raw,
    )


def _degrees(table: Table, col: Column) -> np.ndarray:
    values = table[col.name]
    unit = POSITION_UNITS[col.unit or "deg"]
    if values.dtype.kind in "US":  # sexagesimal strings such as "12:30:49.4" or "12h30m49.4s"
        return np.array([Angle(v, unit=unit).deg if v.strip() else np.nan for v in values], dtype=np.float64)
    return (np.ma.filled(np.ma.asarray(values, dtype=np.float64), np.nan) * unit).to_value(u.deg)


def _floats(table: Table, name: str, sentinels: tuple[float, ...] = ()) -> np.ndarray:
    values = np.ma.filled(np.ma.asarray(table[name], dtype=np.float64), np.nan)
    if sentinels:
        values[np.isin(values, sentinels)] = np.nan
    return values


def _texts(table: Table, name: str) -> np.ndarray:
    return np.array([str(v) if v is not np.ma.masked else None for v in table[name]], dtype=object)


@dataclass
class MappedChunk:
    """A chunk of input rows in healcat's columns and units, before validation."""

    row_number: np.ndarray  # 1-based data row in the file
    object_id: np.ndarray
    ra_deg: np.ndarray | None
    dec_deg: np.ndarray | None
    attrs: list[dict[str, Any]]
    mags: dict[str, np.ndarray]  # band -> magnitude in the mapping's system, NaN if missing
    spec: dict[str, np.ndarray]  # z, spec_class, ... -> values
    xids: dict[str, np.ndarray]  # catalog -> identifier text, None where absent
    raw: Table  # the input rows, for quarantine


def apply(mapping: Mapping, table: Table, first_row: int = 1) -> MappedChunk:
    """Map an input Table (a chunk starting at data row ``first_row``) to healcat's columns."""
    n = len(table)
    names = sorted(mapping.used_columns())
    rows = [dict(zip(names, r)) for r in table.iterrows(*names)] if n else []
    object_id = np.array([_format_id(mapping.object_id, r) for r in rows], dtype=object)
    attrs = [{k: json_scalar(r[k]) for k in mapping.attrs} for r in rows]
    spec = {}
    for key, name in mapping.spec_redshift.items():
        spec[key] = _floats(table, name) if key in ("z", "z_err") else _texts(table, name)
    return MappedChunk(
        row_number=np.arange(first_row, first_row + n),
        object_id=object_id,
        ra_deg=_degrees(table, mapping.ra) if mapping.ra else None,
        dec_deg=_degrees(table, mapping.dec) if mapping.dec else None,
        attrs=attrs,
        mags={band: _floats(table, col, mapping.sentinels) for band, col in mapping.bands.items()},
        spec=spec,
        xids={catalog: _identifiers(table[col]) for catalog, col in mapping.xids.items()},
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


def _format_id(template: str, row: dict[str, Any]) -> str | None:
    """The object id from its template, or None when a field it uses is missing or of the wrong type."""
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    if any(row[f] is np.ma.masked for f in fields):
        return None
    try:
        return template.format_map(row)
    except (ValueError, TypeError):
        return None


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
