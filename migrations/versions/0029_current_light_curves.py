"""views current_light_curve and current_label: light curves and labels of published releases

Revision ID: 0029
Revises: 0030 (0031 and 0030 were written beside it and landed first)
Create Date: 2026-12-05 10:00:00

A light curve and a label are one release's rows (keyed by their release's own source), so once a
survey has two releases the README's queries over light_curve, light_curve_points and label
returned every curve, point and label twice: the superseded release's and the current one's.
Spectra had ``current_spectrum`` (0022); light curves and labels had nothing. These views show the
rows of published releases only (each survey's current one), as current_spectrum does; older
releases' rows stay in the tables.
"""

from alembic import op

from migrations.functions import create_published_views

revision = '0029'
down_revision = '0030'
branch_labels = None
depends_on = None

VIEWS = {
    "current_light_curve": ("light_curve", "light curves of published releases (each survey''s current one); "
                                           "older releases'' curves stay in light_curve"),
    "current_label": ("label", "labels of published releases (each survey''s current one); "
                               "older releases'' labels stay in label"),
}


def upgrade() -> None:
    create_published_views(VIEWS)


def downgrade() -> None:
    for view in reversed(VIEWS):
        op.execute(f"DROP VIEW healcat.{view}")
