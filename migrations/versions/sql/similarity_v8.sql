-- similarity_v8.sql -- (migration 0047) change it in a new migration with _v9 definitions rather than
-- by editing this file.
--
--   healcat.similar_sources      similarity_v7.sql's; a source the model gave no embedding says why:
--       the reason its run on the source's release recorded (inference_skip: "not a galaxy: spectrum
--       says STAR"; was "name a version, or the release to search", which cannot help), or that the
--       version has no finished run on the source's release (a version that never ran there).
--
-- Executed through sqlalchemy.text(): never a colon directly followed by a word character.

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
    run bigint;
    skipped text;
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
        SELECT i.run_id INTO run FROM healcat.inference_run AS i
        WHERE i.model_id = a.model_id AND i.release_id = source_release AND i.finished_at IS NOT NULL;
        SELECT k.reason INTO skipped FROM healcat.inference_skip AS k
        WHERE k.shard = sh AND k.source_id = p_source_id AND k.run_id = run;
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = format(
            'similar: source %s has no embedding from model %s/%s%s', p_source_id, a.name, a.version,
            CASE WHEN skipped IS NOT NULL  -- the model's answer: another version or release cannot change it
                 THEN format(': its run on %s gave it none: %s',
                             (SELECT r.name FROM healcat.release AS r WHERE r.release_id = source_release), skipped)
                 WHEN run IS NULL
                 THEN format(': that version has no finished run on the source''s release %s%s',
                             (SELECT r.name FROM healcat.release AS r WHERE r.release_id = source_release),
                             CASE WHEN model_version IS NULL AND a.current_on IS NOT NULL
                                  THEN format(' (it is the version current on %s: name the version that has run there, '
                                              'or the release to search)', a.current_on)
                                  ELSE '' END)
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
