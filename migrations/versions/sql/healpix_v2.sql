-- healpix_v2.sql -- (migration 0038) change it in a new migration with _v3 definitions rather than by
-- editing this file.
--
--   healcat.angdist_deg(ra1, dec1, ra2, dec2)   healpix_v1.sql's haversine, its squares guarded: a
--       product that underflows raises 'value out of range: underflow' in PostgreSQL (float8
--       multiplication as well as power()), so angdist_deg(0, 0, 0, 1e-170) failed, and with it a cone,
--       nearest, ellipse or box search centred within ~1e-154 deg of a source's RA or Dec. A half-angle
--       sine under 1e-140 deg (Dec) or 1e-100 deg (RA) counts as 0: distances below 1e-100 deg come out
--       0, every other distance as before (the guarded terms are below 1e-200 of any term kept).
--
-- Executed through sqlalchemy.text(): never a colon directly followed by a word character.

CREATE OR REPLACE FUNCTION healcat.angdist_deg(ra1 float8, dec1 float8,  -- [deg]
                                               ra2 float8, dec2 float8)
RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT degrees(2.0 * asin(least(1.0::float8, sqrt(
                 CASE WHEN abs(dec2 - dec1) < 1e-140 THEN 0.0::float8
                      ELSE sin(radians(dec2 - dec1) / 2.0) * sin(radians(dec2 - dec1) / 2.0) END
               + cos(CASE WHEN abs(dec1) < 1e-300 THEN 0.0::float8 ELSE radians(dec1) END)
                 * cos(CASE WHEN abs(dec2) < 1e-300 THEN 0.0::float8 ELSE radians(dec2) END)
                 * CASE WHEN abs(ra2 - ra1) < 1e-100 THEN 0.0::float8
                        ELSE sin(radians(ra2 - ra1) / 2.0) * sin(radians(ra2 - ra1) / 2.0) END))
               + 0.0 * (ra1 + dec1 + ra2 + dec2)))
$$;
