"""Publish a release in its load transaction: supersede the survey's older release, record what changed.

Called by :func:`ingest.load.ingest_release` inside the transaction that copied the release's
rows, so readers of the ``current_*`` views see the survey's previous release or the new one,
never half of it, and never both.

- Order of a survey's releases: by release date, then load order; a release without a date
  counts as the newest. The newest release is ``published``, every other one ``superseded``
  (the partial unique index ``uq_release_published_survey`` allows one published per survey).
  A back-filled older release is stored superseded at once, and the release right after it is
  compared anew with it (its ``previous_release_id`` and changes).
- A ``withdrawn`` release (:func:`withdraw`: published by mistake, or its data found wrong) has no
  place in that order: the newest of the others is published, and the release after it is compared
  anew with the one before it. Its rows, diff and predictions stay, read by its name; no new model
  run or training reads it. :func:`restore` puts it back in its place, as if loaded again.
- Cross-identification with the previous release (the one just before it in that order): by
  the survey's ``object_id`` first, then, for the objects left on both sides, by position
  (mutual nearest neighbours within ``MATCH_RADIUS_ARCSEC``, through the HEALPix index).
- ``release_change`` gets one row per object that is ``new`` (no match), ``changed`` (matched,
  but another id or other stored values: ``healcat.source_fingerprint`` differs) or ``vanished``
  (an object of the previous release with no match). Unchanged objects get no row.
- A joining release (``join = CATALOG``; spectra matched to another survey's source) puts rows of
  the per-release tables (stellar masses, rotation periods, labels, spectra, light curves) on
  another survey's sources: those objects are its rows on each such source. They are paired with
  the previous release's by source (shard, source_id), then, for those left on both sides, by the
  object_id of their sources within the same survey (the base survey re-released, the joining one
  reloaded against it); ``changed`` where ``healcat.per_release_fingerprint`` differs. Their
  ``release_change`` rows are keyed by those sources (the previous one for ``vanished``), as an
  owning release's are by its own; ``matched_by`` is ``object_id``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import sqlalchemy as sa

from catalog.errors import QueryError
from catalog.releases import PER_RELEASE_TABLES

log = logging.getLogger(__name__)

MATCH_RADIUS_ARCSEC = 1.0

# (release date, release_id): the order of a survey's releases; undated ones count as newest.
_ORDER = "(coalesce({r}.release_date, 'infinity'::date), {r}.release_id)"
# The survey's other releases that have a place in that order (withdrawn ones have none).
_OTHERS = "o.survey_id = n.survey_id AND o.status <> 'withdrawn'"

_PLACE = sa.text(f"""
SELECT (SELECT o.release_id FROM healcat.release AS o
        WHERE {_OTHERS} AND {_ORDER.format(r='o')} < {_ORDER.format(r='n')}
        ORDER BY {_ORDER.format(r='o')} DESC LIMIT 1) AS previous_id,
       (SELECT o.release_id FROM healcat.release AS o
        WHERE {_OTHERS} AND {_ORDER.format(r='o')} > {_ORDER.format(r='n')}
        ORDER BY {_ORDER.format(r='o')} LIMIT 1) AS next_id
FROM healcat.release AS n WHERE n.release_id = :release_id
""")

# The two releases' objects, copied into analysed temporary tables: the new release's rows are not
# committed yet, so the statistics of healcat.source know nothing of them, and a plan built on
# them can turn a hash join of two 100,000-row releases into a nested loop that runs for hours.
_SIDES = [sa.text(f"""
CREATE TEMP TABLE release_{side} ON COMMIT DROP AS
    SELECT shard, source_id, object_id, ra, dec, hpx FROM healcat.source WHERE release_id = :{key}""")
    for side, key in (("new", "release_id"), ("old", "previous"))]
_MATCH_TABLE = """
CREATE TEMP TABLE release_match (
    shard smallint, source_id bigint, previous_shard smallint, previous_source_id bigint,
    matched_by text, separation_arcsec float8) ON COMMIT DROP;
ANALYZE release_new, release_old
"""

# After the id match: what the position match and the changes look up in release_match.
_MATCH_INDEXES = ("CREATE INDEX ON release_match (source_id); CREATE INDEX ON release_match (previous_source_id); "
                  "ANALYZE release_match")

_MATCH_BY_ID = sa.text("""
INSERT INTO release_match
SELECT n.shard, n.source_id, o.shard, o.source_id, 'object_id', healcat.angdist_deg(n.ra, n.dec, o.ra, o.dec) * 3600
FROM release_new AS n JOIN release_old AS o USING (object_id)
""")

# Objects left unmatched on both sides: each new one's candidates within the radius, as the
# cross-match finds them (the <= 4 probe pixels that hold its disk, healcat.hpx_xmatch_probe_cover,
# hash-joined to the old objects' pixels; exact distance), kept where each is the other's nearest.
# A recursive cone cover per object (hpx_cone_cover) cost 0.5 ms each: minutes for a renumbered
# release of 500,000 objects, under the survey's publish lock.
_MATCH_BY_POSITION = sa.text("""
INSERT INTO release_match
WITH left_new AS (
    SELECT s.shard, s.source_id, s.ra, s.dec, s.hpx FROM release_new AS s
    WHERE s.hpx IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM release_match AS m WHERE m.source_id = s.source_id)),
left_old AS MATERIALIZED (
    SELECT o.shard, o.source_id, o.ra, o.dec,
           o.hpx >> (2 * (29 - healcat.xmatch_probe_order(:radius_arcsec))) AS pix
    FROM release_old AS o
    WHERE o.hpx IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM release_match AS m WHERE m.previous_source_id = o.source_id)),
candidate AS (
    SELECT n.shard, n.source_id, o.shard AS previous_shard, o.source_id AS previous_source_id,
           healcat.angdist_deg(n.ra, n.dec, o.ra, o.dec) * 3600 AS separation_arcsec
    FROM left_new AS n
    CROSS JOIN LATERAL healcat.hpx_xmatch_probe_cover(healcat.xmatch_order(:radius_arcsec),
                                                      healcat.xmatch_probe_order(:radius_arcsec), n.hpx) AS c
    JOIN left_old AS o ON o.pix = c.pix),
close AS (SELECT * FROM candidate WHERE separation_arcsec <= :radius_arcsec),
nearest_old AS (
    SELECT DISTINCT ON (source_id) * FROM close ORDER BY source_id, separation_arcsec, previous_source_id),
nearest_new AS (
    SELECT DISTINCT ON (previous_source_id) * FROM close
    ORDER BY previous_source_id, separation_arcsec, source_id)
SELECT a.shard, a.source_id, a.previous_shard, a.previous_source_id, 'position', a.separation_arcsec
FROM nearest_old AS a JOIN nearest_new AS b USING (source_id, previous_source_id)
""")

_RECORD = sa.text("""
INSERT INTO healcat.release_change
    (shard, source_id, release_id, change, previous_shard, previous_source_id, matched_by, separation_arcsec)
SELECT n.shard, n.source_id, :release_id, 'new', NULL, NULL, NULL, NULL
FROM release_new AS n
WHERE NOT EXISTS (SELECT 1 FROM release_match AS m WHERE m.source_id = n.source_id)
UNION ALL
SELECT m.shard, m.source_id, :release_id, 'changed', m.previous_shard, m.previous_source_id, m.matched_by,
       m.separation_arcsec
FROM release_match AS m
WHERE m.matched_by = 'position'
   OR healcat.source_fingerprint(m.shard, m.source_id)
      IS DISTINCT FROM healcat.source_fingerprint(m.previous_shard, m.previous_source_id)
UNION ALL
SELECT o.shard, o.source_id, :release_id, 'vanished', o.shard, o.source_id, NULL, NULL
FROM release_old AS o
WHERE NOT EXISTS (SELECT 1 FROM release_match AS m WHERE m.previous_source_id = o.source_id)
""")

# A joining release's objects: the other surveys' sources its per-release rows sit on (never its own
# survey's: ingest.load._owners and ingest.perobject._matches join only other surveys' sources).
_JOINED = """
CREATE TEMP TABLE joined_{side} ON COMMIT DROP AS
SELECT DISTINCT s.shard, s.source_id, s.object_id, s.ra, s.dec, r.survey_id
FROM ({rows}) AS t
JOIN healcat.source AS s ON s.shard = t.shard AND s.source_id = t.source_id
JOIN healcat.release AS r ON r.release_id = s.release_id
WHERE s.release_id <> :release_id
"""
_NO_ROWS = "SELECT NULL::smallint AS shard, NULL::bigint AS source_id WHERE false"

# Pairs: the same source first (_JOINED_SAME), then the sources left on both sides by object_id within one survey
# (one each way: a base survey's object_id is unique in its release).
_JOINED_SAME = sa.text("""
CREATE TEMP TABLE joined_match ON COMMIT DROP AS
SELECT n.shard, n.source_id, o.shard AS previous_shard, o.source_id AS previous_source_id,
       healcat.angdist_deg(n.ra, n.dec, o.ra, o.dec) * 3600 AS separation_arcsec
FROM joined_new AS n JOIN joined_old AS o ON o.shard = n.shard AND o.source_id = n.source_id
""")
_JOINED_BY_ID = sa.text("""
INSERT INTO joined_match
WITH left_new AS (
    SELECT * FROM joined_new AS n
    WHERE NOT EXISTS (SELECT 1 FROM joined_match AS m WHERE m.shard = n.shard AND m.source_id = n.source_id)),
left_old AS (
    SELECT * FROM joined_old AS o
    WHERE NOT EXISTS (SELECT 1 FROM joined_match AS m
                      WHERE m.previous_shard = o.shard AND m.previous_source_id = o.source_id)),
pair AS (
    SELECT n.shard, n.source_id, o.shard AS previous_shard, o.source_id AS previous_source_id,
           healcat.angdist_deg(n.ra, n.dec, o.ra, o.dec) * 3600 AS separation_arcsec
    FROM left_new AS n JOIN left_old AS o ON o.object_id = n.object_id AND o.survey_id = n.survey_id),
one_per_new AS (
    SELECT DISTINCT ON (shard, source_id) * FROM pair ORDER BY shard, source_id, previous_shard, previous_source_id),
one_per_old AS (
    SELECT DISTINCT ON (previous_shard, previous_source_id) * FROM pair
    ORDER BY previous_shard, previous_source_id, shard, source_id)
SELECT a.* FROM one_per_new AS a JOIN one_per_old AS b USING (shard, source_id, previous_shard, previous_source_id)
""")

_JOINED_RECORD = sa.text("""
INSERT INTO healcat.release_change
    (shard, source_id, release_id, change, previous_shard, previous_source_id, matched_by, separation_arcsec)
SELECT n.shard, n.source_id, :release_id, 'new', NULL, NULL, NULL, NULL
FROM joined_new AS n
WHERE NOT EXISTS (SELECT 1 FROM joined_match AS m WHERE m.shard = n.shard AND m.source_id = n.source_id)
UNION ALL
SELECT m.shard, m.source_id, :release_id, 'changed', m.previous_shard, m.previous_source_id, 'object_id',
       m.separation_arcsec
FROM joined_match AS m
WHERE healcat.per_release_fingerprint(m.shard, m.source_id, :release_id)
      IS DISTINCT FROM healcat.per_release_fingerprint(m.previous_shard, m.previous_source_id, :previous)
UNION ALL
SELECT o.shard, o.source_id, :release_id, 'vanished', o.shard, o.source_id, NULL, NULL
FROM joined_old AS o
WHERE NOT EXISTS (SELECT 1 FROM joined_match AS m
                  WHERE m.previous_shard = o.shard AND m.previous_source_id = o.source_id)
""")

_COUNTS = sa.text("SELECT change, count(*) FROM healcat.release_change WHERE release_id = :release_id GROUP BY change")


def _locked(conn: sa.Connection, release_id: int) -> sa.Row:
    """The release's survey_id, name, status and withdrawal, once this transaction is the survey's one
    publisher (the next sees what it did once it commits)."""
    survey_id = conn.scalar(sa.text("SELECT survey_id FROM healcat.release WHERE release_id = :r"),
                            {"r": release_id})
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('publish:' || :s))"), {"s": survey_id})
    return conn.execute(sa.text("SELECT survey_id, name, status, withdrawn_at, withdrawn_reason "
                                "FROM healcat.release WHERE release_id = :r"), {"r": release_id}).one()


def _forget_diff(conn: sa.Connection, release_id: int) -> None:
    """Take away a release's comparison with its previous release (its changes, and which it was)."""
    conn.execute(sa.text("DELETE FROM healcat.release_change WHERE release_id = :r"), {"r": release_id})
    conn.execute(sa.text("UPDATE healcat.release SET previous_release_id = NULL WHERE release_id = :r"),
                 {"r": release_id})


def _compare_again(conn: sa.Connection, release_id: int, previous_id: int | None) -> None:
    """Compare a release anew with another previous release (None: it now has none)."""
    _forget_diff(conn, release_id)
    _record_changes(conn, release_id, previous_id)


def publish(conn: sa.Connection, release_id: int) -> dict[str, int]:
    """Make a just-loaded release current (or superseded, if older) and record its changes.

    Runs in the caller's transaction. Returns the number of objects new, changed and vanished.
    """
    survey_id = _locked(conn, release_id).survey_id
    place = conn.execute(_PLACE, {"release_id": release_id}).one()
    if place.next_id is not None:
        conn.execute(sa.text("UPDATE healcat.release SET status = 'superseded' WHERE release_id = :r"),
                     {"r": release_id})
    else:
        conn.execute(sa.text("UPDATE healcat.release SET status = 'superseded' "
                             "WHERE survey_id = :s AND release_id <> :r AND status = 'published'"),
                     {"s": survey_id, "r": release_id})
        conn.execute(sa.text("UPDATE healcat.release SET status = 'published' WHERE release_id = :r"),
                     {"r": release_id})
    counts = _record_changes(conn, release_id, place.previous_id)
    if place.next_id is not None:  # back-filled between two releases: the next one now follows it
        _compare_again(conn, place.next_id, release_id)
    return counts


# The survey's newest release that has a place in its order (not withdrawn).
_NEWEST = sa.text(f"""
SELECT o.release_id FROM healcat.release AS o WHERE o.survey_id = :s AND o.status <> 'withdrawn'
ORDER BY {_ORDER.format(r='o')} DESC LIMIT 1
""")

# Other releases' rows in the per-release tables on a release's sources (a joining release's objects).
_JOINED_ON = " UNION ALL ".join(
    f"SELECT t.release_id FROM healcat.{t} AS t JOIN healcat.source AS s USING (shard, source_id) "
    "WHERE s.release_id = :r AND t.release_id <> :r" for t in PER_RELEASE_TABLES)
_ROWS_JOINED = sa.text(f"SELECT v.name, count(*) FROM ({_JOINED_ON}) AS j JOIN healcat.release AS v "
                       "USING (release_id) GROUP BY v.name ORDER BY v.name")


@dataclass
class Lifecycle:
    """What :func:`withdraw` or :func:`restore` did."""

    status: str  # the release's status now
    published: str | None  # its survey's published release now (None: none is)
    queued: list[int] = field(default_factory=list)  # infer jobs queued (on the release published or restored)
    joined: dict[str, int] = field(default_factory=dict)  # other releases' rows on its sources, by release


_PUBLISHED = sa.text("SELECT release_id, name FROM healcat.release WHERE survey_id = :s AND status = 'published'")


def _published(conn: sa.Connection, survey_id: int, before: sa.Row | None) -> tuple[str | None, list[int]]:
    """The survey's published release, and the infer jobs queued on it if it is not ``before`` (the one
    published before: its current models may never have run on the new one, as a superseded release
    keeps only the runs it had)."""
    from ingest.registry import enqueue_inference

    now = conn.execute(_PUBLISHED, {"s": survey_id}).first()
    if now is None or (before is not None and now.release_id == before.release_id):
        return (now.name if now else None), []
    return now.name, enqueue_inference(conn, now.release_id)


def withdraw(conn: sa.Connection, name: str, reason: str) -> Lifecycle:
    """Withdraw release ``name`` (published by mistake, or its data found wrong), in the caller's
    transaction: it leaves its survey's order of releases; if it was published, the newest of the
    others is, and every current model that applies is queued to run on it; the release after it is
    compared anew with the one before it. Nothing is deleted. If it was published, other releases'
    rows on its sources (a joining release's) are counted: no current view reaches them now."""
    from ingest.registry import release_id_of

    if not reason.strip():
        raise QueryError(f"withdraw {name}: say why (a reason is kept with the release)")
    release_id = release_id_of(conn, name)
    release = _locked(conn, release_id)
    if release.status == "withdrawn":
        raise QueryError(f"{name} was withdrawn already, at {release.withdrawn_at:%Y-%m-%d %H:%M:%S %Z} "
                         f"({release.withdrawn_reason})")
    place = conn.execute(_PLACE, {"release_id": release_id}).one()
    before = conn.execute(_PUBLISHED, {"s": release.survey_id}).first()
    conn.execute(sa.text("UPDATE healcat.release SET status = 'withdrawn', withdrawn_at = now(), "
                         "withdrawn_reason = :why WHERE release_id = :r"), {"r": release_id, "why": reason.strip()})
    if release.status == "published" and (newest := conn.scalar(_NEWEST, {"s": release.survey_id})) is not None:
        conn.execute(sa.text("UPDATE healcat.release SET status = 'published' WHERE release_id = :r"), {"r": newest})
    if place.next_id is not None:
        _compare_again(conn, place.next_id, place.previous_id)
    log.info("%s withdrawn (%s)", name, reason.strip())
    published, queued = _published(conn, release.survey_id, before)
    joined = dict(conn.execute(_ROWS_JOINED, {"r": release_id}).all()) if release.status == "published" else {}
    return Lifecycle("withdrawn", published, queued, joined)


def restore(conn: sa.Connection, name: str) -> Lifecycle:
    """Put a withdrawn release back in its survey's order, in the caller's transaction, as
    :func:`publish` places a release loaded again: published if it is the newest, compared anew with
    the release before it (and the one after it with it), and every current model that applies
    queued to run on it (a version promoted while it was withdrawn has never run there)."""
    from ingest.registry import enqueue_inference, release_id_of

    release_id = release_id_of(conn, name)
    release = _locked(conn, release_id)
    if release.status != "withdrawn":
        raise QueryError(f"{name} is not withdrawn: nothing to restore")
    conn.execute(sa.text("UPDATE healcat.release SET status = 'superseded', withdrawn_at = NULL, "
                         "withdrawn_reason = NULL WHERE release_id = :r"), {"r": release_id})
    _forget_diff(conn, release_id)
    publish(conn, release_id)
    now = conn.execute(_PUBLISHED, {"s": release.survey_id}).one()  # this one, or a newer one
    return Lifecycle("published" if now.release_id == release_id else "superseded", now.name,
                     enqueue_inference(conn, release_id))


def match_objects(conn: sa.Connection, radius_arcsec: float) -> None:
    """Fill the temporary table release_match from release_new and release_old: pairs by object_id,
    then the objects left on both sides by position (mutual nearest within ``radius_arcsec``)."""
    conn.exec_driver_sql(_MATCH_TABLE)
    conn.execute(_MATCH_BY_ID)
    conn.exec_driver_sql(_MATCH_INDEXES)
    conn.execute(_MATCH_BY_POSITION, {"radius_arcsec": radius_arcsec})


def recompute_diffs(conn: sa.Connection) -> None:
    """Every release compared with a previous one has its diff computed again (its ``release_change``
    rows replaced, against the same previous release), as a back-filled release's successor has:
    after an upgrade that changed what the diffs compare (catalog.db.migrate)."""
    releases = conn.execute(sa.text("SELECT release_id, name, previous_release_id FROM healcat.release "
                                    "WHERE previous_release_id IS NOT NULL ORDER BY release_id")).all()
    for release_id, name, previous_id in releases:
        conn.execute(sa.text("DELETE FROM healcat.release_change WHERE release_id = :r"), {"r": release_id})
        log.info("%s: its diff computed again: %s", name, _record_changes(conn, release_id, previous_id))
    if releases:
        conn.execute(sa.text("ANALYZE healcat.release_change"))


def _record_changes(conn: sa.Connection, release_id: int, previous_id: int | None) -> dict[str, int]:
    """Cross-identify a release with the one before it and record the objects new, changed and vanished:
    its own sources, and the other surveys' sources its per-release rows sit on (:func:`_record_joined`)."""
    counts = {"new": 0, "changed": 0, "vanished": 0}
    if previous_id is None:
        counts["new"] = conn.scalar(sa.text("SELECT count(*) FROM healcat.source WHERE release_id = :r"),
                                    {"r": release_id})
        if _joined_tables(conn, release_id):
            _joined_side(conn, "new", release_id)
            counts["new"] += conn.scalar(sa.text("SELECT count(*) FROM joined_new"))
            conn.exec_driver_sql("DROP TABLE joined_new")
        return counts
    conn.execute(sa.text("UPDATE healcat.release SET previous_release_id = :p WHERE release_id = :r"),
                 {"p": previous_id, "r": release_id})
    params = {"release_id": release_id, "previous": previous_id, "radius_arcsec": MATCH_RADIUS_ARCSEC}
    for statement in _SIDES:
        conn.execute(statement, params)
    match_objects(conn, params["radius_arcsec"])
    conn.execute(_RECORD, params)
    conn.exec_driver_sql("DROP TABLE release_match, release_new, release_old")
    _record_joined(conn, release_id, previous_id)
    counts.update(dict(conn.execute(_COUNTS, {"release_id": release_id}).all()))
    log.info("release %d against %d: %s", release_id, previous_id, counts)
    return counts


def _joined_tables(conn: sa.Connection, release_id: int) -> list[str]:
    """The per-release tables the release wrote rows to, as its row counts say."""
    counts = conn.scalar(sa.text("SELECT row_counts FROM healcat.release WHERE release_id = :r"),
                         {"r": release_id}) or {}
    return [t for t in PER_RELEASE_TABLES if int(counts.get(t) or 0) > 0]


def _joined_side(conn: sa.Connection, side: str, release_id: int) -> None:
    """The temporary table joined_SIDE: the other surveys' sources the release's per-release rows sit on."""
    tables = _joined_tables(conn, release_id)
    rows = " UNION ALL ".join(f"SELECT shard, source_id FROM healcat.{t} WHERE release_id = :release_id"
                              for t in tables) or _NO_ROWS
    conn.execute(sa.text(_JOINED.format(side=side, rows=rows)), {"release_id": release_id})


def _record_joined(conn: sa.Connection, release_id: int, previous_id: int) -> None:
    """Record the changes of a joining release's objects (its rows on other surveys' sources) against
    the previous release's: new, changed (``per_release_fingerprint`` differs) and vanished. Nothing
    to do (and nothing run) where neither release wrote per-release rows."""
    if not _joined_tables(conn, release_id) and not _joined_tables(conn, previous_id):
        return
    _joined_side(conn, "new", release_id)
    _joined_side(conn, "old", previous_id)
    conn.exec_driver_sql("ANALYZE joined_new, joined_old")
    conn.execute(_JOINED_SAME)
    conn.execute(_JOINED_BY_ID)
    conn.execute(_JOINED_RECORD, {"release_id": release_id, "previous": previous_id})
    conn.exec_driver_sql("DROP TABLE joined_match, joined_new, joined_old")
