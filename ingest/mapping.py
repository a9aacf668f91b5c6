"""Declarative survey mappings: a TOML file per release says which input column feeds what.

A mapping is read once into a :class:`Mapping`, checked against the input's
columns (every column is mapped, listed under ``[ignore]`` with a reason, or the
release fails with the column's name), and applied to astropy Tables, chunk by
chunk, to give the columns of healcat's tables in healcat's units (ICRS degrees,
AB or Vega magnitudes, fluxes in uJy, days). See ``ingest/mappings/*.toml`` and the README.
"""

from __future__ import annotations

import datetime as dt
import glob
import math
import os
import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import astropy.units as u
import numpy as np
from astropy.table import Table

from catalog.errors import MappingError, MissingInputError
from ingest import cells
from ingest.cells import Problems
from ingest.readers import ReadOptions

if TYPE_CHECKING:
    from ingest.perobject_mapping import PerObjectMapping

MAPPINGS_DIR = Path(__file__).parent / "mappings"
MAG_SYSTEMS = ("AB", "Vega")
POSITION_UNITS = {"deg": u.deg, "dms": u.deg, "hourangle": u.hourangle, "rad": u.rad}  # dms: sexagesimal RA in deg
#: How files spell the units of a position column (FITS TUNITn, ECSV/VOTable/Parquet unit), lower-cased:
#: spellings astropy does not parse ('hours', 'degrees', 'hms') or parses as something else ('H': henry).
POSITION_UNIT_SPELLINGS = {
    **dict.fromkeys(("deg", "degree", "degrees", "dms"), u.deg),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours", "hourangle", "hms"), u.hourangle),
    **dict.fromkeys(("rad", "radian", "radians"), u.rad),
}
MAX_PM_MASYR = 2e4  # [mas/yr]: no star moves faster than Barnard's star's 10,400 by half again
AB_ZERO_POINT_UJY = u.ABflux.to(u.uJy)  # the AB system's zero point, 3630.78 Jy [uJy]
#: [mag] a flux fainter than this (a tiny positive flux: noise) is a non-detection for the magnitude, as a
#: flux <= 0 is: its flux kept, its magnitude NULL. No survey reaches mag 40 (the deepest about 30).
FLUX_MAG_FAINTEST = 40.0
MAX_MAG_ERR = 5.0  # [mag]: a larger magnitude error is no error measured (99, 1e20): NULL, its magnitude kept
#: The most of a release's rows that may fail validation ([release] max_rejected_fraction sets another): more
#: is a file or mapping wrong throughout (fluxes in nanomaggies read as magnitudes rejected 93% of a file,
#: and its 7% published over the good release), and the load is refused with nothing published. The
#: shipped real releases reject at most 4% (gyrointerp Group X, 7 of 173), but for Ruprecht 147's members
#: without a period (85%: its mapping allows 0.9).
MAX_REJECTED_FRACTION = 0.05
ROW_FIELD = "_row"  # object_id templates may use the 1-based row number in the file (files with no ids)
ON_MISSING = ("create", "quarantine")
GAIA_DR3 = "gaia_dr3"  # its source_id places a positionless row's shard (healpix.gaia_shard)
INTEGER_XIDS = {GAIA_DR3}  # external catalogs whose ids are 64-bit integers
#: Per-object sections with one value per row: key -> kind ("float", "text"); "required" keys must be mapped.
SECTIONS = {
    "spec_redshift": {"z": "float", "z_err": "float", "quality": "float", "spec_class": "text"},
    "rotation_period": {"period": "float", "period_err": "float", "bp_rp_dered": "float",
                        "membership_prob": "float", "cluster": "text", "subgroup": "text",
                        "cluster_age_myr": "float", "reference": "text"},
    "stellar_mass": {"log_mass": "float", "log_mass_p16": "float", "log_mass_p84": "float",
                     "log_sfr": "float", "log_sfr_p16": "float", "log_sfr_p84": "float"},
}
REQUIRED = {"rotation_period": "period", "stellar_mass": "log_mass"}
CONSTANTS = {"rotation_period": ("cluster_name",), "stellar_mass": ("code",)}
#: Sections that make a mapping one of per-object files (ingest/perobject_mapping.py).
PER_OBJECT_SECTIONS = {"light_curve", "spectrum"}
#: The keys a catalogue mapping knows, at its top level (None) and in each fixed section: a key not
#: known (a typo such as max_row) is an error, never silently ignored.
KEYS = {
    None: {"survey", "release", "source", "photometry", "xid", "ignore", *SECTIONS},
    "survey": {"name", "description", "url"},
    "release": {"version", "file", "format", "date", "max_rows", "chunk_rows", "hdu", "dataset",
                "header_comment", "delimiter", "null_values", "max_rejected_fraction"},
    "source": {"object_id", "ra", "dec", "attrs", "join", "on_missing", "pmra", "pmdec", "ref_epoch"},
    "photometry": {"system", "bands", "sentinels", "missing_above", "error_sentinels", "max_mag_err", "new_bands"},
}

#: [release] keys that say how to read the file (ingest.readers.ReadOptions): their types and what they must be.
READ_OPTIONS = {
    "chunk_rows": (int, "a positive integer (rows per chunk)"),
    "hdu": ((int, str), "an HDU's index (an integer) or its EXTNAME"),
    "dataset": (str, "the HDF5 dataset's name"),
    "header_comment": (int, "an integer (which '#' line names the columns; -1: the last)"),
    "delimiter": (str, "a text such as \",\""),
}


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


def template_fields(template: str) -> list[str]:
    """The columns an object_id template names, in order (``"{plate}-{mjd}"``: plate, mjd)."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def check_template(template: str, where: str) -> None:
    """A MappingError naming ``where`` unless each field of ``template`` names a column: no attribute
    or index (``{id.__class__.__mro__}`` stored Python's internals as object ids), no bare ``{}``."""
    if not isinstance(template, str):
        raise MappingError(f"{where} must be a text template such as \"{{id}}\", got {template!r}")
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise MappingError(f"{where}: {template!r} is not a template ({exc}); write {{column}} for a column's "
                           "value, {{{{ and }}}} for braces") from None
    for name in names:
        if not name or "." in name or "[" in name:
            raise MappingError(f"{where}: {{{name}}} in {template!r} must name a column (no attribute, no index)")


@dataclass(frozen=True)
class Band:
    """Where one band's photometry comes from: a magnitude column, or a flux column and its unit
    (any astropy flux-density unit such as uJy, Jy or nanomaggy; or ``zp_ab``, the AB zero point
    of fluxes in arbitrary units: mag_AB = zp_ab - 2.5 log10(flux)). A flux's error is a column of
    errors (``flux_err``) or of inverse variances (``flux_ivar``, in the unit to the -2, as Legacy
    Surveys' and SDSS's catalogues give it: error = 1 / sqrt(ivar), none where ivar is 0); with
    ``transmission`` (a column of values in (0, 1], Legacy Surveys' ``mw_transmission``) the flux is
    de-reddened (observed / transmission) and the error column is the observed flux's, so the error
    is divided by it too."""

    mag: str | None = None
    mag_err: str | None = None
    flux: str | None = None
    flux_err: str | None = None
    flux_ivar: str | None = None
    transmission: str | None = None
    to_ujy: float = 1.0  # flux * to_ujy = flux density [uJy]
    unit: str = ""  # the flux's unit as the mapping says it (for reasons): 'nanomaggy', 'zp_ab 25.0'

    @classmethod
    def parse(cls, name: str, spec: str | dict[str, Any], where: str) -> Band:
        if isinstance(spec, str):
            return cls(mag=spec)
        magnitude, flux = {"mag", "mag_err"}, {"flux", "flux_err", "flux_ivar", "transmission", "unit", "zp_ab"}
        if not isinstance(spec, dict) or set(spec) - (magnitude if "mag" in spec else flux) \
                or ("mag" in spec) == ("flux" in spec):
            raise MappingError(f"{where}: band {name} needs a magnitude column or {{ mag = ..., mag_err = ... }} "
                               f"or {{ flux = ..., flux_err = ... | flux_ivar = ..., transmission = ..., "
                               f"unit = ... | zp_ab = ... }}, got {spec!r}")
        if "flux" not in spec:
            return cls(mag=spec["mag"], mag_err=spec.get("mag_err"))
        if ("unit" in spec) == ("zp_ab" in spec):
            raise MappingError(f"{where}: band {name}: give the flux's unit or its zp_ab, exactly one")
        if "flux_err" in spec and "flux_ivar" in spec:
            raise MappingError(f"{where}: band {name}: give the flux's error (flux_err) or its inverse variance "
                               f"(flux_ivar), not both")
        if "transmission" in spec and not ("flux_err" in spec or "flux_ivar" in spec):
            raise MappingError(f"{where}: band {name}: transmission converts the observed flux's error to the "
                               f"de-reddened flux's: it needs flux_err or flux_ivar")
        if "zp_ab" in spec:
            zp_ab = number(f"{where}: band {name}: zp_ab", spec["zp_ab"])
            to_ujy = AB_ZERO_POINT_UJY * 10 ** (-0.4 * zp_ab)
            unit = f"(zp_ab {zp_ab:g})"
        else:
            try:
                unit = u.Unit(spec["unit"])
                # maggies are flux relative to the AB zero point (astropy: dimensionless)
                to_ujy = unit.to(u.mgy) * AB_ZERO_POINT_UJY if unit.is_equivalent(u.mgy) else unit.to(u.uJy)
            except (ValueError, u.UnitConversionError) as exc:
                raise MappingError(f"{where}: band {name}: {spec['unit']!r} is not a flux-density unit ({exc})") from None
            unit = str(spec["unit"])
        return cls(flux=spec["flux"], flux_err=spec.get("flux_err"), flux_ivar=spec.get("flux_ivar"),
                   transmission=spec.get("transmission"), to_ujy=to_ujy, unit=unit)

    def columns(self) -> set[str]:
        return {c for c in (self.mag, self.mag_err, self.flux, self.flux_err, self.flux_ivar, self.transmission) if c}

    @property
    def flux_error(self) -> str | None:
        """The column a flux's error comes from (``flux_err`` or ``flux_ivar``), as reasons name it."""
        return self.flux_err or self.flux_ivar

    @property
    def flux_error_name(self) -> str | None:
        """How the flux's error is made, as reasons name a value of it: ``e_g``, ``1/sqrt(ivar_g)``, and
        ``/mw_g`` after either where a transmission de-reddens it."""
        error = self.flux_err or (self.flux_ivar and f"1/sqrt({self.flux_ivar})")
        return f"{error}/{self.transmission}" if error and self.transmission else error


@dataclass(frozen=True)
class ProperMotion:
    """Where a source's proper motions [mas/yr; RA's is mu_alpha * cos(dec)] and their reference
    epoch [Julian year] come from: [source] pmra, pmdec (columns, optionally with a unit) and
    ref_epoch (a number such as 2016.0, or a column)."""

    pmra: Column
    pmdec: Column
    ref_epoch: float | str

    @classmethod
    def parse(cls, source: dict[str, Any], where: str) -> ProperMotion | None:
        keys = [k for k in ("pmra", "pmdec", "ref_epoch") if k in source]
        if not keys:
            return None
        if len(keys) < 3:
            raise MappingError(f"{where}: proper motions need pmra, pmdec and ref_epoch together, "
                               f"got {', '.join(keys)}")
        pmra, pmdec = (Column.parse(source[k], f"{where} {k}") for k in ("pmra", "pmdec"))
        for col in (pmra, pmdec):
            if col.unit is not None and not u.Unit(col.unit).is_equivalent(u.mas / u.yr):
                raise MappingError(f"{where}: proper-motion unit {col.unit!r} is not an angle per time")
        epoch = source["ref_epoch"]
        if isinstance(epoch, bool) or not isinstance(epoch, (int, float, str)):
            raise MappingError(f"{where}: ref_epoch must be a Julian year (2016.0) or a column name, got {epoch!r}")
        return cls(pmra, pmdec, epoch if isinstance(epoch, str) else float(epoch))

    def columns(self) -> set[str]:
        return {self.pmra.name, self.pmdec.name} | ({self.ref_epoch} if isinstance(self.ref_epoch, str) else set())

    def values(self, table: Table, problems: Problems) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """pmra, pmdec [mas/yr] and ref_epoch [Julian year]; NaN (NULL) for all three where one is missing.
        A common 'no data' value (-9999, 1e20) or a motion past :data:`MAX_PM_MASYR` is a problem for its row."""
        pmra, pmdec = (self._masyr(table, c, problems) for c in (self.pmra, self.pmdec))
        epoch = (cells.floats(table[self.ref_epoch], problems, self.ref_epoch) if isinstance(self.ref_epoch, str)
                 else np.full(len(table), self.ref_epoch))
        missing = np.isnan(pmra) | np.isnan(pmdec) | np.isnan(epoch)
        return tuple(np.where(missing, np.nan, v) for v in (pmra, pmdec, epoch))

    @staticmethod
    def _masyr(table: Table, col: Column, problems: Problems) -> np.ndarray:
        raw = cells.floats(table[col.name], problems, col.name)
        values = raw * u.Unit(col.unit or "mas/yr").to(u.mas / u.yr)
        for i in np.flatnonzero(cells.sentinel_like(raw)):
            problems.setdefault(int(i), (col.name, f"{col.name} {raw[i]:g} is a common 'no data' value, not a proper "
                                                   "motion (leave the cell empty)"))
        with np.errstate(invalid="ignore"):
            for i in np.flatnonzero(np.abs(values) > MAX_PM_MASYR):
                problems.setdefault(int(i), (col.name, f"{col.name} {values[i]:g} mas/yr is outside "
                                                       f"[-{MAX_PM_MASYR:g}, {MAX_PM_MASYR:g}] mas/yr (a sentinel or "
                                                       "a wrong unit? Barnard's star moves 10,400)"))
        return values


@dataclass(frozen=True)
class Mapping:
    path: Path
    survey: dict[str, str]
    version: str
    release_date: dt.date | None
    file: str
    format: str
    read_options: ReadOptions
    max_rows: int | None
    max_rejected_fraction: float  # a release that rejects more of its rows is refused, nothing published
    object_id: str
    ra: Column | None
    dec: Column | None
    proper_motion: ProperMotion | None
    attrs: tuple[str, ...]
    join: str | None  # rows attach to the existing source with this external id catalog's id
    on_missing: str  # ... and when there is none: "create" a positionless source, or "quarantine"
    mag_system: str | None
    sentinels: tuple[float, ...]
    missing_above: float  # magnitudes at or above this are "no data" flags (e.g. 99)
    error_sentinels: tuple[float, ...]  # in error columns only: "no error measured" (the measurement is kept)
    max_mag_err: float  # [mag] a larger magnitude error is not stored (NULL, its magnitude kept)
    bands: dict[str, Band]
    new_bands: tuple[str, ...]  # bands no survey filter healcat knows nor an earlier release has (ingest.bands)
    sections: dict[str, dict[str, str]]  # spec_redshift / rotation_period / stellar_mass: key -> column
    section_sentinels: dict[str, tuple[float, ...]]
    constants: dict[str, dict[str, str]]  # e.g. stellar_mass code, rotation_period cluster_name
    xids: dict[str, str]
    ignore: dict[str, str]
    raw: dict[str, Any] = field(repr=False)

    @property
    def release_name(self) -> str:
        return f"{self.survey['name']}/{self.version}"

    @property
    def object_id_fields(self) -> list[str]:
        return template_fields(self.object_id)

    def input_path(self, override: Path | str | None = None) -> Path:
        """The file to read: ``override`` (relative to the working directory), else the mapping's own
        ``file`` (:func:`resolve_file`; MissingInputError, naming where it was looked for, if it is in
        neither folder)."""
        if override:
            return Path(override).resolve()
        return resolve_file(self.path, self.file)

    def used_columns(self) -> set[str]:
        cols = set(self.object_id_fields) - {ROW_FIELD}
        cols |= {c.name for c in (self.ra, self.dec) if c}
        cols |= self.proper_motion.columns() if self.proper_motion else set()
        cols |= set(self.attrs) | set(self.xids.values())
        for band in self.bands.values():
            cols |= band.columns()
        for section in self.sections.values():
            cols |= set(section.values())
        return cols

    def check_columns(self, table: Table, file: Path) -> None:
        """Fail, naming the file and the columns, unless the input has exactly what is mapped or ignored
        (``"*"`` under ``[ignore]`` covers every column not named), and none both mapped and ignored."""
        used = self.used_columns()
        if both := sorted(used & set(self.ignore)):
            raise MappingError(f"{self.path}: columns {', '.join(both)} are both mapped and listed under [ignore]: "
                               "a column is read or ignored, not both; take it out of one")
        check_mapped(set(table.colnames), used, self.ignore, file, self.path)
        for col, axis in ((self.ra, "ra"), (self.dec, "dec")):
            file_unit = getattr(table[col.name], "unit", None) if col else None
            if file_unit is None or table[col.name].dtype.kind not in "iuf" or file_unit == u.dimensionless_unscaled:
                continue
            angle = POSITION_UNIT_SPELLINGS.get(str(file_unit).strip().lower(), file_unit)
            if isinstance(angle, u.UnrecognizedUnit):
                raise MappingError(f"{file}: column {col.name} is in {str(file_unit)!r} by the file's own header, "
                                   f"a unit healcat does not know; mapping {self.path.name} reads it as {axis} "
                                   f"(known: {', '.join(POSITION_UNIT_SPELLINGS)}, or any astropy angle unit)")
            if axis == "ra" and angle.physical_type == "time":  # FITS and VO write hours of RA as 'h'
                angle = u.CompositeUnit(angle.to(u.hour), [u.hourangle], [1])
            if angle.physical_type != "angle":
                raise MappingError(f"{file}: column {col.name} is in {file_unit} by the file's own header, "
                                   f"which is no angle; mapping {self.path.name} reads it as {axis}")
            if not math.isclose(angle.to(u.deg), POSITION_UNITS[col.unit or "deg"].to(u.deg)):
                raise MappingError(f"{file}: column {col.name} is in {file_unit} by the file's own header, "
                                   f"but mapping {self.path.name} says {col.unit or 'deg'}")
        for column, role, wrong in self._unit_roles():
            file_unit = getattr(table[column], "unit", None)
            if file_unit is None or table[column].dtype.kind not in "iuf" or file_unit == u.dimensionless_unscaled \
                    or isinstance(file_unit, u.UnrecognizedUnit):
                continue  # no unit, or one astropy does not know ('log(Msun)'): the mapping's word stands
            if why := wrong(file_unit):
                raise MappingError(f"{file}: column {column} is in {file_unit} by the file's own header, {why}; "
                                   f"mapping {self.path.name} reads it as {role}")

    def _unit_roles(self) -> list[tuple[str, str, Any]]:
        """Each photometry, redshift and period column with what it is read as and a check of the unit its
        file's header gives it (the reason it cannot be that, or None): fluxes in nanomaggies under a
        magnitude, a redshift in km/s and magnitude errors in mmag loaded without a word."""
        roles = []
        for name, band in self.bands.items():
            roles += [(c, f"band {name}'s magnitude{' error' if c == band.mag_err else ''} [mag]", _not_mag)
                      for c in (band.mag, band.mag_err) if c]
            roles += [(c, f"band {name}'s flux{' error' if c == band.flux_err else ''} [{band.unit}]",
                       _not_flux(band)) for c in (band.flux, band.flux_err) if c]
        for (section, key), (what, check) in SECTION_UNITS.items():
            if column := self.sections.get(section, {}).get(key):
                roles.append((column, what, check))
        return roles


#: How headers name a magnitude's system: astropy reads 'AB mag' as AB flux times mag, and 'AB' alone as the
#: AB system's flux unit.
SYSTEM_UNITS = (u.AB, u.ST)


def _not_mag(unit: u.UnitBase) -> str | None:
    """Why a header's ``unit`` is not magnitudes in mag (``mag``, ``mag(AB)``, ``AB mag``, ``AB``), or None."""
    if isinstance(unit, u.MagUnit) or unit in SYSTEM_UNITS:
        return None
    bases = getattr(unit, "bases", [])
    if any(b in SYSTEM_UNITS for b in bases) and any(b.is_equivalent(u.mag) for b in bases):
        unit = next(b for b in bases if b.is_equivalent(u.mag))  # 'AB mag' (or 'AB mmag'): the mag part
    if not unit.is_equivalent(u.mag):
        return "which is no magnitude"
    return None if math.isclose(unit.to(u.mag), 1.0) else "not mag: convert the column to mag"


def _not_flux(band: Band):
    """A check that a header's unit is the flux unit ``band`` reads (any unit for fluxes in zp_ab's
    arbitrary units, but no magnitude)."""
    def wrong(unit: u.UnitBase) -> str | None:
        if isinstance(unit, u.MagUnit) or unit.is_equivalent(u.mag):
            return "a magnitude, no flux: map it as the band's mag"
        if band.unit.startswith("(zp_ab"):
            return None
        try:
            to_ujy = unit.to(u.mgy) * AB_ZERO_POINT_UJY if unit.is_equivalent(u.mgy) else unit.to(u.uJy)
        except u.UnitConversionError:
            return "which is no flux density"
        return None if math.isclose(to_ujy, band.to_ujy, rel_tol=1e-6) else f"not {band.unit}"
    return wrong


def _dimensionless(unit: u.UnitBase) -> str | None:
    return None if unit.is_equivalent(u.dimensionless_unscaled) and math.isclose(
        unit.to(u.dimensionless_unscaled), 1.0) else "a redshift has none (a velocity cz?)"


def _days(unit: u.UnitBase) -> str | None:
    if not unit.is_equivalent(u.day):
        return "which is no time"
    return None if math.isclose(unit.to(u.day), 1.0) else "not days: convert the column to days"


#: Section columns whose header unit is checked: what the column is read as, and the check.
SECTION_UNITS = {
    ("spec_redshift", "z"): ("the redshift z (dimensionless)", _dimensionless),
    ("spec_redshift", "z_err"): ("the redshift's error (dimensionless)", _dimensionless),
    ("rotation_period", "period"): ("the rotation period [d]", _days),
    ("rotation_period", "period_err"): ("the rotation period's error [d]", _days),
    ("rotation_period", "bp_rp_dered"): ("the dereddened BP-RP colour [mag]", _not_mag),
}


def check_mapped(present: set[str], used: set[str], ignore: dict[str, str], file: Path | str,
                 mapping_path: Path) -> None:
    """Fail, naming the file and the columns, unless the file's ``present`` columns are exactly what the
    mapping at ``mapping_path`` uses or ignores (``"*"`` under ``[ignore]`` covers every column not named):
    the check of catalogue mappings and per-object ones alike."""
    missing = sorted(used - present)
    if missing:
        raise MappingError(f"{file}: mapping {mapping_path.name} uses columns not in the file: {', '.join(missing)}")
    unmapped = sorted(present - used - set(ignore))
    if unmapped and "*" not in ignore:
        raise MappingError(f"{file}: columns {', '.join(unmapped)} are neither mapped nor listed under [ignore] "
                           f"in {mapping_path.name}")


def resolve_file(mapping_path: Path, file: str, *, pattern: bool = False) -> Path:
    """Where a mapping's ``file`` is, as an absolute path (a job's path must mean the same to a worker in
    any folder, and a release's source_uri later): an absolute path as it is; a relative one beside the
    mapping (your mapping beside your file, or dropped with it in a scheduler's folder), else in the
    data folder. The scheduler's folders and ``healcat ingest`` find the same file so (the data folder
    first made the two load different files under one release name). ``pattern``: ``file`` is a glob,
    there where it matches a file. MissingInputError, naming every place looked in, where it is in none."""
    path = Path(file)
    places = [path] if path.is_absolute() else [mapping_path.parent / path, data_dir() / path]
    for place in places:
        if glob.glob(str(place)) if pattern else place.exists():
            return place.absolute()
    where = "" if path.is_absolute() else (f" beside the mapping ({mapping_path.parent.absolute()}) or in the data "
                                           f"folder ({data_dir()})")
    raise MissingInputError(f"{file}: {'no file matches' if pattern else 'no such file'}{where}")


def shipped_mapping_of(release: str) -> str | None:
    """The name of the shipped mapping (``ingest/mappings/NAME.toml``) that loads ``release``
    ('survey/version'), for an error to say what to ingest; None if none does."""
    for path in sorted(MAPPINGS_DIR.glob("*.toml")):
        try:
            raw = tomllib.loads(path.read_text())
            if f"{raw['survey']['name']}/{raw['release']['version']}" == release:
                return path.stem
        except (tomllib.TOMLDecodeError, KeyError, TypeError):
            continue
    return None


def load_mapping(path: Path | str, version: str | None = None,
                 date: str | dt.date | None = None) -> Mapping | PerObjectMapping:
    """Read and check a mapping file; a bare name means ``ingest/mappings/NAME.toml``. ``version`` and
    ``date`` (ISO, 2017-07-31): the release's, instead of the mapping's ``[release] version`` and
    ``date`` (a new release of the survey through the same mapping, e.g. a manifest's entry; they are
    part of the mapping's JSON, so of the release checksum). The date places the release among the
    survey's (the newest is current): without one, a re-release takes the mapping's."""
    path = Path(path)
    if not path.suffix:
        path = MAPPINGS_DIR / f"{path}.toml"
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise MappingError(f"no mapping file {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{path}: not valid TOML: {exc}") from None
    try:
        if version is not None:
            if not isinstance(version, str) or not version.strip() or "/" in version:
                raise MappingError(f"{path}: a release version given instead of the mapping's must be a non-empty "
                                   f"text without '/' (the release is named survey/version), got {version!r}")
            raw["release"] = {**raw.get("release", {}), "version": version}
        if date is not None:
            raw["release"] = {**raw.get("release", {}), "date": release_date(date, path)}
        if PER_OBJECT_SECTIONS & raw.keys():  # spectra and light curves: files per object
            from ingest.perobject_mapping import parse_per_object

            mapping = parse_per_object(path, raw)
            files = mapping.patterns
        else:
            mapping = parse_mapping(path, raw)
            files = (mapping.file,)
    except (ValueError, TypeError, AttributeError) as exc:  # a value of a wrong kind that no check names
        raise MappingError(f"{path}: {exc}") from None
    for file in files:
        check_confined(path, file)
    return mapping


def release_date(value: str | dt.date, where: Path | str) -> dt.date:
    """A release date given instead of a mapping's: a date, or its ISO text (2017-07-31)."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise MappingError(f"{where}: a release date given instead of the mapping's must be a date such as "
                           f"2017-07-31, got {value!r}") from None


def check_confined(path: Path, file: str) -> None:
    """A mapping's file (or glob) must lie in the data folder or the mapping's own folder (a drop
    folder): whoever may drop a mapping could otherwise have the workers read any file they can (and
    what they found, in healcat.job and the quarantine, is readable by every reader). A relative path
    must not climb out of the folder it is read from (``..``); an absolute one must lie in either
    folder. The check is on the path's text; where a link leads is checked when the file is opened
    (:func:`check_real_path`)."""
    name = Path(os.path.normpath(file))
    if name.is_absolute():
        folders = [Path(os.path.normpath(os.path.abspath(f))) for f in (data_dir(), path.parent)]
        inside = any(name.is_relative_to(folder) for folder in folders)
    else:
        inside = name.parts[:1] != ("..",)
    if not inside:
        raise MappingError(f"{path}: file {file!r} lies outside the data folder ({data_dir()}) and the mapping's "
                           f"own folder ({path.parent}); put the file in either")


def check_real_path(file: Path, mapping_path: Path, *roots: Path, opened: Path | None = None) -> None:
    """Fail unless the real path of ``file`` (every link resolved) lies in the data folder, the
    mapping's own folder or ``roots`` (each resolved too: a data folder that is itself a link is fine,
    as is a link from one place inside them to another): a link in the data folder to /etc or another
    user's files would have the workers read it, and the quarantine show it. The error names the link
    and its target. ``opened``: the real path of the descriptor ``file`` was opened as (:func:`opened_path`),
    checked instead, as a link swapped in after a check of the path would be read."""
    allowed = [Path(os.path.realpath(folder)) for folder in (data_dir(), mapping_path.parent, *roots)]
    real = Path(os.path.realpath(file)) if opened is None else opened
    if any(real.is_relative_to(folder) for folder in allowed):
        return
    where = f"the data folder ({data_dir()}), the mapping's own folder ({mapping_path.parent})"
    where += "".join(f", {root}" for root in roots)
    if opened is not None and opened != Path(os.path.realpath(file)):  # the link was changed back meanwhile
        raise MappingError(f"{mapping_path}: file {file} was opened as {opened}, which lies outside {where} (a link "
                           f"changed while it was opened?): links are followed only within them")
    absolute = Path(os.path.abspath(file))
    link = next((p for p in (absolute, *absolute.parents) if p.is_symlink()), None)  # the deepest
    if link is None:
        raise MappingError(f"{mapping_path}: file {file} lies outside {where}; put it in one of them")
    raise MappingError(f"{mapping_path}: file {file} is read through the link {link} -> {os.readlink(link)}, whose "
                       f"real path {real} lies outside {where}: links are followed only within them")


def opened_path(fh, file: Path) -> Path:
    """The real path of the open file ``fh`` (Linux: its descriptor's /proc link), else ``file``'s as it is now."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{fh.fileno()}"))
    except OSError:  # no /proc (macOS, BSD): the path's, which a link swapped in after the open escapes
        return Path(os.path.realpath(file))


def number(where: str, value: Any) -> float:
    """A number a mapping gives, as a float; else an error naming the file, section and key (``where``,
    e.g. ``b.toml: [photometry] missing_above``) and the value: float()'s own named none of them."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise MappingError(f"{where}: {value!r} is not a number") from None


def numbers(where: str, values: Any) -> tuple[float, ...]:
    """A list of numbers a mapping gives (sentinels), each as :func:`number`."""
    if not isinstance(values, list):
        raise MappingError(f"{where} must be a list of numbers such as [-99.0], got {values!r}")
    return tuple(number(where, value) for value in values)


def check_keys(path: Path, section: str | None, spec: dict[str, Any], known: set[str]) -> None:
    """Fail, naming the file and the section, on a key the mapping does not know."""
    if not isinstance(spec, dict):
        raise MappingError(f"{path}: [{section}] must be a table of keys, got {spec!r}")
    unknown = sorted(set(spec) - known)
    if unknown:
        where = f"[{section}]" if section else "the top level"
        raise MappingError(f"{path}: {where} knows {', '.join(sorted(known))}; not {', '.join(unknown)}")


def parse_mapping(path: Path, raw: dict[str, Any]) -> Mapping:
    """Check a catalogue mapping's sections (read from ``path``) and build the :class:`Mapping`."""

    def section(name: str, required: bool = True) -> dict[str, Any]:
        if name not in raw and required:
            raise MappingError(f"{path}: missing [{name}]")
        return raw.get(name, {})

    check_keys(path, None, raw, KEYS[None])
    survey, release, source = section("survey"), section("release"), section("source")
    phot = section("photometry", required=False)
    for name, spec in (("survey", survey), ("release", release), ("source", source), ("photometry", phot)):
        check_keys(path, name, spec, KEYS[name])
    for key, sec, sec_name in (("name", survey, "survey"), ("version", release, "release"),
                               ("file", release, "release"), ("format", release, "release"),
                               ("object_id", source, "source")):
        if not isinstance(sec.get(key), str):
            raise MappingError(f"{path}: [{sec_name}] needs a string {key!r}")
    check_template(source["object_id"], f"{path}: [source] object_id")
    if ("ra" in source) != ("dec" in source):
        raise MappingError(f"{path}: [source] maps one of ra/dec without the other")
    ra = Column.parse(source["ra"], f"{path} [source] ra") if "ra" in source else None
    dec = Column.parse(source["dec"], f"{path} [source] dec") if "dec" in source else None
    for col in (ra, dec):
        if col and (col.unit or "deg") not in POSITION_UNITS:
            raise MappingError(f"{path}: position unit {col.unit!r} is not one of {', '.join(POSITION_UNITS)}")
    if phot and phot.get("system") not in MAG_SYSTEMS:
        raise MappingError(f"{path}: [photometry] system must be one of {MAG_SYSTEMS}, got {phot.get('system')!r}")
    if phot and phot.get("system") != "AB" and any(b.flux for b in _bands(phot, path).values()):
        raise MappingError(f"{path}: [photometry] fluxes give AB magnitudes; system must be \"AB\"")
    date = release.get("date")
    if date is not None and not isinstance(date, dt.date):
        raise MappingError(f"{path}: [release] date must be a TOML date such as 2017-07-31, got {date!r}")
    sections, sentinels, constants = {}, {}, {}
    for name, keys in SECTIONS.items():
        spec = section(name, required=False)
        check_keys(path, name, spec, set(keys) | set(CONSTANTS.get(name, ())) | {"sentinels"})
        spec = dict(spec)
        if not spec:
            continue
        sentinels[name] = numbers(f"{path}: [{name}] sentinels", spec.pop("sentinels", []))
        constants[name] = {k: str(spec.pop(k)) for k in CONSTANTS.get(name, ()) if k in spec}
        if name in REQUIRED and REQUIRED[name] not in spec:
            raise MappingError(f"{path}: [{name}] needs {REQUIRED[name]!r}")
        sections[name] = spec
    if "stellar_mass" in sections and "code" not in constants["stellar_mass"]:
        raise MappingError(f"{path}: [stellar_mass] needs code = \"...\" (the SED-fitting code that gave the masses)")
    xids = dict(section("xid", required=False))
    join = source.get("join")
    on_missing = source.get("on_missing", "create")
    if join is not None and join not in xids:
        raise MappingError(f"{path}: [source] join = {join!r} needs that catalog's id column under [xid]")
    if on_missing not in ON_MISSING:
        raise MappingError(f"{path}: [source] on_missing must be one of {ON_MISSING}, got {on_missing!r}")
    proper_motion = ProperMotion.parse(source, f"{path} [source]")
    if proper_motion is not None and ra is None:
        raise MappingError(f"{path}: [source] proper motions need ra/dec")
    if join is not None and ra is not None:
        raise MappingError(f"{path}: [source] join is for rows with no position; this mapping has ra/dec")
    options = {k: release[k] for k in READ_OPTIONS if k in release}
    for key, value in options.items():
        kind, what = READ_OPTIONS[key]
        if isinstance(value, bool) or not isinstance(value, kind) or (key == "chunk_rows" and value < 1):
            raise MappingError(f"{path}: [release] {key} must be {what}, got {value!r}")
    # Ids are read as text so no digit is lost; template fields with a format spec ({plate:04d}) as numbers.
    text_columns = {name for _, name, spec, _ in string.Formatter().parse(source["object_id"]) if name and not spec}
    text_columns |= set(xids.values())
    null_values = release.get("null_values", [])
    if not isinstance(null_values, list) or not all(isinstance(v, str) and v.strip() for v in null_values):
        raise MappingError(f"{path}: [release] null_values must be a list of texts that mean missing "
                           f"(such as [\"NULL\", \"N/A\"]), got {null_values!r}")
    max_rows = release.get("max_rows")
    if max_rows is not None and (not isinstance(max_rows, int) or max_rows < 1):
        raise MappingError(f"{path}: [release] max_rows must be a positive integer, got {max_rows!r}")
    bands = _bands(phot, path)
    new_bands = phot.get("new_bands", [])
    if not isinstance(new_bands, list) or not all(isinstance(b, str) for b in new_bands):
        raise MappingError(f"{path}: [photometry] new_bands must be a list of band names, got {new_bands!r}")
    if unused := sorted(set(new_bands) - set(bands)):
        raise MappingError(f"{path}: [photometry] new_bands lists {', '.join(unused)}, which bands does not map")
    max_rejected = number(f"{path}: [release] max_rejected_fraction",
                          release.get("max_rejected_fraction", MAX_REJECTED_FRACTION))
    if not 0 <= max_rejected <= 1:
        raise MappingError(f"{path}: [release] max_rejected_fraction must be in [0, 1], got {max_rejected!r}")
    return Mapping(
        path=path,
        survey={k: str(v) for k, v in survey.items()},
        version=release["version"],
        release_date=date,
        file=release["file"],
        format=release["format"],
        read_options=ReadOptions(text_columns=frozenset(text_columns), null_values=tuple(null_values), **options),
        max_rows=max_rows,
        max_rejected_fraction=max_rejected,
        object_id=source["object_id"],
        ra=ra,
        dec=dec,
        proper_motion=proper_motion,
        attrs=tuple(source.get("attrs", ())),
        join=join,
        on_missing=on_missing,
        mag_system=phot.get("system"),
        sentinels=numbers(f"{path}: [photometry] sentinels", phot.get("sentinels", [])),
        missing_above=number(f"{path}: [photometry] missing_above", phot.get("missing_above", math.inf)),
        error_sentinels=numbers(f"{path}: [photometry] error_sentinels", phot.get("error_sentinels", [])),
        max_mag_err=number(f"{path}: [photometry] max_mag_err", phot.get("max_mag_err", MAX_MAG_ERR)),
        bands=bands,
        new_bands=new_bands,
        sections=sections,
        section_sentinels=sentinels,
        constants=constants,
        xids=xids,
        ignore=dict(section("ignore", required=False)),
        raw=raw,
    )


def _bands(phot: dict[str, Any], path: Path) -> dict[str, Band]:
    return {b: Band.parse(b, s, f"{path} [photometry]") for b, s in phot.get("bands", {}).items()}


@dataclass
class Photometry:
    """One band of a chunk: magnitudes in the mapping's system and fluxes [uJy]; NaN where missing."""

    mag: np.ndarray
    mag_err: np.ndarray
    flux_ujy: np.ndarray
    flux_err_ujy: np.ndarray
    flux_in_file: np.ndarray | None = None  # a flux band's values as the file has them (its unit), for reasons
    flux_err_in_file: np.ndarray | None = None


@dataclass
class MappedChunk:
    """A chunk of input rows in healcat's columns and units, before validation."""

    row_number: np.ndarray  # 1-based data row in the file
    object_id: np.ndarray
    ra_deg: np.ndarray | None
    dec_deg: np.ndarray | None
    proper_motion: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # pmra, pmdec [mas/yr], ref_epoch [Julian yr]
    attrs: list[dict[str, Any]]
    phot: dict[str, Photometry]  # band -> its values
    sections: dict[str, dict[str, np.ndarray]]  # spec_redshift / rotation_period / stellar_mass key -> values
    xids: dict[str, np.ndarray]  # catalog -> identifier text, None where absent
    problems: Problems  # cells that could not be read
    raw: Table  # the input rows, for quarantine
    #: magnitude error column -> why not stored -> rows whose error is NULL with the magnitude kept (see _mag_errors)
    errors_not_stored: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    @property
    def mags(self) -> dict[str, np.ndarray]:
        return {band: p.mag for band, p in self.phot.items()}


def apply(mapping: Mapping, table: Table, first_row: int = 1) -> MappedChunk:
    """Map an input Table (a chunk starting at data row ``first_row``) to healcat's columns."""
    n = len(table)
    problems: Problems = {}
    row_number = np.arange(first_row, first_row + n)
    _repeated_header(table, problems)
    whole = _single_field(mapping.object_id)  # "{id}": the column itself, without a per-row template
    names = sorted((set(mapping.object_id_fields) - {ROW_FIELD, whole}) | set(mapping.attrs))  # per-row work
    rows = [dict(zip(names, r)) for r in table.iterrows(*names)] if n and names else [{} for _ in range(n)]
    if whole == ROW_FIELD:
        object_id = row_number.astype(str).astype(object)
    elif whole is not None:
        object_id = cells.id_texts(table[whole], problems, whole)
    else:
        # A field with no format spec is exact text, read as "{id}" alone is ('1.5e3' is 1500, '1.2E+18' a problem)
        exact = {f: cells.id_texts(table[f], problems, f) for f in mapping.read_options.text_columns
                 if f in mapping.object_id_fields and f != ROW_FIELD}
        object_id = np.full(n, None, dtype=object)
        for i, row in enumerate(rows):
            if any(texts[i] is None for texts in exact.values()):
                continue  # its problem is recorded
            fields = {**row, ROW_FIELD: int(row_number[i]), **{f: texts[i] for f, texts in exact.items()}}
            object_id[i], column, reason = cells.format_id(mapping.object_id, fields)
            if reason:
                problems.setdefault(i, (column, reason))
    for col in sorted(mapping.used_columns()):
        cells.nul_problems(table[col], problems, col)
    # An attr column the reader gave as text (or bytes), e.g. one that a stray word or a 'nan' cell left
    # text in this chunk (text formats type each chunk's columns on their own): its numbers are numbers
    # and its NaN and infinities null, as in the chunks where every cell is a number (cells.attr_value).
    numbers_as_text = {k for k in mapping.attrs if table[k].dtype.kind in "USO"} - mapping.read_options.text_columns
    not_stored: dict[str, dict[str, np.ndarray]] = {}
    sections = {}
    for name, spec in mapping.sections.items():
        kinds = SECTIONS[name]
        sections[name] = {
            key: (cells.texts(table[col]) if kinds[key] == "text"
                  else cells.floats(table[col], problems, col, mapping.section_sentinels[name]))
            for key, col in spec.items()
        }
    return MappedChunk(
        row_number=row_number,
        object_id=object_id,
        ra_deg=cells.degrees(table[mapping.ra.name], POSITION_UNITS[mapping.ra.unit or "deg"], problems,
                             mapping.ra.name, bare_sexagesimal=mapping.ra.unit not in (None, "deg")) if mapping.ra else None,
        dec_deg=cells.degrees(table[mapping.dec.name], POSITION_UNITS[mapping.dec.unit or "deg"], problems,
                              mapping.dec.name) if mapping.dec else None,
        proper_motion=mapping.proper_motion.values(table, problems) if mapping.proper_motion else None,
        attrs=[{k: cells.attr_value(r[k], k in numbers_as_text) for k in mapping.attrs} for r in rows],
        phot={band: _photometry(mapping, spec, table, problems, not_stored) for band, spec in mapping.bands.items()},
        sections=sections,
        xids={catalog: cells.identifiers(table[col], problems, col, integer=catalog in INTEGER_XIDS)
              for catalog, col in mapping.xids.items()},
        problems=problems,
        raw=table,
        errors_not_stored=not_stored,
    )


def _single_field(template: str) -> str | None:
    """The field name when the template is one field with no format spec and no text around it."""
    parts = list(string.Formatter().parse(template))
    if len(parts) == 1 and parts[0][0] == "" and parts[0][1] and not parts[0][2] and not parts[0][3]:
        return parts[0][1]
    return None


def _repeated_header(table: Table, problems: Problems) -> None:
    """A row whose every cell is its column's name (a header repeated mid-file, as a file concatenated from
    pieces has) is a problem as that, not as its first cell that is no number."""
    names = table.colnames
    if not len(table) or any(table[c].dtype.kind not in "UO" for c in names):  # a number column holds no name
        return
    same = np.logical_and.reduce([np.char.strip(np.ma.filled(table[c], "").astype(str)) == c for c in names])
    for i in np.flatnonzero(same):
        problems[int(i)] = (names[0], f"the row repeats the header ({','.join(names)[:120]}): a second header "
                                      "mid-file, not data")


def _photometry(mapping: Mapping, band: Band, table: Table, problems: Problems,
                not_stored: dict[str, dict[str, np.ndarray]]) -> Photometry:
    """A band's magnitudes and fluxes: each derived from the other where only one is given (fluxes
    only for AB magnitudes); non-positive fluxes, and those fainter than :data:`FLUX_MAG_FAINTEST`,
    keep their flux and have no magnitude. A negative
    error beside a measurement that is no listed sentinel is a problem for its row (a sentinel the
    mapping does not list, or a sign error: never silently 'no error'). A magnitude error that
    measures nothing (:func:`_mag_errors`) is NULL, its magnitude kept, and recorded in ``not_stored``."""
    n = len(table)

    def column(name: str | None, error: bool = False) -> np.ndarray:
        if name is None:
            return np.full(n, np.nan)
        return cells.floats(table[name], problems, name, mapping.sentinels + (mapping.error_sentinels if error else ()))

    def limits(numbers, name: str | None) -> np.ndarray:  # as the column's floats hold them (a float32's 99.99)
        return cells.in_precision(numbers, table[name]) if name is not None else np.asarray(numbers, dtype=np.float64)

    def negative_errors(values: np.ndarray, measured: np.ndarray, name: str | None) -> None:
        for i in np.flatnonzero(measured & (values < 0)):
            problems.setdefault(int(i), (name, f"{name} {table[name][i]} is a negative error (a sentinel? list it "
                                              "under [photometry] sentinels)"))

    nan = np.full(n, np.nan)
    # over: a magnitude far too bright (an unlisted sentinel, -9999) gives an infinite flux; validation
    # quarantines its row (by the magnitude, or the flux past a float4)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if band.mag is not None:
            mag, mag_err = column(band.mag), column(band.mag_err)
            # +inf is no flag: validation rejects it
            mag[np.isfinite(mag) & (mag >= limits([mapping.missing_above], band.mag)[0])] = np.nan
            declared = np.isin(mag_err, limits(mapping.error_sentinels, band.mag_err))  # -99: 'no data', no sign error
            negative_errors(mag_err, np.isfinite(mag) & ~declared & ~cells.sentinel_like(mag_err), band.mag_err)
            if band.mag_err is not None:
                unmeasured = _mag_errors(mapping, mag_err, declared, np.isfinite(mag),
                                         limits([mapping.max_mag_err], band.mag_err)[0])
                if unmeasured:
                    not_stored[band.mag_err] = unmeasured
                mag_err[np.logical_or.reduce([declared, *unmeasured.values()])] = np.nan
            mag_err[~np.isfinite(mag) | (mag_err < 0)] = np.nan
            if mapping.mag_system != "AB":
                return Photometry(mag, mag_err, nan, nan.copy())
            flux = AB_ZERO_POINT_UJY * 10 ** (-0.4 * mag)
            return Photometry(mag, mag_err, flux, flux * mag_err * np.log(10) / 2.5)
        flux_in_file = column(band.flux)
        measured = np.isfinite(flux_in_file)
        if band.flux_ivar is None:
            flux_err_in_file = column(band.flux_err, error=True)
            negative_errors(flux_err_in_file, measured, band.flux_err)
        else:
            ivar = column(band.flux_ivar, error=True)
            sentinel = cells.sentinel_like(ivar)
            for i in np.flatnonzero(measured & ((ivar < 0) | sentinel)):
                why = "a common 'no data' value (an unlisted" if sentinel[i] else "a negative inverse variance (a"
                problems.setdefault(int(i), (band.flux_ivar, f"{band.flux_ivar} {table[band.flux_ivar][i]} is {why} "
                                                             "sentinel? list it under [photometry] sentinels)"))
            # 0: no error measured; and no error without its flux (nor a problem of a band not measured)
            flux_err_in_file = np.where(measured & (ivar > 0), 1 / np.sqrt(ivar), np.nan)
        if band.transmission is not None:
            transmission = column(band.transmission)
            known = (transmission > 0) & (transmission <= 1)
            for i in np.flatnonzero(measured & np.isfinite(flux_err_in_file) & ~known):  # only where it is used
                value = table[band.transmission][i]
                problems.setdefault(int(i), (band.transmission, f"{band.transmission} {value} is not a transmission "
                                             "in (0, 1]" if np.isfinite(transmission[i]) else
                                             f"{band.transmission} is missing: the error of the de-reddened "
                                             f"{band.flux} needs it"))
            flux_err_in_file = np.where(known, flux_err_in_file / transmission, np.nan)
        flux, flux_err = flux_in_file * band.to_ujy, flux_err_in_file * band.to_ujy
        flux_err[flux_err < 0] = np.nan
        mag = np.where(flux > 0, -2.5 * np.log10(flux / AB_ZERO_POINT_UJY), np.nan)
        detected = flux > 0
        detected[detected] = mag[detected] <= FLUX_MAG_FAINTEST  # fainter: noise, no magnitude (as flux <= 0)
        mag = np.where(detected, mag, np.nan)
        mag_err = np.where(detected, 2.5 / np.log(10) * flux_err / flux, np.nan)
    return Photometry(mag, mag_err, flux, flux_err, flux_in_file, flux_err_in_file)


def _mag_errors(mapping: Mapping, err: np.ndarray, declared: np.ndarray, measured: np.ndarray,
                top: float) -> dict[str, np.ndarray]:
    """Magnitude errors beside a magnitude that measure nothing, by why: a declared error sentinel, exactly 0
    (bright stars' errors rounded to 0.00), a common 'no data' value, or above ``max_mag_err`` (faint forced
    photometry publishes errors of hundreds of mag; ``top``, as the column's floats hold it). Each is NULL with its
    magnitude kept, never the row quarantined; a negative error is a problem of its own (``negative_errors``)."""
    with np.errstate(invalid="ignore"):
        reasons = {"a declared error sentinel": declared,
                   "0 (rounded, or not measured)": ~declared & (err == 0),
                   "a common 'no data' value": ~declared & cells.sentinel_like(err),
                   f"above max_mag_err ({mapping.max_mag_err:g} mag)": ~declared & ~cells.sentinel_like(err) & (err > top)}
    return {why: measured & mask for why, mask in reasons.items() if (measured & mask).any()}
