-- healcat mixture functions, version 8 (migration 0054): the far tails, as far as a float8 holds them.
-- Change them in a new migration with new definitions rather than by editing this file.
--
-- ml_v7.sql counted a tail term below 1e-250 as 0 (a product that underflows is an error in
-- PostgreSQL), so quantiles stopped near 33.8 sigma (q = 1e-250: every smaller q gave -33.82, for
-- -37.05 at 1e-300) and mixture_sf(37 sigma) was 0 (5.7e-300); a unit Gaussian at -35 truncated at 0
-- was NULL, 'nothing above the bound'. The plain CDF, mixture_cdf(w, m, s, x), was still ml_v5.sql's,
-- its erfc's argument clamped at +-8: 5.6e-30 for every x below -11.3 sigma (1.8e-33 at -12).
--
--   healcat.mixture_term(share, erfc)        ml_v7.sql's, on a component's share of the weights (its
--       weight / their sum, so at most 1): kept down to exp(-700), 1e-304, where the product is still
--       a normal float8 (a float4 weight of 1e-40 too); below, 0, and the sum needs no dividing after.
--   healcat.mixture_sf(w, m, s, x)           ml_v7.sql's, through the shares; a bad component's error
--       (sigma 0: division by zero) is mixture_total's, as the other functions'.
--   healcat.mixture_cdf(w, m, s, x)          ml_v5.sql's, now mixture_sf's mirror: the lower tail summed
--       as itself, erfc not clamped.
--   healcat.mixture_quantile(w, m, s, q, lower)   ml_v7.sql's, through the shares and the CDF above.
--
-- Executed through sqlalchemy.text(): never a colon directly followed by a word character.

CREATE OR REPLACE FUNCTION healcat.mixture_term(weight float8, erfc_value float8)
RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN weight <= 0 OR erfc_value <= 0 THEN 0.0
                WHEN ln(weight) + ln(erfc_value) > -700 THEN weight * 0.5 * erfc_value
                ELSE 0.0 END
$$;

COMMENT ON FUNCTION healcat.mixture_term(float8, float8) IS
    'A component''s share of a tail: its share of the weights (at most 1) * erfc / 2, or 0 below 1e-304 (where the product would underflow).';

CREATE OR REPLACE FUNCTION healcat.mixture_sf(weights real[], means real[], sigmas real[], x float8)
RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (SELECT CASE WHEN bool_or(NOT c.ok) OR NOT coalesce(sum(c.w) > 0, false)
                        THEN healcat.mixture_total('mixture_sf', weights, means, sigmas)
                        WHEN x = 'NaN' THEN healcat.nan_argument_error('mixture_sf', 'x', x)
                        ELSE least(1.0, sum(CASE WHEN NOT c.ok OR NOT c.total > 0 THEN 0 ELSE
                                 healcat.mixture_term(c.w / c.total, erfc((x - c.m) / (c.s * sqrt(2.0::float8)))) END))
                   END
            FROM (SELECT u.*, sum(u.w) OVER () AS total
                  FROM healcat.mixture_components(weights, means, sigmas) AS u) AS c)
$$;

CREATE OR REPLACE FUNCTION healcat.mixture_cdf(weights real[], means real[], sigmas real[], x float8)
RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (SELECT CASE WHEN bool_or(NOT c.ok) OR NOT coalesce(sum(c.w) > 0, false)
                        THEN healcat.mixture_total('mixture_cdf', weights, means, sigmas)
                        WHEN x = 'NaN' THEN healcat.nan_argument_error('mixture_cdf', 'x', x)
                        ELSE least(1.0, sum(CASE WHEN NOT c.ok OR NOT c.total > 0 THEN 0 ELSE
                                 healcat.mixture_term(c.w / c.total, erfc((c.m - x) / (c.s * sqrt(2.0::float8)))) END))
                   END
            FROM (SELECT u.*, sum(u.w) OVER () AS total
                  FROM healcat.mixture_components(weights, means, sigmas) AS u) AS c)
$$;

-- The one bisection (ml_v7.sql's), its tails summed through the components' shares.
CREATE OR REPLACE FUNCTION healcat.mixture_quantile(weights real[], means real[], sigmas real[], q float8, lower float8)
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
            below := below + healcat.mixture_term(w[i] / total, erfc((m[i] - mid) / (s[i] * sqrt(2.0::float8))));
        END LOOP;
        IF below <= 0.5 THEN
            cdf := (below - below_lower) / above_lower;
        ELSE
            above := 0;
            FOR i IN 1..n LOOP
                above := above + healcat.mixture_term(w[i] / total, erfc((mid - m[i]) / (s[i] * sqrt(2.0::float8))));
            END LOOP;
            cdf := 1 - above / above_lower;
        END IF;
        IF cdf < q THEN lo := mid; ELSE hi := mid; END IF;
    END LOOP;
    RETURN 0.5 * (lo + hi);
END $$;
