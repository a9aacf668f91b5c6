-- releases_v3.sql -- (migration 0045) change it in a new migration with _v4 definitions rather than
-- by editing this file.
--
--   healcat.source_fingerprint(shard, source_id)   releases_v2.sql's, plus the source's proper
--       motions and their epoch (pmra_masyr, pmdec_masyr, ref_epoch_yr: a release that only
--       revised them was 'changed 0'), and with its attrs canonical: each top-level number as
--       trim_scale(value::numeric), so that 5863 and 5863.0 (a CSV column typed float in one chunk
--       because one cell was written '5843.0') are the same value, as jsonb's own comparison says,
--       where the text of the jsonb (its scale printed) made every object of the column 'changed'.
--       Only attrs whose text holds a '.' are rewritten: a jsonb number is printed with a fraction
--       (hence perhaps trailing zeros) only then (an exponent is normalised on input: 5.863e3 is
--       stored 5863), and an SDSS-like release's integer attrs skip the jsonb_each per object.
--   healcat.per_release_fingerprint(shard, source_id, release_id)   releases_v2.sql's, with a
--       rotation period's attrs canonical in the same way. It is also what a release diff compares
--       for the objects of a joining release (rows put on another survey's sources: stellar masses,
--       rotation periods, spectra matched to an existing source; ingest/publish.py).
--
-- Note for whoever edits this file: it is executed through sqlalchemy.text(), so never write a
-- colon directly followed by a word character; '::type' and ':=' are fine.

-- The rows a release wrote for one object in the per-release tables, as md5s of their jsonb (keys,
-- and a spectrum's file name, left out; a rotation period's attrs with their numbers canonical),
-- sorted: NULL when there are none.
CREATE OR REPLACE FUNCTION healcat.per_release_fingerprint(p_shard smallint, p_source_id bigint, p_release_id integer)
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
        SELECT md5(((to_jsonb(t) - ARRAY['shard', 'source_id', 'release_id', 'attrs'])
                    || jsonb_build_object('attrs',
                        CASE WHEN jsonb_typeof(t.attrs) = 'object' AND strpos(t.attrs::text, '.') > 0 THEN coalesce(
                            (SELECT jsonb_object_agg(e.key, CASE WHEN jsonb_typeof(e.value) = 'number'
                                                                 THEN to_jsonb(trim_scale(e.value::numeric))
                                                                 ELSE e.value END)
                             FROM jsonb_each(t.attrs) AS e), '{}'::jsonb)
                        ELSE t.attrs END))::text) FROM healcat.rotation_period AS t
        WHERE t.shard = p_shard AND t.source_id = p_source_id AND t.release_id = p_release_id
        UNION ALL
        SELECT md5((to_jsonb(t) - ARRAY['shard', 'source_id', 'release_id'])::text) FROM healcat.stellar_mass AS t
        WHERE t.shard = p_shard AND t.source_id = p_source_id AND t.release_id = p_release_id) AS r
$$;
ALTER FUNCTION healcat.per_release_fingerprint(smallint, bigint, integer) SET search_path = pg_catalog, healcat;

-- Everything the catalog stores about one object, as text: equal fingerprints, equal values (numbers
-- in attrs by value, not by how the file wrote them).
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
    FROM (SELECT row(s.ra, s.dec, s.pmra_masyr, s.pmdec_masyr, s.ref_epoch_yr,
                     CASE WHEN jsonb_typeof(s.attrs) = 'object' AND strpos(s.attrs::text, '.') > 0 THEN coalesce(
                         (SELECT jsonb_object_agg(e.key, CASE WHEN jsonb_typeof(e.value) = 'number'
                                                              THEN to_jsonb(trim_scale(e.value::numeric))
                                                              ELSE e.value END)
                          FROM jsonb_each(s.attrs) AS e), '{}'::jsonb)
                     ELSE s.attrs END)::text AS own,
                 CASE WHEN (SELECT sum(coalesce((r.row_counts->>k)::bigint, 0)) > 0 FROM healcat.release AS r,
                            unnest(ARRAY['light_curve', 'spectrum', 'label', 'rotation_period', 'stellar_mass']) AS k
                            WHERE r.release_id = s.release_id)
                      THEN healcat.per_release_fingerprint(p_shard, p_source_id, s.release_id) END AS per_release
          FROM healcat.source AS s WHERE s.shard = p_shard AND s.source_id = p_source_id) AS src
$$;
ALTER FUNCTION healcat.source_fingerprint(smallint, bigint) SET search_path = pg_catalog, healcat;
