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
--   healcat.xmatch_table(...)           xmatch_v5.sql's, but 'best' mode's outer side (every input row,
--       each with its nearest match or none) reads the input's row_ids through a subquery fenced by
--       OFFSET 0. With a key on row_id the planner walked the input in key order (to merge-join it
--       and skip the final sort), fetching its rows in random order from a table that is in hpx
--       order: best mode of 1,000,000 keyed rows against the 10M sky took 7.8 s, against 5.6-5.9 s
--       unkeyed (the same session, 2 cores). Fenced, a keyed input is read as an unkeyed one is.
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


CREATE OR REPLACE FUNCTION healcat.xmatch_table(
    input regclass, radius_arcsec float8, release_name text DEFAULT NULL, mode text DEFAULT 'best',
    epoch_yr float8 DEFAULT NULL)
RETURNS TABLE (row_id bigint, source_id bigint, release text, object_id text, ra float8, "dec" float8,
               separation_arcsec float8)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, healcat
SET enable_nestloop = on SET enable_hashjoin = on SET enable_mergejoin = on SET work_mem = '256MB'
AS $$
DECLARE
    n bigint;
    given_cover boolean;
    rel integer;
    pad float8;
    slow_pad float8;
    search_arcsec float8;
BEGIN
    PERFORM healcat.check_xmatch(radius_arcsec, mode);
    PERFORM healcat.check_epoch(epoch_yr);
    IF input IS NULL THEN
        RAISE EXCEPTION 'xmatch: input must name a table' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM healcat.check_xmatch_input(input);
    rel := CASE WHEN release_name IS NULL THEN NULL ELSE healcat.resolve_release(release_name, 'xmatch') END;
    pad := healcat.xmatch_pm_pad_arcsec(rel, epoch_yr);
    slow_pad := healcat.xmatch_slow_pad_arcsec(radius_arcsec, pad);
    search_arcsec := healcat.xmatch_search_radius_arcsec(radius_arcsec, slow_pad);
    EXECUTE format('SELECT count(*) FROM %s', input) INTO n;
    SELECT count(*) = 4 AND epoch_yr IS NULL INTO given_cover FROM pg_attribute AS a
    WHERE a.attrelid = input AND a.attname IN ('pix0', 'pix1', 'pix2', 'pix3') AND NOT a.attisdropped;
    RETURN QUERY EXECUTE healcat.xmatch_prepare(
        -- best mode's outer side: the row_ids alone, fenced so that a key on them cannot order the join
        format('(SELECT i0.row_id FROM %s AS i0 OFFSET 0)', input),
        CASE WHEN given_cover
             THEN (SELECT string_agg(format('SELECT i.row_id, i.ra, i.dec, i.pix%s AS pix FROM %s AS i
                                             WHERE i.hpx IS NOT NULL AND i.pix%s >= 0', k, input, k), ' UNION ALL ')
                   FROM generate_series(0, 3) AS k)
             ELSE healcat.xmatch_cover_query(input::text, search_arcsec) END,
        CASE WHEN pad > slow_pad THEN healcat.xmatch_cover_query(input::text, radius_arcsec) END,
        n, healcat.xmatch_probe_order(search_arcsec), healcat.xmatch_probe_order(radius_arcsec), rel, mode, epoch_yr)
    USING radius_arcsec / 3600.0, rel, epoch_yr, slow_pad;
END $$;
