"""A catalog's releases as astropy Tables: which are current, what each changed (``healcat release ...``)."""

from __future__ import annotations

import sqlalchemy as sa
from astropy.table import Table

from catalog.errors import QueryError
from catalog.search.results import masked_column

_LIST = """
SELECT r.name AS release, s.name AS survey, r.status, r.release_date::text AS release_date,
       coalesce((r.row_counts ->> 'source')::bigint, 0) AS n_source,
       coalesce(p.name, '') AS previous,
       count(c.*) FILTER (WHERE c.change = 'new') AS n_new,
       count(c.*) FILTER (WHERE c.change = 'changed') AS n_changed,
       count(c.*) FILTER (WHERE c.change = 'vanished') AS n_vanished,
       to_char(r.created_at, 'YYYY-MM-DD HH24:MI:SS') AS loaded_at
FROM healcat.release AS r
JOIN healcat.survey AS s USING (survey_id)
LEFT JOIN healcat.release AS p ON p.release_id = r.previous_release_id
LEFT JOIN healcat.release_change AS c ON c.release_id = r.release_id
{where}
GROUP BY r.release_id, s.name, p.name
ORDER BY s.name, coalesce(r.release_date, 'infinity'::date), r.release_id
"""

_DIFF = """
SELECT c.change, coalesce(n.object_id, '') AS object_id, coalesce(o.object_id, '') AS previous_object_id,
       coalesce(c.matched_by, '') AS matched_by, c.separation_arcsec,
       CASE WHEN c.change = 'vanished' THEN NULL ELSE c.source_id END AS source_id, c.previous_source_id{fields}
FROM healcat.release_change AS c
JOIN healcat.release AS r ON r.release_id = c.release_id
LEFT JOIN healcat.source AS n ON c.change <> 'vanished' AND n.shard = c.shard AND n.source_id = c.source_id
LEFT JOIN healcat.source AS o ON o.shard = c.previous_shard AND o.source_id = c.previous_source_id
WHERE r.name = :name {where}
ORDER BY c.change, coalesce(n.object_id, o.object_id)
"""
_FIELDS = """,
       CASE WHEN c.change = 'changed'
            THEN array_to_string(healcat.change_fields(c.release_id, c.shard, c.source_id), ', ') ELSE '' END AS fields"""


# How many other surveys' sources a release's rows in the per-release tables sit on (a joining
# release's objects: ingest/publish.py diffs them), for the tables its row counts say it wrote to.
_JOINED = """
SELECT count(*) FROM (
    SELECT DISTINCT t.shard, t.source_id FROM ({rows}) AS t
    JOIN healcat.source AS s ON s.shard = t.shard AND s.source_id = t.source_id
    WHERE s.release_id <> :r) AS j
"""
PER_RELEASE_TABLES = ("light_curve", "spectrum", "label", "rotation_period", "stellar_mass")


def _table(rows, names: list[str], dtype: list) -> Table:
    """A typed table; NULLs are masked, never a sentinel."""
    return Table([masked_column([r[i] for r in rows], kind) for i, kind in enumerate(dtype)], names=names)


def list_releases(conn: sa.Connection, survey: str | None = None) -> Table:
    """Every release, oldest first per survey, with its status and its changes against the previous one.
    ``survey``: only its releases; its name matched regardless of case (``SDSS`` is ``sdss``), and a name
    the catalog has no survey of is an error naming the surveys it has."""
    if survey is not None:
        survey = survey_named(conn, survey)
    rows = conn.execute(sa.text(_LIST.format(where="WHERE s.name = :survey" if survey else "")),
                        {"survey": survey}).all()
    return _table(rows, ["release", "survey", "status", "release_date", "n_source", "previous", "n_new",
                         "n_changed", "n_vanished", "loaded_at"],
                  [str, str, str, str, int, str, int, int, int, str])


def survey_named(conn: sa.Connection, name: str) -> str:
    """The catalog's name of survey ``name``, matched regardless of case; a QueryError naming the
    catalog's surveys if it has none of that name."""
    names = conn.execute(sa.text("SELECT name FROM healcat.survey ORDER BY name")).scalars().all()
    found = [n for n in names if n == name] or [n for n in names if n.lower() == name.lower()]
    if len(found) != 1:  # none, or several differing only in case (then the exact name is needed)
        known = ", ".join(names) if names else "none yet (`healcat ingest MAPPING` loads one)"
        raise QueryError(f"no survey named {name!r}" + (" (several differ only in case: give the exact name)"
                                                         if found else "") + f"; the catalog's surveys: {known}")
    return found[0]


def show_release(conn: sa.Connection, name: str) -> dict:
    """One release's provenance, row counts and change counts."""
    row = conn.execute(sa.text(
        "SELECT r.*, s.name AS survey, p.name AS previous FROM healcat.release AS r JOIN healcat.survey AS s "
        "USING (survey_id) LEFT JOIN healcat.release AS p ON p.release_id = r.previous_release_id "
        "WHERE r.name = :name"), {"name": name}).mappings().first()
    if row is None:
        raise QueryError(f"no release named {name!r}")
    changes = dict(conn.execute(sa.text(
        "SELECT change, count(*) FROM healcat.release_change WHERE release_id = :r GROUP BY change"),
        {"r": row["release_id"]}).all())
    counts = {c: changes.get(c, 0) for c in ("new", "changed", "vanished")}
    # Its objects: its own sources, and the other surveys' sources its per-release rows sit on.
    objects = {"own": int(row["row_counts"].get("source", 0)), "joined": _joined_objects(conn, row)}
    if row["previous"] is not None:
        counts["unchanged"] = objects["own"] + objects["joined"] - counts["new"] - counts["changed"]
    withdrawn = ({"withdrawn": f"{row['withdrawn_at']:%Y-%m-%d %H:%M:%S %Z}: {row['withdrawn_reason']}"}
                 if row["withdrawn_at"] else {})
    return {"release": name, "survey": row["survey"], "status": row["status"], **withdrawn,
            "release_date": str(row["release_date"] or ""), "source_uri": row["source_uri"],
            "checksum": row["checksum"], "loaded_at": str(row["created_at"])[:19],
            "previous": row["previous"] or "", "row_counts": row["row_counts"], "objects": objects,
            "changes": counts}


def _joined_objects(conn: sa.Connection, release) -> int:
    """How many other surveys' sources the release's per-release rows sit on (0 for an owning release)."""
    tables = [t for t in PER_RELEASE_TABLES if int(release["row_counts"].get(t) or 0) > 0]
    if not tables:
        return 0
    rows = " UNION ALL ".join(f"SELECT shard, source_id FROM healcat.{t} WHERE release_id = :r" for t in tables)
    return conn.scalar(sa.text(_JOINED.format(rows=rows)), {"r": release["release_id"]})


def diff_release(conn: sa.Connection, name: str, change: str | None = None, fields: bool = False) -> Table:
    """The objects a release added, changed or lost against the survey's previous release. With
    ``fields``, a column ``fields`` names, for a changed object, what changed (``healcat.change_fields``:
    ``position``, ``photometry.sdss_r``, ``attrs.Teff``, ``object_id``, ``stellar_mass``, ...),
    comma-separated; it is empty for new and vanished objects. It costs 0.3-0.5 ms a changed object
    (the diff itself is read from ``release_change``), so it is asked for."""
    show_release(conn, name)  # an unknown name is an error, not an empty diff
    rows = conn.execute(sa.text(_DIFF.format(where="AND c.change = :change" if change else "",
                                             fields=_FIELDS if fields else "")),
                        {"name": name, "change": change}).all()
    columns = {"change": str, "object_id": str, "previous_object_id": str, "matched_by": str,
               "separation_arcsec": float, "source_id": int, "previous_source_id": int,
               **({"fields": str} if fields else {})}
    table = _table(rows, list(columns), list(columns.values()))
    table["separation_arcsec"].unit = "arcsec"
    return table
