-- reader_role_v3.sql -- (migration 0048) change it in a new migration with _v4 definitions rather than
-- by editing this file.
--
--   healcat.assert_reader_role   reader_role_v2.sql's; an astronomer is a member of
--       healcat_astronomers as `healcat db reader add` grants it (INHERIT TRUE, SET FALSE, no ADMIN
--       OPTION), not a superuser. On PostgreSQL 16+ the CREATEROLE owner that creates the group holds
--       ADMIN OPTION on it, and with createrole_self_grant set is a member as well: v2 took the owner
--       for an astronomer and gave it the reader's limits (a 60 s statement timeout for the loader).
--
-- What the read-only roles may not keep changing: run by every `healcat db up` and `healcat db
-- reader add` (catalog.db.assert_reader_role). The shared role may take a third of the server's
-- connections, at most 40; each astronomer a tenth, at most 10.
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
               AND NOT a.admin_option AND a.inherit_option AND NOT a.set_option AND NOT m.rolsuper
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
