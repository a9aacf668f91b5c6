-- healcat query functions, version 1. Applied by migration 0001; change them in a
-- new migration with new (_v2) definitions rather than by editing this file.

-- The current version of each model: the newest one not retired (weights left out).
CREATE VIEW healcat.current_model AS
SELECT DISTINCT ON (name)
       model_id, name, version, task, framework, weights_path, weights_sha256, training_set,
       hyperparams, metrics, embedding_dim, created_at, retired_at
FROM healcat.model
WHERE retired_at IS NULL
ORDER BY name, created_at DESC, model_id DESC;

-- Each source's prediction from the current version of each model.
CREATE VIEW healcat.current_prediction AS
SELECT m.name AS model_name, m.version AS model_version, m.task,
       p.shard, p.source_id, p.model_id, p.run_id, p.value, p.uncertainty,
       p.pdf_weights, p.pdf_means, p.pdf_sigmas, p.created_at
FROM healcat.prediction AS p
JOIN healcat.current_model AS m USING (model_id);

-- Raise a clear error for a cone with no answer; NULLs are errors too, not empty results.
CREATE FUNCTION healcat.check_cone(ra_deg float8, dec_deg float8, radius_arcsec float8)
RETURNS void LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF ra_deg IS NULL OR dec_deg IS NULL OR radius_arcsec IS NULL THEN
        RAISE EXCEPTION 'cone: ra_deg, dec_deg and radius_arcsec must not be NULL (got %, %, %)',
            ra_deg, dec_deg, radius_arcsec USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF ra_deg IN ('NaN', 'Infinity', '-Infinity') THEN
        RAISE EXCEPTION 'cone: ra_deg must be finite, got %', ra_deg USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT dec_deg BETWEEN -90 AND 90 OR dec_deg = 'NaN' THEN
        RAISE EXCEPTION 'cone: dec_deg must be in [-90, 90], got %', dec_deg USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT radius_arcsec > 0 OR radius_arcsec > 180 * 3600 OR radius_arcsec = 'NaN' THEN
        RAISE EXCEPTION 'cone: radius_arcsec must be in (0, 648000], got %', radius_arcsec
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;

-- Sources within radius_arcsec of (ra_deg, dec_deg), ICRS, nearest first.
-- Coarse step: the cone's HEALPix order-29 ranges as OR-ed conditions on the btree of
-- source.hpx, plus shard = ANY(cover) so that a distributed planner (Citus) can prune; both
-- are literals in a statement planned for this call, so the planner sees the real ranges
-- (a generic plan over range parameters can flip to scanning whole shards). Exact step: the
-- haversine distance.
CREATE FUNCTION healcat.cone_search(
    ra_deg float8, dec_deg float8, radius_arcsec float8, release_name text DEFAULT NULL)
RETURNS TABLE (source_id bigint, release text, object_id text, ra float8, "dec" float8, distance_arcsec float8)
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    los bigint[];
    his bigint[];
    ranges text;
    shards text;
    rel integer;
BEGIN
    PERFORM healcat.check_cone(ra_deg, dec_deg, radius_arcsec);
    IF release_name IS NOT NULL THEN
        SELECT r.release_id INTO rel FROM healcat.release AS r WHERE r.name = release_name;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'cone_search: no release named %', quote_literal(release_name)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
    SELECT array_agg(c.lo ORDER BY c.lo), array_agg(c.hi ORDER BY c.lo) INTO los, his
    FROM healcat.hpx_cone_cover(ra_deg, dec_deg, radius_arcsec / 3600.0) AS c;
    SELECT string_agg(format('(s.hpx >= %s AND s.hpx < %s)', c.lo, c.hi), ' OR ') INTO ranges
    FROM unnest(los, his) AS c(lo, hi);
    SELECT array_agg(DISTINCT x)::text INTO shards
    FROM unnest(los, his) AS c(lo, hi), generate_series(c.lo >> 50, (c.hi - 1) >> 50) AS x;
    RETURN QUERY EXECUTE format($q$
        SELECT s.source_id, r.name, s.object_id, s.ra, s.dec, d.dist_deg * 3600.0
        FROM healcat.source AS s
        JOIN healcat.release AS r ON r.release_id = s.release_id
        CROSS JOIN LATERAL (SELECT healcat.angdist_deg($1, $2, s.ra, s.dec) AS dist_deg) AS d
        WHERE (%s) AND s.shard = ANY(%L::smallint[]) %s AND d.dist_deg <= $3
        ORDER BY d.dist_deg, s.source_id$q$,
        ranges, shards, CASE WHEN rel IS NULL THEN '' ELSE 'AND s.release_id = $4' END)
    USING ra_deg, dec_deg, radius_arcsec / 3600.0, rel;
END $$;

-- The model version a search uses: the named version, else the current one.
CREATE FUNCTION healcat.resolve_model(
    model_name text, model_version text DEFAULT NULL,
    OUT model_id integer, OUT name text, OUT version text, OUT embedding_dim integer)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    SELECT x.model_id, x.name, x.version, x.embedding_dim INTO model_id, name, version, embedding_dim
    FROM healcat.model AS x
    WHERE x.name = model_name
      AND (x.version = model_version OR (model_version IS NULL AND x.retired_at IS NULL))
    ORDER BY x.created_at DESC, x.model_id DESC LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no model named % (version %)', quote_literal(model_name), coalesce(model_version, 'current')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;

-- k for a similarity search: 1 .. 10000 (pgvector's iterative scan returns them all, in order).
CREATE FUNCTION healcat.check_k(k integer)
RETURNS void LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF k IS NULL OR k < 1 OR k > 10000 THEN
        RAISE EXCEPTION 'similar: k must be an integer in [1, 10000], got %', coalesce(k::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;

-- The k nearest embeddings of one model to a vector, with their sources (no argument checks:
-- the public functions below make them). The HNSW index is per model (a partial index on
-- vec::vector(dim)), so the query text carries the model's id and dimension as literals; the
-- vector and k are parameters. Iterative index scans return all k rows in order, even past ef_search.
-- The SET clauses make the HNSW settings this function's own: they are restored when it returns.
CREATE FUNCTION healcat.nearest_embeddings(query vector, p_model_id integer, dim integer, k integer)
RETURNS TABLE (source_id bigint, release text, object_id text, ra float8, "dec" float8, distance float8)
LANGUAGE plpgsql STABLE
SET hnsw.ef_search = 40 SET hnsw.iterative_scan = strict_order
AS $$
BEGIN
    PERFORM set_config('hnsw.ef_search', greatest(40, least(1000, 2 * k))::text, true);
    RETURN QUERY EXECUTE format($q$
        SELECT e.source_id, r.name, s.object_id, s.ra, s.dec, e.distance
        FROM (SELECT x.shard, x.source_id, (x.vec::vector(%1$s) <=> $1::vector(%1$s))::float8 AS distance
              FROM healcat.embedding AS x
              WHERE x.model_id = %2$s
              ORDER BY x.vec::vector(%1$s) <=> $1::vector(%1$s)
              LIMIT $2) AS e
        JOIN healcat.source AS s ON s.shard = e.shard AND s.source_id = e.source_id
        JOIN healcat.release AS r ON r.release_id = s.release_id
        ORDER BY e.distance, e.source_id$q$, dim, p_model_id)
    USING query, k;
END $$;

-- The k sources whose embeddings (of the given model) are nearest to a vector, by cosine distance.
CREATE FUNCTION healcat.similar_to_vector(
    query vector, model_name text, k integer DEFAULT 10, model_version text DEFAULT NULL)
RETURNS TABLE (source_id bigint, release text, object_id text, ra float8, "dec" float8, distance float8)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    m record;
BEGIN
    PERFORM healcat.check_k(k);
    SELECT * INTO m FROM healcat.resolve_model(model_name, model_version);
    IF query IS NULL OR vector_norm(query) = 0 THEN
        RAISE EXCEPTION 'similar: the query vector must be a non-zero vector, got %', coalesce(query::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF vector_dims(query) <> m.embedding_dim THEN
        RAISE EXCEPTION 'similar: model %/% has % dimensions, the query vector %',
            m.name, m.version, m.embedding_dim, vector_dims(query) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY SELECT * FROM healcat.nearest_embeddings(query, m.model_id, m.embedding_dim, k);
END $$;

-- The k sources most similar to a given source (itself excluded).
CREATE FUNCTION healcat.similar_sources(
    p_source_id bigint, model_name text, k integer DEFAULT 10, model_version text DEFAULT NULL)
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
    RETURN QUERY
    SELECT t.* FROM healcat.nearest_embeddings(q, m.model_id, m.embedding_dim, k + 1) AS t
    WHERE t.source_id <> p_source_id
    ORDER BY t.distance, t.source_id
    LIMIT k;
END $$;
