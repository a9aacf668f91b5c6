-- cone_v2.sql -- the cone search's cover and query, version 2 (migration 0010). Change them in a new
-- migration with _v3 definitions rather than by editing this file.
--
--   healcat.hpx_cone_cover(ra_deg, dec_deg, radius_deg, stop_order)
--       the cover of healpix_v1.sql, with two changes that make it cheap for small cones:
--       * the descent starts from the <= 4 pixels of order k0 = healcat.xmatch_order(radius)
--         around the centre (healcat.hpx_xmatch_cover; they hold every point within the radius)
--         instead of the 12 base pixels, for radii up to 0.5 deg;
--       * it stops at stop_order (never above k0, never below the order healpix_v1's rule picks,
--         maxrad <= r/4): refining pixels that hold about one source each costs more index
--         descents and pixel tests than rechecking the few rows they would exclude.
--   healcat.hpx_cone_cover(ra_deg, dec_deg, radius_deg)     (healpix_v1.sql) is the same with
--       stop_order 29, through this one.
--   healcat.cover_stop_order()
--       the order whose pixels hold about one source on average (from the planner's row count of
--       healcat.source; 0 for an empty catalog).
--   healcat.sources_near_ranges(los, his, release_id, ra_deg, dec_deg)
--       regions_v1.sql's sources_in_ranges with each row's distance from a centre computed once,
--       and its shard = ANY(...) list holding each shard once (it held one entry per range, and
--       every index row is compared with the whole list); sources_in_ranges and cone_in_ranges
--       (same rows as regions_v1.sql) are now written over it.
--   healcat.cone_search(...)
--       same arguments and rows as queries_v1.sql, now the cover's ranges passed as arrays to
--       healcat.cone_in_ranges (regions_v1.sql: one LATERAL btree range scan per range), whose
--       plan is cached (force_generic_plan) instead of planning a statement with the ranges as
--       literals on every call.
--
-- Note for whoever edits this file: it is executed through sqlalchemy.text(), so never write a
-- colon directly followed by a word character; '::type' and ':=' are fine.


CREATE FUNCTION healcat.hpx_cone_cover(ra_deg float8, dec_deg float8, radius_deg float8, stop_order int)
RETURNS TABLE(lo bigint, hi bigint)
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE ROWS 20
SET enable_memoize = off SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    c_max_pixrad_rad CONSTANT float8[] := '{
        0.8410686705679302, 0.48146047147606696, 0.2543334045529589,
        0.13042543553450464, 0.06601476143251347, 0.033206666811769106,
        0.01665302521141051, 0.00833892084368468, 0.004172560737300081,
        0.002087055235497685, 0.0010437213083341575, 0.0005219090735712368,
        0.0002609666412327938, 0.00013048634667784872, 6.5243929847981e-05,
        3.262215405052199e-05, 1.6311124306785717e-05, 8.155573973774314e-06,
        4.0777899419484465e-06, 2.0388957098303583e-06, 1.0194480394961426e-06,
        5.097240660559357e-07, 2.5486204450043484e-07, 1.2743102524606507e-07,
        6.371551334296504e-08, 3.185775697338972e-08, 1.5928878417023963e-08,
        7.964439278182877e-09, 3.98221954619691e-09, 1.9911098427693513e-09}';
    c_npix29 CONSTANT bigint := 12 * (1::bigint << 58);
    v_r_rad   float8;
    v_ra_rad  float8;
    v_dec_rad float8;
    v_cx      float8;
    v_cy      float8;
    v_cz      float8;
    v_k0      int := 0;
    v_hpx     bigint;
    v_kstop   int := 29;
    v_keep2   float8[];
    v_inner2  float8[];
BEGIN
    IF dec_deg = 'NaN'::float8 OR dec_deg < -90 OR dec_deg > 90 THEN
        RAISE EXCEPTION 'hpx_cone_cover: dec_deg must be in [-90, 90], got %', dec_deg;
    END IF;
    IF ra_deg = 'NaN'::float8 OR ra_deg = 'Infinity'::float8 OR ra_deg = '-Infinity'::float8 THEN
        RAISE EXCEPTION 'hpx_cone_cover: ra_deg must be finite, got %', ra_deg;
    END IF;
    IF radius_deg = 'NaN'::float8 OR radius_deg < 0 THEN
        RAISE EXCEPTION 'hpx_cone_cover: radius_deg must be >= 0, got %', radius_deg;
    END IF;
    IF radius_deg >= 180 THEN
        RETURN QUERY SELECT 0::bigint, c_npix29;
        RETURN;
    END IF;
    v_r_rad   := CASE WHEN radius_deg < 1e-300 THEN 0.0::float8 ELSE radians(radius_deg) END;
    v_ra_rad  := CASE WHEN abs(ra_deg) < 1e-300 THEN 0.0::float8 ELSE radians(ra_deg) END;
    v_dec_rad := CASE WHEN abs(dec_deg) < 1e-300 THEN 0.0::float8 ELSE radians(dec_deg) END;
    v_cx := cos(v_dec_rad) * cos(v_ra_rad);
    v_cy := cos(v_dec_rad) * sin(v_ra_rad);
    v_cz := sin(v_dec_rad);
    IF radius_deg <= 0.5 THEN
        v_k0 := CASE WHEN v_r_rad <= 0 THEN 28 ELSE healcat.xmatch_order(radius_deg * 3600.0) END;
        v_hpx := healcat.hpx_ang2pix(29, ra_deg, dec_deg);  -- once: an argument is inlined at every use
    END IF;
    FOR k IN v_k0..29 LOOP
        IF c_max_pixrad_rad[k + 1] <= 0.25 * v_r_rad THEN
            v_kstop := k;
            EXIT;
        END IF;
    END LOOP;
    v_kstop := least(v_kstop, greatest(v_k0, stop_order));
    SELECT array_agg(CASE WHEN v_r_rad + m.m_rad > pi() - 1e-3 THEN 'Infinity'::float8
                          ELSE power(2.0 * sin((v_r_rad + m.m_rad) / 2.0), 2) END ORDER BY m.k),
           array_agg(CASE WHEN v_r_rad - m.m_rad > 0 THEN power(2.0 * sin((v_r_rad - m.m_rad) / 2.0), 2)
                          ELSE -1.0::float8 END ORDER BY m.k)
      INTO v_keep2, v_inner2
      FROM (SELECT g.k, c_max_pixrad_rad[g.k + 1] * 1.0001 + 1e-12 AS m_rad
              FROM generate_series(0, v_kstop) AS g(k)) AS m;

    RETURN QUERY
    WITH RECURSIVE seed(p) AS (
        SELECT b.p FROM generate_series(0::bigint, 11::bigint) AS b(p) WHERE v_k0 = 0
        UNION ALL
        SELECT x.pix FROM healcat.hpx_xmatch_cover(v_k0, v_hpx) AS x
        WHERE v_k0 > 0
    ), tree(k, p, ix, iy, emit) AS (
        SELECT v_k0, s.p, c.ix, c.iy, v_k0 = v_kstop
        FROM seed AS s
        CROSS JOIN LATERAL (SELECT s.p & 6148914691236517205 AS x0, (s.p >> 1) & 6148914691236517205 AS y0) AS b
        CROSS JOIN LATERAL (SELECT ((b.x0 | (b.x0 >> 1)) & 3689348814741910323) AS x1,
                                   ((b.y0 | (b.y0 >> 1)) & 3689348814741910323) AS y1) AS b1
        CROSS JOIN LATERAL (SELECT ((b1.x1 | (b1.x1 >> 2)) & 1085102592571150095) AS x2,
                                   ((b1.y1 | (b1.y1 >> 2)) & 1085102592571150095) AS y2) AS b2
        CROSS JOIN LATERAL (SELECT ((b2.x2 | (b2.x2 >> 4)) & 71777214294589695) AS x3,
                                   ((b2.y2 | (b2.y2 >> 4)) & 71777214294589695) AS y3) AS b3
        CROSS JOIN LATERAL (SELECT ((b3.x3 | (b3.x3 >> 8)) & 281470681808895) AS x4,
                                   ((b3.y3 | (b3.y3 >> 8)) & 281470681808895) AS y4) AS b4
        CROSS JOIN LATERAL (SELECT ((b4.x4 | (b4.x4 >> 16)) & 4294967295) & ((1::bigint << v_k0) - 1) AS ix,
                                   ((b4.y4 | (b4.y4 >> 16)) & 4294967295) & ((1::bigint << v_k0) - 1) AS iy) AS c
      UNION ALL
        SELECT g.k, g.p, g.ix, g.iy, (g.d2 <= v_inner2[g.k + 1] OR g.k = v_kstop)
        FROM (
            SELECT c.k, c.p, c.ix, c.iy,
                   s.dx * s.dx + s.dy * s.dy + s.dz * s.dz AS d2
            FROM tree
            CROSS JOIN (VALUES (0), (1), (2), (3)) AS d(c)
            CROSS JOIN LATERAL (
                SELECT tree.k + 1 AS k,
                       4 * tree.p + d.c AS p,
                       2 * tree.ix + (d.c & 1) AS ix,
                       2 * tree.iy + (d.c >> 1) AS iy,
                       2::bigint << tree.k AS ns,
                       (('{2,2,2,2,3,3,3,3,4,4,4,4}'::bigint[])[(tree.p >> (2 * tree.k)) + 1] << (tree.k + 1))
                           - (2 * tree.ix + (d.c & 1)) - (2 * tree.iy + (d.c >> 1)) - 1 AS jr,
                       ('{1,3,5,7,0,2,4,6,1,3,5,7}'::bigint[])[(tree.p >> (2 * tree.k)) + 1] AS jp0,
                       2 * (tree.ix - tree.iy) + (d.c & 1) - (d.c >> 1) AS dxy
                OFFSET 0) AS c
            CROSS JOIN LATERAL (
                SELECT CASE WHEN c.jr < c.ns THEN 1.0::float8
                            WHEN c.jr > 3 * c.ns THEN -1.0::float8
                            ELSE 0.0::float8 END AS zone,
                       power(least(c.jr, 4 * c.ns - c.jr, c.ns)::float8, 2) / (3 * c.ns * c.ns)::float8 AS tmp,
                       (2 * c.ns - c.jr)::float8 / (1.5::float8 * c.ns::float8) AS z_belt,
                       ((c.jp0 * least(c.jr, 4 * c.ns - c.jr, c.ns) + c.dxy + 8 * least(c.jr, 4 * c.ns - c.jr, c.ns))
                           % (8 * least(c.jr, 4 * c.ns - c.jr, c.ns)))::float8
                         / least(c.jr, 4 * c.ns - c.jr, c.ns)::float8 AS t_nr
                OFFSET 0) AS q
            CROSS JOIN LATERAL (
                SELECT sc.sth * cos(sc.phi_rad) - v_cx AS dx,
                       sc.sth * sin(sc.phi_rad) - v_cy AS dy,
                       sc.z - v_cz AS dz
                FROM (SELECT CASE WHEN q.zone = 0 THEN q.z_belt ELSE q.zone * (1.0::float8 - q.tmp) END AS z,
                             CASE WHEN q.zone = 0 THEN sqrt(1.0::float8 - q.z_belt * q.z_belt)
                                  ELSE sqrt(q.tmp * (2.0::float8 - q.tmp)) END AS sth,
                             (pi() / 4.0::float8) * q.t_nr AS phi_rad
                      OFFSET 0) AS sc
                OFFSET 0) AS s
            WHERE NOT tree.emit
        ) AS g
        WHERE g.d2 <= v_keep2[g.k + 1]
    )
    SELECT min(e.r_lo), max(e.r_hi)
      FROM (SELECT b.r_lo, b.r_hi, sum(b.brk) OVER (ORDER BY b.r_lo) AS grp
              FROM (SELECT x.r_lo, x.r_hi,
                           CASE WHEN x.r_lo = lag(x.r_hi) OVER (ORDER BY x.r_lo) THEN 0 ELSE 1 END AS brk
                      FROM (SELECT tree.p << (2 * (29 - tree.k)) AS r_lo,
                                   (tree.p + 1) << (2 * (29 - tree.k)) AS r_hi
                              FROM tree WHERE tree.emit) AS x) AS b) AS e
     GROUP BY e.grp
     ORDER BY 1;
END;
$$;

COMMENT ON FUNCTION healcat.hpx_cone_cover(float8, float8, float8, int) IS
    'Sorted, disjoint, coalesced ranges [lo, hi) of order-29 NESTED HEALPix indices covering every pixel that intersects the cone (superset; recheck with healcat.angdist_deg); boundary pixels no finer than stop_order.';


CREATE OR REPLACE FUNCTION healcat.hpx_cone_cover(ra_deg float8, dec_deg float8, radius_deg float8)
RETURNS TABLE(lo bigint, hi bigint)
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE ROWS 20 AS $$
    SELECT c.lo, c.hi FROM healcat.hpx_cone_cover(ra_deg, dec_deg, radius_deg, 29) AS c
$$;


CREATE FUNCTION healcat.cover_stop_order()
RETURNS int LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN c.reltuples < 12 THEN 0 ELSE least(29, ceil(ln(c.reltuples / 12.0) / ln(4.0))::int) END
    FROM pg_catalog.pg_class AS c WHERE c.oid = 'healcat.source'::regclass
$$;

COMMENT ON FUNCTION healcat.cover_stop_order() IS
    'HEALPix order whose pixels hold about one source of healcat.source on average: where region covers stop refining.';


-- Sources within radius_arcsec of (ra_deg, dec_deg), ICRS, nearest first (same rows as v1).
CREATE OR REPLACE FUNCTION healcat.cone_search(
    ra_deg float8, dec_deg float8, radius_arcsec float8, release_name text DEFAULT NULL)
RETURNS TABLE (source_id bigint, release text, object_id text, ra float8, "dec" float8, distance_arcsec float8)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    los bigint[];
    his bigint[];
    rel integer;
BEGIN
    PERFORM healcat.check_cone(ra_deg, dec_deg, radius_arcsec);
    rel := healcat.release_id_of('cone_search', release_name);
    SELECT array_agg(c.lo ORDER BY c.lo), array_agg(c.hi ORDER BY c.lo) INTO los, his
    FROM healcat.hpx_cone_cover(ra_deg, dec_deg, radius_arcsec / 3600.0, healcat.cover_stop_order()) AS c;
    RETURN QUERY SELECT * FROM healcat.cone_in_ranges(los, his, rel, ra_deg, dec_deg, radius_arcsec / 3600.0);
END $$;


-- The coarse filter every region shares, as in regions_v1.sql (one btree range scan per range,
-- shard = ANY(...) for a distributed planner), plus each row's distance [deg] from a centre when
-- one is given (NULL otherwise): computed once per row inside the range scan's subquery, which
-- OFFSET 0 keeps whole, so a cone's recheck, sort and output reuse it instead of evaluating the
-- haversine three times.
CREATE FUNCTION healcat.sources_near_ranges(los bigint[], his bigint[], p_release_id integer,
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
          AND (p_release_id IS NULL OR x.release_id = p_release_id)
        OFFSET 0) AS s
    JOIN healcat.release AS r ON r.release_id = s.release_id
$$;

CREATE OR REPLACE FUNCTION healcat.sources_in_ranges(los bigint[], his bigint[], p_release_id integer)
RETURNS TABLE (source_id bigint, release text, object_id text, ra float8, "dec" float8)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT s.source_id, s.release, s.object_id, s.ra, s.dec
    FROM healcat.sources_near_ranges(los, his, p_release_id, NULL, NULL) AS s
$$;

-- Sources in the ranges within radius_deg of (ra_deg, dec_deg), nearest first (ties by source_id).
CREATE OR REPLACE FUNCTION healcat.cone_in_ranges(los bigint[], his bigint[], p_release_id integer,
                                                  ra_deg float8, dec_deg float8, radius_deg float8)
RETURNS TABLE (source_id bigint, release text, object_id text, ra float8, "dec" float8, distance_arcsec float8)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT s.source_id, s.release, s.object_id, s.ra, s.dec, s.dist_deg * 3600.0
    FROM healcat.sources_near_ranges(los, his, p_release_id, ra_deg, dec_deg) AS s
    WHERE s.dist_deg <= radius_deg
    ORDER BY s.dist_deg, s.source_id
$$;
