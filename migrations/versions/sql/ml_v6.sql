-- ml_v6.sql -- (migration 0042) change these in a new migration with _v7 definitions rather than by
-- editing this file.
--
--   healcat.photoz_evaluate(fn, source_id, z, model_name, model_version)   new: ml_v5.sql's photoz_pdf
--       and photoz_cdf were the same function twice but for mixture_pdf / mixture_cdf; one body now.
--   healcat.photoz_pdf, healcat.photoz_cdf     ml_v5.sql's, calling it (same arguments and answers).
--
-- Executed through sqlalchemy.text(): never a colon directly followed by a word character.

-- fn 'photoz_pdf' (p(z)) or 'photoz_cdf' (P(redshift <= z)) of a source's photo-z, the mixture above
-- z = 0; NULL when it has no prediction (skipped, or, with no version named, not run yet); a named
-- version that has not run on the source's release is an error (healcat.photoz_missing).
CREATE FUNCTION healcat.photoz_evaluate(fn text, p_source_id bigint, z float8, model_name text, model_version text)
RETURNS float8 LANGUAGE plpgsql STABLE AS $$
DECLARE
    result float8;
BEGIN
    IF z = 'NaN' THEN
        RAISE EXCEPTION '%: z must not be NaN', fn USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT CASE fn WHEN 'photoz_pdf' THEN healcat.mixture_pdf(p.pdf_weights, p.pdf_means, p.pdf_sigmas, z, 0.0::float8)
                   ELSE healcat.mixture_cdf(p.pdf_weights, p.pdf_means, p.pdf_sigmas, z, 0.0::float8) END
    INTO result
    FROM healcat.photoz_prediction(p_source_id, model_name, model_version) AS p;
    IF NOT FOUND THEN
        PERFORM healcat.photoz_missing(fn, p_source_id, model_name, model_version);
    END IF;
    RETURN result;
END $$;

COMMENT ON FUNCTION healcat.photoz_evaluate(text, bigint, float8, text, text) IS
    'photoz_pdf''s or photoz_cdf''s answer (fn names which): the photo-z mixture above z = 0 at z, NULL without a prediction.';

-- p(z) of a source's photo-z at redshift z (see photoz_evaluate).
CREATE OR REPLACE FUNCTION healcat.photoz_pdf(
    p_source_id bigint, z float8, model_name text DEFAULT 'photoz-sdss', model_version text DEFAULT NULL)
RETURNS float8 LANGUAGE sql STABLE AS $$
    SELECT healcat.photoz_evaluate('photoz_pdf', p_source_id, z, model_name, model_version)
$$;

-- P(redshift <= z) of a source's photo-z (see photoz_evaluate).
CREATE OR REPLACE FUNCTION healcat.photoz_cdf(
    p_source_id bigint, z float8, model_name text DEFAULT 'photoz-sdss', model_version text DEFAULT NULL)
RETURNS float8 LANGUAGE sql STABLE AS $$
    SELECT healcat.photoz_evaluate('photoz_cdf', p_source_id, z, model_name, model_version)
$$;
