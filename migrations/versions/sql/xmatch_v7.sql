-- xmatch_v7.sql -- (migration 0046) change these in a new migration with _v8 definitions rather than
-- by editing this file.
--
-- The pad of an epoch cross-match and its fast movers (xmatch_v5.sql) each read every source with a
-- proper motion of the releases matched: fine to 10M sources, minutes at Gaia's 1.8 billion, for
-- every cross-match at an epoch. Now an index answers both:
--   index healcat.ix_source_pm          new: (release_id, ref_epoch_yr, total proper motion [mas/yr]) of
--       the sources with a proper motion (partial: the others have no entry).
--   healcat.pm_epochs(rel)              new: each release read (healcat.release_scope) and each reference
--       epoch of its moving sources (a loose index scan: one probe per epoch), with the largest total
--       proper motion at it (one more probe).
--   healcat.xmatch_pm_pad_arcsec(rel, epoch)  xmatch_v6.sql's through pm_epochs: per epoch, the largest
--       motion times |dt| (the same number: a positive factor keeps the order).
--   healcat.xmatch_prepare(...)         xmatch_v5.sql's, its fast movers read per release and epoch from
--       the index (total proper motion at least the slow pad over |dt|), then the exact test as before.
--
-- Executed through sqlalchemy.text(): never a colon directly followed by a word character.

CREATE INDEX ix_source_pm ON healcat.source
    (release_id, ref_epoch_yr, (sqrt(pmra_masyr * pmra_masyr + pmdec_masyr * pmdec_masyr)))
    WHERE pmra_masyr IS NOT NULL;


CREATE FUNCTION healcat.pm_epochs(rel integer)
RETURNS TABLE (release_id integer, ref_epoch_yr float8, max_pm_masyr float8)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH RECURSIVE e(release_id, ref_epoch_yr) AS (
        SELECT r.id, (SELECT s.ref_epoch_yr FROM healcat.source AS s
                      WHERE s.release_id = r.id AND s.pmra_masyr IS NOT NULL
                      ORDER BY s.ref_epoch_yr LIMIT 1)
        FROM unnest(healcat.release_scope($1)) AS r(id)
        UNION ALL
        SELECT e.release_id, (SELECT s.ref_epoch_yr FROM healcat.source AS s
                              WHERE s.release_id = e.release_id AND s.pmra_masyr IS NOT NULL
                                AND s.ref_epoch_yr > e.ref_epoch_yr
                              ORDER BY s.ref_epoch_yr LIMIT 1)
        FROM e WHERE e.ref_epoch_yr IS NOT NULL
    )
    SELECT e.release_id, e.ref_epoch_yr,
           (SELECT sqrt(s.pmra_masyr * s.pmra_masyr + s.pmdec_masyr * s.pmdec_masyr) FROM healcat.source AS s
            WHERE s.release_id = e.release_id AND s.pmra_masyr IS NOT NULL AND s.ref_epoch_yr = e.ref_epoch_yr
            ORDER BY sqrt(s.pmra_masyr * s.pmra_masyr + s.pmdec_masyr * s.pmdec_masyr) DESC LIMIT 1)
    FROM e WHERE e.ref_epoch_yr IS NOT NULL
$$;

COMMENT ON FUNCTION healcat.pm_epochs(integer) IS
    'Each release a search reads (NULL: the published, as healcat.release_scope) and each reference epoch [Julian yr] of its sources with a proper motion, with the largest total proper motion [mas/yr] at that epoch; read from ix_source_pm, two probes per epoch.';


CREATE OR REPLACE FUNCTION healcat.xmatch_pm_pad_arcsec(rel integer, epoch_yr float8)
RETURNS float8 LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(max(healcat.pm_displacement_arcsec(e.max_pm_masyr, 0.0, $2 - e.ref_epoch_yr)), 0)
    FROM healcat.pm_epochs($1) AS e
    WHERE $2 IS NOT NULL
$$;


-- xmatch_v5.sql's, the fast movers found through ix_source_pm (see the top).
-- With fast_cover (the input's cover for the radius alone; NULL: no fast movers) the fast movers apart. The statement's parameters: $1 radius [deg], $2
-- release_id (NULL: the published releases), $3 epoch_yr, $4 the slow pad [arcsec].
CREATE OR REPLACE FUNCTION healcat.xmatch_prepare(input text, cover text, fast_cover text, n_input bigint, probe_order int,
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
        -- input's cover for the radius (a few per row; the fast movers are few). Found through
        -- ix_source_pm, per release and reference epoch (healcat.pm_epochs): a total proper motion of
        -- at least the slow pad over |dt| (less 1e-9 of it: a superset whatever the rounding), then
        -- the exact test that also keeps them out of the search around each row
        pairs := pairs || format($q$
        UNION ALL
        SELECT c.row_id, f.source_id, f.release_id, f.object_id, f.ra, f.dec, d.sep_deg
        FROM (SELECT * FROM (%1$s) AS c0 OFFSET 0) AS c
        JOIN (SELECT s0.source_id, s0.release_id, s0.object_id, m.ra, m.dec,
                     healcat.hpx_ang2pix(29, m.ra, m.dec) >> %2$s AS pix
              FROM healcat.pm_epochs(%4$s) AS e
              CROSS JOIN LATERAL (
                  SELECT s1.* FROM healcat.source AS s1
                  WHERE s1.release_id = e.release_id AND s1.pmra_masyr IS NOT NULL
                    AND s1.ref_epoch_yr = e.ref_epoch_yr
                    AND sqrt(s1.pmra_masyr * s1.pmra_masyr + s1.pmdec_masyr * s1.pmdec_masyr)
                        >= $4 * 1000.0 / abs($3 - e.ref_epoch_yr) * (1.0 - 1e-9) OFFSET 0) AS s0
              CROSS JOIN LATERAL %3$s AS m(ra, dec)
              WHERE e.ref_epoch_yr <> $3 AND %5$s OFFSET 0) AS f ON f.pix = c.pix
        CROSS JOIN LATERAL (SELECT healcat.angdist_deg(c.ra, c.dec, f.ra, f.dec) AS sep_deg) AS d
        WHERE d.sep_deg <= healcat.inclusive_deg($1)$q$,
            fast_cover, 2 * (29 - fast_probe_order), moved, CASE WHEN rel IS NULL THEN 'NULL' ELSE '$2' END, fast);
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
