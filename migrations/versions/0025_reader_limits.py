"""cross-match input row ids unique (sql/xmatch_v3.sql); the read-only role cannot take advisory locks

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05 04:00:00

- healcat.check_xmatch_input also refuses an input table whose row_id repeats or is NULL ('best'
  mode gave two rows sharing one id the same match).
- healcat's writers serialise on advisory locks (a release's load, a survey's publish, a model's
  registration and runs, and the session lock that marks a job running), and PostgreSQL lets
  every role take them: healcat_reader could hold a release's key in an idle session and stall
  its ingestion for ever (a session lock outlives statement_timeout). Where the migrating role may
  (a superuser, as the embedded server's and docker-compose's are), EXECUTE on the advisory-lock
  functions is revoked from PUBLIC and granted to the migrating role, so only it (and superusers)
  can take them; elsewhere a notice says what an administrator should run. This holds for every
  role of the database: another application's non-superuser role sharing it loses them too, and
  a healcat writer role other than the schema's owner needs them granted.
"""

from migrations.functions import as_superuser, restore_functions, run_sql_file

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None

# Every advisory-lock function that takes a lock (unlocking one's own locks is harmless).
LOCKS = [f"{name}({args})" for name in ("pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock",
                                         "pg_try_advisory_lock_shared", "pg_advisory_xact_lock",
                                         "pg_advisory_xact_lock_shared", "pg_try_advisory_xact_lock",
                                         "pg_try_advisory_xact_lock_shared")
         for args in ("bigint", "integer, integer")]


def _advisory_locks(statement: str) -> None:
    as_superuser(LOCKS, statement, "healcat: not a superuser, so every role may take advisory locks (a reader could "
                                   "stall ingestion); an administrator may revoke EXECUTE on pg_advisory_lock and "
                                   "its kin from PUBLIC and grant it to the role healcat writes as")


def upgrade() -> None:
    run_sql_file("xmatch_v3.sql")
    _advisory_locks("REVOKE EXECUTE ON FUNCTION %1$s FROM PUBLIC; GRANT EXECUTE ON FUNCTION %1$s TO %2$I")


def downgrade() -> None:
    _advisory_locks("GRANT EXECUTE ON FUNCTION %1$s TO PUBLIC; REVOKE EXECUTE ON FUNCTION %1$s FROM %2$I")
    restore_functions("queries_v2.sql", ["check_xmatch_input"])
