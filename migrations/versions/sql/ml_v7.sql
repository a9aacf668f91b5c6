-- healcat mixture functions, version 7 (migration 0051): a mixture truncated where nearly all of its
-- mass lies below the bound, and quantiles far in a tail. Change them in a new migration with new
-- definitions rather than by editing this file.
--
-- The truncated functions divided by 1 - mixture_cdf(lower) and subtracted cdf(lower) from cdf(x):
-- where almost all the mass lies below the bound, both cancel. One unit Gaussian at mean -8 truncated
-- at 0 (6.2e-16 of its mass above) gave the 68% interval [0.0023, 0.161] for [0.0214, 0.223], CDF(0.1)
-- 0.667 for 0.558; at mean -9 (1.1e-19 above) NULL, 'keeps nothing above'. The tail above a point is
-- now summed as itself (erfc of each component, not clamped; a term below 1e-250 counts as 0, as a
-- product that underflows is an error in PostgreSQL), and the truncated CDF takes whichever of its two forms keeps its digits:
-- (cdf(x) - cdf(lower)) / sf(lower) where cdf(x) <= 1/2, else 1 - sf(x) / sf(lower). Photo-z's stored
-- mixtures (over half of their mass above z = 0, or the galaxy is skipped) come out as before.
--
--   healcat.mixture_sf(w, m, s, x)                   new: the probability above x, the tail summed as itself
--       (terms below 1e-250 left out: healcat.mixture_term, new).
--   healcat.mixture_cdf, mixture_pdf (x, lower)      ml_v5.sql's, through mixture_sf (above).
--   healcat.mixture_quantile(w, m, s, q, lower)      new: the quantile of the mixture truncated at lower,
--       by bisection on the truncated CDF (above) between the bound (or 40 sigma below the lowest
--       component) and 40 sigma above the highest; NULL where no mass above the bound is left in a float8.
--   healcat.mixture_quantile(w, m, s, q)             ml_v4.sql's, now the above with lower -Infinity: its
--       bracket was mean +- 10 sigma and its erfc clamped (q = 1e-30 of a unit Gaussian gave -10, for -11.46).
--   healcat.mixture_interval(..., level, lower)      ml_v5.sql's, two truncated quantiles (above); NULL,
--       NULL where no mass above the bound is left in a float8.
--
-- Executed through sqlalchemy.text(): never a colon directly followed by a word character.

-- A component's share of a tail, weight * erfc / 2, and 0 where erfc is below 1e-250: PostgreSQL raises
-- 'value out of range: underflow' where a product of non-zero float8s rounds to 0 (erfc near 27 is
-- subnormal, a float4 weight may be 1e-45), which is why the earlier functions clamped erfc's
-- argument at 8.
CREATE FUNCTION healcat.mixture_term(weight float8, erfc_value float8)
RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN erfc_value > 1e-250 THEN weight * 0.5 * erfc_value ELSE 0.0 END
$$;

CREATE FUNCTION healcat.mixture_sf(weights real[], means real[], sigmas real[], x float8)
RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (SELECT CASE WHEN bool_or(NOT c.ok) OR NOT coalesce(sum(c.w) > 0, false)
                        THEN healcat.mixture_total('mixture_sf', weights, means, sigmas)
                        WHEN x = 'NaN' THEN healcat.nan_argument_error('mixture_sf', 'x', x)
                        ELSE least(1.0, sum(healcat.mixture_term(c.w, erfc((x - c.m) / (c.s * sqrt(2.0::float8)))))
                                        / sum(c.w)) END
            FROM healcat.mixture_components(weights, means, sigmas) AS c)
$$;

COMMENT ON FUNCTION healcat.mixture_sf(real[], real[], real[], float8) IS
    'P(X > x) of a Gaussian mixture: 1 - mixture_cdf(x), summed over the upper tail itself (it keeps its digits where tiny).';

CREATE OR REPLACE FUNCTION healcat.mixture_cdf(weights real[], means real[], sigmas real[], x float8, lower float8)
RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN lower = 'NaN' THEN healcat.nan_argument_error('mixture_cdf', 'lower', lower)
                WHEN x <= lower THEN 0.0
                ELSE (SELECT CASE WHEN t.below_x <= 0.5 THEN (t.below_x - t.below_lower) / nullif(t.above_lower, 0)
                                  ELSE 1 - t.above_x / nullif(t.above_lower, 0) END
                      FROM (SELECT healcat.mixture_cdf(weights, means, sigmas, x) AS below_x,
                                   healcat.mixture_cdf(weights, means, sigmas, lower) AS below_lower,
                                   healcat.mixture_sf(weights, means, sigmas, x) AS above_x,
                                   healcat.mixture_sf(weights, means, sigmas, lower) AS above_lower) AS t) END
$$;

CREATE OR REPLACE FUNCTION healcat.mixture_pdf(weights real[], means real[], sigmas real[], x float8, lower float8)
RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN lower = 'NaN' THEN healcat.nan_argument_error('mixture_pdf', 'lower', lower)
                WHEN x < lower THEN 0.0
                ELSE healcat.mixture_pdf(weights, means, sigmas, x)
                     / nullif(healcat.mixture_sf(weights, means, sigmas, lower), 0) END
$$;

-- The one bisection: the q-quantile of the mixture truncated at `lower` (-Infinity: the whole mixture),
-- on the truncated CDF in whichever of its two forms keeps its digits (the upper tail's sum only where
-- the lower one passes 1/2), between the bound (or 40 sigma below the lowest component) and 40 sigma
-- above the highest. NULL where no mass above the bound is left in a float8, or an argument is NULL.
CREATE FUNCTION healcat.mixture_quantile(weights real[], means real[], sigmas real[], q float8, lower float8)
RETURNS float8 LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    n integer := cardinality(weights);
    w float8[] := weights::float8[];
    m float8[] := means::float8[];
    s float8[] := sigmas::float8[];
    total float8;
    below_lower float8;
    above_lower float8;
    lo float8;
    hi float8;
    mid float8;
    below float8;
    above float8;
    cdf float8;
BEGIN
    IF q IS NULL OR NOT (q > 0 AND q < 1) THEN
        RAISE EXCEPTION 'mixture_quantile: q must be in (0, 1), got %', coalesce(q::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF lower = 'NaN' THEN
        RAISE EXCEPTION 'mixture_quantile: lower must not be NaN' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF weights IS NULL OR means IS NULL OR sigmas IS NULL OR lower IS NULL THEN
        RETURN NULL;
    END IF;
    total := healcat.mixture_total('mixture_quantile', weights, means, sigmas);
    below_lower := CASE WHEN lower = '-Infinity' THEN 0.0 ELSE healcat.mixture_cdf(weights, means, sigmas, lower) END;
    above_lower := CASE WHEN lower = '-Infinity' THEN 1.0 ELSE healcat.mixture_sf(weights, means, sigmas, lower) END;
    IF NOT above_lower > 0 THEN
        RETURN NULL;
    END IF;
    SELECT greatest(lower, min(c.m - 40 * c.s)), max(c.m + 40 * c.s) INTO lo, hi FROM unnest(m, s) AS c(m, s);
    FOR it IN 1..60 LOOP
        mid := 0.5 * (lo + hi);
        below := 0;
        FOR i IN 1..n LOOP
            below := below + healcat.mixture_term(w[i], erfc((m[i] - mid) / (s[i] * sqrt(2.0::float8))));
        END LOOP;
        below := below / total;
        IF below <= 0.5 THEN
            cdf := (below - below_lower) / above_lower;
        ELSE
            above := 0;
            FOR i IN 1..n LOOP
                above := above + healcat.mixture_term(w[i], erfc((mid - m[i]) / (s[i] * sqrt(2.0::float8))));
            END LOOP;
            cdf := 1 - above / total / above_lower;
        END IF;
        IF cdf < q THEN lo := mid; ELSE hi := mid; END IF;
    END LOOP;
    RETURN 0.5 * (lo + hi);
END $$;

CREATE OR REPLACE FUNCTION healcat.mixture_quantile(weights real[], means real[], sigmas real[], q float8)
RETURNS float8 LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT healcat.mixture_quantile(weights, means, sigmas, q, '-Infinity'::float8)
$$;

CREATE OR REPLACE FUNCTION healcat.mixture_interval(
    weights real[], means real[], sigmas real[], level float8, lower float8, OUT lo float8, OUT hi float8)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF level IS NULL OR NOT (level > 0 AND level < 1) THEN
        RAISE EXCEPTION 'mixture_interval: level must be in (0, 1), got %', coalesce(level::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF lower = 'NaN' THEN
        RAISE EXCEPTION 'mixture_interval: lower must not be NaN' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF weights IS NULL OR means IS NULL OR sigmas IS NULL OR lower IS NULL THEN
        RETURN;
    END IF;
    PERFORM healcat.mixture_total('mixture_interval', weights, means, sigmas);  -- its errors name this function
    lo := healcat.mixture_quantile(weights, means, sigmas, (1 - level) / 2, lower);
    hi := healcat.mixture_quantile(weights, means, sigmas, (1 + level) / 2, lower);
END $$;
