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
--       weight / their sum, so at most 1): kept down to 1e-304, where the product is still a normal
--       float8 (a float4 weight of 1e-40 too); below, 0, and the sum needs no dividing after.
--   healcat.mixture_pdf(w, m, s, x)          ml_v5.sql's, on the shares too, out to 38 sigma (was 37).
--   healcat.mixture_tail(fn, w, m, s, x, upper)   new: a tail summed as itself through the shares, the
--       body of the two below; a bad component's error (sigma 0: division by zero) is mixture_total's.
--   healcat.mixture_sf(w, m, s, x)           ml_v7.sql's, now mixture_tail's upper tail.
--   healcat.mixture_cdf(w, m, s, x)          ml_v5.sql's, now mixture_tail's lower tail: erfc not clamped.
--   healcat.mixture_quantile(w, m, s, q, lower)   ml_v7.sql's, through the shares and the CDF above, each
--       term written out in its loop: 2.5-3x faster (mixture_interval, photo-z's value_p16/p84).
--
-- Executed through sqlalchemy.text(): never a colon directly followed by a word character.

CREATE OR REPLACE FUNCTION healcat.mixture_term(weight float8, erfc_value float8)
RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN weight <= 0 THEN 0.0
                WHEN erfc_value > 2e-304 / weight THEN weight * 0.5 * erfc_value
                ELSE 0.0 END
$$;

-- The density, each component's term in log space on its share of the weights (the sum needs no dividing
-- after: a term over e^-700 divided by weights summing to 1e30 underflowed), out to 38 sigma (it stopped at
-- 37, so a mixture truncated 37 sigma above its mean had a CDF and an interval but a density of 0).
CREATE OR REPLACE FUNCTION healcat.mixture_pdf(weights real[], means real[], sigmas real[], x float8)
RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (SELECT CASE WHEN bool_or(NOT c.ok) OR NOT coalesce(sum(c.w) > 0, false)
                        THEN healcat.mixture_total('mixture_pdf', weights, means, sigmas)
                        WHEN x = 'NaN' THEN healcat.nan_argument_error('mixture_pdf', 'x', x)
                        ELSE sum(CASE WHEN NOT c.ok OR NOT c.total > 0 OR c.w = 0 OR abs((x - c.m) / c.s) > 38 THEN 0
                                      WHEN ln(c.w / c.total) - 0.5 * ((x - c.m) / c.s) ^ 2
                                           - ln(c.s * sqrt(2 * pi())) < -700 THEN 0
                                      ELSE exp(ln(c.w / c.total) - 0.5 * ((x - c.m) / c.s) ^ 2
                                               - ln(c.s * sqrt(2 * pi()))) END) END
            FROM (SELECT u.*, sum(u.w) OVER () AS total
                  FROM healcat.mixture_components(weights, means, sigmas) AS u) AS c)
$$;

COMMENT ON FUNCTION healcat.mixture_term(float8, float8) IS
    'A component''s share of a tail: its share of the weights (at most 1) * erfc / 2, or 0 below 1e-304 (where a product would underflow).';

-- A tail of the mixture summed as itself, the probability above x (upper) or below it: mixture_sf's and
-- mixture_cdf's one body, its errors naming ``fn``.
CREATE FUNCTION healcat.mixture_tail(fn text, weights real[], means real[], sigmas real[], x float8, upper boolean)
RETURNS float8 LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (SELECT CASE WHEN bool_or(NOT c.ok) OR NOT coalesce(sum(c.w) > 0, false)
                        THEN healcat.mixture_total(fn, weights, means, sigmas)
                        WHEN x = 'NaN' THEN healcat.nan_argument_error(fn, 'x', x)
                        ELSE least(1.0, sum(CASE WHEN NOT c.ok OR NOT c.total > 0 THEN 0 ELSE
                                 healcat.mixture_term(c.w / c.total, erfc((CASE WHEN upper THEN x - c.m ELSE c.m - x END)
                                                                          / (c.s * sqrt(2.0::float8)))) END))
                   END
            FROM (SELECT u.*, sum(u.w) OVER () AS total
                  FROM healcat.mixture_components(weights, means, sigmas) AS u) AS c)
$$;

CREATE OR REPLACE FUNCTION healcat.mixture_sf(weights real[], means real[], sigmas real[], x float8)
RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT healcat.mixture_tail('mixture_sf', weights, means, sigmas, x, true)
$$;

CREATE OR REPLACE FUNCTION healcat.mixture_cdf(weights real[], means real[], sigmas real[], x float8)
RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT healcat.mixture_tail('mixture_cdf', weights, means, sigmas, x, false)
$$;

-- The one bisection (ml_v7.sql's), its tails summed through the components' shares, each term as
-- mixture_term has it but written out in the loop (a SQL function's call per term, ~900 a quantile, was
-- 70% of the time: mixture_interval over 4,989 photo-z mixtures took 9.6 s, now 3.2-3.9 s).
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
    e float8;
    least_erfc float8[] := weights::float8[];
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
    FOR i IN 1..n LOOP
        w[i] := w[i] / total;                    -- a share, at most 1
        least_erfc[i] := CASE WHEN w[i] > 0 THEN 2e-304 / w[i] ELSE 'Infinity' END;  -- a term past 1e-304
        s[i] := s[i] * sqrt(2.0::float8);
    END LOOP;
    FOR it IN 1..60 LOOP
        mid := 0.5 * (lo + hi);
        below := 0;
        FOR i IN 1..n LOOP
            e := erfc((m[i] - mid) / s[i]);
            IF e > least_erfc[i] THEN below := below + w[i] * 0.5 * e; END IF;
        END LOOP;
        IF below <= 0.5 THEN
            cdf := (below - below_lower) / above_lower;
        ELSE
            above := 0;
            FOR i IN 1..n LOOP
                e := erfc((mid - m[i]) / s[i]);
                IF e > least_erfc[i] THEN above := above + w[i] * 0.5 * e; END IF;
            END LOOP;
            cdf := 1 - above / above_lower;
        END IF;
        IF cdf < q THEN lo := mid; ELSE hi := mid; END IF;
    END LOOP;
    RETURN 0.5 * (lo + hi);
END $$;
