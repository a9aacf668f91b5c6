-- xmatch_v6.sql -- (migration 0041) change these in a new migration with _v7 definitions rather than
-- by editing this file.
--
--   healcat.xmatch_slow_pad_arcsec(radius, pad)   xmatch_v5.sql's, and at most 1800 arcsec - radius
--       (never below 0): the search around each row stays within the cover's 1800 arcsec, and what
--       moves further is matched as a fast mover. With v5's, a radius between 900 and 1800 arcsec at
--       an epoch with a fast mover was refused ("plus the largest proper-motion displacement exceeds
--       1800 arcsec"), though the fast movers need no pad.
--   healcat.xmatch_pm_pad_arcsec(rel, epoch)       crossmatch_v3.sql's, through
--       healcat.pm_displacement_arcsec (the expression that splits the sources; it wrote its own).
--
-- Executed through sqlalchemy.text(): never a colon directly followed by a word character.

CREATE OR REPLACE FUNCTION healcat.xmatch_slow_pad_arcsec(radius_arcsec float8, pad_arcsec float8)
RETURNS float8 LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT greatest(0.0, least($2, greatest($1, 10.0), 1800.0 - $1 - 1e-6))
$$;

COMMENT ON FUNCTION healcat.xmatch_slow_pad_arcsec(float8, float8) IS
    'Pad [arcsec] of a cross-match''s search around each input row at an epoch: the largest displacement, at most the radius (and at least 10 arcsec) and at most 1800 arcsec - radius; sources moving further are matched apart.';


CREATE OR REPLACE FUNCTION healcat.xmatch_pm_pad_arcsec(rel integer, epoch_yr float8)
RETURNS float8 LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(max(healcat.pm_displacement_arcsec(s.pmra_masyr, s.pmdec_masyr, $2 - s.ref_epoch_yr)), 0)
    FROM healcat.source AS s
    WHERE $2 IS NOT NULL AND s.release_id = ANY(healcat.release_scope($1)) AND s.pmra_masyr IS NOT NULL
$$;
