-- similarity_v3.sql -- similarity search skips the embeddings of unfinished runs (migration 0019).
-- Replaces one function of similarity_v1.sql, same signature:
--   healcat.nearest_embeddings   embeddings written by a run not (yet) finished are not searched
-- A run is written in lanes (ingest/inference.py), each committed before the run is marked
-- finished; current_prediction shows finished runs only, and now so does a similarity search.
-- Everything else in similarity_v1.sql and similarity_v2.sql stands.
--
-- Executed through sqlalchemy.text(): never a colon directly followed by a word character.

CREATE OR REPLACE FUNCTION healcat.nearest_embeddings(
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
    unfinished bigint[];
BEGIN
    -- The model's runs not finished: being written (in lanes, committed one by one before the run
    -- is marked finished) or dead half way (the next run on their release deletes what they wrote).
    -- current_prediction does not show their outputs, and a search does not find their embeddings.
    unfinished := ARRAY(SELECT r.run_id FROM healcat.inference_run AS r
                        WHERE r.model_id = p_model_id AND r.finished_at IS NULL);
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
        IF cardinality(unfinished) > 0 THEN
            filters := filters || ' AND x.run_id <> ALL($6)';
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
        USING query, k, candidates, p_release_id, exclude_source_id, unfinished;
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
        || CASE WHEN exclude_source_id IS NULL THEN '' ELSE ' AND e.source_id <> $5' END
        || CASE WHEN cardinality(unfinished) = 0 THEN '' ELSE ' AND e.run_id <> ALL($6)' END)
    USING query, k, candidates, p_release_id, exclude_source_id, unfinished;
END $$;
