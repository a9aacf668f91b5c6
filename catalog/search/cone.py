"""Cone search and the k nearest neighbours from Python: a validated value, a coarse HEALPix filter,
an exact recheck.

The coarse filter is the btree of ``source.hpx`` over the cone's order-29 ranges (computed here by
healpy) on the order-4 shards they touch; the exact recheck is the angular distance in SQL
(``healcat.cone_in_ranges``). ``healcat.cone_search`` and ``healcat.nearest`` do the same in the
database with their own PL/pgSQL cover, and the tests hold both paths to the same rows and to astropy.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa
from astropy.table import Table

from catalog import healpix
from catalog.errors import QueryError
from catalog.models import Release, Source
from catalog.search.region import MAX_K, Region, centre, checked, checked_int, run, search

#: Smallest radius a search takes [arcsec] (as healcat.check_cone and check_xmatch): below, degrees underflow.
MIN_RADIUS_ARCSEC = 1e-300


def checked_radius_arcsec(what: str, radius_arcsec, max_arcsec: float) -> float:
    """``radius_arcsec`` as a float in [MIN_RADIUS_ARCSEC, max_arcsec] (an astropy angle converted), else a
    QueryError naming it, as healcat.check_cone and check_xmatch: below, its degrees underflow (5e-324
    arcsec is 0.0 deg)."""
    radius = checked(what, "radius_arcsec", radius_arcsec, 0.0, max_arcsec, lo_open=True)
    if radius < MIN_RADIUS_ARCSEC:
        raise QueryError(f"{what}: radius_arcsec must be at least {MIN_RADIUS_ARCSEC:g} (smaller underflows in "
                         f"degrees), got {radius!r}")
    return radius


@dataclass(frozen=True)
class Cone(Region):
    """A validated cone: centre in ICRS degrees, radius in degrees."""

    ra_deg: float
    dec_deg: float
    radius_deg: float
    what = "cone"
    function = "cone_in_ranges"

    def __post_init__(self) -> None:
        self._check_centre()
        object.__setattr__(self, "radius_deg", checked("cone", "radius_deg", self.radius_deg, 0.0, 180.0, lo_open=True))
        if self.radius_deg < MIN_RADIUS_ARCSEC / 3600.0:  # healpy's cover overflows below (a service's SR=1e-320)
            raise QueryError(f"cone: radius_deg must be at least {MIN_RADIUS_ARCSEC / 3600.0:g}, got {self.radius_deg!r}")

    @classmethod
    def from_arcsec(cls, ra_deg, dec_deg=None, radius_arcsec=None) -> Cone:
        """From a centre (ICRS degrees, or a SkyCoord as ``ra_deg``) and a radius in arcsec."""
        ra, dec = centre("cone", ra_deg, dec_deg)
        return cls(ra, dec, checked_radius_arcsec("cone", radius_arcsec, 180.0 * 3600.0) / 3600.0)

    def ranges(self) -> np.ndarray:
        return healpix.cone_ranges(self.ra_deg, self.dec_deg, self.radius_deg)

    def args(self) -> tuple:
        return self.ra_deg, self.dec_deg, self.radius_deg


def cone_search(
    ra_deg, dec_deg=None, radius_arcsec=None, *, release: str | None = None, engine: sa.Engine | None = None
) -> Table:
    """Sources within ``radius_arcsec`` of (``ra_deg``, ``dec_deg``) ICRS, nearest first; of the published
    releases unless ``release`` names one (a superseded release too). The centre may be a SkyCoord
    (any frame astropy converts to ICRS) given as ``ra_deg``: ``cone_search(coord, radius_arcsec=5)``;
    angles may be astropy Quantities (``radius_arcsec=2 * u.arcmin``).

    Columns: source_id, release, object_id, ra [deg], dec [deg], distance_arcsec [arcsec].
    """
    return search(Cone.from_arcsec(ra_deg, dec_deg, radius_arcsec), release, engine)


def nearest(
    ra_deg, dec_deg=None, k: int = 1, *, release: str | None = None, engine: sa.Engine | None = None
) -> Table:
    """The ``k`` sources nearest to (``ra_deg``, ``dec_deg``), nearest first (ties by source_id), with no
    radius given: cones growing x4 from sqrt(k) arcmin until one holds k sources (as healcat.nearest).
    The centre may be a SkyCoord given as ``ra_deg``: ``nearest(coord, k=5)``.

    Columns as cone_search's.
    """
    k = checked_int("nearest", "k", k, 1, MAX_K)
    cone = Cone(*centre("nearest", ra_deg, dec_deg), np.sqrt(k) / 60.0)
    while True:
        statement, params = cone.sql()
        found = run(engine, "nearest", statement + " LIMIT %s", params + (k,), release)
        if len(found) >= k or cone.radius_deg >= 180.0:
            return found
        cone = Cone(cone.ra_deg, cone.dec_deg, min(180.0, cone.radius_deg * 4.0))


def source_id_of(object_id: str | int, *, release: str | None = None, engine: sa.Engine | None = None) -> int:
    """The healcat source_id of a survey object id: in ``release``, else in the published releases
    (as the searches read), else in a superseded one (never a withdrawn one unless named); an error
    where two of those have it. Object ids are text; an integer (a Gaia source_id from a table) is
    looked up as its decimal digits."""
    from catalog.db import engine as default_engine

    if isinstance(object_id, numbers.Integral) and not isinstance(object_id, bool):
        object_id = str(int(object_id))
    elif not isinstance(object_id, str):
        raise QueryError(f"object_id {object_id!r}: an object id is text (or an integer), not {type(object_id).__name__}")

    query = sa.select(Source.source_id, Release.name, Release.status).join(Release).where(Source.object_id == object_id)
    if release is not None:
        query = query.where(Release.name == release)
    with (engine or default_engine()).connect() as conn:
        rows = conn.execute(query).all()
    if release is None:  # a withdrawn release is read only by its name
        live = [r for r in rows if r.status != "withdrawn"]
        if rows and not live:
            raise QueryError(f"object_id {object_id!r}: only in withdrawn releases "
                             f"{', '.join(sorted(r.name for r in rows))}; name one to read it there")
        rows = [r for r in live if r.status == "published"] or live
    if len(rows) != 1:
        where = f" in {release}" if release else ""
        found = (f"in {rows[0].status} releases {', '.join(sorted(r.name for r in rows))}; name one" if rows
                 else "not found")
        raise QueryError(f"object_id {object_id!r}{where}: {found}")
    return rows[0].source_id
