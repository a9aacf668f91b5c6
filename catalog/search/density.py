"""Sky density: sources per NESTED HEALPix pixel at an order, from the index in SQL
(``healcat.sky_density``, ``hpx >> 2*(29-order)``) or from any search's answer."""

from __future__ import annotations

import numpy as np
import sqlalchemy as sa
from astropy.table import Table

from catalog import healpix
from catalog.search.region import checked_int, run
from catalog.search.results import COLUMNS


def sky_density(order: int, *, release: str | None = None, engine: sa.Engine | None = None) -> Table:
    """Columns pix (NESTED pixel at ``order``) and n (sources in it), non-empty pixels only, by pix; the
    order is the Table's ``meta["order"]`` (a pixel number means nothing without it: ECSV keeps it)."""
    order = _checked_order(order)
    table = run(engine, "sky_density", "SELECT * FROM healcat.sky_density(%s, %s)", (order, release))
    table.meta["order"] = order
    return table


def _checked_order(order) -> int:
    """An integer in 0..29, as healcat.sky_density's integer argument (2.5 and True are no order)."""
    return checked_int("sky_density", "order", order, 0, healpix.ORDER)


def density_of(sources: Table, order: int) -> Table:
    """The same columns for the rows of a search's answer (its ra, dec)."""
    order = _checked_order(order)
    if len(sources):
        pix = healpix.hpx_index(sources["ra"], sources["dec"]) >> (2 * (healpix.ORDER - order))
    else:
        pix = np.empty(0, np.int64)
    values, counts = np.unique(pix, return_counts=True)
    return Table([values.astype(np.int64), counts.astype(np.int64)], names=["pix", "n"],
                 descriptions=[COLUMNS["pix"][2], COLUMNS["n"][2]], meta={"order": order})
