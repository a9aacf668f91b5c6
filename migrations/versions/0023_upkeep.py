"""what a schema review found: cone covers on a never-analyzed catalog, run deletes, spectra by
name, current_source's proper motions

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05 04:00:00

- sql/cone_v4.sql: healcat.cover_stop_order() estimates the catalog's size from its pages while
  healcat.source has never been analyzed (reltuples -1 read as empty made every cone a whole-sky
  scan: 17.6 ms -> 1.6 s for a 40 arcmin cone over 300k sources).
- BRIN indexes on prediction.run_id and embedding.run_id: deleting a run (``forget_runs``, a
  rerun after a failure) checked their foreign keys by scanning both tables (70 ms and 41 ms at
  450k and 150k rows, growing with every model's outputs; 0.1 ms with the index). BRIN: run ids
  grow with insertion order, and writes pay nothing measurable for it (1M rows inserted into a
  copy of prediction's key and run_id, three rounds: 0.65-0.69 s with it and without).
- an index on spectrum.spectrum_name: a spectrum by name (``spectrum_pixels WHERE spectrum_name``)
  read the whole primary key.
- current_source gains source's proper-motion columns (pmra_masyr, pmdec_masyr, ref_epoch_yr),
  which migration 0011 added to source after the view had fixed its columns.
"""

import re

from alembic import op

from migrations.functions import SQL, restore_comment, restore_functions, run_sql_file

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None

CURRENT_SOURCE = """
CREATE OR REPLACE VIEW healcat.current_source AS
SELECT s.*
FROM healcat.source AS s
JOIN healcat.release AS r ON r.release_id = s.release_id
WHERE r.status = 'published'"""


def upgrade() -> None:
    run_sql_file("cone_v4.sql")
    for table in ("prediction", "embedding"):
        op.execute(f"CREATE INDEX ix_{table}_run_id ON healcat.{table} USING brin (run_id)")
    op.create_index("ix_healcat_spectrum_spectrum_name", "spectrum", ["spectrum_name"], schema="healcat")
    op.execute(CURRENT_SOURCE)  # s.* now expands to the columns added since: appended at the end


def downgrade() -> None:
    # A view's columns cannot be dropped in place: the views over current_source go and come back.
    op.execute("DROP VIEW healcat.current_source_xid, healcat.current_spec_redshift, healcat.current_photometry, "
               "healcat.current_source")
    op.execute(CURRENT_SOURCE.replace("SELECT s.*", "SELECT s.source_id, s.shard, s.release_id, s.object_id, "
                                      "s.ra, s.dec, s.hpx, s.attrs"))  # source's columns until 0011
    v1 = (SQL / "releases_v1.sql").read_text()
    for view in ("current_photometry", "current_spec_redshift", "current_source_xid"):
        op.execute(re.search(rf"CREATE VIEW healcat\.{view} AS\n.*?;\n", v1, re.DOTALL).group(0))
    op.drop_index("ix_healcat_spectrum_spectrum_name", "spectrum", schema="healcat")
    for table in ("prediction", "embedding"):
        op.execute(f"DROP INDEX healcat.ix_{table}_run_id")
    restore_functions("cone_v2.sql", ["cover_stop_order"])
    restore_comment("cone_v2.sql", "cover_stop_order()")
