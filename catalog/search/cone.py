"""Cone search from Python: a validated value, a coarse HEALPix filter, an exact recheck.

The coarse filter is the btree of ``source.hpx`` over the cone's order-29
ranges (computed here by healpy) plus the order-4 shards they touch; the exact
recheck is the angular distance in SQL. ``healcat.cone_search`` does the same in
the database with its own PL/pgSQL cover, and the tests hold the two to the same
rows and to astropy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa
from astropy.table import Table

from catalog import healpix
from catalog.errors import QueryError
from catalog.models import Release, Source
from catalog.search.results import to_table

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
        return to_table(conn.execute(cone.select(release)))


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
