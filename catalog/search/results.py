"""Search answers as astropy Tables: fixed dtypes and units per column, so an empty answer still writes."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import sqlalchemy as sa
from astropy.table import MaskedColumn, Table

#: The columns a search returns: (dtype, unit, description).
COLUMNS = {
    "source_id": (np.int64, None, "healcat's id of the source"),
    "release": (str, None, "the catalog release the source is from (healcat's name, survey/release)"),
    "object_id": (str, None, "the source's id in its survey's own catalog"),
    "ra": (np.float64, u.deg, "right ascension (ICRS)"),
    "dec": (np.float64, u.deg, "declination (ICRS)"),
    "distance_arcsec": (np.float64, u.arcsec, "angular distance from the search's centre"),
    "distance": (np.float64, None, "cosine distance in the model's embedding space (0: alike, 2: opposite)"),
    "pix": (np.int64, None, "HEALPix pixel (nested, ICRS) at the order meta['order']"),
    "n": (np.int64, None, "sources in the pixel"),
}


def to_table(result: sa.CursorResult) -> Table:
    """Rows as a Table with fixed dtypes and units, so an empty answer still writes as VOTable or ECSV."""
    return table_from_columns(list(result.keys()), result.fetchall())


def table_from_columns(names: list[str], rows: list[tuple]) -> Table:
    """A Table built column by column (one numpy array per column, not a row at a time), each column with
    its unit and description; a table of positions says their frame in its meta (``frame``: ICRS)."""
    columns = list(zip(*rows)) if rows else [()] * len(names)
    table = Table([np.array(column, dtype=COLUMNS[name][0]) for name, column in zip(names, columns)],
                  names=names, units=[COLUMNS[name][1] for name in names],
                  descriptions=[COLUMNS[name][2] for name in names], copy=False)
    if "ra" in names:
        table.meta["frame"] = "ICRS"
    return table


def masked_column(values: list, dtype, unit=None) -> MaskedColumn:
    """A column of fixed ``dtype`` and ``unit`` from values where None (SQL's NULL) is masked, never a
    sentinel a reader could take for a value (its cell holds ``dtype()``: 0 or '')."""
    missing = np.array([v is None for v in values], dtype=bool)
    data = np.array([dtype() if v is None else v for v in values], dtype=dtype)
    return MaskedColumn(data, mask=missing, unit=unit)
