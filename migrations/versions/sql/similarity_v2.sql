-- similarity_v2.sql -- similarity search tuned on the 1M-embedding benchmark (migration 0012).
-- Replaces one function of similarity_v1.sql, same signature:
--   healcat.plan_similar   the default ef_search: max(100, 2k) (it was max(40, 2k))
-- Everything else in similarity_v1.sql (the plans, the k-rows guarantee, the arguments) stands.
--
-- Executed through sqlalchemy.text(): never a colon directly followed by a word character.

-- The plan of a search (see the header): which mode, on how many embeddings and candidates.
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
    step integer;
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
        step := (n_given / sample_size)::integer;
        -- An evenly spaced sample, picked in PL/pgSQL (its array variables are expanded, so each
        -- subscript is cheap; in SQL each would copy the whole array).
        FOR i IN 0 .. sample_size - 1 LOOP
            sample[i + 1] := candidates[i * step + 1];
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
