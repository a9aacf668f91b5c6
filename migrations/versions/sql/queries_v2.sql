-- queries_v2.sql -- fixes to query functions found in review (migration 0020). Change them in a new
-- migration with _v3 definitions rather than by editing this file.
--
--   healcat.resolve_model(name, version)       queries_v1.sql's; with no version named, the newest
--       unretired version with a finished inference run (what current_run and current_prediction
--       show), so a version registered but not yet run leaves similarity searches on the one before
--       it instead of failing with "has no embedding"; the newest unretired one when none has run.
--   healcat.check_ellipse(...)                  regions_v1.sql's; the semi-major axis must be below
--       90 deg: at 90 the foci are antipodal and every point of the sky is in the "ellipse".
--   healcat.photoz_prediction(...)              ml_v1.sql's; an unknown model name, or a model that
--       is no photo-z model, is an error (was: no row, so photoz_pdf gave NULL for a typo).
--   healcat.mixture_pdf, healcat.mixture_cdf    ml_v1.sql's; NaN gives NaN, and an infinite x or a
--       point beyond 37 sigmas a density of 0 (was: clamped to exp(-100), and NaN sorted as a number);
--       the PDF in log space, so that no term underflows (an error in PostgreSQL).
--   healcat.cone_search, healcat.nearest        cone_v2.sql's and regions_v1.sql's; RA within +-1e9 deg,
--       modulo 360 on entry.
--   healcat.check_xmatch_input(input)           new; healcat.xmatch_table (sky_v4.sql's) calls it first.
--   healcat.similar_sources(...)                similarity_v1.sql's; with no version named, the version
--       whose run is current on the query source's own release (during a backfill, each release's
--       sources are searched with the version current_prediction shows for them).
--
-- Note for whoever edits this file: it is executed through sqlalchemy.text(), so never write a
-- colon directly followed by a word character; '::type' and ':=' are fine.

CREATE OR REPLACE FUNCTION healcat.resolve_model(
    model_name text, model_version text DEFAULT NULL,
    OUT model_id integer, OUT name text, OUT version text, OUT embedding_dim integer)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    SELECT x.model_id, x.name, x.version, x.embedding_dim INTO model_id, name, version, embedding_dim
    FROM healcat.model AS x
    WHERE x.name = model_name
      AND (x.version = model_version OR (model_version IS NULL AND x.retired_at IS NULL))
    ORDER BY EXISTS (SELECT 1 FROM healcat.inference_run AS r
                     WHERE r.model_id = x.model_id AND r.finished_at IS NOT NULL) DESC,
             x.created_at DESC, x.model_id DESC
    LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no model named % (version %)', quote_literal(model_name), coalesce(model_version, 'current')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;

CREATE OR REPLACE FUNCTION healcat.check_ellipse(ra_deg float8, dec_deg float8, semi_major_arcsec float8,
                                                 semi_minor_arcsec float8, pa_deg float8)
RETURNS void LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    PERFORM healcat.check_arg('ellipse', 'ra_deg', ra_deg, '-Infinity', 'Infinity');
    PERFORM healcat.check_arg('ellipse', 'dec_deg', dec_deg, -90, 90);
    PERFORM healcat.check_arg('ellipse', 'semi_major_arcsec', semi_major_arcsec, 0, 'Infinity', true);
    IF semi_major_arcsec >= 90 * 3600 THEN
        RAISE EXCEPTION 'ellipse: semi_major_arcsec must be in (0, 324000), below 90 deg, got %', semi_major_arcsec
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM healcat.check_arg('ellipse', 'semi_minor_arcsec', semi_minor_arcsec, 0, semi_major_arcsec, true);
    PERFORM healcat.check_arg('ellipse', 'pa_deg', pa_deg, '-Infinity', 'Infinity');
END $$;

CREATE OR REPLACE FUNCTION healcat.photoz_prediction(
    p_source_id bigint, model_name text DEFAULT 'photoz-sdss', model_version text DEFAULT NULL)
RETURNS SETOF healcat.prediction LANGUAGE plpgsql STABLE AS $$
DECLARE
    sh smallint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM healcat.model AS m WHERE m.name = photoz_prediction.model_name AND m.task = 'photoz') THEN
        RAISE EXCEPTION 'photo-z: no photo-z model named % (see healcat.current_model)', quote_literal(model_name)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT s.shard INTO sh FROM healcat.source AS s WHERE s.source_id = p_source_id;
    IF model_version IS NULL THEN
        RETURN QUERY SELECT p.* FROM healcat.prediction AS p
        JOIN healcat.current_run AS c ON c.model_id = p.model_id AND c.run_id = p.run_id
        WHERE p.shard = sh AND p.source_id = p_source_id AND c.model_name = photoz_prediction.model_name;
    ELSE
        RETURN QUERY SELECT p.* FROM healcat.prediction AS p
        WHERE p.shard = sh AND p.source_id = p_source_id
          AND p.model_id = (SELECT r.model_id FROM healcat.resolve_model(photoz_prediction.model_name, model_version) AS r);
    END IF;
END $$;

-- Each component's density in log space: PostgreSQL raises on underflow, so a term below exp(-700)
-- (or a component with weight 0, or beyond 37 sigmas) is 0 rather than computed.
CREATE OR REPLACE FUNCTION healcat.mixture_pdf(weights real[], means real[], sigmas real[], x float8)
RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN x = 'NaN' THEN 'NaN'::float8 ELSE
        sum(CASE WHEN c.w <= 0 OR abs((x - c.m) / c.s) > 37 THEN 0
                 WHEN ln(c.w) - 0.5 * ((x - c.m) / c.s) ^ 2 - ln(c.s * sqrt(2 * pi())) < -700 THEN 0
                 ELSE exp(ln(c.w) - 0.5 * ((x - c.m) / c.s) ^ 2 - ln(c.s * sqrt(2 * pi()))) END) END
    FROM unnest(weights::float8[], means::float8[], sigmas::float8[]) AS c(w, m, s)
$$;

CREATE OR REPLACE FUNCTION healcat.mixture_cdf(weights real[], means real[], sigmas real[], x float8)
RETURNS float8 LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN x = 'NaN' THEN 'NaN'::float8 ELSE
        sum(c.w * 0.5 * erfc(least(greatest((c.m - x) / (c.s * sqrt(2.0::float8)), -8.0), 8.0))) END
    FROM unnest(weights::float8[], means::float8[], sigmas::float8[]) AS c(w, m, s)
$$;

-- cone_search (cone_v2.sql's) and nearest (regions_v1.sql's) take RA within +-1e9 deg (as hpx_ang2pix
-- and the Python searches do) modulo 360 on entry: any finite RA was accepted, but RA 1e300 found
-- nothing (its cosine has no precision left) and 2e9 failed in hpx_ang2pix with a generic error.
CREATE OR REPLACE FUNCTION healcat.cone_search(
    ra_deg float8, dec_deg float8, radius_arcsec float8, release_name text DEFAULT NULL)
RETURNS TABLE (source_id bigint, release text, object_id text, ra float8, "dec" float8, distance_arcsec float8)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    los bigint[];
    his bigint[];
    rel integer;
BEGIN
    PERFORM healcat.check_cone(ra_deg, dec_deg, radius_arcsec);
    PERFORM healcat.check_arg('cone', 'ra_deg', ra_deg, -1e9, 1e9);
    ra_deg := healcat.wrap_ra_deg(ra_deg);
    rel := healcat.release_id_of('cone_search', release_name);
    SELECT array_agg(c.lo ORDER BY c.lo), array_agg(c.hi ORDER BY c.lo) INTO los, his
    FROM healcat.hpx_cone_cover(ra_deg, dec_deg, radius_arcsec / 3600.0, healcat.cover_stop_order()) AS c;
    RETURN QUERY SELECT * FROM healcat.cone_in_ranges(los, his, rel, ra_deg, dec_deg, radius_arcsec / 3600.0);
END $$;

CREATE OR REPLACE FUNCTION healcat.nearest(ra_deg float8, dec_deg float8, k integer DEFAULT 1, release_name text DEFAULT NULL)
RETURNS TABLE (source_id bigint, release text, object_id text, ra float8, "dec" float8, distance_arcsec float8)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    rel integer;
    radius_deg float8;
    los bigint[];
    his bigint[];
    n integer;
BEGIN
    PERFORM healcat.check_arg('nearest', 'ra_deg', ra_deg, '-Infinity', 'Infinity');
    PERFORM healcat.check_arg('nearest', 'dec_deg', dec_deg, -90, 90);
    PERFORM healcat.check_arg('nearest', 'k', k, 1, 10000);
    PERFORM healcat.check_arg('nearest', 'ra_deg', ra_deg, -1e9, 1e9);
    ra_deg := healcat.wrap_ra_deg(ra_deg);
    rel := healcat.release_id_of('nearest', release_name);
    radius_deg := sqrt(k) / 60.0;
    LOOP
        radius_deg := least(radius_deg, 180.0);
        SELECT array_agg(c.lo ORDER BY c.lo), array_agg(c.hi ORDER BY c.lo) INTO los, his
        FROM healcat.hpx_cone_cover(ra_deg, dec_deg, radius_deg) AS c;
        SELECT count(*) INTO n FROM (SELECT 1 FROM healcat.cone_in_ranges(los, his, rel, ra_deg, dec_deg, radius_deg)
                                     LIMIT k) AS x;
        EXIT WHEN n >= k OR radius_deg >= 180.0;
        radius_deg := radius_deg * 4.0;
    END LOOP;
    RETURN QUERY SELECT * FROM healcat.cone_in_ranges(los, his, rel, ra_deg, dec_deg, radius_deg) LIMIT k;
END $$;

-- The columns healcat.xmatch_table reads from its input table, checked first: a table made with an
-- integer row_id, or without hpx, failed with a planner error and a page of generated SQL.
CREATE OR REPLACE FUNCTION healcat.check_xmatch_input(input regclass)
RETURNS void LANGUAGE plpgsql STABLE AS $$
DECLARE
    wrong text;
BEGIN
    SELECT string_agg(format('%s %s', w.name, w.type), ', ') INTO wrong
    FROM (VALUES ('row_id', 'bigint'), ('ra', 'double precision'), ('dec', 'double precision'), ('hpx', 'bigint'))
         AS w(name, type)
    WHERE NOT EXISTS (SELECT 1 FROM pg_attribute AS a
                      WHERE a.attrelid = input AND a.attname = w.name AND NOT a.attisdropped
                        AND format_type(a.atttypid, a.atttypmod) = w.type);
    IF wrong IS NOT NULL THEN
        RAISE EXCEPTION 'xmatch: table % needs the columns row_id bigint, ra and dec double precision [deg], hpx bigint (healcat.hpx_ang2pix(29, ra, dec)); it lacks or mistypes %',
            input, wrong USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;

CREATE OR REPLACE FUNCTION healcat.xmatch_table(
    input regclass, radius_arcsec float8, release_name text DEFAULT NULL, mode text DEFAULT 'best',
    epoch_yr float8 DEFAULT NULL)
RETURNS TABLE (row_id bigint, source_id bigint, release text, object_id text, ra float8, "dec" float8,
               separation_arcsec float8)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, healcat
SET enable_nestloop = on SET enable_hashjoin = on SET enable_mergejoin = on SET work_mem = '256MB'
AS $$
DECLARE
    n bigint;
    given_cover boolean;
    rel integer;
    search_arcsec float8;
BEGIN
    PERFORM healcat.check_xmatch(radius_arcsec, mode);
    PERFORM healcat.check_epoch(epoch_yr);
    IF input IS NULL THEN
        RAISE EXCEPTION 'xmatch: input must name a table' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM healcat.check_xmatch_input(input);
    rel := CASE WHEN release_name IS NULL THEN NULL ELSE healcat.resolve_release(release_name, 'xmatch') END;
    search_arcsec := healcat.xmatch_search_radius_arcsec(radius_arcsec, healcat.xmatch_pm_pad_arcsec(rel, epoch_yr));
    EXECUTE format('SELECT count(*) FROM %s', input) INTO n;
    SELECT count(*) = 4 AND epoch_yr IS NULL INTO given_cover FROM pg_attribute AS a
    WHERE a.attrelid = input AND a.attname IN ('pix0', 'pix1', 'pix2', 'pix3') AND NOT a.attisdropped;
    RETURN QUERY EXECUTE healcat.xmatch_prepare(
        input::text,
        CASE WHEN given_cover
             THEN (SELECT string_agg(format('SELECT i.row_id, i.ra, i.dec, i.pix%s AS pix FROM %s AS i
                                             WHERE i.hpx IS NOT NULL AND i.pix%s >= 0', k, input, k), ' UNION ALL ')
                   FROM generate_series(0, 3) AS k)
             ELSE format('SELECT i.row_id, i.ra, i.dec, p.pix FROM %s AS i
                          CROSS JOIN LATERAL healcat.hpx_xmatch_probe_cover(%s, %s, i.hpx) AS p
                          WHERE i.hpx IS NOT NULL', input, healcat.xmatch_order(search_arcsec),
                         healcat.xmatch_probe_order(search_arcsec)) END,
        n, healcat.xmatch_probe_order(search_arcsec), rel, mode, epoch_yr)
    USING radius_arcsec / 3600.0, rel, epoch_yr;
END $$;

-- With no version named, the version current on the query source's release (see the top).
CREATE OR REPLACE FUNCTION healcat.similar_sources(
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
    v text := model_version;
BEGIN
    PERFORM healcat.check_k(k);
    IF v IS NULL THEN  -- the version whose run is current on the source's own release, as current_prediction's
        SELECT c.model_version INTO v FROM healcat.current_run AS c
        JOIN healcat.source AS s ON s.release_id = c.release_id
        WHERE s.source_id = p_source_id AND c.model_name = similar_sources.model_name;
    END IF;
    SELECT * INTO m FROM healcat.resolve_model(model_name, v);
    -- The shard first (source's key leads with source_id), then the embedding by its whole key.
    SELECT s.shard INTO sh FROM healcat.source AS s WHERE s.source_id = p_source_id;
    SELECT e.vec INTO q FROM healcat.embedding AS e
    WHERE e.shard = sh AND e.source_id = p_source_id AND e.model_id = m.model_id;
    IF q IS NULL THEN
        RAISE EXCEPTION 'similar: source % has no embedding from model %/%', p_source_id, m.name, m.version
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY SELECT * FROM healcat.similar_core(q, model_name, k, m.version, candidates, release_name,
                                                    mode, ef_search, max_scan_tuples, p_source_id);
END $$;
