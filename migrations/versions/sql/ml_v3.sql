-- ml_v3 (migration 0031): a photo-z is the stored mixture truncated at z = 0 and renormalised.
--   The network's mixture (prediction.pdf_*) puts a little probability below z = 0 for galaxies
--   near it; a redshift is not negative, so photoz_pdf, photoz_cdf and photoz_interval read the
--   mixture above 0 only (as the point estimate, prediction.value, does since this version). The
--   mixture functions take a lower bound as a fifth argument for any mixture: below it the PDF
--   and CDF are 0, above it both are divided by the mass the mixture keeps (NULL when it keeps
--   none), and an interval holds `level` of that mass.

CREATE FUNCTION healcat.mixture_pdf(weights real[], means real[], sigmas real[], x float8, lower float8)
RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN x < lower THEN 0.0
                ELSE healcat.mixture_pdf(weights, means, sigmas, x)
                     / nullif(1 - healcat.mixture_cdf(weights, means, sigmas, lower), 0) END
$$;

CREATE FUNCTION healcat.mixture_cdf(weights real[], means real[], sigmas real[], x float8, lower float8)
RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN x <= lower THEN 0.0
                ELSE (healcat.mixture_cdf(weights, means, sigmas, x) - healcat.mixture_cdf(weights, means, sigmas, lower))
                     / nullif(1 - healcat.mixture_cdf(weights, means, sigmas, lower), 0) END
$$;

-- The central credible interval holding `level` of a mixture's probability above `lower`.
CREATE FUNCTION healcat.mixture_interval(
    weights real[], means real[], sigmas real[], level float8, lower float8, OUT lo float8, OUT hi float8)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    below float8;
BEGIN
    IF level IS NULL OR NOT (level > 0 AND level < 1) THEN
        RAISE EXCEPTION 'credible interval: level must be in (0, 1), got %', coalesce(level::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    below := coalesce(healcat.mixture_cdf(weights, means, sigmas, lower), 0);
    lo := healcat.mixture_quantile(weights, means, sigmas, below + (1 - below) * (1 - level) / 2);
    hi := healcat.mixture_quantile(weights, means, sigmas, below + (1 - below) * (1 + level) / 2);
END $$;

-- ... and over the whole mixture (ml_v1's signature and errors).
CREATE OR REPLACE FUNCTION healcat.mixture_interval(
    weights real[], means real[], sigmas real[], level float8 DEFAULT 0.68, OUT lo float8, OUT hi float8)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT i.lo, i.hi FROM healcat.mixture_interval(weights, means, sigmas, level, '-Infinity'::float8) AS i
$$;

-- p(z) of a source's photo-z at redshift z, the mixture above z = 0 (NULL when it has no prediction).
CREATE OR REPLACE FUNCTION healcat.photoz_pdf(
    p_source_id bigint, z float8, model_name text DEFAULT 'photoz-sdss', model_version text DEFAULT NULL)
RETURNS float8 LANGUAGE sql STABLE AS $$
    SELECT healcat.mixture_pdf(p.pdf_weights, p.pdf_means, p.pdf_sigmas, z, 0.0::float8)
    FROM healcat.photoz_prediction(p_source_id, model_name, model_version) AS p
$$;

-- P(redshift <= z) of a source's photo-z (NULL when it has no prediction).
CREATE FUNCTION healcat.photoz_cdf(
    p_source_id bigint, z float8, model_name text DEFAULT 'photoz-sdss', model_version text DEFAULT NULL)
RETURNS float8 LANGUAGE sql STABLE AS $$
    SELECT healcat.mixture_cdf(p.pdf_weights, p.pdf_means, p.pdf_sigmas, z, 0.0::float8)
    FROM healcat.photoz_prediction(p_source_id, model_name, model_version) AS p
$$;

-- The central credible interval [z_lo, z_hi] of a source's photo-z holding `level` (default 68%)
-- of its probability above z = 0.
CREATE OR REPLACE FUNCTION healcat.photoz_interval(
    p_source_id bigint, level float8 DEFAULT 0.68, model_name text DEFAULT 'photoz-sdss',
    model_version text DEFAULT NULL)
RETURNS TABLE (z_lo float8, z_hi float8) LANGUAGE sql STABLE AS $$
    SELECT i.lo, i.hi
    FROM healcat.photoz_prediction(p_source_id, model_name, model_version) AS p,
         healcat.mixture_interval(p.pdf_weights, p.pdf_means, p.pdf_sigmas, level, 0.0::float8) AS i
$$;
