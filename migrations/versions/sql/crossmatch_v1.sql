-- crossmatch_v1.sql -- positional cross-match, schema healcat. Applied by migration 0004;
-- change these in a new migration with _v2 definitions rather than by editing this file.
--
--   healcat.xmatch_order(radius_arcsec)          -> HEALPix order k of the join pixels
--   healcat.hpx_xmatch_cover(order, hpx)         -> the <= 4 order-k pixels around a point
--   healcat.xmatch_table(input, radius_arcsec, release_name, mode)
--       an uploaded table (row_id, ra, dec, hpx) against the catalog
--   healcat.xmatch_releases(release_a, release_b, radius_arcsec, mode)
--       one release in the catalog against another
--   healcat.resolve_release(release_name, caller)  -> release_id, or a clear error
--
-- How: a point p lies in an order-(k+1) pixel c, a corner quarter of its order-k parent P.
-- c's eight order-(k+1) neighbours lie in P and in the three order-k neighbours of P that
-- touch that corner (two across its edges, one across its vertex; two where only three
-- pixels meet).  Any disk around p of radius <= 0.3 * resol(k+1) (resol = sqrt(pi/3)/2^(k+1)
-- rad, healpy.nside2resol) stays inside c and its neighbours (healpy's query_disc finds none
-- outside them up to 0.6 * resol; tests/test_crossmatch.py checks the margin), hence inside
-- those <= 4 order-k pixels.  So a cross-match is an equi-join of each input row's <= 4
-- pixels with `source.hpx >> 2*(29-k)` (a hash join for large inputs) or, for small ones,
-- index range scans of source.hpx over [pix << 2*(29-k), (pix+1) << 2*(29-k)), then the
-- exact haversine recheck.  k >= 4 always (radius <= 1800 arcsec), so every pixel lies in
-- one shard (pix >> 2*(k-4)) and the join carries `s.shard = ...` for a distributed planner.
--
-- Neighbours are found on the interleaved (Morton) index itself: x is the even bits of the
-- in-face index, y the odd bits; x +- 1 is dilated-integer arithmetic on the even bits, and
-- crossing a face edge uses healpix_cxx's neighbour tables (nb_facearray, nb_swaparray,
-- T_Healpix_Base::neighbors): a flip of x or y is an XOR with its mask, a swap exchanges the
-- even and odd bits.  No loops and no PL/pgSQL, so the planner inlines the function into the
-- join and it runs at executor speed.
--
-- Note for whoever edits this file: it is executed through sqlalchemy.text(), so never write
-- a colon directly followed by a word character; '::type' and ':=' are fine.


-- Order of the join pixels: the finest k with radius <= 0.3 * resol(k+1), at least 4 and at most 28.
CREATE FUNCTION healcat.xmatch_order(radius_arcsec float8)
RETURNS int LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT least(28, greatest(4,
        floor(ln(0.3 * sqrt(pi() / 3.0) / radians(radius_arcsec / 3600.0)) / ln(2.0::float8))::int - 1))
$$;

COMMENT ON FUNCTION healcat.xmatch_order(float8) IS
    'HEALPix order k of the cross-match join pixels for a radius [arcsec]: radius <= 0.3 * resol(k+1).';


-- The order-k pixels (<= 4) whose union holds every point within 0.3 * resol(k+1) of the point
-- whose order-29 index is hpx (see the header). Inlined into the caller's query (LANGUAGE sql,
-- not STRICT, no SET clause).
CREATE FUNCTION healcat.hpx_xmatch_cover("order" int, hpx bigint)
RETURNS TABLE (pix bigint)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (f.face::bigint << (2 * $1))
           | CASE WHEN f.bits & 4 = 4 THEN (f.y >> 1) | (f.x << 1) ELSE f.x | f.y END
    FROM (
        -- the quarter of P the point is in says which way to step in x and in y
        SELECT c.p, c.mx, c.mx << 1 AS my, c.p >> (2 * $1) AS face0,
               ((c.c1 & 1) * 2 - 1) * u.ux AS ox, (((c.c1 >> 1) & 1) * 2 - 1) * u.uy AS oy
        FROM (SELECT hpx >> (2 * (28 - $1)) AS c1, hpx >> (2 * (29 - $1)) AS p,
                     6148914691236517205 & ((1::bigint << (2 * $1)) - 1) AS mx) AS c
        CROSS JOIN (VALUES (0, 0), (1, 0), (0, 1), (1, 1)) AS u(ux, uy)
    ) AS o
    -- the neighbour's in-face x and y bits (wrapping past the edge) and which face edge it crossed
    CROSS JOIN LATERAL (
        SELECT CASE o.ox WHEN 1 THEN ((o.p & o.mx) | o.my) + 1 WHEN -1 THEN (o.p & o.mx) - 1
                         ELSE o.p END & o.mx AS x0,
               CASE o.oy WHEN 1 THEN ((o.p & o.my) | o.mx) + 1 WHEN -1 THEN (o.p & o.my) - 1
                         ELSE o.p END & o.my AS y0,
               4 + CASE WHEN o.ox = 1 AND o.p & o.mx = o.mx THEN 1 WHEN o.ox = -1 AND o.p & o.mx = 0 THEN -1 ELSE 0 END
                 + CASE WHEN o.oy = 1 AND o.p & o.my = o.my THEN 3 WHEN o.oy = -1 AND o.p & o.my = 0 THEN -3 ELSE 0 END
                 AS nbnum
    ) AS n
    CROSS JOIN LATERAL (
        SELECT ('{ 8, 9,10,11,-1,-1,-1,-1,10,11, 8, 9,   5, 6, 7, 4, 8, 9,10,11, 9,10,11, 8,
                  -1,-1,-1,-1, 5, 6, 7, 4,-1,-1,-1,-1,   4, 5, 6, 7,11, 8, 9,10,11, 8, 9,10,
                   0, 1, 2, 3, 4, 5, 6, 7, 8, 9,10,11,   1, 2, 3, 0, 0, 1, 2, 3, 5, 6, 7, 4,
                  -1,-1,-1,-1, 7, 4, 5, 6,-1,-1,-1,-1,   3, 0, 1, 2, 3, 0, 1, 2, 4, 5, 6, 7,
                   2, 3, 0, 1,-1,-1,-1,-1, 0, 1, 2, 3}'::int[])[n.nbnum * 12 + o.face0::int + 1] AS face,
               ('{0,0,3, 0,0,6, 0,0,0, 0,0,5, 0,0,0, 5,0,0, 0,0,0, 6,0,0, 3,0,0}'::int[])
                   [n.nbnum * 3 + (o.face0::int >> 2) + 1] AS bits
    ) AS t
    CROSS JOIN LATERAL (
        SELECT t.face, t.bits,
               CASE WHEN t.bits & 1 = 1 THEN n.x0 # o.mx ELSE n.x0 END AS x,
               CASE WHEN t.bits & 2 = 2 THEN n.y0 # o.my ELSE n.y0 END AS y
    ) AS f
    WHERE f.face >= 0
$$;

COMMENT ON FUNCTION healcat.hpx_xmatch_cover(int, bigint) IS
    'The <= 4 order-k NESTED pixels whose union holds every point within 0.3 * resol(k+1) of the order-29 pixel hpx.';


-- Raise a clear error for a cross-match with no answer.
CREATE FUNCTION healcat.check_xmatch(radius_arcsec float8, mode text)
RETURNS void LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, healcat AS $$
BEGIN
    IF radius_arcsec IS NULL OR NOT radius_arcsec > 0 OR radius_arcsec > 1800 OR radius_arcsec = 'NaN' THEN
        RAISE EXCEPTION 'xmatch: radius_arcsec must be in (0, 1800], got %', coalesce(radius_arcsec::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF mode IS NULL OR mode NOT IN ('best', 'all') THEN
        RAISE EXCEPTION 'xmatch: mode must be ''best'' or ''all'', got %', coalesce(quote_literal(mode), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;


-- The release_id of a release name, or a clear error saying which search asked (like resolve_model).
CREATE FUNCTION healcat.resolve_release(release_name text, caller text)
RETURNS integer LANGUAGE plpgsql STABLE SET search_path = pg_catalog, healcat AS $$
DECLARE
    rel integer;
BEGIN
    SELECT r.release_id INTO rel FROM healcat.release AS r WHERE r.name = release_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%: no release named %', caller, coalesce(quote_literal(release_name), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN rel;
END $$;


-- The cross-match itself (arguments already checked). `input` is a relation or a parenthesized
-- query with a column row_id (every input row), `cover` a query giving (row_id, ra, dec, pix):
-- the input's positions [deg] with each of their order-xmatch_order(radius) cover pixels; only
-- the functions below build them. n_input picks the plan: index range scans per input pixel
-- when the input is small against the catalog, else one hash join. The SET clauses make the
-- planner settings this function's own: they are restored when it returns.
CREATE FUNCTION healcat.xmatch_core(input text, cover text, n_input bigint, radius_arcsec float8, rel integer,
                                    mode text)
RETURNS TABLE (row_id bigint, source_id bigint, release text, object_id text, ra float8, "dec" float8,
               separation_arcsec float8)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, healcat
SET enable_nestloop = on SET enable_hashjoin = on SET enable_mergejoin = on SET work_mem = '256MB'
AS $$
DECLARE
    k int := healcat.xmatch_order(radius_arcsec);
    n_catalog float8;
    probe boolean;
    pairs text;
BEGIN
    SELECT greatest(c.reltuples, 0) INTO n_catalog FROM pg_class AS c WHERE c.oid = 'healcat.source'::regclass;
    probe := n_input * 64 < n_catalog;
    PERFORM set_config('enable_hashjoin', CASE WHEN probe THEN 'off' ELSE 'on' END, true);
    PERFORM set_config('enable_mergejoin', 'off', true);
    PERFORM set_config('enable_nestloop', CASE WHEN probe THEN 'on' ELSE 'off' END, true);
    -- The pixels are materialized first: inlined into the join condition, the cover's
    -- expression would be evaluated once per use of each of its parts. In the range-scan plan the
    -- shard is compared as int: as a smallint equality, PostgreSQL 18 would skip-scan pk_source
    -- (source_id, shard) on it, which looks cheaper than the hpx range whose per-row bounds it
    -- cannot estimate, and is not (a minute instead of milliseconds for 500 rows).
    pairs := format($q$
        WITH c AS MATERIALIZED (%1$s)
        SELECT c.row_id, s.source_id, s.release_id, s.object_id, s.ra, s.dec, d.sep_deg
        FROM c
        JOIN healcat.source AS s ON %2$s %3$s
        CROSS JOIN LATERAL (SELECT healcat.angdist_deg(c.ra, c.dec, s.ra, s.dec) AS sep_deg) AS d
        WHERE d.sep_deg <= $1$q$,
        cover,
        CASE WHEN probe
             THEN format('s.hpx >= (c.pix << %1$s) AND s.hpx < ((c.pix + 1) << %1$s) AND s.shard::int = (c.pix >> %2$s)::int',
                         2 * (29 - k), 2 * (k - 4))
             ELSE format('(s.hpx >> %s) = c.pix AND s.shard = (c.pix >> %s)::smallint', 2 * (29 - k), 2 * (k - 4)) END,
        CASE WHEN rel IS NULL THEN '' ELSE 'AND s.release_id = $2' END);
    IF mode = 'all' THEN
        RETURN QUERY EXECUTE format($q$
            SELECT p.row_id, p.source_id, r.name, p.object_id, p.ra, p.dec, p.sep_deg * 3600.0
            FROM (%s) AS p JOIN healcat.release AS r USING (release_id)
            ORDER BY p.row_id, p.sep_deg, p.source_id$q$, pairs)
        USING radius_arcsec / 3600.0, rel;
    ELSE
        RETURN QUERY EXECUTE format($q$
            SELECT i.row_id, b.source_id, r.name, b.object_id, b.ra, b.dec, b.sep_deg * 3600.0
            FROM %s AS i
            LEFT JOIN (SELECT DISTINCT ON (p.row_id) p.*
                       FROM (%s) AS p ORDER BY p.row_id, p.sep_deg, p.source_id) AS b USING (row_id)
            LEFT JOIN healcat.release AS r ON r.release_id = b.release_id
            ORDER BY i.row_id$q$, input, pairs)
        USING radius_arcsec / 3600.0, rel;
    END IF;
END $$;


-- An uploaded table against the catalog (or one release of it). `input` names a table (a
-- temporary one, usually) with columns row_id bigint, ra float8, "dec" float8 [deg, ICRS] and
-- hpx bigint (healcat.hpx_ang2pix(29, ra, dec); rows where it is NULL are never matched). A
-- table that also has columns pix0 .. pix3 bigint gives each row's cover pixels itself (those of
-- healcat.hpx_xmatch_cover at order healcat.xmatch_order(radius_arcsec), -1 for none; the
-- Python API computes them with healpy). mode 'best': one row per input row, the nearest source
-- within the radius or NULLs; 'all': every pair within the radius.
CREATE FUNCTION healcat.xmatch_table(
    input regclass, radius_arcsec float8, release_name text DEFAULT NULL, mode text DEFAULT 'best')
RETURNS TABLE (row_id bigint, source_id bigint, release text, object_id text, ra float8, "dec" float8,
               separation_arcsec float8)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, healcat AS $$
DECLARE
    n bigint;
    given_cover boolean;
BEGIN
    PERFORM healcat.check_xmatch(radius_arcsec, mode);
    IF input IS NULL THEN
        RAISE EXCEPTION 'xmatch: input must name a table' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    EXECUTE format('SELECT count(*) FROM %s', input) INTO n;
    SELECT count(*) = 4 INTO given_cover FROM pg_attribute AS a
    WHERE a.attrelid = input AND a.attname IN ('pix0', 'pix1', 'pix2', 'pix3') AND NOT a.attisdropped;
    RETURN QUERY SELECT * FROM healcat.xmatch_core(
        input::text,
        CASE WHEN given_cover
             THEN format('SELECT i.row_id, i.ra, i.dec, p.pix FROM %s AS i
                          CROSS JOIN LATERAL (VALUES (i.pix0), (i.pix1), (i.pix2), (i.pix3)) AS p(pix)
                          WHERE i.hpx IS NOT NULL AND p.pix >= 0', input)
             ELSE format('SELECT i.row_id, i.ra, i.dec, p.pix FROM %s AS i
                          CROSS JOIN LATERAL healcat.hpx_xmatch_cover(%s, i.hpx) AS p
                          WHERE i.hpx IS NOT NULL', input, healcat.xmatch_order(radius_arcsec)) END,
        n, radius_arcsec,
        CASE WHEN release_name IS NULL THEN NULL ELSE healcat.resolve_release(release_name, 'xmatch') END, mode);
END $$;


-- One release against another, both named as in healcat.release.name (the same release twice
-- matches it with itself). Every positioned source of release_a is an input row. mode 'best':
-- one row per positioned source of release_a (NULLs where nothing lies within the radius);
-- 'all': every pair.
CREATE FUNCTION healcat.xmatch_releases(
    release_a text, release_b text, radius_arcsec float8, mode text DEFAULT 'best')
RETURNS TABLE (source_id_a bigint, object_id_a text, ra_a float8, dec_a float8,
               source_id_b bigint, object_id_b text, ra_b float8, dec_b float8, separation_arcsec float8)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, healcat AS $$
DECLARE
    rel_a integer;
    rel_b integer;
    n bigint;
    a_rows text;
BEGIN
    PERFORM healcat.check_xmatch(radius_arcsec, mode);
    rel_a := healcat.resolve_release(release_a, 'xmatch');
    rel_b := healcat.resolve_release(release_b, 'xmatch');
    SELECT count(*) INTO n FROM healcat.source AS s WHERE s.release_id = rel_a AND s.hpx IS NOT NULL;
    a_rows := format('(SELECT s.source_id AS row_id, s.ra, s.dec, s.hpx FROM healcat.source AS s
                       WHERE s.release_id = %s AND s.hpx IS NOT NULL)', rel_a);
    RETURN QUERY
    SELECT a.source_id, a.object_id, a.ra, a.dec, m.source_id, m.object_id, m.ra, m.dec, m.separation_arcsec
    FROM healcat.xmatch_core(
        a_rows,
        format('SELECT i.row_id, i.ra, i.dec, p.pix FROM %s AS i
                CROSS JOIN LATERAL healcat.hpx_xmatch_cover(%s, i.hpx) AS p', a_rows,
               healcat.xmatch_order(radius_arcsec)),
        n, radius_arcsec, rel_b, mode) AS m
    JOIN healcat.source AS a ON a.source_id = m.row_id AND a.release_id = rel_a
    ORDER BY a.source_id, m.separation_arcsec, m.source_id;
END $$;
