-- cone_v4.sql -- (migration 0023) change it in a new migration with _v5 definitions rather than
-- by editing this file.
--
--   healcat.cover_stop_order()
--       cone_v2.sql's, with the catalog's size known when healcat.source was never analyzed: its
--       pg_class.reltuples is then -1 (a release just loaded by `healcat ingest`, before
--       autovacuum or a worker's index job has analyzed it), which v2 read as an empty catalog:
--       order 0, a whole-sky cover, every cone a scan of every source. Now, as the planner does,
--       the size is estimated from the table's pages (50 rows per 8 kB page, about what a source
--       row with a few attributes takes), and a known size is used as before.
--
-- Note for whoever edits this file: it is executed through sqlalchemy.text(), so never write a
-- colon directly followed by a word character; '::type' and ':=' are fine.

CREATE OR REPLACE FUNCTION healcat.cover_stop_order()
RETURNS int LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN n < 12 THEN 0 ELSE least(29, ceil(ln(n / 12.0) / ln(4.0))::int) END
    FROM (SELECT CASE WHEN c.reltuples >= 0 THEN c.reltuples
                      ELSE pg_catalog.pg_relation_size(c.oid) / 8192.0 * 50 END AS n
          FROM pg_catalog.pg_class AS c WHERE c.oid = 'healcat.source'::regclass) AS size
$$;

COMMENT ON FUNCTION healcat.cover_stop_order() IS
    'HEALPix order whose pixels hold about one source of healcat.source on average (its size estimated from its pages until it is analyzed): where region covers stop refining.';
