-- healcat mixture functions, version 4. Applied by migration 0037; change them in a new migration
-- with new definitions rather than by editing this file.
--
--   healcat.mixture_total(fn, weights, means, sigmas)   new; the sum of the weights, after checking the
--       mixture: arrays of one non-zero length (mixture_shape_error's error), weights finite and >= 0
--       and not all 0, means finite, sigmas finite and > 0. Anything else raises, naming the function.
--   healcat.mixture_components(weights, means, sigmas)  new; the components, each with whether it passes.
--   healcat.mixture_pdf, mixture_cdf, mixture_quantile  ml_v2.sql's and ml_v1.sql's, for a mixture whose
--       weights are relative: divided by their sum. Stored mixtures are float4 weights summing to 1
--       within a few 1e-7, so CDF(+inf) came out 1.0000001; a user's weights summing to 0.9999998 gave
--       an interval off by 2x when most of the mass was truncated; a sigma of 0 was 'division by
--       zero' and a negative weight gave a negative CDF.
--   healcat.mixture_interval(..., level, lower)   ml_v3.sql's: NULL where the mixture keeps nothing
--       above `lower` (it raised 'q must be in (0, 1), got 1') or `lower` is NULL (it ignored the
--       bound), as mixture_pdf and mixture_cdf answer.
--
-- Note for whoever edits this file: it is executed through sqlalchemy.text(), so never write a
-- colon directly followed by a word character; '::type' and ':=' are fine.

CREATE FUNCTION healcat.mixture_total(fn text, weights real[], means real[], sigmas real[])
RETURNS float8 LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    total float8;
BEGIN
    IF cardinality(weights) = 0 OR cardinality(means) <> cardinality(weights)
       OR cardinality(sigmas) <> cardinality(weights) THEN
        PERFORM healcat.mixture_shape_error(fn, weights, means, sigmas);
    END IF;
    IF EXISTS (SELECT 1 FROM healcat.mixture_components(weights, means, sigmas) AS c WHERE NOT c.ok) THEN
        RAISE EXCEPTION '%: weights must be finite and >= 0, means finite, sigmas finite and > 0; got weights %, means %, sigmas %',
            fn, weights, means, sigmas USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT sum(w) INTO total FROM unnest(weights::float8[]) AS w;
    IF total = 0 THEN
        RAISE EXCEPTION '%: the weights are all 0, got %', fn, weights USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN total;
END $$;

-- A mixture's components, each with whether it is usable (weight finite and >= 0, mean finite, sigma
-- finite and > 0, arrays of one length).
CREATE FUNCTION healcat.mixture_components(weights real[], means real[], sigmas real[])
RETURNS TABLE (w float8, m float8, s float8, ok boolean) LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT u.w, u.m, u.s,
           coalesce(u.w >= 0 AND u.w < 'Infinity' AND abs(u.m) < 'Infinity' AND u.s > 0 AND u.s < 'Infinity'
                    AND cardinality(means) = cardinality(weights) AND cardinality(sigmas) = cardinality(weights), false)
    FROM unnest(weights::float8[], means::float8[], sigmas::float8[]) AS u(w, m, s)
$$;

-- pdf and cdf check and sum in one pass over the components, calling mixture_total (PL/pgSQL) only
-- to raise the error.
CREATE OR REPLACE FUNCTION healcat.mixture_pdf(weights real[], means real[], sigmas real[], x float8)
RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (SELECT CASE WHEN bool_or(NOT c.ok) OR NOT coalesce(sum(c.w) > 0, false)
                        THEN healcat.mixture_total('mixture_pdf', weights, means, sigmas)
                        WHEN x = 'NaN' THEN 'NaN'::float8
                        ELSE sum(CASE WHEN NOT c.ok OR c.w = 0 OR abs((x - c.m) / c.s) > 37 THEN 0
                                      WHEN ln(c.w) - 0.5 * ((x - c.m) / c.s) ^ 2 - ln(c.s * sqrt(2 * pi())) < -700 THEN 0
                                      ELSE exp(ln(c.w) - 0.5 * ((x - c.m) / c.s) ^ 2 - ln(c.s * sqrt(2 * pi()))) END)
                             / sum(c.w) END
            FROM healcat.mixture_components(weights, means, sigmas) AS c)
$$;

CREATE OR REPLACE FUNCTION healcat.mixture_cdf(weights real[], means real[], sigmas real[], x float8)
RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (SELECT CASE WHEN bool_or(NOT c.ok) OR NOT coalesce(sum(c.w) > 0, false)
                        THEN healcat.mixture_total('mixture_cdf', weights, means, sigmas)
                        WHEN x = 'NaN' THEN 'NaN'::float8
                        ELSE least(1.0, sum(CASE WHEN NOT c.ok THEN 0 ELSE
                                 c.w * 0.5 * erfc(least(greatest((c.m - x) / (c.s * sqrt(2.0::float8)), -8.0), 8.0)) END)
                             / sum(c.w)) END
            FROM healcat.mixture_components(weights, means, sigmas) AS c)
$$;

-- The q-quantile of a mixture, by bisection on its CDF over [min(m - 10 s), max(m + 10 s)]
-- (60 halvings: far below float4 resolution of the stored parameters).
CREATE OR REPLACE FUNCTION healcat.mixture_quantile(weights real[], means real[], sigmas real[], q float8)
RETURNS float8 LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    n integer := cardinality(weights);
    w float8[] := weights::float8[];
    m float8[] := means::float8[];
    s float8[] := sigmas::float8[];
    target float8;
    lo float8;
    hi float8;
    mid float8;
    cdf float8;
BEGIN
    IF weights IS NULL OR means IS NULL OR sigmas IS NULL THEN
        RETURN NULL;
    END IF;
    IF q IS NULL OR NOT (q > 0 AND q < 1) THEN
        RAISE EXCEPTION 'mixture_quantile: q must be in (0, 1), got %', coalesce(q::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    target := q * healcat.mixture_total('mixture_quantile', weights, means, sigmas);
    SELECT min(c.m - 10 * c.s), max(c.m + 10 * c.s) INTO lo, hi FROM unnest(m, s) AS c(m, s);
    FOR it IN 1..60 LOOP
        mid := 0.5 * (lo + hi);
        cdf := 0;
        FOR i IN 1..n LOOP
            cdf := cdf + w[i] * 0.5 * erfc(least(greatest((m[i] - mid) / (s[i] * sqrt(2.0::float8)), -8.0), 8.0));
        END LOOP;
        IF cdf < target THEN lo := mid; ELSE hi := mid; END IF;
    END LOOP;
    RETURN 0.5 * (lo + hi);
END $$;

-- The central credible interval holding `level` of a mixture's probability above `lower`
-- (NULL, NULL where it keeps none there, or `lower` is NULL).
CREATE OR REPLACE FUNCTION healcat.mixture_interval(
    weights real[], means real[], sigmas real[], level float8, lower float8, OUT lo float8, OUT hi float8)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    below float8;
BEGIN
    IF level IS NULL OR NOT (level > 0 AND level < 1) THEN
        RAISE EXCEPTION 'credible interval: level must be in (0, 1), got %', coalesce(level::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    below := CASE WHEN lower = '-Infinity' THEN 0.0 ELSE healcat.mixture_cdf(weights, means, sigmas, lower) END;
    IF below IS NULL OR below >= 1 THEN
        RETURN;
    END IF;
    lo := healcat.mixture_quantile(weights, means, sigmas, below + (1 - below) * (1 - level) / 2);
    hi := healcat.mixture_quantile(weights, means, sigmas, below + (1 - below) * (1 + level) / 2);
END $$;
