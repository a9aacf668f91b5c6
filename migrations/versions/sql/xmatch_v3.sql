-- xmatch_v3.sql -- (migration 0025) change it in a new migration with _v4 definitions rather than
-- by editing this file.
--
--   healcat.check_xmatch_input(input)   queries_v2.sql's, and the input's row_id must be unique and
--       not NULL: 'best' mode keeps one match per row_id (DISTINCT ON), so two rows sharing one got
--       the same match, one of them a source 122 deg away from it. The check is one hash
--       aggregate over the input (about 0.25-0.37 s per million rows on the 2-core machine).
--
-- Executed through sqlalchemy.text(): never a colon directly followed by a word character.

CREATE OR REPLACE FUNCTION healcat.check_xmatch_input(input regclass)
RETURNS void LANGUAGE plpgsql STABLE AS $$
DECLARE
    wrong text;
    repeated bigint;
    n bigint;
BEGIN
    SELECT string_agg(format('%s %s', w.name, w.type), ', ') INTO wrong
    FROM (VALUES ('row_id', 'bigint'), ('ra', 'double precision'), ('dec', 'double precision'), ('hpx', 'bigint'))
         AS w(name, type)
    WHERE NOT EXISTS (SELECT 1 FROM pg_attribute AS a
                      WHERE a.attrelid = input AND a.attname = w.name AND NOT a.attisdropped
                        AND format_type(a.atttypid, a.atttypmod) = w.type);
    IF wrong IS NOT NULL THEN
        RAISE EXCEPTION 'xmatch: table % needs the columns row_id bigint, ra and dec double precision [deg], hpx bigint (healcat.hpx_ang2pix(29, ra, dec)); it lacks or mistypes %',
            input, wrong USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- one pass: NULLs make one group of their own
    EXECUTE format('SELECT t.row_id, count(*) FROM %s AS t GROUP BY t.row_id HAVING count(*) > 1 OR t.row_id IS NULL '
                   'LIMIT 1', input)
        INTO repeated, n;
    IF n IS NOT NULL THEN
        RAISE EXCEPTION 'xmatch: the row_id of table % must name each row once: %', input,
            CASE WHEN repeated IS NOT NULL THEN format('row_id %s is on %s rows', repeated, n)
                 ELSE format('%s rows have none', n) END
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;
