-- regions_v2.sql -- fixes to the region searches of regions_v1.sql (migration 0026). Change them in
-- a new migration with _v3 definitions rather than by editing this file.
--
--   healcat.check_box, healcat.check_ellipse    RA within +-1e9 deg, as cone_search's (queries_v2.sql):
--       RA 1e300 has no degrees left; check_ellipse's message gives the real range, (0, 324000).
--   healcat.ellipse_search                       RA modulo 360 on entry, as the Python path.
--   healcat.box_contains                         at Dec +-90 (the pole) every RA is in the box.
--   healcat.box_cover                            the box cut along Dec as well as RA, so that a tall
--       narrow box is many small cones, not one cone of its whole height (box(10, 10.001, -60, 60)
--       scanned 47% of the sky).
--   healcat.polygon_prepare                      now also returns the tangent-plane frame and the
--       polygon's edges sorted into horizontal slabs, and checks for crossing edges only among the
--       edges of one slab, each pair once (was: every pair, 5.9 s for 1000 vertices); the pair test,
--       healcat.segments_touch, is PL/pgSQL (its SQL form was not inlined, 25 us a call).
--   healcat.polygon_in_ranges                    one PL/pgSQL loop over the candidates, testing the
--       edges of the candidate's slab only (was: two non-inlined functions per candidate, 45 us).
--   healcat.polygon_search                       covered by healcat.polygon_cover (new): cones over the
--       cells of the tangent plane the polygon meets, not its bounding cone (a 30 x 0.01 deg sliver
--       scanned a cone of 15 deg).
--   healcat.moc_ranges                           as catalog.healpix.moc_text_ranges (the same grammar and
--       errors): a JSON MOC's cells must be integers as written (1.0, 1e3 are not), a repeated order
--       adds its cells, '{}' covers no cells, and an order or a cell
--       beyond bigint is a 22023 error naming it; errors quote at most 80 characters of the input.
--   healcat.tangent_xyw, healcat.tangent_radec, healcat.quoted_short    new helpers; gnomonic and
--       plane_polygon_contains are dropped (nothing calls them).
--
-- Note for whoever edits this file: it is executed through sqlalchemy.text(), so never write a
-- colon directly followed by a word character; '::type' and ':=' are fine.


CREATE OR REPLACE FUNCTION healcat.check_box(ra_min_deg float8, ra_max_deg float8, dec_min_deg float8,
                                             dec_max_deg float8)
RETURNS void LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    PERFORM healcat.check_arg('box', 'ra_min_deg', ra_min_deg, -1e9, 1e9);
    PERFORM healcat.check_arg('box', 'ra_max_deg', ra_max_deg, -1e9, 1e9);
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

-- Is (ra, dec) in the box? Bounds included; ra in [0, 360) as stored; a pole has every RA.
CREATE OR REPLACE FUNCTION healcat.box_contains(ra float8, "dec" float8, ra_min_deg float8, ra_max_deg float8,
                                                dec_min_deg float8, dec_max_deg float8)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT "dec" >= dec_min_deg AND "dec" <= dec_max_deg
       AND (ra_max_deg - ra_min_deg >= 360.0 OR abs("dec") = 90.0
            OR CASE WHEN healcat.wrap_ra_deg(ra_min_deg) <= healcat.wrap_ra_deg(ra_max_deg)
                    THEN ra >= healcat.wrap_ra_deg(ra_min_deg) AND ra <= healcat.wrap_ra_deg(ra_max_deg)
                    ELSE ra >= healcat.wrap_ra_deg(ra_min_deg) OR ra <= healcat.wrap_ra_deg(ra_max_deg) END)
$$;

-- Cover of a box: the box cut into n_ra x n_dec pieces (catalog.healpix.box_ranges cuts the same):
-- along RA into pieces at most 90 deg wide, and into near-square pieces along whichever side is
-- the longer (at most 64 pieces that way), each piece covered by its bounding cone (centred on the
-- piece; the farthest point of a piece no wider than 90 deg is a corner) plus a 1e-9 deg margin.
CREATE OR REPLACE FUNCTION healcat.box_cover(ra_min_deg float8, ra_max_deg float8, dec_min_deg float8,
                                             dec_max_deg float8, OUT lo bigint[], OUT hi bigint[])
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    width float8 := healcat.box_ra_width_deg(ra_min_deg, ra_max_deg);
    height float8 := dec_max_deg - dec_min_deg;
    ra0 float8 := healcat.wrap_ra_deg(ra_min_deg);
    -- the box's width [deg on the sky] where it is widest
    span float8 := width * CASE WHEN dec_min_deg <= 0 AND dec_max_deg >= 0 THEN 1.0
                                ELSE cos(radians(least(abs(dec_min_deg), abs(dec_max_deg)))) END;
    n_ra integer := least(64, greatest(ceil(width / 90.0), ceil(span / height), 1))::integer;
    n_dec integer := least(64, greatest(ceil(height / span), 1))::integer;
BEGIN
    SELECT m.lo, m.hi INTO lo, hi
    FROM (SELECT array_agg(c.lo) AS los, array_agg(c.hi) AS his
          FROM generate_series(0, n_ra - 1) AS i CROSS JOIN generate_series(0, n_dec - 1) AS j
          CROSS JOIN LATERAL (SELECT ra0 + width * i / n_ra AS a, ra0 + width * (i + 1) / n_ra AS b,
                                     dec_min_deg + height * j / n_dec AS d1,
                                     dec_min_deg + height * (j + 1) / n_dec AS d2) AS p
          CROSS JOIN LATERAL healcat.hpx_cone_cover(
              healcat.wrap_ra_deg((p.a + p.b) / 2.0), (p.d1 + p.d2) / 2.0,
              1e-9 + greatest(healcat.angdist_deg((p.a + p.b) / 2.0, (p.d1 + p.d2) / 2.0, p.a, p.d1),
                              healcat.angdist_deg((p.a + p.b) / 2.0, (p.d1 + p.d2) / 2.0, p.a, p.d2))) AS c
         ) AS u
    CROSS JOIN LATERAL healcat.merge_ranges(u.los, u.his) AS m;
END $$;


CREATE OR REPLACE FUNCTION healcat.check_ellipse(ra_deg float8, dec_deg float8, semi_major_arcsec float8,
                                                 semi_minor_arcsec float8, pa_deg float8)
RETURNS void LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    PERFORM healcat.check_arg('ellipse', 'ra_deg', ra_deg, -1e9, 1e9);
    PERFORM healcat.check_arg('ellipse', 'dec_deg', dec_deg, -90, 90);
    PERFORM healcat.check_arg('ellipse', 'semi_major_arcsec', semi_major_arcsec, 0, 'Infinity', true);
    IF semi_major_arcsec >= 90 * 3600 THEN
        RAISE EXCEPTION 'ellipse: semi_major_arcsec must be in (0, 324000), below 90 deg, got %', semi_major_arcsec
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM healcat.check_arg('ellipse', 'semi_minor_arcsec', semi_minor_arcsec, 0, semi_major_arcsec, true);
    PERFORM healcat.check_arg('ellipse', 'pa_deg', pa_deg, '-Infinity', 'Infinity');
END $$;

CREATE OR REPLACE FUNCTION healcat.ellipse_search(ra_deg float8, dec_deg float8, semi_major_arcsec float8,
                                                  semi_minor_arcsec float8, pa_deg float8,
                                                  release_name text DEFAULT NULL)
RETURNS TABLE (source_id bigint, release text, object_id text, ra float8, "dec" float8, distance_arcsec float8)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    rel integer;
    los bigint[];
    his bigint[];
BEGIN
    PERFORM healcat.check_ellipse(ra_deg, dec_deg, semi_major_arcsec, semi_minor_arcsec, pa_deg);
    ra_deg := healcat.wrap_ra_deg(ra_deg);
    rel := healcat.release_id_of('ellipse', release_name);
    SELECT array_agg(c.lo ORDER BY c.lo), array_agg(c.hi ORDER BY c.lo) INTO los, his
    FROM healcat.hpx_cone_cover(ra_deg, dec_deg, semi_major_arcsec / 3600.0 + 1e-9) AS c;
    RETURN QUERY SELECT * FROM healcat.ellipse_in_ranges(los, his, rel, ra_deg, dec_deg, semi_major_arcsec,
                                                         semi_minor_arcsec, pa_deg);
END $$;


-- (x w, y w, w) of (ra, dec) in the tangent plane of frame = centre, east and north unit vectors
-- (9 numbers): w = cos(distance from the centre), and (x, y) the gnomonic projection when w > 0.
-- One SQL expression, so the planner inlines it.
CREATE FUNCTION healcat.tangent_xyw(ra float8, "dec" float8, frame float8[])
RETURNS float8[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY[cos(radians("dec")) * cos(radians(ra)) * frame[4] + cos(radians("dec")) * sin(radians(ra)) * frame[5]
                 + sin(radians("dec")) * frame[6],
                 cos(radians("dec")) * cos(radians(ra)) * frame[7] + cos(radians("dec")) * sin(radians(ra)) * frame[8]
                 + sin(radians("dec")) * frame[9],
                 cos(radians("dec")) * cos(radians(ra)) * frame[1] + cos(radians("dec")) * sin(radians(ra)) * frame[2]
                 + sin(radians("dec")) * frame[3]]
$$;

-- Do the closed plane segments p1-p2 and p3-p4 share a point? regions_v1.sql's, in PL/pgSQL: its SQL
-- form was not inlined, and each call cost about 25 us.
CREATE OR REPLACE FUNCTION healcat.segments_touch(x1 float8, y1 float8, x2 float8, y2 float8,
                                                  x3 float8, y3 float8, x4 float8, y4 float8)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    d1 float8 := (x4 - x3) * (y1 - y3) - (y4 - y3) * (x1 - x3);
    d2 float8 := (x4 - x3) * (y2 - y3) - (y4 - y3) * (x2 - x3);
    d3 float8 := (x2 - x1) * (y3 - y1) - (y2 - y1) * (x3 - x1);
    d4 float8 := (x2 - x1) * (y4 - y1) - (y2 - y1) * (x4 - x1);
BEGIN
    RETURN (d1 * d2 < 0 AND d3 * d4 < 0)
        OR (d1 = 0 AND least(x3, x4) <= x1 AND x1 <= greatest(x3, x4) AND least(y3, y4) <= y1 AND y1 <= greatest(y3, y4))
        OR (d2 = 0 AND least(x3, x4) <= x2 AND x2 <= greatest(x3, x4) AND least(y3, y4) <= y2 AND y2 <= greatest(y3, y4))
        OR (d3 = 0 AND least(x1, x2) <= x3 AND x3 <= greatest(x1, x2) AND least(y1, y2) <= y3 AND y3 <= greatest(y1, y2))
        OR (d4 = 0 AND least(x1, x2) <= x4 AND x4 <= greatest(x1, x2) AND least(y1, y2) <= y4 AND y4 <= greatest(y1, y2));
END $$;

DROP FUNCTION healcat.polygon_prepare(float8[]);

-- The polygon, validated: centre, bounding radius [deg] about it, the tangent-plane frame there, the
-- projected vertices (xs, ys), and its edges (edge i joins vertex i to i % n + 1) by horizontal slab:
-- the cardinality(slab_first) - 1 slabs of height slab_h from y = y_min hold the edges listed in
-- slab_edges[slab_first[k + 1] .. slab_first[k + 2] - 1] (slab k, counted from 0), every edge in each
-- slab its y range meets. Slabs a quarter of an edge's mean height, at most n: each edge is in about
-- 5, and a slab holds little more than the edges a horizontal line crosses.
CREATE FUNCTION healcat.polygon_prepare(vertices_deg float8[],
                                        OUT ra0 float8, OUT dec0 float8, OUT radius_deg float8, OUT frame float8[],
                                        OUT xs float8[], OUT ys float8[], OUT y_min float8, OUT y_max float8,
                                        OUT slab_h float8, OUT slab_first integer[], OUT slab_edges integer[])
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    flat float8[];
    n integer;
    slabs integer;
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
        PERFORM healcat.check_arg('polygon', format('vertex %s ra_deg', i), flat[2 * i - 1], -1e9, 1e9);
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
    frame := ARRAY[cos(radians(dec0)) * cos(radians(ra0)), cos(radians(dec0)) * sin(radians(ra0)), sin(radians(dec0)),
                   -sin(radians(ra0)), cos(radians(ra0)), 0,
                   -sin(radians(dec0)) * cos(radians(ra0)), -sin(radians(dec0)) * sin(radians(ra0)), cos(radians(dec0))];
    SELECT array_agg(t.v[1] / t.v[3] ORDER BY i), array_agg(t.v[2] / t.v[3] ORDER BY i) INTO xs, ys
    FROM generate_series(1, n) AS i
    CROSS JOIN LATERAL (SELECT healcat.tangent_xyw(flat[2 * i - 1], flat[2 * i], frame) AS v) AS t;
    SELECT i INTO bad FROM generate_series(1, n) AS i
    WHERE xs[i] = xs[i % n + 1] AND ys[i] = ys[i % n + 1] LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'polygon: vertices % and % are the same point', bad.i, bad.i % n + 1
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    y_min := (SELECT min(y) FROM unnest(ys) AS y);
    y_max := (SELECT max(y) FROM unnest(ys) AS y);
    -- 4n (y range) / (the edges' summed heights) slabs, within 1..n (1 when the heights sum to 0: degenerate,
    -- refused below)
    slabs := (SELECT least(n, greatest(1, ceil(4 * n * (y_max - y_min) / nullif(sum(abs(ys[i % n + 1] - ys[i])), 0))))
              FROM generate_series(1, n) AS i)::integer;
    slab_h := CASE WHEN y_max > y_min THEN (y_max - y_min) / slabs ELSE 1.0 END;
    WITH member AS (                                        -- (slab, edge): the slabs each edge's y range meets
        SELECT k, e.i
        FROM generate_series(1, n) AS e(i)
        CROSS JOIN LATERAL generate_series(
            least(slabs - 1, floor((least(ys[e.i], ys[e.i % n + 1]) - y_min) / slab_h))::integer,
            least(slabs - 1, floor((greatest(ys[e.i], ys[e.i % n + 1]) - y_min) / slab_h))::integer) AS k)
    SELECT (SELECT array_agg(m.i ORDER BY m.k, m.i) FROM member AS m),
           (SELECT array_agg(1 + f.before ORDER BY f.s)
            FROM (SELECT s, coalesce(sum(count(m.i)) OVER (ORDER BY s ROWS BETWEEN UNBOUNDED PRECEDING
                                                             AND 1 PRECEDING), 0)::integer AS before
                  FROM generate_series(0, slabs) AS s LEFT JOIN member AS m ON m.k = s GROUP BY s) AS f)
    INTO slab_edges, slab_first;
    -- edges i (i -> i+1) and j (j -> j+1) that are not neighbours must not touch or cross; only edges
    -- sharing a slab can
    WITH slab AS (SELECT k, slab_edges[o] AS i
                  FROM generate_series(0, slabs - 1) AS k
                  CROSS JOIN LATERAL generate_series(slab_first[k + 1], slab_first[k + 2] - 1) AS o),
    pair AS MATERIALIZED (SELECT DISTINCT a.i, b.i AS j        -- each pair once, then tested
                          FROM slab AS a JOIN slab AS b ON b.k = a.k AND b.i > a.i + 1 AND NOT (a.i = 1 AND b.i = n))
    SELECT e.i, e.j INTO bad
    FROM pair AS e
    WHERE healcat.segments_touch(xs[e.i], ys[e.i], xs[e.i % n + 1], ys[e.i % n + 1],
                                 xs[e.j], ys[e.j], xs[e.j % n + 1], ys[e.j % n + 1])
    ORDER BY e.i, e.j
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

-- Sources of the polygon in the ranges, nearest its centre first. The test is the even-odd rule in the
-- tangent plane over the edges of the candidate's slab only (the ray towards +x crosses no other),
-- each edge counted half-open in y. PL/pgSQL, one loop over the candidates: the prepared arrays are
-- unpacked once per search, not once per candidate as a per-candidate function's arguments would be.
CREATE OR REPLACE FUNCTION healcat.polygon_in_ranges(los bigint[], his bigint[], p_release_id integer,
                                                     vertices_deg float8[])
RETURNS TABLE (source_id bigint, release text, object_id text, ra float8, "dec" float8, distance_arcsec float8)
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    p record := healcat.polygon_prepare(vertices_deg);
    xs float8[] := p.xs;
    ys float8[] := p.ys;
    slab_first integer[] := p.slab_first;
    slab_edges integer[] := p.slab_edges;
    n integer := cardinality(p.xs);
    slabs integer := cardinality(p.slab_first) - 1;
    c record;
    x float8;
    y float8;
    i integer;
    j integer;
    inside boolean;
    ids bigint[] := '{}';
    releases text[] := '{}';
    object_ids text[] := '{}';
    ras float8[] := '{}';
    decs float8[] := '{}';
BEGIN
    FOR c IN SELECT s.*, healcat.tangent_xyw(s.ra, s.dec, p.frame) AS v
             FROM healcat.sources_in_ranges(los, his, p_release_id) AS s LOOP
        CONTINUE WHEN c.v[3] <= 0;                          -- beyond 90 deg from the centre
        y := c.v[2] / c.v[3];
        CONTINUE WHEN y < p.y_min OR y > p.y_max;
        x := c.v[1] / c.v[3];
        inside := false;
        FOR o IN slab_first[least(slabs - 1, floor((y - p.y_min) / p.slab_h))::integer + 1]
                 .. slab_first[least(slabs - 1, floor((y - p.y_min) / p.slab_h))::integer + 2] - 1 LOOP
            i := slab_edges[o];
            j := i % n + 1;
            IF (ys[i] > y) <> (ys[j] > y) AND x < xs[i] + (xs[j] - xs[i]) * (y - ys[i]) / (ys[j] - ys[i]) THEN
                inside := NOT inside;
            END IF;
        END LOOP;
        IF inside THEN
            ids := ids || c.source_id;
            releases := releases || c.release;
            object_ids := object_ids || c.object_id;
            ras := ras || c.ra;
            decs := decs || c.dec;
        END IF;
    END LOOP;
    RETURN QUERY
        SELECT s.*, healcat.angdist_deg(p.ra0, p.dec0, s.ra, s.dec) * 3600.0
        FROM unnest(ids, releases, object_ids, ras, decs) AS s(source_id, release, object_id, ra, "dec")
        ORDER BY 6, s.source_id;
END $$;

-- (ra, dec) [deg] of the tangent-plane point (x, y) in frame (healcat.tangent_xyw's inverse).
CREATE FUNCTION healcat.tangent_radec(x float8, y float8, frame float8[], OUT ra float8, OUT "dec" float8)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT healcat.wrap_ra_deg(degrees(atan2(v.y, v.x))), degrees(atan2(v.z, sqrt(v.x * v.x + v.y * v.y)))
    FROM (SELECT frame[1] + x * frame[4] + y * frame[7] AS x, frame[2] + x * frame[5] + y * frame[8] AS y,
                 frame[3] + x * frame[6] + y * frame[9] AS z) AS v
$$;

-- Cover of a prepared polygon (catalog.healpix.polygon_ranges computes the same): its bounding
-- rectangle in the tangent plane cut into square cells, g along the longer side (g <= 16, fewer for
-- many vertices: cells x edges stays near 100000); a cell is kept when its centre is inside the
-- polygon or an edge passes within the cell's half-diagonal of it (then the polygon meets the
-- cell, or misses it), and each kept cell is covered by the cone about its centre through its
-- farthest corner, plus 1e-9 deg. A thin polygon is a few small cones, not its bounding cone.
CREATE FUNCTION healcat.polygon_cover(frame float8[], xs float8[], ys float8[], OUT lo bigint[], OUT hi bigint[])
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    n integer := cardinality(xs);
    x_min float8 := (SELECT min(v) FROM unnest(xs) AS v);
    y_min float8 := (SELECT min(v) FROM unnest(ys) AS v);
    w float8 := (SELECT max(v) FROM unnest(xs) AS v) - x_min;
    h float8 := (SELECT max(v) FROM unnest(ys) AS v) - y_min;
    -- g cells along the longer side: <= 16, fewer for many vertices, and none under 0.5 deg (tan 0.5 deg =
    -- 0.0087269 in the plane): each cell costs a cone cover (~0.7 ms), more than scanning its sources
    side float8 := greatest(w, h) / greatest(1, least(16, floor(sqrt(100000.0 / n)), floor(greatest(w, h) / 0.0087269)));
BEGIN
    SELECT m.lo, m.hi INTO lo, hi
    FROM (SELECT array_agg(c.lo) AS los, array_agg(c.hi) AS his
          FROM generate_series(0, greatest(1, ceil(w / side))::integer - 1) AS i
          CROSS JOIN generate_series(0, greatest(1, ceil(h / side))::integer - 1) AS j
          CROSS JOIN LATERAL (SELECT x_min + side * (i + 0.5) AS x, y_min + side * (j + 0.5) AS y) AS q
          CROSS JOIN LATERAL healcat.tangent_radec(q.x, q.y, frame) AS centre
          CROSS JOIN LATERAL healcat.hpx_cone_cover(centre.ra, centre.dec, 1e-9 + (
              SELECT max(healcat.angdist_deg(centre.ra, centre.dec, corner.ra, corner.dec))
              FROM (VALUES (-0.5, -0.5), (-0.5, 0.5), (0.5, -0.5), (0.5, 0.5)) AS k(dx, dy)
              CROSS JOIN LATERAL healcat.tangent_radec(q.x + side * k.dx, q.y + side * k.dy, frame) AS corner)) AS c
          WHERE (SELECT count(*) % 2 = 1 FROM generate_series(1, n) AS e       -- the centre is inside
                 WHERE (ys[e] > q.y) <> (ys[e % n + 1] > q.y)
                   AND q.x < xs[e] + (xs[e % n + 1] - xs[e]) * (q.y - ys[e]) / (ys[e % n + 1] - ys[e]))
             OR EXISTS (SELECT 1 FROM generate_series(1, n) AS e                  -- an edge is near
                        CROSS JOIN LATERAL (SELECT xs[e % n + 1] - xs[e] AS dx, ys[e % n + 1] - ys[e] AS dy) AS d
                        CROSS JOIN LATERAL (SELECT greatest(0.0, least(1.0, ((q.x - xs[e]) * d.dx + (q.y - ys[e]) * d.dy)
                                                                         / (d.dx * d.dx + d.dy * d.dy))) AS t) AS f
                        WHERE (q.x - xs[e] - f.t * d.dx) ^ 2 + (q.y - ys[e] - f.t * d.dy) ^ 2 <= side * side / 2)
         ) AS u
    CROSS JOIN LATERAL healcat.merge_ranges(u.los, u.his) AS m;
END $$;

-- Sources inside the spherical polygon, nearest its centre first. Cover: healcat.polygon_cover.
CREATE OR REPLACE FUNCTION healcat.polygon_search(vertices_deg float8[], release_name text DEFAULT NULL)
RETURNS TABLE (source_id bigint, release text, object_id text, ra float8, "dec" float8, distance_arcsec float8)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    p record;
    c record;
    rel integer;
BEGIN
    p := healcat.polygon_prepare(vertices_deg);
    rel := healcat.release_id_of('polygon', release_name);
    c := healcat.polygon_cover(p.frame, p.xs, p.ys);
    RETURN QUERY SELECT * FROM healcat.polygon_in_ranges(c.lo, c.hi, rel, vertices_deg);
END $$;

DROP FUNCTION healcat.plane_polygon_contains(float8, float8, float8[], float8[]);
DROP FUNCTION healcat.gnomonic(float8, float8, float8, float8);

-- '...' around text, its first 80 characters only: errors quote input, never kilobytes of it.
CREATE FUNCTION healcat.quoted_short(input text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT quote_literal(CASE WHEN length(input) <= 80 THEN input ELSE left(input, 80) || '...' END)
$$;

CREATE OR REPLACE FUNCTION healcat.moc_ranges(moc text, OUT lo bigint[], OUT hi bigint[])
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    tok text;
    m text[];
    cur_order integer;
    last text;
    beyond boolean;
    los bigint[] := '{}';
    his bigint[] := '{}';
    cells json;
    kv record;
BEGIN
    IF moc IS NULL OR btrim(moc, E' \t\r\n\f') = '' THEN
        RAISE EXCEPTION 'moc: the MOC must not be NULL or empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF btrim(moc, E' \t\r\n\f') LIKE '{%' THEN                            -- JSON: {"order": [pix, ...], ...}
        BEGIN
            cells := moc::json;                              -- json, not jsonb: numbers as written
        EXCEPTION WHEN invalid_text_representation THEN
            RAISE EXCEPTION 'moc: not valid JSON: %', left(btrim(moc, E' \t\r\n\f'), 80) USING ERRCODE = 'invalid_parameter_value';
        END;
        moc := '';
        FOR kv IN SELECT e.key, e.value FROM json_each(cells) AS e LOOP
            IF kv.key !~ '^[0-9]+$' OR json_typeof(kv.value) <> 'array'
               OR EXISTS (SELECT 1 FROM json_array_elements(kv.value) AS v
                          WHERE json_typeof(v) <> 'number' OR v::text !~ '^[0-9]+$') THEN
                RAISE EXCEPTION 'moc: a JSON MOC maps orders to lists of pixels (integers from 0); order % holds '
                    'something else', healcat.quoted_short(kv.key) USING ERRCODE = 'invalid_parameter_value';
            END IF;
            moc := moc || ' ' || kv.key || '/' || coalesce((SELECT string_agg(v::text, ' ')
                                                            FROM json_array_elements(kv.value) AS v), '');
        END LOOP;
    END IF;
    FOREACH tok IN ARRAY regexp_split_to_array(btrim(moc, E' \t\r\n\f'), '[\s,]+') LOOP
        CONTINUE WHEN tok = '';                              -- '{}' holds no token
        m := regexp_match(tok, '^(?:([0-9]+)/)?(?:([0-9]+)(?:-([0-9]+))?)?$');
        IF m IS NULL OR (m[1] IS NULL AND m[2] IS NULL) THEN
            RAISE EXCEPTION 'moc: cannot read % (expected order/pix, order/pix-pix or pix)', healcat.quoted_short(tok)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF m[1] IS NOT NULL THEN
            IF length(m[1]) > 2 OR m[1]::integer > 29 THEN
                RAISE EXCEPTION 'moc: order must be in 0..29, got % in %', left(m[1], 80), healcat.quoted_short(tok)
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            cur_order := m[1]::integer;
        ELSIF cur_order IS NULL THEN
            RAISE EXCEPTION 'moc: % comes before any order/', healcat.quoted_short(tok)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        CONTINUE WHEN m[2] IS NULL;                          -- 'order/' with no cells
        last := coalesce(m[3], m[2]);
        IF length(m[2]) > 19 OR length(last) > 19 THEN       -- beyond bigint: no pixel of any order
            beyond := true;
        ELSE
            beyond := last::numeric < m[2]::numeric OR last::numeric >= 12 * (1::bigint << (2 * cur_order));
        END IF;
        IF beyond THEN
            RAISE EXCEPTION 'moc: cells % are not pixels of order % (0..%)', healcat.quoted_short(tok), cur_order,
                12 * (1::bigint << (2 * cur_order)) - 1 USING ERRCODE = 'invalid_parameter_value';
        END IF;
        los := los || (m[2]::bigint << (2 * (29 - cur_order)));
        his := his || ((last::bigint + 1) << (2 * (29 - cur_order)));
    END LOOP;
    IF cardinality(los) = 0 THEN
        RAISE EXCEPTION 'moc: the MOC covers no cells' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT r.lo, r.hi INTO lo, hi FROM healcat.merge_ranges(los, his) AS r;
END $$;
