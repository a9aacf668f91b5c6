"""the slow pad within the cover's 1800 arcsec; the pad through pm_displacement_arcsec (sql/xmatch_v6.sql)

Revision ID: 0041
Revises: 0040
Create Date: 2026-12-05 19:30:00

xmatch_slow_pad_arcsec is at most 1800 arcsec - radius (never below 0): a radius between 900 and
1800 arcsec at an epoch with a fast mover was refused, though fast movers need no pad.
xmatch_pm_pad_arcsec computes each displacement with pm_displacement_arcsec, the expression that
splits the sources. The downgrade restores xmatch_v5.sql's and crossmatch_v3.sql's and the comment.
"""

from alembic import op

from migrations.functions import restore_functions, run_sql_file

revision = '0041'
down_revision = '0040'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("xmatch_v6.sql")


def downgrade() -> None:
    restore_functions("xmatch_v5.sql", ["xmatch_slow_pad_arcsec"])
    op.execute("COMMENT ON FUNCTION healcat.xmatch_slow_pad_arcsec(float8, float8) IS 'Pad [arcsec] of a "
               "cross-match''s search around each input row at an epoch: the largest displacement, at most the "
               "radius (and at least 10 arcsec); sources moving further are matched apart.'")
    restore_functions("crossmatch_v3.sql", ["xmatch_pm_pad_arcsec"])
