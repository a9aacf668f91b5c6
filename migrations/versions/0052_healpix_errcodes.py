"""the SQL HEALPix helpers raise invalid_parameter_value (22023) for a bad argument, as the searches do

Revision ID: 0052
Revises: 0051
Create Date: 2026-12-06 16:40:00

healcat.hpx_ang2pix, hpx_pix2ang and hpx_cone_descent (hpx_cone_cover's) raised their argument errors
("hpx_ang2pix: order must be in 0..29, got 30") with PL/pgSQL's default SQLSTATE P0001
(raise_exception), where every search and ML function raises 22023: a client that catches
invalid_parameter_value (psycopg.errors.InvalidParameterValue; healcat's Python API turns it into a
QueryError) missed them. Their bodies are unchanged otherwise (migrations.functions.name_raised_errcode);
the downgrade takes those clauses away again.
"""

from migrations.functions import name_raised_errcode

revision = '0052'
down_revision = '0051'
branch_labels = None
depends_on = None

FUNCTIONS = ["healcat.hpx_ang2pix(integer, float8, float8)", "healcat.hpx_pix2ang(integer, bigint)",
             "healcat.hpx_cone_descent(float8, float8, float8, integer)"]


def upgrade() -> None:
    name_raised_errcode(FUNCTIONS, "invalid_parameter_value")


def downgrade() -> None:
    name_raised_errcode(FUNCTIONS, "invalid_parameter_value", undo=True)
