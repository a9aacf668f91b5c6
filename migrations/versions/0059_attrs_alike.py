"""attrs stored alike whatever the file's format, then every release diff recomputed

Revision ID: 0059
Revises: 0058
Create Date: 2026-12-07 10:00:00

The same table loaded from different formats stored different attrs (a data-fidelity review,
2026-12-07): empty text was null from CSV and Parquet and '' from FITS, VOTable, HDF5 and ECSV;
blanks around text were kept by some readers and not others; and an infinity was null from a
column typed as numbers but 'inf' (a NaN 'nan') from a CSV chunk that one 'nan' cell left text,
so one file's column held both. ingest/cells.py's attr_value now stores text without its
surrounding blanks, empty text as null, and, in the attrs a release reads as numbers where a
column is numeric (0049's rule: not the object_id template's fields without a format spec, nor
[xid] columns), text spelling NaN or an infinity as null and a plain decimal number as that
number, also where the reader gave bytes (HDF5, a Parquet binary column: such text stayed text
after 0049, which made the numbers of every other format's text columns numbers). Here the attrs
stored before (sources' and a joining release's rotation periods') are made so. Every release's diff is then computed
again (catalog.db.DIFFS_RECOMPUTED_AT): an object whose attrs this changes in one release only
would otherwise show as 'changed' against the next.

The downgrade leaves the data as it is: the values are what the code at 0058 stores from a CSV.
"""

import importlib
import re
import sys

import sqlalchemy as sa
from alembic import op

from migrations.functions import patch_attrs

revision = '0059'
down_revision = '0058'
branch_labels = None
depends_on = None

#: ingest/cells.py's attr_value at this revision, on a value stored by earlier code: frozen here.
_NON_FINITE_TEXT = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE | re.ASCII)


def stored_attr(value, numeric: bool):
    """The JSON value ingest stores (as of this revision) for ``value``, a stored attr; ``numeric``: the
    release's mapping reads its key as a number where the column is numeric (0049's _numeric_attrs)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if numeric:
        if _NON_FINITE_TEXT.fullmatch(text):
            return None
        # 0049's rule, for the padding its SQL did not select (PostgreSQL's \s: not NBSP, not U+001C-U+001F)
        value = _numbers().number_in_text(text)
        if not isinstance(value, str):
            return value
    return text or None


def _numbers():
    return importlib.import_module("migrations.versions.0049_upgrade_old_data")


def upgrade() -> None:
    conn = op.get_bind()
    # what Python's str.strip() strips, for PostgreSQL's regular expressions (whose \s is the locale's)
    blank = "[" + "".join(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace()) + "]"
    # numbers written as text too: HDF5's and Parquet binary columns' (bytes) were left text after 0049
    selected = ("(e.value #>> '{}' ~ :edge OR e.value #>> '{}' = '' OR (e.key = ANY(:numeric) "
                "AND (e.value #>> '{}' ~* :non_finite OR e.value #>> '{}' ~ :maybe_number)))")
    releases = conn.execute(sa.text("SELECT release_id, name, mapping FROM healcat.release ORDER BY release_id")).all()
    for release_id, name, mapping in releases:
        numeric = _numbers()._numeric_attrs(mapping or {})
        patch_attrs(conn, revision, (release_id, name), selected,
                    {"edge": f"^{blank}|{blank}$", "numeric": numeric, "non_finite": f"^{_NON_FINITE_TEXT.pattern}$",
                     "maybe_number": _numbers()._MAYBE_NUMBER},
                    lambda key, value: stored_attr(value, key in numeric))


def downgrade() -> None:
    pass
