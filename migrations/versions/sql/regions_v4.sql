-- healcat region functions, version 4 (migration 0055): the ellipse's edge as the cone's. Change them
-- in a new migration with new definitions rather than by editing this file.
--
--   healcat.ellipse_in_ranges     regions_v1.sql's, its test against 2a widened by a few ulps
--       (healcat.inclusive_deg, as the cone's radius): a circle (semi-axes equal) whose radius is the
--       distance a search reported for a source left that source out, the sum of its two focal
--       distances 1 ulp over 2a (ellipse_search(160.9415, 0.7968, 593.3925485483893, 593.3925485483893, 0)
--       missed the source cone_search(..., 593.3925485483893) found).
--
-- Executed through sqlalchemy.text(): never a colon directly followed by a word character.

CREATE OR REPLACE FUNCTION healcat.ellipse_in_ranges(los bigint[], his bigint[], p_release_id integer, ra_deg float8,
                                                     dec_deg float8, semi_major_arcsec float8, semi_minor_arcsec float8,
                                                     pa_deg float8)
RETURNS TABLE (source_id bigint, release text, object_id text, ra float8, "dec" float8, distance_arcsec float8)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT s.source_id, s.release, s.object_id, s.ra, s.dec, healcat.angdist_deg(ra_deg, dec_deg, s.ra, s.dec) * 3600.0
    FROM healcat.ellipse_foci(ra_deg, dec_deg, semi_major_arcsec, semi_minor_arcsec, pa_deg) AS f
    CROSS JOIN healcat.sources_in_ranges(los, his, p_release_id) AS s
    WHERE healcat.angdist_deg(f.ra1, f.dec1, s.ra, s.dec) + healcat.angdist_deg(f.ra2, f.dec2, s.ra, s.dec)
          <= healcat.inclusive_deg(f.major_deg)
    ORDER BY 6, s.source_id
$$;
