"""What the catalog holds on given sources, from Python, as astropy Tables with units: the models'
predictions (photo-z's PDF and credible interval among them, or the reason a source has none), light
curves and spectra.

The SQL is what the README gives an astronomer in psql: a model's current run on each source's release
(``healcat.current_run``, as ``healcat.current_prediction`` reads it) or a named version's run, the
run's recorded reason for a source it skipped (``healcat.inference_skip``), the mixture functions
(``healcat.mixture_interval``, ``healcat.mixture_pdf``: one definition of a PDF's reading, truncated
where the task's values end) and the per-object tables; every value is a bound parameter.
"""

from __future__ import annotations

import json

import astropy.units as u
import numpy as np
import sqlalchemy as sa
from astropy.table import MaskedColumn, Row, Table

from catalog.errors import QueryError, query_error
from catalog.search.region import checked_int
from catalog.search.results import COLUMNS, masked_column
from catalog.search.similar import DEFAULT_MODEL, model_hint

#: The model's runs whose outputs are read: its current runs, one per release (as healcat.current_prediction
#: reads them), or the named version's finished runs. A source's prediction may come from a run on another
#: release than its own (a rotation catalogue's star joined to a Gaia source: the run is the catalogue's).
CURRENT_RUNS = ("SELECT c.run_id, c.model_id, c.release_id, c.model_version AS version, c.finished_at "
                "FROM healcat.current_run AS c WHERE c.model_name = :model")
VERSION_RUNS = ("SELECT x.run_id, x.model_id, x.release_id, CAST(:version AS text) AS version, x.finished_at "
                "FROM healcat.inference_run AS x WHERE x.model_id = :model_id AND x.finished_at IS NOT NULL")

#: One row per asked source_id, in the order asked: its prediction by one of the runs (the run on its own
#: release first, else the latest), else that run's reason for skipping it. {runs}: CURRENT_RUNS or
#: VERSION_RUNS; {lower}: ", :lower" where the task's values end (photo-z: z = 0), else ""; {pdf}: the PDF
#: on a grid, or "".
PREDICTIONS = """
WITH runs AS ({runs})
SELECT w.source_id, r.name AS release, s.object_id, coalesce(p.version, k.version, here.version) AS version,
       coalesce(p.run_id, k.run_id, here.run_id) AS run_id, p.value, p.uncertainty,
       coalesce(p.value_p16, i.lo) AS value_p16, coalesce(p.value_p84, i.hi) AS value_p84,
       p.label, CAST(p.probabilities AS text) AS probabilities, p.pdf_weights, p.pdf_means, p.pdf_sigmas{pdf},
       CASE WHEN p.source_id IS NOT NULL THEN NULL
            WHEN w.source_id IS NULL THEN 'no source_id (a masked or missing value)'
            WHEN s.source_id IS NULL THEN 'no source with this source_id'
            WHEN k.reason IS NOT NULL THEN k.reason
            WHEN here.run_id IS NULL THEN :no_run || r.name
            ELSE 'the run did not read it' END AS reason
FROM unnest(CAST(:ids AS bigint[])) WITH ORDINALITY AS w(source_id, n)
LEFT JOIN healcat.source AS s ON s.source_id = w.source_id
LEFT JOIN healcat.release AS r ON r.release_id = s.release_id
LEFT JOIN LATERAL (SELECT q.*, x.version FROM healcat.prediction AS q
                   JOIN runs AS x ON x.model_id = q.model_id AND x.run_id = q.run_id
                   WHERE q.shard = s.shard AND q.source_id = s.source_id
                   ORDER BY x.release_id = s.release_id DESC, x.finished_at DESC LIMIT 1) AS p ON true
LEFT JOIN LATERAL (SELECT j.reason, j.run_id, x.version FROM healcat.inference_skip AS j
                   JOIN runs AS x ON x.run_id = j.run_id
                   WHERE j.shard = s.shard AND j.source_id = s.source_id
                   ORDER BY x.release_id = s.release_id DESC, x.finished_at DESC LIMIT 1) AS k ON true
LEFT JOIN LATERAL (SELECT x.run_id, x.version FROM runs AS x WHERE x.release_id = s.release_id LIMIT 1) AS here ON true
LEFT JOIN LATERAL (SELECT m.lo, m.hi FROM healcat.mixture_interval(p.pdf_weights, p.pdf_means, p.pdf_sigmas, 0.68{lower}) AS m
                   WHERE p.value_p16 IS NULL AND p.pdf_weights IS NOT NULL) AS i ON true
ORDER BY w.n
"""
PDF_ON_GRID = (", ARRAY(SELECT healcat.mixture_pdf(p.pdf_weights, p.pdf_means, p.pdf_sigmas, g.x{lower}) "
               "FROM unnest(CAST(:grid AS float8[])) WITH ORDINALITY AS g(x, n) ORDER BY g.n) AS pdf")

#: The releases whose light curves and spectra are read: the published ones, or the one named.
PUBLISHED = "SELECT release_id FROM healcat.current_release"
NAMED = "SELECT healcat.release_id_of(:what, :release)"

LIGHT_CURVE = """
SELECT r.name AS release, p.band, p.time_mjd, p.time_scale, p.mag, p.mag_err, p.mag_system, p.flux_ujy, p.flux_err_ujy
FROM healcat.light_curve_points AS p JOIN healcat.release AS r USING (release_id)
WHERE p.shard = :shard AND p.source_id = :source_id AND p.release_id IN ({releases})
ORDER BY p.band, r.name, p.point
"""
SPECTRA = """
SELECT r.name AS release, sp.spectrum_name, sp.mjd, sp.file, sp.vacuum, sp.wavelength, sp.wavelength_unit,
       sp.flux, sp.flux_unit, sp.ivar, sp.ivar_unit, sp.mask
FROM healcat.spectrum AS sp JOIN healcat.release AS r USING (release_id)
WHERE sp.shard = :shard AND sp.source_id = :source_id AND sp.release_id IN ({releases})
ORDER BY sp.mjd, sp.spectrum_name, r.name
"""


def predictions(source_ids, model: str = DEFAULT_MODEL, *, version: str | None = None, pdf_at=None,
                engine: sa.Engine | None = None) -> Table:
    """What ``model`` says of each source: one row per source_id asked, in that order.

    ``source_ids``: one id, a sequence or array of them, or a Table with a ``source_id`` column (a
    search's answer; a cross-match's unmatched rows, masked, give rows with a reason). ``version``:
    that version's outputs (a retired one's too); default the model's current runs, as
    ``healcat.current_prediction`` reads them (a run on another release counts: a rotation catalogue's
    star joined to a Gaia source was predicted by the catalogue's run). ``pdf_at``: values (photo-z: redshifts) where each source's PDF
    is evaluated, as SQL's ``healcat.photoz_pdf``, into the column ``pdf``.

    Columns: source_id, release, object_id, version, run_id, value, uncertainty, value_p16, value_p84
    (in the task's unit; for photo-z the 16th and 84th percentiles of p(z) truncated at z = 0, as
    ``healcat.photoz_interval``), label and ``p_<class>`` (a classifier's), pdf_weights, pdf_means,
    pdf_sigmas (one row of K mixture components each, where the model gives PDFs), pdf (with
    ``pdf_at``), and reason: why a source has no prediction (the run's recorded reason, e.g. "not a
    galaxy: spectrum says STAR"; no run on its release; no such source), masked where it has one.
    """
    from catalog.db import engine as default_engine
    from ingest.tasks import get_task  # its unit and where its values end (the tasks import torch)

    what = "predictions"
    ids = _source_ids(what, source_ids)
    for name, value in (("model", model), ("version", version)):
        if not isinstance(value, str) and (value is not None or name == "model"):
            raise QueryError(f"{what}: {name} must be text (a model's name, a version such as '1'), got {value!r}")
    with (engine or default_engine()).connect() as conn:
        try:
            model_id, task_name, hyperparams = conn.execute(sa.text(
                "SELECT m.model_id, x.task, x.hyperparams FROM healcat.resolve_model(:model, :version) AS m "
                "JOIN healcat.model AS x USING (model_id)"), {"model": model, "version": version}).one()
        except sa.exc.DBAPIError as exc:
            if (error := query_error(exc, what)) is None:
                raise
            conn.rollback()
            hint = model_hint(conn, model) if "no model named" in str(error) else ""
            said = str(error) if str(error).startswith(f"{what}:") else f"{what}: {error}"  # (the timeout's)
            raise QueryError(f"{said}{hint}") from None
        task = get_task(task_name)
        grid = _grid(what, pdf_at, task.unit)
        lower = "" if task.value_min is None else ", :lower"
        statement = PREDICTIONS.format(runs=CURRENT_RUNS if version is None else VERSION_RUNS, lower=lower,
                                       pdf="" if grid is None else PDF_ON_GRID.format(lower=lower))
        no_run = (f"model {model} has no current run on release " if version is None else
                  f"model {model} version {version} has not finished a run on release ")
        rows = _rows(conn, what, statement, {
            "ids": ids, "model": model, "version": version, "model_id": model_id, "lower": task.value_min,
            "grid": None if grid is None else grid.tolist(), "no_run": no_run})
    table = _predictions_table(rows, task, grid, (hyperparams or {}).get("n_components"))
    table.meta.update(model=model, task=task_name, version=version or "current")
    if grid is not None:
        table.meta["pdf_at"] = grid.tolist()
    return table


def _predictions_table(rows: list, task, grid: np.ndarray | None, n_components: int | None) -> Table:
    """The answer's columns, each with its unit and description: the task's class probabilities and
    PDF (``n_components`` wide, the version's) whatever rows it holds, masked where a row has none."""
    unit, spread = (u.Unit(text) if text else None for text in (task.unit, task.spread_unit()))  # "": dimensionless
    columns = list(zip(*rows)) if rows else [()] * (15 if grid is None else 16)
    (source_id, release, object_id, version, run_id, value, uncertainty, p16, p84, label, probabilities, weights,
     means, sigmas) = columns[:14]
    table = Table([
        masked_column(source_id, np.int64), masked_column(release, str), masked_column(object_id, str),
        masked_column(version, str), masked_column(run_id, np.int64), masked_column(value, np.float64, unit),
        masked_column(uncertainty, np.float64, spread), masked_column(p16, np.float64, unit),
        masked_column(p84, np.float64, unit), masked_column(label, str)],
        names=["source_id", "release", "object_id", "version", "run_id", "value", "uncertainty", "value_p16",
               "value_p84", "label"])
    for name, text in DESCRIPTIONS.items():
        table[name].description = text
    table["value"].description = task.value_description or "the model's point value"
    classes = sorted({*task.classes, *(name for text in probabilities if text for name in json.loads(text))})
    for name in classes:
        table[f"p_{name}"] = masked_column([None if text is None else json.loads(text).get(name)
                                            for text in probabilities], np.float64)
        table[f"p_{name}"].description = f"the classifier's probability that the source is a {name}"
    if task.gives_pdf or any(w is not None for w in weights):
        width = max([n_components or 0, *(len(w) for w in weights if w is not None)])  # runs of older versions too
        for name, arrays, column_unit, text in (
                ("pdf_weights", weights, None, "the PDF's Gaussian-mixture weights"),
                ("pdf_means", means, unit, "the mixture's component means (untruncated)"),
                ("pdf_sigmas", sigmas, spread, "the mixture's component sigmas")):
            table[name] = _rows_of(arrays, column_unit, np.float32, width)  # float4: the bits SQL reads
            table[name].description = text
    if grid is not None:
        table["pdf"] = _rows_of(columns[14], None, np.float64, width=len(grid))
        table["pdf"].description = ("the PDF at the values meta['pdf_at'] (a VOTable's INFO pdf_at; truncated "
                                    "where the values end and renormalised)")
    table["reason"] = masked_column(columns[-1], str)
    table["reason"].description = "why the source has no prediction (masked where it has one)"
    return table


DESCRIPTIONS = {
    **{name: COLUMNS[name][2] for name in ("source_id", "release", "object_id")},  # as a search's answer says
    "version": "the model version that predicted it",
    "run_id": "the inference run that wrote it (healcat.inference_run)",
    "uncertainty": "1-sigma uncertainty of the value",
    "value_p16": "16th percentile of the posterior",
    "value_p84": "84th percentile of the posterior",
    "label": "the classifier's most probable class",
}


def _rows_of(arrays: tuple, unit, dtype, width: int | None = None) -> MaskedColumn:
    """Per-row arrays (None where a source has none, NULL elements as None) as one 2-D masked column of
    ``width`` (default: the longest row's) floats of ``dtype``, shorter rows masked beyond their end."""
    width = width if width is not None else max((len(a) for a in arrays if a is not None), default=0)
    data = np.zeros((len(arrays), width), dtype=dtype)
    mask = np.ones((len(arrays), width), dtype=bool)
    for i, values in enumerate(arrays):
        if values is not None:
            row = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
            data[i, :len(row)] = np.nan_to_num(row)
            mask[i, :len(row)] = np.isnan(row)
    return MaskedColumn(data, mask=mask, unit=unit)


def _source_ids(what: str, source_ids) -> list[int | None]:
    """The ids asked, as ints (None for a masked one), else a QueryError saying what was given."""
    if isinstance(source_ids, (Table, Row)):
        if "source_id" not in source_ids.colnames:
            raise QueryError(f"{what}: a table of sources needs a source_id column; it has {', '.join(source_ids.colnames)}")
        if isinstance(source_ids, Row):  # its one cell, masked or not, as a column of one
            source_ids = source_ids.table["source_id"][source_ids.index:source_ids.index + 1]
        else:
            source_ids = source_ids["source_id"]
    values = np.ma.atleast_1d(np.ma.asanyarray(source_ids))
    if values.dtype == object and all(isinstance(v, int) and not isinstance(v, bool) for v in values.ravel()):
        raise QueryError(f"{what}: source_ids must fit a bigint, got {max(values.ravel(), key=abs)}")  # past int64
    if values.ndim != 1 or (values.dtype.kind not in "iu" and values.size):
        raise QueryError(f"{what}: source_ids must be integers (healcat's source_id: one, a list or an array), "
                         f"got {str(source_ids)[:80]}")
    if values.dtype.kind == "u" and values.size and values.max() > np.iinfo(np.int64).max:
        raise QueryError(f"{what}: source_ids must fit a bigint, got {values.max()}")
    mask = np.ma.getmaskarray(values)
    return [None if missing else int(v) for v, missing in zip(values.data, mask)]


def _grid(what: str, pdf_at, unit: str) -> np.ndarray | None:
    """The values a PDF is evaluated at, as finite floats (an astropy Quantity converted to the value's
    ``unit``: a redshift is dimensionless), else a QueryError."""
    if pdf_at is None:
        return None
    if isinstance(pdf_at, u.Quantity):
        try:
            pdf_at = pdf_at.to_value(u.Unit(unit) if unit else u.dimensionless_unscaled)
        except u.UnitsError:
            raise QueryError(f"{what}: pdf_at must be in the model's unit ({unit or 'dimensionless'}), "
                             f"got {pdf_at.unit}") from None
    try:
        grid = np.atleast_1d(np.asarray(pdf_at, dtype=np.float64))
    except (TypeError, ValueError):
        raise QueryError(f"{what}: pdf_at must be numbers, got {str(pdf_at)[:80]}") from None
    if grid.ndim != 1 or not grid.size or not np.isfinite(grid).all():
        raise QueryError(f"{what}: pdf_at must be one or more finite numbers, got {str(pdf_at)[:80]}")
    return grid


def light_curve(source_id: int, *, release: str | None = None, engine: sa.Engine | None = None) -> Table:
    """A source's light curve, every band, one row per point, as the published releases have it (or
    ``release``, by name): band, time_mjd [d] (in its time_scale), mag and mag_err [mag] in mag_system
    (AB or Vega), flux_ujy and flux_err_ujy [uJy] where the survey gives fluxes, and the release. No rows
    where the source has no light curve there; an error naming the id where there is no such source."""
    rows = _per_object("light_curve", LIGHT_CURVE, source_id, release, engine)
    columns = list(zip(*rows)) if rows else [()] * 9
    table = Table([masked_column(list(c), dtype, unit) for c, (dtype, unit) in zip(columns, (
        (str, None), (str, None), (np.float64, u.d), (str, None), (np.float32, u.mag), (np.float32, u.mag),
        (str, None), (np.float32, u.uJy), (np.float32, u.uJy)))],  # as stored: magnitudes and fluxes are float4
        names=["release", "band", "time_mjd", "time_scale", "mag", "mag_err", "mag_system", "flux_ujy", "flux_err_ujy"])
    table.meta["source_id"] = source_id
    return table


def spectra(source_id: int, *, release: str | None = None, engine: sa.Engine | None = None) -> list[Table]:
    """A source's spectra (several epochs: several), as the published releases read them (or ``release``,
    by name), by MJD: each a Table of wavelength, flux, ivar (in their units, as stored) and mask, its
    meta the spectrum's name, MJD, release, file and whether wavelengths are in vacuum. An empty list
    where the source has none there; an error naming the id where there is no such source."""
    found = []
    for (release_name, name, mjd, file, vacuum, wavelength, wavelength_unit, flux, flux_unit, ivar, ivar_unit,
         mask) in _per_object("spectra", SPECTRA, source_id, release, engine):
        table = Table([masked_column(wavelength, np.float32, u.Unit(wavelength_unit)),  # float4, as stored
                       masked_column(flux, np.float32, u.Unit(flux_unit))], names=["wavelength", "flux"])
        if ivar is not None:
            table["ivar"] = masked_column(ivar, np.float32, None if ivar_unit is None else u.Unit(ivar_unit))
        if mask is not None:
            table["mask"] = masked_column(mask, np.int32)
        table.meta.update(source_id=source_id, spectrum_name=name, mjd=mjd, release=release_name, file=file,
                          vacuum=vacuum)
        found.append(table)
    return found


def _per_object(what: str, statement: str, source_id, release: str | None, engine: sa.Engine | None) -> list:
    """The rows of a per-object statement for one source, from the published releases or the one named."""
    from catalog.db import engine as default_engine

    source_id = checked_int(what, "source_id", source_id, -2**63, 2**63 - 1)
    if release is not None and not isinstance(release, str):
        raise QueryError(f"{what}: release must be a release's name (text), got {release!r}")
    with (engine or default_engine()).connect() as conn:
        shard = conn.scalar(sa.text("SELECT shard FROM healcat.source WHERE source_id = :source_id"),
                            {"source_id": source_id})
        if shard is None:
            raise QueryError(f"{what}: no source with source_id {source_id}")
        return _rows(conn, what, statement.format(releases=PUBLISHED if release is None else NAMED),
                     {"shard": shard, "source_id": source_id, "what": what, "release": release})


def _rows(conn: sa.Connection, what: str, statement: str, params: dict) -> list:
    """A statement's rows; an argument's error or the statement timeout (the read-only role has one) as a
    QueryError saying so, as the searches do."""
    try:
        return conn.execute(sa.text(statement), params).all()
    except sa.exc.DBAPIError as exc:
        if (error := query_error(exc, what)) is None:
            raise
        raise (error if str(error).startswith(f"{what}:") else QueryError(f"{what}: {error}")) from None


__all__ = ["light_curve", "predictions", "spectra"]
