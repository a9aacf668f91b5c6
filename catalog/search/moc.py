"""MOC search (IVOA Multi-Order Coverage maps: survey footprints, GW credible regions):
``healcat.moc_search`` (ASCII or JSON text) in SQL, ``moc_search`` here (also FITS files and
mocpy MOCs, read by mocpy). A MOC's cells are exact order-29 ranges: the index filter is the test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa
from astropy.table import Table

from catalog import healpix
from catalog.errors import QueryError
from catalog.search.region import Region, search


@dataclass(frozen=True, eq=False)
class Moc(Region):
    """A MOC's order-29 ranges ([lo, hi) rows, sorted and disjoint)."""

    depth29_ranges: np.ndarray
    what = "moc"
    function = "sources_in_ranges"

    @classmethod
    def read(cls, moc) -> Moc:
        """From a mocpy.MOC, a FITS file path, or an ASCII ('3/1-3 4/40') or JSON ('{"3": [1]}') string."""
        try:
            ranges = healpix.moc_ranges(moc)
        except ValueError as exc:  # one line, the input shortened, as healcat.moc_ranges says it
            raise QueryError(f"moc: {exc}") from None
        if not len(ranges):
            raise QueryError("moc: the MOC covers no cells")
        return cls(ranges)

    def ranges(self) -> np.ndarray:
        return self.depth29_ranges

    def args(self) -> tuple:
        return ()

    def sql(self) -> tuple[str, tuple]:
        statement, params = super().sql()
        return statement + " ORDER BY source_id", params


def moc_search(moc, *, release: str | None = None, engine: sa.Engine | None = None) -> Table:
    """Sources in the MOC, by source_id. Columns: source_id, release, object_id, ra [deg], dec [deg]."""
    return search(Moc.read(moc), release, engine)
