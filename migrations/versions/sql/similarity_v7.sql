-- similarity_v7.sql -- (migration 0038) change it in a new migration with _v8 definitions rather than
-- by editing this file.
--
--   healcat.similar_to_vector    similarity_v5.sql's; a model version with no finished run anywhere
--       (named, or the only one there is) is a 22023 error naming it and the versions that have one:
--       similar_scope leaves such a search without a release filter (release_ids NULL) and it
--       answered no rows without a word.
--   healcat.similar_sources      similarity_v5.sql's; a NULL source_id is a 22023 error saying so (was:
--       "source  has no embedding", the NULL printed as nothing), a source_id that names no source
--       says there is none (was: it "has no embedding" from the current version, with advice to name
--       a version or release), and a source whose release no version of the model has finished a
--       run on says that, naming the release (naming a version or another release cannot help).
--
-- Executed through sqlalchemy.text(): never a colon directly followed by a word character.

-- The k sources whose embeddings (of the given model) are nearest to a vector, by cosine distance,
-- among the candidates (NULL: all) of the release (NULL: the published releases).
CREATE OR REPLACE FUNCTION healcat.similar_to_vector(
    query vector, model_name text, k integer DEFAULT 10, model_version text DEFAULT NULL,
    candidates bigint[] DEFAULT NULL, release_name text DEFAULT NULL, mode text DEFAULT 'auto',
    ef_search integer DEFAULT NULL, max_scan_tuples integer DEFAULT NULL)
RETURNS TABLE (source_id bigint, release text, object_id text, ra float8, "dec" float8, distance float8)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    a record;
    q vector := query;
    finished text;
BEGIN
    SELECT * INTO a FROM healcat.similar_scope(model_name, model_version, k, release_name, mode, ef_search,
                                               max_scan_tuples, NULL);
    IF NOT EXISTS (SELECT 1 FROM healcat.inference_run AS i WHERE i.model_id = a.model_id AND i.finished_at IS NOT NULL) THEN
        SELECT string_agg(DISTINCT m.version, ', ') INTO finished
        FROM healcat.model AS m JOIN healcat.inference_run AS i ON i.model_id = m.model_id
        WHERE m.name = a.name AND i.finished_at IS NOT NULL;
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = format(
            'similar: model %s version %s has no finished run, so no embeddings to search: %s', a.name, a.version,
            CASE WHEN finished IS NULL THEN 'no version of it has one (run it: healcat infer)'
                 ELSE format('name a version that has one (%s), or run this one (healcat infer)', finished) END);
    END IF;
    IF q IS NULL OR vector_norm(q) = 0 THEN
        RAISE EXCEPTION 'similar: the query vector must be a non-zero vector, got %', coalesce(q::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF vector_dims(q) <> a.dim THEN
        RAISE EXCEPTION 'similar: model %/% has % dimensions, the query vector %',
            a.name, a.version, a.dim, vector_dims(q) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT vector_norm(q) BETWEEN 1e-12 AND 1e12 THEN
        q := l2_normalize(q);  -- normalised in float8: cosine distance does not depend on the length
    END IF;
    RETURN QUERY SELECT * FROM healcat.similar_core(q, a.model_id, a.dim, k, candidates, a.release_ids, NULL, mode,
                                                    ef_search, max_scan_tuples);
END $$;

-- The k sources most similar to a given source, its own object left out (the source, the same
-- object_id in any release of its survey, the source release_change matched it to), with the
-- same filters.
CREATE OR REPLACE FUNCTION healcat.similar_sources(
    p_source_id bigint, model_name text, k integer DEFAULT 10, model_version text DEFAULT NULL,
    candidates bigint[] DEFAULT NULL, release_name text DEFAULT NULL, mode text DEFAULT 'auto',
    ef_search integer DEFAULT NULL, max_scan_tuples integer DEFAULT NULL)
RETURNS TABLE (source_id bigint, release text, object_id text, ra float8, "dec" float8, distance float8)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    a record;
    sh smallint;
    source_release integer;
    q vector;
    exclude bigint[];
BEGIN
    IF p_source_id IS NULL THEN
        RAISE EXCEPTION 'similar: source_id must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The shard first (source's key leads with source_id), then the embedding by its whole key.
    SELECT s.shard, s.release_id INTO sh, source_release FROM healcat.source AS s WHERE s.source_id = p_source_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'similar: there is no source %', p_source_id USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO a FROM healcat.similar_scope(model_name, model_version, k, release_name, mode, ef_search,
                                               max_scan_tuples, p_source_id);
    SELECT e.vec INTO q FROM healcat.embedding AS e
    WHERE e.shard = sh AND e.source_id = p_source_id AND e.model_id = a.model_id;
    IF q IS NULL AND NOT EXISTS (SELECT 1 FROM healcat.inference_run AS i JOIN healcat.model AS m ON m.model_id = i.model_id
                                 WHERE m.name = a.name AND i.release_id = source_release AND i.finished_at IS NOT NULL) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = format(
            'similar: source %s has no embedding from model %s: the model has not run on its release %s (no version '
            'of it has a finished run there)', p_source_id, a.name,
            (SELECT r.name FROM healcat.release AS r WHERE r.release_id = source_release));
    END IF;
    IF q IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = format(
            'similar: source %s has no embedding from model %s/%s%s', p_source_id, a.name, a.version,
            CASE WHEN model_version IS NULL AND a.current_on IS NOT NULL
                 THEN format(', the version current on %s (name a version, or the release to search)', a.current_on)
                 ELSE '' END);
    END IF;
    exclude := ARRAY(
        SELECT p_source_id
        UNION
        SELECT o.source_id FROM healcat.source AS s
        JOIN healcat.release AS r ON r.release_id = s.release_id
        JOIN healcat.release AS r2 ON r2.survey_id = r.survey_id
        JOIN healcat.source AS o ON o.release_id = r2.release_id AND o.object_id = s.object_id
        WHERE s.shard = sh AND s.source_id = p_source_id
        UNION
        SELECT c.previous_source_id FROM healcat.release_change AS c
        WHERE c.shard = sh AND c.source_id = p_source_id AND c.previous_source_id IS NOT NULL);
    RETURN QUERY SELECT * FROM healcat.similar_core(q, a.model_id, a.dim, k, candidates, a.release_ids, exclude,
                                                    mode, ef_search, max_scan_tuples);
END $$;
