-- similarity_v5.sql -- (migration 0030) change it in a new migration with _v6 definitions rather
-- than by editing this file.
--
--   healcat.similar_scope        new; replaces similar_args (dropped): the arguments checked, and
--       which model version and releases a search covers. Unless a release is named, the published
--       releases (a superseded release holds older copies of the published one's objects). Unless
--       a version is named, the version current on those releases (current_run, as
--       current_prediction shows it), one for the whole search since embeddings of different
--       versions are different spaces: releases with outputs of different current versions are an
--       error naming them (the search used the query source's version and silently found nothing
--       in a release where another version was current).
--   healcat.plan_similar,        release_ids integer[] for p_release_id integer (and, in
--   healcat.nearest_embeddings   nearest_embeddings, exclude bigint[] for exclude_source_id); the
--       index scan's rows go through a MATERIALIZED CTE and are sorted on distance + 0, as pgvector
--       advises for relaxed_order: the planner took the ORDER BY of the HNSW scan as the subquery's
--       order, re-sorted with an Incremental Sort within batches of ~32 rows, and rows inverted at
--       the batches' boundaries came back out of order.
--   healcat.similar_core         its rows ordered by (distance, source_id), not by the ordinality of
--       nearest_embeddings' rows; takes the resolved scope (the old one is dropped).
--   healcat.similar_sources      the source's own object is left out wherever it is: the same
--       object_id in any release of its survey, and the source release_change matched it to (it
--       excluded the source_id alone, so a superseded release's copy came back at distance 0).
--   healcat.similar_to_vector    a query vector's norm below 1e-12 or above 1e12 is scaled to unit
--       length first (pgvector sums the squared norm in float4: below ~1e-19 it underflowed and
--       every distance was 0); now PL/pgSQL.
--   healcat.similar_plan         through similar_scope.
--
-- Executed through sqlalchemy.text(): never a colon directly followed by a word character.

DROP FUNCTION healcat.similar_core(vector, text, integer, text, bigint[], text, text, integer, integer, bigint);
DROP FUNCTION healcat.nearest_embeddings(vector, integer, integer, integer, bigint[], integer, bigint, text, integer,
                                         integer);
DROP FUNCTION healcat.plan_similar(integer, integer, bigint[], integer, text, integer, integer);
DROP FUNCTION healcat.similar_args(text, text, integer, text, text, integer, integer);

-- The arguments of a search checked, and what it searches: the model version (model_id, name,
-- version, dim), release_ids (the releases searched where the version has finished runs; NULL
-- when those are all its runs' releases: no release filter), current_on (the releases searched
-- where the version is current, for messages).
CREATE FUNCTION healcat.similar_scope(
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
    IF NOT EXISTS (SELECT 1 FROM healcat.inference_run AS i
                   WHERE i.model_id = m.model_id AND i.finished_at IS NOT NULL AND i.release_id <> ALL(scope)) THEN
        release_ids := NULL;
    END IF;
    SELECT string_agg(r.name, ', ' ORDER BY r.name) INTO current_on
    FROM healcat.current_run AS c JOIN healcat.release AS r ON r.release_id = c.release_id
    WHERE c.model_id = m.model_id AND c.release_id = ANY(scope);
END $$;

-- The plan of a search (similarity_v1.sql's header): which mode, on how many embeddings and
-- candidates. release_ids: only sources of these releases (NULL: all).
CREATE FUNCTION healcat.plan_similar(
    p_model_id integer, k integer, candidates bigint[], release_ids integer[], mode text, ef_search integer,
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
    -- The model's HNSW index: its reltuples (set when built, by VACUUM and ANALYZE: a run that
    -- wrote embeddings analyzes the table) counts the embeddings.
    SELECT c.reltuples::bigint, true INTO n_embeddings, has_index
    FROM pg_class AS c JOIN pg_index AS i ON i.indexrelid = c.oid
    WHERE c.relname = 'ix_embedding_hnsw_' || p_model_id AND c.relnamespace = 'healcat'::regnamespace
      AND i.indisvalid;
    IF NOT coalesce(has_index, false) OR n_embeddings < 0 THEN
        SELECT count(*) INTO n_embeddings FROM healcat.embedding AS e WHERE e.model_id = p_model_id;
    END IF;
    IF candidates IS NULL THEN
        IF release_ids IS NULL THEN
            n_candidates := n_embeddings;
        ELSE
            SELECT coalesce(sum(r.n_predicted), 0) INTO n_candidates FROM healcat.inference_run AS r
            WHERE r.model_id = p_model_id AND r.release_id = ANY(release_ids) AND r.finished_at IS NOT NULL;
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
             AND (release_ids IS NULL OR s.release_id = ANY(release_ids))
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

-- The k nearest embeddings of a model to a vector among the candidates of the releases, as
-- (shard, source_id, distance) nearest first, equal distances by source_id, those in exclude left
-- out; no argument checks (the public functions make them). The HNSW index is per model (a
-- partial index on vec::vector(dim)), so the query text carries the model's id and dimension as
-- literals; the vector, k and the filters are parameters. The SET clauses make the HNSW settings
-- this function's own: they are restored when it returns. Embeddings of unfinished runs are not
-- searched (similarity_v3.sql).
CREATE FUNCTION healcat.nearest_embeddings(
    query vector, p_model_id integer, dim integer, k integer, candidates bigint[], release_ids integer[],
    exclude bigint[], mode text, ef_search integer, max_scan_tuples integer)
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
    planner text[] := ARRAY[current_setting('enable_sort'), current_setting('enable_seqscan'),
                            current_setting('enable_bitmapscan')];
BEGIN
    unfinished := ARRAY(SELECT r.run_id FROM healcat.inference_run AS r
                        WHERE r.model_id = p_model_id AND r.finished_at IS NULL);
    SELECT * INTO p FROM healcat.plan_similar(p_model_id, k, candidates, release_ids, mode, ef_search,
                                               max_scan_tuples);
    IF p.plan = 'approx' THEN
        PERFORM set_config('hnsw.ef_search', p.ef::text, true);
        PERFORM set_config('hnsw.max_scan_tuples', p.max_scan::text, true);
        IF candidates IS NOT NULL THEN
            filters := filters || ' AND x.source_id = ANY($3)';
        END IF;
        IF release_ids IS NOT NULL THEN   -- a per-row subplan: keeps the index scan's order
            filters := filters || ' AND (SELECT s.release_id FROM healcat.source AS s'
                               || ' WHERE s.source_id = x.source_id AND s.shard = x.shard) = ANY($4)';
        END IF;
        IF exclude IS NOT NULL THEN
            filters := filters || ' AND x.source_id <> ALL($5)';
        END IF;
        IF cardinality(unfinished) > 0 THEN
            filters := filters || ' AND x.run_id <> ALL($6)';
        END IF;
        -- The HNSW index it is: sorted on distance + 0 (below), its ORDER BY no longer spares the
        -- planner a sort, so a bitmap scan of a few candidates and a sort would look cheaper.
        PERFORM set_config('enable_sort', 'off', true);
        PERFORM set_config('enable_seqscan', 'off', true);
        PERFORM set_config('enable_bitmapscan', 'off', true);
        -- relaxed_order returns index order only roughly: the k rows found are materialized and
        -- sorted on distance + 0, an expression the planner cannot take as already sorted by the
        -- index scan (on distance itself it only re-sorted within batches: an Incremental Sort).
        EXECUTE format($q$
            WITH found AS MATERIALIZED (
                SELECT x.shard, x.source_id, (x.vec::vector(%1$s) <=> $1::vector(%1$s))::float8 AS distance
                FROM healcat.embedding AS x
                WHERE x.model_id = %2$s %3$s
                ORDER BY x.vec::vector(%1$s) <=> $1::vector(%1$s)
                LIMIT $2)
            SELECT array_agg(f.shard ORDER BY f.distance + 0, f.source_id),
                   array_agg(f.source_id ORDER BY f.distance + 0, f.source_id),
                   array_agg(f.distance ORDER BY f.distance + 0, f.source_id)
            FROM found AS f$q$, dim, p_model_id, filters)
        INTO shards, ids, dists
        USING query, k, candidates, release_ids, exclude, unfinished;
        PERFORM set_config('enable_sort', planner[1], true);
        PERFORM set_config('enable_seqscan', planner[2], true);
        PERFORM set_config('enable_bitmapscan', planner[3], true);
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
        CASE WHEN candidates IS NULL AND release_ids IS NULL THEN ''
             ELSE 'JOIN healcat.source AS s ON s.shard = e.shard AND s.source_id = e.source_id' END,
        CASE WHEN candidates IS NULL THEN '' ELSE ' AND s.source_id = ANY($3)' END
        || CASE WHEN release_ids IS NULL THEN '' ELSE ' AND s.release_id = ANY($4)' END
        || CASE WHEN exclude IS NULL THEN '' ELSE ' AND e.source_id <> ALL($5)' END
        || CASE WHEN cardinality(unfinished) = 0 THEN '' ELSE ' AND e.run_id <> ALL($6)' END)
    USING query, k, candidates, release_ids, exclude, unfinished;
END $$;

-- A search's rows with their sources: nearest first, equal distances by source_id.
CREATE FUNCTION healcat.similar_core(
    query vector, p_model_id integer, dim integer, k integer, candidates bigint[], release_ids integer[],
    exclude bigint[], mode text, ef_search integer, max_scan_tuples integer)
RETURNS TABLE (source_id bigint, release text, object_id text, ra float8, "dec" float8, distance float8)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF cardinality(release_ids) = 0 THEN
        RETURN;  -- the version has no finished run on the releases searched
    END IF;
    RETURN QUERY
    SELECT s.source_id, r.name, s.object_id, s.ra, s.dec, n.distance
    FROM healcat.nearest_embeddings(query, p_model_id, dim, k, candidates, release_ids, exclude, mode, ef_search,
                                    max_scan_tuples) AS n
    JOIN healcat.source AS s ON s.shard = n.shard AND s.source_id = n.source_id
    JOIN healcat.release AS r ON r.release_id = s.release_id
    ORDER BY n.distance, n.source_id;
END $$;

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
BEGIN
    SELECT * INTO a FROM healcat.similar_scope(model_name, model_version, k, release_name, mode, ef_search,
                                               max_scan_tuples, NULL);
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
    q vector;
    exclude bigint[];
BEGIN
    SELECT * INTO a FROM healcat.similar_scope(model_name, model_version, k, release_name, mode, ef_search,
                                               max_scan_tuples, p_source_id);
    -- The shard first (source's key leads with source_id), then the embedding by its whole key.
    SELECT s.shard INTO sh FROM healcat.source AS s WHERE s.source_id = p_source_id;
    SELECT e.vec INTO q FROM healcat.embedding AS e
    WHERE e.shard = sh AND e.source_id = p_source_id AND e.model_id = a.model_id;
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

-- Which plan a search with these arguments takes, and why (similarity_v1.sql's).
CREATE OR REPLACE FUNCTION healcat.similar_plan(
    model_name text, k integer DEFAULT 10, model_version text DEFAULT NULL, candidates bigint[] DEFAULT NULL,
    release_name text DEFAULT NULL, mode text DEFAULT 'auto', ef_search integer DEFAULT NULL,
    max_scan_tuples integer DEFAULT NULL)
RETURNS TABLE (plan text, n_embeddings bigint, n_candidates bigint, hnsw_ef_search integer,
               hnsw_max_scan_tuples integer)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    a record;
BEGIN
    SELECT * INTO a FROM healcat.similar_scope(model_name, model_version, k, release_name, mode, ef_search,
                                               max_scan_tuples, NULL);
    RETURN QUERY SELECT * FROM healcat.plan_similar(a.model_id, k, candidates, a.release_ids, mode, ef_search,
                                                    max_scan_tuples);
END $$;
