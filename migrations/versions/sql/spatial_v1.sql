-- spatial_v1.sql -- what a review of the spatial answers found (migration 0033). Change these in a
-- new migration with _v2 definitions rather than by editing this file.
--
--   healcat.release_scope(release_id)            new: the releases a search reads. NULL: the published
--       releases (a superseded release's copies of the same objects came back beside the current
--       ones, and best matches were taken from the old copy: the tie went to its lower source_id);
--       0: every release (a region used as a filter inside a search that picks releases itself, as
--       similar's candidates); otherwise that release. A superseded release is searched by name.
--   healcat.inclusive_deg(radius_deg)            new: a radius widened by a few ulps for the
--       comparison with a distance. The radius is given in arcsec and compared in degrees
--       (radius_arcsec / 3600), the distance reported in arcsec (dist_deg * 3600): the round trip is
--       not exact, and an object at its own reported distance could be left out.
--   healcat.sources_near_ranges(...)             cone_v2.sql's, reading release_scope(release_id).
--   healcat.cone_in_ranges(...)                  cone_v2.sql's, comparing with inclusive_deg(radius).
--   healcat.check_radius_underflow(what, radius_arcsec)   new: a radius_arcsec below 1e-300 (whose
--       degrees underflow: 'value out of range: underflow', no argument named) is an argument error
--       naming it; check_cone (queries_v1.sql's) and check_xmatch (crossmatch_v1.sql's) call it.
--   healcat.check_epoch(...)                     crossmatch_v2.sql's; an epoch must be a Julian year in
--       [-4700, 10000], the range the Python path (ERFA) moves positions over.
--   healcat.sky_density(...)                     regions_v1.sql's, over release_scope.
--   healcat.xmatch_prepare(...)                  sky_v4.sql's: with no release, the published ones
--       (release_scope); the separation compared with inclusive_deg(radius).
--   healcat.xmatch_releases(...)                 crossmatch_v2.sql's; at an epoch, release_a's moved
--       positions and their hpx are computed once, in a subquery fenced by OFFSET 0, before the
--       probe cover: inlined, healcat.hpx_ang2pix(29, ...) (PL/pgSQL) ran dozens of times per row
--       inside the cover's join condition (9 s without an epoch, 138 s with one).
--
-- Note for whoever edits this file: it is executed through sqlalchemy.text(), so never write a
-- colon directly followed by a word character; '::type' and ':=' are fine.


CREATE FUNCTION healcat.release_scope(p_release_id integer)
RETURNS integer[] LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT ARRAY(SELECT r.release_id FROM healcat.release AS r
                 WHERE CASE WHEN p_release_id IS NULL THEN r.status = 'published'
                            ELSE p_release_id IN (0, r.release_id) END
                 ORDER BY r.release_id)
$$;

COMMENT ON FUNCTION healcat.release_scope(integer) IS
    'The release_ids a search reads: NULL the published releases, 0 every release, else that release.';


CREATE FUNCTION healcat.inclusive_deg(radius_deg float8)
RETURNS float8 LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT radius_deg * 1.000000000000002::float8
$$;

COMMENT ON FUNCTION healcat.inclusive_deg(float8) IS
    'A radius [deg] widened by about 9 ulps, to compare with a distance: an object at the distance a search reported in arcsec (dist_deg * 3600) is within the radius given in arcsec (radius_arcsec / 3600).';


CREATE OR REPLACE FUNCTION healcat.sources_near_ranges(los bigint[], his bigint[], p_release_id integer,
                                                       ra_deg float8, dec_deg float8)
RETURNS TABLE (source_id bigint, release text, object_id text, ra float8, "dec" float8, dist_deg float8)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT s.source_id, r.name, s.object_id, s.ra, s.dec, s.dist_deg
    FROM unnest(los, his) AS c(lo, hi)
    CROSS JOIN LATERAL (
        SELECT x.source_id, x.release_id, x.object_id, x.ra, x.dec,
               CASE WHEN ra_deg IS NOT NULL THEN healcat.angdist_deg(ra_deg, dec_deg, x.ra, x.dec) END AS dist_deg
        FROM healcat.source AS x
        WHERE x.hpx >= c.lo AND x.hpx < c.hi
          AND x.shard = ANY(ARRAY(SELECT DISTINCT generate_series(y.lo >> 50, (y.hi - 1) >> 50)::smallint
                                  FROM unnest(los, his) AS y(lo, hi)))
          AND x.release_id = ANY((SELECT healcat.release_scope(p_release_id))::integer[])  -- once (an InitPlan)
        OFFSET 0) AS s
    JOIN healcat.release AS r ON r.release_id = s.release_id
$$;

-- Sources in the ranges within radius_deg of (ra_deg, dec_deg), nearest first (ties by source_id).
CREATE OR REPLACE FUNCTION healcat.cone_in_ranges(los bigint[], his bigint[], p_release_id integer,
                                                  ra_deg float8, dec_deg float8, radius_deg float8)
RETURNS TABLE (source_id bigint, release text, object_id text, ra float8, "dec" float8, distance_arcsec float8)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT s.source_id, s.release, s.object_id, s.ra, s.dec, s.dist_deg * 3600.0
    FROM healcat.sources_near_ranges(los, his, p_release_id, ra_deg, dec_deg) AS s
    WHERE s.dist_deg <= healcat.inclusive_deg(radius_deg)
    ORDER BY s.dist_deg, s.source_id
$$;


-- A radius_arcsec whose degrees (radius_arcsec / 3600) would underflow: an argument error naming it.
CREATE FUNCTION healcat.check_radius_underflow(what text, radius_arcsec float8)
RETURNS void LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF radius_arcsec < 1e-300 THEN
        RAISE EXCEPTION '%: radius_arcsec must be at least 1e-300 (smaller underflows in degrees), got %', what,
            radius_arcsec USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;


CREATE OR REPLACE FUNCTION healcat.check_cone(ra_deg float8, dec_deg float8, radius_arcsec float8)
RETURNS void LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF ra_deg IS NULL OR dec_deg IS NULL OR radius_arcsec IS NULL THEN
        RAISE EXCEPTION 'cone: ra_deg, dec_deg and radius_arcsec must not be NULL (got %, %, %)',
            ra_deg, dec_deg, radius_arcsec USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF ra_deg IN ('NaN', 'Infinity', '-Infinity') THEN
        RAISE EXCEPTION 'cone: ra_deg must be finite, got %', ra_deg USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT dec_deg BETWEEN -90 AND 90 OR dec_deg = 'NaN' THEN
        RAISE EXCEPTION 'cone: dec_deg must be in [-90, 90], got %', dec_deg USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT radius_arcsec > 0 OR radius_arcsec > 180 * 3600 OR radius_arcsec = 'NaN' THEN
        RAISE EXCEPTION 'cone: radius_arcsec must be in (0, 648000], got %', radius_arcsec
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM healcat.check_radius_underflow('cone', radius_arcsec);
END $$;


CREATE OR REPLACE FUNCTION healcat.check_xmatch(radius_arcsec float8, mode text)
RETURNS void LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, healcat AS $$
BEGIN
    IF radius_arcsec IS NULL OR NOT radius_arcsec > 0 OR radius_arcsec > 1800 OR radius_arcsec = 'NaN' THEN
        RAISE EXCEPTION 'xmatch: radius_arcsec must be in (0, 1800], got %', coalesce(radius_arcsec::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM healcat.check_radius_underflow('xmatch', radius_arcsec);
    IF mode IS NULL OR mode NOT IN ('best', 'all') THEN
        RAISE EXCEPTION 'xmatch: mode must be ''best'' or ''all'', got %', coalesce(quote_literal(mode), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;


CREATE OR REPLACE FUNCTION healcat.check_epoch(epoch_yr float8)
RETURNS void LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, healcat AS $$
BEGIN
    IF epoch_yr IN ('NaN', 'Infinity', '-Infinity') THEN
        RAISE EXCEPTION 'xmatch: epoch_yr must be a finite Julian year, got %', epoch_yr
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF epoch_yr < -4700 OR epoch_yr > 10000 THEN
        RAISE EXCEPTION 'xmatch: epoch_yr % is outside the epochs accepted, Julian years [-4700, 10000]', epoch_yr
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;


CREATE OR REPLACE FUNCTION healcat.sky_density("order" integer, release_name text DEFAULT NULL)
RETURNS TABLE (pix bigint, n bigint)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    k CONSTANT integer := $1;
    releases integer[];
BEGIN
    PERFORM healcat.check_arg('sky_density', 'order', k, 0, 29);
    releases := healcat.release_scope(healcat.release_id_of('sky_density', release_name));
    RETURN QUERY SELECT s.hpx >> (2 * (29 - k)), count(*)
                 FROM healcat.source AS s
                 WHERE s.hpx IS NOT NULL AND s.release_id = ANY(releases)
                 GROUP BY 1 ORDER BY 1;
END $$;


-- sky_v4.sql's, with no release named the published releases (it searched every release), and the
-- separation compared with inclusive_deg(radius). The statement's parameters: $1 radius [deg],
-- $2 release_id (NULL: the published releases), $3 epoch_yr.
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
    -- no release named: the published ones (an InitPlan, once per statement)
    published text := '(SELECT healcat.release_scope(NULL))::integer[]';
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
        WHERE s.sep_deg <= healcat.inclusive_deg($1)$q$,
        cover,
        CASE WHEN probe
             THEN format('CROSS JOIN LATERAL (
                              SELECT s0.source_id, s0.release_id, s0.object_id, m.ra, m.dec,
                                     healcat.angdist_deg(c.ra, c.dec, m.ra, m.dec) AS sep_deg
                              FROM healcat.source AS s0
                              CROSS JOIN LATERAL %4$s AS m(ra, dec)
                              WHERE s0.hpx >= (c.pix << %1$s) AND s0.hpx < ((c.pix + 1) << %1$s)
                                AND s0.shard::int = (c.pix >> %2$s)::int %3$s OFFSET 0) AS s',
                         2 * (29 - k), 2 * (k - 4), CASE WHEN rel IS NULL THEN 'AND s0.release_id + 0 = ANY(' || published || ')' ELSE 'AND s0.release_id + 0 = $2' END,
                         moved)
             ELSE format('JOIN healcat.source AS s0 ON (s0.hpx >> %1$s) = c.pix AND s0.shard = (c.pix >> %2$s)::smallint %3$s
                          CROSS JOIN LATERAL %4$s AS m(ra, dec)
                          CROSS JOIN LATERAL (SELECT s0.source_id, s0.release_id, s0.object_id, m.ra, m.dec,
                                                     healcat.angdist_deg(c.ra, c.dec, m.ra, m.dec) AS sep_deg) AS s',
                         2 * (29 - k), 2 * (k - 4), CASE WHEN rel IS NULL THEN 'AND s0.release_id = ANY(' || published || ')' ELSE 'AND s0.release_id = $2' END,
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


-- crossmatch_v2.sql's, release_a's positions at the epoch computed once (see the top).
CREATE OR REPLACE FUNCTION healcat.xmatch_releases(
    release_a text, release_b text, radius_arcsec float8, mode text DEFAULT 'best', epoch_yr float8 DEFAULT NULL)
RETURNS TABLE (source_id_a bigint, object_id_a text, ra_a float8, dec_a float8,
               source_id_b bigint, object_id_b text, ra_b float8, dec_b float8, separation_arcsec float8)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, healcat AS $$
DECLARE
    rel_a integer;
    rel_b integer;
    n bigint;
    search_arcsec float8;
    a_rows text;
BEGIN
    PERFORM healcat.check_xmatch(radius_arcsec, mode);
    PERFORM healcat.check_epoch(epoch_yr);
    rel_a := healcat.resolve_release(release_a, 'xmatch');
    rel_b := healcat.resolve_release(release_b, 'xmatch');
    search_arcsec := healcat.xmatch_search_radius_arcsec(radius_arcsec, healcat.xmatch_pm_pad_arcsec(rel_b, epoch_yr));
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
        a_rows,
        format('SELECT i.row_id, i.ra, i.dec, p.pix FROM %s AS i
                CROSS JOIN LATERAL healcat.hpx_xmatch_probe_cover(%s, %s, i.hpx) AS p', a_rows,
               healcat.xmatch_order(search_arcsec), healcat.xmatch_probe_order(search_arcsec)),
        n, radius_arcsec, healcat.xmatch_probe_order(search_arcsec), rel_b, mode, epoch_yr) AS m
    JOIN healcat.source AS a ON a.source_id = m.row_id AND a.release_id = rel_a
    CROSS JOIN LATERAL healcat.pm_propagate(a.ra, a.dec, a.pmra_masyr, a.pmdec_masyr, epoch_yr - a.ref_epoch_yr) AS pa(ra, dec)
    ORDER BY a.source_id, m.separation_arcsec, m.source_id;
END $$;
