"""Spherical polygon search: ``healcat.polygon_search`` in SQL, ``polygon_search`` here; the same rows.

Vertices are joined by great-circle arcs, in either winding order; the polygon is the side that lies
within 89 deg of the vertices' mean direction. The SQL function ``healcat.polygon_prepare`` (run by
both paths) rejects self-intersecting and degenerate polygons; here the vertices are read and checked,
and the HEALPix cover computed (``healpix.polygon_ranges``, as ``healcat.polygon_cover``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa
from astropy.coordinates import SkyCoord
from astropy.table import Table

from catalog import healpix
from catalog.errors import QueryError
from catalog.search.region import MAX_ABS_RA_DEG, Region, checked, icrs_deg, search

#: A polygon must lie within this distance [deg] of its centre (the gnomonic projection's domain).
MAX_RADIUS_DEG = 89.0


@dataclass(frozen=True)
class Polygon(Region):
    """Vertices as ((ra_deg, dec_deg), ...) ICRS; a last vertex equal to the first is taken once."""

    vertices_deg: tuple[tuple[float, float], ...]
    what = "polygon"
    function = "polygon_in_ranges"

    def __post_init__(self) -> None:
        """Vertices as float pairs, each checked, and the polygon's size (healcat.polygon_prepare, run by
        the search, also rejects self-intersecting and degenerate polygons)."""
        try:
            pairs = [(v[0], v[1]) if len(v) == 2 else None for v in self.vertices_deg]
        except TypeError:
            raise QueryError(f"polygon: vertices must be (ra_deg, dec_deg) pairs, got {str(self.vertices_deg)[:80]}") \
                from None
        if None in pairs:
            raise QueryError(f"polygon: vertex {pairs.index(None) + 1} is not an (ra_deg, dec_deg) pair")
        object.__setattr__(self, "vertices_deg", tuple(
            (checked("polygon", f"vertex {i} ra_deg", ra, -MAX_ABS_RA_DEG, MAX_ABS_RA_DEG),
             checked("polygon", f"vertex {i} dec_deg", dec, -90.0, 90.0))
            for i, (ra, dec) in enumerate(pairs, start=1)))
        self._ring_and_centre()

    @classmethod
    def from_vertices(cls, vertices) -> Polygon:
        """From [(ra, dec), ...] degrees, an (n, 2) array, or a SkyCoord."""
        if isinstance(vertices, SkyCoord):
            vertices = np.column_stack(icrs_deg("polygon", vertices, "the SkyCoord of vertices"))
        return cls(vertices)

    def _ring_and_centre(self) -> tuple[np.ndarray, np.ndarray, float, float]:
        """The vertices [deg] without a closing repeat of the first, and the centre (their mean direction)
        [deg]; QueryError for too few vertices, no centre, or a vertex 89 deg or more from it."""
        ra, dec = np.radians(np.array(self.vertices_deg, dtype=np.float64).reshape(-1, 2)).T
        if len(ra) > 1 and healpix.angdist_deg(*np.degrees([ra[0], dec[0], ra[-1], dec[-1]])) == 0:
            ra, dec = ra[:-1], dec[:-1]
        if len(ra) < 3:
            raise QueryError(f"polygon: needs at least 3 vertices, got {len(ra)}")
        x, y, z = (np.sum(np.cos(dec) * np.cos(ra)), np.sum(np.cos(dec) * np.sin(ra)), np.sum(np.sin(dec)))
        if np.sqrt(x * x + y * y + z * z) < 1e-9 * len(ra):
            raise QueryError("polygon: the vertices surround no centre (their mean direction is zero)")
        ra0, dec0 = np.degrees(np.arctan2(y, x)), np.degrees(np.arctan2(z, np.hypot(x, y)))
        radius = float(np.max(healpix.angdist_deg(ra0, dec0, np.degrees(ra), np.degrees(dec))))
        if radius >= MAX_RADIUS_DEG:
            raise QueryError(f"polygon: must lie within {MAX_RADIUS_DEG:g} deg of its vertices' mean direction, "
                             f"a vertex is {radius:.3f} deg away")
        return np.degrees(ra), np.degrees(dec), float(ra0), float(dec0)

    def ranges(self) -> np.ndarray:
        """Cones over the cells of the tangent plane the polygon meets (as healcat.polygon_cover)."""
        return healpix.polygon_ranges(*self._ring_and_centre())

    def args(self) -> tuple:
        return ([list(v) for v in self.vertices_deg],)


def polygon_search(vertices, *, release: str | None = None, engine: sa.Engine | None = None) -> Table:
    """Sources inside the spherical polygon, nearest its centre first. Columns as cone_search's."""
    return search(Polygon.from_vertices(vertices), release, engine)
