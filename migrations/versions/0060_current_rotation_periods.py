"""views current_rotation_period and current_stellar_mass; every per-release current view on current sources

Revision ID: 0060
Revises: 0059
Create Date: 2026-12-07 10:00:00

Rotation periods and catalogue stellar masses are one release's rows (keyed by their release), so
once their survey has a second release (chronoflow_prot's periods loaded again, a revised Prospector
catalogue) a query over rotation_period or stellar_mass returned each star's or galaxy's rows twice:
the superseded release's and the current one's. Spectra, light curves and labels have their
current_* views (0022, 0029); these two had none. They show the rows of published releases on
sources of published releases (current_source).

The second condition is new for current_spectrum, current_light_curve and current_label too: a
joining release's rows (spectra matched to another survey's sources, periods on Gaia's) stayed in
those views after the base release under them was superseded or withdrawn, where the README says no
current view reaches them then (and `release withdraw` warns so): joined to current_source they
vanished, read alone they did not. The downgrade gives the three their definitions of 0022 and 0029.
"""

import importlib

from alembic import op

from migrations.functions import create_published_views

revision = '0060'
down_revision = '0059'
branch_labels = None
depends_on = None

NEW = {
    "current_rotation_period": ("rotation_period", "rotation periods of published releases (each survey''s "
                                                   "current one) on sources of published releases; older "
                                                   "releases'' periods stay in rotation_period"),
    "current_stellar_mass": ("stellar_mass", "catalogue stellar masses of published releases (each survey''s "
                                             "current one) on sources of published releases; older releases'' "
                                             "masses stay in stellar_mass"),
}
#: 0022's (its comment) and 0029's views, as they were.
BEFORE = {"current_spectrum": ("spectrum", "spectra read by published releases (each survey''s current one); "
                                           "older readings stay in spectrum"),
          **importlib.import_module("migrations.versions.0029_current_light_curves").VIEWS}
NOW = {view: (table, comment.replace("current one);", "current one) on sources of published releases;"))
       for view, (table, comment) in BEFORE.items()}


def upgrade() -> None:
    create_published_views({**NOW, **NEW}, on_current_sources=True, replace=True)


def downgrade() -> None:
    op.execute("DROP VIEW " + ", ".join(f"healcat.{view}" for view in NEW))
    create_published_views(BEFORE, replace=True)
