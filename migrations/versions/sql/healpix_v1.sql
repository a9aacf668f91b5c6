-- healpix_v1.sql -- HEALPix (NESTED scheme) in plain SQL / PL/pgSQL, schema healcat.
--
-- No extensions; runs on PostgreSQL 15..18.  The schema healcat must exist.
--
--   healcat.hpx_ang2pix(order, ra_deg, dec_deg)        -> nested pixel index
--   healcat.hpx_pix2ang(order, ipix) -> (ra_deg, dec_deg) pixel centre
--   healcat.hpx_cone_cover(ra_deg, dec_deg, radius_deg) -> ranges [lo, hi) of
--       order-29 nested indices whose union contains every order-29 pixel that
--       intersects the cone (a superset; recheck with healcat.angdist_deg)
--   healcat.angdist_deg(ra1, dec1, ra2, dec2)          -> great-circle distance
--
-- hpx_ang2pix reproduces healpy.ang2pix(2**order, ra, dec, nest=True,
-- lonlat=True) bit for bit: it performs the same floating-point operations in
-- the same order as healpix_cxx (T_Healpix_Base::ang2pix / loc2pix) on the
-- angles healpy derives (theta = pi/2 - radians(dec), phi = radians(ra)).
-- Pixel layout constants (jrll, jpll) are those of healpix_cxx.
--
-- Note for whoever edits this file: it is executed by alembic through
-- sqlalchemy.text(), so never write a colon directly followed by a word
-- character (that would be parsed as a bind parameter); '::type' and ':=' are fine.


-- ---------------------------------------------------------------------------
-- Great-circle distance in degrees (haversine, numerically stable for tiny
-- angles; the least(1, ...) clamp guards asin against rounding above 1, and
-- the "+ 0 * (...)" term keeps a NULL or NaN argument NULL or NaN instead of
-- letting least() turn it into 180 deg).
-- A single SQL expression, so the planner inlines it.
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION healcat.angdist_deg(ra1 float8, dec1 float8,  -- [deg]
                                               ra2 float8, dec2 float8)
RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT degrees(2.0 * asin(least(1.0::float8, sqrt(
                 power(sin(radians(dec2 - dec1) / 2.0), 2)
               + cos(radians(dec1)) * cos(radians(dec2))
                 * power(sin(radians(ra2 - ra1) / 2.0), 2)))
               + 0.0 * (ra1 + dec1 + ra2 + dec2)))
$$;

COMMENT ON FUNCTION healcat.angdist_deg(float8, float8, float8, float8) IS
    'Great-circle distance [deg] between (ra1, dec1) and (ra2, dec2), haversine formula.';


-- ---------------------------------------------------------------------------
-- Nested pixel index of the point (ra_deg, dec_deg) at the given order
-- (nside = 2^order, order 0..29).  Bit-identical to healpy (see header).
-- ra_deg may be any finite value (it is reduced modulo 360 deg exactly as
-- healpix_cxx does, so ra 360 gives the pixel of ra 0); |dec_deg| <= 90.
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION healcat.hpx_ang2pix("order" int, ra_deg float8, dec_deg float8)
RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    k          CONSTANT int    := $1;
    twothird   CONSTANT float8 := 2.0::float8 / 3.0::float8;
    inv_halfpi CONSTANT float8 := '0.6366197723675813430755350534900574'::float8;
    twopi      CONSTANT float8 := 2.0::float8 * pi();                 -- 6.283185307179586
    twopi_hi   CONSTANT float8 := '6.283185362815857'::float8;        -- Veltkamp split of twopi
    twopi_lo   CONSTANT float8 := '-5.563627070159782e-08'::float8;   -- twopi - twopi_hi (exact)
    nside      bigint;
    nside_f    float8;
    theta_rad  float8;
    phi_rad    float8;
    z          float8;
    za         float8;
    sth        float8 := 0;
    have_sth   boolean;
    tt         float8;                 -- phi in units of pi/2, reduced to [0, 4)
    tp         float8;
    a          float8;
    q          float8;
    tmp        float8;
    temp1      float8;
    temp2      float8;
    jp         bigint;
    jm         bigint;
    ifp        bigint;
    ifm        bigint;
    ntt        int;
    face       int;
    ix         bigint;
    iy         bigint;
BEGIN
    IF k < 0 OR k > 29 THEN
        RAISE EXCEPTION 'hpx_ang2pix: order must be in 0..29, got %', k;
    END IF;
    IF dec_deg = 'NaN'::float8 OR dec_deg < -90 OR dec_deg > 90 THEN
        RAISE EXCEPTION 'hpx_ang2pix: dec_deg must be in [-90, 90], got %', dec_deg;
    END IF;
    IF ra_deg = 'NaN'::float8 OR abs(ra_deg) > 1e9 THEN
        RAISE EXCEPTION 'hpx_ang2pix: ra_deg must be finite and within +-1e9, got %', ra_deg;
    END IF;

    nside   := 1::bigint << k;
    nside_f := nside::float8;
    -- healpy: theta = np.pi/2 - np.radians(lat), phi = np.radians(lon)
    -- (|angle| < 1e-300 deg is taken as 0: PostgreSQL raises an error when a
    -- float8 product underflows to zero, and healpy's result is the same)
    theta_rad := pi() / 2.0::float8
                 - CASE WHEN abs(dec_deg) < 1e-300 THEN 0.0::float8 ELSE dec_deg * (pi() / 180.0::float8) END;
    phi_rad   := CASE WHEN abs(ra_deg) < 1e-300 THEN 0.0::float8 ELSE ra_deg * (pi() / 180.0::float8) END;

    -- T_Healpix_Base::ang2pix: use sin(theta) near the poles
    have_sth := theta_rad < 0.01::float8 OR theta_rad > 3.14159::float8 - 0.01::float8;
    z := cos(theta_rad);
    IF have_sth THEN
        sth := sin(theta_rad);
    END IF;
    za := abs(z);

    -- tt = fmodulo(phi, 2*pi) * inv_halfpi, in [0, 4] (healpix_cxx 3.5+).
    -- fmod(|phi|, 2pi) is computed exactly: q*twopi is split as q*twopi_hi +
    -- q*twopi_lo, both products exact (twopi_hi has 26 significant bits, q < 2^26).
    a := abs(phi_rad);
    IF a >= twopi THEN
        q := trunc(a / twopi);
        a := (a - q * twopi_hi) - q * twopi_lo;
        IF a < 0 THEN
            a := a + twopi;
        ELSIF a >= twopi THEN
            a := a - twopi;
        END IF;
    END IF;
    IF phi_rad >= 0 THEN
        tt := a;
    ELSE
        tt := twopi - a;                     -- fmod(phi, 2pi) + 2pi
        IF tt = twopi THEN
            tt := 0.0::float8;
        END IF;
    END IF;
    tt := tt * inv_halfpi;

    IF za <= twothird THEN
        -- equatorial region
        temp1 := nside_f * (0.5::float8 + tt);
        temp2 := nside_f * (z * 0.75::float8);
        jp := trunc(temp1 - temp2)::bigint;     -- index of ascending edge line
        jm := trunc(temp1 + temp2)::bigint;     -- index of descending edge line
        ifp := jp >> k;
        ifm := jm >> k;
        face := CASE WHEN ifp = ifm THEN (ifp | 4)::int
                     WHEN ifp < ifm THEN ifp::int
                     ELSE (ifm + 8)::int END;
        ix := jm & (nside - 1);
        iy := nside - (jp & (nside - 1)) - 1;
    ELSE
        -- polar caps
        ntt := least(3, trunc(tt)::int);
        tp := tt - ntt;
        IF za < 0.99::float8 OR NOT have_sth THEN
            tmp := nside_f * sqrt(3.0::float8 * (1.0::float8 - za));
        ELSE
            tmp := nside_f * sth / sqrt((1.0::float8 + za) / 3.0::float8);
        END IF;
        jp := least(trunc(tp * tmp)::bigint, nside - 1);                  -- increasing edge line
        jm := least(trunc((1.0::float8 - tp) * tmp)::bigint, nside - 1);  -- decreasing edge line
        IF z > 0 THEN
            face := ntt;
            ix := nside - jm - 1;
            iy := nside - jp - 1;
        ELSE
            face := ntt + 8;
            ix := jp;
            iy := jm;
        END IF;
    END IF;

    -- xyf2nest: interleave the bits of ix (even bits) and iy (odd bits)
    -- masks 0x0000FFFF0000FFFF, 0x00FF00FF00FF00FF, 0x0F0F0F0F0F0F0F0F,
    --       0x3333333333333333, 0x5555555555555555 (decimal: PG 15 has no hex literals)
    ix := (ix | (ix << 16)) & 281470681808895;
    ix := (ix | (ix << 8))  & 71777214294589695;
    ix := (ix | (ix << 4))  & 1085102592571150095;
    ix := (ix | (ix << 2))  & 3689348814741910323;
    ix := (ix | (ix << 1))  & 6148914691236517205;
    iy := (iy | (iy << 16)) & 281470681808895;
    iy := (iy | (iy << 8))  & 71777214294589695;
    iy := (iy | (iy << 4))  & 1085102592571150095;
    iy := (iy | (iy << 2))  & 3689348814741910323;
    iy := (iy | (iy << 1))  & 6148914691236517205;

    RETURN (face::bigint << (2 * k)) + ix + (iy << 1);
END;
$$;

COMMENT ON FUNCTION healcat.hpx_ang2pix(int, float8, float8) IS
    'NESTED HEALPix index of (ra_deg, dec_deg) at order 0..29 (nside = 2^order); identical to healpy.ang2pix(2**order, ra, dec, nest=True, lonlat=True).';


-- ---------------------------------------------------------------------------
-- Centre of nested pixel ipix at the given order, as healpy.pix2ang(...,
-- nest=True, lonlat=True) (healpix_cxx pix2loc): ra_deg in [0, 360).
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION healcat.hpx_pix2ang("order" int, ipix bigint,
                                              OUT ra_deg float8, OUT dec_deg float8)
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    k      CONSTANT int := $1;
    jrll   CONSTANT int[] := '{2,2,2,2,3,3,3,3,4,4,4,4}';
    jpll   CONSTANT int[] := '{1,3,5,7,0,2,4,6,1,3,5,7}';
    halfpi CONSTANT float8 := pi() / 2.0::float8;
    nside  bigint;
    npface bigint;
    fact2  float8;
    fact1  float8;
    face   int;
    ix     bigint;
    iy     bigint;
    jr     bigint;
    nr     bigint;
    t      bigint;
    tmp    float8;
    z      float8;
    sth    float8;
    have_sth boolean := false;
    phi_rad   float8;
    theta_rad float8;
BEGIN
    IF k < 0 OR k > 29 THEN
        RAISE EXCEPTION 'hpx_pix2ang: order must be in 0..29, got %', k;
    END IF;
    nside  := 1::bigint << k;
    npface := nside * nside;
    IF ipix < 0 OR ipix >= 12 * npface THEN
        RAISE EXCEPTION 'hpx_pix2ang: ipix must be in [0, 12*4^%), got %', k, ipix;
    END IF;
    fact2 := 4.0::float8 / (12 * npface)::float8;
    fact1 := (nside << 1)::float8 * fact2;

    -- nest2xyf: de-interleave even bits (ix) and odd bits (iy)
    face := (ipix >> (2 * k))::int;
    ix := ipix & (npface - 1);
    iy := ix >> 1;
    ix := ix & 6148914691236517205;
    ix := (ix | (ix >> 1))  & 3689348814741910323;
    ix := (ix | (ix >> 2))  & 1085102592571150095;
    ix := (ix | (ix >> 4))  & 71777214294589695;
    ix := (ix | (ix >> 8))  & 281470681808895;
    ix := (ix | (ix >> 16)) & 4294967295;
    iy := iy & 6148914691236517205;
    iy := (iy | (iy >> 1))  & 3689348814741910323;
    iy := (iy | (iy >> 2))  & 1085102592571150095;
    iy := (iy | (iy >> 4))  & 71777214294589695;
    iy := (iy | (iy >> 8))  & 281470681808895;
    iy := (iy | (iy >> 16)) & 4294967295;

    jr := (jrll[face + 1]::bigint << k) - ix - iy - 1;   -- ring index, 1 .. 4*nside-1
    IF jr < nside THEN                       -- north polar cap
        nr := jr;
        tmp := (nr * nr)::float8 * fact2;
        z := 1.0::float8 - tmp;
        IF z > 0.99::float8 THEN
            sth := sqrt(tmp * (2.0::float8 - tmp));
            have_sth := true;
        END IF;
    ELSIF jr > 3 * nside THEN                -- south polar cap
        nr := 4 * nside - jr;
        tmp := (nr * nr)::float8 * fact2;
        z := tmp - 1.0::float8;
        IF z < -0.99::float8 THEN
            sth := sqrt(tmp * (2.0::float8 - tmp));
            have_sth := true;
        END IF;
    ELSE                                     -- equatorial belt
        nr := nside;
        z := (2 * nside - jr)::float8 * fact1;
    END IF;

    t := jpll[face + 1]::bigint * nr + ix - iy;
    IF t < 0 THEN
        t := t + 8 * nr;
    END IF;
    IF nr = nside THEN
        phi_rad := 0.75::float8 * halfpi * t::float8 * fact1;
    ELSE
        phi_rad := (0.5::float8 * halfpi * t::float8) / nr::float8;
    END IF;
    theta_rad := CASE WHEN have_sth THEN atan2(sth, z) ELSE acos(z) END;

    -- healpy: lon = np.degrees(phi), lat = 90 - np.degrees(theta)
    ra_deg  := phi_rad * (180.0::float8 / pi());
    dec_deg := 90.0::float8 - theta_rad * (180.0::float8 / pi());
END;
$$;

COMMENT ON FUNCTION healcat.hpx_pix2ang(int, bigint) IS
    'Centre (ra_deg, dec_deg) of NESTED HEALPix pixel ipix at order 0..29, as healpy.pix2ang(2**order, ipix, nest=True, lonlat=True).';


-- ---------------------------------------------------------------------------
-- Cone cover: sorted, disjoint, coalesced half-open ranges [lo, hi) of
-- order-29 nested indices whose union contains every order-29 pixel that
-- intersects the cone of radius radius_deg around (ra_deg, dec_deg).
--
-- Algorithm: a top-down descent of the pixel tree in one recursive query,
-- one level per iteration, set-wise.  For a pixel at order k with centre c,
-- every point of the pixel lies within maxrad_rad(k) of c, where maxrad_rad
-- is healpy.max_pixrad(2^k) widened by a safety margin
-- (*1.0001 + 1e-12 rad, far above the ~1e-15 rad rounding of the arithmetic
-- here and of healpy's own ang2pix).  With d = distance(cone centre, c):
--   d > r + maxrad   -> the pixel misses the cone: dropped
--   d <= r - maxrad  -> the pixel lies inside the cone: emitted whole
--   otherwise        -> refined into its 4 children, except at the stop order
--                       kstop, where it is emitted whole.
-- kstop is the first order whose maxrad is <= r/4 (at most 29); the emitted
-- boundary pixels then stick out of the cone by at most 2*maxrad <= r/2, so
-- the covered area stays within ~2.25x of the cone's, with a few dozen ranges.
-- Distances are compared as squared chords |u - v|^2 between unit vectors
-- (no cancellation for tiny angles).  Dropping is the only step that could
-- lose pixels and it is guarded by the margin above; near the antipode
-- (r + maxrad > pi - 1e-3, where chords are ill-conditioned) nothing is
-- dropped.
-- Each LATERAL stage ends in OFFSET 0 so the planner does not flatten it
-- (flattening would re-evaluate shared subexpressions several times), and
-- enable_memoize is off because Memoize nodes over these per-row stages never
-- get a cache hit and doubled the run time.
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION healcat.hpx_cone_cover(ra_deg float8, dec_deg float8, radius_deg float8)
RETURNS TABLE(lo bigint, hi bigint)
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE ROWS 20
SET enable_memoize = off
AS $$
DECLARE
    -- healpy.max_pixrad(2**k) [rad], k = 0..29 (element k+1)
    c_max_pixrad_rad CONSTANT float8[] := '{
        0.8410686705679302, 0.48146047147606696, 0.2543334045529589,
        0.13042543553450464, 0.06601476143251347, 0.033206666811769106,
        0.01665302521141051, 0.00833892084368468, 0.004172560737300081,
        0.002087055235497685, 0.0010437213083341575, 0.0005219090735712368,
        0.0002609666412327938, 0.00013048634667784872, 6.5243929847981e-05,
        3.262215405052199e-05, 1.6311124306785717e-05, 8.155573973774314e-06,
        4.0777899419484465e-06, 2.0388957098303583e-06, 1.0194480394961426e-06,
        5.097240660559357e-07, 2.5486204450043484e-07, 1.2743102524606507e-07,
        6.371551334296504e-08, 3.185775697338972e-08, 1.5928878417023963e-08,
        7.964439278182877e-09, 3.98221954619691e-09, 1.9911098427693513e-09}';
    c_npix29 CONSTANT bigint := 12 * (1::bigint << 58);
    v_r_rad   float8;
    v_ra_rad  float8;
    v_dec_rad float8;
    v_cx      float8;
    v_cy      float8;
    v_cz      float8;
    v_kstop   int := 29;
    v_keep2   float8[];   -- per order: keep a pixel iff chord^2 <= v_keep2[k+1]
    v_inner2  float8[];   -- per order: pixel inside the cone iff chord^2 <= v_inner2[k+1]
BEGIN
    IF dec_deg = 'NaN'::float8 OR dec_deg < -90 OR dec_deg > 90 THEN
        RAISE EXCEPTION 'hpx_cone_cover: dec_deg must be in [-90, 90], got %', dec_deg;
    END IF;
    IF ra_deg = 'NaN'::float8 OR ra_deg = 'Infinity'::float8 OR ra_deg = '-Infinity'::float8 THEN
        RAISE EXCEPTION 'hpx_cone_cover: ra_deg must be finite, got %', ra_deg;
    END IF;
    IF radius_deg = 'NaN'::float8 OR radius_deg < 0 THEN
        RAISE EXCEPTION 'hpx_cone_cover: radius_deg must be >= 0, got %', radius_deg;
    END IF;

    IF radius_deg >= 180 THEN                -- whole sky
        RETURN QUERY SELECT 0::bigint, c_npix29;
        RETURN;
    END IF;

    -- (|angle| < 1e-300 deg is taken as 0: float8 underflow raises an error in PostgreSQL)
    v_r_rad   := CASE WHEN radius_deg < 1e-300 THEN 0.0::float8 ELSE radians(radius_deg) END;
    v_ra_rad  := CASE WHEN abs(ra_deg) < 1e-300 THEN 0.0::float8 ELSE radians(ra_deg) END;
    v_dec_rad := CASE WHEN abs(dec_deg) < 1e-300 THEN 0.0::float8 ELSE radians(dec_deg) END;
    v_cx := cos(v_dec_rad) * cos(v_ra_rad);
    v_cy := cos(v_dec_rad) * sin(v_ra_rad);
    v_cz := sin(v_dec_rad);

    FOR k IN 0..29 LOOP
        IF c_max_pixrad_rad[k + 1] <= 0.25 * v_r_rad THEN
            v_kstop := k;
            EXIT;
        END IF;
    END LOOP;

    -- per-order squared-chord thresholds
    SELECT array_agg(CASE WHEN v_r_rad + m.m_rad > pi() - 1e-3 THEN 'Infinity'::float8
                          ELSE power(2.0 * sin((v_r_rad + m.m_rad) / 2.0), 2) END ORDER BY m.k),
           array_agg(CASE WHEN v_r_rad - m.m_rad > 0 THEN power(2.0 * sin((v_r_rad - m.m_rad) / 2.0), 2)
                          ELSE -1.0::float8 END ORDER BY m.k)
      INTO v_keep2, v_inner2
      FROM (SELECT g.k, c_max_pixrad_rad[g.k + 1] * 1.0001 + 1e-12 AS m_rad
              FROM generate_series(0, v_kstop) AS g(k)) AS m;

    RETURN QUERY
    WITH RECURSIVE tree(k, p, ix, iy, emit) AS (
        -- the 12 base pixels are always refined (orders >= 1 are tested)
        SELECT 0, b.p, 0::bigint, 0::bigint, false
          FROM generate_series(0::bigint, 11::bigint) AS b(p)
      UNION ALL
        SELECT g.k, g.p, g.ix, g.iy, (g.d2 <= v_inner2[g.k + 1] OR g.k = v_kstop)
        FROM (
            SELECT c.k, c.p, c.ix, c.iy,
                   s.dx * s.dx + s.dy * s.dy + s.dz * s.dz AS d2
            FROM tree
            CROSS JOIN (VALUES (0), (1), (2), (3)) AS d(c)
            -- child at order k: nested index p, face-local coordinates (ix, iy);
            -- ring index jr (1 .. 4*ns-1), ns = nside, dxy = ix - iy (healpix pix2loc)
            CROSS JOIN LATERAL (
                SELECT tree.k + 1 AS k,
                       4 * tree.p + d.c AS p,
                       2 * tree.ix + (d.c & 1) AS ix,
                       2 * tree.iy + (d.c >> 1) AS iy,
                       2::bigint << tree.k AS ns,
                       (('{2,2,2,2,3,3,3,3,4,4,4,4}'::bigint[])[(tree.p >> (2 * tree.k)) + 1] << (tree.k + 1))
                           - (2 * tree.ix + (d.c & 1)) - (2 * tree.iy + (d.c >> 1)) - 1 AS jr,
                       ('{1,3,5,7,0,2,4,6,1,3,5,7}'::bigint[])[(tree.p >> (2 * tree.k)) + 1] AS jp0,
                       2 * (tree.ix - tree.iy) + (d.c & 1) - (d.c >> 1) AS dxy
                OFFSET 0) AS c
            -- nr = pixels per ring quarter (= jr in the north cap, 4*ns-jr in the south cap,
            -- ns in the belt); t = in-ring index jp0*nr + dxy (mod 8*nr);
            -- tmp = 1 - |z| in the caps; z_belt = z in the belt
            CROSS JOIN LATERAL (
                SELECT CASE WHEN c.jr < c.ns THEN 1.0::float8
                            WHEN c.jr > 3 * c.ns THEN -1.0::float8
                            ELSE 0.0::float8 END AS zone,
                       power(least(c.jr, 4 * c.ns - c.jr, c.ns)::float8, 2) / (3 * c.ns * c.ns)::float8 AS tmp,
                       (2 * c.ns - c.jr)::float8 / (1.5::float8 * c.ns::float8) AS z_belt,
                       ((c.jp0 * least(c.jr, 4 * c.ns - c.jr, c.ns) + c.dxy + 8 * least(c.jr, 4 * c.ns - c.jr, c.ns))
                           % (8 * least(c.jr, 4 * c.ns - c.jr, c.ns)))::float8
                         / least(c.jr, 4 * c.ns - c.jr, c.ns)::float8 AS t_nr
                OFFSET 0) AS q
            -- pixel centre (z = cos theta, sth = sin theta, phi) minus the cone centre
            CROSS JOIN LATERAL (
                SELECT sc.sth * cos(sc.phi_rad) - v_cx AS dx,
                       sc.sth * sin(sc.phi_rad) - v_cy AS dy,
                       sc.z - v_cz AS dz
                FROM (SELECT CASE WHEN q.zone = 0 THEN q.z_belt ELSE q.zone * (1.0::float8 - q.tmp) END AS z,
                             CASE WHEN q.zone = 0 THEN sqrt(1.0::float8 - q.z_belt * q.z_belt)
                                  ELSE sqrt(q.tmp * (2.0::float8 - q.tmp)) END AS sth,
                             (pi() / 4.0::float8) * q.t_nr AS phi_rad
                      OFFSET 0) AS sc
                OFFSET 0) AS s
            WHERE NOT tree.emit
        ) AS g
        WHERE g.d2 <= v_keep2[g.k + 1]
    )
    SELECT min(e.r_lo), max(e.r_hi)
      FROM (SELECT b.r_lo, b.r_hi, sum(b.brk) OVER (ORDER BY b.r_lo) AS grp
              FROM (SELECT x.r_lo, x.r_hi,
                           CASE WHEN x.r_lo = lag(x.r_hi) OVER (ORDER BY x.r_lo) THEN 0 ELSE 1 END AS brk
                      FROM (SELECT tree.p << (2 * (29 - tree.k)) AS r_lo,
                                   (tree.p + 1) << (2 * (29 - tree.k)) AS r_hi
                              FROM tree WHERE tree.emit) AS x) AS b) AS e
     GROUP BY e.grp
     ORDER BY 1;
END;
$$;

COMMENT ON FUNCTION healcat.hpx_cone_cover(float8, float8, float8) IS
    'Sorted, disjoint, coalesced ranges [lo, hi) of order-29 NESTED HEALPix indices covering every pixel that intersects the cone (superset; recheck with healcat.angdist_deg).';
