"""spatial answers (sql/spatial_v1.sql): published releases by default, an object at its own distance
inside the radius, tiny radii and unusable epochs named, xmatch_releases at an epoch without the
repeated hpx

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-05 12:00:00

- With no release named, cone_search, nearest, the region searches (through sources_near_ranges),
  sky_density and the cross-match (xmatch_prepare, so xmatch_table) read the published releases:
  a superseded release's copies of the same objects came back beside the current ones, and a best
  match went to the old copy (the tie broken by its lower source_id). The new release_scope says
  which releases a search reads (NULL: published, 0: every release, else that release).
- cone_in_ranges and xmatch_prepare compare a distance with inclusive_deg(radius), a few ulps wider:
  the radius in arcsec converted to degrees lost an object at its own reported distance.
- check_cone and check_xmatch refuse a radius_arcsec below 1e-300 (the new check_radius_underflow),
  naming it (its degrees underflowed: 'value out of range: underflow'); check_epoch refuses an epoch
  outside Julian years [-4700, 10000], the range the Python path moves positions over (ERFA).
- xmatch_releases computes release_a's positions at an epoch and their hpx once (OFFSET 0) before
  the probe cover: inlined, hpx_ang2pix ran dozens of times per row (15 times slower).

The downgrade drops release_scope, inclusive_deg and check_radius_underflow and restores the earlier
definitions verbatim.
"""

from alembic import op

from migrations.functions import restore_functions, run_sql_file

revision = '0033'
down_revision = '0032'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("spatial_v1.sql")


def downgrade() -> None:
    restore_functions("cone_v2.sql", ["sources_near_ranges", "cone_in_ranges"])
    restore_functions("queries_v1.sql", ["check_cone"])
    restore_functions("crossmatch_v1.sql", ["check_xmatch"])
    restore_functions("crossmatch_v2.sql", ["check_epoch", "xmatch_releases"])
    restore_functions("regions_v1.sql", ["sky_density"])
    restore_functions("sky_v4.sql", ["xmatch_prepare"])
    op.execute("DROP FUNCTION healcat.check_radius_underflow(text, float8)")
    op.execute("DROP FUNCTION healcat.inclusive_deg(float8)")
    op.execute("DROP FUNCTION healcat.release_scope(integer)")
