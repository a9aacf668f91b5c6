"""Cone and similarity searches from Python, returning astropy Tables with units.

A cone search is a validated value, then a coarse HEALPix filter on the btree
of ``source.hpx`` (the cone's order-29 ranges, computed here by healpy), then an
exact angular-distance recheck in SQL; ``healcat.cone_search`` does the same in
the database with its own PL/pgSQL cover, and the tests hold the two to the same
rows and to astropy. Similarity searches call the SQL functions
(``healcat.similar_sources``, ``healcat.similar_to_vector``), the one place the
per-model HNSW index is queried.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import astropy.units as u
import numpy as np
import sqlalchemy as sa
from astropy.table import Table

from catalog import healpix
from catalog.errors import QueryError
from catalog.models import Release, Source

_ANGDIST_DEG = sa.func.healcat.angdist_deg


@dataclass(frozen=True)
class Cone:
    """A validated cone: centre in ICRS degrees, radius in degrees."""

    ra_deg: float
    dec_deg: float
    radius_deg: float

    @classmethod
    def from_arcsec(cls, ra_deg: float, dec_deg: float, radius_arcsec: float) -> Cone:
        values = {"ra_deg": ra_deg, "dec_deg": dec_deg, "radius_arcsec": radius_arcsec}
        for name, value in values.items():
            if value is None or not math.isfinite(value):
                raise QueryError(f"cone: {name} must be a finite number, got {value}")
        if not -90.0 <= dec_deg <= 90.0:
            raise QueryError(f"cone: dec_deg must be in [-90, 90], got {float(dec_deg)}")
        if not 0.0 < radius_arcsec <= 180.0 * 3600.0:
            raise QueryError(f"cone: radius_arcsec must be in (0, 648000], got {float(radius_arcsec)}")
        return cls(float(healpix.wrap_ra_deg(ra_deg)), float(dec_deg), radius_arcsec / 3600.0)

    def ranges(self) -> np.ndarray:
        return healpix.cone_ranges(self.ra_deg, self.dec_deg, self.radius_deg)

    def select(self, release: str | None = None) -> sa.Select:
        """The query: sources in the cone's HEALPix ranges and shards, rechecked exactly, nearest first."""
        ranges = self.ranges()
        dist = _ANGDIST_DEG(self.ra_deg, self.dec_deg, Source.ra, Source.dec)
        query = (
            sa.select(
                Source.source_id,
                Release.name.label("release"),
                Source.object_id,
                Source.ra,
                Source.dec,
                (dist * 3600.0).label("distance_arcsec"),
            )
            .join(Release, Release.release_id == Source.release_id)
            .where(
                sa.or_(*(Source.hpx.between(int(lo), int(hi) - 1) for lo, hi in ranges)),
                Source.shard.in_(healpix.shards_of_ranges(ranges)),
                dist <= self.radius_deg,
            )
            .order_by(dist, Source.source_id)
        )
        if release is not None:
            query = query.where(Release.name == release)
        return query


#: The columns a search returns: (dtype, unit).
COLUMNS = {
    "source_id": (np.int64, None),
    "release": (str, None),
    "object_id": (str, None),
    "ra": (np.float64, u.deg),
    "dec": (np.float64, u.deg),
    "distance_arcsec": (np.float64, u.arcsec),
    "distance": (np.float64, None),
}


def _table(result: sa.CursorResult) -> Table:
    """Rows as a Table with fixed dtypes and units, so an empty answer still writes as VOTable or ECSV."""
    rows = result.fetchall()
    names = list(result.keys())
    return Table(
        [np.array([row[i] for row in rows], dtype=COLUMNS[name][0]) for i, name in enumerate(names)],
        names=names,
        units=[COLUMNS[name][1] for name in names],
    )


def cone_search(
    ra_deg: float, dec_deg: float, radius_arcsec: float, *, release: str | None = None, engine: sa.Engine | None = None
) -> Table:
    """Sources within ``radius_arcsec`` of (``ra_deg``, ``dec_deg``) ICRS, nearest first.

    Columns: source_id, release, object_id, ra [deg], dec [deg], distance_arcsec [arcsec].
    """
    from catalog.db import engine as default_engine

    cone = Cone.from_arcsec(ra_deg, dec_deg, radius_arcsec)
    with (engine or default_engine()).connect() as conn:
        if release is not None and conn.scalar(sa.select(Release.release_id).where(Release.name == release)) is None:
            raise QueryError(f"cone: no release named {release!r}")
        return _table(conn.execute(cone.select(release)))


def source_id_of(object_id: str, *, release: str | None = None, engine: sa.Engine | None = None) -> int:
    """The healcat source_id of a survey object id (in ``release``, if several releases have it)."""
    from catalog.db import engine as default_engine

    query = sa.select(Source.source_id, Release.name).join(Release).where(Source.object_id == object_id)
    if release is not None:
        query = query.where(Release.name == release)
    with (engine or default_engine()).connect() as conn:
        rows = conn.execute(query).all()
    if len(rows) != 1:
        where = f" in {release}" if release else ""
        found = f"in releases {', '.join(sorted(r.name for r in rows))}; name one" if rows else "not found"
        raise QueryError(f"object_id {object_id!r}{where}: {found}")
    return rows[0].source_id


def similar(
    source_id: int | None = None,
    *,
    vector: np.ndarray | None = None,
    model: str = "photoz-sdss",
    k: int = 10,
    version: str | None = None,
    engine: sa.Engine | None = None,
) -> Table:
    """The ``k`` sources nearest to a source (itself excluded) or a vector in ``model``'s embedding space.

    Columns: source_id, release, object_id, ra [deg], dec [deg], distance (cosine distance, 0..2).
    """
    from catalog.db import engine as default_engine

    if (source_id is None) == (vector is None):
        raise QueryError("similar: give exactly one of source_id or vector")
    if not isinstance(k, (int, np.integer)):
        raise QueryError(f"similar: k must be an integer, got {k!r}")
    params = {"model": model, "k": int(k), "version": version}
    if source_id is not None:
        query = sa.text("SELECT * FROM healcat.similar_sources(:source_id, :model, :k, :version)")
        params["source_id"] = int(source_id)
    else:
        from pgvector.sqlalchemy import Vector

        query = sa.text("SELECT * FROM healcat.similar_to_vector(:vector, :model, :k, :version)").bindparams(
            sa.bindparam("vector", type_=Vector())
        )
        params["vector"] = np.asarray(vector, dtype=np.float32)
    with (engine or default_engine()).connect() as conn:
        try:
            return _table(conn.execute(query, params))
        except sa.exc.DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == "22023":  # invalid_parameter_value from the SQL function
                raise QueryError(str(exc.orig).splitlines()[0]) from None
            raise
