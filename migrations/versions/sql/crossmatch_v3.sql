-- crossmatch_v3.sql -- (migration 0038) change it in a new migration with _v4 definitions rather than
-- by editing this file.
--
--   healcat.pm_propagate(ra, dec, pmra, pmdec, dt_yr)   crossmatch_v2.sql's; a non-finite argument (NaN,
--       +-Infinity) or a Dec outside [-90, 90] is a 22023 error naming it: NaN RA or proper motion came
--       back as RA 0 (wrap_ra_deg's NaN), Dec 95 was moved as if it were a position. NULL is still
--       allowed where it was (NULL proper motions or dt_yr: the position unchanged; a NULL position
--       gives NULL). The test is a plain SQL expression, so the function is still inlined; the
--       raising helper is only called for a bad row. Its cost, 1,000,000 rows through pm_propagate
--       (sum of ra_deg, no parallel workers, best of 3, load 1.5, one-off): v2 2.06-2.10 s, with the
--       test only 2.17 s, as here 2.23 s.
--   healcat.pm_propagate_refuse(...)                    new: that error.
--   healcat.xmatch_pm_pad_arcsec(rel, epoch_yr)         crossmatch_v2.sql's, over the releases the
--       cross-match reads (healcat.release_scope: with none named, the published ones): it took every
--       release's, so a fast star of a superseded release, which the cross-match no longer reads,
--       widened every input row's search (or made a distant epoch an error).
--
-- Executed through sqlalchemy.text(): never a colon directly followed by a word character.

CREATE FUNCTION healcat.pm_propagate_refuse(ra float8, "dec" float8, pmra_masyr float8, pmdec_masyr float8,
                                            dt_yr float8)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    arg text;
    value float8;
BEGIN
    SELECT a.name, a.value INTO arg, value
    FROM (VALUES (1, 'ra', ra), (2, 'dec', "dec"), (3, 'pmra_masyr', pmra_masyr), (4, 'pmdec_masyr', pmdec_masyr),
                 (5, 'dt_yr', dt_yr)) AS a(i, name, value)
    WHERE a.value IN ('NaN', 'Infinity', '-Infinity') OR (a.i = 2 AND NOT a.value BETWEEN -90 AND 90)
    ORDER BY a.i LIMIT 1;
    IF arg = 'dec' AND value > '-Infinity' AND value < 'Infinity' THEN
        RAISE EXCEPTION 'pm_propagate: dec must be in [-90, 90], got %', value USING ERRCODE = 'invalid_parameter_value';
    ELSIF arg IS NOT NULL THEN
        RAISE EXCEPTION 'pm_propagate: % must be a finite number, got %', arg, value
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN true;
END $$;

COMMENT ON FUNCTION healcat.pm_propagate_refuse(float8, float8, float8, float8, float8) IS
    'The 22023 error naming pm_propagate''s first bad argument (non-finite, or a Dec outside [-90, 90]); true when there is none.';

-- (ra, dec) [deg] moved by a proper motion (pmra_masyr = mu_alpha * cos(dec), pmdec_masyr [mas/yr])
-- over dt_yr years: the direction of p + dt * (pmra e_ra + pmdec e_dec), i.e. uniform motion along
-- a straight line in space with no radial velocity (what astropy's apply_space_motion does for a
-- star without parallax, to well under a microarcsecond over centuries). NULL proper motions or dt:
-- the position unchanged. A non-finite argument or a Dec outside [-90, 90]: a 22023 error naming
-- it. Inlined into the caller's query.
CREATE OR REPLACE FUNCTION healcat.pm_propagate(ra float8, "dec" float8, pmra_masyr float8, pmdec_masyr float8,
                                                dt_yr float8)
RETURNS TABLE (ra_deg float8, dec_deg float8)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN v.moves THEN healcat.wrap_ra_deg(degrees(atan2(v.y, v.x))) ELSE $1 END,
           CASE WHEN v.moves THEN degrees(atan2(v.z, sqrt(v.x * v.x + v.y * v.y))) ELSE $2 END
    FROM (SELECT t.moves,
                 cos(t.d) * cos(t.a) - t.ma * sin(t.a) - t.md * sin(t.d) * cos(t.a) AS x,
                 cos(t.d) * sin(t.a) + t.ma * cos(t.a) - t.md * sin(t.d) * sin(t.a) AS y,
                 sin(t.d) + t.md * cos(t.d) AS z
          -- (a bad argument as NULL here, so that nothing is computed from it before the test below raises)
          FROM (SELECT radians(CASE WHEN $1 > '-Infinity'::float8 AND $1 < 'Infinity'::float8 THEN $1 END) AS a,
                       radians(CASE WHEN $2 >= -90.0::float8 AND $2 <= 90.0::float8 THEN $2 END) AS d,
                       coalesce(radians($3 * $5 / 3600000.0), 0) AS ma, coalesce(radians($4 * $5 / 3600000.0), 0) AS md,
                       $3 IS NOT NULL AND $4 IS NOT NULL AND $5 IS NOT NULL AND $5 <> 0 AS moves) AS t) AS v
    WHERE CASE WHEN ($1 IS NULL OR ($1 > '-Infinity'::float8 AND $1 < 'Infinity'::float8))
                AND ($2 IS NULL OR ($2 >= -90.0::float8 AND $2 <= 90.0::float8))
                AND ($3 IS NULL OR ($3 > '-Infinity'::float8 AND $3 < 'Infinity'::float8))
                AND ($4 IS NULL OR ($4 > '-Infinity'::float8 AND $4 < 'Infinity'::float8))
                AND ($5 IS NULL OR ($5 > '-Infinity'::float8 AND $5 < 'Infinity'::float8))
               THEN true ELSE healcat.pm_propagate_refuse($1, $2, $3, $4, $5) END
$$;


-- The largest angle [arcsec] a source of the releases a cross-match reads (release_scope: rel, or the
-- published releases when NULL) moves between its ref_epoch_yr and epoch_yr; 0 when none has a
-- proper motion or epoch_yr is NULL.
CREATE OR REPLACE FUNCTION healcat.xmatch_pm_pad_arcsec(rel integer, epoch_yr float8)
RETURNS float8 LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(max(sqrt(s.pmra_masyr ^ 2 + s.pmdec_masyr ^ 2) * abs($2 - s.ref_epoch_yr)) / 1000.0, 0)
    FROM healcat.source AS s
    WHERE $2 IS NOT NULL AND s.release_id = ANY(healcat.release_scope($1)) AND s.pmra_masyr IS NOT NULL
$$;

COMMENT ON FUNCTION healcat.xmatch_pm_pad_arcsec(integer, float8) IS
    'Largest |proper motion| * |epoch_yr - ref_epoch_yr| [arcsec] of the sources of a release (the published releases if NULL).';
