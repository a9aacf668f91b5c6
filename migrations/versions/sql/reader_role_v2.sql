-- What the read-only roles may not keep changing (v2: the shared role healcat_reader, as v1, and
-- every astronomer's own read-only role, a member of healcat_astronomers made by `healcat db reader
-- add`): run by migration 0043 and by every `healcat db up` and `healcat db reader add`
-- (catalog.db.assert_reader_role). PostgreSQL lets a role ALTER ROLE itself for its defaults of
-- ordinary settings and for its password, which then reach every session of the role: this resets
-- them all (role-wide and in this database) and sets them again. temp_file_limit may be set only by
-- a superuser, and a role cannot change its own CONNECTION LIMIT, so a reader cannot lift those.
-- The shared role may take a third of the server's connections, at most 40; each astronomer a
-- tenth, at most 10 (the rest stay for the writers: an inference run holds up to 25).
CREATE OR REPLACE FUNCTION healcat.assert_reader_role() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT rolname, least(40, current_setting('max_connections')::integer / 3) AS connections
             FROM pg_roles WHERE rolname = 'healcat_reader'
             UNION ALL
             SELECT m.rolname, least(10, current_setting('max_connections')::integer / 10)
             FROM pg_auth_members AS a JOIN pg_roles AS m ON m.oid = a.member
             WHERE a.roleid = to_regrole('healcat_astronomers') AND m.rolcanlogin
             ORDER BY 1
    LOOP
        BEGIN
            EXECUTE format('ALTER ROLE %I RESET ALL', r.rolname);
            EXECUTE format('ALTER ROLE %I IN DATABASE %I RESET ALL', r.rolname, current_database());
            EXECUTE format('ALTER ROLE %I SET statement_timeout = %L', r.rolname, '60s');
            -- an idle open transaction holds back VACUUM and makes CREATE INDEX CONCURRENTLY wait
            EXECUTE format('ALTER ROLE %I SET idle_in_transaction_session_timeout = %L', r.rolname, '5min');
            EXECUTE format('ALTER ROLE %I SET temp_file_limit = %L', r.rolname, '2GB');  -- sorts and hashes spilled to disk
            EXECUTE format('ALTER ROLE %I CONNECTION LIMIT %s', r.rolname, r.connections);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING 'healcat: user % may not alter role % (a superuser may), so what a reader '
                'changed of its own role stays and its limits are not set: an administrator can run '
                'SELECT healcat.assert_reader_role()', current_user, r.rolname;
        END;
    END LOOP;
END $$;
