-- xmatch_v5.sql -- fast movers apart in a cross-match at an epoch (migration 0039). Change these in a
-- new migration with _v6 definitions rather than by editing this file.
--
-- Before: the coarse search at an epoch was padded by the largest displacement of any source the
-- match reads (healcat.xmatch_pm_pad_arcsec), so one fast star widened every input row's search:
-- Barnard's star (10.4 arcsec/yr) over the 16 years from a J2000 input to Gaia's 2016.0 made a
-- 1 arcsec match search 167 arcsec around every row, and a match 175 years away was refused (the
-- padded radius beyond 1800 arcsec). Now a source that moves by more than the slow pad
-- (healcat.xmatch_slow_pad_arcsec: the radius, at least 10 arcsec) is a *fast mover*: the search
-- around each input row is padded by the slow pad only and reads the other sources, and the fast
-- movers (a scan of the releases read, as the pad already is) are moved to the epoch, given the
-- pixel of their moved position, and joined to the input's own cover for the radius (a hash join:
-- the same pixel test as the search without an epoch). Every source is in exactly one part (the
-- same displacement expression decides both), so the answer is what it was; with no fast mover the
-- statement is v4's. 10 arcsec: a search that wide holds about one Gaia source at its mean density
-- (44,000 per square degree), and a star moves that far in 16 years only above 625 mas/yr.
-- Measured once (2 cores; 1M sources in a 25 square degree field, pm N(0, 5 mas/yr) at 2016.0 and
-- Barnard's star's; 200 of them matched at 1 arcsec at J2000; EXPLAIN ANALYZE of both statements):
-- v4 64 s (each of 800 probe pixels read 7,617 candidates), v5 0.35 s (33 per probe pixel, and
-- 0.05 s for the scan finding the one fast mover).
--
--   healcat.pm_displacement_arcsec(pmra, pmdec, dt)  new: |pm| * |dt| [arcsec], NULL without one.
--   healcat.xmatch_slow_pad_arcsec(radius, pad)      new: the pad of the search around each row.
--   healcat.xmatch_cover_query(rows, radius)         new: an input's probe pixels for a radius (the
--       query the callers wrote out each time).
--   healcat.xmatch_prepare(...)                      spatial_v1.sql's, with fast_cover and
--       fast_probe_order (NULL: no fast part); statement parameter $4, the slow pad [arcsec].
--   healcat.xmatch_core(...)                         sky_v3.sql's, passing them on.
--   healcat.xmatch_table, healcat.xmatch_releases    queries_v2.sql's and spatial_v1.sql's, split.
--
-- Executed through sqlalchemy.text(): never a colon directly followed by a word character.


CREATE FUNCTION healcat.pm_displacement_arcsec(pmra_masyr float8, pmdec_masyr float8, dt_yr float8)
RETURNS float8 LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT sqrt($1 * $1 + $2 * $2) * abs($3) / 1000.0
$$;

COMMENT ON FUNCTION healcat.pm_displacement_arcsec(float8, float8, float8) IS
    'The angle [arcsec] a proper motion [mas/yr] covers in dt_yr years (at most: healcat.pm_propagate moves along a straight line in space); NULL when an argument is.';


CREATE FUNCTION healcat.xmatch_slow_pad_arcsec(radius_arcsec float8, pad_arcsec float8)
RETURNS float8 LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT least($2, greatest($1, 10.0))
$$;

COMMENT ON FUNCTION healcat.xmatch_slow_pad_arcsec(float8, float8) IS
    'Pad [arcsec] of a cross-match''s search around each input row at an epoch: the largest displacement, at most the radius (and at least 10 arcsec); sources moving further are matched apart.';


CREATE FUNCTION healcat.xmatch_cover_query(input text, radius_arcsec float8)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT format('SELECT i.row_id, i.ra, i.dec, p.pix FROM %s AS i
                   CROSS JOIN LATERAL healcat.hpx_xmatch_probe_cover(%s, %s, i.hpx) AS p
                   WHERE i.hpx IS NOT NULL', $1, healcat.xmatch_order($2), healcat.xmatch_probe_order($2))
$$;

COMMENT ON FUNCTION healcat.xmatch_cover_query(text, float8) IS
    'Query of (row_id, ra, dec, pix): an input''s (a relation with row_id, ra, dec, hpx) probe pixels for a radius [arcsec].';


DROP FUNCTION healcat.xmatch_prepare(text, text, bigint, int, integer, text, float8);

-- spatial_v1.sql's, and with fast_cover (the input's cover for the radius alone; NULL: no fast
-- movers) the fast movers apart (see the top). The statement's parameters: $1 radius [deg], $2
-- release_id (NULL: the published releases), $3 epoch_yr, $4 the slow pad [arcsec].
CREATE FUNCTION healcat.xmatch_prepare(input text, cover text, fast_cover text, n_input bigint, probe_order int,
                                       fast_probe_order int, rel integer, mode text, epoch_yr float8)
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
    fast text := 'healcat.pm_displacement_arcsec(s0.pmra_masyr, s0.pmdec_masyr, $3 - s0.ref_epoch_yr) > $4';
    -- one release: its name once (an InitPlan), not a join of every pair with healcat.release
    -- no release named: the published ones (an InitPlan, once per statement)
    published text := '(SELECT healcat.release_scope(NULL))::integer[]';
    release_name text := CASE WHEN rel IS NULL THEN 'r.name'
                              ELSE '(SELECT r1.name FROM healcat.release AS r1 WHERE r1.release_id = $2)' END;
    -- the sources the search around each row reads: those of the releases read, the fast movers left out
    searched text := CASE WHEN rel IS NULL THEN 'ANY(' || published || ')' ELSE '$2' END
                     || CASE WHEN fast_cover IS NULL THEN '' ELSE format(' AND (%s) IS NOT TRUE', fast) END;
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
        WHERE s.sep_deg <= healcat.inclusive_deg($1)$q$,
        cover,
        CASE WHEN probe
             THEN format('CROSS JOIN LATERAL (
                              SELECT s0.source_id, s0.release_id, s0.object_id, m.ra, m.dec,
                                     healcat.angdist_deg(c.ra, c.dec, m.ra, m.dec) AS sep_deg
                              FROM healcat.source AS s0
                              CROSS JOIN LATERAL %4$s AS m(ra, dec)
                              WHERE s0.hpx >= (c.pix << %1$s) AND s0.hpx < ((c.pix + 1) << %1$s)
                                AND s0.shard::int = (c.pix >> %2$s)::int AND s0.release_id + 0 = %3$s OFFSET 0) AS s',
                         2 * (29 - k), 2 * (k - 4), searched, moved)
             ELSE format('JOIN healcat.source AS s0 ON (s0.hpx >> %1$s) = c.pix AND s0.shard = (c.pix >> %2$s)::smallint
                                                       AND s0.release_id = %3$s
                          CROSS JOIN LATERAL %4$s AS m(ra, dec)
                          CROSS JOIN LATERAL (SELECT s0.source_id, s0.release_id, s0.object_id, m.ra, m.dec,
                                                     healcat.angdist_deg(c.ra, c.dec, m.ra, m.dec) AS sep_deg) AS s',
                         2 * (29 - k), 2 * (k - 4), searched, moved) END,
        CASE WHEN probe THEN 'ORDER BY c0.pix' ELSE '' END);
    IF fast_cover IS NOT NULL THEN
        -- the fast movers at the epoch, each with the pixel of its moved position, hashed against the
        -- input's cover for the radius (a few per row; the fast movers are few)
        pairs := pairs || format($q$
        UNION ALL
        SELECT c.row_id, f.source_id, f.release_id, f.object_id, f.ra, f.dec, d.sep_deg
        FROM (SELECT * FROM (%1$s) AS c0 OFFSET 0) AS c
        JOIN (SELECT s0.source_id, s0.release_id, s0.object_id, m.ra, m.dec,
                     healcat.hpx_ang2pix(29, m.ra, m.dec) >> %2$s AS pix
              FROM healcat.source AS s0
              CROSS JOIN LATERAL %3$s AS m(ra, dec)
              WHERE s0.release_id = %4$s AND %5$s OFFSET 0) AS f ON f.pix = c.pix
        CROSS JOIN LATERAL (SELECT healcat.angdist_deg(c.ra, c.dec, f.ra, f.dec) AS sep_deg) AS d
        WHERE d.sep_deg <= healcat.inclusive_deg($1)$q$,
            fast_cover, 2 * (29 - fast_probe_order), moved,
            CASE WHEN rel IS NULL THEN 'ANY(' || published || ')' ELSE '$2' END, fast);
    END IF;
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

COMMENT ON FUNCTION healcat.xmatch_prepare(text, text, text, bigint, int, int, integer, text, float8) IS
    'The cross-match statement (parameters: radius [deg], release_id, epoch_yr, slow pad [arcsec]) for an input, its probe pixels and (at an epoch with fast movers) its pixels for the radius alone; sets its planner settings local to the transaction.';


DROP FUNCTION healcat.xmatch_core(text, text, bigint, float8, int, integer, text, float8);

-- sky_v3.sql's, with xmatch_prepare's new arguments (see the top).
CREATE FUNCTION healcat.xmatch_core(input text, cover text, fast_cover text, n_input bigint, radius_arcsec float8,
                                    probe_order int, fast_probe_order int, rel integer, mode text, epoch_yr float8,
                                    slow_pad_arcsec float8)
RETURNS TABLE (row_id bigint, source_id bigint, release text, object_id text, ra float8, "dec" float8,
               separation_arcsec float8)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, healcat
SET enable_nestloop = on SET enable_hashjoin = on SET enable_mergejoin = on SET work_mem = '256MB'
AS $$
BEGIN
    RETURN QUERY EXECUTE healcat.xmatch_prepare(input, cover, fast_cover, n_input, probe_order, fast_probe_order, rel,
                                                mode, epoch_yr)
        USING radius_arcsec / 3600.0, rel, epoch_yr, slow_pad_arcsec;
END $$;


-- queries_v2.sql's, the fast movers apart (see the top).
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
        input::text,
        CASE WHEN given_cover
             THEN (SELECT string_agg(format('SELECT i.row_id, i.ra, i.dec, i.pix%s AS pix FROM %s AS i
                                             WHERE i.hpx IS NOT NULL AND i.pix%s >= 0', k, input, k), ' UNION ALL ')
                   FROM generate_series(0, 3) AS k)
             ELSE healcat.xmatch_cover_query(input::text, search_arcsec) END,
        CASE WHEN pad > slow_pad THEN healcat.xmatch_cover_query(input::text, radius_arcsec) END,
        n, healcat.xmatch_probe_order(search_arcsec), healcat.xmatch_probe_order(radius_arcsec), rel, mode, epoch_yr)
    USING radius_arcsec / 3600.0, rel, epoch_yr, slow_pad;
END $$;


-- spatial_v1.sql's, the fast movers of release_b apart (see the top). With them, release_a's moved
-- positions are computed twice, once for each cover.
CREATE OR REPLACE FUNCTION healcat.xmatch_releases(
    release_a text, release_b text, radius_arcsec float8, mode text DEFAULT 'best', epoch_yr float8 DEFAULT NULL)
RETURNS TABLE (source_id_a bigint, object_id_a text, ra_a float8, dec_a float8,
               source_id_b bigint, object_id_b text, ra_b float8, dec_b float8, separation_arcsec float8)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, healcat AS $$
DECLARE
    rel_a integer;
    rel_b integer;
    n bigint;
    pad float8;
    slow_pad float8;
    search_arcsec float8;
    a_rows text;
BEGIN
    PERFORM healcat.check_xmatch(radius_arcsec, mode);
    PERFORM healcat.check_epoch(epoch_yr);
    rel_a := healcat.resolve_release(release_a, 'xmatch');
    rel_b := healcat.resolve_release(release_b, 'xmatch');
    pad := healcat.xmatch_pm_pad_arcsec(rel_b, epoch_yr);
    slow_pad := healcat.xmatch_slow_pad_arcsec(radius_arcsec, pad);
    search_arcsec := healcat.xmatch_search_radius_arcsec(radius_arcsec, slow_pad);
    SELECT count(*) INTO n FROM healcat.source AS s WHERE s.release_id = rel_a AND s.hpx IS NOT NULL;
    -- release_a's positions at the epoch (its stored ones without one), and their HEALPix index,
    -- computed once per row: OFFSET 0 keeps the subquery whole (inlined, hpx_ang2pix ran at every
    -- use of hpx inside the probe cover's join condition)
    a_rows := format('(SELECT s.source_id AS row_id, m.ra, m.dec, %s AS hpx FROM healcat.source AS s
                       CROSS JOIN LATERAL healcat.pm_propagate(s.ra, s.dec, s.pmra_masyr, s.pmdec_masyr,
                                                               %L::float8 - s.ref_epoch_yr) AS m(ra, dec)
                       WHERE s.release_id = %s AND s.hpx IS NOT NULL OFFSET 0)',
                     CASE WHEN epoch_yr IS NULL THEN 's.hpx' ELSE 'healcat.hpx_ang2pix(29, m.ra, m.dec)' END,
                     epoch_yr, rel_a);
    RETURN QUERY
    SELECT a.source_id, a.object_id, pa.ra, pa.dec, m.source_id, m.object_id, m.ra, m.dec, m.separation_arcsec
    FROM healcat.xmatch_core(
        a_rows, healcat.xmatch_cover_query(a_rows, search_arcsec),
        CASE WHEN pad > slow_pad THEN healcat.xmatch_cover_query(a_rows, radius_arcsec) END,
        n, radius_arcsec, healcat.xmatch_probe_order(search_arcsec), healcat.xmatch_probe_order(radius_arcsec),
        rel_b, mode, epoch_yr, slow_pad) AS m
    JOIN healcat.source AS a ON a.source_id = m.row_id AND a.release_id = rel_a
    CROSS JOIN LATERAL healcat.pm_propagate(a.ra, a.dec, a.pmra_masyr, a.pmdec_masyr, epoch_yr - a.ref_epoch_yr) AS pa(ra, dec)
    ORDER BY a.source_id, m.separation_arcsec, m.source_id;
END $$;
