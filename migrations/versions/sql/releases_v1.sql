-- Release lifecycle (ingest/publish.py): each survey's current release, and views that show only it.
-- Old releases stay in the tables, queryable by name (JOIN healcat.release ... WHERE name = ...).

-- Each survey's newest published release (publish.py keeps exactly one published per survey).
CREATE VIEW healcat.current_release AS
SELECT r.*, s.name AS survey
FROM healcat.release AS r
JOIN healcat.survey AS s USING (survey_id)
WHERE r.status = 'published';

-- The objects of each survey's current release.
CREATE VIEW healcat.current_source AS
SELECT s.*
FROM healcat.source AS s
JOIN healcat.release AS r ON r.release_id = s.release_id
WHERE r.status = 'published';

CREATE VIEW healcat.current_photometry AS
SELECT p.*
FROM healcat.photometry AS p
JOIN healcat.current_source AS s ON s.shard = p.shard AND s.source_id = p.source_id;

CREATE VIEW healcat.current_spec_redshift AS
SELECT z.*
FROM healcat.spec_redshift AS z
JOIN healcat.current_source AS s ON s.shard = z.shard AND s.source_id = z.source_id;

CREATE VIEW healcat.current_source_xid AS
SELECT x.*
FROM healcat.source_xid AS x
JOIN healcat.current_source AS s ON s.shard = x.shard AND s.source_id = x.source_id;

-- Jobs that failed for good (after their last attempt, or at once when they cannot succeed),
-- with the error; `healcat jobs --retry JOB_ID` queues one again.
CREATE VIEW healcat.failed_job AS
SELECT job_id, kind, args, attempts, max_attempts, error, worker, queued_at, started_at, finished_at,
       parent_job_id
FROM healcat.job
WHERE status = 'failed';

-- Everything the catalog stores about one object, as text: equal fingerprints, equal values.
-- Compared between the two objects of a cross-identification to tell 'changed' from unchanged.
CREATE FUNCTION healcat.source_fingerprint(p_shard smallint, p_source_id bigint)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT md5(concat_ws('|',
        (SELECT row(s.ra, s.dec, s.attrs)::text FROM healcat.source AS s
         WHERE s.shard = p_shard AND s.source_id = p_source_id),
        (SELECT string_agg(row(p.band, p.mag, p.mag_err, p.mag_system, p.flux_ujy, p.flux_err_ujy)::text, ','
                           ORDER BY p.band)
         FROM healcat.photometry AS p WHERE p.shard = p_shard AND p.source_id = p_source_id),
        (SELECT string_agg(row(z.z, z.z_err, z.quality, z.spec_class)::text, ',')
         FROM healcat.spec_redshift AS z WHERE z.shard = p_shard AND z.source_id = p_source_id),
        (SELECT string_agg(row(x.catalog, x.xid)::text, ',' ORDER BY x.catalog)
         FROM healcat.source_xid AS x WHERE x.shard = p_shard AND x.source_id = p_source_id)))
$$;
ALTER FUNCTION healcat.source_fingerprint(smallint, bigint) SET search_path = pg_catalog, healcat;
