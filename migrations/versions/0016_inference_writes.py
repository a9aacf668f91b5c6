"""inference writes: a run guards its release, not each source; output keys led by model_id

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 03:10:00

An inference run writes its outputs (prediction, embedding, inference_skip) without per-row
foreign-key checks where the role may (``ingest.copy.ParentChecksOff``). Until this revision it
locked every source it wrote for FOR KEY SHARE itself, one index probe and one tuple lock with
its WAL record per source: 4.0 s of a 1M-source photo-z run's 9.2 s of writing. A run already
holds its release FOR KEY SHARE until it commits (its ``inference_run`` row's foreign key), and
all its sources belong to that release, so the guard moves there: deleting a source, or changing
its key or release, first locks the source's release FOR UPDATE (trigger ``source_guard``), which
waits for every run on that release to end; the delete's cascade then sees the run's committed
outputs and removes them with the source. Deleting a release takes the same lock by itself.

``prediction`` and ``embedding`` get their primary keys led by ``model_id``: ``(model_id,
source_id, shard)``. A run writes one model version's rows in source order, so they are appended
at the right edge of the index (PostgreSQL's rightmost-leaf fast path) instead of being threaded
between the same sources' rows of every other model, and ``ix_prediction_model_id`` (the
current-version view, retiring) is the key's prefix, so it goes. Lookups of one source's outputs
name the model (the views do); without one, PostgreSQL 18's skip scan walks the few model ids.
The key keeps the shard (Citus colocation) and the foreign key to source is unchanged.
"""

from alembic import op

from migrations.functions import pin_search_path, replace_primary_key

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

GUARD = """
CREATE FUNCTION healcat.source_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Wait for the inference runs on the source's release (each holds it FOR KEY SHARE until it
    -- commits, and writes its outputs without per-row foreign-key checks).
    PERFORM FROM healcat.release AS r WHERE r.release_id = OLD.release_id FOR UPDATE;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
COMMENT ON FUNCTION healcat.source_guard() IS
    'Trigger: deleting or re-keying a source locks its release FOR UPDATE first, so it waits for the inference runs there.';
CREATE TRIGGER source_guard BEFORE DELETE OR UPDATE OF source_id, shard, release_id ON healcat.source
    FOR EACH ROW EXECUTE FUNCTION healcat.source_guard();
"""


def upgrade() -> None:
    op.execute(GUARD)
    pin_search_path()  # as every migration's functions are (0017's downgrade pinned it; now 0016 does too)
    for table in ("prediction", "embedding"):
        replace_primary_key(table, "model_id, source_id, shard")
    op.drop_index('ix_prediction_model_id', table_name='prediction', schema='healcat')


def downgrade() -> None:
    op.create_index('ix_prediction_model_id', 'prediction', ['model_id'], unique=False, schema='healcat')
    for table in ("prediction", "embedding"):
        replace_primary_key(table, "shard, source_id, model_id")
    op.execute("DROP TRIGGER source_guard ON healcat.source; DROP FUNCTION healcat.source_guard()")
