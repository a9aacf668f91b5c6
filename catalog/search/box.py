"""RA/Dec box search: ``healcat.box_search`` in SQL, ``box_search`` here; the same rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa
from astropy.table import Table

from catalog import healpix
from catalog.errors import QueryError
from catalog.search.cone import MIN_RADIUS_ARCSEC
from catalog.search.region import MAX_ABS_RA_DEG, Region, checked, search


@dataclass(frozen=True)
class Box(Region):
    """dec_min_deg <= dec <= dec_max_deg and RA from ra_min_deg eastwards to ra_max_deg, bounds included:
    ra_min 350, ra_max 10 spans RA 0; ra_max - ra_min >= 360 is every RA. Degrees ICRS, as given."""

    ra_min_deg: float
    ra_max_deg: float
    dec_min_deg: float
    dec_max_deg: float
    what = "box"
    function = "box_in_ranges"

    def __post_init__(self) -> None:
        ra_min = checked("box", "ra_min_deg", self.ra_min_deg, -MAX_ABS_RA_DEG, MAX_ABS_RA_DEG)
        ra_max = checked("box", "ra_max_deg", self.ra_max_deg, -MAX_ABS_RA_DEG, MAX_ABS_RA_DEG)
        dec_min = checked("box", "dec_min_deg", self.dec_min_deg, -90.0, 90.0)
        dec_max = checked("box", "dec_max_deg", self.dec_max_deg, -90.0, 90.0)
        for name, value in zip(("ra_min_deg", "ra_max_deg", "dec_min_deg", "dec_max_deg"),
                               (ra_min, ra_max, dec_min, dec_max)):
            object.__setattr__(self, name, value)
        if dec_min >= dec_max:
            raise QueryError(f"box: dec_min_deg must be below dec_max_deg, got {dec_min} and {dec_max}")
        if ra_max - ra_min < 360.0 and healpix.wrap_ra_deg(ra_min) == healpix.wrap_ra_deg(ra_max):
            raise QueryError(f"box: ra_min_deg and ra_max_deg are the same RA ({ra_min} and {ra_max}): an empty box")
        smallest = MIN_RADIUS_ARCSEC / 3600.0  # the cone's smallest radius: a narrower box's cover under- or overflows
        if healpix.box_ra_width_deg(ra_min, ra_max) < smallest:
            raise QueryError(f"box: ra_min_deg to ra_max_deg must be at least {smallest:g} deg wide (smaller underflows), "
                             f"got {ra_min!r} to {ra_max!r}")
        if dec_max - dec_min < smallest:
            raise QueryError(f"box: dec_min_deg to dec_max_deg must be at least {smallest:g} deg high (smaller "
                             f"underflows), got {dec_min!r} to {dec_max!r}")

    def ranges(self) -> np.ndarray:
        return healpix.box_ranges(self.ra_min_deg, self.ra_max_deg, self.dec_min_deg, self.dec_max_deg)

    def args(self) -> tuple:
        return self.ra_min_deg, self.ra_max_deg, self.dec_min_deg, self.dec_max_deg


def box_search(ra_min_deg: float, ra_max_deg: float, dec_min_deg: float, dec_max_deg: float, *,
               release: str | None = None, engine: sa.Engine | None = None) -> Table:
    """Sources in the box (see Box), nearest the box's centre first.

    Columns: source_id, release, object_id, ra [deg], dec [deg], distance_arcsec (from the centre) [arcsec].
    """
    return search(Box(ra_min_deg, ra_max_deg, dec_min_deg, dec_max_deg), release, engine)
