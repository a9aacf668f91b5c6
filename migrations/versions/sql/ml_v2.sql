-- healcat mixture functions, version 2. Applied by migration 0027; change them in a new migration
-- with new definitions rather than by editing this file.
--
--   healcat.mixture_pdf, healcat.mixture_cdf    queries_v2.sql's; weights, means and sigmas of different
--       lengths (or none) are an error naming the lengths, as mixture_quantile's is (unnest padded the
--       shorter arrays with NULLs, and the sum skipped those components: a wrong value, no error).
--   healcat.mixture_shape_error(...)            new; raises that error (an SQL function cannot).
--   healcat.photoz_prediction(...)              queries_v2.sql's; with a version named, only a finished
--       run's outputs (a run that died half way left rows that only the next run deletes).
--
-- Note for whoever edits this file: it is executed through sqlalchemy.text(), so never write a
-- colon directly followed by a word character; '::type' and ':=' are fine.

CREATE FUNCTION healcat.mixture_shape_error(fn text, weights real[], means real[], sigmas real[])
RETURNS float8 LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RAISE EXCEPTION '%: weights, means and sigmas must have the same non-zero length, got %, %, %',
        fn, cardinality(weights), cardinality(means), cardinality(sigmas) USING ERRCODE = 'invalid_parameter_value';
END $$;

CREATE OR REPLACE FUNCTION healcat.mixture_pdf(weights real[], means real[], sigmas real[], x float8)
RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN cardinality(weights) = 0 OR cardinality(means) <> cardinality(weights)
                     OR cardinality(sigmas) <> cardinality(weights)
                THEN healcat.mixture_shape_error('mixture_pdf', weights, means, sigmas)
                WHEN x = 'NaN' THEN 'NaN'::float8 ELSE
        (SELECT sum(CASE WHEN c.w <= 0 OR abs((x - c.m) / c.s) > 37 THEN 0
                         WHEN ln(c.w) - 0.5 * ((x - c.m) / c.s) ^ 2 - ln(c.s * sqrt(2 * pi())) < -700 THEN 0
                         ELSE exp(ln(c.w) - 0.5 * ((x - c.m) / c.s) ^ 2 - ln(c.s * sqrt(2 * pi()))) END)
         FROM unnest(weights::float8[], means::float8[], sigmas::float8[]) AS c(w, m, s)) END
$$;

CREATE OR REPLACE FUNCTION healcat.mixture_cdf(weights real[], means real[], sigmas real[], x float8)
RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN cardinality(weights) = 0 OR cardinality(means) <> cardinality(weights)
                     OR cardinality(sigmas) <> cardinality(weights)
                THEN healcat.mixture_shape_error('mixture_cdf', weights, means, sigmas)
                WHEN x = 'NaN' THEN 'NaN'::float8 ELSE
        (SELECT sum(c.w * 0.5 * erfc(least(greatest((c.m - x) / (c.s * sqrt(2.0::float8)), -8.0), 8.0)))
         FROM unnest(weights::float8[], means::float8[], sigmas::float8[]) AS c(w, m, s)) END
$$;

CREATE OR REPLACE FUNCTION healcat.photoz_prediction(
    p_source_id bigint, model_name text DEFAULT 'photoz-sdss', model_version text DEFAULT NULL)
RETURNS SETOF healcat.prediction LANGUAGE plpgsql STABLE AS $$
DECLARE
    sh smallint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM healcat.model AS m WHERE m.name = photoz_prediction.model_name AND m.task = 'photoz') THEN
        RAISE EXCEPTION 'photo-z: no photo-z model named % (see healcat.current_model)', quote_literal(model_name)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT s.shard INTO sh FROM healcat.source AS s WHERE s.source_id = p_source_id;
    IF model_version IS NULL THEN
        RETURN QUERY SELECT p.* FROM healcat.prediction AS p
        JOIN healcat.current_run AS c ON c.model_id = p.model_id AND c.run_id = p.run_id
        WHERE p.shard = sh AND p.source_id = p_source_id AND c.model_name = photoz_prediction.model_name;
    ELSE
        RETURN QUERY SELECT p.* FROM healcat.prediction AS p
        JOIN healcat.inference_run AS r ON r.run_id = p.run_id AND r.finished_at IS NOT NULL
        WHERE p.shard = sh AND p.source_id = p_source_id
          AND p.model_id = (SELECT m.model_id FROM healcat.resolve_model(photoz_prediction.model_name, model_version) AS m);
    END IF;
END $$;
