-- registry_v1.sql -- (migration 0036) which version of a model is current: champion and challenger.
-- Change these in a new migration with _v2 definitions rather than by editing this file.
--
--   healcat.current_model      queries_v1.sql's; the newest PROMOTED unretired version by promotion
--       time (was: the newest unretired by created_at, so every version registered, however poor
--       its held-out metrics, became current for every reader). Adds promoted_at as its last column.
--   healcat.current_run        ml_v1.sql's; per model and release, the finished run of the newest
--       promoted unretired version by promotion time (same columns).
--   healcat.resolve_model      queries_v2.sql's; with no version named, promoted versions only, by
--       promotion time (a candidate is never what a search uses unless it is named).
--
-- Executed through sqlalchemy.text(): never a colon directly followed by a word character.

CREATE OR REPLACE VIEW healcat.current_model AS
SELECT DISTINCT ON (name)
       model_id, name, version, task, framework, weights_path, weights_sha256, training_set,
       hyperparams, metrics, embedding_dim, created_at, retired_at, promoted_at
FROM healcat.model
WHERE retired_at IS NULL AND promoted_at IS NOT NULL
ORDER BY name, promoted_at DESC, model_id DESC;

CREATE OR REPLACE VIEW healcat.current_run AS
SELECT DISTINCT ON (m.name, r.release_id)
       m.name AS model_name, m.version AS model_version, m.task, r.model_id, r.release_id, r.run_id,
       r.finished_at
FROM healcat.inference_run AS r
JOIN healcat.model AS m USING (model_id)
WHERE r.finished_at IS NOT NULL AND m.retired_at IS NULL AND m.promoted_at IS NOT NULL
ORDER BY m.name, r.release_id, m.promoted_at DESC, m.model_id DESC;

CREATE OR REPLACE FUNCTION healcat.resolve_model(
    model_name text, model_version text DEFAULT NULL,
    OUT model_id integer, OUT name text, OUT version text, OUT embedding_dim integer)
LANGUAGE plpgsql STABLE AS $$
BEGIN
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
        RAISE EXCEPTION 'no model named % (version %)', quote_literal(model_name), coalesce(model_version, 'current')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;
