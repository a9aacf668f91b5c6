-- healcat per-object views, version 1 (light curves and spectra as rows). Applied by migration
-- 0007; change them in a new migration with _v2 definitions rather than by editing this file.

-- One row per light-curve point: (time, magnitude or flux, error, band), in time order.
CREATE VIEW healcat.light_curve_points AS
SELECT lc.shard, lc.source_id, lc.release_id, lc.band, p.point, p.time_mjd, lc.time_scale,
       p.mag, p.mag_err, lc.mag_system, p.flux_ujy, p.flux_err_ujy
FROM healcat.light_curve AS lc
CROSS JOIN LATERAL unnest(lc.time_mjd, lc.mag, lc.mag_err, lc.flux_ujy, lc.flux_err_ujy)
    WITH ORDINALITY AS p (time_mjd, mag, mag_err, flux_ujy, flux_err_ujy, point);

COMMENT ON VIEW healcat.light_curve_points IS
    'light_curve unnested: one row per point; point is the 1-based index in the arrays; time_mjd [MJD] in time_scale';

-- One row per spectrum pixel: (wavelength, flux, ivar, mask), in wavelength order.
CREATE VIEW healcat.spectrum_pixels AS
SELECT s.shard, s.source_id, s.release_id, s.spectrum_name, p.pixel,
       p.wavelength, s.wavelength_unit, s.vacuum, p.flux, s.flux_unit, p.ivar, s.ivar_unit, p.mask
FROM healcat.spectrum AS s
CROSS JOIN LATERAL unnest(s.wavelength, s.flux, s.ivar, s.mask) WITH ORDINALITY AS p (wavelength, flux, ivar, mask, pixel);

COMMENT ON VIEW healcat.spectrum_pixels IS
    'spectrum unnested: one row per pixel; pixel is the 1-based index in the arrays';
