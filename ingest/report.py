"""What a release's ingestion kept and rejected: row counts, and its quarantine grouped by reason.

Reasons name the offending value ("dec 95.5 deg is outside [-90, 90]"); the report groups them by
column and the reason with the values blanked out ("dec ... deg is outside [-90, 90]", "sdss_g
point ...: mag ... is ..."), with the first rows of each group (file row number, reason, raw row,
the offending column's cell first, then the columns the object's id is made of, so that the id is
never lost in the ``...`` of a long row) as examples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from catalog.errors import QueryError
from ingest.mapping import template_fields

# The values a reason names: quoted texts, and every number that is not part of a name (sdss_g,
# F435W) nor inside [...] (the range a value is outside of: the same for the whole group).
_BLANK_QUOTED = r"'[^']*'"
_BLANK_NUMBER = r"(?<![\w.])[-+]?(nan|inf|[0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?(?![\w.])(?![^\[]*\])"

REPORT_SQL = sa.text("""
WITH q AS (
    SELECT column_name, row_number, reason, raw,
           regexp_replace(regexp_replace(reason, :quoted, '''...''', 'g'), :number, '...', 'g') AS kind
    FROM healcat.quarantine WHERE release_id = :release_id
), ranked AS (
    SELECT q.*, count(*) OVER w AS n, row_number() OVER (w ORDER BY row_number) AS rank
    FROM q WINDOW w AS (PARTITION BY column_name, kind)
)
SELECT column_name, kind, n, row_number, reason, raw FROM ranked WHERE rank <= greatest(:examples, 1)
ORDER BY n DESC, column_name NULLS FIRST, kind, row_number
""")


@dataclass
class ReasonGroup:
    column: str | None
    reason: str
    count: int
    examples: list[dict[str, Any]]  # row_number, reason, raw


@dataclass
class ReleaseReport:
    release: str
    status: str
    row_counts: dict[str, int]
    quarantine: list[ReasonGroup]
    #: the raw row's keys the object's id is made of: the mapping's object_id template fields, its [xid]
    #: columns, and "object" (the name a per-object file's quarantine row carries)
    id_columns: list[str] = field(default_factory=list)


def id_columns(mapping: Any) -> list[str]:
    """The input columns an object's id comes from in a release's mapping (JSON, as stored): the
    object_id template's fields in template order, then the [xid] columns, then ``object``."""
    source = mapping.get("source") if isinstance(mapping, dict) else None
    template = source.get("object_id") if isinstance(source, dict) else None
    names = template_fields(template) if isinstance(template, str) else []  # (as the loader read it)
    xids = mapping.get("xid") if isinstance(mapping, dict) else None
    names += [c for c in (xids.values() if isinstance(xids, dict) else ()) if isinstance(c, str)]
    names.append("object")
    return list(dict.fromkeys(names))


def example_cells(raw: dict[str, Any], column: str | None, ids: list[str]) -> list[tuple[str, Any]]:
    """A quarantined row's cells in the order a reader wants them: the failing column(s) (a duplicate
    id's column is "plate,mjd,fiberid"), then the object's id columns, then the rest as stored (the
    quarantine keeps the raw row as jsonb, which does not keep the file's column order)."""
    failing = column.split(",") if column else []
    rank = {name: i for i, name in enumerate(failing)}
    for name in ids:
        rank.setdefault(name, len(rank))
    return sorted(raw.items(), key=lambda kv: rank.get(kv[0], len(rank)))  # stable: the rest as they were


def release_report(engine: sa.Engine, release: str, examples: int = 3) -> ReleaseReport:
    """The release's counts and its quarantined rows grouped by (column, reason), most frequent first."""
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT release_id, status, row_counts, mapping FROM healcat.release WHERE name = :n"),
                           {"n": release}).first()
        if row is None:
            known = conn.scalars(sa.text("SELECT name FROM healcat.release ORDER BY name")).all()
            raise QueryError(f"no release {release!r} (known: {', '.join(known) or 'none'})")
        rows = conn.execute(REPORT_SQL, {"release_id": row.release_id, "examples": examples,
                                         "quoted": _BLANK_QUOTED, "number": _BLANK_NUMBER}).all()
    groups: dict[tuple, ReasonGroup] = {}
    for r in rows:
        group = groups.setdefault((r.column_name, r.kind), ReasonGroup(r.column_name, r.kind, r.n, []))
        if len(group.examples) < examples:  # one row per group is read even for none: it carries the count
            group.examples.append({"row_number": r.row_number, "reason": r.reason, "raw": r.raw})
    return ReleaseReport(release, row.status, row.row_counts, list(groups.values()), id_columns(row.mapping))


def format_report(report: ReleaseReport) -> str:
    lines = [f"release {report.release} ({report.status})", "rows:"]
    lines += [f"  {name:16s} {count:>12,d}" for name, count in report.row_counts.items() if count]
    total = sum(g.count for g in report.quarantine)
    lines.append(f"quarantined: {total:,d}" + (" (by column and reason)" if total else ""))
    for g in report.quarantine:
        lines.append(f"  {g.count:>10,d}  {g.column or '-'}: {g.reason}")
        for ex in g.examples:
            cells = example_cells(ex["raw"], g.column, report.id_columns)
            raw = ", ".join(f"{k}={v}" for k, v in cells[:8])
            lines.append(f"              row {ex['row_number']}: {ex['reason']}  [{raw}{', ...' if len(cells) > 8 else ''}]")
    return "\n".join(lines)
