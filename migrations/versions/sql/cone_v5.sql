-- cone_v5.sql -- (migration 0038) change it in a new migration with _v6 definitions rather than by
-- editing this file.
--
--   healcat.hpx_cone_cover(ra_deg, dec_deg, radius_deg, stop_order)   cone_v3.sql's; a centre RA or Dec
--       under 1e-140 deg is taken as 0 (the cover is a superset with a margin far above that): the
--       descent's squared distances, (pixel - centre)^2, underflowed (an error in PostgreSQL) for a
--       centre at Dec 1e-170, so nearest(0, 1e-170, 1) and an ellipse there failed.
--
-- Executed through sqlalchemy.text(): never a colon directly followed by a word character.

CREATE OR REPLACE FUNCTION healcat.hpx_cone_cover(ra_deg float8, dec_deg float8, radius_deg float8, stop_order int)
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
    -- a centre coordinate under 1e-140 deg is 0: the descent's squares of tiny differences underflowed
    IF abs(ra_deg) < 1e-140 THEN
        ra_deg := 0.0;
    END IF;
    IF abs(dec_deg) < 1e-140 THEN
        dec_deg := 0.0;
    END IF;
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
