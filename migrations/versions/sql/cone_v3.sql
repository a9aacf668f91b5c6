-- cone_v3.sql -- the cone cover, version 3 (migration 0017). Change it in a new migration with _v4
-- definitions rather than by editing this file.
--
--   healcat.hpx_cone_descent(ra_deg, dec_deg, radius_deg, stop_order)
--       cone_v2.sql's hpx_cone_cover(ra, dec, radius, stop_order), renamed, unchanged: the
--       recursive descent from seed pixels, boundary pixels no finer than stop_order.
--   healcat.hpx_cone_cover(ra_deg, dec_deg, radius_deg, stop_order)
--       new, over it, with two changes that both trade pixel tests for row rechecks (a pixel tested
--       in the descent's recursive query costs about 1.5 us, a row rechecked about 1 us;
--       benchmarks/README.md, cone, has the figures):
--       * the descent stops two orders above stop_order (stop_order: where pixels hold about one
--         source; two orders coarser they hold about 16), not at stop_order itself;
--       * when the <= 4 seed pixels of order k0 = healcat.xmatch_order(radius) around the centre,
--         which hold the cone, are that coarse already (radii up to about 2 arcmin on a
--         10-million-source catalog), they are the cover: no descent, whose query costs about
--         0.2 ms to start and finish even when it refines nothing.
--       Same rows from every cone: the cover is a superset either way and the distance recheck
--       is exact. healcat.hpx_cone_cover(ra, dec, radius) (cone_v2.sql) calls it with stop_order 29.
--
-- Note for whoever edits this file: it is executed through sqlalchemy.text(), so never write a
-- colon directly followed by a word character; '::type' and ':=' are fine.


ALTER FUNCTION healcat.hpx_cone_cover(float8, float8, float8, int) RENAME TO hpx_cone_descent;

COMMENT ON FUNCTION healcat.hpx_cone_descent(float8, float8, float8, int) IS
    'cone_v2.sql''s cone cover (renamed by cone_v3.sql): sorted, disjoint, coalesced order-29 ranges [lo, hi) covering the cone by a recursive descent, boundary pixels no finer than stop_order.';


CREATE FUNCTION healcat.hpx_cone_cover(ra_deg float8, dec_deg float8, radius_deg float8, stop_order int)
RETURNS TABLE(lo bigint, hi bigint)
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE ROWS 20
SET plan_cache_mode = force_generic_plan  -- its statements' plans do not depend on the arguments: plan once
AS $$
DECLARE
    v_k0    int;
    v_shift int;
    v_hpx   bigint;
    v_pix   bigint;
BEGIN
    -- (NaN fails every comparison here; invalid arguments go to the descent, which names them)
    IF radius_deg >= 0 AND radius_deg <= 0.5 AND dec_deg >= -90 AND dec_deg <= 90
       AND ra_deg > '-Infinity'::float8 AND ra_deg < 'Infinity'::float8 THEN
        v_k0 := CASE WHEN radius_deg < 1e-300 THEN 28 ELSE healcat.xmatch_order(radius_deg * 3600.0) END;
        IF v_k0 + 2 >= stop_order THEN
            -- the seeds are the cover, sorted and coalesced
            v_shift := 2 * (29 - v_k0);
            v_hpx := healcat.hpx_ang2pix(29, ra_deg, dec_deg);  -- once: an argument is inlined at every use
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
    END IF;
    RETURN QUERY SELECT d.lo, d.hi FROM healcat.hpx_cone_descent(ra_deg, dec_deg, radius_deg, stop_order - 2) AS d;
END $$;

COMMENT ON FUNCTION healcat.hpx_cone_cover(float8, float8, float8, int) IS
    'Sorted, disjoint, coalesced ranges [lo, hi) of order-29 NESTED HEALPix indices covering every pixel that intersects the cone (superset; recheck with healcat.angdist_deg); boundary pixels no finer than stop_order - 2 (stop_order: where pixels hold about one source).';
