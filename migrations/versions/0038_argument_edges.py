"""argument edges: xmatch input positions, similarity errors, tiny angles, NaN RA (sql/healpix_v2.sql,
cone_v5.sql, regions_v3.sql, crossmatch_v3.sql, xmatch_v4.sql, similarity_v7.sql)

Revision ID: 0038
Revises: 0037
Create Date: 2026-12-05 15:30:00

- check_xmatch_input (xmatch_v4.sql) also checks the input table's positions, as the Python route
  does: ra a finite RA in [0, 360], dec a finite Dec in [-90, 90], neither NULL, hpx an order-29
  index (and equal to hpx_ang2pix(29, ra, dec) on the 1,000 smallest row_ids: on every row it cost 2.1 s
  per million); the first bad row (by row_id) is a 22023 error naming it, its column and value. RA
  400 was matched as RA 40; NaN, Dec 95, NULL or a wrong hpx came back unmatched silently.
- similar_to_vector (similarity_v7.sql): a version with no finished run is an error naming the
  versions that have one (was: no rows). similar_sources: a NULL source_id, a source_id naming no
  source, and a source whose release the model never ran on are errors saying so.
- angdist_deg (healpix_v2.sql), hpx_cone_cover (cone_v5.sql), offset_by, ellipse_foci and
  polygon_prepare (regions_v3.sql): tiny but valid angles (1e-170 deg) no longer fail with 'value
  out of range: underflow' (a float8 product that underflows raises in PostgreSQL); check_ellipse
  refuses a semi-minor axis (so both) below 1e-300 arcsec and check_box a box narrower or lower than 2.77778e-304 deg
  (the cone's smallest radius), 22023 errors naming the argument.
- wrap_ra_deg (regions_v3.sql): NaN (and +-Infinity) give NaN, not 0. pm_propagate (crossmatch_v3.sql)
  refuses a non-finite argument or a Dec outside [-90, 90] (22023, naming it); NULL proper motions
  still leave a position where it is. xmatch_pm_pad_arcsec (crossmatch_v3.sql) pads over the releases a
  cross-match reads (with none named, the published ones; it took every release's).

The downgrade restores the previous definitions (healpix_v1, cone_v3, regions_v1, regions_v2,
crossmatch_v2, xmatch_v3 and similarity_v5's) and drops pm_propagate_refuse.
"""

from alembic import op

from migrations.functions import restore_functions, run_sql_file

revision = '0038'
down_revision = '0037'
branch_labels = None
depends_on = None

FILES = ["healpix_v2.sql", "cone_v5.sql", "regions_v3.sql", "crossmatch_v3.sql", "xmatch_v4.sql", "similarity_v7.sql"]


def upgrade() -> None:
    for name in FILES:
        run_sql_file(name)


def downgrade() -> None:
    restore_functions("healpix_v1.sql", ["angdist_deg"])
    restore_functions("cone_v3.sql", ["hpx_cone_cover"])
    restore_functions("regions_v1.sql", ["wrap_ra_deg", "offset_by", "ellipse_foci"])
    restore_functions("regions_v2.sql", ["check_box", "check_ellipse", "polygon_prepare"])
    restore_functions("crossmatch_v2.sql", ["pm_propagate", "xmatch_pm_pad_arcsec"])
    op.execute("COMMENT ON FUNCTION healcat.xmatch_pm_pad_arcsec(integer, float8) IS 'Largest |proper motion| * "
               "|epoch_yr - ref_epoch_yr| [arcsec] of a release''s sources (all releases if NULL).'")
    op.execute("DROP FUNCTION healcat.pm_propagate_refuse(float8, float8, float8, float8, float8)")
    restore_functions("xmatch_v3.sql", ["check_xmatch_input"])
    restore_functions("similarity_v5.sql", ["similar_to_vector", "similar_sources"])
