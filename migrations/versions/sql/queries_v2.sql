-- queries_v2.sql -- fixes to query functions found in review (migration 0020). Change them in a new
-- migration with _v3 definitions rather than by editing this file.
--
--   healcat.resolve_model(name, version)       queries_v1.sql's; with no version named, the newest
--       unretired version with a finished inference run (what current_run and current_prediction
--       show), so a version registered but not yet run leaves similarity searches on the one before
--       it instead of failing with "has no embedding"; the newest unretired one when none has run.
--   healcat.check_ellipse(...)                  regions_v1.sql's; the semi-major axis must be below
--       90 deg: at 90 the foci are antipodal and every point of the sky is in the "ellipse".
--   healcat.photoz_prediction(...)              ml_v1.sql's; an unknown model name, or a model that
--       is no photo-z model, is an error (was: no row, so photoz_pdf gave NULL for a typo).
--   healcat.mixture_pdf, healcat.mixture_cdf    ml_v1.sql's; NaN gives NaN, and an infinite x or a
--       point beyond 37 sigmas a density of 0 (was: clamped to exp(-100), and NaN sorted as a number).
--
-- Note for whoever edits this file: it is executed through sqlalchemy.text(), so never write a
-- colon directly followed by a word character; '::type' and ':=' are fine.

CREATE OR REPLACE FUNCTION healcat.resolve_model(
    model_name text, model_version text DEFAULT NULL,
    OUT model_id integer, OUT name text, OUT version text, OUT embedding_dim integer)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    SELECT x.model_id, x.name, x.version, x.embedding_dim INTO model_id, name, version, embedding_dim
    FROM healcat.model AS x
    WHERE x.name = model_name
      AND (x.version = model_version OR (model_version IS NULL AND x.retired_at IS NULL))
    ORDER BY EXISTS (SELECT 1 FROM healcat.inference_run AS r
                     WHERE r.model_id = x.model_id AND r.finished_at IS NOT NULL) DESC,
             x.created_at DESC, x.model_id DESC
    LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no model named % (version %)', quote_literal(model_name), coalesce(model_version, 'current')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;

CREATE OR REPLACE FUNCTION healcat.check_ellipse(ra_deg float8, dec_deg float8, semi_major_arcsec float8,
                                                 semi_minor_arcsec float8, pa_deg float8)
RETURNS void LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    PERFORM healcat.check_arg('ellipse', 'ra_deg', ra_deg, '-Infinity', 'Infinity');
    PERFORM healcat.check_arg('ellipse', 'dec_deg', dec_deg, -90, 90);
    PERFORM healcat.check_arg('ellipse', 'semi_major_arcsec', semi_major_arcsec, 0, 90 * 3600, true);
    IF semi_major_arcsec = 90 * 3600 THEN
        RAISE EXCEPTION 'ellipse: semi_major_arcsec must be in (0, 324000), below 90 deg, got %', semi_major_arcsec
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM healcat.check_arg('ellipse', 'semi_minor_arcsec', semi_minor_arcsec, 0, semi_major_arcsec, true);
    PERFORM healcat.check_arg('ellipse', 'pa_deg', pa_deg, '-Infinity', 'Infinity');
END $$;

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
        WHERE p.shard = sh AND p.source_id = p_source_id
          AND p.model_id = (SELECT r.model_id FROM healcat.resolve_model(photoz_prediction.model_name, model_version) AS r);
    END IF;
END $$;

CREATE OR REPLACE FUNCTION healcat.mixture_pdf(weights real[], means real[], sigmas real[], x float8)
RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN x = 'NaN' THEN 'NaN'::float8 ELSE
        sum(CASE WHEN abs((x - c.m) / c.s) > 37 THEN 0
                 ELSE c.w * exp(-0.5 * ((x - c.m) / c.s) ^ 2) / (c.s * sqrt(2 * pi())) END) END
    FROM unnest(weights::float8[], means::float8[], sigmas::float8[]) AS c(w, m, s)
$$;

CREATE OR REPLACE FUNCTION healcat.mixture_cdf(weights real[], means real[], sigmas real[], x float8)
RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN x = 'NaN' THEN 'NaN'::float8 ELSE
        sum(c.w * 0.5 * erfc(least(greatest((c.m - x) / (c.s * sqrt(2.0::float8)), -8.0), 8.0))) END
    FROM unnest(weights::float8[], means::float8[], sigmas::float8[]) AS c(w, m, s)
$$;
