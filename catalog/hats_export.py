"""A release as a HATS catalog (``healcat export-hats``): the format lsdb opens, for when a catalog
outgrows one machine.

HATS (Hierarchical Adaptive Tiling Scheme, LINCC's format behind lsdb) stores a catalog as Parquet
files, one per adaptive HEALPix pixel, under ``dataset/Norder=K/Dir=D/Npix=N.parquet``, beside
``partition_info.csv``, ``properties``, ``point_map.fits`` and the dataset's ``_metadata`` and
``_common_metadata``. Its spatial index ``_healpix_29`` is healcat's ``hpx`` (hats' own
index of the position but exactly on a pixel boundary: :mod:`catalog.healpix`), so nothing is
re-indexed: the export counts a release's rows per pixel at ``highest_order`` in SQL, merges pixels
as hats-import does (catalog.healpix.adaptive_partitions: a pixel's rows stay together up to
``max_rows_per_partition``), then streams the rows ordered by hpx through a server-side cursor, one
batch at a time, into the partition files: a partition is a contiguous range of hpx, so the files
are written one after another and memory holds one batch (and the counts per pixel), whatever the
release's size. Both passes read one snapshot (a REPEATABLE READ transaction). The ``hats``
library (the format's reference implementation; the optional extra ``healcat[hats]``) writes the
paths, the metadata files and the properties.

Columns: ``_healpix_29``, source_id, object_id, ra and dec [deg, ICRS], the proper motions where the
release has them, the photometry pivoted wide (``<band>_mag``, ``<band>_mag_err`` [mag, in the
band's mag_system], ``<band>_flux_ujy``, ``<band>_flux_err_ujy`` [uJy], those the release fills),
the spectroscopic redshift where the release has any (``z_spec``, ``z_spec_err``, ``z_spec_quality``,
``spec_class`` from healcat.spec_redshift, those the release fills; its key is the source's, so a
source has at most one), and the point values of the release's current model outputs
(``<model>_value``, ``_uncertainty``, ``_p16``, ``_p84`` in the task's unit, ``_label``). Each column's
unit (an astropy unit string; none for a dimensionless column) and description are in the Parquet
schema's field metadata. Sources with no position cannot be placed on the sky: they are left out and
counted (``healcat_rows_without_position`` in the properties). The properties' ``hats_max_rows`` is
the threshold (``max_rows_per_partition``), as hats-import writes its ``pixel_threshold``.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from catalog import healpix
from catalog.errors import HealcatError, query_error
from catalog.pgcopy import fetch_columns
from catalog.search.region import checked_int

log = logging.getLogger(__name__)

#: hats-import's defaults: at most a million rows per file, pixels counted at order 10 (3.4 arcmin).
DEFAULT_MAX_ROWS = 1_000_000
DEFAULT_HIGHEST_ORDER = 10
#: Rows fetched from the server-side cursor at a time (and the largest row group written).
BATCH_ROWS = 50_000
#: The order of point_map.fits: at least 8 (as lsdb's to_hats), at most 10 (a dense map of 12.6M pixels).
POINT_MAP_ORDERS = (8, 10)
SPATIAL_INDEX = "_healpix_29"

WHAT = "export-hats"


@dataclass(frozen=True)
class Column:
    """One output column: its name, the SQL giving it, its Arrow type, its unit and description."""

    name: str
    sql: str
    type: pa.DataType
    unit: str = ""
    description: str = ""

    def field(self) -> pa.Field:
        meta = {key: value for key, value in (("unit", self.unit), ("description", self.description)) if value}
        return pa.field(self.name, self.type, metadata=meta or None)


SOURCE_COLUMNS = (
    Column(SPATIAL_INDEX, "s.hpx", pa.int64(), "", "nested HEALPix index at order 29 of (ra, dec): healcat's hpx"),
    Column("source_id", "s.source_id", pa.int64(), "", "healcat's source_id"),
    Column("object_id", "s.object_id", pa.string(), "", "the survey's own identifier, exact"),
    Column("ra", "s.ra", pa.float64(), "deg", "ICRS right ascension"),
    Column("dec", "s.dec", pa.float64(), "deg", "ICRS declination"),
)
PROPER_MOTION_COLUMNS = (
    Column("pmra_masyr", "s.pmra_masyr", pa.float64(), "mas/yr", "proper motion in RA, times cos(dec)"),
    Column("pmdec_masyr", "s.pmdec_masyr", pa.float64(), "mas/yr", "proper motion in Dec"),
    Column("ref_epoch_yr", "s.ref_epoch_yr", pa.float64(), "yr", "epoch of ra, dec and the proper motions (Julian)"),
)
#: photometry's value columns: (column, suffix of the output name, unit)
PHOTOMETRY = (("mag", "mag", "mag"), ("mag_err", "mag_err", "mag"), ("flux_ujy", "flux_ujy", "uJy"),
              ("flux_err_ujy", "flux_err_ujy", "uJy"))
#: spec_redshift's columns: (column, output name, Arrow type, unit, description)
SPEC_REDSHIFT = (
    ("z", "z_spec", pa.float64(), "", "spec_redshift.z: spectroscopic redshift"),
    ("z_err", "z_spec_err", pa.float64(), "", "spec_redshift.z_err: 1-sigma error of z_spec"),
    ("quality", "z_spec_quality", pa.int32(), "", "spec_redshift.quality: the survey's redshift flag "
                                                      "(e.g. SDSS zWarning, 0 = good)"),
    ("spec_class", "spec_class", pa.string(), "", "spec_redshift.spec_class: spectroscopic class "
                                                   "(GALAXY / STAR / QSO, as the survey writes it)"))
#: prediction's point-value columns: (column, suffix of the output name, Arrow type)
PREDICTION = (("value", "value", pa.float64()), ("uncertainty", "uncertainty", pa.float64()),
              ("value_p16", "p16", pa.float64()), ("value_p84", "p84", pa.float64()), ("label", "label", pa.string()))


@dataclass
class ExportResult:
    release: str
    path: Path
    n_rows: int
    partitions: np.ndarray  # rows (order, pixel, count), nested order
    n_without_position: int = 0
    columns: list[str] = field(default_factory=list)


def _require_hats() -> None:
    """hats is imported where it is used (``healcat --help`` does not load it); a missing one is named once."""
    try:
        import hats  # noqa: F401
    except ImportError:
        raise HealcatError(f"{WHAT} needs the hats package: pip install 'healcat[hats]'") from None


def _name(text: str) -> str:
    """A column-name piece from a band or model name (letters, digits, underscores)."""
    return re.sub(r"\W+", "_", text).strip("_").lower()


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise HealcatError(f"{WHAT}: {out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise HealcatError(f"{WHAT}: {out_dir} is not empty; name a new or empty folder (nothing is overwritten)")


def _release(conn: sa.Connection, name: str) -> sa.RowMapping:
    try:
        return conn.execute(sa.text(
            "SELECT r.release_id, r.name, r.status, r.checksum, r.release_date::text AS release_date, s.name AS survey "
            "FROM healcat.release AS r JOIN healcat.survey AS s USING (survey_id) "
            "WHERE r.release_id = healcat.release_id_of(:what, :name)"), {"what": WHAT, "name": name}).mappings().one()
    except sa.exc.DBAPIError as exc:
        raise query_error(exc, WHAT) or exc from None


def _photometry_columns(conn: sa.Connection, release: sa.RowMapping) -> tuple[list[Column], dict]:
    """The release's bands, each value column it fills once at least, as the lateral pivot's columns."""
    rows = conn.execute(sa.text(
        "SELECT p.band, array_agg(DISTINCT p.mag_system) AS systems, count(p.mag), count(p.mag_err), "
        "count(p.flux_ujy), count(p.flux_err_ujy) FROM healcat.photometry AS p JOIN healcat.source AS s "
        "ON s.shard = p.shard AND s.source_id = p.source_id WHERE s.release_id = :r GROUP BY p.band ORDER BY p.band"),
        {"r": release["release_id"]}).all()
    columns, params = [], {}
    for i, (band, systems, *filled) in enumerate(rows):
        if len(systems) > 1:
            raise HealcatError(f"{WHAT}: {release['name']}'s band {band} holds magnitudes in several systems "
                               f"({', '.join(sorted(systems))}); the export gives one column per band")
        params[f"band_{i}"] = band
        for (column, suffix, unit), n in zip(PHOTOMETRY, filled):
            if n:
                system = f" ({systems[0]})" if unit == "mag" else ""
                pivot = f"max(p.{column}) FILTER (WHERE p.band = %(band_{i})s)"
                columns.append(Column(f"{_name(band)}_{suffix}", pivot, pa.float32(), unit,
                                      f"photometry.{column}, band {band}{system}"))
    return columns, params


def _spec_redshift_columns(conn: sa.Connection, release: sa.RowMapping) -> list[Column]:
    """spec_redshift's columns that the release fills once at least (none when it has no spectroscopic
    redshift). Its key is (shard, source_id): one row per source at most, no choice to make."""
    filled = conn.execute(sa.text(
        f"SELECT {', '.join(f'count(z.{column})' for column, *_ in SPEC_REDSHIFT)} FROM healcat.spec_redshift AS z "
        "JOIN healcat.source AS s ON s.shard = z.shard AND s.source_id = z.source_id WHERE s.release_id = :r"),
        {"r": release["release_id"]}).one()
    return [Column(name, f"z.{column}", kind, unit, description)
            for (column, name, kind, unit, description), n in zip(SPEC_REDSHIFT, filled) if n]


def _prediction_columns(conn: sa.Connection, release: sa.RowMapping) -> tuple[list[Column], dict]:
    """The point values of each model's current run on the release (healcat.current_run)."""
    runs = conn.execute(sa.text(
        "SELECT c.model_name, c.model_version, c.task, c.model_id, c.run_id, count(q.value), count(q.uncertainty), "
        "count(q.value_p16), count(q.value_p84), count(q.label) FROM healcat.current_run AS c "
        "JOIN healcat.prediction AS q ON q.model_id = c.model_id AND q.run_id = c.run_id "
        "WHERE c.release_id = :r GROUP BY 1, 2, 3, 4, 5 ORDER BY c.model_name"), {"r": release["release_id"]}).all()
    from ingest.tasks import all_tasks  # each says its value's unit and what it is (they import torch)

    tasks = all_tasks() if runs else {}
    columns, params = [], {"model_ids": [run.model_id for run in runs]}
    for i, (model, model_version, task, _, run_id, *filled) in enumerate(runs):
        params[f"run_{i}"] = run_id
        known = tasks.get(task)
        unit, what = (known.unit, known.value_description) if known else ("", "")
        for (column, suffix, kind), n in zip(PREDICTION, filled):
            if n:
                pivot = f"max(q.{column}) FILTER (WHERE q.run_id = %(run_{i})s)"
                description = f"prediction.{column} of {model} version {model_version} ({task})"
                kept = known.spread_unit() if known and column == "uncertainty" else unit
                columns.append(Column(f"{_name(model)}_{suffix}", pivot, kind, "" if column == "label" else kept,
                                      description if column == "label" or not what else f"{description}: {what}"))
    return columns, params


def _query(proper_motions: bool, photometry: list[Column], spec_redshift: list[Column],
           predictions: list[Column]) -> str:
    """The rows, ordered by hpx; each source's photometry, spectroscopic redshift and predictions are
    looked up per source (a lateral subquery the planner keeps beside the ordered scan of source)."""
    columns = [*SOURCE_COLUMNS, *(PROPER_MOTION_COLUMNS if proper_motions else ())]
    select = ", ".join(c.sql for c in columns)  # (the rows' columns are taken by position)
    joins = ""
    for alias, table, extra, pivot in (("p", "photometry", "", photometry),
                                       ("z", "spec_redshift", " LIMIT 1", spec_redshift),
                                       ("q", "prediction", " AND q.model_id = ANY(%(model_ids)s)", predictions)):
        if pivot:
            select += "".join(f", {alias}x.c{i}" for i in range(len(pivot)))
            # photometry and prediction: an aggregate, one row always; spec_redshift: its row or none (its key is
            # the source's; LIMIT 1 keeps it a lookup by that key per source, as the plan is for the others)
            join = "LEFT JOIN" if alias == "z" else "CROSS JOIN"
            joins += (f" {join} LATERAL (SELECT {', '.join(f'{c.sql} AS c{i}' for i, c in enumerate(pivot))} "
                      f"FROM healcat.{table} AS {alias} WHERE {alias}.shard = s.shard "
                      f"AND {alias}.source_id = s.source_id{extra}) AS {alias}x{' ON true' if alias == 'z' else ''}")
    return (f"SELECT {select} FROM healcat.source AS s{joins} "
            "WHERE s.release_id = %(release_id)s AND s.hpx IS NOT NULL ORDER BY s.hpx, s.source_id")


def export_hats(release: str, out_dir: str | Path, *, max_rows_per_partition: int = DEFAULT_MAX_ROWS,
                highest_order: int = DEFAULT_HIGHEST_ORDER, engine: sa.Engine | None = None,
                batch_rows: int = BATCH_ROWS) -> ExportResult:
    """Write the sources of ``release`` (by name, published or superseded) as a HATS catalog in ``out_dir``
    (new, or an empty folder): partitions of at most ``max_rows_per_partition`` rows (hats-import's
    pixel_threshold), from pixels counted at ``highest_order``. Open it with ``lsdb.open_catalog(out_dir)``
    or ``hats.read_hats(out_dir)``."""
    _require_hats()
    max_rows = checked_int(WHAT, "max_rows_per_partition", max_rows_per_partition, 1)
    order = checked_int(WHAT, "highest_order", highest_order, 0, healpix.ORDER)
    batch_rows = checked_int(WHAT, "batch_rows", batch_rows, 1)
    out_dir = Path(out_dir).expanduser().absolute()
    _check_out_dir(out_dir)
    if engine is None:
        from catalog.db import engine as default_engine

        engine = default_engine()
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
        conn.execute(sa.text("SET TRANSACTION READ ONLY"))
        info = _release(conn, release)
        result, work, pixels, counts = _export(conn, info, out_dir, max_rows, order, batch_rows)
    try:
        _finish(work, info, result, pixels, counts, order, max_rows)
        try:
            work.rename(out_dir)  # an empty out_dir is replaced (POSIX rename)
        except OSError as exc:
            raise HealcatError(f"{WHAT}: cannot move the export into {out_dir} ({exc.strerror}): was it filled "
                               "meanwhile?") from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    log.info("%s: %s rows of %s in %d partitions", out_dir, f"{result.n_rows:,}", info["name"], len(result.partitions))
    return result


def _export(conn: sa.Connection, info: sa.RowMapping, out_dir: Path, max_rows: int, order: int,
            batch_rows: int) -> tuple[ExportResult, Path, np.ndarray, np.ndarray]:
    """Plan the partitions and write their files into a new folder beside ``out_dir``; returns it, and the
    row counts per order-``order`` pixel (sparse)."""
    pg = conn.connection.driver_connection
    pixels, counts = fetch_columns(
        pg, "SELECT hpx >> %s AS pixel, count(*) AS n FROM healcat.source WHERE release_id = %s AND hpx IS NOT NULL "
            "GROUP BY 1", (healpix.order_shift(order), info["release_id"]), [("pixel", "int64"), ("n", "int64")])
    n_without = conn.scalar(sa.text("SELECT count(*) FROM healcat.source WHERE release_id = :r AND hpx IS NULL"),
                            {"r": info["release_id"]})
    if not len(pixels):
        raise HealcatError(f"{WHAT}: {info['name']} has no sources with a position ({n_without} without): "
                           "nothing to place on the sky")
    try:
        partitions = healpix.adaptive_partitions(pixels, counts, order, max_rows)
    except ValueError as exc:
        raise HealcatError(f"{WHAT}: {info['name']}: {exc}, the most a partition may hold (--max-rows-per-partition): "
                           f"raise it, or count in smaller pixels (--highest-order above {order})") from None
    n_rows = int(partitions[:, 2].sum())
    log.info("%s: %s rows in %d order-%d pixels -> %d partitions (orders %d-%d, at most %s rows)%s", info["name"],
             f"{n_rows:,}", len(pixels), order, len(partitions), partitions[:, 0].min(), partitions[:, 0].max(),
             f"{partitions[:, 2].max():,}", f"; {n_without:,} sources without a position left out" if n_without else "")
    proper_motions = conn.scalar(sa.text(
        "SELECT EXISTS (SELECT 1 FROM healcat.source WHERE release_id = :r AND pmra_masyr IS NOT NULL)"),
        {"r": info["release_id"]})
    photometry, band_params = _photometry_columns(conn, info)
    spec_redshift = _spec_redshift_columns(conn, info)
    predictions, run_params = _prediction_columns(conn, info)
    columns = [*SOURCE_COLUMNS, *(PROPER_MOTION_COLUMNS if proper_motions else ()), *photometry, *spec_redshift,
               *predictions]
    if len({c.name for c in columns}) < len(columns):
        raise HealcatError(f"{WHAT}: {info['name']}: two columns would share a name: {[c.name for c in columns]}")
    schema = pa.schema([c.field() for c in columns], metadata={"healcat_release": info["name"]})
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # a name of its own: a killed export leaves its folder (nothing can remove it), and under
    # `docker compose run` every export's process id is the same, so one named by the pid alone failed
    left = sorted(out_dir.parent.glob(f".{out_dir.name}.partial-*"))
    if left:
        log.warning("%s: %s left by exports that did not finish (killed): delete %s, unless an export to %s runs now",
                    WHAT, ", ".join(p.name for p in left), "it" if len(left) == 1 else "them", out_dir)
    work = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    work.mkdir()
    try:
        query = _query(proper_motions, photometry, spec_redshift, predictions)
        params = {"release_id": info["release_id"], **band_params, **run_params}
        _write_partitions(pg, query, params, schema, work, partitions, batch_rows, info["name"])
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return ExportResult(info["name"], out_dir, n_rows, partitions, n_without, schema.names), work, pixels, counts


def _write_partitions(pg, query: str, params: dict, schema: pa.Schema, work: Path, partitions: np.ndarray,
                      batch_rows: int, release: str) -> None:
    """Stream the rows (ordered by hpx) into one Parquet file per partition, batch by batch."""
    from hats.io.file_io import get_parquet_write_table_kwargs
    from hats.io.paths import pixel_catalog_file
    from hats.pixel_math import HealpixPixel

    kwargs = get_parquet_write_table_kwargs(schema, write_table_kwargs={"sorting_columns": [pq.SortingColumn(0)]})
    row_group_rows = min(kwargs.pop("row_group_size"), batch_rows)
    ranges = healpix.pixel_ranges(partitions[:, 0], partitions[:, 1])
    written = np.zeros(len(partitions), dtype=np.int64)
    current, writer, done, total = -1, None, 0, int(partitions[:, 2].sum())
    log_every = max(batch_rows, total // 100)  # about a hundred lines for a large release
    try:
        with pg.cursor(name="healcat_export_hats", binary=True) as cursor:
            cursor.execute(query, params)
            while rows := cursor.fetchmany(batch_rows):
                table = pa.Table.from_arrays([pa.array(values, type=f.type) for values, f in zip(zip(*rows), schema)],
                                             schema=schema)
                hpx = table.column(0).to_numpy()
                which = np.searchsorted(ranges[:, 0], hpx, side="right") - 1
                if (which < 0).any() or (hpx >= ranges[which, 1]).any():  # the snapshot's counts cover every row
                    raise AssertionError(f"{WHAT}: a row of {release} lies outside every partition")
                for start, stop in _runs(which):
                    if which[start] != current:
                        if writer is not None:
                            writer.close()
                        current = int(which[start])
                        path = pixel_catalog_file(work, HealpixPixel(*map(int, partitions[current, :2])))
                        Path(path.path).parent.mkdir(parents=True, exist_ok=True)
                        writer = pq.ParquetWriter(path.path, schema, **kwargs)
                    writer.write_table(table.slice(start, stop - start), row_group_size=row_group_rows)
                    written[current] += stop - start
                done += len(rows)
                if done == total or done // log_every > (done - len(rows)) // log_every:
                    log.info("%s: %s of %s rows written (%.0f%%)", release, f"{done:,}", f"{total:,}",
                             100.0 * done / total)
    finally:
        if writer is not None:
            writer.close()
    if not np.array_equal(written, partitions[:, 2]):
        raise AssertionError(f"{WHAT}: {release}: rows written per partition differ from those counted")


def _runs(values: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of each run of equal values."""
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    return list(zip(starts.tolist(), np.r_[starts[1:], len(values)].tolist()))


def _finish(work: Path, info: sa.RowMapping, result: ExportResult, pixels: np.ndarray, counts: np.ndarray,
            order: int, max_rows: int) -> None:
    """The catalog's metadata: _metadata and _common_metadata, partition_info.csv, point_map.fits and
    skymap.fits, properties (hats's writers; hats_max_rows is the threshold, as hats-import's
    ImportArguments.to_table_properties writes its pixel_threshold, not the largest partition's rows)."""
    from hats.catalog import PartitionInfo, TableProperties
    from hats.io import file_io, paths, write_parquet_metadata
    from hats.io.skymap import write_skymap
    from hats.pixel_math import HealpixPixel

    partitions = result.partitions
    write_parquet_metadata(work)
    PartitionInfo([HealpixPixel(int(k), int(p)) for k, p in partitions[:, :2]]).write_to_file(catalog_path=work)
    map_order = min(order, max(POINT_MAP_ORDERS[0], int(partitions[:, 0].max())), POINT_MAP_ORDERS[1])
    point_map = healpix.dense_counts(pixels, counts, order, map_order)
    file_io.write_fits_image(point_map, paths.get_point_map_file_pointer(work))
    write_skymap(point_map, work)
    extra = {"healcat_release": info["name"], "healcat_survey": info["survey"],
             "healcat_release_status": info["status"], "healcat_release_checksum": info["checksum"],
             "healcat_release_date": info["release_date"] or "",
             "healcat_rows_without_position": str(result.n_without_position)}
    properties = TableProperties(
        catalog_name=_name(info["name"]), catalog_type="object", total_rows=result.n_rows, ra_column="ra",
        dec_column="dec", healpix_column=SPATIAL_INDEX, healpix_order=healpix.ORDER,
        hats_max_rows=max_rows, hats_order=int(partitions[:, 0].max()), skymap_order=map_order,
        moc_sky_fraction=float(np.count_nonzero(point_map)) / len(point_map),
        obs_title=f"{info['name']} from healcat",
        **TableProperties.new_provenance_dict(work, builder=f"healcat v{version('healcat')} export-hats") | extra)
    properties.to_properties_file(work)
