-- healcat mixture functions, version 9 (migration 0057): the CDF and the density in PL/pgSQL loops.
-- Change them in a new migration with new definitions rather than by editing this file.
--
-- ml_v8.sql's mixture_tail (the body of mixture_cdf and mixture_sf) and mixture_pdf were SQL functions
-- over healcat.mixture_components, the weights' total a window (sum(w) OVER ()), the tail's terms a call
-- of mixture_term each: `python -m benchmarks mixture` measured the CDFs 1.7x and the density 1.13x
-- slower than ml_v5.sql's. mixture_total checked the components through mixture_components, then summed
-- them in a second query. Each is now one loop over the arrays, as mixture_quantile's bisection is (the
-- benchmark: the CDFs 1.7-2.0x, the density 2.6-2.9x faster than before 0054), summing the same terms in
-- the same order (tests/test_mixture_sql.py holds them to ml_v8.sql's to the last bit), with the same
-- errors but for what ml_v8.sql's got wrong:
--   - an array of two dimensions, or not indexed from 1 ('[0:1]={1,1}'), is an error saying so (the loops
--     index from 1; ml_v8.sql's unnest read any array, and mixture_quantile's loop read NULLs);
--   - a component of weight 0, or past 40 sigma (39 for the density), is no term before its quotient is
--     computed: x = 1e307 with a sigma of 0.01 overflowed (22003) in ml_v8.sql, now 0 (or 1);
--   - called directly, mixture_total and mixture_tail answer NULL for a NULL argument (mixture_tail
--     summed the lower tail for a NULL upper); the public functions are STRICT, as they were.
--
--   healcat.mixture_total(fn, w, m, s)           ml_v4.sql's checks and errors, one loop.
--   healcat.mixture_tail(fn, w, m, s, x, upper)  ml_v8.sql's sum through the components' shares.
--   healcat.mixture_pdf(w, m, s, x)              ml_v8.sql's density, out to 38 sigma.
--   healcat.mixture_term, healcat.mixture_components   dropped: nothing calls them now.
--
-- Executed through sqlalchemy.text(): never a colon directly followed by a word character.

-- The weights' sum, or the error of a mixture that is none: arrays of different or zero length, a
-- weight not finite and >= 0, a mean not finite, a sigma not finite and > 0, all weights 0, an array of
-- two dimensions or not indexed from 1. NULL if an array is NULL.
CREATE OR REPLACE FUNCTION healcat.mixture_total(fn text, weights real[], means real[], sigmas real[])
RETURNS float8 LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    n integer := cardinality(weights);
    total float8 := 0;
BEGIN
    IF weights IS NULL OR means IS NULL OR sigmas IS NULL THEN
        RETURN NULL;
    END IF;
    IF array_ndims(weights) > 1 OR array_ndims(means) > 1 OR array_ndims(sigmas) > 1
       OR array_lower(weights, 1) <> 1 OR array_lower(means, 1) <> 1 OR array_lower(sigmas, 1) <> 1 THEN
        RAISE EXCEPTION '%: weights, means and sigmas must be one-dimensional arrays indexed from 1, got %, %, %',
            fn, weights, means, sigmas USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF n = 0 OR cardinality(means) <> n OR cardinality(sigmas) <> n THEN
        PERFORM healcat.mixture_shape_error(fn, weights, means, sigmas);
    END IF;
    FOR i IN 1..n LOOP
        IF NOT coalesce(weights[i] >= 0 AND weights[i] < 'Infinity' AND abs(means[i]) < 'Infinity'
                        AND sigmas[i] > 0 AND sigmas[i] < 'Infinity', false) THEN
            RAISE EXCEPTION '%: weights must be finite and >= 0, means finite, sigmas finite and > 0; got weights %, means %, sigmas %',
                fn, weights, means, sigmas USING ERRCODE = 'invalid_parameter_value';
        END IF;
        total := total + weights[i];
    END LOOP;
    IF total = 0 THEN
        RAISE EXCEPTION '%: the weights are all 0, got %', fn, weights USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN total;
END $$;

-- A tail of the mixture, the probability above x (upper) or below it: mixture_sf's and mixture_cdf's
-- one body, its errors naming fn. Each component's share of the weights (at most 1) times erfc / 2,
-- kept down to 1e-304 (below, the product would underflow: 0).
CREATE OR REPLACE FUNCTION healcat.mixture_tail(fn text, weights real[], means real[], sigmas real[], x float8, upper boolean)
RETURNS float8 LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    total float8 := healcat.mixture_total(fn, weights, means, sigmas);
    tail float8 := 0;
    share float8;
    d float8;
    e float8;
BEGIN
    IF total IS NULL OR x IS NULL OR upper IS NULL THEN
        RETURN NULL;
    END IF;
    IF x = 'NaN' THEN
        RETURN healcat.nan_argument_error(fn, 'x', x);
    END IF;
    FOR i IN 1..cardinality(weights) LOOP
        share := weights[i] / total;
        IF share > 0 THEN
            d := CASE WHEN upper THEN x - means[i] ELSE means[i] - x END;
            -- past 40 sigma erfc is 0 (or 2) to the last bit; the quotient could overflow (x 1e307, sigma 0.01)
            e := CASE WHEN d > 40 * sigmas[i] THEN 0 WHEN d < -40 * sigmas[i] THEN 2
                      ELSE erfc(d / (sigmas[i] * sqrt(2.0::float8))) END;
            IF e > 2e-304 / share THEN
                tail := tail + share * 0.5 * e;
            END IF;
        END IF;
    END LOOP;
    RETURN least(1.0, tail);
END $$;

-- The density, each component's term in log space on its share of the weights (so no product
-- underflows whatever the weights' scale), out to 38 sigma.
CREATE OR REPLACE FUNCTION healcat.mixture_pdf(weights real[], means real[], sigmas real[], x float8)
RETURNS float8 LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    total float8 := healcat.mixture_total('mixture_pdf', weights, means, sigmas);
    density float8 := 0;
    z float8;
    term float8;
BEGIN
    IF x = 'NaN' THEN
        RETURN healcat.nan_argument_error('mixture_pdf', 'x', x);
    END IF;
    FOR i IN 1..cardinality(weights) LOOP
        -- a weight of 0, or past 39 sigma, before z is computed: its quotient could overflow (x 1e307, sigma 0.01)
        IF weights[i] <> 0 AND abs(x - means[i]) <= 39 * sigmas[i] THEN
            z := (x - means[i]) / sigmas[i];
            IF abs(z) <= 38 THEN
                term := ln(weights[i] / total) - 0.5 * z ^ 2 - ln(sigmas[i] * sqrt(2 * pi()));
                IF term >= -700 THEN
                    density := density + exp(term);
                END IF;
            END IF;
        END IF;
    END LOOP;
    RETURN density;
END $$;

DROP FUNCTION healcat.mixture_term(float8, float8);
DROP FUNCTION healcat.mixture_components(real[], real[], real[]);
