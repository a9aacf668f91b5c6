-- healcat region queries, version 1 (migration 0003): box, spherical polygon, ellipse, MOC,
-- k nearest neighbours and sky density. Change them in a new migration with _v2 definitions
-- rather than by editing this file.
--
-- Each region has, in this order:
--   healcat.check_<region>(...)          raises invalid_parameter_value (SQLSTATE 22023) naming the
--                                        argument, for NULL, NaN, infinite or out-of-range values;
--   a cover                              order-29 ranges [lo, hi) holding every source of the region
--                                        (a superset, except for MOCs, whose ranges are exact);
--   healcat.<region>_in_ranges(los, his, release_id, ...)
--                                        the candidates in those ranges (healcat.sources_in_ranges),
--                                        rechecked exactly: the one definition of the region's rows,
--                                        shared by the SQL functions below and the Python API (which
--                                        computes its ranges with healpy);
--   healcat.<region>_search(..., release_name)  what an astronomer calls.
--
-- Note for whoever edits this file: it is executed through sqlalchemy.text(), so never write a
-- colon directly followed by a word character; '::type' and ':=' are fine.


-- ---------------------------------------------------------------------------
-- Argument checks and small helpers
-- ---------------------------------------------------------------------------

-- A finite number in [lo, hi] (or (lo, hi] when lo_open), else a 22023 error naming it.
CREATE FUNCTION healcat.check_arg(what text, arg text, value float8, lo float8, hi float8,
                                  lo_open boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF value IS NULL THEN
        RAISE EXCEPTION '%: % must not be NULL', what, arg USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF value IN ('NaN', 'Infinity', '-Infinity') THEN
        RAISE EXCEPTION '%: % must be a finite number, got %', what, arg, value
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF value > hi OR value < lo OR (lo_open AND value = lo) THEN
        RAISE EXCEPTION '%: % must be in %, got %', what, arg,
            format('%s%s, %s]', CASE WHEN lo_open THEN '(' ELSE '[' END, lo, hi), value
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;

-- The release_id of a release name (NULL for NULL: every release); an unknown name is an error.
CREATE FUNCTION healcat.release_id_of(what text, release_name text)
RETURNS integer LANGUAGE plpgsql STABLE AS $$
DECLARE
    rel integer;
BEGIN
    IF release_name IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT r.release_id INTO rel FROM healcat.release AS r WHERE r.name = release_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%: no release named %', what, quote_literal(release_name)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN rel;
END $$;

-- Right ascension in [0, 360) deg.
CREATE FUNCTION healcat.wrap_ra_deg(ra_deg float8)
RETURNS float8 LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN ra_deg - 360.0 * floor(ra_deg / 360.0) >= 360.0 THEN 0.0
                ELSE ra_deg - 360.0 * floor(ra_deg / 360.0) END
$$;

-- Sorted, disjoint ranges from overlapping or touching ones (arrays of lo and hi, half-open).
CREATE FUNCTION healcat.merge_ranges(los bigint[], his bigint[], OUT lo bigint[], OUT hi bigint[])
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(g.lo ORDER BY g.lo), '{}'), coalesce(array_agg(g.hi ORDER BY g.lo), '{}')
    FROM (SELECT min(b.lo) AS lo, max(b.hi) AS hi
          FROM (SELECT a.lo, a.hi, sum(a.brk) OVER (ORDER BY a.lo, a.hi) AS grp
                FROM (SELECT r.lo, r.hi,
                             CASE WHEN r.lo <= max(r.hi) OVER (ORDER BY r.lo, r.hi ROWS BETWEEN UNBOUNDED PRECEDING
                                                                AND 1 PRECEDING) THEN 0 ELSE 1 END AS brk
                      FROM unnest(los, his) AS r(lo, hi)) AS a) AS b
          GROUP BY b.grp) AS g
$$;

-- The coarse filter every region shares: sources whose order-29 index lies in one of the ranges
-- [los[i], his[i]), one btree range scan per range, on the order-4 shards the ranges touch
-- (shard = ANY(...) lets a distributed planner prune). The LATERAL subquery ends in OFFSET 0 so the
-- planner cannot flatten it: a generic plan (prepared statements, ranges as parameters) then keeps
-- the per-range scan of ix_source_hpx instead of scanning whole shards by the primary key.
CREATE FUNCTION healcat.sources_in_ranges(los bigint[], his bigint[], p_release_id integer)
RETURNS TABLE (source_id bigint, release text, object_id text, ra float8, "dec" float8)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT s.source_id, r.name, s.object_id, s.ra, s.dec
    FROM unnest(los, his) AS c(lo, hi)
    CROSS JOIN LATERAL (
        SELECT x.source_id, x.release_id, x.object_id, x.ra, x.dec
        FROM healcat.source AS x
        WHERE x.hpx >= c.lo AND x.hpx < c.hi
          AND x.shard = ANY(ARRAY(SELECT generate_series(y.lo >> 50, (y.hi - 1) >> 50)::smallint
                                  FROM unnest(los, his) AS y(lo, hi)))
          AND (p_release_id IS NULL OR x.release_id = p_release_id)
        OFFSET 0) AS s
    JOIN healcat.release AS r ON r.release_id = s.release_id
$$;


-- ---------------------------------------------------------------------------
-- Cone (the Python path of healcat.cone_search and the k nearest neighbours)
-- ---------------------------------------------------------------------------

-- Sources in the ranges within radius_deg of (ra_deg, dec_deg), nearest first (ties by source_id).
CREATE FUNCTION healcat.cone_in_ranges(los bigint[], his bigint[], p_release_id integer,
                                       ra_deg float8, dec_deg float8, radius_deg float8)
RETURNS TABLE (source_id bigint, release text, object_id text, ra float8, "dec" float8, distance_arcsec float8)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT s.source_id, s.release, s.object_id, s.ra, s.dec, d.dist_deg * 3600.0
    FROM healcat.sources_in_ranges(los, his, p_release_id) AS s
    CROSS JOIN LATERAL (SELECT healcat.angdist_deg(ra_deg, dec_deg, s.ra, s.dec) AS dist_deg) AS d
    WHERE d.dist_deg <= radius_deg
    ORDER BY d.dist_deg, s.source_id
$$;

-- The k sources nearest to (ra_deg, dec_deg), nearest first, with no radius given: cones of growing
-- radius (x4 from sqrt(k) arcmin) until one holds k sources, which are then exactly the k nearest
-- (any source outside is farther than the radius).
CREATE FUNCTION healcat.nearest(ra_deg float8, dec_deg float8, k integer DEFAULT 1, release_name text DEFAULT NULL)
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


-- ---------------------------------------------------------------------------
-- Box: ra_min_deg .. ra_max_deg (eastwards, wrapping through 0 when ra_min > ra_max after
-- reduction to [0, 360); all RA when ra_max - ra_min >= 360) x dec_min_deg .. dec_max_deg,
-- bounds included.
-- ---------------------------------------------------------------------------

CREATE FUNCTION healcat.check_box(ra_min_deg float8, ra_max_deg float8, dec_min_deg float8, dec_max_deg float8)
RETURNS void LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    PERFORM healcat.check_arg('box', 'ra_min_deg', ra_min_deg, '-Infinity', 'Infinity');
    PERFORM healcat.check_arg('box', 'ra_max_deg', ra_max_deg, '-Infinity', 'Infinity');
    PERFORM healcat.check_arg('box', 'dec_min_deg', dec_min_deg, -90, 90);
    PERFORM healcat.check_arg('box', 'dec_max_deg', dec_max_deg, -90, 90);
    IF dec_min_deg >= dec_max_deg THEN
        RAISE EXCEPTION 'box: dec_min_deg must be below dec_max_deg, got % and %', dec_min_deg, dec_max_deg
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF ra_max_deg - ra_min_deg < 360 AND healcat.wrap_ra_deg(ra_min_deg) = healcat.wrap_ra_deg(ra_max_deg) THEN
        RAISE EXCEPTION 'box: ra_min_deg and ra_max_deg are the same RA (% and %): an empty box', ra_min_deg,
            ra_max_deg USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;

-- Width of the box's RA range [deg], in (0, 360].
CREATE FUNCTION healcat.box_ra_width_deg(ra_min_deg float8, ra_max_deg float8)
RETURNS float8 LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN ra_max_deg - ra_min_deg >= 360.0 THEN 360.0
                WHEN healcat.wrap_ra_deg(ra_max_deg) > healcat.wrap_ra_deg(ra_min_deg)
                    THEN healcat.wrap_ra_deg(ra_max_deg) - healcat.wrap_ra_deg(ra_min_deg)
                ELSE healcat.wrap_ra_deg(ra_max_deg) - healcat.wrap_ra_deg(ra_min_deg) + 360.0 END
$$;

-- Is (ra, dec) in the box? Bounds included; ra in [0, 360) as stored.
CREATE FUNCTION healcat.box_contains(ra float8, "dec" float8, ra_min_deg float8, ra_max_deg float8,
                                     dec_min_deg float8, dec_max_deg float8)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT "dec" >= dec_min_deg AND "dec" <= dec_max_deg
       AND (ra_max_deg - ra_min_deg >= 360.0
            OR CASE WHEN healcat.wrap_ra_deg(ra_min_deg) <= healcat.wrap_ra_deg(ra_max_deg)
                    THEN ra >= healcat.wrap_ra_deg(ra_min_deg) AND ra <= healcat.wrap_ra_deg(ra_max_deg)
                    ELSE ra >= healcat.wrap_ra_deg(ra_min_deg) OR ra <= healcat.wrap_ra_deg(ra_max_deg) END)
$$;

-- Cover of a box: the box cut along RA into near-square pieces (at most 64, each at most 90 deg
-- wide), each covered by its bounding cone (centred on the piece; the farthest point of a piece
-- no wider than 90 deg is a corner), plus a 1e-9 deg margin.
CREATE FUNCTION healcat.box_cover(ra_min_deg float8, ra_max_deg float8, dec_min_deg float8, dec_max_deg float8,
                                  OUT lo bigint[], OUT hi bigint[])
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    width float8 := healcat.box_ra_width_deg(ra_min_deg, ra_max_deg);
    ra0 float8 := healcat.wrap_ra_deg(ra_min_deg);
    widest_cos float8 := CASE WHEN dec_min_deg <= 0 AND dec_max_deg >= 0 THEN 1.0
                              ELSE cos(radians(least(abs(dec_min_deg), abs(dec_max_deg)))) END;
    n integer;
BEGIN
    n := least(64, greatest(ceil(width / 90.0), ceil(width * widest_cos / (dec_max_deg - dec_min_deg)), 1))::integer;
    SELECT m.lo, m.hi INTO lo, hi
    FROM (SELECT array_agg(c.lo) AS los, array_agg(c.hi) AS his
          FROM generate_series(0, n - 1) AS i
          CROSS JOIN LATERAL (SELECT ra0 + width * i / n AS a, ra0 + width * (i + 1) / n AS b) AS p
          CROSS JOIN LATERAL healcat.hpx_cone_cover(
              healcat.wrap_ra_deg((p.a + p.b) / 2.0), (dec_min_deg + dec_max_deg) / 2.0,
              1e-9 + greatest(
                  healcat.angdist_deg((p.a + p.b) / 2.0, (dec_min_deg + dec_max_deg) / 2.0, p.a, dec_min_deg),
                  healcat.angdist_deg((p.a + p.b) / 2.0, (dec_min_deg + dec_max_deg) / 2.0, p.a, dec_max_deg))) AS c
         ) AS u
    CROSS JOIN LATERAL healcat.merge_ranges(u.los, u.his) AS m;
END $$;

-- Sources of the box in the ranges, nearest the box's centre first.
CREATE FUNCTION healcat.box_in_ranges(los bigint[], his bigint[], p_release_id integer, ra_min_deg float8,
                                      ra_max_deg float8, dec_min_deg float8, dec_max_deg float8)
RETURNS TABLE (source_id bigint, release text, object_id text, ra float8, "dec" float8, distance_arcsec float8)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT s.source_id, s.release, s.object_id, s.ra, s.dec, d.dist_deg * 3600.0
    FROM healcat.sources_in_ranges(los, his, p_release_id) AS s
    CROSS JOIN LATERAL (SELECT healcat.angdist_deg(
        healcat.wrap_ra_deg(ra_min_deg + healcat.box_ra_width_deg(ra_min_deg, ra_max_deg) / 2.0),
        (dec_min_deg + dec_max_deg) / 2.0, s.ra, s.dec) AS dist_deg) AS d
    WHERE healcat.box_contains(s.ra, s.dec, ra_min_deg, ra_max_deg, dec_min_deg, dec_max_deg)
    ORDER BY d.dist_deg, s.source_id
$$;

-- Sources with dec_min_deg <= dec <= dec_max_deg and RA from ra_min_deg eastwards to ra_max_deg
-- (box_search(350, 10, -5, 5) spans RA 0), nearest the box's centre first.
CREATE FUNCTION healcat.box_search(ra_min_deg float8, ra_max_deg float8, dec_min_deg float8, dec_max_deg float8,
                                   release_name text DEFAULT NULL)
RETURNS TABLE (source_id bigint, release text, object_id text, ra float8, "dec" float8, distance_arcsec float8)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    rel integer;
    c record;
BEGIN
    PERFORM healcat.check_box(ra_min_deg, ra_max_deg, dec_min_deg, dec_max_deg);
    rel := healcat.release_id_of('box', release_name);
    c := healcat.box_cover(ra_min_deg, ra_max_deg, dec_min_deg, dec_max_deg);
    RETURN QUERY SELECT * FROM healcat.box_in_ranges(c.lo, c.hi, rel, ra_min_deg, ra_max_deg, dec_min_deg, dec_max_deg);
END $$;


-- ---------------------------------------------------------------------------
-- Ellipse: the spherical ellipse, the points whose great-circle distances to its two foci sum to at
-- most 2a. Foci at distance c from the centre along the position angle (east of north), with
-- cos a = cos b cos c (the end of the minor axis is a from each focus).
-- ---------------------------------------------------------------------------

CREATE FUNCTION healcat.check_ellipse(ra_deg float8, dec_deg float8, semi_major_arcsec float8,
                                      semi_minor_arcsec float8, pa_deg float8)
RETURNS void LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    PERFORM healcat.check_arg('ellipse', 'ra_deg', ra_deg, '-Infinity', 'Infinity');
    PERFORM healcat.check_arg('ellipse', 'dec_deg', dec_deg, -90, 90);
    PERFORM healcat.check_arg('ellipse', 'semi_major_arcsec', semi_major_arcsec, 0, 90 * 3600, true);
    PERFORM healcat.check_arg('ellipse', 'semi_minor_arcsec', semi_minor_arcsec, 0, semi_major_arcsec, true);
    PERFORM healcat.check_arg('ellipse', 'pa_deg', pa_deg, '-Infinity', 'Infinity');
END $$;

-- A focus: the point at distance c_deg from (ra_deg, dec_deg) along position angle pa_deg (east of
-- north), from unit vectors (exact at the poles, where "north" is the direction of decreasing
-- |dec| along the meridian ra_deg).
CREATE FUNCTION healcat.offset_by(ra_deg float8, dec_deg float8, pa_deg float8, c_deg float8,
                                  OUT ra float8, OUT "dec" float8)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT healcat.wrap_ra_deg(degrees(atan2(v.y, v.x))), degrees(atan2(v.z, sqrt(v.x * v.x + v.y * v.y)))
    FROM (SELECT cos(radians(c_deg)) * cos(radians(dec_deg)) * cos(radians(ra_deg))
                 + sin(radians(c_deg)) * (cos(radians(pa_deg)) * -sin(radians(dec_deg)) * cos(radians(ra_deg))
                                          - sin(radians(pa_deg)) * sin(radians(ra_deg))) AS x,
                 cos(radians(c_deg)) * cos(radians(dec_deg)) * sin(radians(ra_deg))
                 + sin(radians(c_deg)) * (cos(radians(pa_deg)) * -sin(radians(dec_deg)) * sin(radians(ra_deg))
                                          + sin(radians(pa_deg)) * cos(radians(ra_deg))) AS y,
                 cos(radians(c_deg)) * sin(radians(dec_deg))
                 + sin(radians(c_deg)) * cos(radians(pa_deg)) * cos(radians(dec_deg)) AS z) AS v
$$;

-- The ellipse's foci and its major axis 2a [deg]. c from cos c = cos a / cos b, written without
-- cancellation for tiny ellipses: sin^2(c/2) = sin((a+b)/2) sin((a-b)/2) / cos b.
CREATE FUNCTION healcat.ellipse_foci(ra_deg float8, dec_deg float8, semi_major_arcsec float8,
                                     semi_minor_arcsec float8, pa_deg float8,
                                     OUT ra1 float8, OUT dec1 float8, OUT ra2 float8, OUT dec2 float8,
                                     OUT major_deg float8)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT f1.ra, f1.dec, f2.ra, f2.dec, 2.0 * semi_major_arcsec / 3600.0
    FROM (SELECT degrees(2.0 * asin(sqrt(greatest(0.0,
              sin(radians(semi_major_arcsec + semi_minor_arcsec) / 7200.0)
              * sin(radians(semi_major_arcsec - semi_minor_arcsec) / 7200.0)
              / cos(radians(semi_minor_arcsec / 3600.0)))))) AS c_deg) AS c
    CROSS JOIN LATERAL healcat.offset_by(ra_deg, dec_deg, pa_deg, c.c_deg) AS f1
    CROSS JOIN LATERAL healcat.offset_by(ra_deg, dec_deg, pa_deg + 180.0, c.c_deg) AS f2
$$;

-- Sources of the ellipse in the ranges, nearest its centre first.
CREATE FUNCTION healcat.ellipse_in_ranges(los bigint[], his bigint[], p_release_id integer, ra_deg float8,
                                          dec_deg float8, semi_major_arcsec float8, semi_minor_arcsec float8,
                                          pa_deg float8)
RETURNS TABLE (source_id bigint, release text, object_id text, ra float8, "dec" float8, distance_arcsec float8)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT s.source_id, s.release, s.object_id, s.ra, s.dec, healcat.angdist_deg(ra_deg, dec_deg, s.ra, s.dec) * 3600.0
    FROM healcat.ellipse_foci(ra_deg, dec_deg, semi_major_arcsec, semi_minor_arcsec, pa_deg) AS f
    CROSS JOIN healcat.sources_in_ranges(los, his, p_release_id) AS s
    WHERE healcat.angdist_deg(f.ra1, f.dec1, s.ra, s.dec) + healcat.angdist_deg(f.ra2, f.dec2, s.ra, s.dec)
          <= f.major_deg
    ORDER BY 6, s.source_id
$$;

-- Sources in the ellipse centred on (ra_deg, dec_deg) with semi-axes in arcsec and the major axis
-- at pa_deg east of north, nearest the centre first. Cover: the bounding cone of radius a.
CREATE FUNCTION healcat.ellipse_search(ra_deg float8, dec_deg float8, semi_major_arcsec float8,
                                       semi_minor_arcsec float8, pa_deg float8, release_name text DEFAULT NULL)
RETURNS TABLE (source_id bigint, release text, object_id text, ra float8, "dec" float8, distance_arcsec float8)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    rel integer;
    los bigint[];
    his bigint[];
BEGIN
    PERFORM healcat.check_ellipse(ra_deg, dec_deg, semi_major_arcsec, semi_minor_arcsec, pa_deg);
    rel := healcat.release_id_of('ellipse', release_name);
    SELECT array_agg(c.lo ORDER BY c.lo), array_agg(c.hi ORDER BY c.lo) INTO los, his
    FROM healcat.hpx_cone_cover(ra_deg, dec_deg, semi_major_arcsec / 3600.0 + 1e-9) AS c;
    RETURN QUERY SELECT * FROM healcat.ellipse_in_ranges(los, his, rel, ra_deg, dec_deg, semi_major_arcsec,
                                                         semi_minor_arcsec, pa_deg);
END $$;


-- ---------------------------------------------------------------------------
-- Spherical polygon: vertices joined by great-circle arcs, either winding order, the side that
-- fits within 89 deg of the vertices' mean direction (its "centre"). In the gnomonic projection
-- about the centre great circles are straight lines, so the polygon is the plane polygon of the
-- projected vertices and the test is the even-odd crossing rule there.
-- Vertices: a 2-D array ARRAY[[ra, dec], ...] or a flat one ARRAY[ra1, dec1, ra2, dec2, ...] [deg];
-- a last vertex equal to the first (a closed ring) is taken once.
-- ---------------------------------------------------------------------------

-- The polygon, validated: centre, projected vertices and the bounding radius [deg] about the centre.
CREATE FUNCTION healcat.polygon_prepare(vertices_deg float8[],
                                        OUT ra0 float8, OUT dec0 float8, OUT xs float8[], OUT ys float8[],
                                        OUT radius_deg float8)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    flat float8[];
    n integer;
    vx float8 := 0;
    vy float8 := 0;
    vz float8 := 0;
    norm float8;
    area2 float8 := 0;
    bad record;
BEGIN
    IF vertices_deg IS NULL THEN
        RAISE EXCEPTION 'polygon: vertices_deg must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF array_ndims(vertices_deg) = 2 AND array_length(vertices_deg, 2) <> 2 THEN
        RAISE EXCEPTION 'polygon: vertices_deg must be [[ra, dec], ...] pairs, got rows of %',
            array_length(vertices_deg, 2) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    flat := ARRAY(SELECT unnest(vertices_deg));
    IF coalesce(array_ndims(vertices_deg), 1) > 2 OR cardinality(flat) % 2 <> 0 THEN
        RAISE EXCEPTION 'polygon: vertices_deg must hold (ra, dec) pairs, got % numbers', cardinality(flat)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    n := cardinality(flat) / 2;
    FOR i IN 1..n LOOP
        PERFORM healcat.check_arg('polygon', format('vertex %s ra_deg', i), flat[2 * i - 1], '-Infinity', 'Infinity');
        PERFORM healcat.check_arg('polygon', format('vertex %s dec_deg', i), flat[2 * i], -90, 90);
    END LOOP;
    IF n > 1 AND healcat.angdist_deg(flat[1], flat[2], flat[2 * n - 1], flat[2 * n]) = 0 THEN
        n := n - 1;                                         -- a closed ring: the last vertex repeats the first
    END IF;
    IF n < 3 THEN
        RAISE EXCEPTION 'polygon: needs at least 3 vertices, got %', n USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR i IN 1..n LOOP
        vx := vx + cos(radians(flat[2 * i])) * cos(radians(flat[2 * i - 1]));
        vy := vy + cos(radians(flat[2 * i])) * sin(radians(flat[2 * i - 1]));
        vz := vz + sin(radians(flat[2 * i]));
    END LOOP;
    norm := sqrt(vx * vx + vy * vy + vz * vz);
    IF norm < 1e-9 * n THEN
        RAISE EXCEPTION 'polygon: the vertices surround no centre (their mean direction is zero)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    ra0 := healcat.wrap_ra_deg(degrees(atan2(vy, vx)));
    dec0 := degrees(atan2(vz, sqrt(vx * vx + vy * vy)));
    SELECT max(healcat.angdist_deg(ra0, dec0, flat[2 * i - 1], flat[2 * i])) INTO radius_deg
    FROM generate_series(1, n) AS i;
    IF radius_deg >= 89 THEN
        RAISE EXCEPTION 'polygon: must lie within 89 deg of its vertices'' mean direction, a vertex is % deg away',
            round(radius_deg::numeric, 3) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT array_agg(g.x ORDER BY i), array_agg(g.y ORDER BY i) INTO xs, ys
    FROM generate_series(1, n) AS i CROSS JOIN LATERAL healcat.gnomonic(ra0, dec0, flat[2 * i - 1], flat[2 * i]) AS g;
    SELECT i INTO bad FROM generate_series(1, n) AS i
    WHERE xs[i] = xs[i % n + 1] AND ys[i] = ys[i % n + 1] LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'polygon: vertices % and % are the same point', bad.i, bad.i % n + 1
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- edges i (i -> i+1) and j (j -> j+1) that are not neighbours must not touch or cross
    SELECT e.i, e.j INTO bad
    FROM generate_series(1, n) AS i CROSS JOIN generate_series(i + 2, n) AS j
    CROSS JOIN LATERAL (SELECT i, j, i % n + 1 AS i2, j % n + 1 AS j2) AS e
    WHERE e.j2 <> e.i
      AND healcat.segments_touch(xs[e.i], ys[e.i], xs[e.i2], ys[e.i2], xs[e.j], ys[e.j], xs[e.j2], ys[e.j2])
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'polygon: self-intersecting, edge % (vertices % to %) meets edge % (vertices % to %)',
            bad.i, bad.i, bad.i % n + 1, bad.j, bad.j, bad.j % n + 1 USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT sum(xs[i] * ys[i % n + 1] - xs[i % n + 1] * ys[i]) INTO area2 FROM generate_series(1, n) AS i;
    IF abs(area2) <= 1e-14 * (SELECT max(xs[i] * xs[i] + ys[i] * ys[i]) FROM generate_series(1, n) AS i) THEN
        RAISE EXCEPTION 'polygon: degenerate, it encloses no area' USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;

-- Gnomonic (tangent-plane) projection of (ra, dec) about (ra0, dec0); w = cos(distance), the
-- point is on the centre's side of the sky when w > 0.
CREATE FUNCTION healcat.gnomonic(ra0 float8, dec0 float8, ra float8, "dec" float8,
                                 OUT x float8, OUT y float8, OUT w float8)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN q.w > 0 THEN cos(radians("dec")) * sin(radians(ra - ra0)) / q.w END,
           CASE WHEN q.w > 0 THEN (cos(radians(dec0)) * sin(radians("dec"))
                                   - sin(radians(dec0)) * cos(radians("dec")) * cos(radians(ra - ra0))) / q.w END,
           q.w
    FROM (SELECT sin(radians(dec0)) * sin(radians("dec"))
                 + cos(radians(dec0)) * cos(radians("dec")) * cos(radians(ra - ra0)) AS w) AS q
$$;

-- Do the closed plane segments p1-p2 and p3-p4 share a point?
CREATE FUNCTION healcat.segments_touch(x1 float8, y1 float8, x2 float8, y2 float8,
                                       x3 float8, y3 float8, x4 float8, y4 float8)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN o.d1 * o.d2 < 0 AND o.d3 * o.d4 < 0 THEN true
                WHEN o.d1 = 0 AND least(x3, x4) <= x1 AND x1 <= greatest(x3, x4)
                              AND least(y3, y4) <= y1 AND y1 <= greatest(y3, y4) THEN true
                WHEN o.d2 = 0 AND least(x3, x4) <= x2 AND x2 <= greatest(x3, x4)
                              AND least(y3, y4) <= y2 AND y2 <= greatest(y3, y4) THEN true
                WHEN o.d3 = 0 AND least(x1, x2) <= x3 AND x3 <= greatest(x1, x2)
                              AND least(y1, y2) <= y3 AND y3 <= greatest(y1, y2) THEN true
                WHEN o.d4 = 0 AND least(x1, x2) <= x4 AND x4 <= greatest(x1, x2)
                              AND least(y1, y2) <= y4 AND y4 <= greatest(y1, y2) THEN true
                ELSE false END
    FROM (SELECT (x4 - x3) * (y1 - y3) - (y4 - y3) * (x1 - x3) AS d1,
                 (x4 - x3) * (y2 - y3) - (y4 - y3) * (x2 - x3) AS d2,
                 (x2 - x1) * (y3 - y1) - (y2 - y1) * (x3 - x1) AS d3,
                 (x2 - x1) * (y4 - y1) - (y2 - y1) * (x4 - x1) AS d4) AS o
$$;

-- Is the plane point (x, y) inside the polygon (xs, ys)? The even-odd rule: edges crossed by the
-- ray towards +x, each edge counted half-open in y.
CREATE FUNCTION healcat.plane_polygon_contains(x float8, y float8, xs float8[], ys float8[])
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT count(*) % 2 = 1
    FROM generate_series(1, cardinality(xs)) AS i
    CROSS JOIN LATERAL (SELECT i % cardinality(xs) + 1 AS j) AS e
    WHERE (ys[i] > y) <> (ys[e.j] > y)
      AND x < xs[i] + (xs[e.j] - xs[i]) * (y - ys[i]) / (ys[e.j] - ys[i])
$$;

-- Sources of the polygon in the ranges, nearest its centre first.
CREATE FUNCTION healcat.polygon_in_ranges(los bigint[], his bigint[], p_release_id integer, vertices_deg float8[])
RETURNS TABLE (source_id bigint, release text, object_id text, ra float8, "dec" float8, distance_arcsec float8)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT s.source_id, s.release, s.object_id, s.ra, s.dec, healcat.angdist_deg(p.ra0, p.dec0, s.ra, s.dec) * 3600.0
    FROM healcat.polygon_prepare(vertices_deg) AS p
    CROSS JOIN healcat.sources_in_ranges(los, his, p_release_id) AS s
    CROSS JOIN LATERAL healcat.gnomonic(p.ra0, p.dec0, s.ra, s.dec) AS g
    WHERE g.w > 0 AND healcat.plane_polygon_contains(g.x, g.y, p.xs, p.ys)
    ORDER BY 6, s.source_id
$$;

-- Sources inside the spherical polygon, nearest its centre first. Cover: the bounding cone.
CREATE FUNCTION healcat.polygon_search(vertices_deg float8[], release_name text DEFAULT NULL)
RETURNS TABLE (source_id bigint, release text, object_id text, ra float8, "dec" float8, distance_arcsec float8)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    p record;
    rel integer;
    los bigint[];
    his bigint[];
BEGIN
    p := healcat.polygon_prepare(vertices_deg);
    rel := healcat.release_id_of('polygon', release_name);
    SELECT array_agg(c.lo ORDER BY c.lo), array_agg(c.hi ORDER BY c.lo) INTO los, his
    FROM healcat.hpx_cone_cover(p.ra0, p.dec0, p.radius_deg + 1e-9) AS c;
    RETURN QUERY SELECT * FROM healcat.polygon_in_ranges(los, his, rel, vertices_deg);
END $$;


-- ---------------------------------------------------------------------------
-- MOC (IVOA Multi-Order Coverage map): its cells are exact order-29 ranges, so the coarse filter
-- is also the exact test. ASCII serialisation ('3/1-3 5 4/40-43'; cells are NESTED pixels, a bare
-- number keeps the last order) or JSON ('{"3": [1, 2, 3], "4": [40]}').
-- ---------------------------------------------------------------------------

CREATE FUNCTION healcat.moc_ranges(moc text, OUT lo bigint[], OUT hi bigint[])
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    tok text;
    m text[];
    cur_order integer;
    a bigint;
    b bigint;
    los bigint[] := '{}';
    his bigint[] := '{}';
    cells jsonb;
    kv record;
BEGIN
    IF moc IS NULL OR btrim(moc) = '' THEN
        RAISE EXCEPTION 'moc: the MOC must not be NULL or empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF btrim(moc) LIKE '{%' THEN                            -- JSON: {"order": [pix, ...], ...}
        BEGIN
            cells := moc::jsonb;
        EXCEPTION WHEN invalid_text_representation THEN
            RAISE EXCEPTION 'moc: not valid JSON: %', left(moc, 80) USING ERRCODE = 'invalid_parameter_value';
        END;
        moc := '';
        FOR kv IN SELECT e.key, e.value FROM jsonb_each(cells) AS e LOOP
            IF jsonb_typeof(kv.value) <> 'array' THEN
                RAISE EXCEPTION 'moc: JSON order % must map to an array of pixels', kv.key
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            moc := moc || ' ' || kv.key || '/' || coalesce((SELECT string_agg(v #>> '{}', ' ')
                                                            FROM jsonb_array_elements(kv.value) AS v), '');
        END LOOP;
    END IF;
    FOREACH tok IN ARRAY regexp_split_to_array(btrim(moc), '[\s,]+') LOOP
        m := regexp_match(tok, '^(?:(\d+)/)?(?:(\d+)(?:-(\d+))?)?$');
        IF m IS NULL OR (m[1] IS NULL AND m[2] IS NULL) THEN
            RAISE EXCEPTION 'moc: cannot read % (expected order/pix, order/pix-pix or pix)', quote_literal(tok)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF m[1] IS NOT NULL THEN
            cur_order := m[1]::integer;
            IF cur_order > 29 THEN
                RAISE EXCEPTION 'moc: order must be in 0..29, got % in %', cur_order, quote_literal(tok)
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
        ELSIF cur_order IS NULL THEN
            RAISE EXCEPTION 'moc: % comes before any order/', quote_literal(tok) USING ERRCODE = 'invalid_parameter_value';
        END IF;
        CONTINUE WHEN m[2] IS NULL;                          -- 'order/' with no cells
        a := m[2]::numeric;
        b := coalesce(m[3], m[2])::numeric;
        IF b < a OR b >= 12 * (1::bigint << (2 * cur_order)) THEN
            RAISE EXCEPTION 'moc: cells % are not pixels of order % (0..%)', quote_literal(tok), cur_order,
                12 * (1::bigint << (2 * cur_order)) - 1 USING ERRCODE = 'invalid_parameter_value';
        END IF;
        los := los || (a << (2 * (29 - cur_order)));
        his := his || ((b + 1) << (2 * (29 - cur_order)));
    END LOOP;
    IF cardinality(los) = 0 THEN
        RAISE EXCEPTION 'moc: the MOC covers no cells' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT r.lo, r.hi INTO lo, hi FROM healcat.merge_ranges(los, his) AS r;
END $$;

-- Sources in the MOC, by source_id (a MOC has no centre: no distance column).
CREATE FUNCTION healcat.moc_search(moc text, release_name text DEFAULT NULL)
RETURNS TABLE (source_id bigint, release text, object_id text, ra float8, "dec" float8)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    r record;
    rel integer;
BEGIN
    r := healcat.moc_ranges(moc);
    rel := healcat.release_id_of('moc', release_name);
    RETURN QUERY SELECT s.* FROM healcat.sources_in_ranges(r.lo, r.hi, rel) AS s ORDER BY s.source_id;
END $$;


-- ---------------------------------------------------------------------------
-- Sky density: sources per HEALPix pixel (NESTED) at an order, straight from the index.
-- ---------------------------------------------------------------------------

CREATE FUNCTION healcat.sky_density("order" integer, release_name text DEFAULT NULL)
RETURNS TABLE (pix bigint, n bigint)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    k CONSTANT integer := $1;
    rel integer;
BEGIN
    PERFORM healcat.check_arg('sky_density', 'order', k, 0, 29);
    rel := healcat.release_id_of('sky_density', release_name);
    RETURN QUERY SELECT s.hpx >> (2 * (29 - k)), count(*)
                 FROM healcat.source AS s
                 WHERE s.hpx IS NOT NULL AND (rel IS NULL OR s.release_id = rel)
                 GROUP BY 1 ORDER BY 1;
END $$;
