-- releases_v4.sql -- (migration 0058) change it in a new migration with _v5 definitions rather than
-- by editing this file.
--
-- What a release diff's 'changed' object changed, by name. releases_v3.sql's fingerprints say only
-- that two objects differ; these functions split what each fingerprint compares into named parts,
-- each part's text as the fingerprint has it, and name the parts that differ (or that one object
-- has and the other lacks). So two objects' fingerprints differ exactly when the list is not empty.
-- The fingerprints themselves are left as releases_v3.sql defines them.
--
--   healcat.canonical_attrs(attrs)   an attrs object with each top-level number as
--       trim_scale(value::numeric) (5863.0 is 5863), as the fingerprints compare attrs; anything
--       else (an array, a scalar, NULL) as it is.
--   healcat.per_release_parts(shard, source_id, release_id)   per per-release table the release
--       wrote rows to for one object, the md5s of those rows that per_release_fingerprint joins
--       (sorted, comma-separated); ord orders the tables light_curve, spectrum, label,
--       rotation_period, stellar_mass.
--   healcat.source_parts(shard, source_id)   what source_fingerprint compares, as (ord, part,
--       value): 'position' (ra, dec), 'proper_motion' (pmra_masyr, pmdec_masyr), 'ref_epoch'
--       (ref_epoch_yr), 'attrs.KEY' per top-level key (numbers by value), or 'attrs' where attrs
--       is not a JSON object, 'photometry.BAND' per band, 'spec_redshift', 'source_xid.CATALOG' per
--       catalog, then the per-release tables' parts where the source's release wrote to them.
--   healcat.source_changes(shard, source_id, previous_shard, previous_source_id)   the parts of
--       source_parts that differ between an object and the previous release's, in that order
--       (attrs keys, bands and catalogs in byte order): '{}' when the fingerprints are equal.
--   healcat.per_release_changes(shard, source_id, release_id, previous_shard, previous_source_id,
--       previous_release_id)   the same for a joining release's object (its rows on another survey's
--       source, ingest/publish.py): the per-release tables whose rows differ.
--   healcat.change_fields(release_id, shard, source_id)   for a row of healcat.release_change (its
--       key): NULL unless it is 'changed'; for a release's own source, 'object_id' where the two
--       objects' ids differ (matched by position), then source_changes; for a joining release's
--       object, per_release_changes against the release's previous release.
--
-- Note for whoever edits this file: it is executed through sqlalchemy.text(), so never write a
-- colon directly followed by a word character; '::type' and ':=' are fine.

CREATE OR REPLACE FUNCTION healcat.canonical_attrs(p_attrs jsonb)
RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(p_attrs) = 'object' THEN coalesce(
        (SELECT jsonb_object_agg(e.key, CASE WHEN jsonb_typeof(e.value) = 'number'
                                             THEN to_jsonb(trim_scale(e.value::numeric)) ELSE e.value END)
         FROM jsonb_each(p_attrs) AS e), '{}'::jsonb)
    ELSE p_attrs END
$$;
ALTER FUNCTION healcat.canonical_attrs(jsonb) SET search_path = pg_catalog, healcat;

-- Each row's md5 is per_release_fingerprint's: its jsonb without its keys (and a spectrum's file
-- name), a rotation period's attrs canonical.
CREATE OR REPLACE FUNCTION healcat.per_release_parts(p_shard smallint, p_source_id bigint, p_release_id integer)
RETURNS TABLE (ord integer, part text, value text) LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT 10 + array_position(ARRAY['light_curve', 'spectrum', 'label', 'rotation_period', 'stellar_mass'], r.part),
           r.part, string_agg(r.h, ',' ORDER BY r.h)
    FROM (SELECT j.part, md5((j.doc - ARRAY['shard', 'source_id', 'release_id'])::text) AS h FROM (
        SELECT 'light_curve' AS part, to_jsonb(t) AS doc FROM healcat.light_curve AS t
        WHERE (t.shard, t.source_id, t.release_id) = (p_shard, p_source_id, p_release_id)
        UNION ALL SELECT 'spectrum', to_jsonb(t) - 'file' FROM healcat.spectrum AS t
        WHERE (t.shard, t.source_id, t.release_id) = (p_shard, p_source_id, p_release_id)
        UNION ALL SELECT 'label', to_jsonb(t) FROM healcat.label AS t
        WHERE (t.shard, t.source_id, t.release_id) = (p_shard, p_source_id, p_release_id)
        UNION ALL SELECT 'rotation_period', to_jsonb(t) || jsonb_build_object('attrs', healcat.canonical_attrs(t.attrs))
        FROM healcat.rotation_period AS t WHERE (t.shard, t.source_id, t.release_id) = (p_shard, p_source_id, p_release_id)
        UNION ALL SELECT 'stellar_mass', to_jsonb(t) FROM healcat.stellar_mass AS t
        WHERE (t.shard, t.source_id, t.release_id) = (p_shard, p_source_id, p_release_id)) AS j) AS r
    GROUP BY r.part
$$;
ALTER FUNCTION healcat.per_release_parts(smallint, bigint, integer) SET search_path = pg_catalog, healcat;

-- The per-release part is there only where the source's release wrote to a per-release table (its
-- row counts), as in source_fingerprint.
CREATE OR REPLACE FUNCTION healcat.source_parts(p_shard smallint, p_source_id bigint)
RETURNS TABLE (ord integer, part text, value text) LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT p.ord, p.part, p.value FROM healcat.source AS s, LATERAL (
        SELECT 1 AS ord, 'position' AS part, row(s.ra, s.dec)::text AS value
        UNION ALL SELECT 2, 'proper_motion', row(s.pmra_masyr, s.pmdec_masyr)::text
        UNION ALL SELECT 3, 'ref_epoch', s.ref_epoch_yr::text
        UNION ALL SELECT 4, 'attrs', s.attrs::text WHERE jsonb_typeof(s.attrs) IS DISTINCT FROM 'object'
        UNION ALL SELECT 4, 'attrs.' || e.key, e.value::text
        FROM jsonb_each(CASE WHEN jsonb_typeof(s.attrs) = 'object' THEN healcat.canonical_attrs(s.attrs) END) AS e
        UNION ALL SELECT 5, 'photometry.' || b.band, row(b.band, b.mag, b.mag_err, b.mag_system, b.flux_ujy, b.flux_err_ujy)::text
        FROM healcat.photometry AS b WHERE b.shard = s.shard AND b.source_id = s.source_id
        UNION ALL SELECT 6, 'spec_redshift', (SELECT string_agg(row(z.z, z.z_err, z.quality, z.spec_class)::text, ',')
                                              FROM healcat.spec_redshift AS z WHERE z.shard = s.shard AND z.source_id = s.source_id)
        UNION ALL SELECT 7, 'source_xid.' || x.catalog, row(x.catalog, x.xid)::text
        FROM healcat.source_xid AS x WHERE x.shard = s.shard AND x.source_id = s.source_id
        UNION ALL SELECT r.ord, r.part, r.value FROM healcat.per_release_parts(s.shard, s.source_id, s.release_id) AS r
        WHERE (SELECT sum(coalesce((v.row_counts->>k)::bigint, 0)) > 0 FROM healcat.release AS v,
               unnest(ARRAY['light_curve', 'spectrum', 'label', 'rotation_period', 'stellar_mass']) AS k
               WHERE v.release_id = s.release_id)) AS p
    WHERE s.shard = p_shard AND s.source_id = p_source_id
$$;
ALTER FUNCTION healcat.source_parts(smallint, bigint) SET search_path = pg_catalog, healcat;

CREATE OR REPLACE FUNCTION healcat.source_changes(p_shard smallint, p_source_id bigint,
                                                  p_previous_shard smallint, p_previous_source_id bigint)
RETURNS text[] LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(part ORDER BY ord, part COLLATE "C"), '{}')
    FROM healcat.source_parts(p_shard, p_source_id) AS n
    FULL JOIN healcat.source_parts(p_previous_shard, p_previous_source_id) AS o USING (ord, part)
    WHERE n.part IS NULL OR o.part IS NULL OR n.value IS DISTINCT FROM o.value
$$;
ALTER FUNCTION healcat.source_changes(smallint, bigint, smallint, bigint) SET search_path = pg_catalog, healcat;
COMMENT ON FUNCTION healcat.source_changes(smallint, bigint, smallint, bigint) IS
'What differs between a source and the previous release''s (what source_fingerprint compares): position, proper_motion, ref_epoch, attrs.KEY (numbers by value), photometry.BAND, spec_redshift, source_xid.CATALOG, per-release tables; {} when the fingerprints are equal';

CREATE OR REPLACE FUNCTION healcat.per_release_changes(p_shard smallint, p_source_id bigint, p_release_id integer,
                                                       p_previous_shard smallint, p_previous_source_id bigint,
                                                       p_previous_release_id integer)
RETURNS text[] LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(part ORDER BY ord), '{}')
    FROM healcat.per_release_parts(p_shard, p_source_id, p_release_id) AS n
    FULL JOIN healcat.per_release_parts(p_previous_shard, p_previous_source_id, p_previous_release_id) AS o
    USING (ord, part)
    WHERE n.value IS DISTINCT FROM o.value
$$;
ALTER FUNCTION healcat.per_release_changes(smallint, bigint, integer, smallint, bigint, integer)
    SET search_path = pg_catalog, healcat;
COMMENT ON FUNCTION healcat.per_release_changes(smallint, bigint, integer, smallint, bigint, integer) IS
'The per-release tables (light_curve, spectrum, label, rotation_period, stellar_mass) whose rows differ between two releases'' rows on a source each (what per_release_fingerprint compares)';

CREATE OR REPLACE FUNCTION healcat.change_fields(p_release_id integer, p_shard smallint, p_source_id bigint)
RETURNS text[] LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN c.change <> 'changed' THEN NULL
                WHEN s.release_id = c.release_id THEN
                    CASE WHEN s.object_id IS DISTINCT FROM o.object_id THEN ARRAY['object_id'] ELSE '{}' END
                    || healcat.source_changes(c.shard, c.source_id, c.previous_shard, c.previous_source_id)
                ELSE healcat.per_release_changes(c.shard, c.source_id, c.release_id, c.previous_shard,
                                                 c.previous_source_id, r.previous_release_id) END
    FROM healcat.release_change AS c
    JOIN healcat.release AS r ON r.release_id = c.release_id
    JOIN healcat.source AS s ON s.shard = c.shard AND s.source_id = c.source_id
    LEFT JOIN healcat.source AS o ON o.shard = c.previous_shard AND o.source_id = c.previous_source_id
    WHERE c.release_id = p_release_id AND c.shard = p_shard AND c.source_id = p_source_id
$$;
ALTER FUNCTION healcat.change_fields(integer, smallint, bigint) SET search_path = pg_catalog, healcat;
COMMENT ON FUNCTION healcat.change_fields(integer, smallint, bigint) IS
'What a changed object of a release changed, for a row of release_change (release_id, shard, source_id): object_id (a new id at the same position), then source_changes, or per_release_changes for a joining release''s object; NULL for new and vanished';
