"""Ellipse search: ``healcat.ellipse_search`` in SQL, ``ellipse_search`` here; the same rows.

The region is the spherical ellipse: points whose great-circle distances to the two foci sum to at
most 2a, the foci lying c from the centre along the position angle, cos a = cos b cos c.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa
from astropy.table import Table

from catalog import healpix
from catalog.errors import QueryError
from catalog.search.cone import MIN_RADIUS_ARCSEC
from catalog.search.region import Region, checked, search


@dataclass(frozen=True)
class Ellipse(Region):
    """Centre (ICRS deg), semi-axes [arcsec], major axis at pa_deg east of north."""

    ra_deg: float
    dec_deg: float
    semi_major_arcsec: float
    semi_minor_arcsec: float
    pa_deg: float
    what = "ellipse"
    function = "ellipse_in_ranges"

    def __post_init__(self) -> None:
        self._check_centre()
        # below 90 deg: at 90 the foci are antipodal and the "ellipse" is the whole sky
        major = checked("ellipse", "semi_major_arcsec", self.semi_major_arcsec, 0.0, 90.0 * 3600.0, lo_open=True,
                        hi_open=True)
        object.__setattr__(self, "semi_major_arcsec", major)
        object.__setattr__(self, "semi_minor_arcsec",
                           checked("ellipse", "semi_minor_arcsec", self.semi_minor_arcsec, 0.0, major, lo_open=True))
        object.__setattr__(self, "pa_deg", checked("ellipse", "pa_deg", self.pa_deg))
        if self.semi_minor_arcsec < MIN_RADIUS_ARCSEC:  # the foci's trigonometry underflows below, as healcat.check_ellipse
            raise QueryError(f"ellipse: semi_minor_arcsec must be at least {MIN_RADIUS_ARCSEC:g}, "
                             f"got {self.semi_minor_arcsec!r}")

    def ranges(self) -> np.ndarray:
        """The bounding cone (radius a) plus 1e-9 deg, as healcat.ellipse_search."""
        return healpix.cone_ranges(self.ra_deg, self.dec_deg, self.semi_major_arcsec / 3600.0 + 1e-9)

    def args(self) -> tuple:
        return self.ra_deg, self.dec_deg, self.semi_major_arcsec, self.semi_minor_arcsec, self.pa_deg


def ellipse_search(ra_deg, dec_deg=None, semi_major_arcsec=None, semi_minor_arcsec=None, pa_deg=0.0, *,
                   release: str | None = None, engine: sa.Engine | None = None) -> Table:
    """Sources in the ellipse, nearest its centre first; the centre may be a SkyCoord given as ``ra_deg``
    (``ellipse_search(coord, semi_major_arcsec=..., semi_minor_arcsec=...)``). Columns as cone_search's."""
    return search(Ellipse(ra_deg, dec_deg, semi_major_arcsec, semi_minor_arcsec, pa_deg), release, engine)
