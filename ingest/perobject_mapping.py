"""Mappings of per-object files: spectra and light curves (sections [series], [catalog],
[light_curve], [spectrum], [label]).

A per-object mapping is a catalogue mapping (``[survey]``, ``[release]``, ``[source]``,
``[spec_redshift]``, ``[ignore]``, read by :func:`ingest.mapping.parse_mapping`) plus:

- ``[series]``: the files holding the per-point arrays (``files``: paths or globs in the data
  folder, else in the mapping's own folder, as a catalogue mapping's ``file``) and the series
  reader that reads them (``format``, see ``ingest/readers/series.py``);
- ``[catalog]`` (light curves): one row per object (``files``, an astropy ``format``, the ``key``
  column that names the object's series; ``join`` adds columns of further files by key);
  ``[source]`` then maps catalogue columns, and ``{key}`` in ``object_id`` is that key. Without
  it (spectra), ``[source]`` maps the scalars each spectrum file carries (SDSS SPECOBJ);
- ``[light_curve]`` or ``[spectrum]``: which arrays are times, magnitudes, wavelengths, fluxes;
- ``[label]``: a catalogue column holding class labels of a named taxonomy.

Every column of every file is mapped or listed under ``[ignore]`` with a reason (``"*"`` ignores
the rest of a file's columns, e.g. the 126 of an SDSS SPECOBJ row).
"""

from __future__ import annotations

import datetime as dt
import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import astropy.units as u

from catalog.errors import MappingError
from ingest.mapping import (MAG_SYSTEMS, Mapping, check_mapped, check_real_path, check_template, number, numbers,
                            parse_mapping, resolve_file, template_fields)

#: [source] keys of per-object mappings beyond the catalogue ones.
SOURCE_EXTRAS = ("match_survey", "group_within_arcsec")
#: Time scales a light curve's times may be in (astropy.time's), or "unknown" where the survey does not say.
TIME_SCALES = ("utc", "tai", "tt", "tdb", "tcb", "tcg", "ut1", "unknown")


def matching(mapping_path: Path, pattern: str) -> list[Path]:
    """The files a mapping's glob matches, where a catalogue mapping's file would be found
    (:func:`ingest.mapping.resolve_file`: the data folder, else the mapping's own folder)."""
    return sorted(Path(p) for p in glob.glob(str(resolve_file(mapping_path, pattern, pattern=True))))


@dataclass(frozen=True)
class Files:
    """Input files (paths or globs relative to the data folder, else to the mapping's own folder) read
    by one reader."""

    patterns: tuple[str, ...]
    format: str
    mapping_path: Path  # the mapping naming them: its folder is searched too
    options: dict[str, Any] = field(default_factory=dict)

    def paths(self) -> list[Path]:
        return [path for pattern in self.patterns for path in matching(self.mapping_path, pattern)]


@dataclass(frozen=True)
class InputFiles:
    """The files a per-object release reads, found once (globs matched when the load starts): what is
    hashed is what is read, a file added later is not."""

    catalog: list[Path]
    joins: list[list[Path]]  # per [catalog] join entry, the files its glob matches
    series: list[Path]

    def all(self) -> list[Path]:
        return self.catalog + [p for paths in self.joins for p in paths] + self.series


@dataclass(frozen=True)
class Band:
    """One band of a light curve: which arrays hold its times, magnitudes and errors."""

    name: str
    time: str
    mag: str
    mag_err: str
    select: str | None = None  # the value of [light_curve] band_column that marks this band's points


@dataclass(frozen=True)
class LightCurveSpec:
    bands: dict[str, Band]
    mag_system: str
    time_scale: str
    time_offset_day: float  # added to the file's times to give MJD
    time_origin: str  # stored in light_curve.time_origin
    band_column: str | None
    sentinels: tuple[float, ...]

    def columns(self) -> set[str]:
        cols = {c for b in self.bands.values() for c in (b.time, b.mag, b.mag_err)}
        return cols | ({self.band_column} if self.band_column else set())


@dataclass(frozen=True)
class SpectrumSpec:
    name: str  # template over the spectrum's scalars, e.g. spec-{PLATE:04d}-{MJD:05d}-{FIBERID:04d}
    wavelength: str
    wavelength_log10: bool  # the column holds log10(wavelength)
    wavelength_unit: str
    vacuum: bool | None
    flux: str
    flux_unit: str
    ivar: str
    ivar_from: str  # "ivar" (stored as is) or "sigma" (ivar = 1/sigma**2, 0 where sigma <= 0)
    mask: str | None
    mjd: str | None

    def columns(self) -> set[str]:
        return {self.wavelength, self.flux, self.ivar} | ({self.mask} if self.mask else set())


@dataclass(frozen=True)
class LabelSpec:
    taxonomy: str
    column: str
    split_by_file: dict[str, str]  # catalogue file name -> split (train/test)


@dataclass(frozen=True)
class PerObjectMapping:
    path: Path
    source: Mapping  # [survey], [release], [source], [spec_redshift], [ignore] as a catalogue mapping
    series: Files
    catalog: Files | None
    light_curve: LightCurveSpec | None
    spectrum: SpectrumSpec | None
    label: LabelSpec | None
    match_surveys: tuple[str, ...]  # existing sources of these surveys are joined by object id
    group_within_arcsec: float | None
    sexagesimal: dict[str, tuple[str, str, str]]  # derived column "d:m:s" -> its three input columns
    raw: dict[str, Any] = field(repr=False)

    # The names load.load_release() and the release row need, as for a catalogue mapping.
    @property
    def release_name(self) -> str:
        return self.source.release_name

    @property
    def survey(self) -> dict[str, str]:
        return self.source.survey

    @property
    def version(self) -> str:
        return self.source.version

    @property
    def release_date(self) -> dt.date | None:
        return self.source.release_date

    @property
    def ignore(self) -> dict[str, str]:
        return self.source.ignore

    @property
    def source_uri(self) -> str:
        """The release's files as its globs name them (``release.source_uri``)."""
        return "; ".join((self.catalog.patterns if self.catalog else ()) + self.series.patterns)

    @property
    def patterns(self) -> tuple[str, ...]:
        """Every file or glob the mapping names: [catalog], its join entries, [series]."""
        joins = tuple(extra["files"] for extra in self.catalog.options.get("join", [])) if self.catalog else ()
        return (self.catalog.patterns if self.catalog else ()) + joins + self.series.patterns

    def input_files(self) -> InputFiles:
        """The files the globs match now, each really in the data folder or the mapping's own folder
        (``check_real_path``: a link leading elsewhere is refused, naming it)."""
        joins = [matching(self.path, extra["files"]) for extra in self.catalog.options.get("join", [])] \
            if self.catalog else []
        inputs = InputFiles(self.catalog.paths() if self.catalog else [], joins, self.series.paths())
        for path in inputs.all():
            check_real_path(path, self.path)
        return inputs

    def input_paths(self) -> list[Path]:
        return self.input_files().all()

    def check_columns(self, present: set[str], used: set[str], file: Path | str) -> None:
        """Fail, naming the file and the columns, unless ``present`` is what is used or ignored
        (:func:`ingest.mapping.check_mapped`)."""
        check_mapped(present, used, self.ignore, file, self.path)

    def scalar_columns(self) -> set[str]:
        """Columns of the per-object scalars (catalogue row or spectrum header) the mapping reads."""
        cols = self.source.used_columns() - {"key"} - set(self.sexagesimal)
        cols |= {c for parts in self.sexagesimal.values() for c in parts}
        if self.label:
            cols.add(self.label.column)
        if self.spectrum:
            cols |= set(template_fields(self.spectrum.name))
            cols |= {self.spectrum.mjd} if self.spectrum.mjd else set()
        return cols


def _files(raw: dict[str, Any], name: str, path: Path) -> Files | None:
    sec = raw.get(name)
    if sec is None:
        return None
    files = sec.get("files")
    if isinstance(files, str):
        files = [files]
    if not (isinstance(files, list) and files and all(isinstance(f, str) for f in files)):
        raise MappingError(f"{path}: [{name}] needs files = a path or a list of paths (globs allowed)")
    if not isinstance(sec.get("format"), str):
        raise MappingError(f"{path}: [{name}] needs a string format")
    return Files(tuple(files), sec["format"], path, {k: v for k, v in sec.items() if k not in ("files", "format")})


def _text(sec: dict[str, Any], key: str, where: str, default: Any = ...) -> Any:
    value = sec.get(key, default)
    if value is ...:
        raise MappingError(f"{where} needs {key!r}")
    return value


def _light_curve(sec: dict[str, Any], path: Path) -> LightCurveSpec:
    where = f"{path}: [light_curve]"
    if sec.get("mag_system") not in MAG_SYSTEMS:
        raise MappingError(f"{where} mag_system must be one of {MAG_SYSTEMS}, got {sec.get('mag_system')!r}")
    bands = {}
    for name, spec in _text(sec, "bands", where).items():
        if not isinstance(spec, dict) or not {"time", "mag", "mag_err"} <= spec.keys():
            raise MappingError(f"{where} band {name!r} needs time, mag and mag_err columns")
        bands[name] = Band(name, spec["time"], spec["mag"], spec["mag_err"], spec.get("select"))
    band_column = sec.get("band_column")
    if bool(band_column) != any(b.select is not None for b in bands.values()):
        raise MappingError(f"{where} band_column and the bands' select go together")
    time_scale = _text(sec, "time_scale", where)
    if time_scale not in TIME_SCALES:
        raise MappingError(f"{where} time_scale must be one of {', '.join(TIME_SCALES)} (astropy's names), "
                           f"got {time_scale!r}")
    return LightCurveSpec(
        bands=bands, mag_system=sec["mag_system"], time_scale=time_scale,
        time_offset_day=number(f"{where} time_offset_day", sec.get("time_offset_day", 0.0)),
        time_origin=_text(sec, "time_origin", where), band_column=band_column,
        sentinels=numbers(f"{where} sentinels", sec.get("sentinels", [])),
    )


def _spectrum(sec: dict[str, Any], path: Path) -> SpectrumSpec:
    where = f"{path}: [spectrum]"
    wave, flux, ivar = (_text(sec, k, where) for k in ("wavelength", "flux", "ivar"))
    for key, spec in (("wavelength", wave), ("flux", flux)):
        if not isinstance(spec, dict) or not {"column", "unit"} <= spec.keys():
            raise MappingError(f"{where} {key} needs {{ column = ..., unit = ... }}")
    for key, spec in (("wavelength", wave), ("flux", flux)):
        try:
            unit = u.Unit(spec["unit"])
        except (ValueError, TypeError) as exc:
            raise MappingError(f"{where} {key} unit {spec['unit']!r} is not an astropy unit: {exc}") from exc
        if key == "wavelength" and not unit.is_equivalent(u.AA):
            raise MappingError(f"{where} wavelength unit {spec['unit']!r} is not a length")
    ivar = ivar if isinstance(ivar, dict) else {"column": ivar}
    ivar_from = ivar.get("from", "ivar")
    if ivar_from not in ("ivar", "sigma"):
        raise MappingError(f"{where} ivar from must be 'ivar' or 'sigma', got {ivar_from!r}")
    vacuum = sec.get("vacuum")
    if vacuum not in (True, False, None):
        raise MappingError(f"{where} vacuum must be true or false (leave it out if unknown)")
    check_template(name := _text(sec, "name", where), f"{where} name")
    return SpectrumSpec(
        name=name, wavelength=wave["column"], wavelength_log10=bool(wave.get("log10", False)),
        wavelength_unit=wave["unit"], vacuum=vacuum, flux=flux["column"], flux_unit=flux["unit"],
        ivar=ivar["column"], ivar_from=ivar_from, mask=sec.get("mask"), mjd=sec.get("mjd"),
    )


def parse_per_object(path: Path, raw: dict[str, Any]) -> PerObjectMapping:
    """Check a per-object mapping (read from ``path``) and build it."""
    series = _files(raw, "series", path)
    if series is None:
        raise MappingError(f"{path}: a mapping of spectra or light curves needs [series]")
    catalog = _files(raw, "catalog", path)
    source = dict(raw.get("source", {}))
    extras = {k: source.pop(k) for k in SOURCE_EXTRAS if k in source}
    sexagesimal = {}
    for axis in ("ra", "dec"):  # { columns = [d, m, s], unit = ... }: an angle in three numeric columns
        spec = source.get(axis)
        if isinstance(spec, dict) and "columns" in spec:
            cols = spec["columns"]
            if not (isinstance(cols, list) and len(cols) == 3 and all(isinstance(c, str) for c in cols)):
                raise MappingError(f"{path}: [source] {axis} columns must name three columns (d/h, m, s)")
            sexagesimal[":".join(cols)] = tuple(cols)
            source[axis] = {"column": ":".join(cols), "unit": spec.get("unit", "deg")}
    release = {**raw.get("release", {}), "file": series.patterns[0], "format": series.format}
    ours = {"series", "catalog", "light_curve", "spectrum", "label"}
    base = parse_mapping(path, {k: v for k, v in raw.items() if k not in ours} | {"release": release, "source": source})
    if ("light_curve" in raw) == ("spectrum" in raw):
        raise MappingError(f"{path}: a per-object mapping has exactly one of [light_curve] and [spectrum]")
    if "light_curve" in raw and catalog is None:
        raise MappingError(f"{path}: light curves need a [catalog] of their objects")
    if catalog is not None and not isinstance(catalog.options.get("key"), str):
        raise MappingError(f"{path}: [catalog] needs key = the column naming each object's series")
    label = None
    if "label" in raw:
        sec = raw["label"]
        label = LabelSpec(_text(sec, "taxonomy", f"{path}: [label]"), _text(sec, "column", f"{path}: [label]"),
                          dict(sec.get("split_by_file", {})))
    group = extras.get("group_within_arcsec")
    if group is not None and not (isinstance(group, (int, float)) and 0 < group <= 60):
        raise MappingError(f"{path}: [source] group_within_arcsec must be in (0, 60], got {group!r}")
    return PerObjectMapping(
        path=path, source=base, series=series, catalog=catalog,
        light_curve=_light_curve(raw["light_curve"], path) if "light_curve" in raw else None,
        spectrum=_spectrum(raw["spectrum"], path) if "spectrum" in raw else None,
        label=label, match_surveys=_surveys(extras.get("match_survey"), path),
        group_within_arcsec=float(group) if group is not None else None, sexagesimal=sexagesimal, raw=raw,
    )


def _surveys(value: Any, path: Path) -> tuple[str, ...]:
    """``match_survey``: one survey name or a list of them."""
    names = [value] if isinstance(value, str) else value if value is not None else []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise MappingError(f"{path}: [source] match_survey must be a survey name or a list of them, got {value!r}")
    return tuple(names)
