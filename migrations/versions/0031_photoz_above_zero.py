"""photo-z above z = 0 (sql/ml_v3.sql): photoz_pdf / photoz_interval read the mixture truncated at
z = 0 and renormalised, photoz_cdf; mixture_pdf / mixture_cdf / mixture_interval take a lower bound

Revision ID: 0031
Revises: 0028 (numbered after 0030, which was written at the same time and follows it)
Create Date: 2026-12-05 10:00:00

The network's mixture puts probability below z = 0 for galaxies near it (2 of the 4,998 SDSS
galaxies had a negative median, 24 a 68% interval starting below 0). The point estimate
(prediction.value) is the truncated mixture's median from this version of healcat on; SQL reads
the stored (untruncated) mixture above 0 through new five-argument overloads of the mixture
functions (the four-argument ones are unchanged: mixture_interval now delegates to its overload
with no lower bound). The downgrade restores ml_v1.sql's photoz_pdf, photoz_interval and
mixture_interval.
"""

from alembic import op

from migrations.functions import restore_functions, run_sql_file

revision = '0031'
down_revision = '0028'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("ml_v3.sql")


def downgrade() -> None:
    restore_functions("ml_v1.sql", ["photoz_pdf", "photoz_interval"])
    restore_functions("ml_v1.sql", ["mixture_interval"])  # plpgsql again, before its overload goes
    op.execute("DROP FUNCTION healcat.photoz_cdf(bigint, float8, text, text), "
               "healcat.mixture_interval(real[], real[], real[], float8, float8), "
               "healcat.mixture_pdf(real[], real[], real[], float8, float8), "
               "healcat.mixture_cdf(real[], real[], real[], float8, float8)")
