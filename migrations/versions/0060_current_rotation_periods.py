"""views current_rotation_period and current_stellar_mass: the rows of published releases

Revision ID: 0060
Revises: 0059
Create Date: 2026-12-07 10:00:00

Rotation periods and catalogue stellar masses are one release's rows (keyed by their release), so
once their survey has a second release (chronoflow_prot's periods loaded again, a revised Prospector
catalogue) a query over rotation_period or stellar_mass returned each star's or galaxy's rows twice:
the superseded release's and the current one's. Spectra, light curves and labels have their
current_* views (0022, 0029); these two had none. As those do, they show the rows of published
releases only (each survey's current one); older releases' rows stay in the tables.
"""

from alembic import op

from migrations.functions import create_published_views

revision = '0060'
down_revision = '0059'
branch_labels = None
depends_on = None

VIEWS = {
    "current_rotation_period": ("rotation_period", "rotation periods of published releases (each survey''s "
                                                   "current one); older releases'' periods stay in rotation_period"),
    "current_stellar_mass": ("stellar_mass", "catalogue stellar masses of published releases (each survey''s "
                                             "current one); older releases'' masses stay in stellar_mass"),
}


def upgrade() -> None:
    create_published_views(VIEWS)


def downgrade() -> None:
    op.execute("DROP VIEW " + ", ".join(f"healcat.{view}" for view in VIEWS))
