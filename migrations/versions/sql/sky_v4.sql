-- sky_v4.sql -- cross-match, version 4 (migration 0018). Change these in a new migration with _v5
-- definitions rather than by editing this file.
--
--   healcat.xmatch_prepare(...)  replaced: the probe pixels feed the range scans from a subquery
--                                (OFFSET 0) instead of a materialized CTE.
--   healcat.xmatch_table(...)    replaced: a given cover (pix0..pix3) is read by four scans of the
--                                input, not a VALUES list per row.
--
-- Same rows as v3 (tests/test_crossmatch.py); benchmarks/README.md, xmatch, has the figures.
--
-- Note for whoever edits this file: it is executed through sqlalchemy.text(), so never write a
-- colon directly followed by a word character; '::type' and ':=' are fine.


-- The cross-match statement (arguments already checked). `input` is a relation or a parenthesized
-- query with a column row_id (every input row), `cover` a query giving (row_id, ra, dec, pix):
-- the input's positions [deg] with each of their order-probe_order pixels (those of the radius,
-- padded by the proper motions when epoch_yr is given). n_input picks the plan: index range scans
-- of ix_source_hpx per probe pixel, in pixel order, unless the input is a sizeable part of the
-- catalog (a quarter or more), where one hash join against a sequential scan costs less. The plan's
-- settings are set local to the transaction: call it from a function whose SET clauses
-- (enable_nestloop, enable_hashjoin, enable_mergejoin, work_mem) restore them when it returns.
-- The statement's parameters: $1 radius [deg], $2 release_id (NULL: every release), $3 epoch_yr.
CREATE OR REPLACE FUNCTION healcat.xmatch_prepare(input text, cover text, n_input bigint, probe_order int, rel integer,
                                       mode text, epoch_yr float8)
RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, healcat AS $$
DECLARE
    k int := probe_order;
    n_catalog float8;
    probe boolean;
    pairs text;
    -- a source's position at the epoch (its stored one without an epoch)
    moved text := CASE WHEN epoch_yr IS NULL THEN '(SELECT s0.ra, s0.dec)'
                       ELSE 'healcat.pm_propagate(s0.ra, s0.dec, s0.pmra_masyr, s0.pmdec_masyr, $3 - s0.ref_epoch_yr)' END;
    -- one release: its name once (an InitPlan), not a join of every pair with healcat.release
    release_name text := CASE WHEN rel IS NULL THEN 'r.name'
                              ELSE '(SELECT r1.name FROM healcat.release AS r1 WHERE r1.release_id = $2)' END;
BEGIN
    SELECT greatest(c.reltuples, 0) INTO n_catalog FROM pg_class AS c WHERE c.oid = 'healcat.source'::regclass;
    probe := n_input * 4 < n_catalog;
    -- The range-scan plan needs no setting (its LATERAL subquery can only be a nested loop driven
    -- by the pixels), and the joins around it (in 'best' mode the input with its nearest matches,
    -- a million rows each) must stay free to hash. The hash plan turns nested loops off instead,
    -- so that the pixel equi-join is hashed.
    PERFORM set_config('enable_hashjoin', 'on', true);
    PERFORM set_config('enable_mergejoin', CASE WHEN probe THEN 'on' ELSE 'off' END, true);
    PERFORM set_config('enable_nestloop', CASE WHEN probe THEN 'on' ELSE 'off' END, true);
    -- The pixels come from a subquery kept whole by OFFSET 0 (inlined into the join condition, the
    -- cover's expression would be evaluated once per use of each of its parts), sorted for the
    -- range-scan plan; v3 stored them in a materialized CTE first, 0.3-0.5 s per million. That
    -- plan is a LATERAL subquery kept apart by OFFSET 0, so the pixels can only drive it: the
    -- planner cannot estimate a range with per-row bounds, and for a million pixels it found a
    -- nested loop over the whole catalog cheaper (minutes). Its shard is compared as int: as a
    -- smallint equality, PostgreSQL 18 would skip-scan pk_source (source_id, shard) on it; and its
    -- release as release_id + 0, so that no index on release_id competes with ix_source_hpx.
    -- Each candidate's distance is computed once: inside the range scan's subquery (which OFFSET 0
    -- keeps whole) for the range-scan plan; written in the outer query, a flattened subquery's
    -- expression was evaluated twice for every match, by the test and by the output.
    pairs := format($q$
        SELECT c.row_id, s.source_id, s.release_id, s.object_id, s.ra, s.dec, s.sep_deg
        FROM (SELECT * FROM (%1$s) AS c0 %3$s OFFSET 0) AS c
        %2$s
        WHERE s.sep_deg <= $1$q$,
        cover,
        CASE WHEN probe
             THEN format('CROSS JOIN LATERAL (
                              SELECT s0.source_id, s0.release_id, s0.object_id, m.ra, m.dec,
                                     healcat.angdist_deg(c.ra, c.dec, m.ra, m.dec) AS sep_deg
                              FROM healcat.source AS s0
                              CROSS JOIN LATERAL %4$s AS m(ra, dec)
                              WHERE s0.hpx >= (c.pix << %1$s) AND s0.hpx < ((c.pix + 1) << %1$s)
                                AND s0.shard::int = (c.pix >> %2$s)::int %3$s OFFSET 0) AS s',
                         2 * (29 - k), 2 * (k - 4), CASE WHEN rel IS NULL THEN '' ELSE 'AND s0.release_id + 0 = $2' END,
                         moved)
             ELSE format('JOIN healcat.source AS s0 ON (s0.hpx >> %1$s) = c.pix AND s0.shard = (c.pix >> %2$s)::smallint %3$s
                          CROSS JOIN LATERAL %4$s AS m(ra, dec)
                          CROSS JOIN LATERAL (SELECT s0.source_id, s0.release_id, s0.object_id, m.ra, m.dec,
                                                     healcat.angdist_deg(c.ra, c.dec, m.ra, m.dec) AS sep_deg) AS s',
                         2 * (29 - k), 2 * (k - 4), CASE WHEN rel IS NULL THEN '' ELSE 'AND s0.release_id = $2' END,
                         moved) END,
        CASE WHEN probe THEN 'ORDER BY c0.pix' ELSE '' END);
    IF mode = 'all' THEN
        RETURN format($q$
            SELECT p.row_id, p.source_id, %s, p.object_id, p.ra, p.dec, p.sep_deg * 3600.0
            FROM (%s) AS p %s
            ORDER BY p.row_id, p.sep_deg, p.source_id$q$,
            release_name, pairs, CASE WHEN rel IS NULL THEN 'JOIN healcat.release AS r USING (release_id)' ELSE '' END);
    END IF;
    RETURN format($q$
        SELECT i.row_id, b.source_id, CASE WHEN b.source_id IS NOT NULL THEN %s END, b.object_id, b.ra, b.dec,
               b.sep_deg * 3600.0
        FROM %s AS i
        LEFT JOIN (SELECT DISTINCT ON (p.row_id) p.*
                   FROM (%s) AS p ORDER BY p.row_id, p.sep_deg, p.source_id) AS b USING (row_id)
        %s
        ORDER BY i.row_id$q$,
        release_name, input, pairs,
        CASE WHEN rel IS NULL THEN 'LEFT JOIN healcat.release AS r ON r.release_id = b.release_id' ELSE '' END);
END $$;

COMMENT ON FUNCTION healcat.xmatch_prepare(text, text, bigint, int, integer, text, float8) IS
    'The cross-match statement (parameters: radius [deg], release_id, epoch_yr) for an input and its probe pixels; sets its planner settings local to the transaction.';


-- An uploaded table against the catalog, as in sky_v3.sql (same arguments and rows). A cover given
-- as columns pix0..pix3 (-1: none) is read as four scans of the input joined by UNION ALL; v3 built a
-- VALUES list per input row, 0.3 s per million rows.
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
    search_arcsec float8;
BEGIN
    PERFORM healcat.check_xmatch(radius_arcsec, mode);
    PERFORM healcat.check_epoch(epoch_yr);
    IF input IS NULL THEN
        RAISE EXCEPTION 'xmatch: input must name a table' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    rel := CASE WHEN release_name IS NULL THEN NULL ELSE healcat.resolve_release(release_name, 'xmatch') END;
    search_arcsec := healcat.xmatch_search_radius_arcsec(radius_arcsec, healcat.xmatch_pm_pad_arcsec(rel, epoch_yr));
    EXECUTE format('SELECT count(*) FROM %s', input) INTO n;
    SELECT count(*) = 4 AND epoch_yr IS NULL INTO given_cover FROM pg_attribute AS a
    WHERE a.attrelid = input AND a.attname IN ('pix0', 'pix1', 'pix2', 'pix3') AND NOT a.attisdropped;
    RETURN QUERY EXECUTE healcat.xmatch_prepare(
        input::text,
        CASE WHEN given_cover
             THEN (SELECT string_agg(format('SELECT i.row_id, i.ra, i.dec, i.pix%s AS pix FROM %s AS i
                                             WHERE i.hpx IS NOT NULL AND i.pix%s >= 0', k, input, k), ' UNION ALL ')
                   FROM generate_series(0, 3) AS k)
             ELSE format('SELECT i.row_id, i.ra, i.dec, p.pix FROM %s AS i
                          CROSS JOIN LATERAL healcat.hpx_xmatch_probe_cover(%s, %s, i.hpx) AS p
                          WHERE i.hpx IS NOT NULL', input, healcat.xmatch_order(search_arcsec),
                         healcat.xmatch_probe_order(search_arcsec)) END,
        n, healcat.xmatch_probe_order(search_arcsec), rel, mode, epoch_yr)
    USING radius_arcsec / 3600.0, rel, epoch_yr;
END $$;
