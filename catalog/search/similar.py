"""Similarity search from Python: the SQL functions ``healcat.similar_sources`` and
``healcat.similar_to_vector`` are the one place the per-model HNSW index is queried.

A filter (``where``) becomes the functions' candidate set: ``ARRAY(SELECT source_id ...)`` built
with SQLAlchemy from a region (:class:`~catalog.search.cone.Cone`, a box, polygon, ellipse or
MOC) and/or boolean expressions over the catalog's tables (``Photometry.mag < 18``, ``SpecRedshift.z.between(0.1, 0.2)``), joined to the
source by its key, every value a bound parameter. The SQL functions choose the plan (exact or
HNSW with iterative scan) from the filter's selectivity and always return k rows when k exist.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable

import numpy as np
import sqlalchemy as sa
from astropy.table import Table

from catalog.errors import QueryError, first_line, query_error
from catalog.models import Model, Photometry, Release, Source
from catalog.search.cancel import cancellable
from catalog.search.region import MAX_K, Region, checked_int
from catalog.search.results import table_from_columns

MODES = ("auto", "exact", "approx")
#: The model searched when none is named: photo-z's embedding (ingest/tasks/photoz.py's model_name).
DEFAULT_MODEL = "photoz-sdss"
MAX_EF_SEARCH = 1_000  # healcat.similar_scope's
Filter = Region | sa.ColumnElement[bool]


def _filters(where: Filter | Iterable[Filter]) -> list[Filter]:
    """``where`` as a list of filters; SQL text is refused (it would be iterated as characters)."""
    if isinstance(where, str):
        raise QueryError(f"similar: where takes a region (Cone, Box, ...) and/or SQLAlchemy expressions over the "
                         f"catalog's tables (Photometry.mag < 17.5), not SQL text: got {where!r}")
    return [where] if isinstance(where, (Region, sa.ColumnElement)) else list(where)


def candidates(where: Filter | Iterable[Filter]) -> sa.Select:
    """``SELECT source.source_id`` of the sources passing every filter (cones and boolean expressions)."""
    filters = _filters(where)
    query = sa.select(Source.source_id)
    joined = {Source.__table__}
    for f in filters:
        if isinstance(f, Region):
            query = query.where(Source.source_id.in_(f.source_ids()))  # the hpx ranges, then the exact test
            continue
        if not isinstance(f, sa.ColumnElement):
            raise QueryError(f"similar: a filter is a region (Cone, Box, ...) or a boolean expression, got {f!r}")
        for table in _tables(f) - joined:
            query = query.join(table, _join_condition(table))
            joined.add(table)
        query = query.where(f)
    return query


def _tables(expr: sa.ColumnElement) -> set[sa.Table]:
    """The tables whose columns ``expr`` compares, not those of its subqueries (``~Source.source_id.in_(
    select(Label.source_id))`` joins no label: the join would keep only labelled sources)."""
    found, stack = set(), [expr]
    while stack:
        element = stack.pop()
        if isinstance(element, sa.Column):
            found.add(element.table)
        elif not isinstance(element, (sa.sql.expression.SelectBase, sa.sql.expression.ScalarSelect)):
            stack.extend(element.get_children())
    return found


def _check_filters(conn: sa.Connection, where: Filter | Iterable[Filter]) -> None:
    """Refuse a filter that can only be a mistake, naming it, rather than answer nothing: a band the
    catalog has no photometry in (``Photometry.band == "r"``: the band is ``sdss_r``), a range whose
    minimum exceeds its maximum (``Photometry.mag.between(17.5, 14)``), a NaN bound (``--z 0.05 nan``)."""
    filters = _filters(where)
    bands: list[str] = []
    stack = [f for f in filters if isinstance(f, sa.ColumnElement)]
    while stack:
        element = stack.pop()
        if isinstance(element, (sa.sql.expression.SelectBase, sa.sql.expression.ScalarSelect)):
            continue  # a subquery's own conditions are its business
        stack.extend(element.get_children())
        if not isinstance(element, sa.BinaryExpression):
            continue
        bounds = getattr(element.right, "clauses", None) or [element.right]  # BETWEEN: (lo, hi)
        if any(isinstance(getattr(b, "value", None), (float, np.floating)) and math.isnan(b.value) for b in bounds):
            # SQL's NaN is above every number: mag BETWEEN 14 AND 'NaN' kept every mag >= 14, BETWEEN 'NaN' AND 17 none
            raise QueryError(f"similar: where: {element.left} compared with NaN: a bound must be a number, not NaN")
        if element.operator is sa.sql.operators.between_op and not element.modifiers.get("symmetric"):
            lo, hi = (getattr(c, "value", None) for c in element.right.clauses)
            if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo > hi:
                raise QueryError(f"similar: where: {element.left} between {lo} and {hi} selects nothing: "
                                 f"the minimum {lo} exceeds the maximum {hi}")
        elif (isinstance(element.left, sa.Column) and element.left.table is Photometry.__table__
              and element.left.name == "band" and isinstance(element.right, sa.BindParameter)
              and element.operator in (sa.sql.operators.eq, sa.sql.operators.in_op)):
            value = element.right.value
            bands += [value] if isinstance(value, str) else list(value)
    if bands:
        known = set(conn.scalars(sa.text("SELECT DISTINCT jsonb_object_keys(mapping -> 'photometry' -> 'bands') "
                                         "FROM healcat.release WHERE jsonb_typeof(mapping -> 'photometry' -> 'bands') "
                                         "= 'object'")))
        for band in bands:
            if band not in known:
                raise QueryError(f"similar: where: no photometry in band {band!r}; the catalog's bands are "
                                 f"{', '.join(sorted(known))}")


def _join_condition(table: sa.Table) -> sa.ColumnElement[bool]:
    if table is Release.__table__:
        return Release.release_id == Source.release_id
    if {"shard", "source_id"} <= set(table.c.keys()):
        return sa.and_(table.c.shard == Source.shard, table.c.source_id == Source.source_id)
    raise QueryError(f"similar: cannot filter on table {table.name}: it is not a per-source table")


def similar(
    source_id: int | None = None,
    *,
    vector: np.ndarray | None = None,
    model: str = DEFAULT_MODEL,
    k: int = 10,
    version: str | None = None,
    where: Filter | Iterable[Filter] | None = None,
    release: str | None = None,
    mode: str = "auto",
    ef_search: int | None = None,
    engine: sa.Engine | None = None,
) -> Table:
    """The ``k`` sources nearest to a source (its own object excluded, in every release) or a vector in
    ``model``'s embedding space, nearest first.

    ``where``: a region (Cone, Box, ...) and/or SQLAlchemy boolean expressions over the catalog's
    tables, e.g.
    ``[Cone.from_arcsec(185.0, 15.5, 3600), Photometry.band == "sdss_r", Photometry.mag < 18]``;
    ``release``: only sources of that release (default: the published releases); ``version``
    (default: the one current on the releases searched; an error while they differ). ``mode``: 'auto' (by the filter's selectivity),
    'exact' or 'approx' (HNSW, iterative scan, ``ef_search`` candidates per step).

    Columns: source_id, release, object_id, ra [deg], dec [deg], distance (cosine distance, 0..2). The
    table's meta says what was searched, read in the same statement as the rows (one snapshot):
    ``model``, ``model_version`` (the version resolved) and ``releases`` (those holding its finished runs,
    of those searched; comma-separated).
    """
    from catalog.db import engine as default_engine

    if (source_id is None) == (vector is None):
        raise QueryError("similar: give exactly one of source_id or vector")
    k = checked_int("similar", "k", k, 1, MAX_K)  # beyond int4 the call would match no SQL function
    if source_id is not None:
        source_id = checked_int("similar", "source_id", source_id)
    if vector is not None:
        vector = _query_vector(vector)
    if mode not in MODES:
        raise QueryError(f"similar: mode must be one of {', '.join(MODES)}, got {mode!r}")
    if ef_search is not None:
        ef_search = checked_int("similar", "ef_search", ef_search, 1, MAX_EF_SEARCH)
    model_p, k_p, version_p = (sa.bindparam("model", model), sa.bindparam("k", k),
                               sa.bindparam("version", version, sa.Text))
    named = {"release_name": sa.bindparam("release", release, sa.Text), "mode": sa.bindparam("mode", mode),
             "ef_search": sa.bindparam("ef_search", ef_search, sa.Integer)}
    if where is not None:
        named["candidates"] = sa.func.array(candidates(where).scalar_subquery())
    if source_id is not None:
        fn, first = sa.func.healcat.similar_sources, sa.bindparam("source_id", source_id)
    else:
        from pgvector.sqlalchemy import Vector

        fn, first = sa.func.healcat.similar_to_vector, sa.bindparam("vector", vector, Vector())
    call = fn(first, model_p, k_p, version_p, *(_named(name, value) for name, value in named.items()))
    # the scope the search resolves (its version, the releases it reads), resolved again beside it
    scope = sa.func.healcat.similar_scope(model_p, version_p, k_p, named["release_name"], named["mode"],
                                          named["ef_search"], sa.null(), first if source_id is not None else sa.null())
    with (engine or default_engine()).connect() as conn, cancellable(conn.connection.driver_connection):
        if where is not None:
            _check_filters(conn, where)
        try:
            return _with_scope(conn.execute(_scoped(call, scope)))
        except sa.exc.DBAPIError as exc:
            if (error := query_error(exc, "similar") or _data_error(exc)) is not None:
                conn.rollback()
                hint = (model_hint(conn, model) if "no model named" in str(error) else
                        INDEX_HINT if "no valid HNSW index" in str(error) else "")
                said = str(error) if str(error).startswith("similar:") else f"similar: {error}"
                raise QueryError(f"{said}{hint}") from None
            raise


#: The releases holding a scope's version's finished runs, of those it searches (release_ids NULL: all of them).
_SCOPE_RELEASES = ("(SELECT string_agg(DISTINCT r.name, ', ' ORDER BY r.name) FROM healcat.inference_run AS i "
                   "JOIN healcat.release AS r ON r.release_id = i.release_id WHERE i.model_id = scope.model_id "
                   "AND i.finished_at IS NOT NULL AND (scope.release_ids IS NULL OR i.release_id = ANY(scope.release_ids)))")


def _scoped(call: sa.FunctionElement, scope: sa.FunctionElement) -> sa.Select:
    """The search's rows in their order, each with the version and releases it searched
    (``healcat.similar_scope``, resolved again beside it: the functions are STABLE, so both read the
    statement's one snapshot); no rows found, one row of NULLs carries them."""
    s = scope.table_valued("model_id", "name", "version", "release_ids").alias("scope")
    hit = call.table_valued("source_id", "release", "object_id", "ra", "dec", "distance",
                            with_ordinality="ordinality").lateral("hit")
    return (sa.select(hit.c.source_id, hit.c.release, hit.c.object_id, hit.c.ra, hit.c.dec, hit.c.distance,
                      s.c.name.label("model"), s.c.version.label("model_version"),
                      sa.literal_column(_SCOPE_RELEASES).label("releases"))
            .select_from(s.outerjoin(hit, sa.true())).order_by(hit.c.ordinality))


def _with_scope(result: sa.CursorResult) -> Table:
    """:func:`_scoped`'s rows as the search's Table, with what it searched in its meta."""
    names, rows = list(result.keys()), result.fetchall()
    table = table_from_columns(names[:-3], [row[:-3] for row in rows] if rows[0][0] is not None else [])
    table.meta.update(model=rows[0][-3], model_version=rows[0][-2], releases=rows[0][-1] or "")
    return table


#: What builds a model's HNSW index again (a `healcat infer` interrupted while it built the index left it
#: invalid; the run was finished, so nothing else would).
INDEX_HINT = (" (a run interrupted while it built the index leaves none: `healcat infer MODEL RELEASE` again builds "
              "it, the run being done, as does a worker's index job after any run of the model)")


def _query_vector(vector: np.ndarray) -> np.ndarray:
    """The query vector as the float4 the database takes, or a QueryError: NaN, infinity, or a
    component beyond float4's range (it became infinity in the cast)."""
    try:
        wide = np.asarray(vector, dtype=np.float64)
    except (TypeError, ValueError):
        raise QueryError(f"similar: the query vector must be numbers, got {str(vector)[:80]}") from None
    if wide.ndim == 2 and wide.shape[0] == 1:  # one row of a model's (batch, dim) output
        wide = wide[0]
    if wide.ndim != 1:
        raise QueryError(f"similar: the query vector must be one vector (1-D, or one row), got shape {wide.shape}")
    if not np.isfinite(wide).all():
        raise QueryError("similar: the query vector must be finite (it holds NaN or infinity)")
    if wide.size and (largest := float(np.abs(wide).max())) > float(np.finfo(np.float32).max):
        raise QueryError(f"similar: the query vector has a component of magnitude {largest:g}, outside float4's "
                         f"range (at most {float(np.finfo(np.float32).max):g}); scale it (cosine distance does "
                         "not depend on the length)")
    return wide.astype(np.float32)


def _data_error(exc: sa.exc.DBAPIError) -> QueryError | None:
    """A value the database could not take (SQLSTATE class 22: out of range, not a number) as a
    QueryError with its message, not a traceback."""
    state = getattr(exc.orig, "sqlstate", None) or ""
    return QueryError(f"similar: {first_line(exc)}") if state.startswith("22") else None


def model_hint(conn: sa.Connection, name: str) -> str:
    """The end of a 'no model' message: for a task's name (``photoz``), which model that task has; for
    a name near a model's (``photo-z``), that model; else the models there are ('' if none)."""
    models = conn.scalars(sa.select(Model.name).where(Model.task == name, Model.name != name).distinct()
                          .order_by(Model.name)).all()
    if models:
        return f" (did you mean {' or '.join(models)}, the model of task {name}?)"
    names = conn.scalars(sa.select(Model.name).distinct().order_by(Model.name)).all()
    near = difflib.get_close_matches(name, names, n=2)
    return f" (did you mean {' or '.join(near)}?)" if near else f" (the models: {', '.join(names)})" if names else ""


def _named(name: str, value: sa.ColumnElement) -> sa.ColumnElement:
    """``name => value``: a named argument of a SQL function call."""
    return sa.literal_column(name).op("=>")(value)
