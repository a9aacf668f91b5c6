-- cone_v3.sql -- the cone cover, version 3 (migration 0017). Change it in a new migration with _v4
-- definitions rather than by editing this file.
--
--   healcat.hpx_cone_cover(ra_deg, dec_deg, radius_deg, stop_order)
--       replaced: cone_v2.sql's cover with two changes, both trading pixel tests for row rechecks
--       (a pixel tested in the descent's recursive query costs about 1.5 us, a row rechecked about
--       1 us; benchmarks/README.md, cone, has the figures):
--       * boundary pixels are refined down to two orders above stop_order (pixels holding about
--         16 sources when stop_order's hold one), not to stop_order itself;
--       * when the <= 4 seed pixels of order k0 = healcat.xmatch_order(radius) around the centre
--         are that coarse already (radii up to about 2 arcmin on a 10-million-source catalog),
--         they are the cover: no recursive descent, whose query costs about 0.2 ms to start and
--         finish even when it refines nothing.
--       Same rows from every cone: the cover is a superset either way and the distance recheck
--       is exact.
--
-- Note for whoever edits this file: it is executed through sqlalchemy.text(), so never write a
-- colon directly followed by a word character; '::type' and ':=' are fine.


CREATE OR REPLACE FUNCTION healcat.hpx_cone_cover(ra_deg float8, dec_deg float8, radius_deg float8, stop_order int)
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
    v_shift   int;
    v_pix     bigint;
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
    -- Refined no finer than two orders above stop_order: a boundary pixel there holds about 16
    -- sources when stop_order's hold one, and rechecking half of them costs less than testing
    -- its 4 children in the descent's query (about 1.5 us a pixel against 1 us a row).
    v_kstop := least(v_kstop, greatest(v_k0, stop_order - 2));
    IF v_k0 > 0 AND v_k0 + 2 >= stop_order THEN
        -- The seeds need no refinement (each holds about 16 of stop_order's pixels): they are the
        -- cover, sorted and coalesced here; the descent's query costs ~0.2 ms even when it refines nothing.
        v_shift := 2 * (29 - v_k0);
        FOR v_pix IN SELECT x.pix FROM healcat.hpx_xmatch_cover(v_k0, v_hpx) AS x ORDER BY x.pix LOOP
            IF hi = v_pix << v_shift THEN
                hi := (v_pix + 1) << v_shift;
            ELSE
                IF hi IS NOT NULL THEN
                    RETURN NEXT;
                END IF;
                lo := v_pix << v_shift;
                hi := (v_pix + 1) << v_shift;
            END IF;
        END LOOP;
        RETURN NEXT;
        RETURN;
    END IF;
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
    'Sorted, disjoint, coalesced ranges [lo, hi) of order-29 NESTED HEALPix indices covering every pixel that intersects the cone (superset; recheck with healcat.angdist_deg); boundary pixels no finer than stop_order - 2 (stop_order: where pixels hold about one source).';
