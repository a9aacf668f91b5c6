-- similarity_v4.sql -- (migration 0024) change it in a new migration with _v5 definitions rather
-- than by editing this file. Same signatures as before:
--
--   healcat.similar_args      similarity_v1.sql's, and a model that gives no embeddings (the
--       object classifier) is an error saying so: its NULL embedding_dim made the search's SQL
--       'vector()', a syntax error quoting generated SQL.
--   healcat.similar_sources   queries_v2.sql's, with the same check before it looks for the
--       source's embedding (it said 'source N has no embedding').
--   healcat.plan_similar      similarity_v2.sql's, its 500-candidate sample spread over the whole
--       array: a whole-number step left the last (n mod 500) candidates unsampled, and with 500 to
--       999 candidates sampled only the first 500, so the estimate (hence the plan and
--       max_scan_tuples) depended on the array's order (505 against 2 for one set, reversed).
--
-- Executed through sqlalchemy.text(): never a colon directly followed by a word character.

CREATE OR REPLACE FUNCTION healcat.similar_args(
    model_name text, model_version text, k integer, release_name text, mode text, ef_search integer,
    max_scan_tuples integer,
    OUT model_id integer, OUT name text, OUT version text, OUT dim integer, OUT release_id integer)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    m record;
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
    SELECT * INTO m FROM healcat.resolve_model(model_name, model_version);
    model_id := m.model_id;
    name := m.name;
    version := m.version;
    dim := m.embedding_dim;
    IF dim IS NULL THEN
        RAISE EXCEPTION 'similar: model %/% gives no embeddings: search with a model that does', m.name, m.version
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF release_name IS NOT NULL THEN
        SELECT r.release_id INTO release_id FROM healcat.release AS r WHERE r.name = release_name;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'similar: no release named %', quote_literal(release_name)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
END $$;

CREATE OR REPLACE FUNCTION healcat.plan_similar(
    p_model_id integer, k integer, candidates bigint[], p_release_id integer, mode text, ef_search integer,
    max_scan_tuples integer,
    OUT plan text, OUT n_embeddings bigint, OUT n_candidates bigint, OUT ef integer, OUT max_scan integer)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    exact_ratio CONSTANT float8 := 10.0;
    default_ef CONSTANT integer := 100;
    sample_size CONSTANT integer := 500;
    sample bigint[] := '{}';
    n_given bigint := cardinality(candidates);
    has_index boolean;
    hits bigint;
    tried bigint;
BEGIN
    -- The default ef_search, from recall measured on 1M 128-d vectors (m=32, ef_construction=200;
    -- benchmarks/README.md, similarity): recall@10 0.958 at 40 (one query in 50 found none of its
    -- 10), 0.978 at 100, 1.000 at 200, unfiltered and under a 20% filter alike.
    ef := coalesce(ef_search, greatest(default_ef, least(1000, 2 * k)));
    -- The model's HNSW index: its reltuples (set when built, kept by VACUUM) counts the embeddings.
    SELECT c.reltuples::bigint, true INTO n_embeddings, has_index
    FROM pg_class AS c JOIN pg_index AS i ON i.indexrelid = c.oid
    WHERE c.relname = 'ix_embedding_hnsw_' || p_model_id AND c.relnamespace = 'healcat'::regnamespace
      AND i.indisvalid;
    IF NOT coalesce(has_index, false) OR n_embeddings < 0 THEN
        SELECT count(*) INTO n_embeddings FROM healcat.embedding AS e WHERE e.model_id = p_model_id;
    END IF;
    IF candidates IS NULL THEN
        IF p_release_id IS NULL THEN
            n_candidates := n_embeddings;
        ELSE
            SELECT coalesce(sum(r.n_predicted), 0) INTO n_candidates FROM healcat.inference_run AS r
            WHERE r.model_id = p_model_id AND r.release_id = p_release_id;
        END IF;
    ELSIF n_given <= sample_size THEN
        n_candidates := n_given;      -- a small set: exact at once, no need to know more
    ELSE
        -- An evenly spaced sample over the whole array, picked in PL/pgSQL (its array variables are
        -- expanded, so each subscript is cheap; in SQL each would copy the whole array).
        FOR i IN 0 .. sample_size - 1 LOOP
            sample[i + 1] := candidates[1 + floor(i * n_given::float8 / sample_size)::bigint];
        END LOOP;
        SELECT count(*), count(e.source_id) INTO tried, hits
        FROM unnest(sample) AS c(id)
        LEFT JOIN healcat.source AS s ON s.source_id = c.id
             AND (p_release_id IS NULL OR s.release_id = p_release_id)
        LEFT JOIN healcat.embedding AS e ON e.shard = s.shard AND e.source_id = s.source_id
             AND e.model_id = p_model_id;
        n_candidates := ceil(n_given * hits::float8 / tried)::bigint;
    END IF;
    n_candidates := least(n_candidates, n_embeddings);
    IF mode = 'approx' AND NOT coalesce(has_index, false) THEN
        RAISE EXCEPTION 'similar: model % has no valid HNSW index; use mode exact', p_model_id
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    plan := CASE WHEN mode <> 'auto' THEN mode
                 WHEN NOT coalesce(has_index, false) THEN 'exact'
                 WHEN n_candidates::float8 * n_candidates <= exact_ratio * ef * n_embeddings THEN 'exact'
                 ELSE 'approx' END;
    -- Enough index tuples for ef_search matches at this selectivity, with room to spare.
    max_scan := coalesce(max_scan_tuples, least(2147483647, greatest(20000,
        ceil(4.0 * ef * n_embeddings / greatest(n_candidates, 1))))::integer);
END $$;

CREATE OR REPLACE FUNCTION healcat.similar_sources(
    p_source_id bigint, model_name text, k integer DEFAULT 10, model_version text DEFAULT NULL,
    candidates bigint[] DEFAULT NULL, release_name text DEFAULT NULL, mode text DEFAULT 'auto',
    ef_search integer DEFAULT NULL, max_scan_tuples integer DEFAULT NULL)
RETURNS TABLE (source_id bigint, release text, object_id text, ra float8, "dec" float8, distance float8)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    m record;
    sh smallint;
    q vector;
    v text := model_version;
BEGIN
    PERFORM healcat.check_k(k);
    IF v IS NULL THEN  -- the version whose run is current on the source's own release, as current_prediction's
        SELECT c.model_version INTO v FROM healcat.current_run AS c
        JOIN healcat.source AS s ON s.release_id = c.release_id
        WHERE s.source_id = p_source_id AND c.model_name = similar_sources.model_name;
    END IF;
    SELECT * INTO m FROM healcat.resolve_model(model_name, v);
    IF m.embedding_dim IS NULL THEN
        RAISE EXCEPTION 'similar: model %/% gives no embeddings: search with a model that does', m.name, m.version
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The shard first (source's key leads with source_id), then the embedding by its whole key.
    SELECT s.shard INTO sh FROM healcat.source AS s WHERE s.source_id = p_source_id;
    SELECT e.vec INTO q FROM healcat.embedding AS e
    WHERE e.shard = sh AND e.source_id = p_source_id AND e.model_id = m.model_id;
    IF q IS NULL THEN
        RAISE EXCEPTION 'similar: source % has no embedding from model %/%', p_source_id, m.name, m.version
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY SELECT * FROM healcat.similar_core(q, model_name, k, m.version, candidates, release_name,
                                                    mode, ef_search, max_scan_tuples, p_source_id);
END $$;
