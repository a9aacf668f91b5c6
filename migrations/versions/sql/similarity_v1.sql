-- similarity_v1.sql -- filtered similarity search. Applied by migration 0005, which drops the
-- unfiltered functions of queries_v1.sql (same names, fewer arguments) first.
--
--   healcat.similar_sources(source_id, model_name, k, model_version, candidates, release_name,
--                           mode, ef_search, max_scan_tuples)
--   healcat.similar_to_vector(query, model_name, k, model_version, candidates, ...)
--   healcat.similar_plan(model_name, k, model_version, candidates, ...) -- which plan a search takes
--
-- Any filter is a candidate set: `candidates => ARRAY(SELECT source_id FROM ...)` (a cone, a
-- magnitude or redshift cut, any join), and/or `release_name`. A search returns k rows whenever k
-- candidates have embeddings. The plan ('auto') follows the filter's selectivity:
--   exact   the candidates' embeddings are fetched by key and ranked by exact cosine distance;
--           cost ~ the number of candidates n;
--   approx  the model's HNSW index with iterative scan (pgvector 0.8): the graph is walked in
--           distance order and rows failing the filter skipped until k pass; cost ~ ef_search/s
--           graph steps of ~2m distance computations each, s = n/N the filter's selectivity.
-- Exact wins while n^2 < EXACT_RATIO * ef_search * N (the two costs above, with 2m = 32 and an
-- exact row ~3x a graph distance): about 20,000 candidates for N = 1M embeddings. n is the
-- candidate count times the fraction of a sample of up to 1000 candidates that have an embedding
-- of the model (and are in the release), or, for a release alone, what inference_run recorded.
-- An approximate search that comes back with fewer than k rows (the iterative scan stopped at
-- max_scan_tuples) is redone exactly.
--
-- Executed through sqlalchemy.text(): never a colon directly followed by a word character.

-- Arguments of a similarity search: checked, and the model and release resolved.
CREATE FUNCTION healcat.similar_args(
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
    IF release_name IS NOT NULL THEN
        SELECT r.release_id INTO release_id FROM healcat.release AS r WHERE r.name = release_name;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'similar: no release named %', quote_literal(release_name)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
END $$;

-- The plan of a search (see the header): which mode, on how many embeddings and candidates.
CREATE FUNCTION healcat.plan_similar(
    p_model_id integer, k integer, candidates bigint[], p_release_id integer, mode text, ef_search integer,
    max_scan_tuples integer,
    OUT plan text, OUT n_embeddings bigint, OUT n_candidates bigint, OUT ef integer, OUT max_scan integer)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    exact_ratio CONSTANT float8 := 10.0;
    sample_size CONSTANT integer := 1000;
    n_given bigint := cardinality(candidates);
    has_index boolean;
    step integer;
    hits bigint;
    tried bigint;
BEGIN
    ef := coalesce(ef_search, greatest(40, least(1000, 2 * k)));
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
        SELECT count(*), count(e.source_id) INTO tried, hits
        FROM (SELECT candidates[i * step + 1] AS id FROM generate_series(0, sample_size - 1) AS i) AS c
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

-- The k nearest embeddings of a model to a vector among the candidates, as (shard, source_id,
-- distance) nearest first; no argument checks (the public functions make them). The HNSW index
-- is per model (a partial index on vec::vector(dim)), so the query text carries the model's id
-- and dimension as literals; the vector, k and the filters are parameters. The SET clauses make
-- the HNSW settings this function's own: they are restored when it returns.
CREATE FUNCTION healcat.nearest_embeddings(
    query vector, p_model_id integer, dim integer, k integer, candidates bigint[], p_release_id integer,
    exclude_source_id bigint, mode text, ef_search integer, max_scan_tuples integer)
RETURNS TABLE (shard smallint, source_id bigint, distance float8)
LANGUAGE plpgsql STABLE
SET hnsw.ef_search = 40 SET hnsw.iterative_scan = relaxed_order SET hnsw.max_scan_tuples = 20000
AS $$
DECLARE
    p record;
    shards smallint[];
    ids bigint[];
    dists float8[];
    filters text := '';
BEGIN
    SELECT * INTO p FROM healcat.plan_similar(p_model_id, k, candidates, p_release_id, mode, ef_search,
                                               max_scan_tuples);
    IF p.plan = 'approx' THEN
        PERFORM set_config('hnsw.ef_search', p.ef::text, true);
        PERFORM set_config('hnsw.max_scan_tuples', p.max_scan::text, true);
        IF candidates IS NOT NULL THEN
            filters := filters || ' AND x.source_id = ANY($3)';
        END IF;
        IF p_release_id IS NOT NULL THEN   -- a per-row subplan: keeps the index scan's order
            filters := filters || ' AND (SELECT s.release_id FROM healcat.source AS s'
                               || ' WHERE s.source_id = x.source_id AND s.shard = x.shard) = $4';
        END IF;
        IF exclude_source_id IS NOT NULL THEN
            filters := filters || ' AND x.source_id <> $5';
        END IF;
        -- relaxed_order returns index order only roughly: re-sort the k rows found.
        EXECUTE format($q$
            SELECT array_agg(t.shard ORDER BY t.distance, t.source_id),
                   array_agg(t.source_id ORDER BY t.distance, t.source_id),
                   array_agg(t.distance ORDER BY t.distance, t.source_id)
            FROM (SELECT x.shard, x.source_id, (x.vec::vector(%1$s) <=> $1::vector(%1$s))::float8 AS distance
                  FROM healcat.embedding AS x
                  WHERE x.model_id = %2$s %3$s
                  ORDER BY x.vec::vector(%1$s) <=> $1::vector(%1$s)
                  LIMIT $2) AS t$q$, dim, p_model_id, filters)
        INTO shards, ids, dists
        USING query, k, candidates, p_release_id, exclude_source_id;
        IF coalesce(cardinality(ids), 0) >= k THEN
            RETURN QUERY SELECT * FROM unnest(shards, ids, dists);
            RETURN;
        END IF;
        RAISE DEBUG 'similar: the index scan found % of % rows (max_scan_tuples %); exact search instead',
            coalesce(cardinality(ids), 0), k, p.max_scan;
    END IF;
    -- Exact: the candidates' embeddings by key, ranked by cosine_distance() (a function call, which
    -- no index can order by, so the plan is this one whatever the planner thinks of the HNSW index).
    RETURN QUERY EXECUTE format($q$
        SELECT e.shard, e.source_id, cosine_distance(e.vec::vector(%1$s), $1::vector(%1$s))::float8 AS distance
        FROM healcat.embedding AS e %3$s
        WHERE e.model_id = %2$s %4$s
        ORDER BY distance, e.source_id
        LIMIT $2$q$, dim, p_model_id,
        CASE WHEN candidates IS NULL AND p_release_id IS NULL THEN ''
             ELSE 'JOIN healcat.source AS s ON s.shard = e.shard AND s.source_id = e.source_id' END,
        CASE WHEN candidates IS NULL THEN '' ELSE ' AND s.source_id = ANY($3)' END
        || CASE WHEN p_release_id IS NULL THEN '' ELSE ' AND s.release_id = $4' END
        || CASE WHEN exclude_source_id IS NULL THEN '' ELSE ' AND e.source_id <> $5' END)
    USING query, k, candidates, p_release_id, exclude_source_id;
END $$;

-- A similarity search of a vector: arguments checked, rows with their sources, nearest first.
CREATE FUNCTION healcat.similar_core(
    query vector, model_name text, k integer, model_version text, candidates bigint[], release_name text,
    mode text, ef_search integer, max_scan_tuples integer, exclude_source_id bigint)
RETURNS TABLE (source_id bigint, release text, object_id text, ra float8, "dec" float8, distance float8)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    a record;
BEGIN
    SELECT * INTO a FROM healcat.similar_args(model_name, model_version, k, release_name, mode, ef_search,
                                              max_scan_tuples);
    IF query IS NULL OR vector_norm(query) = 0 THEN
        RAISE EXCEPTION 'similar: the query vector must be a non-zero vector, got %', coalesce(query::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF vector_dims(query) <> a.dim THEN
        RAISE EXCEPTION 'similar: model %/% has % dimensions, the query vector %',
            a.name, a.version, a.dim, vector_dims(query) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    SELECT s.source_id, r.name, s.object_id, s.ra, s.dec, n.distance
    FROM healcat.nearest_embeddings(query, a.model_id, a.dim, k, candidates, a.release_id, exclude_source_id,
                                    mode, ef_search, max_scan_tuples) WITH ORDINALITY AS n(shard, source_id, distance, i)
    JOIN healcat.source AS s ON s.shard = n.shard AND s.source_id = n.source_id
    JOIN healcat.release AS r ON r.release_id = s.release_id
    ORDER BY n.i;
END $$;

-- The k sources whose embeddings (of the given model) are nearest to a vector, by cosine distance,
-- among the candidates (NULL: all) of the release (NULL: all releases).
CREATE FUNCTION healcat.similar_to_vector(
    query vector, model_name text, k integer DEFAULT 10, model_version text DEFAULT NULL,
    candidates bigint[] DEFAULT NULL, release_name text DEFAULT NULL, mode text DEFAULT 'auto',
    ef_search integer DEFAULT NULL, max_scan_tuples integer DEFAULT NULL)
RETURNS TABLE (source_id bigint, release text, object_id text, ra float8, "dec" float8, distance float8)
LANGUAGE sql STABLE AS $$
    SELECT * FROM healcat.similar_core(query, model_name, k, model_version, candidates, release_name, mode,
                                       ef_search, max_scan_tuples, NULL)
$$;

-- The k sources most similar to a given source (itself excluded), with the same filters.
CREATE FUNCTION healcat.similar_sources(
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
BEGIN
    PERFORM healcat.check_k(k);
    SELECT * INTO m FROM healcat.resolve_model(model_name, model_version);
    -- The shard first (source's key leads with source_id), then the embedding by its whole key.
    SELECT s.shard INTO sh FROM healcat.source AS s WHERE s.source_id = p_source_id;
    SELECT e.vec INTO q FROM healcat.embedding AS e
    WHERE e.shard = sh AND e.source_id = p_source_id AND e.model_id = m.model_id;
    IF q IS NULL THEN
        RAISE EXCEPTION 'similar: source % has no embedding from model %/%', p_source_id, m.name, m.version
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY SELECT * FROM healcat.similar_core(q, model_name, k, model_version, candidates, release_name,
                                                    mode, ef_search, max_scan_tuples, p_source_id);
END $$;

-- Which plan a search with these arguments takes, and why: the embeddings of the model, the
-- estimated candidates with an embedding, ef_search and max_scan_tuples of an approximate search.
CREATE FUNCTION healcat.similar_plan(
    model_name text, k integer DEFAULT 10, model_version text DEFAULT NULL, candidates bigint[] DEFAULT NULL,
    release_name text DEFAULT NULL, mode text DEFAULT 'auto', ef_search integer DEFAULT NULL,
    max_scan_tuples integer DEFAULT NULL)
RETURNS TABLE (plan text, n_embeddings bigint, n_candidates bigint, hnsw_ef_search integer,
               hnsw_max_scan_tuples integer)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    a record;
BEGIN
    SELECT * INTO a FROM healcat.similar_args(model_name, model_version, k, release_name, mode, ef_search,
                                              max_scan_tuples);
    RETURN QUERY SELECT * FROM healcat.plan_similar(a.model_id, k, candidates, a.release_id, mode, ef_search,
                                                    max_scan_tuples);
END $$;
