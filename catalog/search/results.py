"""Search answers as astropy Tables: fixed dtypes and units per column, so an empty answer still writes."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import sqlalchemy as sa
from astropy.table import MaskedColumn, Table

#: The columns a search returns: (dtype, unit).
COLUMNS = {
    "source_id": (np.int64, None),
    "release": (str, None),
    "object_id": (str, None),
    "ra": (np.float64, u.deg),
    "dec": (np.float64, u.deg),
    "distance_arcsec": (np.float64, u.arcsec),
    "distance": (np.float64, None),
    "pix": (np.int64, None),
    "n": (np.int64, None),
}


def to_table(result: sa.CursorResult) -> Table:
    """Rows as a Table with fixed dtypes and units, so an empty answer still writes as VOTable or ECSV."""
    return table_from_columns(list(result.keys()), result.fetchall())


def table_from_columns(names: list[str], rows: list[tuple]) -> Table:
    """A Table built column by column (one numpy array per column, not a row at a time)."""
    columns = list(zip(*rows)) if rows else [()] * len(names)
    return Table([np.array(column, dtype=COLUMNS[name][0]) for name, column in zip(names, columns)],
                 names=names, units=[COLUMNS[name][1] for name in names], copy=False)


def masked_column(values: list, dtype, unit=None) -> MaskedColumn:
    """A column of fixed ``dtype`` and ``unit`` from values where None (SQL's NULL) is masked, never a
    sentinel a reader could take for a value (its cell holds ``dtype()``: 0 or '')."""
    missing = np.array([v is None for v in values], dtype=bool)
    data = np.array([dtype() if v is None else v for v in values], dtype=dtype)
    return MaskedColumn(data, mask=missing, unit=unit)
