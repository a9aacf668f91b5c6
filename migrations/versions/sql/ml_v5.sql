-- healcat mixture and photo-z functions, version 5 (migration 0040): argument edges found in review.
-- Change them in a new migration with new definitions rather than by editing this file.
--
--   healcat.nan_argument_error(fn, arg, value)       new; raises '<fn>: <arg> must not be NaN' (22023)
--       for SQL functions, which cannot raise. It takes the value so that the planner never folds a
--       call whose other arguments are constants (an IMMUTABLE call of constants is evaluated at plan
--       time, in a CASE arm that the row would never reach).
--   healcat.mixture_pdf, mixture_cdf (x)             ml_v4.sql's; a NaN x is an error naming the
--       function and x (was: NaN).
--   healcat.mixture_pdf, mixture_cdf (x, lower)      ml_v3.sql's; a NaN lower bound is an error naming
--       the function and lower (was: 0 everywhere); a NaN x raises the four-argument function's error.
--   healcat.mixture_interval(..., level, lower)      ml_v4.sql's; errors name mixture_interval (was:
--       'credible interval: ...'); a NaN lower bound is an error (was: NULL, NULL). The four-argument
--       mixture_interval (ml_v3.sql's) calls this one, so its level error names mixture_interval too.
--   healcat.resolve_model(name, version)             registry_v1.sql's; a NULL name is 'model_name
--       must not be NULL' (was: no model named <NULL>); a version that the model does not have is
--       'model NAME has no version V (versions: ...)' (was: no model named 'NAME' (version V)), and a
--       model with no current version says so, with its versions; an unknown name is as before.
--   healcat.photoz_prediction(...)                   ml_v2.sql's; a NULL model name is 'photo-z:
--       model_name must not be NULL' (was: no photo-z model named <NULL>). Still no row for a source
--       without a prediction (skipped, or the version has not finished a run on its release).
--   healcat.photoz_missing(fn, source_id, model_name, model_version)   new; called by the three below
--       when a source has no prediction. With a version named, a source_id naming no source, or a
--       source whose release that version has not finished a run on, is an error naming the source,
--       model/version and release (22023). Otherwise nothing: a source that the run skipped (no u band,
--       not a galaxy, outside the training data; the reason in healcat.inference_skip) stays NULL, as
--       does any source without a prediction when no version is named (the current run's answer).
--   healcat.photoz_pdf, photoz_cdf, photoz_interval  ml_v3.sql's, now PL/pgSQL; a NaN z is an error naming
--       the function and z (was: NaN), photoz_interval's level errors name photoz_interval, and a named
--       version without a prediction for the source raises photoz_missing's error (was: NULL / no row).
--
-- Executed through sqlalchemy.text(): never a colon directly followed by a word character.

CREATE FUNCTION healcat.nan_argument_error(fn text, arg text, value float8)
RETURNS float8 LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RAISE EXCEPTION '%: % must not be NaN', fn, arg USING ERRCODE = 'invalid_parameter_value';
END $$;

CREATE OR REPLACE FUNCTION healcat.mixture_pdf(weights real[], means real[], sigmas real[], x float8)
RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (SELECT CASE WHEN bool_or(NOT c.ok) OR NOT coalesce(sum(c.w) > 0, false)
                        THEN healcat.mixture_total('mixture_pdf', weights, means, sigmas)
                        WHEN x = 'NaN' THEN healcat.nan_argument_error('mixture_pdf', 'x', x)
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
                        WHEN x = 'NaN' THEN healcat.nan_argument_error('mixture_cdf', 'x', x)
                        ELSE least(1.0, sum(CASE WHEN NOT c.ok THEN 0 ELSE
                                 c.w * 0.5 * erfc(least(greatest((c.m - x) / (c.s * sqrt(2.0::float8)), -8.0), 8.0)) END)
                             / sum(c.w)) END
            FROM healcat.mixture_components(weights, means, sigmas) AS c)
$$;

CREATE OR REPLACE FUNCTION healcat.mixture_pdf(weights real[], means real[], sigmas real[], x float8, lower float8)
RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN lower = 'NaN' THEN healcat.nan_argument_error('mixture_pdf', 'lower', lower)
                WHEN x < lower THEN 0.0
                ELSE healcat.mixture_pdf(weights, means, sigmas, x)
                     / nullif(1 - healcat.mixture_cdf(weights, means, sigmas, lower), 0) END
$$;

CREATE OR REPLACE FUNCTION healcat.mixture_cdf(weights real[], means real[], sigmas real[], x float8, lower float8)
RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN lower = 'NaN' THEN healcat.nan_argument_error('mixture_cdf', 'lower', lower)
                WHEN x <= lower THEN 0.0
                ELSE (healcat.mixture_cdf(weights, means, sigmas, x) - healcat.mixture_cdf(weights, means, sigmas, lower))
                     / nullif(1 - healcat.mixture_cdf(weights, means, sigmas, lower), 0) END
$$;

-- The central credible interval holding `level` of a mixture's probability above `lower`
-- (NULL, NULL where it keeps none there, or `lower` is NULL).
CREATE OR REPLACE FUNCTION healcat.mixture_interval(
    weights real[], means real[], sigmas real[], level float8, lower float8, OUT lo float8, OUT hi float8)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    below float8;
BEGIN
    IF level IS NULL OR NOT (level > 0 AND level < 1) THEN
        RAISE EXCEPTION 'mixture_interval: level must be in (0, 1), got %', coalesce(level::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF lower = 'NaN' THEN
        RAISE EXCEPTION 'mixture_interval: lower must not be NaN' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    below := CASE WHEN lower = '-Infinity' THEN 0.0 ELSE healcat.mixture_cdf(weights, means, sigmas, lower) END;
    IF below IS NULL OR below >= 1 THEN
        RETURN;
    END IF;
    lo := healcat.mixture_quantile(weights, means, sigmas, below + (1 - below) * (1 - level) / 2);
    hi := healcat.mixture_quantile(weights, means, sigmas, below + (1 - below) * (1 + level) / 2);
END $$;

CREATE OR REPLACE FUNCTION healcat.resolve_model(
    model_name text, model_version text DEFAULT NULL,
    OUT model_id integer, OUT name text, OUT version text, OUT embedding_dim integer)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    versions text;
BEGIN
    IF model_name IS NULL THEN
        RAISE EXCEPTION 'model_name must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT x.model_id, x.name, x.version, x.embedding_dim INTO model_id, name, version, embedding_dim
    FROM healcat.model AS x
    WHERE x.name = model_name
      AND (x.version = model_version
           OR (model_version IS NULL AND x.retired_at IS NULL AND x.promoted_at IS NOT NULL))
    ORDER BY EXISTS (SELECT 1 FROM healcat.inference_run AS r
                     WHERE r.model_id = x.model_id AND r.finished_at IS NOT NULL) DESC,
             x.promoted_at DESC, x.model_id DESC
    LIMIT 1;
    IF NOT FOUND THEN
        SELECT string_agg(x.version, ', ' ORDER BY x.model_id) INTO versions
        FROM healcat.model AS x WHERE x.name = model_name;
        IF versions IS NULL THEN
            RAISE EXCEPTION 'no model named % (version %)', quote_literal(model_name), coalesce(model_version, 'current')
                USING ERRCODE = 'invalid_parameter_value';
        ELSIF model_version IS NOT NULL THEN
            RAISE EXCEPTION 'model % has no version % (versions: %)', model_name, model_version, versions
                USING ERRCODE = 'invalid_parameter_value';
        ELSE
            RAISE EXCEPTION 'model % has no current version: none is promoted and unretired (versions: %)',
                model_name, versions USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
END $$;

CREATE OR REPLACE FUNCTION healcat.photoz_prediction(
    p_source_id bigint, model_name text DEFAULT 'photoz-sdss', model_version text DEFAULT NULL)
RETURNS SETOF healcat.prediction LANGUAGE plpgsql STABLE AS $$
DECLARE
    sh smallint;
BEGIN
    IF model_name IS NULL THEN
        RAISE EXCEPTION 'photo-z: model_name must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
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

-- Why a source has no photo-z from a named version, as an error; nothing where none is named or
-- where the version's finished run on the source's release skipped it (healcat.inference_skip).
CREATE FUNCTION healcat.photoz_missing(fn text, p_source_id bigint, model_name text, model_version text)
RETURNS void LANGUAGE plpgsql STABLE AS $$
DECLARE
    mid integer;
    rel integer;
    rel_name text;
    ran text;
BEGIN
    IF model_version IS NULL OR p_source_id IS NULL THEN
        RETURN;
    END IF;
    SELECT m.model_id INTO mid FROM healcat.resolve_model(model_name, model_version) AS m;
    SELECT s.release_id, r.name INTO rel, rel_name
    FROM healcat.source AS s JOIN healcat.release AS r USING (release_id) WHERE s.source_id = p_source_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%: no source with source_id %', fn, p_source_id USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM healcat.inference_run AS r
                   WHERE r.model_id = mid AND r.release_id = rel AND r.finished_at IS NOT NULL) THEN
        SELECT string_agg(DISTINCT x.name, ', ') INTO ran FROM healcat.inference_run AS r
        JOIN healcat.release AS x USING (release_id) WHERE r.model_id = mid AND r.finished_at IS NOT NULL;
        RAISE EXCEPTION '%: source % has no prediction from model %/%: that version has not finished a run on its release % (finished on: %)',
            fn, p_source_id, model_name, model_version, rel_name, coalesce(ran, 'none')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;

-- p(z) of a source's photo-z at redshift z, the mixture above z = 0 (NULL when it has no prediction:
-- skipped, or, with no version named, not run yet; a named version that has not run on the source's
-- release is an error).
CREATE OR REPLACE FUNCTION healcat.photoz_pdf(
    p_source_id bigint, z float8, model_name text DEFAULT 'photoz-sdss', model_version text DEFAULT NULL)
RETURNS float8 LANGUAGE plpgsql STABLE AS $$
DECLARE
    result float8;
BEGIN
    IF z = 'NaN' THEN
        RAISE EXCEPTION 'photoz_pdf: z must not be NaN' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT healcat.mixture_pdf(p.pdf_weights, p.pdf_means, p.pdf_sigmas, z, 0.0::float8) INTO result
    FROM healcat.photoz_prediction(p_source_id, model_name, model_version) AS p;
    IF NOT FOUND THEN
        PERFORM healcat.photoz_missing('photoz_pdf', p_source_id, model_name, model_version);
    END IF;
    RETURN result;
END $$;

-- P(redshift <= z) of a source's photo-z (NULL when it has no prediction, as photoz_pdf).
CREATE OR REPLACE FUNCTION healcat.photoz_cdf(
    p_source_id bigint, z float8, model_name text DEFAULT 'photoz-sdss', model_version text DEFAULT NULL)
RETURNS float8 LANGUAGE plpgsql STABLE AS $$
DECLARE
    result float8;
BEGIN
    IF z = 'NaN' THEN
        RAISE EXCEPTION 'photoz_cdf: z must not be NaN' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT healcat.mixture_cdf(p.pdf_weights, p.pdf_means, p.pdf_sigmas, z, 0.0::float8) INTO result
    FROM healcat.photoz_prediction(p_source_id, model_name, model_version) AS p;
    IF NOT FOUND THEN
        PERFORM healcat.photoz_missing('photoz_cdf', p_source_id, model_name, model_version);
    END IF;
    RETURN result;
END $$;

-- The central credible interval [z_lo, z_hi] of a source's photo-z holding `level` (default 68%)
-- of its probability above z = 0 (no row when it has no prediction, as photoz_pdf).
CREATE OR REPLACE FUNCTION healcat.photoz_interval(
    p_source_id bigint, level float8 DEFAULT 0.68, model_name text DEFAULT 'photoz-sdss',
    model_version text DEFAULT NULL)
RETURNS TABLE (z_lo float8, z_hi float8) LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF level IS NULL OR NOT (level > 0 AND level < 1) THEN
        RAISE EXCEPTION 'photoz_interval: level must be in (0, 1), got %', coalesce(level::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY SELECT i.lo, i.hi
    FROM healcat.photoz_prediction(p_source_id, model_name, model_version) AS p,
         healcat.mixture_interval(p.pdf_weights, p.pdf_means, p.pdf_sigmas, level, 0.0::float8) AS i;
    IF NOT FOUND THEN
        PERFORM healcat.photoz_missing('photoz_interval', p_source_id, model_name, model_version);
    END IF;
END $$;
