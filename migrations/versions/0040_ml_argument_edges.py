"""mixture and photo-z argument edges (sql/ml_v5.sql)

Revision ID: 0040
Revises: 0039
Create Date: 2026-12-05 19:00:00

- A NaN argument is an error (22023) naming the function and the argument: x of mixture_pdf and
  mixture_cdf (was: NaN), their lower bound and mixture_interval's (was: 0, and NULL, NULL), z of
  photoz_pdf and photoz_cdf (was: NaN). NULL in, NULL out is unchanged. New nan_argument_error raises
  it for the SQL functions.
- Level errors name mixture_interval / photoz_interval (was: 'credible interval: ...').
- photoz_pdf, photoz_cdf, photoz_interval (now PL/pgSQL): with a version named, a source whose release
  that version has not finished a run on, or a source_id naming no source, is an error naming the
  source, model/version and release (new photoz_missing; was: a silent NULL). A source that the run
  skipped (its reason in inference_skip) is still NULL, as is any source without a prediction when
  no version is named.
- resolve_model: a NULL model name is 'model_name must not be NULL'; a version the model does not have
  is 'model NAME has no version V (versions: ...)'; photoz_prediction's NULL model name likewise.

The downgrade restores ml_v4.sql's mixture_pdf, mixture_cdf and mixture_interval (five arguments),
ml_v3.sql's mixture_pdf and mixture_cdf (five arguments), photoz_pdf, photoz_cdf and photoz_interval,
ml_v2.sql's photoz_prediction and registry_v1.sql's resolve_model, and drops the new functions.
"""

from alembic import op

from migrations.functions import restore_functions, run_sql_file

revision = '0040'
down_revision = '0039'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("ml_v5.sql")


def downgrade() -> None:
    restore_functions("ml_v4.sql", ["mixture_pdf", "mixture_cdf", "mixture_interval"])
    # the first match in ml_v3.sql: the five-argument mixture_pdf and mixture_cdf
    restore_functions("ml_v3.sql", ["mixture_pdf", "mixture_cdf", "photoz_pdf", "photoz_cdf", "photoz_interval"])
    restore_functions("ml_v2.sql", ["photoz_prediction"])
    restore_functions("registry_v1.sql", ["resolve_model"])
    op.execute("DROP FUNCTION healcat.photoz_missing(text, bigint, text, text), "
               "healcat.nan_argument_error(text, text, float8)")
