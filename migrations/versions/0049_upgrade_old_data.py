"""values older code stored as the current code would store them, then every release diff recomputed

Revision ID: 0049
Revises: 0048
Create Date: 2026-12-06 07:00:00

What earlier code wrote differently from the current code made the next release of a survey show
objects 'changed' that are not; and the diffs stored before migration 0045 were computed with
releases_v2.sql's fingerprints (blind to proper motions). In order:

- rotation_period.cluster_age_myr, NULL for the rows loaded before migration 0035: the age of the
  row's cluster (healcat.cluster.age_myr: the first age a release gave, the one every row of the
  release agreed with, else it was quarantined; gyrochronology reads coalesce(rp.cluster_age_myr,
  c.age_myr) as it), where the release's mapping maps cluster_age_myr (else the current code
  writes NULL too).
- spectrum.ivar_unit written '(FLUX_UNIT)**-2' (before commit ebe3f1b), which astropy cannot parse:
  (astropy.units.Unit(FLUX_UNIT) ** -2).to_string(), as ingest/perobject.py writes it; a flux
  unit astropy cannot parse (stored as written, before that commit) keeps its ivar unit, with a
  warning.
- attrs (a source's; a joining release's rotation periods') that a text column held as text
  ("16.62" in ztf_bts_snia's fade, rise, duration, peakabs: before commit 52174c7 a column one
  '>25.1' or '-' made text kept all its numbers as strings): a string written as a plain decimal
  number becomes that number, as ingest/cells.py's number_in_text makes it ('>25.1', '-', '007',
  'NaN' stay text), whatever the file's format (ingest applies the rule to any attr column a reader
  gives as text), except for attrs the mapping reads as text (object_id template fields without a
  format spec, [xid] columns).

Then every release compared with a previous one has its diff computed again, by the current code
at the newest schema once all migrations have run, in their transaction (catalog.db.migrate:
ingest.publish.recompute_diffs; a migration importing the application's code would run it against
this revision's schema, which later code may not fit).

The downgrade leaves the data as it is: the values are what the code at 0048 writes too.
"""

import logging
import math
import re
import string

import sqlalchemy as sa
from alembic import op

from migrations.functions import patch_attrs

revision = '0049'
down_revision = '0048'
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

#: ingest/cells.py at this revision (number_in_text, number): frozen here, as the rule the data follows.
_NUMBER_TEXT = re.compile(r"[+-]?(?:0|[1-9][0-9]*)(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?")
_INTEGRAL_TEXT = re.compile(r"^[+-]?\d+(\.0*)?$")
EXACT_FLOAT_INT = 2**53


def number_in_text(text: str):
    """The JSON value ingest stores (as of this revision) for ``text``, a cell of an attr column read as text."""
    s = text.strip()
    if not _NUMBER_TEXT.fullmatch(s):
        return text
    if _INTEGRAL_TEXT.match(s) and not ("." in s and abs(int(s.split(".")[0])) >= EXACT_FLOAT_INT):
        return int(s.split(".")[0])
    value = float(s)
    if not math.isfinite(value):
        return None  # json_scalar: an infinity is null
    if value.is_integer() and abs(value) < EXACT_FLOAT_INT:
        return int(value)
    return value


def upgrade() -> None:
    conn = op.get_bind()
    _cluster_ages(conn)
    _ivar_units(conn)
    _attr_numbers(conn)


def downgrade() -> None:
    pass


def _cluster_ages(conn: sa.Connection) -> None:
    n = conn.execute(sa.text("""
        UPDATE healcat.rotation_period AS rp SET cluster_age_myr = c.age_myr
        FROM healcat.cluster AS c, healcat.release AS r
        WHERE c.cluster_id = rp.cluster_id AND r.release_id = rp.release_id
          AND rp.cluster_age_myr IS NULL AND c.age_myr IS NOT NULL
          AND r.mapping -> 'rotation_period' ->> 'cluster_age_myr' IS NOT NULL
          -- a release loaded since 0035 wrote its ages, NULL where its file gave none: left as it is
          AND NOT EXISTS (SELECT 1 FROM healcat.rotation_period AS x
                          WHERE x.release_id = rp.release_id AND x.cluster_age_myr IS NOT NULL)""")).rowcount
    if n:
        log.info("0049: %d rotation periods given their cluster's age (loaded before 0035)", n)


def _ivar_units(conn: sa.Connection) -> None:
    import astropy.units as u

    old = "ivar_unit = '(' || flux_unit || ')**-2'"
    for flux_unit, n in conn.execute(sa.text(
            f"SELECT flux_unit, count(*) FROM healcat.spectrum WHERE {old} GROUP BY 1 ORDER BY 1")).all():
        try:
            unit = (u.Unit(flux_unit) ** -2).to_string()
        except ValueError:
            log.warning("healcat migration 0049: %d spectra have the flux unit %r, which astropy cannot parse: "
                        "their ivar_unit stays %r", n, flux_unit, f"({flux_unit})**-2")
            continue
        conn.execute(sa.text(f"UPDATE healcat.spectrum SET ivar_unit = :unit WHERE flux_unit = :flux AND {old}"),
                     {"unit": unit, "flux": flux_unit})
        log.info("0049: %d spectra's ivar_unit %r is now %r", n, f"({flux_unit})**-2", unit)


def _numeric_attrs(mapping: dict) -> list[str]:
    """The attrs a release's mapping reads as numbers where a column is numeric: never the object_id
    template's fields without a format spec, nor [xid] columns."""
    source = mapping.get("source") or {}
    attrs = source.get("attrs") or []
    if not isinstance(attrs, list):
        return []
    try:
        text = {name for _, name, spec, _ in string.Formatter().parse(str(source.get("object_id", "")))
                if name and not spec}
    except ValueError:
        text = set()
    xids = mapping.get("xid") or {}
    text |= {v for v in xids.values() if isinstance(v, str)} if isinstance(xids, dict) else set()
    return [a for a in attrs if isinstance(a, str) and a not in text]


#: A string in attrs that number_in_text may make a number (the Python rule decides; this only selects).
_MAYBE_NUMBER = r"^\s*[+-]?(0|[1-9][0-9]*)(\.[0-9]*)?([eE][+-]?[0-9]+)?\s*$"


def _attr_numbers(conn: sa.Connection) -> None:
    releases = conn.execute(sa.text("SELECT release_id, name, mapping FROM healcat.release ORDER BY release_id")).all()
    for release_id, name, mapping in releases:
        keys = _numeric_attrs(mapping or {})
        if keys:
            patch_attrs(conn, revision, (release_id, name), "e.key = ANY(:keys) AND e.value #>> '{}' ~ :pattern",
                        {"keys": keys, "pattern": _MAYBE_NUMBER},
                        lambda key, value: number_in_text(value) if key in keys else value)
