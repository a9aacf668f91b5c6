-- crossmatch_v2.sql -- positional cross-match, version 2 (migration 0011; crossmatch_v1.sql
-- holds the functions this file keeps: xmatch_order, hpx_xmatch_cover, check_xmatch,
-- resolve_release).
--
--   healcat.xmatch_probe_order(radius_arcsec)            -> order of the probe pixels
--   healcat.hpx_xmatch_probe_cover(order, probe_order, hpx) -> the <= 4 probe pixels of a point
--   healcat.pm_propagate(ra, dec, pmra, pmdec, dt_yr)   -> a position moved by its proper motion
--   healcat.xmatch_pm_pad_arcsec(release_id, epoch_yr)   -> the largest |pm| * |epoch - ref_epoch|
--   healcat.xmatch_table(input, radius_arcsec, release_name, mode, epoch_yr)
--   healcat.xmatch_releases(release_a, release_b, radius_arcsec, mode, epoch_yr)
--       replaced: index range scans in hpx order, and a match at an epoch (below)
--
-- What changed from v1, and why (benchmarks/README.md, xmatch, has the figures): v1 joined each
-- input row's <= 4 order-k pixels (k = xmatch_order(radius), 4 pixels for most rows) to
-- `source.hpx >> 2*(29-k)` with a hash join against a sequential scan of the whole catalog. v2
-- probes the catalog through ix_source_hpx instead: one index range scan per probe pixel, the
-- probes in hpx order so that consecutive scans read neighbouring index and heap pages (the
-- catalog is stored in hpx order). For small radii the probe pixels are the order-(k-2) parents
-- of the order-k cover: they hold the disk because the order-k pixels do, and since an
-- order-(k-2) pixel is 4 order-k pixels across, the <= 2x2 order-k block around a point falls in
-- one parent for 9 points out of 16: 1.56 probes per row instead of 4 (1 arcsec: order 12, 52
-- arcsec pixels, against a density of 245 sources per square degree about 0.05 sources each).
--
-- Note for whoever edits this file: it is executed through sqlalchemy.text(), so never write
-- a colon directly followed by a word character; '::type' and ':=' are fine.


-- v1's versions, whose signatures change (the epoch): two overloads would make calls ambiguous.
DROP FUNCTION healcat.xmatch_releases(text, text, float8, text), healcat.xmatch_table(regclass, float8, text, text),
    healcat.xmatch_core(text, text, bigint, float8, integer, text);


-- Order of the probe pixels: two orders coarser than the cover's (healcat.xmatch_order k) while
-- that stays at order 11 or finer (pixels under 2 arcmin: radii up to about 2 arcsec), else k
-- itself. Coarse pixels save probes (1.56 per row instead of 4) but each holds 16 times the
-- sources; past order 11 a probe pixel would hold tens of sources in the densest catalogs
-- (Gaia's 44,000 per square degree on average), and rechecking them would cost more than the
-- probes saved.
CREATE FUNCTION healcat.xmatch_probe_order(radius_arcsec float8)
RETURNS int LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN k.k - 2 >= 11 THEN k.k - 2 ELSE k.k END
    FROM (SELECT healcat.xmatch_order(radius_arcsec) AS k) AS k
$$;

COMMENT ON FUNCTION healcat.xmatch_probe_order(float8) IS
    'HEALPix order of the cross-match probe pixels for a radius [arcsec]: healcat.xmatch_order(radius) - 2 if that is >= 11, else xmatch_order(radius).';


-- The distinct order-probe_order parents of healcat.hpx_xmatch_cover(order, hpx): <= 4 pixels whose
-- union holds every point within 0.3 * resol(order + 1) of hpx. Inlined into the caller's query.
CREATE FUNCTION healcat.hpx_xmatch_probe_cover("order" int, probe_order int, hpx bigint)
RETURNS TABLE (pix bigint)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT DISTINCT c.pix >> (2 * ($1 - $2)) FROM healcat.hpx_xmatch_cover($1, $3) AS c
$$;

COMMENT ON FUNCTION healcat.hpx_xmatch_probe_cover(int, int, bigint) IS
    'The <= 4 order-probe_order NESTED parents of healcat.hpx_xmatch_cover(order, hpx): they hold its disk.';


-- Cross-match at an epoch (epoch_yr, a Julian year, not NULL): the catalog's sources with proper
-- motions (source.pmra_masyr, pmdec_masyr at ref_epoch_yr) are moved to epoch_yr before the
-- distance test; sources without proper motions stay where they are. The coarse search is padded
-- by the largest |pm| * |epoch_yr - ref_epoch_yr| of the release (computed by
-- healcat.xmatch_pm_pad_arcsec, a scan of the release): a source moves by at most that much, so
-- every source within the radius at epoch_yr lies within radius + pad of its stored position.

-- (ra, dec) [deg] moved by a proper motion (pmra_masyr = mu_alpha * cos(dec), pmdec_masyr [mas/yr])
-- over dt_yr years: the direction of p + dt * (pmra e_ra + pmdec e_dec), i.e. uniform motion along
-- a straight line in space with no radial velocity (what astropy's apply_space_motion does for a
-- star without parallax, to well under a microarcsecond over centuries). NULL proper motions or dt:
-- the position unchanged. Inlined into the caller's query.
CREATE FUNCTION healcat.pm_propagate(ra float8, "dec" float8, pmra_masyr float8, pmdec_masyr float8, dt_yr float8)
RETURNS TABLE (ra_deg float8, dec_deg float8)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN v.moves THEN healcat.wrap_ra_deg(degrees(atan2(v.y, v.x))) ELSE $1 END,
           CASE WHEN v.moves THEN degrees(atan2(v.z, sqrt(v.x * v.x + v.y * v.y))) ELSE $2 END
    FROM (SELECT t.moves,
                 cos(t.d) * cos(t.a) - t.ma * sin(t.a) - t.md * sin(t.d) * cos(t.a) AS x,
                 cos(t.d) * sin(t.a) + t.ma * cos(t.a) - t.md * sin(t.d) * sin(t.a) AS y,
                 sin(t.d) + t.md * cos(t.d) AS z
          FROM (SELECT radians($1) AS a, radians($2) AS d,
                       coalesce(radians($3 * $5 / 3600000.0), 0) AS ma, coalesce(radians($4 * $5 / 3600000.0), 0) AS md,
                       $3 IS NOT NULL AND $4 IS NOT NULL AND $5 IS NOT NULL AND $5 <> 0 AS moves) AS t) AS v
$$;

COMMENT ON FUNCTION healcat.pm_propagate(float8, float8, float8, float8, float8) IS
    'ICRS (ra, dec) [deg] moved by proper motions [mas/yr, RA''s times cos(dec)] over dt_yr years (linear motion in space).';

-- The largest angle [arcsec] a source of release rel (every release when NULL) moves between its
-- ref_epoch_yr and epoch_yr; 0 when none has a proper motion or epoch_yr is NULL.
CREATE FUNCTION healcat.xmatch_pm_pad_arcsec(rel integer, epoch_yr float8)
RETURNS float8 LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(max(sqrt(s.pmra_masyr ^ 2 + s.pmdec_masyr ^ 2) * abs($2 - s.ref_epoch_yr)) / 1000.0, 0)
    FROM healcat.source AS s
    WHERE $2 IS NOT NULL AND ($1 IS NULL OR s.release_id = $1) AND s.pmra_masyr IS NOT NULL
$$;

COMMENT ON FUNCTION healcat.xmatch_pm_pad_arcsec(integer, float8) IS
    'Largest |proper motion| * |epoch_yr - ref_epoch_yr| [arcsec] of a release''s sources (all releases if NULL).';


-- The radius [arcsec] the coarse search needs: radius_arcsec, padded by the proper motions' largest
-- displacement (and a millionth of an arcsec for the rounding of positions and pad) when there is
-- one; a clear error when that is beyond what a cover holds.
CREATE FUNCTION healcat.xmatch_search_radius_arcsec(radius_arcsec float8, pad_arcsec float8)
RETURNS float8 LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, healcat AS $$
BEGIN
    IF pad_arcsec = 0 THEN
        RETURN radius_arcsec;
    END IF;
    IF radius_arcsec + pad_arcsec + 1e-6 > 1800 THEN
        RAISE EXCEPTION 'xmatch: radius_arcsec % plus the largest proper-motion displacement to the epoch (% arcsec) exceeds 1800 arcsec',
            radius_arcsec, round(pad_arcsec::numeric, 3) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN radius_arcsec + pad_arcsec + 1e-6;
END $$;


-- A clear error for an epoch that is not a finite number (NULL: no epoch).
CREATE FUNCTION healcat.check_epoch(epoch_yr float8)
RETURNS void LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, healcat AS $$
BEGIN
    IF epoch_yr IN ('NaN', 'Infinity', '-Infinity') THEN
        RAISE EXCEPTION 'xmatch: epoch_yr must be a finite Julian year, got %', epoch_yr
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;


-- The cross-match itself (arguments already checked). `input` is a relation or a parenthesized
-- query with a column row_id (every input row), `cover` a query giving (row_id, ra, dec, pix):
-- the input's positions [deg] with each of their order-probe_order pixels (those of the radius,
-- padded by the proper motions when epoch_yr is given); only the functions below build them. n_input picks the plan: index range scans of
-- ix_source_hpx per probe pixel, in pixel order, unless the input is a sizeable part of the
-- catalog (a quarter or more), where one hash join against a sequential scan costs less. The SET
-- clauses make the planner settings this function's own: they are restored when it returns.
CREATE FUNCTION healcat.xmatch_core(input text, cover text, n_input bigint, radius_arcsec float8,
                                    probe_order int, rel integer, mode text, epoch_yr float8)
RETURNS TABLE (row_id bigint, source_id bigint, release text, object_id text, ra float8, "dec" float8,
               separation_arcsec float8)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, healcat
SET enable_nestloop = on SET enable_hashjoin = on SET enable_mergejoin = on SET work_mem = '256MB'
AS $$
DECLARE
    k int := probe_order;
    n_catalog float8;
    probe boolean;
    pairs text;
BEGIN
    SELECT greatest(c.reltuples, 0) INTO n_catalog FROM pg_class AS c WHERE c.oid = 'healcat.source'::regclass;
    probe := n_input * 4 < n_catalog;
    -- The range-scan plan needs no setting (its LATERAL subquery can only be a nested loop driven
    -- by the pixels), and the joins around it (release names; in 'best' mode the input with its
    -- nearest matches, a million rows each) must stay free to hash: v1 turned hash joins off for
    -- it, which made those a nested loop over a million rows squared. The hash plan turns nested
    -- loops off instead, so that the pixel equi-join is hashed.
    PERFORM set_config('enable_hashjoin', 'on', true);
    PERFORM set_config('enable_mergejoin', CASE WHEN probe THEN 'on' ELSE 'off' END, true);
    PERFORM set_config('enable_nestloop', CASE WHEN probe THEN 'on' ELSE 'off' END, true);
    -- The pixels are materialized first (inlined into the join condition, the cover's expression
    -- would be evaluated once per use of each of its parts), sorted for the range-scan plan. That
    -- plan is a LATERAL subquery kept apart by OFFSET 0, so the pixels can only drive it: the
    -- planner cannot estimate a range with per-row bounds, and for a million pixels it found a
    -- nested loop over the whole catalog cheaper (minutes). Its shard is compared as int: as a
    -- smallint equality, PostgreSQL 18 would skip-scan pk_source (source_id, shard) on it; and its
    -- release as release_id + 0, so that no index on release_id competes with ix_source_hpx.
    pairs := format($q$
        WITH c AS MATERIALIZED (SELECT * FROM (%1$s) AS c0 %3$s)
        SELECT c.row_id, s.source_id, s.release_id, s.object_id, m.ra, m.dec, d.sep_deg
        FROM c
        %2$s
        CROSS JOIN LATERAL %4$s AS m(ra, dec)
        CROSS JOIN LATERAL (SELECT healcat.angdist_deg(c.ra, c.dec, m.ra, m.dec) AS sep_deg) AS d
        WHERE d.sep_deg <= $1$q$,
        cover,
        CASE WHEN probe
             THEN format('CROSS JOIN LATERAL (
                              SELECT s0.source_id, s0.release_id, s0.object_id, s0.ra, s0.dec, s0.pmra_masyr,
                                     s0.pmdec_masyr, s0.ref_epoch_yr
                              FROM healcat.source AS s0
                              WHERE s0.hpx >= (c.pix << %1$s) AND s0.hpx < ((c.pix + 1) << %1$s)
                                AND s0.shard::int = (c.pix >> %2$s)::int %3$s OFFSET 0) AS s',
                         2 * (29 - k), 2 * (k - 4), CASE WHEN rel IS NULL THEN '' ELSE 'AND s0.release_id + 0 = $2' END)
             ELSE format('JOIN healcat.source AS s ON (s.hpx >> %s) = c.pix AND s.shard = (c.pix >> %s)::smallint %s',
                         2 * (29 - k), 2 * (k - 4), CASE WHEN rel IS NULL THEN '' ELSE 'AND s.release_id = $2' END) END,
        CASE WHEN probe THEN 'ORDER BY c0.pix' ELSE '' END,
        CASE WHEN epoch_yr IS NULL THEN '(SELECT s.ra, s.dec)'
             ELSE 'healcat.pm_propagate(s.ra, s.dec, s.pmra_masyr, s.pmdec_masyr, $3 - s.ref_epoch_yr)' END);
    IF mode = 'all' THEN
        RETURN QUERY EXECUTE format($q$
            SELECT p.row_id, p.source_id, r.name, p.object_id, p.ra, p.dec, p.sep_deg * 3600.0
            FROM (%s) AS p JOIN healcat.release AS r USING (release_id)
            ORDER BY p.row_id, p.sep_deg, p.source_id$q$, pairs)
        USING radius_arcsec / 3600.0, rel, epoch_yr;
    ELSE
        RETURN QUERY EXECUTE format($q$
            SELECT i.row_id, b.source_id, r.name, b.object_id, b.ra, b.dec, b.sep_deg * 3600.0
            FROM %s AS i
            LEFT JOIN (SELECT DISTINCT ON (p.row_id) p.*
                       FROM (%s) AS p ORDER BY p.row_id, p.sep_deg, p.source_id) AS b USING (row_id)
            LEFT JOIN healcat.release AS r ON r.release_id = b.release_id
            ORDER BY i.row_id$q$, input, pairs)
        USING radius_arcsec / 3600.0, rel, epoch_yr;
    END IF;
END $$;


-- An uploaded table against the catalog (or one release of it). `input` names a table (a
-- temporary one, usually) with columns row_id bigint, ra float8, "dec" float8 [deg, ICRS] and
-- hpx bigint (healcat.hpx_ang2pix(29, ra, dec); rows where it is NULL are never matched). A
-- table that also has columns pix0 .. pix3 bigint gives each row's probe pixels itself (those of
-- healcat.hpx_xmatch_probe_cover at orders healcat.xmatch_order(radius_arcsec) and
-- healcat.xmatch_probe_order(radius_arcsec), -1 for none; the Python API computes them with
-- healpy; not with epoch_yr, whose padded radius picks other orders). mode 'best': one row per
-- input row, the nearest source within the radius or NULLs; 'all': every pair within the radius.
-- epoch_yr [Julian year]: match at that epoch (see the header); ra, dec are then the source's
-- position at epoch_yr.
CREATE FUNCTION healcat.xmatch_table(
    input regclass, radius_arcsec float8, release_name text DEFAULT NULL, mode text DEFAULT 'best',
    epoch_yr float8 DEFAULT NULL)
RETURNS TABLE (row_id bigint, source_id bigint, release text, object_id text, ra float8, "dec" float8,
               separation_arcsec float8)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, healcat AS $$
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
    RETURN QUERY SELECT * FROM healcat.xmatch_core(
        input::text,
        CASE WHEN given_cover
             THEN format('SELECT i.row_id, i.ra, i.dec, p.pix FROM %s AS i
                          CROSS JOIN LATERAL (VALUES (i.pix0), (i.pix1), (i.pix2), (i.pix3)) AS p(pix)
                          WHERE i.hpx IS NOT NULL AND p.pix >= 0', input)
             ELSE format('SELECT i.row_id, i.ra, i.dec, p.pix FROM %s AS i
                          CROSS JOIN LATERAL healcat.hpx_xmatch_probe_cover(%s, %s, i.hpx) AS p
                          WHERE i.hpx IS NOT NULL', input, healcat.xmatch_order(search_arcsec),
                         healcat.xmatch_probe_order(search_arcsec)) END,
        n, radius_arcsec, healcat.xmatch_probe_order(search_arcsec), rel, mode, epoch_yr);
END $$;


-- One release against another, both named as in healcat.release.name (the same release twice
-- matches it with itself). Every positioned source of release_a is an input row. mode 'best':
-- one row per positioned source of release_a (NULLs where nothing lies within the radius);
-- 'all': every pair. epoch_yr: both releases' sources moved to that epoch by their proper
-- motions (the positions returned are those at epoch_yr).
CREATE FUNCTION healcat.xmatch_releases(
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
    -- release_a's positions at the epoch (its stored ones without one), and their HEALPix index
    a_rows := format('(SELECT s.source_id AS row_id, m.ra, m.dec, %s AS hpx FROM healcat.source AS s
                       CROSS JOIN LATERAL healcat.pm_propagate(s.ra, s.dec, s.pmra_masyr, s.pmdec_masyr,
                                                               %L::float8 - s.ref_epoch_yr) AS m(ra, dec)
                       WHERE s.release_id = %s AND s.hpx IS NOT NULL)',
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
