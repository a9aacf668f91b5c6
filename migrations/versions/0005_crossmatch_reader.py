"""cross-match functions (crossmatch_v1.sql) and the read-only role healcat_reader

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 04:30:00

healcat_reader can SELECT every table and view of the schema and EXECUTE its functions, now and
(through default privileges) later, and nothing else in the schema; its statements are cancelled
after 60 s (``ALTER ROLE healcat_reader SET statement_timeout = '5min'`` changes that). Roles
belong to the whole server: the role is created only if missing, and a downgrade revokes its
privileges on this database but leaves the role (another database may use it).
HEALCAT_READER_PASSWORD, when set while migrating, becomes its password (servers that ask for one):
catalog.db.assert_reader_role gives it after every migration run, this one included.
"""

from alembic import op

from migrations.functions import run_sql_file

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

READER = "healcat_reader"
STATEMENT_TIMEOUT = "60s"


def upgrade() -> None:
    run_sql_file("crossmatch_v1.sql")
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{READER}') THEN
                BEGIN
                    CREATE ROLE {READER} LOGIN;
                EXCEPTION WHEN insufficient_privilege THEN
                    RAISE EXCEPTION 'healcat migration 0005: user % may not create roles; ask an administrator '
                        'to run CREATE ROLE {READER} LOGIN, then run healcat db up again', current_user;
                END;
            END IF;
            BEGIN
                ALTER ROLE {READER} SET statement_timeout = '{STATEMENT_TIMEOUT}';
            EXCEPTION WHEN insufficient_privilege THEN
                RAISE WARNING 'healcat migration 0005: user % may not alter role {READER}; its statement '
                    'timeout is left as it is (an administrator can run ALTER ROLE {READER} SET '
                    'statement_timeout = ''{STATEMENT_TIMEOUT}'')', current_user;
            END;
        END $$;
        GRANT USAGE ON SCHEMA healcat TO {READER};
        GRANT SELECT ON ALL TABLES IN SCHEMA healcat TO {READER};
        GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA healcat TO {READER};
        ALTER DEFAULT PRIVILEGES IN SCHEMA healcat GRANT SELECT ON TABLES TO {READER};
        ALTER DEFAULT PRIVILEGES IN SCHEMA healcat GRANT EXECUTE ON FUNCTIONS TO {READER};
        """
    )
    # HEALCAT_READER_PASSWORD: given by catalog.db.assert_reader_role, after every migration run


def downgrade() -> None:
    op.execute(
        f"""
        ALTER DEFAULT PRIVILEGES IN SCHEMA healcat REVOKE EXECUTE ON FUNCTIONS FROM {READER};
        ALTER DEFAULT PRIVILEGES IN SCHEMA healcat REVOKE SELECT ON TABLES FROM {READER};
        REVOKE ALL ON ALL FUNCTIONS IN SCHEMA healcat FROM {READER};
        REVOKE ALL ON ALL TABLES IN SCHEMA healcat FROM {READER};
        REVOKE ALL ON SCHEMA healcat FROM {READER};
        DROP FUNCTION healcat.xmatch_releases, healcat.xmatch_table, healcat.xmatch_core,
            healcat.resolve_release, healcat.check_xmatch, healcat.hpx_xmatch_cover, healcat.xmatch_order;
        """
    )
