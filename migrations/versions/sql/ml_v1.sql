-- healcat model-registry views and PDF functions, version 1. Applied by migration 0009; change
-- them in a new migration with new (_v2) definitions rather than by editing this file.

-- For each model and release, the run whose outputs are current: the newest unretired version
-- of the model that has FINISHED a run on the release. A new version's run is one transaction,
-- so readers keep the previous version's outputs until that run commits, then switch.
CREATE VIEW healcat.current_run AS
SELECT DISTINCT ON (m.name, r.release_id)
       m.name AS model_name, m.version AS model_version, m.task, r.model_id, r.release_id, r.run_id,
       r.finished_at
FROM healcat.inference_run AS r
JOIN healcat.model AS m USING (model_id)
WHERE r.finished_at IS NOT NULL AND m.retired_at IS NULL
ORDER BY m.name, r.release_id, m.created_at DESC, m.model_id DESC;

-- Each source's prediction from its release's current run of each model (replaces 0001's view:
-- same columns first, then the classification columns).
CREATE OR REPLACE VIEW healcat.current_prediction AS
SELECT c.model_name, c.model_version, c.task,
       p.shard, p.source_id, p.model_id, p.run_id, p.value, p.uncertainty,
       p.pdf_weights, p.pdf_means, p.pdf_sigmas, p.created_at, p.label, p.probabilities
FROM healcat.prediction AS p
JOIN healcat.current_run AS c ON c.model_id = p.model_id AND c.run_id = p.run_id;

-- Gaussian mixtures (weights, means, sigmas of equal length; weights summing to 1), as stored in
-- prediction.pdf_*. NULL in, NULL out. Computed in float8; beyond 8 (CDF) or 20 (PDF) sigmas a
-- component's tail is clamped (below 1e-28 relative), since PostgreSQL raises on underflow.
CREATE FUNCTION healcat.mixture_pdf(weights real[], means real[], sigmas real[], x float8)
RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT sum(c.w * exp(-0.5 * least(((x - c.m) / c.s) ^ 2, 200.0)) / (c.s * sqrt(2 * pi())))
    FROM unnest(weights::float8[], means::float8[], sigmas::float8[]) AS c(w, m, s)
$$;

CREATE FUNCTION healcat.mixture_cdf(weights real[], means real[], sigmas real[], x float8)
RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT sum(c.w * 0.5 * erfc(least(greatest((c.m - x) / (c.s * sqrt(2.0::float8)), -8.0), 8.0)))
    FROM unnest(weights::float8[], means::float8[], sigmas::float8[]) AS c(w, m, s)
$$;

-- The q-quantile of a mixture, by bisection on its CDF over [min(m - 10 s), max(m + 10 s)]
-- (60 halvings: far below float4 resolution of the stored parameters).
CREATE FUNCTION healcat.mixture_quantile(weights real[], means real[], sigmas real[], q float8)
RETURNS float8 LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    n integer := cardinality(weights);
    w float8[] := weights::float8[];
    m float8[] := means::float8[];
    s float8[] := sigmas::float8[];
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
    IF n = 0 OR cardinality(means) <> n OR cardinality(sigmas) <> n THEN
        RAISE EXCEPTION 'mixture_quantile: weights, means and sigmas must have the same non-zero length, got %, %, %',
            n, cardinality(means), cardinality(sigmas) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT min(c.m - 10 * c.s), max(c.m + 10 * c.s) INTO lo, hi FROM unnest(m, s) AS c(m, s);
    FOR it IN 1..60 LOOP
        mid := 0.5 * (lo + hi);
        cdf := 0;
        FOR i IN 1..n LOOP
            cdf := cdf + w[i] * 0.5 * erfc(least(greatest((m[i] - mid) / (s[i] * sqrt(2.0::float8)), -8.0), 8.0));
        END LOOP;
        IF cdf < q THEN lo := mid; ELSE hi := mid; END IF;
    END LOOP;
    RETURN 0.5 * (lo + hi);
END $$;

-- The central credible interval holding `level` of a mixture's probability.
CREATE FUNCTION healcat.mixture_interval(
    weights real[], means real[], sigmas real[], level float8 DEFAULT 0.68, OUT lo float8, OUT hi float8)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF level IS NULL OR NOT (level > 0 AND level < 1) THEN
        RAISE EXCEPTION 'credible interval: level must be in (0, 1), got %', coalesce(level::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    lo := healcat.mixture_quantile(weights, means, sigmas, (1 - level) / 2);
    hi := healcat.mixture_quantile(weights, means, sigmas, (1 + level) / 2);
END $$;

-- A source's current photo-z prediction (by its source_id; the model's current run unless a
-- version is named). No row when the source has none (skipped, or not run yet).
CREATE FUNCTION healcat.photoz_prediction(
    p_source_id bigint, model_name text DEFAULT 'photoz-sdss', model_version text DEFAULT NULL)
RETURNS SETOF healcat.prediction LANGUAGE plpgsql STABLE AS $$
DECLARE
    sh smallint;
BEGIN
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

-- p(z) of a source's photo-z at redshift z (NULL when it has no prediction).
CREATE FUNCTION healcat.photoz_pdf(
    p_source_id bigint, z float8, model_name text DEFAULT 'photoz-sdss', model_version text DEFAULT NULL)
RETURNS float8 LANGUAGE sql STABLE AS $$
    SELECT healcat.mixture_pdf(p.pdf_weights, p.pdf_means, p.pdf_sigmas, z)
    FROM healcat.photoz_prediction(p_source_id, model_name, model_version) AS p
$$;

-- The central credible interval [z_lo, z_hi] of a source's photo-z holding `level` (default 68%).
CREATE FUNCTION healcat.photoz_interval(
    p_source_id bigint, level float8 DEFAULT 0.68, model_name text DEFAULT 'photoz-sdss',
    model_version text DEFAULT NULL)
RETURNS TABLE (z_lo float8, z_hi float8) LANGUAGE sql STABLE AS $$
    SELECT i.lo, i.hi
    FROM healcat.photoz_prediction(p_source_id, model_name, model_version) AS p,
         healcat.mixture_interval(p.pdf_weights, p.pdf_means, p.pdf_sigmas, level) AS i
$$;
