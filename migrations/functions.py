"""What the migrations share: a file of SQL functions from ``versions/sql``, run with every
PL/pgSQL function of the schema pinned to one search_path, so that they resolve healcat's names
(and pgvector's ``vector`` and ``<=>``) the same way whatever the caller's search_path."""

import json
import logging
import re
from pathlib import Path

import sqlalchemy as sa
from alembic import op

SQL = Path(__file__).parent / "versions" / "sql"

PIN_SEARCH_PATH = """
DO $$
DECLARE
    f regprocedure;
    vector_schema text := (SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'vector');
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc AS p JOIN pg_language AS l ON l.oid = p.prolang
             WHERE p.pronamespace = 'healcat'::regnamespace AND l.lanname = 'plpgsql' LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, healcat, %s', f, vector_schema);
    END LOOP;
END $$;
"""


def run_sql_file(name: str) -> None:
    """Run ``versions/sql/NAME`` and pin the search_path of the schema's PL/pgSQL functions."""
    op.execute((SQL / name).read_text())
    pin_search_path()


def pin_search_path() -> None:
    op.execute(PIN_SEARCH_PATH)


def definition(name: str, function: str) -> str:
    """The definition of ``function`` in ``versions/sql/NAME``, as CREATE OR REPLACE. A name alone finds
    the file's first definition of it; one with its arguments as the file writes them
    (``mixture_cdf(weights real[], ..., lower float8)``), that overload's."""
    signature = re.escape(function) if "(" in function else rf"{function}\("
    found = re.search(rf"CREATE (?:OR REPLACE )?FUNCTION healcat\.{signature}.*?\n(?:END;?\s*)?\$\$;",
                      (SQL / name).read_text(), re.DOTALL).group(0)
    return re.sub(r"^CREATE (OR REPLACE )?FUNCTION", "CREATE OR REPLACE FUNCTION", found)


def restore_functions(name: str, functions: list[str]) -> None:
    """Run the definitions of ``functions`` in ``versions/sql/NAME`` again (:func:`definition`): a
    downgrade restoring what a later migration replaced with the same signature; then pin the search_path."""
    for function in functions:
        op.execute(definition(name, function))
    pin_search_path()


def restore_comment(name: str, signature: str) -> None:
    """Run again the ``COMMENT ON FUNCTION healcat.SIGNATURE`` of ``versions/NAME`` (``signature`` as the file
    writes it, e.g. ``cover_stop_order()``): a downgrade restoring the comment a later migration replaced."""
    text = (SQL / name).read_text()
    op.execute(re.search(rf"COMMENT ON FUNCTION healcat\.{re.escape(signature)} IS\s.*?';(?:\n|$)", text,
                         re.DOTALL).group(0))


#: A PL/pgSQL RAISE of an error: RAISE EXCEPTION (or RAISE alone, whose level is EXCEPTION) with a format
#: string or USING, then its arguments and clauses (quoted strings in them may hold a ';') up to the ';'
#: that ends it. (RAISE NOTICE, DEBUG, ... are not errors.)
RAISE_ERROR = re.compile(r"RAISE\s+(?:EXCEPTION\s+)?(?:E?'(?:[^']|'')*'|USING\b)(?:[^;']|'(?:[^']|'')*')*;",
                         re.IGNORECASE)
STRING = re.compile(r"E?'(?:[^']|'')*'")


def _clauses(statement: str) -> str:
    """A RAISE statement with its strings blanked: what remains are its arguments and USING clauses."""
    return STRING.sub("''", statement)


def bare_raises(source: str) -> list[str]:
    """The statements of a function's body that raise an error naming no SQLSTATE (theirs is P0001)."""
    return [m[0] for m in RAISE_ERROR.finditer(source) if not re.search(r"\bERRCODE\s*=", _clauses(m[0]), re.I)]


def with_errcode(source: str, errcode: str, undo: bool = False) -> str:
    """``source`` with each error it raises naming no SQLSTATE given the condition ``errcode`` (``USING
    ERRCODE = 'invalid_parameter_value'``, or ``, ERRCODE = ...`` after a USING it has); ``undo``: with
    exactly those clauses taken away again."""
    added = (f" USING ERRCODE = '{errcode}';", f", ERRCODE = '{errcode}';")
    if undo:
        return RAISE_ERROR.sub(lambda m: next((m[0][:-len(a)] + ";" for a in added if m[0].endswith(a)), m[0]), source)
    bare = set(bare_raises(source))
    return RAISE_ERROR.sub(lambda m: m[0] if m[0] not in bare else
                           m[0][:-1] + added[bool(re.search(r"\bUSING\b", _clauses(m[0]), re.I))], source)


def name_raised_errcode(functions: list[str], errcode: str, undo: bool = False) -> None:
    """:func:`with_errcode` on ``functions`` (their regprocedure texts): each is redefined from its
    definition in the database (pg_get_functiondef), its body otherwise as it was."""
    conn = op.get_bind()
    for function in functions:
        definition = conn.scalar(sa.text("SELECT pg_catalog.pg_get_functiondef(CAST(:f AS regprocedure))"),
                                 {"f": function})
        conn.exec_driver_sql(with_errcode(definition, errcode, undo).replace("%", "%%"))
    pin_search_path()


def replace_primary_key(table: str, columns: str) -> None:
    """Give ``healcat.TABLE`` the primary key ``pk_TABLE`` on ``columns`` (a comma-separated list), in
    one statement: the old key is dropped and the new one built in the same ALTER TABLE."""
    op.execute(f"ALTER TABLE healcat.{table} DROP CONSTRAINT pk_{table}, "
               f"ADD CONSTRAINT pk_{table} PRIMARY KEY ({columns})")


def as_superuser(functions: list[str], statement: str, otherwise: str) -> None:
    """Run ``statement`` for each of ``functions`` (names with argument types, in pg_catalog: ``%1$s``
    the function, ``%2$I`` the owner of the schema healcat, the role healcat writes as) where the
    migrating role is a superuser (only it may change the privileges of PostgreSQL's own functions);
    else raise the NOTICE ``otherwise``, saying what an administrator should run."""
    names = ", ".join(f"'pg_catalog.{f}'" for f in functions)
    op.execute(f"""
        DO $$
        DECLARE
            f text;
        BEGIN
            IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
                FOREACH f IN ARRAY ARRAY[{names}] LOOP
                    EXECUTE format('{statement}', f, (SELECT r.rolname FROM pg_roles AS r JOIN pg_namespace AS n
                                                      ON n.nspowner = r.oid WHERE n.nspname = 'healcat'));
                END LOOP;
            ELSE
                RAISE NOTICE '{otherwise.replace("'", "''")}';
            END IF;
        END $$""")


#: Where the migrations tell the operator what a step did to the data: alembic's own logger, so the
#: lines come between its "Running downgrade ..." lines (``healcat`` shows warnings; alembic's CLI too).
log = logging.getLogger("alembic.runtime.migration")

#: What ``warn_dropping`` tells the operator to do for values a release's load wrote, and a run's.
REINGEST = ("ingest finds each release loaded (its checksum) and loads nothing: load it again under a "
            "new version (healcat ingest MAPPING --release-version V) to have them")
RERUN = ("infer finds each run done and runs nothing: delete what the run wrote and the run (DELETE FROM "
         "healcat.prediction, healcat.embedding, then healcat.inference_run WHERE run_id = R) and run "
         "healcat infer MODEL RELEASE again")


def warn_dropping(revision: str, table: str, columns: list[str], again: str) -> int:
    """Before a downgrade drops ``columns`` of ``healcat.TABLE`` (all of them: the table itself): count
    the rows holding a value in any of them and, where there are some, log a warning naming the
    revision, the columns, the count and ``again`` (what brings the values back after an upgrade: the
    columns come back empty, and ``ingest``/``infer`` see their release or run as done). Returns the count."""
    where = " OR ".join(f"{c} IS NOT NULL" for c in columns) if columns else "true"
    n = op.get_bind().scalar(sa.text(f"SELECT count(*) FROM healcat.{table} WHERE {where}"))
    if n:
        what = f"healcat.{table} ({', '.join(columns)})" if columns else f"the table healcat.{table}"
        log.warning("healcat downgrade below %s drops %s: %d row%s held values there, lost for good; after "
                    "upgrading again %s", revision, what, n, "" if n == 1 else "s", again)
    return n


def patch_attrs(conn: sa.Connection, revision: str, release: tuple[int, str], selected: str, params: dict,
                rule) -> None:
    """Store ``rule(key, value)`` in place of each string value of ``attrs`` in the release's sources and
    rotation periods whose attrs ``selected`` picks (an SQL condition on ``e``, an entry of ``jsonb_each``;
    ``params`` its parameters; it only narrows what ``rule`` decides), a batch at a time; values the rule
    leaves as they are stay the jsonb they are, to the digit. Logs the count of rows changed per table.
    Migrations 0049 and 0059 run it: write a new function rather than change what this one does."""
    release_id, name = release
    for table in ("source", "rotation_period"):
        # the rows to look at (their keys only), then their attrs a batch at a time
        found = conn.execute(sa.text(f"""
            SELECT shard, source_id FROM healcat.{table} AS t
            WHERE release_id = :r AND jsonb_typeof(attrs) = 'object'
              AND EXISTS (SELECT 1 FROM jsonb_each(t.attrs) AS e WHERE jsonb_typeof(e.value) = 'string' AND {selected})"""),
            {"r": release_id, **params}).all()
        n = 0
        for first in range(0, len(found), ATTRS_BATCH):
            batch = found[first:first + ATTRS_BATCH]
            rows = conn.execute(sa.text(f"""
                SELECT t.shard, t.source_id, t.attrs FROM healcat.{table} AS t
                JOIN unnest(CAST(:shards AS smallint[]), CAST(:ids AS bigint[])) AS k(shard, source_id)
                  ON k.shard = t.shard AND k.source_id = t.source_id
                WHERE t.release_id = :r"""),
                {"r": release_id, "shards": [b[0] for b in batch], "ids": [b[1] for b in batch]}).all()
            changed = []
            for shard, source_id, attrs in rows:
                patch = {k: rule(k, v) for k, v in attrs.items() if isinstance(v, str)}
                patch = {k: v for k, v in patch.items() if v != attrs[k]}
                if patch:
                    changed.append({"shard": shard, "id": source_id, "r": release_id, "patch": json.dumps(patch)})
            if changed:
                conn.execute(sa.text(f"UPDATE healcat.{table} SET attrs = attrs || CAST(:patch AS jsonb) "
                                     "WHERE shard = :shard AND source_id = :id AND release_id = :r"), changed)
            n += len(changed)
        if n:
            log.info("%s: %s: %d %s rows' attrs changed", revision, name, n, table)


ATTRS_BATCH = 5000


def create_published_views(views: dict[str, tuple[str, str]], *, on_current_sources: bool = False,
                           replace: bool = False) -> None:
    """For each ``view: (table, comment)``, the view ``healcat.VIEW`` of the table's rows of published
    releases (each survey's current one), with its comment (SQL text: quotes doubled); with
    ``on_current_sources``, only those rows on sources of published releases (``current_source``: a
    joining release's rows on a base release since superseded or withdrawn are no current view's);
    ``replace``: CREATE OR REPLACE. Migrations 0029 and 0060 run it: add an option rather than change
    what it does without one."""
    for view, (table, comment) in views.items():
        on_sources = ("JOIN healcat.current_source AS s ON s.shard = t.shard AND s.source_id = t.source_id"
                      if on_current_sources else "")
        op.execute(f"""
            CREATE {'OR REPLACE ' if replace else ''}VIEW healcat.{view} AS
            SELECT t.*
            FROM healcat.{table} AS t
            JOIN healcat.release AS r ON r.release_id = t.release_id
            {on_sources}
            WHERE r.status = 'published'""")
        op.execute(f"COMMENT ON VIEW healcat.{view} IS '{comment}'")
