"""Merge point of the branches' migrations (readers 0006, per-object files 0007, model registry 0009).

Revision ID: 000A
Revises: 0006, 0007, 0009

No schema change: the science models write to the registry's ``prediction`` and ``embedding``
tables. The integrator, who re-chains the branches' migrations, may drop this file.
"""

revision = '000A'
down_revision = ('0006', '0007', '0009')
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
