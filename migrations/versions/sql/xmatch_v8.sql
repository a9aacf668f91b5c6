-- xmatch_v8.sql -- (migration 0050) change it in a new migration with _v9 definitions rather than
-- by editing this file.
--
--   healcat.check_xmatch_input(input)   xmatch_v4.sql's, but an input whose row_id is keyed (a
--       primary key, or a unique index on row_id alone, not partial, not deferrable, and row_id NOT
--       NULL) skips the pass that counts each row_id: the table guarantees what it would find. The
--       pass is a hash aggregate over every row (0.5-0.6 s per 1,000,000 rows on the 2-core machine,
--       a third of the check and about a tenth of a cross-match of that input at 1 arcsec). An
--       unkeyed table (the Python route's temporary one: building its key costs what the pass does)
--       is counted as before. The positions are checked on every input, as before.
--
-- Executed through sqlalchemy.text(): never a colon directly followed by a word character.

CREATE OR REPLACE FUNCTION healcat.check_xmatch_input(input regclass)
RETURNS void LANGUAGE plpgsql STABLE AS $$
DECLARE
    wrong text;
    repeated bigint;
    n bigint;
    bad record;
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
    -- row_id keyed (a primary key, or a unique index on it alone, checked at once, whole, and NOT NULL)
    -- is unique and present by the table's own guarantee: the catalog says so, no pass over the rows
    IF NOT EXISTS (SELECT 1 FROM pg_index AS i JOIN pg_attribute AS a
                                 ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                   WHERE i.indrelid = input AND i.indisunique AND i.indisvalid AND i.indimmediate
                     AND i.indnkeyatts = 1 AND i.indpred IS NULL AND i.indexprs IS NULL
                     AND a.attname = 'row_id' AND a.attnotnull) THEN
        -- one pass: NULLs make one group of their own
        EXECUTE format('SELECT t.row_id, count(*) FROM %s AS t GROUP BY t.row_id HAVING count(*) > 1 OR t.row_id IS NULL '
                       'LIMIT 1', input)
            INTO repeated, n;
    END IF;
    IF n IS NOT NULL THEN
        RAISE EXCEPTION 'xmatch: the row_id of table % must name each row once: %', input,
            CASE WHEN repeated IS NOT NULL THEN format('row_id %s is on %s rows', repeated, n)
                 ELSE format('%s rows have none', n) END
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- the positions: one pass of comparisons over every row, and hpx itself on a sample (the 1,000
    -- smallest row_ids, those whose values are in range: the same rows whatever the table's scan order); the first bad row by row_id (a top-1
    -- sort of the bad rows only)
    EXECUTE format($q$
        SELECT bad.row_id, bad.col, bad.got, bad.expected FROM (
            SELECT t.row_id, b.col,
                   CASE b.col WHEN 'ra' THEN coalesce(t.ra::text, 'NULL') WHEN 'dec' THEN coalesce(t.dec::text, 'NULL')
                              ELSE coalesce(t.hpx::text, 'NULL') END AS got,
                   CASE WHEN b.col = 'hpx' THEN healcat.hpx_ang2pix(29, t.ra, t.dec) END AS expected  -- bad rows only
            FROM %1$s AS t
            CROSS JOIN LATERAL (SELECT CASE WHEN NOT (t.ra >= 0.0::float8 AND t.ra <= 360.0::float8) OR t.ra IS NULL
                                                THEN 'ra'
                                            WHEN NOT (t.dec >= -90.0::float8 AND t.dec <= 90.0::float8) OR t.dec IS NULL
                                                THEN 'dec'
                                            WHEN NOT (t.hpx >= 0 AND t.hpx < 3458764513820540928) OR t.hpx IS NULL
                                                THEN 'hpx'
                                       END AS col) AS b
            WHERE b.col IS NOT NULL
            UNION ALL
            SELECT s.row_id, 'hpx', s.hpx::text, s.expected
            FROM (SELECT t.row_id, t.hpx, healcat.hpx_ang2pix(29, t.ra, t.dec) AS expected
                  FROM (SELECT * FROM %1$s ORDER BY row_id LIMIT 1000) AS t
                  WHERE t.ra >= 0.0::float8 AND t.ra <= 360.0::float8 AND t.dec >= -90.0::float8
                    AND t.dec <= 90.0::float8) AS s
            WHERE s.hpx <> s.expected
        ) AS bad ORDER BY bad.row_id LIMIT 1$q$, input) INTO bad;
    IF bad.col IS NOT NULL THEN
        RAISE EXCEPTION 'xmatch: table %, row_id %: %', input, bad.row_id,
            CASE bad.col WHEN 'ra' THEN format('column ra must be a finite RA in [0, 360] deg, got %s', bad.got)
                         WHEN 'dec' THEN format('column dec must be a finite Dec in [-90, 90] deg, got %s', bad.got)
                         ELSE format('column hpx must be healcat.hpx_ang2pix(29, ra, dec), %s, got %s', bad.expected,
                                     bad.got)
            END USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;
