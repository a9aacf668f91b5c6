-- releases_v2.sql -- (migration 0021) change it in a new migration with _v3 definitions rather than
-- by editing this file.
--
--   healcat.source_fingerprint(shard, source_id)   releases_v1.sql's, plus the object's rows in the
--       per-release tables that its own release wrote (light curves, spectra, labels, rotation
--       periods, stellar masses; each row as jsonb without its keys and, for a spectrum, its file
--       name), so that a release diff calls an object whose light curve or spectrum changed
--       'changed' (v1 looked at the source, photometry, spec-z and external ids only). Those rows
--       are looked at (healcat.per_release_fingerprint) only where the release's row counts say it
--       wrote any: the function runs twice per matched object when a release is published.
--   healcat.per_release_fingerprint(shard, source_id, release_id)   new, that part.
--
-- Note for whoever edits this file: it is executed through sqlalchemy.text(), so never write a
-- colon directly followed by a word character; '::type' and ':=' are fine.

-- The rows a release wrote for one object in the per-release tables, as md5s of their jsonb (keys,
-- and a spectrum's file name, left out), sorted: NULL when there are none.
CREATE FUNCTION healcat.per_release_fingerprint(p_shard smallint, p_source_id bigint, p_release_id integer)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT string_agg(r.h, ',' ORDER BY r.h) FROM (
        SELECT md5((to_jsonb(t) - ARRAY['shard', 'source_id', 'release_id'])::text) AS h FROM healcat.light_curve AS t
        WHERE t.shard = p_shard AND t.source_id = p_source_id AND t.release_id = p_release_id
        UNION ALL
        SELECT md5((to_jsonb(t) - ARRAY['shard', 'source_id', 'release_id', 'file'])::text) FROM healcat.spectrum AS t
        WHERE t.shard = p_shard AND t.source_id = p_source_id AND t.release_id = p_release_id
        UNION ALL
        SELECT md5((to_jsonb(t) - ARRAY['shard', 'source_id', 'release_id'])::text) FROM healcat.label AS t
        WHERE t.shard = p_shard AND t.source_id = p_source_id AND t.release_id = p_release_id
        UNION ALL
        SELECT md5((to_jsonb(t) - ARRAY['shard', 'source_id', 'release_id'])::text) FROM healcat.rotation_period AS t
        WHERE t.shard = p_shard AND t.source_id = p_source_id AND t.release_id = p_release_id
        UNION ALL
        SELECT md5((to_jsonb(t) - ARRAY['shard', 'source_id', 'release_id'])::text) FROM healcat.stellar_mass AS t
        WHERE t.shard = p_shard AND t.source_id = p_source_id AND t.release_id = p_release_id) AS r
$$;
ALTER FUNCTION healcat.per_release_fingerprint(smallint, bigint, integer) SET search_path = pg_catalog, healcat;

CREATE OR REPLACE FUNCTION healcat.source_fingerprint(p_shard smallint, p_source_id bigint)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT md5(concat_ws('|',
        src.own,
        (SELECT string_agg(row(p.band, p.mag, p.mag_err, p.mag_system, p.flux_ujy, p.flux_err_ujy)::text, ','
                           ORDER BY p.band)
         FROM healcat.photometry AS p WHERE p.shard = p_shard AND p.source_id = p_source_id),
        (SELECT string_agg(row(z.z, z.z_err, z.quality, z.spec_class)::text, ',')
         FROM healcat.spec_redshift AS z WHERE z.shard = p_shard AND z.source_id = p_source_id),
        (SELECT string_agg(row(x.catalog, x.xid)::text, ',' ORDER BY x.catalog)
         FROM healcat.source_xid AS x WHERE x.shard = p_shard AND x.source_id = p_source_id),
        src.per_release))
    FROM (SELECT row(s.ra, s.dec, s.attrs)::text AS own,
                 CASE WHEN (SELECT sum(coalesce((r.row_counts->>k)::bigint, 0)) > 0 FROM healcat.release AS r,
                            unnest(ARRAY['light_curve', 'spectrum', 'label', 'rotation_period', 'stellar_mass']) AS k
                            WHERE r.release_id = s.release_id)
                      THEN healcat.per_release_fingerprint(p_shard, p_source_id, s.release_id) END AS per_release
          FROM healcat.source AS s WHERE s.shard = p_shard AND s.source_id = p_source_id) AS src
$$;
ALTER FUNCTION healcat.source_fingerprint(smallint, bigint) SET search_path = pg_catalog, healcat;
