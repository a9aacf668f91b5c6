-- regions_v3.sql -- tiny but valid arguments, and NaN RA (migration 0038). Change these in a new
-- migration with _v4 definitions rather than by editing this file.
--
--   healcat.wrap_ra_deg(ra_deg)                  regions_v1.sql's; NaN (and +-Infinity) give NaN: NaN
--       sorts above every number in PostgreSQL, so 'NaN' >= 360 was true and NaN came back as RA 0. An
--       RA already in [0, 360) is returned as it is, and one within 1e-300 of 0 as 0 (ra / 360
--       underflowed, an error, for |ra| < 1.8e-321).
--   healcat.check_box                            regions_v2.sql's; the box must be at least 2.77778e-304
--       deg (the cone's smallest radius, 1e-300 arcsec) wide in RA and in Dec: narrower, its cover
--       divided by the width and overflowed (box_search(0, 1e-320, 0, 1)) or underflowed.
--   healcat.check_ellipse                        regions_v2.sql's; the semi-minor axis (so both) at least
--       1e-300 arcsec, the cone's smallest radius (smaller underflowed in ellipse_foci).
--   healcat.ellipse_foci                         regions_v1.sql's; sin^2(c/2) as the product of square
--       roots (the product of two tiny sines underflowed), and c = 0 when the axes differ by less
--       than 1e-280 arcsec.
--   healcat.offset_by                            regions_v1.sql's; angles under 1e-90 deg taken as 0 (a
--       product of tiny sines underflowed: an ellipse centred at Dec 1e-170).
--   healcat.polygon_prepare                      regions_v2.sql's; vertex coordinates under 1e-90 deg,
--       and the centre's, taken as 0 (a vertex at Dec 1e-170 underflowed).
--
-- Executed through sqlalchemy.text(): never a colon directly followed by a word character.

CREATE OR REPLACE FUNCTION healcat.wrap_ra_deg(ra_deg float8)
RETURNS float8 LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN ra_deg >= 0.0 AND ra_deg < 360.0 THEN ra_deg + 0.0  -- -0.0 + 0.0 is 0.0, as in Python
                WHEN ra_deg IN ('NaN', 'Infinity', '-Infinity') THEN 'NaN'::float8
                WHEN abs(ra_deg) < 1e-300 THEN 0.0::float8
                WHEN ra_deg - 360.0 * floor(ra_deg / 360.0) >= 360.0 THEN 0.0::float8
                ELSE ra_deg - 360.0 * floor(ra_deg / 360.0) END
$$;



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
    -- the cone's smallest radius, 1e-300 arcsec, in degrees: a narrower box's cover under- or overflows
    IF healcat.box_ra_width_deg(ra_min_deg, ra_max_deg) < 1e-300::float8 / 3600.0::float8 THEN
        RAISE EXCEPTION 'box: ra_min_deg to ra_max_deg must be at least 2.77778e-304 deg wide (smaller underflows), got % to %',
            ra_min_deg, ra_max_deg USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF dec_max_deg - dec_min_deg < 1e-300::float8 / 3600.0::float8 THEN
        RAISE EXCEPTION 'box: dec_min_deg to dec_max_deg must be at least 2.77778e-304 deg high (smaller underflows), got % to %',
            dec_min_deg, dec_max_deg USING ERRCODE = 'invalid_parameter_value';
    END IF;
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
    -- the cone's smallest radius (healcat.check_radius_underflow): smaller underflowed in ellipse_foci; the
    -- semi-major axis is at least the semi-minor (the same message as catalog.search.ellipse's)
    IF semi_minor_arcsec < 1e-300 THEN
        RAISE EXCEPTION 'ellipse: semi_minor_arcsec must be at least 1e-300, got %', semi_minor_arcsec
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;


-- A focus: the point at distance c_deg from (ra_deg, dec_deg) along position angle pa_deg (east of
-- north), from unit vectors (exact at the poles, where "north" is the direction of decreasing
-- |dec| along the meridian ra_deg). Angles under 1e-90 deg are taken as 0: a product of several
-- tiny sines underflowed (an error in PostgreSQL); with them none falls below 1e-280.
CREATE OR REPLACE FUNCTION healcat.offset_by(ra_deg float8, dec_deg float8, pa_deg float8, c_deg float8,
                                             OUT ra float8, OUT "dec" float8)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT healcat.wrap_ra_deg(degrees(atan2(v.y, v.x))),
           degrees(atan2(v.z, sqrt(CASE WHEN abs(v.x) < 1e-150 THEN 0.0::float8 ELSE v.x * v.x END
                                   + CASE WHEN abs(v.y) < 1e-150 THEN 0.0::float8 ELSE v.y * v.y END)))
    FROM (SELECT cos(a.c) * cos(a.d) * cos(a.r) + sin(a.c) * (cos(a.p) * -sin(a.d) * cos(a.r) - sin(a.p) * sin(a.r)) AS x,
                 cos(a.c) * cos(a.d) * sin(a.r) + sin(a.c) * (cos(a.p) * -sin(a.d) * sin(a.r) + sin(a.p) * cos(a.r)) AS y,
                 cos(a.c) * sin(a.d) + sin(a.c) * cos(a.p) * cos(a.d) AS z
          FROM (SELECT CASE WHEN abs(ra_deg) < 1e-90 THEN 0.0::float8 ELSE radians(ra_deg) END AS r,
                       CASE WHEN abs(dec_deg) < 1e-90 THEN 0.0::float8 ELSE radians(dec_deg) END AS d,
                       CASE WHEN abs(pa_deg) < 1e-90 THEN 0.0::float8 ELSE radians(pa_deg) END AS p,
                       CASE WHEN abs(c_deg) < 1e-90 THEN 0.0::float8 ELSE radians(c_deg) END AS c) AS a) AS v
$$;


-- The ellipse's foci and its major axis 2a [deg]. c from cos c = cos a / cos b, written without
-- cancellation for tiny ellipses: sin^2(c/2) = sin((a+b)/2) sin((a-b)/2) / cos b, as the product of
-- their square roots (the product of two tiny sines underflowed); c = 0 when a - b < 1e-280 arcsec.
CREATE OR REPLACE FUNCTION healcat.ellipse_foci(ra_deg float8, dec_deg float8, semi_major_arcsec float8,
                                                semi_minor_arcsec float8, pa_deg float8,
                                                OUT ra1 float8, OUT dec1 float8, OUT ra2 float8, OUT dec2 float8,
                                                OUT major_deg float8)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT f1.ra, f1.dec, f2.ra, f2.dec, 2.0 * semi_major_arcsec / 3600.0
    FROM (SELECT CASE WHEN semi_major_arcsec - semi_minor_arcsec < 1e-280 THEN 0.0::float8
                      ELSE degrees(2.0 * asin(least(1.0::float8,
                          sqrt(sin(radians(semi_major_arcsec + semi_minor_arcsec) / 7200.0))
                          * sqrt(sin(radians(semi_major_arcsec - semi_minor_arcsec) / 7200.0))
                          / sqrt(cos(radians(semi_minor_arcsec / 3600.0)))))) END AS c_deg) AS c
    CROSS JOIN LATERAL healcat.offset_by(ra_deg, dec_deg, pa_deg, c.c_deg) AS f1
    CROSS JOIN LATERAL healcat.offset_by(ra_deg, dec_deg, pa_deg + 180.0, c.c_deg) AS f2
$$;


CREATE OR REPLACE FUNCTION healcat.polygon_prepare(vertices_deg float8[],
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
    -- (an angle under 1e-90 deg is taken as 0: products of tiny sines underflowed, an error)
    flat := ARRAY(SELECT CASE WHEN abs(u.f) < 1e-90 THEN 0.0::float8 ELSE u.f END
                  FROM unnest(vertices_deg) WITH ORDINALITY AS u(f, o) ORDER BY u.o);
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
    ra0 := CASE WHEN abs(ra0) < 1e-90 THEN 0.0::float8 ELSE ra0 END;
    dec0 := CASE WHEN abs(dec0) < 1e-90 THEN 0.0::float8 ELSE dec0 END;
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
