-- similarity_v9.sql -- (migration 0061) change it in a new migration with _v10 definitions rather
-- than by editing this file.
--
--   healcat.similar_scope        a search of a release named (release_name) that holds no finished
--       run of the version it resolved to is an error naming the release, the version, where the
--       version has run and what runs it there (similarity_v6's answered no rows, as if nothing in
--       the release were similar: a backfill pending, or a model whose task has no inputs there,
--       photo-z in Gaia, looked alike). A release where the version ran and gave no embeddings
--       (its sources all skipped) is still answered with no rows.
--
-- Executed through sqlalchemy.text(): never a colon directly followed by a word character.

-- The arguments of a search checked, and what it searches: the model version (model_id, name,
-- version, dim), release_ids (the releases searched where the version has finished runs; NULL
-- when those are all its runs' releases: no release filter), current_on (the releases searched
-- where the version is current, for messages).
CREATE OR REPLACE FUNCTION healcat.similar_scope(
    model_name text, model_version text, k integer, release_name text, mode text, ef_search integer,
    max_scan_tuples integer, p_source_id bigint,
    OUT model_id integer, OUT name text, OUT version text, OUT dim integer, OUT release_ids integer[],
    OUT current_on text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    m record;
    v text := model_version;
    scope integer[];
    versions text[];
    detail text;
BEGIN
    PERFORM healcat.check_k(k);
    IF mode IS NULL OR mode NOT IN ('auto', 'exact', 'approx') THEN
        RAISE EXCEPTION 'similar: mode must be auto, exact or approx, got %', coalesce(quote_literal(mode), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF ef_search IS NOT NULL AND NOT ef_search BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'similar: ef_search must be in [1, 1000], got %', ef_search
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF max_scan_tuples IS NOT NULL AND max_scan_tuples < 1 THEN
        RAISE EXCEPTION 'similar: max_scan_tuples must be >= 1, got %', max_scan_tuples
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF release_name IS NOT NULL THEN
        scope := ARRAY(SELECT r.release_id FROM healcat.release AS r WHERE r.name = release_name);
        IF cardinality(scope) = 0 THEN
            RAISE EXCEPTION 'similar: no release named %', quote_literal(release_name)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    ELSE
        scope := ARRAY(SELECT r.release_id FROM healcat.release AS r WHERE r.status = 'published');
    END IF;
    IF v IS NULL THEN
        -- The versions current on the releases searched, where their runs gave outputs.
        SELECT array_agg(DISTINCT c.model_version),
               string_agg(format('version %s on %s', c.model_version, r.name), ', ' ORDER BY r.name)
        INTO versions, detail
        FROM healcat.current_run AS c
        JOIN healcat.inference_run AS i ON i.run_id = c.run_id
        JOIN healcat.release AS r ON r.release_id = c.release_id
        WHERE c.model_name = similar_scope.model_name AND c.release_id = ANY(scope) AND i.n_predicted > 0;
        IF cardinality(versions) > 1 THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = format(
                'similar: model %s has different versions current on the releases searched (%s), and embeddings '
                'of different versions cannot be compared: name a version (model_version) or one release '
                '(release_name)', model_name, detail);
        END IF;
        v := versions[1];
        IF v IS NULL AND p_source_id IS NOT NULL THEN  -- none there: the one current on the source's release
            SELECT c.model_version INTO v FROM healcat.current_run AS c
            JOIN healcat.source AS s ON s.release_id = c.release_id
            WHERE s.source_id = p_source_id AND c.model_name = similar_scope.model_name;
        END IF;
    END IF;
    SELECT * INTO m FROM healcat.resolve_model(model_name, v);
    model_id := m.model_id;
    name := m.name;
    version := m.version;
    dim := m.embedding_dim;
    IF dim IS NULL THEN
        RAISE EXCEPTION 'similar: model %/% gives no embeddings: search with a model that does', m.name, m.version
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    release_ids := ARRAY(SELECT DISTINCT i.release_id FROM healcat.inference_run AS i
                         WHERE i.model_id = m.model_id AND i.finished_at IS NOT NULL AND i.release_id = ANY(scope));
    IF release_name IS NULL AND cardinality(release_ids) = 0 AND EXISTS (
            SELECT 1 FROM healcat.inference_run AS i WHERE i.model_id = m.model_id AND i.finished_at IS NOT NULL) THEN
        -- the published releases hold none of this version's outputs, older releases do (a survey's new
        -- release published, its backfill pending): say so rather than answer no rows (as for a release
        -- named without them, below)
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = format(
            'similar: model %s version %s has no finished run on the published releases (%s), only on %s: '
            'run it on them (healcat infer, or the workers'' backfill) or name a release it has run on '
            '(release_name)', m.name, m.version,
            (SELECT string_agg(r.name, ', ' ORDER BY r.name) FROM healcat.release AS r WHERE r.release_id = ANY(scope)),
            (SELECT string_agg(DISTINCT r.name, ', ' ORDER BY r.name) FROM healcat.inference_run AS i
             JOIN healcat.release AS r ON r.release_id = i.release_id
             WHERE i.model_id = m.model_id AND i.finished_at IS NOT NULL));
    END IF;
    IF release_name IS NOT NULL AND cardinality(release_ids) = 0 THEN
        -- the release named holds none of this version's outputs: the search would answer no rows, as
        -- if nothing there were similar; say why, as predictions() does
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = format(
            'similar: model %s version %s has no finished run on release %s%s, so none of its embeddings: '
            '`healcat infer %s %s` runs it there (or says what the release lacks for it), or search another '
            'release', m.name, m.version, release_name,
            coalesce(' (it has on ' || (SELECT string_agg(DISTINCT r.name, ', ' ORDER BY r.name)
                                        FROM healcat.inference_run AS i
                                        JOIN healcat.release AS r ON r.release_id = i.release_id
                                        WHERE i.model_id = m.model_id AND i.finished_at IS NOT NULL) || ')', ''),
            m.name, release_name);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM healcat.inference_run AS i
                   WHERE i.model_id = m.model_id AND i.finished_at IS NOT NULL AND i.release_id <> ALL(scope)) THEN
        release_ids := NULL;
    END IF;
    SELECT string_agg(r.name, ', ' ORDER BY r.name) INTO current_on
    FROM healcat.current_run AS c JOIN healcat.release AS r ON r.release_id = c.release_id
    WHERE c.model_id = m.model_id AND c.release_id = ANY(scope);
END $$;
