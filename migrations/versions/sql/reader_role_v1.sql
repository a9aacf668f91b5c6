-- What the read-only role healcat_reader may not keep changing: run by migration 0032 and by every
-- `healcat db up` (catalog.db.assert_reader_role). PostgreSQL lets a role ALTER ROLE itself for its
-- defaults of ordinary settings and for its password, which then reach every session of the role
-- (healcat serve's too): this resets them all (role-wide and in this database) and sets them again.
-- temp_file_limit may be set only by a superuser, and a role cannot change its own CONNECTION LIMIT,
-- so a reader cannot lift those; the others it can, until the next run.
CREATE OR REPLACE FUNCTION healcat.assert_reader_role() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'healcat_reader') THEN
        RETURN;
    END IF;
    BEGIN
        ALTER ROLE healcat_reader RESET ALL;
        EXECUTE format('ALTER ROLE healcat_reader IN DATABASE %I RESET ALL', current_database());
        ALTER ROLE healcat_reader SET statement_timeout = '60s';
        -- an idle open transaction holds back VACUUM and makes CREATE INDEX CONCURRENTLY wait
        ALTER ROLE healcat_reader SET idle_in_transaction_session_timeout = '5min';
        ALTER ROLE healcat_reader SET temp_file_limit = '2GB';  -- sorts and hashes spilled to disk
        -- a third of the server's connections, at most 40: the rest stay for the writers
        -- (an inference run holds up to 25, beside its worker's)
        EXECUTE format('ALTER ROLE healcat_reader CONNECTION LIMIT %s',
                       least(40, current_setting('max_connections')::integer / 3));
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE WARNING 'healcat: user % may not alter role healcat_reader (a superuser may), so what a reader '
            'changed of its own role stays and its limits are not set: an administrator can run '
            'SELECT healcat.assert_reader_role()', current_user;
    END;
END $$;

REVOKE ALL ON FUNCTION healcat.assert_reader_role() FROM PUBLIC, healcat_reader;
