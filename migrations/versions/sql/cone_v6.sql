-- cone_v6.sql -- (migration 0053) change it in a new migration with _v7 definitions rather than
-- by editing this file.
--
--   healcat.cover_stop_order()
--       cone_v4.sql's, with the catalog's size also taken from its releases' own counts (the
--       source rows each load wrote, release.row_counts): the larger of that and the table's
--       statistics. On Citus the coordinator's healcat.source is an empty shell whose statistics say
--       0 rows however large the catalog (ANALYZE there does not change it), which made every cover
--       order 0, one range over all 3,072 shards; statistics left behind by a fresh load did the
--       same on one server until autovacuum came.
--
-- Note for whoever edits this file: it is executed through sqlalchemy.text(), so never write a
-- colon directly followed by a word character; '::type' and ':=' are fine.

CREATE OR REPLACE FUNCTION healcat.cover_stop_order()
RETURNS int LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN n < 12 THEN 0 ELSE least(29, ceil(ln(n / 12.0) / ln(4.0))::int) END
    FROM (SELECT greatest(
                     (SELECT CASE WHEN c.reltuples >= 0 THEN c.reltuples
                                  ELSE pg_catalog.pg_relation_size(c.oid) / 8192.0 * 50 END
                      FROM pg_catalog.pg_class AS c WHERE c.oid = 'healcat.source'::regclass),
                     (SELECT coalesce(sum((r.row_counts ->> 'source')::float8), 0) FROM healcat.release AS r)) AS n
         ) AS size
$$;

COMMENT ON FUNCTION healcat.cover_stop_order() IS
    'HEALPix order whose pixels hold about one source of healcat.source on average (its size the larger of its statistics, estimated from its pages until it is analyzed, and the source rows its releases loaded): where region covers stop refining.';
